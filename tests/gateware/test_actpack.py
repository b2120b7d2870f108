# amaranth: UnusedElaboratable=no
"""Activation pack/unpack units: rows round-trip with ==, layout vs the numpy reference, stalls."""

from __future__ import annotations

import random

import numpy as np
import pytest
from helpers import assert_verilator_lints, consume, produce, simulate

from filmqnn_hw.gateware.actpack import ActPacker, ActPackError, ActUnpacker, pack_row, unpack_row
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.geometry import words_per_beat

CONFIGS = [
    AcceleratorConfig.small(),  # G=4, 64-bit beats: 3 words of 20 bits
    AcceleratorConfig.small(act_pack=8, axi_data_bits=128),  # 3 words of 40 bits
    AcceleratorConfig.small(act_pack=5, axi_data_bits=32),  # 1 word of 25 bits
    AcceleratorConfig.small(act_pack=1, axi_data_bits=32),  # 6 words of 5 bits
]


def _rows(cfg, rng, widths):
    return [rng.integers(0, 32, size=(w, cfg.act_pack)) for w in widths]


def test_reference_layout_known_bits():
    cfg = AcceleratorConfig.small()  # G=4, word 20 bits, wpb 3
    codes = np.array([[1, 2, 3, 31], [0, 0, 0, 1], [5, 0, 0, 0], [7, 0, 0, 0]])
    beats = pack_row(cfg, codes)
    assert words_per_beat(cfg) == 3
    w0 = 1 | 2 << 5 | 3 << 10 | 31 << 15
    assert beats == [w0 | (1 << 15) << 20 | 5 << 40, 7]
    assert (unpack_row(cfg, beats, 4) == codes).all()
    with pytest.raises(ActPackError, match="codes"):
        pack_row(cfg, codes + 1)
    with pytest.raises(ActPackError, match="beats"):
        unpack_row(cfg, beats, 7)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"G{c.act_pack}_axi{c.axi_data_bits}")
def test_unpacker_rows(cfg):
    rng = np.random.default_rng(cfg.act_pack)
    wpb = words_per_beat(cfg)
    rows = _rows(cfg, rng, [1, wpb, wpb + 1, 3 * wpb - 1, 7])
    rows.append(np.full((wpb + 2, cfg.act_pack), 31))
    dut = ActUnpacker(cfg)
    beats = []
    for r in rows:
        for b, beat in enumerate(pack_row(cfg, r)):
            beats.append((beat, min(wpb, len(r) - b * wpb)))
    expect = [list(map(int, w)) for r in rows for w in r]
    got = []
    prng = random.Random(1)

    async def producer(ctx):
        await produce(ctx, dut.i, [{"data": beat, "words": n} for beat, n in beats],
                      gap=lambda: prng.random() < 0.25)

    async def consumer(ctx):
        crng = random.Random(2)
        words, _ = await consume(ctx, dut.o, len(expect), ready=lambda: crng.random() < 0.7)
        got.extend(list(w) for w in words)

    simulate(dut, producer, consumer)
    assert got == expect


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"G{c.act_pack}_axi{c.axi_data_bits}")
def test_packer_rows(cfg):
    rng = np.random.default_rng(10 + cfg.act_pack)
    wpb = words_per_beat(cfg)
    rows = _rows(cfg, rng, [1, wpb, wpb + 1, 3 * wpb - 1, 7])
    dut = ActPacker(cfg)
    words = [(list(map(int, w)), i == len(r) - 1) for r in rows for i, w in enumerate(r)]
    expect = []
    for r in rows:
        for b, beat in enumerate(pack_row(cfg, r)):
            expect.append((beat, min(wpb, len(r) - b * wpb)))
    got = []

    async def producer(ctx):
        prng = random.Random(3)
        await produce(ctx, dut.i, [{"word": w, "last": last} for w, last in words],
                      gap=lambda: prng.random() < 0.25)

    async def consumer(ctx):
        crng = random.Random(4)
        beats, _ = await consume(ctx, dut.o, len(expect), ready=lambda: crng.random() < 0.6)
        got.extend((b.data, b.words) for b in beats)

    simulate(dut, producer, consumer)
    assert got == expect


def test_unpacker_full_rate():
    """Without stalls a row of n words leaves in n cycles (+1 latency): no bubbles."""
    cfg = AcceleratorConfig.small()
    wpb = words_per_beat(cfg)
    row = np.random.default_rng(0).integers(0, 32, size=(4 * wpb, cfg.act_pack))
    dut = ActUnpacker(cfg)
    stamps = []

    async def producer(ctx):
        await produce(ctx, dut.i, [{"data": beat, "words": wpb} for beat in pack_row(cfg, row)])

    async def consumer(ctx):
        ctx.set(dut.o.ready, 1)
        for cyc in range(6 * wpb):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid:
                stamps.append(cyc)

    simulate(dut, producer, consumer)
    assert len(stamps) == len(row)
    assert stamps == list(range(stamps[0], stamps[0] + len(row)))


@pytest.mark.verilator
def test_actpack_verilog_lints():
    cfg = AcceleratorConfig.small()
    assert_verilator_lints({"act_unpacker": ActUnpacker(cfg), "act_packer": ActPacker(cfg)})
