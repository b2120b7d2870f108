"""AXI4 burst read master: (address, beats) commands in, data beats out (DDR -> stream)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.axi.burst_split import BurstSplitter, check_master_params, command_layout
from filmqnn_hw.gateware.axi.signatures import BURST_INCR, RESP_SLVERR, AXI4Signature

__all__ = ["read_data_layout", "AXI4BurstReader"]


def read_data_layout(data_width: int) -> data.StructLayout:
    """Output payload: ``data`` (one AXI beat) and ``last`` (final beat of its command)."""
    return data.StructLayout({"data": data_width, "last": 1})


class AXI4BurstReader(wiring.Component):
    """Read ``beats`` consecutive bus words from ``addr`` for every command.

    Commands are split into INCR bursts of at most ``max_burst`` beats that never cross a
    4 KiB boundary (:class:`~filmqnn_hw.gateware.axi.burst_split.BurstSplitter`). Up to
    ``max_outstanding`` bursts may be in flight (AR issued, last R beat not yet returned).
    Data comes back in command order with no added latency and no buffering: ``data.valid``
    is RVALID and RREADY is ``data.ready``, so a stalled consumer back-pressures the slave.
    ARVALID is registered; throughput is one beat per cycle when the slave and consumer keep up
    (one bubble per command in the address path, hidden when ``max_outstanding`` > 1).

    Errors (sticky ``error`` until reset or ``clear_error``): SLVERR/DECERR on any R beat
    (the data is still delivered), a zero-beat command or an address not aligned to
    ``data_width // 8`` bytes (the command is dropped and produces no data).

    Parameters
    ----------
    addr_width : int
        AXI byte-address width (12..64).
    data_width : int
        AXI data width (32..1024), also the output beat width.
    id_width : int
        ARID width (0: no ID port); ARID is always 0.
    len_width : int
        Width of the command's ``beats`` field.
    max_burst : int
        Longest burst, 1..256 beats.
    max_outstanding : int
        Bursts in flight, 1..64.

    Members
    -------
    cmd : In(stream.Signature(command_layout(addr_width, len_width)))
    data : Out(stream.Signature(read_data_layout(data_width)))
    m_axi : Out(AXI4Signature(addr_width, data_width, id_width, write=False))
    busy : Out(1)
        A command is being split or bursts are in flight.
    error : Out(1)
    clear_error : In(1)
    """

    def __init__(self, *, addr_width: int = 32, data_width: int = 64, id_width: int = 0,
                 len_width: int = 24, max_burst: int = 256, max_outstanding: int = 4):
        axi = AXI4Signature(addr_width, data_width, id_width, write=False)
        check_master_params(addr_width, data_width, len_width, max_burst, max_outstanding)
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        self.len_width, self.max_burst, self.max_outstanding = len_width, max_burst, max_outstanding
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_width, len_width))),
            "data": Out(stream.Signature(read_data_layout(data_width))),
            "m_axi": Out(axi),
            "busy": Out(1),
            "error": Out(1),
            "clear_error": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        axi = self.m_axi
        m.submodules.split = split = BurstSplitter(self.addr_width, self.data_width,
                                                   self.len_width, self.max_burst)
        wiring.connect(m, wiring.flipped(self.cmd), split.cmd)
        m.d.comb += split.clear_error.eq(self.clear_error)
        # one "final burst of its command" flag per burst in flight
        m.submodules.lastq = lastq = fifo.SyncFIFO(width=1, depth=self.max_outstanding)

        outstanding = Signal(range(self.max_outstanding + 1))
        issue = Signal()
        r_done = Signal()  # last beat of a burst consumed

        m.d.comb += [
            axi.arsize.eq(axi.signature.size_code),
            axi.arburst.eq(BURST_INCR),
            axi.arcache.eq(0b0011),  # normal, non-cacheable, bufferable (Xilinx default)
            axi.arprot.eq(0),
            axi.arlock.eq(0),
            axi.arqos.eq(0),
        ]
        if self.id_width:
            m.d.comb += axi.arid.eq(0)
        can_issue = (outstanding < self.max_outstanding) & lastq.w_rdy
        with m.If(~axi.arvalid | axi.arready):
            m.d.comb += issue.eq(split.burst.valid & can_issue)
            m.d.sync += axi.arvalid.eq(issue)
        m.d.comb += [
            split.burst.ready.eq(issue),
            lastq.w_en.eq(issue),
            lastq.w_data.eq(split.burst.p.last),
        ]
        with m.If(issue):
            m.d.sync += [axi.araddr.eq(split.burst.p.addr), axi.arlen.eq(split.burst.p.len)]

        # R channel straight to the output stream (AXI keeps RVALID/RDATA stable until RREADY)
        r_ok = lastq.r_rdy  # always true for a legal slave (R only follows an issued AR)
        m.d.comb += [
            self.data.valid.eq(axi.rvalid & r_ok),
            self.data.p.data.eq(axi.rdata),
            self.data.p.last.eq(axi.rlast & lastq.r_data[0]),
            axi.rready.eq(self.data.ready & r_ok),
            r_done.eq(axi.rvalid & axi.rready & axi.rlast),
            lastq.r_en.eq(r_done),
        ]
        with m.If(issue & ~r_done):
            m.d.sync += outstanding.eq(outstanding + 1)
        with m.Elif(~issue & r_done):
            m.d.sync += outstanding.eq(outstanding - 1)

        resp_err = Signal()
        with m.If(axi.rvalid & axi.rready & axi.rresp[1]):  # SLVERR or DECERR
            m.d.sync += resp_err.eq(1)
        with m.Elif(self.clear_error):
            m.d.sync += resp_err.eq(0)
        assert RESP_SLVERR & 0b10
        m.d.comb += [
            self.error.eq(resp_err | split.error),
            self.busy.eq(split.active | (outstanding != 0) | axi.arvalid),
        ]
        return m
