# amaranth: UnusedElaboratable=no
"""LUT multipliers: exhaustive over every (w, x), no DSP after synthesis, errors."""

import pytest
from amaranth.sim import Simulator

from filmqnn_hw.flows.synth import synthesize
from filmqnn_hw.gateware.arith.lut_mul import LutMultiplier
from filmqnn_hw.spec.packing import PackingError


@pytest.mark.parametrize("w_bits", [4, 8])
def test_lut_multiplier_exhaustive(w_bits):
    """Every signed w_bits weight (-8 / -128 included) times every 5-bit activation."""
    dut = LutMultiplier(w_bits)
    vecs = [(w, x) for w in range(-(1 << (w_bits - 1)), 1 << (w_bits - 1)) for x in range(32)]
    bad = []

    async def tb(ctx):
        for w, x in vecs:
            ctx.set(dut.w, w)
            ctx.set(dut.x, x)
            await ctx.tick()  # the product register captures w * x at this edge
            if ctx.get(dut.p) != w * x:
                bad.append((w, x, ctx.get(dut.p)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert bad == []
    assert len(vecs) == (1 << w_bits) * 32


def test_lut_multiplier_errors():
    with pytest.raises(PackingError, match="2..8 bits"):
        LutMultiplier(9)
    with pytest.raises(PackingError, match="2..8 bits"):
        LutMultiplier(1)


@pytest.mark.synth
@pytest.mark.parametrize("w_bits", [4, 8])
def test_lut_multiplier_uses_no_dsp(w_bits):
    res = synthesize(LutMultiplier(w_bits), "lm", "xc7")
    assert res.dsp == 0 and res.lut > 0, res.cells
