"""The ap_int idioms of the HLS CNN kernel, bit-exact against the numeric contract.

``kernel_patterns.cpp`` (compiled once) packs 4-bit weights into ap_uint<16> and 5-bit
activations into ap_uint<40> with range(), accumulates unpacked signed 4x5 / 8x5 products in
ap_int<26>, and requantizes ``clip((acc*mult + offset [+ res*res_mult]) >> shift, lo, hi)``
with acc ap_int<26>, mult ap_uint<15>, offset ap_int<48>, evaluated in ap_int<48>, ap_int<64>
and the exact expression type. Requantization is compared with
:func:`filmqnn_hw.spec.numerics.requantize` on numpy int64, over thousands of vectors inside the
contract's domain (|y| < 2**47) including its extremes.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from helpers import run_lines

from filmqnn_hw.spec.numerics import LOGIT_MAX, LOGIT_MIN, MULT_BITS, SHIFT_MAX, Y_BITS, requantize

ACC_BITS = 26
ACC_MIN, ACC_MAX = -(1 << (ACC_BITS - 1)), (1 << (ACC_BITS - 1)) - 1
MULT_MAX = (1 << MULT_BITS) - 1
Y_LIM = (1 << (Y_BITS - 1)) - 1  # |y| <= Y_LIM is the contract's domain


@pytest.fixture(scope="module")
def exe(hls_programs: dict[str, Path]) -> Path:
    return hls_programs["kernel_patterns"]


def test_pack_four_4bit_weights(exe: Path) -> None:
    """Every 4-bit code in every nibble position (65536 words would be overkill: 16**2 x 4)."""
    rng = random.Random(3)
    cases = [[a, b, a ^ 5, b] for a in range(-8, 8) for b in range(-8, 8)]
    cases += [[rng.randint(-8, 7) for _ in range(4)] for _ in range(500)]
    out = run_lines(exe, [f"P4 {' '.join(map(str, w))}" for w in cases])
    for w, line in zip(cases, out, strict=True):
        packed = sum((v & 0xF) << (4 * k) for k, v in enumerate(w))
        assert line == " ".join(map(str, [packed, *w]))


def test_pack_eight_5bit_activations(exe: Path) -> None:
    rng = random.Random(4)
    cases = [[v] * 8 for v in range(32)] + [list(range(k, k + 8)) for k in range(25)]
    cases += [[rng.randint(0, 31) for _ in range(8)] for _ in range(500)]
    out = run_lines(exe, [f"P5 {' '.join(map(str, a))}" for a in cases])
    for a, line in zip(cases, out, strict=True):
        packed = sum(v << (5 * k) for k, v in enumerate(a))
        assert line == " ".join(map(str, [packed, *a]))


def test_packed_mac_into_ap_int26(exe: Path) -> None:
    """Signed 4x5 and 8x5 products from packed words, accumulated in ap_int<26>."""
    rng = random.Random(5)
    cases: list[tuple[int, list[int], list[int]]] = []
    for bits, wmax in ((4, 7), (8, 127)):
        for n in (1, 3, 4, 7, 8, 9, 27, 288, 4608):  # up to 512 channels x 3x3
            cases.append((bits, [wmax] * n, [31] * n))  # largest positive sum
            cases.append((bits, [-wmax] * n, [31] * n))  # most negative sum
            cases.append((bits, [rng.randint(-wmax, wmax) for _ in range(n)],
                          [rng.randint(0, 31) for _ in range(n)]))
    lines = [f"M {b} {len(w)} {' '.join(map(str, w))} {' '.join(map(str, a))}"
             for b, w, a in cases]
    out = run_lines(exe, lines)
    for (_, w, a), line in zip(cases, out, strict=True):
        exact = sum(x * y for x, y in zip(w, a, strict=True))
        assert ACC_MIN <= exact <= ACC_MAX
        assert int(line) == exact


def requant_vectors(rng: random.Random, n_random: int) -> np.ndarray:
    """Rows (acc, mult, offset, shift, lo, hi, res, res_mult) with |y|, |offset| <= 2**47 - 1."""
    clamps = [(0, 31), (5, 31), (0, 17), (LOGIT_MIN, LOGIT_MAX)]
    rows = []

    def add(acc: int, mult: int, shift: int, res: int, rmult: int, off: int | None) -> None:
        base = acc * mult + res * rmult
        lo_off, hi_off = max(-Y_LIM - base, -Y_LIM), min(Y_LIM - base, Y_LIM)
        if off is None:
            off = rng.randint(lo_off, hi_off)
        off = min(max(off, lo_off), hi_off)  # keep y inside the contract's domain
        lo, hi = clamps[len(rows) % len(clamps)]
        rows.append((acc, mult, off, shift, lo, hi, res, rmult))

    accs = [ACC_MIN, ACC_MIN + 1, -1, 0, 1, ACC_MAX - 1, ACC_MAX]
    mults = [0, 1, 1 << (MULT_BITS - 1), MULT_MAX]
    shifts = [0, 1, 2, 15, 31, SHIFT_MAX - 1, SHIFT_MAX]
    for acc in accs:
        for mult in mults:
            for shift in shifts:
                rounding = 1 << (shift - 1) if shift else 0
                for off in (rounding, -Y_LIM, Y_LIM, 0):
                    add(acc, mult, shift, 0, 0, off)
                add(acc, mult, shift, 31, MULT_MAX, rounding)
    for _ in range(n_random):
        shift = rng.randint(0, SHIFT_MAX)
        res, rmult = 0, 0
        if rng.random() < 0.5:  # a fused residual add
            res, rmult = rng.randint(0, 31), rng.randint(0, MULT_MAX)
        acc = rng.randint(ACC_MIN, ACC_MAX) >> rng.randint(0, ACC_BITS - 1)
        mult = rng.randint(0, MULT_MAX)
        if rng.random() < 0.5:  # realistic: offset = bias term + rounding constant
            off = rng.randint(-(1 << 30), 1 << 30) + ((1 << (shift - 1)) if shift else 0)
        else:
            off = None  # anywhere in the domain
        add(acc, mult, shift, res, rmult, off)
    return np.array(rows, dtype=np.int64)


def test_requantize_matches_numeric_contract(exe: Path) -> None:
    rows = requant_vectors(random.Random(6), 5000)
    assert len(rows) > 5000
    out = run_lines(exe, ["Q " + " ".join(map(str, r)) for r in rows.tolist()])
    got = np.array([[int(t) for t in line.split()] for line in out], dtype=np.int64)
    acc, mult, off, shift, lo, hi, res, rmult = rows.T
    y = acc * mult + off + res * rmult
    # Every vector is inside the contract's domain (and offset fits its ap_int<48>).
    assert np.all(np.abs(y) <= Y_LIM) and np.all(np.abs(off) <= Y_LIM)
    want = requantize(acc, mult, off, shift, lo, hi, res, rmult)
    assert want.dtype == np.int64
    assert np.array_equal(got[:, 0], want)  # ap_int<48>
    assert np.array_equal(got[:, 1], want)  # ap_int<64>
    assert np.array_equal(got[:, 2], want)  # exact expression type
    assert np.all(got[:, 3] == 50)  # ap_int<41> + ap_int<48> + ap_uint<20> -> ap_int<50>
    # The vectors really exercise both clamps and the pass-through region.
    assert np.any(want == lo) and np.any(want == hi) and np.any((want > lo) & (want < hi))
