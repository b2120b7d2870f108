# amaranth: UnusedElaboratable=no
"""AXI4 burst read master against the pysim memory model, with and without random stalls."""

from __future__ import annotations

import random

import pytest
from helpers import BURST_CASES, consume, expected_bursts, send_commands, simulate

from filmqnn_hw.gateware.axi.burst_reader import AXI4BurstReader
from filmqnn_hw.sim.mem_model import AXIMemoryModel

MEM_BYTES = 1 << 14


def run_reader(cmds, *, data_width=32, seed=0, stall=0.0, consumer_stall=0.0, max_outstanding=4,
               max_burst=256, read_latency=0, bytes_per_cycle=None, error_ranges=(),
               max_cycles=20000):
    """Issue ``cmds`` [(addr, beats)]; return (beats [(data, last)], model, memory, flags)."""
    rng_mem = random.Random(1234)
    mem = bytearray(rng_mem.getrandbits(8) for _ in range(MEM_BYTES))
    dut = AXI4BurstReader(addr_width=16, data_width=data_width, id_width=1, len_width=12,
                          max_outstanding=max_outstanding, max_burst=max_burst)
    model = AXIMemoryModel(dut.m_axi, mem, seed=seed, stall=stall, read_latency=read_latency,
                           latency_jitter=3 if stall else 0, bytes_per_cycle=bytes_per_cycle,
                           error_ranges=error_ranges)
    got: list[tuple[int, int]] = []
    total = sum(b for _, b in cmds)
    flags = {}

    async def producer(ctx):
        rng = random.Random(seed + 1)
        await send_commands(ctx, dut.cmd, cmds, gap=lambda: stall and rng.random() < 0.3)

    async def consumer(ctx):
        rng = random.Random(seed + 2)
        beats, cycles = await consume(
            ctx, dut.data, total, max_cycles=max_cycles,
            ready=lambda: int(not (consumer_stall and rng.random() < consumer_stall)))
        got.extend((b.data, b.last) for b in beats)
        ctx.set(dut.data.ready, 0)
        await ctx.tick().repeat(8)
        flags["busy"] = ctx.get(dut.busy)
        flags["error"] = ctx.get(dut.error)
        flags["valid_after"] = ctx.get(dut.data.valid)
        flags["cycles"] = cycles

    simulate(dut, producer, consumer, background=[model.serve])
    return got, model, mem, flags


def reference(mem, cmds, nb):
    out = []
    for addr, beats in cmds:
        for i in range(beats):
            a = addr + i * nb
            out.append((int.from_bytes(mem[a:a + nb], "little"), int(i == beats - 1)))
    return out


@pytest.mark.parametrize("case", list(BURST_CASES))
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_reader_cases(case, stall):
    cmds = BURST_CASES[case]
    got, model, mem, flags = run_reader(cmds, seed=7, stall=stall,
                                        consumer_stall=0.3 if stall else 0.0)
    assert got == reference(mem, cmds, 4)
    assert model.read_bursts == [b for a, n in cmds for b in expected_bursts(a, n, 4)]
    assert flags == {**flags, "busy": 0, "error": 0, "valid_after": 0}


def test_reader_stalls_do_not_change_results():
    cmds = [(0x40, 40), (0x1000 - 16, 9), (0x2200, 70)]
    base, _, mem, _ = run_reader(cmds, data_width=64, seed=0)
    assert base == reference(mem, cmds, 8)
    for seed in (1, 2):
        got, model, _, _ = run_reader(cmds, data_width=64, seed=seed, stall=0.5,
                                      consumer_stall=0.5, read_latency=5)
        assert got == base
        assert model.max_reads_in_flight <= 4


def test_reader_outstanding_and_bandwidth():
    cmds = [(0x0, 64)]
    _, model, _, flags = run_reader(cmds, max_burst=8, max_outstanding=3, read_latency=12)
    assert model.read_bursts == [(i * 32, 8) for i in range(8)]
    assert model.max_reads_in_flight == 3
    fast = flags["cycles"]
    _, _, _, flags = run_reader(cmds, max_burst=8, max_outstanding=1, read_latency=12)
    assert flags["cycles"] > fast + 5 * 12  # one burst at a time pays the latency per burst
    _, _, _, flags = run_reader(cmds, bytes_per_cycle=1.0)  # 4-byte beats: one per 4 cycles
    assert 4 * 64 - 8 <= flags["cycles"] <= 4 * 64 + 16


def test_reader_slverr_sticky():
    cmds = [(0x0, 4), (0x200, 4)]
    got, _, mem, flags = run_reader(cmds, error_ranges=[(0x8, 0xC)])
    assert flags["error"] == 1
    ref = reference(mem, cmds, 4)
    ref[2] = (0, 0)  # the erroring beat reads as zero, the stream continues
    assert got == ref


def test_reader_bad_commands_dropped():
    dut = AXI4BurstReader(addr_width=16, data_width=32, len_width=8)
    mem = bytearray(range(256)) * 16
    model = AXIMemoryModel(dut.m_axi, mem)
    got = []

    async def bench(ctx):
        await send_commands(ctx, dut.cmd, [(0x2, 1), (0x10, 0), (0x20, 2)])
        beats, _ = await consume(ctx, dut.data, 2)
        got.extend((b.data, b.last) for b in beats)
        assert ctx.get(dut.error) == 1
        ctx.set(dut.clear_error, 1)
        await ctx.tick()
        ctx.set(dut.clear_error, 0)
        assert ctx.get(dut.error) == 0

    simulate(dut, bench, background=[model.serve])
    assert model.read_bursts == [(0x20, 2)]
    assert got == [(0x23222120, 0), (0x27262524, 1)]


@pytest.mark.parametrize("kwargs,match", [
    ({"data_width": 48}, "data_width must be one of"),
    ({"addr_width": 8}, "addr_width must be in"),
    ({"max_burst": 0}, r"max_burst must be in \[1, 256\]"),
    ({"max_burst": 257}, "max_burst"),
    ({"max_outstanding": 0}, "max_outstanding"),
    ({"len_width": 0}, "len_width"),
    ({"id_width": 40}, "id_width"),
])
def test_reader_bad_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AXI4BurstReader(**kwargs)
