"""StreamSkidBuffer: every word passes once, in order, under random valid/ready; registered."""

from __future__ import annotations

import random

from amaranth import unsigned
from amaranth.sim import Simulator

from filmqnn_hw.gateware.axi.skid import StreamSkidBuffer


def _run(p_valid: float, p_ready: float, n: int = 300, seed: int = 0) -> tuple[list, int]:
    dut = StreamSkidBuffer(unsigned(16))
    rng = random.Random(seed)
    words = [rng.randrange(1 << 16) for _ in range(n)]
    got: list[int] = []
    cycles = 0

    async def bench(ctx):
        nonlocal cycles
        i = 0
        while len(got) < n:
            offer = i < n and rng.random() < p_valid
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload, words[i])
            take = rng.random() < p_ready
            ctx.set(dut.o.ready, take)
            # registered stage: what the outputs show before the edge
            i_ready = ctx.get(dut.i.ready)
            o_valid, o_payload = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
            await ctx.tick()
            cycles += 1
            if offer and i_ready:
                i += 1
            if take and o_valid:
                got.append(o_payload)
            assert cycles < 20 * n

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == words
    return got, cycles


def test_random_handshakes_keep_every_word_in_order():
    for seed, (pv, pr) in enumerate([(0.5, 0.5), (0.9, 0.3), (0.3, 0.9), (1.0, 0.7)]):
        _run(pv, pr, seed=seed)


def test_full_throughput_when_always_ready():
    _, cycles = _run(1.0, 1.0, n=200)
    assert cycles == 200 + 1  # one cycle of latency, then a word per cycle
