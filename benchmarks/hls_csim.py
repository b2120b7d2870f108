"""Benchmark: C-simulation wall time of the HLS kernel for one ResNet-18 frame vs numpy golden.

    python benchmarks/hls_csim.py [--size 224] [--board zcu102] [--width 1.0]

Builds the ZCU102 configuration with the DSE, a ResNet-18 (seeded random init, QAT-prepared
and converted with ``to_integer``; the weights do not change the work), its layer program and
the g++ C-simulation of the HLS kernel; runs one frame through both, checks the outputs are
equal (``==``) and writes ``benchmarks/results/hls_csim.md``. C-simulation time says nothing
about the hardware's speed: it measures how long a bit-exact software run of the kernel takes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))  # measure this checkout, not another installed copy

from filmqnn_hw.spec.files import atomic_write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224, help="input height/width (default 224)")
    ap.add_argument("--board", default="zcu102")
    ap.add_argument("--width", type=float, default=1.0, help="ResNet-18 width multiplier")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--verilator", action="store_true",
                    help="also run the same frame on the generated RTL top in Verilator")
    args = ap.parse_args(argv)

    from filmqnn_hw.compiler.program_builder import build_program
    from filmqnn_hw.evaluate import random_network
    from filmqnn_hw.flows.hls import build_csim, run_csim
    from filmqnn_hw.search.dse import design

    cfg = design(args.board, 0.05)
    if args.width == 1.0:
        graph, codes = random_network("resnet18", cfg, args.size)
    else:
        from filmqnn_quant.convert import seeded_network

        graph, codes = seeded_network("resnet18", cfg, (3, args.size, args.size),
                                      model_kw={"width_mult": args.width})
    prog = build_program(graph, cfg)
    macs = sum(int(np.prod(op.weight.shape)) * graph.tensors[op.output].height
               * graph.tensors[op.output].width for op in graph.conv_ops())

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        exe = build_csim(cfg, Path(tmp) / "build")
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        mem, iters = run_csim(exe, prog, codes, Path(tmp) / "work", timeout=3600)
        t_csim = time.perf_counter() - t0
    rtl = None
    if args.verilator:
        from filmqnn_hw.flows.verilog import emit_verilog
        from filmqnn_hw.gateware.top import TOP_NAME
        from filmqnn_hw.sim.verilator import build_verilator, run_verilator
        from filmqnn_hw.spec.geometry import check_program

        check_program(prog, cfg)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            emit_verilog(cfg, Path(tmp) / "top.v")
            t_emit = time.perf_counter() - t0
            t0 = time.perf_counter()
            vexe = build_verilator(Path(tmp) / "top.v", TOP_NAME, cfg.axi_data_bits,
                                   Path(tmp) / "vbuild")
            t_vbuild = time.perf_counter() - t0
            t0 = time.perf_counter()
            # all AXI ports share the board's DDR bandwidth, as in the cycle model
            ddr = cfg.ddr_beats_per_cycle
            run = run_verilator(vexe, prog.memory_image(codes), prog.base, Path(tmp) / "vwork",
                                max_cycles=2_000_000_000, timeout=7200,
                                ddr_beats_per_cycle=ddr if ddr > 0 else None)
            t_vsim = time.perf_counter() - t0
        rtl = (t_emit, t_vbuild, t_vsim, run)
    t0 = time.perf_counter()
    ref = graph.run(codes)
    t_gold = time.perf_counter() - t0
    out = prog.read_output(mem)
    equal = bool(np.array_equal(out, ref))

    rows = [
        ("board / config", f"{cfg.board}, tm={cfg.tm} tn={cfg.tn} tr={cfg.tr} tc={cfg.tc} "
                           f"n8={cfg.n8_slots} G={cfg.act_pack} AXI {cfg.axi_data_bits}"),
        ("network", f"ResNet-18 width {args.width}, input 3x{args.size}x{args.size}, "
                    f"{len(graph.ops)} ops, {macs / 1e9:.3f} GMAC"),
        ("DDR map", f"{prog.mem_bytes / 1e6:.2f} MB (modes from the cycle model: "
                    f"{prog.from_cycle_model})"),
        ("g++ build of the kernel + testbench", f"{t_build:.1f} s"),
        ("C-simulation, one frame (incl. DDR image file I/O)", f"{t_csim:.1f} s"),
        ("golden model IntGraph.run (numpy), one frame", f"{t_gold:.2f} s"),
        ("kernel pipelined-loop iterations (`cycles` register)", f"{iters:,}"),
        ("outputs equal (==)", str(equal)),
    ]
    if rtl is not None:
        from filmqnn_hw.models.cycles import network_cycles
        from filmqnn_hw.report import PAPER_FPS
        from filmqnn_hw.sim.twin import TimingTwin
        from filmqnn_hw.spec.ddr_timing import DdrTiming
        from filmqnn_hw.spec.geometry import geometry
        from filmqnn_hw.spec.networks import from_intgraph

        t_emit, t_vbuild, t_vsim, run = rtl
        model = network_cycles(cfg, from_intgraph(graph))
        twin = TimingTwin(cfg)
        twin.build()  # before the run is timed
        t0 = time.perf_counter()
        pred = twin.run(prog, DdrTiming.of_board(cfg))
        t_pred = time.perf_counter() - t0
        paper = PAPER_FPS.get(args.board, {}).get("resnet18") if args.size == 224 else None
        k = geometry(cfg).weight_ports
        rtl_equal = bool(np.array_equal(prog.read_output(run.memory), ref))
        equal = equal and rtl_equal
        cyc = run.counters["cycles"]
        rows += [
            ("RTL top: Amaranth emit / Verilator build", f"{t_emit:.1f} s / {t_vbuild:.1f} s"),
            ("RTL top: Verilator simulation, one frame (incl. DDR image file I/O)",
             f"{t_vsim:.1f} s ({run.sim_cycles / max(run.wall_s, 1e-9) / 1e3:.0f} k cycles/s)"),
            ("RTL top: AXI ports / DDR cap in the testbench",
             f"1 + {k} weight port(s) / {cfg.ddr_bytes_per_cycle:g} B per cycle"),
            ("RTL top: `cycles` register (simulated clock cycles)",
             f"{cyc:,} ({cfg.clock_mhz * 1e6 / cyc:.2f} FPS at {cfg.clock_mhz:g} MHz)"),
            ("timing twin of the top (`sim/twin.py`), same program and memory",
             f"{pred.cycles:,} ({'equal to' if pred.cycles == cyc else '**differs from**'} "
             f"the RTL; twin run {t_pred:.1f} s)"),
            ("DSE cycle model (`filmqnn_hw.models.cycles`), same network and config",
             f"{model.cycles:,} ({model.fps:.2f} FPS); RTL / DSE model = "
             f"{cyc / model.cycles:.2f}"),
            ("paper FPS (FILM-QNN, same board)", f"{paper}" if paper else "-"),
            ("C-sim wall / Verilator wall", f"{t_csim / t_vsim:.2f}"),
            ("RTL outputs equal (==)", str(rtl_equal)),
        ]
    md = ["# HLS C-simulation: one ResNet-18 frame", "",
          "Produced by `python benchmarks/hls_csim.py "
          + " ".join(argv if argv is not None else sys.argv[1:]) + "`. "
          "Wall-clock times on this machine "
          f"({platform.machine()}, {os.cpu_count()} cores shared with other jobs); "
          "C-simulation is the g++ build of the HLS kernel with `hls_compat` headers, "
          "not hardware; with `--verilator` the same frame and layer program also run on the "
          "generated RTL top in Verilator (C++ AXI memory model, read latency 40 cycles, all "
          "ports capped together at the board's DDR bandwidth).", "",
          "| quantity | value |", "|---|---|"]
    md += [f"| {a} | {b} |" for a, b in rows]
    md.append("")
    text = "\n".join(md)
    print(text)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "hls_csim.md" if args.board == "zcu102" else f"hls_csim_{args.board}.md"
    atomic_write(out_dir / name, text)
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
