# amaranth: UnusedElaboratable=no
"""PE array: dense / depthwise / unit modes against numpy, timing, gaps, engine mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from amaranth import signed
from amaranth.sim import Simulator

from filmqnn_hw.gateware.pe_array import PEArray
from filmqnn_hw.spec.config import ACT_MAX, TREE_FAN_IN, AcceleratorConfig
from filmqnn_hw.spec.geometry import (
    PEMode,
    engine_plan,
    half_slots,
    input_slots,
    record_bits,
    record_rows,
)
from filmqnn_hw.spec.weight_image import pack_conv_weights


def _mix(tm: int, tn: int, n8: int, w8_dsp: int, w4_dsp: int, **kw) -> AcceleratorConfig:
    return AcceleratorConfig.small(tm=tm, tn=tn, n8_slots=n8).replace(
        w8_dsp_lanes=w8_dsp,
        w8_lut_lanes=n8 - w8_dsp,
        w4_dsp_lanes=w4_dsp,
        w4_lut_lanes=tm - n8 - w4_dsp,
        **kw,
    )


CONFIGS = {
    # tm=8, tn=8, n8=1, all DSP; 7 4-bit DSP lanes -> a phantom partner
    "small": AcceleratorConfig.small(),
    "small_xcup": AcceleratorConfig.small(family="xcup"),
    # odd tn, 8-bit DSP + LUT, 4-bit DSP (odd count) + LUT
    "mix_tn5": _mix(6, 5, 2, w8_dsp=1, w4_dsp=3),
    # n8 = 0, odd tn, odd tm - n8
    "n8_0_tn3": _mix(5, 3, 0, w8_dsp=0, w4_dsp=2),
    # all LUT: shorter latency
    "all_lut": _mix(4, 4, 1, w8_dsp=0, w4_dsp=0),
    # tn = 1: one multiplier per unit, phase 1 has no slots
    "tn1": _mix(3, 1, 1, w8_dsp=1, w4_dsp=1),
    # tn > tm (CB = tn), 8-bit LUT lane
    "tn_gt_tm": _mix(2, 7, 1, w8_dsp=0, w4_dsp=1),
    # full weight ranges (-8 / -128 allowed: full_range packings), 2 8-bit lanes on DSPs
    "full_range": _mix(5, 4, 2, w8_dsp=2, w4_dsp=1, w4_min=-8, w8_min=-128),
    # H = 9 > TREE_FAN_IN: two adder-tree stages in every unit (DSP 7, LUT 4 cycles)
    "tn18_two_stage": _mix(6, 18, 2, w8_dsp=1, w4_dsp=3),
}


# -- numpy reference and stimulus ------------------------------------------------------------------
def _w_bounds(cfg: AcceleratorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-lane weight domain [lo, hi]."""
    lanes = np.arange(cfg.tm)
    is8 = lanes < cfg.n8_slots
    return np.where(is8, cfg.w8_min, cfg.w4_min), np.where(is8, cfg.w8_max, cfg.w4_max)


def _rand_w(cfg: AcceleratorConfig, rng: np.random.Generator, cols: int) -> np.ndarray:
    lo, hi = _w_bounds(cfg)
    return rng.integers(lo[:, None], hi[:, None] + 1, size=(cfg.tm, cols))


def _record(cfg: AcceleratorConfig, w: np.ndarray, lanes: int) -> int:
    """Tap record of ``w`` (tm, lanes) exactly as the weight image stores it."""
    raw = pack_conv_weights(w.reshape(cfg.tm, lanes, 1, 1), cfg.tm, cfg.n8_slots, lanes)
    assert len(raw) == record_rows(cfg) * lanes
    return int.from_bytes(raw, "little")


def _expect(cfg: AcceleratorConfig, mode: int, w: np.ndarray, x: np.ndarray,
            x_taps: np.ndarray) -> np.ndarray:
    """(2, tm) reference sums; ``w`` is (tm, taps) in dw mode, ``x_taps`` (2, dw_taps-1, tm)."""
    tm, tn = cfg.tm, cfg.tn
    if mode == PEMode.DENSE:
        return x[:, :tn] @ w.T
    if mode == PEMode.DW:
        xs = [x[:, :tm]] + [x_taps[:, j] for j in range(x_taps.shape[1])]
        return sum(xs[j] * w[:, j][None, :] for j in range(w.shape[1]))
    return x[:, :tm].copy()


class Pair:
    def __init__(self, cfg: AcceleratorConfig, mode: int, w: np.ndarray | None, x: np.ndarray,
                 rng: np.random.Generator, gap_before: int = 0, gap_mid: int = 0,
                 dw_taps: int = 1, x_taps: np.ndarray | None = None) -> None:
        self.mode = int(mode)
        self.x = x
        if x_taps is None:
            x_taps = rng.integers(0, ACT_MAX + 1, size=(2, dw_taps - 1, cfg.tm))
        self.x_taps = x_taps
        rb = record_bits(cfg)
        if mode == PEMode.DENSE:
            self.record = _record(cfg, w, cfg.tn)
        elif mode == PEMode.DW:
            # a group of w.shape[1] <= dw_taps depthwise records, one per tap, R bytes each;
            # zero records up to dw_taps (the engine's contract); garbage above, to be ignored
            rows = record_rows(cfg)
            rec = 0
            for j in range(w.shape[1]):
                rec |= _record(cfg, w[:, j:j + 1], 1) << (8 * rows * j)
            junk = int(rng.integers(0, 1 << 62)) << (8 * rows * dw_taps)
            self.record = (rec | junk) & ((1 << rb) - 1)
        else:
            self.record = int(rng.integers(0, 1 << 62)) & ((1 << rb) - 1)
        self.expect = _expect(cfg, mode, w, x, x_taps)
        self.gap_before, self.gap_mid = gap_before, gap_mid


def _rand_pair(cfg, rng, mode, gaps=(0, 0), dw_taps: int = 1) -> Pair:
    cols = cfg.tn if mode == PEMode.DENSE else int(rng.integers(1, dw_taps + 1))
    w = _rand_w(cfg, rng, cols)
    x = rng.integers(0, ACT_MAX + 1, size=(2, input_slots(cfg)))
    return Pair(cfg, mode, w, x, rng, *gaps, dw_taps=dw_taps)


def _extreme_pairs(cfg, rng, dw_taps: int = 1) -> list[Pair]:
    lo, hi = _w_bounds(cfg)
    cb, tn, tm = input_slots(cfg), cfg.tn, cfg.tm
    x31 = np.full((2, cb), ACT_MAX)
    x0 = np.zeros((2, cb), dtype=np.int64)
    xmix = np.stack([np.full(cb, ACT_MAX), np.zeros(cb, dtype=np.int64)])
    out = []
    for x in (x31, x0, xmix, xmix[::-1].copy()):
        xt = np.repeat(x[:, None, :tm], dw_taps - 1, 1)
        for ws in (hi, lo):
            out.append(Pair(cfg, PEMode.DENSE, np.repeat(ws[:, None], tn, 1), x, rng,
                            dw_taps=dw_taps))
            # every tap of the group at the extreme (the longest depthwise sum)
            out.append(Pair(cfg, PEMode.DW, np.repeat(ws[:, None], dw_taps, 1), x, rng,
                            dw_taps=dw_taps, x_taps=xt))
            out.append(Pair(cfg, PEMode.DW, ws[:, None].copy(), x, rng, dw_taps=dw_taps))
        out.append(Pair(cfg, PEMode.UNIT, None, x, rng, dw_taps=dw_taps))
    # alternating signs over the slots
    alt = np.where(np.arange(tn)[None, :] % 2 == 0, hi[:, None], lo[:, None])
    out.append(Pair(cfg, PEMode.DENSE, alt, x31, rng, dw_taps=dw_taps))
    return out


# -- simulation ------------------------------------------------------------------------------------
def _pack_x(cfg: AcceleratorConfig, x: np.ndarray) -> int:
    cb = input_slots(cfg)
    v = 0
    for p in range(2):
        for i in range(cb):
            v |= int(x[p, i]) << (5 * (p * cb + i))
    return v


def _unpack_sum(cfg: AcceleratorConfig, v: int) -> np.ndarray:
    b = cfg.acc_bits
    out = np.zeros((2, cfg.tm), dtype=np.int64)
    for p in range(2):
        for m in range(cfg.tm):
            e = (v >> (b * (p * cfg.tm + m))) & ((1 << b) - 1)
            out[p, m] = e - (1 << b) if e >> (b - 1) else e
    return out


def _pack_taps(cfg: AcceleratorConfig, xt: np.ndarray) -> int:
    v, k = 0, 0
    for p in range(xt.shape[0]):
        for j in range(xt.shape[1]):
            for m in range(cfg.tm):
                v |= int(xt[p, j, m]) << (5 * k)
                k += 1
    return v


def _simulate(dut: PEArray, pairs: list[Pair], rng: np.random.Generator):
    """Drive ``pairs``; return (phase-1 input cycles, valid_out cycles, sums at valid_out)."""
    cfg = dut.config
    cb, rb = dut.cb, dut.record_bits
    tb_bits = 10 * cfg.tm * (dut.dw_taps - 1)
    p1_cycles: list[int] = []
    out_cycles: list[int] = []
    sums: list[np.ndarray] = []

    async def tb(ctx):
        cycle = 0

        async def step(valid: int, phase: int) -> None:
            nonlocal cycle
            ctx.set(dut.valid, valid)
            ctx.set(dut.phase, phase)
            if valid and phase:
                p1_cycles.append(cycle)
            if ctx.get(dut.valid_out):
                out_cycles.append(cycle)
                sums.append(_unpack_sum(cfg, ctx.get(dut.sum.as_value())))
            await ctx.tick()
            cycle += 1

        for pr in pairs:
            for _ in range(pr.gap_before):  # garbage operands between pairs
                ctx.set(dut.x.as_value(), int(rng.integers(0, 1 << 62)) % (1 << (10 * cb)))
                ctx.set(dut.record, int(rng.integers(0, 1 << 62)) % (1 << rb))
                ctx.set(dut.mode, int(rng.integers(0, 4)))
                if tb_bits:
                    ctx.set(dut.x_taps.as_value(), int(rng.integers(0, 1 << 62)) % (1 << tb_bits))
                await step(0, int(rng.integers(0, 2)))
            ctx.set(dut.x.as_value(), _pack_x(cfg, pr.x))
            if tb_bits:
                ctx.set(dut.x_taps.as_value(), _pack_taps(cfg, pr.x_taps))
            ctx.set(dut.record, pr.record)
            ctx.set(dut.mode, pr.mode)
            await step(1, 0)
            for _ in range(pr.gap_mid):  # operands held, valid low
                await step(0, int(rng.integers(0, 2)))
            await step(1, 1)
        for _ in range(dut.latency + 4):
            await step(0, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return p1_cycles, out_cycles, sums


def _check(dut: PEArray, pairs: list[Pair], rng: np.random.Generator) -> None:
    p1, outs, sums = _simulate(dut, pairs, rng)
    assert len(outs) == len(pairs)
    assert outs == [c + dut.latency for c in p1]
    for k, (pr, got) in enumerate(zip(pairs, sums, strict=True)):
        assert (got == pr.expect).all(), (
            f"pair {k} mode {pr.mode}: got\n{got}\nexpected\n{pr.expect}"
        )


# -- tests -----------------------------------------------------------------------------------------
def test_interface_small():
    cfg = AcceleratorConfig.small()
    dut = PEArray(cfg)
    assert dut.latency == 6
    assert (dut.cb, dut.half, dut.rows) == (8, 4, 5)
    assert dut.record_bits == record_bits(cfg) == 5 * 8 * 8
    assert len(dut.record) == 320
    assert len(dut.x) == 2 and len(dut.x[0]) == 8 and len(dut.x[0][0]) == 5
    assert len(dut.sum) == 2 and len(dut.sum[1]) == 8
    assert dut.sum[0][0].shape() == signed(cfg.acc_bits)
    assert len(dut.mode) == 2 and len(dut.valid) == len(dut.phase) == len(dut.valid_out) == 1


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_engine_plan(name):
    cfg = CONFIGS[name]
    plan = engine_plan(cfg)
    kinds: dict[int, str] = {}
    for e in plan:
        for lane in e.lanes:
            if lane is not None:
                assert lane not in kinds
                kinds[lane] = e.kind
    assert sorted(kinds) == list(range(cfg.tm))
    count = {k: sum(1 for v in kinds.values() if v == k) for k in ("w8_dsp", "w8_lut", "w4_dsp",
                                                                     "w4_lut")}
    assert count == {"w8_dsp": cfg.w8_dsp_lanes, "w8_lut": cfg.w8_lut_lanes,
                     "w4_dsp": cfg.w4_dsp_lanes, "w4_lut": cfg.w4_lut_lanes}
    assert all(kinds[m].startswith("w8") == (m < cfg.n8_slots) for m in kinds)
    # the first w4_dsp_lanes 4-bit lanes are the DSP ones
    assert all((kinds[m] == "w4_dsp") == (cfg.n8_slots <= m < cfg.n8_slots + cfg.w4_dsp_lanes)
               for m in kinds)
    dut = PEArray(cfg)
    h = half_slots(cfg)
    assert dut.dsp_multipliers == h * (cfg.w8_dsp_lanes + math.ceil(cfg.w4_dsp_lanes / 2))
    assert dut.lut_multipliers == 2 * h * (cfg.w8_lut_lanes + cfg.w4_lut_lanes)
    any_dsp = cfg.w8_dsp_lanes + cfg.w4_dsp_lanes > 0
    two_stage = h > TREE_FAN_IN
    assert dut.latency == (6 + two_stage if any_dsp else 3 + two_stage)


def test_rejects_non_config():
    with pytest.raises(TypeError, match="AcceleratorConfig"):
        PEArray({"tm": 8})


def test_rejects_bad_dw_taps():
    cfg = AcceleratorConfig.small()  # H = 4
    for bad in (0, 5, 2.0):
        with pytest.raises(ValueError, match="dw_taps"):
            PEArray(cfg, dw_taps=bad)
    assert not hasattr(PEArray(cfg), "x_taps")
    dut = PEArray(cfg, dw_taps=3)
    assert len(dut.x_taps) == 2 and len(dut.x_taps[0]) == 2 and len(dut.x_taps[0][0]) == cfg.tm


#: every config with one depthwise tap per pair, and with up to three where H allows
_DW_CASES = sorted({(n, t) for n, c in CONFIGS.items() for t in (1, min(3, half_slots(c)))})


@pytest.mark.parametrize(("name", "dwt"), _DW_CASES, ids=[f"{n}-dw{t}" for n, t in _DW_CASES])
def test_pe_array_against_numpy(name, dwt):
    """Extremes, random pairs in all modes with mode switching, back to back and with gaps;
    depthwise with one tap per pair and with up to three (``dw_taps``, groups of 1..dwt)."""
    cfg = CONFIGS[name]
    rng = np.random.default_rng(sum(map(ord, name)) + dwt)
    dut = PEArray(cfg, dw_taps=dwt)
    pairs = _extreme_pairs(cfg, rng, dwt)  # back to back
    modes = [PEMode.DENSE] * 6 + [PEMode.DW] * 3 + [PEMode.UNIT] * 3
    rng.shuffle(modes)
    pairs += [_rand_pair(cfg, rng, md, dw_taps=dwt) for md in modes]  # back to back, switching
    rng.shuffle(modes)
    pairs += [
        _rand_pair(cfg, rng, md, (int(rng.integers(0, 3)), int(rng.integers(0, 3))), dwt)
        for md in modes
    ]
    pairs += [_rand_pair(cfg, rng, PEMode.DENSE, (dut.latency + 2, dut.latency + 1))]
    _check(dut, pairs, rng)


def test_small_gap_patterns():
    """Every gap pattern between and inside pairs on the default array."""
    cfg = AcceleratorConfig.small()
    rng = np.random.default_rng(7)
    dut = PEArray(cfg)
    pairs = []
    for before in range(0, dut.latency + 2):
        for mid in (0, 1, 3, dut.latency + 1):
            md = PEMode.DENSE if (before + mid) % 3 else PEMode.DW
            pairs.append(_rand_pair(cfg, rng, md, (before, mid)))
    _check(dut, pairs, rng)
