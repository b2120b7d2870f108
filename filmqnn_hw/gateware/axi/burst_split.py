"""Split (byte address, beat count) commands into legal AXI4 INCR bursts.

Shared by :mod:`burst_reader` and :mod:`burst_writer`. A burst never exceeds ``max_burst``
beats (<= 256) and never crosses a 4 KiB boundary.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.spec.geometry import MAX_BURST_BEATS, PAGE_BYTES

__all__ = ["command_layout", "burst_layout", "BurstSplitter"]


def command_layout(addr_width: int, len_width: int) -> data.StructLayout:
    """Command payload: ``addr`` (byte address, aligned to the bus width), ``beats`` (>= 1)."""
    return data.StructLayout({"addr": addr_width, "beats": len_width})


def burst_layout(addr_width: int) -> data.StructLayout:
    """Burst payload: ``addr``, ``len`` (AxLEN = beats - 1), ``last`` (command's final burst)."""
    return data.StructLayout({"addr": addr_width, "len": 8, "last": 1})


def check_master_params(addr_width: int, data_width: int, len_width: int, max_burst: int,
                        max_outstanding: int) -> None:
    """Argument checks shared by the burst masters (raise ``ValueError``/``TypeError``)."""
    for name, value in (("len_width", len_width), ("max_burst", max_burst),
                        ("max_outstanding", max_outstanding)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, not {value!r}")
    if not 1 <= len_width <= 32:
        raise ValueError(f"len_width must be in [1, 32], not {len_width}")
    if not 1 <= max_burst <= MAX_BURST_BEATS:
        raise ValueError(f"max_burst must be in [1, {MAX_BURST_BEATS}] beats, not {max_burst}")
    if not 1 <= max_outstanding <= 64:
        raise ValueError(f"max_outstanding must be in [1, 64], not {max_outstanding}")
    if data_width // 8 > PAGE_BYTES:  # pragma: no cover - excluded by the signature's widths
        raise ValueError("a beat wider than 4 KiB cannot be burst")


class BurstSplitter(wiring.Component):
    """Turn commands into AXI4 INCR bursts (<= ``max_burst`` beats, no 4 KiB crossing).

    Throughput: one burst per cycle while a command is active; a command is accepted in the
    cycle after its previous command's final burst was taken (one bubble per command).
    Zero-beat commands and addresses not aligned to the bus width are dropped and set the
    sticky ``error`` output (until reset or ``clear_error``), and produce no burst.

    Parameters
    ----------
    addr_width, data_width : int
        AXI address and data widths (data_width gives the bytes per beat).
    len_width : int
        Width of the command's ``beats`` field (max command length 2**len_width - 1 beats).
    max_burst : int
        Longest burst in beats, 1..256.

    Members
    -------
    cmd : In(stream.Signature(command_layout(addr_width, len_width)))
    burst : Out(stream.Signature(burst_layout(addr_width)))
    active : Out(1)
        A command is being split.
    error : Out(1)
        Sticky: a bad command (0 beats or unaligned address) was dropped.
    clear_error : In(1)
    """

    def __init__(self, addr_width: int, data_width: int, len_width: int, max_burst: int = 256):
        self.addr_width, self.data_width = addr_width, data_width
        self.len_width, self.max_burst = len_width, max_burst
        self.beat_bytes = data_width // 8
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_width, len_width))),
            "burst": Out(stream.Signature(burst_layout(addr_width))),
            "active": Out(1),
            "error": Out(1),
            "clear_error": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        shift = self.beat_bytes.bit_length() - 1
        page_beats = PAGE_BYTES >> shift
        addr = Signal(self.addr_width)
        rem = Signal(self.len_width)
        active = self.active

        # beats left before the next 4 KiB boundary (1..page_beats)
        beat_in_page = Signal(range(page_beats))
        to_boundary = Signal(range(page_beats + 1))
        m.d.comb += [beat_in_page.eq(addr[shift:12]), to_boundary.eq(page_beats - beat_in_page)]
        cap = min(self.max_burst, page_beats)
        limit = Signal(range(cap + 1))
        m.d.comb += limit.eq(Mux(to_boundary < cap, to_boundary, cap))
        n = Signal(range(cap + 1))
        m.d.comb += n.eq(Mux(rem < limit, rem, limit))

        m.d.comb += [
            self.burst.valid.eq(active),
            self.burst.p.addr.eq(addr),
            self.burst.p.len.eq(n - 1),
            self.burst.p.last.eq(rem == n),
            self.cmd.ready.eq(~active),
        ]
        with m.If(self.burst.valid & self.burst.ready):
            m.d.sync += [addr.eq(addr + (n << shift)), rem.eq(rem - n)]
            with m.If(rem == n):
                m.d.sync += active.eq(0)

        bad = Signal()
        m.d.comb += bad.eq((self.cmd.p.beats == 0) | (self.cmd.p.addr[:shift] != 0
                                                      if shift else 0))
        with m.If(self.cmd.valid & self.cmd.ready):
            with m.If(bad):
                m.d.sync += self.error.eq(1)
            with m.Else():
                m.d.sync += [active.eq(1), addr.eq(self.cmd.p.addr), rem.eq(self.cmd.p.beats)]
        with m.Elif(self.clear_error):
            m.d.sync += self.error.eq(0)
        return m
