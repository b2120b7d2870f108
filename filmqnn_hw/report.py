"""Build report: one configuration's figures as JSON, Markdown and a PNG plot.

The resources and the throughput table are MODEL predictions (resource model; the DSE's
cycle model, which assumes features the RTL does not have yet, docs/rtl.md). With
``--sim`` the report adds the cycles of the generated RTL measured on its timing twin in
Verilator (:mod:`filmqnn_hw.sim.twin`) and, with ``--verilator``, a bit-exact Verilator run of
the full top; with ``--synth``, yosys synthesis of the whole top. There is no
Vivado in this environment; the Markdown says what each figure is. Reference figures
(paper, Vitis AI DPU) are constants with their source.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from boards import Board
from filmqnn_hw.models.cycles import NetworkCycles, network_cycles
from filmqnn_hw.models.resources import SCHEDULES, axi_ports_built, predict
from filmqnn_hw.spec.config import AcceleratorConfig, ConfigError
from filmqnn_hw.spec.files import atomic_write
from filmqnn_hw.spec.networks import Network, get_network

__all__ = ["PAPER_FPS", "DPU_FPS", "build_report", "write_report", "atomic_write"]

#: FILM-QNN intra-layer 95/5 FPS (paper Table 5: PYNQ-Z2 at 100 MHz; Table 6: ZCU102 at 150 MHz).
PAPER_FPS = {
    "zcu102": {"resnet18": 214.8, "resnet50": 109.1, "mobilenet_v2": 537.9},
    "pynq_z2": {"resnet18": 27.8, "resnet50": 13.3, "mobilenet_v2": 132.3},
}
#: Vitis AI DPU on ZCU102 at 281 MHz, FPS of the Vitis AI model zoo (not re-verified here).
DPU_FPS = {"zcu102": {"resnet18": 469.1, "resnet50": 164.7, "mobilenet_v2": 712.0}}
MODEL_NOTE = (
    "MODEL PREDICTIONS unless a section says otherwise: resources from the resource model "
    "(docs/resource-model.md; for the default `rtl` schedule it prices the generated RTL and "
    "is calibrated on its yosys synthesis), throughput of the generated RTL from its "
    "chunk-level estimate (`filmqnn_hw.models.rtl_estimate`) and of the target schedule from "
    "the cycle model of docs/architecture.md (loop orders, activation striping, residency: "
    "not all in the RTL yet, docs/rtl.md): `--sim` adds this RTL's measured cycles, "
    "`--synth` yosys synthesis of the whole top. No Vivado here: nothing is measured "
    "on hardware."
)



def build_report(cfg: AcceleratorConfig, board: Board,
                 networks: tuple[str | Network, ...] = ("resnet18", "resnet50", "mobilenet_v2")
                 ) -> tuple[dict[str, Any], dict[str, NetworkCycles]]:
    """The report dictionary (``report.json``) and the per-network cycle results.

    ``networks`` are benchmark names or :class:`Network` objects (e.g. from an exported
    manifest, :func:`filmqnn_hw.spec.networks.from_manifest`).
    """
    schedule = cfg.notes.get("schedule", "rtl") if isinstance(cfg.notes, dict) else "rtl"
    res = predict(cfg, schedule=schedule if schedule in SCHEDULES else "rtl")
    device = board.resources()
    util = res.utilisation(device)
    net_objs = {net.name: net for net in map(get_network, networks)}
    nets = {name: network_cycles(cfg, net) for name, net in net_objs.items()}
    paper = PAPER_FPS.get(board.name, {})
    dpu = DPU_FPS.get(board.name, {})
    net_json: dict[str, Any] = {}
    for n, r in nets.items():
        d = r.as_dict()
        if schedule != "target":
            est = _rtl_estimate(cfg, net_objs[n])
            if est is not None:
                e = {"cycles": est.cycles, "fps": round(est.fps, 2),
                     "layers": dict(zip(est.names, est.layers, strict=True))}
                if n in paper:
                    e["ratio_vs_paper"] = round(est.fps / paper[n], 3)
                if n in dpu:
                    e["ratio_vs_dpu"] = round(est.fps / dpu[n], 3)
                d["rtl_estimate"] = e
        d["bounds"] = {b: sum(1 for ly in r.layers if ly.bound == b)
                       for b in ("compute", "weight_load", "input_load", "output_store")}
        if n in paper:
            d["paper_fps"] = paper[n]
            d["ratio_vs_paper"] = round(r.fps / paper[n], 3)
        if n in dpu:
            d["dpu_fps"] = dpu[n]
            d["ratio_vs_dpu"] = round(r.fps / dpu[n], 3)
        net_json[n] = d
    report = {
        "kind": "model prediction",
        "note": MODEL_NOTE,
        "board": board.name,
        "part": board.part,
        "clock_mhz": cfg.clock_mhz,
        "config": cfg.to_dict(),
        "config_hash": cfg.config_hash(),
        "peak_macs_per_cycle": cfg.peak_macs_per_cycle,
        "peak_macs_per_cycle_kernel_mode": cfg.tm * cfg.kernel_slots,
        "peak_gops": round(2 * cfg.peak_macs_per_cycle * cfg.clock_mhz / 1e3, 1),
        "ddr": {"sustained_gbps": round(board.ddr_sustained_gbps, 3),
                "peak_gbps": board.ddr_peak_gbps, "ports": cfg.axi_ports,
                "masters_built": axi_ports_built(cfg),
                "port_gbps": round(cfg.axi_data_bits / 8 * cfg.clock_mhz / 1e3, 3)},
        "resources": {
            "predicted": res.as_dict(),
            "device": device,
            "utilisation": {k: round(v, 4) for k, v in util.items()},
            "parts": {k: {r: round(v, 1) for r, v in p.items()} for k, p in res.parts.items()},
            "provenance": res.provenance,
        },
        "networks": net_json,
    }
    return report, nets


def _rtl_estimate(cfg: AcceleratorConfig, net: Network):
    """:func:`~filmqnn_hw.models.rtl_estimate.estimate_network` of ``net``, or None where the
    RTL cannot build ``cfg`` (a target-schedule config)."""
    from filmqnn_hw.models.rtl_estimate import estimate_network
    from filmqnn_hw.spec.geometry import RtlUnsupported

    try:
        return estimate_network(cfg, net)
    except (RtlUnsupported, ConfigError):
        return None


def _fmt(x: float) -> str:
    return f"{x:,.1f}" if x < 1000 else f"{x:,.0f}"


def markdown(report: dict[str, Any]) -> str:
    """Human-readable report (``report.md``)."""
    c = report["config"]
    r = report["resources"]
    lines = [
        f"# filmqnn build report: {report['board']} ({report['part']}) at "
        f"{report['clock_mhz']:g} MHz",
        "",
        f"> **{report['note']}**",
        "",
        *[f"> **Warning: {w}**\n" for w in report.get("warnings", [])],
        "## Configuration",
        "",
        f"- array: tm={c['tm']} x tn={c['tn']} ({report['peak_macs_per_cycle']} MAC/cycle, "
        f"{report['peak_macs_per_cycle_kernel_mode']} in kernel-packed mode); "
        f"peak {report['peak_gops']} GOPS normal, "
        f"{2 * report['peak_macs_per_cycle_kernel_mode'] * report['clock_mhz'] / 1e3:.1f} "
        "GOPS kernel-packed (1 MAC = 2 ops)",
        f"- lanes: 4-bit DSP {c['w4_dsp_lanes']}, 4-bit LUT {c['w4_lut_lanes']}, 8-bit DSP "
        f"{c['w8_dsp_lanes']}, 8-bit LUT {c['w8_lut_lanes']} (n8_slots={c['n8_slots']}, "
        f"R={c['ratio_8bit']})",
        f"- tiles: tr={c['tr']} x tc={c['tc']}; G={c['act_pack']}; "
        f"{report['ddr']['masters_built']} x {c['axi_data_bits']}-bit AXI masters in the "
        f"RTL (of the config's {c['axi_ports']} ports); kernel packing "
        f"{'on' if c['kernel_packing'] else 'off'}; wfill_cycles={c['wfill_cycles']}; "
        f"requant_lanes={c['requant_lanes'] or c['tm']}; feature-map store "
        f"{c['fm_cache_kbits']} kbit",
        f"- DDR: {report['ddr']['sustained_gbps']} GB/s sustained (assumed) of "
        f"{report['ddr']['peak_gbps']} GB/s peak; one port {report['ddr']['port_gbps']} GB/s",
        f"- config hash `{report['config_hash'][:16]}`",
        "",
        "## Resources (predicted)",
        "",
        "| resource | predicted | device | utilisation |",
        "|---|---|---|---|",
    ]
    for k in ("lut", "ff", "dsp", "bram36"):
        lines.append(f"| {k.upper()} | {r['predicted'][k]:,} | {r['device'][k]:,} | "
                     f"{100 * r['utilisation'][k]:.1f}% |")
    lines += ["", "Provenance: " + "; ".join(f"{k}: {v}" for k, v in r["provenance"].items()
                                               if v), ""]
    has_est = any("rtl_estimate" in d for d in report["networks"].values())
    if has_est:
        lines += [
            "## Throughput of the generated RTL (estimated, batch 1)",
            "",
            "| network | cycles | FPS | paper FPS | RTL / paper | DPU FPS | RTL / DPU |",
            "|---|---|---|---|---|---|---|",
        ]
        for n, d in report["networks"].items():
            e = d.get("rtl_estimate")
            if e is None:
                continue
            lines.append(
                f"| {n} | {e['cycles']:,} | {_fmt(e['fps'])} | {d.get('paper_fps', '-')} | "
                f"{e.get('ratio_vs_paper', '-')} | {d.get('dpu_fps', '-')} | "
                f"{e.get('ratio_vs_dpu', '-')} |")
        lines += [
            "",
            "`filmqnn_hw.models.rtl_estimate`: the RTL's schedule followed chunk by chunk (its "
            "three agents, the memory's latency and bandwidth), within 2% per layer of the "
            "RTL's cycles measured on its timing twin (`--sim`) on 224x224 frames of the board "
            "designs (a few percent on small layers). This is what the design search ranked.",
            "",
        ]
    lines += [
        "## Throughput of the target schedule (model, batch 1)" if has_est else
        "## Throughput (predicted, batch 1)",
        "",
    ]
    if has_est:
        lines += [
            "The schedule of docs/architecture.md (activation striping, input residency, "
            "feature-map store, windows over the array), which the RTL does not implement all "
            "of yet (docs/rtl.md): what this array would reach with it.",
            "",
        ]
    lines += [
        "| network | cycles | FPS (model) | paper FPS | model / paper | DPU FPS | model / DPU "
        "| GOPS | DDR GB/s | layers by bound (compute/weight/input/output) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, d in report["networks"].items():
        b = d["bounds"]
        lines.append(
            f"| {n} | {d['cycles']:,} | {_fmt(d['fps'])} | {d.get('paper_fps', '-')} | "
            f"{d.get('ratio_vs_paper', '-')} | {d.get('dpu_fps', '-')} | "
            f"{d.get('ratio_vs_dpu', '-')} | {d['gops']} | {d['ddr_gbps']} | "
            f"{b['compute']}/{b['weight_load']}/{b['input_load']}/{b['output_store']} |"
        )
    lines += [
        "",
        "Paper FPS: FILM-QNN Tables 5 (PYNQ-Z2, 100 MHz) and 6 (ZCU102, 150 MHz). DPU: Vitis AI "
        "DPU on ZCU102 at 281 MHz (its published figures, not re-verified here).",
        "",
        "## Per-layer detail",
        "",
    ]
    for n, d in report["networks"].items():
        est = d.get("rtl_estimate", {}).get("layers")
        lines += [f"### {n}", "",
                  ("| layer | RTL est. cycles " if est else "| layer ")
                  + "| mode | order | cycles (target model) | util | bound | on chip |",
                  "|---|---|---|---|---|---|---|" + ("---|" if est else "")]
        for ly in d["layers"]:
            oc = ",".join(k for k, v in ly["on_chip"].items() if v) or "-"
            e = f" {est[ly['name']]:,} |" if est and ly["name"] in est else (" - |" if est
                                                                           else "")
            lines.append(f"| {ly['name']} |{e} {ly['mode']} | {ly['order']} | "
                         f"{ly['cycles']:,} | {ly['utilisation']:.2f} | {ly['bound']} | {oc} |")
        lines.append("")
    lines += _sim_markdown(report.get("sim"), report["clock_mhz"])
    lines += _synth_markdown(report.get("synth"))
    missing = [f"- `{flag}`: {what}" for flag, key, what in (
        ("--sim", "sim", "cycles of the generated RTL per network (its cycle model, exact "
         "against Verilator; add `--verilator` to also simulate the Verilog top)"),
        ("--synth", "synth", "yosys synthesis of the whole top (LUT, FF, DSP, BRAM36, LUT "
         "levels of the deepest path)")) if not report.get(key)]
    if missing:
        lines += ["## Not in this report (ask with the flag)", "", *missing, ""]
    return "\n".join(lines)


def _sim_markdown(sim: dict[str, Any] | None, clock: float) -> list[str]:
    if not sim:
        return []
    lines = [
        "## Throughput of this RTL (`--sim`)",
        "",
        "Cycles of the generated RTL for one frame, measured on its timing twin in Verilator "
        "(`filmqnn_hw.sim.twin`: the top's own control, DMAs and handshakes with the PE "
        "array's arithmetic left out; every counter equal to the full top's). Memory: the "
        "Verilator testbench's, read latency 40, write latency 10 cycles, all "
        "ports capped together at the board's DDR bandwidth. Networks with seeded random "
        "weights (the weights do not change the cycles); exported networks (`--manifest`) "
        "run their own `program.bin`.",
        "",
        f"| network | input | RTL cycles | RTL FPS at {clock:g} MHz | paper FPS | RTL / paper "
        "| DSE model FPS | RTL / DSE model cycles | RTL estimate / RTL cycles "
        "| stall weight / input / output |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, d in sim["networks"].items():
        if "error" in d:
            lines.append(f"| {n} | {d.get('input', '-')} | not run: {d['error']} | - | - | - | "
                         "- | - | - | - |")
            continue
        paper = d.get("paper_fps")
        rel = f"{d['fps'] / paper:.2f}" if paper else "-"
        lines.append(
            f"| {n} | {d['input']} | {d['cycles']:,} | {_fmt(d['fps'])} | "
            f"{paper if paper is not None else '-'} | {rel} | "
            f"{_fmt(d['dse_fps']) if 'dse_fps' in d else '-'} | "
            f"{d.get('ratio_vs_dse', '-')} | {d.get('estimate_ratio', '-')} | "
            f"{d['stall_weight']:,} / {d['stall_input']:,} / {d['stall_output']:,} |")
    v = sim.get("verilator")
    if v:
        lines += [""]
        if "error" in v:
            lines.append(f"Verilator cross-check ({v['network']} {v['input']}): not done: "
                         f"{v['error']}")
        else:
            lines.append(
                f"Verilator cross-check: {v['network']} {v['input']} on the generated Verilog "
                f"top: {v['cycles']:,} cycles, output bit-exact with the golden model: "
                f"**{'yes' if v['bit_exact'] else 'NO'}**, every counter and layer equal to "
                f"the timing twin: **{'yes' if v['twin_equal'] else 'NO'}** (build "
                f"{v['build_s']:.0f} s, run {v['run_s']:.0f} s).")
    lines.append("")
    return lines


def _synth_markdown(syn: dict[str, Any] | None) -> list[str]:
    if not syn:
        return []
    m = syn["model"]
    lines = ["## Synthesis of the whole top (`--synth`)", ""]
    if "error" in syn:
        return lines + [f"Not done ({syn.get('tool', 'yosys')}): {syn['error']}", ""]
    lines += [
        f"`synth_xilinx -family {syn['family']} -flatten` of the generated top with "
        f"{syn['tool']}, out of context ({syn['synth_s']:.0f} s). yosys is not Vivado "
        "(benchmarks/results/arith.md lists the differences); the model column is the "
        "resource model the DSE budgeted with.",
        "",
        "| resource | yosys | model | yosys / model |",
        "|---|---|---|---|",
    ]
    for k in ("lut", "ff", "dsp", "bram36"):
        ratio = syn[k] / m[k] if m[k] else float("nan")
        lines.append(f"| {k.upper()} | {syn[k]:,.0f} | {m[k]:,.0f} | {ratio:.2f} |")
    path = " -> ".join(f"`{x}`" for x in syn.get("deepest_path", [])[:16])
    lines += ["", f"Deepest register-to-register path: {syn['lut_levels']} LUT levels"
              + (f" ({path})" if path else "") + ".", ""]
    return lines


def plot(report: dict[str, Any], path: Path) -> None:
    """PNG: resource utilisation and per-layer PE utilisation coloured by bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = list(report["networks"])
    fig, axes = plt.subplots(1 + len(nets), 1, figsize=(11, 3 + 2.6 * len(nets)))
    ax = axes[0]
    u = report["resources"]["utilisation"]
    keys = ["lut", "ff", "dsp", "bram36"]
    ax.bar([k.upper() for k in keys], [100 * u[k] for k in keys], color="#4477aa")
    caps = report["config"].get("notes", {}).get("caps", {})
    for i, k in enumerate(keys):
        cap = caps.get(f"{'bram' if k == 'bram36' else k}_cap")
        if cap:
            ax.plot([i - 0.4, i + 0.4], [100 * cap] * 2, color="k", lw=1)
    ax.set_ylabel("% of device")
    ax.set_title(f"{report['board']} @ {report['clock_mhz']:g} MHz: predicted resources "
                 "(MODEL; lines = caps)")
    colours = {"compute": "#228833", "weight_load": "#ee6677", "input_load": "#ccbb44",
               "output_store": "#66ccee"}
    for ax, n in zip(axes[1:], nets, strict=True):
        layers = report["networks"][n]["layers"]
        xs = range(len(layers))
        ax.bar(xs, [ly["utilisation"] for ly in layers],
               color=[colours[ly["bound"]] for ly in layers])
        ax.set_xlim(-1, len(layers))
        ax.set_ylabel("MACs / (cycles x tm x tn)")
        d = report["networks"][n]
        head = (f"RTL estimate {d['rtl_estimate']['fps']:.1f} FPS; " if "rtl_estimate" in d
                else "")
        ax.set_title(f"{n}: {head}target model {d['fps']:.1f} FPS (bars); colour = bound")
        ax.set_xticks([])
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    axes[-1].legend(handles, list(colours), loc="upper right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(cfg: AcceleratorConfig, board: Board, out: Path,
                 networks: tuple[str | Network, ...] = ("resnet18", "resnet50", "mobilenet_v2"),
                 *, sim: dict[str, Any] | None = None, synth: dict[str, Any] | None = None,
                 warnings: list[str] | None = None) -> dict[str, Any]:
    """Write ``config.json``, ``report.json``, ``report.md``, ``report.png`` into ``out``.

    ``sim`` (``{"networks": {name: record}, "verilator": record}``, records of
    :mod:`filmqnn_hw.evaluate`) and ``synth`` (:func:`filmqnn_hw.evaluate.synthesize_top`)
    add the measured sections; ``warnings`` (e.g. a config built over budget) head both
    reports.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report, _ = build_report(cfg, board, networks)
    if warnings:
        report["warnings"] = list(warnings)
    paper = PAPER_FPS.get(board.name, {})
    if sim is not None:
        for n, d in sim["networks"].items():
            if n in paper and "fps" in d and d.get("input") == "3x224x224":
                d["paper_fps"] = paper[n]
        report["sim"] = sim
    if synth is not None:
        report["synth"] = synth
    text = json.dumps(report, indent=1, sort_keys=False, default=_json_default)
    atomic_write(out / "config.json", cfg.to_json() + "\n")
    atomic_write(out / "report.json", text + "\n")
    atomic_write(out / "report.md", markdown(report))
    plot(report, out / "report.png")
    return report


def _json_default(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
