"""Command line: ``python -m filmqnn_quant {export,check,train} ...`` (also ``filmqnn-quant``).

* ``export``: build a model, quantize it for a board's accelerator and write
  ``DIR/weights.bin``, ``DIR/manifest.json`` and ``DIR/config.json`` (see
  :mod:`filmqnn_quant.export` and ``docs/weight-image.md``).
* ``check DIR``: validate an export directory; exit 0 with a one-line summary, 1 with the
  problem.
* ``train ...``: dispatched to :func:`filmqnn_quant.train.main`.

Exit status: 0 success, 1 a check failed, 2 bad arguments or an export that cannot be done.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``export`` and ``check`` subcommands."""
    p = argparse.ArgumentParser(
        prog="python -m filmqnn_quant",
        description="FILM-QNN quantizer: export weight images, check them, train models.",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{export,check,train}")
    e = sub.add_parser("export", help="quantize a model for a board and write weights.bin")
    e.add_argument("--model", required=True,
                   help="resnet18, resnet50, mobilenet_v2, smallcnn, or your own model as "
                        "FILE.py:FUNCTION (a function returning an nn.Module; "
                        "docs/own-model.md)")
    e.add_argument("--name", default=None,
                   help="your model's name in the manifest and reports (default: FUNCTION)")
    e.add_argument("--board", default=None, help="board name for filmqnn_hw.search.dse.design")
    e.add_argument("--config", default=None, help="accelerator config JSON instead of --board")
    e.add_argument("--out", required=True, help="output directory (replaced atomically)")
    e.add_argument("--checkpoint", default=None, help="state_dict or train checkpoint")
    e.add_argument("--ratio", type=float, default=None, help="fraction of 8-bit filters (0.05)")
    e.add_argument("--input-size", type=int, nargs="+", metavar="N", default=None,
                   help="[C] H W of one input image (C defaults to 3; required for your own "
                        "model)")
    e.add_argument("--num-classes", type=int, default=None,
                   help="classes (passed to your FUNCTION as num_classes)")
    e.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra model option, e.g. width_mult=0.5, passed to build_model or to your "
        "FUNCTION (repeatable)",
    )
    e.add_argument("--calib-batches", type=int, default=2, help="calibration batches (2)")
    e.add_argument("--batch-size", type=int, default=8, help="calibration batch size (8)")
    e.add_argument("--calib-data", default=None,
                   help="calibration images: a dataset name (fashion_mnist, mnist, digits, "
                        "folder:PATH), a .npy array (N, C, H, W) or a folder of images, in "
                        "[0, 1] or uint8 (default: random images, said loudly)")
    e.add_argument("--seed", type=int, default=0, help="seed of random init / random images")
    e.add_argument(
        "--reselect",
        action="store_true",
        help="QAT checkpoint: choose the 8-bit filters again for this accelerator (may cost "
        "accuracy)",
    )
    e.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    e.add_argument("--quiet", action="store_true", help="only the final line")
    c = sub.add_parser("check", help="validate an export directory")
    c.add_argument("dir")
    sub.add_parser("train", help="train a model (see `python -m filmqnn_quant train --help`)")
    return p



def _train(argv: list[str]) -> int:
    try:
        mod = importlib.import_module("filmqnn_quant.train")
    except ModuleNotFoundError as e:
        if e.name == "filmqnn_quant.train":
            print("error: filmqnn_quant.train is not available in this checkout", file=sys.stderr)
            return 2
        raise
    fn = getattr(mod, "main", None)
    if not callable(fn):
        print("error: filmqnn_quant.train has no main(argv) function", file=sys.stderr)
        return 2
    return int(fn(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        return _train(argv[1:])
    args = build_parser().parse_args(argv)
    from filmqnn_quant.export import ExportError, check_export

    if args.cmd == "check":
        try:
            print(check_export(args.dir))
        except ExportError as err:
            print(f"FAIL: {err}", file=sys.stderr)
            return 1
        return 0
    # export
    from filmqnn_quant.export import export
    from filmqnn_quant.models import parse_model_arg

    def log(msg: str) -> None:
        if not args.quiet or msg.startswith("[export] !!!"):
            print(msg, flush=True)

    model_args = {}
    for item in args.model_arg:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            print(f"error: --model-arg needs KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        model_args[key.strip().replace("-", "_")] = parse_model_arg(value.strip())
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        res = export(
            args.model,
            args.out,
            name=args.name,
            board=args.board,
            config_file=args.config,
            checkpoint=args.checkpoint,
            ratio=args.ratio,
            input_size=tuple(args.input_size) if args.input_size else None,
            num_classes=args.num_classes,
            calib_batches=args.calib_batches,
            batch_size=args.batch_size,
            calib_data=args.calib_data,
            seed=args.seed,
            reselect=args.reselect,
            model_args=model_args,
            log=log,
        )
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    m = res.manifest
    t = m["totals"]
    flag = " [RANDOM INIT: not a trained model]" if m["random_init"] else ""
    print(
        f"exported {m['model']} for {m['board']} (config {m['config_hash'][:12]}) to "
        f"{res.out_dir}: {t['conv_layers']} conv layers, {t['weights']} weights, "
        f"{t['filters_8bit']}/{t['filters']} filters 8-bit, {m['image']['bytes']} bytes, "
        f"{res.seconds.get('total', 0.0):.1f} s{flag}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
