"""Weight image: exact round trip, exact byte layout, and every rejection path."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import image_conv, random_graph

from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.intgraph import AddOp, ConvOp, IntGraph, PoolOp, TensorSpec
from filmqnn_hw.spec.weight_image import (
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    WeightImageError,
    graph_differences,
    image_info,
    pack_conv_weights,
    pack_image,
    read_header,
    read_image,
    unpack_conv_weights,
    unpack_image,
    write_image,
)

CONFIGS = [
    AcceleratorConfig.small(),  # tm=8, tn=8, n8=1: 7 nibbles (odd), partial tiles/chunks
    AcceleratorConfig.small(tm=4, tn=2, n8_slots=2),  # even nibbles, C_in >> tn
    AcceleratorConfig.small(tm=16, tn=16, n8_slots=3),  # C_out < tm everywhere
    AcceleratorConfig.small(tm=6, tn=3, n8_slots=0),  # no 8-bit slots at all
    AcceleratorConfig.small(tm=5, tn=4, n8_slots=5),  # 8-bit only
]


@pytest.fixture(scope="module")
def cfg() -> AcceleratorConfig:
    return CONFIGS[0]


# ---------------------------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"tm{c.tm}tn{c.tn}n8{c.n8_slots}")
def test_round_trip_exact(tmp_path: Path, config: AcceleratorConfig) -> None:
    g = random_graph(config, seed=config.tm * 31 + config.tn)
    path = tmp_path / "w.bin"
    sha = write_image(path, g, config)
    back, cfg_dict = read_image(path, config)
    assert graph_differences(g, back) == []
    assert cfg_dict == config.to_dict()
    assert image_info(path).config_hash == config.config_hash()
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    # The decoded graph computes exactly what the original computes.
    x = np.random.default_rng(1).integers(0, 32, size=(2, 3, 9, 9))
    a, b = g.run(x, keep=True), back.run(x, keep=True)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    # Re-packing the decoded graph gives the identical bytes.
    assert pack_image(back, config) == path.read_bytes()


def test_differences_are_detected(cfg: AcceleratorConfig) -> None:
    g = random_graph(cfg)
    h = unpack_image(pack_image(g, cfg))[0]
    h.ops[0].weight[3, 1, 0, 0] += 1
    h.ops[2].offset[0] += 1
    assert len(graph_differences(g, h)) == 2


def test_read_without_config_uses_embedded(tmp_path: Path, cfg: AcceleratorConfig) -> None:
    g = random_graph(cfg)
    write_image(tmp_path / "w.bin", g, cfg)
    back, d = read_image(tmp_path / "w.bin")
    assert graph_differences(g, back) == []
    assert AcceleratorConfig.from_dict(d).config_hash() == cfg.config_hash()


# ---------------------------------------------------------------------------------------------
# Exact layout (the worked example of docs/weight-image.md)
# ---------------------------------------------------------------------------------------------
def test_known_bytes_dense() -> None:
    # tm=4 (1 x 8-bit + 3 x 4-bit slots), tn=2; C_out=3, C_in=3, 1x1 kernel.
    w = np.array([[100, -2, 5], [-7, 3, 1], [7, -1, -5]]).reshape(3, 3, 1, 1)
    got = pack_conv_weights(w, tm=4, n8=1, lanes=2)
    expect = bytes([
        # chunk 0 (input channels 0, 1): 8-bit row, then pair (slot0 | slot1<<4), pair (slot2|0)
        100, 0xFE,          # filter 0, in 0/1
        0x79, 0xF3,         # lo=filter1 (-7 -> 9, 3), hi=filter2 (7, -1 -> 15)
        0x00, 0x00,         # 4-bit slot 2 = position 3 > C_out: zero, plus pad nibble
        # chunk 1 (input channel 2, lane 1 is padding)
        5, 0,
        0xB1, 0x00,         # lo=filter1 in2 (1), hi=filter2 in2 (-5 -> 11)
        0x00, 0x00,
    ])  # fmt: skip
    assert got == expect
    back, ok = unpack_conv_weights(got, (3, 3, 1, 1), 4, 1, 2)
    assert ok and np.array_equal(back, w)


def test_known_bytes_depthwise_and_order() -> None:
    # Depthwise (lanes=1): per tile, per (ky, kx), one byte row per 8-bit slot / 4-bit pair.
    w = np.arange(2 * 1 * 1 * 2).reshape(2, 1, 1, 2) - 1  # filters [[-1, 0]], [[1, 2]]
    got = pack_conv_weights(w, tm=2, n8=1, lanes=1)
    assert got == bytes([0xFF, 0x01, 0x00, 0x02])


def test_unpack_flags_nonzero_padding() -> None:
    w = np.ones((3, 3, 1, 1), dtype=np.int64)
    data = bytearray(pack_conv_weights(w, tm=4, n8=1, lanes=2))
    data[-1] = 0x10  # a nibble of the padding position
    _, ok = unpack_conv_weights(bytes(data), (3, 3, 1, 1), 4, 1, 2)
    assert not ok


def test_pack_is_fast_for_large_layer() -> None:
    import time

    cfg = AcceleratorConfig.small(tm=64, tn=32, n8_slots=3)
    w = np.random.default_rng(0).integers(-7, 8, size=(512, 512, 3, 3))
    t = time.perf_counter()
    data = pack_conv_weights(w, cfg.tm, cfg.n8_slots, cfg.tn)
    back, ok = unpack_conv_weights(data, w.shape, cfg.tm, cfg.n8_slots, cfg.tn)
    assert ok and np.array_equal(back, w)
    assert time.perf_counter() - t < 3.0  # ResNet-18/50's largest conv: 2.4 M weights


# ---------------------------------------------------------------------------------------------
# Rejections
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image(cfg: AcceleratorConfig) -> bytes:
    return pack_image(random_graph(cfg), cfg)


def _recrc(data: bytearray) -> bytes:
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    return bytes(data)


def test_reject_bad_magic(image: bytes) -> None:
    with pytest.raises(WeightImageError, match="bad magic"):
        unpack_image(b"GARBAGE!" + image[8:])
    with pytest.raises(WeightImageError, match="bad magic"):
        unpack_image(b"PK\x03\x04")


def test_reject_unsupported_version(image: bytes) -> None:
    data = bytearray(image)
    data[8:10] = struct.pack("<H", FORMAT_VERSION + 1)
    msg = f"unsupported weight-image version {FORMAT_VERSION + 1}"
    with pytest.raises(WeightImageError, match=msg):
        unpack_image(_recrc(data))


@pytest.mark.parametrize("keep", [0, 5, 50, HEADER_SIZE + 10, -1, -1000])
def test_reject_truncated(image: bytes, keep: int) -> None:
    cut = image[:keep] if keep >= 0 else image[: len(image) + keep]
    with pytest.raises(WeightImageError, match="truncated") as e:
        unpack_image(cut)
    if len(cut) >= HEADER_SIZE:
        assert f"expected {len(image)} bytes" in str(e.value)
        assert f"file has {len(cut)}" in str(e.value)


def test_reject_trailing_bytes(image: bytes) -> None:
    with pytest.raises(WeightImageError, match="trailing bytes"):
        unpack_image(image + b"\0")


@pytest.mark.parametrize("where", [HEADER_SIZE + 3, 0.5, 0.9, -2])
def test_reject_flipped_byte(image: bytes, where: float) -> None:
    data = bytearray(image)
    i = int(len(data) * where) if isinstance(where, float) else where % len(data)
    data[i] ^= 0x40
    with pytest.raises(WeightImageError, match="CRC-32 mismatch"):
        unpack_image(bytes(data))


def test_reject_wrong_config_hash(tmp_path: Path, cfg: AcceleratorConfig) -> None:
    write_image(tmp_path / "w.bin", random_graph(cfg), cfg)
    other = cfg.replace(tr=cfg.tr + 1)
    with pytest.raises(WeightImageError) as e:
        read_image(tmp_path / "w.bin", other)
    msg = str(e.value)
    assert f"packed for config {cfg.config_hash()[:12]} (board sim, tm=8, tn=8" in msg
    assert f"this accelerator is {other.config_hash()[:12]}" in msg
    assert "re-export" in msg


def test_reject_out_of_range_codes_at_write(tmp_path: Path, cfg: AcceleratorConfig) -> None:
    path = tmp_path / "w.bin"
    good = random_graph(cfg)
    write_image(path, good, cfg)
    before = path.read_bytes()

    def bad(mutate) -> str:
        g = random_graph(cfg)
        mutate(g)
        with pytest.raises(WeightImageError) as e:
            write_image(path, g, cfg)
        assert path.read_bytes() == before  # the old file is untouched
        assert [p.name for p in tmp_path.iterdir()] == ["w.bin"]  # no temp file left
        return str(e.value)

    conv1 = 1  # position 1 of conv1 is a 4-bit slot on tm=8, n8=1

    def four_bit_8(g):
        g.ops[0].bits[conv1] = 4
        g.ops[0].weight[conv1, 0, 0, 0] = 8

    assert "out-of-range code 8 in 4-bit filter at position 1" in bad(four_bit_8)

    def eight_bit_m128(g):
        g.ops[0].bits[0] = 8
        g.ops[0].weight[0, 0, 1, 1] = -128

    assert "out-of-range code -128 in 8-bit filter at position 0" in bad(eight_bit_m128)

    def eight_in_4bit_slot(g):
        g.ops[3].bits[2] = 8

    assert "which are 4-bit slots on this config" in bad(eight_in_4bit_slot)

    def mult_too_big(g):
        g.ops[0].mult[0] = 1 << 15

    assert "mult" in bad(mult_too_big)

    # A config with a narrower 4-bit range refuses codes the default range accepts.
    narrow = cfg.replace(w4_min=-6, w4_max=6)
    g = random_graph(cfg)
    with pytest.raises(WeightImageError, match="allowed \\[-6, 6\\]"):
        pack_image(g, narrow)


def test_reject_out_of_range_code_at_read(cfg: AcceleratorConfig) -> None:
    g = random_graph(cfg)
    # fc (last op) is 1x1 with 13 inputs: its first weight byte is filter 0 (8-bit slot).
    g.ops[-1].bits[0] = 4
    g.ops[-1].weight[0] = 0
    data = bytearray(pack_image(g, cfg))
    assert graph_differences(g, unpack_image(bytes(data))[0]) == []
    # fc's block is the last one; its first byte is filter 0 (an 8-bit slot), input 0.
    hdr = read_header(bytes(data))
    fc_bytes = 2 * 2 * (1 + 4) * cfg.tn  # 2 tiles (10 filters) x 2 chunks (13 inputs) x 5 rows
    start = hdr.weights_offset + hdr.weights_length - (-fc_bytes % 64) - fc_bytes
    data[start] = 0x7F  # 127 in a filter declared 4-bit
    with pytest.raises(WeightImageError, match="out-of-range code 127 in 4-bit filter"):
        unpack_image(_recrc(data))


def test_reject_grouped_conv(cfg: AcceleratorConfig) -> None:
    rng = np.random.default_rng(0)
    op = image_conv(rng, cfg, "g", "x", "y", 4, 4, 1, groups=2)
    t = {n: TensorSpec(n, 4, 2, 2, 0.1) for n in ("x", "y")}
    g = IntGraph(t["x"], [op], "y", t)
    with pytest.raises(WeightImageError, match="grouped convolution"):
        pack_image(g, cfg)


def test_magic_and_header_layout(image: bytes, cfg: AcceleratorConfig) -> None:
    assert image[:8] == MAGIC == b"FQNNWIMG"
    assert struct.unpack_from("<HH", image, 8) == (FORMAT_VERSION, HEADER_SIZE)
    assert struct.unpack_from("<Q", image, 16)[0] == len(image)
    assert image[24:56] == bytes.fromhex(cfg.config_hash())
    assert struct.unpack_from("<I", image, len(image) - 4)[0] == zlib.crc32(image[:-4])
    woff = struct.unpack_from("<Q", image, 64)[0]
    assert woff % 64 == 0


def test_image_module_needs_no_torch_or_amaranth() -> None:
    code = (
        "import sys, filmqnn_hw.spec.weight_image\n"
        "bad = [m for m in ('torch', 'amaranth') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_format_covers_every_ir_field() -> None:
    """A new IR field must be added to the image (and FORMAT_VERSION bumped), not dropped."""
    import dataclasses

    expected = {
        TensorSpec: {"name", "channels", "height", "width", "scale", "zero_point", "lo", "hi"},
        ConvOp: {"name", "input", "output", "weight", "bits", "mult", "offset", "shift",
                 "stride", "padding", "groups", "pad_code", "lo", "hi", "residual", "res_mult",
                 "kind", "permutation", "meta"},  # fmt: skip
        PoolOp: {"name", "input", "output", "mode", "kernel", "stride", "padding", "pad_code",
                 "mult", "offset", "shift", "lo", "hi"},  # fmt: skip
        AddOp: {"name", "a", "b", "output", "mult_a", "mult_b", "offset", "shift", "lo", "hi"},
        IntGraph: {"input", "ops", "output", "tensors", "name"},
    }
    for cls, names in expected.items():
        got = {f.name for f in dataclasses.fields(cls)}
        assert got == names, (
            f"{cls.__name__} fields changed ({sorted(got ^ names)}): store them in "
            "filmqnn_hw/spec/weight_image.py, bump FORMAT_VERSION and update docs/weight-image.md"
        )


def test_reject_tampered_embedded_config(image: bytes) -> None:
    data = bytearray(image)
    clen = struct.unpack_from("<I", data, 56)[0]
    text = bytes(data[HEADER_SIZE : HEADER_SIZE + clen])
    new = text.replace(b'"tr": 4', b'"tr": 5')
    assert new != text and len(new) == len(text)
    data[HEADER_SIZE : HEADER_SIZE + clen] = new
    with pytest.raises(WeightImageError, match="embedded config hashes to"):
        unpack_image(_recrc(data))


def test_reject_nonzero_padding_at_read(cfg: AcceleratorConfig) -> None:
    g = random_graph(cfg)
    data = bytearray(pack_image(g, cfg))
    hdr = read_header(bytes(data))
    # conv1 (first block): 3 input channels on tn=8 lanes, so lane 7 of its first row is padding.
    data[hdr.weights_offset + 7] = 0x01
    with pytest.raises(WeightImageError, match="layer 'conv1': nonzero padding"):
        unpack_image(_recrc(data))
