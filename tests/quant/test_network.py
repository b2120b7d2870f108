"""network_of: the float model's layer list equals the exported integer graph's, named by the
model's module paths, refused for layers the accelerator's models do not describe."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from helpers import own_model_file, quantized_graph
from torch import nn

from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.networks import NetworkError, from_intgraph
from filmqnn_quant.convert import seeded_network
from filmqnn_quant.graph import GraphError
from filmqnn_quant.network import network_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = AcceleratorConfig.small(act_pack=8, axi_data_bits=128)


def _fields(net):
    return [(ly.name, ly.kind, ly.in_ch, ly.out_ch, ly.in_h, ly.in_w, ly.out_h, ly.out_w, ly.kh,
             ly.kw, ly.stride, ly.pad, ly.fc, ly.input, ly.output, ly.residual)
            for ly in net.layers]


@pytest.mark.parametrize(("name", "kw", "shape"), [
    ("resnet18", {"small_input": True}, (3, 32, 32)),
    ("mobilenet_v2", {"small_input": True}, (3, 32, 32)),
    ("small_cnn", {"input_size": 28, "in_channels": 1}, (1, 28, 28)),
])
def test_the_float_models_layers_are_the_integer_graphs(name, kw, shape):
    from filmqnn_quant.models import build_model

    torch.manual_seed(0)
    net = network_of(build_model(name, **kw), shape, name)
    g, _ = seeded_network(name, CFG, shape, model_kw=kw)
    assert _fields(net) == _fields(from_intgraph(g))
    assert net.macs == from_intgraph(g).macs


def test_a_users_model_with_awkward_shapes(tmp_path):
    spec = importlib.util.spec_from_file_location("ownnet", own_model_file(tmp_path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    model = mod.make(num_classes=7, width=11)
    shape = (3, 27, 27)
    net = network_of(model, shape, "own")
    assert _fields(net) == _fields(from_intgraph(quantized_graph(model, CFG, shape)))
    by_name = {ly.name: ly for ly in net.layers}
    assert (by_name["stem.0"].kh, by_name["stem.0"].out_h) == (5, 27)
    assert (by_name["block.conv1"].stride, by_name["block.conv1"].out_h) == (2, 14)
    assert by_name["dw.0"].kind == "dw" and by_name["dw.0"].in_ch == 23
    assert (by_name["big.0"].kh, by_name["big.0"].out_h) == (7, 7)
    assert by_name["block.conv2"].residual is not None
    assert by_name["pool"].kind == "gap" and by_name["fc"].fc


def test_what_the_models_cannot_describe_is_refused():
    grouped = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(GraphError, match=r"Conv2d '0': groups=2"):
        network_of(grouped, (4, 8, 8), "g")
    rect = nn.Sequential(nn.Conv2d(3, 8, 3, stride=(1, 2), padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(NetworkError, match="only square strides"):
        network_of(rect, (3, 8, 8), "r")
    with pytest.raises(GraphError):
        network_of(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sigmoid()), (3, 8, 8), "s")
