"""Exhaustive RTL check of packed units with Verilator: every operand combination, every flavour.

For each unit layout the harness instantiates three builds of the generated RTL:

* the combinational form (``registered=False``),
* the registered behavioural form (latency 4),
* the primitive form (``Instance("DSP48E1"/"DSP48E2")``) simulated with yosys's DSP48E1 model
  or our DSP48E2 model (:mod:`~filmqnn_hw.gateware.arith.dsp48e2_model`),

and compares every lane of all three with the exact products (sum of ``a * b`` of narrow
operands), the registered ones through a 4-cycle delay line, plus ``valid_out``. One input
index ``idx`` enumerates the full port range of every operand (``idx`` bits are sliced per
operand); vectors outside the unit's declared domain are not counted. A C++ driver walks
``idx`` over ``2**bits`` values (4,194,304 for kernel packing) in one Verilator run.
"""

from __future__ import annotations

import functools
import operator
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.flows.synth import to_verilog
from filmqnn_hw.gateware.arith.dsp48e2_model import dsp48e1_model, dsp48e2_model
from filmqnn_hw.gateware.arith.packed_dsp import PackedDspMultiplier
from filmqnn_hw.spec.packing import PackedLayout

__all__ = ["ExhaustiveResult", "LaneHarness", "build_with_dsp_models", "run_exhaustive"]


class LaneHarness(wiring.Component):
    """Checks every build flavour of several layouts against exact products, one vector per cycle.

    Members
    -------
    idx : In(idx_bits)      the vector index; operand bits are sliced from it
    ok : Out(n)             per layout: all lanes of all flavours exact (registered flavours: for
                            the vector of 4 cycles ago)
    counted : Out(n)        per-layout: the current vector is inside that layout's declared domain
    """

    LATENCY = 4

    def __init__(
        self,
        layouts: list[PackedLayout],
        flavours=("comb", "behavioural", "primitive"),
        unit_cls: type | list[type] = PackedDspMultiplier,
    ):
        self._layouts = list(layouts)
        self._unit_cls = unit_cls if isinstance(unit_cls, list) else [unit_cls] * len(layouts)
        self._flavours = tuple(flavours)
        self.idx_bits = max(sum(op.bits for op in lay.operands) for lay in layouts)
        super().__init__(
            {
                "idx": In(self.idx_bits),
                "ok": Out(len(layouts)),
                "counted": Out(len(layouts)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        for li, lay in enumerate(self._layouts):
            oks = []
            pos = 0
            vals = {}
            for op in lay.operands:
                raw = self.idx[pos : pos + op.bits]
                vals[op.name] = raw.as_signed() if op.signed else raw
                pos += op.bits
            dom = functools.reduce(
                operator.and_,
                [(vals[o.name] >= o.lo) & (vals[o.name] <= o.hi) for o in lay.operands],
            )
            m.d.comb += self.counted[li].eq(dom)
            refs = [
                functools.reduce(operator.add, [vals[a] * vals[b] for a, b in lane.products])
                for lane in lay.lanes
            ]
            # delay line of the references and the domain flag
            ref_d = refs
            dom_d = dom
            for s in range(self.LATENCY):
                nr = [Signal(signed_like(r), name=f"ref{li}_{k}_d{s}") for k, r in enumerate(ref_d)]
                nd = Signal(name=f"dom{li}_d{s}")
                m.d.sync += [a.eq(b) for a, b in zip(nr, ref_d, strict=True)]
                m.d.sync += nd.eq(dom_d)
                ref_d, dom_d = nr, nd
            for fl in self._flavours:
                if fl == "comb":
                    u = self._unit_cls[li](lay, registered=False, flavour="behavioural")
                    exp, edom = refs, dom
                else:
                    u = self._unit_cls[li](lay, flavour=fl)
                    exp, edom = ref_d, dom_d
                m.submodules[f"u{li}_{fl}"] = u
                for op in lay.operands:
                    m.d.comb += u.port(op.name).eq(vals[op.name])
                m.d.comb += u.valid_in.eq(dom)
                eq = [u.lanes[k] == exp[k] for k in range(len(exp))]
                eq.append(u.valid_out == edom)
                oks.append(~edom | functools.reduce(operator.and_, eq))
            m.d.comb += self.ok[li].eq(functools.reduce(operator.and_, oks))
        return m


def signed_like(v):
    from amaranth import Shape

    return Shape.cast(v.shape())


_TB = r"""
#include "Vharness.h"
#include "verilated.h"
#include <cstdio>
#include <cstdint>
int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    Vharness* top = new Vharness;
    const uint64_t n = 1ull << IDX_BITS;
    const int lat = LATENCY;
    uint64_t fails[NLAYOUTS] = {0}, counted[NLAYOUTS] = {0};
    top->rst = 0; top->clk = 0; top->idx = 0; top->eval();
    for (uint64_t i = 0; i < n + lat; i++) {
        top->idx = (i < n) ? i : 0;
        top->clk = 0; top->eval();
        if (i >= (uint64_t)lat)
            for (int l = 0; l < NLAYOUTS; l++) fails[l] += !((top->ok >> l) & 1);
        if (i < n) for (int l = 0; l < NLAYOUTS; l++) counted[l] += (top->counted >> l) & 1;
        top->clk = 1; top->eval();
    }
    printf("vectors=%llu\n", (unsigned long long)n);
    for (int l = 0; l < NLAYOUTS; l++)
        printf("counted[%d]=%llu fails[%d]=%llu\n", l, (unsigned long long)counted[l], l,
               (unsigned long long)fails[l]);
    delete top;
    return 0;
}
"""


def build_with_dsp_models(work: Path, top: str, verilog: str, driver: str, *,
                          timeout: float = 600.0) -> Path:
    """Build the Verilog ``verilog`` (top module ``top``) with the DSP48E1 and DSP48E2 models and
    the C++ driver ``driver`` into a Verilator executable in ``work``; return its path.

    Raises ``RuntimeError`` with the tail of the log if the build fails.
    """
    (work / f"{top}.v").write_text(verilog)
    (work / "dsp48e1.v").write_text(dsp48e1_model())
    (work / "dsp48e2.v").write_text(dsp48e2_model())
    (work / "tb.cpp").write_text(driver)
    cmd = [
        "verilator",
        "--cc",
        "--exe",
        "--build",
        "-O1",
        "-j",
        "2",
        "-Wno-fatal",
        "-Wno-lint",
        "-Wno-style",
        "--top-module",
        top,
        "-o",
        "tb",
        f"{top}.v",
        "dsp48e1.v",
        "dsp48e2.v",
        "tb.cpp",
        "-CFLAGS",
        "-O1",
    ]
    b = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout)
    if b.returncode != 0:
        raise RuntimeError("verilator build failed:\n" + (b.stdout + b.stderr)[-3000:])
    return work / "obj_dir" / "tb"


@dataclass
class ExhaustiveResult:
    """Outcome of one Verilator run: vectors walked; per layout, vectors counted and failures."""

    vectors: int
    fails: list[int]
    counted: list[int]
    log: str


def run_exhaustive(
    layouts: list[PackedLayout],
    *,
    flavours=("comb", "behavioural", "primitive"),
    unit_cls: type = PackedDspMultiplier,
    timeout: float = 600.0,
) -> ExhaustiveResult:
    """Build :class:`LaneHarness` for ``layouts`` with Verilator and walk every vector.

    ``unit_cls`` (a :class:`PackedDspMultiplier` subclass) lets tests inject a faulty unit.
    Needs the ``verilator`` binary and a C++ compiler. Returns the result even on failure
    (non-zero entries in ``fails``); raises ``RuntimeError`` if the build fails.
    """
    if shutil.which("verilator") is None:
        raise RuntimeError(
            "verilator is not installed: run scripts/setup.sh (apt-get install verilator)"
        )
    h = LaneHarness(layouts, flavours, unit_cls)
    text = to_verilog(h, "harness")
    work = Path(tempfile.mkdtemp(prefix="filmqnn_exh_"))
    try:
        tb = (
            _TB.replace("IDX_BITS", str(h.idx_bits))
            .replace("LATENCY", str(LaneHarness.LATENCY))
            .replace("NLAYOUTS", str(len(layouts)))
        )
        exe = build_with_dsp_models(work, "harness", text, tb, timeout=timeout)
        r = subprocess.run(
            [str(exe)],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        out = r.stdout
        kv = dict(tok.split("=") for line in out.splitlines() for tok in line.split())
        counted = [int(kv[f"counted[{i}]"]) for i in range(len(layouts))]
        fails = [int(kv[f"fails[{i}]"]) for i in range(len(layouts))]
        return ExhaustiveResult(int(kv["vectors"]), fails, counted, out + r.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
