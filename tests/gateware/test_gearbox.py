# amaranth: UnusedElaboratable=no
"""RecordGearbox: AXI beats in, byte records out, bit-exact and in order against a Python model.

Covers the (beat, record) sizes the engine instantiates (weight slices, depthwise tap records
and 16-byte parameter records on 4-, 8- and 16-byte beats, from the small test configs and the
PYNQ-Z2 / ZCU102 designs), a record start ``skip`` units into the first beat, random pauses
on ``beat_valid`` and ``enable``, the one-unit-per-cycle pace and one-cycle record latency the
engine's weight port relies on, ``start`` clearing a partial record, and the size checks.
"""

from __future__ import annotations

import math
import random

import pytest
from amaranth.sim import Simulator

from filmqnn_hw.gateware.gearbox import RecordGearbox

# (beat bytes, record bytes): RecordGearbox(BB, wbuf_slice_bytes / dw_rec_bytes / PARAM_SIZE)
# as geometry() gives them for tests/gateware/test_engine.py's configs and the board designs
ENGINE_SIZES = [
    (16, 8),    # A: weight slice of half a beat (two records per beat)
    (16, 5),    # A: depthwise record, byte units, 16 units per beat
    (8, 20),    # B: weight slice of 2.5 beats (4-byte units, records end mid-beat)
    (4, 3),     # C: depthwise record, 3 bytes on 4-byte beats
    (8, 32),    # D: weight slice of whole beats, 4 beats per record
    (8, 13),    # D: depthwise record, 13 bytes on 8-byte beats
    (8, 17),    # PYNQ-Z2: depthwise record, one byte past two beats
    (8, 136),   # PYNQ-Z2: weight slice, 17 whole beats (one beat per cycle)
    (16, 42),   # ZCU102: depthwise record, 2-byte units, 21 units per record
    (16, 192),  # ZCU102: weight slice, 12 whole beats
    (4, 16),    # parameter records on 32-bit beats
    (16, 16),   # parameter records on 128-bit beats (one beat per record)
    (4, 4),     # ratio 1: one unit per beat and per record
]


def reference_records(beats: list[int], beat_bytes: int, record_bytes: int, skip: int
                      ) -> list[int]:
    """The complete records of the byte stream ``beats`` (little-endian) from ``skip`` units."""
    unit = math.gcd(beat_bytes, record_bytes)
    stream = b"".join(b.to_bytes(beat_bytes, "little") for b in beats)[skip * unit:]
    return [int.from_bytes(stream[i:i + record_bytes], "little")
            for i in range(0, len(stream) - record_bytes + 1, record_bytes)]


def n_beats_for(beat_bytes: int, record_bytes: int, records: int) -> int:
    """Beats covering ``records`` records plus a partial one (left over, never emitted)."""
    return (records * record_bytes + record_bytes // 2) // beat_bytes + 2


def run_gearbox(beat_bytes: int, record_bytes: int, beats: list[int], skip: int, *,
                p_valid: float = 1.0, p_enable: float = 1.0, seed: int = 0
                ) -> tuple[list[int], list[int], int]:
    """Feed ``beats`` after a ``start`` with ``skip``; return (records, the cycle after start
    at which each record's ``rec_valid`` was seen, cycles until the last beat was taken).

    Checks on the way: ``beat_ready`` only while a beat is offered and enabled; every beat
    takes exactly units-per-beat enabled, valid cycles (one unit per cycle, skipped units
    included); ``rec`` holds in cycles that take no unit. The data lines carry random
    garbage while ``beat_valid`` is low.
    """
    dut = RecordGearbox(beat_bytes, record_bytes)
    rng = random.Random(seed)
    recs: list[int] = []
    rec_cycles: list[int] = []
    done = {}

    async def bench(ctx):
        ctx.set(dut.skip, skip)
        ctx.set(dut.start, 1)
        ctx.set(dut.enable, 1)
        ctx.set(dut.beat_valid, 1)
        ctx.set(dut.beat, beats[0])
        # start wins over an offered, enabled beat: nothing is taken in its cycle
        assert ctx.get(dut.beat_ready) == 0
        await ctx.tick()
        ctx.set(dut.start, 0)
        i = cycle = took = 0
        took_prev = False
        rec_prev = ctx.get(dut.rec)
        tail = 0
        while tail < 4:  # a few idle cycles after the last beat: the last pulse, no extras
            if ctx.get(dut.rec_valid):
                recs.append(ctx.get(dut.rec))
                rec_cycles.append(cycle)
            elif not took_prev:
                assert ctx.get(dut.rec) == rec_prev, "rec changed without taking a unit"
            rec_prev = ctx.get(dut.rec)
            offer = i < len(beats) and rng.random() < p_valid
            enable = rng.random() < p_enable
            ctx.set(dut.beat_valid, offer)
            ctx.set(dut.enable, enable)
            ctx.set(dut.beat, beats[i] if offer else rng.getrandbits(beat_bytes * 8))
            ready = ctx.get(dut.beat_ready)
            assert not ready or (offer and enable), "beat_ready without an enabled beat"
            took_prev = offer and enable
            if took_prev:
                took += 1
            if ready:
                assert took == dut.units_per_beat, f"beat {i} took {took} cycles"
                i, took = i + 1, 0
                if i == len(beats):
                    done["cycles"] = cycle + 1
            if i == len(beats):
                tail += 1
            await ctx.tick()
            cycle += 1
            assert cycle < 50 * len(beats) * dut.units_per_beat + 100, "gearbox stalled"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return recs, rec_cycles, done["cycles"]


@pytest.mark.parametrize("bb,rb", ENGINE_SIZES, ids=[f"{b}B_beat_{r}B_rec" for b, r in
                                                     ENGINE_SIZES])
def test_records_bit_exact_under_random_pauses(bb, rb):
    gb = RecordGearbox(bb, rb)
    units_per_beat = gb.units_per_beat
    for seed, (pv, pe) in enumerate([(0.5, 0.7), (0.8, 0.4)]):
        rng = random.Random(100 * bb + rb + seed)
        skip = rng.randrange(units_per_beat)  # the engine's job offset // unit
        beats = [rng.getrandbits(bb * 8) for _ in range(n_beats_for(bb, rb, 5))]
        recs, _, _ = run_gearbox(bb, rb, beats, skip, p_valid=pv, p_enable=pe, seed=seed)
        ref = reference_records(beats, bb, rb, skip)
        assert len(ref) >= 5
        assert recs == ref


@pytest.mark.parametrize("bb,rb,skip", [(8, 20, 1), (16, 5, 11), (8, 136, 0), (16, 42, 7),
                                        (4, 4, 0)])
def test_full_rate_pace_and_record_latency(bb, rb, skip):
    """Always valid and enabled: a unit per cycle and each record one cycle after its last
    unit (the engine's END state waits exactly one cycle for it)."""
    unit = math.gcd(bb, rb)
    rng = random.Random(bb * rb)
    beats = [rng.getrandbits(bb * 8) for _ in range(n_beats_for(bb, rb, 4))]
    recs, rec_cycles, cycles = run_gearbox(bb, rb, beats, skip)
    assert recs == reference_records(beats, bb, rb, skip)
    assert cycles == len(beats) * (bb // unit)
    # the last unit of record k is unit skip + (k + 1) * rb / unit - 1 of the stream, taken in
    # the cycle of that index; rec_valid shows in the next one
    assert rec_cycles == [skip + (k + 1) * rb // unit for k in range(len(recs))]


def test_start_discards_a_partial_record_and_reloads_skip():
    bb, rb = 8, 20
    dut = RecordGearbox(bb, rb)
    rng = random.Random(5)
    first = [rng.getrandbits(64) for _ in range(2)]  # 16 bytes: a partial 20-byte record
    second = [rng.getrandbits(64) for _ in range(6)]
    got: list[int] = []

    async def feed(ctx, beats):
        ctx.set(dut.enable, 1)
        for beat in beats:
            ctx.set(dut.beat, beat)
            ctx.set(dut.beat_valid, 1)
            while True:
                ready = ctx.get(dut.beat_ready)
                await ctx.tick()
                if ctx.get(dut.rec_valid):
                    got.append(ctx.get(dut.rec))
                if ready:
                    break
        ctx.set(dut.beat_valid, 0)
        await ctx.tick()
        if ctx.get(dut.rec_valid):
            got.append(ctx.get(dut.rec))

    async def bench(ctx):
        ctx.set(dut.skip, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await feed(ctx, first)
        assert got == []  # 16 of 20 bytes: no record yet
        ctx.set(dut.skip, 1)  # the new stream's records start 4 bytes in
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await feed(ctx, second)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # the 16 bytes before the restart contribute nothing
    assert got == reference_records(second, bb, rb, 1)
    assert len(got) == 2


def test_unit_geometry():
    gb = RecordGearbox(16, 42)
    assert (gb.unit, gb.units_per_beat, gb.units_per_record) == (2, 8, 21)
    gb = RecordGearbox(8, 136)
    assert (gb.unit, gb.units_per_beat, gb.units_per_record) == (8, 1, 17)
    gb = RecordGearbox(16, 5)
    assert (gb.unit, gb.units_per_beat, gb.units_per_record) == (1, 16, 5)
    # the record port is record_bytes wide, the beat port beat_bytes wide
    assert gb.rec.shape().width == 40 and gb.beat.shape().width == 128


@pytest.mark.parametrize("bb,rb", [(0, 4), (8, 0), (-8, 4)])
def test_bad_sizes_refused(bb, rb):
    with pytest.raises(ValueError, match="beat and record sizes must be positive"):
        RecordGearbox(bb, rb)
