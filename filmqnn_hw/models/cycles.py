"""Cycle model: cycles per layer and per network for the accelerator's schedule.

This module models exactly the schedule of ``docs/architecture.md`` (the RTL will be held to
it within 2%). Summary:

* A layer is cut into **steps** ``(mo, s, no)``: output-channel group ``mo`` (``tm`` lanes),
  spatial tile ``s`` (``tr x tc`` outputs), input-channel chunk ``no``. ``no`` is always
  innermost (accumulation); the order of ``mo`` and ``s`` is chosen per layer
  (``"ws"``: mo outer, weights reused across tiles; ``"is"``: s outer, inputs reused across
  groups) -- the compiler takes the faster, this model evaluates both.
* **Phases.** Step ``j`` computes in phase ``j`` while the DMA loads what step ``j+1`` needs
  (double-buffered input, weight, residual buffers) and the output pipeline drains and stores
  the tile finished in step ``j-1`` (double-buffered accumulators)::

      phase(j) = max(compute(j), drain(j-1), mem(j)) + T_SYNC
      mem(j)   = [T_DMA] + ceil(ddr_beats(j) / BW)   (0 if no DDR beats; T_DMA only if the
                 DMA was not busy to the end of phase j-1; on-chip store traffic runs in
                 parallel at OTS_BEATS_PER_CYCLE)

  plus a prologue (load step 0), an epilogue (drain/store the last tile) and ``T_LAYER``.
* **Compute modes.** ``normal``: per cycle every lane takes ``tn/px`` input channels at one
  kernel tap for each of ``px`` output pixels (pixel groups, ``px <= px_max``, only when the
  layer's input channels fit ``tn/px``). ``kernel`` (4-bit kernel packing, stride-1 layers
  with kw >= 3): per cycle every lane takes ``tn/4`` channels x a 3-tap kernel-row segment x
  2 adjacent output columns (``kh x ceil(kw/3) x rows x ceil((cols+2)/2)`` cycles per chunk
  of ``tn/4`` channels). ``dw``: depthwise, channel ``c`` on lane ``c mod tm``, the
  ``kh x kw`` taps of ``px`` pixels on the slots, ``tn`` channel-columns read per cycle.
  Pooling and stand-alone adds use the dw datapath; global pooling reads one pixel per cycle.
  Each tap group takes ``max(pixel-group cycles, wfill_cycles)`` (shadow weight refill).
  ``stem``: a first layer with <= ``STEM_MAX_CH`` input channels is run as a 1x1 conv over
  its im2col input (``C kh kw`` channels) prepared by the host.
* **DDR traffic** in AXI beats of ``axi_data_bits``: activations are stored as planes of
  ``G`` channels (one 5G-bit word per pixel), ``floor(axi/5G)`` words per beat, each image
  row starting on a beat; weights per ``(mo, no)`` chunk are contiguous and beat-aligned,
  with ``PARAM_BITS`` per channel at the head of each group. ``BW = min(axi_ports,
  ddr_bytes_per_cycle / (axi/8))`` beats per cycle (every transfer is striped over all ports).

Every number in the result is derived from ``cfg``, the layer and :class:`Timing`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from filmqnn_hw.models.resources import ibuf_depth, wbuf_capacity_bits
from filmqnn_hw.spec.config import ACT_BITS, AcceleratorConfig, ConfigError
from filmqnn_hw.spec.geometry import IBUF_ROW_BANKS, words_per_beat
from filmqnn_hw.spec.networks import Layer, Network, get_network
from filmqnn_hw.spec.program import PARAM_BITS

__all__ = [
    "Timing",
    "LayerCycles",
    "NetworkCycles",
    "layer_cycles",
    "network_cycles",
    "plan_fm_cache",
    "bandwidth_beats",
    "compute_only_cycles",
    "ots_beats_per_cycle",
    "array_cycles",
    "px_options",
    "drain_only_cycles",
    "STEM_MAX_CH",
    "stem_eligible",
    "BOUNDS",
]

#: First layers with at most this many input channels run as a 1x1 conv on an im2col input.
STEM_MAX_CH = 4
#: Bound categories reported per layer.
BOUNDS = ("compute", "weight_load", "input_load", "output_store")


@dataclass(frozen=True)
class Timing:
    """Fixed latencies of the schedule (cycles), named as in docs/architecture.md.

    ``t_dma``: DDR round trip charged once per phase that moves DDR data; ``t_pipe``: PE
    array fill + drain per step; ``t_out``: output pipeline latency (requantize, residual,
    clip, pack) per drained tile; ``t_sync``: phase handshake; ``t_layer``: descriptor fetch
    and configuration per layer; ``ots_beats_per_cycle``: on-chip feature-map store transfer
    rate (beats of ``axi_data_bits``); 0 = as wide as the input buffer's write side
    (:func:`ots_beats_per_cycle`).
    """

    t_dma: int = 40
    t_pipe: int = 12
    t_out: int = 8
    t_sync: int = 2
    t_layer: int = 64
    ots_beats_per_cycle: int = 0


DEFAULT_TIMING = Timing()


@dataclass
class LayerCycles:
    """Cycle count of one layer with its mode, loop order, traffic and binding resource."""

    name: str
    kind: str
    mode: str
    order: str
    cycles: int
    macs: int
    steps: int
    ddr_bytes: int
    bound: str
    bound_cycles: dict[str, int] = field(default_factory=dict)
    compute_cycles: int = 0  # cycles if nothing but the PE array limited (sum of compute)
    on_chip: dict[str, bool] = field(default_factory=dict)
    utilisation: float = 0.0  # useful MACs / (cycles x tm x tn)
    px: int = 1  # pixel groups (pixels per cycle sharing the slots)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "name": self.name, "kind": self.kind, "mode": self.mode, "order": self.order,
            "cycles": self.cycles, "macs": self.macs, "steps": self.steps,
            "ddr_bytes": self.ddr_bytes, "bound": self.bound,
            "bound_cycles": self.bound_cycles, "compute_cycles": self.compute_cycles,
            "on_chip": self.on_chip, "utilisation": round(self.utilisation, 4), "px": self.px,
        }


@dataclass
class NetworkCycles:
    """Per-layer and total cycles of a network on one configuration."""

    network: str
    layers: list[LayerCycles]
    clock_mhz: float
    macs: int

    @property
    def cycles(self) -> int:
        """Total cycles per frame (layers run back to back)."""
        return sum(ly.cycles for ly in self.layers)

    @property
    def fps(self) -> float:
        """Frames per second at ``clock_mhz`` (one frame at a time)."""
        return self.clock_mhz * 1e6 / self.cycles

    @property
    def ddr_bytes(self) -> int:
        """DDR bytes moved per frame."""
        return sum(ly.ddr_bytes for ly in self.layers)

    @property
    def gops(self) -> float:
        """Sustained GOPS (1 MAC = 2 ops)."""
        return 2 * self.macs * self.fps / 1e9

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary with per-layer detail."""
        return {
            "network": self.network, "cycles": self.cycles, "fps": round(self.fps, 2),
            "gops": round(self.gops, 1), "macs": self.macs, "ddr_bytes": self.ddr_bytes,
            "ddr_gbps": round(self.ddr_bytes * self.fps / 1e9, 3),
            "layers": [ly.as_dict() for ly in self.layers],
        }


# ---------------------------------------------------------------------------------------------
def bandwidth_beats(cfg: AcceleratorConfig) -> float:
    """DDR beats (of ``axi_data_bits``) per cycle: all ports, capped by sustained DDR."""
    if cfg.ddr_bytes_per_cycle <= 0:
        raise ConfigError(
            "ddr_bytes_per_cycle is 0 (unknown): the cycle model needs the board's sustained "
            "DDR bandwidth; build the config with filmqnn_hw.search.dse.design or set it"
        )
    return min(float(cfg.axi_ports), cfg.ddr_beats_per_cycle)


def ots_beats_per_cycle(cfg: AcceleratorConfig, tim: Timing = DEFAULT_TIMING) -> int:
    """Beats per cycle between the feature-map store and the buffers.

    ``tim.ots_beats_per_cycle`` if set, else the input buffer's write width (all
    ``IBUF_ROW_BANKS x ceil(tn/G)`` banks take one 5G-bit word per cycle), limited by the
    store's own width (its BRAM36 as 72-bit columns).
    """
    if tim.ots_beats_per_cycle:
        return tim.ots_beats_per_cycle
    bits = IBUF_ROW_BANKS * math.ceil(cfg.tn / cfg.act_pack) * cfg.act_pack * ACT_BITS
    store_bits = (cfg.fm_cache_kbits // 36) * 72  # BRAM36 columns of the store, 72 bits each
    return max(1, min(bits, store_bits) // cfg.axi_data_bits)


def _row_beats(c0: np.ndarray, width: np.ndarray, wpb: int) -> np.ndarray:
    """Beats covering words ``[c0, c0 + width)`` of a beat-aligned row (0 if width <= 0)."""
    w = np.maximum(width, 0)
    last = c0 + np.maximum(w, 1) - 1
    return np.where(w > 0, last // wpb - c0 // wpb + 1, 0)


def tensor_beats(cfg: AcceleratorConfig, ch: int, h: int, w: int) -> int:
    """Beats of a whole ``ch x h x w`` tensor in the DDR layout."""
    wpb = words_per_beat(cfg)
    return math.ceil(ch / cfg.act_pack) * h * math.ceil(w / wpb)


def _split(extent: int, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and sizes of the tiles covering ``extent``."""
    n = math.ceil(extent / tile)
    off = np.arange(n, dtype=np.int64) * tile
    return off, np.minimum(tile, extent - off)


@dataclass
class _Plan:
    """Per-index arrays of one layer; steps are the product (mo, s, no)."""

    mode: str
    tm_eff: np.ndarray  # [n_mo] lanes used
    ch: np.ndarray  # [n_no] channels per chunk
    rows: np.ndarray  # [n_s]
    cols: np.ndarray  # [n_s]
    comp: np.ndarray  # [n_mo, n_s, n_no] compute cycles of one step
    in_beats: np.ndarray  # [n_s, n_no]
    w_beats: np.ndarray  # [n_mo, n_no] (params included at no == 0)
    w_bits4: np.ndarray  # [n_mo, n_no]
    w_bits8: np.ndarray  # [n_mo, n_no]
    out_beats: np.ndarray  # [n_mo, n_s]
    res_beats: np.ndarray  # [n_mo, n_s]
    in_words_per_bank: np.ndarray  # [n_s] input-buffer words per bank for one chunk
    drain: np.ndarray  # [n_mo, n_s] output pipeline cycles per tile (before T_OUT)


def _mode(cfg: AcceleratorConfig, ly: Layer, stem: bool) -> str:
    if ly.kind == "conv":
        if stem:
            return "stem"
        if cfg.kernel_packing and ly.stride == 1 and ly.kw >= 3 and cfg.tn >= 4:
            return "kernel"
        return "normal"
    return {"dw": "dw", "maxpool": "pool", "avgpool": "pool", "gap": "gap", "add": "add"}[
        ly.kind
    ]


def _modes(cfg: AcceleratorConfig, ly: Layer, stem: bool) -> list[str]:
    """Compute modes the compiler may use for ``ly``: kernel packing is a choice (a layer with
    few output pixels per tile runs faster in normal mode), every other mode is fixed."""
    mode = _mode(cfg, ly, stem)
    return ["kernel", "normal"] if mode == "kernel" else [mode]


def px_options(cfg: AcceleratorConfig, ly: Layer, mode: str) -> list[int]:
    """Pixel-group counts ``P`` the schedule allows for ``ly`` in ``mode`` (1 always).

    ``normal``/``stem``: ``P`` pixels share the slots (``tn/P`` each) when all input channels
    fit one slot group (single chunk); ``dw``/``pool``: ``P`` pixels' windows on a lane's
    ``kernel_slots`` multipliers (``P kh kw <= kernel_slots``). ``P`` is a power of two up to
    ``px_max``.
    """
    out = [1]
    p = 2
    while p <= cfg.px_max:
        if mode in ("normal", "stem"):
            in_ch = ly.in_ch * ly.kh * ly.kw if mode == "stem" else ly.in_ch
            if in_ch <= cfg.tn // p:
                out.append(p)
        elif mode in ("dw", "pool") and p * ly.kh * ly.kw <= cfg.kernel_slots:
            out.append(p)
        p *= 2
    return out


def _plan(cfg: AcceleratorConfig, ly: Layer, mode: str, tim: Timing, px: int = 1) -> _Plan:
    """Build the per-index arrays of a layer in ``mode`` with ``px`` pixel groups."""
    g, axi, wpb = cfg.act_pack, cfg.axi_data_bits, words_per_beat(cfg)
    kh, kw, st, pad = ly.kh, ly.kw, ly.stride, ly.pad
    in_ch, in_h, in_w = ly.in_ch, ly.in_h, ly.in_w
    if mode == "stem":  # im2col input: C*kh*kw channels, 1x1 kernel, stride 1, no padding
        in_ch, in_h, in_w = ly.in_ch * kh * kw, ly.out_h, ly.out_w
        kh = kw = st = 1
        pad = 0
    out_h, out_w = ly.out_h, ly.out_w
    if mode == "gap":  # one "tile" covers the whole input map
        r_off, rows = np.array([0]), np.array([1])
        c_off, cols = np.array([0]), np.array([1])
    else:
        r_off, rows = _split(out_h, cfg.tr)
        c_off, cols = _split(out_w, cfg.tc)
    n_r, n_c = len(rows), len(cols)
    rows_s = np.repeat(rows, n_c)
    cols_s = np.tile(cols, n_r)
    r0_s = np.repeat(r_off, n_c)
    c0_s = np.tile(c_off, n_r)

    # channel groups on lanes (mo, tm wide in every mode: lane = position mod tm) and chunks
    _, tm_eff = _split(ly.out_ch, cfg.tm)
    n_mo = len(tm_eff)
    if mode in ("normal", "stem", "kernel"):
        cch = cfg.tn // 4 if mode == "kernel" else cfg.tn // px
        _, ch = _split(in_ch, cch)
    else:  # dw / pool / gap / add: a group is its own single chunk
        ch = np.array([cfg.tm])
    n_no = len(ch)

    # input rectangle of every spatial tile (clipped to the map; padding is generated on chip)
    if mode == "gap":
        ir0, ir1 = np.zeros(1, np.int64), np.full(1, in_h)
        ic0, ic1 = np.zeros(1, np.int64), np.full(1, in_w)
    else:
        ir0 = np.maximum(r0_s * st - pad, 0)
        ir1 = np.minimum((r0_s + rows_s - 1) * st - pad + kh, in_h)
        ic0 = np.maximum(c0_s * st - pad, 0)
        ic1 = np.minimum((c0_s + cols_s - 1) * st - pad + kw, in_w)
    in_rows = np.maximum(ir1 - ir0, 0)
    in_cols = np.maximum(ic1 - ic0, 0)
    row_beats = _row_beats(ic0, in_cols, wpb)
    in_words_per_bank = np.ceil(in_rows / IBUF_ROW_BANKS).astype(np.int64) * in_cols

    # output tiles (and the residual tile, same layout)
    out_row_beats = _row_beats(c0_s, cols_s, wpb)
    planes_mo = np.ceil(tm_eff / g).astype(np.int64)
    out_beats = planes_mo[:, None] * (rows_s * out_row_beats)[None, :]
    res_beats = out_beats if (ly.residual is not None or mode == "add") else np.zeros_like(
        out_beats
    )
    if mode == "gap":
        out_beats = planes_mo[:, None] * np.ones((1, 1), np.int64)
    wf, tn = cfg.wfill_cycles, cfg.tn
    pgroups = rows_s * ((cols_s + px - 1) // px)  # pixel groups of one tile

    n8 = np.minimum(tm_eff, cfg.n8_slots)
    n4 = tm_eff - n8
    ones = np.ones((n_mo, 1, n_no), np.int64)
    if mode in ("normal", "stem"):
        taps = kh * kw
        comp = ones * (taps * np.maximum(pgroups, wf) + tim.t_pipe)[None, :, None]
    elif mode == "kernel":
        taps = kh * 3 * math.ceil(kw / 3)
        per_group = rows_s * ((cols_s + 2 + 1) // 2)
        comp = ones * (kh * math.ceil(kw / 3) * np.maximum(per_group, wf)
                       + tim.t_pipe)[None, :, None]
    else:
        taps = kh * kw if mode == "dw" else 0
        rd = np.ceil(tm_eff / tn).astype(np.int64)  # input reads of tn channels
        if mode in ("dw", "pool"):
            per = pgroups[None, :] * (
                np.ceil(st * px * tm_eff / tn).astype(np.int64)[:, None]
                * math.ceil(kh * kw * px / cfg.kernel_slots))
        elif mode == "gap":
            per = rd[:, None] * np.array([[in_h * in_w]])
        else:  # add
            per = rd[:, None] * (rows_s * cols_s)[None, :]
        comp = (per + tim.t_pipe)[:, :, None].astype(np.int64)
    if mode in ("normal", "stem", "kernel"):
        planes_in = np.ceil(ch / g).astype(np.int64)
        in_beats = (in_rows * row_beats)[:, None] * planes_in[None, :]  # [n_s, n_no]
    else:  # the input of a dw/pool/add group is the group's own channels: [n_mo, n_s]
        in_beats = planes_mo[:, None] * (in_rows * row_beats)[None, :]
    if mode in ("dw", "pool", "gap", "add"):
        w_bits4 = (n4 * taps * 4)[:, None] if taps else np.zeros((n_mo, 1), np.int64)
        w_bits8 = (n8 * taps * 8)[:, None] if taps else np.zeros((n_mo, 1), np.int64)
    else:
        w_bits4 = n4[:, None] * (ch[None, :] * taps * 4)
        w_bits8 = n8[:, None] * (ch[None, :] * taps * 8)
    params = np.zeros((n_mo, n_no), np.int64)
    if mode in ("normal", "stem", "kernel", "dw"):
        params[:, 0] = np.ceil(tm_eff * PARAM_BITS / axi).astype(np.int64)
    w_beats = np.ceil((w_bits4 + w_bits8) / axi).astype(np.int64) + params
    # [n_mo, n_s]: the output pipeline takes out_lanes values per cycle; a pixel group
    # delivers px x tm_eff values
    per_pg = np.ceil(px * tm_eff / cfg.out_lanes).astype(np.int64)
    drain = per_pg[:, None] * (pgroups if mode != "gap" else np.array([1]))[None, :]
    return _Plan(mode, tm_eff, ch, rows_s, cols_s, comp, in_beats, w_beats, w_bits4, w_bits8,
                 out_beats, res_beats, in_words_per_bank, drain)


def _classes(extent: int, tile: int) -> list[tuple[int, int]]:
    """(size, count) of the tiles covering ``extent``: full tiles and one remainder."""
    full, rem = divmod(extent, tile)
    out = [(tile, full)] if full else []
    if rem:
        out.append((rem, 1))
    return out


def drain_only_cycles(cfg: AcceleratorConfig, ly: Layer, *, stem: bool = False,
                      px: int = 1, mode: str | None = None) -> int:
    """Sum of the output-pipeline time of every tile of ``ly`` (without ``t_out``) in ``mode``
    (default: the layer's preferred mode)."""
    mode = mode or _mode(cfg, ly, stem)
    total = 0
    for tm_eff, nm in _classes(ly.out_ch, cfg.tm):
        per_pg = math.ceil(px * tm_eff / cfg.out_lanes)
        if mode == "gap":
            total += per_pg * nm
            continue
        for rows, nr in _classes(ly.out_h, cfg.tr):
            for cols, nc in _classes(ly.out_w, cfg.tc):
                total += per_pg * rows * math.ceil(cols / px) * nr * nc * nm
    return total


def compute_only_cycles(
    cfg: AcceleratorConfig, ly: Layer, *, stem: bool = False, timing: Timing = DEFAULT_TIMING,
    px: int = 1, mode: str | None = None,
) -> int:
    """Sum of the PE-array time of every step of ``ly`` in ``mode`` (default: the layer's
    preferred mode; no DDR, no drain, no fixed latencies outside the steps).

    Equals ``sum(_plan(...).comp)`` (checked by the tests), computed over tile classes.
    """
    mode = mode or _mode(cfg, ly, stem)
    wf, tp, tn = cfg.wfill_cycles, timing.t_pipe, cfg.tn
    total = 0
    for tm_eff, nm in _classes(ly.out_ch, cfg.tm):
        if mode == "gap":
            total += nm * (math.ceil(tm_eff / tn) * ly.in_h * ly.in_w + tp)
            continue
        for rows, nr in _classes(ly.out_h, cfg.tr):
            for cols, nc in _classes(ly.out_w, cfg.tc):
                pg = rows * math.ceil(cols / px)
                if mode in ("normal", "stem"):
                    taps = 1 if mode == "stem" else ly.kh * ly.kw
                    per = taps * max(pg, wf) + tp
                elif mode == "kernel":
                    per = ly.kh * math.ceil(ly.kw / 3) * max(rows * ((cols + 3) // 2), wf) + tp
                elif mode in ("dw", "pool"):
                    per = pg * math.ceil(ly.stride * px * tm_eff / tn) * math.ceil(
                        ly.kh * ly.kw * px / cfg.kernel_slots) + tp
                else:  # add
                    per = math.ceil(tm_eff / tn) * rows * cols + tp
                total += per * nr * nc * nm
    if mode in ("normal", "stem", "kernel"):
        in_ch = ly.in_ch * ly.kh * ly.kw if mode == "stem" else ly.in_ch
        cch = cfg.tn // 4 if mode == "kernel" else cfg.tn // px
        return total * math.ceil(in_ch / cch)
    return total


def array_cycles(cfg: AcceleratorConfig, ly: Layer, *, stem: bool = False,
                 timing: Timing = DEFAULT_TIMING) -> int:
    """Best over compute modes and pixel groups of max(PE-array time, output-pipeline time):
    a DDR-free lower bound of the layer used by the design search."""
    return min(max(compute_only_cycles(cfg, ly, stem=stem, timing=timing, px=p, mode=md),
                   drain_only_cycles(cfg, ly, stem=stem, px=p, mode=md))
               for md in _modes(cfg, ly, stem) for p in px_options(cfg, ly, md))


def _simulate(
    cfg: AcceleratorConfig, p: _Plan, order: str, bw: float, tim: Timing,
    ots: dict[str, bool], w_resident: bool, i_resident: bool,
) -> tuple[int, dict[str, int], int, int, int]:
    """Run the phase recurrence for one loop order; returns cycles, bound cycles, DDR beats,
    number of steps, pure compute cycles."""
    n_mo, n_s = p.out_beats.shape
    n_no = p.comp.shape[2]
    per_group = p.mode in ("dw", "pool", "gap", "add")
    if order == "ws":
        mo, s, no = np.meshgrid(np.arange(n_mo), np.arange(n_s), np.arange(n_no), indexing="ij")
    else:
        s, mo, no = np.meshgrid(np.arange(n_s), np.arange(n_mo), np.arange(n_no), indexing="ij")
    mo, s, no = mo.ravel(), s.ravel(), no.ravel()
    n = mo.size
    comp = p.comp[mo, s, no]

    # -- weight loads: when the key changes (resident: the whole group once per mo)
    if w_resident:
        wkey = mo
        wsum = p.w_beats.sum(axis=1)
        w_step = wsum[mo]
    else:
        wkey = mo * n_no + no
        w_step = p.w_beats[mo, no]
    w_new = np.ones(n, bool)
    w_new[1:] = wkey[1:] != wkey[:-1]
    ld_w = np.where(w_new, w_step, 0)

    # -- input loads
    if per_group:
        ikey = s * n_mo + mo
        i_step = p.in_beats[mo, s]
    elif i_resident:
        ikey = s
        i_step = p.in_beats.sum(axis=1)[s]
    else:
        ikey = s * n_no + no
        i_step = p.in_beats[s, no]
    i_new = np.ones(n, bool)
    i_new[1:] = ikey[1:] != ikey[:-1]
    ld_i = np.where(i_new, i_step, 0)

    last = no == n_no - 1
    ld_r = np.where(last, p.res_beats[mo, s], 0)
    st = np.where(last, p.out_beats[mo, s], 0)
    drain = np.where(last, p.drain[mo, s] + tim.t_out, 0)

    # on-chip store: inputs / residual / outputs of tensors held on chip cost no DDR beats
    ddr_i = ld_i * (not ots.get("input", False))
    ddr_r = ld_r * (not ots.get("residual", False))
    ddr_o = st * (not ots.get("output", False))
    ots_ld = ld_i * ots.get("input", False) + ld_r * ots.get("residual", False)
    ots_o = st * ots.get("output", False)

    # phase j: compute j, load j+1, drain/store j-1
    ddr_ld = ld_w + ddr_i + ddr_r  # bytes needed by step j (loaded during phase j-1)
    ots_ldv = ots_ld
    ld_next = np.zeros(n + 1, np.int64)
    ld_next[:n - 1] = ddr_ld[1:]
    ots_next = np.zeros(n + 1, np.int64)
    ots_next[:n - 1] = ots_ldv[1:]
    st_prev = np.zeros(n + 1, np.int64)
    st_prev[1:] = ddr_o
    ots_st_prev = np.zeros(n + 1, np.int64)
    ots_st_prev[1:] = ots_o
    dr_prev = np.zeros(n + 1, np.int64)
    dr_prev[1:] = drain
    comp_ph = np.zeros(n + 1, np.int64)
    comp_ph[:n] = comp
    ddr_beats = ld_next + st_prev
    xfer = np.ceil(ddr_beats / bw).astype(np.int64)
    ots_rate = ots_beats_per_cycle(cfg, tim)
    mem_ots = np.ceil((ots_next + ots_st_prev) / ots_rate).astype(np.int64)
    other = np.maximum(np.maximum(comp_ph, dr_prev), mem_ots)
    pro_beats = int(ddr_ld[0])
    prologue = max(tim.t_dma + math.ceil(pro_beats / bw) if pro_beats else 0,
                   math.ceil(int(ots_ldv[0]) / ots_rate)) + tim.t_sync
    # T_DMA is exposed unless the DMA was busy until the end of the previous phase (then the
    # requests of this phase's transfer were already issued behind the previous ones)
    mem_ddr = np.zeros(n + 1, np.int64)
    prev_busy = pro_beats > 0
    beats_l, xfer_l, other_l = ddr_beats.tolist(), xfer.tolist(), other.tolist()
    for j in range(n + 1):
        if beats_l[j] > 0:
            md = xfer_l[j] + (0 if prev_busy else tim.t_dma)
            mem_ddr[j] = md
            prev_busy = md >= other_l[j]
        else:
            prev_busy = False
    mem = np.maximum(mem_ddr, mem_ots)
    phase = np.maximum(other, mem_ddr) + tim.t_sync
    total = int(phase.sum()) + prologue + tim.t_layer

    # bound attribution: which term set each phase's length
    wl = np.zeros(n + 1, np.int64)
    wl[:n - 1] = ld_w[1:]
    il = np.zeros(n + 1, np.int64)
    il[:n - 1] = (ld_i + ld_r)[1:]
    is_mem = (mem > comp_ph) & (mem >= dr_prev)
    is_out = (dr_prev > comp_ph) & (dr_prev > mem)
    comp_part = phase - tim.t_sync
    cat_w = is_mem & (wl >= il) & (wl >= st_prev)
    cat_o = (is_mem & (st_prev > wl) & (st_prev > il)) | is_out
    cat_i = is_mem & ~cat_w & ~cat_o
    cat_c = ~(cat_w | cat_o | cat_i)
    bound = {
        "compute": int(comp_part[cat_c].sum()),
        "weight_load": int(comp_part[cat_w].sum()),
        "input_load": int(comp_part[cat_i].sum()) + prologue,
        "output_store": int(comp_part[cat_o].sum()),
    }
    beats = int(ddr_ld.sum() + ddr_o.sum())
    return total, bound, beats, n, int(comp.sum())


def layer_cycles(
    cfg: AcceleratorConfig, ly: Layer, *, stem: bool = False, ots: dict[str, bool] | None = None,
    timing: Timing = DEFAULT_TIMING, order: str | None = None,
) -> LayerCycles:
    """Cycles of one layer: the fastest compute mode (kernel packing or not), pixel grouping
    and loop order (unless ``order`` is given)."""
    bw = bandwidth_beats(cfg)
    ots = ots or {}
    cap4 = wbuf_capacity_bits(cfg, 4)
    cap8 = wbuf_capacity_bits(cfg, 8)
    best = None
    for mode, px in [(md, q) for md in _modes(cfg, ly, stem) for q in px_options(cfg, ly, md)]:
        p = _plan(cfg, ly, mode, timing, px)
        w_res = bool(np.all(p.w_bits4.sum(axis=1) <= cap4)
                     and np.all(p.w_bits8.sum(axis=1) <= cap8))
        n_no = p.comp.shape[2]
        i_res = bool(np.all(n_no * p.in_words_per_bank <= ibuf_depth(cfg)))
        for o in ([order] if order else ["ws", "is"]):
            if o not in ("ws", "is"):
                raise ValueError(f"loop order must be 'ws' or 'is', not {o!r}")
            # residency only pays with the matching order: whole weight groups in "ws"
            # (reused across tiles), whole input tiles in "is" (reused across groups)
            r = _simulate(cfg, p, o, bw, timing, ots, w_res and o == "ws", i_res and o == "is")
            if best is None or r[0] < best[3][0]:
                best = (mode, o, px, r)
    assert best is not None
    mode, o, px, (total, bound, beats, n, comp) = best
    return LayerCycles(
        ly.name, ly.kind, mode, o, total, ly.macs, n, beats * cfg.axi_data_bits // 8,
        max(bound, key=lambda k: bound[k]), bound, comp, dict(ots), px=px,
    )


# ---------------------------------------------------------------------------------------------
def plan_fm_cache(cfg: AcceleratorConfig, net: Network) -> set[str]:
    """Tensors kept whole in the on-chip feature-map store (never written to DDR).

    Greedy in production order: a tensor (not the network input or output) is placed if,
    during its whole lifetime (producer to last reader), the placed tensors plus it fit in
    ``fm_cache_kbits``. Sizes use the DDR layout (beats x axi_data_bits).
    """
    cap = cfg.fm_cache_kbits * 1024
    if cap <= 0:
        return set()
    prod: dict[str, int] = {}
    last: dict[str, int] = {}
    size: dict[str, int] = {}
    for i, ly in enumerate(net.layers):
        prod[ly.output] = i
        size[ly.output] = tensor_beats(cfg, ly.out_ch, ly.out_h, ly.out_w) * cfg.axi_data_bits
        for t in (ly.input, ly.residual, ly.input2):
            if t is not None:
                last[t] = i
    placed: list[tuple[int, int, int]] = []
    chosen: set[str] = set()
    for t, i0 in prod.items():
        if t == net.output or t not in last:
            continue
        i1 = last[t]
        peak = 0
        for k in range(i0, i1 + 1):
            peak = max(peak, sum(sz for a, b, sz in placed if a <= k <= b))
        if peak + size[t] <= cap:
            placed.append((i0, i1, size[t]))
            chosen.add(t)
    return chosen


def stem_eligible(network: Network, i: int) -> bool:
    """Whether layer ``i`` of ``network`` may run in stem mode: the first layer, a conv with a
    window and at most :data:`STEM_MAX_CH` input channels, reading the network input."""
    ly = network.layers[i]
    return (i == 0 and ly.kind == "conv" and ly.input == network.input
            and ly.in_ch <= STEM_MAX_CH and ly.kh * ly.kw > 1)


#: Layers with identical geometry, flags and configuration have identical cycles.
_LAYER_CACHE: dict[tuple, LayerCycles] = {}


def network_cycles(
    cfg: AcceleratorConfig, net: str | Network, *, timing: Timing = DEFAULT_TIMING,
) -> NetworkCycles:
    """Cycles of every layer of ``net`` on ``cfg``; layers run back to back."""
    network = get_network(net)
    on_chip = plan_fm_cache(cfg, network)
    out: list[LayerCycles] = []
    peak = cfg.tm * cfg.tn
    ckey = (cfg.config_hash(), timing)
    if len(_LAYER_CACHE) > 200_000:
        _LAYER_CACHE.clear()
    for i, ly in enumerate(network.layers):
        # a first layer with few input channels may run as a 1x1 conv over its im2col input;
        # the compiler takes stem mode only where it is faster (on a small array the im2col
        # input's many chunks can cost more than the kh x kw taps save)
        stem_ok = stem_eligible(network, i)
        hit = None
        for stem in ([True, False] if stem_ok else [False]):
            ots = {"input": ly.input in on_chip and not stem,
                   "residual": ly.residual in on_chip if ly.residual else False,
                   "output": ly.output in on_chip}
            if ly.kind == "add":
                ots["residual"] = ly.input2 in on_chip
            key = (ckey, ly.kind, ly.in_ch, ly.out_ch, ly.in_h, ly.in_w, ly.out_h, ly.out_w,
                   ly.kh, ly.kw, ly.stride, ly.pad, ly.residual is not None, stem,
                   tuple(sorted(ots.items())))
            lc = _LAYER_CACHE.get(key)
            if lc is None:
                lc = layer_cycles(cfg, ly, stem=stem, ots=ots, timing=timing)
                _LAYER_CACHE[key] = lc
            if hit is None or lc.cycles < hit.cycles:
                hit = lc
        assert hit is not None
        lc = dataclasses.replace(hit, name=ly.name)
        lc.utilisation = ly.macs / (lc.cycles * peak) if lc.cycles else 0.0
        out.append(lc)
    return NetworkCycles(network.name, out, cfg.clock_mhz, network.macs)
