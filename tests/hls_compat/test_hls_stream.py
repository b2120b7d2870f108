"""hls_compat/hls_stream.h (and ap_axi_sdata.h): FIFO semantics, errors, pragma-clean builds.

``stream_ops.cpp`` holds a three-process DATAFLOW kernel (producer -> 5-bit activation packer
into ap_uint<40> -> unpacking consumer emitting AXI-Stream beats) with ``#pragma HLS`` lines.
It is compiled once with ``-Wall -Werror -Wno-unknown-pragmas``; its output is compared with
values computed here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hls_compat import CXXFLAGS


@pytest.fixture(scope="module")
def exe(hls_programs: dict[str, Path]) -> Path:
    return hls_programs["stream_ops"]


def run(exe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 21, 64, 1000])
def test_dataflow_kernel(exe: Path, n: int) -> None:
    proc = run(exe, "run", str(n))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no leftover-data warnings: every stream was drained
    lines = proc.stdout.splitlines()
    acts = [(i * 7 + 3) % 32 for i in range(n)]
    words = (n + 7) // 8
    beats = []
    total = 0
    for k in range(words):
        total += sum(acts[8 * k : 8 * k + 8])
        beats.append(f"beat {total % (1 << 32)} {int(k == words - 1)} 15")
    assert lines[0] == f"beats {words}"
    assert lines[1 : 1 + words] == beats


def test_stream_api(exe: Path) -> None:
    lines = run(exe, "run", "1").stdout.splitlines()[2:]
    assert lines == [
        "name fifo fifo empty 1 full 0",
        "size 8 full 0",
        "read -300 -200 -100 0 100 200 300 2047",
        "nb_empty 0 size 0 write_nb 1",
        "caught hls::stream 'fifo': read while empty (in hardware this read would block forever:"
        " the producer wrote fewer elements than the consumer reads)",
        "depth 4 default_name hls::stream",
        "axis 8 2 1",
    ]


def test_read_on_empty_stream_is_fatal(exe: Path) -> None:
    proc = run(exe, "empty")
    assert proc.returncode != 0
    assert "hls::stream 'never_written': read while empty" in proc.stderr
    assert proc.stdout == ""


def test_leftover_data_warns(exe: Path) -> None:
    proc = run(exe, "leftover")
    assert proc.returncode == 0
    assert "hls::stream 'left' destroyed with 2 leftover element(s)" in proc.stderr


def test_pragmas_need_wno_unknown_pragmas(tmp_path: Path) -> None:
    """Documents why CXXFLAGS carries -Wno-unknown-pragmas: -Wall -Werror alone rejects them."""
    src = tmp_path / "pragma.cpp"
    src.write_text("int f(int x) {\n#pragma HLS INLINE\n  return x;\n}\n")
    base = [f for f in CXXFLAGS if f != "-Wno-unknown-pragmas"]
    cmd = ["g++", *base, "-Werror", "-fsyntax-only", str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "unknown-pragmas" in proc.stderr
    ok = [*cmd, "-Wno-unknown-pragmas"]
    proc = subprocess.run(ok, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
