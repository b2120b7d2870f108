"""Packed DSP multipliers: several W4A5 / W8A5 products from one DSP48E1 / DSP48E2.

Each component computes one :class:`~filmqnn_hw.spec.packing.PackedLayout`: the small
operands are packed into the pre-adder operand ``X = A + D`` and into ``B``, one
``P = X * B`` is formed, and every lane is sliced out of ``P`` with its borrow corrected
(see :mod:`filmqnn_hw.spec.packing` for the bit-level argument).

Pipeline (``registered=True``, the default), one new operand set per cycle, latency 4::

    cycle 1  A/D/B input registers   (AREG=DREG=BREG=1 in the DSP)
    cycle 2  M register  = (A + D) * B  (MREG=1)
    cycle 3  P register                 (PREG=1)
    cycle 4  lane registers in fabric (slice + borrow add, one small adder per lane)

``valid`` travels alongside with the same latency. With ``registered=False`` the unit is
purely combinational (latency 0); the formal proofs run on that form, the registers being
plain delays of the same expressions.

Two build flavours, chosen by the platform at elaboration (or forced by ``flavour=``):

* ``"behavioural"``: ``(a + d) * b`` written in Amaranth; yosys ``synth_xilinx`` maps it to
  one DSP (checked by the synthesis tests). Used for simulation and yosys estimates.
* ``"primitive"``: an explicit ``DSP48E1`` / ``DSP48E2`` ``Instance`` for Vivado (see
  :mod:`filmqnn_hw.gateware.arith.dsp_primitives`). Chosen automatically when the platform is an
  Amaranth ``XilinxPlatform``; its equivalence with the behavioural flavour is checked in
  the tests against yosys's DSP48E1 simulation model and our DSP48E2 model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from amaranth import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.spec.geometry import PACKED_MUL_LATENCY
from filmqnn_hw.spec.packing import (
    DSP_PORTS,
    PackedLayout,
    PackingError,
    w4a5_filter_layout,
    w4a5_kernel_layout,
    w8a5_layout,
)

__all__ = [
    "PackedDspMultiplier",
    "W4A5FilterPackedDsp",
    "W4A5KernelPackedDsp",
    "W8A5PackedDsp",
    "platform_flavour",
]

_FLAVOURS = ("behavioural", "primitive")


#: Amaranth ``XilinxPlatform.family`` values and the unit family whose DSP they carry.
_PLATFORM_FAMILIES = {"series7": "xc7", "ultrascaleplus": "xcup"}


def platform_flavour(platform: object, family: str | None = None) -> str:
    """``"primitive"`` for an Amaranth Xilinx platform (Vivado build), else ``"behavioural"``.

    With ``family`` given, a Xilinx platform of another DSP generation raises
    :class:`PackingError` (a DSP48E1 unit cannot be placed on an UltraScale+ part, and vice
    versa).
    """
    fam = getattr(platform, "family", None)
    if platform is None or fam not in ("series7", "ultrascale", "ultrascaleplus"):
        return "behavioural"
    if family is not None and _PLATFORM_FAMILIES.get(fam) != family:
        raise PackingError(
            f"unit built for family {family!r} but the platform is Xilinx {fam!r}: build the "
            f"unit with family={_PLATFORM_FAMILIES.get(fam, 'a supported family')!r}"
        )
    return "primitive"


class PackedDspMultiplier(wiring.Component):
    """Several exact small products from one DSP multiply, lanes sliced with borrow correction.

    Latency 4 cycles (``registered=True``) or 0 (``registered=False``); throughput one operand
    set per cycle.

    Parameters
    ----------
    layout : PackedLayout
        Where each operand sits in ``X = A + D`` and ``B``; validated against the family's port
        widths at construction (raises :class:`PackingError` with the reason).
    flavour : ``"behavioural"`` | ``"primitive"`` | None
        ``None`` picks by platform (:func:`platform_flavour`).
    registered : bool
        Pipeline registers (the DSP's A/B/D, M, P and the fabric lane registers).

    Members
    -------
    <operand> : In(signed(bits) | unsigned(bits))
        One port per packed operand, named as in the layout (``w0``, ``x0``, ...).
    valid_in : In(1)
    lanes : Out(ArrayLayout(signed(lane_width), n_lanes))
        Lane ``k`` equals the sum of ``layout.lanes[k].products``.
    valid_out : Out(1)

    Attributes
    ----------
    layout : PackedLayout   ``layout.lanes[k].products`` names the products summed in lane ``k``
    lane_width : int   width of every ``lanes`` element (the widest lane field)
    latency : int   cycles from ``valid_in`` to ``valid_out``: 4, or 0 unregistered
    macs : int   exact products delivered per cycle
    """

    #: Add the borrow of the lanes below back into each lane (tests switch it off to show
    #: that the exhaustive checks catch the missing correction).
    _correct_borrow = True

    def __init__(
        self, layout: PackedLayout, *, flavour: str | None = None, registered: bool = True
    ) -> None:
        if flavour is not None and flavour not in _FLAVOURS:
            raise PackingError(f"flavour must be one of {_FLAVOURS} or None, not {flavour!r}")
        if flavour == "primitive" and not registered:
            raise PackingError("the primitive flavour is always registered (registered=True)")
        layout.validate()
        self.layout = layout
        self._flavour = flavour
        self._registered = registered
        self.lane_width = max(lane.width for lane in layout.lanes)
        self.latency = PACKED_MUL_LATENCY if registered else 0
        self.macs = layout.macs
        sig = {
            op.name: In(signed(op.bits) if op.signed else unsigned(op.bits))
            for op in layout.operands
        }
        sig["valid_in"] = In(1)
        sig["lanes"] = Out(data.ArrayLayout(signed(self.lane_width), len(layout.lanes)))
        sig["valid_out"] = Out(1)
        super().__init__(sig)

    def port(self, name: str) -> Signal:
        """The input port of operand ``name``."""
        return getattr(self, name)

    # -- packing ------------------------------------------------------------------------------
    def _pack(self, terms: list, width: int):
        """Packed operand as an Amaranth value of ``signed(width)``.

        Unsigned, non-overlapping terms are concatenated (no logic); otherwise they are summed.
        """
        ports = [(self.port(op.name), op, off) for op, off in terms]
        all_unsigned = all(not op.signed for _, op, _ in ports)
        ordered = sorted(ports, key=lambda t: t[2])
        disjoint = all(
            ordered[i][2] + ordered[i][1].bits <= ordered[i + 1][2] for i in range(len(ordered) - 1)
        )
        if all_unsigned and disjoint:
            parts, pos = [], 0
            for sig, op, off in ordered:
                if off > pos:
                    parts.append(Const(0, off - pos))
                parts.append(sig)
                pos = off + op.bits
            parts.append(Const(0, max(0, width - pos)))
            return Cat(*parts)[:width].as_signed()
        total = sum((sig.as_signed() if op.signed else sig) << off for sig, op, off in ports)
        return total  # validated to fit ``width`` bits; the port assignment truncates

    def elaborate(self, platform):
        m = Module()
        lay = self.layout
        ports = DSP_PORTS[lay.family]
        flavour = self._flavour or platform_flavour(platform, lay.family)
        if flavour == "primitive" and not self._registered:
            raise PackingError("the primitive flavour is always registered")

        # A gets the lowest X term, D the sum of the others (the DSP pre-adder adds them).
        xt = sorted(lay.x_terms, key=lambda t: t[1])
        a_val = self._pack(xt[:1], ports["preadd"])
        d_val = self._pack(xt[1:], ports["preadd"]) if len(xt) > 1 else None
        b_val = self._pack(list(lay.y_terms), ports["b"])

        a = Signal(signed(ports["preadd"]))
        d = Signal(signed(ports["preadd"]))
        b = Signal(signed(ports["b"]))
        m.d.comb += [a.eq(a_val), b.eq(b_val)]
        if d_val is not None:
            m.d.comb += d.eq(d_val)

        p = Signal(signed(ports["p"]))
        valid = Signal()
        if flavour == "primitive":
            from filmqnn_hw.gateware.arith.dsp_primitives import packed_dsp_instance

            m.submodules.dsp = packed_dsp_instance(
                lay.family, a=a, d=d, b=b, p=p, use_d=d_val is not None
            )
            v = self.valid_in
            for i in range(3):
                nv = Signal(name=f"valid_s{i + 1}")
                m.d.sync += nv.eq(v)
                v = nv
            m.d.comb += valid.eq(v)
        elif self._registered:
            a_r = Signal.like(a, name="a_reg")
            d_r = Signal.like(d, name="d_reg")
            b_r = Signal.like(b, name="b_reg")
            m_r = Signal(signed(ports["mult"]), name="m_reg")
            v1, v2, v3 = (Signal(name=f"valid_s{i}") for i in (1, 2, 3))
            m.d.sync += [a_r.eq(a), d_r.eq(d), b_r.eq(b), v1.eq(self.valid_in)]
            # the pre-adder is ports["preadd"] bits wide, like the DSP's (the layout fits it)
            ad = Signal(signed(ports["preadd"]), name="ad")
            m.d.comb += ad.eq(a_r + d_r)
            m.d.sync += [m_r.eq(ad * b_r), v2.eq(v1)]
            m.d.sync += [p.eq(m_r), v3.eq(v2)]
            m.d.comb += valid.eq(v3)
        else:
            ad = Signal(signed(ports["preadd"]), name="ad")
            m.d.comb += [ad.eq(a + d), p.eq(ad * b), valid.eq(self.valid_in)]

        dom = m.d.sync if self._registered else m.d.comb
        for k, lane in enumerate(lay.lanes):
            field = p[lane.offset : lane.offset + lane.width]
            if lane.offset > 0 and self._correct_borrow:
                fixed = (field + p[lane.offset - 1])[: lane.width].as_signed()
            else:
                fixed = field.as_signed()
            dom += self.lanes[k].eq(fixed)
        dom += self.valid_out.eq(valid)
        return m


class _FixedLayoutPackedDsp(PackedDspMultiplier):
    """A :class:`PackedDspMultiplier` on one of the fixed layouts of :mod:`filmqnn_hw.spec.packing`.

    Subclasses name the layout function in ``_make_layout``; the default spacing is that
    function's own default.

    Parameters
    ----------
    family : ``"xc7"`` | ``"xcup"``
        DSP48E1 (25-bit pre-adder) or DSP48E2 (27-bit); the layout is validated against it
        (:class:`PackingError` if it does not fit).
    spacing : int | None
        Bit distance between packed fields; sets ``lane_width``. ``None``: the layout's
        default (given in each subclass).
    full_range : bool
        Include the most negative weight code (-8 for 4-bit, -128 for 8-bit weights) in the
        weight domain (``PackedDotUnit.from_config`` passes ``config.w4_min == -8`` or
        ``config.w8_min == -128``; the default configs use the symmetric range).
    flavour, registered :
        As for :class:`PackedDspMultiplier`.

    Members as for :class:`PackedDspMultiplier`, the lanes ``signed(spacing)``; each subclass
    names its operand ports and the order of its lanes.
    """

    _make_layout: ClassVar[Callable[..., PackedLayout]]

    def __init__(
        self,
        family: str = "xc7",
        *,
        spacing: int | None = None,
        full_range: bool = True,
        flavour: str | None = None,
        registered: bool = True,
    ) -> None:
        make = type(self)._make_layout
        layout = (
            make(family, full_range=full_range)
            if spacing is None
            else make(family, spacing, full_range)
        )
        super().__init__(layout, flavour=flavour, registered=registered)


class W4A5FilterPackedDsp(_FixedLayoutPackedDsp):
    """Four W4A5 products per DSP (paper Fig. 1(c)): two output channels' weights x two activations.

    Lanes: ``[w0*x0, w0*x1, w1*x0, w1*x1]`` (10-bit signed ports; values 9-bit).
    ``w0`` feeds A, ``w1`` feeds D at bit ``2*spacing``, ``x0``/``x1`` feed B at 0/``spacing``.
    Latency 4, one set per cycle (see :class:`PackedDspMultiplier`).

    Operands ``w0, w1``: ``In(signed(4))``, ``x0, x1``: ``In(unsigned(5))``; four lanes in
    the order above. Parameters and members as for :class:`_FixedLayoutPackedDsp`:
    ``spacing`` defaults to 10 (lanes of 10, 10, 10, 9 bits), ``full_range`` adds -8 to the
    weight domain.
    """

    _make_layout = staticmethod(w4a5_filter_layout)


class W4A5KernelPackedDsp(_FixedLayoutPackedDsp):
    """Six W4A5 MACs per DSP: three kernel-row weights times two activations (polynomial product).

    Lanes: ``[w0x0, w1x0 + w0x1, w2x0 + w1x1, w2x1]`` (10-bit signed). For a correlation
    ``y[t] = sum_k w[k] x[t+k]`` feed the kernel row reversed. ``w0`` feeds A, ``w1 << s`` +
    ``w2 << 2s`` feed D (one 5-bit borrow adder in fabric), ``x0``/``x1`` feed B.
    Latency 4, one set per cycle.

    Operands ``w0, w1, w2``: ``In(signed(4))``, ``x0, x1``: ``In(unsigned(5))``; four lanes
    in the order above. Parameters and members as for :class:`_FixedLayoutPackedDsp`:
    ``spacing`` defaults to 10 (lanes of 10, 10, 10, 9 bits), ``full_range`` adds -8 to the
    weight domain.
    """

    _make_layout = staticmethod(w4a5_kernel_layout)


class W8A5PackedDsp(_FixedLayoutPackedDsp):
    """Two W8A5 products per DSP (paper Fig. 1(b)): one 8-bit weight times two activations.

    Lanes ``[x0*w, x1*w]`` (14-bit signed ports at spacing 14; values 13-bit). ``x0``/``x1``
    are concatenated onto A (no pre-adder), ``w`` feeds B. Latency 4, one set per cycle.

    Operands ``x0, x1``: ``In(unsigned(5))``, ``w``: ``In(signed(8))``; two lanes in the
    order above. Parameters and members as for :class:`_FixedLayoutPackedDsp`: ``spacing``
    defaults to 14 (lanes of 14 and 13 bits), ``full_range`` adds -128 to the weight domain.
    """

    _make_layout = staticmethod(w8a5_layout)
