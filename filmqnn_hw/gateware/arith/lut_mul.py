"""LUT-only multipliers for W4A5 and W8A5 (shift-add, no ``*`` operator).

yosys maps every ``*`` whose product is 9 bits or wider to a DSP (``DSP_Y_MINWIDTH=9``), and a
4x5 product is 9 bits. These multipliers are therefore written as a sum of shifted partial
products, one row per bit of the narrower operand::

    w * x = sum_{j<5} x[j] ? (w << j) : 0                       (W8A5: rows over x)
    w * x = sum_{i<3} w[i] ? (x << i) : 0  -  (w[3] ? x << 3 : 0)  (W4A5: rows over w)

which ``synth_xilinx`` maps to LUTs and CARRY4 chains without any ``-nodsp`` flag, so the LUT
engine can sit in the same design as the DSP engine. The partial products are summed as a
balanced tree.

The function :func:`lut_product` returns the expression (used by the LUT dot-product units);
:class:`LutMultiplier` wraps it as a component with a registered output.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.spec.config import ACT_BITS
from filmqnn_hw.spec.packing import PackingError

__all__ = ["LutMultiplier", "lut_product", "balanced_sum"]


def balanced_sum(terms: list):
    """Sum of Amaranth values as a balanced binary tree (depth ceil(log2 n))."""
    if not terms:
        raise ValueError("balanced_sum needs at least one term")
    while len(terms) > 1:
        nxt = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


def lut_product(w, x):
    """``w * x`` for signed ``w`` and unsigned ``x`` as shift-add partial products (no ``*``).

    The rows run over the narrower operand: for a 4-bit weight, four rows of ``x`` gated by
    the weight bits, the sign bit's row subtracted (two's complement weight); for wider
    weights, one row of ``w`` per activation bit. (Measured with ``synth_xilinx -family xc7``:
    25 LUT for 4x5 with weight rows against 43 with activation rows; 69 LUT for 8x5 either way.)
    """
    wb = len(w)
    if wb <= len(x):
        rows = [Mux(w[i], x << i, 0) for i in range(wb - 1)]
        return balanced_sum(rows) - Mux(w[wb - 1], x << (wb - 1), 0)
    rows = [Mux(x[j], w.as_signed() << j, 0) for j in range(len(x))]
    return balanced_sum(rows)


class LutMultiplier(wiring.Component):
    """Signed ``w_bits`` x unsigned 5-bit multiplier built from LUTs and carry chains.

    Latency 1 (registered product), one product per cycle. No DSP is inferred.

    Parameters
    ----------
    w_bits : int
        Weight width, 2..8 (4 for W4A5, 8 for W8A5).

    Members
    -------
    w : In(signed(w_bits))
    x : In(unsigned(5))
    p : Out(signed(w_bits + 5))       ``w * x`` one cycle later (exact over the full ranges)
    """

    def __init__(self, w_bits: int) -> None:
        if not isinstance(w_bits, int) or not 2 <= w_bits <= 8:
            raise PackingError(f"LUT multiplier weight width must be 2..8 bits, not {w_bits!r}")
        self._w_bits = w_bits
        super().__init__(
            {
                "w": In(signed(w_bits)),
                "x": In(unsigned(ACT_BITS)),
                "p": Out(signed(w_bits + ACT_BITS)),
            }
        )

    @property
    def w_bits(self) -> int:
        return self._w_bits

    def elaborate(self, platform):
        m = Module()
        prod = Signal(signed(self._w_bits + ACT_BITS))
        m.d.comb += prod.eq(lut_product(self.w, self.x))
        m.d.sync += self.p.eq(prod)
        return m
