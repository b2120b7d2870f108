"""Beat-to-record gearbox: AXI read beats in, fixed-size byte records out."""

from __future__ import annotations

import math

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RecordGearbox"]


class RecordGearbox(wiring.Component):
    """Cut a stream of ``beat_bytes``-byte beats into ``record_bytes``-byte records.

    The records start ``skip`` units into the first beat after ``start`` (a unit is
    ``K = gcd(record_bytes, beat_bytes)`` bytes, so every record starts on a unit boundary
    when the stream's first record does). One unit is taken per cycle (``K`` bytes/cycle; a
    whole beat per cycle when ``record_bytes`` is a multiple of ``beat_bytes``); a beat is
    acknowledged (``beat_ready``) with its last unit. ``rec_valid`` pulses for one cycle with a
    complete record in ``rec`` (byte ``b`` of the record at bits ``8b .. 8b+7``); ``rec``
    is read only then: it shifts with every unit taken and holds in cycles that take none. A
    partial record left at the end of the stream is
    never emitted (``start`` clears it).

    Members
    -------
    start : In(1)        clear the state and load ``skip``
    skip : In(range(units per beat))
    enable : In(1)       consume beats only while high
    beat : In(beat_bytes * 8), beat_valid : In(1), beat_ready : Out(1)
    rec : Out(record_bytes * 8), rec_valid : Out(1)
    """

    def __init__(self, beat_bytes: int, record_bytes: int) -> None:
        if beat_bytes < 1 or record_bytes < 1:
            raise ValueError(f"beat and record sizes must be positive, not {beat_bytes}, "
                             f"{record_bytes}")
        self.beat_bytes, self.record_bytes = beat_bytes, record_bytes
        self.unit = math.gcd(beat_bytes, record_bytes)
        self.units_per_beat = beat_bytes // self.unit
        self.units_per_record = record_bytes // self.unit
        super().__init__({
            "start": In(1),
            "skip": In(range(max(self.units_per_beat, 2))),
            "enable": In(1),
            "beat": In(beat_bytes * 8),
            "beat_valid": In(1),
            "beat_ready": Out(1),
            "rec": Out(record_bytes * 8),
            "rec_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        ub = self.unit * 8
        upb, upr = self.units_per_beat, self.units_per_record
        idx = Signal(range(max(upb, 2)))  # never zero-width (clean Verilog)
        cnt = Signal(range(max(upr, 2)))
        skip_left = Signal(range(max(upb, 2)))
        unit = Signal(ub)
        m.d.comb += unit.eq(self.beat.word_select(idx, ub) if upb > 1 else self.beat)
        m.d.sync += self.rec_valid.eq(0)
        with m.If(self.start):
            m.d.sync += [idx.eq(0), cnt.eq(0), skip_left.eq(self.skip)]
        with m.Elif(self.enable & self.beat_valid):
            with m.If(skip_left != 0):
                m.d.sync += skip_left.eq(skip_left - 1)
            with m.Else():
                if upr > 1:
                    m.d.sync += self.rec.eq(Cat(self.rec[ub:], unit))
                else:
                    m.d.sync += self.rec.eq(unit)
                with m.If(cnt == upr - 1):
                    m.d.sync += [cnt.eq(0), self.rec_valid.eq(1)]
                with m.Else():
                    m.d.sync += cnt.eq(cnt + 1)
            with m.If((idx == upb - 1) if upb > 1 else True):
                m.d.comb += self.beat_ready.eq(1)
                m.d.sync += idx.eq(0)
            with m.Else():
                m.d.sync += idx.eq(idx + 1)
        return m
