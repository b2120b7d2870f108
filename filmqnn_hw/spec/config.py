"""The accelerator configuration: the one object every generator and the exporter read.

This module is the single definition of the accelerator's parameters. It imports neither
torch nor amaranth, so the quantizer/exporter (``filmqnn_quant``), the RTL generators
(``filmqnn_hw``), the HLS generator and the reports all share it.

The design-space exploration (``filmqnn_hw.search.dse``) produces an :class:`AcceleratorConfig`;
nothing downstream re-derives any of its fields. The weight-image exporter stamps
:meth:`AcceleratorConfig.config_hash` into every image so that an image packed for one
configuration is refused by another.

Array organisation (see ``docs/architecture.md``)
-------------------------------------------------
The PE array computes ``tm`` output channels x ``tn`` input channels per cycle. The first
``n8_slots`` output lanes of every ``tm``-wide tile of output channels are 8-bit-weight
lanes, the remaining ``tm - n8_slots`` are 4-bit-weight lanes. Each group is split between a
DSP engine and a LUT engine (``w4_dsp_lanes + w4_lut_lanes == tm - n8_slots``,
``w8_dsp_lanes + w8_lut_lanes == n8_slots``). All lanes see the same ``tn`` input
activations (broadcast). The quantizer reorders filters so that, inside every tile, the
8-bit filters occupy exactly the 8-bit slots.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ACT_BITS",
    "ACT_MAX",
    "W4_MIN",
    "W4_MAX",
    "W8_MIN",
    "W8_MAX",
    "CONFIG_FORMAT_VERSION",
    "AcceleratorConfig",
    "ConfigError",
    "accumulator_bits",
    "TREE_FAN_IN",
    "tree_stages",
    "tree_pipeline_bits",
]

#: Activations are unsigned 5-bit codes 0..31 everywhere.
ACT_BITS = 5
ACT_MAX = (1 << ACT_BITS) - 1
#: 4-bit weights: symmetric levels with zero (paper Eq. 1), never -8.
W4_MIN, W4_MAX = -7, 7
#: 8-bit weights: symmetric levels with zero, never -128.
W8_MIN, W8_MAX = -127, 127

#: Bumped whenever a field is added, removed or changes meaning.
CONFIG_FORMAT_VERSION = 1


class ConfigError(ValueError):
    """A configuration that is inconsistent or cannot be built. The message says what to fix."""


def accumulator_bits(fan_in: int, w_max: int = W8_MAX, a_max: int = ACT_MAX) -> int:
    """Signed accumulator width that holds any sum of ``fan_in`` products ``w * a``.

    ``|w| <= w_max`` and ``0 <= a <= a_max``, so ``|sum| <= fan_in * w_max * a_max``; a
    two's-complement register of ``B`` bits holds ``[-2**(B-1), 2**(B-1) - 1]``, so ``B`` is
    the smallest width with ``2**(B-1) - 1 >= fan_in * w_max * a_max``.
    """
    if fan_in < 1:
        raise ConfigError(f"fan-in must be at least 1, not {fan_in}")
    bound = fan_in * w_max * a_max
    return max(2, bound.bit_length() + 1)


#: Terms one register stage of a dot unit's adder tree sums (three adder levels); see
#: :mod:`filmqnn_hw.gateware.arith.dot`.
TREE_FAN_IN = 8


def tree_stages(n_terms: int) -> int:
    """Register stages of an adder tree over ``n_terms`` terms, :data:`TREE_FAN_IN` per stage
    (1 up to 8 terms, 2 up to 64, ...)."""
    if n_terms < 1:
        raise ConfigError(f"an adder tree needs at least one term, not {n_terms}")
    stages = 1
    while n_terms > TREE_FAN_IN:
        n_terms = -(-n_terms // TREE_FAN_IN)
        stages += 1
    return stages


def tree_pipeline_bits(n_terms: int, term_bits: int) -> int:
    """Register bits of the partial-sum stages of an adder tree over ``n_terms`` terms of
    ``term_bits`` each (every stage but the last, which is the unit's ``tree`` register).

    A group of ``g`` terms of width ``b`` sums to ``b + ceil(log2 g)`` bits (one bit per
    balanced adder level), as :func:`filmqnn_hw.gateware.arith.dot.pipelined_sum` registers it.
    """
    widths = [term_bits] * n_terms
    bits = 0
    for _ in range(tree_stages(n_terms) - 1):
        nxt = []
        for g in range(0, len(widths), TREE_FAN_IN):
            grp = widths[g : g + TREE_FAN_IN]
            nxt.append(max(grp) + (len(grp) - 1).bit_length())
        bits += sum(nxt)
        widths = nxt
    return bits


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"config field {name!r} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"config field {name!r} must be {rng}, not {value}")


@dataclass(frozen=True)
class AcceleratorConfig:
    """Every parameter of one generated accelerator.

    Produced by the design-space exploration for a board; read by the RTL generators, the
    HLS generator, the weight-image exporter, the cycle model and the reports.
    """

    # -- target ---------------------------------------------------------------------------
    board: str
    part: str
    family: str  # "xc7" (DSP48E1) or "xcup" (DSP48E2)
    clock_mhz: float

    # -- PE array ---------------------------------------------------------------------------
    tm: int  # output channels per tile (output lanes)
    tn: int  # input channels per tile (MACs per output lane per cycle)
    tr: int  # output rows per spatial tile
    tc: int  # output columns per spatial tile
    n8_slots: int  # 8-bit lanes at the start of every tm tile
    w4_dsp_lanes: int
    w4_lut_lanes: int
    w8_dsp_lanes: int
    w8_lut_lanes: int
    kernel_packing: bool = True  # 4-bit DSP engine uses kernel-row packing (6 MACs/DSP) for k>=3

    # -- data movement -----------------------------------------------------------------------
    act_pack: int = 8  # G: 5-bit activations per packed word (channel direction)
    axi_data_bits: int = 128  # width of each AXI4 master port
    axi_ports: int = 1  # number of AXI4 master ports to DDR
    ddr_bytes_per_cycle: float = (
        0.0  # sustained DDR bandwidth at clock_mhz (bytes/cycle), 0=unknown
    )
    # most cycles over which the next tap group's weights are read into the PE array while the
    # current tap computes: the weight memory is read that many times narrower than one tap's
    # weights (the RTL slices a tap record into geometry.weight_slicing's F <= wfill_cycles
    # pieces; the target schedule delivers ceil(tm / wfill_cycles) lanes per cycle)
    wfill_cycles: int = 1
    # on-chip feature-map store (BRAM) for whole tensors that never go to DDR; 0 = none
    fm_cache_kbits: int = 0
    # pixel groups: up to px_max output pixels per cycle share the tn slots (layers whose input
    # channels fit tn/px), with segmented adder trees and px accumulators per lane; 1 = off
    px_max: int = 1
    # output-pipeline (requantization) units, <= px_max * tm; a pixel group of tm lanes drains
    # in ceil(px * tm / requant_lanes) cycles. 0 = one per lane (tm)
    requant_lanes: int = 0

    # -- numerics ----------------------------------------------------------------------------
    ratio_8bit: float = 0.05  # R, the input of the design search
    max_fan_in: int = 4608  # longest accumulation the array supports (3x3x512)
    w4_min: int = W4_MIN
    w4_max: int = W4_MAX
    w8_min: int = W8_MIN
    w8_max: int = W8_MAX

    # -- free-form, non-hashed notes (e.g. which DSE objective chose it) ------------------
    notes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        self.validate()

    # ---------------------------------------------------------------------------------------
    @property
    def acc_bits(self) -> int:
        """Accumulator width derived from ``max_fan_in`` and the widest weight range."""
        w_abs = max(abs(self.w4_min), self.w4_max, abs(self.w8_min), self.w8_max)
        return accumulator_bits(self.max_fan_in, w_abs, ACT_MAX)

    @property
    def n4_slots(self) -> int:
        return self.tm - self.n8_slots

    @property
    def peak_macs_per_cycle(self) -> int:
        """MACs per cycle of the PE array on a layer with no kernel-packing benefit."""
        return self.tm * self.tn

    @property
    def kernel_slots(self) -> int:
        """MACs per lane per cycle in kernel-packed mode (tn/4 channels x 3 taps x 2 columns).

        Equals ``tn`` when ``kernel_packing`` is off. The LUT and 8-bit engines are built for
        this many multipliers per lane so that every lane keeps pace in both modes.
        """
        return (self.tn // 4) * 6 if self.kernel_packing else self.tn

    @property
    def out_lanes(self) -> int:
        """Output-pipeline (requantization) units: ``requant_lanes``, or ``tm`` if 0."""
        return self.requant_lanes or self.tm

    @property
    def wfill_lanes(self) -> int:
        """Lanes whose shadow weights the weight buffers fill per cycle."""
        return math.ceil(self.tm / self.wfill_cycles)

    @property
    def ddr_beats_per_cycle(self) -> float:
        """Sustained DDR bandwidth in AXI beats of ``axi_data_bits`` per cycle (0: unknown)."""
        return self.ddr_bytes_per_cycle / (self.axi_data_bits / 8)

    @property
    def act_word_bits(self) -> int:
        """Width of one packed activation word (G channels x 5 bits)."""
        return self.act_pack * ACT_BITS

    def validate(self) -> None:
        if self.family not in ("xc7", "xcup"):
            raise ConfigError(
                f"family must be 'xc7' (DSP48E1) or 'xcup' (DSP48E2), not {self.family!r}"
            )
        if not (isinstance(self.clock_mhz, (int, float)) and self.clock_mhz > 0):
            raise ConfigError(f"clock_mhz must be a positive number, not {self.clock_mhz!r}")
        for name in ("tm", "tn", "tr", "tc", "act_pack", "axi_ports", "max_fan_in",
                     "wfill_cycles"):
            _check_int(name, getattr(self, name), 1)
        _check_int("fm_cache_kbits", self.fm_cache_kbits, 0)
        if self.px_max not in (1, 2, 4, 8):
            raise ConfigError(f"px_max must be 1, 2, 4 or 8, not {self.px_max!r}")
        _check_int("requant_lanes", self.requant_lanes, 0, self.tm * self.px_max)
        bw = self.ddr_bytes_per_cycle
        if isinstance(bw, bool) or not isinstance(bw, (int, float)) or bw < 0:
            raise ConfigError(
                f"ddr_bytes_per_cycle must be >= 0 (0 = unknown), not {self.ddr_bytes_per_cycle!r}"
            )
        for name in ("n8_slots", "w4_dsp_lanes", "w4_lut_lanes", "w8_dsp_lanes", "w8_lut_lanes"):
            _check_int(name, getattr(self, name), 0)
        if self.n8_slots > self.tm:
            raise ConfigError(f"n8_slots={self.n8_slots} exceeds the tile width tm={self.tm}")
        if self.w4_dsp_lanes + self.w4_lut_lanes != self.tm - self.n8_slots:
            raise ConfigError(
                f"4-bit lanes (dsp {self.w4_dsp_lanes} + lut {self.w4_lut_lanes}) must equal "
                f"tm - n8_slots = {self.tm - self.n8_slots}"
            )
        if self.w8_dsp_lanes + self.w8_lut_lanes != self.n8_slots:
            raise ConfigError(
                f"8-bit lanes (dsp {self.w8_dsp_lanes} + lut {self.w8_lut_lanes}) must equal "
                f"n8_slots = {self.n8_slots}"
            )
        if not 0.0 <= self.ratio_8bit <= 1.0:
            raise ConfigError(f"ratio_8bit must be in [0, 1], not {self.ratio_8bit}")
        if self.axi_data_bits not in (32, 64, 128, 256, 512):
            raise ConfigError(
                f"axi_data_bits must be one of 32/64/128/256/512, not {self.axi_data_bits}"
            )
        if self.act_word_bits > self.axi_data_bits:
            raise ConfigError(
                f"a packed activation word ({self.act_pack} x {ACT_BITS} bits) is wider than the "
                f"AXI port ({self.axi_data_bits} bits): lower act_pack"
            )
        if not (-8 <= self.w4_min <= 0 <= self.w4_max <= 7):
            raise ConfigError(f"4-bit weight range [{self.w4_min}, {self.w4_max}] is not 4-bit")
        if not (-128 <= self.w8_min <= 0 <= self.w8_max <= 127):
            raise ConfigError(f"8-bit weight range [{self.w8_min}, {self.w8_max}] is not 8-bit")

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["format_version"] = CONFIG_FORMAT_VERSION
        d["acc_bits"] = self.acc_bits
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AcceleratorConfig:
        d = dict(d)
        version = d.pop("format_version", CONFIG_FORMAT_VERSION)
        if version != CONFIG_FORMAT_VERSION:
            raise ConfigError(
                f"config format version {version} is not supported (this filmqnn reads "
                f"version {CONFIG_FORMAT_VERSION}); regenerate it with this version's build"
            )
        d.pop("acc_bits", None)  # derived
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config fields: {', '.join(unknown)}")
        missing = sorted(
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in d
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        )
        if missing:
            raise ConfigError(f"config is missing fields: {', '.join(missing)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> AcceleratorConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def read(cls, path: str | os.PathLike) -> AcceleratorConfig:
        """The config in the JSON file ``path``; :class:`ConfigError` names the file and the
        problem (missing, unreadable, not JSON, not a valid config)."""
        try:
            return cls.from_json(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path} does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path} cannot be read: {e}") from None
        except (ConfigError, json.JSONDecodeError, TypeError, ValueError, KeyError) as e:
            raise ConfigError(f"{path} is not a valid accelerator config: {e}") from None

    def config_hash(self) -> str:
        """SHA-256 (hex) over every field that affects hardware or image layout.

        ``notes`` is excluded. Two configurations with equal hashes build the same hardware
        and read the same weight images.
        """
        d = self.to_dict()
        d.pop("notes", None)
        canon = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()

    def replace(self, **changes: Any) -> AcceleratorConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def small(
        cls,
        *,
        tm: int = 8,
        tn: int = 8,
        n8_slots: int = 1,
        family: str = "xc7",
        tr: int = 4,
        tc: int = 4,
        act_pack: int = 4,
        axi_data_bits: int = 64,
        max_fan_in: int = 4608,
        ratio_8bit: float = 0.05,
        wfill_cycles: int = 16,
    ) -> AcceleratorConfig:
        """A small array for simulation tests and quick runs (not a DSE result).

        ``wfill_cycles`` defaults to the design-space exploration's value, so the weight
        register is filled over several cycles as in the generated boards' accelerators.
        """
        return cls(
            board="sim",
            part="none",
            family=family,
            clock_mhz=100.0,
            tm=tm,
            tn=tn,
            tr=tr,
            tc=tc,
            n8_slots=n8_slots,
            w4_dsp_lanes=tm - n8_slots,
            w4_lut_lanes=0,
            w8_dsp_lanes=n8_slots,
            w8_lut_lanes=0,
            act_pack=act_pack,
            axi_data_bits=axi_data_bits,
            axi_ports=1,
            max_fan_in=max_fan_in,
            ratio_8bit=ratio_8bit,
            wfill_cycles=wfill_cycles,
            notes={"origin": "AcceleratorConfig.small"},
        )

    # -- tiling helpers used identically by exporter, cycle model and generators ------------
    def n_tiles_out(self, out_channels: int) -> int:
        return math.ceil(out_channels / self.tm)

    def n8_capacity(self, out_channels: int) -> int:
        """Number of 8-bit filters a layer with ``out_channels`` filters gets on this array.

        Every full tile contributes ``n8_slots``; a partial last tile of ``r`` filters
        contributes ``min(r, n8_slots)``.
        """
        full, rem = divmod(out_channels, self.tm)
        return full * self.n8_slots + min(rem, self.n8_slots)

    def is_8bit_slot(self, position: int) -> bool:
        """Whether output-channel position ``position`` (after reordering) is an 8-bit slot."""
        return position % self.tm < self.n8_slots
