"""Benchmark: wall time of ``python -m filmqnn_hw.build BOARD`` and of the Verilog emission.

    python benchmarks/build_time.py                     # pynq_z2, zcu102
    python benchmarks/build_time.py --boards zcu102

The goal is the build (design search, report, Verilog top, Vivado project; no
``--sim``/``--synth``) in under 30 s. Per board this measures, in one run:

* the whole command, as a user runs it, in a fresh process (``build`` column);
* the emission of its Verilog top by :func:`filmqnn_hw.flows.verilog.emit_verilog` (shared
  modules, one-string memory init, native yosys when pyosys is installed);
* the baseline: the same top through Amaranth's plain ``verilog.convert`` (every unit its own
  module, Amaranth's per-bit memory init, its builtin WebAssembly yosys), and the ratio.

Writes ``benchmarks/results/build_time.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from filmqnn_hw.spec.files import atomic_write  # noqa: E402

BOARDS = ("pynq_z2", "zcu102")


def measure(board: str) -> dict:
    from amaranth.back import verilog

    from filmqnn_hw.flows.verilog import emit_verilog, verilog_yosys
    from filmqnn_hw.gateware.top import FilmQnnAccelerator
    from filmqnn_hw.spec.config import AcceleratorConfig

    with tempfile.TemporaryDirectory(prefix="filmqnn_bt_") as tmp:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "filmqnn_hw.build", board, "--out", tmp],
                           capture_output=True, text=True, cwd=HERE.parent)
        build_s = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"build {board} failed:\n{r.stderr[-2000:]}")
        m = re.search(r"done in ([\d.]+) s", r.stdout)
        cfg = AcceleratorConfig.from_json((Path(tmp) / "config.json").read_text())
    t0 = time.perf_counter()
    text = emit_verilog(cfg)
    emit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    env = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        plain = verilog.convert(FilmQnnAccelerator(cfg), name="filmqnn_top", emit_src=False)
    finally:
        if env is None:
            os.environ.pop("AMARANTH_USE_YOSYS")
        else:
            os.environ["AMARANTH_USE_YOSYS"] = env
    plain_s = time.perf_counter() - t0
    return {"board": board, "array": f"{cfg.tm}x{cfg.tn}", "act_pack": cfg.act_pack,
            "build_s": build_s, "build_emit_s": float(m.group(1)) if m else None,
            "emit_s": emit_s, "emit_mb": len(text) / 1e6, "verilog_yosys": verilog_yosys(),
            "plain_emit_s": plain_s, "plain_mb": len(plain) / 1e6,
            "ratio": plain_s / emit_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--boards", default=",".join(BOARDS))
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ns = ap.parse_args(argv)
    rows = []
    for b in ns.boards.split(","):
        print(f"[{b}] build, emit, plain Amaranth emit ...", flush=True)
        rows.append(measure(b.strip()))
        print(json.dumps(rows[-1]), flush=True)
    host = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    md = ["# Build time", "",
          "`python -m filmqnn_hw.build BOARD` (design search, report, Verilog top, Vivado "
          "project), in a fresh process, and the Verilog emission of its top against "
          "Amaranth's plain `verilog.convert` of the same component (every unit its own "
          "module, per-bit memory init, builtin WebAssembly yosys). Written by "
          "`benchmarks/build_time.py`.", "",
          "| board | array | G | build s | of which emission s | emit s | Verilog MB | "
          "plain Amaranth emit s | plain MB | plain / ours |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        be = "-" if r["build_emit_s"] is None else f"{r['build_emit_s']:.1f}"
        md.append(f"| {r['board']} | {r['array']} | {r['act_pack']} | {r['build_s']:.1f} | {be} "
                  f"| {r['emit_s']:.1f} | {r['emit_mb']:.1f} | {r['plain_emit_s']:.1f} | "
                  f"{r['plain_mb']:.1f} | {r['ratio']:.2f} |")
    md += ["", f"Verilog written by: {rows[0]['verilog_yosys'] if rows else '-'} yosys. "
           f"Host: {host}; wall times on this machine, other load not controlled."]
    ns.out.mkdir(parents=True, exist_ok=True)
    atomic_write(ns.out / "build_time.json", json.dumps({"host": host, "rows": rows}, indent=1))
    atomic_write(ns.out / "build_time.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
