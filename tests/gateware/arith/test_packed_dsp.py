# amaranth: UnusedElaboratable=no
"""Packed DSP multipliers: exhaustive RTL checks of every flavour, latency, errors, DSP mapping."""

import itertools

import pytest
from amaranth.sim import Simulator

from filmqnn_hw.flows.synth import synthesize, to_verilog
from filmqnn_hw.gateware.arith.packed_dsp import (
    PackedDspMultiplier,
    W4A5FilterPackedDsp,
    W4A5KernelPackedDsp,
    W8A5PackedDsp,
    platform_flavour,
)
from filmqnn_hw.spec.packing import (
    PackingError,
    w4a5_filter_layout,
    w4a5_kernel_layout,
    w8a5_layout,
)
from filmqnn_hw.verify.exhaustive import run_exhaustive

FAMILIES = ["xc7", "xcup"]
UNITS = [W4A5FilterPackedDsp, W4A5KernelPackedDsp, W8A5PackedDsp]


class _NoBorrow(PackedDspMultiplier):
    """A faulty unit (no borrow correction) to show the exhaustive check can fail."""

    _correct_borrow = False


@pytest.mark.slow
@pytest.mark.verilator
def test_exhaustive_all_units_all_flavours():
    """Every lane of every unit, comb / registered / DSP-primitive flavour, both families,
    over every operand value (4,194,304 vectors = the whole kernel-packing domain).
    The last layout is built with a faulty unit and must fail."""
    lays = [
        f(fam) for fam in FAMILIES for f in (w4a5_filter_layout, w4a5_kernel_layout, w8a5_layout)
    ]
    res = run_exhaustive(
        lays + [w4a5_filter_layout("xc7")], unit_cls=[PackedDspMultiplier] * len(lays) + [_NoBorrow]
    )
    assert res.fails[:-1] == [0] * len(lays), res.log
    assert res.fails[-1] > 0
    assert res.vectors == 1 << 22
    # every vector is inside every unit's (full-range) domain: all combinations were checked
    assert res.counted == [1 << 22] * (len(lays) + 1)


@pytest.mark.parametrize("cls", UNITS)
def test_latency_and_valid_pysim(cls):
    """Registered behavioural unit: lanes appear 4 cycles later with valid_out, back to back."""
    u = cls("xc7")
    lay = u.layout
    ext = {
        op.name: sorted({op.lo, op.lo + 1, -1 if op.signed else 1, 0, op.hi}) for op in lay.operands
    }
    vecs = [dict(zip(ext, v, strict=True)) for v in itertools.product(*ext.values())]
    expect = [[sum(v[a] * v[b] for a, b in lane.products) for lane in lay.lanes] for v in vecs]
    got = []

    async def tb(ctx):
        for i in range(len(vecs) + u.latency):
            if i < len(vecs):
                for n, val in vecs[i].items():
                    ctx.set(u.port(n), val)
                ctx.set(u.valid_in, 1)
            else:
                ctx.set(u.valid_in, 0)
            await ctx.tick()
            if ctx.get(u.valid_out):
                got.append([ctx.get(u.lanes[k]) for k in range(len(lay.lanes))])
            elif i >= u.latency - 1 and len(got) < len(vecs):
                raise AssertionError(f"valid_out low at cycle {i}")

    sim = Simulator(u)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got == expect


def test_platform_selects_flavour():
    class Series7:
        family = "series7"

    assert platform_flavour(None) == "behavioural"
    assert platform_flavour(Series7()) == "primitive"
    assert platform_flavour(Series7(), "xc7") == "primitive"
    with pytest.raises(PackingError, match="built for family 'xcup' but the platform"):
        platform_flavour(Series7(), "xcup")
    v = to_verilog(W4A5KernelPackedDsp("xc7", flavour="primitive"), "u")
    assert "DSP48E1" in v and "USE_DPORT" in v
    v2 = to_verilog(W8A5PackedDsp("xcup", flavour="primitive"), "u")
    assert "DSP48E2" in v2 and "AMULTSEL" in v2
    assert "DSP48" not in to_verilog(W8A5PackedDsp("xc7"), "u")


def test_elaboration_errors():
    with pytest.raises(PackingError, match="DSP48E1 pre-adder"):
        W4A5FilterPackedDsp("xc7", spacing=11)
    with pytest.raises(PackingError, match="widen the spacing"):
        W4A5KernelPackedDsp("xcup", spacing=9)
    with pytest.raises(PackingError, match="flavour must be one of"):
        W8A5PackedDsp("xc7", flavour="vivado")
    with pytest.raises(PackingError, match="always registered"):
        W8A5PackedDsp("xc7", flavour="primitive", registered=False)
    with pytest.raises(PackingError, match="unknown FPGA family"):
        W8A5PackedDsp("xc7z020")


@pytest.mark.synth
@pytest.mark.parametrize("family,prim", [("xc7", "DSP48E1"), ("xcup", "DSP48E2")])
@pytest.mark.parametrize("cls", UNITS)
def test_one_dsp_per_unit(cls, family, prim):
    res = synthesize(cls(family), "u", family)
    assert res.cells.get(prim, 0) == 1 and res.dsp == 1, res.cells
