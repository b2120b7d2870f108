"""The resource model's calibrated coefficients: the file is what the calibration benchmark
derives from its recorded measurements; a bad file is refused naming the entry."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
from pathlib import Path

import pytest

from filmqnn_hw.models.resources import predict
from filmqnn_hw.models.rtl_coefficients import (
    RTL_COEFFICIENTS_PATH,
    load_rtl_coefficients,
    using_rtl_coefficients,
)
from filmqnn_hw.spec.config import AcceleratorConfig

ROOT = Path(__file__).resolve().parents[2]


def _benchmark():
    spec = importlib.util.spec_from_file_location("rtl_calibrate",
                                                  ROOT / "benchmarks/rtl_calibrate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _numbers(d, prefix=""):
    """Flat ``{path: number}`` of every number in ``d`` but its provenance."""
    out = {}
    for k, v in d.items():
        if k == "provenance":
            continue
        if isinstance(v, dict):
            out.update(_numbers(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_the_file_is_the_benchmarks_fit_of_its_recorded_measurements():
    """Refitting benchmarks/results/rtl_calibration.json gives the packaged coefficients, so
    neither the file nor the model holds a hand-copied figure."""
    bench = _benchmark()
    data = json.loads((ROOT / "benchmarks/results/rtl_calibration.json").read_text())
    fitted = _numbers(bench.fit(data)["coefficients"])
    packaged = _numbers(load_rtl_coefficients())
    assert fitted.keys() == packaged.keys()
    for key, v in fitted.items():
        assert math.isclose(v, packaged[key], rel_tol=1e-12, abs_tol=1e-9), key


def test_the_model_prices_with_the_coefficients_in_use():
    cfg = AcceleratorConfig.small()
    base = predict(cfg)
    c = copy.deepcopy(load_rtl_coefficients())
    c["overhead"]["lut"]["base"] += 1000.0
    c["requant_lane"][cfg.family]["dsp"] += 1.0
    with using_rtl_coefficients(c):
        more = predict(cfg)
    assert more.lut == pytest.approx(base.lut + 1000.0)
    assert more.parts["requant"]["dsp"] > base.parts["requant"]["dsp"]
    assert predict(cfg).lut == base.lut


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: d.pop("pe_ff_scale"), "pe_ff_scale must be a finite number"),
    (lambda d: d["overhead"]["ff"].update(per_lane="x"), "overhead/ff/per_lane"),
    (lambda d: d["requant_lane"].pop("xcup"), "requant_lane/xcup/lut"),
    (lambda d: d["dw_taps"].update(ff_fixed=float("nan")), "dw_taps/ff_fixed"),
    (lambda d: d.update(format_version=0), "format_version 0"),
])
def test_a_bad_file_is_refused_naming_the_entry(tmp_path, edit, match):
    d = json.loads(RTL_COEFFICIENTS_PATH.read_text())
    edit(d)
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=match) as e:
        load_rtl_coefficients(p)
    assert str(p) in str(e.value) and "rtl_calibrate.py" in str(e.value)


def test_a_missing_or_truncated_file_says_how_to_regenerate(tmp_path):
    with pytest.raises(FileNotFoundError, match="rtl_calibrate.py --fit-only"):
        load_rtl_coefficients(tmp_path / "none.json")
    p = tmp_path / "t.json"
    p.write_text(RTL_COEFFICIENTS_PATH.read_text()[:40])
    with pytest.raises(ValueError, match="not valid JSON"):
        load_rtl_coefficients(p)
