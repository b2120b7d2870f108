"""Bad input to the quantizer's programs is refused before any work (issue 25): one line on
stderr naming the option, the problem and what to do, a non-zero exit, nothing written.

``python -m filmqnn_quant train`` and ``python -m filmqnn_quant.demo`` would otherwise train,
export and build for minutes; the tests replace that work with stubs that fail when reached,
so a refusal that comes too late fails in seconds instead of running it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from filmqnn_quant import data as D
from filmqnn_quant import demo
from filmqnn_quant import train as T

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _assert_refused(main, extra: list[str], output: tuple[str, Path], tmp_path: Path,
                    capsys: pytest.CaptureFixture[str], needle: str) -> None:
    """``main(extra)`` (``{tmp}`` standing for ``tmp_path``; ``output = (flag, path)`` added
    unless ``extra`` names the flag) exits 2 with one line naming the problem and leaves
    ``tmp_path`` as it was (``a_file`` there is a file, not a folder)."""
    (tmp_path / "a_file").write_text("not a directory")
    before = _files(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    if output[0] not in argv:
        argv += [output[0], str(output[1])]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: ") and needle in line
    assert _files(tmp_path) == before  # no output folder, not even an empty one


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if training starts (the process group is set up right after the checks)."""

    def started() -> None:
        raise AssertionError("training started: the arguments were not refused first")

    monkeypatch.setattr(T, "init_distributed", started)


def test_train_without_outputs_prints_usage(
    no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from filmqnn_quant.__main__ import main

    for argv in (["train"], ["train", "--model", "smallcnn", "--epochs-qat", "1"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("usage: python -m filmqnn_quant train")
        last = err.strip().splitlines()[-1]
        assert "--checkpoint-out" in last and "--json-out" in last and "saves nothing" in last


def test_train_without_outputs_subprocess(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "filmqnn_quant", "train"], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert "usage:" in r.stderr and "--checkpoint-out" in r.stderr and r.stdout == ""
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--epochs-qat", "-1"], "--epochs-qat must be at least 0"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--calib-batches", "0"], "--calib-batches must be at least 1"),
        (["--subset", "0"], "--subset must be at least 1"),
        (["--ratio", "2"], "--ratio must be in [0, 1]"),
        (["--dataset", "cifar10"], "--dataset: unknown dataset 'cifar10'"),
        (["--checkpoint-in", "{tmp}/missing.pt"], "--checkpoint-in"),
        (["--config", "{tmp}/missing.json"], "--config"),
        (["--checkpoint-out", "{tmp}/a_file/m.pt"], "cannot write --checkpoint-out"),
        (["--json-out", "{tmp}"], "--json-out"),
    ],
)
def test_train_refuses_bad_values_before_work(
    no_training: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    _assert_refused(T.main, extra, ("--json-out", tmp_path / "out" / "m.json"), tmp_path, capsys,
                    needle)


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------
N_TEST = 20


@pytest.fixture()
def small_test_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Fashion-MNIST directory with 20 test images (and 40 training images)."""
    d = tmp_path / "fmnist"
    d.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", N_TEST)):
        D.write_idx(d / f"{prefix}-images-idx3-ubyte.gz",
                    rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))  # fmt: skip
        D.write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    monkeypatch.setenv("FILMQNN_FASHION_MNIST_DIR", str(d))


@pytest.fixture()
def no_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the demo starts its first step (the board export)."""
    import filmqnn_quant.export as E

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("the export started: the arguments were not refused first")

    monkeypatch.setattr(E, "export", started)


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--first-image", "99999"], "--first-image 99999 with --images 4"),
        (["--first-image", str(N_TEST - 3)], f"choose --first-image at most {N_TEST - 4}"),
        (["--images", str(N_TEST + 1)], f"choose at most {N_TEST}"),
        (["--first-image", "-1"], "--first-image must be at least 0"),
        (["--images", "0"], "--images must be at least 1"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--board", "zcu999"], "--board: unknown board 'zcu999'"),
        (["--checkpoint", "{tmp}/missing.pt"], "--checkpoint"),
        (["--calib-data", "cifar10"], "--calib-data: unknown dataset 'cifar10'"),
        (["--out", "{tmp}/a_file"], "--out"),
        (["--out", "{tmp}/a_file/demo"], "cannot write --out"),
        (["--sim-dir", "{tmp}/a_file/sim"], "cannot write --sim-dir"),
    ],
)
def test_demo_refuses_bad_flags_before_work(
    small_test_set: None,
    no_export: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    _assert_refused(demo.main, extra, ("--out", tmp_path / "runs" / "demo"), tmp_path, capsys,
                    needle)


def test_demo_failure_removes_the_folders_it_created(
    small_test_set: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An export that fails after the work started leaves no empty output folder behind."""
    import filmqnn_quant.export as E

    def failing_export(model: str, dest: Path, **kwargs: object) -> None:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)  # as write_export_dir does
        raise E.ExportError("cannot calibrate smallcnn: stub")

    monkeypatch.setattr(E, "export", failing_export)
    before = _files(tmp_path)
    out = tmp_path / "runs" / "demo"
    assert demo.main(["--out", str(out), "--sim-config", "small"]) == 2
    assert "cannot calibrate smallcnn" in capsys.readouterr().err
    assert _files(tmp_path) == before
    # a folder that existed before the run is kept
    out.mkdir(parents=True)
    assert demo.main(["--out", str(out), "--sim-config", "small"]) == 2
    assert out.is_dir() and list(out.iterdir()) == []
