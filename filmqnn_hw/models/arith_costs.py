"""Per-MAC resource coefficients of the arithmetic engines, as measured by ``benchmarks/arith.py``.

The file ``filmqnn_hw/models/arith_costs.json`` is written by the benchmark (never by hand) and
read by the resource model through :func:`load_arith_costs`. Layout::

    {
      "format_version": 1,
      "provenance": {...tool versions, command, date, git commit...},
      "n_per_unit": 8,
      "engines": {
        "xc7":  {"w4a5_filter_dsp": {...}, "w4a5_kernel_dsp": {...}, "w8a5_dsp": {...},
                 "w4a5_lut": {...}, "w8a5_lut": {...}},
        "xcup": {...}
      }
    }

Each engine entry holds ``macs_per_dsp`` (0 for LUT engines), ``dsp_per_mac``,
``lut_per_mac``, ``ff_per_mac``, ``carry_per_mac`` (CARRY4 on xc7, CARRY8 on xcup),
``lut_levels`` and the raw yosys counts it was derived from. The xcup figures are corrected
for yosys's known differences from Vivado (see ``correction`` in each entry).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["ARITH_COSTS_PATH", "ENGINES", "FORMAT_VERSION", "load_arith_costs"]

ARITH_COSTS_PATH = Path(__file__).resolve().parent / "arith_costs.json"
FORMAT_VERSION = 1
ENGINES = ("w4a5_filter_dsp", "w4a5_kernel_dsp", "w8a5_dsp", "w4a5_lut", "w8a5_lut")
_FIELDS = ("macs_per_dsp", "dsp_per_mac", "lut_per_mac", "ff_per_mac", "carry_per_mac")


def load_arith_costs(path: str | Path | None = None) -> dict[str, Any]:
    """Load and check the per-MAC coefficients (default: the packaged ``arith_costs.json``).

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file and the missing or bad entry;
    regenerate the file with ``python benchmarks/arith.py``.
    """
    p = Path(path) if path is not None else ARITH_COSTS_PATH
    if not p.exists():
        raise FileNotFoundError(
            f"arithmetic cost file {p} not found: run `python benchmarks/arith.py` to measure it"
        )
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{p} is not valid JSON ({e}): regenerate it with benchmarks/arith.py"
        ) from e
    if d.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{p}: format_version {d.get('format_version')!r} is not {FORMAT_VERSION}: "
            "regenerate it with benchmarks/arith.py"
        )
    for fam in ("xc7", "xcup"):
        engines = d.get("engines", {}).get(fam)
        if engines is None:
            raise ValueError(f"{p}: no engines for family {fam!r}")
        for eng in ENGINES:
            e = engines.get(eng)
            if e is None:
                raise ValueError(f"{p}: family {fam!r} lacks engine {eng!r}")
            for f in _FIELDS:
                v = e.get(f)
                if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                    raise ValueError(f"{p}: {fam}/{eng}/{f} must be a number >= 0, not {v!r}")
    return d
