"""The golden integer model's executor, checked against torch's float64 ops as an oracle.

torch is only the *test's* reference here: products and sums of small integers are exact in
float64, so torch.nn.functional gives the exact integer result to compare with ``==``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from filmqnn_hw.spec.intgraph import (
    AddOp,
    ConvOp,
    IntGraph,
    PoolOp,
    TensorSpec,
    conv_accumulate,
)
from filmqnn_hw.spec.numerics import NumericsError, requantize

RNG = np.random.default_rng(7)


def _codes(*shape):
    return RNG.integers(0, 32, size=shape, dtype=np.int64)


def _weights(cout, cpg, k, bits):
    w = RNG.integers(-127, 128, size=(cout, cpg, k, k))
    w4 = RNG.integers(-7, 8, size=(cout, cpg, k, k))
    return np.where(np.asarray(bits).reshape(-1, 1, 1, 1) == 8, w, w4).astype(np.int64)


def _torch_conv(x, w, stride, pad, groups, pad_code):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=pad_code)
    out = F.conv2d(
        torch.tensor(xp, dtype=torch.float64),
        torch.tensor(w, dtype=torch.float64),
        stride=stride,
        groups=groups,
    )
    return out.numpy().astype(np.int64)


@pytest.mark.parametrize(
    "cin, cout, k, stride, pad, groups, pad_code, hw",
    [
        (3, 8, 3, 1, 1, 1, 0, 7),
        (5, 7, 3, 2, 1, 1, 0, 9),  # stride 2, odd size
        (4, 4, 3, 1, 1, 4, 3, 6),  # depthwise, non-zero pad code
        (6, 6, 3, 2, 1, 6, 0, 5),  # depthwise stride 2
        (8, 4, 1, 1, 0, 2, 0, 4),  # grouped
        (3, 6, 7, 2, 3, 1, 0, 11),  # 7x7 stem
        (16, 10, 1, 1, 0, 1, 0, 1),  # 1x1 spatial
    ],
)
def test_conv_accumulate_is_exact(cin, cout, k, stride, pad, groups, pad_code, hw):
    x = _codes(2, cin, hw, hw)
    bits = RNG.choice([4, 8], size=cout)
    w = _weights(cout, cin // groups, k, bits)
    acc = conv_accumulate(x, w, (stride, stride), (pad, pad), groups, pad_code)
    assert np.array_equal(acc, _torch_conv(x, w, stride, pad, groups, pad_code))


def test_conv_accumulate_at_the_longest_fan_in_extremes():
    # 3x3x512 = 4608 products of -127 * 31: the most negative accumulator the array sees.
    x = np.full((1, 512, 3, 3), 31, dtype=np.int64)
    w = np.full((2, 512, 3, 3), -127, dtype=np.int64)
    w[1] = 127
    acc = conv_accumulate(x, w, (1, 1), (0, 0), 1, 0)
    assert acc[0, 0, 0, 0] == -4608 * 127 * 31 and acc[0, 1, 0, 0] == 4608 * 127 * 31


def _conv_op(name, inp, out, cin, cout, k=3, pad=1, stride=1, residual=None, **kw):
    bits = np.array([8] + [4] * (cout - 1))
    mult = RNG.integers(1 << 14, 1 << 15, size=cout)
    shift = np.full(cout, 20)
    offset = RNG.integers(-(1 << 22), 1 << 22, size=cout) + (1 << 19)
    return ConvOp(
        name=name,
        input=inp,
        output=out,
        weight=_weights(cout, cin, k, bits),
        bits=bits,
        mult=mult,
        offset=offset,
        shift=shift,
        stride=(stride, stride),
        padding=(pad, pad),
        residual=residual,
        res_mult=None if residual is None else RNG.integers(1, 1 << 15, cout),
        **kw,
    )


def _small_graph():
    t = {
        "x": TensorSpec("x", 3, 8, 8, 1 / 31),
        "a": TensorSpec("a", 4, 8, 8, 0.1),
        "b": TensorSpec("b", 4, 8, 8, 0.1),
        "p": TensorSpec("p", 4, 4, 4, 0.1),
        "g": TensorSpec("g", 4, 1, 1, 0.1),
        "y": TensorSpec("y", 5, 1, 1, 0.01, lo=-32768, hi=32767),
    }
    ops = [
        _conv_op("conv1", "x", "a", 3, 4),
        _conv_op("conv2", "a", "b", 4, 4, residual="a"),
        PoolOp("pool", "b", "p", "max", (3, 3), (2, 2), (1, 1)),
        PoolOp("gap", "p", "g", "avg", None, mult=1 << 11, offset=1 << 14, shift=15),
        _conv_op("fc", "g", "y", 4, 5, k=1, pad=0, lo=-32768, hi=32767, kind="linear"),
    ]
    return IntGraph(input=t["x"], ops=ops, output="y", tensors=t)


def test_graph_runs_and_matches_a_step_by_step_reference():
    g = _small_graph()
    g.validate()
    x = _codes(3, 3, 8, 8)
    env = g.run(x, keep=True)
    c1, c2, _, _, fc = g.ops

    def rq(acc, op, res=None):
        ch = lambda v: np.asarray(v).reshape(1, -1, 1, 1)  # noqa: E731
        return requantize(
            acc,
            ch(op.mult),
            ch(op.offset),
            ch(op.shift),
            op.lo,
            op.hi,
            res,
            None if op.res_mult is None else ch(op.res_mult),
        )

    a = rq(_torch_conv(x, c1.weight, 1, 1, 1, 0), c1)
    b = rq(_torch_conv(a, c2.weight, 1, 1, 1, 0), c2, a)
    p = F.max_pool2d(torch.tensor(b, dtype=torch.float64), 3, 2, 1).numpy().astype(np.int64)
    gsum = p.sum(axis=(2, 3), keepdims=True)
    gg = requantize(gsum, 1 << 11, 1 << 14, 15, 0, 31)
    y = rq(_torch_conv(gg, fc.weight, 1, 0, 1, 0), fc)
    for name, ref in (("a", a), ("b", b), ("p", p), ("g", gg), ("y", y)):
        assert np.array_equal(env[name], ref), name
    assert env["a"].max() <= 31 and env["a"].min() >= 0
    # global average of 16 values with mult 2**11 / 2**15 = 1/16: exact round-half-up mean
    assert np.array_equal(gg, np.floor(gsum / 16 + 0.5).astype(np.int64))


def test_avg_pool_and_add():
    t = {"x": TensorSpec("x", 2, 4, 4, 1 / 31)}
    x = _codes(1, 2, 4, 4)
    ops = [
        PoolOp("avg", "x", "a", "avg", (2, 2), (2, 2), mult=1 << 13, offset=1 << 14, shift=15),
        AddOp("add", "x", "x", "s", mult_a=3, mult_b=5, offset=4, shift=3),
    ]
    env = IntGraph(t["x"], ops, "s", t).run(x, keep=True)
    win = x.reshape(1, 2, 2, 2, 2, 2).sum(axis=(3, 5))
    assert np.array_equal(env["a"], np.floor(win / 4 + 0.5).astype(np.int64))
    assert np.array_equal(env["s"], np.clip((8 * x + 4) >> 3, 0, 31))


def test_validation_errors_name_the_layer():
    g = _small_graph()
    g.ops[1].weight[1, 0, 0, 0] = 8  # filter 1 is 4-bit
    with pytest.raises(NumericsError, match="'conv2'.*filters \\[1\\]"):
        g.validate()
    g = _small_graph()
    g.ops[0], g.ops[1] = g.ops[1], g.ops[0]
    with pytest.raises(NumericsError, match="reads tensor 'a' before"):
        g.validate()
    g = _small_graph()
    g.ops[0].mult = g.ops[0].mult[:2]
    with pytest.raises(NumericsError, match="mult must have 4 entries"):
        g.validate()
    with pytest.raises(NumericsError, match="declared range"):
        _small_graph().run(np.full((1, 3, 8, 8), 32))
