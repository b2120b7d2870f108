"""Pipelined division by a constant: one quotient bit per registered stage (short paths)."""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.spec.geometry import divider_latency

__all__ = ["ConstDivider"]


class ConstDivider(wiring.Component):
    """``q = x // divisor`` and ``r = x % divisor`` for an unsigned ``x``, restoring division.

    A combinational divide by a constant such as 3 is a long chain of subtract-and-select
    stages (a 16-bit ``// 3`` synthesises to 15 LUT levels); here every stage is registered,
    so each clock cycle holds one compare-subtract of ``bits(divisor) + 1`` bits.

    Latency ``width`` cycles, one division per cycle (fully pipelined): ``q``/``r`` are those
    of the ``x`` presented ``latency`` cycles earlier (hold ``x`` steady and wait ``latency``
    cycles).

    Parameters
    ----------
    width : int
        Bits of the dividend.
    divisor : int
        The constant divisor (>= 1).

    Members
    -------
    x : In(width)
    q : Out(width)
    r : Out(range(divisor))
    """

    def __init__(self, width: int, divisor: int) -> None:
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, not {width!r}")
        if not isinstance(divisor, int) or divisor < 1:
            raise ValueError(f"divisor must be a positive int, not {divisor!r}")
        self.width, self.divisor = width, divisor
        super().__init__({"x": In(width), "q": Out(width), "r": Out(range(max(divisor, 2)))})

    @staticmethod
    def latency_of(width: int) -> int:
        """Latency of a divider of a ``width``-bit dividend (without building one)."""
        return divider_latency(width)

    @property
    def latency(self) -> int:
        return self.latency_of(self.width)

    def elaborate(self, platform):
        m = Module()
        w, d = self.width, self.divisor
        rbits = max(d.bit_length(), 1)
        rem = Signal(rbits + 1, name="rem_in")
        xs = self.x
        qs = None  # quotient bits so far (none before the first stage: no zero-width wire)
        m.d.comb += rem.eq(0)
        for k in range(w):  # quotient bit w-1-k
            bit = xs[w - 1 - k]
            t = Signal(rbits + 1, name=f"t{k}")
            m.d.comb += t.eq(Cat(bit, rem[:rbits]))
            ge = t >= d
            nrem = Signal(rbits + 1, name=f"rem{k}")
            nx = Signal(w, name=f"x{k}")
            nq = Signal(k + 1, name=f"q{k}")
            m.d.sync += [nrem.eq(t - (ge * d)), nx.eq(xs),
                         nq.eq(ge if qs is None else Cat(ge, qs))]
            rem, xs, qs = nrem, nx, nq
        m.d.comb += [self.q.eq(qs), self.r.eq(rem)]
        return m
