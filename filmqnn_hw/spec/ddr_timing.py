"""The memory the accelerator's cycles are measured against: the Verilator testbench's DDR
(``filmqnn_hw/sim/verilator_axi_tb.cpp``) and the estimate's assumptions about it."""

from __future__ import annotations

from dataclasses import dataclass

from filmqnn_hw.spec.config import AcceleratorConfig

__all__ = ["DdrTiming"]


@dataclass(frozen=True)
class DdrTiming:
    """``read_latency``: cycles from an AR handshake to its first R beat; ``write_latency``:
    from a burst's last W beat to its B response; ``max_outstanding``: bursts the memory
    accepts per direction and port; ``beats_per_cycle``: R and W beats of all ports together
    per cycle (0: no cap), a token bucket as in the testbench."""

    read_latency: int = 40
    write_latency: int = 10
    max_outstanding: int = 16
    beats_per_cycle: float = 0.0

    @classmethod
    def of_board(cls, config: AcceleratorConfig) -> DdrTiming:
        """The testbench's defaults with all ports capped together at ``config``'s DDR
        bandwidth (uncapped when the config does not know its board's)."""
        return cls(beats_per_cycle=config.ddr_beats_per_cycle
                   if config.ddr_bytes_per_cycle > 0 else 0.0)
