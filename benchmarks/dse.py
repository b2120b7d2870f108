"""Benchmark: run the DSE for every shipped board and compare the MODEL with the paper.

    python benchmarks/dse.py            # writes benchmarks/results/dse.md and dse.json

Both schedules (``filmqnn_hw.search.dse.SCHEDULES``): ``rtl``, the default, what the Amaranth
accelerator builds (the configs ``python -m filmqnn_hw.build`` emits), and ``target``, the
full schedule of docs/architecture.md that the RTL does not build yet.

Targets (a benchmark, not a test): ZCU102 at 150 MHz ResNet-18 >= 470 FPS,
ResNet-50 >= 220, MobileNet-V2 >= 1100; PYNQ-Z2 >= 2x the paper. All numbers are MODEL
predictions (resource model + cycle model); nothing is measured on hardware.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))  # measure this checkout, not another installed copy

from boards import load_board  # noqa: E402
from filmqnn_hw.report import DPU_FPS, PAPER_FPS, build_report  # noqa: E402
from filmqnn_hw.search.dse import design  # noqa: E402
from filmqnn_hw.spec.files import atomic_write  # noqa: E402

NETS = ("resnet18", "resnet50", "mobilenet_v2")
TARGETS = {
    "zcu102": {"resnet18": 470.0, "resnet50": 220.0, "mobilenet_v2": 1100.0},
    "pynq_z2": {n: 2 * v for n, v in PAPER_FPS["pynq_z2"].items()},
}


def main() -> int:
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    rows = []
    lines = [
        "# DSE results: MODEL predictions vs FILM-QNN (and the Vitis AI DPU on ZCU102)",
        "",
        "Produced by `python benchmarks/dse.py`. **Every FPS below is a model prediction** "
        "(resource model + cycle model, docs/architecture.md). Two searches per board: "
        "`schedule=rtl` (the default; only what the generated RTL builds, priced by the "
        "resource model calibrated on its synthesis; the build's configs) and "
        "`schedule=target` (kernel packing, pixel groups, feature-map store: the target "
        "schedule, not built yet). `schedule=rtl` is ranked by the estimate of the generated "
        "RTL's cycles (`filmqnn_hw.models.rtl_estimate`, column *RTL est. FPS*; within 1.5% "
        "of the RTL's clock-exact model per network and 2% per layer on 224x224 "
        "frames, `rtl_model.md`); *model FPS* is the target "
        "schedule's cycle model (loop orders, activation striping, residency) for the same "
        "config, which is what `schedule=target` ranks by. The RTL's own cycles are in "
        "`rtl_model.md` / `rtl_sim.md`, its synthesised resources in `rtl_synth.md`. No Vivado "
        "here. Paper: FILM-QNN Tables 5/6. DPU: Vitis AI figures on ZCU102 at 281 MHz, "
        "not re-verified here.",
        "",
    ]
    for board, schedule in itertools.product(("zcu102", "pynq_z2"), ("rtl", "target")):
        t0 = time.time()
        cfg = design(board, schedule=schedule)
        t_dse = time.time() - t0
        b = load_board(board)
        rep, _ = build_report(cfg, b, NETS)
        r = rep["resources"]
        lines += [
            f"## {board}, schedule {schedule} ({b.part}, {cfg.clock_mhz:g} MHz) -- search "
            f"took {t_dse:.1f} s",
            "",
            f"Config: tm={cfg.tm} tn={cfg.tn} tr={cfg.tr} tc={cfg.tc} G={cfg.act_pack} "
            f"n8_slots={cfg.n8_slots} lanes W4 dsp/lut {cfg.w4_dsp_lanes}/{cfg.w4_lut_lanes} "
            f"W8 dsp/lut {cfg.w8_dsp_lanes}/{cfg.w8_lut_lanes}, requant_lanes="
            f"{cfg.out_lanes}, {cfg.axi_ports} ports, feature-map store "
            f"{cfg.fm_cache_kbits} kbit. Peak {rep['peak_macs_per_cycle']} MAC/cycle "
            f"({rep['peak_macs_per_cycle_kernel_mode']} kernel-packed).",
            "",
            "Predicted resources: " + ", ".join(
                f"{k.upper()} {r['predicted'][k]:,} ({100 * r['utilisation'][k]:.0f}%)"
                for k in ("lut", "ff", "dsp", "bram36")),
            "",
            "| network | RTL est. FPS | RTL est./paper | model FPS | paper FPS | model/paper | "
            "DPU FPS | model/DPU | target | model meets target | DDR GB/s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n in NETS:
            d = rep["networks"][n]
            tgt = TARGETS[board][n]
            dpu = DPU_FPS.get(board, {}).get(n)
            vs_dpu = f"{d['fps'] / dpu:.2f}" if dpu else "-"
            meets = "yes" if d["fps"] >= tgt else "NO"
            e = d.get("rtl_estimate")
            est = (f"{e['fps']:.1f} | {e['fps'] / PAPER_FPS[board][n]:.2f}" if e
                   else "- | -")
            lines.append(
                f"| {n} | {est} | {d['fps']:.1f} | {PAPER_FPS[board][n]} | "
                f"{d['fps'] / PAPER_FPS[board][n]:.2f} | {dpu if dpu else '-'} | "
                f"{vs_dpu} | {tgt:g} | {meets} | {d['ddr_gbps']} |")
            rows.append({"board": board, "schedule": schedule, "network": n,
                         "fps": d["fps"], "target": tgt,
                         "rtl_estimate_fps": d["rtl_estimate"]["fps"] if "rtl_estimate" in d
                         else None,
                         "paper_fps": PAPER_FPS[board][n], "dpu_fps": dpu,
                         "cycles": d["cycles"], "bounds": d["bounds"]})
        lines.append("")
        bounds = "; ".join(
            n + " " + "/".join(str(v) for v in rep["networks"][n]["bounds"].values())
            for n in NETS)
        lines.append("Layers by bound (compute / weight load / input load / output store): "
                     + bounds)
        lines.append("")
    atomic_write(out_dir / "dse.md", "\n".join(lines) + "\n")
    atomic_write(out_dir / "dse.json", json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
