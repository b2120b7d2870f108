"""Calibrate the resource model's control, PE-overhead, depthwise-tap and requantization terms on
synthesised accelerators, and write them to ``filmqnn_hw/models/rtl_coefficients.json``.

    python benchmarks/rtl_calibrate.py                    # synthesise missing records, fit, write
    python benchmarks/rtl_calibrate.py --fit-only         # refit the recorded measurements
    python benchmarks/rtl_calibrate.py --points z24 --yosys pyosys
    python benchmarks/rtl_calibrate.py --requant          # re-synthesise the requantization bank

The measurements live in ``benchmarks/results/rtl_calibration.json``:

* ``points``: for each calibration config (the 16x16 test array, a 24x32 PYNQ-Z2 array,
  ZCU102-shaped arrays of 12 and 24 lanes with 128 input channels), flat ``synth_xilinx`` of the
  whole generated top (``filmqnn_hw.flows.verilog.emit_verilog``) and of the PE array alone
  (``filmqnn_hw.gateware.pe_array.PEArray``; on xcup also with ``-family xc7`` so the DSP48E2
  registers yosys leaves in fabric can be subtracted);
* ``requant_bank``: a 4-unit :class:`filmqnn_hw.gateware.requant.RequantBank` per family;
* ``ab``: two A/B syntheses recorded with the commit they were run at: the same top with and
  without the depthwise tap groups, and the PYNQ-Z2 top with 1088- and 2176-bit weight-memory
  slices.

From them it derives (``rtl_coefficients.json`` keys):

* ``requant_lane``: the bank's LUT / FF / DSP per unit;
* ``dw_taps``: the A/B difference less the counted register bits (``ff_fixed``), and per lane
  and extra tap the LUT beyond one per held column bit (``lut_per_lane_tap``);
* ``overhead[*].per_slice_bit``: the slice A/B difference per bit; ``per_port`` fixed from the
  DMA and skid-buffer modules (400 LUT, 600 FF);
* by least squares on :data:`FIT_POINTS` (the other points are out-of-sample checks):
  ``pe_per_mac_lut`` (PE-array LUT beyond the engines' per-MAC unit costs, per ``tm x tn``),
  ``pe_ff_scale`` with a per-lane FF term (PE-array FF against the engines' per-MAC FF), and
  ``overhead[lut|ff]`` (top minus PE array minus requantization units minus tap groups, as
  ``base + per_lane x tm + per_record_bit x record bits``);
* ``overhead.dsp.base``: the median over the fitted points of their DSPs beyond engines and
  requantization units (they may differ by one, else the script stops).

It writes the coefficients and every point's model-vs-synthesis ratio (with the new
coefficients) to ``benchmarks/results/rtl_calibration.md``; ``tests/models/test_resources.py``
holds the model to the recorded points within 10%. A synthesis of a ZCU102-sized top takes an
hour; the points here take 1-17 minutes each with ``--yosys pyosys``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
RESULTS = HERE / "results"


#: Fixed before the fit: the DMA engine and skid buffers of one AXI port.
PER_PORT = {"lut": 400.0, "ff": 600.0}
#: The tap groups' column select: one LUT per held input-column bit (the rest of the A/B
#: difference is the per-lane operand multiplexers).
DW_LUT_PER_COLUMN_BIT = 1.0
REQUANT_BANK_LANES = 4

#: Points the coefficients are fitted to; the others are out-of-sample checks.
FIT_POINTS = ("mid", "pynq_z2_prev", "z12")


def points() -> dict:
    """Calibration configs by name (fixed arrays, independent of the current search)."""
    from filmqnn_hw.spec.config import AcceleratorConfig

    mid = AcceleratorConfig.small(tm=16, tn=16, n8_slots=1, act_pack=8, axi_data_bits=128,
                                  tr=8, tc=8)
    pynq = AcceleratorConfig(
        board="pynq_z2", part="xc7z020clg400-1", family="xc7", clock_mhz=100.0, tm=24, tn=32,
        tr=16, tc=30, n8_slots=2, w4_dsp_lanes=20, w4_lut_lanes=2, w8_dsp_lanes=0,
        w8_lut_lanes=2, kernel_packing=False, act_pack=4, axi_data_bits=64, axi_ports=4,
        ddr_bytes_per_cycle=15.99, wfill_cycles=16, requant_lanes=12)
    z12 = AcceleratorConfig(
        board="zcu102", part="xczu9eg-ffvb1156-2-e", family="xcup", clock_mhz=150.0, tm=12,
        tn=128, tr=14, tc=60, n8_slots=1, w4_dsp_lanes=11, w4_lut_lanes=0, w8_dsp_lanes=1,
        w8_lut_lanes=0, kernel_packing=False, act_pack=4, axi_data_bits=128, axi_ports=6,
        ddr_bytes_per_cycle=85.32, wfill_cycles=16)
    z24 = z12.replace(tm=24, n8_slots=2, w8_dsp_lanes=2, w4_dsp_lanes=22)
    return {"mid": mid, "pynq_z2_prev": pynq, "z12": z12, "z24": z24}


def synth_point(cfg, with_pe: bool = True) -> dict:
    from filmqnn_hw.flows.synth import synthesize_verilog, to_verilog, yosys_version
    from filmqnn_hw.flows.verilog import emit_verilog
    from filmqnn_hw.gateware.pe_array import PEArray
    from filmqnn_hw.gateware.top import TOP_NAME

    def rec(r, t0):
        return {"lut": r.lut, "ff": r.ff, "dsp": r.dsp, "carry": r.carry, "lutram": r.lutram,
                "bram36": sum(n for t, n in r.cells.items() if t.startswith("RAMB36"))
                + 0.5 * sum(n for t, n in r.cells.items() if t.startswith("RAMB18")),
                "lut_levels": r.lut_levels, "s": round(time.perf_counter() - t0)}

    from filmqnn_hw.spec.geometry import geometry

    out = {"tool": yosys_version(), "config": json.loads(cfg.to_json()),
           "dw_taps": geometry(cfg).dw_taps, "tile_banks": True, "tree_pipeline": True}
    t0 = time.perf_counter()
    out["top"] = rec(synthesize_verilog(emit_verilog(cfg), TOP_NAME, cfg.family,
                                        timeout=6 * 3600), t0)
    if not with_pe:  # an out-of-sample check needs the whole top only
        return out
    t0 = time.perf_counter()
    out["pe"] = rec(synthesize_verilog(to_verilog(PEArray(cfg), "pe"), "pe", cfg.family,
                                       timeout=6 * 3600), t0)
    if cfg.family != "xc7":
        t0 = time.perf_counter()
        xc7 = cfg.replace(family="xc7")
        out["pe_xc7"] = rec(synthesize_verilog(to_verilog(PEArray(xc7), "pe"), "pe", "xc7",
                                               timeout=6 * 3600), t0)
    return out


def model_of_point(d: dict) -> dict[str, float]:
    """The model's LUT/FF/DSP/BRAM36 for calibration point ``d`` as it was synthesised: a point
    synthesised before the RTL had depthwise tap groups (no ``dw_taps`` recorded) is compared
    with the model without its ``dw_taps`` part, one synthesised before the banked residual
    and output tiles (no ``tile_banks``) with the single-bank tiles' BRAM36, one synthesised
    before the adder trees were pipelined (no ``tree_pipeline``) without those registers."""
    from filmqnn_hw.models.resources import dw_tap_logic, predict, tile_bank_bram36
    from filmqnn_hw.spec.config import AcceleratorConfig

    cfg = AcceleratorConfig.from_dict(d["config"])
    p = predict(cfg)
    dw = dw_tap_logic(cfg) if "dw_taps" not in d else {"lut": 0.0, "ff": 0.0}
    tb = tile_bank_bram36(cfg) if "tile_banks" not in d else 0.0
    tp = p.parts.get("tree_pipeline", {}).get("ff", 0.0) if "tree_pipeline" not in d else 0.0
    return {"lut": p.lut - dw["lut"], "ff": p.ff - dw["ff"] - tp, "dsp": p.dsp,
            "bram36": p.bram36 - tb}


def synth_requant(family: str) -> dict:
    """A :data:`REQUANT_BANK_LANES`-unit requantization bank with the residual term, synthesised."""
    from filmqnn_hw.flows.synth import synthesize, yosys_version
    from filmqnn_hw.gateware.requant import RequantBank
    from filmqnn_hw.spec.config import AcceleratorConfig

    t0 = time.perf_counter()
    r = synthesize(RequantBank(AcceleratorConfig.small(family=family), lanes=REQUANT_BANK_LANES,
                               residual=True), "rq", family)
    return {"tool": yosys_version(), "commit": git_commit(), "lanes": REQUANT_BANK_LANES,
            "lut": r.lut, "ff": r.ff, "dsp": r.dsp, "s": round(time.perf_counter() - t0)}


def git_commit() -> str:
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=HERE, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=HERE, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes" if dirty.strip() else "")


def measured_terms(data: dict) -> dict:
    """``requant_lane``, ``dw_taps`` and the per-slice-bit terms from their records."""
    from filmqnn_hw.spec.config import AcceleratorConfig
    from filmqnn_hw.spec.geometry import geometry

    lanes = {fam: {res: rec[res] / rec["lanes"] for res in ("lut", "ff", "dsp")}
             for fam, rec in sorted(data["requant_bank"].items())}
    ab = data["ab"]["dw_taps"]
    cfg = AcceleratorConfig.from_dict(data["points"][ab["point"]]["config"])
    geo, tm = geometry(cfg), cfg.tm
    extra = geo.dw_taps - 1
    col_bits = 5 * geo.wpb * geo.cb
    reg_bits = 5 * (geo.wpb - 1) * geo.cb + 5 * 2 * extra * tm
    d_lut = ab["with"]["lut"] - ab["without"]["lut"]
    d_ff = ab["with"]["ff"] - ab["without"]["ff"]
    dw = {"lut_per_lane_tap": (d_lut - DW_LUT_PER_COLUMN_BIT * col_bits) / (extra * tm),
          "lut_per_column_bit": DW_LUT_PER_COLUMN_BIT, "ff_fixed": float(d_ff - reg_bits)}
    sl = data["ab"]["slice"]
    per_slice = {res: (sl["wide"][res] - sl["narrow"][res]) / sl["bits"] for res in ("lut", "ff")}
    return {"requant_lane": lanes, "dw_taps": dw, "per_slice": per_slice}


def _fit_rows(data: dict) -> list[dict]:
    """Per fitted point: the measured parts the least-squares fits take (see ``fit``)."""
    from filmqnn_hw.models.resources import arith_costs as costs_of
    from filmqnn_hw.models.resources import (
        axi_ports_built,
        dw_tap_logic,
        engine_macs,
        record_bits,
        requant_lane_cost,
        requant_units,
        slice_bits,
        tree_pipeline_ff,
    )
    from filmqnn_hw.spec.config import AcceleratorConfig

    rows = []
    for name, d in sorted(data["points"].items()):
        if name not in FIT_POINTS:
            continue
        cfg = AcceleratorConfig.from_dict(d["config"])
        c = costs_of(cfg.family, False)
        m = engine_macs(cfg, "rtl")
        # Vivado-like register packing; the adder trees' partial-sum registers (a counted
        # part of their own, in points synthesised after they were added) are taken out
        tp = tree_pipeline_ff(cfg) if d.get("tree_pipeline") else 0.0
        pe_ff = d.get("pe_xc7", d["pe"])["ff"] - tp
        rq = requant_lane_cost(cfg.family)
        units = requant_units(cfg)
        # points synthesised before the RTL had depthwise tap groups (no "dw_taps" recorded)
        # do not contain that logic
        dw = dw_tap_logic(cfg) if d.get("dw_taps", 1) > 1 else {"lut": 0.0, "ff": 0.0}
        # the top with its PE array's Vivado-like FFs (tree registers out) in place of the raw
        top_ff = d["top"]["ff"] - d["pe"]["ff"] + pe_ff - units * (
            rq["ff"] - requant_lane_cost("xc7")["ff"])
        rows.append({"tm": cfg.tm, "tn": cfg.tn, "ports": axi_ports_built(cfg),
                     "rec": record_bits(cfg), "slice": slice_bits(cfg),
                     "eng_lut": sum(n * c.lut[k] for k, n in m.items()),
                     "eng_ff": sum(n * c.ff[k] for k, n in m.items()),
                     "pe_lut": d["pe"]["lut"], "pe_ff": pe_ff,
                     "other_lut": d["top"]["lut"] - d["pe"]["lut"] - units * rq["lut"]
                     - dw["lut"],
                     "other_ff": top_ff - pe_ff - units * requant_lane_cost("xc7")["ff"]
                     - dw["ff"]})
    return rows


def fit(data: dict) -> dict:
    """The coefficient file's content and per-point ratios (see module docstring)."""
    import numpy as np

    from filmqnn_hw.models.rtl_coefficients import FORMAT_VERSION, using_rtl_coefficients

    meas = measured_terms(data)
    zero = {t: 0.0 for t in ("base", "per_port", "per_lane", "per_record_bit", "per_slice_bit")}
    coef: dict = {"format_version": FORMAT_VERSION, "pe_per_mac_lut": 0.0, "pe_ff_scale": 1.0,
                  "overhead": {"lut": dict(zero), "ff": dict(zero), "dsp": dict(zero)},
                  "dw_taps": meas["dw_taps"], "requant_lane": meas["requant_lane"]}
    with using_rtl_coefficients(coef):
        rows = _fit_rows(data)
        dsp_rest = {name: d["top"]["dsp"] - model_of_point(d)["dsp"]
                    for name, d in sorted(data["points"].items())}
    fitted_rest = sorted(v for n, v in dsp_rest.items() if n in FIT_POINTS)
    if fitted_rest[-1] - fitted_rest[0] > 1:
        raise SystemExit(f"the points' DSPs beyond engines and requantization differ by more "
                         f"than one: {dsp_rest}")
    coef["overhead"]["dsp"]["base"] = float(np.median(fitted_rest))
    a = np.array([[r["tm"] * r["tn"]] for r in rows], float)
    y = np.array([r["pe_lut"] - r["eng_lut"] for r in rows], float)
    coef["pe_per_mac_lut"] = float(np.linalg.lstsq(a, y, rcond=None)[0][0])
    a = np.array([[r["eng_ff"], r["tm"]] for r in rows], float)
    y = np.array([r["pe_ff"] for r in rows], float)
    pe_ff_scale, pe_ff_lane = np.linalg.lstsq(a, y, rcond=None)[0]
    coef["pe_ff_scale"] = float(pe_ff_scale)
    for res in ("lut", "ff"):
        a = np.array([[1.0, r["tm"], r["rec"]] for r in rows], float)
        y = np.array([r[f"other_{res}"] - PER_PORT[res] * r["ports"]
                      - meas["per_slice"][res] * r["slice"] for r in rows], float)
        base, lane, rec = np.linalg.lstsq(a, y, rcond=None)[0]
        if res == "ff":
            lane += pe_ff_lane
        coef["overhead"][res] = {"base": float(base), "per_port": PER_PORT[res],
                                 "per_lane": float(lane), "per_record_bit": float(rec),
                                 "per_slice_bit": meas["per_slice"][res]}
    with using_rtl_coefficients(coef):
        ratios = point_ratios(data)
    coef["provenance"] = {
        "command": "python benchmarks/rtl_calibrate.py", "commit": git_commit(),
        "measurements": "benchmarks/results/rtl_calibration.json",
        "fit_points": list(FIT_POINTS),
        "date": time.strftime("%Y-%m-%d")}
    return {"coefficients": coef, "ratios_with_current_model": ratios}


def point_ratios(data: dict) -> dict:
    """Synthesis / model of every point, with the coefficients in use."""
    from filmqnn_hw.models.resources import yosys_ff_excess
    from filmqnn_hw.spec.config import AcceleratorConfig

    ratios = {}
    for name, d in sorted(data["points"].items()):
        cfg = AcceleratorConfig.from_dict(d["config"])
        p = model_of_point(d)
        top = d["top"]
        ratios[name] = {
            "fitted": name in FIT_POINTS,
            "lut": top["lut"] / p["lut"], "ff": (top["ff"] - yosys_ff_excess(cfg)) / p["ff"],
            "dsp": top["dsp"] / p["dsp"],
            "bram36": top["bram36"] / p["bram36"] if p["bram36"] else 0}
    return ratios


def render(data: dict, result: dict) -> str:
    from filmqnn_hw.models.resources import yosys_ff_excess
    from filmqnn_hw.spec.config import AcceleratorConfig

    md = ["# Resource-model calibration on synthesised accelerators", "",
          "Produced by `python benchmarks/rtl_calibrate.py` (see its docstring) at commit "
          f"{result['coefficients']['provenance']['commit']}: flat "
          "`synth_xilinx` of whole generated tops and of their PE arrays; the control and "
          "PE-overhead coefficients of the resource model are fitted to these points by least "
          "squares and written to `filmqnn_hw/models/rtl_coefficients.json`; the ratios below "
          "use them. FF on xcup: yosys leaves DSP48E2 registers in fabric; the column "
          "subtracts `resources.yosys_ff_excess` (per-DSP difference of xcup and xc7 "
          "syntheses of the packed units), as `benchmarks/rtl_synth.py` does. Points "
          "synthesised before the RTL had depthwise tap groups (no `dw_taps` in the data) are "
          "compared with the model without its `dw_taps` part; points synthesised before the "
          "banked residual and output tiles (no `tile_banks`) with the single-bank tiles' "
          "BRAM36 (`resources.tile_bank_bram36`); points synthesised before the PE adder trees "
          "were pipelined (no `tree_pipeline`) without those registers "
          "(`resources.tree_pipeline_ff`).", "",
          "| point | use | array | tool | LUT synth / model | FF synth (- DSP regs) / model | DSP "
          "synth / model | BRAM36 synth / model | synth s |",
          "|---|---|---|---|---|---|---|---|---|"]
    for name, d in sorted(data["points"].items()):
        cfg = AcceleratorConfig.from_dict(d["config"])
        p = model_of_point(d)
        t = d["top"]
        ex = yosys_ff_excess(cfg)

        def cell(y, m, fmt=",.0f"):
            return f"{y:{fmt}} / {m:{fmt}} ({y / m:.2f})" if m else f"{y:{fmt}} / 0"
        use = "fit" if name in FIT_POINTS else "check (not fitted)"
        md.append(f"| {name} | {use} | {cfg.family} tm={cfg.tm} tn={cfg.tn} G={cfg.act_pack} "
                  f"ports={cfg.axi_ports} | {d['tool']} | {cell(t['lut'], p['lut'])} | "
                  f"{cell(t['ff'] - ex, p['ff'])} | {cell(t['dsp'], p['dsp'])} | "
                  f"{cell(t['bram36'], p['bram36'], ',.1f')} | {t['s']} |")
    md += ["", "PE arrays alone (LUT / FF synth; xcup rows also synthesised as xc7):", ""]
    for name, d in sorted(data["points"].items()):
        if "pe" not in d:
            continue
        x = d.get("pe_xc7")
        md.append(f"* {name}: {d['pe']['lut']:,} LUT, {d['pe']['ff']:,} FF, {d['pe']['dsp']} DSP"
                  + (f"; as xc7: {x['lut']:,} LUT, {x['ff']:,} FF" if x else ""))
    md += ["", f"Requantization bank ({REQUANT_BANK_LANES} units with the residual term):", ""]
    for fam, r in sorted(data["requant_bank"].items()):
        md.append(f"* {fam}: {r['lut']:,} LUT, {r['ff']:,} FF, {r['dsp']} DSP ({r['tool']}, "
                  f"commit {r['commit']})")
    md += ["", "A/B syntheses (recorded with the commit they ran at):", ""]
    for name, r in sorted(data["ab"].items()):
        a, b = (r["without"], r["with"]) if "with" in r else (r["narrow"], r["wide"])
        md.append(f"* {name}: {r['what']}: {a['lut']:,} -> {b['lut']:,} LUT, "
                  f"{a['ff']:,} -> {b['ff']:,} FF ({r['tool']}, commit {r['commit']})")
    md += ["", "Coefficients written to `filmqnn_hw/models/rtl_coefficients.json`:", "",
           "```json", json.dumps(result["coefficients"], indent=1), "```", ""]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    from filmqnn_hw.models.rtl_coefficients import RTL_COEFFICIENTS_PATH, using_rtl_coefficients
    from filmqnn_hw.spec.files import atomic_write

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", default=None, help="comma-separated subset to (re)synthesise")
    ap.add_argument("--requant", action="store_true",
                    help="re-synthesise the requantization bank of each family")
    ap.add_argument("--fit-only", action="store_true")
    ap.add_argument("--yosys", default=None, help="pyosys (recommended) or an executable")
    a = ap.parse_args(argv)
    if a.yosys:
        from filmqnn_hw.flows.synth import YOSYS_ENV

        os.environ[YOSYS_ENV] = a.yosys
    jpath = RESULTS / "rtl_calibration.json"
    data = json.loads(jpath.read_text())
    if not a.fit_only:
        known = points()
        todo = a.points.split(",") if a.points else [n for n in known if n not in data["points"]]
        for name in todo:
            if name not in known:
                ap.error(f"--points: unknown point {name!r}; known: {', '.join(known)}")
        for name in todo:
            print(f"[{name}] synthesising top and PE array ...", flush=True)
            data["points"][name] = synth_point(known[name], with_pe=name in FIT_POINTS)
            atomic_write(jpath, json.dumps(data, indent=1, sort_keys=True) + "\n")
        for fam in ("xc7", "xcup"):
            if a.requant or fam not in data["requant_bank"]:
                print(f"[requant {fam}] synthesising a {REQUANT_BANK_LANES}-unit bank ...",
                      flush=True)
                data["requant_bank"][fam] = synth_requant(fam)
                atomic_write(jpath, json.dumps(data, indent=1, sort_keys=True) + "\n")
    result = fit(data)
    print(json.dumps(result, indent=1))
    coef = result["coefficients"]
    with using_rtl_coefficients(coef):
        md = render(data, result)
    atomic_write(RTL_COEFFICIENTS_PATH, json.dumps(coef, indent=1, sort_keys=True) + "\n")
    atomic_write(RESULTS / "rtl_calibration.md", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
