"""TimingTwin: one build per config, layer programs and exported program.bin bytes run alike,
programs for another config refused before any run."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import CFG_A, small_network

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.sim.twin import RtlCycles, TimingTwin, default_twin_dir
from filmqnn_hw.spec.ddr_timing import DdrTiming
from filmqnn_hw.spec.program import ProgramError

CFG = CFG_A.replace(ddr_bytes_per_cycle=8.0)  # half a 128-bit beat per cycle


def test_default_dir_is_per_config_in_the_build_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("FILMQNN_CACHE_DIR", str(tmp_path))
    d = default_twin_dir(CFG)
    assert d.parent == tmp_path / "twin" and d != default_twin_dir(CFG.replace(tr=2))


def test_another_configs_program_is_refused_before_a_build(tmp_path):
    twin = TimingTwin(CFG, tmp_path / "twin")
    prog = build_program(small_network(CFG_A), CFG_A.replace(tc=3))
    with pytest.raises(ValueError, match="another configuration"):
        twin.run(prog)
    with pytest.raises(ProgramError, match="built for config"):
        twin.run(prog.to_bytes())
    assert not (tmp_path / "twin").exists()  # nothing emitted or built


@pytest.mark.verilator
def test_programs_and_their_bytes_run_alike():
    twin = TimingTwin(CFG)
    prog = build_program(small_network(CFG), CFG)
    a = twin.run(prog)  # the config's DDR cap: 0.5 beats per cycle
    b = twin.run(prog.to_bytes())
    assert isinstance(a, RtlCycles) and (a.layers, a.cycles, a.stall_input) == (
        b.layers, b.cycles, b.stall_input)
    assert b.names == [f"#{i}" for i in range(len(b.layers))]  # program.bin holds no names
    assert sum(a.layers) == a.cycles and len(a.names) == len(prog.descriptors)
    assert a.fps(CFG.clock_mhz) == pytest.approx(CFG.clock_mhz * 1e6 / a.cycles)
    free = twin.run(prog, DdrTiming())
    slow = twin.run(prog, DdrTiming(read_latency=200))
    assert slow.cycles > free.cycles and a.cycles > free.cycles
    stalled = [twin.run(prog, DdrTiming(), stall_seed=s).cycles for s in (1, 2)]
    assert min(stalled) > free.cycles and len(set(stalled)) == 2
    assert np.isfinite(a.as_dict()["cycles"])
