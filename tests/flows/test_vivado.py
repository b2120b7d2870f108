"""Vivado hand-off: the generated build_bitstream.tcl agrees with the Verilog, the config and
the board, and runs as Tcl against a recording stand-in for the Vivado commands.

No Vivado here: ``tests/flows/vivado_stub.tcl`` defines every Vivado command the script
uses, models the module reference from the Verilog's ports, and logs each call; the tests run
the script with ``tclsh`` and check the recorded sequence and the copied overlay files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from boards import load_board
from filmqnn_hw.flows.vivado import (
    CONTROL_RANGE,
    VIVADO_VERSIONS,
    VivadoError,
    parse_verilog_top,
    vivado_tcl,
    write_vivado_project,
)
from filmqnn_hw.spec.config import AcceleratorConfig

STUB = Path(__file__).resolve().parent / "vivado_stub.tcl"
TCLSH = shutil.which("tclsh")
needs_tclsh = pytest.mark.skipif(
    TCLSH is None, reason="tclsh not installed (apt-get install tcl; scripts/setup.sh does)")

#: what each board's script must say (independent of filmqnn_hw.flows.vivado's tables)
EXPECT = {
    "pynq_z2": dict(part="xc7z020clg400-1", ip="processing_system7", clock=100,
                    clock_prop="CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ", base="0x43C00000",
                    hp="S_AXI_HP0", hp_width=("CONFIG.PCW_S_AXI_HP0_DATA_WIDTH", "64"),
                    ctrl="M_AXI_GP0", clk="FCLK_CLK0", irq="IRQ_F2P",
                    ddr="ps/S_AXI_HP0/HP0_DDR_LOWOCM"),
    "zcu102": dict(part="xczu9eg-ffvb1156-2-e", ip="zynq_ultra_ps_e", clock=150,
                   clock_prop="CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ", base="0xA0000000",
                   hp="S_AXI_HP0_FPD", hp_width=("CONFIG.PSU__SAXIGP2__DATA_WIDTH", "128"),
                   ctrl="M_AXI_HPM0_FPD", clk="pl_clk0", irq="pl_ps_irq0",
                   ddr="ps/SAXIGP2/HP0_DDR_LOW"),
}


@pytest.fixture(scope="module")
def small_top(tmp_path_factory) -> tuple[AcceleratorConfig, Path]:
    """One emitted Verilog top (128-bit AXI), shared by the tests (~5 s)."""
    from filmqnn_hw.flows.verilog import emit_verilog

    cfg = AcceleratorConfig.small(act_pack=8, axi_data_bits=128)
    path = tmp_path_factory.mktemp("rtl") / "filmqnn_top.v"
    emit_verilog(cfg, path)
    return cfg, path


def _board_config(cfg: AcceleratorConfig, board: str) -> AcceleratorConfig:
    """The small array re-targeted at ``board`` (its part, family and paper clock)."""
    b = load_board(board)
    return dataclasses.replace(cfg, board=b.name, part=b.part, family=b.family,
                               clock_mhz=float(EXPECT[board]["clock"]))


def _project(tmp_path: Path, cfg: AcceleratorConfig, board: str, verilog: Path) -> Path:
    out = tmp_path / "build"
    (out / "rtl").mkdir(parents=True)
    shutil.copy(verilog, out / "rtl" / "filmqnn_top.v")
    write_vivado_project(cfg, board, out, out / "rtl" / "filmqnn_top.v")
    return out


def _run(out: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run build_bitstream.tcl under tclsh with the stub; return the process and the log."""
    log = out / "stub_calls.log"
    log.unlink(missing_ok=True)
    drive = out / "drive.tcl"
    drive.write_text(f"source {{{STUB}}}\nsource {{{out / 'vivado' / 'build_bitstream.tcl'}}}\n")
    e = {k: v for k, v in os.environ.items() if not k.startswith(("FQ_",))}
    e.update(env, FQ_STUB_LOG=str(log))
    proc = subprocess.run([TCLSH, str(drive)], capture_output=True, text=True, timeout=60,
                          env=e, cwd=out)
    unesc = {"\\\\": "\\", "\\t": "\t", "\\n": "\n"}
    calls = [[re.sub(r"\\[\\tn]", lambda m: unesc[m.group(0)], f) for f in ln.split("\t")]
             for ln in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def _first(calls: list[list[str]], *prefix: str) -> int:
    for i, c in enumerate(calls):
        if c[:len(prefix)] == list(prefix):
            return i
    raise AssertionError(f"no call {' '.join(prefix)} in {len(calls)} calls")


def _props(calls: list[list[str]], obj: str) -> dict[str, str]:
    return {c[1]: c[2] for c in calls if c[0] == "set_property" and c[3] == obj}


# -- static checks -------------------------------------------------------------------------------


def test_parse_verilog_top(small_top):
    cfg, path = small_top
    from filmqnn_hw.gateware.top import TOP_NAME

    top = parse_verilog_top(path.read_text(), TOP_NAME)
    assert top.slaves == ("s_axi_control",) and top.masters == ("m_axi_gmem0",)
    assert top.data_bits("m_axi_gmem0") == cfg.axi_data_bits == 128
    assert top.addr_bits("m_axi_gmem0") == 32 and top.data_bits("s_axi_control") == 32
    assert top.ports["ap_rst_n"] == ("input", 1) and top.ports["interrupt"] == ("output", 1)
    with pytest.raises(VivadoError, match="no module 'other'"):
        parse_verilog_top(path.read_text(), "other")
    with pytest.raises(VivadoError, match="no port 'interrupt'"):
        parse_verilog_top(path.read_text().replace("interrupt;", "irq;"), TOP_NAME)


@pytest.mark.parametrize("board", ["pynq_z2", "zcu102"])
def test_tcl_names_agree_with_verilog_config_and_board(small_top, board):
    cfg, path = small_top
    text = path.read_text()
    want = EXPECT[board]
    tcl = vivado_tcl(_board_config(cfg, board), board, text)
    top = parse_verilog_top(text)
    # every accelerator pin/interface the script names is a Verilog port or interface
    named = set(re.findall(r"filmqnn_0/(\w+)", tcl))
    assert named == {"ap_clk", "ap_rst_n", "interrupt", "s_axi_control", "m_axi_gmem0"}
    assert named <= set(top.ports) | set(top.slaves) | set(top.masters)
    assert "-reference filmqnn_top " in tcl and re.search(r"^module filmqnn_top\(", text, re.M)
    assert f"set fq_part {{{want['part']}}}" in tcl
    assert f"{want['clock_prop']} {{{want['clock']}}}" in tcl
    assert f"set fq_ctrl_base {want['base']}" in tcl
    assert f"set fq_ctrl_range {CONTROL_RANGE // 1024}K" in tcl
    assert want["ddr"] in tcl and f"ps/{want['irq']}" in tcl
    assert all(v in tcl for v in VIVADO_VERSIONS)
    assert "tm=8 tn=8 G=8, 128-bit AXI" in tcl


def test_refusals(small_top):
    cfg, path = small_top
    text = path.read_text()
    with pytest.raises(VivadoError, match="part xczu9eg.*board pynq_z2 has part xc7z020"):
        vivado_tcl(_board_config(cfg, "zcu102"), "pynq_z2", text)
    with pytest.raises(VivadoError, match="128 bits wide in the Verilog.*axi_data_bits=64"):
        vivado_tcl(dataclasses.replace(cfg, axi_data_bits=64), "pynq_z2", text)
    bare = dataclasses.replace(load_board("pynq_z2"), vivado=None)
    with pytest.raises(VivadoError, match=r"no \[vivado\] table"):
        vivado_tcl(cfg, bare, text)
    five = _multi_master(text, 5)
    with pytest.raises(VivadoError, match="5 AXI masters but board pynq_z2 lists 4 HP ports"):
        vivado_tcl(cfg, "pynq_z2", five)
    far = dataclasses.replace(load_board("zcu102"), vivado=dataclasses.replace(
        load_board("zcu102").vivado, control_base=0x43C0_0000))
    with pytest.raises(VivadoError, match="outside the M_AXI_HPM0_FPD window"):
        vivado_tcl(cfg, far, text)


def _multi_master(text: str, n: int) -> str:
    """The top's text with ``n`` copies of every m_axi_gmem0 port (gmem0..gmem{n-1})."""
    lines = text.split("\n")
    out = []
    for ln in lines:
        out.append(ln)
        if re.match(r"\s*(input|output).*\bm_axi_gmem0_\w+;", ln):
            out += [ln.replace("m_axi_gmem0_", f"m_axi_gmem{i}_") for i in range(1, n)]
    return "\n".join(out)


def test_written_files(small_top, tmp_path):
    cfg, path = small_top
    out = _project(tmp_path, cfg, "pynq_z2", path)
    v = out / "vivado"
    sh = (v / "run_vivado.sh").read_text()
    assert os.access(v / "run_vivado.sh", os.X_OK)
    assert "vivado -mode batch" in sh and "-source build_bitstream.tcl" in sh
    subprocess.run(["bash", "-n", str(v / "run_vivado.sh")], check=True)
    tcl = (v / "build_bitstream.tcl").read_text()
    assert "fq_path {../rtl/filmqnn_top.v}" in tcl and "fq_path {../overlay}" in tcl
    readme = (v / "README.md").read_text()
    assert "0x43C00000" in readme and "2020.2 .. 2023.2" in readme and "Not run" in readme
    assert not list(v.glob(".*"))  # no temporary files left


# -- the script under tclsh with the recording stand-in ----------------------------------------


@needs_tclsh
@pytest.mark.parametrize("board", ["pynq_z2", "zcu102"])
def test_script_runs_under_the_stub(small_top, tmp_path, board):
    cfg, path = small_top
    want = EXPECT[board]
    bcfg = _board_config(cfg, board)
    out = _project(tmp_path, bcfg, board, path)
    proc, calls = _run(out)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "board files" in proc.stdout  # no board files installed: default PS settings

    i_proj = _first(calls, "create_project")
    assert calls[i_proj][calls[i_proj].index("-part") + 1] == want["part"]
    added = [c[-1] for c in calls if c[0] == "add_files"]
    assert Path(added[0]) == (out / "rtl" / "filmqnn_top.v").resolve()
    i_ps = _first(calls, "create_bd_cell", "-type", "ip", "-vlnv",
                  f"xilinx.com:ip:{want['ip']}:9.9")
    i_acc = _first(calls, "create_bd_cell", "-type", "module", "-reference", "filmqnn_top")
    ps = _props(calls, "ps")
    assert ps[want["clock_prop"]] == str(want["clock"])
    assert ps[want["hp_width"][0]] == want["hp_width"][1]
    # the inferred interfaces are checked for protocol and width
    assert ["get_property", "CONFIG.PROTOCOL", "filmqnn_0/s_axi_control"] in calls
    assert ["get_property", "CONFIG.DATA_WIDTH", "filmqnn_0/m_axi_gmem0"] in calls
    # wiring
    nets = [c[1:] for c in calls if c[0] == "connect_bd_net"]
    clk = next(n for n in nets if f"ps/{want['clk']}" in n)
    assert {"filmqnn_0/ap_clk", "rst_0/slowest_sync_clk", "ctrl_smc/aclk",
            "mem_smc_0/aclk"} <= set(clk)
    rst = next(n for n in nets if "rst_0/peripheral_aresetn" in n)
    assert "filmqnn_0/ap_rst_n" in rst
    assert ["filmqnn_0/interrupt", f"ps/{want['irq']}"] in nets
    intf = [c[1:] for c in calls if c[0] == "connect_bd_intf_net"]
    assert [f"ps/{want['ctrl']}", "ctrl_smc/S00_AXI"] in intf
    assert ["ctrl_smc/M00_AXI", "filmqnn_0/s_axi_control"] in intf
    assert ["filmqnn_0/m_axi_gmem0", "mem_smc_0/S00_AXI"] in intf
    assert ["mem_smc_0/M00_AXI", f"ps/{want['hp']}"] in intf
    # address map: control at the fixed base, the master gets the DDR segment
    i_addr = _first(calls, "assign_bd_address", "-offset", want["base"], "-range", "64K",
                    "-target_address_space", "ps/Data", "filmqnn_0/s_axi_control/reg0")
    assert ["assign_bd_address", "-target_address_space", "filmqnn_0/m_axi_gmem0",
            want["ddr"], "-force"] in calls
    # order: project, PS, accelerator, addresses, validate, wrapper, synth, impl
    i_val = _first(calls, "validate_bd_design")
    i_wrap = _first(calls, "make_wrapper")
    i_top = _first(calls, "set_property", "top", "filmqnn_bd_wrapper", "sources_1")
    i_syn = _first(calls, "launch_runs", "synth_1")
    i_imp = _first(calls, "launch_runs", "impl_1", "-to_step", "write_bitstream")
    i_wns = _first(calls, "get_property", "STATS.WNS", "impl_1")
    assert i_proj < i_ps < i_acc < i_addr < i_val < i_wrap < i_top < i_syn < i_imp < i_wns
    assert ["wait_on_run", "impl_1"] in calls
    # outputs: the stub's bitstream and hand-off, under PYNQ's names
    ov = out / "overlay"
    assert (ov / "filmqnn.bit").read_text().strip() == "stub bit filmqnn_bd_wrapper"
    assert (ov / "filmqnn.hwh").read_text().strip() == "<stub hwh filmqnn_bd/>"
    info = json.loads((ov / "filmqnn_build.json").read_text())
    assert info["board"] == board and info["part"] == want["part"]
    assert info["clock_mhz"] == want["clock"] and info["timing_met"] is True
    assert int(info["control_base"], 16) == int(want["base"], 16)
    assert info["config_hash"] == bcfg.config_hash()


@needs_tclsh
def test_board_preset_and_version_warning(small_top, tmp_path):
    cfg, path = small_top
    out = _project(tmp_path, _board_config(cfg, "zcu102"), "zcu102", path)
    proc, calls = _run(out, FQ_STUB_BOARD_PARTS="xilinx.com:zcu102:part0:3.4",
                       FQ_STUB_VERSION="2019.1", FQ_JOBS="8")
    assert proc.returncode == 0, proc.stderr
    assert "written for Vivado 2020.2 .. 2023.2, running 2019.1" in proc.stdout
    assert ["set_property", "board_part", "xilinx.com:zcu102:part0:3.4", "project"] in calls
    i_auto = _first(calls, "apply_bd_automation", "-rule", "xilinx.com:bd_rule:zynq_ultra_ps_e")
    assert calls[i_auto][4].endswith("apply_board_preset 1")
    # explicit settings come after the preset, so they win
    assert i_auto < _first(calls, "set_property", "CONFIG.PSU__USE__S_AXI_GP2", "1", "ps")
    assert ["launch_runs", "synth_1", "-jobs", "8"] in calls


@needs_tclsh
def test_timing_failure_keeps_the_overlay_empty(small_top, tmp_path):
    cfg, path = small_top
    out = _project(tmp_path, _board_config(cfg, "pynq_z2"), "pynq_z2", path)
    proc, calls = _run(out, FQ_STUB_WNS="-0.431")
    assert proc.returncode != 0
    assert "timing not met" in proc.stderr and "WNS -0.431 ns" in proc.stderr
    assert not (out / "overlay" / "filmqnn.bit").exists()
    bit = out / "vivado" / "project" / "filmqnn.runs" / "impl_1" / "filmqnn_bd_wrapper.bit"
    assert bit.exists()  # the bitstream was written, just not handed off
    proc, _ = _run(out, FQ_STUB_WNS="-0.431", FQ_ALLOW_TIMING_FAILURE="1")
    assert proc.returncode == 0, proc.stderr
    assert "copying it because FQ_ALLOW_TIMING_FAILURE=1" in proc.stdout
    info = json.loads((out / "overlay" / "filmqnn_build.json").read_text())
    assert info["timing_met"] is False and info["wns_ns"] == -0.431


@needs_tclsh
def test_connects_the_masters_the_verilog_has(small_top, tmp_path):
    """Two masters in the Verilog -> two SmartConnects on HP0 and HP1, whatever axi_ports says."""
    cfg, path = small_top
    two = tmp_path / "two.v"
    two.write_text(_multi_master(path.read_text(), 2))
    bcfg = dataclasses.replace(_board_config(cfg, "pynq_z2"), axi_ports=4)
    out = _project(tmp_path, bcfg, "pynq_z2", two)
    assert "config.axi_ports=4 but the RTL has 2 master(s)" in (
        out / "vivado" / "build_bitstream.tcl").read_text()
    proc, calls = _run(out)
    assert proc.returncode == 0, proc.stderr
    intf = [c[1:] for c in calls if c[0] == "connect_bd_intf_net"]
    assert ["mem_smc_1/M00_AXI", "ps/S_AXI_HP1"] in intf
    assert ["filmqnn_0/m_axi_gmem1", "mem_smc_1/S00_AXI"] in intf
    assert not any("S_AXI_HP2" in " ".join(c) for c in intf)
    assert _props(calls, "ps")["CONFIG.PCW_USE_S_AXI_HP1"] == "1"


@needs_tclsh
def test_stub_catches_a_wrong_name(small_top, tmp_path):
    """The stand-in is strict: a port the Verilog does not have fails the run."""
    cfg, path = small_top
    out = _project(tmp_path, _board_config(cfg, "pynq_z2"), "pynq_z2", path)
    tcl = out / "vivado" / "build_bitstream.tcl"
    tcl.write_text(tcl.read_text().replace("filmqnn_0/ap_rst_n", "filmqnn_0/ap_rst"))
    proc, _ = _run(out)
    assert proc.returncode != 0 and "pin filmqnn_0/ap_rst does not exist" in proc.stderr
    tcl.write_text(tcl.read_text().replace("filmqnn_0/ap_rst", "filmqnn_0/ap_rst_n")
                   .replace("get_board_parts", "get_board_part"))
    proc, _ = _run(out)
    assert proc.returncode != 0 and "not modelled: get_board_part" in proc.stderr
