"""The layer program: a versioned binary list of layer descriptors the accelerator runs alone.

``docs/layer-program.md`` is the byte-exact description; this module is its only writer and
reader. It needs numpy and the rest of the specification layer: no torch, no amaranth.

:func:`filmqnn_hw.compiler.program_builder.build_program` turns an
:class:`~filmqnn_hw.spec.intgraph.IntGraph` into a :class:`LayerProgram`: a DDR memory map
(program, weight and parameter blobs, activation
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

from filmqnn_hw.spec.config import ACT_BITS, ACT_MAX, AcceleratorConfig
from filmqnn_hw.spec.geometry import words_per_beat
from filmqnn_hw.spec.intgraph import ConvOp, TensorSpec

__all__ = [
    "MAGIC",
    "VERSION",
    "HEADER_SIZE",
    "DESC_WORDS",
    "DESC_SIZE",
    "PARAM_SIZE",
    "PARAM_DTYPE",
    "ALIGN",
    "align_up",
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
    "OP_CODES",
    "STATUS",
    "ST_OK",
    "ST_MAGIC",
    "ST_VERSION",
    "ST_CONFIG",
    "ST_OP",
    "ST_DESC",
    "ST_AXI",
    "ST_ALIGN",
    "ProgramError",
    "ProgramCorruptError",
    "Region",
    "Descriptor",
    "LayerProgram",
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
#: Bits of per-output-channel parameters in DDR: offset i64, mult u16, shift u8, bits u8,
#: res_mult i32 (:data:`PARAM_DTYPE`; res_mult needs up to ``numerics.RES_MULT_BITS`` = 31 bits).
PARAM_BITS = 128
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
HEADER_FLAG_CYCLE_MODEL = 1  # modes/px/order came from filmqnn_hw.models.cycles.network_cycles


#: Descriptor ``op`` code of each op name (``OPS[i]`` has code ``i + 1``; 0 is invalid).
OP_CODES = {name: i + 1 for i, name in enumerate(OPS)}

#: ``status`` register codes (low byte; bits 31..8 hold the layer index). The HLS kernel
#: reports codes up to ``ST_DESC``; the RTL all of them.
ST_OK, ST_MAGIC, ST_VERSION, ST_CONFIG, ST_OP, ST_DESC, ST_AXI, ST_ALIGN = range(8)
STATUS = {ST_OK: "ok", ST_MAGIC: "bad magic", ST_VERSION: "unsupported program version",
          ST_CONFIG: "config mismatch", ST_OP: "unknown op", ST_DESC: "unsupported descriptor",
          ST_AXI: "AXI error response", ST_ALIGN: "misaligned address"}


class ProgramError(ValueError):
    """A layer program that cannot be built or read. The message says what to do."""


class ProgramCorruptError(ProgramError):
    """Program bytes damaged after they were built: truncated, trailing bytes, header sizes that
    do not add up, or a CRC-32 mismatch. ``problem`` is the damage alone (no advice), for
    callers that name the file and say what to do themselves."""

    def __init__(self, problem: str, advice: str = "") -> None:
        super().__init__(f"{problem}; {advice}" if advice else problem)
        self.problem = problem


def align_up(n: int, a: int = ALIGN) -> int:
    return -(-n // a) * a


# =============================================================================================
# Activation layout
# =============================================================================================
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

        Raises :class:`ProgramError` for a bad magic or version and (with ``config``) for a
        program built for another configuration; its subclass :class:`ProgramCorruptError`
        for damaged bytes (truncated, trailing bytes, inconsistent header sizes, CRC-32).
        """
        buf = bytes(data)
        if buf[:8] != MAGIC[: len(buf[:8])] or len(buf) < 8:
            raise ProgramError(
                f"not a filmqnn layer program: bad magic {buf[:8]!r} (expected {MAGIC!r})"
            )
        if len(buf) < HEADER_SIZE:
            raise ProgramCorruptError(
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
            raise ProgramCorruptError(
                "layer program header is inconsistent (header/descriptor sizes or total length "
                "do not add up)",
                "the program is corrupt: rebuild it",
            )
        if len(buf) < total:
            raise ProgramCorruptError(
                f"layer program truncated: expected {total} bytes (from its header), got {len(buf)}"
            )
        if len(buf) > total:
            raise ProgramCorruptError(
                f"layer program has trailing bytes: expected {total} bytes, got {len(buf)}"
            )
        (crc,) = struct.unpack_from("<I", buf, total - 4)
        calc = zlib.crc32(buf[: total - 4])
        if crc != calc:
            raise ProgramCorruptError(
                f"layer program corrupt: CRC-32 mismatch (stored 0x{crc:08x}, computed "
                f"0x{calc:08x})",
                "rewrite it to DDR or rebuild it",
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
