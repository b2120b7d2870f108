"""Dot-product / accumulate units on the packed DSP and LUT multipliers.

Every unit takes ``n`` multiplier inputs per cycle, sums the products that belong to the same
accumulator with a pipelined balanced adder tree, and accumulates::

    acc <= (clear ? 0 : acc) + tree          when the delayed valid is high

``clear`` travels with its operands, so it marks the *first* input of a new output.

Adder-tree pipeline
-------------------
One register stage of the tree sums at most :data:`TREE_FAN_IN` (8) terms, three adder
levels; ``n`` terms take :func:`tree_stages` ``(n)`` stages (1 up to 8, 2 up to 64, ...).
Each stage's partial sums are registered at the width their adders produce, the last stage
at the accumulator width. So the path from a product register to the next register is at
most three adders whatever ``n`` is. (Measured, pyosys ``synth_xilinx -family xcup``, a
32-multiplier ``w4a5_filter`` unit: 9 LUT + 4 CARRY levels with one stage, 5 + 2 with two.)

Accumulator width (range argument)
----------------------------------
An accumulator receives the products of one output only, at most ``max_fan_in`` of them
(``AcceleratorConfig.max_fan_in``: 3x3x512 = 4608 for the ResNets). Each product ``w * x``
has ``w`` in the unit's weight domain ``[w_lo, w_hi]`` and ``0 <= x <= 31``, so every partial
sum lies in ``[max_fan_in * w_lo * 31, max_fan_in * w_hi * 31]`` and the accumulator is
``accumulator_bits(max_fan_in, max(|w_lo|, w_hi), 31)`` bits (``filmqnn_hw.spec.config``), the
smallest two's-complement width holding that interval. With W4 weights in [-8, 7] that is
22 bits (|-8 * 31 * 4608| = 1,142,784 > 2**20), with W8 in [-128, 127] 26 bits
(18,284,544 > 2**24). The tests drive ``max_fan_in`` extreme products into every
accumulator and show the result exact, and out of range for one bit less. Feeding more than
``max_fan_in`` products into one output is outside the contract (the DSE never does).

Units
-----
* :class:`PackedDotUnit`: ``n`` packed DSP multipliers (any layout); lane ``k`` of all units
  goes to accumulator ``k``. MACs/cycle = ``n * layout.macs``.
* :class:`LutDotUnit`: ``n`` shift-add LUT multipliers into one accumulator. MACs/cycle = ``n``.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.arith.lut_mul import balanced_sum, lut_product
from filmqnn_hw.gateware.arith.packed_dsp import PackedDspMultiplier
from filmqnn_hw.gateware.delay import delay_line
from filmqnn_hw.spec.config import (
    ACT_BITS,
    ACT_MAX,
    TREE_FAN_IN,
    AcceleratorConfig,
    accumulator_bits,
    tree_stages,
)
from filmqnn_hw.spec.geometry import PACKED_MUL_LATENCY, lut_dot_latency, packed_dot_latency
from filmqnn_hw.spec.packing import (
    PackedLayout,
    PackingError,
    w4a5_filter_layout,
    w4a5_kernel_layout,
    w8a5_layout,
)

__all__ = ["PackedDotUnit", "LutDotUnit", "PACKED_KINDS", "TREE_FAN_IN", "tree_stages",
           "pipelined_sum"]


#: Packed DSP engines by name.
PACKED_KINDS = {
    "w4a5_filter": w4a5_filter_layout,
    "w4a5_kernel": w4a5_kernel_layout,
    "w8a5": w8a5_layout,
}


def _check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise PackingError(f"number of multipliers per dot unit must be a positive int, not {n!r}")


def pipelined_sum(m: Module, terms: list, shape, name: str) -> Signal:
    """Registered sum of ``terms`` over :func:`tree_stages` ``(len(terms))`` cycles.

    Stage ``s`` sums groups of :data:`TREE_FAN_IN` consecutive terms with
    :func:`balanced_sum` into registers ``{name}_s{s}_{g}`` as wide as the group's adders make
    them; the last stage is one register of ``shape`` (``name``), returned.
    """
    terms = list(terms)
    last = tree_stages(len(terms)) - 1
    for s in range(last):
        nxt = []
        for g in range(0, len(terms), TREE_FAN_IN):
            expr = balanced_sum(terms[g : g + TREE_FAN_IN])
            r = Signal(expr.shape(), name=f"{name}_s{s + 1}_{g // TREE_FAN_IN}")
            m.d.sync += r.eq(expr)
            nxt.append(r)
        terms = nxt
    out = Signal(shape, name=name)
    m.d.sync += out.eq(balanced_sum(terms))
    return out


def _check_fan_in(max_fan_in: int) -> None:
    if not isinstance(max_fan_in, int) or isinstance(max_fan_in, bool) or max_fan_in < 1:
        raise PackingError(f"max_fan_in must be a positive int, not {max_fan_in!r}")


class PackedDotUnit(wiring.Component):
    """``n`` packed DSP multipliers, lane-wise adder trees and accumulators.

    Latency ``4 + tree_stages(n) + 1`` (4 in the packed multiplier, the adder tree's register
    stages, 1 accumulator): 6 up to 8 multipliers, 7 up to 64; one input set per cycle;
    ``n * layout.macs`` MACs per cycle.

    Parameters
    ----------
    layout : PackedLayout
        Packing of every DSP (same for all ``n``).
    n : int
        DSP multipliers per unit.
    max_fan_in : int
        Longest accumulation (products per output); sets ``acc_bits`` (see module doc).
    flavour : str | None
        Passed to the packed multipliers.

    Members
    -------
    <operand> : In(ArrayLayout(shape, n))  one array per packed operand (``w0``, ``x0``, ...)
    valid_in, clear : In(1)
    acc : Out(ArrayLayout(signed(acc_bits), n_lanes))   accumulator ``k`` sums lane ``k``
    valid_out : Out(1)                                    ``acc`` updated this cycle

    Attributes
    ----------
    layout, n, acc_bits : the parameters and the accumulator width
    macs : int   MACs per cycle
    latency : int   cycles from ``valid_in`` to ``valid_out``
    """

    #: Latency of the registered packed multiplier (A/B/D, M, P and lane registers).
    MUL_LATENCY = PACKED_MUL_LATENCY

    @classmethod
    def latency_of(cls, n: int) -> int:
        """Latency of a unit with ``n`` multipliers (without building it)."""
        return packed_dot_latency(n)

    def __init__(
        self,
        layout: PackedLayout,
        n: int,
        max_fan_in: int,
        *,
        flavour: str | None = None,
    ) -> None:
        _check_n(n)
        _check_fan_in(max_fan_in)
        layout.validate()
        self.layout = layout
        self.n = n
        self._max_fan_in = max_fan_in
        self._flavour = flavour
        w_ops = [op for op in layout.operands if op.signed]
        self._w_abs = max(max(-op.lo, op.hi) for op in w_ops)
        self.acc_bits = accumulator_bits(max_fan_in, self._w_abs, ACT_MAX)
        self.macs = n * layout.macs
        self.latency = self.latency_of(n)
        sig = {
            op.name: In(data.ArrayLayout(signed(op.bits) if op.signed else unsigned(op.bits), n))
            for op in layout.operands
        }
        sig.update(
            valid_in=In(1),
            clear=In(1),
            acc=Out(data.ArrayLayout(signed(self.acc_bits), len(layout.lanes))),
            valid_out=Out(1),
        )
        super().__init__(sig)

    @classmethod
    def from_config(cls, cfg: AcceleratorConfig, kind: str, n: int, **kw) -> PackedDotUnit:
        """Unit of engine ``kind`` (``PACKED_KINDS``) for ``cfg``'s family, weight range, fan-in."""
        if kind not in PACKED_KINDS:
            raise PackingError(f"unknown packed engine {kind!r}: use one of {sorted(PACKED_KINDS)}")
        full = cfg.w8_min == -128 if kind == "w8a5" else cfg.w4_min == -8
        return cls(PACKED_KINDS[kind](cfg.family, full_range=full), n, cfg.max_fan_in, **kw)

    @property
    def products_per_lane(self) -> list[int]:
        """Products each accumulator receives per cycle."""
        return [self.n * len(lane.products) for lane in self.layout.lanes]

    def port(self, name: str):
        return getattr(self, name)

    def elaborate(self, platform):
        m = Module()
        lay = self.layout
        units = []
        for i in range(self.n):
            u = PackedDspMultiplier(lay, flavour=self._flavour)
            m.submodules[f"mul{i}"] = u
            for op in lay.operands:
                m.d.comb += u.port(op.name).eq(self.port(op.name)[i])
            m.d.comb += u.valid_in.eq(self.valid_in)
            units.append(u)
        if units[0].latency != self.MUL_LATENCY:
            raise RuntimeError(f"packed multiplier latency {units[0].latency} differs from "
                               f"PackedDotUnit.MUL_LATENCY = {self.MUL_LATENCY}")
        # clear travels with the operands through the multiplier pipeline and the tree
        stages = tree_stages(self.n)
        tree_clear = delay_line(m, self.clear, self.MUL_LATENCY + stages, "clear")
        tree_valid = delay_line(m, units[0].valid_out, stages, "tree_valid")
        for k in range(len(lay.lanes)):
            tree = pipelined_sum(m, [u.lanes[k] for u in units], signed(self.acc_bits),
                                 f"tree{k}")
            with m.If(tree_valid):
                m.d.sync += self.acc[k].eq(Mux(tree_clear, 0, self.acc[k]) + tree)
        m.d.sync += self.valid_out.eq(tree_valid)
        return m


class LutDotUnit(wiring.Component):
    """``n`` shift-add LUT multipliers (signed ``w_bits`` x unsigned 5-bit) into one accumulator.

    Latency ``1 + tree_stages(n) + 1`` (product register, the adder tree's register stages,
    accumulator): 3 up to 8 multipliers, 4 up to 64; one input set per cycle; ``n`` MACs per
    cycle; no DSP.

    Parameters
    ----------
    w_bits : int
        4 (W4A5) or 8 (W8A5); any 2..8 is accepted.
    n : int
        Products per cycle.
    max_fan_in : int
        Longest accumulation; ``acc_bits = accumulator_bits(max_fan_in, max(|w_lo|, w_hi), 31)``.
    w_lo, w_hi : int | None
        Weight domain the accumulator is sized for; default the full signed ``w_bits`` range
        (-8 / -128 included). The multiplier itself is exact over the full range.

    Members
    -------
    w : In(ArrayLayout(signed(w_bits), n))
    x : In(ArrayLayout(unsigned(5), n))
    valid_in, clear : In(1)
    acc : Out(signed(acc_bits))
    valid_out : Out(1)

    Attributes
    ----------
    n, acc_bits : the multipliers and the accumulator width
    macs : int   MACs per cycle (``n``)
    latency : int   cycles from ``valid_in`` to ``valid_out``
    """

    @staticmethod
    def latency_of(n: int) -> int:
        """Latency of a unit with ``n`` multipliers (without building it)."""
        return lut_dot_latency(n)

    def __init__(
        self,
        w_bits: int,
        n: int,
        max_fan_in: int,
        *,
        w_lo: int | None = None,
        w_hi: int | None = None,
    ) -> None:
        if not isinstance(w_bits, int) or not 2 <= w_bits <= 8:
            raise PackingError(f"LUT multiplier weight width must be 2..8 bits, not {w_bits!r}")
        _check_n(n)
        _check_fan_in(max_fan_in)
        full_lo, full_hi = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
        w_lo = full_lo if w_lo is None else w_lo
        w_hi = full_hi if w_hi is None else w_hi
        if not full_lo <= w_lo <= 0 <= w_hi <= full_hi:
            raise PackingError(
                f"weight domain [{w_lo}, {w_hi}] is not inside the signed {w_bits}-bit range"
            )
        self._w_bits = w_bits
        self.n = n
        self.acc_bits = accumulator_bits(max_fan_in, max(-w_lo, w_hi), ACT_MAX)
        self.macs = n
        self.latency = self.latency_of(n)
        super().__init__(
            {
                "w": In(data.ArrayLayout(signed(w_bits), n)),
                "x": In(data.ArrayLayout(unsigned(ACT_BITS), n)),
                "valid_in": In(1),
                "clear": In(1),
                "acc": Out(signed(self.acc_bits)),
                "valid_out": Out(1),
            }
        )

    @classmethod
    def from_config(cls, cfg: AcceleratorConfig, w_bits: int, n: int) -> LutDotUnit:
        """Unit for ``cfg.max_fan_in`` and ``cfg``'s weight range of that width."""
        if w_bits == 4:
            return cls(4, n, cfg.max_fan_in, w_lo=cfg.w4_min, w_hi=cfg.w4_max)
        if w_bits == 8:
            return cls(8, n, cfg.max_fan_in, w_lo=cfg.w8_min, w_hi=cfg.w8_max)
        raise PackingError(f"the configuration defines 4- and 8-bit weights, not {w_bits}-bit")

    def elaborate(self, platform):
        m = Module()
        prods = []
        for i in range(self.n):
            p = Signal(signed(self._w_bits + ACT_BITS), name=f"prod{i}")
            m.d.sync += p.eq(lut_product(self.w[i], self.x[i]))
            prods.append(p)
        # valid and clear travel with the products through the product register and the tree
        stages = 1 + tree_stages(self.n)
        v = delay_line(m, self.valid_in, stages, "valid")
        c = delay_line(m, self.clear, stages, "clear")
        tree = pipelined_sum(m, prods, signed(self.acc_bits), "tree")
        with m.If(v):
            m.d.sync += self.acc.eq(Mux(c, 0, self.acc) + tree)
        m.d.sync += self.valid_out.eq(v)
        return m
