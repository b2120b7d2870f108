"""Emit Verilog for a component with Vivado-style port names.

Amaranth's ``verilog.convert`` names flattened interface members ``<member>__<sub>`` and adds
``clk``/``rst`` (active-high). Vivado's IP packager instead infers AXI interfaces from
``<prefix>_<signal>`` names (``s_axi_control_awaddr``, ``m_axi_gmem0_arlen``), and AXI
clock/reset from ``ap_clk``/``ap_rst_n`` (active-low reset, as Vivado HLS cores do).

:func:`convert_vivado` wraps the component in a tiny top level that

* joins every flattened member path with a single ``_`` (so a member ``s_axi_control`` with an
  :class:`~filmqnn_hw.axi.signatures.AXI4LiteSignature` becomes ``s_axi_control_awaddr`` ...),
* drives the ``sync`` domain from ``ap_clk`` and an active-low synchronous reset ``ap_rst_n``,
* tags the clock with ``X_INTERFACE_PARAMETER ASSOCIATED_BUSIF`` (all AXI members) and
  ``ASSOCIATED_RESET`` so Vivado associates the interfaces with the clock without manual edits.

Name members of the *top-level* component after the Vivado prefix you want
(``s_axi_control``, ``m_axi_gmem0``); sub-components can use any names.
"""

from __future__ import annotations

import os
import tempfile

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal, ValueCastable, _ir
from amaranth.lib import wiring

from .signatures import AXI4LiteSignature, AXI4Signature

__all__ = ["vivado_ports", "convert_vivado", "write_vivado"]


def _axi_members(component: wiring.Component) -> list[str]:
    names = []
    for name, member in component.signature.members.items():
        if member.is_signature and isinstance(member.signature, AXI4Signature | AXI4LiteSignature):
            names.append(name)
    return names


def vivado_ports(component: wiring.Component) -> dict[str, tuple]:
    """Port dict for ``verilog.convert(ports=...)`` with ``_``-joined member paths.

    Raises ``ValueError`` if two members flatten to the same name (e.g. ``a_b`` and ``a.b``),
    or collide with the clock/reset names.
    """
    if not isinstance(component, wiring.Component):
        raise TypeError(f"expected a wiring.Component, not {component!r}")
    ports: dict[str, tuple] = {}
    for path, member, value in component.signature.flatten(component):
        name = "_".join(map(str, path))
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if name in ports:
            raise ValueError(f"two members of {type(component).__name__} flatten to the port "
                             f"name {name!r}; rename one of them")
        is_input = member.flow == wiring.In
        direction = _ir.PortDirection.Input if is_input else _ir.PortDirection.Output
        ports[name] = (value, direction)
    return ports


class _VivadoTop(Elaboratable):
    def __init__(self, inner: wiring.Component, clock: str, reset_n: str):
        self.inner = inner
        busif = ":".join(_axi_members(inner))
        clk_attrs = {"X_INTERFACE_INFO": f"xilinx.com:signal:clock:1.0 {clock} CLK"}
        param = f"ASSOCIATED_RESET {reset_n}"
        if busif:
            param = f"ASSOCIATED_BUSIF {busif}, " + param
        clk_attrs["X_INTERFACE_PARAMETER"] = param
        self.domain = ClockDomain("sync")
        self.clk = self.domain.clk
        self.clk.attrs.update(clk_attrs)
        self.rst_n = Signal(name=reset_n, attrs={
            "X_INTERFACE_INFO": f"xilinx.com:signal:reset:1.0 {reset_n} RST",
            "X_INTERFACE_PARAMETER": "POLARITY ACTIVE_LOW",
        })

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = self.domain
        m.d.comb += cd.rst.eq(~self.rst_n)
        m.submodules.core = self.inner
        return m


def convert_vivado(component: wiring.Component, name: str, *, clock: str = "ap_clk",
                   reset_n: str = "ap_rst_n") -> str:
    """Verilog text of ``component`` as module ``name`` with Vivado-style ports.

    The component must use only the ``sync`` clock domain. Ports: ``clock``, ``reset_n``
    (active-low, synchronous) and one port per flattened member (see :func:`vivado_ports`).
    """
    if not name.isidentifier():
        raise ValueError(f"module name must be a Verilog identifier, not {name!r}")
    ports = vivado_ports(component)
    for special in (clock, reset_n):
        if special in ports:
            raise ValueError(f"member port {special!r} collides with the clock/reset port name")
    top = _VivadoTop(component, clock, reset_n)
    all_ports = {clock: (top.clk, _ir.PortDirection.Input),
                 reset_n: (top.rst_n, _ir.PortDirection.Input), **ports}
    return verilog.convert(top, name=name, ports=all_ports, emit_src=False)


def write_vivado(component: wiring.Component, name: str, path: str | os.PathLike, **kwargs) -> str:
    """Write :func:`convert_vivado` output to ``path`` atomically (temp file + rename)."""
    text = convert_vivado(component, name, **kwargs)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_", suffix=".v")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return text
