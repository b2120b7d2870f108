"""A content-addressed cache for the build's slow steps: the design search's pick and the
emitted Verilog top.

A key hashes the step's inputs (the board file's text, the options, the networks' layers, the
config) together with :func:`source_digest`, the contents of every file that generates the
result (the ``filmqnn_hw`` and ``boards`` packages: their Python, JSON, TOML, C++ and template
files). So an edit to any generator source, or to the board file, misses; nothing is ever
reused across sources. Entries live in ``$FILMQNN_CACHE_DIR`` (default
``~/.cache/filmqnn``), one file per entry, written atomically; an unreadable entry is a miss.
``python -m filmqnn_hw.build --no-cache`` bypasses it.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from filmqnn_hw.spec.files import atomic_write

__all__ = ["CACHE_ENV", "cache_dir", "cache_key", "load", "load_or_make", "source_digest",
           "store"]

CACHE_ENV = "FILMQNN_CACHE_DIR"
#: File kinds whose contents generate build outputs.
_SOURCE_SUFFIXES = {".py", ".json", ".toml", ".cpp", ".h", ".tcl", ".txt", ".in"}


def _source_roots() -> list[Path]:
    import boards
    import filmqnn_hw

    return [Path(filmqnn_hw.__file__).resolve().parent, Path(boards.__file__).resolve().parent]


@functools.cache
def source_digest() -> str:
    """SHA-256 over the relative paths and contents of the generator sources."""
    h = hashlib.sha256()
    for root in _source_roots():
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix in _SOURCE_SUFFIXES and "__pycache__" not in p.parts:
                h.update(f"{root.name}/{p.relative_to(root).as_posix()}\0".encode())
                h.update(p.read_bytes())
                h.update(b"\0")
    return h.hexdigest()


def cache_dir() -> Path:
    """``$FILMQNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/filmqnn``, else ``~/.cache/filmqnn``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "filmqnn"


def cache_key(kind: str, *parts: str) -> str:
    """The key of a ``kind`` entry for ``parts`` under the current sources."""
    h = hashlib.sha256(f"{kind}\0{source_digest()}\0".encode())
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _path(kind: str, key: str) -> Path:
    return cache_dir() / kind / f"{key}.txt"


def load(kind: str, key: str) -> str | None:
    """The stored text of an entry, or None (absent or unreadable)."""
    try:
        return _path(kind, key).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def store(kind: str, key: str, text: str) -> None:
    """Store an entry; a cache that cannot be written is skipped (the build does not need
    it)."""
    p = _path(kind, key)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, text)
    except OSError:
        pass


def load_or_make(kind: str, key: str, make: Callable[[], str], use: bool = True
                 ) -> tuple[str, bool]:
    """``(text, from_cache)``: the stored entry, else ``make()``'s text, stored (``use=False``
    makes it and stores it without looking)."""
    text = load(kind, key) if use else None
    if text is not None:
        return text, True
    text = make()
    store(kind, key, text)
    return text, False
