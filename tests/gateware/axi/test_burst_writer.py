# amaranth: UnusedElaboratable=no
"""AXI4 burst write master against the pysim memory model, with and without random stalls."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Fragment, unsigned
from amaranth.lib import data
from helpers import BURST_CASES, expected_bursts, produce, send_commands, simulate

from filmqnn_hw.gateware.axi.burst_writer import AXI4BurstWriter, write_data_layout
from filmqnn_hw.gateware.axi.dma import AXI4DMA
from filmqnn_hw.sim.mem_model import AXIMemoryModel
from filmqnn_hw.spec.config import AcceleratorConfig

MEM_BYTES = 1 << 14
FILL = 0xA5


def random_strobes(rng, nb):
    """A beat's strobe: none, all, one lane, or random lanes."""
    return rng.choice([0, (1 << nb) - 1, 1 << rng.randrange(nb), rng.getrandbits(nb)])


def write_lanes(ref: bytearray, addr: int, word: int, strb: int, nb: int) -> None:
    """The reference write of one ``nb``-byte beat at ``addr``: the bytes whose strobe is set."""
    for lane, byte in enumerate(word.to_bytes(nb, "little")):
        if strb >> lane & 1:
            ref[addr + lane] = byte


def run_writer(cmds, *, data_width=32, seed=0, stall=0.0, max_outstanding=4, max_burst=256,
               write_latency=0, bytes_per_cycle=None, error_ranges=(), max_cycles=20000,
               strobes=False):
    """Write random words for ``cmds`` [(addr, beats)]; return (mem, reference, model, flags).

    With ``strobes`` the writer is built with ``strobes=True`` and every beat gets a random
    strobe (:func:`random_strobes`); the reference keeps the fill pattern in disabled lanes."""
    nb = data_width // 8
    mem = bytearray([FILL]) * MEM_BYTES
    ref = bytearray(mem)
    rng_data = random.Random(99)
    rng_strb = random.Random(seed + 77)
    words = []
    for addr, beats in cmds:
        for i in range(beats):
            w = rng_data.getrandbits(data_width)
            strb = random_strobes(rng_strb, nb) if strobes else (1 << nb) - 1
            words.append((w, strb))
            write_lanes(ref, addr + i * nb, w, strb, nb)
    dut = AXI4BurstWriter(addr_width=16, data_width=data_width, id_width=1, len_width=12,
                          max_outstanding=max_outstanding, max_burst=max_burst, strobes=strobes)
    model = AXIMemoryModel(dut.m_axi, mem, seed=seed, stall=stall, write_latency=write_latency,
                           bytes_per_cycle=bytes_per_cycle, error_ranges=error_ranges)
    flags = {"done": 0}

    async def commands(ctx):
        rng = random.Random(seed + 1)
        await send_commands(ctx, dut.cmd, cmds, gap=lambda: stall and rng.random() < 0.3)

    async def data(ctx):
        rng = random.Random(seed + 2)
        payloads = [{"data": w, "strb": strb} if strobes else w for w, strb in words]
        await produce(ctx, dut.data, payloads, gap=lambda: stall and rng.random() < 0.3)

    async def monitor(ctx):
        cycles = 0
        while flags["done"] < len(cmds):
            _, _, done = await ctx.tick().sample(dut.done)
            flags["done"] += done
            cycles += 1
            assert cycles < max_cycles, "writer never completed"
        flags["cycles"] = cycles
        await ctx.tick().repeat(4)
        flags["busy"] = ctx.get(dut.busy)
        flags["error"] = ctx.get(dut.error)
        # when the last done pulse came, every byte had landed
        flags["landed_at_done"] = bytes(mem) == bytes(ref)

    simulate(dut, commands, data, monitor, background=[model.serve])
    return mem, ref, model, flags


@pytest.mark.parametrize("case", list(BURST_CASES))
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_writer_cases(case, stall):
    cmds = BURST_CASES[case]
    mem, ref, model, flags = run_writer(cmds, seed=3, stall=stall,
                                        write_latency=4 if stall else 0)
    assert mem == ref
    assert flags["landed_at_done"] and flags["done"] == len(cmds)
    assert flags["busy"] == 0 and flags["error"] == 0
    assert model.write_bursts == [b for a, n in cmds for b in expected_bursts(a, n, 4)]


def test_writer_stalls_do_not_change_results():
    cmds = [(0x40, 40), (0x1000 - 16, 9), (0x2200, 70)]
    base, ref, _, _ = run_writer(cmds, data_width=128, seed=0)
    assert base == ref
    for seed in (1, 2):
        mem, _, model, flags = run_writer(cmds, data_width=128, seed=seed, stall=0.5,
                                          write_latency=6)
        assert mem == base and flags["done"] == 3
        assert model.max_writes_in_flight <= 4


def test_writer_outstanding_and_bandwidth():
    cmds = [(0x0, 64)]
    _, _, model, flags = run_writer(cmds, max_burst=8, max_outstanding=3, write_latency=12)
    assert model.write_bursts == [(i * 32, 8) for i in range(8)]
    assert model.max_writes_in_flight == 3
    fast = flags["cycles"]
    _, _, _, flags = run_writer(cmds, max_burst=8, max_outstanding=1, write_latency=12)
    assert flags["cycles"] > fast + 5 * 12
    _, _, _, flags = run_writer(cmds, bytes_per_cycle=2.0)  # 4-byte beats: one per 2 cycles
    assert 2 * 64 - 4 <= flags["cycles"] <= 2 * 64 + 16


def test_writer_error_sticky():
    cmds = [(0x0, 4), (0x200, 4)]
    mem, ref, _, flags = run_writer(cmds, error_ranges=[(0x8, 0xC)])
    assert flags["error"] == 1 and flags["done"] == 2
    ref[0x8:0xC] = bytes([FILL]) * 4  # the SLVERR beat is not written
    assert mem == ref


def test_writer_bad_commands_dropped():
    dut = AXI4BurstWriter(addr_width=16, data_width=32, len_width=8)
    mem = bytearray(4096)
    model = AXIMemoryModel(dut.m_axi, mem)

    async def bench(ctx):
        await send_commands(ctx, dut.cmd, [(0x2, 1), (0x10, 0), (0x20, 2)])
        await produce(ctx, dut.data, [0x11223344, 0x55667788])
        await ctx.tick().until(dut.done)
        assert ctx.get(dut.error) == 1
        await ctx.tick()
        assert ctx.get(dut.busy) == 0

    simulate(dut, bench, background=[model.serve])
    assert model.write_bursts == [(0x20, 2)]
    assert mem[0x20:0x28] == bytes.fromhex("4433221188776655")
    assert not any(mem[:0x20]) and not any(mem[0x28:])


@pytest.mark.parametrize("data_width,seed", [(32, 5), (128, 6)])
def test_writer_strobes_partial(data_width, seed):
    """Random per-beat strobes (incl. none/all/one lane) with random back-pressure on every
    write channel: only the enabled bytes leave the fill pattern."""
    nb = data_width // 8
    cmds = [(0x40, 40), (0x1000 - 3 * nb, 9), (0x2200, 70), (0x3000, 1)]
    mem, ref, model, flags = run_writer(cmds, data_width=data_width, seed=seed, strobes=True,
                                        stall={"aw": 0.3, "w": 0.5, "b": 0.3}, write_latency=5)
    assert mem == ref
    assert flags["landed_at_done"] and flags["done"] == len(cmds)
    assert flags["busy"] == 0 and flags["error"] == 0
    assert model.w_beats == sum(n for _, n in cmds)  # zero-strobe beats are still sent
    assert model.write_bursts == [b for a, n in cmds for b in expected_bursts(a, n, nb)]
    # the strobes really were partial: inside the written ranges some bytes kept the fill
    # and some were overwritten; outside them nothing changed
    written = {a + i for a, n in cmds for i in range(n * nb)}
    kept = sum(mem[a] == FILL for a in written)
    assert 0 < kept < len(written) - 64
    assert all(mem[a] == FILL for a in range(MEM_BYTES) if a not in written)
    full, _, _, _ = run_writer(cmds, data_width=data_width, seed=seed)
    assert full != mem


def test_writer_strobes_lanes_exact():
    """Hand-picked strobes on one 4-beat burst into a position-dependent pattern."""
    dut = AXI4BurstWriter(addr_width=16, data_width=32, len_width=8, strobes=True)
    mem = bytearray(i * 7 & 0xFF for i in range(4096))
    orig = bytes(mem)
    model = AXIMemoryModel(dut.m_axi, mem, seed=2, stall={"w": 0.6, "aw": 0.5})
    beats = [(0x11223344, 0b0001), (0x55667788, 0b1010), (0x99AABBCC, 0b0000),
             (0xDDEEFF00, 0b1111)]

    async def bench(ctx):
        await send_commands(ctx, dut.cmd, [(0x100, len(beats))])
        await produce(ctx, dut.data, [{"data": w, "strb": strb} for w, strb in beats])
        await ctx.tick().until(dut.done)

    simulate(dut, bench, background=[model.serve])
    exp = bytearray(orig)
    exp[0x100] = 0x44
    exp[0x105], exp[0x107] = 0x77, 0x55
    exp[0x10C:0x110] = bytes.fromhex("00FFEEDD")
    assert mem == exp


def test_writer_strobes_member_shapes():
    plain = AXI4BurstWriter(data_width=64)
    assert plain.data.payload.shape() == unsigned(64)
    wr = AXI4BurstWriter(data_width=64, strobes=True)
    assert wr.data.payload.shape() == data.StructLayout({"data": 64, "strb": 8})
    assert write_data_layout(512) == data.StructLayout({"data": 512, "strb": 64})
    with pytest.raises(TypeError, match="strobes must be a bool"):
        AXI4BurstWriter(strobes=1)


def test_dma_strobes():
    """AXI4DMA(strobes=True): wr_data has the strobe layout, from_config passes it on, and a
    strobed write through the shared port lands only the enabled bytes."""
    cfg = AcceleratorConfig.small()
    plain = AXI4DMA.from_config(cfg, 0)
    assert plain.wr_data.payload.shape() == unsigned(cfg.axi_data_bits)
    Fragment.get(plain, None)
    dma = AXI4DMA.from_config(cfg, 0, strobes=True)
    assert dma.strobes
    assert dma.wr_data.payload.shape() == write_data_layout(cfg.axi_data_bits)
    Fragment.get(dma, None)

    dut = AXI4DMA("m_axi_gmem1", addr_width=16, data_width=64, id_width=1, len_width=8,
                  max_burst=4, strobes=True)
    assert dut.wr_data.payload.shape() == data.StructLayout({"data": 64, "strb": 8})
    mem = bytearray([FILL]) * 4096
    model = AXIMemoryModel(dut.m_axi, mem, seed=9, stall=0.4, write_latency=3)
    rng = random.Random(4)
    beats = [(rng.getrandbits(64), random_strobes(rng, 8)) for _ in range(10)]
    ref = bytearray(mem)
    for i, (w, strb) in enumerate(beats):
        write_lanes(ref, 0x200 + 8 * i, w, strb, 8)

    async def bench(ctx):
        await send_commands(ctx, dut.wr_cmd, [(0x200, len(beats))])
        await produce(ctx, dut.wr_data, [{"data": w, "strb": strb} for w, strb in beats])
        await ctx.tick().until(dut.wr_done)
        assert ctx.get(dut.wr_error) == 0

    simulate(dut, bench, background=[model.serve])
    assert mem == ref
    assert model.write_bursts == [(0x200, 4), (0x220, 4), (0x240, 2)]


@pytest.mark.parametrize("kwargs,match", [
    ({"data_width": 100}, "data_width must be one of"),
    ({"max_burst": 300}, "max_burst"),
    ({"max_outstanding": 65}, "max_outstanding"),
    ({"len_width": 33}, "len_width"),
])
def test_writer_bad_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AXI4BurstWriter(**kwargs)
