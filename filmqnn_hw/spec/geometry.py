"""Every size and latency derived from an :class:`~filmqnn_hw.spec.config.AcceleratorConfig`.

Buffer depths, record widths, AXI port use, unit and pipeline latencies, the AXI4 rules and
the RTL's fixed window limits, in one place: the gateware, the models, the host's program
check (:func:`check_program`) and the tests read these functions; nothing re-derives them.
Pure Python (no amaranth).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from filmqnn_hw.spec.config import ACT_BITS, AcceleratorConfig, ConfigError, tree_stages

__all__ = [
    "PEMode",
    "beat_words",
    "words_per_beat",
    "tile_cols_fit_beats",
    "PAGE_BYTES",
    "MAX_BURST_BEATS",
    "DIM",
    "LEN_WIDTH",
    "IBUF_ROW_BANKS",
    "REQUANT_LATENCY",
    "PACKED_MUL_LATENCY",
    "packed_dot_latency",
    "lut_dot_latency",
    "divider_latency",
    "Engine",
    "engine_plan",
    "pe_latency",
    "half_slots",
    "input_slots",
    "record_rows",
    "record_bits",
    "KMAX",
    "SMAX",
    "DW_TAPS_MAX",
    "PMAX",
    "RtlGeometry",
    "RtlUnsupported",
    "geometry",
    "check_descriptors",
    "check_network",
    "check_program",
    "check_window",
    "RtlMemory",
    "rtl_memories",
    "weight_slicing",
    "weight_ports",
    "dw_taps_per_pair",
    "dw_group_width",
]

#: An AXI burst must not cross a 4 KiB address boundary.
PAGE_BYTES = 4096
#: Longest AXI4 INCR burst.
MAX_BURST_BEATS = 256
#: Bits of a tensor dimension in a descriptor (in_c, out_h, ...).
DIM = 16
#: Bits of an AXI transfer length in bytes (the DMA's command width).
LEN_WIDTH = 24
#: The input buffer is split into this many row-interleaved bank groups (3x3 windows for
#: depthwise/pooling read 3 rows at once).
IBUF_ROW_BANKS = 3
#: Cycles from a requantization unit's input to its output code.
REQUANT_LATENCY = 6


def beat_words(axi_data_bits: int, act_pack: int) -> int:
    """Packed activation words (``5 G`` bits each) per AXI beat: ``floor(axi / 5G)``."""
    return axi_data_bits // (ACT_BITS * act_pack)


def words_per_beat(config: AcceleratorConfig) -> int:
    """Packed activation words per AXI beat of ``config`` (:func:`beat_words`)."""
    return beat_words(config.axi_data_bits, config.act_pack)


def tile_cols_fit_beats(tc: int, act_pack: int, axi_data_bits: int) -> bool:
    """Output tiles of ``tc`` columns may share a beat: words are byte-aligned (``5G % 8 ==
    0``, stored with byte strobes) or ``tc`` is a multiple of the words per beat."""
    return (act_pack * ACT_BITS) % 8 == 0 or tc % beat_words(axi_data_bits, act_pack) == 0


def divider_latency(width: int) -> int:
    """Cycles of the constant divider (one quotient bit per stage) of a ``width``-bit
    dividend."""
    return width


#: Largest kernel / pooling window side the input buffer is sized for (ResNet stem 7x7,
#: global average pooling of a 7x7 map).
KMAX = 7
#: Largest stride.
SMAX = 2
#: Largest padding.
PMAX = 3
#: Most depthwise taps (of one kernel row) a pair computes at once: the 3x3 depthwise of
#: MobileNet-V2 in one pass per kernel row; wider kernels go in groups of three.
DW_TAPS_MAX = 3

class PEMode(enum.IntEnum):
    """Values of :attr:`PEArray.mode`."""

    DENSE = 0  #: lane m = sum_i w[m][i] x[i] over the tn slots
    DW = 1  #: lane m = sum_j w_dw[j][m] x_j[m] over the dw_taps taps of a kernel row (depthwise)
    UNIT = 2  #: lane m = x[m] (weight 1: pooling, residual add); 3 is reserved and acts as UNIT


def half_slots(config: AcceleratorConfig) -> int:
    """``H = ceil(tn / 2)``: input slots (multipliers per unit) handled per phase."""
    return math.ceil(config.tn / 2)


def input_slots(config: AcceleratorConfig) -> int:
    """``CB = max(tn, tm)``: slots of one input vector (tn channels, or tm lanes in dw/unit)."""
    return max(config.tn, config.tm)


def record_rows(config: AcceleratorConfig) -> int:
    """Rows of one weight tap record: ``n8`` int8 rows plus ``ceil(n4 / 2)`` nibble-pair rows."""
    return config.n8_slots + math.ceil(config.n4_slots / 2)


def record_bits(config: AcceleratorConfig) -> int:
    """Width of one dense tap record (``record_rows x tn`` bytes)."""
    return record_rows(config) * config.tn * 8


#: Cycles of the packed DSP multiplier inside a
#: :class:`~filmqnn_hw.gateware.arith.dot.PackedDotUnit`.
PACKED_MUL_LATENCY = 4


def packed_dot_latency(n: int) -> int:
    """Latency of a packed DSP dot unit with ``n`` multipliers: the multiplier, the adder
    tree's register stages and the accumulator."""
    return PACKED_MUL_LATENCY + tree_stages(n) + 1


def lut_dot_latency(n: int) -> int:
    """Latency of a LUT dot unit with ``n`` multipliers: the product register, the adder
    tree's register stages and the accumulator."""
    return 1 + tree_stages(n) + 1


def _unit_latency(kind: str, h: int) -> int:
    """Latency of the dot unit of engine ``kind`` with ``h`` multipliers (inputs to updated
    accumulator)."""
    return packed_dot_latency(h) if kind.endswith("_dsp") else lut_dot_latency(h)


def pe_latency(config: AcceleratorConfig) -> int:
    """Cycles from a phase-1 input cycle to ``valid_out`` of ``PEArray(config)`` (the
    slowest dot unit of its engine plan), without building the array."""
    h = half_slots(config)
    return max(_unit_latency(e.kind, h) for e in engine_plan(config))


@dataclass(frozen=True)
class Engine:
    """One dot unit of the array and the lanes it serves.

    ``kind`` is ``"w4_dsp"`` (one ``w4a5_filter`` :class:`PackedDotUnit` for the lane pair
    ``lanes = (a, b)``; ``b`` is ``None`` for the phantom partner of an odd count),
    ``"w8_dsp"`` (one ``w8a5`` :class:`PackedDotUnit`, ``lanes = (m,)``), ``"w4_lut"`` or
    ``"w8_lut"`` (two :class:`LutDotUnit`, one per pixel, ``lanes = (m,)``).
    """

    kind: str
    lanes: tuple[int | None, ...]


def engine_plan(config: AcceleratorConfig) -> tuple[Engine, ...]:
    """The engines of ``config``'s array, 8-bit lanes first (DSP, then LUT), then 4-bit."""
    n8 = config.n8_slots
    plan = [Engine("w8_dsp", (m,)) for m in range(config.w8_dsp_lanes)]
    plan += [Engine("w8_lut", (m,)) for m in range(config.w8_dsp_lanes, n8)]
    dsp4 = [n8 + j for j in range(config.w4_dsp_lanes)]
    for k in range(0, len(dsp4), 2):
        b = dsp4[k + 1] if k + 1 < len(dsp4) else None
        plan.append(Engine("w4_dsp", (dsp4[k], b)))
    plan += [Engine("w4_lut", (m,)) for m in range(n8 + config.w4_dsp_lanes, config.tm)]
    return tuple(plan)


class RtlUnsupported(ConfigError):
    """A configuration or layer the Amaranth accelerator cannot run. The message says why."""


@dataclass(frozen=True)
class RtlGeometry:
    """Buffer and record sizes of one generated accelerator."""

    tm: int
    tn: int
    g: int  # activations per packed word (act_pack)
    beat_bits: int
    wpb: int  # packed words per beat
    cb: int  # input-buffer slots (channels) per word: max(tn, tm)
    rows: int  # weight-record rows R = n8 + ceil(n4 / 2)
    rec_bytes: int  # dense tap record R * tn bytes
    dw_rec_bytes: int  # depthwise tap record R bytes
    tr_in: int  # input-buffer rows  (tr - 1) * SMAX + KMAX
    tc_in: int  # input-buffer columns
    pairs_per_row: int  # ceil(tc / 2)
    acc_depth: int  # tr * pairs_per_row
    out_planes: int  # tm / G planes per output-channel group
    in_planes: int  # tn / G planes per input chunk
    obuf_beats: int  # beats per output-tile row (worst alignment)
    wbuf_records: int  # tap records per weight bank
    wbuf_slices: int  # F: a dense record is stored (and read) as F slices
    wbuf_slice_bytes: int  # rec_bytes / F
    rq_lanes: int  # requantization units: config.out_lanes rounded up to whole planes (<= tm)
    rq_passes: int  # passes per output pixel: ceil(tm / rq_lanes)
    weight_ports: int  # K: AXI ports 1..K read the weights (0: weights share port 0)
    dw_taps: int  # depthwise taps of one kernel row per pair (dw_taps_per_pair)

    @property
    def weight_port(self) -> bool:
        """The weights have their own AXI port(s)."""
        return self.weight_ports > 0

    @property
    def axi_ports(self) -> int:
        """AXI4 master ports of the generated top: ``m_axi_gmem0`` (descriptors, parameters,
        activations, outputs) and ``m_axi_gmem1 .. m_axi_gmem<K>`` (weights, tap record ``r``
        of a bank through port ``1 + r mod K``)."""
        return 1 + self.weight_ports

    @property
    def wbuf_memories(self) -> int:
        """Weight memories: one per weight port (record ``r`` in memory ``r mod K``)."""
        return max(1, self.weight_ports)

    @property
    def wbuf_port_records(self) -> int:
        """Records per bank in each weight memory: ``ceil(wbuf_records / memories)``."""
        return -(-self.wbuf_records // self.wbuf_memories)

    @property
    def wbuf_depth(self) -> int:
        """Words (slices) of one weight memory: two banks of ``wbuf_port_records x
        wbuf_slices`` slices."""
        return 2 * self.wbuf_port_records * self.wbuf_slices

    @property
    def ibuf_depth(self) -> int:
        return self.tr_in * self.tc_in

    @property
    def taps_max(self) -> int:
        return KMAX * KMAX


def geometry(config: AcceleratorConfig) -> RtlGeometry:
    """Sizes of the RTL for ``config``; raises :class:`RtlUnsupported` if it cannot be built.

    AXI ports: with two or more in the config, port 0 carries descriptors, parameters and
    activations and :func:`weight_ports` others the weights (one weight memory each).

    The output writer stores whole packed words with byte strobes, so an output beat may be
    shared between two tiles only where words are byte-aligned (``5G % 8 == 0``); otherwise
    ``tc`` must be a multiple of the words per beat (the DSE keeps it so). Channel groups must
    cover whole planes: ``tm`` and ``tn`` multiples of ``G``.
    """
    g, b = config.act_pack, config.axi_data_bits
    wpb = beat_words(b, g)
    problems = []
    if config.tm % g:
        problems.append(f"tm={config.tm} is not a multiple of act_pack G={g}")
    if config.tn % g:
        problems.append(f"tn={config.tn} is not a multiple of act_pack G={g}")
    if not tile_cols_fit_beats(config.tc, g, b):
        problems.append(
            f"packed words of {ACT_BITS * g} bits are not byte-aligned and tc={config.tc} is not "
            f"a multiple of the {wpb} words per beat (output tiles would share bytes)")
    if problems:
        raise RtlUnsupported("the Amaranth accelerator cannot be built for this config: "
                             + "; ".join(problems) + ". Choose tm, tn, tc accordingly (the "
                             "design-space exploration does).")
    rows = record_rows(config)
    ppr = math.ceil(config.tc / 2)
    # beats spanned by one tile row, worst case over the start position inside a beat
    obuf_beats = max((s + config.tc - 1) // wpb + 1 for s in range(wpb))
    rq = min(config.tm, g * -(-config.out_lanes // g))
    f, records = weight_slicing(rows * config.tn, rows, b // 8, config.wfill_cycles)
    return RtlGeometry(
        tm=config.tm, tn=config.tn, g=g, beat_bits=b, wpb=wpb, cb=max(config.tn, config.tm),
        rows=rows, rec_bytes=rows * config.tn, dw_rec_bytes=rows,
        tr_in=(config.tr - 1) * SMAX + KMAX, tc_in=(config.tc - 1) * SMAX + KMAX,
        pairs_per_row=ppr, acc_depth=config.tr * ppr, out_planes=config.tm // g,
        in_planes=config.tn // g, obuf_beats=obuf_beats,
        wbuf_records=records, wbuf_slices=f, wbuf_slice_bytes=rows * config.tn // f,
        rq_lanes=rq, rq_passes=-(-config.tm // rq),
        weight_ports=weight_ports(config),
        dw_taps=dw_taps_per_pair(config.tn, wpb, f),
    )


def dw_taps_per_pair(tn: int, wpb: int, wbuf_slices: int) -> int:
    """Depthwise taps of one kernel row that a pixel pair computes at once.

    A pair reads ``2 wpb`` consecutive input columns in its two cycles (one per
    column-interleaved bank and cycle), so it can cover ``g`` taps of both pixels when
    ``g + stride <= 2 wpb``; each tap needs a multiplier of the lane's unit (``H = ceil(tn / 2)``)
    and a slice of the weight staging register (``wbuf_slices``). At most
    :data:`DW_TAPS_MAX`; 1 (one tap per pair) with one word per beat.
    """
    return max(1, min(DW_TAPS_MAX, math.ceil(tn / 2), 2 * wpb - 1, wbuf_slices))


def dw_group_width(dw_taps: int, wpb: int, kw: int, stride_w: int) -> int:
    """Taps per group of a depthwise layer (kernel width ``kw``, stride ``stride_w``): a
    kernel row runs as ``ceil(kw / width)`` groups of at most this many taps."""
    if dw_taps == 1:
        return 1
    return max(1, min(kw, dw_taps, 2 * wpb - stride_w))


@dataclass(frozen=True)
class RtlMemory:
    """One ``lib.memory.Memory`` of the engine: ``count`` copies of ``width`` x ``depth`` bits
    with one write port (enables per ``granularity`` bits; 0 = the whole word) and
    ``read_ports`` synchronous read ports."""

    name: str
    count: int
    width: int
    depth: int
    read_ports: int = 1
    granularity: int = 0


def rtl_memories(config: AcceleratorConfig, *, tile_banks: bool = True
                 ) -> tuple[RtlMemory, ...]:
    """Every on-chip memory the engine builds for ``config`` (both banks included).

    The engine (``engine.py``) builds exactly these; ``tests/spec/test_geometry.py`` compares
    this list with the memories of the elaborated engine. The resource model maps them onto
    BRAM36 (a memory with two read ports is built twice, one read port each).

    * ``ibuf``: ``wpb`` column-interleaved input banks of ``cb`` 5-bit slots,
      ``2 tr_in ceil(tc_in / wpb)`` deep, written a packed word (``5 G`` bits) at a time;
    * ``rbuf``: ``wpb`` column-interleaved residual banks of ``tm`` 5-bit channels,
      ``2 tr ceil(tc / wpb)`` deep, written a packed word at a time; one read port each (a
      pixel pair reads two banks), two with one bank;
    * ``wbuf``: one weight memory per weight port, ``wbuf_slice_bytes`` wide, ``wbuf_depth`` deep;
    * ``abuf``: the accumulators of a pixel pair, ``2 tm acc_bits`` wide, ``2 acc_depth`` deep;
    * ``obuf``: one output tile buffer per output plane, a beat of packed words wide,
      ``2 tr obuf_beats`` deep (two banks: one requantized into, one stored).

    ``tile_banks=False`` gives single-bank residual and output tiles (one residual memory
    ``2 tr tc`` deep with two read ports, one output tile bank), the memories of the
    calibration points that record no ``tile_banks``, so that they are compared with what
    they contain.
    """
    geo = geometry(config)
    wb = ACT_BITS * geo.g
    if not tile_banks:
        rbuf = RtlMemory("rbuf", 1, config.tm * ACT_BITS, 2 * config.tr * config.tc,
                         read_ports=2, granularity=wb)
        obuf = RtlMemory("obuf", geo.out_planes, geo.wpb * wb, config.tr * geo.obuf_beats,
                         granularity=wb)
    else:
        rbuf = RtlMemory("rbuf", geo.wpb, config.tm * ACT_BITS,
                         2 * config.tr * -(-config.tc // geo.wpb),
                         read_ports=2 if geo.wpb == 1 else 1, granularity=wb)
        obuf = RtlMemory("obuf", geo.out_planes, geo.wpb * wb, 2 * config.tr * geo.obuf_beats,
                         granularity=wb)
    return (
        RtlMemory("ibuf", geo.wpb, geo.cb * ACT_BITS, 2 * geo.tr_in * -(-geo.tc_in // geo.wpb),
                  granularity=wb),
        rbuf,
        RtlMemory("wbuf", geo.wbuf_memories, geo.wbuf_slice_bytes * 8, geo.wbuf_depth),
        RtlMemory("abuf", 1, 2 * config.tm * config.acc_bits, 2 * geo.acc_depth),
        obuf,
    )


def weight_ports(config: AcceleratorConfig) -> int:
    """Weight read ports ``K`` of the RTL for ``config``: every AXI port but port 0, at most as
    many as DDR can feed on its own (``ceil(ddr_bytes_per_cycle / beat bytes)``, no cap when
    unknown), so the weights alone can use the whole DDR bandwidth; 0 with one port."""
    k = config.axi_ports - 1
    if config.ddr_bytes_per_cycle > 0:
        k = min(k, math.ceil(config.ddr_beats_per_cycle - 1e-9))
    return max(k, 0)


def weight_slicing(rec_bytes: int, dw_rec_bytes: int, beat_bytes: int,
                   fill_cycles: int) -> tuple[int, int]:
    """``(F, records per bank)`` of the weight buffer.

    A dense tap record (``rec_bytes``) is stored as ``F`` slices of ``rec_bytes / F`` bytes and
    read into the PE array's weight register over ``F`` cycles while the previous tap computes
    (``fill_cycles`` is the config's ``wfill_cycles``, the most cycles such a read may take), so
    the memory is ``F`` times narrower than a record.
    ``F`` is the largest divisor of ``rec_bytes`` not above ``fill_cycles`` whose slice still
    holds a depthwise record and is taken from DDR as fast as a whole record
    (``gcd(slice, beat) == gcd(record, beat)``). The depth (both banks) is the smallest power
    of two holding ``KMAX**2`` records per bank (one 7x7 chunk); the records per bank are what
    that depth holds.
    """
    rate = math.gcd(rec_bytes, beat_bytes)
    f = max(d for d in range(1, max(1, fill_cycles) + 1)
            if rec_bytes % d == 0 and rec_bytes // d >= dw_rec_bytes
            and math.gcd(rec_bytes // d, beat_bytes) == rate)
    depth = 1 << (2 * KMAX * KMAX * f - 1).bit_length()
    return f, depth // (2 * f)


def check_window(what: str, kernel: tuple[int, int], stride: tuple[int, int],
                 pad: tuple[int, int]) -> None:
    """Refuse (:class:`RtlUnsupported`, naming ``what``) a window, stride or padding beyond
    :data:`KMAX`, :data:`SMAX`, :data:`PMAX`."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    if max(kh, kw) > KMAX or max(sh, sw) > SMAX or max(ph, pw) > PMAX:
        raise RtlUnsupported(
            f"{what}: window {kh}x{kw}, stride {sh}x{sw}, padding {ph}x{pw} exceeds the "
            f"accelerator's limits (window <= {KMAX}, stride <= {SMAX}, padding <= {PMAX})")


def check_network(net) -> None:
    """Refuse, naming the layer, a :class:`filmqnn_hw.spec.networks.Network` with a window,
    stride or padding the accelerator does not run (:func:`check_window`; a global average
    pooling's window is its whole input map)."""
    for ly in net.layers:
        what = f"layer {ly.name!r} of {net.name!r}"
        if ly.kind == "gap":
            what += f" (global average pooling of a {ly.in_h}x{ly.in_w} map)"
        check_window(what, (ly.kh, ly.kw), (ly.stride, ly.stride), (ly.pad, ly.pad))


def check_program(program, config: AcceleratorConfig) -> None:
    """Refuse, naming the layer, any descriptor the RTL would report as unsupported.

    ``program`` is a :class:`filmqnn_hw.spec.program.LayerProgram`. Mirrors the engine's checks
    so that an export for this accelerator fails on the host, not in hardware.
    """
    check_descriptors(program.descriptors, config)


def check_descriptors(descriptors, config: AcceleratorConfig) -> None:
    """:func:`check_program` of a program's descriptors (e.g. parsed from ``program.bin``)."""
    geometry(config)
    for i, f in enumerate(descriptors):
        name = repr(f.name) if f.name else f"#{i}"
        check_window(f"layer {name} (descriptor {i})", (int(f["kh"]), int(f["kw"])),
                     (int(f["stride_h"]), int(f["stride_w"])), (int(f["pad_h"]), int(f["pad_w"])))
        op = int(f["op"])
        if op == 2 and int(f["out_c"]) != int(f["in_c"]):
            raise RtlUnsupported(f"layer {name} (descriptor {i}): depthwise with a channel "
                                 "multiplier is not supported (out_c must equal in_c)")
