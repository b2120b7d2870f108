"""Bit-level description and exact model of one packed DSP multiply.

A *packed layout* places several small operands into the two multiplier inputs of one
DSP slice::

    X = sum_i x_i * 2**ox_i        (the pre-adder side: A + D, signed)
    Y = sum_j y_j * 2**oy_j        (the B port, signed 18-bit)
    P = X * Y = sum_k lane_k * 2**s_k

Every product ``x_i * y_j`` lands at bit offset ``ox_i + oy_j``; products that land on the
same offset add up into one *lane* (that is how kernel-direction packing gets six MACs out of
four lanes). Lane ``k`` occupies bits ``[s_k, s_{k+1})`` of ``P``. Because the lanes are
signed, a negative value in the lanes below ``s_k`` borrows one from lane ``k``; the
extraction adds it back::

    lane_k = sext_w( (P[s_k : s_k + w] + P[s_k - 1]) mod 2**w )

which is exact when (a) every lane value fits ``w`` signed bits and (b) the sum of the lanes
below, ``R_k = sum_{j<k} lane_j 2**s_j``, lies in ``[-2**(s_k-1), 2**(s_k-1))`` so its sign is
bit ``s_k - 1`` of ``P``. (b) follows from (a): with lane ``j`` in
``[-2**(w_j-1), 2**(w_j-1))`` and ``s_{j+1} = s_j + w_j``, ``R_k`` telescopes into that range.
:meth:`PackedLayout.validate` checks (a) with interval bounds over the declared operand
domains, plus the port widths, and raises :class:`PackingError` naming what does not fit.
:func:`model_lanes` is the exact bit-level model (numpy int64) that the RTL implements;
:func:`exhaustive_check` runs it over the whole declared domain.

This module imports numpy only (no amaranth).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from filmqnn_hw.spec.config import ACT_BITS, ACT_MAX

__all__ = [
    "DSP_PORTS",
    "Operand",
    "Lane",
    "PackedLayout",
    "PackingError",
    "model_lanes",
    "exhaustive_check",
    "w4a5_filter_layout",
    "w4a5_kernel_layout",
    "w8a5_layout",
]


class PackingError(ValueError):
    """A packed layout does not fit the DSP ports or its guard fields. Message says what to fix."""


#: Port widths per family: pre-adder output (A+D, signed), B (signed), multiplier output.
DSP_PORTS: dict[str, dict[str, int | str]] = {
    "xc7": {"prim": "DSP48E1", "preadd": 25, "a": 30, "d": 25, "b": 18, "mult": 43, "p": 48},
    "xcup": {"prim": "DSP48E2", "preadd": 27, "a": 30, "d": 27, "b": 18, "mult": 45, "p": 48},
}


def _family_ports(family: str) -> dict[str, int | str]:
    try:
        return DSP_PORTS[family]
    except KeyError:
        raise PackingError(
            f"unknown FPGA family {family!r}: use 'xc7' (DSP48E1) or 'xcup' (DSP48E2)"
        ) from None


@dataclass(frozen=True)
class Operand:
    """One small operand of a packed multiply: ``bits`` wide, values in ``[lo, hi]``."""

    name: str
    bits: int
    signed: bool
    lo: int
    hi: int

    def __post_init__(self) -> None:
        full_lo = -(1 << (self.bits - 1)) if self.signed else 0
        full_hi = (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1
        if not full_lo <= self.lo <= self.hi <= full_hi:
            raise PackingError(
                f"operand {self.name!r}: domain [{self.lo}, {self.hi}] is not inside the "
                f"{'signed' if self.signed else 'unsigned'} {self.bits}-bit range "
                f"[{full_lo}, {full_hi}]"
            )

    def values(self) -> np.ndarray:
        """Every value of the declared domain (int64)."""
        return np.arange(self.lo, self.hi + 1, dtype=np.int64)


@dataclass(frozen=True)
class Lane:
    """Output field of ``P``: bits ``[offset, offset + width)`` holding the sum of ``products``."""

    offset: int
    width: int
    products: tuple[tuple[str, str], ...]  # (x operand name, y operand name)


def _signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    b = 1
    while not (-(1 << (b - 1)) <= lo and hi <= (1 << (b - 1)) - 1):
        b += 1
    return b


@dataclass(frozen=True)
class PackedLayout:
    """Placement of small operands into ``X`` (A+D pre-adder) and ``Y`` (B) of one DSP.

    Parameters
    ----------
    name : str
        Human-readable name used in error messages and reports.
    family : str
        ``"xc7"`` (DSP48E1, 25-bit pre-adder) or ``"xcup"`` (DSP48E2, 27-bit pre-adder).
    x_terms, y_terms : tuple of (Operand, offset)
        Operands on the pre-adder side and on the B side with their bit offsets.
    """

    name: str
    family: str
    x_terms: tuple[tuple[Operand, int], ...]
    y_terms: tuple[tuple[Operand, int], ...]

    def __post_init__(self) -> None:
        self.validate()

    # -- derived geometry -------------------------------------------------------------------
    @property
    def operands(self) -> tuple[Operand, ...]:
        return tuple(op for op, _ in self.x_terms + self.y_terms)

    @staticmethod
    def _range(terms: tuple[tuple[Operand, int], ...]) -> tuple[int, int]:
        lo = sum(min(op.lo << o, op.hi << o) for op, o in terms)
        hi = sum(max(op.lo << o, op.hi << o) for op, o in terms)
        return lo, hi

    @property
    def x_range(self) -> tuple[int, int]:
        return self._range(self.x_terms)

    @property
    def y_range(self) -> tuple[int, int]:
        return self._range(self.y_terms)

    @property
    def x_bits(self) -> int:
        """Signed width of the packed pre-adder operand ``X``."""
        return _signed_bits(*self.x_range)

    @property
    def y_bits(self) -> int:
        """Signed width of the packed B operand ``Y``."""
        return _signed_bits(*self.y_range)

    def _lane_groups(self) -> dict[int, list[tuple[Operand, Operand]]]:
        groups: dict[int, list[tuple[Operand, Operand]]] = {}
        for (xo, ox), (yo, oy) in itertools.product(self.x_terms, self.y_terms):
            groups.setdefault(ox + oy, []).append((xo, yo))
        return dict(sorted(groups.items()))

    @staticmethod
    def _prod_range(xo: Operand, yo: Operand) -> tuple[int, int]:
        c = [a * b for a in (xo.lo, xo.hi) for b in (yo.lo, yo.hi)]
        return min(c), max(c)

    def lane_ranges(self) -> list[tuple[int, int]]:
        """Interval bound ``[lo, hi]`` of every lane value over the operand domains."""
        out = []
        for prods in self._lane_groups().values():
            rs = [self._prod_range(xo, yo) for xo, yo in prods]
            out.append((sum(r[0] for r in rs), sum(r[1] for r in rs)))
        return out

    @property
    def lanes(self) -> tuple[Lane, ...]:
        groups = self._lane_groups()
        offs = list(groups)
        ranges = self.lane_ranges()
        lanes = []
        for k, off in enumerate(offs):
            width = offs[k + 1] - off if k + 1 < len(offs) else _signed_bits(*ranges[k])
            prods = tuple((xo.name, yo.name) for xo, yo in groups[off])
            lanes.append(Lane(off, width, prods))
        return tuple(lanes)

    @property
    def macs(self) -> int:
        """Exact multiply-accumulates delivered per DSP per cycle."""
        return sum(len(lane.products) for lane in self.lanes)

    @property
    def p_bits(self) -> int:
        """Bits of ``P`` the extraction reads (top lane's end)."""
        last = self.lanes[-1]
        return last.offset + last.width

    # -- checks ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`PackingError` if any port, guard or lane field is too narrow."""
        ports = _family_ports(self.family)
        prim = ports["prim"]
        names = [op.name for op in self.operands]
        if len(set(names)) != len(names):
            raise PackingError(f"{self.name}: operand names must be unique, got {names}")
        if not self.x_terms or not self.y_terms:
            raise PackingError(f"{self.name}: both multiplier sides need at least one operand")
        if any(o < 0 for _, o in self.x_terms + self.y_terms):
            raise PackingError(f"{self.name}: operand offsets must be >= 0")
        if self.x_bits > ports["preadd"]:
            raise PackingError(
                f"{self.name}: the packed pre-adder operand needs {self.x_bits} bits but the "
                f"{prim} pre-adder (A+D) is {ports['preadd']} bits: reduce the field spacing or "
                f"the number of operands packed on the A/D side"
            )
        if self.y_bits > ports["b"]:
            raise PackingError(
                f"{self.name}: the packed B operand needs {self.y_bits} bits but the {prim} B "
                f"port is {ports['b']} bits (signed): reduce the field spacing or the number of "
                f"operands packed on the B side"
            )
        lanes = self.lanes
        ranges = self.lane_ranges()
        for k, (lane, (lo, hi)) in enumerate(zip(lanes, ranges, strict=True)):
            need = _signed_bits(lo, hi)
            if need > lane.width:
                raise PackingError(
                    f"{self.name}: lane {k} at bit {lane.offset} holds values in [{lo}, {hi}] "
                    f"(needs {need} bits) but the field spacing leaves only {lane.width} bits: "
                    f"widen the spacing between packed operands (guard bits)"
                )
        if self.p_bits > ports["mult"]:
            raise PackingError(
                f"{self.name}: lanes reach bit {self.p_bits} of P but the {prim} multiplier "
                f"output is {ports['mult']} bits"
            )


# -- exact bit-level model --------------------------------------------------------------------
def _sext(v: np.ndarray, w: int) -> np.ndarray:
    v = v & ((1 << w) - 1)
    return np.where(v >= (1 << (w - 1)), v - (1 << w), v)


def model_p(layout: PackedLayout, vals: dict[str, np.ndarray]) -> np.ndarray:
    """The DSP product ``P = X * Y`` for operand arrays ``vals`` (int64, two's complement)."""
    x = sum(vals[op.name].astype(np.int64) << o for op, o in layout.x_terms)
    y = sum(vals[op.name].astype(np.int64) << o for op, o in layout.y_terms)
    return x * y


def model_lanes(layout: PackedLayout, vals: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Lane values extracted from ``P`` exactly as the RTL does (field + borrow, wrap to width)."""
    p = model_p(layout, vals)
    out = []
    for lane in layout.lanes:
        field = (p >> lane.offset) & ((1 << lane.width) - 1)
        borrow = (p >> (lane.offset - 1)) & 1 if lane.offset > 0 else 0
        out.append(_sext(field + borrow, lane.width))
    return out


def reference_lanes(layout: PackedLayout, vals: dict[str, np.ndarray]) -> list[np.ndarray]:
    """What every lane must equal: the exact sum of its products."""
    return [
        sum(vals[a].astype(np.int64) * vals[b].astype(np.int64) for a, b in lane.products)
        for lane in layout.lanes
    ]


def exhaustive_check(layout: PackedLayout) -> int:
    """Check every lane against the exact products over the whole declared operand domain.

    Returns the number of operand combinations checked; raises ``AssertionError`` naming the
    first failing lane and operand values otherwise.
    """
    ops = layout.operands
    grids = np.meshgrid(*[op.values() for op in ops], indexing="ij")
    vals = {op.name: g.ravel() for op, g in zip(ops, grids, strict=True)}
    got = model_lanes(layout, vals)
    ref = reference_lanes(layout, vals)
    for k, (g, r) in enumerate(zip(got, ref, strict=True)):
        bad = np.nonzero(g != r)[0]
        if bad.size:
            i = int(bad[0])
            at = {n: int(v[i]) for n, v in vals.items()}
            raise AssertionError(
                f"{layout.name}: lane {k} = {int(g[i])}, expected {int(r[i])} at {at}"
            )
    return int(vals[ops[0].name].size)


# -- the project's layouts -----------------------------------------------------------------
def _w(name: str, bits: int, full: bool) -> Operand:
    lo = -(1 << (bits - 1)) if full else -(1 << (bits - 1)) + 1
    return Operand(name, bits, True, lo, (1 << (bits - 1)) - 1)


def _a(name: str) -> Operand:
    return Operand(name, ACT_BITS, False, 0, ACT_MAX)


def w4a5_filter_layout(family: str, spacing: int = 10, full_range: bool = True) -> PackedLayout:
    """Paper Fig. 1(c): ``(w0 + w1 2**(2s)) * (x0 + x1 2**s)`` = 4 products in 4 lanes.

    ``w0, w1`` are signed 4-bit weights of two output channels (A and D ports), ``x0, x1``
    unsigned 5-bit activations (B port). Lanes: ``w0x0 @0, w0x1 @s, w1x0 @2s, w1x1 @3s``.
    ``full_range`` includes -8 in the weight domain.
    """
    return PackedLayout(
        f"W4A5 filter packing ({family}, spacing {spacing})",
        family,
        ((_w("w0", 4, full_range), 0), (_w("w1", 4, full_range), 2 * spacing)),
        ((_a("x0"), 0), (_a("x1"), spacing)),
    )


def w4a5_kernel_layout(family: str, spacing: int = 10, full_range: bool = True) -> PackedLayout:
    """Kernel-direction packing: three weights of one kernel row times two activations.

    ``(w0 + w1 2**s + w2 2**(2s)) * (x0 + x1 2**s)`` gives the polynomial product with four
    lanes ``w0x0 @0, w1x0+w0x1 @s, w2x0+w1x1 @2s, w2x1 @3s``: six exact W4A5 MACs per DSP.
    """
    return PackedLayout(
        f"W4A5 kernel packing ({family}, spacing {spacing})",
        family,
        (
            (_w("w0", 4, full_range), 0),
            (_w("w1", 4, full_range), spacing),
            (_w("w2", 4, full_range), 2 * spacing),
        ),
        ((_a("x0"), 0), (_a("x1"), spacing)),
    )


def w8a5_layout(family: str, spacing: int = 14, full_range: bool = True) -> PackedLayout:
    """Paper Fig. 1(b): two activations at 0 and ``spacing`` on A, one 8-bit weight on B.

    ``(x0 + x1 2**s) * w`` = lanes ``x0 w @0, x1 w @s``. The default spacing 14 keeps the
    paper's guard bit P[13]; 13 is also exact thanks to the borrow correction.
    """
    return PackedLayout(
        f"W8A5 packing ({family}, spacing {spacing})",
        family,
        ((_a("x0"), 0), (_a("x1"), spacing)),
        ((_w("w", 8, full_range), 0),),
    )
