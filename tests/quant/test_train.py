"""Tests for filmqnn_quant.train: short seeded runs on real Fashion-MNIST, checkpoints, QAT flow.

The training runs use the Debian package ``dataset-fashion-mnist`` (installed by
scripts/setup.sh); without it these tests are skipped (reported as skipped, not passed).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from filmqnn_quant import data as D
from filmqnn_quant import train as T

pytestmark = pytest.mark.skipif(
    not (D.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)

HAVE_QAT = importlib.util.find_spec("filmqnn_quant.qat") is not None
HAVE_CONVERT = importlib.util.find_spec("filmqnn_quant.convert") is not None

SMALL = [
    "--model", "smallcnn", "--width-mult", "0.25", "--dataset", "fashion_mnist",
    "--subset", "512", "--test-subset", "500", "--batch-size", "32", "--threads", "1",
    "--seed", "0", "--quiet",
]  # fmt: skip


def _run(tmp_path: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "m.json"
    rc = T.main([*SMALL, *extra, "--json-out", str(out)])
    return rc, json.loads(out.read_text()) if out.is_file() else {}


@pytest.fixture(scope="module")
def fp32_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("fp32")
    ck = d / "fp32.pt"
    rc, m = _run(d, "--precision", "fp32", "--epochs-fp32", "2", "--lr", "0.02",
                 "--checkpoint-out", str(ck))  # fmt: skip
    assert rc == 0
    return ck, m


def test_fp32_short_run_beats_chance(fp32_ckpt: tuple[Path, dict]) -> None:
    ck, m = fp32_ckpt
    assert m["train_images"] == 512 and m["test_images"] == 500
    assert [e["phase"] for e in m["epochs"]] == ["fp32", "fp32"]
    assert m["fp32_acc"] > 40.0  # chance is 10 %
    assert ck.is_file() and ck.stat().st_size < 2_000_000


def test_fp32_run_is_deterministic(tmp_path: Path, fp32_ckpt: tuple[Path, dict]) -> None:
    _, m0 = fp32_ckpt
    rc, m1 = _run(tmp_path, "--precision", "fp32", "--epochs-fp32", "2", "--lr", "0.02")
    assert rc == 0
    assert [e["loss"] for e in m1["epochs"]] == [e["loss"] for e in m0["epochs"]]
    assert m1["fp32_acc"] == m0["fp32_acc"]


def test_checkpoint_roundtrip(fp32_ckpt: tuple[Path, dict]) -> None:
    ck_path, m = fp32_ckpt
    ck = T.load_checkpoint(ck_path)
    assert ck["precision"] == "fp32" and ck["input_shape"] == [1, 28, 28]
    model = T.build_from_checkpoint(ck)
    test = D.load_dataset("fashion_mnist", "test")
    idx = D.subset_indices(test.labels, 500, 0)
    sub = D.ArrayDataset(test.images[idx], test.labels[idx], test.classes)
    acc, _ = T.evaluate(model, sub)
    assert acc == m["fp32_acc"]


def test_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _ = _run(tmp_path, "--checkpoint-in", str(tmp_path / "missing.pt"))
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    bogus = tmp_path / "bogus.pt"
    torch.save({"weights": 1}, bogus)
    rc, _ = _run(tmp_path, "--checkpoint-in", str(bogus))
    assert rc == 2 and "not a filmqnn checkpoint" in capsys.readouterr().err
    rc, _ = _run(tmp_path, "--ratio", "1.5")
    assert rc == 2 and "--ratio" in capsys.readouterr().err
    rc, _ = _run(tmp_path, "--dataset", "cifar10")
    assert rc == 2 and "unknown dataset" in capsys.readouterr().err


def test_fake_quant_codes_inverts_dequantization() -> None:
    codes = np.array([[-32768, -1, 0, 1, 32767]], dtype=np.int64)
    scale = 0.0123
    fq = (codes * scale).astype(np.float32)
    assert np.array_equal(T.fake_quant_codes(fq, scale), codes)


@pytest.mark.skipif(not (HAVE_QAT and HAVE_CONVERT), reason="qat.py / convert.py not present yet")
@pytest.mark.parametrize("ratio", ["0.1", "0", "1"])
def test_qat_select_freeze_and_integer_agreement(
    tmp_path: Path, fp32_ckpt: tuple[Path, dict], ratio: str
) -> None:
    ck, _ = fp32_ckpt
    out_ck = tmp_path / "qat.pt"
    rc, m = _run(
        tmp_path, "--precision", "qat", "--ratio", ratio, "--checkpoint-in", str(ck),
        "--epochs-qat", "2", "--freeze-after", "1", "--calib-batches", "4",
        "--qat-monitor-images", "0",
        "--checkpoint-out", str(out_ck),
    )  # fmt: skip
    assert rc == 0
    assert [e["selection"] for e in m["epochs"] if e["phase"] == "qat"] == ["updated", "frozen"]
    assert m["fake_quant_acc"] > 40.0
    assert m["pred_mismatches"] == 0
    assert m["logit_code_mismatches"] == 0
    assert m["integer_acc"] == m["fake_quant_acc"]
    q = T.build_from_checkpoint(T.load_checkpoint(out_ck))
    assert bool(q.selection_frozen)
    bits = torch.cat([q.bits(layer.name) for layer in q.graph.layers()])
    n8 = int((bits == 8).sum())
    if ratio == "0":
        assert n8 == 0
    elif ratio == "1":
        assert n8 == len(bits)
    else:
        assert 0 < n8 < len(bits)
        # The QAT checkpoint reloads into a model with the same (integer) eval accuracy.
        test = D.load_dataset("fashion_mnist", "test")
        idx = D.subset_indices(test.labels, 500, 0)
        acc, _ = T.evaluate(q, D.ArrayDataset(test.images[idx], test.labels[idx], test.classes))
        assert acc == m["fake_quant_acc"]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
    )  # fmt: skip
    args = [*SMALL, "--precision", "fp32", "--epochs-fp32", "1", "--lr", "0.02"]
    rc = T.main([*args, "--json-out", out])
    if rc != 0:
        raise SystemExit(rc)


def test_ddp_two_ranks_gloo(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp.json"
    mp.spawn(_ddp_worker, args=(2, port, str(out)), nprocs=2, join=True)
    m = json.loads(out.read_text())
    assert m["world_size"] == 2 and m["train_images"] == 512
    assert m["fp32_acc"] > 10.0 and len(m["epochs"]) == 1


def test_committed_checkpoint_is_trained() -> None:
    path = Path(T.__file__).parent / "checkpoints" / "smallcnn_fmnist_fp32.pt"
    assert path.stat().st_size < 2_000_000
    ck = T.load_checkpoint(path)
    assert ck["dataset"] == "fashion_mnist" and ck["precision"] == "fp32"
    model = T.build_from_checkpoint(ck)
    test = D.load_dataset("fashion_mnist", "test")
    idx = D.subset_indices(test.labels, 1000, 0)
    acc, _ = T.evaluate(model, D.ArrayDataset(test.images[idx], test.labels[idx], test.classes))
    assert acc > 88.0  # 92.56 % on the whole test set when it was trained


def test_qat_for_a_board_exports_as_trained(
    tmp_path: Path, fp32_ckpt: tuple[Path, dict]
) -> None:
    """--board: the trained 8-bit filters fill exactly the board's slots, so export needs no
    re-selection and the exported golden model is the trained one."""
    from filmqnn_hw.spec.weight_image import read_image
    from filmqnn_quant.export import check_export, export

    ck, _ = fp32_ckpt
    out_ck = tmp_path / "qat_board.pt"
    rc, m = _run(
        tmp_path, "--precision", "qat", "--board", "pynq_z2", "--checkpoint-in", str(ck),
        "--epochs-qat", "1", "--calib-batches", "2", "--qat-monitor-images", "0",
        "--checkpoint-out", str(out_ck),
    )  # fmt: skip
    assert rc == 0 and m["pred_mismatches"] == 0
    saved = T.load_checkpoint(out_ck)
    assert saved["config"]["board"] == "pynq_z2"
    res = export("smallcnn", tmp_path / "exp", board="pynq_z2", checkpoint=out_ck,
                 log=lambda s: None)  # fmt: skip
    check_export(tmp_path / "exp")
    graph, _ = read_image(tmp_path / "exp" / "weights.bin")
    from filmqnn_hw.spec.config import AcceleratorConfig

    cfg = AcceleratorConfig.from_dict(saved["config"])
    for op in graph.conv_ops():
        assert op.n_8bit == cfg.n8_capacity(op.out_channels) or op.name == graph.ops[-1].name
    assert res.config.config_hash() == cfg.config_hash()
    bad = _run(tmp_path, "--precision", "qat", "--board", "zcu999", "--epochs-fp32", "0")[0]
    assert bad != 0
