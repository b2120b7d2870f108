"""AXI4 burst read master: (address, beats) commands in, data beats out (DDR -> stream)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.axi.burst_split import BurstSplitter, check_master_params, command_layout
from filmqnn_hw.gateware.axi.signatures import BURST_INCR, RESP_SLVERR, AXI4Signature

__all__ = ["read_data_layout", "AXI4BurstReader", "BurstMaster"]


def read_data_layout(data_width: int) -> data.StructLayout:
    """Output payload: ``data`` (one AXI beat) and ``last`` (final beat of its command)."""
    return data.StructLayout({"data": data_width, "last": 1})


class BurstMaster(wiring.Component):
    """What the burst masters (:class:`AXI4BurstReader` and
    :class:`~filmqnn_hw.gateware.axi.burst_writer.AXI4BurstWriter`) share: the parameters,
    the command splitter, the address channel (AR or AW), the count of bursts in flight and
    the sticky error.

    Members: ``cmd``, ``data`` (``data_member``), ``m_axi``, then ``extra`` (in order), then
    ``busy``, ``error``, ``clear_error``. The subclass checks the parameters (``axi`` carries
    the widths) and drives the data channels in its ``elaborate``.
    """

    def __init__(self, axi: AXI4Signature, data_member: wiring.Member, *, len_width: int,
                 max_burst: int, max_outstanding: int,
                 extra: dict[str, wiring.Member] | None = None) -> None:
        self.addr_width, self.data_width = axi.addr_width, axi.data_width
        self.id_width = axi.id_width
        self.len_width, self.max_burst, self.max_outstanding = len_width, max_burst, max_outstanding
        super().__init__({
            "cmd": In(stream.Signature(command_layout(axi.addr_width, len_width))),
            "data": data_member,
            "m_axi": Out(axi),
            **(extra or {}),
            "busy": Out(1),
            "error": Out(1),
            "clear_error": In(1),
        })

    def _splitter(self, m: Module) -> BurstSplitter:
        """The command splitter as submodule ``split``, fed from ``cmd``."""
        m.submodules.split = split = BurstSplitter(self.addr_width, self.data_width,
                                                   self.len_width, self.max_burst)
        wiring.connect(m, wiring.flipped(self.cmd), split.cmd)
        m.d.comb += split.clear_error.eq(self.clear_error)
        return split

    def _address_channel(self, m: Module, split: BurstSplitter, ch: str,
                         room: list[Value]) -> tuple[Signal, Signal]:
        """Issue the splitter's bursts on channel ``ch`` (``"ar"`` or ``"aw"``).

        A burst is taken while fewer than ``max_outstanding`` are in flight and every signal
        in ``room`` is high (the caller's per-burst queues have space); AxVALID is registered.
        Returns ``(outstanding, issue)``: the count of bursts in flight (kept by
        :meth:`_count_bursts`) and the strobe of the cycle a burst is taken.
        """
        axi = self.m_axi

        def port(name: str) -> Signal:
            return getattr(axi, ch + name)

        outstanding = Signal(range(self.max_outstanding + 1))
        issue = Signal()
        m.d.comb += [
            port("size").eq(axi.signature.size_code),
            port("burst").eq(BURST_INCR),
            port("cache").eq(0b0011),  # normal, non-cacheable, bufferable (Xilinx default)
            port("prot").eq(0),
            port("lock").eq(0),
            port("qos").eq(0),
        ]
        if self.id_width:
            m.d.comb += port("id").eq(0)
        can_issue = outstanding < self.max_outstanding
        for r in room:
            can_issue = can_issue & r
        with m.If(~port("valid") | port("ready")):
            m.d.comb += issue.eq(split.burst.valid & can_issue)
            m.d.sync += port("valid").eq(issue)
        m.d.comb += split.burst.ready.eq(issue)
        with m.If(issue):
            m.d.sync += [port("addr").eq(split.burst.p.addr), port("len").eq(split.burst.p.len)]
        return outstanding, issue

    def _count_bursts(self, m: Module, split: BurstSplitter, ch: str, outstanding: Signal,
                      issue: Signal, done: Value, resp_valid: Value, resp: Value,
                      busy_extra: Value | None = None) -> None:
        """Keep ``outstanding`` (up on ``issue``, down on ``done``: a burst's last R beat or its
        B response), set the sticky error on a SLVERR/DECERR ``resp`` while ``resp_valid``,
        and drive ``error`` and ``busy`` (also high while ``busy_extra``)."""
        with m.If(issue & ~done):
            m.d.sync += outstanding.eq(outstanding + 1)
        with m.Elif(~issue & done):
            m.d.sync += outstanding.eq(outstanding - 1)
        resp_err = Signal()
        assert RESP_SLVERR & 0b10
        with m.If(resp_valid & resp[1]):  # SLVERR or DECERR
            m.d.sync += resp_err.eq(1)
        with m.Elif(self.clear_error):
            m.d.sync += resp_err.eq(0)
        busy = split.active | (outstanding != 0) | getattr(self.m_axi, f"{ch}valid")
        if busy_extra is not None:
            busy = busy | busy_extra
        m.d.comb += [self.error.eq(resp_err | split.error), self.busy.eq(busy)]


class AXI4BurstReader(BurstMaster):
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
        super().__init__(axi, Out(stream.Signature(read_data_layout(data_width))),
                         len_width=len_width, max_burst=max_burst,
                         max_outstanding=max_outstanding)

    def elaborate(self, platform):
        m = Module()
        axi = self.m_axi
        split = self._splitter(m)
        # one "final burst of its command" flag per burst in flight
        m.submodules.lastq = lastq = fifo.SyncFIFO(width=1, depth=self.max_outstanding)
        outstanding, issue = self._address_channel(m, split, "ar", [lastq.w_rdy])
        m.d.comb += [lastq.w_en.eq(issue), lastq.w_data.eq(split.burst.p.last)]

        # R channel straight to the output stream (AXI keeps RVALID/RDATA stable until RREADY)
        r_done = Signal()  # last beat of a burst consumed
        r_ok = lastq.r_rdy  # always true for a legal slave (R only follows an issued AR)
        m.d.comb += [
            self.data.valid.eq(axi.rvalid & r_ok),
            self.data.p.data.eq(axi.rdata),
            self.data.p.last.eq(axi.rlast & lastq.r_data[0]),
            axi.rready.eq(self.data.ready & r_ok),
            r_done.eq(axi.rvalid & axi.rready & axi.rlast),
            lastq.r_en.eq(r_done),
        ]
        self._count_bursts(m, split, "ar", outstanding, issue, r_done,
                           axi.rvalid & axi.rready, axi.rresp)
        return m
