"""Reference model of ap_int/ap_uint semantics on Python ints (for the hls_compat tests).

Every result is ``(width, signed, value)``; widths follow the RType rules documented in
``hls_compat/ap_int.h`` (0 = a bool / C integer result). Values are exact Python ints, wrapped
explicitly with :func:`wrap`.
"""

from __future__ import annotations

import random
from typing import NamedTuple

MAX_W = 128


class T(NamedTuple):
    """An ap type: width and signedness."""

    w: int
    s: bool


def wrap(v: int, w: int, s: bool) -> int:
    """``v`` reduced to ``w`` bits: two's complement if ``s``, else unsigned."""
    v &= (1 << w) - 1
    if s and v >> (w - 1):
        v -= 1 << w
    return v


def bits(v: int, w: int) -> int:
    """The ``w``-bit pattern of ``v`` as a non-negative int."""
    return v & ((1 << w) - 1)


def lo_hi(t: T) -> tuple[int, int]:
    """Smallest and largest value of ``t``."""
    return (-(1 << (t.w - 1)), (1 << (t.w - 1)) - 1) if t.s else (0, (1 << t.w) - 1)


def rtype(kind: str, a: T, b: T) -> T:
    """Result type of ``a <kind> b`` (plus, minus, mult, div, mod, logic)."""
    e1 = a.w + (b.s and not a.s)
    e2 = b.w + (a.s and not b.s)
    if kind == "plus":
        return T(max(e1, e2) + 1, a.s or b.s)
    if kind == "minus":
        return T(max(e1, e2) + 1, True)
    if kind == "mult":
        return T(a.w + b.w, a.s or b.s)
    if kind == "div":
        return T(a.w + int(b.s), a.s or b.s)
    if kind == "mod":
        return T(min(a.w, b.w + (a.s and not b.s)), a.s)
    if kind == "logic":
        return T(max(e1, e2), a.s or b.s)
    raise ValueError(kind)


def c_div(a: int, b: int) -> int:
    """C integer division (truncates towards zero)."""
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def c_mod(a: int, b: int) -> int:
    """C remainder (sign of the dividend)."""
    return a - b * c_div(a, b)


def shift(a: int, t: T, n: int, left: bool) -> int:
    """``a << n`` / ``a >> n`` in type ``t``; a negative ``n`` shifts the other way."""
    if n < 0:
        left, n = not left, -n
    if left:
        return wrap(a << min(n, t.w), t.w, t.s)
    return a >> min(n, t.w + 1)


def tok(t: T | tuple[int, bool], v: int | str) -> str:
    """The ``W:S:value`` text the C++ driver prints for a result."""
    return f"{t[0]}:{int(t[1])}:{v}"


def c(v: int | bool | str) -> str:
    """A bool / C-int result token."""
    return f"0:0:{int(v) if isinstance(v, bool) else v}"


def expect_binary(a: int, ta: T, b: int, tb: T) -> dict[str, str]:
    """Every token ``ap_int_ops.cpp``'s ``binary<A, B>`` prints for ``a``, ``b``."""
    e: dict[str, str] = {"a": tok(ta, a), "b": tok(tb, b)}
    if rtype("plus", ta, tb).w <= MAX_W:
        e["add"] = tok(rtype("plus", ta, tb), a + b)
        e["sub"] = tok(rtype("minus", ta, tb), a - b)
        e["iadd"] = tok(ta, wrap(a + b, *ta))
        e["isub"] = tok(ta, wrap(a - b, *ta))
        e["nar_add_u3"] = tok((3, False), wrap(a + b, 3, False))
        e["nar_sub_s5"] = tok((5, True), wrap(a - b, 5, True))
    if ta.w + tb.w <= MAX_W:
        p = a * b
        e["mul"] = tok(rtype("mult", ta, tb), p)
        e["imul"] = tok(ta, wrap(p, *ta))
        e["nar_mul_s5"] = tok((5, True), wrap(p, 5, True))
        e["nar_mul_u3"] = tok((3, False), wrap(p, 3, False))
        cat = (bits(a, ta.w) << tb.w) | bits(b, tb.w)
        e["cat"] = e["concat"] = tok((ta.w + tb.w, False), cat)
        pb = bits(p, ta.w + tb.w)
        e["lcat_hi"] = tok(ta, wrap(pb >> tb.w, *ta))
        e["lcat_lo"] = tok(tb, wrap(pb, *tb))
    if b != 0:
        if rtype("div", ta, tb).w <= MAX_W:
            e["div"] = tok(rtype("div", ta, tb), c_div(a, b))
            e["idiv"] = tok(ta, wrap(c_div(a, b), *ta))
        e["mod"] = tok(rtype("mod", ta, tb), c_mod(a, b))
        e["imod"] = tok(ta, wrap(c_mod(a, b), *ta))
    if rtype("logic", ta, tb).w <= MAX_W:
        lt = rtype("logic", ta, tb)
        e["and"], e["or"], e["xor"] = tok(lt, a & b), tok(lt, a | b), tok(lt, a ^ b)
        e["iand"] = tok(ta, wrap(a & b, *ta))
        e["ior"] = tok(ta, wrap(a | b, *ta))
        e["ixor"] = tok(ta, wrap(a ^ b, *ta))
    e["shl"] = tok(ta, shift(a, ta, b, True))
    e["shr"] = tok(ta, shift(a, ta, b, False))
    e["eq"], e["ne"] = c(a == b), c(a != b)
    e["lt"], e["le"], e["gt"], e["ge"] = c(a < b), c(a <= b), c(a > b), c(a >= b)
    if ta.w < 64:
        e["add_int"] = tok(rtype("plus", ta, T(32, True)), a - 3)
        e["mul_uint"] = tok(rtype("mult", ta, T(32, False)), a * 3)
        e["sub_ll"] = tok(rtype("minus", T(64, True), ta), 5 - a)
        e["lt_int"], e["eq_int"] = c(a < -1), c(a == 1)
    return e


def expect_unary(a: int, t: T) -> dict[str, str]:
    """Every token ``unary<A>`` prints."""
    u = bits(a, t.w)
    e: dict[str, str] = {"a": tok(t, a)}
    if t.w < MAX_W:
        e["neg"] = tok((t.w + 1, True), -a)
    e["pos"] = tok(t, a)
    e["inv"] = tok(t, wrap(~a, *t))
    e["lnot"] = c(a == 0)
    e["inc"] = tok(t, wrap(a + 1, *t))
    e["dec"] = tok(t, wrap(a - 1, *t))
    e["postinc"] = tok(t, a)
    e["postinc_after"] = tok(t, wrap(a + 1, *t))
    e["to_int"] = c(wrap(a, 32, True))
    e["to_uint"] = c(wrap(a, 32, False))
    e["to_int64"] = c(wrap(a, 64, True))
    e["to_uint64"] = c(wrap(a, 64, False))
    e["to_bool"] = c(a != 0)
    e["length"] = c(t.w)
    e["and_reduce"] = c(u == (1 << t.w) - 1)
    e["or_reduce"] = c(u != 0)
    e["xor_reduce"] = c(bin(u).count("1") & 1)
    e["sign"] = c(a < 0)
    e["bin"] = c("0b" + format(u, "b"))
    e["hex"] = c("0x" + format(u, "x"))
    e["dec"] = c(str(u))
    e["sdec"] = c(str(a) if t.s else str(u))
    e["ohex"] = c(format(u, "x"))
    for name, w, s in (("to_s3", 3, True), ("to_u3", 3, False), ("to_s20", 20, True),
                       ("to_u20", 20, False), ("to_s128", 128, True), ("to_u128", 128, False),
                       ("asg_s7", 7, True)):
        e[name] = tok((w, s), wrap(a, w, s))
    return e


def expect_range(a: int, t: T, hi: int, lo: int, v: int) -> dict[str, str]:
    """Every token ``ranges<A>`` prints."""
    u = bits(a, t.w)
    n = hi - lo + 1
    field_mask = ((1 << n) - 1) << lo
    r = (u >> lo) & ((1 << n) - 1)

    def put(value: int) -> int:
        return wrap((u & ~field_mask) | ((value << lo) & field_mask), *t)

    def set_bit(x: int, i: int, b: bool) -> int:
        xb = bits(x, t.w)
        return wrap((xb | (1 << i)) if b else (xb & ~(1 << i)), *t)

    e = {
        "range": tok((t.w, False), r),
        "call": tok((t.w, False), r),
        "range_ref": tok((t.w, False), r),
        "range_wr": tok(t, put(v)),
        "call_wr": tok(t, put(v)),
        "range_inc": tok(t, put(r + 1)),
        "bit": c((u >> lo) & 1),
        "bit_wr": tok(t, set_bit(a, hi, bool(v & 1))),
        "bit_inv": tok(t, set_bit(a, lo, not (u >> lo) & 1)),
        "set_clear": tok(t, set_bit(set_bit(a, hi, True), lo, False)),
    }
    return e


def expect_shift(a: int, t: T, n: int) -> dict[str, str]:
    """Every token ``shifts<A>`` prints."""
    left, right = tok(t, shift(a, t, n, True)), tok(t, shift(a, t, n, False))
    return {"shl_i": left, "shr_i": right, "shl_ap": left, "shr_ap": right,
            "ishl": left, "ishr": right}


def extremes(t: T) -> list[int]:
    """Boundary values of ``t``: min, max, 0, +-1 and their neighbours, sign boundaries."""
    lo, hi = lo_hi(t)
    cand = {lo, lo + 1, hi, hi - 1, 0, 1, -1, 2, -2, hi // 2, lo // 2, (hi // 2) + 1}
    return sorted(v for v in cand if lo <= v <= hi)


def random_value(rng: random.Random, t: T) -> int:
    """A value of ``t`` with a random number of significant bits (so small values appear)."""
    k = rng.randint(1, t.w)
    return wrap(rng.getrandbits(k) - (rng.getrandbits(1) << (k - 1) if t.s else 0), *t)


def parse_line(line: str) -> tuple[str, int, dict[str, str]]:
    """Split a driver output line into (kind, cfg, {name: 'W:S:value'})."""
    head, *toks = line.split(" ")
    kind, cfg = head, int(toks.pop(0))
    out: dict[str, str] = {}
    for t in toks:
        name, rest = t.split(":", 1)
        out[name] = rest
    return kind, cfg, out
