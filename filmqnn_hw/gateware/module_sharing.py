"""Emit a repeated sub-component once and instantiate it many times in the Verilog.

Amaranth gives every elaborated component its own module in the netlist, so the ZCU102
accelerator's dozens of identical dot units and requantization lanes would each be converted
on their own: about 45% of the top's RTLIL and of its emission time.

:class:`ModuleSharing` is an elaboration *platform* for Verilog emission (it is what
:func:`~filmqnn_hw.flows.verilog.convert_vivado` passes to ``elaborate``). A parent that builds
many interchangeable children wraps each one in :func:`share`::

    m.submodules[f"lane{k}"] = share(platform, RequantUnit(...), key=("requant", acc_bits))

* In simulation (``platform`` is ``None`` or any other object) :func:`share` returns the child
  itself: Amaranth simulates exactly the component that was written.
* Under :class:`ModuleSharing` the first child of a ``key`` is converted once into its own
  module ``<prefix>__<class>_<n>``; every child of that key becomes an ``Instance`` of that
  module, wired to the child's own port signals (so the parent's code is unchanged). The
  parent's netlist then holds one cell per child instead of its whole logic.

Rules for a shared child (checked where they can be):

* Children of one class with equal keys **must** build the same logic: the key is the
  caller's statement of that (the accelerator keys its units by config and unit kind).
* The parent may use only the child's signature members: a signal it reads or drives that
  is not a port would be cut off from the instance (a child holding such a signal as an
  attribute is refused).
* The child's only clock domain is ``sync`` with Amaranth's defaults (rising edge,
  synchronous reset), as in :func:`~filmqnn_hw.flows.verilog.convert_vivado`'s top: the shared
  module is converted on its own and would not see a parent's other domain settings.

``tests/gateware/test_module_sharing.py`` proves with yosys that the shared and unshared netlists
of the PE array (every engine kind) and of the requantization bank are the same logic;
every Verilator test simulates the shared top against the golden model.

Instance names, and so the flattened hierarchical names of registers and ports after
synthesis, are those of the unshared netlist (``core.engine.pe.w4dsp3.mul7.p``); only wire
names Amaranth made unique with a ``$n`` suffix can differ.
"""

from __future__ import annotations

import re
from collections.abc import Hashable

from amaranth.back import rtlil
from amaranth.hdl import ClockSignal, Instance, ResetSignal, Value, ValueCastable
from amaranth.lib import wiring

__all__ = ["ModuleSharing", "ModuleSharingError", "share"]


class ModuleSharingError(ValueError):
    """A shared component cannot be instantiated as its emitted module."""


_PORT_RE = re.compile(r"^\s*wire width (\d+) (input|output|inout) \d+\s+(?:signed\s+)?\\(\S+)\s*$",
                      re.MULTILINE)


def _module_ports(text: str, module: str) -> dict[str, tuple[str, int]]:
    """``{port: (direction, width)}`` of ``module`` in Amaranth's RTLIL ``text``."""
    start = text.find(f"module \\{module}\n")
    if start < 0:
        raise ModuleSharingError(f"module {module} missing from its own RTLIL")
    end = text.find("\nend\n", start)
    return {name: (d, int(w)) for w, d, name in _PORT_RE.findall(text[start:end])}


class ModuleSharing:
    """Elaboration platform that emits each shared component once (see the module docstring).

    Parameters
    ----------
    prefix : str
        Prefix of the shared module names (the top's name, so two accelerators built with
        different names can live in one Vivado project).

    After the top has been converted to RTLIL with this platform, :meth:`rtlil` gives the
    RTLIL of every shared module it used (each once), to be converted with the top's RTLIL
    in one design (:func:`~filmqnn_hw.flows.verilog.convert_vivado` does).
    """

    def __init__(self, prefix: str) -> None:
        if not prefix.isidentifier():
            raise ValueError(f"prefix must be a Verilog identifier, not {prefix!r}")
        self.prefix = prefix
        # key -> (module name, {port: (direction, width)})
        self._modules: dict[Hashable, tuple[str, dict[str, tuple[str, int]]]] = {}
        self._texts: list[str] = []
        self._instances: dict[str, int] = {}
        self._names = 0  # numbers taken (before a nested conversion registers its own)

    @property
    def modules(self) -> dict[str, int]:
        """``{module name: instances}`` of the shared modules used so far."""
        return dict(self._instances)

    def rtlil(self) -> str:
        """RTLIL of the shared modules, in the order they were first used (none marked as
        the design's top)."""
        return "".join(self._texts)

    def _emit(self, component: wiring.Component,
              key: Hashable) -> tuple[str, dict[str, tuple[str, int]]]:
        name = f"{self.prefix}__{type(component).__name__}_{self._names}"
        self._names += 1
        # nested sharing: the child's own children may be shared as well
        text = rtlil.convert(component, name=name, platform=self, emit_src=False)
        ports = _module_ports(text, name)
        top_attr = "attribute \\top 1\n"
        if text.count(top_attr) != 1:
            raise ModuleSharingError(f"unexpected RTLIL for {name}: one top attribute expected")
        self._modules[key] = (name, ports)
        self._texts.append(text.replace(top_attr, ""))
        return name, ports

    def instance(self, component: wiring.Component, key: Hashable) -> Instance:
        """An ``Instance`` of ``key``'s shared module, wired to ``component``'s members."""
        if not isinstance(component, wiring.Component):
            raise TypeError(f"only a wiring.Component can be shared, not {component!r}")
        key = (type(component), key)  # keys of different classes never meet
        loose = [n for n, v in vars(component).items()
                 if isinstance(v, Value | ValueCastable) and n not in component.signature.members]
        if loose:
            raise ModuleSharingError(
                f"{type(component).__name__} holds signals that are not members of its "
                f"signature ({', '.join(sorted(loose))}): an instance could not connect them; "
                "share only components whose parents use their members alone")
        if key in self._modules:
            name, ports = self._modules[key]
            component._MustUse__silence = True  # replaced by the instance, never elaborated
        else:
            name, ports = self._emit(component, key)
        members = {}
        for path, member, value in component.signature.flatten(component):
            if isinstance(value, ValueCastable):
                value = value.as_value()
            members["__".join(map(str, path))] = (member.flow, value)
        args = []
        for port, (direction, width) in ports.items():
            if port in members:
                flow, value = members[port]
                want = "input" if flow == wiring.In else "output"
                if want != direction or len(value) != width:
                    raise ModuleSharingError(
                        f"{name}.{port} is {direction} [{width}] but the {key!r} child's member "
                        f"is {want} [{len(value)}]: children sharing a key must be identical")
                args.append(("i" if direction == "input" else "o", port, value))
            elif port == "clk":
                args.append(("i", port, ClockSignal("sync")))
            elif port == "rst":
                args.append(("i", port, ResetSignal("sync")))
            elif port.endswith(("_clk", "_rst")):
                raise ModuleSharingError(f"{name} uses the clock domain {port[:-4]!r}: only "
                                         "components in the sync domain can be shared")
            else:
                raise ModuleSharingError(f"{name} has port {port!r} that no member of the "
                                         f"{key!r} child drives")
        missing = sorted(p for p, (_, v) in members.items() if p not in ports and len(v))
        if missing:
            raise ModuleSharingError(f"{name} lacks the ports {missing} of the {key!r} child")
        self._instances[name] = self._instances.get(name, 0) + 1
        return Instance(name, *args)


def share(platform: object, component: wiring.Component,
          key: Hashable) -> wiring.Component | Instance:
    """``component`` itself, or under :class:`ModuleSharing` an ``Instance`` of ``key``'s
    shared module wired to it (see the module docstring)."""
    if isinstance(platform, ModuleSharing):
        return platform.instance(component, key)
    return component
