"""Benchmark: the timing twin of the board tops in Verilator, against the full top.

    python benchmarks/timing_twin.py                          # pynq_z2, zcu102; 224x224
    python benchmarks/timing_twin.py --configs pynq_z2 --size 64

For each board's design (``filmqnn_hw.search.dse.design``, as ``python -m filmqnn_hw.build
BOARD``) it emits the timing twin (``emit_verilog(cfg, timing_twin=True)``: the top with
``PEArrayTiming`` in place of the PE array), builds it with Verilator under a time and memory
budget (``benchmarks/rtl_sim.py``'s child process: wall time, peak RSS), runs one frame of
ResNet-18 and MobileNet-V2 (seeded random integer networks, ``filmqnn_hw.evaluate.
random_network``; the weights do not change the cycles) with the testbench's memory capped at
the board's DDR bandwidth, and compares every counter and every layer's cycles with the full
top's on the same config, network and input (``benchmarks/results/rtl_sim.json``, recorded by
``benchmarks/rtl_sim.py``), next to the full top's build and run times. Writes
``benchmarks/results/timing_twin.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from rtl_sim import GB, add_run_args, emit_and_build, get_config  # noqa: E402

from filmqnn_hw.spec.files import atomic_write  # noqa: E402

CONFIGS = ("pynq_z2", "zcu102")
NETS = ("resnet18", "mobilenet_v2")


def _git_commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=ROOT, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_net(name: str, cfg, exe: str, size: int, work: Path, full: dict) -> dict:
    """One frame on the twin; ``full``: the full top's record for it from rtl_sim.json."""
    from filmqnn_hw.compiler.program_builder import build_program
    from filmqnn_hw.evaluate import random_network
    from filmqnn_hw.sim.verilator import VerilatorError, run_verilator

    g, codes = random_network(name, cfg, size)
    prog = build_program(g, cfg)
    beats = cfg.ddr_beats_per_cycle
    rec: dict = {"network": name, "input": f"3x{size}x{size}", "layers": len(prog.descriptors)}
    t0 = time.perf_counter()
    try:
        run = run_verilator(exe, prog.memory_image(codes), prog.base, work,
                            max_cycles=2_000_000_000, timeout=6 * 3600,
                            n_layers=len(prog.descriptors), ddr_beats_per_cycle=beats)
    except VerilatorError as e:
        rec["error"] = str(e)[-2000:]
        return rec
    rec["twin_run_s"] = round(time.perf_counter() - t0, 1)
    keys = ("cycles", "stall_weight", "stall_input", "stall_output")
    got = {k: run.counters[k] for k in keys}
    rec.update(twin=got, status=run.counters["status"],
               fps=round(cfg.clock_mhz * 1e6 / got["cycles"], 2),
               twin_cycles_per_s=round(run.cycles_per_s))
    if full:
        rec.update(full_top={k: full["counters"][k] for k in keys},
                   full_top_run_s=round(full["sim_wall_s"], 1),
                   counters_equal=got == {k: full["counters"][k] for k in keys},
                   layers_equal=run.layer_cycles == [ly["rtl_cycles"]
                                                     for ly in full.get("layers", [])])
    return rec


def _full_top(key: str, cfg) -> dict:
    """The full top's records for the same config (build, runs by network and input), from
    rtl_sim.json."""
    from filmqnn_hw.spec.config import AcceleratorConfig

    p = HERE / "results" / "rtl_sim.json"
    if not p.exists():
        return {}
    entry = json.loads(p.read_text()).get("configs", {}).get(key, {})
    if not entry.get("config") or AcceleratorConfig.from_dict(
            entry["config"]).config_hash() != cfg.config_hash():
        return {}
    runs = {(r["network"], r["input"]): r for r in entry.get("runs", {}).values()
            if "counters" in r and r.get("stall_seed") is None}
    return {"build_s": entry.get("build", {}).get("build_s"),
            "peak_rss_mb": entry.get("build", {}).get("peak_rss_mb"), "runs": runs}


def render(data: dict) -> str:
    md = ["# Timing twin of the board tops (Verilator) against the full top", "",
          "Produced by `python benchmarks/timing_twin.py` (see its docstring) at commit "
          f"{data['commit']} on {data['machine']}. The twin is the generated top with "
          "`PEArrayTiming` in place of the PE array (`filmqnn_hw/gateware/pe_array_timing.py`): "
          "same FSMs, FIFOs, counters and AXI handshakes, no multipliers. *equal* compares "
          "every counter and every layer's cycles with the full top's Verilator run of the "
          "same config, network and input (`rtl_sim.json`); the full top's build and run "
          "times are from there too.", "",
          "| config | build s (twin / full top) | peak RSS GB (twin / full) | network | input | "
          "cycles | FPS | equal to the full top | twin run s | full-top run s |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for key, e in data["configs"].items():
        b, full = e.get("build", {}), e.get("full_top", {})
        fb = full.get("build_s")
        build = (f"{b.get('build_s', 0):.0f} / " + (f"{fb:.0f}" if fb else "-")) if b.get(
            "ok") else b.get("reason", "-")
        fr = full.get("peak_rss_mb")
        rss = f"{b.get('peak_rss_mb', 0) / 1024:.1f} / " + (f"{fr / 1024:.1f}" if fr else "-")
        for r in e.get("runs", []):
            if "error" in r:
                md.append(f"| {key} | {build} | {rss} | {r['network']} | {r['input']} | "
                          f"error: {r['error'][:80]} | | | | |")
                continue
            if "counters_equal" not in r:
                eq = "- (no full-top run recorded)"
            else:
                eq = "yes" if r["counters_equal"] and r["layers_equal"] else "**NO**"
            md.append(f"| {key} | {build} | {rss} | {r['network']} | {r['input']} | "
                      f"{r['twin']['cycles']:,} | {r['fps']} | {eq} | {r['twin_run_s']} | "
                      f"{r.get('full_top_run_s', '-')} |")
    md.append("")
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap, CONFIGS, NETS, 224)
    ap.add_argument("--budget-s", type=float, default=3600.0)
    ap.add_argument("--mem-gb", type=float, default=22.0)
    ap.add_argument("--build-dir", default=str(Path(tempfile.gettempdir()) / "filmqnn_twin"))
    a = ap.parse_args(argv)
    data = {"commit": _git_commit(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GB:.0f} GB",
            "configs": {}}
    for key in [k.strip() for k in a.configs.split(",") if k.strip()]:
        cfg = get_config(key)
        print(f"[{key}] emit + build the timing twin ...", flush=True)
        b = emit_and_build(cfg, Path(a.build_dir) / key, a.budget_s, a.mem_gb, twin=True)
        if "build_s_cached" in b:  # stamp hit: report the measured first build
            b["peak_rss_mb"] = max(b["peak_rss_mb"], b.get("build_peak_rss_mb", 0))
        full = _full_top(key, cfg)
        entry = {"config_hash": cfg.config_hash(), "build": b,
                 "full_top": {k: v for k, v in full.items() if k != "runs"}, "runs": []}
        data["configs"][key] = entry
        print(f"[{key}] build: {json.dumps({k: v for k, v in b.items() if k != 'log_tail'})}",
              flush=True)
        if b.get("ok"):
            for net in [n.strip() for n in a.nets.split(",") if n.strip()]:
                print(f"[{key}] {net} 3x{a.size}x{a.size} ...", flush=True)
                rec = run_net(net, cfg, b["exe"], a.size, Path(a.build_dir) / key / "work",
                              full.get("runs", {}).get((net, f"3x{a.size}x{a.size}"), {}))
                entry["runs"].append(rec)
                print(f"[{key}] {json.dumps(rec)}", flush=True)
    out = HERE / "results"
    atomic_write(out / "timing_twin.json", json.dumps(data, indent=1, sort_keys=True) + "\n")
    atomic_write(out / "timing_twin.md", render(data))
    print(render(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
