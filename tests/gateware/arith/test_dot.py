# amaranth: UnusedElaboratable=no
"""Dot-product / accumulate units: accumulation at the fan-in bound, clear, errors."""

import math
import re

import numpy as np
import pytest
from amaranth import Module, signed
from amaranth.back import rtlil
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from helpers import run_pipelined

from filmqnn_hw.gateware.arith.dot import LutDotUnit, PackedDotUnit, pipelined_sum
from filmqnn_hw.spec.config import (
    TREE_FAN_IN,
    AcceleratorConfig,
    ConfigError,
    tree_pipeline_bits,
    tree_stages,
)
from filmqnn_hw.spec.packing import PackingError, w4a5_filter_layout

FAN_IN = AcceleratorConfig.small().max_fan_in  # 4608, 3x3x512
N = 4


def _const_run(dut, ops, cycles):
    """Same operands every cycle, clear on the first; returns the final accumulator(s)."""
    inputs = [(ops, i == 0) for i in range(cycles)]
    if isinstance(dut, LutDotUnit):
        res = run_pipelined(dut, inputs, lambda ctx: ctx.get(dut.acc))
    else:
        res = run_pipelined(dut, inputs,
                            lambda ctx: [ctx.get(dut.acc[k]) for k in range(len(dut.acc))])
    assert len(res) == cycles
    return res[-1]


def _bound_checks(acc_bits, extreme):
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    assert lo <= extreme <= hi
    # one bit less would overflow
    assert not (-(1 << (acc_bits - 2)) <= extreme <= (1 << (acc_bits - 2)) - 1)


@pytest.mark.slow
@pytest.mark.parametrize("n", [N, 20])  # 20: a two-stage adder tree (groups 8, 8, 4)
@pytest.mark.parametrize("kind", ["w4a5_filter", "w4a5_kernel", "w8a5"])
@pytest.mark.parametrize("family", ["xc7", "xcup"])
def test_packed_dot_at_fan_in_bound(kind, family, n):
    cfg = AcceleratorConfig.small(family=family).replace(w4_min=-8, w8_min=-128)
    dut = PackedDotUnit.from_config(cfg, kind, n)
    lay = dut.layout
    w_lo = min(op.lo for op in lay.operands if op.signed)
    assert dut.acc_bits == {"w4a5_filter": 22, "w4a5_kernel": 22, "w8a5": 26}[kind]
    per_cycle = max(dut.products_per_lane)
    cycles = FAN_IN // per_cycle
    ops = {op.name: [op.lo if op.signed else 31] * n for op in lay.operands}
    acc = _const_run(dut, ops, cycles)
    expect = [cycles * p * w_lo * 31 for p in dut.products_per_lane]
    assert acc == expect
    _bound_checks(dut.acc_bits, min(expect))
    if FAN_IN % per_cycle == 0:
        assert min(expect) == FAN_IN * w_lo * 31


@pytest.mark.slow
@pytest.mark.parametrize("n", [N, 18])  # 18: a two-stage adder tree (groups 8, 8, 2)
@pytest.mark.parametrize("w_bits,acc_bits", [(4, 22), (8, 26)])
def test_lut_dot_at_fan_in_bound(w_bits, acc_bits, n):
    dut = LutDotUnit(w_bits, n, FAN_IN)
    assert dut.acc_bits == acc_bits
    w_lo, w_hi = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
    for w in (w_lo, w_hi):
        acc = _const_run(dut, {"w": [w] * n, "x": [31] * n}, FAN_IN // n)
        assert acc == (FAN_IN // n) * n * w * 31
    _bound_checks(acc_bits, FAN_IN * w_lo * 31)


def test_config_acc_bits_agree():
    """The W8 accumulator width equals the config's (same fan-in, widest range)."""
    cfg = AcceleratorConfig.small()

    def acc_bits(unit) -> int:
        unit._MustUse__silence = True  # built only to read its width, never elaborated
        return unit.acc_bits

    assert acc_bits(PackedDotUnit.from_config(cfg, "w8a5", 1)) == cfg.acc_bits == 26
    assert acc_bits(LutDotUnit.from_config(cfg, 8, 1)) == cfg.acc_bits
    # the exporter's 4-bit range [-7, 7] needs one bit less than the full [-8, 7]
    assert acc_bits(LutDotUnit.from_config(cfg, 4, 1)) == 21
    assert acc_bits(PackedDotUnit.from_config(cfg, "w4a5_kernel", 1)) == 21


@pytest.mark.parametrize("n", [3, 17])  # 17: two adder-tree stages, a last group of one
@pytest.mark.parametrize("kind", ["w4a5_filter", "w4a5_kernel", "w8a5"])
def test_packed_dot_random_with_clear(kind, n):
    rng = np.random.default_rng(7)
    dut = PackedDotUnit.from_config(AcceleratorConfig.small(), kind, n)
    assert dut.latency == (6 if n <= TREE_FAN_IN else 7)
    lay = dut.layout
    cycles = 40
    inputs, ref, cur = [], [], None
    for i in range(cycles):
        ops = {
            op.name: [int(v) for v in rng.integers(op.lo, op.hi + 1, size=n)] for op in lay.operands
        }
        clear = i % 7 == 0
        lane = [
            sum(ops[a][j] * ops[b][j] for j in range(n) for a, b in ln.products) for ln in lay.lanes
        ]
        cur = lane if clear else [c + v for c, v in zip(cur, lane, strict=True)]
        inputs.append((ops, clear))
        ref.append(cur)
    got = run_pipelined(dut, inputs, lambda ctx: [ctx.get(dut.acc[k]) for k in range(len(dut.acc))])
    assert got == ref


@pytest.mark.parametrize("n,latency", [(5, 3), (20, 4), (65, 5)])  # 1, 2, 3 tree stages
@pytest.mark.parametrize("w_bits", [4, 8])
def test_lut_dot_random_with_clear(w_bits, n, latency):
    rng = np.random.default_rng(w_bits)
    dut = LutDotUnit(w_bits, n, FAN_IN)
    assert dut.latency == latency == LutDotUnit.latency_of(n)
    lo, hi = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
    inputs, ref, cur = [], [], 0
    for i in range(50):
        w = [int(v) for v in rng.integers(lo, hi + 1, size=n)]
        x = [int(v) for v in rng.integers(0, 32, size=n)]
        clear = i % 9 == 0
        s = sum(a * b for a, b in zip(w, x, strict=True))
        cur = s if clear else cur + s
        inputs.append(({"w": w, "x": x}, clear))
        ref.append(cur)
    assert run_pipelined(dut, inputs, lambda ctx: ctx.get(dut.acc)) == ref


def test_tree_stages():
    assert [tree_stages(n) for n in (1, 8, 9, 64, 65, 512, 513)] == [1, 1, 2, 2, 3, 3, 4]
    assert TREE_FAN_IN == 8
    assert [PackedDotUnit.latency_of(n) for n in (1, 8, 9, 32, 64, 65)] == [6, 6, 7, 7, 7, 8]
    assert [LutDotUnit.latency_of(n) for n in (1, 8, 9, 32)] == [3, 3, 4, 4]
    with pytest.raises(ConfigError, match="at least one term"):
        tree_stages(0)


class _TreeOnly(wiring.Component):
    """``pipelined_sum`` of ``n`` ``bits``-bit signed terms into a 30-bit register."""

    def __init__(self, n: int, bits: int) -> None:
        self.n_terms, self.bits = n, bits
        super().__init__({"t": In(data.ArrayLayout(signed(bits), n)), "s": Out(signed(30))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.s.eq(pipelined_sum(m, list(self.t), signed(30), "tree"))
        return m


@pytest.mark.parametrize("n,bits", [(1, 9), (8, 9), (9, 9), (20, 13), (32, 11), (65, 9)])
def test_tree_pipeline_bits_are_the_registers(n, bits):
    """The resource model's count of partial-sum register bits equals the registers built."""
    text = rtlil.convert(_TreeOnly(n, bits), name="tree")
    dff = [int(w) for w in re.findall(r"cell \$dff .*?parameter \\WIDTH (\d+)", text, re.S)]
    assert sum(dff) - 30 == tree_pipeline_bits(n, bits)
    assert len(dff) == 1 + sum(math.ceil(n / TREE_FAN_IN ** s) for s in range(1, tree_stages(n)))


def test_dot_errors():
    with pytest.raises(PackingError, match="positive int"):
        PackedDotUnit(w4a5_filter_layout("xc7"), 0, FAN_IN)
    with pytest.raises(PackingError, match="max_fan_in"):
        LutDotUnit(4, 2, 0)
    with pytest.raises(PackingError, match="2..8 bits"):
        LutDotUnit(9, 2, FAN_IN)
    with pytest.raises(PackingError, match="not inside the signed 4-bit range"):
        LutDotUnit(4, 2, FAN_IN, w_lo=-9)
    with pytest.raises(PackingError, match="4- and 8-bit weights"):
        LutDotUnit.from_config(AcceleratorConfig.small(), 6, 2)
    with pytest.raises(PackingError, match="unknown packed engine"):
        PackedDotUnit.from_config(AcceleratorConfig.small(), "w2a2", 2)


@pytest.mark.synth
def test_packed_dot_maps_one_dsp_per_multiplier():
    from filmqnn_hw.flows.synth import synthesize

    dut = PackedDotUnit.from_config(AcceleratorConfig.small(), "w4a5_kernel", 2)
    res = synthesize(dut, "dot", "xc7")
    assert res.cells.get("DSP48E1", 0) == 2 and dut.macs == 12, res.cells
