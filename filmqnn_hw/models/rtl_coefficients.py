"""The resource model's control, PE-overhead, depthwise-tap and requantization coefficients, as
``benchmarks/rtl_calibrate.py`` derives them from synthesised tops and units.

The file ``filmqnn_hw/models/rtl_coefficients.json`` is written by that benchmark (never by
hand) and read by :mod:`filmqnn_hw.models.resources` through :func:`load_rtl_coefficients`.
Layout::

    {
      "format_version": 1,
      "provenance": {"command": ..., "commit": ..., "date": ..., "points": [...]},
      "pe_per_mac_lut": float,        # PE-array LUT beyond the MAC units, per tm x tn (fitted)
      "pe_ff_scale": float,           # PE-array FF / the MAC units' per-MAC FF (fitted)
      "overhead": {"lut"|"ff"|"dsp": {"base", "per_port", "per_lane", "per_record_bit",
                                       "per_slice_bit"}},
      "dw_taps": {"lut_per_lane_tap", "lut_per_column_bit", "ff_fixed"},   # measured A/B
      "requant_lane": {"xc7"|"xcup": {"lut", "ff", "dsp"}}                 # measured per unit
    }

What each term prices, and from which measurement: ``docs/resource-model.md``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["FORMAT_VERSION", "RTL_COEFFICIENTS_PATH", "load_rtl_coefficients",
           "using_rtl_coefficients"]

RTL_COEFFICIENTS_PATH = Path(__file__).resolve().parent / "rtl_coefficients.json"
FORMAT_VERSION = 1
OVERHEAD_TERMS = ("base", "per_port", "per_lane", "per_record_bit", "per_slice_bit")
DW_TERMS = ("lut_per_lane_tap", "lut_per_column_bit", "ff_fixed")
FAMILIES = ("xc7", "xcup")
_REGENERATE = "regenerate it with `python benchmarks/rtl_calibrate.py --fit-only`"


def _number(p: Path, where: str, v: Any) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise ValueError(f"{p}: {where} must be a finite number, not {v!r}: {_REGENERATE}")
    return float(v)


def check_rtl_coefficients(d: Any, p: Path) -> dict[str, Any]:
    """``d`` if it has every entry of the layout above as a finite number, else ``ValueError``
    naming ``p`` and the first bad entry."""
    if not isinstance(d, dict) or d.get("format_version") != FORMAT_VERSION:
        got = d.get("format_version") if isinstance(d, dict) else d
        raise ValueError(f"{p}: format_version {got!r} is not {FORMAT_VERSION}: {_REGENERATE}")
    for key in ("pe_per_mac_lut", "pe_ff_scale"):
        _number(p, key, d.get(key))
    for res in ("lut", "ff", "dsp"):
        for term in OVERHEAD_TERMS:
            _number(p, f"overhead/{res}/{term}", d.get("overhead", {}).get(res, {}).get(term))
    for term in DW_TERMS:
        _number(p, f"dw_taps/{term}", d.get("dw_taps", {}).get(term))
    for fam in FAMILIES:
        for res in ("lut", "ff", "dsp"):
            _number(p, f"requant_lane/{fam}/{res}",
                    d.get("requant_lane", {}).get(fam, {}).get(res))
    return d


_override: list[dict[str, Any]] = []


@contextlib.contextmanager
def using_rtl_coefficients(d: dict[str, Any]) -> Iterator[None]:
    """Within the ``with`` block the model prices with ``d`` (checked like the file) instead
    of the packaged file: the calibration benchmark evaluates the model with coefficients it
    has just derived, before it writes them."""
    _override.append(check_rtl_coefficients(d, Path("<coefficients in use>")))
    try:
        yield
    finally:
        _override.pop()


def load_rtl_coefficients(path: str | Path | None = None) -> dict[str, Any]:
    """The checked coefficients (default: those of :func:`using_rtl_coefficients`, else the
    packaged ``rtl_coefficients.json``), each file read once.

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file and the missing or bad entry.
    """
    if path is None and _override:
        return _override[-1]
    return _load(Path(path) if path is not None else RTL_COEFFICIENTS_PATH)


@functools.cache
def _load(p: Path) -> dict[str, Any]:
    if not p.exists():
        raise FileNotFoundError(f"resource coefficient file {p} not found: {_REGENERATE}")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p} is not valid JSON ({e}): {_REGENERATE}") from e
    return check_rtl_coefficients(d, p)
