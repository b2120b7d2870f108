"""The output pipeline of one lane: requantization, fused residual add, clamp.

Implements :func:`filmqnn_hw.spec.numerics.requantize` bit for bit::

    y   = acc * mult + offset (+ res * res_mult)       # exact, |y| < 2**47 (Y_BITS = 48)
    q   = y >> shift                                   # arithmetic shift (floor)
    out = min(max(q, lo), hi)                          # numpy's clip order

Pipeline (one input per cycle, latency :data:`REQUANT_LATENCY` = 6)::

    stage 1  operand registers            (DSP A/B/C input registers)
    stage 2  m = acc * mult               (DSP multiplier, M register)
             r = offset + res * res_mult  (fabric: 5 shift-add rows of res_mult, 36 bits)
    stage 3  y = m + r, 48 bits           (DSP post-adder with r on C, P register)
    stage 4  y >> (shift & 0b111000)      (coarse barrel shift, 8 positions)
    stage 5  >> (shift & 0b000111)        (fine barrel shift, 8 positions)
    stage 6  clamp to [lo, hi]            (signed 16-bit result)

DSP mapping. ``acc * mult`` is ``signed(acc_bits) x unsigned(15)``; mult goes to the 18-bit
B port (as a 16-bit signed value) and acc to the A port, whose multiplier input is 25 bits
on DSP48E1 (xc7) and 27 bits on DSP48E2 (xcup). The default ``acc_bits`` is 26 (fan-in
4608, 8-bit weights), so on xcup the whole ``acc * mult + r`` is one DSP48E2; on xc7 it is
one DSP48E1 when ``acc_bits <= 25`` (``max_fan_in <= 4262`` with 8-bit weights) and two
otherwise (yosys splits the A operand). ``res_mult`` is ``unsigned(RES_MULT_BITS)`` (31 bits,
:data:`filmqnn_hw.spec.numerics.RES_MULT_BITS`: residual multipliers share the conv's shift and
reach ~26 bits on real ResNets), so ``res * res_mult`` (5 x 31 bits, < 2**36) is written as
five gated shift-add rows of the 31-bit value, summed as a tree (depth 3), so it stays in
LUTs instead of taking (and splitting over) DSPs. ``r = offset + res * res_mult`` is formed
at 49 bits (signed 48 + unsigned 36 cannot overflow it) and ``m`` at ``acc_bits + 16`` bits,
so both are exact; ``m + r`` equals ``y`` and, as ``|y| < 2**47``, truncating it to the
48-bit ``y`` register is exact too. The 48-bit ``y`` is exactly the DSP's P register.
Correctness does not depend on the mapping.

Back-pressure: the whole pipeline advances when its last stage is empty or being read
(``en = ~o.valid | o.ready``), so ``i.ready == en`` (combinationally dependent on
``o.ready``, as the stream rules allow) and the throughput is one result per cycle while the
consumer is ready.

``lo``/``hi`` are per-layer values (not part of the stream): they are sampled in stage 6
and must be held constant while a layer's data is in flight. Any ``lo``/``hi`` give
``min(max(q, lo), hi)`` (as ``numpy.clip``); the activation clamp is ``[lo, 31]`` and the
logits mode is ``[LOGIT_MIN, LOGIT_MAX]`` (signed 16 bits).

Verification (``tests/gateware/test_requant.py``): pysim against ``numerics.requantize`` with
``==`` on extreme and random vectors including stalls (offsets pushing ``y`` to both edges of
``|y| < 2**47``, ``res_mult`` up to ``2**31 - 1``, ``res`` up to 31), and a yosys ``sat``
proof by parts (``tests/verify/test_formal.py``, ``filmqnn_hw/verify/formal.py``): stages 1-2
proven for every input with each of the 32 ``res`` values as a constant, stages 3-6 from every
stage-2 state, the one ``acc * mult`` multiplier checked structurally (a single ``$mul`` of the
declared operand widths and signedness), stalls covered by the single shared enable; mutated
references are caught. A monolithic miter of the whole unit does not finish (multipliers).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import ShapeLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.module_sharing import share
from filmqnn_hw.spec.config import ACT_BITS, AcceleratorConfig
from filmqnn_hw.spec.geometry import REQUANT_LATENCY
from filmqnn_hw.spec.numerics import (
    LOGIT_MAX,
    LOGIT_MIN,
    MULT_BITS,
    RES_MULT_BITS,
    SHIFT_MAX,
    Y_BITS,
)

__all__ = [
    "SHIFT_BITS",
    "OUT_BITS",
    "RequantError",
    "requant_in_layout",
    "RequantUnit",
    "RequantBank",
]

#: Width of the per-channel shift field (0..SHIFT_MAX = 46 fits 6 bits).
SHIFT_BITS = SHIFT_MAX.bit_length()
#: Output width: signed 16 bits holds both the 5-bit codes and the logits range.
OUT_BITS = 16
assert -(1 << (OUT_BITS - 1)) == LOGIT_MIN and (1 << (OUT_BITS - 1)) - 1 == LOGIT_MAX


class RequantError(ValueError):
    """Bad parameters for a requantization unit; the message says what to change."""


def requant_in_layout(acc_bits: int, residual: bool = True) -> data.StructLayout:
    """Input payload of one lane.

    Fields: ``acc`` signed(acc_bits); ``mult`` unsigned(MULT_BITS = 15); ``offset``
    signed(48); ``shift`` unsigned(6); with ``residual``: ``res`` unsigned(5) (the identity
    tensor's code) and ``res_mult`` unsigned(RES_MULT_BITS = 31). Without ``residual`` the
    unit computes ``res = 0``.
    """
    fields: dict[str, object] = {
        "acc": signed(acc_bits),
        "mult": unsigned(MULT_BITS),
        "offset": signed(Y_BITS),
        "shift": unsigned(SHIFT_BITS),
    }
    if residual:
        fields["res"] = unsigned(ACT_BITS)
        fields["res_mult"] = unsigned(RES_MULT_BITS)
    return data.StructLayout(fields)


def _check_acc_bits(acc_bits: object) -> int:
    if not isinstance(acc_bits, int) or isinstance(acc_bits, bool) or not 2 <= acc_bits <= 32:
        raise RequantError(
            f"acc_bits must be an int in [2, 32] (acc * mult must fit the 48-bit y), "
            f"not {acc_bits!r}"
        )
    return acc_bits


def _shift_add(x, w, w_bits: int):
    """``x * w`` for unsigned ``x`` (few bits) and unsigned ``w`` as gated shifted rows (LUTs).

    The rows are summed pairwise (adder depth ``ceil(log2(len(x)))``); the result is the exact
    product, ``w_bits + len(x)`` bits wide.
    """
    rows = [Mux(x[j], w << j, 0) for j in range(len(x))]
    while len(rows) > 1:
        rows = [rows[k] + rows[k + 1] for k in range(0, len(rows) - 1, 2)] + (
            [rows[-1]] if len(rows) % 2 else []
        )
    return rows[0][: w_bits + len(x)]


class _Pipe:
    """Per-stage registers of a stalling pipeline; ``sync`` writes are gated by ``en``."""

    def __init__(self, m: Module, en) -> None:
        self.m = m
        self.en = en

    def reg(self, value, shape, name: str) -> Signal:
        s = Signal(shape, name=name)
        with self.m.If(self.en):
            self.m.d.sync += s.eq(value)
        return s


class _RequantComponent(wiring.Component):
    """What :class:`RequantUnit` and :class:`RequantBank` share: the attributes ``acc_bits``,
    ``residual`` and ``latency`` (:data:`REQUANT_LATENCY`) and the members ``i``, ``lo``,
    ``hi``, ``o``; with ``lanes`` the streams carry an ``ArrayLayout`` of that many lanes."""

    def __init__(self, acc_bits: int, residual: bool, lanes: int | None = None) -> None:
        self.acc_bits = acc_bits
        self.residual = bool(residual)
        self.latency = REQUANT_LATENCY
        in_shape: ShapeLike = requant_in_layout(acc_bits, residual)
        out_shape: ShapeLike = signed(OUT_BITS)
        if lanes is not None:
            in_shape = data.ArrayLayout(in_shape, lanes)
            out_shape = data.ArrayLayout(out_shape, lanes)
        super().__init__(
            {
                "i": In(stream.Signature(in_shape)),
                "lo": In(signed(OUT_BITS)),
                "hi": In(signed(OUT_BITS)),
                "o": Out(stream.Signature(out_shape)),
            }
        )


class RequantUnit(_RequantComponent):
    """One output lane's requantization pipeline (``numerics.requantize``, exact).

    Latency :data:`REQUANT_LATENCY` (6) cycles, throughput one result per cycle (II = 1)
    while ``o.ready`` is high; stalls propagate back to ``i.ready`` in the same cycle.

    Parameters
    ----------
    acc_bits : int
        Accumulator width (``AcceleratorConfig.acc_bits``, 26 by default).
    residual : bool
        Build the fused residual term ``res * res_mult`` (5 x 31 bits: five shift-add rows of
        the 31-bit ``res_mult`` in fabric).

    Members
    -------
    i : In(stream.Signature(requant_in_layout(acc_bits, residual)))
        ``acc, mult, offset, shift[, res, res_mult]`` of one output value.
    lo, hi : In(signed(16))
        Clamp bounds of the current layer (hold while its data is in flight).
    o : Out(stream.Signature(signed(16)))
        ``min(max((acc*mult + offset + res*res_mult) >> shift, lo), hi)``.
    """

    def __init__(self, acc_bits: int, *, residual: bool = True) -> None:
        super().__init__(_check_acc_bits(acc_bits), residual)

    @classmethod
    def from_config(cls, cfg: AcceleratorConfig, *, residual: bool = True) -> RequantUnit:
        """Unit for ``cfg.acc_bits``."""
        return cls(cfg.acc_bits, residual=residual)

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        p = _Pipe(m, en)
        ip = self.i.payload
        ab = self.acc_bits

        # stage 1: operand registers
        v1 = p.reg(self.i.valid, 1, "v1")
        acc1 = p.reg(ip.acc, signed(ab), "acc1")
        mult1 = p.reg(ip.mult, unsigned(MULT_BITS), "mult1")
        off1 = p.reg(ip.offset, signed(Y_BITS), "off1")
        sh1 = p.reg(ip.shift, unsigned(SHIFT_BITS), "sh1")
        if self.residual:
            res1 = p.reg(ip.res, unsigned(ACT_BITS), "res1")
            rm1 = p.reg(ip.res_mult, unsigned(RES_MULT_BITS), "rm1")

        # stage 2: product and residual + offset
        v2 = p.reg(v1, 1, "v2")
        m2 = p.reg(acc1 * mult1, signed(ab + MULT_BITS + 1), "m2")
        if self.residual:
            r_val = off1 + _shift_add(res1, rm1, RES_MULT_BITS)  # exact: < 2**47 + 2**36
        else:
            r_val = off1
        r2 = p.reg(r_val, signed(Y_BITS + 1), "r2")
        sh2 = p.reg(sh1, unsigned(SHIFT_BITS), "sh2")

        # stage 3: y (the DSP's 48-bit P)
        v3 = p.reg(v2, 1, "v3")
        y3 = p.reg(m2 + r2, signed(Y_BITS), "y3")
        sh3 = p.reg(sh2, unsigned(SHIFT_BITS), "sh3")

        # stage 4/5: arithmetic right shift, coarse then fine
        v4 = p.reg(v3, 1, "v4")
        coarse = Cat(Const(0, 3), sh3[3:])
        y4 = p.reg(y3 >> coarse, signed(Y_BITS), "y4")
        sh4 = p.reg(sh3[:3], unsigned(3), "sh4")
        v5 = p.reg(v4, 1, "v5")
        q5 = p.reg(y4 >> sh4, signed(Y_BITS), "q5")

        # stage 6: clamp (max with lo, then min with hi: numpy.clip order)
        lo, hi = self.lo, self.hi
        above = Mux(q5 < lo, lo, q5)
        clipped = Mux(above > hi, hi, above)
        with m.If(en):
            m.d.sync += [self.o.valid.eq(v5), self.o.payload.eq(clipped[:OUT_BITS])]
        return m


class RequantBank(_RequantComponent):
    """``lanes`` :class:`RequantUnit` s in lock step, one stream, shared per-layer ``lo``/``hi``.

    Latency 6, one vector of ``lanes`` results per cycle. The lanes share ``valid``/``ready``
    (a pixel's ``lanes`` channels travel together); each lane has its own per-channel
    ``mult``/``offset``/``shift``/``res_mult`` in the payload.

    Parameters
    ----------
    config : AcceleratorConfig
        Supplies ``acc_bits``.
    lanes : int | None
        Number of units; default ``config.out_lanes``.
    residual : bool
        Build the fused residual term.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(requant_in_layout(acc_bits, residual), lanes)))
    lo, hi : In(signed(16))
    o : Out(stream.Signature(ArrayLayout(signed(16), lanes)))
    """

    def __init__(
        self, config: AcceleratorConfig, lanes: int | None = None, *, residual: bool = True
    ) -> None:
        lanes = config.out_lanes if lanes is None else lanes
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            raise RequantError(f"lanes must be a positive int, not {lanes!r}")
        self.lanes = lanes
        super().__init__(config.acc_bits, residual, lanes)

    def elaborate(self, platform):
        m = Module()
        for k in range(self.lanes):
            u = RequantUnit(self.acc_bits, residual=self.residual)
            m.submodules[f"lane{k}"] = share(platform, u, (self.acc_bits, self.residual))
            m.d.comb += [
                u.i.payload.eq(self.i.payload[k]),
                u.i.valid.eq(self.i.valid),
                u.lo.eq(self.lo),
                u.hi.eq(self.hi),
                u.o.ready.eq(self.o.ready),
                self.o.payload[k].eq(u.o.payload),
            ]
            if k == 0:
                m.d.comb += [self.i.ready.eq(u.i.ready), self.o.valid.eq(u.o.valid)]
        return m
