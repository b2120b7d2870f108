"""Benchmark network layer lists and the IntGraph -> Network conversion."""

from __future__ import annotations

import numpy as np
import pytest

from filmqnn_hw.spec.networks import (
    Layer,
    Network,
    NetworkError,
    from_intgraph,
    get_network,
    mobilenet_v2,
    resnet18,
    resnet50,
)


def test_mac_counts_match_torchvision():
    # torchvision's published complexity: 1.814 / 4.089 / 0.3008 GMACs at 224x224
    assert resnet18().macs == 1_814_073_344
    assert resnet50().macs == 4_089_184_256
    assert mobilenet_v2().macs == 300_774_272
    assert resnet18().weights == 11_678_912  # conv + fc weights (no BN, no bias)


def test_structure():
    r18 = resnet18()
    assert r18.layers[0].name == "conv1" and r18.layers[0].kh == 7
    assert sum(ly.residual is not None for ly in r18.layers) == 8
    mb = mobilenet_v2()
    assert sum(ly.kind == "dw" for ly in mb.layers) == 17
    assert sum(ly.residual is not None for ly in mb.layers) == 10
    assert sum(ly.kind == "conv" and ly.residual is not None for ly in resnet50().layers) == 16
    assert mb.layers[-1].fc and mb.layers[-1].out_ch == 1000


def test_json_roundtrip_and_errors():
    net = mobilenet_v2()
    back = Network.from_json(net.to_json())
    assert back.layers == net.layers and back.macs == net.macs
    with pytest.raises(NetworkError, match="unknown network"):
        get_network("vgg")
    bad = Layer("x", "conv", 3, 8, 8, 8, 7, 7, 3, 3, 1, 1, "input", "x.out")
    with pytest.raises(NetworkError, match="does not follow"):
        Network("n", [bad], "input", "x.out").validate()
    orphan = Layer("y", "conv", 3, 8, 8, 8, 8, 8, 3, 3, 1, 1, "nope", "y.out")
    with pytest.raises(NetworkError, match="before it is produced"):
        Network("n", [orphan], "input", "y.out").validate()


def test_from_intgraph():
    from filmqnn_hw.spec.intgraph import AddOp, ConvOp, IntGraph, PoolOp, TensorSpec

    def conv(name, src, dst, cin, cout, k, s, p, groups=1, kind="conv", residual=None):
        w = np.zeros((cout, cin // groups, k, k), np.int64)
        z = np.zeros(cout, np.int64)
        return ConvOp(name, src, dst, w, np.full(cout, 4), z + 1, z, z, (s, s), (p, p),
                      groups, kind=kind, residual=residual,
                      res_mult=None if residual is None else z + 1)

    t = {
        "x": TensorSpec("x", 3, 16, 16, 1.0),
        "a": TensorSpec("a", 8, 8, 8, 1.0),
        "b": TensorSpec("b", 8, 8, 8, 1.0),
        "c": TensorSpec("c", 8, 8, 8, 1.0),
        "d": TensorSpec("d", 8, 4, 4, 1.0),
        "e": TensorSpec("e", 8, 1, 1, 1.0),
        "f": TensorSpec("f", 10, 1, 1, 1.0),
    }
    ops = [
        conv("c1", "x", "a", 3, 8, 3, 2, 1),
        conv("dw", "a", "b", 8, 8, 3, 1, 1, groups=8, kind="depthwise", residual="a"),
        AddOp("add", "a", "b", "c", 1, 1, 0, 0),
        PoolOp("mp", "c", "d", "max", (2, 2), (2, 2)),
        PoolOp("gap", "d", "e", "avg", None),
        conv("fc", "e", "f", 8, 10, 1, 1, 0, kind="linear"),
    ]
    g = IntGraph(t["x"], ops, "f", t, name="tiny")
    with pytest.raises(NetworkError, match="only convolutions fuse"):
        from_intgraph(g)  # a depthwise op with a fused residual is not a dense conv
    ops[1] = conv("dw", "a", "b", 8, 8, 3, 1, 1, groups=8, kind="depthwise")
    net = from_intgraph(IntGraph(t["x"], ops, "f", t, name="tiny"))
    assert [ly.kind for ly in net.layers] == ["conv", "dw", "add", "maxpool", "gap", "conv"]
    assert net.layers[0].macs == 8 * 3 * 9 * 64
    assert net.layers[-1].fc
    ops[0] = conv("c1", "x", "a", 3, 8, 3, 2, 1)
    grouped = conv("g", "a", "b", 8, 8, 3, 1, 1, groups=2)
    with pytest.raises(NetworkError, match="grouped conv"):
        from_intgraph(IntGraph(t["x"], [ops[0], grouped], "b", t))


def test_from_manifest_matches_intgraph(tmp_path):
    import json

    # a real network shape, as an IntGraph with zero weights, through the exporter's manifest
    from filmqnn_hw.spec.intgraph import ConvOp, IntGraph, PoolOp, TensorSpec
    from filmqnn_hw.spec.networks import from_intgraph, from_manifest, resnet18
    from filmqnn_quant.export import manifest_layers

    net = resnet18()
    tensors = {"input": TensorSpec("input", 3, 224, 224, 1.0)}
    ops = []
    for ly in net.layers:
        tensors[ly.output] = TensorSpec(ly.output, ly.out_ch, ly.out_h, ly.out_w, 1.0)
        if ly.kind == "conv":
            z = np.zeros(ly.out_ch, np.int64)
            ops.append(ConvOp(ly.name, ly.input, ly.output,
                              np.zeros((ly.out_ch, ly.in_ch, ly.kh, ly.kw), np.int8),
                              np.full(ly.out_ch, 4), z, z, z, (ly.stride,) * 2, (ly.pad,) * 2,
                              kind="linear" if ly.fc else "conv", residual=ly.residual,
                              res_mult=None if ly.residual is None else z))
        elif ly.kind == "maxpool":
            ops.append(PoolOp(ly.name, ly.input, ly.output, "max", (ly.kh, ly.kw),
                              (ly.stride,) * 2, (ly.pad,) * 2))
        else:
            ops.append(PoolOp(ly.name, ly.input, ly.output, "avg", None))
    g = IntGraph(tensors["input"], ops, net.output, tensors, name="resnet18")
    # the FC of the IntGraph is a conv whose kernel covers the 1x1 map: same as ours
    manifest = {"model": "resnet18", "input": {"tensor": "input", "shape": [3, 224, 224]},
                "layers": manifest_layers(g)}
    f = tmp_path / "manifest.json"
    f.write_text(json.dumps(manifest))
    m = from_manifest(str(f))
    assert m.macs == net.macs and [ly.kind for ly in m.layers] == [ly.kind for ly in net.layers]
    assert from_intgraph(g).macs == net.macs
    with pytest.raises(NetworkError, match="not a filmqnn manifest"):
        from_manifest({"layers": []})
