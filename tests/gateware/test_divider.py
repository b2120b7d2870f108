# amaranth: UnusedElaboratable=no
"""ConstDivider: q, r == divmod(x, d) for every x of small widths and sampled 16/17-bit x."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from filmqnn_hw.gateware.divider import ConstDivider


def _run(width: int, divisor: int, xs: list[int]) -> list[tuple[int, int]]:
    dut = ConstDivider(width, divisor)
    got: list[tuple[int, int]] = []

    async def tb(ctx):
        # one new dividend per cycle (fully pipelined); results trail by `latency` cycles
        for i in range(len(xs) + dut.latency):
            ctx.set(dut.x, xs[i] if i < len(xs) else 0)
            await ctx.tick()
            j = i - (dut.latency - 1)
            if 0 <= j < len(xs):
                got.append((ctx.get(dut.q), ctx.get(dut.r)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got


@pytest.mark.parametrize("width,divisor", [(6, 3), (7, 5), (8, 1), (8, 2), (9, 25), (10, 6)])
def test_exhaustive_small_widths(width, divisor):
    xs = list(range(1 << width))
    assert _run(width, divisor, xs) == [divmod(x, divisor) for x in xs]


@pytest.mark.parametrize("width,divisor", [(16, 3), (17, 8), (16, 25), (17, 3)])
def test_sampled_wide(width, divisor):
    rng = random.Random(width * 100 + divisor)
    xs = [0, 1, divisor - 1, divisor, (1 << width) - 1, (1 << width) - 2]
    xs += [rng.randrange(1 << width) for _ in range(400)]
    assert _run(width, divisor, xs) == [divmod(x, divisor) for x in xs]


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisor"):
        ConstDivider(8, 0)
    with pytest.raises(ValueError, match="width"):
        ConstDivider(0, 3)
