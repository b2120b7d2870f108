# amaranth: UnusedElaboratable=no
"""RequantUnit proven by parts with yosys ``sat`` (miters in ``filmqnn_hw/verify/formal.py``).

One miter of the whole unit against ``clip((acc*mult + offset + res*res_mult) >> shift)``
does not finish (SAT and multipliers). The unit is a feed-forward pipeline, so it is cut at
its stage-2 registers ``(m2, r2, sh2, v2)`` and each side is proven for every input of its
domain; the cut is made with *probes* (miter ports tied to ``dut.m2`` etc. in the flattened
netlist). No proof assumes an initial state: the ``init`` attributes are removed and
``sat -seq N`` starts from free registers, with every input free at every step.

1. Front (stages 1-2), ``test_front_stages_proven``: for each of the 32 values of ``res``
   (a constant, so the reference ``res * res_mult`` is shifts and adds for the solver), for
   every ``acc``, ``mult``, 48-bit ``offset``, 31-bit ``res_mult``, ``shift``, ``valid``
   entering at step 1, at step 3 ``r2 == offset + res*res_mult``, ``m2 == acc*mult``,
   ``sh2 == shift``, ``v2 == valid`` (integer equality: Amaranth ``==`` extends both sides,
   so a truncated or mis-extended register fails). Also for ``residual=False``
   (``r2 == offset``).

   ``m2`` is not a SAT equivalence of two multipliers: the reference registers ``acc`` and
   ``mult`` like the unit and applies the same Amaranth ``*``, so yosys ``opt`` merges the
   two ``$mul`` cells and the SAT part only checks the wiring and extension around it. That
   the shared ``$mul`` is the exact product is checked structurally by
   ``test_single_exact_multiplier``: the unit has exactly one ``$mul``, ``A = acc1``
   (signed, ``acc_bits``), ``B = {0, mult1}`` (signed 16 = unsigned 15 zero-extended),
   ``Y_WIDTH >= acc_bits + 15`` (``|acc*mult| < 2**(acc_bits-1) * 2**15`` fits), i.e.
   yosys ``$mul`` semantics give ``acc * mult`` exactly.

2. Back (stages 3-6), ``test_back_stages_proven``: from *every* stage-2 state (any 42-bit
   ``m2``, 49-bit ``r2``, 6-bit ``sh2``, i.e. all of 0..63, not only ``<= SHIFT_MAX``; any
   ``v2``) at step 1, for every ``lo``/``hi`` (including ``lo > hi``) at step 4 when stage 6
   samples them and any inputs entering meanwhile: at step 5 ``o.valid == v2`` and, if the
   exact ``y = m2 + r2`` fits signed 48 bits (the contract ``|y| < 2**47`` is a subset),
   ``o.payload == min(max(y >> sh2, lo), hi)`` (arithmetic shift of the untruncated ``y``;
   the reference clip is written as ``hi if lo > hi else clamp``, independently of the
   unit's two muxes).

Composition: the front fixes the stage-2 state two cycles after an input to
``(acc*mult, offset + res*res_mult, shift, valid)`` and the back holds for every stage-2
state and whatever else the pipeline holds, so six cycles after the input (``o.ready``
high throughout) ``o.payload == clip((acc*mult + offset + res*res_mult) >> shift, lo, hi)``
whenever ``y`` fits 48 bits, for the whole input domain. Stalls: ``test_one_enable`` checks
that every state element is a ``$sdffe`` enabled by the same ``en`` (= ``i.ready``), so a
stalled run is the un-stalled run restricted to the enabled cycles (reset aside; ``lo``/``hi``
must then hold while data is in flight, as the unit documents).

3. ``test_mutations_are_caught``: the same miters against wrong references (``+1`` on the
   residual, shift by one more, clip in min-then-max order, no ``|y|`` precondition) must
   give counterexamples, so the proofs are not vacuous (the probes really reach the unit's
   registers, the precondition is satisfiable, ``lo > hi`` is in the domain).

Proven for ``acc_bits`` = the small config's (26) and 32 (the maximum) for the back end and
the multiplier structure; the front's ``r2`` does not depend on ``acc_bits`` and is proven
at 26 (``m2``'s wiring for 32 is covered by one front miter too).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from filmqnn_hw.spec.config import ACT_BITS, AcceleratorConfig
from filmqnn_hw.spec.geometry import REQUANT_LATENCY
from filmqnn_hw.spec.numerics import MULT_BITS
from filmqnn_hw.verify.formal import (
    BACK_STEPS,
    FRONT_STEPS,
    RequantBackMiter,
    RequantFrontMiter,
    flop_enables,
    mul_cells,
    sat_prove,
)

AB = AcceleratorConfig.small().acc_bits
ACC_BITS = sorted({AB, 32})


def _run(jobs):
    """Run ``sat_prove(miters, steps)`` jobs on two yosys processes; flat list of results."""
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(sat_prove, miters, steps) for miters, steps in jobs]
        return [r for f in futures for r in f.result()]


def _unproved(results):
    return [f"{r.name}:\n{r.log[r.log.find('Solving') :][:4000]}" for r in results if not r.proved]


def test_latency_split():
    assert FRONT_STEPS - 1 + BACK_STEPS - 1 == REQUANT_LATENCY


@pytest.mark.synth
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("acc_bits", ACC_BITS)
def test_single_exact_multiplier(acc_bits, residual):
    (mul,) = mul_cells(acc_bits, residual=residual)  # exactly one $mul (the residual is LUTs)
    assert mul["A"] == "acc1" and mul["A_SIGNED"] == 1 and mul["A_WIDTH"] == acc_bits
    assert mul["B_low"] == "mult1" and mul["B_top"] == "0"
    assert mul["B_SIGNED"] == 1 and mul["B_WIDTH"] == MULT_BITS + 1
    assert mul["Y_WIDTH"] >= acc_bits + MULT_BITS


@pytest.mark.synth
@pytest.mark.parametrize("residual", [True, False])
def test_one_enable(residual):
    flops = flop_enables(AB, residual=residual)
    assert list(flops) == ["$sdffe"], flops
    regs = flops["$sdffe"]
    assert {r[1:] for r in regs} == {("en", 1, "rst")}
    names = {r[0] for r in regs}
    assert {"o__valid", "o__payload", "m2", "r2", "sh2", "v2", "y3", "q5"} <= names
    assert len(regs) == (21 if residual else 19)


@pytest.mark.synth
def test_front_stages_proven():
    t0 = time.monotonic()
    res_values = range(1 << ACT_BITS)
    jobs = [
        ({f"front_r{k}": RequantFrontMiter(AB, k) for k in res_values[i::2]}, FRONT_STEPS)
        for i in range(2)
    ]
    jobs[0][0]["front_nores"] = RequantFrontMiter(AB, None, residual=False)
    jobs[1][0]["front_ab32_r31"] = RequantFrontMiter(32, 31)
    results = _run(jobs)
    assert len(results) == (1 << ACT_BITS) + 2
    assert not _unproved(results), "\n".join(_unproved(results))
    assert time.monotonic() - t0 < 120


@pytest.mark.synth
def test_back_stages_proven():
    miters = {f"back_ab{ab}": RequantBackMiter(ab) for ab in ACC_BITS}
    miters["back_nores"] = RequantBackMiter(AB, residual=False)
    results = _run([(miters, BACK_STEPS)])
    assert len(results) == len(miters)
    assert not _unproved(results), "\n".join(_unproved(results))


@pytest.mark.synth
def test_mutations_are_caught():
    front = {"mut_front_r31": RequantFrontMiter(AB, 31, mutate=True),
             "mut_front_r0": RequantFrontMiter(AB, 0, mutate=True)}  # fmt: skip
    back = {f"mut_back_{m}": RequantBackMiter(AB, mutate=m) for m in ("shift", "clip", "contract")}
    results = _run([(front, FRONT_STEPS), (back, BACK_STEPS)])
    assert len(results) == 5
    for r in results:
        assert not r.proved, r.name
        assert "model found: FAIL!" in r.log, r.log[-2000:]
