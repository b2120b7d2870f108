"""W8A5 dot product summed inside a DSP cascade (PCOUT -> PCIN), two MACs per DSP.

Each of the ``n`` DSPs forms the packed product of paper Fig. 1(b) with a wider spacing
``s = 19``::

    X_i = x0_i + x1_i * 2**19          (A port, unsigned activations, 24 bits)
    P_i = P_{i-1} + X_i * w_i          (post-adder, Z = PCIN: the chain sums in packed form)

so the last DSP holds ``P = L0 + L1 * 2**19`` with ``L0 = sum_i x0_i w_i`` and
``L1 = sum_i x1_i w_i``. Fabric only extracts the two lane sums (borrow-corrected, as in
:mod:`~filmqnn_hw.spec.packing`) and accumulates them: the adder trees of
:class:`~filmqnn_hw.gateware.arith.dot.PackedDotUnit` move into the DSP post-adders.

Range argument: every product is in ``[-3968, 3937]`` (``|w| <= 128``, ``x <= 31``), so
``|L0| <= 3968 n``; the extraction is exact when ``L0`` fits 19 signed bits, i.e.
``n <= 66`` (checked at construction). ``L1`` is read as ``acc_bits`` bits above bit 19 (the
48-bit P has 29); the fabric accumulators are ``accumulator_bits(max_fan_in, 128, 31)`` bits.

Timing: DSP ``i`` must see its operands ``i`` cycles after DSP 0 (systolic skew). With
``skew=True`` the unit delays element ``i`` by ``i`` registers itself (self-contained; costs
``18 * n (n - 1) / 2`` flip-flops); with ``skew=False`` the caller supplies skewed operands
(in a PE array the activation skew and the weight-address delay are shared by all output
lanes). ``valid_in`` / ``clear`` are aligned with element 0. Latency ``n + 4``, one operand
set per cycle, ``2 n`` MACs per cycle.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.arith.packed_dsp import platform_flavour
from filmqnn_hw.spec.config import ACT_BITS, ACT_MAX, AcceleratorConfig, accumulator_bits
from filmqnn_hw.spec.packing import DSP_PORTS, PackingError

__all__ = ["W8A5CascadeDotUnit"]

SPACING = 19


class W8A5CascadeDotUnit(wiring.Component):
    """``n`` DSPs in a PCIN cascade, each two W8A5 products; two lane accumulators in fabric.

    Latency ``n + 4`` (element 0 to ``acc``); ``2 n`` MACs per cycle.

    Parameters
    ----------
    family : ``"xc7"`` | ``"xcup"``
    n : int
        DSPs in the chain, 1..66 (lane 0 holds ``sum x0_i w_i`` in 19 bits).
    max_fan_in : int
        Longest accumulation per output; sets ``acc_bits``.
    skew : bool
        Delay element ``i`` by ``i`` cycles inside the unit (see module doc).
    flavour : ``"behavioural"`` | ``"primitive"`` | None
        ``None`` picks by platform; ``"primitive"`` instantiates DSP48E1/E2 with PCIN/PCOUT.

    Members
    -------
    x0, x1 : In(ArrayLayout(unsigned(5), n))     the two activations of each DSP
    w : In(ArrayLayout(signed(8), n))            the weight of each DSP
    valid_in, clear : In(1)
    acc : Out(ArrayLayout(signed(acc_bits), 2))  ``sum x0 w`` and ``sum x1 w`` over the output
    valid_out : Out(1)
    """

    def __init__(
        self,
        family: str,
        n: int,
        max_fan_in: int,
        *,
        skew: bool = True,
        flavour: str | None = None,
    ) -> None:
        if family not in DSP_PORTS:
            raise PackingError(f"unknown FPGA family {family!r}: use 'xc7' or 'xcup'")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise PackingError(f"number of DSPs in the chain must be a positive int, not {n!r}")
        worst = 128 * ACT_MAX
        if n * worst > (1 << (SPACING - 1)) - 1:
            raise PackingError(
                f"a chain of {n} DSPs sums lane 0 up to {n * worst}, which does not fit the "
                f"{SPACING}-bit lane: use at most {((1 << (SPACING - 1)) - 1) // worst} DSPs"
            )
        if not isinstance(max_fan_in, int) or max_fan_in < 1:
            raise PackingError(f"max_fan_in must be a positive int, not {max_fan_in!r}")
        if flavour not in (None, "behavioural", "primitive"):
            raise PackingError(
                f"flavour must be 'behavioural', 'primitive' or None, not {flavour!r}"
            )
        self._family = family
        self._n = n
        self._skew = skew
        self._flavour = flavour
        self._acc_bits = accumulator_bits(max_fan_in, 128, ACT_MAX)
        super().__init__(
            {
                "x0": In(data.ArrayLayout(unsigned(ACT_BITS), n)),
                "x1": In(data.ArrayLayout(unsigned(ACT_BITS), n)),
                "w": In(data.ArrayLayout(signed(8), n)),
                "valid_in": In(1),
                "clear": In(1),
                "acc": Out(data.ArrayLayout(signed(self._acc_bits), 2)),
                "valid_out": Out(1),
            }
        )

    @classmethod
    def from_config(cls, cfg: AcceleratorConfig, n: int, **kw) -> W8A5CascadeDotUnit:
        """Chain for ``cfg.family`` and ``cfg.max_fan_in``."""
        return cls(cfg.family, n, cfg.max_fan_in, **kw)

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def macs(self) -> int:
        return 2 * self._n

    @property
    def latency(self) -> int:
        return self._n + 4

    def elaborate(self, platform):
        m = Module()
        ports = DSP_PORTS[self._family]
        flavour = self._flavour or platform_flavour(platform, self._family)
        n = self._n
        prev_p = None
        prev_pcout = None
        for i in range(n):
            x0, x1, w = self.x0[i], self.x1[i], self.w[i]
            if self._skew:
                for s in range(i):
                    nx0 = Signal(unsigned(ACT_BITS), name=f"skew{i}_{s}_x0")
                    nx1 = Signal(unsigned(ACT_BITS), name=f"skew{i}_{s}_x1")
                    nw = Signal(signed(8), name=f"skew{i}_{s}_w")
                    m.d.sync += [nx0.eq(x0), nx1.eq(x1), nw.eq(w)]
                    x0, x1, w = nx0, nx1, nw
            a = Signal(signed(ports["preadd"]), name=f"a{i}")
            m.d.comb += a.eq(Cat(x0, Const(0, SPACING - ACT_BITS), x1))
            p = Signal(signed(ports["p"]), name=f"p{i}")
            if flavour == "primitive":
                from filmqnn_hw.gateware.arith.dsp_primitives import packed_dsp_instance

                pcout = Signal(48, name=f"pcout{i}")
                m.submodules[f"dsp{i}"] = packed_dsp_instance(
                    self._family,
                    a=a,
                    d=Const(0, 25),
                    b=w,
                    p=p,
                    use_d=False,
                    pcin=prev_pcout,
                    pcout=pcout,
                )
                prev_pcout = pcout
            else:
                a_r = Signal(signed(ports["preadd"]), name=f"a{i}_reg")
                b_r = Signal(signed(ports["b"]), name=f"b{i}_reg")
                m_r = Signal(signed(ports["mult"]), name=f"m{i}_reg")
                m.d.sync += [a_r.eq(a), b_r.eq(w), m_r.eq(a_r * b_r)]
                m.d.sync += p.eq(m_r + prev_p if prev_p is not None else m_r)
            prev_p = p
        ab = self._acc_bits
        l0 = Signal(signed(SPACING), name="lane0")
        l1 = Signal(signed(ab), name="lane1")
        m.d.sync += [
            l0.eq(prev_p[:SPACING].as_signed()),
            l1.eq((prev_p[SPACING : SPACING + ab] + prev_p[SPACING - 1])[:ab].as_signed()),
        ]
        v, c = self.valid_in, self.clear
        for s in range(n + 3):
            nv, nc = Signal(name=f"valid_s{s}"), Signal(name=f"clear_s{s}")
            m.d.sync += [nv.eq(v), nc.eq(c)]
            v, c = nv, nc
        with m.If(v):
            m.d.sync += [
                self.acc[0].eq(Mux(c, 0, self.acc[0]) + l0),
                self.acc[1].eq(Mux(c, 0, self.acc[1]) + l1),
            ]
        m.d.sync += self.valid_out.eq(v)
        return m
