"""One AXI4 master port shared by a burst reader and a burst writer (an HLS-style gmem port)."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.axi.burst_reader import AXI4BurstReader, read_data_layout
from filmqnn_hw.gateware.axi.burst_split import check_master_params, command_layout
from filmqnn_hw.gateware.axi.burst_writer import AXI4BurstWriter, write_data_layout
from filmqnn_hw.gateware.axi.signatures import AXI4Signature, connect_read_write

__all__ = ["AXI4DMA"]


class AXI4DMA(wiring.Component):
    """:class:`AXI4BurstReader` on the AR/R channels and :class:`AXI4BurstWriter` on AW/W/B of
    one AXI4 master port. Reads and writes are independent (no ordering between them); the
    latency/throughput figures are those of the reader and writer.

    Parameters
    ----------
    port : str
        Name of the AXI member (the Vivado prefix), e.g. ``"m_axi_gmem0"``.
    addr_width, data_width, id_width, len_width, max_burst, max_outstanding :
        Passed to both the reader and the writer.
    strobes : bool
        Passed to the writer: with ``True``, ``wr_data`` carries per-beat byte strobes
        (WSTRB); default ``False`` (WSTRB all ones).

    Members
    -------
    <port> : Out(AXI4Signature(addr_width, data_width, id_width))
    rd_cmd, rd_data, rd_busy, rd_error : the reader's ``cmd``, ``data``, ``busy``, ``error``
    wr_cmd, wr_data, wr_done, wr_busy, wr_error : the writer's ``cmd``, ``data``, ``done``,
        ``busy``, ``error``; ``wr_data`` is In(stream.Signature(data_width)), or with
        ``strobes=True`` In(stream.Signature(write_data_layout(data_width))) (fields ``data``,
        ``strb``)
    clear_error : In(1), clears both sticky error flags
    """

    def __init__(self, port: str = "m_axi_gmem0", *, addr_width: int = 32, data_width: int = 64,
                 id_width: int = 0, len_width: int = 24, max_burst: int = 256,
                 max_outstanding: int = 4, strobes: bool = False):
        if not isinstance(port, str) or not port.isidentifier():
            raise ValueError(f"port must be an identifier, not {port!r}")
        params = dict(addr_width=addr_width, data_width=data_width, id_width=id_width,
                      len_width=len_width, max_burst=max_burst, max_outstanding=max_outstanding)
        # validate now, with the masters' messages
        axi = AXI4Signature(addr_width, data_width, id_width)
        check_master_params(addr_width, data_width, len_width, max_burst, max_outstanding)
        if not isinstance(strobes, bool):
            raise TypeError(f"strobes must be a bool, not {strobes!r}")
        self._params = params
        self.strobes = strobes
        self.port_name = port
        members = {
            port: Out(axi),
            "rd_cmd": In(stream.Signature(command_layout(addr_width, len_width))),
            "rd_data": Out(stream.Signature(read_data_layout(data_width))),
            "rd_busy": Out(1), "rd_error": Out(1),
            "wr_cmd": In(stream.Signature(command_layout(addr_width, len_width))),
            "wr_data": In(stream.Signature(write_data_layout(data_width) if strobes
                                           else data_width)),
            "wr_done": Out(1), "wr_busy": Out(1), "wr_error": Out(1),
            "clear_error": In(1),
        }
        if len(members) != 11:
            raise ValueError(f"port name {port!r} collides with another member name")
        super().__init__(members)

    @classmethod
    def from_config(cls, config, index: int = 0, *, addr_width: int = 32, strobes: bool = False,
                    **kwargs) -> AXI4DMA:
        """DMA for AXI port ``index`` of an :class:`~filmqnn_hw.spec.config.AcceleratorConfig`:
        port ``m_axi_gmem<index>`` with ``config.axi_data_bits`` data bits. ``addr_width`` is a
        board property (32 for Zynq-7000 HP ports, up to 49 on Zynq UltraScale+); ``strobes``
        and the other keywords are passed to :class:`AXI4DMA`."""
        if not 0 <= index < config.axi_ports:
            raise ValueError(f"port index {index} out of range: the config has "
                             f"{config.axi_ports} AXI port(s)")
        return cls(f"m_axi_gmem{index}", addr_width=addr_width, data_width=config.axi_data_bits,
                   strobes=strobes, **kwargs)

    @property
    def m_axi(self):
        """The AXI4 master interface (whatever its member name)."""
        return getattr(self, self.port_name)

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader = rd = AXI4BurstReader(**self._params)
        m.submodules.writer = wr = AXI4BurstWriter(**self._params, strobes=self.strobes)
        connect_read_write(m, self.m_axi, read=rd.m_axi, write=wr.m_axi)
        wiring.connect(m, wiring.flipped(self.rd_cmd), rd.cmd)
        wiring.connect(m, rd.data, wiring.flipped(self.rd_data))
        wiring.connect(m, wiring.flipped(self.wr_cmd), wr.cmd)
        wiring.connect(m, wiring.flipped(self.wr_data), wr.data)
        m.d.comb += [
            self.rd_busy.eq(rd.busy), self.rd_error.eq(rd.error),
            self.wr_done.eq(wr.done), self.wr_busy.eq(wr.busy), self.wr_error.eq(wr.error),
            rd.clear_error.eq(self.clear_error), wr.clear_error.eq(self.clear_error),
        ]
        return m
