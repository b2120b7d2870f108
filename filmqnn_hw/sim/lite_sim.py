"""Amaranth pysim helpers: drive an AXI4-Lite slave port from an async testbench.

``await lite_write(ctx, bus, addr, value)`` and ``value = await lite_read(ctx, bus, addr)``
perform one full transaction each (AW and W presented together, then B / AR then R) and return
after the response handshake. ``bus`` is the slave-side interface (e.g. ``dut.s_axi_control``).
Transactions are sequential; an optional ``rng`` (``random.Random``) inserts idle cycles before
each channel's valid and before ready on the response, to exercise the slave's handshakes.
"""

from __future__ import annotations

import random

__all__ = ["lite_write", "lite_read", "LiteResponseError"]


class LiteResponseError(RuntimeError):
    """The slave answered with a non-OKAY response."""


async def _maybe_wait(ctx, rng: random.Random | None) -> None:
    if rng is not None:
        for _ in range(rng.choice((0, 0, 1, 2))):
            await ctx.tick()


async def lite_write(ctx, bus, addr: int, value: int, strb: int | None = None,
                     rng: random.Random | None = None) -> None:
    """Write ``value`` to byte address ``addr`` (all byte lanes unless ``strb`` is given)."""
    nbytes = len(bus.wdata) // 8
    strb = (1 << nbytes) - 1 if strb is None else strb
    await _maybe_wait(ctx, rng)
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.wdata, value)
    ctx.set(bus.wstrb, strb)
    ctx.set(bus.wvalid, 1)
    aw_done = w_done = False
    while not (aw_done and w_done):
        _, _, awready, wready = await ctx.tick().sample(bus.awready, bus.wready)
        if awready and not aw_done:
            aw_done = True
            ctx.set(bus.awvalid, 0)
        if wready and not w_done:
            w_done = True
            ctx.set(bus.wvalid, 0)
    await _maybe_wait(ctx, rng)
    ctx.set(bus.bready, 1)
    (bresp,) = await ctx.tick().sample(bus.bresp).until(bus.bvalid)
    ctx.set(bus.bready, 0)
    if bresp != 0:
        raise LiteResponseError(f"write to 0x{addr:x} answered with BRESP={bresp}")


async def lite_read(ctx, bus, addr: int, rng: random.Random | None = None) -> int:
    """Read the word at byte address ``addr``."""
    await _maybe_wait(ctx, rng)
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    await _maybe_wait(ctx, rng)
    ctx.set(bus.rready, 1)
    rdata, rresp = await ctx.tick().sample(bus.rdata, bus.rresp).until(bus.rvalid)
    ctx.set(bus.rready, 0)
    if rresp != 0:
        raise LiteResponseError(f"read from 0x{addr:x} answered with RRESP={rresp}")
    return rdata
