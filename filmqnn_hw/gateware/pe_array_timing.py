"""The PE array of the timing twin: the real array's ports and timing, without its arithmetic.

The timing twin of the accelerator (``FilmQnnAccelerator(config, timing_twin=True)``) is the
real top with this array in place of :class:`~filmqnn_hw.gateware.pe_array.PEArray`. The
array has no ready signal and a fixed latency, and the engine's control never looks at the
sums (they only flow on to the accumulators, requantization and the output tiles), so every
FSM, counter, FIFO and AXI handshake of the twin steps exactly as in the full top: its cycle
counters equal the full top's for every program (``tests/gateware/test_pe_array_timing.py``
holds them ``==`` on Verilator). Its outputs are meaningless; what it buys is a Verilog top
without the multipliers, which Verilator builds and runs in a fraction of the time.
"""

from __future__ import annotations

from amaranth import Module

from filmqnn_hw.gateware.pe_array import PEArray

__all__ = ["PEArrayTiming"]


class PEArrayTiming(PEArray):
    """:class:`PEArray`'s signature, parameters and ``valid_out`` timing (one pulse
    ``latency`` cycles after each phase-1 input cycle); ``sum`` is always 0."""

    def elaborate(self, platform):
        m = Module()
        self._drive_valid_out(m)
        return m
