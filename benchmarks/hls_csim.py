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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224, help="input height/width (default 224)")
    ap.add_argument("--board", default="zcu102")
    ap.add_argument("--width", type=float, default=1.0, help="ResNet-18 width multiplier")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from filmqnn_hw.dse import design
    from filmqnn_hw.hls import build_csim, run_csim
    from filmqnn_hw.program import build_program
    from filmqnn_quant.convert import to_integer
    from filmqnn_quant.models import build_model
    from filmqnn_quant.numerics import quantize_input
    from filmqnn_quant.qat import prepare_qat

    cfg = design(args.board, 0.05)
    shape = (3, args.size, args.size)
    torch.manual_seed(0)
    model = build_model("resnet18", width_mult=args.width, num_classes=1000)
    x = torch.rand(2, *shape)
    qm = prepare_qat(model, cfg, ratio=0.05, example_input=x)
    qm.train()
    with torch.no_grad():
        qm(x)
    qm.select_8bit(x)
    qm.eval()
    graph = to_integer(qm, shape, cfg)
    codes = quantize_input(x[:1].numpy(), graph.input.scale, graph.input.zero_point)
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
    md = ["# HLS C-simulation: one ResNet-18 frame", "",
          "Produced by `python benchmarks/hls_csim.py "
          + " ".join(argv if argv is not None else sys.argv[1:]) + "`. "
          "Wall-clock times on this machine "
          f"({platform.machine()}, {os.cpu_count()} cores shared with other jobs); "
          "C-simulation is the g++ build of the HLS kernel with `hls_compat` headers, "
          "not hardware.", "",
          "| quantity | value |", "|---|---|"]
    md += [f"| {a} | {b} |" for a, b in rows]
    md.append("")
    text = "\n".join(md)
    print(text)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmpf = tempfile.mkstemp(dir=out_dir, prefix=".hls_csim.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmpf, out_dir / "hls_csim.md")
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
