# amaranth: UnusedElaboratable=no
"""AXI4-Lite control block: every register's access semantics, interrupts, map-as-data."""

from __future__ import annotations

import json
import random

import pytest
from amaranth.sim import Simulator

from filmqnn_hw.gateware.axi.lite_regs import (
    AP_CTRL,
    GIE,
    IER,
    ISR,
    AXI4LiteControl,
    ControlMap,
    Entry,
    accelerator_control_map,
)
from filmqnn_hw.sim.lite_sim import lite_read, lite_write

MASK64 = (1 << 64) - 1


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_default_map_layout():
    cmap = accelerator_control_map()
    offsets = {w.name: w.offset for w in cmap.words}
    assert offsets["ap_ctrl"] == 0x00 and offsets["gie"] == 0x04
    assert offsets["ier"] == 0x08 and offsets["isr"] == 0x0C
    assert offsets["layers_lo"] == 0x10 and offsets["layers_hi"] == 0x14
    assert [offsets[f"{n}_lo"] for n in ("cycles", "stall_weight", "stall_input", "stall_output")] \
        == [0x18, 0x20, 0x28, 0x30]
    assert offsets["status"] == 0x38
    assert cmap.size == 0x3C and cmap.addr_width == 6
    # words are contiguous and unique
    assert [w.offset for w in cmap.words] == list(range(0, cmap.size, 4))
    assert ControlMap.from_dict(json.loads(cmap.to_json())) == cmap
    header = cmap.c_header()
    assert "#define FILMQNN_CTRL_LAYERS_LO 0x10" in header
    assert "#define FILMQNN_CTRL_STALL_OUTPUT_HI 0x34" in header
    assert "| 0x0C | isr | TOW |" in cmap.markdown()


def test_map_errors():
    with pytest.raises(ValueError, match="bits must be 32 or 64"):
        Entry("x", 16)
    with pytest.raises(ValueError, match="identifier"):
        Entry("1x")
    with pytest.raises(ValueError, match="duplicate or reserved"):
        ControlMap([Entry("a")], [Entry("a")])
    with pytest.raises(ValueError, match="duplicate or reserved"):
        ControlMap([Entry("isr")])
    with pytest.raises(ValueError, match="cannot address"):
        AXI4LiteControl(accelerator_control_map(), addr_width=5)
    with pytest.raises(ValueError, match="multiple of 4"):
        Entry("x", 32, offset=0x12)
    with pytest.raises(ValueError, match="overlaps the previous entry, which ends at 0x18"):
        ControlMap([Entry("a", 64), Entry("b", 32, offset=0x14)])
    d = accelerator_control_map().to_dict()
    d["words"][4]["offset"] = 0x40
    with pytest.raises(ValueError, match="does not match"):
        ControlMap.from_dict(d)


@pytest.mark.parametrize("seed", [None, 1])
def test_registers(seed):
    """ap_ctrl/GIE/IER/ISR semantics (COR, TOW, self-clearing start), args, counters."""
    dut = AXI4LiteControl()
    bus, core = dut.s_axi_control, dut.core
    rng = random.Random(seed) if seed is not None else None

    async def bench(ctx):
        async def rd(a):
            return await lite_read(ctx, bus, a, rng=rng)

        async def wr(a, v, strb=None):
            await lite_write(ctx, bus, a, v, strb=strb, rng=rng)

        async def pulse(sig):
            ctx.set(sig, 1)
            await ctx.tick()
            ctx.set(sig, 0)

        ctx.set(core.idle, 1)
        await ctx.tick().repeat(2)
        # reset values: idle visible, everything else 0
        assert await rd(AP_CTRL) == 0b0100
        for a in (GIE, IER, ISR, 0x10, 0x14):
            assert await rd(a) == 0
        # unmapped reads give 0; writes there change nothing
        await wr(0x3C, 0xFFFF_FFFF)
        assert await rd(0x3C) == 0

        # ---- args: 64-bit R/W with byte strobes ----
        await wr(0x10, 0x89AB_CDEF)
        await wr(0x14, 0x0123_4567)
        assert ctx.get(core.args.layers) == 0x0123_4567_89AB_CDEF
        assert await rd(0x10) == 0x89AB_CDEF and await rd(0x14) == 0x0123_4567
        await wr(0x10, 0x5500_00AA, strb=0b1001)
        assert await rd(0x10) == 0x55AB_CDAA
        # read-only counters: writes ignored, 64-bit read via low-word shadow latch
        ctx.set(core.counters.cycles, 0x1111_2222_3333_4444)
        await wr(0x18, 0)
        lo = await rd(0x18)
        ctx.set(core.counters.cycles, 0x5555_6666_7777_8888)  # changes between lo and hi reads
        hi = await rd(0x1C)
        assert (hi << 32 | lo) == 0x1111_2222_3333_4444
        for name, value in (("stall_weight", 7), ("stall_input", 1 << 40 | 3),
                            ("stall_output", MASK64)):
            ctx.set(getattr(core.counters, name), value)
            off = dut.cmap.offset_of(name)
            lo = await rd(off)
            hi = await rd(off + 4)
            assert (hi << 32 | lo) == value

        # ---- ap_start: set by write 1, writing 0 does not clear, cleared by core ready ----
        await wr(AP_CTRL, 0)
        assert ctx.get(core.start) == 0
        await wr(AP_CTRL, 1)
        assert ctx.get(core.start) == 1
        ctx.set(core.idle, 0)
        await wr(AP_CTRL, 0)  # no effect on start
        assert ctx.get(core.start) == 1
        assert await rd(AP_CTRL) == 0b0001  # started, not idle
        await pulse(core.ready)
        assert ctx.get(core.start) == 0
        # ap_ready is COR
        assert await rd(AP_CTRL) == 0b1000
        assert await rd(AP_CTRL) == 0b0000
        # ap_done is COR; interrupt only with GIE and IER
        await pulse(core.done)
        ctx.set(core.idle, 1)
        await ctx.tick()
        assert ctx.get(dut.interrupt) == 0
        assert await rd(ISR) == 0  # IER was 0: no status
        assert await rd(AP_CTRL) == 0b0110
        assert await rd(AP_CTRL) == 0b0100

        # ---- interrupts ----
        await wr(IER, 0b11)
        assert await rd(IER) == 0b11
        await pulse(core.done)
        await ctx.tick()
        assert await rd(ISR) == 0b01
        assert ctx.get(dut.interrupt) == 0  # GIE off
        await wr(GIE, 1)
        assert await rd(GIE) == 1
        assert ctx.get(dut.interrupt) == 1
        await pulse(core.ready)
        assert await rd(ISR) == 0b11
        await wr(ISR, 0b01)  # TOW: toggle bit0 -> clears done
        assert await rd(ISR) == 0b10
        assert ctx.get(dut.interrupt) == 1
        await wr(ISR, 0b11)  # toggles: ready clears, done sets (TOW, not W1C)
        assert await rd(ISR) == 0b01
        await wr(ISR, 0b01)
        assert await rd(ISR) == 0
        await ctx.tick()
        assert ctx.get(dut.interrupt) == 0
        await wr(GIE, 0)
        await wr(IER, 0b10)  # only ready enabled
        await pulse(core.done)
        await pulse(core.ready)
        assert await rd(ISR) == 0b10
        await wr(ISR, 0b10)

        # ---- auto_restart: ready reloads start instead of clearing it ----
        await wr(AP_CTRL, 0x81)
        assert await rd(AP_CTRL) & 0x81 == 0x81
        await pulse(core.ready)
        assert ctx.get(core.start) == 1
        await wr(AP_CTRL, 0x00)  # clear auto_restart; start stays until next ready
        assert ctx.get(core.start) == 1
        await pulse(core.ready)
        assert ctx.get(core.start) == 0
        # done arriving in the same cycle as the AP_CTRL read is not lost (set wins)
        await rd(AP_CTRL)
        ctx.set(bus.araddr, AP_CTRL)
        ctx.set(bus.arvalid, 1)
        ctx.set(core.done, 1)
        await ctx.tick()
        ctx.set(bus.arvalid, 0)
        ctx.set(core.done, 0)
        ctx.set(bus.rready, 1)
        (first,) = await ctx.tick().sample(bus.rdata).until(bus.rvalid)
        ctx.set(bus.rready, 0)
        assert first & 0b10 == 0
        assert await rd(AP_CTRL) & 0b10 == 0b10

    run(dut, bench)


def test_custom_map_32bit_entries():
    cmap = ControlMap([Entry("n", 32), Entry("addr", 64)], [Entry("count", 32)])
    assert [(w.name, w.offset) for w in cmap.words[4:]] == [
        ("n", 0x10), ("addr_lo", 0x14), ("addr_hi", 0x18), ("count", 0x1C)]
    dut = AXI4LiteControl(cmap, addr_width=12)
    bus, core = dut.s_axi_control, dut.core

    async def bench(ctx):
        await lite_write(ctx, bus, 0x10, 0xDEAD_BEEF)
        await lite_write(ctx, bus, 0x18, 0x1)
        ctx.set(core.counters.count, 1234)
        assert ctx.get(core.args.n) == 0xDEAD_BEEF
        assert ctx.get(core.args.addr) == 1 << 32
        assert await lite_read(ctx, bus, 0x1C) == 1234
        assert await lite_read(ctx, bus, 0x1C + 0x400) == 0  # aliasing beyond map: unmapped
        assert await lite_read(ctx, bus, 0x10 + 0x400) == 0

    run(dut, bench)


def test_simultaneous_read_and_write():
    """AW/W and AR presented in the same cycle both complete correctly."""
    dut = AXI4LiteControl()
    bus = dut.s_axi_control

    async def bench(ctx):
        await lite_write(ctx, bus, 0x10, 42)
        for sig, v in ((bus.awaddr, 0x14), (bus.wdata, 7), (bus.wstrb, 0xF), (bus.araddr, 0x10)):
            ctx.set(sig, v)
        for sig in (bus.awvalid, bus.wvalid, bus.arvalid, bus.bready, bus.rready):
            ctx.set(sig, 1)
        got_b = got_r = False
        rdata = None
        for _ in range(10):
            _, _, aw, w, ar, bv, rv, rd = await ctx.tick().sample(
                bus.awready, bus.wready, bus.arready, bus.bvalid, bus.rvalid, bus.rdata)
            if aw:
                ctx.set(bus.awvalid, 0)
            if w:
                ctx.set(bus.wvalid, 0)
            if ar:
                ctx.set(bus.arvalid, 0)
            got_b |= bool(bv)
            if rv and rdata is None:
                rdata = rd
            got_r |= bool(rv)
        assert got_b and got_r and rdata == 42
        assert await lite_read(ctx, bus, 0x14) == 7

    run(dut, bench)


def test_explicit_offsets_leave_unmapped_gaps():
    """An HLS-like layout: a reserved word after each argument, counters on 16-byte strides."""
    cmap = ControlMap([Entry("a", 64), Entry("n", 32, offset=0x1C)],
                      [Entry("c", 64, offset=0x28)])
    assert [(w.name, w.offset) for w in cmap.words[4:]] == [
        ("a_lo", 0x10), ("a_hi", 0x14), ("n", 0x1C), ("c_lo", 0x28), ("c_hi", 0x2C)]
    assert ControlMap.from_dict(json.loads(cmap.to_json())) == cmap
    dut = AXI4LiteControl(cmap)
    bus, core = dut.s_axi_control, dut.core

    async def bench(ctx):
        ctx.set(core.counters.c, 0xAAAA_BBBB_CCCC_DDDD)
        for off in (0x10, 0x14, 0x18, 0x1C, 0x20, 0x24):
            await lite_write(ctx, bus, off, 0x100 + off)
        assert ctx.get(core.args.a) == (0x114 << 32) | 0x110
        assert ctx.get(core.args.n) == 0x11C
        for off, want in ((0x18, 0), (0x20, 0), (0x24, 0), (0x1C, 0x11C), (0x28, 0xCCCC_DDDD),
                          (0x2C, 0xAAAA_BBBB)):
            assert await lite_read(ctx, bus, off) == want, hex(off)

    run(dut, bench)
