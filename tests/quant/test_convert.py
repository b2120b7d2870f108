"""to_integer: the golden integer graph equals the QuantModel's eval forward bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.numerics import LOGIT_MAX, LOGIT_MIN, quantize_input
from filmqnn_quant.convert import ConversionError, to_integer
from filmqnn_quant.graph import GraphError
from filmqnn_quant.models import build_model
from filmqnn_quant.qat import prepare_qat

pytestmark = pytest.mark.usefixtures("one_torch_thread")


CASES = {
    "resnet18": (dict(width_mult=0.125, small_input=True, num_classes=10), (3, 16, 16)),
    "resnet50": (dict(width_mult=0.125, small_input=True, num_classes=10), (3, 8, 8)),
    "mobilenet_v2": (dict(width_mult=0.25, num_classes=10, last_channel=32), (3, 32, 32)),
    "small_cnn": (dict(width_mult=0.375, num_classes=10, input_size=16), (1, 16, 16)),
}


def _trained(name: str, config: AcceleratorConfig | None, seed: int = 0, steps: int = 2):
    """A QuantModel after a couple of QAT steps (so BN statistics and ranges are non-trivial)."""
    torch.manual_seed(seed)
    kw, shape = CASES[name]
    model = build_model(name, **kw)
    x = torch.rand(16, *shape)
    y = torch.randint(0, 10, (16,))
    qm = prepare_qat(model, config, ratio=0.1, example_input=x)
    qm.train()
    opt = torch.optim.SGD(qm.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(qm(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    qm.select_8bit(x)
    qm.eval()
    return qm, shape


def _perm(graph, tensor: str) -> np.ndarray | None:
    for op in graph.conv_ops():
        if op.output == tensor:
            return op.permutation
    return None


def _group_perms(graph) -> dict[str, np.ndarray]:
    """Permutation of every stored tensor (pool outputs inherit their input's)."""
    perms: dict[str, np.ndarray] = {}
    for op in graph.ops:
        p = getattr(op, "permutation", None)
        if hasattr(op, "weight"):
            if p is not None:
                perms[op.output] = p
        elif op.input in perms:
            perms[op.output] = perms[op.input]
    return perms


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("reorder", [False, True])
def test_integer_graph_equals_eval_forward(name, reorder):
    cfg = AcceleratorConfig.small(tm=8, n8_slots=1)
    qm, shape = _trained(name, cfg)
    torch.manual_seed(1)
    x = torch.rand(12, *shape)
    codes = quantize_input(x.numpy(), 1 / 31)
    graph = to_integer(qm, shape, cfg if reorder else None)
    env = graph.run(codes, keep=True)
    with torch.no_grad():
        mirror = qm.forward_codes(torch.from_numpy(codes), keep=True)
        logits = qm(x)
    perms = _group_perms(graph)
    assert set(env) == set(mirror)
    for tname, t in env.items():
        m = mirror[tname].numpy()
        if tname in perms:
            assert reorder
            m = m[:, perms[tname]]
        assert np.array_equal(t, m), f"{name}: tensor {tname} differs"
    out = env[graph.output].reshape(len(x), -1)
    assert out.min() >= LOGIT_MIN and out.max() <= LOGIT_MAX
    # argmax of the fake-quant eval forward == argmax of the integer model, image by image
    assert np.array_equal(out.argmax(1), logits.argmax(1).numpy())
    s = graph.tensors[graph.output].scale
    assert np.array_equal((out * s).astype(np.float32), logits.numpy())


def test_reorder_keeps_logits_and_permutes_codes():
    cfg = AcceleratorConfig.small(tm=16, n8_slots=2)
    qm, shape = _trained("mobilenet_v2", cfg, seed=3)
    x = torch.rand(8, *shape)
    codes = quantize_input(x.numpy(), 1 / 31)
    plain = to_integer(qm, shape)
    reord = to_integer(qm, shape, cfg)
    a, b = plain.run(codes, keep=True), reord.run(codes, keep=True)
    assert np.array_equal(a[plain.output], b[reord.output])
    n_perm = 0
    for op in reord.conv_ops():
        if op.permutation is not None:
            n_perm += 1
            assert sorted(op.permutation.tolist()) == list(range(op.out_channels))
            assert np.array_equal(b[op.output], a[op.output][:, op.permutation])
    assert n_perm > 10


@pytest.mark.parametrize("tm,n8", [(8, 1), (16, 2)])
def test_per_tile_slots_honoured(tm, n8):
    cfg = AcceleratorConfig.small(tm=tm, n8_slots=n8)
    for name in ("mobilenet_v2", "small_cnn"):
        qm, shape = _trained(name, cfg, steps=1)
        graph = to_integer(qm, shape, cfg)
        widths = set()
        for op in graph.conv_ops():
            c = op.out_channels
            widths.add(c)
            slot = np.array([cfg.is_8bit_slot(p) for p in range(c)])
            # exactly n8_capacity 8-bit filters, all of them in 8-bit slots, every slot used
            assert op.n_8bit == cfg.n8_capacity(c), op.name
            assert np.array_equal(op.bits == 8, slot), op.name
            for t0 in range(0, c, tm):
                assert int(np.sum(op.bits[t0 : t0 + tm] == 8)) == min(n8, c - t0)
        assert any(c % tm for c in widths), "test needs channel counts that are not multiples"


def test_without_config_capacity_mismatch_is_refused():
    qm, shape = _trained("small_cnn", None)  # ratio 0.1, no config
    with torch.no_grad():
        for lq in qm.layer_quant.values():
            lq.bits.fill_(8)
    qm.eval()
    with pytest.raises(ConversionError, match="8-bit slots"):
        to_integer(qm, shape, AcceleratorConfig.small(tm=8, n8_slots=1))


def test_negative_bn_gamma_and_bias():
    torch.manual_seed(0)
    model = build_model("small_cnn", width_mult=0.25, input_size=8)
    with torch.no_grad():
        model.bn2.weight[::2] *= -1.0
        model.bn3.bias.fill_(0.3)
    x = torch.rand(8, 1, 8, 8)
    qm = prepare_qat(model, None, example_input=x).eval()
    graph = to_integer(qm, (1, 8, 8))
    codes = quantize_input(x.numpy(), 1 / 31)
    with torch.no_grad():
        mirror = qm.forward_codes(torch.from_numpy(codes), keep=True)
    env = graph.run(codes, keep=True)
    for k in env:
        assert np.array_equal(env[k], mirror[k].numpy())
    conv2 = next(op for op in graph.conv_ops() if op.name == "conv2")
    assert np.all(conv2.mult >= 0)
    w = qm.model.conv2.weight.detach().numpy()
    # filters with negative gamma are stored negated
    assert np.all(np.sign(conv2.weight[0]) == -np.sign(np.round(w[0] / np.abs(w).max() * 7)))


class _Sig(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(torch.sigmoid(self.conv(x)), 1))


class _Dil(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.body = nn.Conv2d(4, 4, 3, padding=2, **kw)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.body(x)), 1))


class _Pool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


@pytest.mark.parametrize(
    "model,inp,match",
    [
        (_Sig(), torch.rand(2, 1, 4, 4), "sigmoid"),
        (_Dil(dilation=2), torch.rand(2, 4, 4, 4), "body.*dilation"),
        (_Dil(groups=2), torch.rand(2, 4, 4, 4), "body.*groups=2"),
        (_Pool(), torch.rand(2, 1, 4, 4), "pool.*AdaptiveMaxPool2d"),
    ],
)
def test_unsupported_layers_are_named(model, inp, match):
    with pytest.raises(GraphError, match=match):
        prepare_qat(model, example_input=inp)


def test_avgpool_and_mlp_head():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 6, 3, padding=1)
            self.pool = nn.AvgPool2d(2)
            self.fc1 = nn.Linear(6 * 4 * 4, 12)
            self.fc2 = nn.Linear(12, 3)

        def forward(self, x):
            x = self.pool(torch.relu(self.conv(x)))
            return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))

    torch.manual_seed(0)
    x = torch.rand(8, 1, 8, 8)
    qm = prepare_qat(Net(), None, ratio=0.5, example_input=x).eval()
    graph = to_integer(qm, (1, 8, 8))
    codes = quantize_input(x.numpy(), 1 / 31)
    with torch.no_grad():
        mirror = qm.forward_codes(torch.from_numpy(codes), keep=True)
    env = graph.run(codes, keep=True)
    assert [type(op).__name__ for op in graph.ops] == ["ConvOp", "PoolOp", "ConvOp", "ConvOp"]
    assert graph.ops[2].kind == "linear" and graph.ops[2].kernel == (4, 4)
    for k in env:
        assert np.array_equal(env[k], mirror[k].numpy()), k


def test_fan_in_beyond_accelerator_is_refused():
    torch.manual_seed(0)
    qm, shape = _trained("small_cnn", None, steps=0)
    cfg = AcceleratorConfig.small(tm=8, n8_slots=1, max_fan_in=64)  # conv2 has 12*9 = 108
    with torch.no_grad():
        for lq in qm.layer_quant.values():
            lq.bits.fill_(4)
    with pytest.raises(ConversionError, match="conv2.*fan-in 108"):
        to_integer(qm, shape, cfg)


class _ViewNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(64, 2)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return self.fc(y.view(y.size(0), -1))


class _LoneRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.act(self.pool(x)), 1))


def test_more_unsupported_patterns():
    with pytest.raises(GraphError, match="size"):
        prepare_qat(_ViewNet(), example_input=torch.rand(2, 1, 4, 4))
    with pytest.raises(GraphError, match="act.*stand-alone"):
        prepare_qat(_LoneRelu(), example_input=torch.rand(2, 1, 4, 4))


@pytest.mark.parametrize("keepdim", [False, True])
def test_spatial_mean_as_global_pool(keepdim):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 3)

        def forward(self, x):
            y = torch.relu(self.bn(self.conv(x))).mean((2, 3), keepdim=keepdim)
            return self.fc(torch.flatten(y, 1) if keepdim else y)

    torch.manual_seed(0)
    x = torch.rand(6, 2, 6, 6)
    qm = prepare_qat(Net(), None, ratio=0.25, example_input=x)
    assert qm(x).shape == (6, 3)  # training-mode forward
    qm.eval()
    graph = to_integer(qm, (2, 6, 6))
    assert [getattr(op, "mode", "conv") for op in graph.ops] == ["conv", "avg", "conv"]
    codes = quantize_input(x.numpy(), 1 / 31)
    with torch.no_grad():
        mirror = qm.forward_codes(torch.from_numpy(codes), keep=True)
        logits = qm(x)
    env = graph.run(codes, keep=True)
    for k in env:
        assert np.array_equal(env[k], mirror[k].numpy()), k
    assert np.array_equal(env[graph.output].reshape(6, -1).argmax(1), logits.argmax(1).numpy())
