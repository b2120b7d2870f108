"""Delay lines: a value through ``n`` registers (used by the arithmetic units and the proofs)."""

from __future__ import annotations

from amaranth import Module, Signal

__all__ = ["delay_line"]


def delay_line(m: Module, value, n: int, name: str):
    """``value`` delayed by ``n`` clock cycles in ``m``'s ``sync`` domain, through registers
    ``{name}_d0 .. {name}_d{n-1}`` of ``value``'s shape; ``n = 0`` returns ``value`` itself."""
    for k in range(n):
        r = Signal(value.shape(), name=f"{name}_d{k}")
        m.d.sync += r.eq(value)
        value = r
    return value
