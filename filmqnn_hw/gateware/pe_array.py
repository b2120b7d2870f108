"""The mixed-precision PE array: ``tm`` output lanes, two output pixels per pair of cycles.

See :class:`PEArray` for the interface and timing, ``docs/architecture.md`` section 1 for its
place in the datapath and :func:`filmqnn_hw.spec.weight_image.pack_conv_weights` for the weight
record
it reads.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.arith.dot import LutDotUnit, PackedDotUnit
from filmqnn_hw.gateware.module_sharing import share
from filmqnn_hw.spec.config import ACT_BITS, AcceleratorConfig
from filmqnn_hw.spec.geometry import (
    Engine,
    PEMode,
    engine_plan,
    half_slots,
    input_slots,
    pe_latency,
    record_bits,
    record_rows,
)

__all__ = ["PEMode", "PEArray"]


class PEArray(wiring.Component):
    """Mixed-precision PE array: ``tm`` lanes x ``tn`` slots, two output pixels per pair.

    A *pair* computes output pixels 0 and 1 of every lane in two cycles: the engine drives
    ``valid=1, phase=0`` and then (possibly after ``valid=0`` gaps) ``valid=1, phase=1``,
    holding ``x``, ``record`` and ``mode`` over the pair. Phase ``h`` multiplies the input slots
    ``[h H, h H + H)`` (``H = ceil(tn / 2)``, slots ``>= tn`` give 0); every unit clears its
    accumulator on phase 0, so after phase 1 it holds the pair's sum.

    Modes (``mode``, :class:`PEMode`), for pixel ``p`` and lane ``m``:

    * ``DENSE`` (0): ``sum[p][m] = sum_{i < tn} w[m][i] x[p][i]``, ``w`` from the dense record
      (``L = tn`` bytes per row).
    * ``DW`` (1): ``sum[p][m] = sum_{j < dw_taps} w_dw[j][m] x_j[p][m]`` with ``x_0 = x`` and
      ``x_j = x_taps[p][j - 1]`` (``j >= 1``): up to ``dw_taps`` taps of one kernel row per
      pair. ``w_dw[j]`` is depthwise record ``j`` (``L = 1``, ``record_rows`` bytes) at bytes
      ``j R .. j R + R - 1`` of ``record``; a group of fewer taps gives the others weight 0.
    * ``UNIT`` (2, also 3): ``sum[p][m] = x[p][m]``; ``record`` is ignored.

    Latency ``latency`` cycles from the phase-1 input cycle to the one-cycle ``valid_out``
    pulse: the slowest unit's, with any DSP engine ``PackedDotUnit.latency_of(H)`` (6 for
    ``H <= 8``, one more per adder-tree stage: 7 up to 64), else ``LutDotUnit.latency_of(H)``
    (3 for ``H <= 8``),
    ``sum`` is valid in that cycle (it changes when the next pair's phase 0 arrives).
    Throughput one pair per 2 cycles, i.e. ``tn`` MACs per lane per cycle for both pixels
    together; pairs may follow back to back.

    Engines (:func:`engine_plan`); every unit has ``H`` multipliers and is sized for
    ``config.max_fan_in``:

    * 8-bit lanes ``0 .. w8_dsp_lanes-1``: one ``w8a5`` :class:`PackedDotUnit` per lane
      (``x0``/``x1`` = pixel 0/1, ``w`` = the lane's weight: 2 MACs per DSP).
    * 8-bit lanes ``w8_dsp_lanes .. n8-1``: two 8-bit :class:`LutDotUnit` per lane (one per pixel).
    * 4-bit lanes ``n8 .. n8+w4_dsp_lanes-1``, in pairs ``(a, b)``: one ``w4a5_filter``
      :class:`PackedDotUnit` per pair (``w0``/``w1`` = lane a/b, ``x0``/``x1`` = pixel 0/1:
      4 MACs per DSP); the lane-to-accumulator map is read from ``layout.lanes``. An odd last
      lane gets a zero-weight phantom partner.
    * The remaining 4-bit lanes: two 4-bit :class:`LutDotUnit` per lane.

    With DSP engines present, each LUT accumulator is delayed by the difference of the two
    latencies (registers at the LUT unit's accumulator width) so that every lane's sum is valid
    in the same cycle. All sums are sign-extended to ``config.acc_bits``.

    Depthwise and unit modes run on the same units (no separate datapath): multiplier ``j`` of
    each unit (``j < dw_taps``) takes the lane's own activation of tap ``j`` and ``w_dw[j]``;
    in unit mode multiplier 0 takes the lane's activation and weight 1, and every other
    multiplier gets activation or weight 0. A single-lane unit multiplies in phase 0 and gets
    weight 0 in phase 1; a ``w4_dsp`` pair does lane ``a`` in phase 0 and lane ``b`` in phase 1,
    each with the partner's weight 0. So ``mode`` only steers operand multiplexers at the unit
    inputs and the latency is the dense one.

    Parameters
    ----------
    config : AcceleratorConfig
        ``tm``, ``tn``, ``n8_slots``, the four engine lane counts, ``family``, ``max_fan_in``
        and the weight ranges are read.
    dw_taps : int
        Depthwise taps per pair (``1 <= dw_taps <= H``, default 1): the multipliers of a unit
        used in ``DW`` mode. The accelerator passes ``geometry(config).dw_taps``.

    Members
    -------
    x : In(ArrayLayout(ArrayLayout(unsigned(5), CB), 2))
        Input codes of pixel 0 (``x[0]``) and pixel 1 (``x[1]``); ``CB = max(tn, tm)``.
        Slot ``i`` = input channel ``i`` (dense) or the channel of lane ``i`` (dw/unit).
    x_taps : In(ArrayLayout(ArrayLayout(ArrayLayout(unsigned(5), tm), dw_taps - 1), 2))
        Only with ``dw_taps > 1``: ``x_taps[p][j - 1][m]`` is lane ``m``'s activation of
        depthwise tap ``j`` for pixel ``p`` (tap 0 is ``x[p][m]``).
    record : In(unsigned(record_bits))
        One weight tap record, byte ``b`` at bits ``8b .. 8b+7`` (``record_rows x tn`` bytes).
    mode : In(2)
        :class:`PEMode`.
    valid, phase : In(1)
    sum : Out(ArrayLayout(ArrayLayout(signed(acc_bits), tm), 2))
        ``sum[p][m]``: pixel ``p``, lane ``m``, ``acc_bits = config.acc_bits``.
    valid_out : Out(1)
        One cycle, ``latency`` cycles after each phase-1 input cycle.

    Attributes
    ----------
    config, dw_taps : the parameters
    engines : tuple[Engine, ...]   the lane plan (``spec.geometry.engine_plan``)
    latency : int   ``spec.geometry.pe_latency``
    half : int   ``H``: slots per phase (multipliers per unit)
    cb, rows, record_bits : input slots, weight-record rows and bits (``spec.geometry``)
    """

    def __init__(self, config: AcceleratorConfig, *, dw_taps: int = 1) -> None:
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        if not isinstance(dw_taps, int) or not 1 <= dw_taps <= half_slots(config):
            raise ValueError(f"dw_taps must be an integer from 1 to H = ceil(tn / 2) = "
                             f"{half_slots(config)} (the multipliers of a unit), not {dw_taps!r}")
        self.config = config
        self.dw_taps = dw_taps
        self.engines = engine_plan(config)
        self.latency = pe_latency(config)
        self.half = half_slots(config)
        self.cb = input_slots(config)
        self.rows = record_rows(config)
        self.record_bits = record_bits(config)
        cb = input_slots(config)
        acc = signed(config.acc_bits)
        taps = {}
        if dw_taps > 1:
            taps["x_taps"] = In(data.ArrayLayout(data.ArrayLayout(
                data.ArrayLayout(unsigned(ACT_BITS), config.tm), dw_taps - 1), 2))
        super().__init__(
            {
                "x": In(data.ArrayLayout(data.ArrayLayout(unsigned(ACT_BITS), cb), 2)),
                **taps,
                "record": In(unsigned(record_bits(config))),
                "mode": In(2),
                "valid": In(1),
                "phase": In(1),
                "sum": Out(data.ArrayLayout(data.ArrayLayout(acc, config.tm), 2)),
                "valid_out": Out(1),
            }
        )

    @property
    def dsp_multipliers(self) -> int:
        """Packed DSP multipliers (one DSP each) in the array."""
        return sum(self.half for e in self.engines if e.kind.endswith("_dsp"))

    @property
    def lut_multipliers(self) -> int:
        """LUT multipliers in the array."""
        return sum(2 * self.half for e in self.engines if e.kind.endswith("_lut"))

    # -- record fields ----------------------------------------------------------------------------
    def _weight(self, lane: int, slot: int, lanes: int):
        """Signed weight of ``lane`` at ``slot`` in a record with ``lanes`` bytes per row."""
        n8 = self.config.n8_slots
        if lane < n8:
            b = lane * lanes + slot
            return self.record[8 * b : 8 * b + 8].as_signed()
        j = lane - n8
        off = 8 * ((n8 + j // 2) * lanes + slot) + 4 * (j % 2)
        return self.record[off : off + 4].as_signed()

    def _weight_dw(self, lane: int, tap: int):
        """Signed depthwise weight of ``lane`` for tap ``tap`` (record ``tap`` of the group)."""
        n8, rows = self.config.n8_slots, self.rows
        if lane < n8:
            b = tap * rows + lane
            return self.record[8 * b : 8 * b + 8].as_signed()
        j = lane - n8
        off = 8 * (tap * rows + n8 + j // 2) + 4 * (j % 2)
        return self.record[off : off + 4].as_signed()

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        tn, h, dwt = cfg.tn, self.half, self.dw_taps
        cfg_key = cfg.config_hash()  # units are shared (in Verilog) per config and kind
        dense = Signal(name="dense")
        unit = Signal(name="unit")
        m.d.comb += [dense.eq(self.mode == PEMode.DENSE), unit.eq(self.mode[1])]

        # activation of multiplier i, pixel p (shared by all units). Multipliers i < dw_taps
        # are overridden per unit in dw/unit mode, the others carry 0 there.
        xs = [[Signal(unsigned(ACT_BITS), name=f"x{p}_m{i}") for i in range(h)] for p in range(2)]
        for p in range(2):
            for i in range(h):
                ph1 = self.x[p][h + i] if h + i < tn else 0
                sel = Mux(self.phase, ph1, self.x[p][i])
                m.d.comb += xs[p][i].eq(sel if i < dwt else Mux(dense, sel, 0))

        def x_own(p: int, lane: int, i: int):
            """Lane's own activation of depthwise tap ``i`` (tap 0: the lane's slot of x)."""
            return self.x[p][lane] if i == 0 else self.x_taps[p][i - 1][lane]

        def w_slot(lane: int | None, i: int):
            """Dense weight of multiplier ``i`` in the current phase."""
            if lane is None:
                return 0
            lo = self._weight(lane, i, tn)
            if h + i >= tn:  # phase 1 has no slot here: its activation is 0
                return lo
            return Mux(self.phase, self._weight(lane, h + i, tn), lo)

        def w_dw(lane: int, i: int):
            """Weight of multiplier ``i`` in dw/unit mode (unit: 1 for multiplier 0, else 0)."""
            if i == 0:
                return Mux(unit, 1, self._weight_dw(lane, 0))
            return Mux(unit, 0, self._weight_dw(lane, i))

        def drive_common(u, kind: str) -> None:
            m.d.comb += [u.valid_in.eq(self.valid), u.clear.eq(~self.phase)]

        for k, eng in enumerate(self.engines):
            units = self._make_units(eng)
            if eng.kind == "w4_dsp":
                (u,) = units
                m.submodules[f"w4dsp{k}"] = share(platform, u, (cfg_key, eng.kind, h))
                a, b = eng.lanes
                drive_common(u, eng.kind)
                for i in range(dwt, h):
                    m.d.comb += [
                        u.w0[i].eq(w_slot(a, i)),
                        u.w1[i].eq(w_slot(b, i)),
                        u.x0[i].eq(xs[0][i]),
                        u.x1[i].eq(xs[1][i]),
                    ]
                # multipliers i < dw_taps: dw/unit does lane a in phase 0, lane b in phase 1
                for i in range(dwt):
                    dw_w1 = Mux(self.phase, w_dw(b, i), 0) if b is not None else 0
                    m.d.comb += [
                        u.w0[i].eq(Mux(dense, w_slot(a, i), Mux(self.phase, 0, w_dw(a, i)))),
                        u.w1[i].eq(Mux(dense, w_slot(b, i), dw_w1)),
                    ]
                    for p, port in enumerate((u.x0, u.x1)):
                        own = (x_own(p, a, i) if b is None
                               else Mux(self.phase, x_own(p, b, i), x_own(p, a, i)))
                        m.d.comb += port[i].eq(Mux(dense, xs[p][i], own))
                names = {"w0": a, "w1": b, "x0": 0, "x1": 1}
                for idx, lane_lay in enumerate(u.layout.lanes):
                    lane, pix = self._lane_of(lane_lay.products, names)
                    if lane is not None:
                        m.d.comb += self.sum[pix][lane].eq(u.acc[idx])
            elif eng.kind == "w8_dsp":
                (u,) = units
                m.submodules[f"w8dsp{k}"] = share(platform, u, (cfg_key, eng.kind, h))
                (lane,) = eng.lanes
                drive_common(u, eng.kind)
                for i in range(dwt, h):
                    m.d.comb += [
                        u.w[i].eq(w_slot(lane, i)),
                        u.x0[i].eq(xs[0][i]),
                        u.x1[i].eq(xs[1][i]),
                    ]
                for i in range(dwt):
                    m.d.comb += u.w[i].eq(Mux(dense, w_slot(lane, i),
                                              Mux(self.phase, 0, w_dw(lane, i))))
                    for p, port in enumerate((u.x0, u.x1)):
                        m.d.comb += port[i].eq(Mux(dense, xs[p][i], x_own(p, lane, i)))
                names = {"w": lane, "x0": 0, "x1": 1}
                for idx, lane_lay in enumerate(u.layout.lanes):
                    ln, pix = self._lane_of(lane_lay.products, names)
                    m.d.comb += self.sum[pix][ln].eq(u.acc[idx])
            else:
                (lane,) = eng.lanes
                wd = []
                for i in range(dwt):
                    wi = Signal.like(units[0].w[i], name=f"lut{k}_w{i}")
                    m.d.comb += wi.eq(Mux(dense, w_slot(lane, i),
                                          Mux(self.phase, 0, w_dw(lane, i))))
                    wd.append(wi)
                for p, u in enumerate(units):
                    m.submodules[f"{eng.kind}{k}_p{p}"] = share(platform, u, (cfg_key, eng.kind, h))
                    drive_common(u, eng.kind)
                    for i in range(dwt):
                        m.d.comb += [u.w[i].eq(wd[i]),
                                     u.x[i].eq(Mux(dense, xs[p][i], x_own(p, lane, i)))]
                    for i in range(dwt, h):
                        m.d.comb += [u.w[i].eq(w_slot(lane, i)), u.x[i].eq(xs[p][i])]
                    # align to the array latency: delay the accumulator (FFs at its width)
                    acc = u.acc
                    for s in range(self.latency - u.latency):
                        d = Signal.like(u.acc, name=f"lut{k}_p{p}_d{s + 1}")
                        m.d.sync += d.eq(acc)
                        acc = d
                    m.d.comb += self.sum[p][lane].eq(acc)

        self._drive_valid_out(m)
        return m

    def _drive_valid_out(self, m: Module) -> None:
        """``valid_out``: the phase-1 input cycles delayed by ``latency``."""
        done = self.valid & self.phase
        for s in range(self.latency):
            d = Signal(name=f"done_s{s + 1}")
            m.d.sync += d.eq(done)
            done = d
        m.d.comb += self.valid_out.eq(done)

    def _make_units(self, eng: Engine) -> list:
        cfg, h = self.config, self.half
        if eng.kind == "w4_dsp":
            return [PackedDotUnit.from_config(cfg, "w4a5_filter", h)]
        if eng.kind == "w8_dsp":
            return [PackedDotUnit.from_config(cfg, "w8a5", h)]
        bits = 8 if eng.kind == "w8_lut" else 4
        return [LutDotUnit.from_config(cfg, bits, h) for _ in range(2)]

    @staticmethod
    def _lane_of(products: tuple[tuple[str, str], ...], names: dict) -> tuple[int | None, int]:
        """(lane, pixel) of a packed accumulator holding one weight x activation product."""
        if len(products) != 1:
            raise ValueError(f"a filter-packed lane holds one product, not {products}")
        (a, b) = products[0]
        w_name, x_name = (a, b) if a.startswith("w") else (b, a)
        return names[w_name], names[x_name]
