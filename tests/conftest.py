"""Shared pytest setup: the helpers module on sys.path, markers, tool discovery, deterministic
torch threads."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# Test modules import their shared builders from tests/helpers.py, never from each other.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Training and simulation share two cores: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# The build cache of a test run is its own (and starts empty), not the user's.
os.environ["FILMQNN_CACHE_DIR"] = tempfile.mkdtemp(prefix="filmqnn-test-cache-")


def pytest_configure(config: pytest.Config) -> None:
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests (``pytest.mark.usefixtures``): tiny models gain
    nothing from threads, and two OpenMP threads on a busy 2-core machine spin-wait and run
    ~10x slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Cases marked ``verilator`` are skipped when the binary is missing (the marker both
    selects them and states the requirement)."""
    if have("verilator"):
        return
    skip = pytest.mark.skip(reason="verilator not installed")
    for item in items:
        if item.get_closest_marker("verilator") is not None:
            item.add_marker(skip)
