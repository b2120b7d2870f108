"""Activation packing: AXI beats <-> packed words of ``G`` 5-bit codes (``docs/architecture.md`` 6).

Layout (DDR, one image row of one plane of ``G = act_pack`` channels)::

    word  = G codes, channel j of the plane at bits [5j, 5j + 5)          (5G bits)
    beat  = wpb = floor(axi_data_bits / 5G) words, word k at bits [5Gk, 5G(k + 1));
            bits above 5G * wpb are zero
    row   = ceil(width / wpb) beats, starting on a beat; the last beat holds the remaining
            words, unused word slots are zero

A word is also the code vector of ``G`` channels at one pixel
(``ArrayLayout(unsigned(5), G)``), so the units below convert between beats and code vectors.
:func:`pack_row` / :func:`unpack_row` are the numpy reference of the same layout (for host
drivers and the tests).

* :class:`ActUnpacker`: beat (with the number of valid words) in, one word per cycle out.
  Throughput one word per cycle (a new beat is accepted in the cycle its last word leaves,
  so a row streams without bubbles); latency 1 cycle.
* :class:`ActPacker`: words in (``last`` closes a row's final, possibly partial beat), beats
  out. Throughput one word per cycle; a beat leaves one cycle after its last word arrives.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.spec.config import ACT_BITS, ACT_MAX, AcceleratorConfig
from filmqnn_hw.spec.geometry import words_per_beat

__all__ = [
    "ActPackError",
    "word_layout",
    "pack_row",
    "unpack_row",
    "ActUnpacker",
    "ActPacker",
]


class ActPackError(ValueError):
    """Codes or word counts that the packed layout cannot hold; the message says which."""


def word_layout(cfg: AcceleratorConfig) -> data.ArrayLayout:
    """One packed word = the codes of ``G`` channels: ``ArrayLayout(unsigned(5), G)``."""
    return data.ArrayLayout(unsigned(ACT_BITS), cfg.act_pack)


def pack_row(cfg: AcceleratorConfig, codes: np.ndarray) -> list[int]:
    """Beats (Python ints of ``axi_data_bits``) of one row: ``codes`` has shape ``(width, G)``."""
    codes = np.asarray(codes)
    g, wpb = cfg.act_pack, words_per_beat(cfg)
    if codes.ndim != 2 or codes.shape[1] != g:
        raise ActPackError(f"a row must have shape (width, G={g}), not {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() > ACT_MAX):
        raise ActPackError(f"activation codes must be in [0, {ACT_MAX}]")
    beats = []
    for b0 in range(0, codes.shape[0], wpb):
        beat = 0
        for k, word in enumerate(codes[b0 : b0 + wpb]):
            for j, c in enumerate(word):
                beat |= int(c) << (cfg.act_word_bits * k + ACT_BITS * j)
        beats.append(beat)
    return beats


def unpack_row(cfg: AcceleratorConfig, beats: list[int], width: int) -> np.ndarray:
    """Inverse of :func:`pack_row`: ``(width, G)`` codes from the row's beats."""
    wpb = words_per_beat(cfg)
    if len(beats) != -(-width // wpb):
        raise ActPackError(
            f"a row of {width} words needs {-(-width // wpb)} beats, not {len(beats)}"
        )
    out = np.zeros((width, cfg.act_pack), dtype=np.int64)
    for w in range(width):
        word = beats[w // wpb] >> (cfg.act_word_bits * (w % wpb))
        for j in range(cfg.act_pack):
            out[w, j] = (word >> (ACT_BITS * j)) & ACT_MAX
    return out


def _count_bits(wpb: int) -> int:
    return max(1, wpb.bit_length())


class _BeatWordConverter(wiring.Component):
    """Base of the two converters: a stream of beats and a stream of words.

    ``config`` (:class:`AcceleratorConfig`) supplies ``act_pack`` (G) and ``axi_data_bits``.
    Beats are ``StructLayout({"data": axi_data_bits, "words": bits(wpb)})`` (the beat and the
    number of valid words in it); ``word_shape`` is the payload of the word stream. With
    ``beats_in`` the beats come in on ``i`` and the words leave on ``o``, else the reverse.
    """

    def __init__(self, config: AcceleratorConfig, word_shape: data.Layout, *,
                 beats_in: bool) -> None:
        self._cfg = config
        self._wpb = words_per_beat(config)
        beat = stream.Signature(data.StructLayout(
            {"data": unsigned(config.axi_data_bits), "words": unsigned(_count_bits(self._wpb))}
        ))
        word = stream.Signature(word_shape)
        super().__init__({"i": In(beat), "o": Out(word)} if beats_in
                         else {"i": In(word), "o": Out(beat)})

    @property
    def words_per_beat(self) -> int:
        return self._wpb


class ActUnpacker(_BeatWordConverter):
    """AXI beats to packed words (code vectors), one word per cycle.

    Latency 1 cycle (beat accepted -> first word valid); throughput one word per cycle, no
    bubble between beats. ``i.words`` (1..wpb) is the number of valid words in the beat
    (``wpb`` except at the end of a row); ``0`` or more than ``wpb`` is treated as ``wpb``.

    Parameters as for :class:`_BeatWordConverter`. Members: ``i``, the beats
    (``In(stream.Signature(StructLayout({"data": axi_data_bits, "words": bits(wpb)})))``);
    ``o``, the words (``Out(stream.Signature(ArrayLayout(unsigned(5), G)))``).
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        super().__init__(config, word_layout(config), beats_in=True)

    def elaborate(self, platform):
        m = Module()
        wpb, wb = self._wpb, self._cfg.act_word_bits
        beat = Signal(self._cfg.axi_data_bits)
        n = Signal(range(wpb + 1))
        idx = Signal(range(wpb))
        busy = Signal()
        last_word = idx == n - 1
        m.d.comb += [
            self.o.valid.eq(busy),
            self.o.payload.eq(beat.word_select(idx, wb)),
            self.i.ready.eq(~busy | (self.o.ready & last_word)),
        ]
        with m.If(self.i.valid & self.i.ready):
            words = self.i.payload.words
            m.d.sync += [
                beat.eq(self.i.payload.data),
                n.eq(words),
                idx.eq(0),
                busy.eq(1),
            ]
            bad = words == 0
            if wpb < (1 << len(words)) - 1:
                bad = bad | (words > wpb)
            with m.If(bad):
                m.d.sync += n.eq(wpb)
        with m.Elif(self.o.valid & self.o.ready):
            with m.If(last_word):
                m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += idx.eq(idx + 1)
        return m


class ActPacker(_BeatWordConverter):
    """Packed words (code vectors) to AXI beats, one word per cycle.

    A beat is emitted when it holds ``wpb`` words or when a word with ``last`` set arrives
    (end of a row: a partial beat whose unused slots are zero). ``o.words`` says how many words
    the beat holds (for write strobes). Throughput one word per cycle; latency 1 cycle from the
    beat's last word to ``o.valid``.

    Parameters as for :class:`_BeatWordConverter`. Members: ``i``, the words with the row's
    end (``In(stream.Signature(StructLayout({"word": ArrayLayout(unsigned(5), G),
    "last": 1})))``); ``o``, the beats
    (``Out(stream.Signature(StructLayout({"data": axi_data_bits, "words": bits(wpb)})))``).
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        super().__init__(
            config, data.StructLayout({"word": word_layout(config), "last": 1}), beats_in=False
        )

    def elaborate(self, platform):
        m = Module()
        wpb, wb = self._wpb, self._cfg.act_word_bits
        acc = Signal(self._cfg.axi_data_bits)
        idx = Signal(range(wpb))
        merged = Signal(self._cfg.axi_data_bits)
        m.d.comb += merged.eq(acc)
        for k in range(wpb):
            with m.If(idx == k):
                m.d.comb += merged.word_select(k, wb).eq(self.i.payload.word)
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.If(self.i.payload.last | (idx == wpb - 1)):
                m.d.sync += [
                    self.o.payload.data.eq(merged),
                    self.o.payload.words.eq(idx + 1),
                    self.o.valid.eq(1),
                    acc.eq(0),
                    idx.eq(0),
                ]
            with m.Else():
                m.d.sync += [acc.eq(merged), idx.eq(idx + 1)]
        return m
