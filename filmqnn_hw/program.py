"""The layer program: a versioned binary list of layer descriptors the accelerator runs alone.

``docs/layer-program.md`` is the byte-exact description; this module is its only writer and
reader. It needs numpy, :mod:`filmqnn_hw.config`, :mod:`filmqnn_hw.cycles` (per-layer mode
choice) and :mod:`filmqnn_quant.image` (weight packing): no torch, no amaranth.

:func:`build_program` turns an :class:`~filmqnn_quant.intgraph.IntGraph` into a
:class:`LayerProgram`: a DDR memory map (program, weight and parameter blobs, activation
buffers reused where lifetimes allow, network input and output) plus one descriptor per
operation. After the host has written :meth:`LayerProgram.memory_image` (or the same regions
one by one) to DDR and the program address to the ``layers`` control register, one
``ap_start`` runs the whole network; the output is read back with :meth:`LayerProgram.read_output`.

Activation layout in DDR (``docs/architecture.md`` section 6), :func:`pack_activations`:
planes of ``G = act_pack`` channels; one ``5G``-bit word per pixel (channel ``p*G + g`` in bits
``5g .. 5g+4``); ``floor(axi_data_bits / 5G)`` words per AXI beat, little-endian; every image
row starts on a beat. Logits (the last layer, signed 16-bit) are stored as little-endian
int16 in ``C, H, W`` order instead.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from filmqnn_quant.image import pack_conv_weights
from filmqnn_quant.intgraph import AddOp, ConvOp, IntGraph, PoolOp, TensorSpec
from filmqnn_quant.numerics import NumericsError, check_requant_range

from .config import ACT_BITS, ACT_MAX, AcceleratorConfig, ConfigError
from .resources import PARAM_BITS

__all__ = [
    "MAGIC",
    "VERSION",
    "HEADER_SIZE",
    "DESC_WORDS",
    "DESC_SIZE",
    "PARAM_SIZE",
    "PARAM_DTYPE",
    "ALIGN",
    "OPS",
    "MODES",
    "ORDERS",
    "FIELDS",
    "FLAG_RELU",
    "FLAG_LAST",
    "FLAG_LOGITS",
    "FLAG_RESIDUAL",
    "FLAG_IN_ONCHIP",
    "FLAG_RES_ONCHIP",
    "FLAG_OUT_ONCHIP",
    "LAYOUT_ACT",
    "LAYOUT_I16",
    "ProgramError",
    "Region",
    "Descriptor",
    "LayerProgram",
    "build_program",
    "words_per_beat",
    "act_layout",
    "pack_activations",
    "unpack_activations",
    "pack_logits",
    "unpack_logits",
    "im2col",
]

#: First 8 bytes of every layer program.
MAGIC = b"FQNNPROG"
#: Bumped whenever any byte of the format changes meaning.
VERSION = 1
#: Fixed header size in bytes.
HEADER_SIZE = 64
#: Every descriptor is this many little-endian 64-bit words.
DESC_WORDS = 48
DESC_SIZE = DESC_WORDS * 8
#: Bytes of per-channel parameters (offset i64, mult u16, shift u8, bits u8, res_mult i32); the
#: cycle model charges the same (``resources.PARAM_BITS``).
PARAM_SIZE = PARAM_BITS // 8
#: numpy dtype of one per-channel parameter record (little-endian, PARAM_SIZE bytes).
PARAM_DTYPE = np.dtype([("offset", "<i8"), ("mult", "<u2"), ("shift", "u1"), ("bits", "u1"),
                        ("res_mult", "<i4")])
#: Every region of the memory map starts on a multiple of this many bytes (the widest AXI beat).
ALIGN = 64

#: Operation codes (descriptor word ``op``), index = code - 1.
OPS = ("conv", "depthwise", "linear", "maxpool", "avgpool", "gap", "add")
#: Compute modes of docs/architecture.md section 2 (descriptor word ``mode``), index = code.
MODES = ("normal", "kernel", "stem", "dw", "pool", "gap", "add")
#: Loop orders (descriptor word ``order``), index = code.
ORDERS = ("ws", "is")

FLAG_RELU = 1  # lo == output zero point (a ReLU clamp)
FLAG_LAST = 2  # last descriptor of the program
FLAG_LOGITS = 4  # output is signed 16-bit (LAYOUT_I16), the network's logits
FLAG_RESIDUAL = 8  # conv with a fused residual add (res_* words valid)
FLAG_IN_ONCHIP = 16  # the cycle model keeps the input in the feature-map store (hint)
FLAG_RES_ONCHIP = 32  # ... the residual / second operand
FLAG_OUT_ONCHIP = 64  # ... the output

LAYOUT_ACT = 0  # packed 5-bit activations (planes of G channels)
LAYOUT_I16 = 1  # little-endian int16, C x H x W, contiguous

#: Descriptor word names, in word order (docs/layer-program.md has the meaning of each).
FIELDS = (
    "op", "mode", "px", "order", "flags",
    "in_c", "in_h", "in_w", "out_c", "out_h", "out_w",
    "kh", "kw", "stride_h", "stride_w", "pad_h", "pad_w", "groups",
    "pad_code", "lo", "hi",
    "in_addr", "in_row_bytes", "in_plane_bytes",
    "res_addr", "res_row_bytes", "res_plane_bytes",
    "out_addr", "out_layout", "out_row_bytes", "out_plane_bytes",
    "w_addr", "w_bytes", "w_lanes", "w_chunks", "w_rows",
    "p_addr", "p_bytes",
    "mult", "mult_b", "offset", "shift",
    "stem_addr", "stem_c", "index", "stem_w_addr", "stem_w_chunks",
)  # fmt: skip
assert len(FIELDS) <= DESC_WORDS
_SIGNED = {"pad_code", "lo", "hi", "mult", "mult_b", "offset"}

# magic, version, header_size, desc_size, n_layers, total_length, flags, config hash[16],
# mem_bytes, input_addr, output_addr
_HEADER = struct.Struct("<8sHHHHII16sQQQ")
assert _HEADER.size == HEADER_SIZE
HEADER_FLAG_CYCLE_MODEL = 1  # modes/px/order came from filmqnn_hw.cycles.network_cycles


class ProgramError(ValueError):
    """A layer program that cannot be built or read. The message says what to do."""


def _align(n: int, a: int = ALIGN) -> int:
    return -(-n // a) * a


# =============================================================================================
# Activation layout
# =============================================================================================
def words_per_beat(config: AcceleratorConfig) -> int:
    """Packed activation words (``5 G`` bits each) per AXI beat."""
    return config.axi_data_bits // config.act_word_bits


def act_layout(config: AcceleratorConfig, channels: int, height: int, width: int):
    """``(row_bytes, plane_bytes, total_bytes)`` of a tensor in the packed DDR layout."""
    beat = config.axi_data_bits // 8
    row = math.ceil(width / words_per_beat(config)) * beat
    plane = height * row
    return row, plane, math.ceil(channels / config.act_pack) * plane


def _as_chw(codes: np.ndarray) -> np.ndarray:
    a = np.asarray(codes)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ProgramError(f"one frame at a time: expected (1, C, H, W), not {a.shape}")
        a = a[0]
    if a.ndim != 3:
        raise ProgramError(f"activations must be (C, H, W) or (1, C, H, W), not {a.shape}")
    return a


def pack_activations(codes: np.ndarray, config: AcceleratorConfig) -> bytes:
    """Pack 5-bit codes ``(C, H, W)`` (or ``(1, C, H, W)``) into the DDR activation layout.

    Raises :class:`ProgramError` for codes outside 0..31 (never truncates).
    """
    a = _as_chw(codes)
    if a.size and (a.min() < 0 or a.max() > ACT_MAX):
        raise ProgramError(
            f"activation codes must be in [0, {ACT_MAX}], got [{a.min()}, {a.max()}]"
        )
    c, h, w = a.shape
    g, wpb, axi = config.act_pack, words_per_beat(config), config.axi_data_bits
    planes = math.ceil(c / g)
    nb = math.ceil(w / wpb)
    full = np.zeros((planes * g, h, nb * wpb), dtype=np.uint8)
    full[:c, :, :w] = a
    # (P, G, H, X) -> (P, H, X, G) -> bits (P, H, X, G, 5), little-endian within each code
    v = full.reshape(planes, g, h, nb * wpb).transpose(0, 2, 3, 1)
    bits = (v[..., None] >> np.arange(ACT_BITS, dtype=np.uint8)) & 1
    bits = bits.reshape(planes, h, nb, wpb * g * ACT_BITS)
    pad = axi - bits.shape[-1]
    if pad:
        bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (pad,), np.uint8)], axis=-1)
    return np.packbits(bits, axis=-1, bitorder="little").tobytes()


def unpack_activations(
    data: bytes | memoryview, shape: tuple[int, int, int], config: AcceleratorConfig
) -> np.ndarray:
    """Inverse of :func:`pack_activations`: codes ``(C, H, W)`` int64 from the packed bytes."""
    c, h, w = shape
    _, _, total = act_layout(config, c, h, w)
    buf = np.frombuffer(bytes(data[:total]), dtype=np.uint8)
    if buf.size != total:
        raise ProgramError(f"packed {shape} tensor needs {total} bytes, got {buf.size}")
    g, wpb, axi = config.act_pack, words_per_beat(config), config.axi_data_bits
    planes, nb = math.ceil(c / g), math.ceil(w / wpb)
    bits = np.unpackbits(buf.reshape(planes, h, nb, axi // 8), axis=-1, bitorder="little")
    bits = bits[..., : wpb * g * ACT_BITS].reshape(planes, h, nb * wpb, g, ACT_BITS)
    v = (bits.astype(np.int64) << np.arange(ACT_BITS)).sum(axis=-1)  # (P, H, X, G)
    v = v.transpose(0, 3, 1, 2).reshape(planes * g, h, nb * wpb)
    return np.ascontiguousarray(v[:c, :, :w])


def pack_logits(values: np.ndarray) -> bytes:
    """Signed 16-bit outputs ``(C, H, W)`` as little-endian int16 (LAYOUT_I16)."""
    a = _as_chw(values)
    if a.size and (a.min() < -(1 << 15) or a.max() >= 1 << 15):
        raise ProgramError("logits must fit signed 16 bits")
    return a.astype("<i2").tobytes()


def unpack_logits(data: bytes | memoryview, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`pack_logits`."""
    n = int(np.prod(shape)) * 2
    return np.frombuffer(bytes(data[:n]), dtype="<i2").astype(np.int64).reshape(shape)


def im2col(codes: np.ndarray, op: ConvOp) -> np.ndarray:
    """The stem-mode input of ``op``: ``(kh kw C, Ho, Wo)`` codes, channel ``(ky kw + kx) C + c``.

    Padded positions hold ``op.pad_code``. The RTL's stem mode reads this tensor (written by
    the host with :meth:`LayerProgram.memory_image`); the HLS kernel reads the plain input.
    """
    a = _as_chw(codes).astype(np.int64)
    c, h, w = a.shape
    (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding
    ap = np.pad(a, ((0, 0), (ph, ph), (pw, pw)), constant_values=op.pad_code)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.empty((kh * kw * c, ho, wo), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            j = (ky * kw + kx) * c
            ye, xe = ky + sh * (ho - 1) + 1, kx + sw * (wo - 1) + 1
            out[j : j + c] = ap[:, ky:ye:sh, kx:xe:sw]
    return out


# =============================================================================================
# Program objects
# =============================================================================================
@dataclass
class Region:
    """One region of the DDR memory map: byte ``addr`` and ``size``, what it holds."""

    name: str
    kind: str  # "program", "weights", "params", "activation", "input", "output", "stem"
    addr: int
    size: int


@dataclass
class Descriptor:
    """One layer: the words of ``FIELDS`` (unnamed words are 0) plus the op's name."""

    name: str
    words: dict[str, int]

    def __getitem__(self, key: str) -> int:
        return self.words.get(key, 0)

    @property
    def op(self) -> str:
        return OPS[self["op"] - 1]

    @property
    def mode(self) -> str:
        return MODES[self["mode"]]

    @property
    def order(self) -> str:
        return ORDERS[self["order"]]

    def to_bytes(self) -> bytes:
        vals = []
        for f in FIELDS:
            v = int(self.words.get(f, 0))
            lo, hi = ((-(1 << 63), (1 << 63) - 1) if f in _SIGNED else (0, (1 << 64) - 1))
            if not lo <= v <= hi:
                raise ProgramError(f"layer {self.name!r}: descriptor field {f}={v} out of range")
            vals.append(v & ((1 << 64) - 1))
        vals += [0] * (DESC_WORDS - len(vals))
        return struct.pack(f"<{DESC_WORDS}Q", *vals)

    @classmethod
    def from_bytes(cls, b: bytes, name: str = "") -> Descriptor:
        vals = struct.unpack(f"<{DESC_WORDS}Q", b)
        words = {}
        for f, v in zip(FIELDS, vals, strict=False):
            if f in _SIGNED and v >= 1 << 63:
                v -= 1 << 64
            words[f] = v
        return cls(name, words)


@dataclass
class LayerProgram:
    """A whole network for one accelerator: memory map, descriptors and the data blobs.

    ``base`` is the byte address of the program (the value for the ``layers`` register);
    ``blobs`` maps a DDR address to constant bytes (weights and parameters) that the host
    writes once. ``tensors`` maps tensor names to their :class:`Region` (for debugging with
    ``reuse=False``, every tensor keeps its own region).
    """

    config: AcceleratorConfig
    descriptors: list[Descriptor]
    regions: list[Region]
    blobs: dict[int, bytes]
    base: int
    mem_bytes: int
    input_spec: TensorSpec
    output_spec: TensorSpec
    input_addr: int
    output_addr: int
    output_logits: bool
    tensors: dict[str, Region] = field(default_factory=dict)
    shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    stem: tuple[int, ConvOp] | None = None  # (address, first conv) when layer 0 is stem mode
    from_cycle_model: bool = False

    # -- bytes -----------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The program as it sits in DDR at ``base``: header, descriptors, CRC-32."""
        n = len(self.descriptors)
        total = HEADER_SIZE + n * DESC_SIZE + 4
        head = _HEADER.pack(
            MAGIC, VERSION, HEADER_SIZE, DESC_SIZE, n, total,
            HEADER_FLAG_CYCLE_MODEL if self.from_cycle_model else 0,
            bytes.fromhex(self.config.config_hash())[:16], self.mem_bytes, self.input_addr,
            self.output_addr,
        )  # fmt: skip
        body = head + b"".join(d.to_bytes() for d in self.descriptors)
        return body + struct.pack("<I", zlib.crc32(body))

    @staticmethod
    def parse(data: bytes | memoryview, config: AcceleratorConfig | None = None):
        """Verify and decode program bytes; return ``(header dict, [Descriptor])``.

        Raises :class:`ProgramError` for a bad magic, version, length or CRC, and (with
        ``config``) for a program built for another configuration.
        """
        buf = bytes(data)
        if buf[:8] != MAGIC[: len(buf[:8])] or len(buf) < 8:
            raise ProgramError(
                f"not a filmqnn layer program: bad magic {buf[:8]!r} (expected {MAGIC!r})"
            )
        if len(buf) < HEADER_SIZE:
            raise ProgramError(
                f"layer program truncated: expected at least {HEADER_SIZE} bytes, got {len(buf)}"
            )
        (magic, version, hsize, dsize, n, total, flags, chash, mem, in_a, out_a) = (
            _HEADER.unpack_from(buf, 0)
        )
        if version != VERSION:
            raise ProgramError(
                f"unsupported layer-program version {version}: this filmqnn reads version "
                f"{VERSION}; rebuild the program with this version (build_program)"
            )
        if hsize != HEADER_SIZE or dsize != DESC_SIZE or total != HEADER_SIZE + n * DESC_SIZE + 4:
            raise ProgramError(
                "layer program header is inconsistent (header/descriptor sizes or total length "
                "do not add up); the program is corrupt: rebuild it"
            )
        if len(buf) < total:
            raise ProgramError(
                f"layer program truncated: expected {total} bytes (from its header), got {len(buf)}"
            )
        if len(buf) > total:
            raise ProgramError(
                f"layer program has trailing bytes: expected {total} bytes, got {len(buf)}"
            )
        (crc,) = struct.unpack_from("<I", buf, total - 4)
        calc = zlib.crc32(buf[: total - 4])
        if crc != calc:
            raise ProgramError(
                f"layer program corrupt: CRC-32 mismatch (stored 0x{crc:08x}, computed "
                f"0x{calc:08x}); rewrite it to DDR or rebuild it"
            )
        if config is not None and chash != bytes.fromhex(config.config_hash())[:16]:
            raise ProgramError(
                f"layer program was built for config {chash.hex()[:12]}, this accelerator is "
                f"{config.config_hash()[:12]} (board {config.board}, tm={config.tm}, "
                f"tn={config.tn}); rebuild it with build_program(graph, this_config)"
            )
        descs = [
            Descriptor.from_bytes(buf[HEADER_SIZE + i * DESC_SIZE :][:DESC_SIZE]) for i in range(n)
        ]
        head = {"n_layers": n, "total_length": total, "flags": flags, "config_hash": chash.hex(),
                "mem_bytes": mem, "input_addr": in_a, "output_addr": out_a}
        return head, descs

    @classmethod
    def from_bytes(
        cls, data: bytes | memoryview, config: AcceleratorConfig
    ) -> tuple[dict, list[Descriptor]]:
        """Read a program written by :meth:`to_bytes` for ``config`` (see :meth:`parse`)."""
        return cls.parse(data, config)

    # -- host side -------------------------------------------------------------------------------
    def input_bytes(self, codes: np.ndarray) -> dict[int, bytes]:
        """DDR writes (address -> bytes) for one input frame (plus its im2col in stem mode)."""
        a = _as_chw(codes)
        if a.shape != self.input_spec.shape:
            raise ProgramError(
                f"input must have shape {self.input_spec.shape}, not {a.shape}"
            )
        out = {self.input_addr: pack_activations(a, self.config)}
        if self.stem is not None:
            out[self.stem[0]] = pack_activations(im2col(a, self.stem[1]), self.config)
        return out

    def memory_image(self, codes: np.ndarray | None = None) -> bytearray:
        """The whole DDR span ``[0, mem_bytes)``: program, weights, params (and an input)."""
        mem = bytearray(self.mem_bytes)
        prog = self.to_bytes()
        mem[self.base : self.base + len(prog)] = prog
        writes = dict(self.blobs)
        if codes is not None:
            writes.update(self.input_bytes(codes))
        for addr, b in writes.items():
            mem[addr : addr + len(b)] = b
        return mem

    def read_tensor(self, mem: bytes | memoryview, name: str) -> np.ndarray:
        """Decode tensor ``name`` from a DDR image (only meaningful while it is live)."""
        reg, shape = self.tensors[name], self.shapes[name]
        data = memoryview(mem)[reg.addr : reg.addr + reg.size]
        if name == self.output_spec.name and self.output_logits:
            return unpack_logits(data, shape)
        return unpack_activations(data, shape, self.config)

    def read_output(self, mem: bytes | memoryview) -> np.ndarray:
        """The network output ``(1, C, H, W)`` from a DDR image after a run."""
        return self.read_tensor(mem, self.output_spec.name)[None]


# =============================================================================================
# Building
# =============================================================================================
def _plan_modes(
    graph: IntGraph, config: AcceleratorConfig
) -> tuple[list[tuple[str, int, str, dict[str, bool]]], bool]:
    """Per-op (mode, px, order, on_chip) from the cycle model, or by its rules if it cannot run.

    The cycle model needs the board's DDR bandwidth (``ddr_bytes_per_cycle > 0``) and square
    strides/padding; without them the mode follows the same rules (docs/architecture.md
    section 2) with ``px = 1`` and order ``ws``.
    """
    from .cycles import STEM_MAX_CH, network_cycles, plan_fm_cache
    from .networks import NetworkError, from_intgraph

    try:
        net = from_intgraph(graph)
        nc = network_cycles(config, net)
        on_chip = plan_fm_cache(config, net)
        out = []
        for op, lc in zip(graph.ops, nc.layers, strict=True):
            ins = ([op.a, op.b] if isinstance(op, AddOp)
                   else [op.input, getattr(op, "residual", None)])
            oc = {"input": ins[0] in on_chip and lc.mode != "stem",
                  "residual": ins[1] in on_chip if ins[1] else False,
                  "output": op.output in on_chip}
            out.append((lc.mode, lc.px, lc.order, oc))
        return out, True
    except (ConfigError, NetworkError):
        pass
    out = []
    for i, op in enumerate(graph.ops):
        if isinstance(op, ConvOp):
            if op.groups != 1:
                mode = "dw"
            elif (i == 0 and op.input == graph.input.name and op.in_channels <= STEM_MAX_CH
                  and op.kernel[0] * op.kernel[1] > 1):
                mode = "stem"
            elif (config.kernel_packing and op.stride == (1, 1) and op.kernel[1] >= 3
                  and config.tn >= 4 and op.kind != "linear"):
                mode = "kernel"
            else:
                mode = "normal"
        elif isinstance(op, PoolOp):
            mode = "gap" if op.kernel is None else "pool"
        else:
            mode = "add"
        out.append((mode, 1, "ws", {"input": False, "residual": False, "output": False}))
    return out, False


class _Allocator:
    """First-fit allocator over ``[start, inf)`` with ALIGN-aligned blocks."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.used: list[tuple[int, int]] = []  # (addr, size), sorted
        self.end = start

    def alloc(self, size: int) -> int:
        size = _align(max(size, 1))
        addr = self.start
        for a, s in self.used:
            if addr + size <= a:
                break
            addr = max(addr, a + s)
        self.used.append((addr, size))
        self.used.sort()
        self.end = max(self.end, addr + size)
        return addr

    def free(self, addr: int) -> None:
        self.used = [(a, s) for a, s in self.used if a != addr]


def _params_blob(op: ConvOp) -> bytes:
    c = op.out_channels
    res = np.zeros(c, dtype=np.int64) if op.res_mult is None else np.asarray(op.res_mult, np.int64)
    mult = np.asarray(op.mult, dtype=np.int64)
    shift = np.asarray(op.shift, dtype=np.int64)
    for what, v, lo, hi in (("mult", mult, 0, 0xFFFF), ("shift", shift, 0, 63),
                            ("res_mult", res, -(1 << 31), (1 << 31) - 1)):
        if v.size and (v.min() < lo or v.max() > hi):
            raise ProgramError(
                f"layer {op.name!r}: {what} outside [{lo}, {hi}] (the numeric contract keeps "
                "it smaller); re-convert the model"
            )
    rec = np.zeros(c, dtype=PARAM_DTYPE)
    rec["offset"] = np.asarray(op.offset, dtype=np.int64)
    rec["mult"] = mult
    rec["res_mult"] = res
    rec["shift"] = shift
    rec["bits"] = np.asarray(op.bits, dtype=np.int64)
    assert rec.itemsize == PARAM_SIZE
    return rec.tobytes()


def _check_ranges(op: ConvOp | PoolOp | AddOp, config: AcceleratorConfig, window: int = 1) -> None:
    """Refuse an op whose worst case overflows the accumulator or the 48-bit ``y``."""
    try:
        if isinstance(op, ConvOp):
            absw = np.abs(np.asarray(op.weight, dtype=np.int64)).reshape(op.out_channels, -1)
            bound = int(absw.sum(axis=1).max(initial=0)) * max(abs(int(op.pad_code)), ACT_MAX)
            if bound > (1 << (config.acc_bits - 1)) - 1:
                raise ProgramError(
                    f"layer {op.name!r}: worst-case accumulator {bound} exceeds the signed "
                    f"{config.acc_bits}-bit accumulator (max_fan_in={config.max_fan_in}); use a "
                    "config with a larger max_fan_in"
                )
            check_requant_range(op.name, bound, op.mult, op.offset, op.res_mult)
        elif isinstance(op, PoolOp):
            a = max(abs(int(op.pad_code)), ACT_MAX)
            check_requant_range(op.name, a * window, [op.mult], [op.offset])
        else:
            check_requant_range(op.name, ACT_MAX, [abs(op.mult_a)], [op.offset],
                                [abs(op.mult_b)])
    except NumericsError as e:
        raise ProgramError(str(e)) from None


def build_program(
    graph: IntGraph, config: AcceleratorConfig, *, base: int = 0, reuse: bool = True
) -> LayerProgram:
    """Plan the DDR memory map of ``graph`` on ``config`` and write one descriptor per op.

    Memory map from ``base`` (every region ALIGN-aligned): program, then per convolution its
    weight block (weight-image layout, :func:`filmqnn_quant.image.pack_conv_weights`) and its
    parameter block, then the network input, the stem im2col input (stem mode only), the
    network output, then activation buffers. With ``reuse`` a buffer is recycled once its
    last reader has run; ``reuse=False`` gives every tensor its own region (for debugging).

    Raises :class:`ProgramError` naming the op for anything the accelerator cannot run:
    grouped convolutions other than depthwise, a signed 16-bit output that another op reads,
    tensors of the wrong shape, or an unknown op.
    """
    graph.validate()
    tensors = dict(graph.tensors)
    tensors[graph.input.name] = graph.input
    shapes = {n: t.shape for n, t in tensors.items()}
    for op in graph.ops:
        if not isinstance(op, (ConvOp, PoolOp, AddOp)):
            raise ProgramError(
                f"op {getattr(op, 'name', op)!r} of type {type(op).__name__} is not supported "
                "by the layer program (conv, depthwise, linear, pool, add only)"
            )
        if op.output not in shapes:
            raise ProgramError(f"op {op.name!r}: output tensor {op.output!r} has no TensorSpec")
    last_read: dict[str, int] = {}
    for i, op in enumerate(graph.ops):
        srcs = [op.a, op.b] if isinstance(op, AddOp) else [op.input]
        if isinstance(op, ConvOp) and op.residual:
            srcs.append(op.residual)
        for s in srcs:
            last_read[s] = i
    modes, from_model = _plan_modes(graph, config)

    n = len(graph.ops)
    prog_size = HEADER_SIZE + n * DESC_SIZE + 4
    alloc = _Allocator(base)
    alloc.alloc(prog_size)
    regions = [Region("program", "program", base, prog_size)]
    blobs: dict[int, bytes] = {}
    wpar: dict[str, tuple[int, int, int, int, int, int, int]] = {}
    stem_w = (0, 0)  # (address, chunks) of the stem-mode weights
    for op in graph.ops:
        if not isinstance(op, ConvOp):
            continue
        cpg = int(op.weight.shape[1])
        if op.groups == 1:
            lanes = config.tn
        elif cpg == 1 and op.groups == op.in_channels:
            lanes = 1
        else:
            raise ProgramError(
                f"layer {op.name!r}: grouped convolution with groups={op.groups} is not supported "
                "(only dense, groups=1, and depthwise, groups=C_in)"
            )
        _check_ranges(op, config)
        wb = pack_conv_weights(op.weight, config.tm, config.n8_slots, lanes)
        pb = _params_blob(op)
        wa = alloc.alloc(len(wb))
        pa = alloc.alloc(len(pb))
        blobs[wa], blobs[pa] = wb, pb
        regions += [Region(op.name, "weights", wa, len(wb)), Region(op.name, "params", pa, len(pb))]
        chunks = math.ceil(cpg / lanes)
        rows = config.n8_slots + (config.tm - config.n8_slots + 1) // 2
        wpar[op.name] = (wa, len(wb), lanes, chunks, rows, pa, len(pb))
        if op is graph.ops[0] and modes and modes[0][0] == "stem":
            # the same filters as a 1x1 conv over the im2col input (channel (ky kw + kx) C + c),
            # for an accelerator that runs the stem as that conv (the RTL; the HLS kernel
            # reads the plain input and the weights above)
            oc, c_in, kh_, kw_ = (int(d) for d in op.weight.shape)
            w1 = np.ascontiguousarray(
                np.asarray(op.weight).transpose(0, 2, 3, 1).reshape(oc, kh_ * kw_ * c_in, 1, 1))
            swb = pack_conv_weights(w1, config.tm, config.n8_slots, config.tn)
            swa = alloc.alloc(len(swb))
            blobs[swa] = swb
            regions.append(Region(op.name + ".stem", "weights", swa, len(swb)))
            stem_w = (swa, math.ceil(kh_ * kw_ * c_in / config.tn))

    out_name = graph.output
    out_spec = tensors[out_name]
    logits = out_spec.lo < 0 or out_spec.hi > ACT_MAX

    def tensor_size(name: str) -> int:
        c, h, w = shapes[name]
        if name == out_name and logits:
            return c * h * w * 2
        return act_layout(config, c, h, w)[2]

    treg: dict[str, Region] = {}
    a = alloc.alloc(tensor_size(graph.input.name))
    treg[graph.input.name] = Region(graph.input.name, "input", a, tensor_size(graph.input.name))
    stem = None
    if modes and modes[0][0] == "stem":
        op0 = graph.ops[0]
        assert isinstance(op0, ConvOp)
        kh, kw = op0.kernel
        _, ho, wo = shapes[op0.output]
        sc = op0.in_channels * kh * kw
        size = act_layout(config, sc, ho, wo)[2]
        sa = alloc.alloc(size)
        regions.append(Region(op0.name + ".im2col", "stem", sa, size))
        stem = (sa, op0)
    a = alloc.alloc(tensor_size(out_name))
    treg[out_name] = Region(out_name, "output", a, tensor_size(out_name))
    pinned = {graph.input.name, out_name}

    descs: list[Descriptor] = []
    for i, op in enumerate(graph.ops):
        mode, px, order, onchip = modes[i]
        t_out = tensors[op.output]
        op_lo, op_hi = getattr(op, "lo", 0), getattr(op, "hi", 0)
        if op.output != out_name and (t_out.lo < 0 or t_out.hi > ACT_MAX
                                      or op_lo < 0 or op_hi > ACT_MAX):
            raise ProgramError(
                f"op {op.name!r}: output {op.output!r} is not a 5-bit activation but is not the "
                "network output; only the last layer may produce signed 16-bit logits"
            )
        if op.output not in treg:
            size = tensor_size(op.output)
            treg[op.output] = Region(op.output, "activation", alloc.alloc(size), size)
        w: dict[str, int] = {"mode": MODES.index(mode), "px": px, "order": ORDERS.index(order),
                             "index": i}
        ins = [op.a, op.b] if isinstance(op, AddOp) else [op.input]
        if ins[0] not in treg:
            raise ProgramError(f"op {op.name!r} reads {ins[0]!r}, which has no buffer")
        ic, ih, iw = shapes[ins[0]]
        oc_, oh, ow = shapes[op.output]
        is_out_logits = op.output == out_name and logits
        flags = (FLAG_LOGITS if is_out_logits else 0) | (FLAG_LAST if i == n - 1 else 0)
        flags |= (FLAG_IN_ONCHIP if onchip["input"] else 0) | (
            FLAG_RES_ONCHIP if onchip["residual"] else 0) | (
            FLAG_OUT_ONCHIP if onchip["output"] else 0)
        irow, iplane, _ = act_layout(config, ic, ih, iw)
        if is_out_logits:
            orow, oplane = ow * 2, oh * ow * 2
        else:
            orow, oplane, _ = act_layout(config, oc_, oh, ow)
        w.update(in_c=ic, in_h=ih, in_w=iw, out_c=oc_, out_h=oh, out_w=ow,
                 in_addr=treg[ins[0]].addr, in_row_bytes=irow, in_plane_bytes=iplane,
                 out_addr=treg[op.output].addr, out_layout=LAYOUT_I16 if is_out_logits else 0,
                 out_row_bytes=orow, out_plane_bytes=oplane)
        zp_out = tensors[op.output].zero_point
        if isinstance(op, ConvOp):
            kind = {"conv": "conv", "depthwise": "depthwise", "linear": "linear"}.get(op.kind)
            if kind is None:
                raise ProgramError(f"layer {op.name!r}: unknown conv kind {op.kind!r}")
            if op.groups != 1:
                kind = "depthwise"
            exp_h = (ih + 2 * op.padding[0] - op.kernel[0]) // op.stride[0] + 1
            exp_w = (iw + 2 * op.padding[1] - op.kernel[1]) // op.stride[1] + 1
            if ic != op.in_channels or oc_ != op.out_channels or (oh, ow) != (exp_h, exp_w):
                raise ProgramError(
                    f"layer {op.name!r}: tensor shapes {shapes[ins[0]]} -> {shapes[op.output]} do "
                    "not match the convolution's weights, stride and padding"
                )
            wa, wl, lanes, chunks, rows, pa, pl = wpar[op.name]
            w.update(op=OPS.index(kind) + 1, kh=op.kernel[0], kw=op.kernel[1],
                     stride_h=op.stride[0], stride_w=op.stride[1], pad_h=op.padding[0],
                     pad_w=op.padding[1], groups=op.groups, pad_code=op.pad_code, lo=op.lo,
                     hi=op.hi, w_addr=wa, w_bytes=wl, w_lanes=lanes, w_chunks=chunks, w_rows=rows,
                     p_addr=pa, p_bytes=pl)
            if op.lo == zp_out and not is_out_logits:
                flags |= FLAG_RELU
            if op.residual is not None:
                if shapes[op.residual] != shapes[op.output]:
                    raise ProgramError(
                        f"layer {op.name!r}: residual {op.residual!r} shape {shapes[op.residual]} "
                        f"differs from the output's {shapes[op.output]}"
                    )
                r = shapes[op.residual]
                rrow, rplane, _ = act_layout(config, *r)
                w.update(res_addr=treg[op.residual].addr, res_row_bytes=rrow,
                         res_plane_bytes=rplane)
                flags |= FLAG_RESIDUAL
            if i == 0 and stem is not None:
                w.update(stem_addr=stem[0], stem_c=op.in_channels * op.kernel[0] * op.kernel[1],
                         stem_w_addr=stem_w[0], stem_w_chunks=stem_w[1])
        elif isinstance(op, PoolOp):
            if oc_ != ic:
                raise ProgramError(f"pool {op.name!r}: output channels differ from input's")
            if op.kernel is None:
                kind, k, s, p = "gap", (ih, iw), (1, 1), (0, 0)
                if (oh, ow) != (1, 1):
                    raise ProgramError(f"pool {op.name!r}: global pooling output must be 1x1")
            else:
                kind = "maxpool" if op.mode == "max" else "avgpool"
                if op.mode not in ("max", "avg"):
                    raise ProgramError(f"pool {op.name!r}: unknown mode {op.mode!r}")
                k, s, p = op.kernel, op.stride, op.padding
            w.update(op=OPS.index(kind) + 1, kh=k[0], kw=k[1], stride_h=s[0], stride_w=s[1],
                     pad_h=p[0], pad_w=p[1], groups=ic, pad_code=op.pad_code, lo=op.lo, hi=op.hi,
                     mult=op.mult, offset=op.offset, shift=op.shift)
            if kind == "maxpool":
                w.update(lo=0, hi=ACT_MAX)  # max pooling keeps codes; lo/hi unused
        else:
            if shapes[op.a] != shapes[op.b] or shapes[op.a] != shapes[op.output]:
                raise ProgramError(f"add {op.name!r}: operands and output must have one shape")
            rrow, rplane, _ = act_layout(config, *shapes[op.b])
            w.update(op=OPS.index("add") + 1, kh=1, kw=1, stride_h=1, stride_w=1, groups=ic,
                     lo=op.lo, hi=op.hi, mult=op.mult_a, mult_b=op.mult_b, offset=op.offset,
                     shift=op.shift, res_addr=treg[op.b].addr, res_row_bytes=rrow,
                     res_plane_bytes=rplane)
            if op.lo == zp_out:
                flags |= FLAG_RELU
        if isinstance(op, (PoolOp, AddOp)):
            if not 0 <= w["shift"] <= 46 or not 0 <= w["mult"] < 1 << 31:
                raise ProgramError(f"op {op.name!r}: shift/mult outside the numeric contract")
            _check_ranges(op, config, w["kh"] * w["kw"])
        w["flags"] = flags
        descs.append(Descriptor(op.name, w))
        if reuse:
            for t, last in last_read.items():
                if last == i and t not in pinned and t in treg:
                    alloc.free(treg[t].addr)
    regions += list(treg.values())
    mem = _align(alloc.end)
    return LayerProgram(
        config=config, descriptors=descs, regions=regions, blobs=blobs, base=base, mem_bytes=mem,
        input_spec=graph.input, output_spec=out_spec, input_addr=treg[graph.input.name].addr,
        output_addr=treg[out_name].addr, output_logits=logits, tensors=treg, shapes=shapes,
        stem=stem, from_cycle_model=from_model,
    )
