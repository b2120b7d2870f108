"""The timing twin: PEArrayTiming keeps the PE array's ports and valid timing, and the twin top
(``timing_twin=True``) counts every cycle, stall and layer exactly as the full top does."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import CFG_A, layer_cases, mixed_network, rand_input, simulate, small_network

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.flows.verilog import emit_verilog
from filmqnn_hw.gateware.pe_array import PEArray
from filmqnn_hw.gateware.pe_array_timing import PEArrayTiming
from filmqnn_hw.gateware.top import TOP_NAME
from filmqnn_hw.sim.verilator import build_verilator, run_verilator
from filmqnn_hw.spec.config import AcceleratorConfig

#: a second shape for the array alone: three AXI ports, two adder-tree stages (PE latency 7)
TREE2 = AcceleratorConfig.small(tm=6, tn=18, n8_slots=1, act_pack=6, axi_data_bits=64, tr=4,
                                tc=4).replace(w8_dsp_lanes=0, w8_lut_lanes=1, w4_dsp_lanes=4,
                                              w4_lut_lanes=1, axi_ports=3)


@pytest.mark.parametrize("cfg", [CFG_A, TREE2], ids=["A", "TREE2"])
def test_ports_and_valid_timing_are_the_arrays(cfg):
    real, twin = PEArray(cfg, dw_taps=2), PEArrayTiming(cfg, dw_taps=2)
    assert twin.signature == real.signature and twin.latency == real.latency
    rng = random.Random(3)
    drive = [(rng.random() < 0.7, rng.random() < 0.5) for _ in range(60)]
    seen = {}
    for name, dut in (("real", real), ("twin", twin)):
        got = []

        async def bench(ctx, dut=dut, got=got):
            for valid, phase in [*drive, *[(False, False)] * (dut.latency + 2)]:
                ctx.set(dut.valid, valid)
                ctx.set(dut.phase, phase)
                await ctx.tick()
                got.append(ctx.get(dut.valid_out))
            if dut is twin:
                assert all(v == 0 for lane in ctx.get(dut.sum) for v in lane)

        simulate(dut, bench)
        seen[name] = got
    assert seen["twin"] == seen["real"] and sum(seen["real"]) > 5


def _run(exe, prog, x, work, **kw):
    return run_verilator(exe, prog.memory_image(x), prog.base, work, n_layers=len(prog.descriptors),
                         **kw)


def _counters(run):
    return ({k: run.counters[k] for k in ("cycles", "stall_weight", "stall_input",
                                          "stall_output", "status")}, run.layer_cycles)


@pytest.fixture(scope="module")
def tops(tmp_path_factory):
    """Verilator executables: CFG_A's timing twin and full top."""
    root = tmp_path_factory.mktemp("twin")

    def build(key, cfg, twin):
        path = root / f"{key}.v"
        emit_verilog(cfg, path, timing_twin=twin)
        return build_verilator(path, TOP_NAME, cfg.axi_data_bits, root / f"build_{key}", jobs=1)

    with ThreadPoolExecutor(2) as ex:
        futs = {"A_twin": ex.submit(build, "A_twin", CFG_A, True),
                "A_full": ex.submit(build, "A_full", CFG_A, False)}
        return root, {k: f.result() for k, f in futs.items()}


@pytest.mark.verilator
def test_the_twin_counts_every_layer_kind_as_the_full_top(tops):
    """Every layer kind, a small and a mixed network on CFG_A: the twin's counters and
    per-layer cycles equal the full top's (tests/gateware/test_top.py holds them equal on
    more configs and memory timings)."""
    root, exes = tops
    graphs = {**layer_cases(CFG_A), "small": small_network(CFG_A),
              "mixed": mixed_network(np.random.default_rng(2), CFG_A)}
    for name, g in graphs.items():
        prog = build_program(g, CFG_A, reuse=False)
        x = rand_input(np.random.default_rng(1), g)
        full = _run(exes["A_full"], prog, x, root / "full")
        twin = _run(exes["A_twin"], prog, x, root / "twin")
        assert full.counters["status"] == 0, name
        assert _counters(twin) == _counters(full), name


@pytest.mark.verilator
@pytest.mark.parametrize("stall_seed", [4, 11])
def test_the_twin_equals_the_full_top_under_random_axi_stalls(tops, stall_seed):
    root, exes = tops
    g = mixed_network(np.random.default_rng(5), CFG_A)
    prog = build_program(g, CFG_A, reuse=False)
    x = rand_input(np.random.default_rng(6), g)
    full = _run(exes["A_full"], prog, x, root / "full", stall_seed=stall_seed)
    twin = _run(exes["A_twin"], prog, x, root / "twin", stall_seed=stall_seed)
    assert _counters(twin) == _counters(full)
    assert np.array_equal(prog.read_output(full.memory), g.run(x))  # the full top computes
