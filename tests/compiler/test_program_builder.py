"""Layer program: activation layout, descriptor bytes, memory map, rejections."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from helpers import conv_graph, graph_of, mixed_network, rand_conv, rand_input

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.geometry import words_per_beat
from filmqnn_hw.spec.intgraph import AddOp
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
def test_program_bytes_roundtrip_and_fields():
    cfg = CFGS[1]
    rng = np.random.default_rng(2)
    g = mixed_network(rng, cfg)
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
    g = mixed_network(np.random.default_rng(3), cfg)
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
    g = mixed_network(np.random.default_rng(8), cfg)
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
