"""cocotb testbench: AXI4LiteControl (Vivado-named Verilog) driven by cocotbext-axi's AxiLiteMaster.

Run through tests/gateware/axi/test_cocotb.py (cocotb_tools.runner, Icarus -g2005).
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from filmqnn_hw.gateware.axi.lite_regs import AP_CTRL, GIE, IER, ISR, accelerator_control_map


def pauses(seed: int, p: float):
    rng = random.Random(seed)
    while True:
        yield rng.random() < p


async def pulse(dut, sig) -> None:
    sig.value = 1
    await RisingEdge(dut.ap_clk)
    sig.value = 0
    await RisingEdge(dut.ap_clk)


@cocotb.test()
async def control_registers(dut):
    """Args, counters, ap_start/ap_done/ap_ready semantics and the interrupt, over AXI4-Lite."""
    cmap = accelerator_control_map()
    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    dut.ap_rst_n.value = 0
    dut.core_done.value = 0
    dut.core_ready.value = 0
    dut.core_idle.value = 1
    counters = [0x0000_0001_8000_0000, 5, 1 << 40, (1 << 64) - 1]  # cycles, stall_* in order
    dut.core_counters.value = sum(v << (64 * i) for i, v in enumerate(counters))
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                         reset_active_level=False)
    for i, ch in enumerate((axil.write_if.aw_channel, axil.write_if.w_channel,
                            axil.write_if.b_channel, axil.read_if.ar_channel,
                            axil.read_if.r_channel)):
        ch.set_pause_generator(pauses(i, 0.3))
    await ClockCycles(dut.ap_clk, 4)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)

    assert await axil.read_dword(AP_CTRL) == 0b0100  # idle
    layers = cmap.offset_of("layers")
    await axil.write_dword(layers, 0x89AB_CDEF)
    await axil.write_dword(layers + 4, 0x0123_4567)
    assert int(dut.core_args.value) == 0x0123_4567_89AB_CDEF
    assert await axil.read_qword(layers) == 0x0123_4567_89AB_CDEF
    for name, value in zip(("cycles", "stall_weight", "stall_input", "stall_output"), counters,
                           strict=True):
        off = cmap.offset_of(name)
        lo = await axil.read_dword(off)
        hi = await axil.read_dword(off + 4)
        assert (hi << 32 | lo) == value, name

    await axil.write_dword(IER, 0b01)
    await axil.write_dword(GIE, 1)
    await axil.write_dword(AP_CTRL, 1)
    assert int(dut.core_start.value) == 1
    dut.core_idle.value = 0
    await pulse(dut, dut.core_ready)
    assert int(dut.core_start.value) == 0
    assert int(dut.interrupt.value) == 0  # ready interrupt not enabled
    await pulse(dut, dut.core_done)
    dut.core_idle.value = 1
    await RisingEdge(dut.ap_clk)
    assert int(dut.interrupt.value) == 1
    assert await axil.read_dword(AP_CTRL) == 0b1110  # done, idle, ready
    assert await axil.read_dword(AP_CTRL) == 0b0100  # done and ready were clear-on-read
    assert await axil.read_dword(ISR) == 0b01
    await axil.write_dword(ISR, 0b01)  # toggle-on-write clears it
    assert await axil.read_dword(ISR) == 0
    await ClockCycles(dut.ap_clk, 2)
    assert int(dut.interrupt.value) == 0
