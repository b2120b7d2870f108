# amaranth: UnusedElaboratable=no
"""Emitted Verilog under Icarus (-g2005), driven by cocotb + cocotbext-axi: the AXI blocks
alone and the whole accelerator top running layer programs.

The testbenches live in tests/gateware/axi/cocotb/ (tb_axi_control.py, tb_axi_dma.py,
tb_accel_top.py).
That directory must stay a plain folder (no __init__.py): as a namespace portion it never
shadows the real ``cocotb`` package on sys.path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from filmqnn_hw.flows.verilog import write_vivado
from filmqnn_hw.gateware.axi.dma import AXI4DMA
from filmqnn_hw.gateware.axi.lite_regs import AXI4LiteControl

TB_DIR = Path(__file__).parent / "cocotb"

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                                reason="iverilog not installed")


def run_cocotb(tmp_path: Path, component, top: str, test_module: str, env=None) -> None:
    """Emit ``component`` as Verilog module ``top`` (or take ``component`` as the path of
    Verilog already written) and run the cocotb module ``test_module`` on it."""
    runner_mod = pytest.importorskip("cocotb_tools.runner")
    from cocotb_tools.check_results import get_results

    if isinstance(component, Path):
        src = component
    else:
        src = tmp_path / f"{top}.v"
        write_vivado(component, top, src)
    runner = runner_mod.get_runner("icarus")
    build_dir = tmp_path / "sim_build"
    # -g2005: with -g2012 Icarus skips Amaranth's time-0 evaluation of always @* blocks.
    runner.build(sources=[src], hdl_toplevel=top, build_args=["-g2005"],
                 timescale=("1ns", "1ps"), build_dir=build_dir, always=True)
    results = runner.test(hdl_toplevel=top, test_module=test_module, test_dir=TB_DIR,
                          build_dir=build_dir, extra_env=env or {}, timescale=("1ns", "1ps"),
                          results_xml=str(tmp_path / "results.xml"))
    n_tests, n_failed = get_results(Path(results))
    assert n_tests >= 1, "cocotb ran no tests"
    assert n_failed == 0, f"{n_failed} of {n_tests} cocotb tests failed; see the log above"


def test_control_block_cocotb(tmp_path):
    run_cocotb(tmp_path, AXI4LiteControl(), "filmqnn_ctrl", "tb_axi_control")


def test_dma_cocotb(tmp_path):
    dut = AXI4DMA("m_axi_gmem0", addr_width=32, data_width=64, id_width=1, len_width=16,
                  max_outstanding=4)
    run_cocotb(tmp_path, dut, "filmqnn_dma", "tb_axi_dma",
               env={"DMA_ADDR_WIDTH": "32", "DMA_DATA_WIDTH": "64"})


def _id_wrapper(verilog: str, top: str, ports: int, name: str) -> str:
    """A Verilog module ``name`` around ``top`` that adds the AXI ID signals cocotbext-axi's
    AxiRam requires (the top, like a single-ID master, has none): ``awid``/``arid`` tied to 0,
    ``bid``/``rid`` ignored, on ``m_axi_gmem0 .. m_axi_gmem{ports-1}``."""
    import re

    body = verilog[verilog.index(f"module {top}("):]
    body = body[: body.index("endmodule")]
    decls = re.findall(r"^\s*(input|output)\s+(\[[^\]]+\]\s*)?(\w+);", body, re.M)
    assert decls, f"no port declarations found in module {top}"
    ids = []
    for k in range(ports):
        ids += [("output", f"m_axi_gmem{k}_awid"), ("input", f"m_axi_gmem{k}_bid"),
                ("output", f"m_axi_gmem{k}_arid"), ("input", f"m_axi_gmem{k}_rid")]
    names = [n for _, _, n in decls] + [n for _, n in ids]
    lines = [f"module {name}({', '.join(names)});"]
    lines += [f"  {d} {(w or '').strip()} {n};".replace("  ", " ") for d, w, n in decls]
    lines += [f"  {d} [0:0] {n};" for d, n in ids]
    lines += [f"  assign {n} = 1'b0;" for d, n in ids if d == "output"]
    conns = ", ".join(f".{n}({n})" for _, _, n in decls)
    lines += [f"  {top} dut({conns});", "endmodule", ""]
    return "\n".join(lines)


@pytest.mark.slow
def test_accelerator_top_cocotb(tmp_path):
    """The emitted top (two AXI4 masters: activations and weights) runs three layer programs
    bit-exact on cocotbext-axi AxiRam with random pauses on every channel, programmed and
    polled through AxiLiteMaster (ap_start, ap_done clear-on-read, the ap_done interrupt)."""
    from helpers import CFG_B2, layer_cases, small_network

    from filmqnn_hw.compiler.program_builder import build_program
    from filmqnn_hw.flows.verilog import emit_verilog
    from filmqnn_hw.gateware.top import FilmQnnAccelerator
    from filmqnn_hw.spec.geometry import check_program

    cfg = CFG_B2
    cases = layer_cases(cfg)
    graphs = {"small_network": small_network(cfg), "residual": cases["residual"],
              "depthwise3x3_s2": cases["depthwise3x3_s2"]}
    rng = np.random.default_rng(3)
    runs, checks, size = [], [], 0
    for name, g in graphs.items():
        prog = build_program(g, cfg)
        check_program(prog, cfg)
        x = rng.integers(0, 32, (1,) + g.input.shape)
        image = prog.memory_image(x)
        (tmp_path / f"{name}.img").write_bytes(bytes(image))
        size = max(size, len(image))
        runs.append({"image": str(tmp_path / f"{name}.img"), "result": str(tmp_path / name),
                     "layers": prog.base})
        checks.append((name, prog, g.run(x, keep=True)[g.output]))
    top = FilmQnnAccelerator(cfg)
    cmap = top.cmap
    top._MustUse__silence = True  # built for its register map and port count only
    case = {"ports": 1 + top.geo.weight_ports, "mem_size": -(-size // 65536) * 65536,
            "runs": runs, "pause": 0.3,
            "offsets": {"layers": cmap.offset_of("layers"),
                        "counters": {e.name: (cmap.offset_of(e.name), e.bits)
                                     for e in cmap.counters}}}
    assert case["ports"] == 2
    (tmp_path / "case.json").write_text(json.dumps(case))
    text = emit_verilog(cfg)
    src = tmp_path / "tb_top.v"
    src.write_text(text + "\n" + _id_wrapper(text, "filmqnn_top", case["ports"], "tb_top"))
    run_cocotb(tmp_path, src, "tb_top", "tb_accel_top",
               env={"ACCEL_CASE": str(tmp_path / "case.json")})
    for name, prog, want in checks:
        mem = bytearray((tmp_path / f"{name}.bin").read_bytes())
        counters = json.loads((tmp_path / f"{name}.json").read_text())
        assert counters["status"] == 0 and counters["cycles"] > 0, (name, counters)
        out = prog.read_output(mem)
        assert out.shape == want.shape and np.array_equal(out, want), name
