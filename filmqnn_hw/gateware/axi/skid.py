"""A registered stream stage (skid buffer): cuts every combinational path through a stream."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamSkidBuffer"]


class StreamSkidBuffer(wiring.Component):
    """Pass a ``lib.stream`` through registers without losing throughput.

    ``o.valid``, ``o.payload`` and ``i.ready`` all come from flip-flops, so no combinational
    path crosses the stage in either direction. A second (skid) register takes the word that
    arrives in the cycle the output stalls.

    Parameters
    ----------
    shape : ShapeLike
        Payload shape (for example a ``data.StructLayout``).

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))

    Latency one cycle; throughput one word per cycle; two words of storage.
    """

    def __init__(self, shape) -> None:
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self._shape)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.ready | ~self.o.valid):  # the output register takes a word
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):  # output stalled: park the incoming word
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
