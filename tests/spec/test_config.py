# amaranth: UnusedElaboratable=no
"""The accelerator configuration object: validation, hashing, serialisation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from filmqnn_hw.spec.config import (
    ACT_MAX,
    W8_MAX,
    AcceleratorConfig,
    ConfigError,
    accumulator_bits,
)


def test_accumulator_bits_is_tight_at_the_bound():
    for fan_in in (1, 9, 27, 576, 4608, 4609):
        bits = accumulator_bits(fan_in)
        bound = fan_in * W8_MAX * ACT_MAX
        assert -(1 << (bits - 1)) <= -bound and bound <= (1 << (bits - 1)) - 1
        # one bit fewer cannot hold the extreme sum
        assert bound > (1 << (bits - 2)) - 1
    assert accumulator_bits(4608) == 26
    assert accumulator_bits(4608, w_max=7) == 21
    with pytest.raises(ConfigError, match="fan-in"):
        accumulator_bits(0)


def test_small_config_is_valid_and_round_trips():
    cfg = AcceleratorConfig.small(tm=8, tn=8, n8_slots=1)
    again = AcceleratorConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.config_hash() == cfg.config_hash()
    assert cfg.acc_bits == accumulator_bits(cfg.max_fan_in)


def test_hash_ignores_notes_but_not_fields():
    cfg = AcceleratorConfig.small()
    assert cfg.replace(notes={"x": 1}).config_hash() == cfg.config_hash()
    assert cfg.replace(tn=16).config_hash() != cfg.config_hash()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"family": "xczu"}, "family"),
        ({"clock_mhz": 0}, "clock_mhz"),
        ({"n8_slots": 9, "w8_dsp_lanes": 9, "w4_dsp_lanes": 0}, "n8_slots"),
        ({"w4_dsp_lanes": 3}, "4-bit lanes"),
        ({"w8_lut_lanes": 1}, "8-bit lanes"),
        ({"axi_data_bits": 100}, "axi_data_bits"),
        ({"act_pack": 16}, "wider than the AXI port"),
        ({"tm": 0}, "tm"),
        ({"ratio_8bit": 1.5}, "ratio_8bit"),
        ({"w4_min": -9}, "4-bit weight range"),
    ],
)
def test_invalid_configs_are_refused_with_a_clear_message(changes, message):
    cfg = AcceleratorConfig.small()
    with pytest.raises(ConfigError, match=message):
        cfg.replace(**changes)


def test_from_dict_rejects_unknown_missing_and_wrong_version():
    d = AcceleratorConfig.small().to_dict()
    with pytest.raises(ConfigError, match="unknown config fields: bogus"):
        AcceleratorConfig.from_dict({**d, "bogus": 1})
    d2 = dict(d)
    del d2["tm"]
    with pytest.raises(ConfigError, match="missing fields: tm"):
        AcceleratorConfig.from_dict(d2)
    with pytest.raises(ConfigError, match="format version 99"):
        AcceleratorConfig.from_dict({**d, "format_version": 99})


@pytest.mark.parametrize(
    "tm, n8, cout", [(8, 1, 8), (8, 1, 13), (8, 1, 3), (16, 2, 17), (16, 2, 33)]
)
def test_n8_capacity_matches_slot_positions(tm, n8, cout):
    cfg = AcceleratorConfig.small(tm=tm, n8_slots=n8)
    assert cfg.n8_capacity(cout) == sum(cfg.is_8bit_slot(p) for p in range(cout))


def test_config_module_imports_neither_torch_nor_amaranth():
    code = (
        "import sys, filmqnn_hw.spec.config, filmqnn_hw.spec.numerics, filmqnn_hw.spec.intgraph;"
        "bad = [m for m in ('torch', 'amaranth') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    json.loads(AcceleratorConfig.small().to_json())
