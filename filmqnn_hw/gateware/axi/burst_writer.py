"""AXI4 burst write master: (address, beats) commands plus a data stream in (stream -> DDR)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.axi.burst_reader import BurstMaster
from filmqnn_hw.gateware.axi.burst_split import check_master_params
from filmqnn_hw.gateware.axi.signatures import AXI4Signature

__all__ = ["AXI4BurstWriter", "write_data_layout"]


def write_data_layout(data_width: int) -> data.StructLayout:
    """Write beat payload with byte strobes: ``data`` (data_width), ``strb`` (data_width // 8,
    bit ``i`` enables byte lane ``i``, i.e. ``data[8*i : 8*i+8]``)."""
    return data.StructLayout({"data": data_width, "strb": data_width // 8})


class AXI4BurstWriter(BurstMaster):
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
        self.strobes = strobes
        data_shape = write_data_layout(data_width) if strobes else data_width
        super().__init__(axi, In(stream.Signature(data_shape)), len_width=len_width,
                         max_burst=max_burst, max_outstanding=max_outstanding,
                         extra={"done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        axi = self.m_axi
        split = self._splitter(m)
        # per burst in flight: its AWLEN for the W engine, its "final burst" flag for B
        m.submodules.wq = wq = fifo.SyncFIFO(width=8, depth=self.max_outstanding)
        m.submodules.bq = bq = fifo.SyncFIFO(width=1, depth=self.max_outstanding)
        outstanding, issue = self._address_channel(m, split, "aw", [wq.w_rdy, bq.w_rdy])
        m.d.comb += [
            wq.w_en.eq(issue), wq.w_data.eq(split.burst.p.len),
            bq.w_en.eq(issue), bq.w_data.eq(split.burst.p.last),
        ]

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
        b_hs = Signal()
        m.d.comb += [axi.bready.eq(1), b_hs.eq(axi.bvalid & bq.r_rdy), bq.r_en.eq(b_hs)]
        m.d.sync += self.done.eq(b_hs & bq.r_data[0])
        self._count_bursts(m, split, "aw", outstanding, issue, b_hs, b_hs, axi.bresp,
                           busy_extra=self.done)
        return m
