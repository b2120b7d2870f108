"""Accuracy benchmark: FP32 vs W8A5 / W4A5 / filter-wise mixed precision on Fashion-MNIST.

For every model and seed one FP32 baseline is trained; every precision row is then fine-tuned
(QAT) from that same FP32 checkpoint, so the rows of one seed differ only in the precision.
Each run is one ``python -m filmqnn_quant.train`` command (printed in the report), run as a
subprocess that writes its metrics as JSON under ``benchmarks/results/accuracy/``. Finished
runs are reused (the JSON records the exact command; a changed command reruns), so the
benchmark can be interrupted and resumed. ``docs/accuracy.md`` is regenerated from whatever
results exist; missing runs are listed as pending with their commands.

    python benchmarks/accuracy.py --models smallcnn --seeds 0 1 2
    python benchmarks/accuracy.py --report-only          # rewrite docs/accuracy.md only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "accuracy"
CKPT_DIR = ROOT / "build" / "accuracy_ckpt"  # FP32 checkpoints: large for ResNet, not committed
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from filmqnn_hw.spec.files import atomic_write  # noqa: E402

#: (row label, ratio of 8-bit filters); None is the FP32 baseline.
ROWS: list[tuple[str, float | None]] = [
    ("FP32", None),
    ("W8A5 (all filters 8-bit)", 1.0),
    ("W4A5 (all filters 4-bit)", 0.0),
    ("mixed 95/5 (5% 8-bit)", 0.05),
    ("mixed 90/10 (10% 8-bit)", 0.10),
    ("mixed 97/3 (3% 8-bit)", 0.03),
]

#: Per-model settings: model arguments, training subset sizes, epochs.
MODELS: dict[str, dict] = {
    "smallcnn": {
        "label": "SmallCNN (width_mult 0.5: 16-16-32-32 channels, 4 conv + FC)",
        "args": ["--model", "smallcnn", "--width-mult", "0.5"],
        "fp32_subset": None,
        "qat_subset": 10000,
        "epochs_fp32": 3,
        "epochs_qat": 2,
    },
    "resnet18": {
        "label": "ResNet-18 (small-image stem, width_mult 0.25: base width 16)",
        "args": ["--model", "resnet18", "--width-mult", "0.25", "--small-input", "yes"],
        "fp32_subset": 20000,
        "qat_subset": 10000,
        "epochs_fp32": 3,
        "epochs_qat": 2,
    },
}


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def run_key(model: str, seed: int, ratio: float | None) -> str:
    tag = "fp32" if ratio is None else f"r{ratio:g}"
    return f"{model}_s{seed}_{tag}"


def command(model: str, seed: int, ratio: float | None, threads: int) -> list[str]:
    """The exact training command of one table cell (run from the repository root)."""
    m = MODELS[model]
    fp32_ckpt = CKPT_DIR / f"{run_key(model, seed, None)}.pt"
    cmd = ["python", "-m", "filmqnn_quant.train", *m["args"], "--dataset", "fashion_mnist"]
    cmd += ["--seed", str(seed), "--threads", str(threads), "--quiet"]
    if ratio is None:
        cmd += ["--precision", "fp32", "--epochs-fp32", str(m["epochs_fp32"])]
        if m["fp32_subset"]:
            cmd += ["--subset", str(m["fp32_subset"])]
        cmd += ["--checkpoint-out", _rel(fp32_ckpt)]
    else:
        cmd += ["--precision", "qat", "--ratio", f"{ratio:g}", "--checkpoint-in", _rel(fp32_ckpt)]
        cmd += ["--epochs-qat", str(m["epochs_qat"])]
        if m["qat_subset"]:
            cmd += ["--subset", str(m["qat_subset"])]
    cmd += ["--json-out", _rel(RESULTS / f"{run_key(model, seed, ratio)}.json")]
    return cmd


def load_result(model: str, seed: int, ratio: float | None, threads: int) -> dict | None:
    p = RESULTS / f"{run_key(model, seed, ratio)}.json"
    if not p.is_file():
        return None
    r = json.loads(p.read_text())
    want = command(model, seed, ratio, threads)
    ran = r.get("command")
    if ran is None and "argv" in r:  # finished without the driver (e.g. another process ran it)
        ran = shlex.join(want[:3] + list(r["argv"]))
    if ran != shlex.join(want):
        return None
    r["command"] = ran
    return r


def execute(model: str, seed: int, ratio: float | None, threads: int) -> dict | None:
    """Run one cell (unless its result exists); returns its metrics or None on failure."""
    done = load_result(model, seed, ratio, threads)
    if done is not None:
        return done
    if ratio is not None and not (CKPT_DIR / f"{run_key(model, seed, None)}.pt").is_file():
        print(f"[bench] {run_key(model, seed, ratio)}: FP32 checkpoint missing, skipped")
        return None
    cmd = command(model, seed, ratio, threads)
    CKPT_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    lock = CKPT_DIR / f"{run_key(model, seed, ratio)}.lock"
    try:  # several benchmark processes may share the work: one runs each cell
        os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        print(f"[bench] {run_key(model, seed, ratio)}: running elsewhere ({_rel(lock)}), skipped")
        return None
    print(f"[bench] {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    out = RESULTS / f"{run_key(model, seed, ratio)}.json"
    if not out.is_file():
        print(f"[bench] FAILED (exit {proc.returncode}) after {wall:.0f} s", flush=True)
        lock.unlink(missing_ok=True)
        return None
    lock.unlink(missing_ok=True)
    r = json.loads(out.read_text())
    r["command"] = shlex.join(cmd)
    r["process_wall_seconds"] = wall
    r["exit_code"] = proc.returncode
    r["finished_utc"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    atomic_write(out, json.dumps(r, indent=1))
    return r


def _ms(values: list[float]) -> str:
    if not values:
        return "pending"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def report(models: list[str], seeds: list[int], threads: int, notes: list[str] = ()) -> str:
    """The Markdown of docs/accuracy.md from the stored results."""
    lines = [
        "# Accuracy: FP32 vs W8A5 / W4A5 / filter-wise mixed precision (Fashion-MNIST)",
        "",
        "Generated by `python benchmarks/accuracy.py` from the JSON files in "
        "`benchmarks/results/accuracy/` (do not edit by hand). "
        f"Last generated {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} on "
        f"{platform.machine()} with {os.cpu_count()} CPUs shared with other jobs, "
        f"torch threads = {threads}.",
        "",
        "What is measured:",
        "",
        "* Dataset: Fashion-MNIST (Debian `dataset-fashion-mnist`), pixels in [0, 1], no "
        "normalisation, no augmentation; accuracy on the **whole 10,000-image test set**.",
        "* All activations are 5-bit unsigned (A5), the network input is quantized to 5 bits "
        "with scale 1/31. Weights: W8 = every filter 8-bit, W4 = every filter 4-bit, "
        "mixed p/q = the fraction q of filters of every layer with the largest output error "
        "(paper Eq. 4) is 8-bit.",
        "* Per seed, one FP32 model is trained; **every precision row of that seed is "
        "fine-tuned from the same FP32 checkpoint** (QAT: calibration on 20 batches, then the "
        "QAT epochs; the 8-bit filters are re-selected at the start of the first 2/3 of the QAT "
        "epochs, then frozen).",
        "* *fake-quant* is the QAT model in eval mode; *integer* is the golden integer model "
        "(`convert.to_integer(...).run`, the bit-exact reference for the hardware) on the same "
        "10,000 images. *mismatch* counts the test images whose predicted class differs "
        "between the two / whose logit codes differ at all (summed over seeds; must be 0).",
        "* 8-bit filters per layer = round(ratio x filters) (no accelerator config), so "
        "layers with few filters get fewer 8-bit filters than the nominal ratio "
        "(e.g. 3% of 16 rounds to 0); the column gives the count actually used.",
        "* `python -m filmqnn_quant.train ARGS` is the same as `python -m filmqnn_quant train "
        "ARGS`.",
        "* Time: wall time of the training command (training + evaluation incl. the integer "
        "model), mean over seeds. The CPU was shared with other jobs, so times vary.",
        "",
    ]
    if notes:
        lines += ["Notes on this run:", "", *[f"* {n}" for n in notes], ""]
    for model in models:
        m = MODELS[model]
        lines += [f"## {m['label']}", ""]
        fp = (
            "all 60,000"
            if not m["fp32_subset"]
            else f"a stratified seeded subset of {m['fp32_subset']:,}"
        )
        qs = (
            "all 60,000"
            if not m["qat_subset"]
            else f"a stratified seeded subset of {m['qat_subset']:,}"
        )
        lines += [
            f"FP32: {m['epochs_fp32']} epochs on {fp} training images. QAT: "
            f"{m['epochs_qat']} epochs on {qs} training images, starting from the FP32 model. "
            f"Seeds: {', '.join(map(str, seeds))}.",
            "",
            "| precision | seeds done | fake-quant acc % (mean ± std) | integer acc % | "
            "mismatches pred / logits | 8-bit filters (8-bit weight share) | "
            "PTQ acc % (1k test images) | wall s / run |",
            "|---|---|---|---|---|---|---|---|",
        ]
        cmds = []
        for label, ratio in ROWS:
            res = [r for s in seeds if (r := load_result(model, s, ratio, threads)) is not None]
            wall = [r.get("process_wall_seconds", r["wall_seconds"]) for r in res]
            wall_s = f"{statistics.mean(wall):.0f}" if wall else "-"
            if ratio is None:
                acc = [r["fp32_acc"] for r in res]
                lines.append(
                    f"| {label} | {len(res)}/{len(seeds)} | {_ms(acc)} | - | - | - | - | {wall_s} |"
                )
            else:
                fq = [r["fake_quant_acc"] for r in res]
                ia = [r["integer_acc"] for r in res if "integer_acc" in r]
                ptq = [r["ptq_acc"] for r in res if "ptq_acc" in r]
                if res and all("pred_mismatches" in r for r in res):
                    mm = (
                        f"{sum(r['pred_mismatches'] for r in res)} / "
                        f"{sum(r['logit_code_mismatches'] for r in res)}"
                    )
                else:
                    mm = "not run"
                bs = [r for r in res if "filters_8bit" in r]
                b8 = (
                    f"{bs[0]['filters_8bit']}/{bs[0]['filters']} "
                    f"({100 * bs[0]['weights_8bit_fraction']:.1f}%)"
                    if bs
                    else "-"
                )
                lines.append(
                    f"| {label} | {len(res)}/{len(seeds)} | {_ms(fq)} | {_ms(ia)} | {mm} | {b8} | "
                    f"{_ms(ptq)} | {wall_s} |"
                )
            cmds.append((label, ratio))
        lines += ["", *_comparison(model, seeds, threads)]
        lines += ["", "Per-seed values (fake-quant / integer accuracy %):", ""]
        lines += ["| precision | " + " | ".join(f"seed {s}" for s in seeds) + " |"]
        lines += ["|---|" + "---|" * len(seeds)]
        for label, ratio in ROWS:
            cells = []
            for s in seeds:
                r = load_result(model, s, ratio, threads)
                if r is None:
                    cells.append("pending")
                elif ratio is None:
                    cells.append(f"{r['fp32_acc']:.2f}")
                else:
                    cells.append(
                        f"{r['fake_quant_acc']:.2f} / {r.get('integer_acc', float('nan')):.2f}"
                    )
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Commands (seed 0; replace `--seed 0` and the `_s0_` file names for other seeds; "
            "the FP32 command must run first):",
            "",
            "```bash",
        ]
        for label, ratio in cmds:
            lines.append(f"# {label}")
            lines.append(shlex.join(command(model, seeds[0], ratio, threads)))
        lines += ["```", ""]
    lines += [
        "Reproduce everything (runs only what is missing, then rewrites this file):",
        "",
        "```bash",
        f"python benchmarks/accuracy.py --models {' '.join(models)} "
        f"--seeds {' '.join(map(str, seeds))} --threads {threads}",
        "```",
        "",
    ]
    return "\n".join(lines)


def _comparison(model: str, seeds: list[int], threads: int) -> list[str]:
    """Mixed rows against W8A5 and W4A5, over the seeds where all three finished."""
    out = [
        "Mixed precision against the uniform rows (integer-model accuracy, mean over the "
        "seeds where both rows finished; paired by seed):",
        "",
    ]
    for label, ratio in ROWS:
        if ratio is None or ratio in (0.0, 1.0):
            continue
        parts = []
        for ref_label, ref in (("W8A5", 1.0), ("W4A5", 0.0)):
            diffs = []
            for s in seeds:
                a = load_result(model, s, ratio, threads)
                b = load_result(model, s, ref, threads)
                if a and b and "integer_acc" in a and "integer_acc" in b:
                    diffs.append(a["integer_acc"] - b["integer_acc"])
            if diffs:
                parts.append(
                    f"{statistics.mean(diffs):+.2f} points vs {ref_label} "
                    f"({len(diffs)} seed{'s' if len(diffs) > 1 else ''})"
                )
            else:
                parts.append(f"vs {ref_label}: pending")
        out.append(f"* {label}: " + "; ".join(parts))
    return out


def write_report(
    models: list[str], seeds: list[int], threads: int, out: Path, notes: list[str] = ()
) -> None:
    """Write the report atomically."""
    text = report(models, seeds, threads, notes)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, text)


def main(argv: list[str] | None = None) -> int:
    """Run the missing cells (seed-major, FP32 first) and rewrite the report after each."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["smallcnn", "resnet18"], choices=list(MODELS))
    p.add_argument(
        "--run-models",
        nargs="+",
        default=None,
        choices=list(MODELS),
        help="models to train now (default: all of --models); others: report only",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "accuracy.md")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--note", action="append", default=[], help="a remark printed in the report")
    p.add_argument("--fp32-only", action="store_true", help="train only the FP32 baselines")
    p.add_argument("--qat-only", action="store_true", help="train only the QAT rows")
    p.add_argument("--ratios", nargs="+", type=float, default=None, help="QAT rows to run")
    p.add_argument("--jobs", type=int, default=1, help="training commands run in parallel")
    a = p.parse_args(argv)
    run_models = a.models if a.run_models is None else a.run_models
    if not a.report_only:
        lock = threading.Lock()

        def cell(model: str, seed: int, ratio: float | None) -> None:
            execute(model, seed, ratio, a.threads)
            with lock:
                write_report(a.models, a.seeds, a.threads, a.out, a.note)

        for model in run_models:
            if not a.qat_only:  # FP32 baselines first: every QAT row starts from one
                with ThreadPoolExecutor(a.jobs) as pool:
                    list(pool.map(lambda s, m=model: cell(m, s, None), a.seeds))
            if a.fp32_only:
                continue
            cells = [
                (seed, r)
                for seed in a.seeds
                for _, r in ROWS
                if r is not None and (a.ratios is None or r in a.ratios)
            ]
            with ThreadPoolExecutor(a.jobs) as pool:
                list(pool.map(lambda c, m=model: cell(m, c[0], c[1]), cells))
    write_report(a.models, a.seeds, a.threads, a.out, a.note)
    print(f"[bench] wrote {_rel(a.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
