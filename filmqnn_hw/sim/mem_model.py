"""Python AXI4 slave memory model for Amaranth pysim testbenches.

:class:`AXIMemoryModel` serves a component's AXI4 manager port (read-only, write-only or full
:class:`~filmqnn_hw.gateware.axi.signatures.AXI4Signature`) from a ``bytearray``::

    mem = AXIMemoryModel(dut.m_axi, bytearray(1 << 16), seed=1, stall=0.3, read_latency=8)
    sim.add_testbench(mem.serve, background=True)

Behaviour, decided once per clock cycle:

* **Back-pressure**: with probability ``stall[ch]`` (a float for all channels or a dict keyed
  by ``"ar" "aw" "w" "r" "b"``) the model withholds ARREADY/AWREADY/WREADY, or does not start
  presenting an R beat / B response that cycle. Draws come from ``random.Random(seed)`` in a
  fixed order, so a run is reproducible for the same DUT behaviour.
* **Latency**: the first R beat of a burst appears no earlier than ``read_latency`` cycles after
  its AR handshake (plus ``0..latency_jitter`` extra cycles, drawn per burst); a B response no
  earlier than ``write_latency`` cycles after the burst's last W beat.
* **Bandwidth** (optional): ``bytes_per_cycle`` refills a token bucket shared by R and W beats;
  a beat needs a full beat's worth of tokens (so 0.5 * beat bytes per cycle = at most one beat
  every 2 cycles). ``None`` means no limit.
* **Responses**: in order (any ID), ID echoed. Addresses outside ``[base, base + len(mem))``
  get DECERR, addresses in ``error_ranges`` (list of ``(start, end)`` byte ranges) get SLVERR;
  such beats read as zero and are not written.
* **Protocol checks** (raise :class:`AXIProtocolError`): VALID dropped or payload changed
  before the handshake, non-INCR bursts, AxSIZE wider than the bus, bursts crossing 4 KiB,
  WLAST on the wrong beat, more than ``max_bursts`` accepted but unfinished bursts per
  direction (the model stops accepting at that depth, so this only fires on model bugs).

Statistics: ``read_bursts``/``write_bursts`` (lists of ``(addr, beats)`` in acceptance order),
``r_beats``, ``w_beats``, ``cycles``, ``max_reads_in_flight``, ``max_writes_in_flight``.

Speed: a few thousand cycles per second of pysim, depending on the DUT.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from filmqnn_hw.gateware.axi.signatures import BURST_INCR, RESP_DECERR, RESP_OKAY, RESP_SLVERR
from filmqnn_hw.spec.geometry import PAGE_BYTES

__all__ = ["AXIMemoryModel", "AXIProtocolError"]

_CHANNELS = ("ar", "aw", "w", "r", "b")


class AXIProtocolError(AssertionError):
    """The DUT broke an AXI4 rule the model checks."""


@dataclass
class _Burst:
    addr: int
    beats: int
    size: int
    id: int
    ready_cycle: int = 0
    beat: int = 0
    resp: int = RESP_OKAY
    beat_addrs: list[tuple[int, int]] = field(default_factory=list)


class AXIMemoryModel:
    """AXI4 slave backed by a bytearray, with seeded random stalls and latency/bandwidth.

    Parameters
    ----------
    port : interface
        The DUT's AXI4 manager interface (``Out(AXI4Signature(...))`` member).
    memory : bytearray or int
        Backing store (shared, modified in place) or a size in bytes (zero-filled).
    base : int
        Bus address of ``memory[0]``.
    seed : int
        Seed of the stall/jitter random generator.
    stall : float or dict
        Per-channel stall probability in [0, 1).
    read_latency, write_latency, latency_jitter : int
        Cycles, see module docstring.
    bytes_per_cycle : float or None
        Bandwidth limit shared by reads and writes.
    error_ranges : sequence of (int, int)
        Byte ranges answered with SLVERR.
    max_bursts : int
        Bursts per direction the model accepts before it stops asserting AxREADY.
    """

    def __init__(self, port, memory: bytearray | int, *, base: int = 0, seed: int = 0,
                 stall: float | dict[str, float] = 0.0, read_latency: int = 0,
                 write_latency: int = 0, latency_jitter: int = 0,
                 bytes_per_cycle: float | None = None,
                 error_ranges: tuple[tuple[int, int], ...] | list = (), max_bursts: int = 8):
        self.port = port
        sig = port.signature
        self.read = sig.read
        self.write = sig.write
        self.data_bytes = sig.data_width // 8
        self.id_width = sig.id_width
        self.mem = bytearray(memory) if isinstance(memory, int) else memory
        if not isinstance(self.mem, bytearray):
            raise TypeError(f"memory must be a bytearray or a size, not {type(memory).__name__}")
        self.base = base
        if isinstance(stall, dict):
            unknown = set(stall) - set(_CHANNELS)
            if unknown:
                raise ValueError(f"unknown stall channel(s) {sorted(unknown)}; use {_CHANNELS}")
            self.stall = {ch: float(stall.get(ch, 0.0)) for ch in _CHANNELS}
        else:
            self.stall = dict.fromkeys(_CHANNELS, float(stall))
        for ch, p in self.stall.items():
            if not 0.0 <= p < 1.0:
                raise ValueError(f"stall probability for {ch} must be in [0, 1), not {p}")
        for name, v in (("read_latency", read_latency), ("write_latency", write_latency),
                        ("latency_jitter", latency_jitter)):
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative int, not {v!r}")
        if bytes_per_cycle is not None and not bytes_per_cycle > 0:
            raise ValueError(f"bytes_per_cycle must be positive or None, not {bytes_per_cycle}")
        if max_bursts < 1:
            raise ValueError(f"max_bursts must be >= 1, not {max_bursts}")
        self.read_latency, self.write_latency = read_latency, write_latency
        self.latency_jitter = latency_jitter
        self.bytes_per_cycle = bytes_per_cycle
        self.error_ranges = [tuple(r) for r in error_ranges]
        self.max_bursts = max_bursts
        self.rng = random.Random(seed)

        self.read_bursts: list[tuple[int, int]] = []
        self.write_bursts: list[tuple[int, int]] = []
        self.r_beats = self.w_beats = self.cycles = 0
        self.max_reads_in_flight = self.max_writes_in_flight = 0

        self._reads: deque[_Burst] = deque()
        self._writes: deque[_Burst] = deque()  # AW accepted, W not complete
        self._wbuf: deque[tuple[int, int, int]] = deque()  # W beats ahead of their AW
        self._bq: deque[_Burst] = deque()
        self._tokens = 0.0
        self._out: dict[str, int] = {}
        self._r_beat: tuple | None = None  # beat being presented (held until RREADY)
        self._b_resp: _Burst | None = None
        self._prev: dict[str, tuple] = {}

    # ---------------------------------------------------------------- helpers
    def reset(self, memory: bytearray | int, **behaviour) -> None:
        """Start over on ``memory`` with new behaviour (the keyword arguments of the
        constructor) on the same port: queues, bursts in flight, counters and the random
        generator are those of a new model. Only while the port is idle (the master in reset),
        so that no handshake is under way; :func:`filmqnn_hw.sim.pysim.run_pysim_jobs` runs
        one simulation's jobs through it."""
        self.__init__(self.port, memory, **behaviour)

    def _set(self, ctx, name: str, value: int) -> None:
        if self._out.get(name) != value:
            ctx.set(getattr(self.port, name), value)
            self._out[name] = value

    def _stalled(self, ch: str) -> bool:
        p = self.stall[ch]
        return p > 0.0 and self.rng.random() < p

    def _resp_for(self, start: int, end: int) -> int:
        if start < self.base or end > self.base + len(self.mem):
            return RESP_DECERR
        for lo, hi in self.error_ranges:
            if start < hi and lo < end:
                return RESP_SLVERR
        return RESP_OKAY

    def _accept_burst(self, kind: str, addr: int, length: int, size: int, burst: int,
                      ident: int) -> _Burst:
        if burst != BURST_INCR:
            raise AXIProtocolError(f"{kind}: burst type {burst} at 0x{addr:x}; model supports INCR")
        nbytes = 1 << size
        if nbytes > self.data_bytes:
            raise AXIProtocolError(
                f"{kind}: AxSIZE {size} wider than the {self.data_bytes}-byte bus")
        beats = length + 1
        aligned = addr & ~(nbytes - 1)
        last_byte = aligned + beats * nbytes - 1
        if addr // PAGE_BYTES != last_byte // PAGE_BYTES:
            raise AXIProtocolError(
                f"{kind}: burst 0x{addr:x} + {beats} beats x {nbytes} B crosses a 4 KiB boundary")
        b = _Burst(addr, beats, size, ident)
        for i in range(beats):
            start = addr if i == 0 else aligned + i * nbytes
            b.beat_addrs.append((start, aligned + (i + 1) * nbytes))
        return b

    def _check_stable(self, ch: str, valid: int, payload: tuple, handshake: bool) -> None:
        prev = self._prev.get(ch)
        if prev is not None and prev[0] and not prev[2]:
            if not valid:
                raise AXIProtocolError(f"{ch.upper()}VALID dropped before the handshake "
                                       f"(cycle {self.cycles})")
            if payload != prev[1]:
                raise AXIProtocolError(f"{ch.upper()} payload changed while VALID was waiting "
                                       f"(cycle {self.cycles}): {prev[1]} -> {payload}")
        self._prev[ch] = (valid, payload, handshake)

    def _read_beat_data(self, b: _Burst) -> tuple[int, int]:
        start, end = b.beat_addrs[b.beat]
        resp = self._resp_for(start, end)
        if resp != RESP_OKAY:
            return 0, resp
        lane = start % self.data_bytes
        chunk = self.mem[start - self.base:end - self.base]
        return int.from_bytes(chunk, "little") << (8 * lane), resp

    def _write_beat(self, b: _Burst, data: int, strb: int) -> None:
        start, end = b.beat_addrs[b.beat]
        resp = self._resp_for(start, end)
        if resp != RESP_OKAY:
            b.resp = max(b.resp, resp)
            return
        window = start - start % self.data_bytes
        for lane in range(self.data_bytes):
            a = window + lane
            if start <= a < end and strb >> lane & 1:
                self.mem[a - self.base] = data >> (8 * lane) & 0xFF

    # ---------------------------------------------------------------- main loop
    async def serve(self, ctx) -> None:
        """Serve the port forever (add with ``sim.add_testbench(model.serve, background=True)``)."""
        p = self.port
        names: list[str] = []
        if self.read:
            names += ["arvalid", "araddr", "arlen", "arsize", "arburst", "rready"]
            if self.id_width:
                names.append("arid")
        if self.write:
            names += ["awvalid", "awaddr", "awlen", "awsize", "awburst",
                      "wvalid", "wdata", "wstrb", "wlast", "bready"]
            if self.id_width:
                names.append("awid")
        sigs = [getattr(p, n) for n in names]
        if self.read:
            for n in ("arready", "rvalid", "rdata", "rresp", "rlast"):
                self._set(ctx, n, 0)
        if self.write:
            for n in ("awready", "wready", "bvalid", "bresp"):
                self._set(ctx, n, 0)
        while True:
            drive = self._drive(ctx)
            values = await ctx.tick().sample(*sigs)
            self._step(dict(zip(names, values[2:], strict=True)), drive)
            self.cycles += 1

    def _drive(self, ctx) -> dict[str, int]:
        """Choose this cycle's slave-side outputs; returns them for the handshake step."""
        if self.bytes_per_cycle is not None:
            self._tokens = min(self._tokens + self.bytes_per_cycle,
                               self.bytes_per_cycle + self.data_bytes)
        has_budget = self.bytes_per_cycle is None
        d: dict[str, int] = {}
        if self.read:
            d["arready"] = int(len(self._reads) < self.max_bursts and not self._stalled("ar"))
            if self._r_beat is None and self._reads:
                b = self._reads[0]
                if (b.ready_cycle <= self.cycles and not self._stalled("r")
                        and (has_budget or self._tokens >= self.data_bytes)):
                    data, resp = self._read_beat_data(b)
                    self._r_beat = (data, resp, int(b.beat == b.beats - 1), b.id)
                    if not has_budget:
                        self._tokens -= self.data_bytes
            d["rvalid"] = int(self._r_beat is not None)
            if self._r_beat is not None:
                data, resp, last, ident = self._r_beat
                self._set(ctx, "rdata", data)
                self._set(ctx, "rresp", resp)
                self._set(ctx, "rlast", last)
                if self.id_width:
                    self._set(ctx, "rid", ident)
            self._set(ctx, "arready", d["arready"])
            self._set(ctx, "rvalid", d["rvalid"])
        if self.write:
            d["awready"] = int(len(self._writes) + len(self._bq) < self.max_bursts
                               and not self._stalled("aw"))
            d["wready"] = int(len(self._wbuf) < 4 * 256 and not self._stalled("w")
                              and (has_budget or self._tokens >= self.data_bytes))
            if self._b_resp is None and self._bq and self._bq[0].ready_cycle <= self.cycles \
                    and not self._stalled("b"):
                self._b_resp = self._bq[0]
            d["bvalid"] = int(self._b_resp is not None)
            if self._b_resp is not None:
                self._set(ctx, "bresp", self._b_resp.resp)
                if self.id_width:
                    self._set(ctx, "bid", self._b_resp.id)
            self._set(ctx, "awready", d["awready"])
            self._set(ctx, "wready", d["wready"])
            self._set(ctx, "bvalid", d["bvalid"])
        return d

    def _address_handshake(self, ch: str, s: dict[str, int], d: dict[str, int]) -> _Burst | None:
        """Check that address channel ``ch`` (``"ar"`` or ``"aw"``) holds still while stalled;
        on a handshake at this edge, the accepted burst."""
        fields = (s[ch + "addr"], s[ch + "len"], s[ch + "size"], s[ch + "burst"],
                  s.get(ch + "id", 0))
        hs = bool(s[ch + "valid"] and d[ch + "ready"])
        self._check_stable(ch, s[ch + "valid"], fields, hs)
        return self._accept_burst(ch.upper(), *fields) if hs else None

    def _step(self, s: dict[str, int], d: dict[str, int]) -> None:
        """Apply the handshakes that happened at this clock edge."""
        if self.read:
            b = self._address_handshake("ar", s, d)
            if b is not None:
                jitter = self.rng.randint(0, self.latency_jitter) if self.latency_jitter else 0
                b.ready_cycle = self.cycles + 1 + self.read_latency + jitter
                self._reads.append(b)
                self.read_bursts.append((b.addr, b.beats))
                self.max_reads_in_flight = max(self.max_reads_in_flight, len(self._reads))
            if d["rvalid"] and s["rready"]:
                b = self._reads[0]
                b.beat += 1
                self.r_beats += 1
                self._r_beat = None
                if b.beat == b.beats:
                    self._reads.popleft()
        if self.write:
            b = self._address_handshake("aw", s, d)
            if b is not None:
                self._writes.append(b)
                self.write_bursts.append((b.addr, b.beats))
            whs = bool(s["wvalid"] and d["wready"])
            self._check_stable("w", s["wvalid"], (s["wdata"], s["wstrb"], s["wlast"]), whs)
            if whs:
                self._wbuf.append((s["wdata"], s["wstrb"], s["wlast"]))
                self.w_beats += 1
                if self.bytes_per_cycle is not None:
                    self._tokens -= self.data_bytes
            while self._wbuf and self._writes:
                b = self._writes[0]
                data, strb, last = self._wbuf.popleft()
                if bool(last) != (b.beat == b.beats - 1):
                    raise AXIProtocolError(
                        f"WLAST={last} on beat {b.beat + 1} of a {b.beats}-beat burst at "
                        f"0x{b.addr:x} (cycle {self.cycles})")
                self._write_beat(b, data, strb)
                b.beat += 1
                if b.beat == b.beats:
                    self._writes.popleft()
                    b.ready_cycle = self.cycles + 1 + self.write_latency
                    self._bq.append(b)
            self.max_writes_in_flight = max(self.max_writes_in_flight,
                                            len(self._writes) + len(self._bq))
            if d["bvalid"] and s["bready"]:
                self._bq.popleft()
                self._b_resp = None
