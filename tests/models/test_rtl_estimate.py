"""The chunk-level estimate of the RTL's cycles (``filmqnn_hw/models/rtl_estimate.py``).

It is held to the RTL's cycles, measured on its timing twin in Verilator
(:class:`filmqnn_hw.sim.twin.TimingTwin`, equal to the full top in
``tests/gateware/test_top.py``) on every layer kind of the test configurations and on reduced
networks and full frames on the two board designs. The tolerances are what the estimate is
documented to meet (docs/rtl.md); a drift of the RTL's schedule that is not mirrored in the
estimate fails here.
"""

from __future__ import annotations

import pytest
from helpers import CFG_A, CFG_B, CFG_B2, CFG_B4, CFG_D, layer_cases, small_network

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.models.rtl_estimate import estimate_network
from filmqnn_hw.sim.twin import TimingTwin
from filmqnn_hw.spec.ddr_timing import DdrTiming
from filmqnn_hw.spec.networks import NetworkError, from_intgraph

#: per network (or single-layer case) |estimate / measured - 1|
TOL_CASE = 0.08
TOL_NETWORK = 0.02


def _pair(graph, cfg, timing=None):
    exact = TimingTwin(cfg).run(build_program(graph, cfg), timing)
    est = estimate_network(cfg, from_intgraph(graph), timing=timing)
    return exact, est


@pytest.mark.verilator
@pytest.mark.parametrize("name,cfg", [("A", CFG_A), ("B", CFG_B), ("B2", CFG_B2),
                                      ("B4", CFG_B4), ("D", CFG_D)])
def test_every_layer_kind_within_tolerance(name, cfg):
    cases = {"small_network": small_network(cfg), **layer_cases(cfg)}
    twin = TimingTwin(cfg)
    checked, worst = 0, (0.0, "")
    for case, g in cases.items():
        try:
            net = from_intgraph(g)
        except NetworkError:  # a shape the Network description does not hold (e.g. 5x3 stride)
            continue
        exact = twin.run(build_program(g, cfg))
        est = estimate_network(cfg, net)
        assert len(est.layers) == len(exact.layers) and sum(est.layers) == est.cycles
        err = abs(est.cycles / exact.cycles - 1)
        worst = max(worst, (err, case))
        checked += 1
    assert checked >= 15, f"{name}: only {checked} cases could be described as Networks"
    assert worst[0] <= TOL_CASE, f"{name}: {worst[1]} estimate off by {worst[0]:.1%}"


@pytest.mark.slow
@pytest.mark.verilator
@pytest.mark.parametrize("board", ["pynq_z2", "zcu102"])
def test_board_designs_on_reduced_networks(board):
    """The two default designs (several ports, the DDR cap, weight ports), ResNet-18 and
    MobileNet-V2 at 32x32: whole-network estimate within TOL_NETWORK of the exact model."""
    from filmqnn_hw.evaluate import random_network
    from filmqnn_hw.search.dse import design

    cfg = design(board)
    for net in ("resnet18", "mobilenet_v2"):
        g, _ = random_network(net, cfg, 32)
        exact, est = _pair(g, cfg)
        assert est.cycles == pytest.approx(exact.cycles, rel=TOL_NETWORK), net
        assert est.fps == pytest.approx(cfg.clock_mhz * 1e6 / est.cycles)


#: per layer of a full 224x224 frame on a board design (the benchmark's table, rtl_model.md)
TOL_LAYER_224 = 0.02


@pytest.mark.slow
@pytest.mark.verilator
@pytest.mark.parametrize("board,net", [("zcu102", "resnet18"), ("zcu102", "mobilenet_v2"),
                                       ("pynq_z2", "mobilenet_v2")])
def test_board_designs_every_layer_of_a_full_frame(board, net):
    """224x224 frames on the board designs: every layer's estimate within 2% of the measured
    cycles (what benchmarks/results/rtl_model.md reports for all six networks)."""
    from filmqnn_hw.evaluate import random_network
    from filmqnn_hw.search.dse import design

    cfg = design(board)
    g, _ = random_network(net, cfg, 224)
    exact, est = _pair(g, cfg)
    assert est.names == exact.names
    off = [(n, e / c) for n, c, e in zip(exact.names, exact.layers, est.layers, strict=True)
           if abs(e / c - 1) > TOL_LAYER_224]
    assert not off, f"{board} {net}: layers off by more than 2%: {off}"
    assert est.cycles == pytest.approx(exact.cycles, rel=TOL_NETWORK)


@pytest.mark.verilator
def test_follows_the_memory_timing():
    g = small_network(CFG_B2)
    net = from_intgraph(g)
    base = estimate_network(CFG_B2, net, timing=DdrTiming()).cycles
    slow = estimate_network(CFG_B2, net, timing=DdrTiming(read_latency=200)).cycles
    narrow = estimate_network(CFG_B2, net, timing=DdrTiming(beats_per_cycle=0.25)).cycles
    assert slow > base and narrow > base
    for tim in (DdrTiming(read_latency=200), DdrTiming(beats_per_cycle=0.25)):
        exact, est = _pair(g, CFG_B2, tim)
        assert est.cycles == pytest.approx(exact.cycles, rel=TOL_CASE)
    # the default is the config's own DDR bandwidth, as for the twin
    cfg = CFG_B2.replace(ddr_bytes_per_cycle=2.0)
    assert (estimate_network(cfg, net).cycles
            == estimate_network(cfg, net, timing=DdrTiming(beats_per_cycle=0.25)).cycles)
