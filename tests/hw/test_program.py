"""Layer program: activation layout, descriptor bytes, memory map, rejections.

The graph builders here (``conv_graph`` and friends) are reused by ``test_hls.py``.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import zlib

import numpy as np
import pytest

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.geometry import words_per_beat
from filmqnn_hw.spec.intgraph import AddOp, ConvOp, IntGraph, PoolOp, TensorSpec
from filmqnn_hw.spec.numerics import quantize_multiplier
from filmqnn_hw.spec.program import (
    DESC_SIZE,
    FIELDS,
    FLAG_LAST,
    FLAG_LOGITS,
    FLAG_RESIDUAL,
    HEADER_SIZE,
    PARAM_DTYPE,
    LayerProgram,
    ProgramError,
    act_layout,
    pack_activations,
    unpack_activations,
)
from filmqnn_hw.spec.weight_image import pack_conv_weights


# ---------------------------------------------------------------------------------------------
# random single-layer / small graphs (integer parameters chosen so outputs are not all clipped)
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
CFGS = [
    AcceleratorConfig.small(),  # G=4 (20-bit words), 64-bit beats: 3 words/beat
    AcceleratorConfig.small(tm=6, tn=4, n8_slots=2, act_pack=8, axi_data_bits=64),  # 1 word/beat
    AcceleratorConfig.small(act_pack=3, axi_data_bits=32),  # 15-bit words, 2 per beat
    AcceleratorConfig.small(act_pack=16, axi_data_bits=128),  # 80-bit words, 1 per beat
]


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: f"G{c.act_pack}_axi{c.axi_data_bits}")
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 3, 7), (9, 4, 1), (16, 2, 13)])
def test_activation_roundtrip(cfg, shape):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 32, shape)
    b = pack_activations(a, cfg)
    assert len(b) == act_layout(cfg, *shape)[2]
    np.testing.assert_array_equal(unpack_activations(b, shape, cfg), a)


def test_activation_known_bits():
    """Every code at the bit position docs/layer-program.md gives, computed independently."""
    cfg = AcceleratorConfig.small(act_pack=3, axi_data_bits=32)  # 15-bit words, 2 per beat
    rng = np.random.default_rng(1)
    a = rng.integers(0, 32, (5, 2, 3))
    data = pack_activations(a, cfg)
    row, plane, total = act_layout(cfg, 5, 2, 3)
    assert (row, plane, total) == (8, 16, 32)
    beats = int.from_bytes(data, "little")
    for c in range(5):
        for y in range(2):
            for x in range(3):
                bit = 8 * (c // 3 * plane + y * row + x // 2 * 4) + (x % 2) * 15 + (c % 3) * 5
                assert (beats >> bit) & 31 == a[c, y, x]
    # everything else (spare channel, spare word, top bits of the beat) is zero
    mask = 0
    for c in range(5):
        for y in range(2):
            for x in range(3):
                bit = 8 * (c // 3 * plane + y * row + x // 2 * 4) + (x % 2) * 15 + (c % 3) * 5
                mask |= 31 << bit
    assert beats & ~mask == 0


def test_activation_rejects_bad_codes():
    with pytest.raises(ProgramError, match=r"\[0, 31\]"):
        pack_activations(np.full((1, 1, 1), 32), CFGS[0])
    with pytest.raises(ProgramError, match="one frame"):
        pack_activations(np.zeros((2, 1, 1, 1)), CFGS[0])


def test_words_per_beat():
    assert [words_per_beat(c) for c in CFGS] == [3, 1, 2, 1]


# ---------------------------------------------------------------------------------------------
def _net(rng, cfg):
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


def test_program_bytes_roundtrip_and_fields():
    cfg = CFGS[1]
    rng = np.random.default_rng(2)
    g = _net(rng, cfg)
    prog = build_program(g, cfg)
    data = prog.to_bytes()
    assert len(data) == HEADER_SIZE + len(g.ops) * DESC_SIZE + 4
    head, descs = LayerProgram.from_bytes(data, cfg)
    assert head["n_layers"] == len(g.ops) and head["input_addr"] == prog.input_addr
    assert [d.op for d in descs] == ["conv", "maxpool", "conv", "conv", "depthwise", "add", "gap",
                                     "linear"]
    assert descs[0].mode == "stem" and descs[4].mode == "dw" and descs[6].mode == "gap"
    assert descs[2].mode == "kernel"  # 3x3 stride 1, kernel packing on, tn >= 4
    for d, ref in zip(descs, prog.descriptors, strict=True):
        assert all(d[f] == ref[f] for f in FIELDS)
    assert descs[-1]["flags"] & FLAG_LAST and descs[-1]["flags"] & FLAG_LOGITS
    assert descs[3]["flags"] & FLAG_RESIDUAL
    assert descs[3]["res_addr"] == prog.tensors["m"].addr
    # weights are exactly the weight image's bytes for each conv
    mem = prog.memory_image()
    for op in g.conv_ops():
        d = next(x for x in descs if x.name == "" and x["index"] == g.ops.index(op))
        lanes = 1 if op.groups > 1 else cfg.tn
        wb = pack_conv_weights(op.weight, cfg.tm, cfg.n8_slots, lanes)
        assert d["w_lanes"] == lanes and d["w_bytes"] == len(wb)
        assert bytes(mem[d["w_addr"] : d["w_addr"] + len(wb)]) == wb
        pr = np.frombuffer(bytes(mem[d["p_addr"] : d["p_addr"] + d["p_bytes"]]),
                           dtype=PARAM_DTYPE)
        if op.res_mult is not None:
            assert pr["res_mult"].tolist() == op.res_mult.tolist()
        assert pr["offset"].tolist() == op.offset.tolist()
        assert pr["mult"].tolist() == op.mult.tolist()
        assert pr["shift"].tolist() == op.shift.tolist()
        assert pr["bits"].tolist() == op.bits.tolist()
    # descriptors are beat aligned and inside the map
    assert all(r.addr % 64 == 0 and r.addr + r.size <= prog.mem_bytes for r in prog.regions)


def test_buffers_do_not_clobber_live_tensors():
    """With reuse, no op writes over a tensor some later op still reads."""
    cfg = CFGS[0]
    g = _net(np.random.default_rng(3), cfg)
    prog = build_program(g, cfg)
    reuse = build_program(g, cfg, reuse=False)
    assert prog.mem_bytes < reuse.mem_bytes  # buffers are recycled
    readers: dict[str, int] = {}
    for i, op in enumerate(g.ops):
        for t in ([op.a, op.b] if isinstance(op, AddOp) else
                  [op.input] + ([op.residual] if getattr(op, "residual", None) else [])):
            readers[t] = i
    produced = {g.input.name: -1} | {op.output: i for i, op in enumerate(g.ops)}
    for i, op in enumerate(g.ops):
        o = prog.tensors[op.output]
        for t, last in readers.items():
            if t != op.output and produced[t] < i <= last:
                r = prog.tensors[t]
                assert o.addr + o.size <= r.addr or r.addr + r.size <= o.addr, (op.name, t)


def test_corrupt_programs_are_refused():
    cfg = CFGS[0]
    g = conv_graph(np.random.default_rng(4), cfg, 3, 4, 5, 5, 3, 1, 1)
    data = bytearray(build_program(g, cfg).to_bytes())
    with pytest.raises(ProgramError, match="bad magic"):
        LayerProgram.from_bytes(b"XXXXXXXX" + bytes(data[8:]), cfg)
    bad = bytearray(data)
    bad[8] = 9
    with pytest.raises(ProgramError, match="version 9"):
        LayerProgram.from_bytes(bytes(bad), cfg)
    bad = bytearray(data)
    bad[HEADER_SIZE + 5] ^= 1
    with pytest.raises(ProgramError, match="CRC-32 mismatch"):
        LayerProgram.from_bytes(bytes(bad), cfg)
    with pytest.raises(ProgramError, match="truncated"):
        LayerProgram.from_bytes(bytes(data[:-1]), cfg)
    with pytest.raises(ProgramError, match="truncated"):
        LayerProgram.from_bytes(bytes(data[:20]), cfg)
    with pytest.raises(ProgramError, match="trailing"):
        LayerProgram.from_bytes(bytes(data) + b"\0", cfg)
    bad = bytearray(data)
    struct.pack_into("<H", bad, 14, 2)  # n_layers
    with pytest.raises(ProgramError, match="inconsistent"):
        LayerProgram.from_bytes(bytes(bad), cfg)
    with pytest.raises(ProgramError, match="built for config"):
        LayerProgram.from_bytes(bytes(data), CFGS[1])
    # a valid CRC over a re-stamped header is still a different config
    bad = bytearray(data)
    bad[24] ^= 0xFF
    struct.pack_into("<I", bad, len(bad) - 4, zlib.crc32(bytes(bad[:-4])))
    with pytest.raises(ProgramError, match="built for config"):
        LayerProgram.from_bytes(bytes(bad), cfg)


def test_unsupported_ops_are_refused_by_name():
    cfg = CFGS[0]
    rng = np.random.default_rng(5)
    g = conv_graph(rng, cfg, 4, 4, 4, 4, 3, 1, 1)
    g.ops[0].weight = g.ops[0].weight[:, :2]
    g.ops[0].groups = 2
    with pytest.raises(ProgramError, match="'c0'.*groups=2"):
        build_program(g, cfg)

    class Weird:
        name, input, output = "softmax9", "x", "y"

    g = conv_graph(rng, cfg, 4, 4, 4, 4, 3, 1, 1)
    g.validate = lambda: None  # the golden model would refuse it as well; test ours
    g.ops = [Weird()]
    with pytest.raises(ProgramError, match="softmax9"):
        build_program(g, cfg)


def test_logits_must_be_last():
    cfg = CFGS[0]
    rng = np.random.default_rng(6)
    a = rand_conv(rng, cfg, "fc1", "x", "t", 4, 4, 1, logits=True)
    b = rand_conv(rng, cfg, "fc2", "t", "y", 4, 4, 1)
    g = graph_of([a, b], {"x": (4, 1, 1), "t": (4, 1, 1), "y": (4, 1, 1)}, "x", "y")
    with pytest.raises(ProgramError, match="'fc1'.*only the last layer"):
        build_program(g, cfg)


def test_input_shape_checked():
    cfg = CFGS[0]
    g = conv_graph(np.random.default_rng(7), cfg, 3, 4, 5, 5, 3, 1, 1)
    prog = build_program(g, cfg)
    with pytest.raises(ProgramError, match=r"shape \(3, 5, 5\)"):
        prog.memory_image(np.zeros((1, 3, 5, 4), np.int64))


def test_modes_from_cycle_model_when_bandwidth_known():
    cfg = CFGS[1].replace(ddr_bytes_per_cycle=8.0)
    g = _net(np.random.default_rng(8), cfg)
    prog = build_program(g, cfg)
    assert prog.from_cycle_model
    head, descs = LayerProgram.parse(prog.to_bytes())
    assert head["flags"] & 1
    # the descriptors take the cycle model's modes; layer 0 runs in stem mode exactly when
    # the model finds that faster than the plain conv
    from filmqnn_hw.models.cycles import layer_cycles, network_cycles
    from filmqnn_hw.spec.networks import from_intgraph

    net = from_intgraph(g)
    nc = network_cycles(cfg, net)
    assert [d.mode for d in descs] == [lc.mode for lc in nc.layers]
    assert descs[1].mode == "pool"
    stem, plain = (layer_cycles(cfg, net.layers[0], stem=s) for s in (True, False))
    assert descs[0].mode == ("stem" if stem.cycles < plain.cycles else plain.mode)
    assert nc.layers[0].cycles == min(stem.cycles, plain.cycles)
    assert all(d["px"] >= 1 and d.order in ("ws", "is") for d in descs)
    assert not build_program(g, CFGS[1]).from_cycle_model
    # on this 4x4-tile test array the stem's im2col loads cost more than its taps save (plain
    # conv); on the PYNQ-Z2 array ResNet-18's 3-channel 7x7 stem runs in stem mode
    assert descs[0].mode != "stem"
    from filmqnn_hw.search.dse import design

    assert network_cycles(design("pynq_z2"), "resnet18").layers[0].mode == "stem"


def test_stem_im2col_is_the_same_convolution():
    """The stem-mode input (im2col) with (ky, kx, c)-ordered 1x1 weights gives the conv's acc."""
    from filmqnn_hw.spec.intgraph import conv_accumulate
    from filmqnn_hw.spec.program import im2col

    cfg = CFGS[0]
    rng = np.random.default_rng(9)
    g = conv_graph(rng, cfg, 3, 6, 9, 8, 7, 2, 3, pad_code=4)
    op = g.ops[0]
    x = rand_input(rng, g)
    cols = im2col(x, op)
    w1 = op.weight.transpose(0, 2, 3, 1).reshape(op.out_channels, -1, 1, 1)
    ref = conv_accumulate(x, op.weight, op.stride, op.padding, 1, op.pad_code)
    got = conv_accumulate(cols[None], w1, (1, 1), (0, 0), 1, 0)
    assert np.array_equal(got, ref)
    prog = build_program(g, cfg)
    d = prog.descriptors[0]
    assert d.mode == "stem" and d["stem_c"] == 3 * 49
    mem = prog.memory_image(x)
    n = act_layout(cfg, *cols.shape)[2]
    got_cols = unpack_activations(mem[d["stem_addr"] : d["stem_addr"] + n], cols.shape, cfg)
    assert np.array_equal(got_cols, cols)
