"""cocotb testbench: the whole accelerator top (emitted Verilog) on cocotbext-axi models.

Every AXI4 master port ``m_axi_gmem{k}`` is served by a cocotbext-axi ``AxiRam`` over one
shared memory (so the weight ports read what port 0 wrote), each of its five channels with a
seeded random pause generator; the control registers are programmed through cocotbext-axi's
``AxiLiteMaster`` on ``s_axi_control`` (also paused at random), as a driver does: the layer
program's address, the interrupt enables, ``ap_start``, then ``ap_done`` polled and the
counters read. cocotbext-axi checks the AXI handshakes it takes part in (bursts, lengths,
4 KiB boundaries, response ordering) and raises on a protocol error.

The case comes from the JSON file named by ``ACCEL_CASE`` (written by
``tests/gateware/axi/test_cocotb.py``): ``ports``, ``mem_size``, ``runs`` (each: ``image`` and
``result`` file paths and ``layers`` address), ``offsets`` (control register offsets by
name). For every run the memory is loaded from ``image``; after ``ap_done`` the final memory
and the counters are written to ``result`` (``.bin`` and ``.json``) for pytest to compare
with the golden model.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

CASE = json.loads(Path(os.environ["ACCEL_CASE"]).read_text())
AP_CTRL, GIE, IER, ISR = 0x00, 0x04, 0x08, 0x0C
MAX_CYCLES = int(CASE.get("max_cycles", 400_000))


def pauses(seed: int, p: float):
    rng = random.Random(seed)
    while True:
        yield rng.random() < p


async def read32(axil: AxiLiteMaster, addr: int) -> int:
    return int.from_bytes((await axil.read(addr, 4)).data, "little")


async def write32(axil: AxiLiteMaster, addr: int, value: int) -> None:
    await axil.write(addr, (value & 0xFFFF_FFFF).to_bytes(4, "little"))


@cocotb.test()
async def accelerator_runs_programs_on_axi_ram(dut):
    """Each program runs to ap_done with random pauses on every AXI channel of every port."""
    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    dut.ap_rst_n.value = 0
    mem = bytearray(CASE["mem_size"])
    rams = []
    for k in range(CASE["ports"]):
        ram = AxiRam(AxiBus.from_prefix(dut, f"m_axi_gmem{k}"), dut.ap_clk, dut.ap_rst_n,
                     reset_active_level=False, size=len(mem), mem=mem)
        for i, ch in enumerate((ram.write_if.aw_channel, ram.write_if.w_channel,
                                ram.write_if.b_channel, ram.read_if.ar_channel,
                                ram.read_if.r_channel)):
            ch.set_pause_generator(pauses(1000 * k + i, CASE.get("pause", 0.3)))
        rams.append(ram)
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk,
                         dut.ap_rst_n, reset_active_level=False)
    for i, ch in enumerate((axil.write_if.aw_channel, axil.write_if.w_channel,
                            axil.write_if.b_channel, axil.read_if.ar_channel,
                            axil.read_if.r_channel)):
        ch.set_pause_generator(pauses(77 + i, 0.2))
    off = CASE["offsets"]

    for run in CASE["runs"]:
        dut.ap_rst_n.value = 0
        image = Path(run["image"]).read_bytes()
        assert len(image) <= len(mem), "memory image larger than the RAM"
        mem[:] = bytes(len(mem))
        mem[: len(image)] = image
        await ClockCycles(dut.ap_clk, 4)
        dut.ap_rst_n.value = 1
        await ClockCycles(dut.ap_clk, 2)
        assert await read32(axil, AP_CTRL) & 0x4, "ap_idle is not set after reset"

        layers = run["layers"]
        await write32(axil, off["layers"], layers)
        await write32(axil, off["layers"] + 4, layers >> 32)
        await write32(axil, GIE, 1)
        await write32(axil, IER, 1)  # ap_done interrupt
        assert int(dut.interrupt.value) == 0
        await write32(axil, AP_CTRL, 1)
        cycles = 0
        while not int(dut.interrupt.value):
            await RisingEdge(dut.ap_clk)
            cycles += 1
            assert cycles < MAX_CYCLES, f"no interrupt within {MAX_CYCLES} cycles"
        assert await read32(axil, ISR) & 1, "ISR does not show ap_done"
        ctrl = await read32(axil, AP_CTRL)
        assert ctrl & 0x2, f"ap_done not set with the interrupt (AP_CTRL=0x{ctrl:x})"
        assert not await read32(axil, AP_CTRL) & 0x2, "ap_done is not clear-on-read"
        await write32(axil, ISR, 1)  # toggle-on-write clears the status
        await ClockCycles(dut.ap_clk, 2)
        assert int(dut.interrupt.value) == 0, "interrupt still high after the ISR write"

        counters = {}
        for name, (offset, bits) in off["counters"].items():
            lo = await read32(axil, offset)
            hi = await read32(axil, offset + 4) if bits == 64 else 0
            counters[name] = lo | hi << 32
        Path(run["result"] + ".bin").write_bytes(bytes(mem))
        Path(run["result"] + ".json").write_text(json.dumps(counters))
