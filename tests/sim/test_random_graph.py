"""filmqnn_hw.sim.random_graph: seeded random integer networks from a layer list, without torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.sim.random_graph import export_order, random_graph, random_input
from filmqnn_hw.spec.config import ACT_MAX, AcceleratorConfig
from filmqnn_hw.spec.geometry import check_program
from filmqnn_hw.spec.intgraph import AddOp, ConvOp, PoolOp
from filmqnn_hw.spec.networks import NETWORKS, Layer, Network, NetworkError, from_intgraph
from filmqnn_hw.spec.numerics import LOGIT_MAX, LOGIT_MIN, check_requant_range
from filmqnn_hw.spec.weight_image import pack_image

ROOT = Path(__file__).resolve().parents[2]
#: tests/hw/test_evaluate.py's array (one 8-bit lane of 8)
CFG = AcceleratorConfig.small(act_pack=8, axi_data_bits=128).replace(ddr_bytes_per_cycle=8.0)
#: two 8-bit lanes of 32, as the PYNQ-Z2 design
CFG32 = AcceleratorConfig.small(tm=32, tn=16, n8_slots=2, act_pack=4, axi_data_bits=64)


def _tiny_net(size: int = 8) -> Network:
    """Every layer kind and both shortcut styles: a stem, max pooling, a ResNet block (a
    linear 1x1 stride-2 shortcut fused as the residual), a MobileNet-V2 block (expand,
    depthwise, linear projection with a fused residual), a stand-alone add, average pooling,
    global pooling and an FC layer."""
    def o(h: int, k: int, s: int, p: int) -> int:
        return (h + 2 * p - k) // s + 1

    h1 = size
    h2 = o(h1, 3, 2, 1)
    h3 = o(h2, 3, 2, 1)
    h4 = o(h3, 3, 2, 1)
    L = Layer
    layers = [
        L("stem", "conv", 3, 6, h1, h1, h1, h1, 3, 3, 1, 1, "input", "stem.out"),
        L("pool", "maxpool", 6, 6, h1, h1, h2, h2, 3, 3, 2, 1, "stem.out", "pool.out"),
        L("down", "conv", 6, 8, h2, h2, h3, h3, 1, 1, 2, 0, "pool.out", "down.out"),
        L("c1", "conv", 6, 8, h2, h2, h3, h3, 3, 3, 2, 1, "pool.out", "c1.out"),
        L("c2", "conv", 8, 8, h3, h3, h3, h3, 3, 3, 1, 1, "c1.out", "c2.out",
          residual="down.out"),
        L("expand", "conv", 8, 16, h3, h3, h3, h3, 1, 1, 1, 0, "c2.out", "expand.out"),
        L("dw", "dw", 16, 16, h3, h3, h3, h3, 3, 3, 1, 1, "expand.out", "dw.out"),
        L("project", "conv", 16, 8, h3, h3, h3, h3, 1, 1, 1, 0, "dw.out", "project.out",
          residual="c2.out"),
        L("add", "add", 8, 8, h3, h3, h3, h3, 1, 1, 1, 0, "project.out", "add.out",
          input2="c2.out"),
        L("avg", "avgpool", 8, 8, h3, h3, h4, h4, 3, 3, 2, 1, "add.out", "avg.out"),
        L("gap", "gap", 8, 8, h4, h4, 1, 1, h4, h4, 1, 0, "avg.out", "gap.out"),
        L("fc", "conv", 8, 10, 1, 1, 1, 1, 1, 1, 1, 0, "gap.out", "fc.out", fc=True),
    ]
    net = Network("tiny", layers, "input", "fc.out")
    net.validate()
    return net


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("size", [32, 64, 224])
def test_same_layers(name, size):
    """from_intgraph gives back exactly the layers (names, kinds, shapes, kernels, strides,
    padding, tensors, fused residuals, FC) of the network it was built from."""
    net = NETWORKS[name](size, num_classes=100)
    g = random_graph(net, CFG)
    back = from_intgraph(g)
    assert back.layers == net.layers
    assert (back.input, back.output, g.name) == (net.input, net.output, name)


def test_every_kind_and_the_quantizer_rules():
    g = random_graph(_tiny_net(), CFG)
    assert from_intgraph(g).layers == _tiny_net().layers
    kinds = [(type(op).__name__, getattr(op, "kind", getattr(op, "mode", None)))
             for op in g.ops]
    assert kinds == [("ConvOp", "conv"), ("PoolOp", "max"), ("ConvOp", "conv"),
                     ("ConvOp", "conv"), ("ConvOp", "conv"), ("ConvOp", "conv"),
                     ("ConvOp", "depthwise"), ("ConvOp", "conv"), ("AddOp", None),
                     ("PoolOp", "avg"), ("PoolOp", "avg"), ("ConvOp", "linear")]
    ops = {op.name: op for op in g.ops}
    t = g.tensors
    # ReLU layers clamp at zero point 0; the projection after a depthwise layer is linear: a
    # signed tensor with a zero point, which is the padding code of whoever reads it
    assert ops["stem"].lo == t["stem.out"].zero_point == 0
    assert ops["dw"].groups == 16 and ops["dw"].weight.shape == (16, 1, 3, 3)
    assert t["project.out"].zero_point > 0 and ops["project"].lo == 0
    assert ops["project"].residual == "c2.out" and ops["project"].res_mult is not None
    # ResNet's shortcut convolution is linear too; the block's output has a ReLU
    assert t["down.out"].zero_point > 0 and t["c2.out"].zero_point == 0 == ops["c2"].lo
    assert ops["c2"].residual == "down.out" and ops["c2"].res_mult is not None
    assert isinstance(ops["add"], AddOp) and ops["add"].b == "c2.out"
    assert ops["gap"].kernel is None and ops["avg"].kernel == (3, 3)
    assert ops["avg"].pad_code == t["add.out"].zero_point
    # max pooling keeps its input's quantizer; the FC writes signed 16-bit logits
    assert (t["pool.out"].scale, t["pool.out"].zero_point) == (t["stem.out"].scale, 0)
    assert (t["fc.out"].lo, t["fc.out"].hi) == (LOGIT_MIN, LOGIT_MAX)
    assert (ops["fc"].lo, ops["fc"].hi) == (LOGIT_MIN, LOGIT_MAX)


def test_resnet_shortcuts_are_linear():
    g = random_graph(NETWORKS["resnet18"](32), CFG)
    for op in g.conv_ops():
        z = g.tensors[op.output].zero_point
        assert (z > 0) == op.name.endswith("downsample"), op.name
        assert op.pad_code == g.tensors[op.input].zero_point


@pytest.mark.parametrize("cfg", [CFG, CFG32], ids=["tm8", "tm32"])
def test_bits_weights_and_requant_ranges(cfg):
    """8-bit filters fill exactly the 8-bit slots (what prepare_qat with the config selects),
    codes stay within each filter's range, requantization within the numeric contract; the
    weight-image exporter accepts the graph."""
    g = random_graph(NETWORKS["mobilenet_v2"](32), cfg)
    for op in g.conv_ops():
        pos = np.arange(op.out_channels)
        assert np.array_equal(op.bits == 8, pos % cfg.tm < cfg.n8_slots), op.name
        assert op.n_8bit == cfg.n8_capacity(op.out_channels)
        lim = np.where(op.bits == 8, 127, 7).reshape(-1, 1, 1, 1)
        assert np.all(np.abs(op.weight) <= lim)
        assert np.abs(op.weight[op.bits == 8]).max() > 7  # the 8-bit lanes get 8-bit codes
        assert op.permutation is None
        bound = int(np.abs(op.weight).reshape(op.out_channels, -1).sum(axis=1).max()) * max(
            ACT_MAX, op.pad_code)
        check_requant_range(op.name, bound, op.mult, op.offset, op.res_mult)
        assert op.mult.min() >= 1 << 14  # 15 significant bits, as quantize_multiplier gives
    pack_image(g, cfg)


def test_ratio_takes_the_first_slots():
    g = random_graph(NETWORKS["resnet18"](32), CFG32, ratio=0.05)
    for op in g.conv_ops():
        c = op.out_channels
        n8 = min(int(np.floor(0.05 * c + 0.5)), CFG32.n8_capacity(c))
        slots = [p for p in range(c) if CFG32.is_8bit_slot(p)]
        assert np.nonzero(op.bits == 8)[0].tolist() == slots[:n8], op.name
    assert all(op.n_8bit == 0 for op in random_graph(_tiny_net(), CFG, ratio=0.0).conv_ops())
    with pytest.raises(ValueError, match="ratio"):
        random_graph(_tiny_net(), CFG, ratio=1.5)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_codes_spread_over_the_range(name):
    """Run the golden model: every 5-bit tensor uses most codes with a few clamped at either
    end, the logits spread over thousands of codes without saturating."""
    g = random_graph(NETWORKS[name](32), CFG)
    env = g.run(random_input(g), keep=True)
    for op in g.ops:
        y, spec = env[op.output], g.tensors[op.output]
        if spec.hi > ACT_MAX:
            assert 300 < y.std() < 4000 and np.abs(y).max() < LOGIT_MAX, op.name
            continue
        clamped = np.mean(y == spec.lo) + np.mean(y == spec.hi)
        assert clamped < 0.25, (op.name, clamped)
        assert len(np.unique(y)) >= 20 and y.std() > 4, op.name


def test_program_accepts_the_graphs():
    for name in NETWORKS:
        g = random_graph(NETWORKS[name](32), CFG)
        check_program(build_program(g, CFG), CFG)


def test_seeded():
    net = NETWORKS["mobilenet_v2"](32)
    a, b, c = random_graph(net, CFG), random_graph(net, CFG), random_graph(net, CFG, seed=1)
    for x, y, z in zip(a.conv_ops(), b.conv_ops(), c.conv_ops(), strict=True):
        assert np.array_equal(x.weight, y.weight) and np.array_equal(x.offset, y.offset)
        assert not np.array_equal(x.weight, z.weight)
    # layer i draws from [seed, i]: the same weights at another input size
    big = random_graph(NETWORKS["mobilenet_v2"](64), CFG)
    assert all(np.array_equal(x.weight, y.weight)
               for x, y in zip(a.conv_ops(), big.conv_ops(), strict=True))


def test_export_order():
    """ResNet's downsample moves to right before the convolution that adds it (where the
    export emits it); MobileNet-V2 (residuals that are also read as inputs) keeps its order."""
    for name, fused in (("resnet18", "conv2"), ("resnet50", "conv3")):
        net = NETWORKS[name](64)
        order = [ly.name for ly in export_order(net).layers]
        assert sorted(order) == sorted(ly.name for ly in net.layers)
        downs = [i for i, n in enumerate(order) if n.endswith("downsample")]
        assert len(downs) == (3 if name == "resnet18" else 4)
        for i in downs:
            assert order[i + 1] == order[i].replace("downsample", fused)
        g = random_graph(export_order(net), CFG)
        assert [op.name for op in g.ops] == order
    mb = NETWORKS["mobilenet_v2"](64)
    assert export_order(mb).layers == mb.layers


def test_random_input():
    g = random_graph(_tiny_net(), CFG)
    x = random_input(g, seed=3)
    assert x.shape == (1, 3, 8, 8) and x.dtype == np.int64
    assert x.min() >= g.input.lo and x.max() <= g.input.hi and len(np.unique(x)) > 20
    assert np.array_equal(x, random_input(g, seed=3))
    assert not np.array_equal(x, random_input(g, seed=4))


def test_refuses_what_no_export_produces():
    wide = Network("wide", [Layer("c", "conv", 1024, 8, 4, 4, 4, 4, 3, 3, 1, 1, "input", "o")],
                   "input", "o")
    with pytest.raises(NetworkError, match="max_fan_in"):
        random_graph(wide, CFG)
    fc = Network("fc", [Layer("fc", "conv", 8, 4, 2, 2, 2, 2, 1, 1, 1, 0, "input", "o",
                              fc=True)], "input", "o")
    with pytest.raises(NetworkError, match="FC"):
        random_graph(fc, CFG)


def test_random_network_is_random_graph():
    from filmqnn_hw.evaluate import random_network

    g, x = random_network("MobileNet-V2", CFG, 32, seed=2, num_classes=10)
    ref = random_graph(export_order(NETWORKS["mobilenet_v2"](32, num_classes=10)), CFG, seed=2)
    assert g.tensors[g.output].channels == 10 and x.shape == (1, 3, 32, 32)
    assert all(np.array_equal(a.weight, b.weight)
               for a, b in zip(g.conv_ops(), ref.conv_ops(), strict=True))
    assert np.array_equal(x, random_input(ref, seed=2))
    with pytest.raises(NetworkError, match="unknown network"):
        random_network("vgg16", CFG, 32)


def test_imports_without_torch():
    """The module and random_network work with torch unimportable."""
    code = textwrap.dedent("""
        import sys

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked")
                return None

        sys.meta_path.insert(0, NoTorch())
        try:
            import torch  # noqa: F401
            raise SystemExit("torch was not blocked")
        except ImportError:
            pass
        from filmqnn_hw.spec.config import AcceleratorConfig
        from filmqnn_hw.evaluate import random_network
        import filmqnn_hw.sim.random_graph

        g, x = random_network("resnet18", AcceleratorConfig.small(), 16)
        assert g.run(x).shape == (1, 1000, 1, 1)
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_ops_are_the_golden_model_types():
    g = random_graph(_tiny_net(), CFG)
    assert all(isinstance(op, (ConvOp, PoolOp, AddOp)) for op in g.ops)
    g.validate()


def test_runs_bit_exact_on_the_accelerator():
    """Amaranth simulation of the whole top on a small array: every tensor of a random graph
    with every layer kind equals the golden model's."""
    from filmqnn_hw.sim.pysim import run_pysim

    g = random_graph(_tiny_net(12), CFG, seed=1)
    x = random_input(g, seed=1)
    prog = build_program(g, CFG, reuse=False)
    check_program(prog, CFG)
    run = run_pysim(CFG, prog.memory_image(x), prog.base)
    ref = g.run(x, keep=True)
    assert run.counters["status"] == 0
    assert np.array_equal(prog.read_output(run.memory), ref[g.output])
    for name in ref:
        if name in prog.tensors and name != g.output:
            assert np.array_equal(prog.read_tensor(run.memory, name), ref[name][0]), name
