# amaranth: UnusedElaboratable=no
"""Shared modules in the emitted Verilog: same logic as the unshared netlist (formal proof),
wiring checks, and the fast memory-init and RTLIL-to-Verilog paths of the emission."""

from __future__ import annotations

import re
import shutil

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Instance, Module, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.flows.synth import run_yosys
from filmqnn_hw.flows.verilog import EMIT_YOSYS_ENV, convert_vivado, fast_memory_init
from filmqnn_hw.gateware.arith.dot import LutDotUnit
from filmqnn_hw.gateware.module_sharing import ModuleSharing, ModuleSharingError, share
from filmqnn_hw.gateware.pe_array import PEArray
from filmqnn_hw.gateware.requant import RequantBank
from filmqnn_hw.spec.config import AcceleratorConfig

#: every engine kind: 8-bit DSP and LUT lanes, 4-bit DSP lanes (odd count: a phantom partner)
#: and 4-bit LUT lanes
MIXED = AcceleratorConfig.small(tm=9, tn=5, n8_slots=2).replace(
    w8_dsp_lanes=1, w8_lut_lanes=1, w4_dsp_lanes=5, w4_lut_lanes=2)


def _modules(text: str) -> list[str]:
    return re.findall(r"^module \\?(\S+?)\s*\(", text, re.M)


def _prove_equal(flat: str, shared: str, a: str, b: str) -> int:
    """yosys equivalence proof (``equiv_make``/``equiv_simple``/``equiv_induct``) of the two
    tops after flattening: registers and wires are matched by their hierarchical names
    (``core.w4dsp3.acc``); names Amaranth made unique with a ``$n`` suffix are hidden first,
    as the suffix depends on where a module was elaborated."""
    script = f"""
read_verilog flat.v
read_verilog shared.v
setattr -mod -unset top
proc
flatten
rename -hide w:*$*
opt_clean
equiv_make {a} {b} equiv
hierarchy -top equiv
equiv_simple -seq 5
equiv_induct -seq 5
equiv_status -assert
"""
    log, work = run_yosys(script, {"flat.v": flat, "shared.v": shared}, timeout=900)
    shutil.rmtree(work, ignore_errors=True)
    assert "Equivalence successfully proven!" in log, log[-2000:]
    found = re.search(r"Found (\d+) \$equiv cells in equiv:\s+Of those cells (\d+) are proven "
                      r"and 0 are unproven", log)
    assert found, log[-2000:]
    return int(found.group(1))


def test_share_outside_emission_is_the_component():
    u = LutDotUnit(4, 3, 64)
    assert share(None, u, "k") is u
    assert share(object(), u, "k") is u


@pytest.mark.synth
def test_pe_array_shared_equals_flat():
    """The shared PE array is the unshared one: a formal proof over all inputs and states."""
    flat = convert_vivado(PEArray(MIXED), "pe_flat", share_modules=False)
    shared = convert_vivado(PEArray(MIXED), "pe_shared")
    mods = _modules(shared)
    # one module per engine kind (and the DSP units' multipliers under them), not per lane
    assert sum(m.startswith("pe_shared__PackedDotUnit_") and "." not in m for m in mods) == 2
    assert sum(m.startswith("pe_shared__LutDotUnit_") for m in mods) == 2
    assert len(re.findall(r"^\s*pe_shared__LutDotUnit_\d+ ", shared, re.M)) == 6  # 3 lanes x 2
    assert not any(m.startswith("pe_flat__") for m in _modules(flat))
    # every output bit and every register bit is an $equiv cell of the proof
    assert _prove_equal(flat, shared, "pe_flat", "pe_shared") > 2 * MIXED.tm * MIXED.acc_bits


@pytest.mark.synth
def test_requant_bank_shared_equals_flat():
    cfg = AcceleratorConfig.small()
    flat = convert_vivado(RequantBank(cfg, lanes=3), "rq_flat", share_modules=False)
    shared = convert_vivado(RequantBank(cfg, lanes=3), "rq_shared")
    assert len(re.findall(r"^\s*rq_shared__RequantUnit_0 ", shared, re.M)) == 3
    assert _prove_equal(flat, shared, "rq_flat", "rq_shared") > 3 * 16


class _TwoUnits(wiring.Component):
    """Two LUT dot units of different sizes wrongly given one key."""

    def __init__(self):
        super().__init__({"o": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.a = share(platform, LutDotUnit(4, 3, 64), "same")
        m.submodules.b = share(platform, LutDotUnit(4, 5, 64), "same")
        return m


def test_mismatched_key_is_refused():
    with pytest.raises(ModuleSharingError, match="must be identical"):
        rtlil.convert(_TwoUnits(), ports={}, platform=ModuleSharing("t"))


class _Nibble(wiring.Component):
    """A component with one 4-bit input ``a`` and one 4-bit output ``y``; subclasses give the
    logic."""

    def __init__(self):
        super().__init__({"a": In(4), "y": Out(4)})


def _unit_class(op):
    """A fresh class per call: every one is named ``Unit`` with the same qualname."""

    class Unit(_Nibble):
        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.y.eq(op(self.a))
            return m

    return Unit


def _convert(top) -> tuple[str, ModuleSharing]:
    sharing = ModuleSharing("t")
    text = rtlil.convert(top, name="t", platform=sharing, emit_src=False)
    return text + sharing.rtlil(), sharing


def test_classes_of_one_name_never_share():
    inc, xor = _unit_class(lambda a: a + 1), _unit_class(lambda a: a ^ 5)

    class Two(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(4), "o": Out(4), "p": Out(4)})

        def elaborate(self, platform):
            m = Module()
            u, v = inc(), xor()
            m.submodules.u = share(platform, u, "k")
            m.submodules.v = share(platform, v, "k")
            m.d.comb += [u.a.eq(self.a), v.a.eq(self.a), self.o.eq(u.y), self.p.eq(v.y)]
            return m

    _, sharing = _convert(Two())
    assert sharing.modules == {"t__Unit_0": 1, "t__Unit_1": 1}


def test_nested_sharing_names_are_unique():
    class Node(_Nibble):
        def __init__(self, depth):
            self.depth = depth
            super().__init__()

        def elaborate(self, platform):
            m = Module()
            if self.depth:
                c = Node(self.depth - 1)
                m.submodules.c = share(platform, c, self.depth - 1)
                m.d.comb += [c.a.eq(self.a), self.y.eq(c.y + 1)]
            else:
                m.d.comb += self.y.eq(self.a)
            return m

    class Top(_Nibble):
        def elaborate(self, platform):
            m = Module()
            c = Node(2)
            m.submodules.n = share(platform, c, 2)
            m.d.comb += [c.a.eq(self.a), self.y.eq(c.y)]
            return m

    text, sharing = _convert(Top())
    assert sorted(sharing.modules) == ["t__Node_0", "t__Node_1", "t__Node_2"]
    mods = re.findall(r"^module \\(\S+)", text, re.M)
    assert len(mods) == len(set(mods))


class _Loose(_Nibble):
    """Holds a signal outside its signature: an instance could not connect it."""

    def __init__(self):
        super().__init__()
        self.internal = Signal(4)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.internal.eq(self.a + 1), self.y.eq(self.internal)]
        return m


class _SlowDomain(_Nibble):
    def elaborate(self, platform):
        m = Module()
        m.d.slow += self.y.eq(self.a)
        return m


def test_unshareable_children_are_refused():
    sharing = ModuleSharing("t")
    with pytest.raises(ModuleSharingError, match="not members of its signature .internal."):
        sharing.instance(_Loose(), "k")
    with pytest.raises(ModuleSharingError, match="clock domain 'slow'"):
        sharing.instance(_SlowDomain(), "k")


def test_instance_wiring_and_counts():
    sharing = ModuleSharing("top")
    units = [LutDotUnit(8, 2, 16) for _ in range(3)]
    insts = [sharing.instance(u, ("lut", 2)) for u in units]
    assert all(isinstance(i, Instance) for i in insts)
    assert sharing.modules == {"top__LutDotUnit_0": 3}
    text = sharing.rtlil()
    assert text.count("module \\top__LutDotUnit_0\n") == 1
    assert "attribute \\top 1" not in text  # the design's top is the caller's
    with pytest.raises(ValueError, match="identifier"):
        ModuleSharing("bad name")
    with pytest.raises(TypeError, match="wiring.Component"):
        sharing.instance(Module(), "x")


class _Mem(wiring.Component):
    """Memories with zero, patterned and odd-width init rows."""

    def __init__(self):
        super().__init__({"addr": In(4), "a": Out(13), "b": Out(8), "c": Out(1), "d": Out(0),
                          "e": Out(signed(8))})

    def elaborate(self, platform):
        m = Module()
        for name, shape, init in (("a", 13, [(i * 2731) & 0x1FFF for i in range(16)]),
                                  ("b", 8, []), ("c", 1, [1, 0, 1]), ("d", 0, []),
                                  ("e", signed(8), [-1, -128, 5])):
            mem = memory.Memory(shape=shape, depth=16, init=init)
            m.submodules[f"mem_{name}"] = mem
            rd = mem.read_port(domain="comb")
            wr = mem.write_port()
            m.d.comb += [rd.addr.eq(self.addr), getattr(self, name).eq(rd.data),
                         wr.addr.eq(self.addr), wr.data.eq(0), wr.en.eq(0)]
        return m


def test_fast_memory_init_is_amaranths_text():
    slow = rtlil.convert(_Mem(), name="m", emit_src=False)
    with fast_memory_init():
        fast = rtlil.convert(_Mem(), name="m", emit_src=False)
    assert fast == slow
    assert slow.count("$meminit_v2") == 5


def test_fast_memory_init_blocks_overlap():
    """Blocks opened and closed out of order (two emitting threads) leave Amaranth's own
    method in place at the end."""
    original = rtlil.ModuleEmitter.emit_memory
    a, b = fast_memory_init(), fast_memory_init()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert rtlil.ModuleEmitter.emit_memory is not original  # b still open
    b.__exit__(None, None, None)
    assert rtlil.ModuleEmitter.emit_memory is original


@pytest.mark.synth
def test_both_yosys_paths_write_the_same_logic(monkeypatch):
    """The native (pyosys) and Amaranth's builtin RTLIL-to-Verilog give equivalent Verilog."""
    pytest.importorskip("pyosys")
    monkeypatch.setenv(EMIT_YOSYS_ENV, "builtin")
    builtin = convert_vivado(PEArray(MIXED), "pe_builtin")
    monkeypatch.setenv(EMIT_YOSYS_ENV, "pyosys")
    native = convert_vivado(PEArray(MIXED), "pe_native")
    assert _prove_equal(builtin, native, "pe_builtin", "pe_native") > 2 * MIXED.tm * MIXED.acc_bits


def test_unknown_emit_yosys_is_refused(monkeypatch):
    from filmqnn_hw.flows.verilog import EmitError

    monkeypatch.setenv(EMIT_YOSYS_ENV, "vivado")
    with pytest.raises(EmitError, match="use 'builtin' or 'pyosys'"):
        convert_vivado(PEArray(AcceleratorConfig.small()), "x")
