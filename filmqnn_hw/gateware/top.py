"""The complete accelerator top: AXI4-Lite control, AXI4 masters to DDR, the engine."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.axi.burst_reader import read_data_layout
from filmqnn_hw.gateware.axi.burst_split import command_layout
from filmqnn_hw.gateware.axi.dma import AXI4DMA
from filmqnn_hw.gateware.axi.lite_regs import AXI4LiteControl, accelerator_control_map
from filmqnn_hw.gateware.axi.signatures import AXI4LiteSignature, AXI4Signature
from filmqnn_hw.gateware.axi.skid import StreamSkidBuffer
from filmqnn_hw.gateware.engine import ProgramEngine
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.geometry import LEN_WIDTH, geometry

__all__ = ["FilmQnnAccelerator", "TOP_NAME"]

#: Verilog module name of the generated top (also the HLS top function's name).
TOP_NAME = "filmqnn_top"


class FilmQnnAccelerator(wiring.Component):
    """One FILM-QNN accelerator: runs a whole layer program from DDR after one ``ap_start``.

    The control slave has Vivado HLS's ``ap_ctrl_hs`` layout (``AP_CTRL`` 0x00, GIE 0x04,
    IER 0x08, ISR 0x0C, ``layers`` 0x10, counters ``cycles`` 0x18, ``stall_weight`` 0x20,
    ``stall_input`` 0x28, ``stall_output`` 0x30, ``status`` 0x38), so the RTL and the HLS core
    run under one driver. The host writes the layer program's byte address to ``layers``,
    sets ``ap_start`` and waits for ``ap_done`` (or the interrupt).

    Parameters
    ----------
    config : AcceleratorConfig
        Array, tile sizes, packing factor, AXI width and ports (see ``docs/rtl.md`` for what
        the RTL uses of the config).
    addr_width : int
        DDR address width (32 for Zynq-7000 HP ports; up to 49 on Zynq UltraScale+).
    timing_twin : bool
        The timing twin: the same cycles and handshakes without the PE array's arithmetic
        (:mod:`~filmqnn_hw.gateware.pe_array_timing`), for fast cycle counts in Verilator.

    Members
    -------
    s_axi_control : In(AXI4LiteSignature(6, 32))
    m_axi_gmem0 : Out(AXI4Signature(addr_width, config.axi_data_bits))
        descriptors, per-channel parameters, activations (reads and writes)
    m_axi_gmem1 .. m_axi_gmem<K> : Out(AXI4Signature(addr_width, config.axi_data_bits))
        ``K = geometry(config).weight_ports`` (the config's AXI ports minus one, capped by the
        DDR bandwidth; 0 for one port): the weights, tap record ``r`` of a bank through port
        ``1 + r mod K``, read concurrently with port 0 (they never write)
    interrupt : Out(1)      ``GIE & (ISR != 0)``, registered

    Attributes
    ----------
    config : AcceleratorConfig
        The configuration it was built for (layer programs must be built for the same one:
        the program header carries its hash).
    addr_width : int
    cmap : ControlMap
        The control register map
        (:func:`~filmqnn_hw.gateware.axi.lite_regs.accelerator_control_map`);
        ``cmap.offset_of("layers")`` etc. give the register offsets for a driver/testbench.

    Latency/throughput: see :class:`~filmqnn_hw.gateware.engine.ProgramEngine`; the ``cycles``
    counter reports the run's length.
    """

    def __init__(self, config: AcceleratorConfig, *, addr_width: int = 32,
                 timing_twin: bool = False) -> None:
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        geometry(config)  # refuses configs the RTL cannot build, with the reason
        self.config = config
        self.addr_width = addr_width
        self.timing_twin = timing_twin
        self.cmap = accelerator_control_map()
        self.geo = geometry(config)
        members = {
            "s_axi_control": In(AXI4LiteSignature(self.cmap.addr_width, 32)),
            "m_axi_gmem0": Out(AXI4Signature(addr_width, config.axi_data_bits)),
            "interrupt": Out(1),
        }
        for k in range(1, self.geo.weight_ports + 1):
            members[f"m_axi_gmem{k}"] = Out(AXI4Signature(addr_width, config.axi_data_bits))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.control = ctl = AXI4LiteControl(self.cmap)
        m.submodules.dma = dma = AXI4DMA("m_axi_gmem0", addr_width=self.addr_width,
                                         data_width=self.config.axi_data_bits,
                                         len_width=LEN_WIDTH, strobes=True, max_outstanding=16)
        m.submodules.engine = eng = ProgramEngine(self.config, addr_width=self.addr_width,
                                                  cmap=self.cmap, timing_twin=self.timing_twin)
        wiring.connect(m, wiring.flipped(self.s_axi_control), ctl.s_axi_control)
        wiring.connect(m, dma.m_axi, wiring.flipped(self.m_axi_gmem0))
        wiring.connect(m, ctl.core, eng.ctrl)
        # a register stage on the read commands cuts the path from the engine's command logic
        # through the DMA's burst splitter
        m.submodules.rd_cmd_reg = rd_reg = StreamSkidBuffer(
            command_layout(self.addr_width, LEN_WIDTH))
        wiring.connect(m, eng.rd_cmd, rd_reg.i)
        wiring.connect(m, rd_reg.o, dma.rd_cmd)
        # and one on the read data: RREADY comes from a register instead of the engine's
        # consumers (the loader's column logic would be a long path into RREADY)
        rdl = read_data_layout(self.config.axi_data_bits)
        m.submodules.rd_data_reg = rd_dreg = StreamSkidBuffer(rdl)
        wiring.connect(m, dma.rd_data, rd_dreg.i)
        wiring.connect(m, rd_dreg.o, eng.rd_data)
        wiring.connect(m, eng.wr_cmd, dma.wr_cmd)
        wiring.connect(m, eng.wr_data, dma.wr_data)
        rd_error = dma.rd_error
        for k in range(self.geo.weight_ports):  # weight ports: read only
            name = f"m_axi_gmem{k + 1}"
            wdma = AXI4DMA(name, addr_width=self.addr_width,
                           data_width=self.config.axi_data_bits, len_width=LEN_WIDTH,
                           max_outstanding=16)
            m.submodules[f"wdma{k + 1}"] = wdma
            wiring.connect(m, wdma.m_axi, wiring.flipped(getattr(self, name)))
            w_reg = StreamSkidBuffer(command_layout(self.addr_width, LEN_WIDTH))
            m.submodules[f"w_cmd_reg{k + 1}"] = w_reg
            wiring.connect(m, eng.w_cmd[k], w_reg.i)
            wiring.connect(m, w_reg.o, wdma.rd_cmd)
            w_dreg = StreamSkidBuffer(rdl)
            m.submodules[f"w_data_reg{k + 1}"] = w_dreg
            wiring.connect(m, wdma.rd_data, w_dreg.i)
            wiring.connect(m, w_dreg.o, eng.w_data[k])
            rd_error = rd_error | wdma.rd_error | wdma.wr_error
        m.d.comb += [eng.wr_busy.eq(dma.wr_busy), eng.rd_error.eq(rd_error),
                     eng.wr_error.eq(dma.wr_error), self.interrupt.eq(ctl.interrupt)]
        return m
