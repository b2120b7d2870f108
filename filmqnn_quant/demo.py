"""End-to-end demo: ``python -m filmqnn_quant.demo``.

Fashion-MNIST small CNN (the committed FP32 checkpoint, or ``--checkpoint``) -> quantized and
exported for a board (the ``filmqnn_quant export`` code path, calibrated on Fashion-MNIST)
-> the accelerator's Verilog -> Verilator -> ``--images N`` test images through the simulated
hardware with the host driver (:mod:`filmqnn_hw.host.driver`) -> a table of true label, hardware
prediction and golden-model prediction, then cycles per frame and FPS.

``--sim-config``: which accelerator the simulation builds.

* ``small`` (default): ``AcceleratorConfig.small(act_pack=8, axi_data_bits=128)``, an 8x8
  array of the same design. The network is exported a second time for it (same checkpoint,
  same calibration images); the hardware output equals that export's golden model bit for
  bit, and the table also shows the golden model of the board export (what the board
  computes, since the hardware equals the golden model for every config). Cycles and FPS are
  those of the small array, labelled so; no board FPS is printed.
* ``board``: the board's own config (PYNQ-Z2: 28x32 array). Its Verilog takes ~30 s to emit
  and its Verilator build is long (see ``docs/rtl.md``, "Driver and demo"); cycles and FPS are
  then the board config's, measured in simulation (RTL schedule).

Every flag is checked before any work (the test-image range against the Fashion-MNIST test set,
which is loaded first: it takes well under a second), and a run that fails removes the
directories it created while they are still empty.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from filmqnn_quant.data import ArrayDataset

__all__ = ["main", "build_parser", "SIM_CONFIGS", "DEFAULT_CHECKPOINT", "small_sim_config"]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "filmqnn_quant" / "checkpoints" / (
    "smallcnn_fmnist_fp32.pt")
SIM_CONFIGS = ("small", "board")


def small_sim_config():
    """The simulated accelerator of ``--sim-config small`` (same as tests/host/test_driver.py)."""
    from filmqnn_hw.spec.config import AcceleratorConfig

    return AcceleratorConfig.small(act_pack=8, axi_data_bits=128)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m filmqnn_quant.demo",
        description="Fashion-MNIST small CNN: export for a board, simulate the accelerator "
        "with Verilator through the host driver, compare with the golden model.")
    p.add_argument("--board", default="pynq_z2", help="pynq_z2 (default) or zcu102")
    p.add_argument("--checkpoint", default=None,
                   help=f"smallcnn checkpoint (default: {DEFAULT_CHECKPOINT.name})")
    p.add_argument("--images", type=int, default=4, help="test images to run (4)")
    p.add_argument("--first-image", type=int, default=0, help="index of the first test image")
    p.add_argument("--sim-config", choices=("auto", *SIM_CONFIGS), default="auto",
                   help="accelerator to simulate: board (the board's own array), small (8x8 "
                        "array) or auto (default: board for pynq_z2, whose Verilator build "
                        "takes about 2 minutes; small for zcu102, whose top takes Verilator "
                        "about 4 minutes and 4.4 GB to build)")
    p.add_argument("--calib-data", default="fashion_mnist",
                   help="calibration images for the export (fashion_mnist)")
    p.add_argument("--out", default="build/demo", help="work directory (build/demo)")
    p.add_argument("--sim-dir", default=None,
                   help="Verilator cache directory (default OUT/sim; builds are reused)")
    p.add_argument("--jobs", type=int, default=2, help="parallel C++ compile jobs (2)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    return p


def _step(msg: str) -> None:
    print(msg, flush=True)


def _dir_problem(path: Path, option: str) -> str | None:
    """Why ``path`` cannot be a directory this run creates and writes into, or None."""
    if path.exists() and not path.is_dir():
        return f"{option} {path} exists and is not a directory; choose another path"
    parent = path.absolute()
    while not parent.exists():
        parent = parent.parent
    if parent.is_dir():
        # A nameless temporary file: permissions, read-only mounts and pseudo file systems
        # all refuse it, also for root (for whom os.access says yes).
        try:
            with tempfile.TemporaryFile(dir=parent):
                return None
        except OSError:
            pass
    return (
        f"cannot write {option} {path}: {parent} is not a writable directory; choose another "
        "path"
    )


def _args_problem(args: argparse.Namespace) -> str | None:
    """The first wrong flag (one line naming it, the problem and what to do), or None.

    Only cheap checks: no dataset, model or hardware is loaded here.
    """
    if args.images < 1:
        return f"--images must be at least 1, not {args.images}"
    if args.first_image < 0:
        return f"--first-image must be at least 0, not {args.first_image}"
    if args.jobs < 1:
        return f"--jobs must be at least 1, not {args.jobs}"
    if args.threads is not None and args.threads < 1:
        return f"--threads must be at least 1, not {args.threads}"
    try:
        from boards import list_boards
    except ImportError:  # the export reports the board itself
        known: list[str] = []
    else:
        known = list_boards()
    if known and args.board not in known:
        return f"--board: unknown board {args.board!r}; valid boards: {', '.join(known)}"
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        return (
            f"--checkpoint {args.checkpoint} does not exist; give a smallcnn checkpoint "
            "(python -m filmqnn_quant train --checkpoint-out) or omit it"
        )
    if args.checkpoint is None and not DEFAULT_CHECKPOINT.is_file():
        return f"the default checkpoint {DEFAULT_CHECKPOINT} is missing; pass --checkpoint FILE"
    from filmqnn_quant.data import DATASETS

    calib = args.calib_data
    if calib.startswith("folder:"):
        if not Path(calib[len("folder:") :]).expanduser().is_dir():
            return (
                f"--calib-data {calib}: {calib[len('folder:') :]} is not a directory; give a "
                "folder dataset (PATH/train/<class>/<image>)"
            )
    elif calib.replace("-", "_").lower() not in DATASETS:
        return (
            f"--calib-data: unknown dataset {calib!r}; use one of {', '.join(DATASETS)} or "
            "folder:PATH"
        )
    for option, path in (("--out", args.out), ("--sim-dir", args.sim_dir)):
        if path is not None and (problem := _dir_problem(Path(path), option)):
            return problem
    return None


def _range_problem(args: argparse.Namespace, n_test: int) -> str | None:
    """Why ``--first-image``/``--images`` do not fit a test set of ``n_test`` images, or None."""
    if args.images > n_test:
        return (
            f"--images {args.images} is more than the Fashion-MNIST test set's {n_test} images; "
            f"choose at most {n_test}"
        )
    last = args.first_image + args.images - 1
    if last >= n_test:
        return (
            f"--first-image {args.first_image} with --images {args.images} needs test images "
            f"{args.first_image}..{last}, but the Fashion-MNIST test set has {n_test} "
            f"(0..{n_test - 1}); choose --first-image at most {n_test - args.images}"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = _args_problem(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from filmqnn_quant.data import load_dataset

    # The test images first: the range is known only from the dataset, and a wrong one must be
    # refused before minutes of export and Verilator build.
    try:
        ds = load_dataset("fashion_mnist", "test")
    except (FileNotFoundError, ValueError) as e:
        print(f"error: Fashion-MNIST test set: {e}", file=sys.stderr)
        return 2
    problem = _range_problem(args, len(ds))
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # Directories this run creates, deepest first: removed again if it fails while they are
    # still empty, so a failed run leaves no empty output folder behind.
    targets = [Path(args.out)] + ([Path(args.sim_dir)] if args.sim_dir else [])
    created = {q for t in targets for q in (t.absolute(), *t.absolute().parents) if not q.exists()}
    rc = 1
    try:
        rc = _run(args, ds)
    finally:
        if rc != 0:
            for q in sorted(created, key=lambda q: len(q.parts), reverse=True):
                try:
                    q.rmdir()
                except OSError:  # not empty (or already gone): keep what the run produced
                    pass
    return rc


def _run(args: argparse.Namespace, ds: ArrayDataset) -> int:
    """The demo on validated arguments and the loaded test set; returns the exit status."""
    from filmqnn_hw.host.driver import Accelerator, DriverError, SimBackend, describe_config
    from filmqnn_hw.spec.numerics import quantize_input
    from filmqnn_quant.export import ExportError, ExportResult, export

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT

    def exlog(msg: str) -> None:
        if msg.startswith("[export] !!!") or "accelerator config" in msg or "wrote" in msg:
            print("   " + msg, flush=True)

    def timed_export(msg: str, dest: Path, **target: object) -> ExportResult | None:
        """Print ``msg``, export the checkpoint to ``dest`` for ``target`` (``board=`` or
        ``config_file=``) and print where it went and how long it took; on an
        :class:`ExportError` print it and return None."""
        t0 = time.perf_counter()
        _step(msg)
        try:
            res = export("smallcnn", dest, checkpoint=ckpt, calib_data=args.calib_data,
                         log=exlog, **target)
        except ExportError as e:
            print(f"error: {e}", file=sys.stderr)
            return None
        _step(f"      -> {res.out_dir} ({time.perf_counter() - t0:.1f} s)")
        return res

    # ---- 1. export for the board ---------------------------------------------------------
    board_res = timed_export(
        f"[1/5] exporting {ckpt.name} for {args.board} (calibration: {args.calib_data}) ...",
        out / f"export_{args.board}", board=args.board)
    if board_res is None:
        return 2
    board_cfg, board_graph = board_res.config, board_res.graph

    # ---- 2. the simulated accelerator's export ---------------------------------------------
    if args.sim_config == "auto":
        args.sim_config = "board" if args.board == "pynq_z2" else "small"
    if args.sim_config == "board":
        sim_cfg, sim_dir_export, sim_graph = board_cfg, board_res.out_dir, board_graph
        _step("[2/5] simulating the board's own config (no second export)")
    else:
        sim_cfg = small_sim_config()
        cfile = out / "sim_config.json"
        cfile.write_text(sim_cfg.to_json() + "\n")
        sim_res = timed_export(
            f"[2/5] exporting again for the simulated config {describe_config(sim_cfg)} ...",
            out / "export_sim", config_file=cfile)
        if sim_res is None:
            return 2
        sim_dir_export, sim_graph = sim_res.out_dir, sim_res.graph

    # ---- 3. Verilog + Verilator ------------------------------------------------------------
    _step(f"[3/5] building the simulated accelerator {describe_config(sim_cfg)} ...")
    backend = SimBackend(sim_cfg, Path(args.sim_dir) if args.sim_dir else out / "sim",
                         jobs=args.jobs, log=lambda m: _step("      " + m))
    try:
        backend.build()
        acc = Accelerator(backend, sim_dir_export, timeout_s=3600)
    except DriverError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    # ---- 4. images (the range was checked against ds before any work) ----------------------
    lo, hi = args.first_image, args.first_image + args.images
    _step(f"[4/5] running test images {lo}..{hi - 1} through the simulated hardware ...")
    rows, cycles = [], []
    for i in range(lo, hi):
        t0 = time.perf_counter()
        codes = quantize_input(ds.images[i], sim_graph.input.scale, sim_graph.input.zero_point)
        try:
            logits = acc.run(codes)
        except DriverError as e:
            print(f"error: image {i}: {e}", file=sys.stderr)
            return 1
        gold = sim_graph.run(codes[None])[0]
        bcodes = quantize_input(ds.images[i], board_graph.input.scale,
                                board_graph.input.zero_point)
        bgold = int(np.argmax(board_graph.run(bcodes[None]).reshape(-1)))
        hw, gp = int(np.argmax(logits.reshape(-1))), int(np.argmax(gold.reshape(-1)))
        same = bool(np.array_equal(logits, gold))
        c = acc.counters()
        cycles.append(c["cycles"])
        rows.append((i, int(ds.labels[i]), hw, gp, same, bgold))
        _step(f"      image {i}: {c['cycles']} cycles, sim {time.perf_counter() - t0:.1f} s, "
              f"logits {'==' if same else '!='} golden")

    # ---- 5. report -------------------------------------------------------------------------
    names = ds.classes
    _step("[5/5] results")
    small = args.sim_config == "small"
    print()
    print(f"simulated hardware: {describe_config(sim_cfg)}"
          + (f" -- a smaller array of the same design, NOT the {args.board} array "
             f"{describe_config(board_cfg)}" if small else f" -- the {args.board} config"))
    head = ["image", "label", "hardware", "golden", "match"] + ([f"{args.board} golden"]
                                                               if small else [])
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for i, lab, hw, gp, same, bg in rows:
        cells = [str(i), f"{lab} {names[lab]}", f"{hw} {names[hw]}", f"{gp} {names[gp]}",
                 "yes" if same else "NO"]
        if small:
            cells.append(f"{bg} {names[bg]}")
        print("| " + " | ".join(cells) + " |")
    print()
    n_ok = sum(r[4] for r in rows)
    print(f"hardware == golden model (all logits, ==): {n_ok}/{len(rows)}; "
          f"hardware correct: {sum(r[1] == r[2] for r in rows)}/{len(rows)}")
    if small:
        print(f"'golden' is the golden model of the export for the simulated config; "
              f"'{args.board} golden' is the golden model of the {args.board} export (the "
              f"{args.board} hardware computes it bit for bit); the two exports differ only in "
              "which filters got the 8-bit slots.")
    cyc = int(np.median(cycles))
    fps = sim_cfg.clock_mhz * 1e6 / cyc
    what = (f"the SIMULATED small config (tm={sim_cfg.tm}, tn={sim_cfg.tn}), not "
            f"{args.board}; no {args.board} FPS is measured here (use --sim-config board)"
            if small else f"the {args.board} config (tm={sim_cfg.tm}, tn={sim_cfg.tn}), "
            "measured in RTL simulation")
    print(f"cycles per frame: {cyc} (median of {len(cycles)}; RTL schedule, see docs/rtl.md)")
    print(f"FPS at {sim_cfg.clock_mhz:g} MHz: {fps:.1f} -- for {what}")
    print(f"total {time.perf_counter() - t_all:.1f} s (emit {backend.seconds.get('emit', 0):.1f}"
          f" s, Verilator build {backend.seconds.get('build', 0):.1f} s)")
    return 0 if n_ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
