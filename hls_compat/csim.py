"""Compile an HLS kernel and its testbench for C-simulation with g++ and the stand-in headers."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: The flags every C-simulation build uses. ``-Wno-unknown-pragmas`` lets ``#pragma HLS ...``
#: lines through a ``-Wall -Werror`` build; everything else stays a warning.
CXXFLAGS: tuple[str, ...] = ("-std=c++17", "-O2", "-Wall", "-Wno-unknown-pragmas")


class CsimError(RuntimeError):
    """The C-simulation build failed; the message holds the command and the compiler output."""


def include_dir() -> Path:
    """The directory holding ``ap_int.h``, ``hls_stream.h`` and ``ap_axi_sdata.h`` (for ``-I``)."""
    return Path(__file__).resolve().parent


def compile_csim(
    sources: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    extra_flags: Sequence[str] = (),
    include_dirs: Sequence[str | os.PathLike[str]] = (),
    cxx: str | None = None,
    timeout: float = 300.0,
) -> Path:
    """Compile and link ``sources`` into the executable ``output`` and return its path.

    Uses :data:`CXXFLAGS`, ``-I`` :func:`hls_compat.include_dir` first (so the stand-in headers
    are found before any others), then ``include_dirs``, then ``extra_flags``. The executable is
    written to a temporary name and renamed, so ``output`` never holds a half-written file.
    ``cxx`` defaults to ``$CXX`` or ``g++``. Raises :class:`CsimError` naming the problem when
    the compiler is missing, a source does not exist, or compilation fails.
    """

    compiler = cxx or os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise CsimError(
            f"C++ compiler {compiler!r} not found: install g++ (bash scripts/setup.sh does) "
            "or set $CXX"
        )
    srcs = [Path(s) for s in sources]
    if not srcs:
        raise CsimError("compile_csim: no source files given")
    missing = [str(s) for s in srcs if not s.is_file()]
    if missing:
        raise CsimError(f"compile_csim: source file(s) not found: {missing}")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    cmd = [compiler, *CXXFLAGS, f"-I{include_dir()}"]
    cmd += [f"-I{d}" for d in include_dirs]
    cmd += [*extra_flags, *map(str, srcs), "-o", tmp_name]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise CsimError(
                f"C-simulation build failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                f"{proc.stderr.strip()}"
            )
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return out
