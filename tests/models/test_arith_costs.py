"""The packaged per-MAC cost file: loads, has every engine, and bad files are refused."""

import json

import pytest

from filmqnn_hw.models.arith_costs import ENGINES, load_arith_costs


def test_packaged_costs_load():
    d = load_arith_costs()
    for fam in ("xc7", "xcup"):
        e = d["engines"][fam]
        assert set(ENGINES) <= set(e)
        # the packing goals: 6 W4A5 MACs/DSP with kernel packing, 4 filter-wise, 2 for W8A5
        assert e["w4a5_kernel_dsp"]["macs_per_dsp"] == 6
        assert e["w4a5_filter_dsp"]["macs_per_dsp"] == 4
        assert e["w8a5_dsp"]["macs_per_dsp"] == 2
        assert e["w4a5_lut"]["dsp_per_mac"] == 0 and e["w8a5_lut"]["dsp_per_mac"] == 0
    assert d["provenance"]["generator"] == "benchmarks/arith.py"


def test_costs_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/arith.py"):
        load_arith_costs(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_arith_costs(bad)
    d = load_arith_costs()
    d["format_version"] = 99
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="format_version"):
        load_arith_costs(bad)
    d = load_arith_costs()
    del d["engines"]["xcup"]["w8a5_lut"]
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="lacks engine 'w8a5_lut'"):
        load_arith_costs(bad)
    d = load_arith_costs()
    d["engines"]["xc7"]["w4a5_lut"]["lut_per_mac"] = -1
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="lut_per_mac must be a number"):
        load_arith_costs(bad)
