"""Shared fixture: compile every C-simulation test program once, two at a time (2 cores)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hls_compat import compile_csim

HERE = Path(__file__).resolve().parent

#: Test program (tests/hls_compat/<name>.cpp) -> extra g++ flags on top of hls_compat.CXXFLAGS.
PROGRAMS: dict[str, list[str]] = {
    "ap_int_ops": [],
    "ap_int_api": ["-Werror"],
    "kernel_patterns": ["-Werror"],
    "stream_ops": ["-Werror"],
}


@pytest.fixture(scope="session")
def hls_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Name -> compiled executable, for all of :data:`PROGRAMS` (built in parallel once)."""
    out_dir = tmp_path_factory.mktemp("hls_programs")
    # The largest build first, so the other three run beside it on the second core.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(compile_csim, [HERE / f"{name}.cpp"], out_dir / name, flags)
            for name, flags in PROGRAMS.items()
        }
        return {name: fut.result() for name, fut in futures.items()}
