"""Benchmark: the generated accelerator RTL, simulated with Verilator, on whole networks.

    python benchmarks/rtl_sim.py                       # configs mid, pynq_z2, zcu102; --size 64
    python benchmarks/rtl_sim.py --configs mid         # rerun one config (others kept)
    python benchmarks/rtl_sim.py --size 224            # full frames (slow)

For each configuration (``mid``: a 16x16 test array; ``pynq_z2`` / ``zcu102``: the DSE results
of ``filmqnn_hw.dse.design``, the same as ``python -m filmqnn_hw.build BOARD``) it emits the
top (``filmqnn_hw.accel.top.emit_verilog``), builds it with Verilator in a child process under
a time and memory budget (records wall time and peak RSS; a build over budget is recorded as
"not built", not an error), then runs one frame of ResNet-18 and MobileNet-V2 (seeded random
weights, QAT-prepared and converted with ``to_integer``) through the simulated top after one
``ap_start``, and records: bit-exact vs ``IntGraph.run``, the ``cycles`` counter, the cycle
model's prediction for the same network and config, the ratio, FPS at the config's clock,
simulation speed and wall time.

The RTL engine overlaps loads and stores with compute (double-buffered banks, docs/rtl.md) and
reads the weights through ports of their own, but its activations use one port and it has no
kernel-mode packing, no pixel groups and no on-chip feature-map store; the cycle model
(docs/architecture.md) assumes all of those. RTL/model ratios above 1 are expected and are
reported as measured. The testbench caps all AXI ports together at the board's DDR bandwidth
(the model's ``ddr_bytes_per_cycle``), and logs when each layer's descriptor is fetched, so
every run also gives per-layer RTL cycles next to the model's.

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

from filmqnn_hw.config import AcceleratorConfig  # noqa: E402
from filmqnn_hw.report import PAPER_FPS  # noqa: E402

#: 16x16 array, one 8-bit lane, G=8 on 128-bit beats, 8x8 tiles (the array of
#: tests/hw/test_accel_top.py), with a DDR bandwidth of one port's full width (16 B/cycle) so
#: that the layer program takes its modes from the cycle model, as for the boards
MID = AcceleratorConfig.small(tm=16, tn=16, n8_slots=1, act_pack=8, axi_data_bits=128, tr=8,
                              tc=8).replace(ddr_bytes_per_cycle=16.0)
CONFIGS = ("mid", "pynq_z2", "zcu102")
NETS = ("resnet18", "mobilenet_v2")
GB = 1 << 30


def get_config(key: str) -> AcceleratorConfig:
    if key == "mid":
        return MID
    from filmqnn_hw.dse import design

    return design(key)  # as filmqnn_hw.build does (default ratio 0.05)


# ---------------------------------------------------------------------------------------------
# emission + Verilator build in a child process (time / memory budget, peak RSS via wait4)
# ---------------------------------------------------------------------------------------------
def _child(cfg_json: str, out_dir: str) -> int:
    """Emit and build; write ``progress.json`` after each phase."""
    from filmqnn_hw.accel.top import TOP_NAME, emit_verilog
    from filmqnn_hw.accel.verilator_sim import build_verilator

    cfg = AcceleratorConfig.from_json(Path(cfg_json).read_text())
    out = Path(out_dir)
    prog = out / "progress.json"
    info: dict = {"phase": "emit"}
    prog.write_text(json.dumps(info))
    v = out / "top.v"
    t0 = time.perf_counter()
    emit_verilog(cfg, v)
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


def emit_and_build(cfg: AcceleratorConfig, out: Path, budget_s: float, mem_gb: float) -> dict:
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
                              str(out)], stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, preexec_fn=preexec, cwd=ROOT)
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
    import torch

    from filmqnn_quant.convert import to_integer
    from filmqnn_quant.models import build_model
    from filmqnn_quant.numerics import quantize_input
    from filmqnn_quant.qat import prepare_qat

    torch.set_num_threads(1)
    shape = (3, size, size)
    kw = dict(width_mult=width, num_classes=1000)
    torch.manual_seed(0)
    model = build_model(name, **kw)
    x = torch.rand(2, *shape)
    qm = prepare_qat(model, cfg, ratio=cfg.ratio_8bit, example_input=x)
    qm.train()
    with torch.no_grad():
        qm(x)
    qm.select_8bit(x)
    qm.eval()
    g = to_integer(qm, shape, cfg)
    return g, quantize_input(x[:1].numpy(), g.input.scale, g.input.zero_point)


def run_net(name: str, cfg: AcceleratorConfig, exe: str, size: int, width: float, work: Path,
            stall_seed: int | None) -> dict:
    from filmqnn_hw.accel.limits import RtlUnsupported, check_program
    from filmqnn_hw.accel.verilator_sim import VerilatorError, run_verilator
    from filmqnn_hw.cycles import network_cycles
    from filmqnn_hw.networks import from_intgraph
    from filmqnn_hw.program import build_program

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
             "model_cycles": ml.cycles, "model_bound": ml.bound, "macs": ml.macs}
            for rc, ml in zip(run.layer_cycles, model.layers, strict=True)]
    return rec


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _fmt_cfg(cfg: dict) -> str:
    from filmqnn_hw.accel.limits import weight_ports

    k = weight_ports(AcceleratorConfig.from_dict(cfg))
    ports = f"1 + {k} weight port{'s' if k > 1 else ''}" if k else "1 port"
    ddr = (f", DDR {cfg['ddr_bytes_per_cycle']:g} B/cycle" if cfg["ddr_bytes_per_cycle"]
           else "")
    return (f"tm={cfg['tm']} tn={cfg['tn']} tr={cfg['tr']} tc={cfg['tc']} n8={cfg['n8_slots']} "
            f"G={cfg['act_pack']} AXI {cfg['axi_data_bits']} b x {ports}{ddr}, "
            f"{cfg['clock_mhz']:g} MHz")


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
        "**Why RTL cycles are above the cycle model.** The RTL engine overlaps its loads and "
        "stores with compute (double-buffered weight, input, accumulator, parameter and "
        "residual banks; compute at one output-pixel pair per 2 cycles; weights kept on chip "
        "per channel group when they fit a bank; the stem as a 1x1 conv over the host's "
        "im2col input; the weights on AXI ports of their own, as many as DDR can feed) but "
        "reads all activations through one port (one beat per cycle) and has no on-chip "
        "feature-map store, kernel-mode packing or pixel groups yet (docs/rtl.md). All ports "
        "together are capped at the board's DDR bandwidth in the testbench, as in the model. "
        "The cycle model (`filmqnn_hw.cycles`, "
        "docs/architecture.md) predicts the overlapped, multi-port schedule the DSE assumes. "
        "The RTL/model ratio measures that gap; RTL FPS is what this RTL would achieve at the "
        "config's clock, *not* a prediction of the final design. Paper FPS (FILM-QNN Tables "
        "5/6, `filmqnn_hw.report.PAPER_FPS`) are for 224x224 full-width networks and are "
        "comparable only to `--size 224` rows.",
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
        "(`filmqnn_hw.accel.verilator_sim.build_verilator`); peak RSS is the largest process "
        "of the emit+build tree. Budget per config: "
        f"{data.get('budget_s', 900):.0f} s and {data.get('mem_gb', 16):g} GB.",
        "",
        "## Networks",
        "",
        "| config | network | input | GMAC | bit-exact | RTL cycles | model cycles | RTL/model | "
        "RTL FPS | model FPS | paper FPS | MAC/cycle (RTL) | sim kcycles/s | sim wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, c in data["configs"].items():
        for _run_key, r in sorted(c.get("runs", {}).items()):
            paper = PAPER_FPS.get(key, {}).get(r["network"])
            ptxt = f"{paper:g}" if paper is not None else "-"
            if "rtl_cycles" not in r:
                md.append(f"| {key} | {r['network']} | {r['input']} | {r['gmac']:.3f} | "
                          f"error | - | {r['model_cycles']:,} | - | - | {r['model_fps']:.1f} | "
                          f"{ptxt} | - | - | - |")
                continue
            md.append(
                f"| {key} | {r['network']} | {r['input']} | {r['gmac']:.3f} | "
                f"{'yes' if r['bit_exact'] else '**NO**'} | {r['rtl_cycles']:,} | "
                f"{r['model_cycles']:,} | {r['ratio']:.1f} | {r['rtl_fps']:.2f} | "
                f"{r['model_fps']:.1f} | {ptxt} | {r['rtl_macs_per_cycle']:.1f} | "
                f"{r['sim_cycles_per_s'] / 1e3:.1f} | {r['sim_wall_s']:.1f} |")
    errors = [(k, r) for k, c in data["configs"].items() for r in c.get("runs", {}).values()
              if "error" in r]
    if errors:
        md += ["", "Errors:", ""]
        md += [f"- {k} {r['network']} {r['input']}: `{r['error'][:400]}`" for k, r in errors]
    md += ["", "RTL FPS = config clock / RTL cycles (one frame at a time). Model FPS: the cycle "
           "model on the same converted network and config. MAC/cycle (RTL): network MACs / "
           "RTL cycles (peak tm x tn)."]
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
               "| config | network | input | layers | within 2% | within 10% | worst layer "
               "(RTL/model) |", "|---|---|---|---|---|---|---|"]
        for k, r in per:
            rs = [ly["rtl_cycles"] / ly["model_cycles"] for ly in r["layers"]]
            worst = max(range(len(rs)), key=lambda i: abs(rs[i] - 1))
            md.append(f"| {k} | {r['network']} | {r['input']} | {len(rs)} | "
                      f"{sum(abs(x - 1) <= 0.02 for x in rs)} | "
                      f"{sum(abs(x - 1) <= 0.10 for x in rs)} | "
                      f"{r['layers'][worst]['name']} ({rs[worst]:.2f}) |")
        for k, r in per:
            md += ["", f"### {k}, {r['network']} {r['input']}", "",
                   "| layer | kind | model mode | MACs | RTL cycles | model cycles | RTL/model | "
                   "model bound |", "|---|---|---|---|---|---|---|---|"]
            for ly in r["layers"]:
                ratio = ly["rtl_cycles"] / ly["model_cycles"] if ly["model_cycles"] else 0
                md.append(f"| {ly['name']} | {ly['kind']} | {ly.get('mode', '')} | "
                          f"{ly['macs']:,} | {ly['rtl_cycles']:,} | {ly['model_cycles']:,} | "
                          f"{ratio:.2f} | {ly['model_bound']} |")
    md.append("")
    return "\n".join(md)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_child"]:
        return _child(argv[1], argv[2])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=",".join(CONFIGS),
                    help=f"comma-separated subset of {', '.join(CONFIGS)}")
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--size", type=int, default=64, help="input height/width (default 64)")
    ap.add_argument("--width", type=float, default=1.0, help="network width multiplier")
    ap.add_argument("--stall-seed", type=int, default=None,
                    help="random AXI back-pressure (seed) during the network runs")
    ap.add_argument("--budget-s", type=float, default=900.0, help="emit+build wall budget")
    ap.add_argument("--mem-gb", type=float, default=16.0, help="emit+build memory budget")
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
        _atomic_write(jpath, json.dumps(disk, indent=1, sort_keys=True) + "\n")
        _atomic_write(out / "rtl_sim.md", render(disk))

    for key in [k.strip() for k in args.configs.split(",") if k.strip()]:
        if key not in CONFIGS:
            ap.error(f"unknown config {key!r}; known: {', '.join(CONFIGS)}")
        cfg = get_config(key)
        mine.add(key)
        entry = data["configs"].setdefault(key, {})
        if entry.get("config") != cfg.to_dict():
            entry.clear()  # another config under this name: drop its old runs
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
