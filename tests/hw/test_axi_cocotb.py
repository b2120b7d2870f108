# amaranth: UnusedElaboratable=no
"""Emitted Verilog of the AXI blocks under Icarus (-g2005), driven by cocotb + cocotbext-axi.

The testbenches live in tests/hw/cocotb/ (tb_axi_control.py, tb_axi_dma.py).
That directory must stay a plain folder (no __init__.py): as a namespace portion it never
shadows the real ``cocotb`` package on sys.path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from filmqnn_hw.axi.dma import AXI4DMA
from filmqnn_hw.axi.lite_regs import AXI4LiteControl
from filmqnn_hw.axi.verilog import write_vivado

TB_DIR = Path(__file__).parent / "cocotb"

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                                reason="iverilog not installed")


def run_cocotb(tmp_path: Path, component, top: str, test_module: str, env=None) -> None:
    runner_mod = pytest.importorskip("cocotb_tools.runner")
    from cocotb_tools.check_results import get_results

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
