"""Emit Verilog for a component with Vivado-style port names.

Amaranth's ``verilog.convert`` names flattened interface members ``<member>__<sub>`` and adds
``clk``/``rst`` (active-high). Vivado's IP packager instead infers AXI interfaces from
``<prefix>_<signal>`` names (``s_axi_control_awaddr``, ``m_axi_gmem0_arlen``), and AXI
clock/reset from ``ap_clk``/``ap_rst_n`` (active-low reset, as Vivado HLS cores do).

:func:`convert_vivado` wraps the component in a tiny top level that

* joins every flattened member path with a single ``_`` (so a member ``s_axi_control`` with an
  :class:`~filmqnn_hw.gateware.axi.signatures.AXI4LiteSignature` becomes ``s_axi_control_awaddr``
  ...),
* drives the ``sync`` domain from ``ap_clk`` and an active-low synchronous reset ``ap_rst_n``,
* tags the clock with ``X_INTERFACE_PARAMETER ASSOCIATED_BUSIF`` (all AXI members) and
  ``ASSOCIATED_RESET`` so Vivado associates the interfaces with the clock without manual edits.

Name members of the *top-level* component after the Vivado prefix you want
(``s_axi_control``, ``m_axi_gmem0``); sub-components can use any names.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator

from amaranth.back import rtlil, verilog
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal, ValueCastable, _ir, _nir
from amaranth.lib import wiring

from filmqnn_hw.gateware.axi.signatures import AXI4LiteSignature, AXI4Signature
from filmqnn_hw.gateware.module_sharing import ModuleSharing
from filmqnn_hw.gateware.top import TOP_NAME, FilmQnnAccelerator
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.files import atomic_write

__all__ = ["vivado_ports", "convert_vivado", "write_vivado", "rtlil_to_verilog",
           "verilog_yosys", "fast_memory_init", "EmitError", "EMIT_YOSYS_ENV", "emit_verilog"]

#: Environment variable choosing the yosys that turns RTLIL into Verilog: ``builtin``
#: (Amaranth's WebAssembly yosys) or ``pyosys`` (native; ``pip install pyosys``, installed by
#: ``scripts/setup.sh``). Unset: pyosys when it is installed, else builtin.
EMIT_YOSYS_ENV = "FILMQNN_EMIT_YOSYS"

# Amaranth's own RTLIL-to-Verilog script (amaranth.back.verilog), run by either yosys
_TO_VERILOG = ("read_rtlil {il}", "proc -nomux -norom", "memory_collect",
               "write_verilog -norename {v}")


class EmitError(RuntimeError):
    """The RTLIL-to-Verilog step failed (the message carries yosys's log tail)."""


def verilog_yosys() -> str:
    """Which yosys writes the emitted Verilog: ``"pyosys"`` or ``"builtin"`` (see
    :data:`EMIT_YOSYS_ENV`)."""
    choice = os.environ.get(EMIT_YOSYS_ENV, "")
    if choice not in ("", "builtin", "pyosys"):
        raise EmitError(f"{EMIT_YOSYS_ENV}={choice!r}: use 'builtin' or 'pyosys' (or unset it)")
    if choice == "builtin":
        return "builtin"
    from filmqnn_hw.flows.synth import native_yosys_available

    if native_yosys_available():
        return "pyosys"
    if choice == "pyosys":
        raise EmitError(f"{EMIT_YOSYS_ENV}=pyosys but pyosys is not installed: "
                        "`pip install pyosys`, or unset it")
    return "builtin"


def rtlil_to_verilog(text: str, *, timeout: float = 1800.0) -> str:
    """Verilog of an RTLIL design, by Amaranth's script (``proc``, ``memory_collect``,
    ``write_verilog -norename``) in native yosys when pyosys is installed (3-5x faster
    than the WebAssembly build on the ZCU102 top), else in Amaranth's builtin yosys; see
    :data:`EMIT_YOSYS_ENV`."""
    if verilog_yosys() == "builtin":
        return verilog._convert_rtlil_text(text)
    from filmqnn_hw.flows.synth import PYOSYS, YosysError, run_yosys

    script = "\n".join(line.format(il="d.il", v="d.v") for line in _TO_VERILOG) + "\n"
    try:
        _, work = run_yosys(script, {"d.il": text}, timeout=timeout, yosys=PYOSYS)
    except subprocess.TimeoutExpired:
        raise EmitError(f"pyosys RTLIL-to-Verilog took over {timeout:.0f} s; set "
                        f"{EMIT_YOSYS_ENV}=builtin to use Amaranth's yosys") from None
    except YosysError as e:
        raise EmitError(f"pyosys RTLIL-to-Verilog failed: {e}") from None
    try:
        return (work / "d.v").read_text()
    finally:
        shutil.rmtree(work, ignore_errors=True)


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


def _emit_memory_init(self, cell_idx, cell) -> None:
    """``rtlil.ModuleEmitter.emit_memory`` with the init constant built as one string.

    Amaranth 0.5 builds a memory's ``$meminit_v2`` DATA one ``Net`` object per bit (9.6
    million for the ZCU102 top's buffers: about 20 s); this writes the same text (the
    sigspec of an all-constant value is ``<width>'<bits, MSB first>``) from the rows.
    ``tests/gateware/test_module_sharing.py`` checks the text is identical to Amaranth's."""
    memory_info = self.memories[cell_idx]
    w = cell.width
    mask = (1 << w) - 1
    bits = "".join(format(row & mask, f"0{w}b") for row in reversed(cell.init)) if w else ""
    self.builder.cell("$meminit_v2", ports={
        "ADDR": self.sigspec(),
        "DATA": f"{len(bits)}'{bits}" if bits else self.sigspec(),
        "EN": self.sigspec(_nir.Value.ones(w)),
    }, parameters={
        "MEMID": memory_info.memid,
        "ABITS": 0,
        "WIDTH": w,
        "WORDS": cell.depth,
        "PRIORITY": 0,
    }, src_loc=cell.src_loc)


_PATCH_LOCK = threading.Lock()
_PATCH_USERS = 0
_PATCH_ORIGINAL = None


@contextlib.contextmanager
def fast_memory_init() -> Iterator[None]:
    """Within the block, RTLIL emission writes memory init constants in one string (same
    text, see :func:`_emit_memory_init`). A no-op on an Amaranth without the hook. Blocks may
    nest and overlap across threads: the hook is installed while any block is open."""
    global _PATCH_USERS, _PATCH_ORIGINAL
    emitter = getattr(rtlil, "ModuleEmitter", None)
    if getattr(emitter, "emit_memory", None) is None:
        yield
        return
    with _PATCH_LOCK:
        if _PATCH_USERS == 0:
            _PATCH_ORIGINAL = emitter.emit_memory
            emitter.emit_memory = _emit_memory_init
        _PATCH_USERS += 1
    try:
        yield
    finally:
        with _PATCH_LOCK:
            _PATCH_USERS -= 1
            if _PATCH_USERS == 0:
                emitter.emit_memory = _PATCH_ORIGINAL


def convert_vivado(component: wiring.Component, name: str, *, clock: str = "ap_clk",
                   reset_n: str = "ap_rst_n", share_modules: bool = True) -> str:
    """Verilog text of ``component`` as module ``name`` with Vivado-style ports.

    The component must use only the ``sync`` clock domain. Ports: ``clock``, ``reset_n``
    (active-low, synchronous) and one port per flattened member (see :func:`vivado_ports`).
    With ``share_modules`` (default) sub-components wrapped in
    :func:`~filmqnn_hw.gateware.module_sharing.share` are emitted once as modules
    ``<name>__<class>_<n>`` and instantiated; without it every instance is its own module
    (the same logic, slower to emit).
    """
    if not name.isidentifier():
        raise ValueError(f"module name must be a Verilog identifier, not {name!r}")
    verilog_yosys()  # refuse a bad FILMQNN_EMIT_YOSYS before the conversion
    ports = vivado_ports(component)
    for special in (clock, reset_n):
        if special in ports:
            raise ValueError(f"member port {special!r} collides with the clock/reset port name")
    top = _VivadoTop(component, clock, reset_n)
    all_ports = {clock: (top.clk, _ir.PortDirection.Input),
                 reset_n: (top.rst_n, _ir.PortDirection.Input), **ports}
    sharing = ModuleSharing(name) if share_modules else None
    with fast_memory_init():
        text = rtlil.convert(top, name=name, platform=sharing, ports=all_ports, emit_src=False)
    if sharing is not None:
        text += sharing.rtlil()
    return rtlil_to_verilog(text)


def write_vivado(component: wiring.Component, name: str, path: str | os.PathLike, **kwargs) -> str:
    """Write :func:`convert_vivado` output to ``path`` atomically (temp file + rename)."""
    text = convert_vivado(component, name, **kwargs)
    atomic_write(path, text)
    return text


def emit_verilog(config: AcceleratorConfig, path: str | os.PathLike | None = None, *,
                 addr_width: int = 32, name: str = TOP_NAME, timing_twin: bool = False) -> str:
    """Verilog of the accelerator with Vivado port names (``ap_clk``, ``ap_rst_n``,
    ``s_axi_control_*``, ``m_axi_gmem0_*`` (and ``m_axi_gmem1_*`` ... with weight ports),
    ``interrupt``); written atomically to ``path``
    if given. Returns the text. The dot units and requantization lanes are emitted once per
    kind and instantiated (:mod:`filmqnn_hw.gateware.module_sharing`); the ZCU102 top takes about
    16 s. ``timing_twin``: the top with
    :class:`~filmqnn_hw.gateware.pe_array_timing.PEArrayTiming` for its PE array (its cycle
    counters equal the full top's; its outputs are meaningless), for fast cycle counts in
    Verilator.
    """
    text = convert_vivado(FilmQnnAccelerator(config, addr_width=addr_width,
                                             timing_twin=timing_twin), name)
    if path is not None:
        atomic_write(path, text)
    return text
