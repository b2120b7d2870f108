"""Design-space exploration: one :class:`AcceleratorConfig` per board that maximises FPS.

``design(board, ratio=0.05, networks=("resnet18", "resnet50", "mobilenet_v2"), **caps)``
searches

* the packing factor ``G`` (activations per word; ``5G <= axi_data_bits``, ``5G <= 72``),
* the array: ``tn`` (a multiple of ``G``; of ``4G`` with kernel packing, so a kernel-mode chunk
  of ``tn/4`` channels is whole words), ``tm`` (a multiple of ``G``), the W4/W8 split between
  the DSP and LUT engines (paper Eqs. 5-10 generalised: every feasible allocation of the 8-bit
  lanes to DSP or LUT (all in LUTs, or DSP first with the overflow in LUTs) and of the 4-bit
  lanes (DSP first, then LUT) is sized for every tm, not only the paper's corners),
* the spatial tile ``tr x tc`` (accumulator depth ``tr*tc <= 1024``; tile columns start on a
  beat unless words are byte-aligned, see docs/architecture.md),
* the DDR ports (all of the board's), and, for the target schedule only, kernel packing,
  pixel groups and the on-chip feature-map store (left-over BRAM),

under utilisation caps (``dsp_cap``, ``lut_cap``, ``ff_cap``, ``bram_cap``) with
``n8_slots = ceil(R * tm)`` 8-bit lanes per tile. The objective is the geometric mean of the
networks' FPS: for ``schedule="rtl"`` from :mod:`filmqnn_hw.models.rtl_estimate` (what the
generated RTL does, within 2% of its clock-exact model per layer of a 224x224 frame on the
board designs; scores within
:data:`RTL_TIE_BAND` of the best count as equal and the lowest predicted LUT wins), for
``schedule="target"`` from :mod:`filmqnn_hw.models.cycles`.

``schedule="rtl"`` (the default, what ``python -m filmqnn_hw.build`` uses) searches only the
configurations the Amaranth accelerator builds as they will be built: filter packing (4 W4A5
MACs per DSP), one pixel pair per lane, no feature-map store, requantization units in whole
planes; the resource model is calibrated on that RTL's synthesis (docs/resource-model.md).
``schedule="target"`` searches the full target schedule of docs/architecture.md.

Search: stage 1 sizes every array candidate with the resource model and ranks it by a
compute-only cycle count (cheap); stage 2 scores the best :data:`TOP_ARRAYS` arrays x
:data:`TILES_PER_ARRAY` tile sizes with the full model (DDR included). A search for one
board takes 5-20 seconds.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

from boards import Board, load_board
from filmqnn_hw.models.cycles import Timing, array_cycles, network_cycles, stem_eligible
from filmqnn_hw.models.resources import SCHEDULES, arith_costs, predict, requant_lane_cost
from filmqnn_hw.models.rtl_estimate import estimate_network
from filmqnn_hw.spec.config import ACT_BITS, AcceleratorConfig, ConfigError
from filmqnn_hw.spec.geometry import tile_cols_fit_beats
from filmqnn_hw.spec.networks import Layer, Network, get_network

__all__ = ["DseError", "design", "search", "Candidate", "DEFAULT_CAPS"]

#: SCHEDULES (from the resource model): ``rtl``, only what the Amaranth accelerator builds
#: (filter packing, one pixel pair per lane, no feature-map store), sized by a resource model
#: calibrated on its synthesis; ``target``, the schedule of docs/architecture.md (kernel
#: packing, pixel groups, feature-map store), which the cycle model evaluates but the RTL
#: does not build yet (docs/rtl.md).
DEFAULT_CAPS = {"dsp_cap": 0.85, "lut_cap": 0.80, "ff_cap": 0.80, "bram_cap": 0.90}
_TR = (4, 7, 8, 14, 16, 28)
_TC = (7, 8, 12, 14, 16, 24, 28, 30, 32, 42, 56, 57, 60, 112, 114)
WFILL_CYCLES = 16
#: Stage-1 arrays that go on to stage 2, and tile sizes tried per array. The ``rtl`` ranking
#: (:mod:`filmqnn_hw.models.rtl_estimate`, DDR-bound layers included) reorders stage 1's
#: compute-only ranking a lot, so it looks at many more arrays.
TOP_ARRAYS = {"rtl": 40, "target": 4}
TILES_PER_ARRAY = {"rtl": 2, "target": 3}
#: ``rtl``: geometric-mean FPS within this fraction of the best count as equal (the RTL
#: estimate is within 1.5% of the clock-exact model per network, 2% per layer); the candidate
#: with the lowest predicted LUT utilisation among them is chosen.
RTL_TIE_BAND = 0.02
#: (px_max, requant units per lane) pairs searched: time-multiplexed requantization without
#: pixel groups, or pixel groups with enough requantization units to drain them.
_PX_RQ = ((1, 0.25), (1, 0.5), (1, 1.0), (2, 1.0), (2, 2.0), (4, 2.0), (4, 4.0))


class DseError(ConfigError):
    """An impossible design request (bad ratio, clock, caps, or a board too small)."""


@dataclass
class Candidate:
    """One evaluated configuration and its score."""

    config: AcceleratorConfig
    fps: dict[str, float]
    score: float
    resources: dict[str, float]


def _check_inputs(board: Board, ratio: float, clock: float, caps: dict[str, float]) -> None:
    if not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
        raise DseError(f"ratio (fraction of 8-bit filters) must be in [0, 1], not {ratio!r}")
    if not isinstance(clock, (int, float)) or clock <= 0:
        raise DseError(f"clock must be a positive frequency in MHz, not {clock!r}")
    if clock > board.max_clock_mhz:
        raise DseError(f"clock {clock:g} MHz is above {board.name}'s ceiling of "
                       f"{board.max_clock_mhz:g} MHz (board.max_clock_mhz, a datasheet limit "
                       f"of the device; {board.path or 'the board file'}): give a lower clock")
    for k, v in caps.items():
        if k not in DEFAULT_CAPS:
            raise DseError(f"unknown cap {k!r}; known: {', '.join(DEFAULT_CAPS)}")
        if not isinstance(v, (int, float)) or not 0.0 < v <= 1.0:
            raise DseError(f"{k} must be a utilisation fraction in (0, 1], not {v!r}")


def _check_schedule(schedule: str, kernel_packing: bool | None) -> bool:
    """Validate ``schedule``; returns the kernel-packing choice (default: on for the target
    schedule, off for the RTL, which builds filter packing only)."""
    if schedule not in SCHEDULES:
        raise DseError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    if kernel_packing is None:
        return schedule == "target"
    if kernel_packing and schedule == "rtl":
        raise DseError("kernel packing (6 MACs per DSP) is not built by the Amaranth RTL; "
                       "search it with schedule='target' (--schedule target), or leave it off")
    return bool(kernel_packing)


def _pack_options(axi_bits: int) -> list[int]:
    return [g for g in (4, 6, 8, 12) if g * ACT_BITS <= min(axi_bits, 72)]


def _arrays(board: Board, ratio: float, caps: dict[str, float], kernel_packing: bool,
            g: int, clock: float, schedule: str) -> list[dict[str, int]]:
    """PE arrays for packing factor ``g`` that fit the DSP and LUT caps by the resource model
    (:func:`filmqnn_hw.models.resources.predict` of the array at a mid-size tile; the tile does not
    change LUT or DSP). Stage 2 re-checks every cap for every tile."""
    c = arith_costs(board.family, kernel_packing)
    rql = requant_lane_cost(board.family)
    dsp_cap = caps["dsp_cap"] * board.dsp
    lut_cap = caps["lut_cap"] * board.lut
    tc0 = 28 if tile_cols_fit_beats(28, g, board.axi_data_bits) else 30
    out = []
    step_n = 4 * g if kernel_packing else g
    tn_opts = [t for t in range(step_n, 257, step_n) if t >= 16]
    px_rq = _PX_RQ if schedule == "target" else tuple(p for p in _PX_RQ if p[0] == 1)
    for tn in tn_opts:
        ks = (tn // 4) * 6 if kernel_packing else tn
        d4 = math.ceil(tn * c.dsp["w4_dsp"])
        d8 = math.ceil(ks * c.dsp["w8_dsp"])
        for w8_on_dsp, (px, rq) in itertools.product((False, True), px_rq):

            def alloc(tm: int, w8_on_dsp: bool = w8_on_dsp, tn: int = tn, d4: int = d4,
                      d8: int = d8, rq: float = rq, px: int = px) -> dict[str, int] | None:
                n8 = max(1, math.ceil(ratio * tm)) if ratio > 0 else 0
                n4 = tm - n8
                outl = math.ceil(tm * rq)
                if schedule == "rtl":  # the RTL builds whole planes of G requantization units
                    outl = min(tm, g * math.ceil(outl / g))
                dsp_free = dsp_cap - outl * rql["dsp"]
                # 8-bit lanes: all in LUTs, or DSP first with the overflow in LUTs
                w8d = min(n8, max(0, int(dsp_free // d8))) if (w8_on_dsp and d8) else 0
                w8l = n8 - w8d
                dsp_left = dsp_free - w8d * d8
                if dsp_left < 0:
                    return None
                w4d = min(n4, int(dsp_left // d4)) if d4 else n4
                w4l = n4 - w4d
                a = {"tn": tn, "tm": tm, "n8": n8, "w4d": w4d, "w4l": w4l, "w8d": w8d,
                     "w8l": w8l, "g": g, "rq": 0 if outl == tm else outl, "px": px}
                r = predict(_make(board, clock, ratio, a, 14, tc0, kernel_packing),
                            schedule=schedule)
                if r.lut > lut_cap or r.dsp > dsp_cap:
                    return None
                return a

            lo, hi = 0, 4096 // g  # feasibility is monotone in tm: binary search the largest
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if alloc(mid * g) is not None:
                    lo = mid
                else:
                    hi = mid - 1
            if lo == 0:
                continue
            tm_max = lo * g
            tms = {tm_max} | {m for m in (32, 48, 64, 96, 128, 160, 192, 256)
                              if m < tm_max and m % g == 0 and m >= tm_max // 2}
            for tm in sorted(tms):
                a = alloc(tm)
                if a is not None:
                    out.append(a)
    return out


def _make(board: Board, clock: float, ratio: float, a: dict[str, int], tr: int, tc: int,
          kernel_packing: bool, fm_kbits: int = 0) -> AcceleratorConfig:
    return AcceleratorConfig(
        board=board.name, part=board.part, family=board.family, clock_mhz=float(clock),
        tm=a["tm"], tn=a["tn"], tr=tr, tc=tc, n8_slots=a["n8"],
        w4_dsp_lanes=a["w4d"], w4_lut_lanes=a["w4l"], w8_dsp_lanes=a["w8d"],
        w8_lut_lanes=a["w8l"], kernel_packing=kernel_packing, act_pack=a["g"],
        axi_data_bits=board.axi_data_bits, axi_ports=board.axi_ports,
        ddr_bytes_per_cycle=round(board.ddr_bytes_per_cycle(clock), 4),
        ratio_8bit=float(ratio), wfill_cycles=WFILL_CYCLES, fm_cache_kbits=fm_kbits,
        requant_lanes=a["rq"], px_max=a["px"],
    )


def _compute_cycles(cfg: AcceleratorConfig, nets: list[Network], tim: Timing) -> list[int]:
    """Array-only cycles per network (no DDR): per layer the larger of the PE-array time and
    the output-pipeline time, best pixel grouping (a lower bound used to rank candidates).

    Cached on the fields that matter (not G, ports or DDR), per distinct layer geometry.
    """
    key = (cfg.tm, cfg.tn, cfg.tr, cfg.tc, cfg.kernel_packing, cfg.wfill_cycles, cfg.px_max,
           cfg.out_lanes, tim)
    out = []
    for net in nets:
        hit = _NET_CACHE.get((key, net.name, len(net.layers)))
        if hit is None:
            hit = 0
            for i, ly in enumerate(net.layers):
                stem_ok = stem_eligible(net, i)
                lkey = (key, ly.kind, ly.in_ch, ly.out_ch, ly.in_h, ly.in_w, ly.out_h, ly.out_w,
                        ly.kh, ly.kw, ly.stride, ly.pad, stem_ok)
                c = _LAYER_ARRAY_CACHE.get(lkey)
                if c is None:  # stem mode is the compiler's choice where it applies
                    c = min(array_cycles(cfg, ly, stem=st, timing=tim)
                            for st in ([True, False] if stem_ok else [False]))
                    _LAYER_ARRAY_CACHE[lkey] = c
                hit += c + tim.t_layer
            _NET_CACHE[(key, net.name, len(net.layers))] = hit
        out.append(hit)
    return out


_NET_CACHE: dict[tuple, int] = {}
_LAYER_ARRAY_CACHE: dict[tuple, int] = {}


def _within(r: Any, b: Board, caps: dict[str, float]) -> bool:
    """All four predicted resources within their caps (the resource model is the judge)."""
    return (r.lut <= caps["lut_cap"] * b.lut and r.ff <= caps["ff_cap"] * b.ff
            and r.dsp <= caps["dsp_cap"] * b.dsp and r.bram36 <= caps["bram_cap"] * b.bram36)


def _geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(max(x, 1e-12)) for x in xs) / len(xs))


def search(
    board: str | Board, ratio: float = 0.05,
    networks: tuple[str | Network, ...] = ("resnet18", "resnet50", "mobilenet_v2"), *,
    clock_mhz: float | None = None, kernel_packing: bool | None = None,
    top_arrays: int | None = None, timing: Timing | None = None, schedule: str = "rtl",
    **caps: float,
) -> list[Candidate]:
    """Run the search; returns evaluated candidates, best first (see :func:`design`).

    ``top_arrays`` arrays from stage 1 go to stage 2 (default: :data:`TOP_ARRAYS` of the
    schedule)."""
    b = load_board(board)
    timing = timing or Timing()
    clock = b.clock_mhz if clock_mhz is None else clock_mhz
    allcaps = {**DEFAULT_CAPS, **caps}
    _check_inputs(b, ratio, clock, caps)
    kernel_packing = _check_schedule(schedule, kernel_packing)
    if top_arrays is None:
        top_arrays = TOP_ARRAYS[schedule]
    nets = [get_network(n) for n in networks]
    if not nets:
        raise DseError("networks must name at least one network")
    device = b.resources()

    # stage 1: arrays x packing, ranked by compute-only cycles at a mid-size tile
    ranked: list[tuple[float, dict[str, int]]] = []
    for g in _pack_options(b.axi_data_bits):
        for a in _arrays(b, ratio, allcaps, kernel_packing, g, clock, schedule):
            tc0 = 28 if tile_cols_fit_beats(28, g, b.axi_data_bits) else 30
            cfg = _make(b, clock, ratio, a, 14, tc0, kernel_packing)
            cyc = _compute_cycles(cfg, nets, timing)
            ranked.append((_geomean([1 / x for x in cyc]), a))
    if not ranked:
        raise DseError(
            f"board {b.name!r} is too small for the minimum array (tm >= G, tn >= 16, one "
            f"requantization DSP per lane) under the caps {allcaps}; raise the caps or use a "
            "larger device"
        )
    ranked.sort(key=lambda x: -x[0])

    # stage 2: best arrays x tiles that fit BRAM/FF, full cycle model with the feature-map store
    seen: set[tuple[int, ...]] = set()
    cands: list[Candidate] = []
    n_arrays = 0
    for _, a in ranked:
        key = (a["tm"], a["tn"], a["g"], a["w8d"], a["rq"], a["px"])
        if key in seen:
            continue
        seen.add(key)
        tiles = []
        for tr in _TR:
            for tc in _TC:
                if (tr * tc > 1024 or tr * tc < 49
                        or not tile_cols_fit_beats(tc, a["g"], b.axi_data_bits)):
                    continue
                cfg = _make(b, clock, ratio, a, tr, tc, kernel_packing)
                r = predict(cfg, schedule=schedule)
                if not _within(r, b, allcaps):
                    continue
                cyc = _compute_cycles(cfg, nets, timing)
                tiles.append((_geomean([1 / x for x in cyc]), tr, tc, r.bram36))
        if not tiles:
            continue
        n_arrays += 1
        tiles.sort(reverse=True)
        for _, tr, tc, bram in tiles[:TILES_PER_ARRAY[schedule]]:
            cfg = _make(b, clock, ratio, a, tr, tc, kernel_packing)
            fm = int(allcaps["bram_cap"] * b.bram36 - bram) * 36  # kbits of whole BRAM36s
            if fm > 0 and schedule == "target":
                cfg = cfg.replace(fm_cache_kbits=fm)
            r = predict(cfg, schedule=schedule)
            if not _within(r, b, allcaps):  # pragma: no cover - fm store uses whole BRAMs left
                continue
            if schedule == "rtl":  # what the generated RTL does with this config
                fps = {n.name: estimate_network(cfg, n).fps for n in nets}
            else:
                fps = {n.name: network_cycles(cfg, n, timing=timing).fps for n in nets}
            util = r.utilisation(device)
            cands.append(Candidate(cfg, fps, _geomean(list(fps.values())),
                                   {k: round(v, 4) for k, v in util.items()}))
        if n_arrays >= top_arrays:
            break
    if not cands:
        raise DseError(
            f"no configuration for board {b.name!r} fits the BRAM/FF caps {allcaps}; "
            "raise bram_cap/ff_cap"
        )
    cands.sort(key=lambda c: -c.score)
    if schedule == "rtl":
        # scores within the estimate's error band of the best are equal: of those, the
        # config with the most LUT headroom (the binding resource) goes first
        band = [c for c in cands if c.score >= (1 - RTL_TIE_BAND) * cands[0].score]
        pick = min(band, key=lambda c: (c.resources.get("lut", 0.0), -c.score))
        cands.remove(pick)
        cands.insert(0, pick)
    return cands


@dataclass(frozen=True)
class _NetKey:
    """A :class:`Network` as a hashable key of :func:`design`'s cache (by its layers)."""

    name: str
    layers: tuple[Layer, ...]
    input: str
    output: str

    @classmethod
    def of(cls, net: Network) -> _NetKey:
        if not isinstance(net, Network):
            raise DseError(f"networks are names or Network objects, not {net!r}")
        return cls(net.name, tuple(net.layers), net.input, net.output)

    def network(self) -> Network:
        return Network(self.name, list(self.layers), self.input, self.output)


@functools.lru_cache(maxsize=32)
def _design_cached(board_key: Any, ratio: float, networks: tuple, clock: float | None,
                   kernel_packing: bool | None, schedule: str, caps: tuple
                   ) -> AcceleratorConfig:
    board = board_key
    nets = tuple(n if isinstance(n, str) else n.network() for n in networks)
    cands = search(board, ratio, nets, clock_mhz=clock, kernel_packing=kernel_packing,
                   schedule=schedule, **dict(caps))
    best = cands[0]
    notes = {
        "origin": "filmqnn_hw.search.dse.design",
        "objective": "geomean FPS over " + ", ".join(best.fps),
        "fps_model": ("filmqnn_hw.models.rtl_estimate (the generated RTL)" if schedule == "rtl"
                      else "filmqnn_hw.models.cycles (the target schedule)"),
        "schedule": schedule,
        "fps": {k: round(v, 2) for k, v in best.fps.items()},
        "utilisation": best.resources,
        "caps": dict(caps),
        "candidates_evaluated": len(cands),
    }
    return best.config.replace(notes=notes)


def design(
    board: str | Board, ratio: float = 0.05,
    networks: tuple[str | Network, ...] | list[str | Network] = ("resnet18", "resnet50",
                                                                 "mobilenet_v2"), *,
    clock_mhz: float | None = None, kernel_packing: bool | None = None, schedule: str = "rtl",
    **caps: float,
) -> AcceleratorConfig:
    """The configuration with the highest geometric-mean FPS on ``networks`` (benchmark names
    or :class:`Network` objects, e.g. a user's export through ``networks.from_manifest``) for
    ``board``.

    ``board`` is a name, a path to a board file or a :class:`boards.Board`; ``ratio`` is R,
    the fraction of 8-bit filters (``n8_slots = ceil(R tm)``); ``caps`` are utilisation caps
    (``dsp_cap=0.85, lut_cap=0.80, ff_cap=0.80, bram_cap=0.90`` by default); the clock is the
    board's default unless ``clock_mhz`` is given. ``schedule="rtl"`` (default) searches only
    what the Amaranth accelerator builds (:data:`SCHEDULES`); ``"target"`` also searches kernel
    packing, pixel groups and the feature-map store of the target schedule, which the cycle
    model evaluates but the RTL does not build. Raises :class:`DseError` for a ratio outside
    [0, 1], a non-positive clock, a cap outside (0, 1], an unknown schedule, kernel packing
    with the RTL schedule, or a board too small for the minimum array. Results are cached per
    argument set.
    """
    b = load_board(board)
    _check_inputs(b, ratio, b.clock_mhz if clock_mhz is None else clock_mhz, caps)
    nets = tuple(n if isinstance(n, str) else _NetKey.of(n) for n in networks)
    full = {**DEFAULT_CAPS, **caps}
    _check_schedule(schedule, kernel_packing)
    return _design_cached(b, float(ratio), nets, clock_mhz, kernel_packing, schedule,
                          tuple(sorted((k, float(v)) for k, v in full.items())))
