"""Benchmark: the generated accelerator RTL, simulated with Verilator, on whole networks.

    python benchmarks/rtl_sim.py                       # configs mid, pynq_z2, zcu102; --size 64
    python benchmarks/rtl_sim.py --configs mid         # rerun one config (others kept)
    python benchmarks/rtl_sim.py --size 224            # full frames (slow)

For each configuration (``mid``: a 16x16 test array; ``pynq_z2`` / ``zcu102``: the DSE results
of ``filmqnn_hw.search.dse.design``, the same as ``python -m filmqnn_hw.build BOARD``) it emits the
top (``filmqnn_hw.flows.verilog.emit_verilog``), builds it with Verilator in a child process under
a time and memory budget (records wall time and peak RSS; a build over budget is recorded as
"not built", not an error), then runs one frame of ResNet-18 and MobileNet-V2 (seeded random
weights, QAT-prepared and converted with ``to_integer``) through the simulated top after one
``ap_start``, and records: bit-exact vs ``IntGraph.run``, the ``cycles`` and stall counters,
per-layer cycles (the testbench logs when each layer's descriptor is fetched), FPS at the
config's clock, simulation speed and wall time; next to them, the same program on the timing
twin of the top (``filmqnn_hw.sim.twin``, expected equal, every counter and layer) and the
DSE's cycle model (``filmqnn_hw.models.cycles``, docs/architecture.md),
which assumes features the RTL does not have yet (docs/rtl.md): RTL/DSE-model ratios above 1
measure that gap. The testbench caps all AXI ports together at the board's DDR bandwidth
(``ddr_bytes_per_cycle``), as both models do.

Results merge into ``benchmarks/results/rtl_sim.json`` (keyed by config and size, so reruns of
one config keep the others) and ``rtl_sim.md`` is regenerated from the whole JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from filmqnn_hw.report import PAPER_FPS  # noqa: E402
from filmqnn_hw.spec.config import AcceleratorConfig  # noqa: E402
from filmqnn_hw.spec.files import atomic_write  # noqa: E402

#: 16x16 array, one 8-bit lane, G=8 on 128-bit beats, 8x8 tiles (the array of
#: tests/gateware/test_top.py), with a DDR bandwidth of one port's full width (16 B/cycle) so
#: that the layer program takes its modes from the cycle model, as for the boards
MID = AcceleratorConfig.small(tm=16, tn=16, n8_slots=1, act_pack=8, axi_data_bits=128, tr=8,
                              tc=8).replace(ddr_bytes_per_cycle=16.0)
CONFIGS = ("mid", "pynq_z2", "zcu102")
NETS = ("resnet18", "mobilenet_v2")
GB = 1 << 30


def add_run_args(ap: argparse.ArgumentParser, configs: tuple[str, ...], nets: tuple[str, ...],
                 size: int) -> None:
    """The options of the benchmarks that run networks on board configs: ``--configs``,
    ``--nets``, ``--size``."""
    ap.add_argument("--configs", default=",".join(configs),
                    help=f"comma-separated subset of {', '.join(configs)}")
    ap.add_argument("--nets", default=",".join(nets))
    ap.add_argument("--size", type=int, default=size, help=f"input height/width ({size})")


def get_config(key: str) -> AcceleratorConfig:
    if key == "mid":
        return MID
    from filmqnn_hw.search.dse import design

    return design(key)  # as filmqnn_hw.build does (default ratio 0.05)


# ---------------------------------------------------------------------------------------------
# emission + Verilator build in a child process (time / memory budget, peak RSS via wait4)
# ---------------------------------------------------------------------------------------------
def _child(cfg_json: str, out_dir: str, twin: bool = False) -> int:
    """Emit (the timing twin with ``twin``) and build; write ``progress.json`` after each
    phase."""
    from filmqnn_hw.flows.verilog import emit_verilog
    from filmqnn_hw.gateware.top import TOP_NAME
    from filmqnn_hw.sim.verilator import build_verilator

    cfg = AcceleratorConfig.from_json(Path(cfg_json).read_text())
    out = Path(out_dir)
    prog = out / "progress.json"
    info: dict = {"phase": "emit"}
    prog.write_text(json.dumps(info))
    v = out / "top.v"
    t0 = time.perf_counter()
    emit_verilog(cfg, v, timing_twin=twin)
    info.update(emit_s=time.perf_counter() - t0, verilog_bytes=v.stat().st_size,
                emit_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                phase="build")
    prog.write_text(json.dumps(info))
    t0 = time.perf_counter()
    exe = build_verilator(v, TOP_NAME, cfg.axi_data_bits, out / "vbuild", jobs=2,
                          timeout=1e6)
    info.update(build_s=time.perf_counter() - t0, exe=str(exe), phase="done",
                build_peak_rss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    record = out / "vbuild" / "build_record.json"  # the measured build, for cached reruns
    if info["build_s"] > 5 or not record.exists():
        record.write_text(json.dumps({k: info[k] for k in ("build_s", "build_peak_rss_mb")}
                                     | {"cached": info["build_s"] <= 5}))
    else:
        info["build_s_cached"] = info["build_s"]
        info.update(json.loads(record.read_text()))
    prog.write_text(json.dumps(info))
    return 0


def emit_and_build(cfg: AcceleratorConfig, out: Path, budget_s: float, mem_gb: float,
                   twin: bool = False) -> dict:
    """Run :func:`_child` under ``budget_s`` wall seconds and ``mem_gb / 2`` GB address space
    per process (two compile jobs); returns the progress record plus ``ok``/``reason``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(cfg.to_json())
    prog = out / "progress.json"
    if prog.exists():
        prog.unlink()
    limit = int(mem_gb * GB / 2)

    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    t0 = time.perf_counter()
    with open(out / "child.log", "w") as log:
        p = subprocess.Popen([sys.executable, __file__, "--_child", str(out / "config.json"),
                              str(out), *(["--twin"] if twin else [])], stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=preexec, cwd=ROOT)
    timed_out = False
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > budget_s:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)  # the child's own session: verilator, make, g++
            pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(1.0)
    p.returncode = os.waitstatus_to_exitcode(status)
    info = json.loads(prog.read_text()) if prog.exists() else {"phase": "start"}
    info["wall_s"] = time.perf_counter() - t0
    info["peak_rss_mb"] = ru.ru_maxrss / 1024  # largest process of the tree
    info["ok"] = info.get("phase") == "done" and p.returncode == 0
    if not info["ok"]:
        tail = "\n".join((out / "child.log").read_text().strip().splitlines()[-12:])
        if timed_out:
            info["reason"] = (f"not built: {info.get('phase')} phase still running after the "
                              f"{budget_s:.0f} s budget")
        elif "MemoryError" in tail or "std::bad_alloc" in tail or "virtual memory" in tail \
                or "Cannot allocate" in tail:
            info["reason"] = (f"not built: {info.get('phase')} phase ran out of the "
                              f"{mem_gb:g} GB memory budget")
        else:
            info["reason"] = f"not built: {info.get('phase')} phase failed (exit {p.returncode})"
        info["log_tail"] = tail
    return info


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------
def make_graph(name: str, cfg: AcceleratorConfig, size: int, width: float):
    """A seeded random network: numpy-built at width 1.0, through the quantizer otherwise."""
    if width == 1.0:
        from filmqnn_hw.evaluate import random_network

        return random_network(name, cfg, size)
    from filmqnn_quant.convert import seeded_network

    return seeded_network(name, cfg, (3, size, size), model_kw={"width_mult": width})


def run_net(name: str, cfg: AcceleratorConfig, exe: str, size: int, width: float, work: Path,
            stall_seed: int | None) -> dict:
    from filmqnn_hw.compiler.program_builder import build_program
    from filmqnn_hw.models.cycles import network_cycles
    from filmqnn_hw.sim.twin import TimingTwin
    from filmqnn_hw.sim.verilator import VerilatorError, run_verilator
    from filmqnn_hw.spec.ddr_timing import DdrTiming
    from filmqnn_hw.spec.geometry import RtlUnsupported, check_program
    from filmqnn_hw.spec.networks import from_intgraph

    g, codes = make_graph(name, cfg, size, width)
    mcfg = cfg
    if not cfg.ddr_bytes_per_cycle:  # "mid" is not a board: one AXI port's full width
        mcfg = cfg.replace(ddr_bytes_per_cycle=cfg.axi_ports * cfg.axi_data_bits / 8)
    model = network_cycles(mcfg, from_intgraph(g))
    # the board's DDR bandwidth is shared by all AXI ports, in the model and in the testbench
    ddr_beats = mcfg.ddr_beats_per_cycle
    macs = model.macs
    rec: dict = {"network": name, "input": f"3x{size}x{size}", "width_mult": width,
                 "ops": len(g.ops), "gmac": macs / 1e9, "model_cycles": model.cycles,
                 "model_fps": model.fps,
                 "model_ddr_bytes_per_cycle": mcfg.ddr_bytes_per_cycle,
                 "ddr_beats_per_cycle": ddr_beats}
    prog = build_program(g, cfg)
    try:
        check_program(prog, cfg)
    except RtlUnsupported as e:
        rec["error"] = f"refused by check_program: {e}"
        return rec
    t0 = time.perf_counter()
    ref = g.run(codes)
    rec["golden_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        run = run_verilator(exe, prog.memory_image(codes), prog.base, work,
                            stall_seed=stall_seed, max_cycles=2_000_000_000, timeout=6 * 3600,
                            n_layers=len(prog.descriptors), ddr_beats_per_cycle=ddr_beats)
    except VerilatorError as e:
        rec["error"] = str(e)[-2000:]
        return rec
    rec["sim_wall_s"] = time.perf_counter() - t0
    # the timing twin, same program, memory timing and stall seed (expected equal)
    twin = TimingTwin(cfg, work.parent / "twin")
    twin.build()  # before the run is timed
    t0 = time.perf_counter()
    pred = twin.run(prog, DdrTiming(beats_per_cycle=ddr_beats), stall_seed=stall_seed)
    rec["twin_s"] = time.perf_counter() - t0
    rec["twin"] = {"cycles": pred.cycles, "stall_weight": pred.stall_weight,
                   "stall_input": pred.stall_input, "stall_output": pred.stall_output}
    out = prog.read_output(run.memory)
    rec["bit_exact"] = bool(out.shape == ref.shape and np.array_equal(out, ref))
    c = run.counters["cycles"]
    rec.update(rtl_cycles=c, counters=run.counters, sim_cycles=run.sim_cycles,
               sim_loop_s=run.wall_s, sim_cycles_per_s=run.cycles_per_s,
               rtl_fps=cfg.clock_mhz * 1e6 / c, ratio=c / model.cycles,
               rtl_macs_per_cycle=macs / c, stall_seed=stall_seed)
    if len(run.layer_cycles) == len(prog.descriptors) == len(model.layers):
        # per layer: the testbench logs when each descriptor is fetched
        rec["layers"] = [
            {"name": ml.name, "kind": ml.kind, "mode": ml.mode, "rtl_cycles": rc,
             "twin_cycles": pc, "model_cycles": ml.cycles, "model_bound": ml.bound,
             "macs": ml.macs}
            for rc, pc, ml in zip(run.layer_cycles, pred.layers, model.layers, strict=True)]
    return rec


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _fmt_cfg(cfg: dict) -> str:
    from filmqnn_hw.spec.geometry import weight_ports

    k = weight_ports(AcceleratorConfig.from_dict(cfg))
    ports = f"1 + {k} weight port{'s' if k > 1 else ''}" if k else "1 port"
    ddr = (f", DDR {cfg['ddr_bytes_per_cycle']:g} B/cycle" if cfg["ddr_bytes_per_cycle"]
           else "")
    return (f"tm={cfg['tm']} tn={cfg['tn']} tr={cfg['tr']} tc={cfg['tc']} n8={cfg['n8_slots']} "
            f"G={cfg['act_pack']} AXI {cfg['axi_data_bits']} b x {ports}{ddr}, "
            f"{cfg['clock_mhz']:g} MHz")


def _ref(layer: dict) -> int | None:
    """A layer's reference cycles: the twin's, or the retired cycle model's in older rows."""
    return layer.get("twin_cycles", layer.get("rtl_model_cycles"))


def render(data: dict) -> str:
    md = [
        "# RTL simulation (Verilator) of the generated accelerator on whole networks",
        "",
        "Produced by `python benchmarks/rtl_sim.py` (see its docstring). Everything here is "
        "**simulation of the generated Verilog** with a C++ AXI memory model (read latency 40, "
        "write latency 10 cycles, no random stalls unless noted), not hardware. Networks: "
        "torchvision-style ResNet-18 / MobileNet-V2 (1000 classes) with seeded random "
        "weights, QAT-prepared and converted with `to_integer` (the weights do not change the "
        "work); one frame after one `ap_start`; the output compared with `IntGraph.run` "
        "using `==`.",
        "",
        "**Reference counts.** *Twin*: the timing twin of the top (`filmqnn_hw.sim.twin`: the "
        "top with the PE array's arithmetic left out) on the same program and memory, "
        "expected equal to the full top (`==`, every counter and every layer; the tests "
        "require it). Rows recorded before the twin existed were compared with the Python "
        "cycle model of the RTL that preceded it (`rtl_model` in the JSON; since retired), "
        "which was held to the same equality. *DSE model*: "
        "`filmqnn_hw.models.cycles` (docs/architecture.md), the schedule the design-space "
        "exploration sizes the arrays for. The DSE model assumes features the RTL does not "
        "have yet (activation traffic striped over all ports, the on-chip feature-map store, "
        "kernel-mode packing, pixel groups, depthwise and pooling windows on the whole "
        "array; docs/rtl.md), so RTL/DSE model > 1 measures how far this RTL is from the "
        "schedule the DSE assumed. RTL FPS is what this RTL achieves at the config's clock. "
        "All ports together are capped at the board's DDR bandwidth in the testbench, as in "
        "both models. Paper FPS (FILM-QNN Tables 5/6, `filmqnn_hw.report.PAPER_FPS`) are for "
        "224x224 full-width networks and are comparable only to `--size 224` rows "
        "(`benchmarks/results/rtl_model.md` has 224x224 frames of every network).",
        "",
        f"Machine: {data.get('machine', '?')}.",
        "",
        "## Emission and Verilator build",
        "",
        "| config | array | emit s | Verilog MB | build s | peak RSS GB | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, c in data["configs"].items():
        b = c.get("build", {})
        res = "built" if b.get("ok") else b.get("reason", "?")
        emit = f"{b['emit_s']:.1f}" if "emit_s" in b else "-"
        vmb = f"{b['verilog_bytes'] / 1e6:.1f}" if "verilog_bytes" in b else "-"
        bs = f"{b['build_s']:.0f}" if "build_s" in b else "-"
        if b.get("cached"):
            bs += " (cached, not measured)"
        md.append(f"| {key} | {_fmt_cfg(c['config'])} | {emit} | {vmb} | {bs} | "
                  f"{b.get('peak_rss_mb', 0) / 1024:.2f} | {res} |")
    md += [
        "",
        "Build: `verilator -O3 --cc --exe --build -j 2` of the top plus the C++ AXI testbench "
        "(`filmqnn_hw.sim.verilator.build_verilator`); peak RSS is the largest process "
        "of the emit+build tree. Budget per config: "
        f"{data.get('budget_s', 900):.0f} s and {data.get('mem_gb', 16):g} GB.",
        "",
        "## Networks",
        "",
        "| config | network | input | GMAC | bit-exact | RTL cycles | reference cycles | "
        "RTL = reference | DSE model cycles | RTL/DSE model | RTL FPS | DSE model FPS | "
        "paper FPS | MAC/cycle (RTL) | sim kcycles/s | sim wall s | reference s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, c in data["configs"].items():
        for _run_key, r in sorted(c.get("runs", {}).items()):
            paper = PAPER_FPS.get(key, {}).get(r["network"])
            ptxt = f"{paper:g}" if paper is not None else "-"
            if "rtl_cycles" not in r:
                md.append(f"| {key} | {r['network']} | {r['input']} | {r['gmac']:.3f} | "
                          f"error | - | - | - | {r['model_cycles']:,} | - | - | "
                          f"{r['model_fps']:.1f} | {ptxt} | - | - | - | - |")
                continue
            pm = r.get("twin", r.get("rtl_model"))
            if pm is None:
                ptx, peq, pts = "-", "-", "-"
            else:
                same = pm == {k: r["counters"][k] for k in pm} and all(
                    _ref(ly) == ly["rtl_cycles"] for ly in r.get("layers", []))
                ptx = f"{pm['cycles']:,}"
                peq = ("yes (all counters and layers)" if same else
                       f"**no** ({r['rtl_cycles'] / pm['cycles']:.4f})"
                       + (" random stalls" if r.get("stall_seed") is not None else ""))
                pts = f"{r.get('twin_s', r.get('rtl_model_s', 0)):.1f}" + (
                    " (twin)" if "twin" in r else " (cycle model)")
            md.append(
                f"| {key} | {r['network']} | {r['input']} | {r['gmac']:.3f} | "
                f"{'yes' if r['bit_exact'] else '**NO**'} | {r['rtl_cycles']:,} | {ptx} | "
                f"{peq} | {r['model_cycles']:,} | {r['ratio']:.2f} | {r['rtl_fps']:.2f} | "
                f"{r['model_fps']:.1f} | {ptxt} | {r['rtl_macs_per_cycle']:.1f} | "
                f"{r['sim_cycles_per_s'] / 1e3:.1f} | {r['sim_wall_s']:.1f} | {pts} |")
    errors = [(k, r) for k, c in data["configs"].items() for r in c.get("runs", {}).values()
              if "error" in r]
    if errors:
        md += ["", "Errors:", ""]
        md += [f"- {k} {r['network']} {r['input']}: `{r['error'][:400]}`" for k, r in errors]
    md += ["", "RTL FPS = config clock / RTL cycles (one frame at a time). DSE model FPS: "
           "`filmqnn_hw.models.cycles` on the same converted network and config. MAC/cycle (RTL): "
           "network MACs / RTL cycles (peak tm x tn). reference s: wall time of the reference "
           "run for the frame (sim wall s: the full top's)."]
    counters = [(k, r) for k, c in data["configs"].items() for r in c.get("runs", {}).values()
                if "counters" in r]
    if counters:
        md += ["", "Engine stall counters (cycles the engine waited on weight / input reads "
               "and on output writes):", "",
               "| config | network | input | cycles | stall_weight | stall_input | "
               "stall_output |", "|---|---|---|---|---|---|---|"]
        for k, r in counters:
            ct = r["counters"]
            md.append(f"| {k} | {r['network']} | {r['input']} | {ct['cycles']:,} | "
                      f"{ct['stall_weight']:,} | {ct['stall_input']:,} | "
                      f"{ct['stall_output']:,} |")
    per = [(k, r) for k, c in data["configs"].items() for r in c.get("runs", {}).values()
           if r.get("layers")]
    if per:
        md += ["", "## Per layer", "",
               "Layer boundaries from the testbench: the cycle at which the engine fetches each "
               "layer's descriptor (the first layer also counts the program header; the last "
               "ends at `ap_done`). Within 2% = |RTL/model - 1| <= 0.02.", "",
               "| config | network | input | layers | reference: equal | reference: within "
               "2% | DSE model: within 2% | DSE model: within 10% | worst layer (RTL/DSE "
               "model) |", "|---|---|---|---|---|---|---|---|---|"]
        for k, r in per:
            rs = [ly["rtl_cycles"] / ly["model_cycles"] for ly in r["layers"]]
            worst = max(range(len(rs)), key=lambda i: abs(rs[i] - 1))
            if all(_ref(ly) is not None for ly in r["layers"]):
                pe = sum(_ref(ly) == ly["rtl_cycles"] for ly in r["layers"])
                p2 = sum(abs(ly["rtl_cycles"] / _ref(ly) - 1) <= 0.02 for ly in r["layers"])
            else:
                pe = p2 = "-"
            md.append(f"| {k} | {r['network']} | {r['input']} | {len(rs)} | {pe} | {p2} | "
                      f"{sum(abs(x - 1) <= 0.02 for x in rs)} | "
                      f"{sum(abs(x - 1) <= 0.10 for x in rs)} | "
                      f"{r['layers'][worst]['name']} ({rs[worst]:.2f}) |")
        for k, r in per:
            md += ["", f"### {k}, {r['network']} {r['input']}", "",
                   "| layer | kind | DSE model mode | MACs | RTL cycles | reference cycles | "
                   "DSE model cycles | RTL/DSE model | DSE model bound |",
                   "|---|---|---|---|---|---|---|---|---|"]
            for ly in r["layers"]:
                ratio = ly["rtl_cycles"] / ly["model_cycles"] if ly["model_cycles"] else 0
                pc = _ref(ly)
                md.append(f"| {ly['name']} | {ly['kind']} | {ly.get('mode', '')} | "
                          f"{ly['macs']:,} | {ly['rtl_cycles']:,} | "
                          f"{'-' if pc is None else f'{pc:,}'} | {ly['model_cycles']:,} | "
                          f"{ratio:.2f} | {ly['model_bound']} |")
    md.append("")
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_child"]:
        return _child(argv[1], argv[2], twin=argv[3:4] == ["--twin"])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap, CONFIGS, NETS, 64)
    ap.add_argument("--width", type=float, default=1.0, help="network width multiplier")
    ap.add_argument("--stall-seed", type=int, default=None,
                    help="random AXI back-pressure (seed) during the network runs")
    ap.add_argument("--budget-s", type=float, default=1800.0,
                    help="emit+build wall budget (the ZCU102 top: about 700 s to build)")
    ap.add_argument("--mem-gb", type=float, default=22.0,
                    help="emit+build memory budget, halved per process for the two compile "
                         "jobs (the ZCU102 top: one g++ process reaches 8.5 GB)")
    ap.add_argument("--build-dir", default=str(Path(tempfile.gettempdir()) / "filmqnn_rtl_sim"),
                    help="persistent build directory (unchanged builds are reused)")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "rtl_sim.json"
    data = json.loads(jpath.read_text()) if jpath.exists() else {"configs": {}}
    data.update(machine=f"{platform.machine()}, {os.cpu_count()} cores, "
                        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GB:.0f} GB",
                budget_s=args.budget_s, mem_gb=args.mem_gb)
    root = Path(args.build_dir)

    mine: set[str] = set()

    def save():
        # merge into what is on disk now: runs of other configs in parallel are kept
        disk = json.loads(jpath.read_text()) if jpath.exists() else {"configs": {}}
        for k in mine:
            disk["configs"][k] = data["configs"][k]
        for k in ("machine", "budget_s", "mem_gb"):
            disk[k] = data[k]
        data["configs"] = disk["configs"]
        atomic_write(jpath, json.dumps(disk, indent=1, sort_keys=True) + "\n")
        atomic_write(out / "rtl_sim.md", render(disk))

    for key in [k.strip() for k in args.configs.split(",") if k.strip()]:
        if key not in CONFIGS:
            ap.error(f"unknown config {key!r}; known: {', '.join(CONFIGS)}")
        cfg = get_config(key)
        mine.add(key)
        entry = data["configs"].setdefault(key, {})
        old = entry.get("config")
        if old is None or AcceleratorConfig.from_dict(old).config_hash() != cfg.config_hash():
            entry.clear()  # another config under this name: drop its old runs (notes aside)
        entry["config"] = cfg.to_dict()
        print(f"[{key}] emit + build ...", flush=True)
        b = emit_and_build(cfg, root / key, args.budget_s, args.mem_gb)
        if "build_s_cached" in b:  # stamp hit: report the measured first build
            b["peak_rss_mb"] = max(b["peak_rss_mb"], b.get("build_peak_rss_mb", 0))
        entry["build"] = b
        print(f"[{key}] {json.dumps({k: v for k, v in b.items() if k != 'log_tail'})}",
              flush=True)
        save()
        if not b.get("ok"):
            continue
        runs = entry.setdefault("runs", {})
        for net in [n.strip() for n in args.nets.split(",") if n.strip()]:
            print(f"[{key}] {net} 3x{args.size}x{args.size} ...", flush=True)
            rec = run_net(net, cfg, b["exe"], args.size, args.width, root / key / "work",
                          args.stall_seed)
            runs[f"{net}@{args.size}w{args.width:g}"] = rec
            print(f"[{key}] {json.dumps({k: v for k, v in rec.items() if k != 'layers'})}",
                  flush=True)
            save()
    save()
    print(render(data))
    bad = [r for c in data["configs"].values() for r in c.get("runs", {}).values()
           if r.get("bit_exact") is False or "error" in r]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
