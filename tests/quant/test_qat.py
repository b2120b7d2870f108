"""QAT: weight/activation quantizers, Eq. 4 selection, groups, calibration, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.numerics import quantize_input
from filmqnn_quant.models import build_model
from filmqnn_quant.qat import fake_quant_weight, prepare_qat

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _OneConv(nn.Module):
    def __init__(self, c: int = 6):
        super().__init__()
        self.conv = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.fc = nn.Linear(c * 4 * 4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def _grid_model() -> _OneConv:
    """Filters exactly on the 4-bit grid (alpha = 1) except filter 3 (far) and 1 (slightly)."""
    torch.manual_seed(0)
    m = _OneConv()
    g = torch.randint(-7, 8, (6, 1, 3, 3)).double() / 7
    g[0, 0, 0, 0] = 1.0  # alpha = max|W| = 1
    g[3] = g[3].clamp(-6 / 7, 6 / 7) + 0.5 / 7  # every weight half a step off: max error
    g[1, 0, 1, 1] = g[1, 0, 1, 1].clamp(-6 / 7, 6 / 7) + 0.2 / 7  # one weight slightly off
    with torch.no_grad():
        m.conv.weight.copy_(g.float())
    return m


def test_selection_picks_largest_output_error():
    x = torch.rand(8, 1, 4, 4)
    qm = prepare_qat(_grid_model(), None, ratio=1 / 6, example_input=x)
    bits = qm.bits("conv").tolist()
    assert bits == [4, 4, 4, 8, 4, 4]
    errs = qm.filter_errors(x)["conv"]
    assert errs[0] == 0 and errs[3] > errs[1] > 0
    qm2 = prepare_qat(_grid_model(), None, ratio=2 / 6, example_input=x)
    assert qm2.bits("conv").tolist() == [4, 8, 4, 8, 4, 4]


def test_filter_error_is_eq4():
    torch.manual_seed(0)
    m = _OneConv()
    x = torch.rand(4, 1, 4, 4)
    qm = prepare_qat(m, None, example_input=x).eval()
    e = qm.filter_errors(x)["conv"]
    a_q = torch.from_numpy(quantize_input(x.numpy(), 1 / 31)).float() / 31
    w = m.conv.weight.detach()
    alpha = w.abs().max()
    w4 = torch.clamp(torch.floor(w / alpha * 7 + 0.5), -7, 7) * alpha / 7
    ref = (
        (nn.functional.conv2d(a_q, w, padding=1) - nn.functional.conv2d(a_q, w4, padding=1))
        .double()
        .pow(2)
        .sum(dim=(0, 2, 3))
        .sqrt()
    )
    assert torch.allclose(e, ref, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("ratio,expect", [(0.0, 0), (1.0, 1.0), (0.05, 0.05)])
def test_ratio_without_config(ratio, expect):
    torch.manual_seed(0)
    m = build_model("small_cnn", width_mult=1.25, input_size=8)  # 40 and 80 filters
    qm = prepare_qat(m, None, ratio=ratio, example_input=torch.rand(4, 1, 8, 8))
    for name in ("conv1", "conv2", "conv3", "conv4"):
        b = qm.bits(name)
        assert int((b == 8).sum()) == math.floor(expect * len(b) + 0.5), name
    assert int((qm.bits("fc") == 8).sum()) == math.floor(expect * 10 + 0.5)  # half rounds up


def test_config_capacity_and_joint_group_selection():
    torch.manual_seed(0)
    cfg = AcceleratorConfig.small(tm=8, n8_slots=1)
    m = build_model("resnet18", width_mult=0.1875, small_input=True, num_classes=10)  # 12..96
    qm = prepare_qat(m, cfg, example_input=torch.rand(4, 3, 12, 12))
    g = qm.graph
    groups: dict[str, list[str]] = {}
    for layer in g.layers():
        b = qm.bits(layer.name)
        assert int((b == 8).sum()) == cfg.n8_capacity(len(b)), layer.name
        groups.setdefault(g.find(layer.output), []).append(layer.name)
    # stem + layer1 (+ the residual chain) share one group; downsample joins its stage
    stage1 = groups[g.find("conv1")]
    assert {"conv1", "layer1.0.conv2", "layer1.1.conv2"} <= set(stage1)
    stage2 = groups[g.find("layer2.0.downsample.0")]
    assert {"layer2.0.conv2", "layer2.1.conv2"} <= set(stage2)
    for members in groups.values():
        first = qm.bits(members[0])
        for name in members[1:]:
            assert torch.equal(qm.bits(name), first), name
    # the logits' order is fixed: with a config its 8-bit filters are its 8-bit slots
    assert qm.bits("fc").tolist() == [8 if cfg.is_8bit_slot(p) else 4 for p in range(10)]


def test_zero_points_only_without_relu():
    torch.manual_seed(0)
    m = build_model("mobilenet_v2", width_mult=0.25, num_classes=10, last_channel=32)
    qm = prepare_qat(m, None, example_input=torch.rand(4, 3, 32, 32))
    zs = {}
    for layer in qm.graph.layers():
        s, z, lo, hi = qm.act_qparams(layer.output)
        zs[layer.name] = z
        if layer.act is not None:
            assert z == 0 and (lo, hi) == (0, 31)
    # linear bottleneck outputs are signed: a zero point strictly inside the code range
    assert 0 < zs["features.2.conv.2"] < 31


def test_select_freeze_and_train_step():
    torch.manual_seed(0)
    m = build_model("small_cnn", width_mult=0.25, input_size=8)
    x = torch.rand(8, 1, 8, 8)
    y = torch.randint(0, 10, (8,))
    qm = prepare_qat(m, None, ratio=0.25, example_input=x)
    assert qm.training
    hi0 = float(qm.acts["conv1"].hi_stat)
    opt = torch.optim.SGD(qm.parameters(), lr=0.1)
    w0 = m.conv2.weight.detach().clone()
    loss = nn.functional.cross_entropy(qm(x), y)
    loss.backward()
    assert m.conv2.weight.grad is not None and m.conv2.weight.grad.abs().sum() > 0  # STE
    opt.step()
    assert not torch.equal(w0, m.conv2.weight)
    qm(x * 2)  # EMA of the max moves towards the new batch
    assert float(qm.acts["conv1"].hi_stat) > hi0
    assert qm.select_8bit(torch.rand(8, 1, 8, 8))
    qm.freeze_selection()
    before = {k: v.bits.clone() for k, v in qm.layer_quant.items()}
    with torch.no_grad():
        m.conv2.weight.mul_(torch.randn_like(m.conv2.weight))
    assert qm.select_8bit(torch.rand(8, 1, 8, 8)) is False
    for k, v in qm.layer_quant.items():
        assert torch.equal(v.bits, before[k])


def test_calibrate_max_and_percentile():
    torch.manual_seed(0)
    m = build_model("small_cnn", width_mult=0.25, input_size=8).eval()
    batches = [torch.rand(8, 1, 8, 8) for _ in range(3)]
    qm = prepare_qat(m, None, example_input=batches[0])
    assert not qm.training
    qm.calibrate(batches, method="max")
    hi_max = float(qm.acts["conv1"].hi_stat)
    with torch.no_grad():
        ref = max(
            float(torch.relu(m.bn1(m.conv1(torch.floor(b * 31 + 0.5) / 31))).max()) for b in batches
        )
    assert hi_max == pytest.approx(ref, rel=0.02)  # conv1 sees the (exact) quantized input
    s, z, _, _ = qm.act_qparams("conv1")
    assert z == 0 and s == pytest.approx(hi_max / 31)
    qm.calibrate(batches, method="percentile", percentile=99.0)
    assert float(qm.acts["conv1"].hi_stat) < hi_max
    with pytest.raises(ValueError, match="method"):
        qm.calibrate(batches, method="mse")


def test_state_dict_round_trip_gives_identical_eval():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    kw = dict(width_mult=0.125, small_input=True, num_classes=10)
    qa = prepare_qat(build_model("resnet18", **kw), None, example_input=x)
    qa(x)  # one training-mode forward moves ranges/BN stats
    qa.eval()
    qb = prepare_qat(build_model("resnet18", **kw), None, ratio=0.3, example_input=x * 0.5)
    qb.load_state_dict(qa.state_dict())
    qb.eval()
    with torch.no_grad():
        assert torch.equal(qa(x), qb(x))


def test_weight_fake_quant_levels():
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3)
    bits = torch.tensor([4, 8, 4, 8])
    wq = fake_quant_weight(w, bits, "layer")
    alpha = w.abs().max()
    codes4 = wq[0] / alpha * 7
    codes8 = wq[1] / alpha * 127
    assert torch.allclose(codes4, codes4.round(), atol=1e-4) and codes4.abs().max() <= 7
    assert torch.allclose(codes8, codes8.round(), atol=1e-3) and codes8.abs().max() <= 127
    wf = fake_quant_weight(w, bits, "filter")
    for k in range(4):
        assert float(wf[k].abs().max()) == pytest.approx(float(w[k].abs().max()), rel=1e-6)
    qm = prepare_qat(_OneConv(), None, example_input=torch.rand(2, 1, 4, 4), alpha="filter")
    assert qm.alpha_mode == "filter"
    with pytest.raises(ValueError, match="alpha"):
        prepare_qat(_OneConv(), None, example_input=torch.rand(2, 1, 4, 4), alpha="tensor")


def test_eval_input_quantization_matches_numerics():
    x = torch.rand(3, 1, 5, 5)
    qm = prepare_qat(_OneConv(), None, example_input=torch.rand(2, 1, 4, 4))
    assert np.array_equal(qm.quantize_input(x).numpy(), quantize_input(x.numpy(), 1 / 31))


def test_eval_cache_follows_parameter_changes():
    torch.manual_seed(0)
    m = build_model("small_cnn", width_mult=0.25, input_size=8)
    x = torch.rand(8, 1, 8, 8)
    qm = prepare_qat(m, None, example_input=x).eval()
    with torch.no_grad():
        a = qm(x)
        m.fc.bias[3] += 3 * float(a.abs().max())  # in-place change while in eval mode
        b = qm(x)
    assert not torch.equal(a, b)
    assert torch.equal(b.argmax(1), torch.full((8,), 3))


@pytest.mark.parametrize(
    "cin,wmax,expect_f64",
    [(8, 7, False), (470, 127, False), (600, 127, True)],  # 15624, 16.65M, 21.3M
)
def test_exact_conv_matches_golden_accumulate(cin, wmax, expect_f64):
    """Both paths of the eval mirror's convolution equal the golden model's accumulators,
    including weights/codes at their extremes and bounds right around 2**24."""
    from filmqnn_hw.spec.intgraph import conv_accumulate
    from filmqnn_quant.qat import exact_conv

    rng = np.random.default_rng(cin)
    w = rng.choice([-wmax, wmax], size=(3, cin, 3, 3)).astype(np.int64)
    w[0] = wmax  # one filter at the full bound
    x = rng.integers(0, 32, size=(2, cin, 5, 5))
    x[0] = 31
    bound = int(np.abs(w).reshape(3, -1).sum(1).max()) * 31
    assert (bound >= 1 << 24) == expect_f64
    acc = exact_conv(torch.from_numpy(x), w, torch.from_numpy(w), (1, 1), 5, (1, 1), 1)
    ref = conv_accumulate(x, w, (1, 1), (1, 1), 1, 5)
    assert np.array_equal(acc.numpy(), ref)


def test_dead_layer_still_converts_exactly():
    from filmqnn_quant.convert import to_integer

    torch.manual_seed(0)
    m = build_model("small_cnn", width_mult=0.25, input_size=8)
    with torch.no_grad():
        m.bn2.bias.fill_(-100.0)  # conv2's output is always 0 after its ReLU
    x = torch.rand(4, 1, 8, 8)
    qm = prepare_qat(m, None, example_input=x).eval()
    graph = to_integer(qm, (1, 8, 8))
    codes = quantize_input(x.numpy(), 1 / 31)
    env = graph.run(codes, keep=True)
    assert env["conv2"].max() == 0
    with torch.no_grad():
        assert np.array_equal(env[graph.output], qm.forward_codes(torch.from_numpy(codes)).numpy())
