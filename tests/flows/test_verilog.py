# amaranth: UnusedElaboratable=no
"""Vivado-style Verilog emission: port names, clock/reset, collisions, Verilator lint (the
``verilator`` cases)."""

from __future__ import annotations

import re
import subprocess

import pytest
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from filmqnn_hw.flows.verilog import convert_vivado, vivado_ports, write_vivado
from filmqnn_hw.gateware.axi.lite_regs import AXI4LiteControl


def ports_of(text: str, module: str) -> dict[str, str]:
    body = text.split(f"module {module}(", 1)[1].split("endmodule", 1)[0]
    return {name: d for d, name in re.findall(r"^\s*(input|output)\s+(?:\[[^\]]+\]\s*)?(\w+);",
                                              body, re.M)}


def lint(path, top):
    # SYMRSVDWORD: the HLS port name `interrupt` is a C++ word; harmless for Verilog tools.
    r = subprocess.run(["verilator", "--lint-only", "-Wno-WIDTH", "-Wno-SYMRSVDWORD",
                        "--top-module", top, str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    """Name -> (Verilog text, path) of the control slave and a DMA with IDs, written once."""
    from filmqnn_hw.gateware.axi.dma import AXI4DMA

    d = tmp_path_factory.mktemp("axi_verilog")
    units = {"filmqnn_ctrl": AXI4LiteControl(),
             "filmqnn_dma": AXI4DMA("m_axi_gmem0", addr_width=32, data_width=128, id_width=1)}
    return {name: (write_vivado(dut, name, d / f"{name}.v"), d / f"{name}.v")
            for name, dut in units.items()}


def test_control_ports_are_vivado_names(emitted):
    text, _ = emitted["filmqnn_ctrl"]
    ports = ports_of(text, "filmqnn_ctrl")
    assert ports["ap_clk"] == "input" and ports["ap_rst_n"] == "input"
    assert ports["s_axi_control_awaddr"] == "input"
    assert ports["s_axi_control_rdata"] == "output"
    assert ports["interrupt"] == "output" and ports["core_start"] == "output"
    assert not any("__" in p for p in ports)
    assert {p for p in ports if p.startswith("s_axi_control_")} == {
        f"s_axi_control_{s}" for s in (
            "awaddr awprot awvalid awready wdata wstrb wvalid wready bresp bvalid bready "
            "araddr arprot arvalid arready rdata rresp rvalid rready").split()}
    assert 'ASSOCIATED_BUSIF s_axi_control, ASSOCIATED_RESET ap_rst_n' in text
    assert 'POLARITY ACTIVE_LOW' in text


@pytest.mark.verilator
@pytest.mark.parametrize("name", ["filmqnn_ctrl", "filmqnn_dma"])
def test_control_and_dma_lint(emitted, name):
    lint(emitted[name][1], name)


def test_name_collision():
    class Bad(wiring.Component):
        def __init__(self):
            super().__init__({"a_b": Out(1), "a": Out(wiring.Signature({"b": Out(1)}))})

        def elaborate(self, platform):
            return Module()

    with pytest.raises(ValueError, match="flatten to the port name 'a_b'"):
        vivado_ports(Bad())

    class Clash(wiring.Component):
        def __init__(self):
            super().__init__({"ap_clk": Out(1)})

        def elaborate(self, platform):
            return Module()

    with pytest.raises(ValueError, match="collides with the clock/reset"):
        convert_vivado(Clash(), "x")
    with pytest.raises(ValueError, match="Verilog identifier"):
        convert_vivado(AXI4LiteControl(), "bad name")


def test_dma_ports(emitted):
    text, _ = emitted["filmqnn_dma"]
    ports = ports_of(text, "filmqnn_dma")
    for s in ("awid awaddr awlen awsize awburst awlock awcache awprot awqos awvalid "
              "wdata wstrb wlast wvalid bready arid araddr arlen arsize arburst arlock arcache "
              "arprot arqos arvalid rready").split():
        assert ports[f"m_axi_gmem0_{s}"] == "output", s
    for s in "awready wready bid bresp bvalid arready rid rdata rresp rlast rvalid".split():
        assert ports[f"m_axi_gmem0_{s}"] == "input", s
    assert ports["rd_data_valid"] == "output" and ports["wr_cmd_ready"] == "output"
    assert "ASSOCIATED_BUSIF m_axi_gmem0," in text


@pytest.mark.verilator
def test_reader_writer_lint(tmp_path):
    from filmqnn_hw.gateware.axi.burst_reader import AXI4BurstReader
    from filmqnn_hw.gateware.axi.burst_writer import AXI4BurstWriter

    write_vivado(AXI4BurstReader(data_width=512, max_outstanding=8), "rd", tmp_path / "rd.v")
    lint(tmp_path / "rd.v", "rd")
    write_vivado(AXI4BurstWriter(data_width=32, max_burst=16), "wr", tmp_path / "wr.v")
    lint(tmp_path / "wr.v", "wr")


def test_dma_from_config():
    from filmqnn_hw.gateware.axi.dma import AXI4DMA
    from filmqnn_hw.spec.config import AcceleratorConfig

    cfg = AcceleratorConfig.small()
    dma = AXI4DMA.from_config(cfg, 0)
    assert dma.m_axi.signature.data_width == cfg.axi_data_bits
    assert dma.port_name == "m_axi_gmem0"
    Fragment.get(dma, None)  # elaborates with the config's widths
    with pytest.raises(ValueError, match="port index 1 out of range"):
        AXI4DMA.from_config(cfg, cfg.axi_ports)
