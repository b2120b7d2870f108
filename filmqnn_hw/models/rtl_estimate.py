"""Fast estimate of the generated RTL's cycles, per chunk instead of per clock.

The RTL's exact cycles come from the RTL itself, run on its timing twin in Verilator
(:mod:`filmqnn_hw.sim.twin`): a build per config and seconds per frame, too slow for the
design search, which compares dozens of arrays, or for a report that should come in seconds.
This module follows the same schedule (``docs/rtl.md``, *Schedule*) one **chunk** at a time, as
max-plus recurrences over the four agents and their two-bank hand-offs:

* **fetch** (per step: the parameter read; per chunk: the weight tap records on the weight
  ports, the input rectangle on port 0 behind the loader's address divider; after the last
  chunk: the residual tile, a beat per cycle like the input). A chunk's weights go to the
  bank the compute agent left when it started the previous chunk, its input to the bank it
  freed when it finished the chunk before that;
* **compute** (per tap: ``rows x ceil(cols / 2) x 2`` issue cycles, at least the weight
  staging time of the next record; per step: the PE pipeline flush);
* **drain** (per step: the divider, ``rq_passes`` cycles per output pixel through the
  requantization units into one of two output tile banks, about one cycle lost to the
  accumulator write-back's use of the read port), which frees the accumulator
  bank and the step slot of the step after next, and the **store** agent (the bank's beats
  to DDR back to back, one write burst per plane row), which frees the output tile bank for
  the step after next;

plus the per-layer descriptor fetch and the wait for the last write responses. Reads see the
memory's latency and the outstanding-burst limit; port 0 moves at most one beat per cycle
and all ports together at most the board's DDR beats per cycle: while a chunk's weight
ports stream next to its input, each stretch in which they ask for more than that cap is
stretched by the excess (:func:`_shared_ddr_delay`). Latencies are the engine's
own (divider, PE array, requantization pipeline) and the testbench's memory
(:class:`~filmqnn_hw.spec.ddr_timing.DdrTiming`). It is an estimate: the tests hold it to the
twin's measured cycles within a stated tolerance per network and layer
(``tests/models/test_rtl_estimate.py``); the measured cycles stay the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.ddr_timing import DdrTiming
from filmqnn_hw.spec.geometry import (
    DIM,
    REQUANT_LATENCY,
    divider_latency,
    dw_group_width,
    geometry,
    pe_latency,
)
from filmqnn_hw.spec.networks import Layer, Network, get_network
from filmqnn_hw.spec.program import DESC_SIZE, HEADER_SIZE, PARAM_SIZE

__all__ = ["RtlEstimate", "estimate_network", "estimate_layer"]


@dataclass(frozen=True)
class RtlEstimate:
    """Estimated cycles of one frame: per layer (``names[i]``, ``layers[i]``) and in total."""

    network: str
    names: list[str]
    layers: list[int]
    clock_mhz: float
    macs: int

    @property
    def cycles(self) -> int:
        return sum(self.layers)

    @property
    def fps(self) -> float:
        """Frames per second at ``clock_mhz`` (one frame per start)."""
        return self.clock_mhz * 1e6 / self.cycles


class _Port:
    """Time at which a read port (or the DDR) is free again, with a rate in beats/cycle."""

    __slots__ = ("free", "rate")

    def __init__(self, rate: float) -> None:
        self.free, self.rate = 0.0, rate

    def stream(self, start: float, beats: float, pace: float = 1.0) -> float:
        """Move ``beats`` beats from ``start`` (or when free), each taking ``pace`` cycles
        of the consumer or ``1 / rate`` of the memory, whichever is slower."""
        t0 = max(start, self.free)
        self.free = t0 + beats * max(pace, 1.0 / self.rate)
        return self.free


class _Ctx:
    """Per-configuration constants of the RTL (one place: :func:`geometry`)."""

    def __init__(self, cfg: AcceleratorConfig, tim: DdrTiming) -> None:
        geo = self.geo = geometry(cfg)
        self.cfg, self.tim = cfg, tim
        self.bb = cfg.axi_data_bits // 8
        self.lat_div = divider_latency(DIM)
        self.lat_planes = divider_latency(DIM + 1)
        self.flush = 5 + pe_latency(cfg)
        rate = tim.beats_per_cycle  # 0: no cap
        self.rate = rate if rate > 0 else float(1 + geo.weight_ports)
        self.port0 = min(1.0, self.rate)
        kp = max(1, geo.weight_ports)
        self.wrate = min(1.0, self.rate / kp) if geo.weight_ports else self.port0

        def upb(rec: int) -> int:
            return self.bb // math.gcd(self.bb, rec)

        self.upb_dense, self.upb_dw = upb(geo.wbuf_slice_bytes), upb(geo.dw_rec_bytes)
        self.upb_p = upb(PARAM_SIZE)
        L = tim.read_latency
        # a read command: skid buffer, splitter, registered AR, then the memory's latency
        self.rd_lat = L + 4
        self.max_out = min(16, tim.max_outstanding)


def _read_stream(ctx: _Ctx, n_cmds: int, beats: int) -> float:
    """Cycles to move ``beats`` beats in ``n_cmds`` commands on one port, after the first
    beat: one command per two cycles into the splitter, at most ``max_outstanding`` bursts
    in flight, one beat per cycle at most."""
    if beats <= 0:
        return 0.0
    nb = beats / n_cmds
    # commands go out two cycles apart; the 17th waits for the first burst to finish
    rounds, rest = divmod(n_cmds - 1, ctx.max_out)
    issue = rounds * max(2.0 * ctx.max_out, ctx.rd_lat + 2 + nb) + 2.0 * (rest + 1)
    return max(beats / ctx.port0, issue) - 1


def _rect(y0: int, hin: int, h: int, x0: int, win: int, w: int, ystep: int, wpb: int
          ) -> tuple[int, int, int]:
    """Rows, beats per row and columns of a clipped input rectangle."""
    ylo, xlo = max(y0, 0), max(x0, 0)
    yhi, xhi = min(y0 + hin, h) - 1, min(x0 + win, w) - 1
    if ylo > yhi or xlo > xhi:
        return 0, 0, 0
    return (yhi - ylo) // ystep + 1, xhi // wpb - xlo // wpb + 1, xhi - xlo + 1


def _port_beats(bb: int, rec: int, taps: int, kp: int) -> list[int]:
    """Beats on each of ``kp`` weight ports for ``taps`` consecutive records of ``rec`` bytes,
    dealt round robin, each its own command from its byte offset."""
    per_port = [0] * kp
    for t in range(taps):
        off = (t * rec) % bb
        per_port[t % kp] += (off + rec + bb - 1) // bb
    return per_port


def _shared_ddr_delay(ctx: _Ctx, w0: float, port_ends: list[float], pace: float,
                      in0: float, in1: float, in_beats: int) -> float:
    """Cycles the input stream ``[in0, in1)`` (``in_beats`` beats on port 0) loses to the
    DDR cap while weight ports stream from ``w0`` (port ``k`` busy until ``port_ends[k]``,
    a beat per ``pace`` cycles): in every stretch where the busy weight ports and port 0
    together ask for more beats per cycle than the DDR moves (reads only; the store agent's
    writes are not counted), each gets its share of the cap (the testbench's token bucket)."""
    if in1 <= in0:
        return 0.0
    r0 = min(ctx.port0, in_beats / (in1 - in0))  # port 0's own pace (command issue bound)
    ends = sorted(port_ends)
    extra, a = 0.0, w0
    for i, b in enumerate(ends):
        demand = (len(ends) - i) / pace + r0
        if demand > ctx.rate:
            ov = min(b, in1) - max(a, in0)
            if ov > 0:
                extra += ov * (demand / ctx.rate - 1.0)
        a = b
    return extra


def estimate_layer(ctx: _Ctx, ly: Layer, *, stem: bool = False, logits: bool = False,
                   first: bool = False) -> int:
    """Estimated cycles of one layer, from its descriptor fetch to the next one's."""
    cfg, geo, tim = ctx.cfg, ctx.geo, ctx.tim
    g, wpb, kp = cfg.act_pack, geo.wpb, geo.weight_ports
    TM, TR, TC = cfg.tm, cfg.tr, cfg.tc
    kind = ly.kind
    in_c, in_h, in_w = ly.in_ch, ly.in_h, ly.in_w
    kh, kw, st, pad = ly.kh, ly.kw, ly.stride, ly.pad
    out_c, out_h, out_w = ly.out_ch, ly.out_h, ly.out_w
    if kind == "gap":
        kh, kw, st, pad = in_h, in_w, 1, 0
    if stem:
        in_c, in_h, in_w = ly.in_ch * kh * kw, out_h, out_w
        kh = kw = st = 1
        pad = 0
    dense = kind == "conv"
    dw = kind == "dw"
    unit = not (dense or dw)
    has_w = dense or dw
    has_res = ly.residual is not None or kind == "add"
    taps = kh * kw
    n_chunks = math.ceil(in_c / cfg.tn) if dense else 1
    rec = geo.rec_bytes if dense else geo.dw_rec_bytes
    w_resident = n_chunks * taps <= geo.wbuf_records
    upb_w = ctx.upb_dense if dense else ctx.upb_dw
    wf = geo.wbuf_slices
    # a depthwise kernel row runs in groups of dgw taps (one staged slice per record)
    dgw = dw_group_width(geo.dw_taps, wpb, kw, st) if dw else 1
    ctaps = kh * math.ceil(kw / dgw)
    wf_first = wf - dgw if dw else 0
    wf_need = 0 if unit else (wf - wf_first) + 2  # TAP -> ready for the next record
    in_planes_total = math.ceil(in_c / g)
    out_planes_total = math.ceil(out_c / g)
    ystep = 2 if (kh == 1 and st == 2 and pad == 0) else 1
    # weight ports: records round robin; none: one command for the chunk's records on port 0
    w_ports = _port_beats(ctx.bb, rec, taps, kp) if (has_w and kp) else []
    w_port = max(w_ports, default=0)
    w_total = math.ceil(taps * rec / ctx.bb) if (has_w and not kp) else 0
    # weight port: a record's beats at the gearbox's pace, plus its END and IDLE states
    w_pace = max(upb_w, 1 / ctx.wrate)
    w_port_cycles = w_port * w_pace + 2 * math.ceil(taps / max(kp, 1))
    # when each weight port is done, from its first beat (beats, then END/IDLE per record)
    w_ends = [b * w_pace + 2 * len(range(k, taps, kp)) for k, b in enumerate(w_ports) if b]
    rd = ctx.rd_lat

    port0 = _Port(ctx.port0)
    drain_clear = [0.0, 0.0]  # accumulator bank / step slot freed by the drain of step j-2
    drain_end = 0.0
    rq_end = 0.0  # the drain's requantization of the previous step done
    st_ends: list[float] = []  # the store agent done with every stored step
    comp_t = 0.0  # compute agent free (after the previous step's flush)
    cs: list[float] = []  # compute start of every chunk of the layer (weight bank hand-off)
    ce: list[float] = []  # compute end of every chunk (input bank hand-off)
    fetch_t = 0.0
    last_w_done = 0.0
    n_steps = 0
    span_h = 1 if kind == "gap" else out_h
    span_w = 1 if kind == "gap" else out_w
    for mo in range(0, out_c, TM):
        meff = min(out_c - mo, TM)
        nvalid_out = min(geo.out_planes, out_planes_total - mo // g)
        for r0 in range(0, span_h, TR):
            rows = min(span_h - r0, TR)
            for c0 in range(0, span_w, TC):
                cols = min(span_w - c0, TC)
                slot = n_steps % 2
                n_steps += 1
                # ---- fetch: STEP, STEP_WAIT (slot free), PRM_CMD
                t = max(fetch_t + 2, drain_clear[slot]) + 1
                prm_end = 0.0
                if has_w:
                    pbeats = math.ceil(meff * PARAM_SIZE / ctx.bb) + 1
                    prm_end = port0.stream(t + rd, pbeats, ctx.upb_p)
                    t += 1
                first_tile = r0 == 0 and c0 == 0
                # ---- compute: POP, ACC_WAIT (bank of step j-2 drained)
                c = max(comp_t + 1, drain_clear[slot]) + 1
                run = rows * ((cols + 1) // 2) * 2
                period = max(run + 1, wf_need)
                last_issue = c
                hin = (rows - 1) * st + kh
                win = (cols - 1) * st + kw
                nrows, nb, _ = _rect(r0 * st - pad, hin, in_h, c0 * st - pad, win, in_w,
                                     ystep, wpb)
                for no in range(n_chunks):
                    k = len(cs)
                    wnew = has_w and (not w_resident or first_tile)
                    tog = wnew and (not w_resident or no == 0)
                    # CHUNK: input bank of chunk k-2 freed, weight bank of chunk k-2 left
                    if k >= 2:
                        t = max(t, ce[k - 2] + 1)
                    if tog and k >= 1:
                        t = max(t, cs[k - 1] + 1)
                    t += 1
                    w_done = 0.0
                    w0 = None
                    if wnew:  # one command per tap record, round robin over the weight ports
                        if kp:
                            w_done = t + rd + w_port_cycles
                            w0 = t + rd
                            t += taps
                        else:
                            w_done = port0.stream(t + rd, w_total, upb_w)
                            t += 1
                        last_w_done = w_done
                    # IN_GO, IN_LD, then the loader: divider, setup, row commands
                    ld0 = t + 2
                    if dense:
                        nvalid = min(geo.in_planes, in_planes_total - no * geo.in_planes)
                    else:
                        nvalid = nvalid_out
                    in_end = ld0 + ctx.lat_div + 4
                    if nrows and nvalid > 0:
                        n_cmds = nvalid * nrows
                        first_beat = max(in_end + rd, port0.free)
                        in_end = first_beat + _read_stream(ctx, n_cmds, n_cmds * nb)
                        if w0 is not None:  # weights and inputs share the DDR
                            lost = _shared_ddr_delay(ctx, w0, [w0 + e for e in w_ends], w_pace,
                                                     first_beat, in_end, n_cmds * nb)
                            in_end += lost
                            w_done += lost
                        port0.free = in_end + 1
                    t = max(in_end, prm_end if no == 0 else 0.0, w_done) + 3
                    # compute of this chunk: CHUNK_WAIT, the taps, weight staging
                    start = max(c, t) + 1
                    w0 = 0 if (no > 0 and t <= c - period) else max(0, wf_need - 1)
                    c = start + w0 + ctaps * period
                    last_issue = c - 1
                    cs.append(start)
                    ce.append(c)
                # ---- fetch: the residual tile (a whole beat per cycle)
                res_ready = t
                if has_res:
                    rrows, rnb, _ = _rect(r0, rows, out_h, c0, cols, out_w, 1, wpb)
                    first_beat = max(t + 2 + ctx.lat_div + 4 + rd, port0.free)
                    rbeats = nvalid_out * rrows * rnb
                    res_ready = first_beat + _read_stream(ctx, nvalid_out * rrows, rbeats)
                    port0.free = res_ready
                    t = res_ready + 1
                fetch_t = t
                flush = last_issue + ctx.flush + 1
                comp_t = flush
                # ---- drain: divider, requantization (into a free output tile bank)
                d = max(rq_end + 2, flush + 1, res_ready + 1) + ctx.lat_div + 3
                if not logits and len(st_ends) >= 2:
                    d = max(d, st_ends[-2] + ctx.lat_div + 4)
                # READ: about one cycle per step where the accumulator write-back takes the
                # bank's read port (after a collision the two run out of phase, until the PE's
                # pulses shift by a tap's odd period)
                d += rows * cols * geo.rq_passes + 1 + REQUANT_LATENCY + 2
                drain_clear[slot] = d
                if logits:  # the drain writes the logits itself
                    d += 3 * meff
                    rq_end = drain_end = d
                else:  # ---- store agent: the tile's beats back to back, rows' commands ahead
                    rq_end = d
                    onb = (c0 + cols - 1) // wpb - c0 // wpb + 1
                    s0 = max(d + 1, st_ends[-1] if st_ends else 0.0)
                    st_ends.append(s0 + 2 + rows * nvalid_out * max(onb / ctx.port0, 2))
                    drain_end = max(drain_end, st_ends[-1])
    end = max(drain_end, comp_t, fetch_t, last_w_done)
    # LAYER_END, writes land, LAYER_DONE, the next descriptor (read latency), decode, planes, GO
    desc_beats = math.ceil(DESC_SIZE / ctx.bb)
    over = 2 + tim.write_latency + rd + desc_beats / ctx.port0 + ctx.lat_planes
    if first:
        over += rd + math.ceil(HEADER_SIZE / ctx.bb) + 3
    return int(round(end + over))


#: Layers of identical geometry and flags on one configuration have identical estimates.
_CACHE: dict[tuple, int] = {}


def estimate_network(cfg: AcceleratorConfig, net: str | Network, *,
                     timing: DdrTiming | None = None) -> RtlEstimate:
    """Estimated cycles of one frame of ``net`` on ``cfg``'s RTL (see the module docstring).

    The stem mode of a first layer follows
    :func:`filmqnn_hw.compiler.program_builder.build_program`'s choice
    (the DSE cycle model's). ``timing`` defaults, as for the timing twin
    (:meth:`DdrTiming.of_board`), to the testbench's memory with all ports capped together at
    the config's DDR bandwidth (uncapped if the config does not know it).
    """
    from filmqnn_hw.models.cycles import layer_cycles, stem_eligible

    network = get_network(net)
    tim = timing or DdrTiming.of_board(cfg)
    ctx = _Ctx(cfg, tim)
    ckey = (cfg.config_hash(), tim)
    if len(_CACHE) > 100_000:
        _CACHE.clear()
    names, cyc = [], []
    n = len(network.layers)
    for i, ly in enumerate(network.layers):
        stem = False
        if stem_eligible(network, i):
            # build_program's choice: the faster by the DSE cycle model, or by rule (stem)
            # where that model cannot run (no DDR bandwidth in the config)
            stem = (cfg.ddr_bytes_per_cycle <= 0
                    or layer_cycles(cfg, ly, stem=True).cycles
                    < layer_cycles(cfg, ly, stem=False).cycles)
        logits = i == n - 1 and ly.kind == "conv" and ly.fc
        names.append(ly.name)
        key = (ckey, ly.kind, ly.in_ch, ly.out_ch, ly.in_h, ly.in_w, ly.out_h, ly.out_w, ly.kh,
               ly.kw, ly.stride, ly.pad, ly.residual is not None, stem, logits, i == 0)
        c = _CACHE.get(key)
        if c is None:
            c = _CACHE[key] = estimate_layer(ctx, ly, stem=stem, logits=logits, first=i == 0)
        cyc.append(c)
    return RtlEstimate(network.name, names, cyc, cfg.clock_mhz, network.macs)
