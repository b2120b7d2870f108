"""Vivado hand-off: a batch script that builds a PYNQ overlay (``.bit`` + ``.hwh``).

:func:`write_vivado_project` writes ``DIR/vivado/build_bitstream.tcl``, ``run_vivado.sh`` and
``README.md`` next to the generated Verilog (``DIR/rtl/filmqnn_top.v``). Running
``DIR/vivado/run_vivado.sh`` (``vivado -mode batch -source build_bitstream.tcl``) creates a
project for the board's part, a block design with the board's processing system and the
accelerator, synthesises and implements it, and copies the bitstream and the hardware
hand-off to ``DIR/overlay/filmqnn.bit`` / ``filmqnn.hwh`` (the pair PYNQ's
``Overlay("filmqnn.bit")`` loads).

Design decisions (``docs/rtl.md``, "Vivado hand-off"):

* **Module reference, not IP packaging.** The Verilog is regenerated for every
  configuration; ``create_bd_cell -type module -reference filmqnn_top`` instantiates it
  straight from the project sources, and IP integrator infers ``s_axi_control`` /
  ``m_axi_gmem0`` from the port names and the ``X_INTERFACE_*`` attributes the generator
  writes (clock ``ap_clk`` with ``ASSOCIATED_BUSIF``, active-low ``ap_rst_n``). Packaging
  with ``ipx::package_project`` would add an IP repository, a version to bump and a
  re-package step per configuration for no gain. The script checks after instantiation that
  both interfaces were inferred, with the protocol and data width of the Verilog.
* **SmartConnect on both AXI paths.** Control: PS master -> SmartConnect -> AXI4-Lite slave.
  Data: each AXI4 master of the Verilog -> its own SmartConnect -> one HP port. The
  SmartConnect converts the data width (e.g. a 128-bit master on a 64-bit Zynq-7000 HP port)
  and the protocol (the RTL bursts up to 256 beats; Zynq-7000 HP ports are AXI3, 16 beats).
* **Masters come from the Verilog, not the config.** ``config.axi_ports`` may say 4; the RTL
  has ``m_axi_gmem0`` (descriptors, activations) and, when the config has two or more ports,
  ``m_axi_gmem1`` (parameters, weights); the script connects what the Verilog has, one HP
  port each (``board.vivado.hp_ports`` in order).
* **Timing.** ``impl_1`` always runs to ``write_bitstream``; afterwards WNS/WHS of ``impl_1``
  are checked and a bitstream that misses timing is NOT copied to ``overlay/`` (the script
  stops with an error; the ``.bit`` stays in the run directory). ``FQ_ALLOW_TIMING_FAILURE=1``
  copies it anyway, with a warning. A bitstream with negative slack may compute wrong results
  silently, and the project's claim is bit-exactness.

Nothing here runs Vivado; ``tests/flows/test_vivado.py`` runs the script under ``tclsh`` with a
recording stand-in for every Vivado command (``tests/flows/vivado_stub.tcl``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from boards import Board, BoardVivado, load_board
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.files import atomic_write

__all__ = [
    "VIVADO_VERSIONS",
    "CONTROL_RANGE",
    "BD_NAME",
    "VivadoError",
    "VerilogTop",
    "parse_verilog_top",
    "vivado_tcl",
    "write_vivado_project",
]

#: Vivado releases the script is written for (project layout ``<proj>.gen``, SmartConnect).
VIVADO_VERSIONS = ("2020.2", "2023.2")
#: Size of the address window given to the control slave (its map is 64 bytes).
CONTROL_RANGE = 64 * 1024
#: Block-design name; the wrapper is ``<BD_NAME>_wrapper`` and the hand-off ``<BD_NAME>.hwh``.
BD_NAME = "filmqnn_bd"
#: Instance names in the block design.
ACC_CELL, PS_CELL, RST_CELL, CTRL_SMC = "filmqnn_0", "ps", "rst_0", "ctrl_smc"


class VivadoError(ValueError):
    """The Vivado project cannot be generated for this config/board/Verilog; says why."""


@dataclass(frozen=True)
class _Ps:
    """What one processing-system IP calls its pins and configuration properties."""

    kind: str  # "ps7" or "zup"
    clock_pin: str
    reset_pin: str
    irq_pin: str
    clock_prop: str
    actual_clock_prop: str
    automation: str  # apply_bd_automation rule
    automation_cfg: str  # its -config without the board preset
    fixed: tuple[tuple[str, str], ...]  # always-set CONFIG properties
    # control port -> (enable prop, data-width prop or "", clock pin, address window)
    control: dict[str, tuple[str, str, str, tuple[int, int]]]

    def hp(self, port: str) -> tuple[str, str, str, str]:
        """HP port name -> (enable prop, data-width prop, clock pin, DDR segment)."""
        if self.kind == "ps7":
            m = re.fullmatch(r"S_AXI_HP([0-3])", port)
            if m:
                i = m.group(1)
                return (f"CONFIG.PCW_USE_S_AXI_HP{i}", f"CONFIG.PCW_S_AXI_HP{i}_DATA_WIDTH",
                        f"S_AXI_HP{i}_ACLK", f"S_AXI_HP{i}/HP{i}_DDR_LOWOCM")
        else:
            m = re.fullmatch(r"S_AXI_HP([0-3])_FPD", port)
            if m:
                i = int(m.group(1))
                gp = i + 2  # S_AXI_HPn_FPD is S_AXI_GP(n+2) in the IP's properties
                return (f"CONFIG.PSU__USE__S_AXI_GP{gp}", f"CONFIG.PSU__SAXIGP{gp}__DATA_WIDTH",
                        f"saxihp{i}_fpd_aclk", f"SAXIGP{gp}/HP{i}_DDR_LOW")
            m = re.fullmatch(r"S_AXI_HPC([01])_FPD", port)
            if m:  # S_AXI_HPCn_FPD is S_AXI_GPn (cache-coherent capable; used non-coherently)
                i = int(m.group(1))
                return (f"CONFIG.PSU__USE__S_AXI_GP{i}", f"CONFIG.PSU__SAXIGP{i}__DATA_WIDTH",
                        f"saxihpc{i}_fpd_aclk", f"SAXIGP{i}/HPC{i}_DDR_LOW")
        raise VivadoError(f"unknown HP port {port!r} for this processing system")


_PS7 = _Ps(
    kind="ps7", clock_pin="FCLK_CLK0", reset_pin="FCLK_RESET0_N", irq_pin="IRQ_F2P",
    clock_prop="CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ",
    actual_clock_prop="CONFIG.PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ",
    automation="xilinx.com:bd_rule:processing_system7",
    automation_cfg='make_external "FIXED_IO, DDR" Master "Disable" Slave "Disable"',
    fixed=(("CONFIG.PCW_EN_CLK0_PORT", "1"), ("CONFIG.PCW_EN_RST0_PORT", "1"),
           ("CONFIG.PCW_USE_FABRIC_INTERRUPT", "1"), ("CONFIG.PCW_IRQ_F2P_INTR", "1")),
    control={
        "M_AXI_GP0": ("CONFIG.PCW_USE_M_AXI_GP0", "", "M_AXI_GP0_ACLK",
                      (0x4000_0000, 0x8000_0000)),
        "M_AXI_GP1": ("CONFIG.PCW_USE_M_AXI_GP1", "", "M_AXI_GP1_ACLK",
                      (0x8000_0000, 0xC000_0000)),
    },
)
_ZUP = _Ps(
    kind="zup", clock_pin="pl_clk0", reset_pin="pl_resetn0", irq_pin="pl_ps_irq0",
    clock_prop="CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ",
    actual_clock_prop="CONFIG.PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ",
    automation="xilinx.com:bd_rule:zynq_ultra_ps_e",
    automation_cfg="",
    # HPM0_FPD, HPM1_FPD and HPM0_LPD start disabled; the control port re-enables its own
    fixed=(("CONFIG.PSU__FPGA_PL0_ENABLE", "1"), ("CONFIG.PSU__USE__IRQ0", "1"),
           ("CONFIG.PSU__USE__M_AXI_GP0", "0"), ("CONFIG.PSU__USE__M_AXI_GP1", "0"),
           ("CONFIG.PSU__USE__M_AXI_GP2", "0")),
    control={
        "M_AXI_HPM0_FPD": ("CONFIG.PSU__USE__M_AXI_GP0", "CONFIG.PSU__MAXIGP0__DATA_WIDTH",
                           "maxihpm0_fpd_aclk", (0xA000_0000, 0xB000_0000)),
        "M_AXI_HPM1_FPD": ("CONFIG.PSU__USE__M_AXI_GP1", "CONFIG.PSU__MAXIGP1__DATA_WIDTH",
                           "maxihpm1_fpd_aclk", (0xB000_0000, 0xC000_0000)),
        "M_AXI_HPM0_LPD": ("CONFIG.PSU__USE__M_AXI_GP2", "CONFIG.PSU__MAXIGP2__DATA_WIDTH",
                           "maxihpm0_lpd_aclk", (0x8000_0000, 0xA000_0000)),
    },
)
_PS = {"processing_system7": _PS7, "zynq_ultra_ps_e": _ZUP}


@dataclass(frozen=True)
class VerilogTop:
    """Ports of the generated top module that the block design connects."""

    module: str
    ports: dict[str, tuple[str, int]]  # name -> (direction, width)
    slaves: tuple[str, ...]  # AXI4-Lite slave interface names (s_axi_*)
    masters: tuple[str, ...]  # AXI4 master interface names (m_axi_*)

    def data_bits(self, intf: str) -> int:
        return self.ports[f"{intf}_wdata"][1]

    def addr_bits(self, intf: str) -> int:
        return self.ports[f"{intf}_awaddr"][1]


_PORT_RE = re.compile(r"^\s*(input|output|inout)\s+(?:\[(\d+):(\d+)\]\s+)?(\w+)\s*;", re.M)


def parse_verilog_top(text: str, module: str = "filmqnn_top") -> VerilogTop:
    """Ports and AXI interfaces of ``module`` in the Verilog ``text``.

    An interface ``X`` exists if ``X_awaddr`` is a port; ``s_axi_*`` are slaves, ``m_axi_*``
    masters. Raises :class:`VivadoError` if the module or a port the design needs
    (``ap_clk``, ``ap_rst_n``, ``interrupt``, ``s_axi_control``, one master) is missing.
    """
    m = re.search(rf"^module\s+{re.escape(module)}\s*\(", text, re.M)
    if m is None:
        raise VivadoError(f"the Verilog has no module {module!r}")
    end = text.find("endmodule", m.end())
    body = text[m.end():end if end >= 0 else len(text)]
    ports = {name: (d, int(hi) - int(lo) + 1 if hi else 1)
             for d, hi, lo, name in _PORT_RE.findall(body)}
    intfs = sorted(p.removesuffix("_awaddr") for p in ports if p.endswith("_awaddr"))
    slaves = tuple(i for i in intfs if i.startswith("s_axi_"))
    masters = tuple(i for i in intfs if i.startswith("m_axi_"))
    top = VerilogTop(module, ports, slaves, masters)
    for need in ("ap_clk", "ap_rst_n", "interrupt"):
        if need not in ports:
            raise VivadoError(f"module {module} has no port {need!r}")
    if "s_axi_control" not in slaves:
        raise VivadoError(f"module {module} has no AXI4-Lite slave s_axi_control")
    if not masters:
        raise VivadoError(f"module {module} has no AXI4 master (m_axi_*)")
    for intf in slaves + masters:
        for sig in ("wdata", "rdata", "araddr"):
            if f"{intf}_{sig}" not in ports:
                raise VivadoError(f"interface {intf} of {module} lacks port {intf}_{sig}")
    return top


def _board_vivado(board: Board) -> BoardVivado:
    if board.vivado is None:
        raise VivadoError(f"board {board.name} has no [vivado] table (processing system, HP "
                          f"ports, control address): add one to {board.path or 'its .toml'}, "
                          "see boards/zcu102.toml")
    return board.vivado


def _target(config: AcceleratorConfig, board: Board) -> tuple[str, list[str]]:
    """Part to build for, and notes on how the config relates to the board."""
    notes = []
    if config.part in ("", "none"):
        notes.append(f"config is not a {board.name} design-space result (board "
                     f"{config.board!r}, part {config.part!r}); using the board's part")
        if config.family != board.family:
            notes.append(f"config family {config.family} differs from the board's "
                         f"{board.family} (affects the resource model only)")
        return board.part, notes
    if config.part != board.part:
        raise VivadoError(f"config is for part {config.part} (board {config.board}) but board "
                          f"{board.name} has part {board.part}: regenerate the config for "
                          "this board")
    if config.family != board.family:
        raise VivadoError(f"config family {config.family} does not match board {board.name} "
                          f"({board.family})")
    return config.part, notes


def _tcl_dict(pairs) -> str:
    return " ".join(f"{k} {{{v}}}" for k, v in pairs)


def vivado_tcl(config: AcceleratorConfig, board: Board | str, verilog: str, *,
               verilog_path: str = "../rtl/filmqnn_top.v", overlay_dir: str = "../overlay",
               module: str = "filmqnn_top") -> str:
    """The text of ``build_bitstream.tcl`` for ``config`` on ``board``.

    ``verilog`` is the text of the generated top (its ports decide what is connected);
    ``verilog_path`` and ``overlay_dir`` are written into the script, relative to the
    script's directory unless absolute. Raises :class:`VivadoError` if the config, board and
    Verilog disagree (part, AXI width, more masters than HP ports, control address outside
    the PS window).
    """
    board = load_board(board)
    bv = _board_vivado(board)
    ps = _PS[bv.ps_ip]
    part, notes = _target(config, board)
    top = parse_verilog_top(verilog, module)
    if bv.control_port not in ps.control:
        raise VivadoError(f"board {board.name}: control port {bv.control_port!r} is not one of "
                          f"{', '.join(ps.control)} of {bv.ps_ip}")
    ctl_use, ctl_width, ctl_clk, (lo, hi) = ps.control[bv.control_port]
    if not (lo <= bv.control_base and bv.control_base + CONTROL_RANGE <= hi):
        raise VivadoError(f"board {board.name}: control_base {bv.control_base:#x} is outside "
                          f"the {bv.control_port} window {lo:#x}..{hi - 1:#x}")
    if len(top.masters) > len(bv.hp_ports):
        raise VivadoError(f"the Verilog has {len(top.masters)} AXI masters but board "
                          f"{board.name} lists {len(bv.hp_ports)} HP ports")
    hp = [ps.hp(p) for p in bv.hp_ports[:len(top.masters)]]
    for intf in top.masters:
        if top.data_bits(intf) != config.axi_data_bits:
            raise VivadoError(f"{intf} is {top.data_bits(intf)} bits wide in the Verilog but "
                              f"the config says axi_data_bits={config.axi_data_bits}: the "
                              "Verilog was generated for another config; regenerate it")
    if config.axi_ports != len(top.masters):
        notes.append(f"config.axi_ports={config.axi_ports} but the RTL has "
                     f"{len(top.masters)} master(s) ({', '.join(top.masters)}); connecting "
                     "what the Verilog has")
    if config.axi_data_bits != bv.hp_data_bits:
        notes.append(f"{config.axi_data_bits}-bit master on {bv.hp_data_bits}-bit HP port(s): "
                     "the SmartConnect converts the width (port bandwidth is the HP port's)")
    clock = f"{config.clock_mhz:g}"
    lo_v, hi_v = VIVADO_VERSIONS
    ctrl_base = f"0x{bv.control_base:08X}"

    props = dict(ps.fixed)  # later entries override (the control port is re-enabled)
    props[ps.clock_prop] = clock
    props[ctl_use] = "1"
    if ctl_width:
        props[ctl_width] = "32"
    for use, width, _clk, _seg in hp:
        props[use], props[width] = "1", str(bv.hp_data_bits)
    ps_props = list(props.items())

    L: list[str] = []
    a = L.append
    a(f"""\
# build_bitstream.tcl -- generated by filmqnn_hw.flows.vivado; do not edit (regenerate with
# python -m filmqnn_hw.build). Builds the FILM-QNN accelerator into a PYNQ overlay.
#
#   board {board.name} ({board.description}), part {part}, {bv.ps_ip}
#   config {config.config_hash()[:16]}: tm={config.tm} tn={config.tn} G={config.act_pack}, \
{config.axi_data_bits}-bit AXI, {clock} MHz
#   Vivado {lo_v} .. {hi_v} (other versions: a warning; IP versions are not pinned, the
#   newest installed processing_system7 / zynq_ultra_ps_e / proc_sys_reset / smartconnect
#   is used, found with get_ipdefs)
#
# Run:  ./run_vivado.sh   (= vivado -mode batch -source build_bitstream.tcl)
# Environment: FQ_JOBS (parallel jobs, default 4), FQ_ALLOW_TIMING_FAILURE=1 (copy a
# bitstream that misses timing to the overlay directory anyway).
# Output: {overlay_dir}/filmqnn.bit, filmqnn.hwh (PYNQ Overlay), filmqnn_build.json,
# reports/ (timing, utilisation). Control registers at {ctrl_base} (docs/rtl.md).""")
    for n in notes:
        a(f"# NOTE: {n}")
    a(f"""
set fq_here [file dirname [file normalize [info script]]]
proc fq_path {{p}} {{ return [file normalize [file join $::fq_here $p]] }}
set fq_part {{{part}}}
set fq_board_part {{{bv.board_part}}}
set fq_clock_mhz {clock}
set fq_ctrl_base {ctrl_base}
set fq_ctrl_range {CONTROL_RANGE // 1024}K
set fq_verilog [fq_path {{{verilog_path}}}]
set fq_overlay [fq_path {{{overlay_dir}}}]
set fq_proj_dir [fq_path project]
set fq_bd {BD_NAME}
set fq_jobs 4
if {{[info exists ::env(FQ_JOBS)]}} {{ set fq_jobs $::env(FQ_JOBS) }}

# -- Vivado version -----------------------------------------------------------------------
set fq_version [version -short]
if {{[package vcompare [lindex [split $fq_version _] 0] {lo_v}] < 0 ||
     [package vcompare [lindex [split $fq_version _] 0] {hi_v}] > 0}} {{
  puts "WARNING: filmqnn: written for Vivado {lo_v} .. {hi_v}, running $fq_version"
}}

# newest installed version of a Xilinx IP (IP versions are not pinned in this script)
proc fq_vlnv {{name}} {{
  set defs [lsort -dictionary [get_ipdefs -all -filter "VLNV =~ xilinx.com:ip:${{name}}:*"]]
  if {{[llength $defs] == 0}} {{ error "filmqnn: IP xilinx.com:ip:${{name}} is not installed" }}
  return [lindex $defs end]
}}
proc fq_pin {{path}} {{
  set p [get_bd_pins $path]
  if {{$p eq ""}} {{ error "filmqnn: block-design pin $path does not exist" }}
  return $p
}}
proc fq_intf {{path}} {{
  set p [get_bd_intf_pins $path]
  if {{$p eq ""}} {{ error "filmqnn: block-design interface $path does not exist" }}
  return $p
}}

if {{![file exists $fq_verilog]}} {{
  error "filmqnn: $fq_verilog not found: run python -m filmqnn_hw.build first"
}}

# -- project --------------------------------------------------------------------------------
create_project -force filmqnn $fq_proj_dir -part $fq_part
set fq_preset 0
if {{$fq_board_part ne ""}} {{
  set bp [lindex [lsort -dictionary [get_board_parts -quiet $fq_board_part]] end]
  if {{$bp ne ""}} {{
    set_property board_part $bp [current_project]
    set fq_preset 1
  }} else {{
    puts "WARNING: filmqnn: board files $fq_board_part not installed: the PS keeps\
 Vivado's default DDR/MIO settings (fine for a PYNQ overlay, which only takes the PL\
 clocks from the .hwh; not for a boot image)"
  }}
}}
set_property target_language Verilog [current_project]
add_files -norecurse $fq_verilog
update_compile_order -fileset sources_1

# -- block design ---------------------------------------------------------------------------
create_bd_design $fq_bd
set ps [create_bd_cell -type ip -vlnv [fq_vlnv {bv.ps_ip}] {PS_CELL}]""")
    auto = (f"apply_bd_automation -rule {ps.automation} -config [concat "
            f"{{{ps.automation_cfg}}} apply_board_preset $fq_preset] $ps")
    if ps.kind == "ps7":  # DDR and FIXED_IO become block-design ports, preset or not
        a(auto)
    else:  # the MPSoC's DDR and MIO are internal: automation only applies the preset
        a(f"if {{$fq_preset}} {{ {auto} }}")
    a(f"""set_property -dict [list {_tcl_dict(ps_props)}] $ps
set fq_clock_actual [get_property {ps.actual_clock_prop} $ps]
if {{$fq_clock_actual ne "" && abs($fq_clock_actual - $fq_clock_mhz) > 0.01 * $fq_clock_mhz}} {{
  puts "WARNING: filmqnn: the PS makes $fq_clock_actual MHz for the requested\
 $fq_clock_mhz MHz; timing is closed at $fq_clock_actual MHz"
}}

# the accelerator, straight from the Verilog (module reference; docs/rtl.md says why)
set acc [create_bd_cell -type module -reference {top.module} {ACC_CELL}]""")
    for intf, proto, bits in ([("s_axi_control", "AXI4LITE", top.data_bits("s_axi_control"))]
                              + [(m, "AXI4", top.data_bits(m)) for m in top.masters]):
        a(f"""set p [fq_intf {ACC_CELL}/{intf}]
if {{[get_property CONFIG.PROTOCOL $p] ne "{proto}" || \
[get_property CONFIG.DATA_WIDTH $p] != {bits}}} {{
  error "filmqnn: {ACC_CELL}/{intf} was inferred as [get_property CONFIG.PROTOCOL $p]\
 [get_property CONFIG.DATA_WIDTH $p] bits, expected {proto} {bits} bits"
}}""")
    a(f"""
set rst [create_bd_cell -type ip -vlnv [fq_vlnv proc_sys_reset] {RST_CELL}]
set smc [create_bd_cell -type ip -vlnv [fq_vlnv smartconnect] {CTRL_SMC}]
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{1}} CONFIG.NUM_CLKS {{1}}] $smc""")
    for i, _m in enumerate(top.masters):
        a(f"""set smc [create_bd_cell -type ip -vlnv [fq_vlnv smartconnect] mem_smc_{i}]
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{1}} CONFIG.NUM_CLKS {{1}}] $smc""")
    clocked = ([f"{PS_CELL}/{ps.clock_pin}", f"{ACC_CELL}/ap_clk", f"{RST_CELL}/slowest_sync_clk",
                f"{CTRL_SMC}/aclk", f"{PS_CELL}/{ctl_clk}"]
               + [f"mem_smc_{i}/aclk" for i in range(len(top.masters))]
               + [f"{PS_CELL}/{h[2]}" for h in hp])
    resets = ([f"{ACC_CELL}/ap_rst_n", f"{CTRL_SMC}/aresetn"]
              + [f"mem_smc_{i}/aresetn" for i in range(len(top.masters))])

    def pins(paths: list[str]) -> str:
        return " ".join(f"[fq_pin {p}]" for p in paths)

    a(f"""
# one clock ({ps.clock_pin}, {clock} MHz) for everything; reset from proc_sys_reset
connect_bd_net {pins(clocked)}
connect_bd_net {pins([f"{PS_CELL}/{ps.reset_pin}", f"{RST_CELL}/ext_reset_in"])}
connect_bd_net {pins([f"{RST_CELL}/peripheral_aresetn"] + resets)}

# control: {bv.control_port} -> SmartConnect -> s_axi_control (AXI4-Lite)
connect_bd_intf_net [fq_intf {PS_CELL}/{bv.control_port}] [fq_intf {CTRL_SMC}/S00_AXI]
connect_bd_intf_net [fq_intf {CTRL_SMC}/M00_AXI] [fq_intf {ACC_CELL}/s_axi_control]""")
    for i, (intf, (_u, _w, _c, _s)) in enumerate(zip(top.masters, hp, strict=True)):
        port = bv.hp_ports[i]
        a(f"""# data: {intf} ({top.data_bits(intf)}-bit AXI4) -> SmartConnect -> {port} \
({bv.hp_data_bits}-bit)
connect_bd_intf_net [fq_intf {ACC_CELL}/{intf}] [fq_intf mem_smc_{i}/S00_AXI]
connect_bd_intf_net [fq_intf mem_smc_{i}/M00_AXI] [fq_intf {PS_CELL}/{port}]""")
    a(f"""# interrupt -> PS ({ps.irq_pin})
connect_bd_net {pins([f"{ACC_CELL}/interrupt", f"{PS_CELL}/{ps.irq_pin}"])}

# -- address map ----------------------------------------------------------------------------
# control registers at {ctrl_base} ({CONTROL_RANGE // 1024} KiB window)
assign_bd_address -offset $fq_ctrl_base -range $fq_ctrl_range \
-target_address_space [get_bd_addr_spaces {PS_CELL}/Data] \
[get_bd_addr_segs {ACC_CELL}/s_axi_control/*] -force""")
    for intf, (_u, _w, _c, seg) in zip(top.masters, hp, strict=True):
        a(f"""# {intf}: the whole DDR segment behind its HP port ({seg})
assign_bd_address -target_address_space [get_bd_addr_spaces {ACC_CELL}/{intf}] \
[get_bd_addr_segs {PS_CELL}/{seg}] -force""")
    a(f"""set fq_map {{}}
foreach space [list {PS_CELL}/Data {' '.join(f'{ACC_CELL}/{m}' for m in top.masters)}] {{
  foreach seg [get_bd_addr_segs -quiet $space/*] {{
    lappend fq_map [list $seg [get_property OFFSET $seg] [get_property RANGE $seg]]
    puts "filmqnn: address $seg [get_property OFFSET $seg] [get_property RANGE $seg]"
  }}
}}
set ctl [get_bd_addr_segs -quiet {PS_CELL}/Data/SEG_{ACC_CELL}_*]
if {{$ctl ne "" && [get_property OFFSET [lindex $ctl 0]] != $fq_ctrl_base}} {{
  error "filmqnn: control registers landed at [get_property OFFSET [lindex $ctl 0]],\
 not $fq_ctrl_base"
}}

validate_bd_design
save_bd_design
set fq_wrapper [make_wrapper -files [get_files $fq_bd.bd] -top]
add_files -norecurse $fq_wrapper
set_property top ${{fq_bd}}_wrapper [current_fileset]
update_compile_order -fileset sources_1

# -- synthesis, implementation, bitstream ---------------------------------------------------
launch_runs synth_1 -jobs $fq_jobs
wait_on_run synth_1
if {{[get_property PROGRESS [get_runs synth_1]] ne "100%"}} {{
  error "filmqnn: synthesis failed: [get_property STATUS [get_runs synth_1]]"
}}
launch_runs impl_1 -to_step write_bitstream -jobs $fq_jobs
wait_on_run impl_1
set fq_status [get_property STATUS [get_runs impl_1]]
if {{[get_property PROGRESS [get_runs impl_1]] ne "100%" || \
![string match "*write_bitstream Complete*" $fq_status]}} {{
  error "filmqnn: implementation failed: $fq_status"
}}
set fq_wns [get_property STATS.WNS [get_runs impl_1]]
set fq_whs [get_property STATS.WHS [get_runs impl_1]]
file mkdir [fq_path reports]
open_run impl_1
report_timing_summary -file [fq_path reports/timing_summary.rpt]
report_utilization -file [fq_path reports/utilization.rpt]

set fq_bit [file join [get_property DIRECTORY [get_runs impl_1]] ${{fq_bd}}_wrapper.bit]
set fq_hwh ""
foreach d [list $fq_proj_dir/filmqnn.gen $fq_proj_dir/filmqnn.srcs] {{
  set f $d/sources_1/bd/$fq_bd/hw_handoff/$fq_bd.hwh
  if {{[file exists $f]}} {{ set fq_hwh $f; break }}
}}
if {{![file exists $fq_bit]}} {{ error "filmqnn: no bitstream at $fq_bit" }}
if {{$fq_hwh eq ""}} {{ error "filmqnn: no $fq_bd.hwh under $fq_proj_dir (hw_handoff)" }}

# timing: the bitstream exists either way; overlay/ only gets one that meets timing
set fq_met [expr {{[string is double -strict $fq_wns] && [string is double -strict $fq_whs]
                && $fq_wns >= 0 && $fq_whs >= 0}}]
if {{!$fq_met}} {{
  set msg "timing not met at $fq_clock_actual MHz: WNS $fq_wns ns, WHS $fq_whs ns\
 (reports/timing_summary.rpt; bitstream left at $fq_bit)"
  if {{![info exists ::env(FQ_ALLOW_TIMING_FAILURE)] || $::env(FQ_ALLOW_TIMING_FAILURE) ne "1"}} {{
    error "filmqnn: $msg; lower the clock (python -m filmqnn_hw.build --clock) or set\
 FQ_ALLOW_TIMING_FAILURE=1 to use it anyway"
  }}
  puts "WARNING: filmqnn: $msg; copying it because FQ_ALLOW_TIMING_FAILURE=1"
}}
file mkdir $fq_overlay
file copy -force $fq_bit $fq_overlay/filmqnn.bit
file copy -force $fq_hwh $fq_overlay/filmqnn.hwh""")
    a(_JSON_TAIL.replace("@BOARD@", board.name).replace("@HASH@", config.config_hash()))
    return "\n".join(L)


#: Writes ``overlay/filmqnn_build.json`` (plain string: Tcl braces, no f-string escapes).
_JSON_TAIL = r"""proc fq_q {s} { return "\"$s\"" }
proc fq_num {v} { if {[string is double -strict $v]} { return $v } else { return null } }
set fq_items [list]
foreach {k v} [list board [fq_q @BOARD@] part [fq_q $fq_part] vivado [fq_q $fq_version] \
    config_hash [fq_q @HASH@] clock_mhz $fq_clock_mhz \
    clock_mhz_actual [fq_num $fq_clock_actual] wns_ns [fq_num $fq_wns] \
    whs_ns [fq_num $fq_whs] timing_met [expr {$fq_met ? "true" : "false"}] \
    control_base [fq_q $fq_ctrl_base] board_preset [expr {$fq_preset ? "true" : "false"}]] {
  lappend fq_items "  \"$k\": $v"
}
set fh [open $fq_overlay/filmqnn_build.json w]
puts $fh "\{\n[join $fq_items ",\n"]\n\}"
close $fh
puts "filmqnn: wrote $fq_overlay/filmqnn.bit and filmqnn.hwh (WNS $fq_wns ns)"
"""


def _readme(config: AcceleratorConfig, board: Board, ctrl_base: int) -> str:
    lo, hi = VIVADO_VERSIONS
    bv = _board_vivado(board)
    return f"""# Vivado hand-off ({board.name})

Generated by `filmqnn_hw.flows.vivado`; see `docs/rtl.md`, section "Vivado hand-off".

    ./run_vivado.sh          # vivado -mode batch -source build_bitstream.tcl

* Vivado {lo} .. {hi} (`vivado` on `PATH`; other versions print a warning). IP versions are
  not pinned: the newest installed `{bv.ps_ip}`, `proc_sys_reset` and `smartconnect`.
* Part `{board.part}`, `{bv.ps_ip}`, PL clock {config.clock_mhz:g} MHz, accelerator as a
  module reference to `../rtl/filmqnn_top.v`. Control registers at `0x{ctrl_base:08X}`
  ({CONTROL_RANGE // 1024} KiB), the AXI master(s) see the DDR segment of
  {', '.join(bv.hp_ports[:1])} (and the next HP port per further master).
* Board preset `{bv.board_part or 'none'}` if installed; otherwise Vivado's default PS
  settings (fine for a PYNQ overlay, not for a boot image).
* Output: `../overlay/filmqnn.bit` + `filmqnn.hwh` (load with `pynq.Overlay("filmqnn.bit")`),
  `filmqnn_build.json`, and `reports/`. A bitstream that misses timing (WNS or WHS < 0) is
  not copied and the script fails; `FQ_ALLOW_TIMING_FAILURE=1` copies it anyway.
  `FQ_JOBS` sets the parallel jobs (default 4).
* The interrupt goes straight to the PS; PYNQ's `Interrupt` class needs an AXI interrupt
  controller, so drivers poll `AP_CTRL` (or map the GIC interrupt themselves).
* Not run in this repository (no Vivado here): the script is checked with `tclsh` against
  a recording stand-in for the Vivado commands (`tests/flows/test_vivado.py`).
"""


def _run_sh() -> str:
    lo, hi = VIVADO_VERSIONS
    return f"""#!/usr/bin/env bash
# Generated by filmqnn_hw.flows.vivado: build the FILM-QNN overlay (Vivado {lo} .. {hi}).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v vivado >/dev/null 2>&1; then
  echo "error: vivado is not on PATH (source <Vivado install>/settings64.sh first)" >&2
  exit 1
fi
exec vivado -mode batch -notrace -nojournal -log vivado.log -source build_bitstream.tcl "$@"
"""



def write_vivado_project(config: AcceleratorConfig, board: Board | str,
                         out_dir: str | os.PathLike, verilog_path: str | os.PathLike) -> Path:
    """Write ``out_dir/vivado/{build_bitstream.tcl, run_vivado.sh, README.md}``; return the
    ``vivado`` directory.

    The script refers to ``verilog_path`` and ``out_dir/overlay`` relative to itself, so the
    whole ``out_dir`` can be copied to a machine with Vivado. Raises :class:`VivadoError`
    (see :func:`vivado_tcl`) before writing anything.
    """
    board = load_board(board)
    out = Path(out_dir)
    vdir = out / "vivado"
    vpath = Path(verilog_path)
    text = vpath.read_text()

    def rel(p: Path) -> str:
        try:
            return os.path.relpath(p.resolve(), vdir.resolve())
        except ValueError:  # another drive (Windows)
            return str(p.resolve())

    tcl = vivado_tcl(config, board, text, verilog_path=rel(vpath),
                     overlay_dir=rel(out / "overlay"))
    vdir.mkdir(parents=True, exist_ok=True)
    atomic_write(vdir / "build_bitstream.tcl", tcl)
    atomic_write(vdir / "run_vivado.sh", _run_sh(), mode=0o755)
    atomic_write(vdir / "README.md", _readme(config, board, _board_vivado(board).control_base))
    return vdir
