"""Cycle model: hand-computed layers (compute- and bandwidth-bound) and network invariants."""

from __future__ import annotations

import pytest

from filmqnn_hw.models.cycles import (
    BOUNDS,
    DEFAULT_TIMING,
    Timing,
    _mode,
    _plan,
    bandwidth_beats,
    compute_only_cycles,
    drain_only_cycles,
    layer_cycles,
    network_cycles,
    plan_fm_cache,
    px_options,
)
from filmqnn_hw.spec.config import AcceleratorConfig, ConfigError
from filmqnn_hw.spec.networks import Layer, get_network

TIM = Timing(t_dma=10, t_pipe=2, t_out=3, t_sync=1, t_layer=5, ots_beats_per_cycle=8)


def _cfg(ddr: float, **kw) -> AcceleratorConfig:
    base = dict(board="t", part="p", family="xc7", clock_mhz=100.0, tm=8, tn=8, tr=4, tc=4,
                n8_slots=1, w4_dsp_lanes=7, w4_lut_lanes=0, w8_dsp_lanes=1, w8_lut_lanes=0,
                kernel_packing=False, act_pack=4, axi_data_bits=64, axi_ports=1,
                ddr_bytes_per_cycle=ddr, wfill_cycles=1)
    base.update(kw)
    return AcceleratorConfig(**base)


# 3x3 conv, 8 -> 8 channels, 8x8 map, stride 1, pad 1: four 4x4 tiles, one chunk, one group.
# Per step: 9 taps x 16 pixels + t_pipe = 146 cycles. DDR beats (64-bit, G=4: 3 words/beat):
# weights 1x8x9x8 + 7x8x9x4 = 2592 bits = 41 beats + params 8x128/64 = 16 -> 57 (step 0 only);
# every input tile: 2 planes x 5 rows x 2 beats = 20; every output tile 2 x 4 x 2 = 16.
LAYER = Layer("c", "conv", 8, 8, 8, 8, 8, 8, 3, 3, 1, 1, "input", "c.out")


def test_hand_computed_compute_bound():
    cfg = _cfg(ddr=1000.0)  # one 64-bit port: 1 beat/cycle
    assert bandwidth_beats(cfg) == 1.0
    lc = layer_cycles(cfg, LAYER, timing=TIM)
    prologue = 10 + (57 + 20) + 1
    phases = [146 + 1, max(146, 19, 10 + 36) + 1, max(146, 19, 10 + 36) + 1,
              max(146, 19, 10 + 16) + 1]
    epilogue = max(16 + 3, 10 + 16) + 1
    assert lc.cycles == 5 + prologue + sum(phases) + epilogue == 708
    assert lc.bound == "compute" and lc.steps == 4 and lc.mode == "normal"
    assert lc.ddr_bytes == (57 + 4 * 20 + 4 * 16) * 8


def test_hand_computed_bandwidth_bound():
    cfg = _cfg(ddr=1.0)  # 1 byte/cycle: 0.125 beats/cycle
    assert bandwidth_beats(cfg) == 0.125
    lc = layer_cycles(cfg, LAYER, timing=TIM)
    prologue = 10 + 77 * 8 + 1
    # after a DDR-bound phase the DMA's next requests are already out: no T_DMA again;
    # phase 3 is compute-bound, so the epilogue's store pays T_DMA
    phases = [max(146, 20 * 8) + 1, max(146, 36 * 8) + 1, max(146, 36 * 8) + 1,
              max(146, 16 * 8) + 1]
    epilogue = max(19, 10 + 16 * 8) + 1
    assert lc.cycles == 5 + prologue + sum(phases) + epilogue == 1657
    assert lc.bound == "input_load"
    assert lc.bound_cycles["compute"] == 146  # only the last compute phase is compute-bound


def test_weight_bound_and_output_bound_layers():
    # FC: 1x1 map, big weight matrix -> weight load dominates
    fc = Layer("fc", "conv", 512, 1000, 1, 1, 1, 1, 1, 1, 1, 0, "input", "fc.out", fc=True)
    assert layer_cycles(_cfg(ddr=8.0), fc, timing=TIM).bound == "weight_load"
    # 1x1 conv with few inputs and many outputs on a slow bus: stores dominate
    ex = Layer("ex", "conv", 4, 64, 16, 16, 16, 16, 1, 1, 1, 0, "input", "ex.out")
    assert layer_cycles(_cfg(ddr=2.0), ex, timing=TIM).bound == "output_store"


def test_modes_and_compute_only_bound():
    cfg = _cfg(ddr=64.0, kernel_packing=True, tn=16, tm=8)
    assert _mode(cfg, LAYER, False) == "kernel"
    # kernel mode: 16/4 = 4 channels per chunk -> 2 chunks; per chunk 3 kernel rows x
    # 4 rows x ceil((4 + 2) / 2) = 3 -> 36 cycles + t_pipe
    assert compute_only_cycles(cfg, LAYER, timing=TIM) == 4 * 2 * (3 * 4 * 3 + 2)
    dw = Layer("d", "dw", 8, 8, 8, 8, 4, 4, 3, 3, 2, 1, "input", "d.out")
    assert _mode(cfg, dw, False) == "dw"
    # depthwise: 8 channels on lanes; stride 2 reads 2 window columns of 8 channels = 16 <= tn
    # channel-columns per cycle -> one output pixel per cycle
    assert compute_only_cycles(cfg, dw, timing=TIM) == 1 * (16 * 1 + 2)
    # tn = 8 without kernel packing: 2 reads per pixel, and 9 taps on 8 multipliers: 2 passes
    assert compute_only_cycles(cfg.replace(tn=8, kernel_packing=False), dw, timing=TIM) == (
        16 * 2 * 2 + 2)
    stem = Layer("s", "conv", 3, 8, 8, 8, 4, 4, 3, 3, 2, 1, "input", "s.out")
    assert _mode(cfg, stem, True) == "stem"
    # stem: im2col 27 channels -> ceil(27/16) = 2 chunks of 16 pixels (1x1)
    assert compute_only_cycles(cfg, stem, stem=True, timing=TIM) == 2 * (16 + 2)
    with pytest.raises(ConfigError, match="ddr_bytes_per_cycle is 0"):
        layer_cycles(_cfg(ddr=0.0), LAYER)


@pytest.mark.parametrize("net", ["resnet18", "resnet50", "mobilenet_v2"])
def test_network_invariants(net):
    cfg = _cfg(ddr=16.0, tm=32, tn=32, tr=14, tc=14, n8_slots=2, w4_dsp_lanes=30,
               w8_dsp_lanes=2, kernel_packing=True, fm_cache_kbits=2000)
    r = network_cycles(cfg, net, timing=DEFAULT_TIMING)
    network = get_network(net)
    assert len(r.layers) == len(network.layers) and r.macs == network.macs
    assert r.cycles == sum(ly.cycles for ly in r.layers)
    assert r.fps == pytest.approx(100e6 / r.cycles)
    for ly, layer in zip(r.layers, network.layers, strict=True):
        assert ly.bound in BOUNDS
        assert ly.cycles >= ly.compute_cycles  # the array time is a lower bound
        stem = layer is network.layers[0]
        mode = _mode(cfg, layer, stem)
        for px in px_options(cfg.replace(px_max=4), layer, mode):
            c4 = cfg.replace(px_max=4, requant_lanes=64)
            p = _plan(c4, layer, mode, DEFAULT_TIMING, px)
            assert int(p.comp.sum()) == compute_only_cycles(c4, layer, stem=stem, px=px)
            assert int(p.drain.sum()) == drain_only_cycles(c4, layer, stem=stem, px=px)
        assert ly.utilisation <= 1.5 + 1e-9  # at most kernel-mode peak
    assert r.layers[0].mode == "stem"
    # the feature-map store never holds the network input or output
    on_chip = plan_fm_cache(cfg, network)
    assert network.output not in on_chip and network.input not in on_chip
    # more DDR bandwidth never costs cycles; a feature-map store never costs cycles
    faster = network_cycles(cfg.replace(ddr_bytes_per_cycle=64.0, axi_ports=4), net)
    assert faster.cycles <= r.cycles
    assert network_cycles(cfg.replace(fm_cache_kbits=0), net).cycles >= r.cycles


def test_pixel_groups():
    # 1x1 conv 8 -> 8 on a 16x16 map: 8 channels fit tn/2 = 8 slots -> 2 pixels per cycle
    ly = Layer("p", "conv", 8, 8, 16, 16, 16, 16, 1, 1, 1, 0, "input", "p.out")
    base = _cfg(ddr=1000.0, tn=16, tr=16, tc=16)
    assert px_options(base, ly, "normal") == [1]
    two = base.replace(px_max=2, requant_lanes=16)
    assert px_options(two, ly, "normal") == [1, 2]
    assert compute_only_cycles(two, ly, timing=TIM, px=2) == 16 * 8 + 2
    assert drain_only_cycles(two, ly, px=2) == 16 * 8  # 2 pixels x 8 lanes on 16 units
    # with only tm requantization units the drain of 2 x 8 values takes 2 cycles per group
    assert drain_only_cycles(base.replace(px_max=2), ly, px=2) == 16 * 8 * 2
    lc = layer_cycles(two, ly, timing=TIM)
    assert lc.px == 2 and lc.cycles < layer_cycles(base, ly, timing=TIM).cycles
    with pytest.raises(ConfigError, match="px_max"):
        base.replace(px_max=3)
    with pytest.raises(ConfigError, match="requant_lanes"):
        base.replace(requant_lanes=9)  # more than px_max x tm
