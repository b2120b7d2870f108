# amaranth: UnusedElaboratable=no
"""RequantUnit / RequantBank: pysim against numerics.requantize with ==, stalls, lint."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from amaranth import unsigned
from helpers import assert_verilator_lints, consume, produce, simulate

from filmqnn_hw.gateware.requant import RequantBank, RequantError, RequantUnit, requant_in_layout
from filmqnn_hw.spec.config import ACT_MAX, AcceleratorConfig
from filmqnn_hw.spec.geometry import REQUANT_LATENCY
from filmqnn_hw.spec.numerics import (
    LOGIT_MAX,
    LOGIT_MIN,
    MULT_BITS,
    RES_MULT_BITS,
    SHIFT_MAX,
    requantize,
)

CFG = AcceleratorConfig.small()
ACC_BOUND = CFG.max_fan_in * 127 * ACT_MAX  # 4608 * 127 * 31
Y_LIM = 1 << 47
MMAX = (1 << MULT_BITS) - 1
RMMAX = (1 << RES_MULT_BITS) - 1  # 2**31 - 1: res * res_mult up to 31 * RMMAX (~2**36)


def _offset_for(acc: int, mult: int, res: int, rm: int, sign: int) -> int:
    """An offset that pushes |y| to the edge of the domain (2**47 - 1) in direction ``sign``."""
    base = acc * mult + res * rm
    return sign * (Y_LIM - 1) - base


def _vectors(rng: random.Random, n_random: int) -> list[dict]:
    vecs = []
    accs = [-ACC_BOUND, -1, 0, 1, ACC_BOUND]
    mults = [0, 1, 1 << 14, MMAX]
    shifts = [0, 1, 15, 31, SHIFT_MAX]
    # res_mult: 0, 2**15 - 1 (the largest conv multiplier), 2**26 (ResNets),
    # the 31-bit maximum
    grid = itertools.product(accs, mults, shifts, [0, ACT_MAX], [0, MMAX, 1 << 26, RMMAX])
    for acc, mult, shift, res, rm in grid:
        for off in (
            0,
            1 << (shift - 1) if shift else 0,
            _offset_for(acc, mult, res, rm, 1),
            _offset_for(acc, mult, res, rm, -1),
        ):
            vecs.append(dict(acc=acc, mult=mult, offset=off, shift=shift, res=res, res_mult=rm))
    for _ in range(n_random):
        acc = rng.randint(-ACC_BOUND, ACC_BOUND)
        mult = rng.choice([rng.randint(0, MMAX), rng.randint(1 << 14, MMAX)])
        shift = rng.randint(0, SHIFT_MAX)
        res = rng.choice([rng.randint(0, ACT_MAX), rng.randint(16, ACT_MAX)])
        rm = rng.choice([rng.randint(0, MMAX), rng.randint(0, RMMAX), rng.randint(1 << 30, RMMAX)])
        base = acc * mult + res * rm
        room = Y_LIM - 1 - abs(base)
        # offsets near the rounding point or anywhere in the remaining domain
        off = rng.choice([rng.randint(-room, room), (1 << shift >> 1) - base % (1 << shift)])
        vecs.append(dict(acc=acc, mult=mult, offset=off, shift=shift, res=res, res_mult=rm))
    for v in vecs:
        y = v["acc"] * v["mult"] + v["offset"] + v["res"] * v["res_mult"]
        assert -Y_LIM < y < Y_LIM, v
    return vecs


def _reference(vecs: list[dict], lo: int, hi: int) -> list[int]:
    a = {k: np.array([v[k] for v in vecs], dtype=np.int64) for k in vecs[0]}
    out = requantize(a["acc"], a["mult"], a["offset"], a["shift"], lo, hi, a["res"], a["res_mult"])
    return [int(x) for x in out]


def _run_unit(dut: RequantUnit, vecs: list[dict], lo: int, hi: int, seed: int,
              stall: bool) -> tuple[list[int], int]:
    # one generator for both sides: the stall pattern depends on how their draws interleave
    rng = random.Random(seed)
    result = {}

    async def producer(ctx):
        ctx.set(dut.lo, lo)
        ctx.set(dut.hi, hi)
        await produce(ctx, dut.i, vecs, gap=lambda: stall and rng.random() < 0.2)

    async def consumer(ctx):
        result["got"], result["cycles"] = await consume(
            ctx, dut.o, len(vecs), ready=lambda: not (stall and rng.random() < 0.3))

    simulate(dut, producer, consumer)
    return result["got"], result["cycles"]


@pytest.mark.parametrize("lo,hi", [(0, ACT_MAX), (LOGIT_MIN, LOGIT_MAX), (3, 20)])
def test_requant_unit_exact(lo, hi):
    vecs = _vectors(random.Random(lo * 7 + hi), 700)
    dut = RequantUnit.from_config(CFG)
    got, _ = _run_unit(dut, vecs, lo, hi, seed=hi, stall=(lo == 0))
    assert got == _reference(vecs, lo, hi)


def test_requant_unit_throughput_and_latency():
    vecs = _vectors(random.Random(5), 0)[:200]
    dut = RequantUnit.from_config(CFG)
    got, cycles = _run_unit(dut, vecs, 0, ACT_MAX, seed=0, stall=False)
    assert got == _reference(vecs, 0, ACT_MAX)
    # II = 1: n results in n + latency cycles (+1 for the consumer's first sample)
    assert cycles <= len(vecs) + REQUANT_LATENCY + 1


def test_requant_without_residual():
    rng = random.Random(3)
    vecs = [dict(v, res=0, res_mult=0) for v in _vectors(rng, 300)]
    vecs = [v for v in vecs if abs(v["acc"] * v["mult"] + v["offset"]) < Y_LIM]
    dut = RequantUnit(CFG.acc_bits, residual=False)
    payloads = [{k: v[k] for k in ("acc", "mult", "offset", "shift")} for v in vecs]
    got, _ = _run_unit(dut, payloads, 0, ACT_MAX, seed=1, stall=True)
    assert got == _reference(vecs, 0, ACT_MAX)


def test_requant_bank_lanes():
    lanes = 3
    bank = RequantBank(CFG, lanes)
    rng = random.Random(11)
    vecs = _vectors(rng, 150)
    groups = [vecs[i : i + lanes] for i in range(0, len(vecs) - lanes + 1, lanes)]
    got: list[list[int]] = []

    async def producer(ctx):
        ctx.set(bank.lo, 0)
        ctx.set(bank.hi, ACT_MAX)
        await produce(ctx, bank.i, groups)

    async def consumer(ctx):
        r = random.Random(2)
        payloads, _ = await consume(ctx, bank.o, len(groups), ready=lambda: r.random() < 0.7)
        got.extend(list(p) for p in payloads)

    simulate(bank, producer, consumer)
    flat = [x for g in got for x in g]
    assert flat == _reference([v for g in groups for v in g], 0, ACT_MAX)


def test_requant_res_mult_width():
    """res_mult carries the full RES_MULT_BITS (31) of the numeric contract, not MULT_BITS."""
    lay = requant_in_layout(CFG.acc_bits)
    assert lay["res_mult"].shape == unsigned(RES_MULT_BITS)
    assert lay["mult"].shape == unsigned(MULT_BITS)
    # the extreme residual term, pushed to both edges of the |y| < 2**47 domain, and a
    # residual multiplier with bit 15 set (truncated to 0 by a 15-bit field)
    vecs = [dict(acc=acc, mult=MMAX, offset=_offset_for(acc, MMAX, ACT_MAX, RMMAX, sign),
                 shift=shift, res=ACT_MAX, res_mult=RMMAX)
            for acc in (-ACC_BOUND, 0, ACC_BOUND) for sign in (1, -1) for shift in (0, 20, 46)]
    vecs += [dict(acc=0, mult=0, offset=0, shift=0, res=r, res_mult=1 << 15) for r in (1, 31)]
    vecs += [dict(acc=0, mult=0, offset=0, shift=k, res=ACT_MAX, res_mult=RMMAX)
             for k in (0, 5, 21, 36)]
    dut = RequantUnit.from_config(CFG)
    got, _ = _run_unit(dut, vecs, LOGIT_MIN, LOGIT_MAX, seed=0, stall=False)
    assert got == _reference(vecs, LOGIT_MIN, LOGIT_MAX)
    assert got[-6:-4] == [LOGIT_MAX, LOGIT_MAX]  # 2**15 and 31 * 2**15, clipped


def test_requant_bad_params():
    with pytest.raises(RequantError, match="acc_bits"):
        RequantUnit(40)
    with pytest.raises(RequantError, match="lanes"):
        RequantBank(CFG, 0)


@pytest.mark.verilator
def test_requant_verilog_lints():
    assert_verilator_lints({"requant_unit": RequantUnit.from_config(CFG),
                            "requant_bank": RequantBank(CFG, 2)})
