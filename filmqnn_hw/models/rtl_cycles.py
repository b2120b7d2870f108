"""Cycle model of the generated RTL: the engine's control, clock by clock, without the data.

:mod:`filmqnn_hw.models.cycles` models the schedule the design-space exploration sizes the array
for (``docs/architecture.md``); some of its features (kernel packing, pixel groups, the
feature-map store, striped activation traffic) are not in the RTL yet, so it overstates the
RTL's speed. This module predicts what *this* RTL does. It steps the sequencers of
:class:`~filmqnn_hw.gateware.engine.ProgramEngine` (main, fetch, activation loader, weight
ports, compute with its weight staging and PE pipeline, drain with its requantization
pipeline and logits writes, the store agent), the AXI DMAs of
:class:`~filmqnn_hw.gateware.top.FilmQnnAccelerator`
(command skid buffers, burst splitters at 256 beats and 4 KiB, outstanding-burst limits,
the write engine) and the memory of the Verilator testbench (read and write latency,
in-order responses, the slave's outstanding limit, the DDR token bucket shared by all
ports) as state machines over counters, cycle by cycle, on the same layer program the
hardware runs. No tensor data is computed: a 224x224 ResNet-18 frame on PYNQ-Z2
(3.4 M cycles) takes about 30-50 s of Python, where the Verilator model needs a minute to build
and a minute to run, and the ZCU102 top (9 GB, 8 minutes to build, 3 k cycles/s) cannot
run a 224x224 frame in reasonable time at all.

It is exact, not approximate: the tests (``tests/gateware/test_top.py``) require the
predicted ``cycles`` and stall counters and every layer's cycles to equal the Verilator
run's with ``==``, on several configurations, networks and memory timings. Random memory
stalls are not modelled (the testbench's ``--stall`` draws are not reproduced). Any change
to the engine's sequencing must be mirrored here; those tests catch a drift.

Per-layer cycles are counted as the testbench counts them: from the AR handshake of one
layer's descriptor read to the next (the first layer from the start, the last to
``ap_done``); they sum to the ``cycles`` counter.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.geometry import (
    DIM,
    MAX_BURST_BEATS,
    PAGE_BYTES,
    REQUANT_LATENCY,
    PEMode,
    check_program,
    divider_latency,
    dw_group_width,
    geometry,
    pe_latency,
)
from filmqnn_hw.spec.program import (
    DESC_SIZE,
    FLAG_LAST,
    FLAG_RESIDUAL,
    HEADER_SIZE,
    MODES,
    OP_CODES,
    PARAM_SIZE,
    LayerProgram,
)

__all__ = ["DdrTiming", "ProgramImage", "RtlCycles", "rtl_cycles"]

OP_CONV, OP_DW, OP_LINEAR = OP_CODES["conv"], OP_CODES["depthwise"], OP_CODES["linear"]
OP_ADD = OP_CODES["add"]
MODE_DENSE, MODE_DW, MODE_UNIT = int(PEMode.DENSE), int(PEMode.DW), int(PEMode.UNIT)
MODE_STEM = MODES.index("stem")


@dataclass(frozen=True)
class DdrTiming:
    """The memory the model runs against (the Verilator testbench's options).

    ``read_latency``: cycles from an AR handshake to its first R beat; ``write_latency``:
    from a burst's last W beat to its B response; ``max_outstanding``: bursts the memory
    accepts per direction and port; ``beats_per_cycle``: R and W beats of all ports together
    per cycle (0: no cap), a token bucket as in the testbench.
    """

    read_latency: int = 40
    write_latency: int = 10
    max_outstanding: int = 16
    beats_per_cycle: float = 0.0


@dataclass
class RtlCycles:
    """Predicted counters of one run: ``cycles`` and the stall counters as the control
    registers give them, and ``layers[i]``: cycles of descriptor ``i`` (named
    ``names[i]``), which sum to ``cycles``, with that layer's share of the stall counters in
    ``layer_stalls[i]``."""

    layers: list[int]
    names: list[str]
    cycles: int
    stall_weight: int
    stall_input: int
    stall_output: int
    #: per layer: (stall_weight, stall_input, stall_output) cycles, summing to the totals
    layer_stalls: list[tuple[int, ...]] = field(default_factory=list)

    def fps(self, clock_mhz: float) -> float:
        """Frames per second at ``clock_mhz`` (one frame per start)."""
        return clock_mhz * 1e6 / self.cycles

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"cycles": self.cycles, "stall_weight": self.stall_weight,
                "stall_input": self.stall_input, "stall_output": self.stall_output,
                "layers": [{"name": n, "cycles": c, "stall_weight": w, "stall_input": i,
                            "stall_output": o}
                           for n, c, (w, i, o) in zip(self.names, self.layers,
                                                      self.layer_stalls, strict=True)]}


@dataclass(frozen=True)
class ProgramImage:
    """A layer program as the hardware reads it: ``descriptors`` for ``config``, the program
    at byte address ``base`` (only its position within a 4 KiB page changes the timing).
    :class:`~filmqnn_hw.spec.program.LayerProgram` has the same three attributes; this one is
    read back from ``program.bin`` bytes (an export) with :meth:`from_bytes`."""

    config: AcceleratorConfig
    descriptors: list
    base: int = 0

    @classmethod
    def from_bytes(cls, data: bytes, config: AcceleratorConfig, base: int = 0) -> ProgramImage:
        """Parse and verify ``program.bin`` bytes (magic, version, CRC, config hash: a
        :class:`~filmqnn_hw.spec.program.ProgramError` names what is wrong)."""
        _, descs = LayerProgram.parse(data, config)
        for i, d in enumerate(descs):
            d.name = d.name or f"#{i}"
        return cls(config, descs, base)


class _Fifo:
    """Amaranth ``SyncFIFO`` timing: a push or pop shows in the level the next cycle."""

    __slots__ = ("depth", "items", "level", "d")

    def __init__(self, depth: int) -> None:
        self.depth, self.items, self.level, self.d = depth, deque(), 0, 0

    def r_rdy(self) -> bool:
        return self.level > 0

    def w_rdy(self) -> bool:
        return self.level < self.depth

    def push(self, x: Any = None) -> None:
        self.items.append(x)
        self.d += 1

    def pop(self) -> Any:
        self.d -= 1
        return self.items.popleft()

    def head(self) -> Any:
        return self.items[0]

    def commit(self) -> None:
        self.level += self.d
        self.d = 0


class _Reader:
    """One read port: the command skid buffer, burst splitter, registered AR and outstanding
    count of :class:`~filmqnn_hw.gateware.axi.burst_reader.AXI4BurstReader`, the skid buffer on its
    read data, and the testbench's slave (bursts in order, the first beat ``read_latency``
    after the AR handshake)."""

    def __init__(self, bb: int, tim: DdrTiming, outstanding: int = 16) -> None:
        self.bb, self.tim = bb, tim
        self.page_beats = PAGE_BYTES // bb
        self.max_out = outstanding
        self.o_valid, self.o_cmd, self.skid_valid, self.skid_cmd = False, None, False, None
        self.active, self.addr, self.rem, self.tag = False, 0, 0, None
        self.arvalid, self.ar = False, None  # (beats, tag)
        self.outstanding = 0
        self.lastq = _Fifo(outstanding)
        self.rq: deque = deque()  # [beats left, ready_at]
        self.rvalid = False
        # read-data skid buffer: output register (valid, "last of command") and the skid
        self.d_valid, self.d_last, self.d_skid, self.d_skid_last = False, False, False, False
        self.cmd_in: tuple | None = None  # (addr, beats, tag) offered this cycle
        self.r_ready = False  # the engine takes the beat at the skid buffer's output

    def cmd_ready(self) -> bool:
        return not self.skid_valid

    def data_valid(self) -> bool:
        return self.d_valid

    def data_last(self) -> bool:
        """The beat at the output ends its command (meaningful with :meth:`data_valid`)."""
        return self.d_last

    def drive(self, now: int, ddr_ok: bool) -> None:
        if not self.rvalid:
            self.rvalid = bool(self.rq) and now >= self.rq[0][1] and ddr_ok

    def edge(self, now: int, sim: _Sim) -> bool:
        """Handshakes of this cycle and the register updates; returns whether R moved."""
        ar_hs = self.arvalid and len(self.rq) < self.tim.max_outstanding
        i_valid = self.rvalid and self.lastq.level > 0
        r_hs = i_valid and not self.d_skid  # RREADY: the data skid buffer has room
        r_done = r_hs and self.rq[0][0] == 1
        i_last = r_done and self.lastq.items[0]
        if self.r_ready or not self.d_valid:
            if self.d_skid:
                self.d_valid, self.d_last, self.d_skid = True, self.d_skid_last, False
            else:
                self.d_valid, self.d_last = i_valid, i_last
        elif r_hs:
            self.d_skid, self.d_skid_last = True, i_last
        was_active = self.active
        issue = False
        if (not self.arvalid) or ar_hs:
            issue = self.active and self.outstanding < self.max_out and self.lastq.w_rdy()
            if ar_hs:
                self.rq.append([self.ar[0], now + self.tim.read_latency])
                if self.ar[1] is not None:
                    sim.on_ar(self.ar[1], now)
            if issue:
                to_b = self.page_beats - ((self.addr // self.bb) % self.page_beats)
                n = min(self.rem, MAX_BURST_BEATS, to_b)
                last = self.rem == n
                self.lastq.push(last)
                self.ar = (n, self.tag)
                self.tag = None  # a command is logged by its first burst
                self.addr += n * self.bb
                self.rem -= n
                if last:
                    self.active = False
            self.arvalid = issue
        if issue and not r_done:
            self.outstanding += 1
        elif r_done and not issue:
            self.outstanding -= 1
        if r_done:
            self.lastq.pop()
        self.lastq.commit()
        # skid buffer -> splitter (the splitter takes a command while it is not active)
        o_ready = not was_active
        if self.o_valid and o_ready:
            a, n, tag = self.o_cmd
            self.active, self.addr, self.rem, self.tag = True, a, n, tag
        if o_ready or not self.o_valid:
            if self.skid_valid:
                self.o_valid, self.o_cmd, self.skid_valid = True, self.skid_cmd, False
            else:
                self.o_valid, self.o_cmd = self.cmd_in is not None, self.cmd_in
        elif self.cmd_in is not None and not self.skid_valid:
            self.skid_valid, self.skid_cmd = True, self.cmd_in
        return r_hs

    def update(self, r_hs: bool) -> None:
        if r_hs:
            self.rvalid = False
            b = self.rq[0]
            b[0] -= 1
            if b[0] == 0:
                self.rq.popleft()


class _Writer:
    """Port 0's write side: :class:`~filmqnn_hw.gateware.axi.burst_writer.AXI4BurstWriter`
    (splitter, registered AW, burst FIFOs, B count) and the testbench's slave (B
    ``write_latency`` after a burst's last W beat)."""

    def __init__(self, bb: int, tim: DdrTiming, outstanding: int = 16) -> None:
        self.bb, self.tim = bb, tim
        self.page_beats = PAGE_BYTES // bb
        self.max_out = outstanding
        self.active, self.addr, self.rem = False, 0, 0
        self.awvalid, self.aw = False, 0
        self.outstanding = 0
        self.wq = _Fifo(outstanding)  # burst lengths (W engine)
        self.bq = _Fifo(outstanding)  # "final burst of its command" flags
        self.beat = 0
        self.done = False
        self.s_wq: deque = deque()  # slave: AW bursts waiting for their W beats
        self.s_wbuf = 0
        self.s_beat = 0
        self.s_bq: deque = deque()  # slave: B ready_at
        self.bvalid = False
        self.wready = False
        self.cmd_in: tuple | None = None
        self.data_in = False

    def cmd_ready(self) -> bool:
        return not self.active

    def data_ready(self) -> bool:
        return self.wready and self.wq.level > 0

    def busy(self) -> bool:
        return self.active or self.outstanding != 0 or self.awvalid or self.done

    def drive(self, now: int, ddr_ok: bool) -> None:
        self.wready = self.s_wbuf < 4096 and ddr_ok
        if not self.bvalid:
            self.bvalid = bool(self.s_bq) and now >= self.s_bq[0]

    def edge(self) -> tuple[bool, bool]:
        aw_hs = self.awvalid and len(self.s_wq) < self.tim.max_outstanding
        w_hs = self.data_in and self.wready and self.wq.level > 0
        b_hs = self.bvalid and self.bq.level > 0
        was_active = self.active
        issue = False
        if (not self.awvalid) or aw_hs:
            issue = (self.active and self.outstanding < self.max_out and self.wq.w_rdy()
                     and self.bq.w_rdy())
            if aw_hs:
                self.s_wq.append(self.aw)
            if issue:
                to_b = self.page_beats - ((self.addr // self.bb) % self.page_beats)
                n = min(self.rem, MAX_BURST_BEATS, to_b)
                last = self.rem == n
                self.wq.push(n)
                self.bq.push(last)
                self.aw = n
                self.addr += n * self.bb
                self.rem -= n
                if last:
                    self.active = False
            self.awvalid = issue
        if w_hs:
            if self.beat + 1 == self.wq.head():
                self.beat = 0
                self.wq.pop()
            else:
                self.beat += 1
        self.done = bool(self.bq.pop()) if b_hs else False
        if issue and not b_hs:
            self.outstanding += 1
        elif b_hs and not issue:
            self.outstanding -= 1
        self.wq.commit()
        self.bq.commit()
        if self.cmd_in is not None and not was_active:
            self.active, self.addr, self.rem = True, self.cmd_in[0], self.cmd_in[1]
        return w_hs, b_hs

    def update(self, now: int, w_hs: bool, b_hs: bool) -> None:
        if b_hs:
            self.s_bq.popleft()
            self.bvalid = False
        if w_hs:
            self.s_wbuf += 1
        while self.s_wq and self.s_wbuf:
            self.s_wbuf -= 1
            self.s_beat += 1
            if self.s_beat == self.s_wq[0]:
                self.s_beat = 0
                self.s_wq.popleft()
                self.s_bq.append(now + self.tim.write_latency)


def _units_per_beat(beat_bytes: int, rec_bytes: int) -> int:
    """Cycles a :class:`~filmqnn_hw.gateware.gearbox.RecordGearbox` spends on one beat."""
    return beat_bytes // math.gcd(beat_bytes, rec_bytes)


class _Sim:
    """The engine's sequencers over one layer program (see the module docstring)."""

    def __init__(self, prog: LayerProgram | ProgramImage, cfg: AcceleratorConfig,
                 tim: DdrTiming) -> None:
        self.prog, self.cfg, self.tim = prog, cfg, tim
        geo = self.geo = geometry(cfg)
        self.BB = cfg.axi_data_bits // 8
        self.lat_div = divider_latency(DIM)
        self.lat_planes = divider_latency(DIM + 1)
        self.lat_pe = pe_latency(cfg)
        self.rd = [_Reader(self.BB, tim) for _ in range(1 + geo.weight_ports)]
        self.wr = _Writer(self.BB, tim)
        self.tokens = tim.beats_per_cycle
        self.desc_at: list[int] = []

    def on_ar(self, tag: Any, now: int) -> None:
        if tag == "desc":
            self.desc_at.append(now)

    def run(self, max_cycles: int) -> RtlCycles:  # noqa: C901 - the engine's FSMs, in order
        cfg, geo, prog, tim = self.cfg, self.geo, self.prog, self.tim
        BB, WPB, G = self.BB, geo.wpb, cfg.act_pack
        KP, KW, WF, DWB = geo.weight_ports, geo.wbuf_memories, geo.wbuf_slices, geo.wbuf_records
        TM, TR, TC = cfg.tm, cfg.tr, cfg.tc
        RQP, RQ = geo.rq_passes, geo.rq_lanes
        OUTP, INP = geo.out_planes, geo.in_planes
        rd0, wr, rds = self.rd[0], self.wr, self.rd
        wrd = self.rd[1:]
        descs = prog.descriptors
        n_layers = len(descs)
        upb_p = _units_per_beat(BB, PARAM_SIZE)
        upb_dense = _units_per_beat(BB, geo.wbuf_slice_bytes)
        upb_dw = _units_per_beat(BB, geo.dw_rec_bytes)
        pe_dly = 3 + self.lat_pe
        flush_dly = 5 + self.lat_pe
        rate = tim.beats_per_cycle
        cap = 2.0 * rate + 1.0

        # shared flags (two banks each), FIFOs
        in_full, w_full = [False, False], [False, False]
        acc_full, step_busy, res_ready = [False, False], [False, False], [False, False]
        cq, dq, wq, sq = _Fifo(4), _Fifo(4), _Fifo(4), _Fifo(2)
        wjq = [_Fifo(8) for _ in range(KP)]
        fifos = [cq, dq, wq, sq, *wjq]
        st_w = st_i = st_o = 0
        cycles = 0

        # layer registers
        Ly: dict[str, Any] = {}

        def decode(i: int) -> None:
            ds = descs[i]
            op = ds["op"]
            Ly.clear()
            Ly.update(
                op=op, flags=ds["flags"], in_c=ds["in_c"], in_h=ds["in_h"], in_w=ds["in_w"],
                out_c=ds["out_c"], out_h=ds["out_h"], out_w=ds["out_w"], kh=ds["kh"],
                kw=ds["kw"], sh=ds["stride_h"], sw=ds["stride_w"], ph=ds["pad_h"],
                pw=ds["pad_w"], in_addr=ds["in_addr"], in_row=ds["in_row_bytes"],
                in_plane=ds["in_plane_bytes"], res_addr=ds["res_addr"],
                res_row=ds["res_row_bytes"], res_plane=ds["res_plane_bytes"],
                out_addr=ds["out_addr"], out_row=ds["out_row_bytes"],
                out_plane=ds["out_plane_bytes"], logits=bool(ds["out_layout"] & 1),
                w_addr=ds["w_addr"], p_addr=ds["p_addr"], w_chunks=ds["w_chunks"])
            if ds["mode"] == MODE_STEM and op == OP_CONV and ds["stem_addr"] != 0:
                Ly.update(kh=1, kw=1, sh=1, sw=1, ph=0, pw=0, in_c=ds["stem_c"],
                          in_h=ds["out_h"], in_w=ds["out_w"], in_addr=ds["stem_addr"],
                          in_row=ds["out_row_bytes"], in_plane=ds["out_plane_bytes"],
                          w_addr=ds["stem_w_addr"], w_chunks=ds["stem_w_chunks"])
            dense = op in (OP_CONV, OP_LINEAR)
            mode = MODE_DW if op == OP_DW else (MODE_DENSE if dense else MODE_UNIT)
            taps = Ly["kh"] * Ly["kw"]
            n_chunks = Ly["w_chunks"] if dense else 1
            rec = geo.rec_bytes if dense else geo.dw_rec_bytes
            # compute passes: a depthwise kernel row in groups of dgw taps (staged as one
            # slice per record), every other layer one tap per pass (WF slices per record)
            dgw = (dw_group_width(geo.dw_taps, WPB, Ly["kw"], Ly["sw"]) if mode == MODE_DW
                   else 1)
            widths = [min(dgw, Ly["kw"] - kx) for kx in range(0, Ly["kw"], dgw)]
            Ly.update(
                mode=mode, has_w=op in (OP_CONV, OP_LINEAR, OP_DW),
                has_res=bool(Ly["flags"] & FLAG_RESIDUAL) or op == OP_ADD,
                n_chunks=n_chunks, taps=taps, rec_bytes=rec, chunk_bytes=taps * rec,
                group_bytes=taps * rec * n_chunks, w_resident=n_chunks * taps <= DWB,
                in_planes_total=-(-Ly["in_c"] // G), out_planes_total=-(-Ly["out_c"] // G),
                upb_w=upb_dense if dense else upb_dw,
                ctaps=Ly["kh"] * len(widths),
                wf_first=[WF - g if mode == MODE_DW else 0 for g in widths],
                last_flag=bool(Ly["flags"] & FLAG_LAST))

        # ---- main ----
        m_state, m_cnt, layer, in_layer, busy = "HDR_CMD", 0, 0, False, True
        # ---- fetch ----
        f_state = "IDLE"
        f_mo = f_r0 = f_c0 = f_plane0 = f_yb = f_xb = 0
        f_sp = f_cb = 0
        f_wb = 1
        f_no = f_inplane0 = f_rows = f_cols = f_meff = 0
        f_last = f_prm = f_wl = f_wtog = False
        f_wtgt = f_k0 = f_wk = 0
        w_t = w_k = 0
        w_tptr = f_wptr = f_wgrp = f_pptr = 0
        gbp_idx = gbw_idx = 0
        # ---- loader ----
        l_state, ld_state, l_cnt = "IDLE", "IDLE", 0
        ld: dict[str, Any] = {}
        ldc_j = ldc_y = ldc_plane = ldc_row = 0
        dd_left = 0
        # ---- weight ports ----
        wp_state = ["IDLE"] * KP
        wp_idx = [0] * KP
        # ---- compute ----
        c_state = "IDLE"
        c_cb = c_ab = c_wb_prev = c_no = c_rows = c_cols = tap = run_left = phase = 0
        c_wb_valid = c_last = False
        c_rec = None
        wf_cnt, wf_pend, wf_pre = WF, False, False
        ring = [False] * 64
        last_issue = -(10**9)
        # ---- drain ----
        d_state = "IDLE"
        d_b = d_wait = d_rows = d_cols = d_meff = d_c0 = d_r0 = d_plane0 = 0
        d_last = False
        dr_r = dr_q = dr_pix = dr_qp = 0
        st_nb = st_bx0 = st_row_addr = 0
        ob_b = 0
        ob_full = [False, False]
        # ---- store agent ----
        s_state, s_b = "IDLE", 0
        s_tile: tuple = (0, 0, 0, 0, 0)  # row_addr, bx0, nb, np, rows
        sc_active = False
        sc_r = sc_j = sc_row_addr = sc_plane_addr = 0
        sd_r = sd_j = sd_bx = 0
        lg_k = lg_lane = ot_q = 0
        lg_done = lg_cmd = lg_dat = False
        rq_pipe = [False] * REQUANT_LATENCY
        ot_count = 0

        now = 0
        ok = rate <= 0 or self.tokens >= 1.0
        for r in rds:
            r.drive(now, ok)
        wr.drive(now, ok)
        snaps: list[tuple[int, int, int]] = []  # stall counters when each descriptor is read
        while busy:
            snap = (st_w, st_i, st_o)
            if now >= max_cycles:
                raise RuntimeError(f"rtl_cycles: no ap_done after {max_cycles} cycles")
            # ================= combinational view of the registers =================
            ld_go = f_state == "IN_LD" or f_state == "RES_LD"
            ldc_go = l_state == "START"
            ld_busy = (l_state != "IDLE") or ld_state == "DATA" or ld_go
            f_hold = f_prm if KP else (f_prm or f_wl)
            fe_idle, cp_idle, dr_idle = f_state == "IDLE", c_state == "IDLE", d_state == "IDLE"
            st_idle = s_state == "IDLE" and not ob_full[s_b]
            run_go = m_state == "GO"
            valid_out = ring[(now - pe_dly) % 64]
            wp_idle = [wp_state[k] == "IDLE" and not wjq[k].r_rdy() for k in range(KP)]
            rq_o_valid = rq_pipe[-1]
            mode = Ly.get("mode", MODE_UNIT)
            wf_ready = wf_cnt == WF and not wf_pend
            r0_valid = rd0.data_valid()
            r0_last = r0_valid and rd0.data_last()
            rd0.cmd_in = None
            rd0.r_ready = False
            for r in wrd:
                r.cmd_in = None
                r.r_ready = False
            wr.cmd_in = None
            wr.data_in = False
            cls_i = cls_o = False
            fe_w = f_state in ("W_CMD", "W_RD", "W_END")
            cp_wait_w = c_state == "TAP" and not wf_ready and mode != MODE_UNIT
            cp_wait_in = c_state in ("POP", "CHUNK_WAIT")
            cp_wait_acc = c_state == "ACC_WAIT"
            cp_issue = c_state == "RUN"
            dr_store = not st_idle
            set_in, clr_in, set_w, clr_w = [0, 0], [0, 0], [0, 0], [0, 0]
            set_acc, clr_acc, set_busy, clr_busy, set_res = [0, 0], [0, 0], [0, 0], [0, 0], [0, 0]
            set_ob, clr_ob = [0, 0], [0, 0]
            new_in_layer = in_layer

            # ================= main sequencer =================
            if m_state == "HDR_CMD":
                cls_i = True
                rd0.cmd_in = (prog.base, HEADER_SIZE // BB, None)
                if rd0.cmd_ready():
                    m_state = "HDR_RD"
            elif m_state == "HDR_RD":
                cls_i = True
                rd0.r_ready = True
                if r0_last:
                    m_state = "HDR_CHECK"
            elif m_state == "HDR_CHECK":
                m_state = "HDR_JUDGE"
            elif m_state == "HDR_JUDGE":
                m_state = "DESC_CMD" if n_layers else "FINISH"
            elif m_state == "DESC_CMD":
                cls_i = True
                rd0.cmd_in = (prog.base + HEADER_SIZE + layer * DESC_SIZE, DESC_SIZE // BB,
                              "desc")
                if rd0.cmd_ready():
                    m_state = "DESC_RD"
            elif m_state == "DESC_RD":
                cls_i = True
                rd0.r_ready = True
                if r0_last:
                    m_state = "DECODE"
            elif m_state == "DECODE":
                cls_i = True
                m_state = "CHECK"
            elif m_state == "CHECK":
                cls_i = True
                m_state = "LAYER"
            elif m_state == "LAYER":
                cls_i = True
                decode(layer)
                m_cnt = 0
                m_state = "PLANES"
            elif m_state == "PLANES":
                cls_i = True
                if m_cnt == self.lat_planes + 1:
                    m_state = "GO"
                m_cnt += 1
            elif m_state == "GO":
                cls_i = True
                new_in_layer = True
                w_full = [False, False]
                m_state = "RUN"
            elif m_state == "RUN":
                if fe_idle and cp_idle and dr_idle and st_idle:
                    new_in_layer = False
                    m_state = "LAYER_END"
            elif m_state == "LAYER_END":
                cls_o = True
                m_state = "LAYER_END2"
            elif m_state == "LAYER_END2":
                cls_o = True
                if not wr.busy():
                    m_state = "LAYER_DONE"
            elif m_state == "LAYER_DONE":
                cls_o = True
                layer += 1
                last = Ly["last_flag"] or layer == n_layers
                m_state = "FINISH" if last else "DESC_CMD"
            elif m_state == "FINISH":
                busy = False
            if in_layer and not cp_issue:
                if (cp_wait_acc or (cp_idle and (not dr_idle or dr_store))
                        or (cp_wait_in and dr_store and fe_idle)):
                    cls_o = True
                elif fe_w or cp_wait_w:
                    st_w += 1
                else:
                    cls_i = True
            if cls_i:
                st_i += 1
            elif cls_o:
                st_o += 1
            in_layer = new_in_layer

            # ================= activation loader: command side =================
            ld_next = l_state
            if l_state == "IDLE":
                if ld_go:
                    yb, xb = ld["yb"], ld["xb"]
                    ylo, xlo = max(yb, 0), max(xb, 0)
                    yhi = min(yb + ld["hin"], ld["h"]) - 1
                    xhi = min(xb + ld["win"], ld["wd"]) - 1
                    ld.update(ylo=ylo, yhi=yhi, xlo=xlo, xhi=xhi,
                              nvalid=min(ld["nplanes"], ld["plimit"] - ld["plane0"]),
                              plane_addr=ld["tensor"] + ld["plane0"] * ld["pstride"],
                              row_off=ylo * ld["rstride"],
                              bx0=xlo // WPB,
                              nbeats=xhi // WPB - xlo // WPB + 1,
                              empty=ylo > yhi or xlo > xhi or ld["plane0"] >= ld["plimit"])
                    l_cnt = 0
                    ld_next = "DIV"
            elif l_state == "DIV":
                if l_cnt == self.lat_div + 1:
                    ld_next = "SETUP"
                l_cnt += 1
            elif l_state == "SETUP":
                ld_next = "IDLE" if ld["empty"] else "START"
            elif l_state == "START":
                ldc_j, ldc_y = 0, ld["ylo"]
                ldc_plane = ld["plane_addr"]
                ldc_row = ld["plane_addr"] + ld["row_off"]
                ld_next = "CMD"
            elif l_state == "CMD":
                rd0.cmd_in = (ldc_row + ld["bx0"] * BB, ld["nbeats"], None)
                if rd0.cmd_ready():
                    if ldc_y == ld["yhi"]:
                        ldc_j += 1
                        ldc_y = ld["ylo"]
                        ldc_plane += ld["pstride"]
                        ldc_row = ldc_plane + ld["row_off"]
                        if ldc_j == ld["nvalid"]:
                            ld_next = "IDLE"
                    else:
                        ldc_y += ld["ystep"]
                        ldc_row += ld["rstride"] * ld["ystep"]
            # ================= activation loader: data side =================
            if ld_state == "IDLE":
                if ldc_go:
                    nrows = (ld["yhi"] - ld["ylo"]) // ld["ystep"] + 1
                    dd_left = ld["nvalid"] * nrows * ld["nbeats"]
                    ld_state = "DATA"
            elif ld_state == "DATA":
                if r0_valid and not f_hold:  # a whole beat per cycle (input and residual)
                    rd0.r_ready = True
                    dd_left -= 1
                    if dd_left == 0:
                        ld_state = "IDLE"
            l_state = ld_next

            # ================= fetch agent =================
            if f_state == "IDLE":
                if run_go:
                    f_mo = f_r0 = f_c0 = f_plane0 = 0
                    f_yb, f_xb = -Ly["ph"], -Ly["pw"]
                    f_wgrp, f_pptr = Ly["w_addr"], Ly["p_addr"]
                    f_sp, f_cb, f_wb = 0, 0, 1
                    f_state = "STEP"
            elif f_state == "STEP":
                f_meff = min(Ly["out_c"] - f_mo, TM)
                f_rows = min(Ly["out_h"] - f_r0, TR)
                f_cols = min(Ly["out_w"] - f_c0, TC)
                f_last = (f_c0 + TC >= Ly["out_w"] and f_r0 + TR >= Ly["out_h"]
                          and f_mo + TM >= Ly["out_c"])
                f_wptr, f_no, f_k0 = f_wgrp, 0, 0
                f_inplane0 = 0 if mode == MODE_DENSE else f_plane0
                f_state = "STEP_WAIT"
            elif f_state == "STEP_WAIT":
                if not step_busy[f_sp] and cq.w_rdy():
                    cq.push((f_rows, f_cols, f_meff, f_r0, f_c0, f_plane0, f_last, f_mo))
                    set_busy[f_sp] = 1
                    f_state = "PRM_CMD" if Ly["has_w"] else "CHUNK"
            elif f_state == "PRM_CMD":
                rd0.cmd_in = (f_pptr - f_pptr % BB,
                              (f_pptr % BB + f_meff * PARAM_SIZE + BB - 1) // BB, None)
                if rd0.cmd_ready():
                    gbp_idx = 0
                    f_prm = True
                    f_state = "CHUNK"
            elif f_state == "PRM_RD":
                if r0_valid:
                    ready = gbp_idx == upb_p - 1
                    gbp_idx = 0 if ready else gbp_idx + 1
                    if ready:
                        rd0.r_ready = True
                        if r0_last:
                            f_state = "PRM_END"
            elif f_state == "PRM_END":
                f_prm = False
                f_state = "W_RD" if f_wl else "IN_ANN"
            elif f_state == "CHUNK":
                first_tile = f_r0 == 0 and f_c0 == 0
                wnew = Ly["has_w"] and (not Ly["w_resident"] or first_tile)
                tog = wnew and (not Ly["w_resident"] or f_no == 0)
                f_wtog = tog
                f_wtgt = (1 - f_wb) if tog else f_wb
                f_wk = f_k0 if Ly["w_resident"] else 0
                w_t, w_k, w_tptr = 0, f_wk, f_wptr
                if (not in_full[f_cb] and (not tog or not w_full[1 - f_wb])
                        and wq.w_rdy()):
                    f_state = "W_CMD" if wnew else "IN_GO"
                    if wnew and not KP:
                        gbw_idx = 0
            elif f_state == "W_CMD":
                recb = Ly["rec_bytes"]
                if KP:
                    port, q = wrd[w_k], wjq[w_k]
                    if q.w_rdy():
                        off = w_tptr % BB
                        port.cmd_in = (w_tptr - off, (off + recb + BB - 1) // BB, None)
                        if port.cmd_ready():
                            q.push()
                            w_t += 1
                            w_tptr += recb
                            w_k = 0 if w_k == KP - 1 else w_k + 1
                            if w_t == Ly["taps"]:
                                f_wl = True
                                f_state = "IN_GO"
                else:
                    off = f_wptr % BB
                    rd0.cmd_in = (f_wptr - off, (off + Ly["chunk_bytes"] + BB - 1) // BB, None)
                    if rd0.cmd_ready():
                        gbw_idx = 0
                        f_wl = True
                        f_state = "IN_GO"
            elif f_state == "W_RD":
                if KP:
                    if all(wp_idle):
                        f_state = "W_END"
                elif r0_valid:
                    ready = gbw_idx == Ly["upb_w"] - 1
                    gbw_idx = 0 if ready else gbw_idx + 1
                    if ready:
                        rd0.r_ready = True
                        if r0_last:
                            f_state = "W_END"
            elif f_state == "W_END":
                f_wptr += Ly["chunk_bytes"]
                f_wb = f_wtgt
                f_wl = False
                if f_wtog:
                    set_w[f_wtgt] = 1
                f_state = "IN_ANN"
            elif f_state == "IN_GO":
                ld.clear()
                ld.update(res=False, tensor=Ly["in_addr"], pstride=Ly["in_plane"],
                          rstride=Ly["in_row"], plimit=Ly["in_planes_total"], h=Ly["in_h"],
                          wd=Ly["in_w"], yb=f_yb, xb=f_xb,
                          hin=(f_rows - 1) * Ly["sh"] + Ly["kh"],
                          win=(f_cols - 1) * Ly["sw"] + Ly["kw"], plane0=f_inplane0,
                          nplanes=INP if mode == MODE_DENSE else OUTP,
                          ystep=2 if Ly["kh"] == 1 and Ly["sh"] == 2 and Ly["ph"] == 0 else 1)
                f_state = "IN_LD"
            elif f_state == "IN_LD":
                f_state = "PRM_RD" if f_prm else ("W_RD" if f_wl else "IN_ANN")
            elif f_state == "IN_ANN":
                wq.push(f_wb)
                f_state = "IN_WAIT"
            elif f_state == "IN_WAIT":
                if not ld_busy:
                    set_in[f_cb] = 1
                    f_cb ^= 1
                    f_no += 1
                    f_inplane0 += INP
                    f_k0 = (f_k0 + Ly["taps"]) % KW if KW > 1 else 0
                    f_state = "RES_GO" if f_no == Ly["n_chunks"] else "CHUNK"
            elif f_state == "RES_GO":
                ld.clear()
                ld.update(res=True, tensor=Ly["res_addr"], pstride=Ly["res_plane"],
                          rstride=Ly["res_row"], plimit=Ly["out_planes_total"],
                          h=Ly["out_h"], wd=Ly["out_w"], yb=f_r0, xb=f_c0, hin=f_rows,
                          win=f_cols, plane0=f_plane0, nplanes=OUTP, ystep=1)
                f_state = "RES_LD" if Ly["has_res"] else "NEXT"
            elif f_state == "RES_LD":
                f_state = "RES_WAIT"
            elif f_state == "RES_WAIT":
                if not ld_busy:
                    set_res[f_sp] = 1
                    f_state = "NEXT"
            elif f_state == "NEXT":
                f_sp ^= 1
                if f_c0 + TC < Ly["out_w"]:
                    f_c0 += TC
                    f_xb += TC * Ly["sw"]
                else:
                    f_c0, f_xb = 0, -Ly["pw"]
                    if f_r0 + TR < Ly["out_h"]:
                        f_r0 += TR
                        f_yb += TR * Ly["sh"]
                    else:
                        f_r0, f_yb = 0, -Ly["ph"]
                        f_mo += TM
                        f_plane0 += OUTP
                        f_wgrp += Ly["group_bytes"]
                        f_pptr += TM * PARAM_SIZE
                f_state = "IDLE" if f_last else "STEP"

            # ================= weight ports =================
            for k in range(KP):
                port, q = wrd[k], wjq[k]
                if wp_state[k] == "IDLE":
                    if q.r_rdy():
                        q.pop()
                        wp_idx[k] = 0
                        wp_state[k] = "RUN"
                elif wp_state[k] == "RUN":
                    if port.data_valid():
                        ready = wp_idx[k] == Ly["upb_w"] - 1
                        wp_idx[k] = 0 if ready else wp_idx[k] + 1
                        if ready:
                            port.r_ready = True
                            if port.data_last():
                                wp_state[k] = "END"
                else:  # END
                    wp_state[k] = "IDLE"

            # ================= compute agent =================
            wf_next_cnt = wf_cnt + 1 if wf_cnt != WF else WF
            wf_next_pend = wf_cnt != WF
            issue_p1 = False
            if c_state == "IDLE":
                if run_go:
                    c_cb = c_ab = 0
                    c_wb_valid = False
                    c_state = "POP"
            elif c_state == "POP":
                if cq.r_rdy():
                    c_rec = cq.pop()
                    c_rows, c_cols, c_last = c_rec[0], c_rec[1], c_rec[6]
                    c_no = 0
                    c_state = "ACC_WAIT"
            elif c_state == "ACC_WAIT":
                if not acc_full[c_ab]:
                    c_state = "CHUNK_WAIT"
            elif c_state == "CHUNK_WAIT":
                if in_full[c_cb] and wq.r_rdy():
                    bank = wq.pop()
                    tap, phase = 0, 0
                    if mode != MODE_UNIT and not wf_pre:
                        wf_next_cnt = Ly["wf_first"][0]
                    wf_pre = False
                    if c_wb_valid and bank != c_wb_prev:
                        clr_w[c_wb_prev] = 1
                    c_wb_prev, c_wb_valid = bank, True
                    c_state = "TAP"
            elif c_state == "TAP":
                if wf_ready or mode == MODE_UNIT:
                    run_left = c_rows * ((c_cols + 1) // 2) * 2
                    phase = 0
                    if mode != MODE_UNIT and tap + 1 < Ly["ctaps"]:
                        wff = Ly["wf_first"]
                        wf_next_cnt = wff[(tap + 1) % len(wff)]
                    elif mode != MODE_UNIT and wq.r_rdy():
                        wf_next_cnt = Ly["wf_first"][0]
                        wf_pre = True
                    c_state = "RUN"
            elif c_state == "RUN":
                issue_p1 = phase == 1
                phase ^= 1
                run_left -= 1
                last_issue = now
                if run_left == 0:
                    tap += 1
                    if tap == Ly["ctaps"]:
                        clr_in[c_cb] = 1
                        c_cb ^= 1
                        c_no += 1
                        c_state = "FLUSH" if c_no == Ly["n_chunks"] else "CHUNK_WAIT"
                    else:
                        c_state = "TAP"
            elif c_state == "FLUSH":
                if now >= last_issue + flush_dly and dq.w_rdy():
                    set_acc[c_ab] = 1
                    dq.push(c_rec)
                    c_ab ^= 1
                    c_state = "IDLE" if c_last else "POP"
            ring[now % 64] = issue_p1
            wf_cnt, wf_pend = wf_next_cnt, wf_next_pend

            # ================= drain agent =================
            logits = Ly.get("logits", False)
            rq_o_ready = not logits
            rq_i_valid = False
            if logits and rq_o_valid:  # one 2-byte write per lane
                if lg_done or lg_k == RQ:
                    rq_o_ready = True
                    lg_k = 0
                    if ot_q == RQP - 1:
                        lg_lane, lg_done, ot_q = 0, False, 0
                    else:
                        ot_q += 1
                else:
                    if not lg_cmd:
                        wr.cmd_in = (0, 1)
                    wr.data_in = not lg_dat
                    cmd_ok = lg_cmd or wr.cmd_ready()
                    dat_ok = lg_dat or wr.data_ready()
                    if cmd_ok and dat_ok:
                        lg_cmd = lg_dat = False
                        lg_lane += 1
                        lg_done = lg_lane >= d_meff
                        lg_k += 1
                    else:
                        lg_cmd, lg_dat = cmd_ok, dat_ok
            rq_en = (not rq_o_valid) or rq_o_ready
            if d_state == "IDLE":
                if run_go:
                    d_b = ob_b = 0
                    d_state = "POP"
            elif d_state == "POP":
                if (dq.r_rdy() and acc_full[d_b] and (not Ly["has_res"] or res_ready[d_b])
                        and (logits or not ob_full[ob_b])):
                    rec = dq.pop()
                    d_rows, d_cols, d_meff, d_r0, d_c0, d_plane0, d_last = rec[:7]
                    d_wait = 0
                    d_state = "DIV"
            elif d_state == "DIV":
                if d_wait == self.lat_div + 1:
                    d_state = "SETUP"
                d_wait += 1
            elif d_state == "SETUP":
                st_bx0 = d_c0 // WPB
                st_nb = (d_c0 + d_cols - 1) // WPB - st_bx0 + 1
                st_row_addr = Ly["out_addr"] + d_plane0 * Ly["out_plane"] + d_r0 * Ly["out_row"]
                dr_r = dr_q = dr_pix = dr_qp = 0
                lg_lane, lg_done, lg_k, lg_cmd, lg_dat, ot_q = 0, False, 0, False, False, 0
                d_state = "READ"
            elif d_state == "READ":
                if not valid_out:
                    dr_pix = 0
                    d_state = "PUSH"
            elif d_state == "PUSH":
                rq_i_valid = True
                if rq_en:
                    if dr_qp != RQP - 1:
                        dr_qp += 1
                    else:
                        dr_qp = 0
                        last_pix = dr_pix == 1 or not (dr_q * 2 + 1 < d_cols)
                        if not last_pix:
                            dr_pix = 1
                        else:
                            row_end = not ((dr_q + 1) * 2 < d_cols)
                            nr = dr_r + 1 if row_end else dr_r
                            dr_q = 0 if row_end else dr_q + 1
                            dr_r = nr
                            if row_end and nr == d_rows:
                                d_state = "WAIT"
                            elif not valid_out:
                                dr_pix = 0
                            else:
                                d_state = "READ"
            elif d_state == "WAIT":
                if not rq_o_valid and ot_count == 0:
                    clr_acc[d_b] = 1
                    clr_busy[d_b] = 1
                    if not logits:  # the tile goes to the store agent
                        np_ = min(OUTP, Ly["out_planes_total"] - d_plane0)
                        sq.push((st_row_addr, st_bx0, st_nb, np_, d_rows))
                        set_ob[ob_b] = 1
                        ob_b ^= 1
                    d_state = "NEXT"
            elif d_state == "NEXT":
                d_b ^= 1
                d_state = "IDLE" if d_last else "POP"
            # ================= store agent =================
            if sc_active:  # command side: the rows' write commands back to back
                wr.cmd_in = (sc_plane_addr + s_tile[1] * BB, s_tile[2])
                if wr.cmd_ready():
                    if sc_j + 1 == s_tile[3]:
                        sc_j = 0
                        sc_r += 1
                        sc_row_addr += Ly["out_row"]
                        sc_plane_addr = sc_row_addr
                        if sc_r == s_tile[4]:
                            sc_active = False
                    else:
                        sc_j += 1
                        sc_plane_addr += Ly["out_plane"]
            if s_state == "IDLE":
                if run_go:
                    s_b = 0
                elif ob_full[s_b]:
                    s_tile = sq.pop()
                    sc_active, sc_r, sc_j = True, 0, 0
                    sc_row_addr = sc_plane_addr = s_tile[0]
                    sd_r = sd_j = sd_bx = 0
                    s_state = "PRIME"
            elif s_state == "PRIME":
                s_state = "WR"
            elif s_state == "WR":
                wr.data_in = True
                if wr.data_ready():
                    last_bx, last_j = sd_bx + 1 == s_tile[2], sd_j + 1 == s_tile[3]
                    if last_bx and last_j and sd_r + 1 == s_tile[4]:
                        clr_ob[s_b] = 1
                        s_b ^= 1
                        s_state = "IDLE"
                    elif not last_bx:
                        sd_bx += 1
                    elif not last_j:
                        sd_bx, sd_j = 0, sd_j + 1
                    else:
                        sd_bx, sd_j, sd_r = 0, 0, sd_r + 1
            # requantization pipeline (stalls as a whole when its output is not taken)
            pushed = rq_i_valid and rq_en
            popped = rq_o_valid and rq_o_ready
            if rq_en:
                rq_pipe = [pushed, *rq_pipe[:-1]]
            ot_count += int(pushed) - int(popped)

            # ================= clock edge: handshakes, registers, memory =================
            n_desc = len(self.desc_at)
            r_hs = [r.edge(now, self) for r in rds]
            if len(self.desc_at) > n_desc:  # a layer starts: stall counters before this cycle
                snaps.append(snap)
            w_hs, b_hs = wr.edge()
            if rate > 0:
                self.tokens -= sum(r_hs) + int(w_hs)
            for i in range(2):
                in_full[i] = (in_full[i] or set_in[i]) and not clr_in[i]
                w_full[i] = (w_full[i] or set_w[i]) and not clr_w[i]
                acc_full[i] = (acc_full[i] or set_acc[i]) and not clr_acc[i]
                step_busy[i] = (step_busy[i] or set_busy[i]) and not clr_busy[i]
                res_ready[i] = (res_ready[i] or set_res[i]) and not clr_busy[i]
                ob_full[i] = (ob_full[i] or set_ob[i]) and not clr_ob[i]
            for q in fifos:
                q.commit()
            if m_state == "FINISH" and not busy:
                cycles = now + 1
            now += 1
            if rate > 0:
                self.tokens = min(self.tokens + rate, cap)
            for r, h in zip(rds, r_hs, strict=True):
                r.update(h)
            wr.update(now, w_hs, b_hs)
            ok = rate <= 0 or self.tokens >= 1.0
            for r in rds:
                r.drive(now, ok)
            wr.drive(now, ok)

        names = [ds.name for ds in descs]
        at = self.desc_at
        ends = at[1:] + [cycles]
        per = [e - b for b, e in zip(at, ends, strict=True)]
        if per:
            per[0] += at[0]
            snaps[0] = (0, 0, 0)
        marks = [*snaps, (st_w, st_i, st_o)]
        stalls = [tuple(b - a for a, b in zip(x, y, strict=True))
                  for x, y in zip(marks, marks[1:], strict=False)]
        return RtlCycles(layers=per, names=names, cycles=cycles, stall_weight=st_w,
                         stall_input=st_i, stall_output=st_o, layer_stalls=stalls)


def rtl_cycles(program: LayerProgram | ProgramImage, config: AcceleratorConfig | None = None,
               timing: DdrTiming | None = None, *, max_cycles: int = 2_000_000_000
               ) -> RtlCycles:
    """Predict the RTL's counters for one run of ``program`` (see the module docstring).

    ``config`` defaults to the program's own (another config is refused: the hardware would
    stop with status 3). ``timing`` defaults to the testbench's defaults with all ports
    capped together at the config's ``ddr_beats_per_cycle`` (uncapped when the config does
    not know its board's bandwidth). Raises :class:`~filmqnn_hw.spec.geometry.RtlUnsupported`
    for a program or config the RTL refuses (the hardware would stop with a status code)
    and :class:`RuntimeError` when no ``ap_done`` comes within ``max_cycles``.
    """
    cfg = config or program.config
    if cfg.config_hash() != program.config.config_hash():
        raise ValueError(
            "rtl_cycles: the program was built for another configuration (hash "
            f"{program.config.config_hash()[:12]} != {cfg.config_hash()[:12]}); rebuild it "
            "with build_program(graph, config)")
    check_program(program, cfg)
    if timing is None:
        timing = DdrTiming(beats_per_cycle=cfg.ddr_beats_per_cycle
                           if cfg.ddr_bytes_per_cycle > 0 else 0.0)
    return _Sim(program, cfg, timing).run(max_cycles)
