"""Training CLI: FP32 baseline, filter-wise mixed-precision QAT, and golden-model evaluation.

``python -m filmqnn_quant train --model smallcnn --dataset fashion_mnist ...`` (or
:func:`main` with an argument list). The flow is

1. FP32: train ``--epochs-fp32`` epochs (SGD + Nesterov momentum, one-cycle LR schedule), or
   load ``--checkpoint-in`` (then the default is 0 further FP32 epochs).
2. ``--precision qat``: :func:`filmqnn_quant.qat.prepare_qat` with ``--ratio`` (fraction of 8-bit
   filters; 0 = all 4-bit W4A5, 1 = all 8-bit W8A5), calibrate on ``--calib-batches`` training
   batches, then ``--epochs-qat`` QAT epochs (cosine LR from ``--qat-lr``). At the start of each
   of the first ``--freeze-after`` QAT epochs the 8-bit filters are re-selected on one batch
   (paper Eq. 4, :meth:`QuantModel.select_8bit`); after that the selection is frozen
   (:meth:`QuantModel.freeze_selection`). The paper uses 100 of 150 epochs.
3. Evaluation on the whole test set: FP32 accuracy, or for QAT the fake-quant accuracy
   *and* the integer golden model's accuracy (:func:`filmqnn_quant.convert.to_integer`, run on
   :func:`filmqnn_hw.spec.numerics.quantize_input` codes) with the number of images whose
   prediction differs and whose logit codes differ (both must be 0).

Input pixels are in [0, 1] with no normalisation (the hardware input scale is 1/31).

The command line requires ``--checkpoint-out`` and/or ``--json-out`` (a run that saves nothing
is refused), and :func:`check_args` refuses wrong values, missing inputs and unwritable
outputs before any data is loaded.

Distributed: under ``torchrun`` (``WORLD_SIZE > 1``) the process group is initialised from the
environment (gloo on CPU, nccl on CUDA), each rank trains on its
:class:`~torch.utils.data.DistributedSampler` shard through
:class:`~torch.nn.parallel.DistributedDataParallel`; only rank 0 evaluates, logs and saves.
The selection batch of each epoch is drawn from a generator seeded by ``(seed, epoch)``, so every
rank selects the same filters without communication.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from filmqnn_hw.spec.files import atomic_write
from filmqnn_hw.spec.numerics import INPUT_SCALE
from filmqnn_quant.data import (
    DATASETS,
    ArrayDataset,
    load_dataset,
    make_loader,
    set_epoch,
    subset_indices,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainError",
    "build_parser",
    "check_args",
    "main",
    "run",
    "evaluate",
    "integer_evaluate",
    "save_checkpoint",
    "load_checkpoint",
    "INPUT_SCALE",
]

#: Version tag stored in every checkpoint written by :func:`save_checkpoint`.
CHECKPOINT_FORMAT = "filmqnn-checkpoint-v1"


class TrainError(RuntimeError):
    """A training request that cannot be carried out; the message says why and what to do."""


# -- arguments -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m filmqnn_quant train``."""
    p = argparse.ArgumentParser(
        prog="python -m filmqnn_quant train",
        description="Train an FP32 baseline and/or a filter-wise mixed-precision (W4/W8, A5) QAT "
        "model, then evaluate it with the fake-quant model and the integer golden model.",
    )
    p.add_argument("--model", default="smallcnn", help="model name for models.build_model")
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra keyword argument for build_model (repeatable), e.g. dropout=0.1",
    )
    p.add_argument(
        "--width-mult",
        type=float,
        default=None,
        help="channel multiplier (SmallCNN base 32, ResNet base 64): 0.25 gives a ResNet-18 of "
        "base width 16",
    )
    p.add_argument(
        "--small-input",
        choices=("auto", "yes", "no"),
        default="auto",
        help="small-image stem (3x3 stride-1, no max-pool); auto: yes when the image side <= 64",
    )
    p.add_argument(
        "--dataset", default="fashion_mnist", help="fashion_mnist | mnist | digits | folder:PATH"
    )
    p.add_argument("--precision", choices=("fp32", "qat"), default="qat")
    p.add_argument(
        "--epochs-fp32",
        type=int,
        default=None,
        help="FP32 epochs (default 3, or 0 when --checkpoint-in is given)",
    )
    p.add_argument("--epochs-qat", type=int, default=2, help="QAT epochs (precision qat)")
    p.add_argument(
        "--freeze-after",
        type=int,
        default=None,
        help="QAT epochs with 8-bit re-selection before freezing (default: 2/3 of --epochs-qat, "
        "as the paper's 100 of 150)",
    )
    p.add_argument(
        "--ratio", type=float, default=0.05, help="fraction of 8-bit filters (0: W4A5, 1: W8A5)"
    )
    p.add_argument(
        "--board",
        default=None,
        help="train for this board's accelerator: the 8-bit filters of every layer fill exactly "
        "its 8-bit slots per tile (filmqnn_hw.search.dse.design), so the checkpoint exports as "
        "trained",
    )
    p.add_argument(
        "--config", type=Path, default=None, help="accelerator config JSON instead of --board"
    )
    p.add_argument("--lr", type=float, default=0.1, help="FP32 peak learning rate (one-cycle)")
    p.add_argument("--qat-lr", type=float, default=0.01, help="QAT initial learning rate (cosine)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=500)
    p.add_argument("--calib-batches", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=None, help="train on a seeded stratified subset")
    p.add_argument("--test-subset", type=int, default=None, help="evaluate on a subset")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--checkpoint-in", type=Path, default=None, help="continue from this checkpoint")
    p.add_argument(
        "--checkpoint-out",
        type=Path,
        default=None,
        help="write the trained model here (this and/or --json-out is required)",
    )
    p.add_argument(
        "--qat-monitor-images",
        type=int,
        default=1000,
        help="test images (seeded stratified subset) for the PTQ and per-epoch QAT accuracy; "
        "the eval-mode QAT model runs the exact integer model, which is slow on a CPU (0: skip). "
        "The final accuracies always use the whole test set",
    )
    p.add_argument(
        "--no-integer",
        action="store_true",
        help="skip the integer golden-model evaluation (faster, but the agreement is unchecked)",
    )
    p.add_argument(
        "--json-out",
        type=Path,
        default=None,
        help="write the metrics as JSON (this and/or --checkpoint-out is required)",
    )
    p.add_argument("--quiet", action="store_true", help="only the final summary")
    return p


#: Options that must be at least the given value when they are set.
_MINIMUM = (
    ("epochs_fp32", 0),
    ("epochs_qat", 0),
    ("freeze_after", 0),
    ("batch_size", 1),
    ("eval_batch_size", 1),
    ("calib_batches", 1),
    ("subset", 1),
    ("test_subset", 1),
    ("threads", 1),
    ("qat_monitor_images", 0),
)


def _check_output_file(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written, without creating anything."""
    if path.is_dir():
        raise TrainError(f"{option} {path} is a directory; give a file name inside it")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if parent.is_dir():
        # A nameless temporary file: permissions, read-only mounts and pseudo file systems
        # all refuse it, also for root (for whom os.access says yes).
        try:
            with tempfile.TemporaryFile(dir=parent):
                return
        except OSError:
            pass
    raise TrainError(
        f"cannot write {option} {path}: {parent} is not a writable directory; choose another path"
    )


def check_args(args: argparse.Namespace) -> None:
    """Refuse a request with wrong arguments before any data is loaded or model trained.

    Raises :class:`TrainError` naming the option, the problem and what to do.
    """
    if not 0.0 <= args.ratio <= 1.0:
        raise TrainError(f"--ratio must be in [0, 1], not {args.ratio}")
    for name, low in _MINIMUM:
        value = getattr(args, name)
        if value is not None and value < low:
            option = "--" + name.replace("_", "-")
            raise TrainError(f"{option} must be at least {low}, not {value}")
    dataset = args.dataset.replace("-", "_").lower()
    if not args.dataset.startswith("folder:") and dataset not in DATASETS:
        raise TrainError(
            f"--dataset: unknown dataset {args.dataset!r}; use one of {', '.join(DATASETS)} "
            "or folder:PATH"
        )
    if args.checkpoint_in is not None and not args.checkpoint_in.is_file():
        raise TrainError(
            f"--checkpoint-in {args.checkpoint_in} does not exist; give a checkpoint written "
            "by --checkpoint-out"
        )
    if args.config is not None and not args.config.is_file():
        raise TrainError(f"--config {args.config} does not exist; give an accelerator config JSON")
    for option, path in (("--checkpoint-out", args.checkpoint_out), ("--json-out", args.json_out)):
        if path is not None:
            _check_output_file(path, option)


# -- distributed ---------------------------------------------------------------------------------
@dataclass
class Dist:
    """Process-group facts: rank, world size, device; ``enabled`` when WORLD_SIZE > 1."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"
    enabled: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Initialise torch.distributed from torchrun's environment variables when WORLD_SIZE > 1."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return Dist(device="cuda" if cuda else "cpu")
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    device = "cpu"
    if cuda:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return Dist(rank=rank, world=world, device=device, enabled=True)


# -- checkpoints ---------------------------------------------------------------------------------
def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` with torch.save atomically (temp file, then rename)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; clear error on a foreign file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise TrainError(f"checkpoint {path} does not exist")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(
            f"{path} is not a filmqnn checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
            "write checkpoints with `python -m filmqnn_quant train --checkpoint-out`"
        )
    return ck


def build_from_checkpoint(ck: dict[str, Any]):
    """Rebuild the model of a checkpoint: the FP32 module, or the QuantModel for QAT ones."""
    from filmqnn_quant.models import build_model

    model = build_model(ck["model"], **ck["model_kwargs"])
    if ck["precision"] == "fp32":
        model.load_state_dict(ck["state_dict"])
        return model
    import torch

    from filmqnn_quant.qat import prepare_qat

    example = torch.zeros((1, *ck["input_shape"]))
    config = None
    if ck.get("config"):
        from filmqnn_hw.spec.config import AcceleratorConfig

        config = AcceleratorConfig.from_dict(ck["config"])
    qmodel = prepare_qat(model, config, ratio=ck["ratio"], example_input=example)
    qmodel.load_state_dict(ck["state_dict"])
    return qmodel


# -- training and evaluation ---------------------------------------------------------------------
def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}%"


def _log(d: Dist, quiet: bool, msg: str) -> None:
    if d.main and not quiet:
        print(msg, flush=True)


def _train_epoch(model, loader, opt, sched, device: str) -> tuple[float, float, float]:
    """One epoch; returns (mean loss, accuracy %, wall seconds) over this rank's shard."""
    import torch.nn.functional as F

    model.train()
    t0 = time.perf_counter()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        loss_sum += float(loss.detach()) * len(y)
        correct += int((out.detach().argmax(1) == y).sum())
        seen += len(y)
    if not math.isfinite(loss_sum):
        raise TrainError("training diverged (loss is not finite); lower --lr or --qat-lr")
    return loss_sum / max(seen, 1), 100.0 * correct / max(seen, 1), time.perf_counter() - t0


def evaluate(model, ds: ArrayDataset, batch_size: int = 500, device: str = "cpu"):
    """Outputs of ``model`` in eval mode on the whole dataset: (accuracy %, outputs float32)."""
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(ds), batch_size):
            x = torch.from_numpy(ds.images[i : i + batch_size]).to(device)
            outs.append(model(x).float().cpu().numpy())
    out = np.concatenate(outs)
    acc = 100.0 * float(np.mean(out.argmax(1) == ds.labels))
    return acc, out


def integer_evaluate(graph, ds: ArrayDataset, batch_size: int = 250):
    """Run the golden integer model on ``ds``: (accuracy %, output codes int64 (N, classes))."""
    from filmqnn_hw.spec.numerics import quantize_input

    outs = []
    for i in range(0, len(ds), batch_size):
        codes = quantize_input(ds.images[i : i + batch_size], INPUT_SCALE)
        outs.append(np.asarray(graph.run(codes)).reshape(len(codes), -1))
    out = np.concatenate(outs)
    acc = 100.0 * float(np.mean(out.argmax(1) == ds.labels))
    return acc, out


def fake_quant_codes(outputs: np.ndarray, scale: float, zero_point: int = 0) -> np.ndarray:
    """The integer codes that the fake-quant model's dequantized outputs represent."""
    return np.floor(outputs.astype(np.float64) / scale + 0.5).astype(np.int64) + zero_point


def _selection_batch(train: ArrayDataset, idx: np.ndarray, seed: int, epoch: int, n: int):
    """The batch the 8-bit filters are selected on at QAT epoch ``epoch`` (same on all ranks)."""
    import torch

    rng = np.random.default_rng([seed, epoch, 0x5E1])
    pick = np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False))
    return torch.from_numpy(train.images[pick])


def _model_kwargs(args: argparse.Namespace, train: ArrayDataset) -> dict[str, Any]:
    from filmqnn_quant.models import parse_model_arg

    kw: dict[str, Any] = {"num_classes": train.num_classes, "in_channels": train.input_shape[0]}
    if args.width_mult is not None:
        kw["width_mult"] = args.width_mult
    side = min(train.input_shape[1:])
    kw["small_input"] = side <= 64 if args.small_input == "auto" else args.small_input == "yes"
    if args.model.lower().replace("-", "_") in ("smallcnn", "small_cnn", "cnn"):
        if train.input_shape[1] != train.input_shape[2]:
            raise TrainError(f"SmallCNN needs square images, not {train.input_shape[1:]}")
        kw["input_size"] = train.input_shape[1]
    for item in args.model_arg:
        if "=" not in item:
            raise TrainError(f"--model-arg needs KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        kw[k.strip().replace("-", "_")] = parse_model_arg(v.strip())
    return kw


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Carry out one training request; returns the metrics (rank 0's are complete)."""
    check_args(args)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    d = init_distributed()
    q = args.quiet
    torch.manual_seed(args.seed)
    t_start, cpu_start = time.perf_counter(), time.process_time()

    config = None
    if args.board is not None or args.config is not None:
        from filmqnn_quant.export import ExportError, load_config

        try:
            config = load_config(args.board, args.config, args.ratio)
        except ExportError as e:
            raise TrainError(str(e)) from None
    train = load_dataset(args.dataset, "train")
    test = load_dataset(args.dataset, "test")
    if args.test_subset is not None:
        ti = subset_indices(test.labels, args.test_subset, args.seed)
        test = ArrayDataset(test.images[ti], test.labels[ti], test.classes, test.name)
    mon = test
    if args.qat_monitor_images and args.qat_monitor_images < len(test):
        mi = subset_indices(test.labels, args.qat_monitor_images, args.seed)
        mon = ArrayDataset(test.images[mi], test.labels[mi], test.classes, test.name)
    train_idx = subset_indices(train.labels, args.subset, args.seed)
    loader = make_loader(
        train,
        args.batch_size,
        shuffle=True,
        seed=args.seed,
        subset=args.subset,
        distributed=d.enabled,
    )
    _log(
        d,
        q,
        f"[data] {args.dataset}: train {len(train_idx)} / test {len(test)} images, "
        f"shape {train.input_shape}, {train.num_classes} classes, world {d.world}",
    )

    from filmqnn_quant.models import build_model

    ck = load_checkpoint(args.checkpoint_in) if args.checkpoint_in else None
    if ck is not None:
        model_name, kwargs = ck["model"], dict(ck["model_kwargs"])
        if tuple(ck["input_shape"]) != train.input_shape:
            raise TrainError(
                f"checkpoint {args.checkpoint_in} was trained on inputs {ck['input_shape']}, "
                f"dataset {args.dataset} has {train.input_shape}"
            )
    else:
        model_name, kwargs = args.model, _model_kwargs(args, train)
    model = build_model(model_name, **kwargs).to(d.device)
    epochs_fp32 = args.epochs_fp32 if args.epochs_fp32 is not None else (0 if ck else 3)
    metrics: dict[str, Any] = {
        "model": model_name,
        "model_kwargs": kwargs,
        "dataset": args.dataset,
        "precision": args.precision,
        "ratio": args.ratio if args.precision == "qat" else None,
        "seed": args.seed,
        "train_images": int(len(train_idx)),
        "test_images": len(test),
        "world_size": d.world,
        "threads": torch.get_num_threads(),
        "epochs": [],
    }
    qmodel = None
    if ck is not None and ck["precision"] == "qat":
        if args.precision != "qat":
            raise TrainError("a QAT checkpoint can only continue with --precision qat")
        qmodel = build_from_checkpoint(ck).to(d.device)
        metrics["ratio"] = ck["ratio"]
        if epochs_fp32:
            raise TrainError("--epochs-fp32 must be 0 when continuing from a QAT checkpoint")
    elif ck is not None:
        model.load_state_dict(ck["state_dict"])

    def wrap(m):
        if not d.enabled:
            return m
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(m, device_ids=None if d.device == "cpu" else [d.device])

    def sgd(net, lr: float):
        """The optimizer of both phases: SGD with Nesterov momentum and weight decay."""
        return torch.optim.SGD(
            net.parameters(),
            lr=lr,
            momentum=args.momentum,
            nesterov=True,
            weight_decay=args.weight_decay,
        )

    # ---- FP32 ----
    if epochs_fp32 > 0:
        net = wrap(model)
        opt = sgd(net, args.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=args.lr, total_steps=epochs_fp32 * len(loader)
        )
        for e in range(epochs_fp32):
            set_epoch(loader, e)
            loss, acc, sec = _train_epoch(net, loader, opt, sched, d.device)
            ev = evaluate(model, test, args.eval_batch_size, d.device)[0] if d.main else None
            metrics["epochs"].append(
                {
                    "phase": "fp32",
                    "epoch": e + 1,
                    "loss": loss,
                    "train_acc": acc,
                    "test_acc": ev,
                    "seconds": sec,
                }
            )
            _log(
                d,
                q,
                f"[fp32 {e + 1}/{epochs_fp32}] loss {loss:.4f} train {acc:.2f}% "
                f"test {_pct(ev)} ({sec:.1f} s)",
            )
    if d.main and qmodel is None:
        last = metrics["epochs"][-1]["test_acc"] if metrics["epochs"] else None
        metrics["fp32_acc"] = (
            last if last is not None else evaluate(model, test, args.eval_batch_size, d.device)[0]
        )
    payload_model = model

    # ---- QAT ----
    if args.precision == "qat":
        from filmqnn_quant.qat import prepare_qat

        example = torch.from_numpy(train.images[:2]).to(d.device)
        if qmodel is None:
            qmodel = prepare_qat(model, config, ratio=args.ratio, example_input=example)
            t0 = time.perf_counter()
            # The same calibration batches on every rank (a non-distributed seeded loader).
            calib_loader = make_loader(
                train, args.batch_size, shuffle=True, seed=args.seed, subset=args.subset
            )
            calib = [
                x.to(d.device)
                for _, (x, _) in zip(range(args.calib_batches), calib_loader, strict=False)
            ]
            qmodel.calibrate(calib)
            _log(
                d, q, f"[qat] calibrated on {len(calib)} batches ({time.perf_counter() - t0:.1f} s)"
            )
            if d.main:
                metrics["ptq_acc"] = (
                    evaluate(qmodel, mon, args.eval_batch_size, d.device)[0]
                    if args.qat_monitor_images
                    else None
                )
                metrics["monitor_images"] = len(mon) if args.qat_monitor_images else 0
                _log(
                    d,
                    q,
                    f"[qat] after calibration (PTQ): {_pct(metrics['ptq_acc'])} on "
                    f"{len(mon)} test images",
                )
        freeze_after = (
            args.freeze_after
            if args.freeze_after is not None
            else int(round(args.epochs_qat * 2 / 3))
        )
        metrics["freeze_after"] = freeze_after
        net = wrap(qmodel)
        opt = sgd(net, args.qat_lr)
        steps = max(args.epochs_qat * len(loader), 1)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, steps) / steps))
        )
        frozen = False
        for e in range(args.epochs_qat):
            set_epoch(loader, e)
            if e < freeze_after:
                xs = _selection_batch(train, train_idx, args.seed, e, args.batch_size)
                qmodel.select_8bit(xs.to(d.device))
            elif not frozen:
                qmodel.freeze_selection()
                frozen = True
            loss, acc, sec = _train_epoch(net, loader, opt, sched, d.device)
            ev = (
                evaluate(qmodel, mon, args.eval_batch_size, d.device)[0]
                if d.main and args.qat_monitor_images
                else None
            )
            metrics["epochs"].append(
                {
                    "phase": "qat",
                    "epoch": e + 1,
                    "loss": loss,
                    "train_acc": acc,
                    "test_acc": ev,
                    "seconds": sec,
                    "selection": "updated" if e < freeze_after else "frozen",
                }
            )
            _log(
                d,
                q,
                f"[qat {e + 1}/{args.epochs_qat}] loss {loss:.4f} train {acc:.2f}% "
                f"fake-quant test {_pct(ev)} ({sec:.1f} s, selection "
                f"{'updated' if e < freeze_after else 'frozen'})",
            )
        if not frozen:
            qmodel.freeze_selection()
        payload_model = qmodel
        metrics.update(_bit_stats(qmodel))
        if d.main:
            fq_acc, fq_out = evaluate(qmodel, test, args.eval_batch_size, d.device)
            metrics["fake_quant_acc"] = fq_acc
            _log(d, q, f"[eval] fake-quant test accuracy {fq_acc:.2f}%")
            if not args.no_integer:
                metrics.update(_integer_check(qmodel, test, fq_out, d, q))

    metrics["wall_seconds"] = time.perf_counter() - t_start
    metrics["cpu_seconds"] = time.process_time() - cpu_start
    if d.main and args.checkpoint_out is not None:
        save_checkpoint(
            args.checkpoint_out,
            {
                "format": CHECKPOINT_FORMAT,
                "model": model_name,
                "model_kwargs": kwargs,
                "precision": args.precision,
                "ratio": metrics["ratio"],
                "config": None if config is None else config.to_dict(),
                "input_shape": list(train.input_shape),
                "classes": train.classes,
                "dataset": args.dataset,
                "state_dict": payload_model.state_dict(),
                "metrics": {k: v for k, v in metrics.items() if k != "epochs"},
            },
        )
        _log(d, q, f"[save] {args.checkpoint_out}")
    if d.enabled:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return metrics


def _bit_stats(qmodel) -> dict[str, Any]:
    """Counts of 8-bit filters and the fraction of weights stored at 8 bits."""
    n8 = n = w8 = w = 0
    per_layer = {}
    for layer in qmodel.graph.layers():
        bits = qmodel.bits(layer.name)
        fan_in = int(qmodel.model.get_submodule(layer.name).weight[0].numel())
        k8 = int((bits == 8).sum())
        per_layer[layer.name] = [k8, int(bits.numel())]
        n8, n = n8 + k8, n + int(bits.numel())
        w8, w = w8 + k8 * fan_in, w + int(bits.numel()) * fan_in
    return {
        "filters_8bit": n8,
        "filters": n,
        "weights_8bit_fraction": w8 / max(w, 1),
        "layers_8bit": per_layer,
    }


def _integer_check(qmodel, test: ArrayDataset, fq_out: np.ndarray, d: Dist, q: bool):
    """Convert to the integer graph, run it on ``test`` and compare with the fake-quant outputs."""
    from filmqnn_quant.convert import to_integer

    t0 = time.perf_counter()
    graph = to_integer(qmodel, test.input_shape)
    int_acc, codes = integer_evaluate(graph, test)
    spec = graph.tensors[graph.output]
    fq_codes = fake_quant_codes(fq_out.reshape(codes.shape), spec.scale, spec.zero_point)
    pred_diff = int(np.sum(codes.argmax(1) != fq_out.reshape(codes.shape).argmax(1)))
    code_diff = int(np.sum(np.any(codes != fq_codes, axis=1)))
    sec = time.perf_counter() - t0
    _log(
        d,
        q,
        f"[eval] integer golden-model accuracy {int_acc:.2f}% on {len(test)} images "
        f"({sec:.1f} s); predictions differing from fake-quant: {pred_diff}; "
        f"images with any differing logit code: {code_diff}",
    )
    return {
        "integer_acc": int_acc,
        "pred_mismatches": pred_diff,
        "logit_code_mismatches": code_diff,
        "integer_seconds": sec,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (``python -m filmqnn_quant train ...``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.checkpoint_out is None and args.json_out is None:
        # Training takes minutes; a run that keeps neither the model nor its metrics would
        # throw both away, so it is refused before any work (usage and exit status 2).
        parser.error(
            "the following arguments are required: --checkpoint-out FILE.pt and/or "
            "--json-out FILE.json (without them the run trains and saves nothing)"
        )
    try:
        metrics = run(args)
        metrics["argv"] = argv
    except (TrainError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json_out is not None and int(os.environ.get("RANK", "0")) == 0:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.json_out, json.dumps(metrics, indent=1, default=float))
    _summary(metrics)
    bad = metrics.get("pred_mismatches", 0) or metrics.get("logit_code_mismatches", 0)
    return 1 if bad else 0


def _summary(m: dict[str, Any]) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    parts = [f"{m['model']} {m['dataset']} {m['precision']}"]
    if m.get("ratio") is not None:
        parts.append(f"ratio {m['ratio']}")
    for k in ("fp32_acc", "ptq_acc", "fake_quant_acc", "integer_acc"):
        if m.get(k) is not None:
            parts.append(f"{k} {m[k]:.2f}%")
    if "pred_mismatches" in m:
        parts.append(f"mismatches {m['pred_mismatches']}/{m['logit_code_mismatches']}")
    parts.append(f"wall {m['wall_seconds']:.1f} s")
    print("[done] " + ", ".join(parts), flush=True)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
