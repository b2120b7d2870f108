"""Run a layer program on the accelerator in Amaranth's simulator (pysim), end to end.

:func:`run_pysim` builds :class:`~filmqnn_hw.gateware.top.FilmQnnAccelerator`, backs its AXI
master with :class:`~filmqnn_hw.sim.mem_model.AXIMemoryModel` (optionally with random
stalls and read latency), programs the control registers through AXI4-Lite exactly as a
driver does, and returns the final DDR image and the counters. Slow (thousands of cycles
per second): for small configs and layers; whole networks go through Verilator
(:mod:`filmqnn_hw.sim.verilator`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from amaranth.sim import Simulator

from filmqnn_hw.gateware.axi.lite_regs import AP_CTRL
from filmqnn_hw.gateware.top import FilmQnnAccelerator
from filmqnn_hw.sim.lite_sim import lite_read, lite_write
from filmqnn_hw.sim.mem_model import AXIMemoryModel
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.program import STATUS

__all__ = ["PysimRun", "AcceleratorError", "run_pysim"]


class AcceleratorError(RuntimeError):
    """The accelerator refused the program or did not finish; the message has the status."""


@dataclass
class PysimRun:
    memory: bytearray
    counters: dict[str, int]
    sim_cycles: int


def _status_text(status: int) -> str:
    return f"status 0x{status:x}: {STATUS.get(status & 0xFF, '?')} at layer {status >> 8}"


def run_pysim(config: AcceleratorConfig, memory: bytes | bytearray, layers_addr: int, *,
              stall: float = 0.0, read_latency: int = 0, seed: int = 0,
              max_cycles: int = 2_000_000, check_status: bool = True) -> PysimRun:
    """Simulate one run of the program at ``layers_addr`` over ``memory`` (base address 0)."""
    # pysim compiles each process to Python; board-sized arrays nest deeply
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    dut = FilmQnnAccelerator(config)
    mem = bytearray(memory)
    model = AXIMemoryModel(dut.m_axi_gmem0, mem, seed=seed, stall=stall,
                           read_latency=read_latency, max_bursts=8)
    # the weight ports (if any) serve the same memory, each with its own stall sequence
    models = [model] + [AXIMemoryModel(getattr(dut, f"m_axi_gmem{k}"), mem, seed=seed + k,
                                       stall=stall, read_latency=read_latency, max_bursts=8)
                        for k in range(1, dut.geo.weight_ports + 1)]
    cmap = dut.cmap
    result: dict[str, int] = {}
    state = {"cycles": 0}

    async def host(ctx):
        bus = dut.s_axi_control
        await lite_write(ctx, bus, cmap.offset_of("layers"), layers_addr & 0xFFFF_FFFF)
        await lite_write(ctx, bus, cmap.offset_of("layers") + 4, layers_addr >> 32)
        await lite_write(ctx, bus, AP_CTRL, 1)
        n = 0
        while True:
            await ctx.tick().repeat(64)
            n += 64
            v = await lite_read(ctx, bus, AP_CTRL)
            if v & 2:
                break
            if n > max_cycles:
                raise AcceleratorError(f"accelerator did not finish within {max_cycles} cycles "
                                       f"(AP_CTRL=0x{v:x})")
        for e in cmap.counters:
            off = cmap.offset_of(e.name)
            lo = await lite_read(ctx, bus, off)
            hi = await lite_read(ctx, bus, off + 4) if e.bits == 64 else 0
            result[e.name] = lo | hi << 32
        state["cycles"] = model.cycles

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for mm in models:
        sim.add_testbench(mm.serve, background=True)
    sim.add_testbench(host)
    sim.run()
    if check_status and result.get("status", 0):
        raise AcceleratorError("accelerator refused the program: " + _status_text(result["status"]))
    return PysimRun(mem, result, state["cycles"])
