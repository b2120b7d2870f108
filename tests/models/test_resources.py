"""Resource model: BRAM geometry, a hand-computed configuration, monotonicity, provenance."""

from __future__ import annotations

import math

import pytest

from filmqnn_hw.models.resources import (
    PAPER_COSTS,
    _merge_costs,
    arith_costs,
    bram36_for,
    bram36_for_memory,
    buffer_shapes,
    dw_tap_logic,
    predict,
    record_bits,
    requant_lane_cost,
    requant_units,
    rtl_buffers,
    slice_bits,
    tile_bank_bram36,
    tree_pipeline_ff,
    yosys_ff_excess,
)
from filmqnn_hw.models.rtl_coefficients import load_rtl_coefficients
from filmqnn_hw.spec.config import AcceleratorConfig, ConfigError

OVERHEAD = load_rtl_coefficients()["overhead"]
PE_PER_MAC_LUT = load_rtl_coefficients()["pe_per_mac_lut"]
REQUANT_LANE = load_rtl_coefficients()["requant_lane"]


def _cfg(**kw) -> AcceleratorConfig:
    base = dict(board="t", part="p", family="xcup", clock_mhz=150.0, tm=32, tn=32, tr=8, tc=8,
                n8_slots=2, w4_dsp_lanes=24, w4_lut_lanes=6, w8_dsp_lanes=1, w8_lut_lanes=1,
                act_pack=8, axi_data_bits=128, axi_ports=2, ddr_bytes_per_cycle=64.0,
                wfill_cycles=16)
    base.update(kw)
    return AcceleratorConfig(**base)


@pytest.mark.parametrize(
    ("width", "depth", "expected"),
    [(72, 512, 1.0), (36, 1024, 1.0), (40, 512, 1.0), (18, 1024, 0.5), (1, 1, 0.5),
     (144, 512, 2.0), (72, 513, 2.0), (36, 512, 0.5), (0, 100, 0.0), (26 * 32, 64, 12.0)],
)
def test_bram_geometry(width, depth, expected):
    assert bram36_for(width, depth) == expected


def test_hand_computed_case_target_schedule():
    cfg = _cfg()
    r = predict(cfg, PAPER_COSTS, schedule="target")
    ks = cfg.kernel_slots
    assert ks == 48  # tn/4 channels x 3 taps x 2 columns
    rl = requant_lane_cost(cfg.family)
    # DSP: 24 W4 lanes x tn/4 + 1 W8 lane x ks/2 + the requantization units (one per lane)
    # + the control's address arithmetic
    assert r.dsp == 24 * 8 + 1 * 24 + rl["dsp"] * 32 + OVERHEAD["dsp"]["base"]
    rec = 8 * (2 + 15) * 32  # two 8-bit rows + 30 4-bit lanes in 15 rows, tn bytes each
    assert record_bits(cfg) == rec
    ports = 2  # port 0 + one weight port
    sl = rec // 2  # the record is stored as F = 2 slices of 2176 bits
    assert slice_bits(cfg) == sl
    ov = OVERHEAD["lut"]
    lut = (24 * 32 * 13 + 6 * 48 * 39 + 1 * 48 * 6.3 + 1 * 48 * 59 + rl["lut"] * 32
           + ov["base"] + ov["per_port"] * ports + ov["per_lane"] * 32
           + ov["per_record_bit"] * rec + ov["per_slice_bit"] * sl + PE_PER_MAC_LUT * 32 * 32)
    assert r.lut == pytest.approx(lut)
    shapes = buffer_shapes(cfg)
    # input buffer: 2 x 3 row banks x tn/G banks, 40-bit words, depth for a 8x8 tile at stride 2
    # (17 rows -> 6 per bank, 17 columns: 102 words -> 512)
    assert shapes["ibuf"]["count"] == 2 * 3 * 4 and shapes["ibuf"]["depth"] == 512
    assert shapes["ibuf"]["bram36"] == 24.0
    # accumulators: 32 lanes x acc_bits (26 for 4608 x 127 x 31) wide, 64 deep, double buffered
    assert cfg.acc_bits == 26
    assert shapes["accbuf"]["bram36"] == 2 * bram36_for(32 * 26, 64)
    # 4-bit weights: ceil(29/16)=2 lanes per fill cycle x 48 slots x 4 bits = 384 bits wide
    assert shapes["wbuf4"]["width"] == 2 * 48 * 4
    assert r.bram36 == pytest.approx(sum(s["bram36"] for s in shapes.values()))


def test_hand_computed_case_rtl_schedule():
    """The default prices what the RTL builds: filter packing (kernel_packing ignored), tn
    multipliers per LUT / 8-bit lane, one DSP per two slots of a 4-bit lane pair, the RTL's
    memories and requantization units in whole planes."""
    cfg = _cfg(requant_lanes=4)
    r = predict(cfg, PAPER_COSTS)
    assert r.provenance["schedule"] == "rtl"
    rl = requant_lane_cost(cfg.family)
    assert requant_units(cfg) == 8  # 4 rounded up to a whole plane of G=8
    assert r.dsp == 12 * 16 + 1 * 16 + rl["dsp"] * 8 + OVERHEAD["dsp"]["base"]
    assert r.parts["engine.w4_lut"]["lut"] == 6 * 32 * 39  # tn multipliers, not kernel_slots
    mems = rtl_buffers(cfg)
    assert set(mems) == {"ibuf", "rbuf", "wbuf", "abuf", "obuf"}
    assert r.bram36 == pytest.approx(sum(m["bram36"] for m in mems.values()))
    # the residual tile: one column bank per word of a beat, one read port each (a pixel
    # pair reads two banks); with one word per beat one bank with two read ports, two copies
    big = _cfg(tr=28, tc=30)
    rb = rtl_buffers(big)["rbuf"]
    assert (rb["count"], rb["read_ports"], rb["depth"]) == (3, 1, 2 * 28 * 10)
    assert rb["bram36"] == 3 * bram36_for_memory(rb["width"], rb["depth"], 40) > 0
    one = rtl_buffers(big.replace(act_pack=16, tm=32, tn=32))["rbuf"]  # 80-bit words
    assert (one["count"], one["read_ports"]) == (1, 2)
    assert one["bram36"] == bram36_for_memory(one["width"], one["depth"], 80, 2) == 2 * (
        bram36_for_memory(one["width"], one["depth"], 80))
    # output tiles: two banks; single-bank tiles are kept for the calibration points that
    # record no tile_banks
    old = rtl_buffers(big, tile_banks=False)
    assert old["obuf"]["depth"] * 2 == rtl_buffers(big)["obuf"]["depth"]
    assert old["rbuf"]["read_ports"] == 2 and old["rbuf"]["count"] == 1
    assert tile_bank_bram36(big) == sum(rtl_buffers(big)[k]["bram36"] - old[k]["bram36"]
                                        for k in ("rbuf", "obuf"))
    # a config the RTL cannot build (tm not a multiple of G) is priced as the target schedule
    odd = predict(_cfg(tm=30, w4_dsp_lanes=22), PAPER_COSTS)
    assert odd.provenance["schedule"] == "target"


@pytest.mark.parametrize(
    ("width", "depth", "gran", "ports", "expected"),
    # measured with yosys synth_xilinx (xc7 and xcup agree): partial writes take 9-bit lanes
    [(160, 1628, 20, 1, 12.0), (120, 960, 20, 2, 9.0), (120, 960, 20, 1, 4.5),
     (330, 1680, 30, 2, 44.0), (480, 2112, 30, 1, 40.0), (60, 176, 20, 1, 1.5),
     (256, 1014, 0, 1, 7.5), (1248, 480, 0, 1, 17.5), (832, 64, 0, 1, 0.0)],
)
def test_bram_mapping_of_rtl_memories(width, depth, gran, ports, expected):
    assert bram36_for_memory(width, depth, gran, ports) == expected


@pytest.mark.synth
def test_bram_mapping_matches_yosys():
    """One memory of each kind re-synthesised: the model's BRAM36 equals yosys's."""
    from amaranth import Module, unsigned
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out

    from filmqnn_hw.flows.synth import synthesize

    class Ram(wiring.Component):
        def __init__(self, w, d, g, rp):
            self.w, self.d, self.g, self.rp = w, d, g, rp
            super().__init__({"wa": In(range(d)), "wd": In(w), "we": In(w // g),
                              **{f"ra{i}": In(range(d)) for i in range(rp)},
                              **{f"rd{i}": Out(w) for i in range(rp)}})

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = memory.Memory(shape=unsigned(self.w), depth=self.d,
                                                   init=[])
            wp = mem.write_port(granularity=self.g)
            m.d.comb += [wp.addr.eq(self.wa), wp.data.eq(self.wd), wp.en.eq(self.we)]
            for i in range(self.rp):
                rp = mem.read_port()
                m.d.comb += [rp.addr.eq(getattr(self, f"ra{i}")),
                             getattr(self, f"rd{i}").eq(rp.data)]
            return m

    for w, d, g, rp in [(120, 960, 20, 2), (60, 176, 20, 1), (256, 1014, 256, 1)]:
        r = synthesize(Ram(w, d, g, rp), "m", "xc7")
        got = sum(n for t, n in r.cells.items() if t.startswith("RAMB36")) + 0.5 * sum(
            n for t, n in r.cells.items() if t.startswith("RAMB18"))
        assert got == bram36_for_memory(w, d, g if g < w else 0, rp), (w, d, g, rp)


def test_calibration_points_within_ten_percent():
    """The model reproduces every synthesised calibration point (whole tops,
    benchmarks/results/rtl_calibration.json) within 10% on LUT, FF, DSP and BRAM36."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks/results/rtl_calibration.json"
    data = json.loads(path.read_text())["points"]
    assert len(data) >= 3
    for name, d in data.items():
        cfg = AcceleratorConfig.from_dict(d["config"])
        p = predict(cfg)
        want = {k: getattr(p, k) for k in ("lut", "ff", "dsp", "bram36")}
        if "dw_taps" not in d:  # synthesised before the RTL had depthwise tap groups
            dw = dw_tap_logic(cfg)
            want["lut"] -= dw["lut"]
            want["ff"] -= dw["ff"]
        if "tile_banks" not in d:  # a point without banked residual and output tiles
            want["bram36"] -= tile_bank_bram36(cfg)
        if "tree_pipeline" not in d:  # a point without adder-tree pipeline registers
            want["ff"] -= p.parts.get("tree_pipeline", {}).get("ff", 0.0)
        t = d["top"]
        got = {"lut": t["lut"], "ff": t["ff"] - yosys_ff_excess(cfg), "dsp": t["dsp"],
               "bram36": t["bram36"]}
        for k, v in got.items():
            assert v == pytest.approx(want[k], rel=0.10), (name, k, v, want[k])


def test_monotone_in_array_and_tiles():
    base = predict(_cfg(), PAPER_COSTS)
    bigger = predict(_cfg(tm=48, w4_dsp_lanes=39, n8_slots=3, w8_lut_lanes=2), PAPER_COSTS)
    assert bigger.lut > base.lut and bigger.dsp > base.dsp and bigger.ff > base.ff
    assert bigger.bram36 >= base.bram36
    wider = predict(_cfg(tn=64), PAPER_COSTS)
    assert wider.lut > base.lut and wider.dsp > base.dsp and wider.bram36 >= base.bram36
    tiles = predict(_cfg(tr=16, tc=32), PAPER_COSTS)
    assert tiles.bram36 > base.bram36 and tiles.lut == base.lut
    ports = predict(_cfg(axi_ports=4, ddr_bytes_per_cycle=64.0), PAPER_COSTS)
    assert ports.lut > base.lut
    fm = predict(_cfg(fm_cache_kbits=36 * 10), PAPER_COSTS, schedule="target")
    assert fm.bram36 == pytest.approx(
        predict(_cfg(), PAPER_COSTS, schedule="target").bram36 + 10)
    # time-multiplexed requantization saves DSPs (whole planes of G=8 units)
    rq = predict(_cfg(requant_lanes=8), PAPER_COSTS)
    assert rq.dsp == base.dsp - 24
    # moving an 8-bit lane from LUT to DSP trades LUTs for DSPs
    moved = predict(_cfg(w8_dsp_lanes=2, w8_lut_lanes=0), PAPER_COSTS)
    assert moved.dsp > base.dsp and moved.lut < base.lut


def test_cost_provenance():
    assert PAPER_COSTS.lut == {"w4_dsp": 13.0, "w4_lut": 39.0, "w8_dsp": 6.3, "w8_lut": 59.0}
    raw = {"engines": {"xc7": {"w4a5_lut": {"lut_per_mac": 30.0, "ff_per_mac": 9.0},
                               "w4a5_kernel_dsp": {"lut_per_mac": 12.0, "macs_per_dsp": 6.0}}}}
    merged = _merge_costs(raw, "xc7", kernel_packing=True)
    assert merged.provenance == "arith_costs.json" and merged.lut["w4_lut"] == 30.0
    assert merged.ff["w4_lut"] == 9.0
    # the kernel-packed unit's cost per DSP, expressed per normal-mode MAC (4 per DSP)
    assert merged.lut["w4_dsp"] == 12.0 * 6 / 4
    assert merged.lut["w8_lut"] == 59.0  # missing unit: the paper's value
    assert _merge_costs(raw, "xcup", True) is PAPER_COSTS  # no such family in the JSON
    assert _merge_costs({"unrelated": 1}, "xc7", True) is PAPER_COSTS


def test_committed_arith_costs_are_used_per_family():
    """The model reads the arithmetic benchmark's measured costs, per DSP generation."""
    from filmqnn_hw.models.arith_costs import load_arith_costs

    raw = load_arith_costs()
    for fam in ("xc7", "xcup"):
        c = arith_costs(fam, kernel_packing=False)
        assert c.provenance == "arith_costs.json"
        units = raw["engines"][fam]
        assert c.lut["w4_lut"] == units["w4a5_lut"]["lut_per_mac"]
        assert c.lut["w8_dsp"] == units["w8a5_dsp"]["lut_per_mac"]
        assert c.lut["w4_dsp"] == units["w4a5_filter_dsp"]["lut_per_mac"]
        assert predict(_cfg(family=fam)).provenance["engines"] == "arith_costs.json"
    r = predict(_cfg())
    assert r.provenance["control"].startswith("calibrated")
    assert math.isclose(sum(p["dsp"] for p in r.parts.values()), r.dsp)


@pytest.mark.synth
@pytest.mark.parametrize("family", ["xc7", "xcup"])
def test_requant_lane_cost_is_what_yosys_measures(family):
    """The model's per-unit output-pipeline cost equals a fresh synthesis of the unit (2%)."""
    from filmqnn_hw.flows.synth import synthesize
    from filmqnn_hw.gateware.requant import RequantBank

    lanes = 2
    r = synthesize(RequantBank(AcceleratorConfig.small(family=family), lanes=lanes,
                               residual=True), "rq", family)
    want = REQUANT_LANE[family]
    assert r.dsp == want["dsp"] * lanes
    assert r.lut == pytest.approx(want["lut"] * lanes, rel=0.02)
    assert r.ff == pytest.approx(want["ff"] * lanes, rel=0.02)


def test_unknown_family_has_no_requant_cost():
    with pytest.raises(ConfigError, match="no requantization-unit cost"):
        requant_lane_cost("ecp5")


def _partial_sum_bits(cfg: AcceleratorConfig) -> int:
    """Partial-sum register bits (``tree{k}_s{stage}_{group}``) in the PE array's RTLIL."""
    import re

    from amaranth.back import rtlil

    from filmqnn_hw.gateware.pe_array import PEArray

    text = rtlil.convert(PEArray(cfg), name="pe")
    bits = 0
    for body in re.findall(r"cell \$dff \S+\n(.*?)\n\s*end", text, re.S):
        q = re.search(r"connect \\Q (\S+)", body).group(1)
        if re.search(r"tree\d*_s\d+_\d+$", q):
            bits += int(re.search(r"parameter \\WIDTH (\d+)", body).group(1))
    return bits


def test_tree_pipeline_ff_counts_the_pe_arrays_partial_sum_registers():
    """tree_pipeline_ff equals the partial-sum register bits of the PE array it prices."""
    from filmqnn_hw.spec.config import tree_pipeline_bits
    from filmqnn_hw.spec.packing import w4a5_filter_layout

    mid = dict(act_pack=8, axi_data_bits=128, tr=8, tc=8)
    one = AcceleratorConfig.small(tm=16, tn=16, **mid)  # H = 8: one tree stage, nothing to add
    assert tree_pipeline_ff(one) == 0.0 and predict(one).parts["tree_pipeline"]["ff"] == 0
    assert _partial_sum_bits(one) == 0
    cfg = AcceleratorConfig.small(tm=16, tn=24, n8_slots=2, **mid).replace(
        w8_dsp_lanes=1, w8_lut_lanes=1, w4_dsp_lanes=10, w4_lut_lanes=4)  # H = 12: two stages
    bits = _partial_sum_bits(cfg)
    assert bits > 0 and tree_pipeline_ff(cfg) == bits
    assert predict(cfg).parts["tree_pipeline"]["ff"] == tree_pipeline_ff(cfg)
    # an odd 4-bit DSP lane count: the phantom partner's two sums (lane b, both pixels) are
    # built but unused, so synthesis drops them and the model does not count them
    odd = cfg.replace(w4_dsp_lanes=9, w4_lut_lanes=5)
    width = max(lane.width for lane in w4a5_filter_layout("xc7", full_range=False).lanes)
    assert tree_pipeline_ff(odd) == _partial_sum_bits(odd) - 2 * tree_pipeline_bits(12, width)
