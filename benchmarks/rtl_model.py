"""Benchmark: full 224x224 frames on the board configurations, measured on the RTL's timing twin.

    python benchmarks/rtl_model.py                          # pynq_z2, zcu102; 3 networks
    python benchmarks/rtl_model.py --configs zcu102 --nets resnet18 --size 224

The full Verilator top is slow on the large configurations (the ZCU102 top takes 10 minutes
and 8 GB to build and runs a 224x224 ResNet-18 frame in 100 s). The timing twin
(``filmqnn_hw.sim.twin``: the top with the PE array's arithmetic left out, every counter
equal to the full top's; ``benchmarks/results/timing_twin.md``) builds in 100 s and runs a
frame in seconds, so this benchmark measures every network of the report at full size on
both boards on it, with the DDR capped at the board's bandwidth (read latency 40, write
latency 10 cycles, the testbench's memory).

For each (config, network): RTL cycles per frame and per layer, FPS at the config's clock,
the stall counters, the DSE model's prediction (``filmqnn_hw.models.cycles``) for the same
network, the ratio, the estimate the design search ranks by, the paper's FPS, and the twin's
wall time. Networks: seeded random integer networks (``filmqnn_hw.evaluate.random_network``;
the weights do not change the cycles). Writes ``benchmarks/results/rtl_model.md`` and
``.json`` (merged by config and network).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from rtl_sim import add_run_args, get_config  # noqa: E402

from filmqnn_hw.report import PAPER_FPS  # noqa: E402
from filmqnn_hw.spec.files import atomic_write  # noqa: E402

CONFIGS = ("pynq_z2", "zcu102")
NETS = ("resnet18", "mobilenet_v2", "resnet50")


def run_one(key: str, net: str, size: int) -> dict:
    from filmqnn_hw.evaluate import rtl_network_cycles

    cfg = get_config(key)
    rec = rtl_network_cycles(cfg, net, size, progress=print)
    rec.update(config=key, gmac=rec["macs"] / 1e9, clock_mhz=cfg.clock_mhz,
               ddr_beats_per_cycle=cfg.ddr_beats_per_cycle)
    return rec


def _est(r: dict) -> str:
    if "estimate_cycles" not in r:
        return "- | -"
    return f"{r['clock_mhz'] * 1e6 / r['estimate_cycles']:.1f} | {r['estimate_ratio']:.3f}"


def render(data: dict) -> str:
    md = [
        "# Full frames of the generated RTL, measured on its timing twin",
        "",
        "Produced by `python benchmarks/rtl_model.py` (see its docstring). **RTL cycles** "
        "here are measured on the timing twin of the generated top in Verilator "
        "(`filmqnn_hw.sim.twin`: the top's own control, DMAs and handshakes with the PE "
        "array's arithmetic left out; every counter and layer equal to the full top's in "
        "the tests and in `timing_twin.md`). Memory: the testbench's, read latency 40, "
        "write latency 10 cycles, all AXI ports "
        "capped together at the board's DDR bandwidth. Not hardware: no Vivado, no board "
        "here. **DSE model**: `filmqnn_hw.models.cycles`, the schedule the design-space "
        "exploration sized the arrays for, which assumes features the RTL does not have yet "
        "(docs/rtl.md); RTL/DSE > 1 is that gap. **RTL estimate**: "
        "`filmqnn_hw.models.rtl_estimate`, the chunk-level estimate of this RTL that the "
        "design search ranks configurations by and the build report shows; est/RTL is its "
        "error against the measured cycles. Paper FPS: FILM-QNN Tables 5/6.",
        "",
        f"Machine: {data.get('machine', '?')}.",
        "",
        "| config | network | input | GMAC | RTL cycles | RTL FPS | paper FPS | RTL / paper | "
        "DSE model FPS | RTL/DSE cycles | RTL estimate FPS | est/RTL | MAC/cycle | "
        "stall weight / input / output | twin s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    recs = sorted(data["runs"].values(), key=lambda r: (r["config"], r["network"], r["input"]))
    for r in recs:
        paper = PAPER_FPS.get(r["config"], {}).get(r["network"])
        full = r["input"] == "3x224x224"
        ptxt = f"{paper:g}" if paper is not None and full else "-"
        if "error" in r:
            md.append(f"| {r['config']} | {r['network']} | {r['input']} | {r['gmac']:.2f} | "
                      f"{r['error'][:200]} | - | {ptxt} | - | {r['dse_fps']:.1f} | - | - | - "
                      "| - | - | - |")
            continue
        rel = f"{r['fps'] / paper:.2f}" if paper is not None and full else "-"
        md.append(
            f"| {r['config']} | {r['network']} | {r['input']} | {r['gmac']:.2f} | "
            f"{r['cycles']:,} | {r['fps']:.1f} | {ptxt} | {rel} | {r['dse_fps']:.1f} | "
            f"{r['ratio_vs_dse']:.2f} | {_est(r)} | {r['macs_per_cycle']:.0f} | "
            f"{r['stall_weight']:,} / {r['stall_input']:,} / {r['stall_output']:,} | "
            f"{r['twin_s']:.0f} |")
    md += ["", "RTL FPS = config clock / RTL cycles, one frame per start. MAC/cycle: "
           "network MACs / RTL cycles. Stall counters as the engine's registers count them "
           "(cycles the PE array did not issue, by cause). twin s: Verilator wall time of the "
           "timing twin for the frame (its build not counted).", ""]
    for r in recs:
        if "layers" not in r:
            continue
        tot = r["cycles"]
        md += [f"## {r['config']}, {r['network']} {r['input']}", "",
               "Layers by share of the frame (the ten largest):", "",
               "| layer | kind | MACs | RTL cycles | share | MAC/cycle | est/RTL | "
               "DSE model cycles | RTL/DSE | DSE bound |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        top = sorted(r["layers"], key=lambda ly: -ly["cycles"])[:10]
        for ly in top:
            est = (f"{ly['estimate_cycles'] / ly['cycles']:.3f}" if "estimate_cycles" in ly
                   else "-")
            md.append(f"| {ly['name']} | {ly['kind']} | {ly['macs']:,} | {ly['cycles']:,} | "
                      f"{100 * ly['cycles'] / tot:.1f}% | {ly['macs'] / ly['cycles']:.0f} | "
                      f"{est} | {ly['dse_cycles']:,} | {ly['cycles'] / ly['dse_cycles']:.2f} | "
                      f"{ly['dse_bound']} |")
        withest = [ly for ly in r["layers"] if "estimate_cycles" in ly]
        if withest:
            errs = [(abs(ly["estimate_cycles"] / ly["cycles"] - 1), ly) for ly in withest]
            worst = max(errs, key=lambda t: t[0])[1]
            md += ["", f"RTL estimate per layer (the design search's model): "
                   f"{sum(e <= 0.02 for e, _ in errs)} of {len(errs)} layers within 2% of the "
                   f"measured cycles, {sum(e <= 0.10 for e, _ in errs)} within 10%; worst "
                   f"{worst['name']} (est/RTL {worst['estimate_cycles'] / worst['cycles']:.3f},"
                   f" {100 * worst['cycles'] / tot:.1f}% of the frame)."]
        kinds: dict[str, list[int]] = {}
        for ly in r["layers"]:
            k = kinds.setdefault(ly["kind"], [0, 0, 0])
            k[0] += ly["cycles"]
            k[1] += ly["dse_cycles"]
            k[2] += ly["macs"]
        md += ["", "By layer kind:", "", "| kind | RTL cycles | share | DSE model cycles | "
               "RTL/DSE | MAC/cycle |", "|---|---|---|---|---|---|"]
        for kind, (c, dc, macs) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
            md.append(f"| {kind} | {c:,} | {100 * c / tot:.1f}% | {dc:,} | {c / dc:.2f} | "
                      f"{macs / c:.0f} |")
        md.append("")
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap, CONFIGS, NETS, 224)
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "rtl_model.json"
    # the runs of the timing twin replace the earlier cycle model's: start afresh
    data: dict = {"runs": {}}
    data["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f}"
                       " GB")
    for key in [k.strip() for k in args.configs.split(",") if k.strip()]:
        for net in [n.strip() for n in args.nets.split(",") if n.strip()]:
            print(f"[{key}] {net} {args.size}x{args.size} ...", flush=True)
            rec = run_one(key, net, args.size)
            data["runs"][f"{key}/{net}@{args.size}"] = rec
            print(f"[{key}] {json.dumps({k: v for k, v in rec.items() if k != 'layers'})}",
                  flush=True)
            atomic_write(jpath, json.dumps(data, indent=1, sort_keys=True) + "\n")
            atomic_write(out / "rtl_model.md", render(data))
    print(render(data))
    return 1 if any("error" in r for r in data["runs"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
