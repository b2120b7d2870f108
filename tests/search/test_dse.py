"""Design-space exploration: valid configurations within caps, clear errors otherwise."""

from __future__ import annotations

import math
import tomllib

import pytest

import boards
from filmqnn_hw.models.resources import predict
from filmqnn_hw.search.dse import DEFAULT_CAPS, DseError, design
from filmqnn_hw.spec.config import AcceleratorConfig


@pytest.mark.parametrize("board", ["zcu102", "pynq_z2"])
def test_design_is_valid_and_within_caps(board):
    cfg = design(board)
    b = boards.load_board(board)
    assert isinstance(cfg, AcceleratorConfig)
    assert (cfg.board, cfg.part, cfg.family, cfg.clock_mhz) == (b.name, b.part, b.family,
                                                               b.clock_mhz)
    assert cfg.n8_slots >= math.ceil(0.05 * cfg.tm)
    assert cfg.axi_ports == b.axi_ports and cfg.axi_data_bits == b.axi_data_bits
    assert cfg.ddr_bytes_per_cycle == pytest.approx(b.ddr_bytes_per_cycle(), rel=1e-3)
    r = predict(cfg)
    dev = b.resources()
    assert r.dsp <= DEFAULT_CAPS["dsp_cap"] * dev["dsp"]
    assert r.lut <= DEFAULT_CAPS["lut_cap"] * dev["lut"]
    assert r.ff <= DEFAULT_CAPS["ff_cap"] * dev["ff"]
    assert r.bram36 <= DEFAULT_CAPS["bram_cap"] * dev["bram36"]
    assert set(cfg.notes["fps"]) == {"resnet18", "resnet50", "mobilenet_v2"}
    assert AcceleratorConfig.from_json(cfg.to_json()) == cfg
    # the default schedule is what the RTL builds, and the RTL can build it
    from filmqnn_hw.spec.geometry import geometry

    assert cfg.notes["schedule"] == "rtl" and r.provenance["schedule"] == "rtl"
    assert (cfg.kernel_packing, cfg.px_max, cfg.fm_cache_kbits) == (False, 1, 0)
    assert geometry(cfg).rq_lanes == cfg.out_lanes  # whole planes of requantization units


def test_rtl_schedule_ranks_by_the_rtl_estimate():
    """The default search scores configs by what the generated RTL does (the chunk-level
    estimate), and among scores within the estimate's error band takes the most LUT
    headroom."""
    from filmqnn_hw.models.rtl_estimate import estimate_network
    from filmqnn_hw.search.dse import RTL_TIE_BAND, search

    cands = search("pynq_z2", networks=("resnet18",), top_arrays=6)
    best = max(c.score for c in cands)
    band = [c for c in cands if c.score >= (1 - RTL_TIE_BAND) * best]
    assert cands[0] in band
    assert cands[0].resources["lut"] == min(c.resources["lut"] for c in band)
    top = cands[0]
    assert top.fps["resnet18"] == pytest.approx(
        estimate_network(top.config, "resnet18").fps, rel=1e-9)
    cfg = design("zcu102")
    assert "rtl_estimate" in cfg.notes["fps_model"]
    assert cfg.notes["fps"]["resnet18"] == pytest.approx(
        estimate_network(cfg, "resnet18").fps, abs=0.01)


def test_target_schedule_searches_what_the_rtl_does_not_build():
    """``schedule="target"`` may use kernel packing, pixel groups and the feature-map store,
    priced by the target-schedule resource model."""
    cfg = design("zcu102", schedule="target")
    assert cfg.kernel_packing and cfg.notes["schedule"] == "target"
    r = predict(cfg, schedule="target")
    assert r.provenance["schedule"] == "target"
    assert r.lut <= DEFAULT_CAPS["lut_cap"] * boards.load_board("zcu102").resources()["lut"]


@pytest.mark.slow
def test_tighter_caps_and_ratio_are_respected():
    cfg = design("pynq_z2", ratio=0.25, dsp_cap=0.6, lut_cap=0.6)
    assert cfg.n8_slots >= math.ceil(0.25 * cfg.tm)
    r = predict(cfg)
    assert r.dsp <= 0.6 * 220 and r.lut <= 0.6 * 53200
    assert design("pynq_z2", ratio=0.0).n8_slots == 0


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"ratio": 1.5}, r"ratio .* must be in \[0, 1\]"),
        ({"ratio": -0.1}, r"ratio .* must be in \[0, 1\]"),
        ({"clock_mhz": 0}, r"clock must be a positive"),
        ({"clock_mhz": 1000}, r"clock 1000 MHz is above zcu102's ceiling of 775 MHz"),
        ({"dsp_cap": 0.0}, r"dsp_cap must be a utilisation fraction"),
        ({"lut_cap": 1.5}, r"lut_cap must be a utilisation fraction"),
        ({"uram_cap": 0.5}, r"unknown cap 'uram_cap'"),
        ({"schedule": "fast"}, r"schedule must be one of rtl, target"),
        ({"kernel_packing": True}, r"kernel packing .* is not built by the Amaranth RTL"),
    ],
)
def test_impossible_requests(kwargs, pattern):
    with pytest.raises(DseError, match=pattern):
        design("zcu102", **kwargs)


def test_board_too_small_and_unknown(tmp_path):
    d = tomllib.loads((boards.BOARD_DIR / "pynq_z2.toml").read_text())
    d["board"]["name"] = "tiny"
    d["resources"].update(lut=3000, dsp=4, bram36=4)
    lines = []
    for table, vals in d.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {v!r}".replace("'", '"') for k, v in vals.items()]
    f = tmp_path / "tiny.toml"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DseError, match="too small for the minimum array"):
        design(str(f))
    with pytest.raises(boards.BoardError, match="known boards"):
        design("nonesuch")


def test_design_optimises_for_a_network_object():
    """A user's network (a Network, e.g. from an export's manifest) is an objective like a
    benchmark name; equal networks share the cached result."""
    from filmqnn_hw.spec.networks import resnet18

    net = resnet18(size=32)
    net.name = "mine"
    cfg = design("pynq_z2", networks=(net,))
    assert cfg.notes["objective"] == "geomean FPS over mine"
    again = resnet18(size=32)
    again.name = "mine"
    assert design("pynq_z2", networks=(again,)) is cfg
    with pytest.raises(DseError, match="names or Network objects"):
        design("pynq_z2", networks=(42,))
