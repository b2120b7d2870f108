# amaranth: UnusedElaboratable=no
"""The SoC-reuse example (``examples/my_soc.py``) simulated in Amaranth's simulator.

Each test drives the user's own top ``MySoC``: its packed multiplier against Python
products, its PE array against numpy, and the whole accelerator (through the top's exposed
``s_axi_control`` / ``m_axi_gmem0``) running a two-layer program compared with
``IntGraph.run`` using ``==``.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import simulate

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.gateware.axi.lite_regs import AP_CTRL, GIE, IER, ISR
from filmqnn_hw.sim.lite_sim import lite_read, lite_write
from filmqnn_hw.sim.mem_model import AXIMemoryModel
from filmqnn_hw.spec.geometry import PEMode, record_bits
from filmqnn_hw.spec.intgraph import ConvOp, IntGraph, PoolOp, TensorSpec
from filmqnn_hw.spec.numerics import quantize_multiplier
from filmqnn_hw.spec.weight_image import pack_conv_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))

from my_soc import MySoC, main, my_config  # noqa: E402


@pytest.fixture(scope="module")
def soc_factory():
    return lambda: MySoC(heartbeat_bits=6)


# -- (a) the packed multiplier behind the user's own registers --------------------------------
def test_packed_multiplier_against_python(soc_factory):
    soc = soc_factory()
    assert soc.mul.layout.family == "xcup" and soc.mul.lane_width == 11
    rng = np.random.default_rng(7)
    ext_w, ext_x = (-7, 0, 1, 7), (0, 1, 31)
    vectors = [((w0, w1), (x0, x1))
               for w0, w1, x0, x1 in itertools.product(ext_w, ext_w, ext_x, ext_x)]
    vectors += [(tuple(int(v) for v in rng.integers(-7, 8, 2)),
                 tuple(int(v) for v in rng.integers(0, 32, 2))) for _ in range(250)]
    # valid gaps every 7th vector: the outputs must follow valid, not the cycle count
    gaps = {i for i in range(len(vectors)) if i % 7 == 3}
    got: list[tuple[list[int], list[int]]] = []

    async def tb(ctx):
        pending = list(vectors)
        i = 0
        while pending or len(got) < len(vectors):
            if pending and i not in gaps:
                w, x = pending.pop(0)
                ctx.set(soc.mul_w, list(w))
                ctx.set(soc.mul_x, list(x))
                ctx.set(soc.mul_valid, 1)
            else:
                ctx.set(soc.mul_w, [-1, 5])  # garbage while not valid
                ctx.set(soc.mul_valid, 0)
            i += 1
            await ctx.tick()
            if ctx.get(soc.mul_valid_out):
                lanes = ctx.get(soc.mul_lanes)
                sums = ctx.get(soc.mul_sums)
                got.append(([lanes[k] for k in range(4)], [sums[0], sums[1]]))
            assert i < 3 * len(vectors)

    simulate(soc, tb)
    names = [lane.products[0] for lane in soc.mul.layout.lanes]
    for (w, x), (lanes, sums) in zip(vectors, got, strict=True):
        ops = {"w0": w[0], "w1": w[1], "x0": x[0], "x1": x[1]}
        assert lanes == [ops[a] * ops[b] for a, b in names], (w, x)
        assert sums == [w[0] * (x[0] + x[1]), w[1] * (x[0] + x[1])], (w, x)


def test_packed_multiplier_latency(soc_factory):
    soc = soc_factory()
    seen = []

    async def tb(ctx):
        ctx.set(soc.mul_w, [7, -7])
        ctx.set(soc.mul_x, [31, 31])
        ctx.set(soc.mul_valid, 1)
        await ctx.tick()
        ctx.set(soc.mul_valid, 0)
        for c in range(1, 12):
            if ctx.get(soc.mul_valid_out):
                seen.append(c)
            await ctx.tick()

    simulate(soc, tb)
    assert seen == [soc.mul_latency] == [6]


# -- (b) the PE array on the user's config ------------------------------------------------------
def test_pe_array_dense_pairs_against_numpy(soc_factory):
    soc = soc_factory()
    cfg = soc.config
    pe = soc.pe
    rng = np.random.default_rng(3)
    lo = np.where(np.arange(cfg.tm) < cfg.n8_slots, cfg.w8_min, cfg.w4_min)
    hi = np.where(np.arange(cfg.tm) < cfg.n8_slots, cfg.w8_max, cfg.w4_max)
    cb = max(cfg.tn, cfg.tm)
    pairs = []
    for k in range(3):
        if k == 0:  # extremes: top weights of every lane, codes 31
            w = np.repeat(hi[:, None], cfg.tn, 1)
            x = np.full((2, cb), 31)
        else:
            w = rng.integers(lo[:, None], hi[:, None] + 1, size=(cfg.tm, cfg.tn))
            x = rng.integers(0, 32, size=(2, cb))
        raw = pack_conv_weights(w.reshape(cfg.tm, cfg.tn, 1, 1), cfg.tm, cfg.n8_slots, cfg.tn)
        record = int.from_bytes(raw, "little")
        assert record < 1 << record_bits(cfg)
        pairs.append((record, x, x[:, : cfg.tn] @ w.T))  # (2 pixels, tm lanes)
    got = []

    async def tb(ctx):
        for record, x, _ in pairs:
            ctx.set(pe.x, [[int(v) for v in row] for row in x])
            ctx.set(pe.record, record)
            ctx.set(pe.mode, PEMode.DENSE)
            for phase in (0, 1):
                ctx.set(pe.valid, 1)
                ctx.set(pe.phase, phase)
                await ctx.tick()
                if ctx.get(pe.valid_out):
                    got.append(ctx.get(pe.sum))
        ctx.set(pe.valid, 0)
        for _ in range(soc.pe_array.latency + 2):
            await ctx.tick()
            if ctx.get(pe.valid_out):
                got.append(ctx.get(pe.sum))

    simulate(soc, tb)
    assert soc.pe_array.latency == 6  # DSP engines present
    assert len(got) == len(pairs)
    for (_, _, expect), s in zip(pairs, got, strict=True):
        sums = np.array([[s[p][m] for m in range(cfg.tm)] for p in range(2)])
        assert (sums == expect).all()


# -- (c) the whole accelerator from the user's top ---------------------------------------------
def _conv(rng, cfg, name, inp, out, cin, cout, k, pad):
    """A conv with random codes (8-bit only in the config's 8-bit slots) and spread params."""
    bits = np.array([8 if cfg.is_8bit_slot(c) else 4 for c in range(cout)])
    qmax = np.where(bits == 8, 127, 7).reshape(-1, 1, 1, 1)
    w = np.round(rng.uniform(-1, 1, (cout, cin, k, k)) * qmax).astype(np.int64)
    ratio = 12.0 / (math.sqrt(cin * k * k) * 3.5 * 15.0 + 1.0)
    mult, shift = np.empty(cout, np.int64), np.empty(cout, np.int64)
    for c in range(cout):
        mult[c], shift[c] = quantize_multiplier(ratio * (1.0 if bits[c] == 4 else 7 / 127))
    offset = np.array([(8 << int(s)) + (1 << (int(s) - 1)) for s in shift], np.int64)
    return ConvOp(name, inp, out, w, bits, mult, offset, shift, (1, 1), (pad, pad), 1, 0, 0, 31)


def _tiny_graph(cfg, rng) -> IntGraph:
    """conv 3x3 pad 1 (6 -> 10 channels) -> conv 1x1 (10 -> 8) -> max pool 2x2 s2."""
    specs = {"x": (6, 5, 6), "a": (10, 5, 6), "b": (8, 5, 6), "y": (8, 2, 3)}
    t = {n: TensorSpec(n, *s, 0.1) for n, s in specs.items()}
    ops = [
        _conv(rng, cfg, "c1", "x", "a", 6, 10, 3, 1),
        _conv(rng, cfg, "c2", "a", "b", 10, 8, 1, 0),
        PoolOp("p", "b", "y", "max", (2, 2), (2, 2)),
    ]
    g = IntGraph(t["x"], ops, "y", {n: s for n, s in t.items() if n != "x"}, "tiny")
    g.validate()
    return g


@pytest.mark.slow
def test_accelerator_runs_program_from_user_top(soc_factory):
    soc = soc_factory()
    cfg = soc.config
    rng = np.random.default_rng(5)
    graph = _tiny_graph(cfg, rng)
    x = rng.integers(0, 32, (1,) + graph.input.shape)
    prog = build_program(graph, cfg)
    mem = prog.memory_image(x)
    model = AXIMemoryModel(soc.m_axi_gmem0, mem, seed=2, stall=0.1, read_latency=4,
                           max_bursts=8)
    cmap = soc.accel.cmap
    seen = {"busy_led": False}
    counters: dict[str, int] = {}

    async def host(ctx):
        bus = soc.s_axi_control
        await lite_write(ctx, bus, GIE, 1)
        await lite_write(ctx, bus, IER, 1)  # interrupt on ap_done -> the user's "done" LED
        await lite_write(ctx, bus, cmap.offset_of("layers"), prog.base & 0xFFFF_FFFF)
        await lite_write(ctx, bus, cmap.offset_of("layers") + 4, prog.base >> 32)
        await lite_write(ctx, bus, AP_CTRL, 1)
        for _ in range(200_000):
            await ctx.tick()
            leds = ctx.get(soc.leds)
            seen["busy_led"] |= bool(leds & 2)
            if leds & 1:
                break
        else:
            raise AssertionError("the done LED never lit")
        assert ctx.get(soc.interrupt)
        assert await lite_read(ctx, bus, AP_CTRL) & 2  # ap_done
        for e in cmap.counters:
            lo = await lite_read(ctx, bus, cmap.offset_of(e.name))
            hi = await lite_read(ctx, bus, cmap.offset_of(e.name) + 4) if e.bits == 64 else 0
            counters[e.name] = lo | hi << 32
        await lite_write(ctx, bus, ISR, 1)  # toggle-on-write: acknowledge the interrupt
        ctx.set(soc.led_clear, 1)
        await ctx.tick()
        ctx.set(soc.led_clear, 0)
        await ctx.tick()
        assert not ctx.get(soc.interrupt) and not ctx.get(soc.leds) & 1

    simulate(soc, host, background=[model.serve])
    assert counters["status"] == 0 and counters["cycles"] > 0
    assert seen["busy_led"]
    out = prog.read_output(mem)
    ref = graph.run(x)
    assert out.shape == ref.shape == (1, 8, 2, 3)
    assert (out == ref).all()
    assert len(np.unique(ref)) > 4  # not all clipped


def test_main_writes_verilog(tmp_path):
    out = tmp_path / "my_soc.v"
    assert main([str(out), "--name", "user_top"]) == 0
    text = out.read_text()
    assert "module user_top(" in text
    for port in ("ap_clk", "ap_rst_n", "s_axi_control_awaddr", "m_axi_gmem0_arlen",
                 "m_axi_gmem0_wstrb", "interrupt", "leds", "mul_lanes", "pe_sum"):
        assert port in text


def test_config_is_the_users_own():
    cfg = my_config()
    assert (cfg.family, cfg.tm, cfg.tn, cfg.n8_slots, cfg.max_fan_in) == ("xcup", 8, 4, 2, 1152)
    assert cfg.acc_bits == 24
