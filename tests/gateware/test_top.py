"""The generated accelerator top as Verilog: emission, Verilator lint, and whole programs
simulated with Verilator bit-exact against the golden model (``IntGraph.run``).

Verilator builds per session (module fixture, built two at a time): the small ``CFG_A`` of
the pysim tests (small network, inverted residual block) and a mid-size config
(``MID``: 16x16 array, 8x8 tiles) that runs whole reduced ResNet-18 / MobileNet-V2 graphs
after one ``ap_start``. Every tensor the program writes is compared with ``==``, not just
the output (programs are built with ``reuse=False`` so no buffer is overwritten).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import (
    CFG_A,
    CFG_B,
    CFG_B2,
    CFG_B4,
    converted_network,
    graph_of,
    rand_conv,
    rand_input,
    small_network,
)

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.flows.verilog import emit_verilog
from filmqnn_hw.gateware.top import TOP_NAME
from filmqnn_hw.sim.twin import TimingTwin
from filmqnn_hw.sim.verilator import (
    build_verilator,
    run_verilator,
    top_ports,
    verilator_lint,
)
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.ddr_timing import DdrTiming
from filmqnn_hw.spec.geometry import check_program, engine_plan, geometry

#: Mid-size config for whole networks: 16x16 array (one 8-bit lane), G=8 on 128-bit beats.
MID = AcceleratorConfig.small(tm=16, tn=16, n8_slots=1, act_pack=8, axi_data_bits=128, tr=8,
                              tc=8)
#: Power-of-two words per beat (WPB = 4, as on ZCU102: G=6 on 128-bit beats; WPB = 2: G=3 on
#: 32-bit beats): bank indices then span their whole range, which Verilator's CMPCONST lint
#: catches in comparisons that always hold.
WPB4 = AcceleratorConfig.small(tm=6, tn=6, n8_slots=1, act_pack=6, axi_data_bits=128, tr=4, tc=4)
WPB2 = AcceleratorConfig.small(tm=6, tn=6, n8_slots=1, act_pack=3, axi_data_bits=32, tr=4, tc=4)
#: Two words per beat and three AXI ports (two weight memories): depthwise kernel rows in
#: groups of 3 taps at stride 1 and of 2 at stride 2, records staged from both memories.
DW2 = WPB2.replace(axi_ports=3)
#: H = ceil(tn / 2) = 9 multipliers per dot unit: two adder-tree stages (PE latency 7; the
#: LUT lanes' units 4, delayed 3 to align), weights through a second AXI port.
TREE2 = AcceleratorConfig.small(tm=6, tn=18, n8_slots=1, act_pack=6, axi_data_bits=64, tr=4,
                                tc=4).replace(w8_dsp_lanes=0, w8_lut_lanes=1, w4_dsp_lanes=4,
                                              w4_lut_lanes=1, axi_ports=2)
CFGS = {"A": CFG_A, "B": CFG_B, "B2": CFG_B2, "B4": CFG_B4, "MID": MID, "WPB4": WPB4,
        "WPB2": WPB2, "DW2": DW2, "TREE2": TREE2}

_EMITTED: dict[str, str] = {}
#: the testbench's default memory (read latency 40, write latency 10, no DDR cap)
TB_TIMING = DdrTiming()


def _emit(key: str, root) -> str:
    """Emit the top for ``CFGS[key]`` once per session into ``root``; return the path."""
    if key not in _EMITTED or not (root / f"{key}.v").exists():
        path = root / f"{key}.v"
        emit_verilog(CFGS[key], path)
        _EMITTED[key] = str(path)
    return _EMITTED[key]


@pytest.fixture(scope="module")
def vroot(tmp_path_factory):
    return tmp_path_factory.mktemp("accel_top")


@pytest.fixture(scope="module")
def sims(vroot):
    """Verilator executables for CFG_A, MID, CFG_B2 (two AXI ports) and DW2; emission of one
    overlaps another's build."""
    def build(key):
        path = _emit(key, vroot)
        return build_verilator(path, TOP_NAME, CFGS[key].axi_data_bits, vroot / f"build_{key}",
                               jobs=1)

    with ThreadPoolExecutor(2) as ex:
        futs = {k: ex.submit(build, k) for k in ("MID", "A", "B2", "DW2")}
        return {k: f.result() for k, f in futs.items()}


def _run(sims, vroot, key, graph, x, *, stall_seed=None, timing=TB_TIMING):
    """Run ``graph`` on the built top for ``key`` against a memory with ``timing``; assert
    every written tensor equals the golden model's and that the timing twin of the top
    (:class:`filmqnn_hw.sim.twin.TimingTwin`, the same stall seed) counts every counter and
    every layer's cycles exactly as the full top; return the VerilatorRun."""
    cfg = CFGS[key]
    prog = build_program(graph, cfg, reuse=False)
    check_program(prog, cfg)
    ref = graph.run(x, keep=True)
    run = run_verilator(sims[key], prog.memory_image(x), prog.base, vroot / "work",
                        stall_seed=stall_seed, n_layers=len(prog.descriptors),
                        read_latency=timing.read_latency, write_latency=timing.write_latency,
                        max_outstanding=timing.max_outstanding,
                        ddr_beats_per_cycle=timing.beats_per_cycle or None)
    assert run.counters["status"] == 0 and run.counters["cycles"] > 0
    # per-layer cycles from the testbench's descriptor-fetch log partition the cycle counter
    assert len(run.layer_cycles) == len(prog.descriptors)
    assert all(c > 0 for c in run.layer_cycles)
    assert sum(run.layer_cycles) == run.counters["cycles"]
    pred = TimingTwin(cfg).run(prog, timing, stall_seed=stall_seed)
    assert pred.layers == run.layer_cycles
    assert (pred.cycles, pred.stall_weight, pred.stall_input, pred.stall_output) == (
        run.counters["cycles"], run.counters["stall_weight"], run.counters["stall_input"],
        run.counters["stall_output"])
    out = prog.read_output(run.memory)
    assert out.shape == ref[graph.output].shape
    assert np.array_equal(out, ref[graph.output])
    checked = 0
    for name in ref:
        if name in prog.tensors:
            got = prog.read_tensor(run.memory, name)
            assert np.array_equal(got, ref[name][0]), f"tensor {name!r} differs ({key})"
            checked += 1
    assert checked == len(graph.ops) + 1  # input and every op's output
    return run


def _stalls_cost_cycles(sims, vroot, key, seed, stall_seed):
    """The small network on the top for ``key``, calm and with random stalls (``stall_seed``):
    both bit-exact (checked in ``_run``), the stalled run takes more cycles."""
    g = small_network(CFGS[key])
    x = rand_input(np.random.default_rng(seed), g)
    calm = _run(sims, vroot, key, g, x)
    stalled = _run(sims, vroot, key, g, x, stall_seed=stall_seed)
    assert stalled.counters["cycles"] > calm.counters["cycles"]


# ---------------------------------------------------------------------------------------------
# emission and lint
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["A", pytest.param("B", marks=pytest.mark.slow),
                                 pytest.param("B2", marks=pytest.mark.slow), "B4"])
def test_emit_verilog(key, vroot):
    cfg = CFGS[key]
    geometry(cfg)
    text = open(_emit(key, vroot)).read()
    ports = top_ports(text, TOP_NAME)
    assert ports["ap_clk"] == ("input", 1) and ports["ap_rst_n"] == ("input", 1)
    assert ports["m_axi_gmem0_rdata"] == ("input", cfg.axi_data_bits)
    assert ports["m_axi_gmem0_wdata"] == ("output", cfg.axi_data_bits)
    assert ports["m_axi_gmem0_wstrb"] == ("output", cfg.axi_data_bits // 8)
    assert ports["s_axi_control_wdata"] == ("input", 32)
    assert ports["interrupt"] == ("output", 1)
    # one master per weight port after m_axi_gmem0, as wide as port 0
    k = geometry(cfg).weight_ports
    assert k == cfg.axi_ports - 1
    for i in range(1, 5):
        assert (f"m_axi_gmem{i}_rdata" in ports) == (i <= k)
        if i <= k:
            assert ports[f"m_axi_gmem{i}_araddr"] == ports["m_axi_gmem0_araddr"]
            assert ports[f"m_axi_gmem{i}_rdata"] == ("input", cfg.axi_data_bits)


@pytest.mark.parametrize("key", ["A", "B", "B2", "B4", "WPB4", "WPB2", "TREE2"])
@pytest.mark.verilator
def test_verilator_lint(key, vroot):
    verilator_lint(_emit(key, vroot), TOP_NAME)


@pytest.mark.parametrize("board", ["pynq_z2", "zcu102"])
@pytest.mark.verilator
@pytest.mark.slow
def test_board_top_lint(board, tmp_path):
    """The tops `python -m filmqnn_hw.build BOARD` writes (the design search's configs) emit
    with one shared module per repeated unit and lint clean (PYNQ-Z2 about 15 s, ZCU102
    about 40 s)."""
    from filmqnn_hw.search.dse import design

    cfg = design(board)
    path = tmp_path / f"{board}.v"
    text = emit_verilog(cfg, path)
    ports = top_ports(text, TOP_NAME)
    k = geometry(cfg).weight_ports
    assert all(f"m_axi_gmem{i}_rdata" in ports for i in range(k + 1))
    assert f"m_axi_gmem{k + 1}_rdata" not in ports
    # the dot units of each engine kind and the requantization lanes: one module each
    shared = re.findall(rf"^module ({TOP_NAME}__\w+)\(", text, re.M)
    kinds = {e.kind for e in engine_plan(cfg)}
    assert len(shared) == len(kinds) + 1, shared
    lanes = re.findall(rf"^\s*{TOP_NAME}__RequantUnit_\d+ ", text, re.M)
    assert len(lanes) == geometry(cfg).rq_lanes
    verilator_lint(path, TOP_NAME)


# ---------------------------------------------------------------------------------------------
# programs in Verilator == golden model
# ---------------------------------------------------------------------------------------------
@pytest.mark.verilator
def test_small_network(sims, vroot):
    """One start runs the whole small network; random AXI back-pressure: same bits, more cycles."""
    _stalls_cost_cycles(sims, vroot, "A", seed=0, stall_seed=5)


@pytest.mark.verilator
@pytest.mark.slow
def test_two_stage_adder_trees(vroot):
    """A PE array whose dot units need two adder-tree stages (PE latency 7, as on ZCU102):
    the small network bit-exact, every counter and layer equal to the timing twin's, calm
    and with random stalls."""
    from filmqnn_hw.spec.geometry import pe_latency

    assert pe_latency(TREE2) == 7
    sim = build_verilator(_emit("TREE2", vroot), TOP_NAME, TREE2.axi_data_bits,
                          vroot / "build_TREE2", jobs=2)
    _stalls_cost_cycles({"TREE2": sim}, vroot, "TREE2", seed=4, stall_seed=3)


@pytest.mark.verilator
def test_small_network_two_ports(sims, vroot):
    """Parameters and weights through m_axi_gmem1: the same bits, calm and with random stalls
    on both ports."""
    _stalls_cost_cycles(sims, vroot, "B2", seed=1, stall_seed=7)


@pytest.mark.verilator
@pytest.mark.parametrize("timing", [
    DdrTiming(read_latency=7, write_latency=3),
    DdrTiming(read_latency=90, write_latency=25, max_outstanding=2),
    DdrTiming(beats_per_cycle=1.0),  # parameters, weights, inputs and stores share 1 beat
    DdrTiming(read_latency=60, beats_per_cycle=0.4),
])
def test_twin_under_each_memory_timing(sims, vroot, timing):
    """The timing twin follows the full top under every memory: latencies, outstanding-burst
    limit and a shared DDR cap over both ports (CFG_B2), every layer (checked in ``_run``)."""
    g = small_network(CFG_B2)
    x = np.random.default_rng(3).integers(0, 32, (1,) + g.input.shape)
    _run(sims, vroot, "B2", g, x, timing=timing)


def _inverted_residual(cfg, c, h, w, t=6, seed=1):
    """MobileNet-V2 block: 1x1 expand (c -> t*c), 3x3 depthwise, 1x1 project + residual x."""
    r = np.random.default_rng(seed)
    e = t * c
    ops = [
        rand_conv(r, cfg, "expand", "x", "e", c, e, 1),
        rand_conv(r, cfg, "dw", "e", "d", e, e, 3, 1, 1, depthwise=True),
        rand_conv(r, cfg, "project", "d", "y", e, c, 1, residual="x"),
    ]
    return graph_of(ops, {"x": (c, h, w), "e": (e, h, w), "d": (e, h, w), "y": (c, h, w)},
                    "x", "y")


def _depthwise_chain(cfg, c, seed=4):
    """Depthwise layers of every group shape in a row: 3x3 s1, 3x3 s2, 5x5 s1, 7x7 s2, 1x3."""
    r = np.random.default_rng(seed)
    spec = [("a", 3, 1, 1), ("b", 3, 2, 1), ("c", 5, 1, 2), ("d", 7, 2, 3), ("e", (1, 3), 1, 0)]
    shapes, ops, h, w, prev = {"x": (c, 15, 13)}, [], 15, 13, "x"
    for name, k, s, p in spec:
        kh, kw = (k, k) if isinstance(k, int) else k
        ph, pw = (p, p) if kh == kw else (0, 0)
        h, w = (h + 2 * ph - kh) // s + 1, (w + 2 * pw - kw) // s + 1
        ops.append(rand_conv(r, cfg, name, prev, name + "y", c, c, k, s, p, depthwise=True))
        shapes[name + "y"] = (c, h, w)
        prev = name + "y"
    return graph_of(ops, shapes, "x", prev)


@pytest.mark.verilator
@pytest.mark.parametrize("key", ["DW2", "A"])
def test_depthwise_tap_groups(sims, vroot, key):
    """Depthwise kernel rows in tap groups: bits == golden, every layer's cycles == the
    timing twin's (DW2: two banks, two weight memories; A: three banks)."""
    g = _depthwise_chain(CFGS[key], 7)
    x = np.random.default_rng(5).integers(0, 32, (1,) + g.input.shape)
    _run(sims, vroot, key, g, x)
    _run(sims, vroot, key, g, x, stall_seed=9)


@pytest.mark.verilator
@pytest.mark.parametrize("key,c,h,w", [("A", 8, 7, 5), ("MID", 16, 9, 11)])
def test_inverted_residual_block(sims, vroot, key, c, h, w):
    g = _inverted_residual(CFGS[key], c, h, w)
    x = np.random.default_rng(2).integers(0, 32, (1,) + g.input.shape)
    _run(sims, vroot, key, g, x)
    assert len(np.unique(g.run(x))) > 10  # guard: not a trivially clipped output


# ---------------------------------------------------------------------------------------------
# whole networks (torch models, seeded random weights, converted with to_integer)
# ---------------------------------------------------------------------------------------------
#: name -> (build_model kwargs, input shape). ResNet-18 at width 1/4 with the 32x32 stem
#: (final map 4x4, GAP window 4x4); MobileNet-V2 at width 1/4 with the stride-2 stem (final
#: map 1x1), both with 10 classes.
NETS = {
    "resnet18": (dict(width_mult=0.25, small_input=True, num_classes=10), (3, 32, 32)),
    "mobilenet_v2": (dict(width_mult=0.25, num_classes=10, last_channel=64), (3, 32, 32)),
}


@pytest.mark.verilator
@pytest.mark.slow
@pytest.mark.parametrize("name,stall_seed", [("resnet18", 3), ("resnet18", None),
                                             ("mobilenet_v2", None)])
def test_whole_network(sims, vroot, name, stall_seed):
    """A converted network (fused residuals, depthwise, GAP, FC logits) after one start."""
    g, codes = converted_network(name, MID, *NETS[name], batch=4)
    _run(sims, vroot, "MID", g, codes, stall_seed=stall_seed)
    assert len(np.unique(g.run(codes))) > 3
