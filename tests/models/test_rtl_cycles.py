"""The cycle model of the RTL (``filmqnn_hw/models/rtl_cycles.py``) on its own.

Its exactness against the generated Verilog (every counter and every layer's cycles equal,
``==``, over several configurations, networks and memory timings) is checked where the
Verilator runs are: ``tests/gateware/test_top.py::_run``. Here: its bookkeeping, its
response to the memory's timing, and its refusals.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import CFG_A, CFG_B, CFG_B2, graph_of, rand_conv, small_network

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.models.rtl_cycles import DdrTiming, rtl_cycles
from filmqnn_hw.spec.geometry import RtlUnsupported


@pytest.fixture(scope="module")
def prog_b2():
    return build_program(small_network(CFG_B2), CFG_B2)


def test_layers_partition_the_cycle_counter(prog_b2):
    r = rtl_cycles(prog_b2, CFG_B2, DdrTiming())
    assert r.names == [d.name for d in prog_b2.descriptors]
    assert len(r.layers) == len(prog_b2.descriptors)
    assert all(c > 0 for c in r.layers)
    assert sum(r.layers) == r.cycles
    # the stall counters classify cycles in which the PE array does not issue
    assert 0 < r.stall_weight + r.stall_input + r.stall_output < r.cycles
    # per layer, the stall counters split the totals; no layer stalls longer than it runs
    assert len(r.layer_stalls) == len(r.layers)
    assert [sum(x) for x in zip(*r.layer_stalls, strict=True)] == [
        r.stall_weight, r.stall_input, r.stall_output]
    assert all(sum(s) < c for s, c in zip(r.layer_stalls, r.layers, strict=True))
    assert r.fps(100.0) == pytest.approx(1e8 / r.cycles)
    d = r.as_dict()
    assert [x["cycles"] for x in d["layers"]] == r.layers
    # deterministic
    assert rtl_cycles(prog_b2, CFG_B2, DdrTiming()) == r


def test_follows_the_memory_timing(prog_b2):
    base = rtl_cycles(prog_b2, CFG_B2, DdrTiming()).cycles
    slow = rtl_cycles(prog_b2, CFG_B2, DdrTiming(read_latency=200)).cycles
    narrow = rtl_cycles(prog_b2, CFG_B2, DdrTiming(beats_per_cycle=0.25)).cycles
    few = rtl_cycles(prog_b2, CFG_B2, DdrTiming(max_outstanding=1)).cycles
    assert slow > base and narrow > base and few > base
    # a read latency of L costs at least one round trip per descriptor
    assert slow - base >= 160 * len(prog_b2.descriptors)


def test_default_timing_is_the_configs_ddr_bandwidth():
    cfg = CFG_B2.replace(ddr_bytes_per_cycle=2.0)  # a quarter of one 64-bit beat per cycle
    prog = build_program(small_network(cfg), cfg)
    assert rtl_cycles(prog) == rtl_cycles(prog, cfg, DdrTiming(beats_per_cycle=0.25))
    assert rtl_cycles(prog).cycles > rtl_cycles(prog, cfg, DdrTiming()).cycles


def test_refuses_a_program_for_another_config(prog_b2):
    with pytest.raises(ValueError, match="another configuration"):
        rtl_cycles(prog_b2, CFG_A)


def test_refuses_what_the_rtl_refuses():
    prog = build_program(small_network(CFG_A), CFG_A)
    bad = prog.descriptors[2]
    bad.words["kh"] = 9  # a window the engine reports as unsupported (status 5)
    with pytest.raises(RtlUnsupported, match=repr(bad.name)):
        rtl_cycles(prog)


def test_max_cycles():
    prog = build_program(small_network(CFG_B), CFG_B)
    with pytest.raises(RuntimeError, match="no ap_done after 500 cycles"):
        rtl_cycles(prog, max_cycles=500)


def test_more_work_more_cycles():
    """A larger input through the same layers takes longer, layer by layer."""
    def one_conv(h):
        r = np.random.default_rng(0)
        op = rand_conv(r, CFG_A, "c", "x", "y", 8, 8, 3, 1, 1)
        return graph_of([op], {"x": (8, h, h), "y": (8, h, h)}, "x", "y")

    small = rtl_cycles(build_program(one_conv(6), CFG_A), CFG_A, DdrTiming())
    big = rtl_cycles(build_program(one_conv(20), CFG_A), CFG_A, DdrTiming())
    assert big.cycles > small.cycles
    assert big.stall_input >= small.stall_input
