"""hls_compat/ap_int.h against a Python-int reference model, bit-exact (==) for every token.

``ap_int_ops.cpp`` is compiled once per module with g++ (-std=c++17 -O2 -Wall
-Wno-unknown-pragmas); each test feeds it a batch of operand lines on stdin and compares every
printed result (value *and* result width/signedness) with ``apref``. Small widths are
exhaustive; 25..128-bit types get extremes x extremes plus seeded random values.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import apref
import pytest
from apref import T
from helpers import run_lines

# Must match CONFIGS in ap_int_ops.cpp: index -> (A, B).
CONFIGS: dict[int, tuple[T, T]] = {
    0: (T(4, True), T(5, False)),
    1: (T(8, True), T(5, False)),
    2: (T(5, False), T(4, True)),
    3: (T(4, True), T(4, True)),
    4: (T(3, False), T(4, False)),
    5: (T(1, False), T(1, True)),
    6: (T(1, True), T(2, False)),
    7: (T(26, True), T(15, False)),
    8: (T(41, True), T(48, True)),
    9: (T(32, False), T(32, True)),
    10: (T(64, True), T(64, True)),
    11: (T(64, False), T(63, False)),
    12: (T(100, True), T(27, False)),
    13: (T(127, True), T(1, False)),
    14: (T(128, False), T(128, True)),
    15: (T(128, True), T(128, True)),
    16: (T(120, False), T(8, False)),
    17: (T(47, True), T(33, False)),
    18: (T(25, False), T(96, True)),
}
EXHAUSTIVE = [c for c, (a, b) in CONFIGS.items() if a.w <= 8 and b.w <= 8]
WIDE = [c for c in CONFIGS if c not in EXHAUSTIVE]


def domain(t: T) -> range:
    lo, hi = apref.lo_hi(t)
    return range(lo, hi + 1)


@pytest.fixture(scope="module")
def ops_exe(hls_programs: dict[str, Path]) -> Path:
    return hls_programs["ap_int_ops"]


def check(out: list[str], expected: list[dict[str, str]]) -> int:
    """Compare every line's tokens; return the number of compared values."""
    bad = []
    n = 0
    for line, exp in zip(out, expected, strict=True):
        _, _, got = apref.parse_line(line)
        n += len(exp)
        if got != exp:
            diff = {k: (got.get(k), exp.get(k)) for k in exp.keys() | got.keys()
                    if got.get(k) != exp.get(k)}
            bad.append(f"{line.split(' ', 4)[:4]} got/expected {diff}")
    assert not bad, f"{len(bad)} mismatching lines, first: " + "\n".join(bad[:5])
    return n


def wide_pairs(rng: random.Random, ta: T, tb: T, n_random: int) -> list[tuple[int, int]]:
    pairs = [(a, b) for a in apref.extremes(ta) for b in apref.extremes(tb)]
    pairs += [(apref.random_value(rng, ta), apref.random_value(rng, tb)) for _ in range(n_random)]
    return pairs


def test_binary_exhaustive_small(ops_exe: Path) -> None:
    """All operand pairs of ap_int<4> x ap_uint<5>, ap_int<8> x ap_uint<5>, ... (W <= 8)."""
    lines, exp = [], []
    for cfg in EXHAUSTIVE:
        ta, tb = CONFIGS[cfg]
        for a in domain(ta):
            for b in domain(tb):
                lines.append(f"B {cfg} {a} {b}")
                exp.append(apref.expect_binary(a, ta, b, tb))
    assert len(lines) == 16 * 32 + 256 * 32 + 32 * 16 + 16 * 16 + 8 * 16 + 2 * 2 + 2 * 4
    n = check(run_lines(ops_exe, lines), exp)
    assert n > 300_000


def test_binary_wide_random_and_extremes(ops_exe: Path) -> None:
    """25..128-bit operands: extremes x extremes plus 400 seeded random pairs per type pair."""
    rng = random.Random(1234)
    lines, exp = [], []
    for cfg in WIDE:
        ta, tb = CONFIGS[cfg]
        for a, b in wide_pairs(rng, ta, tb, 400):
            lines.append(f"B {cfg} {a} {b}")
            exp.append(apref.expect_binary(a, ta, b, tb))
    check(run_lines(ops_exe, lines), exp)


def test_unary_and_conversions(ops_exe: Path) -> None:
    """Negation, ~, !, ++/--, to_int.., reductions, to_string, <<hex, wrap on assignment."""
    rng = random.Random(99)
    lines, exp = [], []
    for cfg, (ta, _) in CONFIGS.items():
        values = list(domain(ta)) if ta.w <= 8 else apref.extremes(ta) + [
            apref.random_value(rng, ta) for _ in range(300)
        ]
        for a in values:
            lines.append(f"U {cfg} {a}")
            exp.append(apref.expect_unary(a, ta))
    check(run_lines(ops_exe, lines), exp)


def test_range_and_bit_select(ops_exe: Path) -> None:
    """range(hi, lo) / (hi, lo) / [i] read and write; exhaustive over (a, hi, lo) for W <= 8."""
    rng = random.Random(7)
    lines, exp = [], []
    for cfg, (ta, _) in CONFIGS.items():
        if ta.w <= 8:
            cases = [(a, hi, lo, v) for a in domain(ta) for hi in range(ta.w)
                     for lo in range(hi + 1) for v in (-1, 0x2A5)]
        else:
            cases = []
            for _ in range(400):
                lo = rng.randrange(ta.w)
                hi = rng.randrange(lo, ta.w)
                v = rng.randrange(-(1 << 63), 1 << 63)
                cases.append((apref.random_value(rng, ta), hi, lo, v))
            cases += [(a, ta.w - 1, 0, -1) for a in apref.extremes(ta)]
        for a, hi, lo, v in cases:
            lines.append(f"R {cfg} {a} {hi} {lo} {v}")
            exp.append(apref.expect_range(a, ta, hi, lo, v))
    check(run_lines(ops_exe, lines), exp)


def test_shifts_both_directions(ops_exe: Path) -> None:
    """<< and >> by C ints and ap_int<8>, negative counts (reverse), counts >= W; >> floors."""
    rng = random.Random(5)
    lines, exp = [], []
    for cfg, (ta, _) in CONFIGS.items():
        lim = min(ta.w + 3, 127)
        if ta.w <= 8:
            cases = [(a, n) for a in domain(ta) for n in range(-lim, lim + 1)]
        else:
            cases = [(a, n) for a in apref.extremes(ta) for n in range(-lim, lim + 1, 3)]
            cases += [(apref.random_value(rng, ta), rng.randint(-lim, lim)) for _ in range(300)]
        for a, n in cases:
            lines.append(f"S {cfg} {a} {n}")
            exp.append(apref.expect_shift(a, ta, n))
    check(run_lines(ops_exe, lines), exp)


def test_reference_model_sanity() -> None:
    """The reference itself: documented UG1399 examples and floor shifts."""
    assert apref.rtype("plus", T(8, True), T(12, True)) == T(13, True)
    assert apref.rtype("mult", T(8, True), T(12, True)) == T(20, True)
    assert apref.rtype("plus", T(8, True), T(7, False)) == T(9, True)
    assert apref.rtype("minus", T(8, False), T(8, False)) == T(9, True)
    assert apref.wrap(4098, 12, False) == 2
    assert apref.shift(-5, T(8, True), 1, False) == -3
    assert apref.c_div(-7, 2) == -3 and apref.c_mod(-7, 2) == -1


@pytest.fixture(scope="module")
def api_exe(hls_programs: dict[str, Path]) -> Path:
    return hls_programs["ap_int_api"]


def test_nested_lvalue_concatenation_exhaustive(api_exe: Path) -> None:
    """(a4, b5, c3) = v writes the three parts for every 12-bit v; (a, b, c) reads it back."""
    lines = subprocess.run([str(api_exe), "cat3"], capture_output=True, text=True,
                           timeout=60, check=True).stdout.splitlines()
    want = [f"{apref.wrap(v >> 8, 4, True)} {(v >> 3) & 31} {apref.wrap(v, 3, True)} {v}"
            for v in range(4096)]
    assert lines == want


def test_api_corners(api_exe: Path) -> None:
    """Concatenation with bit refs / C ints, string and double constructors, errors, printing."""
    proc = subprocess.run([str(api_exe)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    big = 0x123456789ABCDEF012345678
    rng_msg = "need 0 <= lo <= hi < 8 (hls_compat does not implement hi < lo bit reversal)"
    want = {
        "bit_cat": str((1 << 5) | 19),
        "cat_bit": str(19 << 1),
        "bit_bit": "2",
        "cat_int": f"{(0b1010 << 32) | 1} 36",
        "cat_range": "9",
        "hex96": f"{big} 0x{big:x}",
        "neg70": f"{-(1 << 69)} 0",
        "radix": f"{0o777} 5 -2047 1000",
        "no_radix": 'ap_[u]int("12"): the radix is ambiguous; write a 0x/0b/0o/0d prefix or '
        'pass the radix, e.g. ap_uint<96>("ff", 16)',
        "bad_digit": "ap_[u]int(\"0b102\"): invalid digit '2' for radix 2",
        "div0": "ap_[u]int: division by zero",
        "mod0": "ap_[u]int: remainder by zero",
        "range_oob": f"ap_[u]int<8>.range(8, 0): {rng_msg}",
        "range_rev": f"ap_[u]int<8>.range(1, 3): {rng_msg}",
        "bit_oob": "ap_[u]int<8>: bit index -1 is outside 0..7",
        "nan": "ap_[u]int: cannot convert NaN to an integer",
        "double": " ".join(
            map(str, [-2, 300 % 256, apref.wrap(-129, 8, True), int(1e30),
                      apref.wrap(-int(1e30), 100, True), 2])
        ),
        "to_double": f"{-(2**53)} 1.7014118346046923e+38",
        "to_string": "-0b110 0b11111010 -0x6 0o372 -6 0x0",
        "stream": "fa 777 -6",
        "reverse": str(int(f"{0x1d:08b}"[::-1], 2)),
        "lrotate": "3 192",
        "clz": "9 10 0",
        "acc_bit": "5",
        "implicit": f"60 1 1 {-(1 << 46)} -7.5",
        "wide_trunc": f"0 1 {1 << 64}",
        "signed_range": f"{apref.wrap(0xF01, 12, True)} 1",
        "wrap": "0 8 5 10",
        "cmp": "111011",
    }
    assert got == want
