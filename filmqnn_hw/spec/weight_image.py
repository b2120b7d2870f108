"""The weight image: one binary file holding a whole integer network for one accelerator.

``docs/weight-image.md`` is the byte-exact description of this format; this module is its
only writer and reader. It needs numpy and :mod:`filmqnn_hw.spec.config` only (no torch, no
amaranth), so hardware tests and host software can read images without the training stack.

An image stores:

* a fixed 96-byte header (magic ``b"FQNNWIMG"``, format version, total length, the SHA-256
  of the :class:`~filmqnn_hw.spec.config.AcceleratorConfig` it was packed for),
* that configuration as JSON (so a reader can say which accelerator it needs),
* the graph: input tensor spec, every tensor spec, every operation record (shapes,
  stride/padding/groups, pad code, clamp ``lo``/``hi``, per-position bit widths = the
  8-bit slot map, filter permutation, ``mult``/``offset``/``shift``/``res_mult``, residual),
* the packed weights of every convolution in exactly the order the hardware reads them,
* a CRC-32 (IEEE 802.3, as :func:`zlib.crc32`) over every preceding byte.

Weight layout (version 1), per convolution, with ``L = tn`` input lanes (``L = 1`` for
depthwise, where output lane ``m`` reads only its own channel)::

    for tile t in 0 .. ceil(C_out / tm) - 1:          # tm output positions
      for chunk k in 0 .. ceil(C_in_per_group / L) - 1:
        for ky in 0 .. kh - 1:
          for kx in 0 .. kw - 1:
            for s in 0 .. n8_slots - 1:                # 8-bit slots: one int8 per lane
              for i in 0 .. L - 1:  byte  w[t*tm + s, k*L + i, ky, kx]
            for p in 0 .. ceil(n4 / 2) - 1:            # 4-bit slots, two per byte
              for i in 0 .. L - 1:  byte  (lo nibble: 4-bit slot 2p, hi nibble: slot 2p+1)

where the 4-bit slot ``j`` is output position ``t*tm + n8_slots + j``. Positions beyond
``C_out`` and lanes beyond ``C_in_per_group`` are zero. Each layer's block starts on a
64-byte boundary of the weight section.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from filmqnn_hw.spec.config import AcceleratorConfig, ConfigError
from filmqnn_hw.spec.files import atomic_write
from filmqnn_hw.spec.intgraph import AddOp, ConvOp, IntGraph, PoolOp, TensorSpec
from filmqnn_hw.spec.numerics import MULT_BITS, SHIFT_MAX, NumericsError, check_requant_range

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "WEIGHT_ALIGN",
    "WeightImageError",
    "ImageInfo",
    "pack_image",
    "write_image",
    "unpack_image",
    "read_image",
    "read_header",
    "image_info",
    "pack_conv_weights",
    "unpack_conv_weights",
    "packed_size",
    "graph_differences",
]

#: First 8 bytes of every image.
MAGIC = b"FQNNWIMG"
#: Bumped whenever the byte layout (header, records or weight order) changes.
FORMAT_VERSION = 1
#: Size of the fixed header in bytes.
HEADER_SIZE = 96
#: Every layer's weight block starts at a multiple of this many bytes in the weight section.
WEIGHT_ALIGN = 64

# magic, version, header_size, flags, file_length, config sha256, config_json_len,
# graph_len, weights_offset, weights_len, n_ops, n_tensors, reserved
_HEADER = struct.Struct("<8sHHIQ32sIIQQII8s")
assert _HEADER.size == HEADER_SIZE

_OP_CONV, _OP_POOL, _OP_ADD = 1, 2, 3
_KINDS = ("conv", "depthwise", "linear")
_LAYOUT_DENSE, _LAYOUT_DEPTHWISE = 0, 1
_POOL_MODES = ("max", "avg")

_TENSOR = struct.Struct("<IIIdiii")  # channels, height, width, scale, zero_point, lo, hi
# C_out, C_in_per_group, kh, kw, sh, sw, ph, pw, groups, pad_code, lo, hi,
# has_perm, has_res, layout, reserved, weights_offset, weights_len
_CONV = struct.Struct("<IIHHHHHHIiiiBBBBQQ")
# is_global, kh, kw, sh, sw, ph, pw, pad_code, mult, offset, shift, lo, hi
_POOL = struct.Struct("<BHHHHHHiHqBii")
# mult_a, mult_b, offset, shift, lo, hi
_ADD = struct.Struct("<iiqBii")

_U16_MAX = (1 << 16) - 1
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class WeightImageError(ValueError):
    """An image that cannot be written or read. The message says what is wrong and what to do."""


# =============================================================================================
# Weight packing
# =============================================================================================
def _layout(op: ConvOp) -> int:
    cpg = int(op.weight.shape[1])
    if op.groups == 1:
        return _LAYOUT_DENSE
    if cpg == 1 and op.groups == op.in_channels:
        return _LAYOUT_DEPTHWISE
    raise WeightImageError(
        f"layer {op.name!r}: grouped convolution with groups={op.groups} (neither dense nor "
        "depthwise) is not supported by the accelerator; use groups=1 or groups=C_in"
    )


def _lanes(layout: int, tn: int) -> int:
    return 1 if layout == _LAYOUT_DEPTHWISE else tn


def _block_shape(c_out: int, cpg: int, kh: int, kw: int, tm: int, n8: int, lanes: int):
    tiles = math.ceil(c_out / tm)
    chunks = math.ceil(cpg / lanes)
    rows = n8 + (tm - n8 + 1) // 2
    return tiles, chunks, rows


def packed_size(c_out: int, cpg: int, kh: int, kw: int, tm: int, n8: int, lanes: int) -> int:
    """Bytes of one layer's packed weights (before alignment padding)."""
    tiles, chunks, rows = _block_shape(c_out, cpg, kh, kw, tm, n8, lanes)
    return tiles * chunks * kh * kw * rows * lanes


def pack_conv_weights(weight: np.ndarray, tm: int, n8: int, lanes: int) -> bytes:
    """Pack ``weight`` (C_out, C_in_per_group, kh, kw) of codes in hardware read order.

    Range checks are the caller's job (:func:`pack_image` does them); this function only
    requires every 8-bit-slot code to fit int8 and every 4-bit-slot code to fit a signed
    nibble, and raises :class:`WeightImageError` otherwise.
    """
    w = np.asarray(weight, dtype=np.int64)
    c_out, cpg, kh, kw = w.shape
    tiles, chunks, _ = _block_shape(c_out, cpg, kh, kw, tm, n8, lanes)
    full = np.zeros((tiles * tm, chunks * lanes, kh, kw), dtype=np.int64)
    full[:c_out, :cpg] = w
    # (T, tm, K, L, kh, kw) -> (T, K, kh, kw, tm, L)
    blk = full.reshape(tiles, tm, chunks, lanes, kh, kw).transpose(0, 2, 4, 5, 1, 3)
    w8 = blk[..., :n8, :]
    w4 = blk[..., n8:, :]
    if w8.size and (w8.min() < -128 or w8.max() > 127):
        raise WeightImageError("an 8-bit slot holds a code outside int8")
    if w4.size and (w4.min() < -8 or w4.max() > 7):
        raise WeightImageError("a 4-bit slot holds a code outside a signed nibble")
    n4 = tm - n8
    if n4 % 2:
        pad = np.zeros(w4.shape[:-2] + (1, lanes), dtype=np.int64)
        w4 = np.concatenate([w4, pad], axis=-2)
    pairs = w4.reshape(w4.shape[:-2] + ((n4 + 1) // 2, 2, lanes))
    nib = (pairs[..., 0, :] & 0xF) | ((pairs[..., 1, :] & 0xF) << 4)
    out = np.concatenate([w8 & 0xFF, nib], axis=-2).astype(np.uint8)
    return out.tobytes()


def unpack_conv_weights(
    data: bytes | memoryview, shape: tuple[int, int, int, int], tm: int, n8: int, lanes: int
) -> tuple[np.ndarray, bool]:
    """Inverse of :func:`pack_conv_weights`: returns (weight int64, padding_is_zero)."""
    c_out, cpg, kh, kw = shape
    tiles, chunks, rows = _block_shape(c_out, cpg, kh, kw, tm, n8, lanes)
    raw = np.frombuffer(data, dtype=np.uint8).reshape(tiles, chunks, kh, kw, rows, lanes)
    w8 = raw[..., :n8, :].astype(np.int8).astype(np.int64)
    nib = raw[..., n8:, :].astype(np.int64)
    lo = nib & 0xF
    hi = nib >> 4
    lo = np.where(lo >= 8, lo - 16, lo)
    hi = np.where(hi >= 8, hi - 16, hi)
    n4 = tm - n8
    w4 = np.stack([lo, hi], axis=-2).reshape(raw.shape[:4] + (2 * ((n4 + 1) // 2), lanes))
    pad_ok = True
    if n4 % 2:
        pad_ok = not np.any(w4[..., n4, :])
        w4 = w4[..., :n4, :]
    blk = np.concatenate([w8, w4], axis=-2)  # (T, K, kh, kw, tm, L)
    full = blk.transpose(0, 4, 1, 5, 2, 3).reshape(tiles * tm, chunks * lanes, kh, kw)
    w = np.ascontiguousarray(full[:c_out, :cpg])
    pad_ok = pad_ok and not np.any(full[c_out:]) and not np.any(full[:, cpg:])
    return w, pad_ok


# =============================================================================================
# Byte-level helpers
# =============================================================================================
class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def raw(self, b: bytes) -> None:
        self.parts.append(b)

    def s(self, fmt: struct.Struct, *vals: Any) -> None:
        self.parts.append(fmt.pack(*vals))

    def string(self, text: str) -> None:
        b = text.encode("utf-8")
        if len(b) > _U16_MAX:
            raise WeightImageError(f"name {text[:40]!r}... is longer than {_U16_MAX} bytes")
        self.parts.append(struct.pack("<H", len(b)) + b)

    def long_string(self, text: str) -> None:
        b = text.encode("utf-8")
        self.parts.append(struct.pack("<I", len(b)) + b)

    def array(self, values: np.ndarray, dtype: str) -> None:
        self.parts.append(np.ascontiguousarray(values, dtype=dtype).tobytes())

    def bytes(self) -> bytes:
        return b"".join(self.parts)


class _Reader:
    def __init__(self, buf: memoryview, pos: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, pos, end

    def take(self, n: int) -> memoryview:
        if self.pos + n > self.end:
            raise WeightImageError(
                "graph section is malformed (a record runs past the end of its section); "
                "the image is corrupt or was written by a different tool: re-export it"
            )
        v = self.buf[self.pos : self.pos + n]
        self.pos += n
        return v

    def s(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self.take(fmt.size))

    def string(self) -> str:
        (n,) = struct.unpack("<H", self.take(2))
        return bytes(self.take(n)).decode("utf-8")

    def long_string(self) -> str:
        (n,) = struct.unpack("<I", self.take(4))
        return bytes(self.take(n)).decode("utf-8")

    def array(self, n: int, dtype: str) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self.take(n * dt.itemsize), dtype=dt).astype(np.int64)


def _check_int_range(layer: str, what: str, values: Any, lo: int, hi: int, fix: str) -> None:
    arr = np.asarray(values, dtype=object).reshape(-1)
    bad = [i for i, v in enumerate(arr.tolist()) if not (lo <= int(v) <= hi)]
    if bad:
        raise WeightImageError(
            f"layer {layer!r}: {what} {[int(arr[i]) for i in bad[:4]]} (index {bad[:4]}) outside "
            f"the image field range [{lo}, {hi}]; {fix}"
        )


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


def _write_tensor(w: _Writer, t: TensorSpec) -> None:
    w.string(t.name)
    for name, v in (("zero_point", t.zero_point), ("lo", t.lo), ("hi", t.hi)):
        _check_int_range(t.name, f"tensor {name}", [v], _I32_MIN, _I32_MAX, "fix the converter")
    w.s(_TENSOR, t.channels, t.height, t.width, float(t.scale), t.zero_point, t.lo, t.hi)


def _read_tensor(r: _Reader) -> TensorSpec:
    name = r.string()
    c, h, wd, scale, zp, lo, hi = r.s(_TENSOR)
    return TensorSpec(name, c, h, wd, scale, zp, lo, hi)


# =============================================================================================
# Writing
# =============================================================================================
def _check_codes(op: ConvOp, config: AcceleratorConfig) -> None:
    """Refuse codes the configured hardware cannot hold, and 8-bit filters in 4-bit slots."""
    w = np.asarray(op.weight)
    bits = np.asarray(op.bits).astype(np.int64)
    if not np.all((bits == 4) | (bits == 8)):
        raise WeightImageError(f"layer {op.name!r}: filter widths must be 4 or 8")
    flat = w.reshape(w.shape[0], -1)
    wmin = flat.min(axis=1, initial=0)
    wmax = flat.max(axis=1, initial=0)
    for b, lo, hi in ((4, config.w4_min, config.w4_max), (8, config.w8_min, config.w8_max)):
        sel = bits == b
        bad = np.nonzero(sel & ((wmin < lo) | (wmax > hi)))[0]
        if bad.size:
            c = int(bad[0])
            code = int(wmin[c]) if wmin[c] < lo else int(wmax[c])
            raise WeightImageError(
                f"layer {op.name!r}: out-of-range code {code} in {b}-bit filter at position {c} "
                f"(allowed [{lo}, {hi}] on this config; {bad.size} filter(s) affected); "
                "the converter produced a value the hardware cannot hold: re-quantize the model"
            )
    pos = np.arange(bits.shape[0])
    slot8 = (pos % config.tm) < config.n8_slots
    wrong = np.nonzero((bits == 8) & ~slot8)[0]
    if wrong.size:
        raise WeightImageError(
                f"layer {op.name!r}: 8-bit filter(s) at output position(s) {wrong[:8].tolist()}, "
                f"which are 4-bit slots on this config (the first {config.n8_slots} of every "
                f"{config.tm}); convert with to_integer(..., config) for this config so filters "
                "are reordered into the 8-bit slots"
            )


def _check_conv_params(op: ConvOp, config: AcceleratorConfig) -> None:
    c = op.out_channels
    for attr in ("bits", "mult", "offset", "shift"):
        if np.shape(getattr(op, attr)) != (c,):
            raise WeightImageError(
                f"layer {op.name!r}: {attr} needs {c} entries, not {np.shape(getattr(op, attr))}"
            )
    fix = "the converter must keep requantization parameters within the numeric contract"
    _check_int_range(op.name, "mult", op.mult, 0, (1 << MULT_BITS) - 1, fix)
    _check_int_range(op.name, "shift", op.shift, 0, SHIFT_MAX, fix)
    _check_int_range(op.name, "offset", op.offset, _I64_MIN, _I64_MAX, fix)
    _check_int_range(op.name, "lo/hi", [op.lo, op.hi, op.pad_code], _I32_MIN, _I32_MAX, fix)
    if op.res_mult is not None:
        if np.shape(op.res_mult) != (c,):
            raise WeightImageError(f"layer {op.name!r}: res_mult must have {c} entries")
        _check_int_range(op.name, "res_mult", op.res_mult, _I32_MIN, _I32_MAX, fix)
    if op.permutation is not None:
        perm = np.asarray(op.permutation)
        if perm.shape != (c,) or sorted(perm.tolist()) != list(range(c)):
            raise WeightImageError(
                f"layer {op.name!r}: permutation must be a permutation of 0..{c - 1}"
            )
    for name, v in (("stride", op.stride), ("padding", op.padding)):
        _check_int_range(op.name, name, list(v), 0, _U16_MAX, "use a smaller " + name)
    _check_int_range(op.name, "kernel", list(op.kernel), 1, _U16_MAX, "use a smaller kernel")
    # Worst-case accumulator must fit the hardware accumulator (acc_bits, signed).
    absw = np.abs(np.asarray(op.weight, dtype=np.int64)).reshape(c, -1).sum(axis=1)
    a_max = max(abs(int(op.pad_code)), 31)
    acc_bound = int(absw.max(initial=0)) * a_max
    if acc_bound > (1 << (config.acc_bits - 1)) - 1:
        raise WeightImageError(
            f"layer {op.name!r}: worst-case accumulator {acc_bound} exceeds the signed "
            f"{config.acc_bits}-bit accumulator of this config (max_fan_in={config.max_fan_in}); "
            "use a config with a larger max_fan_in"
        )
    try:
        check_requant_range(op.name, acc_bound, op.mult, op.offset, op.res_mult)
    except NumericsError as e:
        raise WeightImageError(str(e)) from None


def _meta_json(meta: dict) -> str:
    return json.dumps(meta or {}, default=_json_default, sort_keys=True)


def pack_image(
    graph: IntGraph, config: AcceleratorConfig, *, blocks: list[dict] | None = None
) -> bytes:
    """Serialise ``graph`` for ``config`` into image bytes (see module docstring).

    If ``blocks`` is a list, one dict per convolution is appended to it: ``name``,
    ``offset`` (absolute byte offset of its weight block in the file), ``bytes`` (unpadded
    length), ``lanes`` (input lanes per row: ``tn``, or 1 for depthwise).
    """
    for op in graph.conv_ops():  # config-specific checks first: they name the exact code
        _check_conv_params(op, config)
        _check_codes(op, config)
    try:
        graph.validate()
    except NumericsError as e:
        raise WeightImageError(f"cannot pack an invalid graph: {e}") from None
    tm, tn, n8 = config.tm, config.tn, config.n8_slots
    g = _Writer()
    g.string(graph.name)
    g.string(graph.output)
    _write_tensor(g, graph.input)
    for t in graph.tensors.values():
        _write_tensor(g, t)
    blobs: list[bytes] = []
    local: list[dict] = []
    woff = 0
    for op in graph.ops:
        if isinstance(op, ConvOp):
            layout = _layout(op)
            lanes = _lanes(layout, tn)
            if op.kind not in _KINDS:
                raise WeightImageError(
                    f"layer {op.name!r}: unknown conv kind {op.kind!r} (one of {_KINDS})"
                )
            blob = pack_conv_weights(op.weight, tm, n8, lanes)
            c_out, cpg, kh, kw = (int(v) for v in op.weight.shape)
            g.s(struct.Struct("<BB"), _OP_CONV, _KINDS.index(op.kind))
            for s in (op.name, op.input, op.output, op.residual or ""):
                g.string(s)
            g.s(
                _CONV, c_out, cpg, kh, kw, op.stride[0], op.stride[1], op.padding[0],
                op.padding[1], op.groups, op.pad_code, op.lo, op.hi,
                int(op.permutation is not None), int(op.residual is not None), layout, 0,
                woff, len(blob),
            )  # fmt: skip
            g.array(np.asarray(op.bits), "<u1")
            if op.permutation is not None:
                g.array(np.asarray(op.permutation), "<u4")
            g.array(np.asarray(op.mult), "<u2")
            g.array(np.asarray(op.offset), "<i8")
            g.array(np.asarray(op.shift), "<u1")
            if op.res_mult is not None:
                g.array(np.asarray(op.res_mult), "<i4")
            g.long_string(_meta_json(op.meta))
            padded = -len(blob) % WEIGHT_ALIGN
            local.append({"name": op.name, "offset": woff, "bytes": len(blob), "lanes": lanes})
            blobs.append(blob + b"\0" * padded)
            woff += len(blob) + padded
        elif isinstance(op, PoolOp):
            if op.mode not in _POOL_MODES:
                raise WeightImageError(f"pool {op.name!r}: mode must be 'max' or 'avg'")
            fix = "the converter must keep pool parameters within the numeric contract"
            _check_int_range(op.name, "mult", [op.mult], 0, _U16_MAX, fix)
            _check_int_range(op.name, "shift", [op.shift], 0, SHIFT_MAX, fix)
            _check_int_range(op.name, "offset", [op.offset], _I64_MIN, _I64_MAX, fix)
            _check_int_range(op.name, "lo/hi", [op.lo, op.hi, op.pad_code], _I32_MIN,
                             _I32_MAX, fix)  # fmt: skip
            k = op.kernel if op.kernel is not None else (0, 0)
            g.s(struct.Struct("<BB"), _OP_POOL, _POOL_MODES.index(op.mode))
            for s in (op.name, op.input, op.output):
                g.string(s)
            g.s(
                _POOL, int(op.kernel is None), k[0], k[1], op.stride[0], op.stride[1],
                op.padding[0], op.padding[1], op.pad_code, op.mult, op.offset, op.shift,
                op.lo, op.hi,
            )  # fmt: skip
        elif isinstance(op, AddOp):
            fix = "the converter must keep add parameters within the numeric contract"
            _check_int_range(op.name, "mult_a/mult_b", [op.mult_a, op.mult_b], _I32_MIN,
                             _I32_MAX, fix)  # fmt: skip
            _check_int_range(op.name, "shift", [op.shift], 0, SHIFT_MAX, fix)
            _check_int_range(op.name, "offset", [op.offset], _I64_MIN, _I64_MAX, fix)
            g.s(struct.Struct("<BB"), _OP_ADD, 0)
            for s in (op.name, op.a, op.b, op.output):
                g.string(s)
            g.s(_ADD, op.mult_a, op.mult_b, op.offset, op.shift, op.lo, op.hi)
        else:
            raise WeightImageError(f"unknown operation {op!r}")
    graph_bytes = g.bytes()
    cfg_bytes = config.to_json().encode("utf-8")
    head_len = HEADER_SIZE + len(cfg_bytes) + len(graph_bytes)
    gap = -head_len % WEIGHT_ALIGN
    weights_offset = head_len + gap
    weights = b"".join(blobs)
    file_length = weights_offset + len(weights) + 4
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION, HEADER_SIZE, 0, file_length,
        bytes.fromhex(config.config_hash()), len(cfg_bytes), len(graph_bytes),
        weights_offset, len(weights), len(graph.ops), len(graph.tensors), b"\0" * 8,
    )  # fmt: skip
    body = b"".join([header, cfg_bytes, graph_bytes, b"\0" * gap, weights])
    if blocks is not None:
        blocks.extend(dict(b, offset=b["offset"] + weights_offset) for b in local)
    return body + struct.pack("<I", zlib.crc32(body))


def write_image(
    path: str | os.PathLike,
    graph: IntGraph,
    config: AcceleratorConfig,
    *,
    blocks: list[dict] | None = None,
) -> str:
    """Pack ``graph`` for ``config`` and write it atomically to ``path``; return its SHA-256.

    The bytes go to a temporary file in the same directory, which is renamed over ``path``
    only when complete, so ``path`` never holds a half-written image. ``blocks``: as for
    :func:`pack_image`.
    """
    data = pack_image(graph, config, blocks=blocks)
    atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


# =============================================================================================
# Reading
# =============================================================================================
@dataclass
class ImageInfo:
    """Header fields of an image (after magic, version, length and CRC were verified)."""

    version: int
    file_length: int
    config_hash: str
    config: dict[str, Any]
    config_length: int
    graph_length: int
    n_ops: int
    n_tensors: int
    weights_offset: int
    weights_length: int
    crc32: int


def _describe(cfg: dict[str, Any], h: str) -> str:
    return (
        f"{h[:12]} (board {cfg.get('board', '?')}, tm={cfg.get('tm', '?')}, "
        f"tn={cfg.get('tn', '?')}, n8_slots={cfg.get('n8_slots', '?')})"
    )


def read_header(data: bytes | memoryview) -> ImageInfo:
    """Verify magic, version, length and CRC of ``data``; return its header fields."""
    buf = memoryview(data)
    n = len(buf)
    head = bytes(buf[: len(MAGIC)])
    if head != MAGIC[: len(head)]:
        raise WeightImageError(
            f"not a filmqnn weight image: bad magic {head!r} (expected {MAGIC!r}); "
            "pass the weights.bin written by `python -m filmqnn_quant export`"
        )
    if n < 10:
        raise WeightImageError(
            f"weight image truncated: expected at least {HEADER_SIZE} bytes, file has {n}"
        )
    (version,) = struct.unpack_from("<H", buf, 8)
    if version != FORMAT_VERSION:
        raise WeightImageError(
            f"unsupported weight-image version {version}: this filmqnn reads version "
            f"{FORMAT_VERSION}; re-export the model with this version of filmqnn"
        )
    if n < HEADER_SIZE:
        raise WeightImageError(
            f"weight image truncated: expected at least {HEADER_SIZE} bytes, file has {n}"
        )
    (_, _, hsize, flags, flen, chash, clen, glen, woff, wlen, n_ops, n_tensors, _res) = (
        _HEADER.unpack_from(buf, 0)
    )
    if flen != n:
        what = "truncated" if n < flen else "has trailing bytes"
        raise WeightImageError(
            f"weight image {what}: expected {flen} bytes (from its header), file has {n}; "
            "copy the file again or re-export it"
        )
    (stored_crc,) = struct.unpack_from("<I", buf, n - 4)
    crc = zlib.crc32(buf[: n - 4])
    if crc != stored_crc:
        raise WeightImageError(
            f"weight image corrupt: CRC-32 mismatch (stored 0x{stored_crc:08x}, computed "
            f"0x{crc:08x}); the file was damaged after export: copy it again or re-export it"
        )
    if (
        hsize != HEADER_SIZE
        or flags != 0
        or HEADER_SIZE + clen + glen > woff
        or woff + wlen + 4 != n
    ):
        raise WeightImageError(
            "weight image header is inconsistent (section sizes do not add up) although its "
            "CRC is valid: it was not written by this filmqnn; re-export it"
        )
    try:
        cfg = json.loads(bytes(buf[HEADER_SIZE : HEADER_SIZE + clen]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightImageError(f"weight image's embedded config is not valid JSON: {e}") from None
    return ImageInfo(
        version, flen, chash.hex(), cfg, clen, glen, n_ops, n_tensors, woff, wlen, crc
    )


def unpack_image(
    data: bytes | memoryview,
    config: AcceleratorConfig | None = None,
    *,
    blocks: list[dict] | None = None,
) -> tuple[IntGraph, dict[str, Any]]:
    """Parse image bytes back into an :class:`IntGraph` (see :func:`read_image`).

    ``blocks``: if a list, filled as by :func:`pack_image`.
    """
    info = read_header(data)
    buf = memoryview(data)
    try:
        embedded = AcceleratorConfig.from_dict(info.config)
    except (ConfigError, TypeError) as e:
        raise WeightImageError(f"weight image's embedded config cannot be used: {e}") from None
    if embedded.config_hash() != info.config_hash:
        raise WeightImageError(
            f"weight image's embedded config hashes to {embedded.config_hash()[:12]}, but its "
            f"header says {info.config_hash[:12]}: the image is inconsistent; re-export it"
        )
    if config is not None and config.config_hash() != info.config_hash:
        mine = config.config_hash()
        raise WeightImageError(
            f"image was packed for config {_describe(info.config, info.config_hash)}, this "
            f"accelerator is {_describe(config.to_dict(), mine)}; re-export with "
            f"`python -m filmqnn_quant export --board {config.board} ...` (or --config with this "
            "accelerator's config.json) so the weights are packed for this accelerator"
        )
    cfg = config if config is not None else embedded
    tm, tn, n8 = cfg.tm, cfg.tn, cfg.n8_slots
    gstart = HEADER_SIZE + info.config_length
    r = _Reader(buf, gstart, gstart + info.graph_length)
    wsec = buf[info.weights_offset : info.weights_offset + info.weights_length]
    name = r.string()
    output = r.string()
    inp = _read_tensor(r)
    tensors = {}
    for _ in range(info.n_tensors):
        t = _read_tensor(r)
        tensors[t.name] = t
    ops: list[Any] = []
    for _ in range(info.n_ops):
        op_type, sub = r.s(struct.Struct("<BB"))
        if op_type == _OP_CONV:
            if sub >= len(_KINDS):
                raise WeightImageError(f"unknown conv kind code {sub} in weight image")
            oname, oin, oout, ores = r.string(), r.string(), r.string(), r.string()
            (c_out, cpg, kh, kw, sh, sw, ph, pw, groups, pad_code, lo, hi, has_perm, has_res,
             layout, _z, woff, wlen) = r.s(_CONV)  # fmt: skip
            bits = r.array(c_out, "<u1")
            perm = r.array(c_out, "<u4") if has_perm else None
            mult = r.array(c_out, "<u2")
            offset = r.array(c_out, "<i8")
            shift = r.array(c_out, "<u1")
            res_mult = r.array(c_out, "<i4") if has_res else None
            meta = json.loads(r.long_string())
            lanes = _lanes(layout, tn)
            expect = packed_size(c_out, cpg, kh, kw, tm, n8, lanes)
            if wlen != expect or woff + wlen > len(wsec):
                raise WeightImageError(
                    f"layer {oname!r}: weight block of {wlen} bytes at {woff} does not match the "
                    f"{expect} bytes its shape needs on this config; re-export the image"
                )
            weight, pad_ok = unpack_conv_weights(
                wsec[woff : woff + wlen], (c_out, cpg, kh, kw), tm, n8, lanes
            )
            if blocks is not None:
                blocks.append(
                    {"name": oname, "offset": info.weights_offset + woff, "bytes": wlen,
                     "lanes": lanes}
                )  # fmt: skip
            if not pad_ok:
                raise WeightImageError(
                    f"layer {oname!r}: nonzero padding in the weight block (positions beyond "
                    "C_out / C_in must be zero); the image is malformed: re-export it"
                )
            op = ConvOp(
                name=oname, input=oin, output=oout, weight=weight, bits=bits, mult=mult,
                offset=offset, shift=shift, stride=(sh, sw), padding=(ph, pw), groups=groups,
                pad_code=pad_code, lo=lo, hi=hi, residual=ores or None, res_mult=res_mult,
                kind=_KINDS[sub], permutation=perm, meta=meta,
            )  # fmt: skip
            try:
                _check_codes(op, cfg)
            except WeightImageError as e:
                raise WeightImageError(f"weight image holds an invalid value: {e}") from None
            ops.append(op)
        elif op_type == _OP_POOL:
            if sub >= len(_POOL_MODES):
                raise WeightImageError(f"unknown pool mode code {sub} in weight image")
            oname, oin, oout = r.string(), r.string(), r.string()
            (is_global, kh, kw, sh, sw, ph, pw, pad_code, mult, offset, shift, lo, hi) = r.s(
                _POOL
            )
            ops.append(
                PoolOp(
                    name=oname, input=oin, output=oout, mode=_POOL_MODES[sub],
                    kernel=None if is_global else (kh, kw), stride=(sh, sw), padding=(ph, pw),
                    pad_code=pad_code, mult=mult, offset=offset, shift=shift, lo=lo, hi=hi,
                )  # fmt: skip
            )
        elif op_type == _OP_ADD:
            oname, a, b, oout = r.string(), r.string(), r.string(), r.string()
            mult_a, mult_b, offset, shift, lo, hi = r.s(_ADD)
            ops.append(AddOp(oname, a, b, oout, mult_a, mult_b, offset, shift, lo, hi))
        else:
            raise WeightImageError(f"unknown operation type code {op_type} in weight image")
    if r.pos != r.end:
        raise WeightImageError("graph section has unread bytes; the image is malformed")
    return IntGraph(input=inp, ops=ops, output=output, tensors=tensors, name=name), info.config


def read_image(
    path: str | os.PathLike,
    config: AcceleratorConfig | None = None,
    *,
    blocks: list[dict] | None = None,
) -> tuple[IntGraph, dict[str, Any]]:
    """Read an image written by :func:`write_image`; return ``(graph, config_dict)``.

    Checks, in order: magic, version, length (expected vs actual), CRC-32, embedded config
    hash, ``config``'s hash (if given), then every record and every weight code against the
    config's ranges. Any failure raises :class:`WeightImageError` naming the problem.
    ``blocks``: if a list, filled as by :func:`pack_image`.
    """
    data = Path(path).read_bytes()
    return unpack_image(data, config, blocks=blocks)


def image_info(path: str | os.PathLike) -> ImageInfo:
    """Verified header fields of the image at ``path`` (magic, version, length, CRC checked)."""
    return read_header(Path(path).read_bytes())


# =============================================================================================
# Comparison
# =============================================================================================
def _arr_eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.array_equal(a.astype(np.int64), b.astype(np.int64)))


def graph_differences(a: IntGraph, b: IntGraph) -> list[str]:
    """Every difference between two graphs' integer content (empty list: identical)."""
    diffs: list[str] = []
    if a.name != b.name or a.output != b.output:
        diffs.append(f"name/output: {a.name}/{a.output} vs {b.name}/{b.output}")
    if a.input != b.input:
        diffs.append(f"input spec: {a.input} vs {b.input}")
    if a.tensors != b.tensors:
        diffs.append("tensor specs differ")
    if len(a.ops) != len(b.ops):
        return diffs + [f"op count {len(a.ops)} vs {len(b.ops)}"]
    for x, y in zip(a.ops, b.ops, strict=True):
        if type(x) is not type(y):
            diffs.append(f"op {x.name}: type {type(x).__name__} vs {type(y).__name__}")
            continue
        if isinstance(x, ConvOp):
            for attr in ("weight", "bits", "mult", "offset", "shift", "res_mult", "permutation"):
                if not _arr_eq(getattr(x, attr), getattr(y, attr)):
                    diffs.append(f"op {x.name}: {attr} differs")
            for attr in ("name", "input", "output", "groups", "pad_code", "lo", "hi",
                         "residual", "kind"):  # fmt: skip
                if getattr(x, attr) != getattr(y, attr):
                    diffs.append(f"op {x.name}: {attr} {getattr(x, attr)} vs {getattr(y, attr)}")
            for attr in ("stride", "padding"):
                if tuple(getattr(x, attr)) != tuple(getattr(y, attr)):
                    diffs.append(f"op {x.name}: {attr} differs")
        else:
            dx, dy = dict(vars(x)), dict(vars(y))
            for d in (dx, dy):
                for k in ("kernel", "stride", "padding"):
                    if d.get(k) is not None:
                        d[k] = tuple(d[k])
            if dx != dy:
                diffs.append(f"op {x.name}: {dx} vs {dy}")
    return diffs
