"""AXI4 burst write master: (address, beats) commands plus a data stream in (stream -> DDR)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.axi.burst_split import BurstSplitter, check_master_params, command_layout
from filmqnn_hw.gateware.axi.signatures import BURST_INCR, AXI4Signature

__all__ = ["AXI4BurstWriter", "write_data_layout"]


def write_data_layout(data_width: int) -> data.StructLayout:
    """Write beat payload with byte strobes: ``data`` (data_width), ``strb`` (data_width // 8,
    bit ``i`` enables byte lane ``i``, i.e. ``data[8*i : 8*i+8]``)."""
    return data.StructLayout({"data": data_width, "strb": data_width // 8})


class AXI4BurstWriter(wiring.Component):
    """Write ``beats`` bus words from the ``data`` stream to ``addr`` for every command.

    Commands are split into INCR bursts (<= ``max_burst`` beats, no 4 KiB crossing). An AW is
    issued when fewer than ``max_outstanding`` bursts await their B response; the W beats of a
    burst are taken from ``data`` in order (WVALID is ``data.valid`` once that burst's AW has
    been issued, so W may precede the AW handshake by the slave, as AXI4 allows). WSTRB is
    all ones, or each beat's ``strb`` field with ``strobes=True`` (a beat with ``strb = 0`` is
    still sent and counted: it writes nothing); WLAST is generated from the burst length.
    BREADY is always high.

    Completion: ``done`` pulses for one cycle when the B response of a command's final burst
    arrives, i.e. when all of its data has landed; ``busy`` is low only when every accepted
    command has completed. Errors (sticky ``error`` until reset or ``clear_error``):
    SLVERR/DECERR on any B response, a zero-beat command or an unaligned address (the command
    is dropped, consumes no data and never completes).

    Throughput: one beat per cycle when the slave keeps up; latency from the first data beat
    to WVALID is zero once the AW is issued.

    Parameters
    ----------
    addr_width, data_width, id_width, len_width, max_burst, max_outstanding :
        As for :class:`~filmqnn_hw.gateware.axi.burst_reader.AXI4BurstReader`.
    strobes : bool
        Take WSTRB from the data stream (``data`` carries :func:`write_data_layout` beats)
        instead of driving it all ones. Default ``False``.

    Members
    -------
    cmd : In(stream.Signature(command_layout(addr_width, len_width)))
    data : In(stream.Signature(data_width)), or with ``strobes=True``
        In(stream.Signature(write_data_layout(data_width))), i.e.
        ``StructLayout({"data": data_width, "strb": data_width // 8})``
    m_axi : Out(AXI4Signature(addr_width, data_width, id_width, read=False))
    done : Out(1)
    busy : Out(1)
    error : Out(1)
    clear_error : In(1)
    """

    def __init__(self, *, addr_width: int = 32, data_width: int = 64, id_width: int = 0,
                 len_width: int = 24, max_burst: int = 256, max_outstanding: int = 4,
                 strobes: bool = False):
        axi = AXI4Signature(addr_width, data_width, id_width, read=False)
        check_master_params(addr_width, data_width, len_width, max_burst, max_outstanding)
        if not isinstance(strobes, bool):
            raise TypeError(f"strobes must be a bool, not {strobes!r}")
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        self.len_width, self.max_burst, self.max_outstanding = len_width, max_burst, max_outstanding
        self.strobes = strobes
        data_shape = write_data_layout(data_width) if strobes else data_width
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_width, len_width))),
            "data": In(stream.Signature(data_shape)),
            "m_axi": Out(axi),
            "done": Out(1),
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
        # per burst in flight: its AWLEN for the W engine, its "final burst" flag for B
        m.submodules.wq = wq = fifo.SyncFIFO(width=8, depth=self.max_outstanding)
        m.submodules.bq = bq = fifo.SyncFIFO(width=1, depth=self.max_outstanding)

        outstanding = Signal(range(self.max_outstanding + 1))
        issue = Signal()
        b_hs = Signal()

        m.d.comb += [
            axi.awsize.eq(axi.signature.size_code),
            axi.awburst.eq(BURST_INCR),
            axi.awcache.eq(0b0011),
            axi.awprot.eq(0),
            axi.awlock.eq(0),
            axi.awqos.eq(0),
        ]
        if self.id_width:
            m.d.comb += axi.awid.eq(0)
        can_issue = (outstanding < self.max_outstanding) & wq.w_rdy & bq.w_rdy
        with m.If(~axi.awvalid | axi.awready):
            m.d.comb += issue.eq(split.burst.valid & can_issue)
            m.d.sync += axi.awvalid.eq(issue)
        m.d.comb += [
            split.burst.ready.eq(issue),
            wq.w_en.eq(issue), wq.w_data.eq(split.burst.p.len),
            bq.w_en.eq(issue), bq.w_data.eq(split.burst.p.last),
        ]
        with m.If(issue):
            m.d.sync += [axi.awaddr.eq(split.burst.p.addr), axi.awlen.eq(split.burst.p.len)]

        # W: beats of the burst at the head of wq
        beat = Signal(8)
        if self.strobes:
            m.d.comb += [axi.wdata.eq(self.data.payload.data), axi.wstrb.eq(self.data.payload.strb)]
        else:
            m.d.comb += [axi.wdata.eq(self.data.payload), axi.wstrb.eq(-1)]
        m.d.comb += [
            axi.wvalid.eq(self.data.valid & wq.r_rdy),
            axi.wlast.eq(beat == wq.r_data),
            self.data.ready.eq(axi.wready & wq.r_rdy),
        ]
        with m.If(axi.wvalid & axi.wready):
            with m.If(axi.wlast):
                m.d.sync += beat.eq(0)
                m.d.comb += wq.r_en.eq(1)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)

        # B: count responses, flag command completion and errors
        # (a B with nothing outstanding would be a slave protocol error: ignored, not counted)
        m.d.comb += [axi.bready.eq(1), b_hs.eq(axi.bvalid & bq.r_rdy), bq.r_en.eq(b_hs)]
        m.d.sync += self.done.eq(b_hs & bq.r_data[0])
        with m.If(issue & ~b_hs):
            m.d.sync += outstanding.eq(outstanding + 1)
        with m.Elif(~issue & b_hs):
            m.d.sync += outstanding.eq(outstanding - 1)
        resp_err = Signal()
        with m.If(b_hs & axi.bresp[1]):  # SLVERR or DECERR
            m.d.sync += resp_err.eq(1)
        with m.Elif(self.clear_error):
            m.d.sync += resp_err.eq(0)
        m.d.comb += [
            self.error.eq(resp_err | split.error),
            self.busy.eq(split.active | (outstanding != 0) | axi.awvalid | self.done),
        ]
        return m
