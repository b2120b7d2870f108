"""The cycles of the generated RTL, measured on its timing twin in Verilator.

:class:`TimingTwin` emits the timing twin of a config's top (``emit_verilog(config,
timing_twin=True)``: the real top with :class:`~filmqnn_hw.gateware.pe_array_timing.
PEArrayTiming` for its PE array, so every FSM, FIFO, counter and AXI handshake is the real
one), builds it once with Verilator (reused while its Verilog is unchanged) and runs layer
programs on it against the testbench's memory (:class:`~filmqnn_hw.spec.ddr_timing.
DdrTiming`). The counters it returns are the RTL's own: the sequencing is written once, in the
engine. The twin's outputs are meaningless (no arithmetic); bits come from the full top.

Speed (``benchmarks/results/timing_twin.md``): the ZCU102 twin builds in about 100 s and 1.4
GB and runs a 224x224 ResNet-18 frame in about 10 s; the PYNQ-Z2 twin in 40 s and 20 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.ddr_timing import DdrTiming
from filmqnn_hw.spec.geometry import check_descriptors, check_program
from filmqnn_hw.spec.program import LayerProgram

__all__ = ["RtlCycles", "TimingTwin", "default_twin_dir"]

Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


@dataclass
class RtlCycles:
    """The counters of one run of a layer program on the RTL: ``cycles`` and the stall
    counters as the control registers give them, and ``layers[i]``: cycles of descriptor
    ``i`` (named ``names[i]``), from its descriptor fetch to the next (they sum to
    ``cycles``)."""

    layers: list[int]
    names: list[str]
    cycles: int
    stall_weight: int
    stall_input: int
    stall_output: int

    def fps(self, clock_mhz: float) -> float:
        """Frames per second at ``clock_mhz`` (one frame per start)."""
        return clock_mhz * 1e6 / self.cycles

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"cycles": self.cycles, "stall_weight": self.stall_weight,
                "stall_input": self.stall_input, "stall_output": self.stall_output,
                "layers": [{"name": n, "cycles": c}
                           for n, c in zip(self.names, self.layers, strict=True)]}


def default_twin_dir(config: AcceleratorConfig) -> Path:
    """Where a config's twin is built unless told otherwise: the build cache
    (:func:`filmqnn_hw.flows.cache.cache_dir`), one folder per config."""
    from filmqnn_hw.flows.cache import cache_dir

    return cache_dir() / "twin" / config.config_hash()[:16]


class TimingTwin:
    """The timing twin of ``config``'s top, built with Verilator in ``work_dir`` (default
    :func:`default_twin_dir`) on first use. ``progress`` receives one line per slow step."""

    def __init__(self, config: AcceleratorConfig, work_dir: str | Path | None = None, *,
                 progress: Progress = _quiet, build_timeout: float = 3600.0) -> None:
        self.config = config
        self.work_dir = Path(work_dir) if work_dir is not None else default_twin_dir(config)
        self.progress = progress
        self.build_timeout = build_timeout
        self._exe: Path | None = None

    def build(self) -> Path:
        """The Verilator executable, emitted and built on first call (an unchanged Verilog
        keeps the earlier build: :func:`filmqnn_hw.sim.verilator.build_verilator`); :meth:`run`
        calls it, callers that time runs call it first."""
        if self._exe is None:
            from filmqnn_hw.flows import cache
            from filmqnn_hw.flows.verilog import emit_verilog
            from filmqnn_hw.gateware.top import TOP_NAME
            from filmqnn_hw.sim.verilator import build_verilator
            from filmqnn_hw.spec.files import atomic_write

            self.work_dir.mkdir(parents=True, exist_ok=True)
            v = self.work_dir / "twin.v"
            def make() -> str:
                self.progress("  emitting the timing twin of the top ...")
                return emit_verilog(self.config, timing_twin=True)

            key = cache.cache_key("twin-verilog", self.config.config_hash(), TOP_NAME)
            text, _ = cache.load_or_make("twin-verilog", key, make)
            if not v.exists() or v.read_text() != text:
                atomic_write(v, text)
            t0 = time.perf_counter()
            self.progress("  building the timing twin with Verilator (about 40 s for PYNQ-Z2, "
                          "100 s for ZCU102; reused while the RTL is unchanged) ...")
            self._exe = build_verilator(v, TOP_NAME, self.config.axi_data_bits,
                                        self.work_dir / "vbuild", timeout=self.build_timeout)
            self.progress(f"  timing twin ready ({time.perf_counter() - t0:.0f} s)")
        return self._exe

    def run(self, program: LayerProgram | bytes, timing: DdrTiming | None = None, *,
            stall_seed: int | None = None, timeout: float = 6 * 3600.0) -> RtlCycles:
        """The RTL's counters for one run of ``program`` (a :class:`LayerProgram` or the bytes
        of an exported ``program.bin``, built for this config at base 0) against the memory
        ``timing`` (default :meth:`DdrTiming.of_board`); ``stall_seed``: random AXI pauses.
        Raises :class:`~filmqnn_hw.spec.program.ProgramError` /
        :class:`~filmqnn_hw.spec.geometry.RtlUnsupported` for a program this RTL refuses and
        :class:`~filmqnn_hw.sim.verilator.VerilatorError` if the run fails."""
        from filmqnn_hw.sim.verilator import VerilatorError, run_verilator

        cfg = self.config
        if isinstance(program, LayerProgram):
            if program.config.config_hash() != cfg.config_hash():
                raise ValueError("the program was built for another configuration; rebuild "
                                 "it with build_program(graph, config)")
            check_program(program, cfg)
            memory, base = program.memory_image(), program.base
            names = [d.name or f"#{i}" for i, d in enumerate(program.descriptors)]
        else:
            head, descs = LayerProgram.parse(program, cfg)
            check_descriptors(descs, cfg)
            memory = bytearray(head["mem_bytes"])
            memory[: len(program)] = program
            base = 0
            names = [d.name or f"#{i}" for i, d in enumerate(descs)]
        timing = timing or DdrTiming.of_board(cfg)
        run = run_verilator(self.build(), memory, base, self.work_dir / "run",
                            read_latency=timing.read_latency,
                            write_latency=timing.write_latency,
                            max_outstanding=timing.max_outstanding,
                            ddr_beats_per_cycle=timing.beats_per_cycle or None,
                            stall_seed=stall_seed, n_layers=len(names),
                            max_cycles=2_000_000_000, timeout=timeout)
        c = run.counters
        if c["status"] != 0:
            raise VerilatorError(f"the twin stopped with status {c['status']:#x}")
        return RtlCycles(run.layer_cycles, names, c["cycles"], c["stall_weight"],
                         c["stall_input"], c["stall_output"])

