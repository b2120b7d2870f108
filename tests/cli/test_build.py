"""Build CLI: writes config/report files with the required keys; hooks and errors are clear."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import on_board

from filmqnn_hw.build import main
from filmqnn_hw.spec.config import AcceleratorConfig


@pytest.mark.parametrize("board", ["zcu102", "pynq_z2"])
def test_build_writes_report(tmp_path, board, capsys):
    out = tmp_path / board
    assert main([board, "--out", str(out), "--no-rtl"]) == 0
    assert "RTL ESTIMATE" in capsys.readouterr().out
    for f in ("config.json", "report.json", "report.md", "report.png"):
        assert (out / f).stat().st_size > 0, f
    assert not list(out.glob(".*tmp*")), "temporary files left behind"
    cfg = AcceleratorConfig.from_json((out / "config.json").read_text())
    rep = json.loads((out / "report.json").read_text())
    assert rep["board"] == board and rep["clock_mhz"] == cfg.clock_mhz
    assert rep["config"]["tm"] == cfg.tm and rep["config_hash"] == cfg.config_hash()
    assert rep["peak_macs_per_cycle"] == cfg.tm * cfg.tn
    for k in ("lut", "ff", "dsp", "bram36"):
        assert rep["resources"]["predicted"][k] > 0
        assert rep["resources"]["device"][k] > 0
    for n in ("resnet18", "resnet50", "mobilenet_v2"):
        d = rep["networks"][n]
        assert d["cycles"] > 0
        assert d["fps"] == pytest.approx(cfg.clock_mhz * 1e6 / d["cycles"], rel=1e-3)
        assert all(ly["bound"] in ("compute", "weight_load", "input_load", "output_store")
                   for ly in d["layers"])
        assert d["paper_fps"] > 0 and d["ratio_vs_paper"] == pytest.approx(
            d["fps"] / d["paper_fps"], rel=1e-2)
        # the headline: the generated RTL's estimate, the figure the design search ranked
        e = d["rtl_estimate"]
        assert e["fps"] == pytest.approx(cfg.clock_mhz * 1e6 / e["cycles"], rel=1e-3)
        assert e["fps"] == pytest.approx(cfg.notes["fps"][n], rel=1e-3)
        assert sum(e["layers"].values()) == e["cycles"]
        assert e["ratio_vs_paper"] == pytest.approx(e["fps"] / d["paper_fps"], rel=1e-2)
    md = (out / "report.md").read_text()
    assert "MODEL PREDICTION" in md and "paper FPS" in md
    assert "Throughput of the generated RTL (estimated" in md
    if board == "zcu102":
        assert "DPU" in md and rep["networks"]["resnet18"]["dpu_fps"] == 469.1
    # reporting the written config again gives the same numbers (no search)
    again = tmp_path / "again"
    assert main([board, "--out", str(again), "--config", str(out / "config.json"),
                 "--no-rtl"]) == 0
    rep2 = json.loads((again / "report.json").read_text())
    assert rep2["networks"]["resnet50"]["cycles"] == rep["networks"]["resnet50"]["cycles"]


def test_hooks_and_errors(tmp_path, capsys):
    for bad in (["--sim", "--no-rtl"], ["--synth", "--no-rtl"], ["--verilator"],
                ["--sim", "--sim-size", "4"], ["--schedule", "target"]):
        with pytest.raises(SystemExit) as e:
            main(["zcu102", "--out", str(tmp_path), *bad])
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "drop --no-rtl" in err and "give both" in err and "--sim-size" in err
    assert "--schedule target sizes features the RTL does not build" in err
    assert main(["zcu999", "--out", str(tmp_path), "--no-rtl"]) == 1
    assert "known boards: pynq_z2, zcu102" in capsys.readouterr().err
    assert main(["zcu102", "--out", str(tmp_path), "--ratio", "2", "--no-rtl"]) == 1
    assert "ratio" in capsys.readouterr().err
    assert main(["zcu102", "--out", str(tmp_path), "--networks", "vgg", "--no-rtl"]) == 1
    assert not (tmp_path / "report.json").exists()
    # the target schedule is a report-only search
    tgt = tmp_path / "target"
    assert main(["zcu102", "--out", str(tgt), "--schedule", "target", "--no-rtl"]) == 0
    cfg = json.loads((tgt / "config.json").read_text())
    assert cfg["notes"]["schedule"] == "target" and cfg["kernel_packing"]
    rep = json.loads((tgt / "report.json").read_text())
    assert all("rtl_estimate" not in d for d in rep["networks"].values())
    assert "MODEL" in capsys.readouterr().out


def test_list_boards_subprocess():
    r = subprocess.run([sys.executable, "-m", "filmqnn_hw.build", "--list-boards"],
                       capture_output=True, text=True, timeout=60, check=True)
    assert "zcu102" in r.stdout and "pynq_z2" in r.stdout and "xczu9eg" in r.stdout


@pytest.mark.slow
def test_build_user_board_file(tmp_path):
    import boards

    text = (boards.BOARD_DIR / "zcu102.toml").read_text()
    for old, new in (('name = "zcu102"', 'name = "zcu104"'), ("lut = 274080", "lut = 230400"),
                     ("ff = 548160", "ff = 460800"), ("dsp = 2520", "dsp = 1728"),
                     ("bram36 = 912", "bram36 = 312"), ("uram = 0", "uram = 96")):
        assert old in text
        text = text.replace(old, new)
    f = tmp_path / "zcu104.toml"
    f.write_text(text)
    out = tmp_path / "out"
    assert main([str(f), "--out", str(out), "--no-rtl"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["board"] == "zcu104" and rep["resources"]["device"]["dsp"] == 1728
    assert rep["resources"]["predicted"]["dsp"] <= 0.85 * 1728
    assert "paper_fps" not in rep["networks"]["resnet18"]  # no paper figure for this board


def test_build_reports_an_exported_manifest(tmp_path):
    out = tmp_path / "base"
    assert main(["pynq_z2", "--out", str(out), "--no-rtl"]) == 0
    manifest = {
        "model": "tiny", "input": {"tensor": "x", "shape": [3, 14, 14]},
        "layers": [
            {"name": "c1", "kind": "conv", "input": "x", "output": "a", "in_channels": 3,
             "out_channels": 16, "kernel": [3, 3], "stride": [2, 2], "padding": [1, 1],
             "groups": 1, "residual": None},
            {"name": "gap", "kind": "global_avgpool", "input": "a", "output": "b",
             "kernel": None, "stride": [1, 1], "padding": [0, 0]},
            {"name": "fc", "kind": "linear", "input": "b", "output": "y", "in_channels": 16,
             "out_channels": 10, "kernel": [1, 1], "stride": [1, 1], "padding": [0, 0],
             "groups": 1, "residual": None},
        ],
    }
    m = tmp_path / "manifest.json"
    m.write_text(json.dumps(manifest))
    again = tmp_path / "with_manifest"
    assert main(["pynq_z2", "--out", str(again), "--config", str(out / "config.json"),
                 "--manifest", str(m), "--no-rtl"]) == 0
    rep = json.loads((again / "report.json").read_text())
    assert rep["networks"]["tiny"]["macs"] == 16 * 3 * 9 * 7 * 7 + 16 * 10
    assert rep["networks"]["tiny"]["layers"][0]["mode"] == "stem"
    assert set(rep["networks"]) == {"tiny"}  # benchmarks only when --networks names them
    # without --config the design search optimises for the manifest's network alone; named
    # benchmarks join the objective
    own = tmp_path / "own"
    assert main(["pynq_z2", "--out", str(own), "--manifest", str(m), "--no-rtl"]) == 0
    cfg = json.loads((own / "config.json").read_text())
    assert cfg["notes"]["objective"] == "geomean FPS over tiny"
    assert set(json.loads((own / "report.json").read_text())["networks"]) == {"tiny"}
    both = tmp_path / "both"
    assert main(["pynq_z2", "--out", str(both), "--manifest", str(m), "--networks", "resnet18",
                 "--no-rtl"]) == 0
    cfg = json.loads((both / "config.json").read_text())
    assert cfg["notes"]["objective"] == "geomean FPS over resnet18, tiny"


def test_build_hls_flag_and_default_out_dir(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.chdir(tmp_path)
    assert main(["pynq_z2", "--hls", "--no-rtl"]) == 0
    out = tmp_path / "build" / "pynq_z2"
    cfg = json.loads((out / "config.json").read_text())
    hls = out / "hls"
    for name in ("filmqnn_top.cpp", "filmqnn_top.h", "run_hls.tcl"):
        assert (hls / name).is_file(), name
    # the TCL targets the config's part, and the generated header carries its tile sizes
    assert cfg["part"] in (hls / "run_hls.tcl").read_text()
    assert "HLS kernel:" in capsys.readouterr().out


def test_build_writes_the_verilog_top(tmp_path, capsys):
    """Without --no-rtl the build emits the accelerator top and its control map."""
    from filmqnn_hw.gateware.top import TOP_NAME
    from filmqnn_hw.spec.config import AcceleratorConfig

    cfg = on_board(AcceleratorConfig.small(act_pack=8, axi_data_bits=128), "zcu102").replace(
        ddr_bytes_per_cycle=8.0)
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(cfg.to_json())
    out = tmp_path / "o"
    assert main(["zcu102", "--out", str(out), "--config", str(cfg_file)]) == 0
    v = (out / "rtl" / f"{TOP_NAME}.v").read_text()
    assert f"module {TOP_NAME}(" in v and "m_axi_gmem0_awaddr" in v and "s_axi_control_araddr" in v
    assert (out / "rtl" / "control_map.json").exists()
    # the Vivado hand-off next to it (tests/flows/test_vivado.py checks the script itself)
    tcl = (out / "vivado" / "build_bitstream.tcl").read_text()
    assert "set fq_part {xczu9eg-ffvb1156-2-e}" in tcl and "fq_path {../rtl/filmqnn_top.v}" in tcl
    assert "-reference filmqnn_top" in tcl and "set fq_ctrl_base 0xA0000000" in tcl
    assert os.access(out / "vivado" / "run_vivado.sh", os.X_OK)
    printed = capsys.readouterr().out
    assert "Verilog top:" in printed
    assert f"{out / 'vivado' / 'run_vivado.sh'}" in printed and "Vivado project:" in printed


def test_build_refuses_a_config_the_rtl_cannot_build(tmp_path, capsys):
    from filmqnn_hw.spec.config import AcceleratorConfig

    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(on_board(AcceleratorConfig.small(tn=6), "zcu102").replace(
        ddr_bytes_per_cycle=8.0).to_json())
    out = tmp_path / "o"
    assert main(["zcu102", "--out", str(out), "--config", str(cfg_file)]) == 1
    assert "tn=6 is not a multiple of act_pack" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def _shipped_config(tmp_path, board: str, **changes) -> Path:
    """The design search's config for ``board`` (with ``changes``), as a config file."""
    from filmqnn_hw.search.dse import design

    path = tmp_path / f"{board}.json"
    path.write_text(design(board).replace(**changes).to_json())
    return path


def test_build_refuses_another_boards_config_before_any_output(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["pynq_z2", "--out", str(out), "--config",
                 str(_shipped_config(tmp_path, "zcu102"))]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is for board 'zcu102'" in err and "not 'pynq_z2'" in err
    assert not out.exists()


def test_build_refuses_a_clock_beyond_the_board(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["pynq_z2", "--out", str(out), "--no-rtl", "--clock", "1000"]) == 1
    assert "clock 1000 MHz is above pynq_z2's ceiling of 464 MHz" in capsys.readouterr().err
    fast = _shipped_config(tmp_path, "pynq_z2", clock_mhz=500.0)
    assert main(["pynq_z2", "--out", str(out), "--no-rtl", "--config", str(fast)]) == 1
    assert "runs at 500 MHz, above pynq_z2's ceiling" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["pynq_z2", "--out", str(out), "--config", str(fast), "--clock", "100"])
    assert e.value.code == 2 and "give one of them" in capsys.readouterr().err
    assert not out.exists()


def test_build_refuses_an_over_budget_config_unless_forced(tmp_path, capsys):
    big = _shipped_config(tmp_path, "pynq_z2", tm=64, w4_dsp_lanes=56, w4_lut_lanes=6,
                          requant_lanes=16)
    out = tmp_path / "o"
    assert main(["pynq_z2", "--out", str(out), "--no-rtl", "--config", str(big)]) == 1
    err = capsys.readouterr().err
    assert "does not fit pynq_z2 by the resource model (LUT" in err and "--force" in err
    assert not out.exists()
    assert main(["pynq_z2", "--out", str(out), "--no-rtl", "--config", str(big), "--force"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["warnings"][0].startswith("built with --force: this config does not fit")
    assert "Warning: built with --force" in (out / "report.md").read_text()
    with pytest.raises(SystemExit):
        main(["pynq_z2", "--out", str(out), "--force"])  # the search never exceeds the board
    assert "--force builds a given --config" in capsys.readouterr().err


def test_a_rebuild_removes_the_previous_builds_outputs(tmp_path, capsys):
    out = tmp_path / "o"
    cfg = _shipped_config(tmp_path, "pynq_z2")
    assert main(["pynq_z2", "--out", str(out), "--config", str(cfg), "--hls"]) == 0
    (out / "overlay").mkdir()
    (out / "overlay" / "filmqnn.bit").write_bytes(b"bitstream of this config")
    (out / "mine.txt").write_text("the user's own file")
    capsys.readouterr()
    # the same config again, report only: the old RTL, Vivado and HLS outputs go
    assert main(["pynq_z2", "--out", str(out), "--config", str(cfg), "--no-rtl"]) == 0
    assert "removed the previous build's rtl/, vivado/, hls/" in capsys.readouterr().out
    assert not (out / "rtl").exists() and not (out / "hls").exists()
    assert (out / "overlay" / "filmqnn.bit").exists()  # made from this very config
    # another config: its overlay is stale as well
    other = _shipped_config(tmp_path, "pynq_z2", tr=8)
    assert main(["pynq_z2", "--out", str(out), "--config", str(other), "--no-rtl"]) == 0
    assert "overlay/" in capsys.readouterr().out and not (out / "overlay").exists()
    assert (out / "mine.txt").read_text() == "the user's own file"


def test_build_output_files_have_normal_modes(tmp_path):
    out = tmp_path / "o"
    old = os.umask(0o022)
    try:
        assert main(["pynq_z2", "--out", str(out), "--no-rtl"]) == 0
    finally:
        os.umask(old)
    for f in ("config.json", "report.json", "report.md"):
        assert (out / f).stat().st_mode & 0o777 == 0o644, f


def _manifest(tmp_path, size: int, stride: int) -> Path:
    """A manifest of a conv (``stride``) and a global average pooling of what it leaves."""
    conv = {"kind": "conv", "name": "features.7.conv", "input": "x", "output": "c",
            "kernel": [3, 3], "stride": [stride, stride], "padding": [1, 1],
            "out_channels": 8, "groups": 1}
    gap = {"kind": "global_avgpool", "name": "pool", "input": "c", "output": "p"}
    path = tmp_path / f"manifest_{size}_{stride}.json"
    path.write_text(json.dumps({"model": "mine", "input": {"tensor": "x", "shape": [3, size, size]},
                                "layers": [conv, gap]}))
    return path


@pytest.mark.parametrize(("size", "stride", "what"), [
    (16, 1, "layer 'pool' of 'mine' (global average pooling of a 16x16 map): window 16x16"),
    (15, 3, "layer 'features.7.conv' of 'mine': window 3x3, stride 3x3")])
def test_build_refuses_a_manifest_the_accelerator_cannot_run(tmp_path, capsys, size, stride,
                                                             what):
    out = tmp_path / "o"
    m = _manifest(tmp_path, size, stride)
    assert main(["pynq_z2", "--out", str(out), "--no-rtl", "--manifest", str(m)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --manifest {m}: {what}") and "\n" not in err
    assert not out.exists()
    ok = _manifest(tmp_path, 7, 1)
    assert main(["pynq_z2", "--out", str(out), "--no-rtl", "--manifest", str(ok),
                 "--networks", "resnet18"]) == 0


@pytest.mark.parametrize(("text", "what"), [('{"input": ', "is not JSON"),
                                            ("garbage", "is not JSON"),
                                            ("[1, 2]", "is not a filmqnn manifest")])
def test_build_refuses_a_malformed_manifest_in_one_line(tmp_path, capsys, text, what):
    bad = tmp_path / "manifest.json"
    bad.write_text(text)
    out = tmp_path / "o"
    assert main(["pynq_z2", "--out", str(out), "--no-rtl", "--manifest", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad} {what}") and "\n" not in err
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.verilator
def test_build_sim_and_synth_of_an_export(tmp_path, capsys):
    """--sim runs an exported program.bin on the timing twin of the RTL; --synth
    synthesises the whole top (--verilator of an export: test_own_model_end_to_end...)."""
    from helpers import small_network

    from filmqnn_hw.compiler.program_builder import build_program
    from filmqnn_hw.sim.twin import TimingTwin
    from filmqnn_quant.export import write_export_dir

    cfg = on_board(AcceleratorConfig.small(act_pack=8, axi_data_bits=128), "pynq_z2").replace(
        ddr_bytes_per_cycle=8.0)
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(cfg.to_json())
    g = small_network(cfg)
    write_export_dir(tmp_path / "exp", g, cfg, {"model": "smallnet"}, log=lambda m: None)
    out = tmp_path / "o"
    args = ["pynq_z2", "--out", str(out), "--config", str(cfg_file), "--networks", "",
            "--manifest", str(tmp_path / "exp" / "manifest.json"), "--sim"]
    assert main([*args, "--synth"]) == 0
    text = capsys.readouterr().out
    assert "RTL (measured on its timing twin in Verilator): smallnet" in text
    assert "yosys:" in text
    rep = json.loads((out / "report.json").read_text())
    want = TimingTwin(cfg).run(build_program(g, cfg))  # the config's DDR cap
    sim = rep["sim"]["networks"]["smallnet"]
    assert sim["cycles"] == want.cycles and sim["input"] == "3x11x11"
    assert [ly["cycles"] for ly in sim["layers"]] == want.layers
    syn = rep["synth"]
    assert syn["lut"] > 0 and syn["dsp"] > 0 and syn["lut_levels"] > 0
    assert syn["model"]["lut"] > 0 and "Yosys" in syn["tool"]
    md = (out / "report.md").read_text()
    assert "Throughput of this RTL" in md and "Synthesis of the whole top" in md
    assert "Not in this report" not in md


@pytest.mark.slow
@pytest.mark.verilator
def test_own_model_end_to_end_in_verilator(tmp_path, capsys):
    """A model the project has never seen, from the user's file: export (the design search
    optimising for it), build with its manifest, the RTL's cycles (timing twin) and a
    Verilator run of the export's own weights, bit-exact against the golden model."""
    from helpers import own_model_file

    from filmqnn_quant.__main__ import main as quant

    exp = tmp_path / "exp"
    assert quant(["export", "--model", f"{own_model_file(tmp_path)}:make", "--board", "pynq_z2",
                  "--input-size", "27", "27", "--num-classes", "7", "--out", str(exp),
                  "--quiet"]) == 0
    out = tmp_path / "build"
    assert main(["pynq_z2", "--manifest", str(exp / "manifest.json"), "--out", str(out),
                 "--sim", "--verilator"]) == 0
    rep = json.loads((out / "report.json").read_text())
    v = rep["sim"]["verilator"]
    assert v["network"] == "make" and v["input"] == "3x27x27" and v["export"] == str(exp)
    assert v["bit_exact"] is True and v["twin_equal"] is True
    assert rep["sim"]["networks"]["make"]["cycles"] == v["cycles"]
    assert "Verilator: make 3x27x27 bit-exact True" in capsys.readouterr().out
