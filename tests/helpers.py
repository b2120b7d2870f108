"""Shared test helpers: the accelerator configs of the whole-top tests, seeded random graphs
(single layers, small networks, the weight image's test network), seeded torch networks
converted to integer graphs, and the simulation plumbing of the gateware tests (the clocked
Amaranth bench, stream producers and consumers, AXI burst splitting, Verilator lint, driving
pipelined units) and of the C-simulation tests (a program fed lines on stdin).

Test modules import from here (``tests/conftest.py`` puts this directory on ``sys.path``),
never from each other. Every builder is deterministic in its seed, so the tests that share a
builder share its graphs.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.intgraph import AddOp, ConvOp, IntGraph, PoolOp, TensorSpec
from filmqnn_hw.spec.numerics import LOGIT_MAX, LOGIT_MIN, quantize_multiplier

# ---------------------------------------------------------------------------------------------
# accelerator configs of the whole-top tests (pysim, Verilator, cocotb, cycle models)
# ---------------------------------------------------------------------------------------------
# A: G=8 (40-bit words, byte aligned), 128-bit beats (3 words/beat), one 8-bit lane of 8.
# B: G=4 (20-bit words) on 64-bit beats, tc = 3 = words per beat, tn=4 < tm=8, 7 4-bit lanes.
# C: xcup, 32-bit beats (1 word/beat), tm=4 < tn=8, DSP and LUT lanes of both widths.
CFG_A = AcceleratorConfig.small(act_pack=8, axi_data_bits=128)
# B: four requantization units for eight lanes (two passes per pixel)
CFG_B = AcceleratorConfig.small(tm=8, tn=4, n8_slots=1, act_pack=4, axi_data_bits=64, tr=3,
                                tc=3).replace(requant_lanes=4)
CFG_C = AcceleratorConfig.small(tm=4, tn=8, n8_slots=2, act_pack=4, axi_data_bits=32, tr=2,
                                tc=2).replace(family="xcup", w4_dsp_lanes=1, w4_lut_lanes=1,
                                              w8_dsp_lanes=1, w8_lut_lanes=1)
# D: the PYNQ-Z2 design-space result's array (tm=24 with two 8-bit LUT lanes, 20 + 2 4-bit
#    DSP/LUT lanes, tn=32, 16x30 tiles, 12 requantization units: two passes per pixel): the
#    second accumulator bank crosses 2**8.
CFG_D = AcceleratorConfig.small(tm=24, tn=32, n8_slots=2, act_pack=4, axi_data_bits=64, tr=16,
                                tc=30).replace(w4_dsp_lanes=20, w4_lut_lanes=2, w8_dsp_lanes=0,
                                               w8_lut_lanes=2, requant_lanes=12)
# B with two / four AXI ports: the weights come through m_axi_gmem1 (B2) or are striped tap
# record by tap record over m_axi_gmem1..3 into three weight memories (B4)
CFG_B2 = CFG_B.replace(axi_ports=2)
CFG_B4 = CFG_B.replace(axi_ports=4)
# E: G=3 on 32-bit beats (2 words per beat, as on ZCU102): depthwise groups of 3 taps at
#    stride 1 and of 2 at stride 2; E3: the same with two weight memories (AXI ports 1, 2)
CFG_E = AcceleratorConfig.small(tm=6, tn=6, n8_slots=1, act_pack=3, axi_data_bits=32, tr=3,
                                tc=4)
CFG_E3 = CFG_E.replace(axi_ports=3)


# ---------------------------------------------------------------------------------------------
# random single-layer / small graphs (integer parameters chosen so outputs are not all clipped)
# ---------------------------------------------------------------------------------------------
def on_board(cfg: AcceleratorConfig, board: str) -> AcceleratorConfig:
    """``cfg`` labelled for ``board`` (its name, part and family), as a build for that board
    requires."""
    from boards import load_board

    b = load_board(board)
    return cfg.replace(board=b.name, part=b.part, family=b.family)


def _out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def rand_conv(rng, config, name, inp, out, cin, cout, k, stride=1, pad=0, *, depthwise=False,
              residual=None, logits=False, linear=False, pad_code=0) -> ConvOp:
    """A ConvOp with random codes in the config's slots and requant params that spread."""
    kh, kw = (k, k) if isinstance(k, int) else k
    cpg = 1 if depthwise else cin
    bits = np.array([8 if config.is_8bit_slot(p) and rng.random() < 0.8 else 4
                     for p in range(cout)])
    qmax = np.where(bits == 8, 127, 7).reshape(-1, 1, 1, 1)
    w = np.round(rng.uniform(-1, 1, (cout, cpg, kh, kw)) * qmax).astype(np.int64)
    fan = cpg * kh * kw
    ratio = 12.0 / (math.sqrt(fan) * 3.5 * 15.0 + 1.0)
    if logits:
        ratio *= 200
    mult = np.empty(cout, np.int64)
    shift = np.empty(cout, np.int64)
    for c in range(cout):
        m, s = quantize_multiplier(ratio * (1.0 if bits[c] == 4 else 7 / 127) * rng.uniform(0.5, 2))
        mult[c], shift[c] = m, s
    base = 0 if logits else 8
    offset = np.array([(base << int(s)) + int(rng.integers(-(1 << int(s)), 1 << int(s)))
                       + (1 << (int(s) - 1) if s else 0) for s in shift], dtype=np.int64)
    res_mult = None
    if residual is not None:
        res_mult = np.array([min((1 << 15) - 1, int(rng.uniform(0.3, 1.2) * 2.0 ** int(s)))
                             for s in shift], dtype=np.int64)
    lo, hi = (-(1 << 15), (1 << 15) - 1) if logits else (int(rng.integers(0, 3)), 31)
    return ConvOp(name, inp, out, w, bits, mult, offset, shift, (stride, stride), (pad, pad),
                  cin if depthwise else 1, pad_code, lo, hi, residual, res_mult,
                  "linear" if linear else ("depthwise" if depthwise else "conv"))


def graph_of(ops, specs: dict[str, tuple[int, int, int]], inp: str, out: str, name="g",
             logits=False) -> IntGraph:
    tensors = {}
    for n, (c, h, w) in specs.items():
        lo, hi = (-(1 << 15), (1 << 15) - 1) if (logits and n == out) else (0, 31)
        tensors[n] = TensorSpec(n, c, h, w, 0.1, 0, lo, hi)
    g = IntGraph(tensors[inp], ops, out, {k: v for k, v in tensors.items() if k != inp}, name)
    g.validate()
    return g


def conv_graph(rng, config, cin, cout, h, w, k, stride=1, pad=0, **kw) -> IntGraph:
    """One convolution (dense, depthwise with ``depthwise=True``, FC with ``linear=True``)."""
    kh, kwid = (k, k) if isinstance(k, int) else k
    oh, ow = _out(h, kh, stride, pad), _out(w, kwid, stride, pad)
    op = rand_conv(rng, config, "c0", "x", "y", cin, cout, k, stride, pad, **kw)
    return graph_of([op], {"x": (cin, h, w), "y": (cout, oh, ow)}, "x", "y",
                    logits=kw.get("logits", False))


def residual_graph(rng, config, c, h, w) -> IntGraph:
    """conv a -> conv b with the input fused in as residual (a ResNet basic block)."""
    a = rand_conv(rng, config, "a", "x", "t", c, c, 3, 1, 1)
    b = rand_conv(rng, config, "b", "t", "y", c, c, 3, 1, 1, residual="x")
    return graph_of([a, b], {"x": (c, h, w), "t": (c, h, w), "y": (c, h, w)}, "x", "y")


def pool_graph(rng, config, c, h, w, mode, k=None, stride=1, pad=0, pad_code=0) -> IntGraph:
    """One pooling op; ``k=None`` with ``mode='avg'`` is global average pooling."""
    if k is None:
        oh = ow = 1
        m, s = quantize_multiplier(1.0 / (h * w))
    else:
        oh, ow = _out(h, k, stride, pad), _out(w, k, stride, pad)
        m, s = quantize_multiplier(1.0 / (k * k))
    op = PoolOp("p", "x", "y", mode, None if k is None else (k, k), (stride, stride), (pad, pad),
                pad_code, m, (1 << (s - 1)) if s else 0, s, 0, 31)
    return graph_of([op], {"x": (c, h, w), "y": (c, oh, ow)}, "x", "y")


def add_graph(rng, config, c, h, w) -> IntGraph:
    a = rand_conv(rng, config, "a", "x", "t", c, c, 1)
    add = AddOp("add", "t", "x", "y", 20000, 13000, (1 << 14) + 12345, 15, 1, 31)
    return graph_of([a, add], {"x": (c, h, w), "t": (c, h, w), "y": (c, h, w)}, "x", "y")


def rand_input(rng, g: IntGraph) -> np.ndarray:
    return rng.integers(0, 32, (1,) + g.input.shape)


def pool_op(inp, out, c, h, w, mode, k=None, stride=1, pad=0) -> PoolOp:
    """The op of :func:`pool_graph`, reading ``inp`` and writing ``out`` (for bigger graphs)."""
    op = pool_graph(np.random.default_rng(0), None, c, h, w, mode, k, stride, pad).ops[0]
    return dataclasses.replace(op, name=f"pool_{out}", input=inp, output=out)


def small_network(cfg, seed=7) -> IntGraph:
    """stem conv -> maxpool -> residual block -> gap -> fc logits (10 classes), 3x11x11 in."""
    r = np.random.default_rng(seed)
    ops = [
        rand_conv(r, cfg, "stem", "x", "s", 3, 8, 3, 2, 1),
        pool_op("s", "p", 8, 6, 6, "max", 3, 2, 1),
        rand_conv(r, cfg, "a", "p", "t", 8, 8, 3, 1, 1),
        rand_conv(r, cfg, "b", "t", "u", 8, 8, 3, 1, 1, residual="p"),
        pool_op("u", "v", 8, 3, 3, "avg"),
        rand_conv(r, cfg, "fc", "v", "y", 8, 10, 1, linear=True, logits=True),
    ]
    return graph_of(ops, {"x": (3, 11, 11), "s": (8, 6, 6), "p": (8, 3, 3), "t": (8, 3, 3),
                          "u": (8, 3, 3), "v": (8, 1, 1), "y": (10, 1, 1)}, "x", "y",
                    logits=True)


def layer_cases(cfg) -> dict[str, IntGraph]:
    """One graph per layer kind the accelerators run, with odd shapes (seeded)."""
    r = np.random.default_rng(11)
    return {
        "conv1x1": conv_graph(r, cfg, 13, 11, 5, 6, 1),
        "conv1x1_s2_odd": conv_graph(r, cfg, 9, 7, 7, 9, 1, 2, 0),
        "conv3x3_pad": conv_graph(r, cfg, 5, 10, 7, 9, 3, 1, 1),
        "conv3x3_s2_odd": conv_graph(r, cfg, 7, 9, 9, 7, 3, 2, 1),
        "conv3x3_nopad_padcode": conv_graph(r, cfg, 4, 3, 6, 5, 3, 1, 1, pad_code=5),
        "conv7x7_s2_stem": conv_graph(r, cfg, 3, 9, 11, 13, 7, 2, 3),
        "conv_1x1_spatial": conv_graph(r, cfg, 17, 6, 1, 1, 1),
        "conv3x3_on_1x1": conv_graph(r, cfg, 6, 5, 1, 1, 3, 1, 1),
        "conv_5x3_kernel": conv_graph(r, cfg, 4, 4, 6, 6, (5, 3), 1, 1),
        "depthwise3x3": conv_graph(r, cfg, 10, 10, 6, 5, 3, 1, 1, depthwise=True),
        "depthwise3x3_s2": conv_graph(r, cfg, 13, 13, 7, 7, 3, 2, 1, depthwise=True),
        "fc_logits": conv_graph(r, cfg, 19, 10, 1, 1, 1, linear=True, logits=True),
        "fc_flatten_3x3": conv_graph(r, cfg, 9, 7, 3, 3, 3, linear=True, logits=True),
        "residual": residual_graph(r, cfg, 10, 5, 6),
        "maxpool3s2p1": pool_graph(r, cfg, 9, 7, 7, "max", 3, 2, 1),
        "maxpool2s2_odd": pool_graph(r, cfg, 5, 5, 7, "max", 2, 2, 0),
        "avgpool2s2": pool_graph(r, cfg, 9, 6, 6, "avg", 2, 2, 0),
        "avgpool3_pad": pool_graph(r, cfg, 4, 5, 5, "avg", 3, 1, 1, pad_code=2),
        "gap": pool_graph(r, cfg, 11, 5, 3, "avg"),
        "add": add_graph(r, cfg, 6, 3, 4),
    }


def mixed_network(rng, cfg) -> IntGraph:
    """conv(stem) -> maxpool -> conv -> conv+res -> dw -> add -> gap -> fc(logits)."""
    ops = [
        rand_conv(rng, cfg, "stem", "x", "s", 3, 8, 3, 1, 1),
        PoolOp("mp", "s", "m", "max", (2, 2), (2, 2), (0, 0), 0, 1, 0, 0, 0, 31),
        rand_conv(rng, cfg, "c1", "m", "a", 8, 8, 3, 1, 1),
        rand_conv(rng, cfg, "c2", "a", "b", 8, 8, 3, 1, 1, residual="m"),
        rand_conv(rng, cfg, "dw", "b", "d", 8, 8, 3, 1, 1, depthwise=True),
        AddOp("add", "d", "b", "e", 20000, 13000, 1 << 14, 15, 0, 31),
        PoolOp("gap", "e", "g", "avg", None, (1, 1), (0, 0), 0, 16384, 1 << 17, 18, 0, 31),
        rand_conv(rng, cfg, "fc", "g", "y", 8, 5, 1, linear=True, logits=True),
    ]
    specs = {"x": (3, 8, 8), "s": (8, 8, 8), "m": (8, 4, 4), "a": (8, 4, 4), "b": (8, 4, 4),
             "d": (8, 4, 4), "e": (8, 4, 4), "g": (8, 1, 1), "y": (5, 1, 1)}
    return graph_of(ops, specs, "x", "y", logits=True)


# ---------------------------------------------------------------------------------------------
# the weight image's test network (every field of every op random)
# ---------------------------------------------------------------------------------------------
def image_conv(rng, cfg, name, inp, out, cin, cout, k, *, stride=1, pad=0, groups=1,
               kind="conv", residual=None, lo=0, hi=31, all8=False, pad_code=0) -> ConvOp:
    """A ConvOp with every field the weight image stores random (codes up to the extremes,
    permutation, meta)."""
    pos = np.arange(cout)
    slot8 = (pos % cfg.tm) < cfg.n8_slots
    # 8-bit slots hold 8-bit filters, except some 4-bit filters parked in 8-bit slots.
    bits = np.where(slot8 & (all8 | (rng.random(cout) < 0.7)), 8, 4)
    qmax = np.where(bits == 8, cfg.w8_max, cfg.w4_max).reshape(-1, 1, 1, 1)
    w = rng.integers(-qmax, qmax + 1, size=(cout, cin // groups, k, k))
    w[0].flat[0] = -qmax[0, 0, 0, 0]  # extremes included
    w[-1].flat[-1] = qmax[-1, 0, 0, 0]
    shift = rng.integers(14, 20, size=cout)
    mult = rng.integers(1 << 13, 1 << 15, size=cout)
    offset = (1 << (shift - 1)) + rng.integers(-(1 << 16), 1 << 16, size=cout)
    res_mult = rng.integers(1, 1 << 12, size=cout) if residual else None
    return ConvOp(
        name=name, input=inp, output=out, weight=w, bits=bits, mult=mult, offset=offset,
        shift=shift, stride=(stride, stride), padding=(pad, pad), groups=groups,
        pad_code=pad_code, lo=lo, hi=hi, residual=residual, res_mult=res_mult, kind=kind,
        permutation=rng.permutation(cout), meta={"alpha": 0.25, "note": "test"},
    )  # fmt: skip


def random_graph(cfg: AcceleratorConfig, seed: int = 0, c1: int = 13, c2: int = 20) -> IntGraph:
    """Partial tiles/chunks, depthwise, residual, add, max/avg/global pool and a linear layer."""
    rng = np.random.default_rng(seed)
    ops = [
        image_conv(rng, cfg, "conv1", "x", "t1", 3, c1, 3, pad=1),
        PoolOp("pool1", "t1", "t2", "max", (3, 3), (2, 2), (1, 1)),
        image_conv(rng, cfg, "dw", "t2", "t3", c1, c1, 3, pad=1, groups=c1, kind="depthwise",
                   pad_code=2),  # fmt: skip
        image_conv(rng, cfg, "conv2", "t3", "t4", c1, c2, 1),
        image_conv(rng, cfg, "conv3", "t4", "t5", c2, c1, 3, pad=1, residual="t2"),
        AddOp("add", "t5", "t3", "t6", 20000, 17000, 1 << 14, 15),
        PoolOp("avg", "t6", "t7", "avg", (2, 2), (1, 1), (0, 0), 0, 19000, 1 << 16, 17),
        PoolOp("gap", "t7", "t8", "avg", None, mult=21000, offset=1 << 17, shift=18),
        image_conv(rng, cfg, "fc", "t8", "logits", c1, 10, 1, kind="linear", lo=LOGIT_MIN,
                   hi=LOGIT_MAX),  # fmt: skip
    ]
    shapes = {"x": (3, 9, 9), "t1": (c1, 9, 9), "t2": (c1, 5, 5), "t3": (c1, 5, 5),
              "t4": (c2, 5, 5), "t5": (c1, 5, 5), "t6": (c1, 5, 5), "t7": (c1, 4, 4),
              "t8": (c1, 1, 1), "logits": (10, 1, 1)}  # fmt: skip
    tensors = {
        n: TensorSpec(n, *s, scale=float(rng.random()) / 7 + 1e-3, zero_point=int(n == "t3"))
        for n, s in shapes.items()
    }
    tensors["logits"].lo, tensors["logits"].hi = LOGIT_MIN, LOGIT_MAX
    g = IntGraph(input=tensors["x"], ops=ops, output="logits", tensors=tensors, name="testnet")
    g.validate()
    return g


# ---------------------------------------------------------------------------------------------
# torch networks with seeded random weights, QAT-prepared and converted
# ---------------------------------------------------------------------------------------------
def converted_network(name: str, cfg: AcceleratorConfig, kw: dict, shape: tuple[int, ...], *,
                      batch: int, frames: int = 1) -> tuple[IntGraph, np.ndarray]:
    """``(IntGraph, codes)``: ``build_model(name, **kw)`` (torch seed 0) with 10 % 8-bit
    filters, calibrated on ``batch`` random inputs of ``shape`` and converted
    (:func:`filmqnn_quant.convert.seeded_network`)."""
    from filmqnn_quant.convert import seeded_network

    return seeded_network(name, cfg, shape, model_kw=kw, ratio=0.1, batch=batch, frames=frames)


# ---------------------------------------------------------------------------------------------
# Amaranth simulation: the clocked bench, stream producers and consumers
# ---------------------------------------------------------------------------------------------
def simulate(dut, *benches, background=()) -> None:
    """Simulate ``dut`` on a 100 MHz clock until every testbench of ``benches`` returns; the
    ``background`` ones (e.g. a memory model's ``serve``) are added first and run beside them."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in background:
        sim.add_testbench(bench, background=True)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()


async def produce(ctx, stream, payloads, gap=None) -> None:
    """Offer every payload on ``stream`` in turn until it is taken; before each, stay idle
    (``valid`` low) one cycle at a time while ``gap()`` is true. Leaves ``valid`` low."""
    for payload in payloads:
        while gap is not None and gap():
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.payload, payload)
        ctx.set(stream.valid, 1)
        await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def consume(ctx, stream, count, ready=None, max_cycles=None) -> tuple[list, int]:
    """Take ``count`` payloads from ``stream``, ``ready`` high in the cycles where ``ready()`` is
    true (every cycle without it); return (the payloads, the cycles it took). With
    ``max_cycles`` the stream must deliver in fewer cycles."""
    got = []
    cycles = 0
    while len(got) < count:
        take = 1 if ready is None else ready()
        ctx.set(stream.ready, take)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if valid and take:
            got.append(payload)
        cycles += 1
        assert max_cycles is None or cycles < max_cycles, f"{len(got)}/{count} in {cycles} cycles"
    return got, cycles


def run_pipelined(dut, cycles_of_inputs, collect) -> list:
    """Drive a unit with ``valid_in``/``clear`` and a fixed ``latency``: one (operand name ->
    value dict, clear) per cycle, then ``latency + 1`` idle cycles; return ``collect(ctx)`` of
    every cycle with ``valid_out`` high."""
    out = []

    async def bench(ctx):
        for i in range(len(cycles_of_inputs) + dut.latency + 1):
            if i < len(cycles_of_inputs):
                ops, clear = cycles_of_inputs[i]
                for name, vals in ops.items():
                    ctx.set(getattr(dut, name), vals)
                ctx.set(dut.valid_in, 1)
                ctx.set(dut.clear, clear)
            else:
                ctx.set(dut.valid_in, 0)
            await ctx.tick()
            if ctx.get(dut.valid_out):
                out.append(collect(ctx))

    simulate(dut, bench)
    return out


# ---------------------------------------------------------------------------------------------
# AXI bursts: the reference splitting and the command streams of the burst masters
# ---------------------------------------------------------------------------------------------
AXI_PAGE = 4096

#: name -> [(address, beats)] commands of the burst master tests: length and 4 KiB page edges
BURST_CASES = {
    "len1": [(0x100, 1)],
    "exact256": [(0x0, 256)],
    "len257": [(0x400, 257)],
    "cross4k": [(0x1000 - 8, 6)],
    "cross4k_long": [(0x2000 - 0x40, 300)],
    "back_to_back": [(0x10, 3), (0x800, 1), (0x3000 - 4, 2), (0x20, 17), (0x1FFC, 1)],
}


def expected_bursts(addr: int, beats: int, beat_bytes: int, max_burst: int = 256
                    ) -> list[tuple[int, int]]:
    """(address, beats) of each AXI burst of one command: as long as ``max_burst`` and the
    4 KiB page allow."""
    out = []
    while beats:
        n = min(beats, max_burst, (AXI_PAGE - addr % AXI_PAGE) // beat_bytes)
        out.append((addr, n))
        addr += n * beat_bytes
        beats -= n
    return out


async def send_commands(ctx, cmd, cmds, gap=None) -> None:
    """Offer the (address, beats) commands ``cmds`` on the command stream ``cmd`` (see
    :func:`produce`)."""
    await produce(ctx, cmd, [{"addr": addr, "beats": beats} for addr, beats in cmds], gap)


# ---------------------------------------------------------------------------------------------
# external programs: Verilator lint, C-simulation executables fed on stdin
# ---------------------------------------------------------------------------------------------
def assert_verilator_lints(units: dict) -> None:
    """Every ``name -> component`` of ``units``, as Verilog, passes ``verilator --lint-only``
    (width warnings off)."""
    from filmqnn_hw.flows.synth import to_verilog

    for name, comp in units.items():
        work = Path(tempfile.mkdtemp(prefix=f"{name}_lint_"))
        try:
            (work / f"{name}.v").write_text(to_verilog(comp, name))
            proc = subprocess.run(
                ["verilator", "--lint-only", "-Wno-WIDTH", f"{name}.v", "--top-module", name],
                cwd=work, capture_output=True, text=True,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        assert proc.returncode == 0, proc.stderr


def run_lines(exe: Path, lines: list[str]) -> list[str]:
    """Feed ``lines`` to the program ``exe`` on stdin; return its output, one line per line."""
    proc = subprocess.run(
        [str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert len(out) == len(lines)
    return out


#: A user's own model file, as ``python -m filmqnn_quant export --model FILE.py:make`` takes
#: it: odd channel counts, 5x5 and 7x7 kernels, stride 2 on odd sizes, a residual block with a
#: downsampling shortcut, a depthwise conv, global average pooling and a classifier.
OWN_MODEL_SOURCE = """
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                  nn.BatchNorm2d(cout))
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + self.down(x))


class OwnNet(nn.Module):
    def __init__(self, num_classes=10, width=13):
        super().__init__()
        w2 = 2 * width + 1
        self.stem = nn.Sequential(nn.Conv2d(3, width, 5, 1, 2, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.block = Block(width, w2, 2)
        self.dw = nn.Sequential(nn.Conv2d(w2, w2, 3, 1, 1, groups=w2, bias=False),
                                nn.BatchNorm2d(w2), nn.ReLU())
        self.big = nn.Sequential(nn.Conv2d(w2, 24, 7, 2, 3), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, num_classes)

    def forward(self, x):
        x = self.big(self.dw(self.block(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def make(num_classes=10, width=13):
    return OwnNet(num_classes, width)
"""


def own_model_file(directory: Path) -> Path:
    """Write :data:`OWN_MODEL_SOURCE` as ``directory/ownnet.py``; returns its path."""
    path = Path(directory) / "ownnet.py"
    path.write_text(OWN_MODEL_SOURCE)
    return path


def quantized_graph(model, cfg: AcceleratorConfig, shape: tuple[int, int, int], seed: int = 0
                    ) -> IntGraph:
    """A torch ``model`` QAT-prepared for ``cfg``, its ranges calibrated and 8-bit filters
    selected on two random inputs of ``shape`` (seeded), converted with ``to_integer``."""
    import torch

    from filmqnn_quant.convert import to_integer
    from filmqnn_quant.qat import prepare_qat

    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(seed))
    qm = prepare_qat(model, cfg, example_input=x)
    with torch.no_grad():
        qm(x)
    qm.select_8bit(x)
    qm.eval()
    return to_integer(qm, shape, cfg)
