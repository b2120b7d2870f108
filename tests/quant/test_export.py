"""Export directory, manifest, `check` and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import random_graph

from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.weight_image import graph_differences, pack_conv_weights, read_image
from filmqnn_quant.__main__ import main
from filmqnn_quant.export import (
    ExportError,
    check_export,
    export_graph,
    manifest_layers,
)

CFG = AcceleratorConfig.small()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def exported(tmp_path: Path) -> Path:
    out = tmp_path / "exp"
    export_graph(out, random_graph(CFG), CFG, model="testnet", random_init=True, log=lambda m: None)
    return out


def test_export_dir_contents(exported: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == [
        "config.json",
        "manifest.json",
        "program.bin",
        "weights.bin",
    ]
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # no temp left
    m = json.loads((exported / "manifest.json").read_text())
    assert m["format"] == "filmqnn-export-v1"
    assert m["model"] == "testnet" and m["board"] == "sim"
    assert m["config_hash"] == CFG.config_hash()
    assert m["random_init"] is True and any("RANDOM" in w for w in m["warnings"])
    assert AcceleratorConfig.from_dict(m["config"]) == CFG
    assert AcceleratorConfig.from_json((exported / "config.json").read_text()) == CFG
    names = [layer["name"] for layer in m["layers"]]
    assert names == [op.name for op in random_graph(CFG).ops]
    for layer in m["layers"]:
        for k in ("name", "kind", "in_channels", "out_channels", "kernel", "stride", "n_8bit",
                  "permutation", "scales"):  # fmt: skip
            assert k in layer, (layer["name"], k)
    conv1 = m["layers"][0]
    g = random_graph(CFG)
    assert conv1["kind"] == "conv" and conv1["in_channels"] == 3 and conv1["out_channels"] == 13
    assert conv1["n_8bit"] == g.ops[0].n_8bit
    assert conv1["permutation"] == g.ops[0].permutation.tolist()
    assert conv1["scales"]["mult"] == g.ops[0].mult.tolist()
    assert conv1["scales"]["input"]["scale"] == g.input.scale
    # The manifest's block offsets point at exactly the packed weights.
    data = (exported / "weights.bin").read_bytes()
    for layer, op in zip(m["layers"], g.ops, strict=True):
        if "weights" in layer:
            w = layer["weights"]
            assert w["offset"] % 64 == 0
            blob = pack_conv_weights(op.weight, CFG.tm, CFG.n8_slots, w["lanes"])
            assert data[w["offset"] : w["offset"] + w["bytes"]] == blob
    back, _ = read_image(exported / "weights.bin", CFG)
    assert graph_differences(g, back) == []


def test_check_ok(exported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(exported)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("OK ")
    assert CFG.config_hash()[:12] in out[0] and "[RANDOM INIT]" in out[0]


def _fails(d: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["check", str(d)]) == 1
    return capsys.readouterr().err


def test_check_detects_corruption(exported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = exported / "weights.bin"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 1
    w.write_bytes(bytes(data))
    assert "CRC-32 mismatch" in _fails(exported, capsys)
    w.write_bytes(bytes(data[:-10]))
    assert "truncated" in _fails(exported, capsys)


def test_export_writes_the_layer_program(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from filmqnn_hw.compiler.program_builder import build_program
    from filmqnn_hw.spec.program import LayerProgram

    m = json.loads((exported / "manifest.json").read_text())
    data = (exported / "program.bin").read_bytes()
    assert m["program"]["bytes"] == len(data)
    head, descs = LayerProgram.parse(data, CFG)
    assert len(descs) == len(random_graph(CFG).ops)
    assert build_program(random_graph(CFG), CFG).to_bytes() == data
    # a flipped byte, or a program from another export, is refused by check
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 1
    (exported / "program.bin").write_bytes(bytes(bad))
    assert "program.bin" in _fails(exported, capsys)
    (exported / "program.bin").unlink()
    assert "program.bin" in _fails(exported, capsys)


def test_check_tells_a_damaged_program_from_another_export(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flipped byte or a truncated program.bin is damaged (CRC / length, copy again or
    re-export); only an intact program.bin of another export is from different exports."""
    from filmqnn_hw.spec.program import HEADER_SIZE, LayerProgram, ProgramCorruptError

    path = exported / "program.bin"
    data = path.read_bytes()
    flipped = bytearray(data)
    flipped[HEADER_SIZE + 9] ^= 0x10
    cases = [(bytes(flipped), "CRC-32 mismatch"), (data[:-5], "truncated"),
             (data[: HEADER_SIZE // 2], "truncated")]  # fmt: skip
    for bad, what in cases:
        with pytest.raises(ProgramCorruptError, match=what):
            LayerProgram.parse(bad)
        path.write_bytes(bad)
        err = _fails(exported, capsys)
        assert err.count("\n") == 1, err
        assert f"{path} is damaged: " in err and what in err
        assert "copy it again" in err and "re-export" in err
        assert "different exports" not in err
    other = tmp_path / "other"
    export_graph(other, random_graph(CFG, c1=9), CFG, log=lambda m: None)
    assert (other / "program.bin").read_bytes() != data
    path.write_bytes((other / "program.bin").read_bytes())
    err = _fails(exported, capsys)
    assert "is intact" in err and "different exports" in err and "is damaged" not in err
    path.write_bytes(data)
    assert main(["check", str(exported)]) == 0


def test_check_detects_config_mismatch(exported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = CFG.replace(tn=4, w4_lut_lanes=0)
    (exported / "config.json").write_text(other.to_json())
    assert "mixes two exports" in _fails(exported, capsys)
    m = json.loads((exported / "manifest.json").read_text())
    m["config_hash"] = other.config_hash()
    (exported / "manifest.json").write_text(json.dumps(m))
    assert "manifest.json's 'config' hashes to" in _fails(exported, capsys)
    m["config"] = other.to_dict()
    (exported / "manifest.json").write_text(json.dumps(m))
    err = _fails(exported, capsys)
    assert f"packed for config {CFG.config_hash()[:12]}" in err
    assert f"this accelerator is {other.config_hash()[:12]}" in err


def test_check_detects_manifest_disagreement(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = exported / "manifest.json"
    orig = path.read_text()
    m = json.loads(orig)
    m["layers"][3]["n_8bit"] += 1
    path.write_text(json.dumps(m))
    assert "field 'n_8bit' disagrees" in _fails(exported, capsys)
    m = json.loads(orig)
    m["layers"].pop()
    path.write_text(json.dumps(m))
    assert "lists 8 layers" in _fails(exported, capsys)
    m = json.loads(orig)
    m["image"]["sha256"] = "0" * 64
    path.write_text(json.dumps(m))
    assert "different exports" in _fails(exported, capsys)
    (exported / "config.json").unlink()
    assert "no config.json" in _fails(exported, capsys)


def test_check_missing_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is not a directory" in _fails(tmp_path / "nope", capsys)


def test_export_replaces_previous_atomically(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    export_graph(out, random_graph(CFG, seed=1), CFG, log=lambda m: None)
    first = (out / "weights.bin").read_bytes()
    export_graph(out, random_graph(CFG, seed=2), CFG, log=lambda m: None)
    assert (out / "weights.bin").read_bytes() != first
    assert check_export(out).startswith("OK ")
    # A failing export (out-of-range code) leaves the previous export untouched.
    bad = random_graph(CFG, seed=3)
    bad.ops[0].bits[1] = 4
    bad.ops[0].weight[1, 0, 0, 0] = 9
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ExportError, match="out-of-range code 9"):
        export_graph(out, bad, CFG, log=lambda m: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_export_creates_parents(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "exp"
    export_graph(out, random_graph(CFG), CFG, log=lambda m: None)
    assert check_export(out).startswith("OK ")


def test_export_refuses_foreign_directory(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(ExportError, match="not a previous export"):
        export_graph(out, random_graph(CFG), CFG, log=lambda m: None)
    assert (out / "thesis.tex").read_text() == "precious"


def test_manifest_layers_kinds() -> None:
    kinds = [e["kind"] for e in manifest_layers(random_graph(CFG))]
    assert kinds == ["conv", "maxpool", "depthwise", "conv", "conv", "add", "avgpool",
                     "global_avgpool", "linear"]  # fmt: skip


def _user_net(stride: int, pool_map: int):
    """A user's model: a conv block (``features.0``, ``stride``) then global average pooling
    of a ``pool_map`` square map and a classifier."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride, 1), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.features(x)), 1))

    return Net(), (3, pool_map * stride, pool_map * stride)


@pytest.mark.parametrize(("stride", "pool_map", "what"), [
    (1, 16, "global average pooling of a 16x16 map"),
    (3, 5, "layer 'features.0' of"),
])
def test_export_refuses_a_network_the_accelerator_cannot_run(
    tmp_path: Path, stride: int, pool_map: int, what: str
) -> None:
    """Named by the model's own module path or op, refused before anything is written."""
    from helpers import quantized_graph

    cfg = AcceleratorConfig.small()
    net, shape = _user_net(stride, pool_map)
    g = quantized_graph(net, cfg, shape)
    out = tmp_path / "exp"
    with pytest.raises(ExportError, match="the accelerator cannot run") as e:
        export_graph(out, g, cfg, log=lambda m: None)
    assert what in str(e.value) and "\n" not in str(e.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_check_subprocess(exported: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    r = subprocess.run([sys.executable, "-m", "filmqnn_quant", "check", str(exported)],
                       capture_output=True, text=True, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK ") and r.stdout.count("\n") == 1
    (exported / "weights.bin").write_bytes(b"NOTANIMAGE" * 20)
    r = subprocess.run([sys.executable, "-m", "filmqnn_quant", "check", str(exported)],
                       capture_output=True, text=True, env=env)  # fmt: skip
    assert r.returncode == 1 and "bad magic" in r.stderr


def test_cli_unknown_model_lists_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["export", "--model", "vgg16", "--board", "zcu102", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown model 'vgg16'" in err and "resnet18" in err
    assert not (tmp_path / "o").exists()


def test_cli_train_dispatch(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    assert "--model" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# End to end through models/qat/convert (smallcnn 28x28, random init)
# ---------------------------------------------------------------------------------------------
def test_cli_export_smallcnn_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(CFG.to_json())
    out = tmp_path / "sc"
    rc = main(["export", "--model", "smallcnn", "--config", str(cfg_file), "--out", str(out),
               "--calib-batches", "1", "--batch-size", "4"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "RANDOM INITIALISATION" in text and "RANDOM CALIBRATION" in text
    m = json.loads((out / "manifest.json").read_text())
    assert m["random_init"] is True and m["model"] == "small_cnn"
    assert m["input"]["shape"] == [1, 28, 28]
    assert main(["check", str(out)]) == 0
    graph, _ = read_image(out / "weights.bin", CFG)
    # Every 8-bit filter sits in an 8-bit slot and the golden model runs on the image.
    for op in graph.conv_ops():
        pos = np.nonzero(np.asarray(op.bits) == 8)[0]
        assert all(CFG.is_8bit_slot(int(p)) for p in pos), op.name
    x = np.random.default_rng(0).integers(0, 32, size=(2, 1, 28, 28))
    assert graph.run(x).shape[:2] == (2, 10)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------
def _cfg_file(tmp_path: Path) -> Path:
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(CFG.to_json())
    return cfg_file


def _export_sc(tmp_path: Path, name: str, *extra: str) -> tuple[int, Path]:
    cfg_file = _cfg_file(tmp_path)
    out = tmp_path / name
    rc = main(["export", "--model", "smallcnn", "--config", str(cfg_file), "--out", str(out),
               "--calib-batches", "1", "--batch-size", "4", "--quiet", *extra])  # fmt: skip
    return rc, out


def test_checkpoint_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from filmqnn_quant.export import export
    from filmqnn_quant.models import build_model

    rand = tmp_path / "rand"
    res = export("smallcnn", rand, config_file=_cfg_file(tmp_path), calib_batches=1,
                 batch_size=4, log=print)  # fmt: skip
    assert "RANDOM INIT" in capsys.readouterr().out and res.manifest["random_init"] is True
    # The image decodes to exactly the graph the converter produced.
    back, _ = read_image(rand / "weights.bin", CFG)
    assert graph_differences(res.graph, back) == []
    # The seeded random init saved as a checkpoint exports to the identical image.
    torch.manual_seed(0)
    sd = build_model("smallcnn", input_size=28, in_channels=1).state_dict()
    for i, payload in enumerate([sd, {"state_dict": sd}]):
        ck = tmp_path / f"ck{i}.pt"
        torch.save(payload, ck)
        rc, out = _export_sc(tmp_path, f"ck{i}", "--checkpoint", str(ck))
        text = capsys.readouterr().out
        assert rc == 0 and "RANDOM INIT" not in text
        m = json.loads((out / "manifest.json").read_text())
        assert m["random_init"] is False and m["checkpoint"]["path"] == str(ck)
        assert (out / "weights.bin").read_bytes() == (rand / "weights.bin").read_bytes()
    # Different weights give a different image.
    torch.manual_seed(1)
    torch.save(build_model("smallcnn").state_dict(), tmp_path / "other.pt")
    rc, out = _export_sc(tmp_path, "other", "--checkpoint", str(tmp_path / "other.pt"))
    assert rc == 0
    assert (out / "weights.bin").read_bytes() != (rand / "weights.bin").read_bytes()


def test_checkpoint_mismatch_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from filmqnn_quant.models import build_model

    sd = build_model("smallcnn", num_classes=5).state_dict()
    torch.save(sd, tmp_path / "c5.pt")
    rc, out = _export_sc(tmp_path, "o", "--checkpoint", str(tmp_path / "c5.pt"))
    err = capsys.readouterr().err
    assert rc == 2 and "shape mismatches" in err and "fc.weight" in err
    assert not out.exists()
    del sd["bn1.running_mean"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pt")
    rc, _ = _export_sc(tmp_path, "o", "--checkpoint", str(tmp_path / "bad.pt"), "--num-classes",
                       "5")  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "missing keys (1): bn1.running_mean" in err
    assert "unexpected keys (1): extra.weight" in err
    rc, _ = _export_sc(tmp_path, "o", "--checkpoint", str(tmp_path / "nope.pt"))
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_train_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from filmqnn_quant.models import build_model
    from filmqnn_quant.qat import prepare_qat

    torch.manual_seed(3)
    kw = {"num_classes": 10, "in_channels": 1, "input_size": 28}
    net = build_model("small_cnn", **kw).eval()
    base = {"format": "filmqnn-checkpoint-v1", "model": "small_cnn", "model_kwargs": kw,
            "input_shape": [1, 28, 28]}  # fmt: skip
    torch.save({**base, "precision": "fp32", "ratio": None, "state_dict": net.state_dict()},
               tmp_path / "fp32.pt")  # fmt: skip
    rc, out = _export_sc(tmp_path, "fp32", "--checkpoint", str(tmp_path / "fp32.pt"))
    assert rc == 0, capsys.readouterr().err
    # A QAT checkpoint brings its own scales and 8-bit selection: no re-calibration.
    x = torch.rand((4, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    qm = prepare_qat(net, CFG, ratio=0.05, example_input=x)
    torch.save({**base, "precision": "qat", "ratio": 0.05, "state_dict": qm.state_dict()},
               tmp_path / "qat.pt")  # fmt: skip
    rc, out = _export_sc(tmp_path, "qat", "--checkpoint", str(tmp_path / "qat.pt"))
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "manifest.json").read_text())
    assert m["calibration"]["source"].startswith("checkpoint")
    assert m["checkpoint"]["precision"] == "qat" and m["random_init"] is False
    assert check_export(out).startswith("OK ")
    # A QAT checkpoint trained without this config: refused with a hint, or --reselect.
    qm0 = prepare_qat(build_model("small_cnn", **kw).eval(), ratio=0.05, example_input=x)
    sd0 = qm0.state_dict()
    # The logits' channel order is fixed: an 8-bit logit filter outside an 8-bit slot cannot fit.
    sd0["layer_quant.fc.bits"] = torch.tensor([4, 4, 8, 4, 4, 4, 4, 4, 4, 4])
    torch.save({**base, "precision": "qat", "ratio": 0.05, "state_dict": sd0},
               tmp_path / "qat0.pt")  # fmt: skip
    rc, out = _export_sc(tmp_path, "qat0", "--checkpoint", str(tmp_path / "qat0.pt"))
    err = capsys.readouterr().err
    assert rc == 2 and "--reselect" in err and not out.exists()
    rc, out = _export_sc(tmp_path, "qat0", "--checkpoint", str(tmp_path / "qat0.pt"),
                         "--reselect")  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and "RE-SELECTED" in text and "RANDOM SELECTION IMAGES" in text
    m = json.loads((out / "manifest.json").read_text())
    assert any("RE-SELECTED" in w for w in m["warnings"])
    assert "RE-SELECTED" in m["calibration"]["source"]
    assert check_export(out).startswith("OK ")
    # The wrong model name is refused with the right one suggested.
    rc = main(["export", "--model", "resnet18", "--config", str(tmp_path / "cfg.json"),
               "--out", str(tmp_path / "x"), "--checkpoint", str(tmp_path / "qat.pt")])  # fmt: skip
    assert rc == 2 and "use --model small_cnn" in capsys.readouterr().err


def test_cli_unknown_board_lists_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["export", "--model", "smallcnn", "--board", "zc706", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown board 'zc706'" in err and "zcu102" in err and "pynq_z2" in err
    assert not (tmp_path / "o").exists()


def test_cli_export_board_smallcnn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pz"
    rc = main(["export", "--model", "smallcnn", "--board", "pynq_z2", "--out", str(out),
               "--calib-batches", "1", "--batch-size", "4", "--quiet"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    from filmqnn_hw.search.dse import design

    cfg = design("pynq_z2", 0.05)
    m = json.loads((out / "manifest.json").read_text())
    assert m["board"] == "pynq_z2" and m["config_hash"] == cfg.config_hash()
    assert (out / "config.json").read_text().strip() == cfg.to_json()
    assert main(["check", str(out)]) == 0


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2"])
def test_export_residual_and_depthwise_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str
) -> None:
    """Real converter output with fused residuals (ResNet) and depthwise layers (MobileNet-V2)."""
    from filmqnn_quant.export import export

    out = tmp_path / model
    res = export(model, out, config_file=_cfg_file(tmp_path), input_size=(32, 32),
                 num_classes=10, model_args={"width_mult": 0.25}, calib_batches=1,
                 batch_size=2, log=lambda m: None)  # fmt: skip
    kinds = {op.kind for op in res.graph.conv_ops()}
    if model == "resnet18":
        assert any(op.residual for op in res.graph.conv_ops())
    else:
        assert "depthwise" in kinds
    back, _ = read_image(out / "weights.bin", CFG)
    assert graph_differences(res.graph, back) == []
    x = np.random.default_rng(0).integers(0, 32, size=(1, 3, 32, 32))
    assert np.array_equal(res.graph.run(x), back.run(x))
    assert check_export(out).startswith("OK ")
    m = json.loads((out / "manifest.json").read_text())
    assert m["model_kwargs"]["width_mult"] == 0.25 and m["model_kwargs"]["small_input"] is True


def test_cli_ratio_conflicts_with_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, out = _export_sc(tmp_path, "r", "--ratio", "0.1")
    assert rc == 2 and "differs from the ratio_8bit 0.05" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# a user's own model
# ---------------------------------------------------------------------------------------------
def test_own_model_file_through_the_cli_and_the_build_finds_its_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """FILE.py:FUNCTION with options; the design search optimises for the model, and
    `build --manifest` of the export reaches the same config (so the export runs on it)."""
    from helpers import own_model_file

    from filmqnn_hw.build import main as build

    spec = f"{own_model_file(tmp_path)}:make"
    out = tmp_path / "exp"
    args = ["export", "--model", spec, "--board", "pynq_z2", "--out", str(out), "--quiet"]
    assert main(args) == 2  # no --input-size: refused before any work
    assert "give --input-size [C] H W for your model 'make'" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, "--input-size", "27", "27", "--num-classes", "7", "--model-arg",
                 "width=11", "--name", "ownnet"]) == 0
    assert check_export(out).startswith("OK")
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"] == "ownnet" and m["input"]["shape"][-3:] == [3, 27, 27]
    assert m["model_kwargs"] == {"num_classes": 7, "width": 11}
    assert m["config"]["notes"]["objective"] == "geomean FPS over ownnet"
    built = tmp_path / "build"
    assert build(["pynq_z2", "--manifest", str(out / "manifest.json"), "--out", str(built),
                  "--no-rtl"]) == 0
    assert json.loads((built / "report.json").read_text())["config_hash"] == m["config_hash"]


def test_own_model_module_with_a_data_loader(tmp_path: Path) -> None:
    """The Python API: an nn.Module and the user's batches (image, label) for calibration."""
    import torch

    from filmqnn_quant.export import export

    torch.manual_seed(1)
    loader = [(torch.rand(4, 1, 14, 14), torch.zeros(4)) for _ in range(3)]
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 9, 3, 2, 1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(9, 3))
    res = export(model, tmp_path / "exp", board="pynq_z2", input_size=(1, 14, 14),
                 calib_data=loader, log=lambda m: None)
    assert res.manifest["model"] == "Sequential"
    assert res.manifest["calibration"]["source"] == "your data (2 batches)"  # calib_batches
    assert check_export(tmp_path / "exp").startswith("OK")
    with pytest.raises(ExportError, match=r"pixels must lie in \[0, 1\]"):
        export(model, tmp_path / "bad", board="pynq_z2", input_size=(1, 14, 14),
               calib_data=[torch.randn(4, 1, 14, 14)], log=lambda m: None)
    with pytest.raises(ExportError, match=r"a batch of shape \(4, 3, 14, 14\)"):
        export(model, tmp_path / "bad", board="pynq_z2", input_size=(1, 14, 14),
               calib_data=[torch.rand(4, 3, 14, 14)], log=lambda m: None)
    assert not (tmp_path / "bad").exists()


def test_calibration_images_from_a_npy_file_and_a_folder(tmp_path: Path) -> None:
    import torch

    from filmqnn_quant.export import export

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 1, 1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(8, 2))
    rng = np.random.default_rng(0)
    arr = tmp_path / "calib.npy"
    np.save(arr, rng.integers(0, 256, (10, 6, 6, 3), dtype=np.uint8))  # N, H, W, C
    folder = tmp_path / "imgs" / "any" / "layout"
    folder.mkdir(parents=True)
    for i in range(5):
        np.save(folder / f"{i}.npy", rng.random((3, 6, 6), dtype=np.float32))
    for src in (arr, tmp_path / "imgs"):
        res = export(model, tmp_path / f"exp_{src.name}", board="pynq_z2", input_size=(6, 6),
                     calib_data=str(src), log=lambda m: None)
        assert res.manifest["calibration"]["source"] == str(src)
    with pytest.raises(ExportError, match=r"has images of shape \(3, 6, 6\), the model takes "
                                          r"\(3, 7, 7\)"):
        export(model, tmp_path / "bad", board="pynq_z2", input_size=(7, 7),
               calib_data=str(arr), log=lambda m: None)


def test_check_refuses_an_export_the_accelerator_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export written before the exporter checked the limits is refused by `check`."""
    from helpers import quantized_graph

    import filmqnn_quant.export as ex

    g = random_graph(CFG)
    ok = tmp_path / "ok"
    export_graph(ok, g, CFG, log=lambda m: None)
    assert check_export(ok).startswith("OK")
    monkeypatch.setattr(ex, "check_runs_on", lambda graph, config: None)
    net, shape = _user_net(1, 16)
    bad = tmp_path / "bad"
    export_graph(bad, quantized_graph(net, CFG, shape), CFG, log=lambda m: None)
    monkeypatch.undo()
    with pytest.raises(ExportError, match="global average pooling of a 16x16 map"):
        check_export(bad)


def test_the_documented_qat_path(tmp_path: Path) -> None:
    """docs/own-model.md's QAT snippet: a config designed for the model, prepare_qat, a few
    steps of the user's own training loop, to_integer, export_graph; the export checks."""
    import torch

    from filmqnn_quant.convert import to_integer
    from filmqnn_quant.export import design_for
    from filmqnn_quant.qat import prepare_qat

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, 2, 1), torch.nn.BatchNorm2d(12),
                                torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(12, 4))
    loader = [(torch.rand(8, 3, 12, 12), torch.randint(0, 4, (8,))) for _ in range(3)]
    cfg = design_for(model, "pynq_z2", (3, 12, 12), name="mynet")
    qm = prepare_qat(model.train(), cfg, example_input=loader[0][0])
    opt = torch.optim.SGD(qm.parameters(), lr=0.01)
    for x, y in loader:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(qm(x), y).backward()
        opt.step()
    qm.freeze_selection()
    qm.eval()
    export_graph(tmp_path / "mynet", to_integer(qm, (3, 12, 12), cfg), cfg, model="mynet",
                 log=lambda m: None)
    assert check_export(tmp_path / "mynet").startswith("OK")
    assert cfg.notes["objective"] == "geomean FPS over mynet"
