"""Run layer programs on the accelerator in Amaranth's simulator (pysim), end to end.

:func:`run_pysim_jobs` builds :class:`~filmqnn_hw.gateware.top.FilmQnnAccelerator` once, backs
its AXI masters with :class:`~filmqnn_hw.sim.mem_model.AXIMemoryModel` (optionally with
random stalls and read latency) and runs a list of jobs back to back in one simulation: per
job it pulses the reset, gives the memory models the job's memory image and behaviour,
programs the control registers through AXI4-Lite exactly as a driver does, waits for
``ap_done`` and reads the counters. Each job returns its final DDR image and counters.
:func:`run_pysim` is the one-job form. Slow (thousands of cycles per second; building the
simulation of a small top takes about 2 s, which a list of jobs pays once): for small
configs and layers; whole networks go through Verilator
(:mod:`filmqnn_hw.sim.verilator`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from filmqnn_hw.gateware.axi.lite_regs import AP_CTRL
from filmqnn_hw.gateware.top import FilmQnnAccelerator
from filmqnn_hw.sim.lite_sim import lite_read, lite_write
from filmqnn_hw.sim.mem_model import AXIMemoryModel
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.program import STATUS

__all__ = ["PysimJob", "PysimRun", "AcceleratorError", "run_pysim", "run_pysim_jobs"]

#: cycles the reset is held before each job
RESET_CYCLES = 2


class AcceleratorError(RuntimeError):
    """The accelerator refused the program or did not finish; the message has the status."""


@dataclass
class PysimJob:
    """One run: ``memory`` (DDR from address 0; copied), the program at ``layers_addr``, and
    the memory models' behaviour for it (port ``k`` draws its stalls from ``seed + k``)."""

    memory: bytes | bytearray
    layers_addr: int
    stall: float = 0.0
    read_latency: int = 0
    seed: int = 0
    max_cycles: int = 2_000_000


@dataclass
class PysimRun:
    """A job's result: the final DDR image, the counter registers, the simulated cycles from
    the end of the job's reset to its last register read, and ``error`` when there is no
    result (the job did not finish, or an earlier job of the simulation did not)."""

    memory: bytearray
    counters: dict[str, int]
    sim_cycles: int
    error: str = ""

    def check(self, check_status: bool = True) -> PysimRun:
        """Raise :class:`AcceleratorError` if the run has no result or (with
        ``check_status``) the status register reports a refusal; else return the run."""
        if self.error:
            raise AcceleratorError(self.error)
        if check_status and self.counters.get("status", 0):
            raise AcceleratorError("accelerator refused the program: "
                                   + _status_text(self.counters["status"]))
        return self


def _status_text(status: int) -> str:
    return f"status 0x{status:x}: {STATUS.get(status & 0xFF, '?')} at layer {status >> 8}"


def _in_flight(model: AXIMemoryModel) -> bool:
    """Bursts accepted whose data beats have not all been transferred."""
    return (sum(b for _, b in model.read_bursts) != model.r_beats
            or sum(b for _, b in model.write_bursts) != model.w_beats)


def run_pysim_jobs(config: AcceleratorConfig, jobs: Sequence[PysimJob]) -> list[PysimRun]:
    """Simulate ``jobs`` one after another on one accelerator for ``config``; one
    :class:`PysimRun` per job, in order (their ``status`` is not checked: see
    :meth:`PysimRun.check`).

    Each job starts from a reset of the accelerator (on-chip memories keep their contents,
    as on the device) and memory models as new over the job's own copy of its image. A job
    that does not reach ``ap_done`` within its ``max_cycles`` gets an ``error``, and so do the
    jobs after it (the engine may still hold bursts of the hung run). A job that reports done
    while memory bursts are still in flight raises :class:`AcceleratorError`.
    """
    # pysim compiles each process to Python; board-sized arrays nest deeply
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    dut = FilmQnnAccelerator(config)
    top = Module()
    top.domains.sync = cd = ClockDomain()  # explicit, so the host can drive its reset
    top.submodules.dut = dut
    ports = [dut.m_axi_gmem0] + [getattr(dut, f"m_axi_gmem{k}")
                                 for k in range(1, dut.geo.weight_ports + 1)]
    # one model per port for the whole simulation (its serve() runs throughout); each job
    # resets the models onto the job's memory
    models = [AXIMemoryModel(p, 0, max_bursts=8) for p in ports]
    cmap = dut.cmap
    runs: list[PysimRun] = []

    async def host(ctx):
        bus = dut.s_axi_control
        for i, job in enumerate(jobs):
            mem = bytearray(job.memory)
            if runs and runs[-1].error:
                runs.append(PysimRun(mem, {}, 0, f"not run: job {i - 1} did not finish"))
                continue
            ctx.set(cd.rst, 1)
            for _ in range(RESET_CYCLES):
                await ctx.tick()  # (tick().repeat() would raise DomainReset here)
            # the models are idle (checked after the previous job) and the engine in reset,
            # so no handshake is under way while their state is replaced
            for k, mm in enumerate(models):
                mm.reset(mem, seed=job.seed + k, stall=job.stall, read_latency=job.read_latency,
                         max_bursts=8)
            ctx.set(cd.rst, 0)
            await lite_write(ctx, bus, cmap.offset_of("layers"), job.layers_addr & 0xFFFF_FFFF)
            await lite_write(ctx, bus, cmap.offset_of("layers") + 4, job.layers_addr >> 32)
            await lite_write(ctx, bus, AP_CTRL, 1)
            n = 0
            while True:
                await ctx.tick().repeat(64)
                n += 64
                v = await lite_read(ctx, bus, AP_CTRL)
                if v & 2 or n > job.max_cycles:
                    break
            if not v & 2:
                runs.append(PysimRun(mem, {}, models[0].cycles,
                                     f"accelerator did not finish within {job.max_cycles} "
                                     f"cycles (AP_CTRL=0x{v:x})"))
                continue
            counters: dict[str, int] = {}
            for e in cmap.counters:
                off = cmap.offset_of(e.name)
                lo = await lite_read(ctx, bus, off)
                hi = await lite_read(ctx, bus, off + 4) if e.bits == 64 else 0
                counters[e.name] = lo | hi << 32
            if any(_in_flight(mm) for mm in models):
                raise AcceleratorError(f"job {i}: ap_done with AXI bursts still in flight")
            runs.append(PysimRun(mem, counters, models[0].cycles))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    for mm in models:
        sim.add_testbench(mm.serve, background=True)
    sim.add_testbench(host)
    sim.run()
    return runs


def run_pysim(config: AcceleratorConfig, memory: bytes | bytearray, layers_addr: int, *,
              stall: float = 0.0, read_latency: int = 0, seed: int = 0,
              max_cycles: int = 2_000_000, check_status: bool = True) -> PysimRun:
    """Simulate one run of the program at ``layers_addr`` over ``memory`` (base address 0);
    raise :class:`AcceleratorError` if it does not finish or (with ``check_status``) the
    accelerator refuses the program."""
    job = PysimJob(memory, layers_addr, stall=stall, read_latency=read_latency, seed=seed,
                   max_cycles=max_cycles)
    return run_pysim_jobs(config, [job])[0].check(check_status)
