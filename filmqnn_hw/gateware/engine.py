"""The layer-program engine: fetches descriptors from DDR and runs every layer, bit-exact.

:class:`ProgramEngine` is the accelerator minus its bus blocks: it talks to DDR through the
command/data streams of one :class:`~filmqnn_hw.gateware.axi.dma.AXI4DMA` (with write strobes) and
to
the host through the core side of :class:`~filmqnn_hw.gateware.axi.lite_regs.AXI4LiteControl`.
:class:`~filmqnn_hw.gateware.top.FilmQnnAccelerator` wires the three together.

Schedule (per layer, ``docs/rtl.md``): a layer is cut into steps (a group ``mo`` of ``tm``
output channels x a ``tr x tc`` tile, ``mo`` outer) and each step into input chunks (``tn``
channels; a depthwise/pool/add group is its own chunk). Four agents run concurrently and
hand banks to each other:

* **fetch** walks the steps: the group's per-channel parameters (param bank = step parity),
  then per chunk the weight taps and the input rectangle (weight + input bank = chunk
  parity), then the residual tile (residual bank = step parity);
* **compute** runs every tap over every pixel pair of the tile through the
  :class:`~.pe_array.PEArray`, accumulating into the accumulator bank of the step;
* **drain** requantizes a finished accumulator bank (with the step's params and residual)
  into one of two output tile banks (or writes logits);
* **store** writes a requantized output tile bank to DDR with byte strobes, its row
  commands ahead of its beats.

So the loads of chunk ``j+1`` and the drain/store of step ``s-1`` overlap the compute of
chunk ``j`` / step ``s``, and the store of step ``s-1`` the requantization of step ``s``.
Layers run one after the other. ``benchmarks/rtl_sim.py``
measures the cycles and compares them with the cycle model.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.axi.burst_reader import read_data_layout
from filmqnn_hw.gateware.axi.burst_split import command_layout
from filmqnn_hw.gateware.axi.burst_writer import write_data_layout
from filmqnn_hw.gateware.axi.lite_regs import (
    ControlCoreSignature,
    ControlMap,
    accelerator_control_map,
)
from filmqnn_hw.gateware.divider import ConstDivider
from filmqnn_hw.gateware.gearbox import RecordGearbox
from filmqnn_hw.gateware.pe_array import PEArray
from filmqnn_hw.gateware.pe_array_timing import PEArrayTiming
from filmqnn_hw.gateware.requant import SHIFT_BITS, RequantBank
from filmqnn_hw.spec.config import ACT_BITS, AcceleratorConfig
from filmqnn_hw.spec.geometry import (
    DIM,
    KMAX,
    LEN_WIDTH,
    PMAX,
    SMAX,
    PEMode,
    dw_group_width,
    geometry,
)
from filmqnn_hw.spec.numerics import MULT_BITS, RES_MULT_BITS, Y_BITS
from filmqnn_hw.spec.program import (
    DESC_SIZE,
    FIELDS,
    FLAG_LAST,
    FLAG_RESIDUAL,
    HEADER_SIZE,
    MAGIC,
    MODES,
    OP_CODES,
    PARAM_SIZE,
    ST_ALIGN,
    ST_AXI,
    ST_CONFIG,
    ST_DESC,
    ST_MAGIC,
    ST_OP,
    ST_VERSION,
    VERSION,
)

__all__ = ["ProgramEngine", "MODE_DENSE", "MODE_DW", "MODE_UNIT"]

MODE_DENSE, MODE_DW, MODE_UNIT = int(PEMode.DENSE), int(PEMode.DW), int(PEMode.UNIT)
OP_CONV, OP_DW, OP_LINEAR = OP_CODES["conv"], OP_CODES["depthwise"], OP_CODES["linear"]
OP_MAXPOOL, OP_AVGPOOL = OP_CODES["maxpool"], OP_CODES["avgpool"]
OP_GAP, OP_ADD = OP_CODES["gap"], OP_CODES["add"]
MODE_STEM = MODES.index("stem")  # descriptor compute mode of a layer 0 with an im2col input


def _w(i: int) -> slice:
    return slice(64 * i, 64 * i + 64)


class ProgramEngine(wiring.Component):
    """Runs a layer program (``docs/layer-program.md``) from DDR after one start.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator (array, tiles, packing, beat width).
    addr_width : int
        DDR byte-address width of the AXI master.
    cmap : ControlMap
        Control map (default :func:`~filmqnn_hw.gateware.axi.lite_regs.accelerator_control_map`);
        must
        have the ``layers`` argument and the ``cycles``, ``stall_*`` and ``status`` counters.
    timing_twin : bool
        Build :class:`~filmqnn_hw.gateware.pe_array_timing.PEArrayTiming` in place of the PE
        array: the same cycles, no arithmetic (``pe_array_timing``).

    Members
    -------
    ctrl : In(ControlCoreSignature(cmap))    start/done/idle/ready, ``layers``, counters
    rd_cmd : Out(stream of (addr, beats)), rd_data : In(stream of (data, last))
    wr_cmd : Out(stream of (addr, beats)), wr_data : Out(stream of (data, strb))
    wr_busy, rd_error, wr_error : In(1)
    w_cmd : Out(stream of (addr, beats)).array(K), w_data : In(stream of (data, last)).array(K)
        only with ``K = geometry(config).weight_ports > 0``: the weight reads go to K read
        masters of their own (AXI ports 1..K; tap record ``r`` of a bank through port
        ``r mod K`` into weight memory ``r mod K``), concurrently with the reads of port 0;
        otherwise they share ``rd_cmd`` / ``rd_data``. Parameters always use port 0.

    Latency/throughput: four overlapped agents (load, compute at one pixel pair per two
    cycles with ``tn`` MACs per lane per cycle, drain, store); a depthwise layer computes up to
    ``geometry(config).dw_taps`` taps of a kernel row per pair and lane; see ``docs/rtl.md``.
    """

    def __init__(self, config: AcceleratorConfig, *, addr_width: int = 32,
                 cmap: ControlMap | None = None, timing_twin: bool = False) -> None:
        self.config = config
        self.timing_twin = timing_twin
        self.geo = geometry(config)
        self.addr_width = addr_width
        self.cmap = accelerator_control_map() if cmap is None else cmap
        b = config.axi_data_bits
        members = {
            "ctrl": In(ControlCoreSignature(self.cmap)),
            "rd_cmd": Out(stream.Signature(command_layout(addr_width, LEN_WIDTH))),
            "rd_data": In(stream.Signature(read_data_layout(b))),
            "wr_cmd": Out(stream.Signature(command_layout(addr_width, LEN_WIDTH))),
            "wr_data": Out(stream.Signature(write_data_layout(b))),
            "wr_busy": In(1),
            "rd_error": In(1),
            "wr_error": In(1),
        }
        if self.geo.weight_ports:
            k = self.geo.weight_ports
            members["w_cmd"] = Out(stream.Signature(command_layout(addr_width, LEN_WIDTH))
                                   ).array(k)
            members["w_data"] = In(stream.Signature(read_data_layout(b))).array(k)
        super().__init__(members)

    # ------------------------------------------------------------------------------------------
    def elaborate(self, platform):  # noqa: C901 - one sequencer, kept in one place
        m = Module()
        cfg, geo = self.config, self.geo
        B = cfg.axi_data_bits
        BB = B // 8
        LB = BB.bit_length() - 1  # log2 bytes per beat
        G = cfg.act_pack
        WB = ACT_BITS * G  # packed word bits
        WPB = geo.wpb
        TM, TN, TR, TC = cfg.tm, cfg.tn, cfg.tr, cfg.tc
        CB = geo.cb
        AW = self.addr_width
        ACC = cfg.acc_bits
        QC = geo.pairs_per_row
        TC_IN = geo.tc_in
        ctrl = self.ctrl

        DI = geo.ibuf_depth
        DA = geo.acc_depth
        DWB = geo.wbuf_records  # tap records per weight bank
        KP = geo.weight_ports  # weight read ports (0: shared with port 0)
        KW = geo.wbuf_memories  # weight memories (record r in memory r mod KW)
        KR = range(max(KW, 2))  # a memory index (never a zero-width signal: clean Verilog)
        DWBK = geo.wbuf_port_records  # records per bank in each weight memory
        WF = geo.wbuf_slices  # a dense record is WF slices of the weight memory
        WSB = geo.wbuf_slice_bytes * 8  # slice bits
        RECB = geo.rec_bytes * 8
        DWT = geo.dw_taps  # depthwise taps of a kernel row per pair (1: one tap per pair)

        # ---------------- memories (two banks each; bank = the address MSB) ----------------
        # input buffer: WPB column-interleaved banks (column c in bank c % WPB at c // WPB), so
        # a whole DDR beat of WPB packed words is written per cycle; two read ports per bank
        # (pixels A and B of a pair)
        NB = WPB
        CW = -(-TC_IN // NB)  # columns per bank per row
        DIK = geo.tr_in * CW  # words per bank per chunk bank
        ib_w, ib_r = [], []
        for k in range(NB):
            mem = memory.Memory(shape=unsigned(CB * ACT_BITS), depth=2 * DIK, init=[])
            m.submodules[f"ibuf{k}"] = mem
            ib_w.append(mem.write_port(granularity=WB))
            ib_r.append(mem.read_port())  # pixel A in phase 0, pixel B in phase 1
        # residual tile: NB column-interleaved banks like the input buffer (tile column j in
        # bank j mod NB at j // NB), so the loader writes a whole beat per cycle; a pixel pair
        # reads two different banks (one read port each), or with one bank two ports
        RCW = -(-TC // NB)  # residual columns per bank per row
        DRK = TR * RCW  # words per residual bank per step bank
        rb_w, rb_ra, rb_rb = [], [], []
        for k in range(NB):
            mem = memory.Memory(shape=unsigned(TM * ACT_BITS), depth=2 * DRK, init=[])
            m.submodules[f"rbuf{k}"] = mem
            rb_w.append(mem.write_port(granularity=WB))
            rb_ra.append(mem.read_port())
            rb_rb.append(mem.read_port() if NB == 1 else rb_ra[-1])
        # weight buffer: KW memories of two banks; record r of a bank in memory r mod KW,
        # stored as WF consecutive slices (bank b, record r, slice s at
        # (b DWBK + r // KW) WF + s of memory r mod KW); a depthwise record is slice 0
        wb_ws, wb_rs = [], []
        for k in range(KW):
            mem = memory.Memory(shape=unsigned(WSB), depth=geo.wbuf_depth, init=[])
            m.submodules["wbuf" if k == 0 else f"wbuf{k}"] = mem
            wb_ws.append(mem.write_port())
            wb_rs.append(mem.read_port())
        wb_w = wb_ws[0]
        acc_layout = data.ArrayLayout(data.ArrayLayout(signed(ACC), TM), 2)
        m.submodules.abuf = abuf = memory.Memory(shape=acc_layout, depth=2 * DA, init=[])
        ab_w = abuf.write_port()
        # one read port, shared: the compute write-back reads at most every other cycle (one
        # pair per two cycles) and has priority; the drain reads in the free cycles and keeps
        # its word in a register (one BRAM copy instead of two)
        ab_r = abuf.read_port()
        obufs = []
        for j in range(geo.out_planes):
            ob = memory.Memory(shape=unsigned(WPB * WB), depth=2 * TR * geo.obuf_beats,
                               init=[])
            m.submodules[f"obuf{j}"] = ob
            obufs.append((ob.write_port(granularity=WB), ob.read_port()))
        # two banks of output tiles: the drain requantizes into one while the store agent
        # writes the other to DDR
        DOB = TR * geo.obuf_beats
        ob_full = Signal(2)  # output tile bank requantized, not yet stored
        set_ob, clr_ob = Signal(2), Signal(2)
        m.d.sync += ob_full.eq((ob_full | set_ob) & ~clr_ob)
        ob_b = Signal()  # the drain's output tile bank
        s_b = Signal()  # the store agent's bank
        # read enables default to 0 (lib.memory's default is 1): data hold between reads
        for k in range(NB):
            m.d.comb += [ib_r[k].en.eq(0), ib_w[k].en.eq(0)]
        for k in range(NB):
            m.d.comb += [rb_ra[k].en.eq(0), rb_rb[k].en.eq(0), rb_w[k].en.eq(0)]
        m.d.comb += ab_r.en.eq(0)
        for k in range(KW):
            m.d.comb += wb_rs[k].en.eq(0)

        # ---------------- arithmetic blocks ----------------
        pe_cls = PEArrayTiming if self.timing_twin else PEArray
        m.submodules.pe = pe = pe_cls(cfg, dw_taps=DWT)
        # requantization: RQ units, a pixel's TM lanes in RQP passes of RQ lanes (whole planes)
        RQ, RQP = geo.rq_lanes, geo.rq_passes
        m.submodules.rq = rq = RequantBank(cfg, lanes=RQ, residual=True)
        m.submodules.gb_w = gb_w = RecordGearbox(BB, geo.wbuf_slice_bytes)
        m.submodules.gb_d = gb_d = RecordGearbox(BB, geo.dw_rec_bytes)
        m.submodules.gb_p = gb_p = RecordGearbox(BB, PARAM_SIZE)
        # parameters (and, without weight ports, the weights) come through port 0
        for gb in (gb_w, gb_d, gb_p):
            m.d.comb += [gb.beat.eq(self.rd_data.p.data), gb.beat_valid.eq(self.rd_data.valid),
                         gb.enable.eq(0)]

        # ---------------- program state ----------------
        base = Signal(AW)
        n_layers = Signal(16)
        hb_magic, hb_sizes, hb_config, hb_empty = Signal(), Signal(), Signal(), Signal()
        layer = Signal(16)
        desc_addr = Signal(AW)
        status = Signal(32)
        hdr = Signal(HEADER_SIZE * 8)
        desc = Signal(DESC_SIZE * 8)

        def field(name: str, width: int = 64, sign: bool = False):
            v = desc[_w(FIELDS.index(name))][:width]
            return v.as_signed() if sign else v

        # decoded descriptor: constant while a layer runs
        op = Signal(3)
        flags = Signal(8)
        in_c, in_h, in_w = Signal(DIM), Signal(DIM), Signal(DIM)
        out_c, out_h, out_w = Signal(DIM), Signal(DIM), Signal(DIM)
        kh, kw = Signal(range(KMAX + 1)), Signal(range(KMAX + 1))
        sh, sw = Signal(range(SMAX + 1)), Signal(range(SMAX + 1))
        ph, pw = Signal(range(PMAX + 1)), Signal(range(PMAX + 1))
        pad_code = Signal(ACT_BITS)
        lo, hi = Signal(signed(16)), Signal(signed(16))
        in_addr, res_addr, out_addr = Signal(AW), Signal(AW), Signal(AW)
        in_row, in_plane = Signal(32), Signal(32)
        res_row, res_plane = Signal(32), Signal(32)
        out_row, out_plane = Signal(32), Signal(32)
        logits = Signal()
        has_res = Signal()
        w_addr, p_addr = Signal(AW), Signal(AW)
        w_chunks = Signal(DIM)
        u_mult = Signal(MULT_BITS)
        u_mult_b = Signal(RES_MULT_BITS)
        u_offset = Signal(signed(Y_BITS))
        u_shift = Signal(SHIFT_BITS)
        mode = Signal(2)  # PE mode
        in_skip = Signal()  # 1x1, stride 2, no padding: only the even input rows are read
        is_max = Signal()
        has_w = Signal()  # conv-like: weights and per-channel params from DDR
        n_chunks = Signal(DIM)
        last_chunk = Signal(DIM)  # n_chunks - 1: "last chunk" is an equality, not an adder
        taps = Signal(range(KMAX * KMAX + 1))  # tap records per chunk (kh kw)
        ctaps = Signal(range(KMAX * KMAX + 1))  # compute passes per chunk: kh x groups per row
        dgw = Signal(range(DWT + 1), init=1)  # taps per group (depthwise; 1 otherwise)
        taps_wf = Signal(range(KMAX * KMAX * WF + 1))  # weight-memory slices of one chunk
        chunk_bytes = Signal(24)
        group_bytes = Signal(AW)  # weight bytes of one output-channel group (all chunks)
        in_planes_total = Signal(DIM)  # ceil(in_c / G)
        out_planes_total = Signal(DIM)
        sh_tc = Signal(range(SMAX * TC_IN + 1))
        tr_sh = Signal(range(TR * SMAX + 1))
        tc_sw = Signal(range(TC * SMAX + 1))

        # per-channel parameters, one bank per step parity (fetch writes, drain reads)
        p_off = [[Signal(signed(Y_BITS), name=f"p_off{b}_{k}") for k in range(TM)]
                 for b in range(2)]
        p_mult = [[Signal(MULT_BITS, name=f"p_mult{b}_{k}") for k in range(TM)] for b in range(2)]
        p_shift = [[Signal(SHIFT_BITS, name=f"p_shift{b}_{k}") for k in range(TM)]
                   for b in range(2)]
        p_rmul = [[Signal(RES_MULT_BITS, name=f"p_rmul{b}_{k}") for k in range(TM)]
                  for b in range(2)]

        # ---------------- bank hand-shakes between the agents ----------------
        in_full = Signal(2)  # input bank (chunk parity) loaded, not yet computed
        # weight banks: reloaded only when the chunk's weights change (a layer with one input
        # chunk keeps its group's weights for every tile of the group); a bank is free again
        # once the compute has moved on to the other one
        w_full = Signal(2)
        set_w, clr_w = Signal(2), Signal(2)
        m.d.sync += w_full.eq((w_full | set_w) & ~clr_w)
        acc_full = Signal(2)  # accumulator bank computed, not yet drained
        step_busy = Signal(2)  # param / residual bank of a step in use (fetch .. drain)
        res_ready = Signal(2)  # residual tile of the step loaded
        run_go = Signal()  # pulse: the agents start a layer
        fe_idle, cp_idle, dr_idle = Signal(), Signal(), Signal()
        set_in, clr_in = Signal(2), Signal(2)
        set_acc, clr_acc = Signal(2), Signal(2)
        set_busy, clr_busy = Signal(2), Signal(2)
        set_res = Signal(2)
        m.d.sync += [in_full.eq((in_full | set_in) & ~clr_in),
                     acc_full.eq((acc_full | set_acc) & ~clr_acc),
                     step_busy.eq((step_busy | set_busy) & ~clr_busy),
                     res_ready.eq((res_ready | set_res) & ~clr_busy)]

        # step records: the fetcher walks the tiles and hands each step on with the data
        step_layout = data.StructLayout({
            "rows": range(TR + 1), "cols": range(TC + 1), "m_eff": range(TM + 1),
            "mo_base": DIM, "r0": DIM, "c0": DIM, "yb": signed(DIM + 2), "xb": signed(DIM + 2),
            "plane0": DIM, "last": 1,
        })
        m.submodules.cq = cq = fifo.SyncFIFO(width=step_layout.size, depth=4)
        m.submodules.dq = dq = fifo.SyncFIFO(width=step_layout.size, depth=4)
        cq_head = data.View(step_layout, cq.r_data)
        dq_head = data.View(step_layout, dq.r_data)

        # ---------------- counters ----------------
        cyc = Signal(64)
        st_w, st_i, st_o = Signal(64), Signal(64), Signal(64)
        busy = Signal()
        cnt = ctrl.counters
        m.d.comb += [cnt.cycles.eq(cyc), cnt.stall_weight.eq(st_w), cnt.stall_input.eq(st_i),
                     cnt.stall_output.eq(st_o), cnt.status.eq(status)]
        with m.If(busy):
            m.d.sync += cyc.eq(cyc + 1)
        cls_w, cls_i, cls_o = Signal(), Signal(), Signal()
        with m.If(cls_w):
            m.d.sync += st_w.eq(st_w + 1)
        with m.If(cls_i):
            m.d.sync += st_i.eq(st_i + 1)
        with m.If(cls_o):
            m.d.sync += st_o.eq(st_o + 1)

        # ================= activation loader (input / residual rectangle -> buffer) ==========
        ld_go = Signal()  # pulse; the ld_* set-up registers are stable from the cycle before
        ld_busy = Signal()
        ld_res = Signal()  # target: residual buffer (else input buffer)
        ld_bank = Signal()
        ld_tensor = Signal(AW)
        ld_pstride, ld_rstride = Signal(32), Signal(32)
        ld_plane0 = Signal(DIM)
        ld_nplanes = Signal(range(max(geo.out_planes, geo.in_planes) + 1))
        ld_plimit = Signal(DIM)
        ld_yb, ld_xb = Signal(signed(DIM + 2)), Signal(signed(DIM + 2))
        ld_hin, ld_win = Signal(DIM), Signal(DIM)
        ld_h, ld_wd = Signal(DIM), Signal(DIM)
        ld_pitch = Signal(range(TC_IN + 1))
        # row step: a 1x1 stride-2 window without padding reads every other input row only
        ld_rstep = Signal(33)  # DDR bytes from one loaded row to the next
        ld_pstep = Signal(range(2 * TC_IN + 1))  # buffer words from one loaded row to the next
        ld_skip = Signal()  # the row step is 2
        ylo, yhi = Signal(signed(DIM + 2)), Signal(signed(DIM + 2))
        xlo, xhi = Signal(signed(DIM + 2)), Signal(signed(DIM + 2))
        bx0 = Signal(DIM)
        nbeats = Signal(DIM)
        row_off = Signal(AW)
        plane_addr = Signal(AW)
        ld_j = Signal(range(max(geo.out_planes, geo.in_planes) + 1))
        ld_y = Signal(signed(DIM + 2))
        ld_wrow = Signal(range(DI + 1))
        ld_wrow0 = Signal(range(DI + 1))
        ld_q0 = Signal(signed(DIM + 2))  # bank column of the first beat's word 0 (floor)
        ld_rot = Signal(range(WPB))  # bank of the first beat's word 0
        ld_q = Signal(signed(DIM + 2))
        ld_xbeat = Signal(signed(DIM + 2))  # map column of word 0 of the current beat
        ld_beat = self.rd_data.p.data

        # params / weights of the fetcher commanded before this rectangle: their beats come
        # first (read data is in command order), the loader's data side waits for them
        f_prm, f_wl = Signal(), Signal()
        f_hold = f_prm if KP else f_prm | f_wl
        # The command side issues one read per (plane, row) back to back (the reader keeps
        # several bursts in flight, hiding the DDR latency); the data side consumes the beats
        # in the same order, a whole beat per cycle into the column banks of the input or the
        # residual tile.
        ldc_busy, ldd_busy = Signal(), Signal()
        ldc_j = Signal(range(max(geo.out_planes, geo.in_planes) + 1))
        ldc_y = Signal(signed(DIM + 2))
        ldc_plane = Signal(AW)
        ldc_row = Signal(AW)
        ldc_go = Signal()
        ld_nvalid = Signal(range(max(geo.out_planes, geo.in_planes) + 1))  # planes that exist
        m.d.comb += ld_busy.eq(ldc_busy | ldd_busy | ld_go)
        # column -> (beat, word) of the rectangle's edges, by pipelined constant dividers
        m.submodules.dv_xlo = dv_xlo = ConstDivider(DIM, WPB)
        m.submodules.dv_xhi = dv_xhi = ConstDivider(DIM, WPB)
        m.d.comb += [dv_xlo.x.eq(xlo.as_unsigned()[:DIM]), dv_xhi.x.eq(xhi.as_unsigned()[:DIM])]
        ld_wait = Signal(range(DIM + 3))
        # c0n = bx0 WPB - xb, the bank column of word 0 of the first beat relative to the
        # rectangle, is -(xlo mod WPB) when xb >= 0 (xlo = xb) and -xb in 1..PMAX when xb < 0
        # (xlo = 0): its floor quotient and remainder by WPB come from the divider's remainder
        # or a small table, registered in SETUP (a signed divide here would be a deep path)
        nxb = Signal(range(PMAX + 1))
        m.d.comb += nxb.eq((0 - ld_xb)[:len(nxb)])
        with m.FSM(name="loader"):
            with m.State("IDLE"):
                with m.If(ld_go):
                    m.d.sync += [
                        ylo.eq(Mux(ld_yb < 0, 0, ld_yb)),
                        yhi.eq(Mux(ld_yb + ld_hin > ld_h, ld_h, ld_yb + ld_hin) - 1),
                        xlo.eq(Mux(ld_xb < 0, 0, ld_xb)),
                        xhi.eq(Mux(ld_xb + ld_win > ld_wd, ld_wd, ld_xb + ld_win) - 1),
                        plane_addr.eq(ld_tensor + ld_plane0 * ld_pstride),
                        ld_nvalid.eq(Mux(ld_plane0 + ld_nplanes > ld_plimit,
                                         ld_plimit - ld_plane0, ld_nplanes)),
                        ld_wait.eq(0),
                    ]
                    m.next = "DIV"
            with m.State("DIV"):  # the dividers see the new edges
                m.d.comb += ldc_busy.eq(1)
                m.d.sync += ld_wait.eq(ld_wait + 1)
                with m.If(ld_wait == dv_xlo.latency + 1):
                    m.next = "SETUP"
            with m.State("SETUP"):
                m.d.comb += ldc_busy.eq(1)
                with m.If(ld_xb < 0):
                    with m.Switch(nxb):
                        for v in range(1, PMAX + 1):
                            with m.Case(v):
                                m.d.sync += [ld_q0.eq(v // WPB), ld_rot.eq(v % WPB)]
                with m.Elif(dv_xlo.r == 0):
                    m.d.sync += [ld_q0.eq(0), ld_rot.eq(0)]
                with m.Else():
                    m.d.sync += [ld_q0.eq(-1), ld_rot.eq(WPB - dv_xlo.r)]
                m.d.sync += [
                    bx0.eq(dv_xlo.q),
                    nbeats.eq(dv_xhi.q - dv_xlo.q + 1),
                    row_off.eq(ylo.as_unsigned()[:DIM] * ld_rstride),
                    ld_wrow0.eq((ylo - ld_yb).as_unsigned()[:DIM] * ld_pitch),
                ]
                with m.If((ylo > yhi) | (xlo > xhi) | (ld_plane0 >= ld_plimit)):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [ldc_busy.eq(1), ldc_go.eq(1)]
                m.d.sync += [ldc_j.eq(0), ldc_y.eq(ylo), ldc_plane.eq(plane_addr),
                             ldc_row.eq(plane_addr + row_off)]
                m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += [ldc_busy.eq(1), self.rd_cmd.valid.eq(1),
                             self.rd_cmd.p.addr.eq(ldc_row + (bx0 << LB)),
                             self.rd_cmd.p.beats.eq(nbeats)]
                with m.If(self.rd_cmd.ready):
                    with m.If(ldc_y == yhi):
                        m.d.sync += [ldc_j.eq(ldc_j + 1), ldc_y.eq(ylo),
                                     ldc_plane.eq(ldc_plane + ld_pstride),
                                     ldc_row.eq(ldc_plane + ld_pstride + row_off)]
                        with m.If(ldc_j + 1 == ld_nvalid):
                            m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [ldc_y.eq(ldc_y + 1 + ld_skip),
                                     ldc_row.eq(ldc_row + ld_rstep)]
        with m.FSM(name="loader_data"):
            with m.State("IDLE"):
                with m.If(ldc_go):
                    m.d.sync += [ld_j.eq(0), ld_y.eq(ylo), ld_wrow.eq(ld_wrow0),
                                 ld_xbeat.eq(bx0 * WPB), ld_q.eq(ld_q0)]
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += ldd_busy.eq(1)
                with m.If(self.rd_data.valid & ~f_hold):  # a whole beat per cycle
                    m.d.comb += self.rd_data.ready.eq(1)
                    for k in range(NB):
                        wk = Signal(range(WPB), name=f"ld_w{k}")
                        with m.Switch(ld_rot):
                            for r in range(WPB):
                                with m.Case(r):
                                    m.d.comb += wk.eq((k - r) % WPB)
                        xk = ld_xbeat + wk
                        word = ld_beat.word_select(wk, WB) if WPB > 1 else ld_beat[:WB]
                        ok = (xk >= xlo) & (xk <= xhi)
                        # bank column of this word: the same for the input and residual tiles
                        qk = ld_wrow + ld_q + ((k < ld_rot) if k < WPB - 1 else 0)
                        m.d.comb += [
                            ib_w[k].addr.eq(Mux(ld_bank, DIK, 0) + qk),
                            ib_w[k].data.eq(word.replicate(CB // G)),
                            ib_w[k].en.eq(Mux(ok & ~ld_res, Const(1, CB // G) << ld_j, 0)),
                            rb_w[k].addr.eq(Mux(ld_bank, DRK, 0) + qk),
                            rb_w[k].data.eq(word.replicate(TM // G)),
                            rb_w[k].en.eq(Mux(ok & ld_res, Const(1, TM // G) << ld_j, 0)),
                        ]
                    with m.If(ld_xbeat + WPB > xhi):  # last beat of the row
                        m.d.sync += [ld_xbeat.eq(bx0 * WPB), ld_q.eq(ld_q0)]
                        with m.If(ld_y == yhi):
                            m.d.sync += [ld_j.eq(ld_j + 1), ld_y.eq(ylo), ld_wrow.eq(ld_wrow0)]
                            with m.If(ld_j + 1 == ld_nvalid):
                                m.next = "IDLE"
                        with m.Else():
                            m.d.sync += [ld_y.eq(ld_y + 1 + ld_skip),
                                         ld_wrow.eq(ld_wrow + ld_pstep)]
                    with m.Else():
                        m.d.sync += [ld_xbeat.eq(ld_xbeat + WPB), ld_q.eq(ld_q + 1)]

        # ================= fetch agent: tiles -> params, weights, inputs, residuals ==========
        f_mo, f_r0, f_c0 = Signal(DIM), Signal(DIM), Signal(DIM)
        f_rows, f_cols = Signal(range(TR + 1)), Signal(range(TC + 1))
        f_meff = Signal(range(TM + 1))
        f_yb, f_xb = Signal(signed(DIM + 2)), Signal(signed(DIM + 2))
        f_plane0 = Signal(DIM)  # first output plane of the group
        f_no = Signal(DIM)
        f_inplane0 = Signal(DIM)
        f_wgrp, f_wptr, f_pptr = Signal(AW), Signal(AW), Signal(AW)
        f_sp = Signal()  # step parity (param / residual / accumulator bank)
        f_cb = Signal()  # chunk parity (input bank)
        f_wb = Signal()  # weight bank holding the newest weights
        # per chunk, fetch -> compute: which weight bank it uses
        # (bank, memory and slice address of the chunk's first record)
        WQ_K = len(Signal(KR))
        m.submodules.wq = wq = fifo.SyncFIFO(
            width=1 + WQ_K + len(Signal(range(geo.wbuf_depth + 1))), depth=4)
        f_last = Signal()
        p_idx = Signal(range(TM + BB // PARAM_SIZE + 2))
        w_slot = Signal(range(KMAX * KMAX * WF + 1))  # slice of the chunk being written
        f_wtgt = Signal()  # weight bank being written
        f_wtog = Signal()  # this load starts a new weight bank
        # the first record of a chunk: memory f_wk, slice address f_was (bank offset included);
        # f_k0 / f_a0s: where chunk f_no of a resident group starts in a bank (record
        # f_no taps = f_a0s / WF * KW + f_k0), advanced by (taps mod KW, (taps // KW) WF)
        SAW = geo.wbuf_depth + 1
        f_wk, f_k0 = Signal(KR), Signal(KR)
        f_was, f_a0s = Signal(range(SAW)), Signal(range(SAW))
        t_modk = Signal(KR)
        t_divk_wf = Signal(range(SAW))
        with m.Switch(taps):
            for t in range(1, KMAX * KMAX + 1):
                with m.Case(t):
                    m.d.sync += [t_modk.eq(t % KW), t_divk_wf.eq((t // KW) * WF)]
        w_resident = Signal()  # all chunks of a group fit one weight bank: load once per group
        w_rec_valid = Mux(mode == MODE_DENSE, gb_w.rec_valid, gb_d.rec_valid)
        w_rec = Mux(mode == MODE_DENSE, gb_w.rec, gb_d.rec)
        if not KP:  # the fetcher writes the weights it reads from port 0
            m.d.comb += [wb_w.addr.eq(f_was + w_slot), wb_w.data.eq(w_rec)]
        # weight ports: per tap, the fetcher issues a read to the port w_sel names (one-hot,
        # rotating) and queues the job; w_tlast: this record is the chunk's last. Both are
        # registers, so W_CMD's path into the fetch state has no port decode or tap compare
        w_t = Signal(range(KMAX * KMAX + 1))
        w_sel = Signal(max(KP, 1))
        w_tlast = Signal()
        w_as = Signal(range(SAW))
        w_tptr = Signal(AW)
        wjq = []
        for k in range(KP):
            q = fifo.SyncFIFO(width=LB + len(w_as), depth=8)
            m.submodules[f"wjq{k}"] = q
            wjq.append(q)
        wp_idle = Signal(max(KP, 1))  # weight port k has no job queued or running
        w_step = Mux(mode == MODE_DENSE, 1, WF)  # a depthwise record fills one record's slot
        fe_w = Signal()  # fetcher is loading weights (for the stall counters)

        def take_param(bank):
            with m.Switch(p_idx):
                for k in range(TM):
                    with m.Case(k):
                        m.d.sync += [p_off[bank][k].eq(gb_p.rec[0:Y_BITS].as_signed()),
                                     p_mult[bank][k].eq(gb_p.rec[64:64 + MULT_BITS]),
                                     p_shift[bank][k].eq(gb_p.rec[80:80 + SHIFT_BITS]),
                                     p_rmul[bank][k].eq(gb_p.rec[96:96 + RES_MULT_BITS])]

        with m.FSM(name="fetch"):
            with m.State("IDLE"):
                m.d.comb += fe_idle.eq(1)
                with m.If(run_go):
                    m.d.sync += [f_mo.eq(0), f_r0.eq(0), f_c0.eq(0), f_plane0.eq(0),
                                 f_yb.eq(0 - ph), f_xb.eq(0 - pw), f_wgrp.eq(w_addr),
                                 f_pptr.eq(p_addr), f_sp.eq(0), f_cb.eq(0), f_wb.eq(1)]
                    m.next = "STEP"
            with m.State("STEP"):
                m.d.sync += [
                    f_meff.eq(Mux(out_c - f_mo < TM, out_c - f_mo, TM)),
                    f_rows.eq(Mux(out_h - f_r0 < TR, out_h - f_r0, TR)),
                    f_cols.eq(Mux(out_w - f_c0 < TC, out_w - f_c0, TC)),
                    f_last.eq((f_c0 + TC >= out_w) & (f_r0 + TR >= out_h) & (f_mo + TM >= out_c)),
                    f_wptr.eq(f_wgrp), f_no.eq(0), f_k0.eq(0), f_a0s.eq(0),
                    f_inplane0.eq(Mux(mode == MODE_DENSE, 0, f_plane0)),
                ]
                m.next = "STEP_WAIT"
            with m.State("STEP_WAIT"):  # the step's param/residual bank must be free
                rec = data.View(step_layout, cq.w_data)
                m.d.comb += [rec.rows.eq(f_rows), rec.cols.eq(f_cols), rec.m_eff.eq(f_meff),
                             rec.mo_base.eq(f_mo), rec.r0.eq(f_r0), rec.c0.eq(f_c0),
                             rec.yb.eq(f_yb), rec.xb.eq(f_xb), rec.plane0.eq(f_plane0),
                             rec.last.eq(f_last)]
                with m.If(~step_busy.bit_select(f_sp, 1) & cq.w_rdy):
                    m.d.comb += [cq.w_en.eq(1), set_busy.eq(Mux(f_sp, 2, 1))]
                    with m.If(has_w):
                        m.next = "PRM_CMD"
                    with m.Else():
                        m.next = "CHUNK"
            with m.State("PRM_CMD"):
                m.d.comb += [self.rd_cmd.valid.eq(1),
                             self.rd_cmd.p.addr.eq(Cat(Const(0, LB), f_pptr[LB:])),
                             self.rd_cmd.p.beats.eq(
                                 (f_pptr[:LB] + f_meff * PARAM_SIZE + BB - 1) >> LB),
                             gb_p.start.eq(1), gb_p.skip.eq(f_pptr[:LB] // gb_p.unit)]
                with m.If(self.rd_cmd.ready):
                    m.d.sync += [p_idx.eq(0), f_prm.eq(1)]
                    m.next = "CHUNK"
            with m.State("PRM_RD"):
                m.d.comb += [gb_p.enable.eq(1), self.rd_data.ready.eq(gb_p.beat_ready)]
                with m.If(gb_p.rec_valid):
                    m.d.sync += p_idx.eq(p_idx + 1)
                    with m.If(f_sp):
                        take_param(1)
                    with m.Else():
                        take_param(0)
                with m.If(self.rd_data.valid & self.rd_data.ready & self.rd_data.p.last):
                    m.next = "PRM_END"
            with m.State("PRM_END"):  # the last record lands one cycle after its beat
                with m.If(gb_p.rec_valid):
                    with m.If(f_sp):
                        take_param(1)
                    with m.Else():
                        take_param(0)
                m.d.sync += f_prm.eq(0)
                with m.If(f_wl):
                    m.next = "W_RD"
                with m.Else():
                    m.next = "IN_ANN"
            with m.State("CHUNK"):  # wait for a free input bank (and weight bank if reloading)
                # resident: the group's chunks are loaded in its first tile, into one bank, and
                # kept for the other tiles; otherwise every chunk is reloaded into a new bank
                first_tile = (f_r0 == 0) & (f_c0 == 0)
                wnew = has_w & (~w_resident | first_tile)
                tog = wnew & (~w_resident | (f_no == 0))
                tgt = Mux(tog, ~f_wb, f_wb)
                k0 = Mux(w_resident, f_k0, 0)
                a0 = Mux(tgt, DWBK * WF, 0) + Mux(w_resident, f_a0s, 0)
                m.d.sync += [f_wtog.eq(tog), f_wtgt.eq(tgt), f_wk.eq(k0), f_was.eq(a0),
                             w_t.eq(0), w_as.eq(a0), w_tptr.eq(f_wptr),
                             w_sel.eq(Const(1, len(w_sel)) << k0), w_tlast.eq(taps == 1)]
                with m.If(~in_full.bit_select(f_cb, 1)
                          & (~tog | ~w_full.bit_select(~f_wb, 1)) & wq.w_rdy):
                    with m.If(wnew):
                        m.next = "W_CMD"
                    with m.Else():
                        m.next = "IN_GO"
            if KP:
                with m.State("W_CMD"):  # one read per tap record, to port (record mod KP)
                    recb = Mux(mode == MODE_DENSE, geo.rec_bytes, geo.dw_rec_bytes)
                    off = w_tptr[:LB]
                    # each port's handshake from its own select bit, ORed (not a priority
                    # chain of per-port assignments: the one-hot select stays a flat AND-OR)
                    fire_k = Signal(KP)
                    fire = Signal()
                    m.d.comb += [fe_w.eq(1), fire.eq(fire_k.any())]
                    for k in range(KP):
                        wc = self.w_cmd[k]
                        m.d.comb += [wc.valid.eq(w_sel[k] & wjq[k].w_rdy),
                                     wc.p.addr.eq(Cat(Const(0, LB), w_tptr[LB:])),
                                     wc.p.beats.eq((off + recb + BB - 1) >> LB),
                                     wjq[k].w_data.eq(Cat(off, w_as)),
                                     fire_k[k].eq(w_sel[k] & wc.ready & wjq[k].w_rdy),
                                     wjq[k].w_en.eq(fire_k[k])]
                    with m.If(fire):
                        m.d.sync += [w_t.eq(w_t + 1), w_tptr.eq(w_tptr + recb),
                                     w_tlast.eq(w_t + 2 == taps)]
                        if KP > 1:
                            m.d.sync += w_sel.eq(w_sel.rotate_left(1))
                            with m.If(w_sel[KP - 1]):
                                m.d.sync += w_as.eq(w_as + WF)
                        else:
                            m.d.sync += w_as.eq(w_as + WF)
                        with m.If(w_tlast):
                            m.d.sync += f_wl.eq(1)
                            m.next = "IN_GO"
                with m.State("W_RD"):  # every port has written its records
                    m.d.comb += fe_w.eq(1)
                    with m.If(wp_idle.all()):
                        m.next = "W_END"
            else:  # weights share port 0 with the activations
                with m.State("W_CMD"):
                    off = f_wptr[:LB]
                    m.d.comb += [fe_w.eq(1), self.rd_cmd.valid.eq(1),
                                 self.rd_cmd.p.addr.eq(Cat(Const(0, LB), f_wptr[LB:])),
                                 self.rd_cmd.p.beats.eq((off + chunk_bytes + BB - 1) >> LB),
                                 gb_w.start.eq(mode == MODE_DENSE),
                                 gb_d.start.eq(mode != MODE_DENSE),
                                 gb_w.skip.eq(off // gb_w.unit), gb_d.skip.eq(off // gb_d.unit)]
                    with m.If(self.rd_cmd.ready):
                        m.d.sync += [w_slot.eq(0), f_wl.eq(1)]
                        m.next = "IN_GO"
                with m.State("W_RD"):
                    m.d.comb += fe_w.eq(1)
                    with m.If(mode == MODE_DENSE):
                        m.d.comb += [gb_w.enable.eq(1), self.rd_data.ready.eq(gb_w.beat_ready)]
                    with m.Else():
                        m.d.comb += [gb_d.enable.eq(1), self.rd_data.ready.eq(gb_d.beat_ready)]
                    with m.If(w_rec_valid & (w_slot < taps_wf)):
                        m.d.comb += wb_w.en.eq(1)
                        m.d.sync += w_slot.eq(w_slot + w_step)
                    with m.If(self.rd_data.valid & self.rd_data.ready & self.rd_data.p.last):
                        m.next = "W_END"
            with m.State("W_END"):  # the chunk's records are in their bank
                m.d.comb += fe_w.eq(1)
                if not KP:  # the last record lands one cycle after its beat
                    with m.If(w_rec_valid & (w_slot < taps_wf)):
                        m.d.comb += wb_w.en.eq(1)
                m.d.sync += [f_wptr.eq(f_wptr + chunk_bytes), f_wb.eq(f_wtgt), f_wl.eq(0)]
                with m.If(f_wtog):
                    m.d.comb += set_w.eq(Mux(f_wtgt, 2, 1))
                m.next = "IN_ANN"
            with m.State("IN_GO"):  # set up the loader for this chunk's input rectangle
                # (right behind the param / weight commands: the DDR latencies overlap)
                m.d.sync += [ld_res.eq(0), ld_bank.eq(f_cb), ld_tensor.eq(in_addr),
                             ld_pstride.eq(in_plane), ld_rstride.eq(in_row),
                             ld_plimit.eq(in_planes_total), ld_h.eq(in_h), ld_wd.eq(in_w),
                             ld_yb.eq(f_yb), ld_xb.eq(f_xb),
                             ld_hin.eq((f_rows - 1) * sh + kh), ld_win.eq((f_cols - 1) * sw + kw),
                             ld_plane0.eq(f_inplane0), ld_pitch.eq(CW),
                             ld_rstep.eq(Mux(in_skip, in_row << 1, in_row)),
                             ld_pstep.eq(Mux(in_skip, 2 * CW, CW)), ld_skip.eq(in_skip),
                             ld_nplanes.eq(Mux(mode == MODE_DENSE, geo.in_planes,
                                               geo.out_planes))]
                m.next = "IN_LD"
            with m.State("IN_LD"):
                m.d.comb += ld_go.eq(1)
                with m.If(f_prm):
                    m.next = "PRM_RD"
                with m.Elif(f_wl):
                    m.next = "W_RD"
                with m.Else():
                    m.next = "IN_ANN"
            with m.State("IN_ANN"):
                # the chunk's weights are in their bank (wq had room in CHUNK): tell the
                # compute agent now, so it can stage the first record before the inputs land
                m.d.comb += [wq.w_en.eq(1), wq.w_data.eq(Cat(f_wb, f_wk, f_was))]
                m.next = "IN_WAIT"
            with m.State("IN_WAIT"):
                with m.If(~ld_busy):
                    m.d.comb += set_in.eq(Mux(f_cb, 2, 1))
                    m.d.sync += [f_cb.eq(~f_cb), f_no.eq(f_no + 1),
                                 f_inplane0.eq(f_inplane0 + geo.in_planes)]
                    # where the next chunk of a resident group starts
                    if KW > 1:
                        nk = f_k0 + t_modk
                        with m.If(nk >= KW):
                            m.d.sync += [f_k0.eq(nk - KW), f_a0s.eq(f_a0s + t_divk_wf + WF)]
                        with m.Else():
                            m.d.sync += [f_k0.eq(nk), f_a0s.eq(f_a0s + t_divk_wf)]
                    else:
                        m.d.sync += f_a0s.eq(f_a0s + t_divk_wf)
                    with m.If(f_no == last_chunk):
                        m.next = "RES_GO"
                    with m.Else():
                        m.next = "CHUNK"
            with m.State("RES_GO"):
                m.d.sync += [ld_res.eq(1), ld_bank.eq(f_sp), ld_tensor.eq(res_addr),
                             ld_pstride.eq(res_plane), ld_rstride.eq(res_row),
                             ld_plimit.eq(out_planes_total), ld_h.eq(out_h), ld_wd.eq(out_w),
                             ld_yb.eq(f_r0), ld_xb.eq(f_c0), ld_hin.eq(f_rows), ld_win.eq(f_cols),
                             ld_plane0.eq(f_plane0), ld_pitch.eq(RCW), ld_rstep.eq(res_row),
                             ld_pstep.eq(RCW), ld_skip.eq(0),
                             ld_nplanes.eq(geo.out_planes)]
                with m.If(has_res):
                    m.next = "RES_LD"
                with m.Else():
                    m.next = "NEXT"
            with m.State("RES_LD"):
                m.d.comb += ld_go.eq(1)
                m.next = "RES_WAIT"
            with m.State("RES_WAIT"):
                with m.If(~ld_busy):
                    m.d.comb += set_res.eq(Mux(f_sp, 2, 1))
                    m.next = "NEXT"
            with m.State("NEXT"):  # next spatial tile, then next channel group
                m.d.sync += f_sp.eq(~f_sp)
                with m.If(f_c0 + TC < out_w):
                    m.d.sync += [f_c0.eq(f_c0 + TC), f_xb.eq(f_xb + tc_sw)]
                with m.Else():
                    m.d.sync += [f_c0.eq(0), f_xb.eq(0 - pw)]
                    with m.If(f_r0 + TR < out_h):
                        m.d.sync += [f_r0.eq(f_r0 + TR), f_yb.eq(f_yb + tr_sh)]
                    with m.Else():
                        m.d.sync += [f_r0.eq(0), f_yb.eq(0 - ph), f_mo.eq(f_mo + TM),
                                     f_plane0.eq(f_plane0 + geo.out_planes),
                                     f_wgrp.eq(f_wgrp + group_bytes),
                                     f_pptr.eq(f_pptr + TM * PARAM_SIZE)]
                with m.If(f_last):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "STEP"

        # ================= weight ports: tap records -> weight memories =====================
        # port k takes the jobs the fetcher queued for it (in command order): a tap record's
        # beats through its own gearboxes into memory k, WF slices (a depthwise record: one)
        for k in range(KP):
            gw = RecordGearbox(BB, geo.wbuf_slice_bytes)
            gd = RecordGearbox(BB, geo.dw_rec_bytes)
            m.submodules[f"gb_w{k + 1}"], m.submodules[f"gb_d{k + 1}"] = gw, gd
            wd = self.w_data[k]
            for gb in (gw, gd):
                m.d.comb += [gb.beat.eq(wd.p.data), gb.beat_valid.eq(wd.valid), gb.enable.eq(0)]
            job_off, job_as = wjq[k].r_data[:LB], wjq[k].r_data[LB:]
            p_base = Signal(range(SAW), name=f"wp{k + 1}_base")
            p_slot = Signal(range(WF + 1), name=f"wp{k + 1}_slot")
            nsl = Mux(mode == MODE_DENSE, WF, 1)
            rv = Mux(mode == MODE_DENSE, gw.rec_valid, gd.rec_valid)
            wpt = wb_ws[k]
            m.d.comb += [wpt.addr.eq(p_base + p_slot),
                         wpt.data.eq(Mux(mode == MODE_DENSE, gw.rec, gd.rec))]
            with m.FSM(name=f"wport{k + 1}"):
                with m.State("IDLE"):
                    m.d.comb += wp_idle[k].eq(~wjq[k].r_rdy)
                    with m.If(wjq[k].r_rdy):
                        m.d.comb += [wjq[k].r_en.eq(1), gw.start.eq(1), gd.start.eq(1),
                                     gw.skip.eq(job_off // gw.unit),
                                     gd.skip.eq(job_off // gd.unit)]
                        m.d.sync += [p_base.eq(job_as), p_slot.eq(0)]
                        m.next = "RUN"
                with m.State("RUN"):
                    with m.If(mode == MODE_DENSE):
                        m.d.comb += [gw.enable.eq(1), wd.ready.eq(gw.beat_ready)]
                    with m.Else():
                        m.d.comb += [gd.enable.eq(1), wd.ready.eq(gd.beat_ready)]
                    with m.If(rv & (p_slot < nsl)):
                        m.d.comb += wpt.en.eq(1)
                        m.d.sync += p_slot.eq(p_slot + 1)
                    with m.If(wd.valid & wd.ready & wd.p.last):
                        m.next = "END"
                with m.State("END"):  # the last record lands one cycle after its beat
                    with m.If(rv & (p_slot < nsl)):
                        m.d.comb += wpt.en.eq(1)
                    m.next = "IDLE"

        # ================= compute agent: taps x pixel pairs through the PE array ==========
        c_rows, c_cols = Signal(range(TR + 1)), Signal(range(TC + 1))
        c_yb, c_xb = Signal(signed(DIM + 2)), Signal(signed(DIM + 2))
        c_last = Signal()
        c_no = Signal(DIM)
        c_cb = Signal()  # input bank
        c_wb_prev = Signal()
        c_wb_valid = Signal()
        c_ab = Signal()  # accumulator bank (step parity)
        ky, kx = Signal(range(KMAX)), Signal(range(KMAX))
        tap = Signal(range(KMAX * KMAX))
        cr = Signal(range(TR + 1))
        cq_i = Signal(range(QC + 1))
        phase = Signal()
        rowaddr = Signal(range(DIK + CW * SMAX * 2))  # in bank words: (r sh + ky) CW
        qa = Signal(range(CW + 4))  # pixel A's column = qa * WPB + ra
        ra = Signal(range(WPB))
        s1_ra, s1_rb = Signal(range(WPB)), Signal(range(WPB))
        iy = Signal(signed(DIM + 2))
        ixa = Signal(signed(DIM + 2))
        arow = Signal(range(2 * DA + QC + 1))  # includes the bank offset
        inflight = Signal(range(64))
        cp_issue = Signal()
        cp_wait_in = Signal()  # compute is waiting for a loaded chunk
        cp_wait_acc = Signal()  # compute is waiting for a drained accumulator bank
        cp_wait_w = Signal()  # compute is waiting for its next weight record

        s1_valid, s1_phase = Signal(), Signal()
        s1_in_a, s1_in_b = Signal(), Signal()
        s1_aaddr = Signal(range(2 * DA))
        s1_first = Signal()
        padvec = Signal(CB * ACT_BITS)
        # one read port per bank: pixel A is read in phase 0 and held, pixel B in phase 1;
        # the pair (A, B) reaches the PE array two cycles after s1 (stage s3)
        x_data = Signal(CB * ACT_BITS)
        with m.Switch(Mux(s1_phase, s1_rb, s1_ra)):
            for k in range(NB):
                with m.Case(k):
                    m.d.comb += x_data.eq(ib_r[k].data)
        m.d.comb += padvec.eq(Mux(is_max, 0, pad_code).replicate(CB))
        x_val = Mux(Mux(s1_phase, s1_in_b, s1_in_a), x_data, padvec)
        a_hold = Signal(CB * ACT_BITS)
        px_a, px_b = Signal(CB * ACT_BITS), Signal(CB * ACT_BITS)
        with m.If(s1_valid & ~s1_phase):
            m.d.sync += a_hold.eq(x_val)
        with m.If(s1_valid & s1_phase):
            m.d.sync += [px_a.eq(a_hold), px_b.eq(x_val)]
        # depthwise, DWT > 1: a pair reads the 2 NB consecutive columns from pixel A's first
        # tap on (NB per cycle, one per bank: column base + i of the cycle is in bank
        # (ra + i) mod NB); pixel A's taps are columns 0 .. dgw-1, pixel B's sw .. sw+dgw-1.
        # Column 0 is a_hold (the same bank and padding as pixel A of a dense pair).
        s1_inc = Signal(NB)  # column i of this cycle is inside the map (else pad_code)
        if DWT > 1:
            dw_cols = []  # this cycle's columns 0 .. NB-1, in column order
            for i in range(NB):
                ci = Signal(CB * ACT_BITS, name=f"dw_col{i}")
                with m.Switch(s1_ra):
                    for r in range(NB):
                        with m.Case(r):
                            m.d.comb += ci.eq(Mux(s1_inc[i], ib_r[(r + i) % NB].data, padvec))
                dw_cols.append(ci)
            dw_hold = [a_hold]  # the first cycle's columns, held
            for i in range(1, NB):
                hi_ = Signal(CB * ACT_BITS, name=f"dw_hold{i}")
                with m.If(s1_valid & ~s1_phase):
                    m.d.sync += hi_.eq(dw_cols[i])
                dw_hold.append(hi_)
            cols = dw_hold + dw_cols  # the pair's 2 NB columns
            TMB = TM * ACT_BITS

            def col(i: int):
                # columns past the 2 NB read are only ever paired with weight 0
                return cols[i] if i < 2 * NB else Const(0, CB * ACT_BITS)
            x_taps = Signal(2 * (DWT - 1) * TMB)
            tap_vals = ([col(j)[:TMB] for j in range(1, DWT)]
                        + [Mux(sw == 2, col(2 + j), col(1 + j))[:TMB] for j in range(1, DWT)])
            m.d.comb += pe.x_taps.as_value().eq(x_taps)
            with m.If(s1_valid & s1_phase & (mode == MODE_DW)):
                m.d.sync += [px_b.eq(Mux(sw == 2, col(2), col(1))), x_taps.eq(Cat(*tap_vals))]
        s2_valid, s2_phase, s3_valid, s3_phase = Signal(), Signal(), Signal(), Signal()
        s2_aaddr, s3_aaddr = Signal(range(2 * DA)), Signal(range(2 * DA))
        s2_first, s3_first = Signal(), Signal()
        m.d.sync += [s2_valid.eq(s1_valid), s2_phase.eq(s1_phase), s2_aaddr.eq(s1_aaddr),
                     s2_first.eq(s1_first), s3_valid.eq(s2_valid), s3_phase.eq(s2_phase),
                     s3_aaddr.eq(s2_aaddr), s3_first.eq(s2_first)]
        m.d.comb += [
            pe.x[0].as_value().eq(px_a),
            pe.x[1].as_value().eq(px_b),
            pe.mode.eq(mode),
            pe.valid.eq(s3_valid),
            pe.phase.eq(s3_phase),
        ]
        # weight register: the next tap's record is read slice by slice (WF cycles) into a
        # staging register while the current tap computes; the TAP state moves it into the PE
        # array's register. A depthwise group of g taps is g records of one slice each, read
        # record after record (they land in the top g slices of the staging register).
        DWR = geo.dw_rec_bytes * 8
        w_stage = Signal(WF * WSB)
        w_act = Signal(RECB)
        wf_addr = Signal(range(geo.wbuf_depth + WF + 1))
        wf_k, wf_kd = Signal(KR), Signal(KR)  # memory of the staged record
        wf_rbase = Signal(range(geo.wbuf_depth + 1))  # its first slice
        wb_rdata = Signal(WSB)
        if KW == 1:
            m.d.comb += wb_rdata.eq(wb_rs[0].data)
        else:
            with m.Switch(wf_kd):
                for k in range(KW):
                    with m.Case(k):
                        m.d.comb += wb_rdata.eq(wb_rs[k].data)
        wf_cnt = Signal(range(WF + 1), init=WF)  # slices of the staged record read (WF: done)
        wf_pend = Signal()  # a slice read is in flight
        wf_ready = (wf_cnt == WF) & ~wf_pend
        wf_pre = Signal()  # staging holds (or is loading) the first record of the next chunk
        m.d.sync += wf_pend.eq(0)
        with m.If(wf_pend):
            m.d.sync += w_stage.eq(Cat(w_stage[WSB:], wb_rdata))

        def next_record():
            """Move the staging pointer to the next tap record: the next memory, or memory 0
            one record further."""
            if KW > 1:
                with m.If(wf_k == KW - 1):
                    m.d.sync += [wf_k.eq(0), wf_rbase.eq(wf_rbase + WF),
                                 wf_addr.eq(wf_rbase + WF)]
                with m.Else():
                    m.d.sync += [wf_k.eq(wf_k + 1), wf_addr.eq(wf_rbase)]
            else:
                m.d.sync += [wf_rbase.eq(wf_rbase + WF), wf_addr.eq(wf_rbase + WF)]

        with m.If(wf_cnt != WF):
            for k in range(KW):
                m.d.comb += [wb_rs[k].addr.eq(wf_addr),
                             wb_rs[k].en.eq((wf_k == k) if KW > 1 else 1)]
            m.d.sync += [wf_cnt.eq(wf_cnt + 1), wf_pend.eq(1), wf_kd.eq(wf_k)]
            with m.If(mode == MODE_DW):  # one slice per record: on to the group's next record
                next_record()
            with m.Else():
                m.d.sync += wf_addr.eq(wf_addr + 1)
        # taps of the group at kernel column kx (depthwise) and of the group after it
        kx_next = Signal(range(2 * KMAX + 1))
        g_cur, g_next = Signal(range(DWT + 1)), Signal(range(DWT + 1))
        m.d.comb += [kx_next.eq(kx + dgw),
                     g_cur.eq(Mux(kw - kx < dgw, kw - kx, dgw)),
                     g_next.eq(Mux(kx_next >= kw, dgw,
                                   Mux(kw - kx_next < dgw, kw - kx_next, dgw)))]
        wf_first = Mux(mode == MODE_DW, WF - dgw, 0)  # a chunk's first group: dgw records
        wf_first_next = Mux(mode == MODE_DW, WF - g_next, 0)
        m.d.comb += pe.record.eq(w_act)
        # first weight-memory slice of the chunk at the head of wq: (bank, first record)
        wq_k0, wq_a0 = wq.r_data[1:1 + WQ_K], wq.r_data[1 + WQ_K:]
        # the PE array sees a tap's pixels two cycles after they issue (stage s3), so the
        # staged record moves into its register two cycles after TAP takes it
        w_copy1, w_copy2 = Signal(), Signal()
        wg1, wg2 = Signal(range(DWT + 1)), Signal(range(DWT + 1))  # taps of the copied group
        m.d.sync += [w_copy1.eq(0), w_copy2.eq(w_copy1), wg2.eq(wg1)]
        # a depthwise group of g records: record j (slice WF - g + j) at bytes j R ..; the
        # taps g .. DWT-1 get weight 0
        w_dw = Signal(DWT * DWR)
        with m.Switch(wg2):
            for g in range(1, DWT + 1):
                with m.Case(g):
                    m.d.comb += w_dw.eq(Cat(*[w_stage[(WF - g + j) * WSB:][:DWR]
                                              for j in range(g)]))
        with m.If(w_copy2):
            m.d.sync += w_act.eq(Mux(mode == MODE_DW, w_dw, w_stage[:RECB]))

        meta = data.StructLayout({"addr": range(2 * DA), "first": 1})
        m.submodules.metaq = metaq = fifo.SyncFIFO(width=meta.size, depth=32)
        m.d.comb += [metaq.w_data.eq(Cat(s3_aaddr, s3_first)),
                     metaq.w_en.eq(s3_valid & s3_phase)]
        wbk_valid = Signal()
        wbk_addr = Signal(range(2 * DA))
        wbk_first = Signal()
        wbk_sum = Signal(acc_layout)
        m.d.comb += metaq.r_en.eq(pe.valid_out)
        head = data.View(meta, metaq.r_data)
        m.d.sync += [wbk_valid.eq(pe.valid_out), wbk_addr.eq(head.addr), wbk_first.eq(head.first),
                     wbk_sum.eq(pe.sum)]
        old = data.View(acc_layout, ab_r.data)
        new = Signal(acc_layout)
        for p in range(2):
            for k in range(TM):
                a, s = old[p][k], wbk_sum[p][k]
                m.d.comb += new[p][k].eq(Mux(wbk_first, s, Mux(is_max, Mux(a > s, a, s), a + s)))
        m.d.comb += [ab_w.addr.eq(wbk_addr), ab_w.data.eq(new), ab_w.en.eq(wbk_valid)]
        with m.If((s3_valid & s3_phase) & ~wbk_valid):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(~(s3_valid & s3_phase) & wbk_valid):
            m.d.sync += inflight.eq(inflight - 1)
        # accumulator read port: the compute write-back reads at the PE output
        with m.If(pe.valid_out):
            m.d.comb += [ab_r.addr.eq(head.addr), ab_r.en.eq(1)]

        m.d.sync += s1_valid.eq(0)
        ib_base = Mux(c_cb, DIK, 0)
        # column steps as (quotient, remainder) by WPB: +2 sw per pair, +sw for pixel B
        dq2 = Mux(sw == 1, 2 // WPB, 4 // WPB)
        dr2 = Mux(sw == 1, 2 % WPB, 4 % WPB)
        dqs = Mux(sw == 1, 1 // WPB, 2 // WPB)
        drs = Mux(sw == 1, 1 % WPB, 2 % WPB)
        rb_sum = ra + drs
        rb_carry = rb_sum >= WPB
        qb = qa + dqs + rb_carry
        rb_v = Mux(rb_carry, rb_sum - WPB, rb_sum)
        ra_sum = ra + dr2
        ra_carry = ra_sum >= WPB
        with m.FSM(name="compute"):
            with m.State("IDLE"):
                m.d.comb += cp_idle.eq(1)
                with m.If(run_go):
                    m.d.sync += [c_cb.eq(0), c_ab.eq(0), c_wb_valid.eq(0)]
                    m.next = "POP"
            with m.State("POP"):
                m.d.comb += cp_wait_in.eq(1)
                with m.If(cq.r_rdy):
                    m.d.comb += cq.r_en.eq(1)
                    m.d.sync += [c_rows.eq(cq_head.rows), c_cols.eq(cq_head.cols),
                                 c_yb.eq(cq_head.yb), c_xb.eq(cq_head.xb),
                                 c_last.eq(cq_head.last), c_no.eq(0)]
                    m.next = "ACC_WAIT"
            with m.State("ACC_WAIT"):
                m.d.comb += cp_wait_acc.eq(1)
                with m.If(~acc_full.bit_select(c_ab, 1)):
                    m.next = "CHUNK_WAIT"
            with m.State("CHUNK_WAIT"):
                m.d.comb += cp_wait_in.eq(1)
                with m.If(in_full.bit_select(c_cb, 1) & wq.r_rdy):
                    m.d.comb += wq.r_en.eq(1)
                    m.d.sync += [tap.eq(0), ky.eq(0), kx.eq(0), phase.eq(0),
                                 c_wb_prev.eq(wq.r_data[0]),
                                 c_wb_valid.eq(1)]
                    m.d.sync += wf_pre.eq(0)
                    with m.If((mode != MODE_UNIT) & ~wf_pre):  # stage the chunk's first record
                        m.d.sync += [wf_cnt.eq(wf_first), wf_addr.eq(wq_a0),
                                     wf_rbase.eq(wq_a0), wf_k.eq(wq_k0)]
                    with m.If(c_wb_valid & (wq.r_data[0] != c_wb_prev)):  # the old bank is free
                        m.d.comb += clr_w.eq(Mux(c_wb_prev, 2, 1))
                    m.next = "TAP"
            with m.State("TAP"):  # take the tap's staged weight record; set up the first row
                m.d.comb += cp_wait_w.eq(~wf_ready & (mode != MODE_UNIT))
                with m.If(wf_ready | (mode == MODE_UNIT)):
                    m.d.sync += [cr.eq(0), cq_i.eq(0), arow.eq(Mux(c_ab, DA, 0)),
                                 rowaddr.eq(ky * CW), qa.eq(kx // WPB), ra.eq(kx % WPB),
                                 iy.eq(c_yb + ky), ixa.eq(c_xb + kx), w_copy1.eq(1),
                                 wg1.eq(g_cur)]
                    with m.If((mode != MODE_UNIT) & (tap + 1 < ctaps)):  # stage the next one
                        m.d.sync += wf_cnt.eq(wf_first_next)
                        with m.If(mode == MODE_DENSE):  # (a depthwise group moved on already)
                            next_record()
                    with m.Elif((mode != MODE_UNIT) & wq.r_rdy):
                        # last tap: the next chunk's weights are already announced, stage its
                        # first record while this tap computes
                        m.d.sync += [wf_cnt.eq(wf_first), wf_pre.eq(1), wf_addr.eq(wq_a0),
                                     wf_rbase.eq(wq_a0), wf_k.eq(wq_k0)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += cp_issue.eq(1)
                for k in range(NB):
                    q_pix = Mux(phase, qb, qa)
                    if DWT > 1:  # depthwise: columns base + NB phase + i, bank (ra + i) mod NB
                        wrap = (ra > k) if k < NB - 1 else 0  # ra < NB: never for the last
                        q_pix = Mux(mode == MODE_DW, qa + wrap + phase, q_pix)
                    m.d.comb += [ib_r[k].addr.eq(ib_base + rowaddr + q_pix), ib_r[k].en.eq(1)]
                m.d.sync += [s1_ra.eq(ra), s1_rb.eq(rb_v)]
                in_y = (iy >= 0) & (iy < in_h)
                if DWT > 1:
                    ixc = ixa + Mux(phase, NB, 0)
                    m.d.sync += s1_inc.eq(Cat(*[in_y & (ixc + i >= 0) & (ixc + i < in_w)
                                                for i in range(NB)]))
                ixb = ixa + sw
                m.d.sync += [
                    s1_valid.eq(1), s1_phase.eq(phase),
                    s1_in_a.eq(in_y & (ixa >= 0) & (ixa < in_w)),
                    s1_in_b.eq(in_y & (ixb >= 0) & (ixb < in_w)),
                    s1_aaddr.eq(arow + cq_i), s1_first.eq((c_no == 0) & (tap == 0)),
                    phase.eq(~phase),
                ]
                with m.If(phase):  # advance to the next pair
                    with m.If((cq_i + 1) * 2 < c_cols):
                        m.d.sync += [cq_i.eq(cq_i + 1), ixa.eq(ixa + 2 * sw),
                                     qa.eq(qa + dq2 + ra_carry),
                                     ra.eq(Mux(ra_carry, ra_sum - WPB, ra_sum))]
                    with m.Else():
                        m.d.sync += [cq_i.eq(0), cr.eq(cr + 1), arow.eq(arow + QC),
                                     rowaddr.eq(rowaddr + sh_tc), qa.eq(kx // WPB),
                                     ra.eq(kx % WPB),
                                     iy.eq(iy + sh), ixa.eq(c_xb + kx)]
                        with m.If(cr + 1 == c_rows):
                            m.d.sync += tap.eq(tap + 1)
                            with m.If(kx_next >= kw):
                                m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                            with m.Else():
                                m.d.sync += kx.eq(kx_next)
                            with m.If(tap + 1 == ctaps):  # chunk done: its banks are free
                                m.d.comb += clr_in.eq(Mux(c_cb, 2, 1))
                                m.d.sync += [c_cb.eq(~c_cb), c_no.eq(c_no + 1)]
                                with m.If(c_no == last_chunk):
                                    m.next = "FLUSH"
                                with m.Else():
                                    m.next = "CHUNK_WAIT"
                            with m.Else():
                                m.next = "TAP"
            with m.State("FLUSH"):  # last write-backs of the step, then hand it to the drain
                with m.If((inflight == 0) & ~s1_valid & ~s2_valid & ~s3_valid & ~wbk_valid
                          & dq.w_rdy):
                    m.d.comb += [set_acc.eq(Mux(c_ab, 2, 1)), dq.w_en.eq(1)]
                    m.d.sync += c_ab.eq(~c_ab)
                    with m.If(c_last):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "POP"
        # the step record travels on with the accumulators: keep the popped one for the drain
        cq_head_saved = Signal(step_layout.size)
        m.d.comb += dq.w_data.eq(cq_head_saved)
        with m.If(cq.r_en):
            m.d.sync += cq_head_saved.eq(cq.r_data)

        # ================= drain agent: accumulators -> requant -> output tile -> DDR =========
        d_rows, d_cols = Signal(range(TR + 1)), Signal(range(TC + 1))
        d_meff = Signal(range(TM + 1))
        d_mo, d_r0, d_c0, d_plane0 = Signal(DIM), Signal(DIM), Signal(DIM), Signal(DIM)
        d_last = Signal()
        d_b = Signal()  # step parity
        dr_r = Signal(range(TR + 1))
        dr_q = Signal(range(QC + 1))
        dr_pix = Signal()
        # column 2 dr_q of the tile (pixel A of the pair) as residual bank column and bank
        dr_cq = Signal(range(RCW + 2))
        dr_cr = Signal(range(NB))
        d_acc = Signal(acc_layout)  # the drain's accumulator word (latched from ab_r)
        d_lat = Signal()  # ab_r.data holds the drain's word this cycle
        m.d.sync += d_lat.eq(0)
        with m.If(d_lat):
            m.d.sync += d_acc.eq(ab_r.data)
        # one signal: a View over the Mux expression would rebuild the whole-word mux at each
        # of its 2 x TM uses (144 muxes of 3,744 bits in the ZCU102 netlist)
        accv = Signal(acc_layout)
        m.d.comb += accv.eq(Mux(d_lat, ab_r.data, d_acc.as_value()))
        ri = rq.i.payload
        # the residual banks of the pair read last (registered with the read)
        dr_sa, dr_sb = Signal(range(NB)), Signal(range(NB))
        res_aw, res_bw = Signal(TM * ACT_BITS), Signal(TM * ACT_BITS)
        with m.Switch(dr_sa):
            for k in range(NB):
                with m.Case(k):
                    m.d.comb += res_aw.eq(rb_ra[k].data)
        with m.Switch(dr_sb):
            for k in range(NB):
                with m.Case(k):
                    m.d.comb += res_bw.eq(rb_rb[k].data)
        res_a = data.View(data.ArrayLayout(unsigned(ACT_BITS), TM), res_aw)
        res_b = data.View(data.ArrayLayout(unsigned(ACT_BITS), TM), res_bw)
        dr_qp = Signal(range(max(RQP, 2)))  # requantization pass of the pixel being pushed
        with m.Switch(dr_qp):
            for q in range(RQP):
                with m.Case(q):
                    for k in range(RQ):
                        ln = q * RQ + k
                        if ln >= TM:
                            continue
                        m.d.comb += [
                            ri[k].acc.eq(Mux(dr_pix, accv[1][ln], accv[0][ln])),
                            ri[k].mult.eq(Mux(has_w, Mux(d_b, p_mult[1][ln], p_mult[0][ln]),
                                              u_mult)),
                            ri[k].offset.eq(Mux(has_w, Mux(d_b, p_off[1][ln], p_off[0][ln]),
                                                u_offset)),
                            ri[k].shift.eq(Mux(has_w, Mux(d_b, p_shift[1][ln], p_shift[0][ln]),
                                               u_shift)),
                            ri[k].res.eq(Mux(has_res, Mux(dr_pix, res_b[ln], res_a[ln]), 0)),
                            ri[k].res_mult.eq(Mux(has_w, Mux(d_b, p_rmul[1][ln], p_rmul[0][ln]),
                                                  u_mult_b)),
                        ]
        m.d.comb += [rq.lo.eq(lo), rq.hi.eq(hi)]
        ot_count = Signal(range(TR * TC + 4))  # pixels pushed to requant and not yet out
        with m.If(rq.i.valid & rq.i.ready & ~(rq.o.valid & rq.o.ready)):
            m.d.sync += ot_count.eq(ot_count + 1)
        with m.Elif(~(rq.i.valid & rq.i.ready) & (rq.o.valid & rq.o.ready)):
            m.d.sync += ot_count.eq(ot_count - 1)

        # output side of the requantization bank: codes -> obuf (or logits -> DDR)
        ot_r = Signal(range(TR + 1))
        ot_c = Signal(range(TC + 1))
        ot_bx = Signal(range(geo.obuf_beats + 1))
        ot_s = Signal(range(WPB))
        ot_s0 = Signal(range(WPB))  # c0 % WPB
        codes = [rq.o.payload[k][:ACT_BITS] for k in range(RQ)]
        ot_q = Signal(range(max(RQP, 2)))  # requantization pass of the vector at rq.o
        ot_qlast = (ot_q == RQP - 1) if RQP > 1 else Const(1)
        lg_lane = Signal(range(TM + 1))
        lg_k = Signal(range(RQ + 1))  # logits: lane within the pass
        # lg_lane >= d_meff, kept in a register (m_eff >= 1, so 0 after every reset of lg_lane)
        lg_done = Signal()
        lg_addr = Signal(AW)  # logits: address of lane 0 of this pixel
        lg_cur = Signal(AW)
        lg_cmd_done, lg_dat_done = Signal(), Signal()
        lg_pix_row = Signal(AW)
        ot_adv = Signal()
        with m.If(~logits):
            m.d.comb += rq.o.ready.eq(1)
            with m.If(rq.o.valid):
                for j, (wp, _) in enumerate(obufs):
                    jq, kk = divmod(j * G, RQ)  # plane j is lanes kk.. of pass jq
                    word = Cat(*codes[kk:kk + G])
                    m.d.comb += [wp.addr.eq(Mux(ob_b, DOB, 0) + ot_r * geo.obuf_beats + ot_bx),
                                 wp.data.eq(word.replicate(WPB))]
                    with m.If(ot_q == jq):
                        m.d.comb += wp.en.eq(Const(1, WPB) << ot_s)
                with m.If(ot_qlast):
                    m.d.comb += ot_adv.eq(1)
                    m.d.sync += ot_q.eq(0)
                    with m.If(ot_s == WPB - 1):
                        m.d.sync += [ot_s.eq(0), ot_bx.eq(ot_bx + 1)]
                    with m.Else():
                        m.d.sync += ot_s.eq(ot_s + 1)
                with m.Else():
                    m.d.sync += ot_q.eq(ot_q + 1)
        with m.Else():  # logits: one 2-byte write per lane
            with m.If(rq.o.valid):
                val = Signal(16)
                m.d.comb += val.eq(rq.o.payload.as_value().word_select(lg_k, 16))
                boff = lg_cur[:LB]
                with m.If(lg_done | (lg_k == RQ)):  # this pass is written
                    m.d.comb += rq.o.ready.eq(1)
                    m.d.sync += lg_k.eq(0)
                    with m.If(ot_qlast):
                        m.d.comb += ot_adv.eq(1)
                        m.d.sync += [lg_lane.eq(0), lg_done.eq(0), lg_addr.eq(lg_addr + 2),
                                     lg_cur.eq(lg_addr + 2), ot_q.eq(0)]
                    with m.Else():
                        m.d.sync += ot_q.eq(ot_q + 1)
                with m.Else():
                    m.d.comb += [
                        self.wr_cmd.valid.eq(~lg_cmd_done),
                        self.wr_cmd.p.addr.eq(Cat(Const(0, LB), lg_cur[LB:])),
                        self.wr_cmd.p.beats.eq(1),
                        self.wr_data.valid.eq(~lg_dat_done),
                        self.wr_data.p.data.eq(val << (boff * 8)),
                        self.wr_data.p.strb.eq(Const(3, BB) << boff),
                    ]
                    cmd_ok = lg_cmd_done | self.wr_cmd.ready
                    dat_ok = lg_dat_done | self.wr_data.ready
                    with m.If(cmd_ok & dat_ok):
                        m.d.sync += [lg_cmd_done.eq(0), lg_dat_done.eq(0), lg_lane.eq(lg_lane + 1),
                                     lg_done.eq(lg_lane + 1 >= d_meff),
                                     lg_k.eq(lg_k + 1), lg_cur.eq(lg_cur + out_plane)]
                    with m.Else():
                        m.d.sync += [lg_cmd_done.eq(cmd_ok), lg_dat_done.eq(dat_ok)]
        with m.If(ot_adv):
            with m.If(ot_c + 1 == d_cols):
                m.d.sync += [ot_c.eq(0), ot_r.eq(ot_r + 1), ot_bx.eq(0), ot_s.eq(ot_s0),
                             lg_addr.eq(lg_pix_row + out_row), lg_cur.eq(lg_pix_row + out_row),
                             lg_pix_row.eq(lg_pix_row + out_row)]
            with m.Else():
                m.d.sync += ot_c.eq(ot_c + 1)

        # store agent: a requantized output tile bank -> DDR, one burst per plane row, byte
        # strobes. Its command side issues the rows' write commands back to back while its
        # data side streams the beats (the next row's first beat right after this row's last),
        # so a tile goes out at one beat per cycle; the drain requantizes the next step into
        # the other bank meanwhile.
        store_layout = data.StructLayout({
            "row_addr": AW, "bx0": DIM, "nb": range(geo.obuf_beats + 1),
            "slast": range(WPB), "s0": range(WPB), "np": range(geo.out_planes + 1),
            "rows": range(TR + 1),
        })
        m.submodules.sq = sq = fifo.SyncFIFO(width=store_layout.size, depth=2)
        sq_in = data.View(store_layout, sq.w_data)
        sq_head = data.View(store_layout, sq.r_data)
        s_tile = Signal(store_layout)  # the tile being stored
        st_idle = Signal()
        # command side
        sc_active = Signal()
        sc_r = Signal(range(TR + 1))
        sc_j = Signal(range(geo.out_planes + 1))
        sc_row_addr, sc_plane_addr = Signal(AW), Signal(AW)
        with m.If(sc_active):
            m.d.comb += [self.wr_cmd.valid.eq(1),
                         self.wr_cmd.p.addr.eq(sc_plane_addr + (s_tile.bx0 << LB)),
                         self.wr_cmd.p.beats.eq(s_tile.nb)]
            with m.If(self.wr_cmd.ready):
                with m.If(sc_j + 1 == s_tile.np):
                    m.d.sync += [sc_j.eq(0), sc_r.eq(sc_r + 1),
                                 sc_row_addr.eq(sc_row_addr + out_row),
                                 sc_plane_addr.eq(sc_row_addr + out_row)]
                    with m.If(sc_r + 1 == s_tile.rows):
                        m.d.sync += sc_active.eq(0)
                with m.Else():
                    m.d.sync += [sc_j.eq(sc_j + 1), sc_plane_addr.eq(sc_plane_addr + out_plane)]
        # data side: the beat on offer is on the obuf read ports (read the cycle before)
        sd_r = Signal(range(TR + 1))
        sd_j = Signal(range(geo.out_planes + 1))
        sd_bx = Signal(range(geo.obuf_beats + 1))
        sd_addr = Signal(range(TR * geo.obuf_beats + 1))  # word of the beat on offer
        sd_rbase = Signal(range(TR * geo.obuf_beats + 1))  # word of its row's first beat
        rd_addr = Signal(range(TR * geo.obuf_beats + 1))
        rd_en = Signal()
        for _, rp in obufs:
            m.d.comb += [rp.addr.eq(Mux(s_b, DOB, 0) + rd_addr), rp.en.eq(rd_en)]
        rd_data_o = Signal(WPB * WB)
        with m.Switch(sd_j):
            for j, (_, rp) in enumerate(obufs):
                with m.Case(j):
                    m.d.comb += rd_data_o.eq(rp.data)
        s_lo = Mux(sd_bx == 0, s_tile.s0, 0)
        s_hi = Mux(sd_bx == s_tile.nb - 1, s_tile.slast, WPB - 1)
        strb = Signal(BB)
        terms = []
        for s in range(WPB):
            # comparisons that always hold are left out (Verilator's CMPCONST lint)
            if s == 0:
                own = s_lo == 0  # s_hi >= 0 always holds
            elif s == WPB - 1:
                own = s_hi == s  # s_lo <= WPB - 1 always holds
            else:
                own = (s_lo <= s) & (s_hi >= s)
            lo_b, hi_b = (s * WB) // 8, (s * WB + WB - 1) // 8
            terms.append(Mux(own, sum(1 << x for x in range(lo_b, hi_b + 1)), 0))
        strb_v = terms[0]
        for t in terms[1:]:
            strb_v = strb_v | t
        m.d.comb += strb.eq(strb_v)
        with m.FSM(name="store"):
            with m.State("IDLE"):
                # idle only with no tile waiting: the layer ends after its last tile is out
                m.d.comb += st_idle.eq(~ob_full.bit_select(s_b, 1))
                with m.If(run_go):
                    m.d.sync += s_b.eq(0)
                with m.Elif(ob_full.bit_select(s_b, 1)):  # its record was queued with the bank
                    m.d.comb += sq.r_en.eq(1)
                    m.d.sync += [s_tile.eq(sq_head), sc_active.eq(1), sc_r.eq(0), sc_j.eq(0),
                                 sc_row_addr.eq(sq_head.row_addr),
                                 sc_plane_addr.eq(sq_head.row_addr),
                                 sd_r.eq(0), sd_j.eq(0), sd_bx.eq(0), sd_addr.eq(0),
                                 sd_rbase.eq(0)]
                    m.next = "PRIME"
            with m.State("PRIME"):  # read the tile's first beat
                m.d.comb += [rd_addr.eq(0), rd_en.eq(1)]
                m.next = "WR"
            with m.State("WR"):  # one beat per cycle while the W channel takes them
                m.d.comb += [self.wr_data.valid.eq(1), self.wr_data.p.data.eq(rd_data_o),
                             self.wr_data.p.strb.eq(strb)]
                last_bx = sd_bx + 1 == s_tile.nb
                last_j = sd_j + 1 == s_tile.np
                last_r = sd_r + 1 == s_tile.rows
                with m.If(self.wr_data.ready):
                    with m.If(last_bx & last_j & last_r):  # the tile is out: the bank is free
                        m.d.comb += clr_ob.eq(Mux(s_b, 2, 1))
                        m.d.sync += s_b.eq(~s_b)
                        m.next = "IDLE"
                    with m.Elif(~last_bx):
                        m.d.comb += [rd_addr.eq(sd_addr + 1), rd_en.eq(1)]
                        m.d.sync += [sd_bx.eq(sd_bx + 1), sd_addr.eq(sd_addr + 1)]
                    with m.Elif(~last_j):  # the same row of the next plane
                        m.d.comb += [rd_addr.eq(sd_rbase), rd_en.eq(1)]
                        m.d.sync += [sd_bx.eq(0), sd_j.eq(sd_j + 1), sd_addr.eq(sd_rbase)]
                    with m.Else():  # the next row, plane 0
                        nrb = sd_rbase + geo.obuf_beats
                        m.d.comb += [rd_addr.eq(nrb), rd_en.eq(1)]
                        m.d.sync += [sd_bx.eq(0), sd_j.eq(0), sd_r.eq(sd_r + 1),
                                     sd_addr.eq(nrb), sd_rbase.eq(nrb)]

        # the drain's copy of the tile's store parameters (to the store agent with the bank)
        st_nb = Signal(range(geo.obuf_beats + 1))
        st_slast = Signal(range(WPB))
        st_bx0 = Signal(DIM)
        st_row_addr = Signal(AW)
        # output planes of this tile: min(OUTP, planes left), a register (the compare with an
        # adder in front of it sat on a 10-LUT-level path into the write splitter)
        st_np = Signal(range(geo.out_planes + 1))

        dr_wait_acc = Signal()
        dr_store = Signal()  # the store agent is busy
        m.d.comb += dr_store.eq(~st_idle)
        m.submodules.dv_c0 = dv_c0 = ConstDivider(DIM, WPB)
        m.submodules.dv_last = dv_last = ConstDivider(DIM, WPB)
        m.d.comb += [dv_c0.x.eq(d_c0), dv_last.x.eq((d_c0 + d_cols - 1)[:DIM])]
        dr_wait = Signal(range(DIM + 3))
        with m.FSM(name="drain"):
            with m.State("IDLE"):
                m.d.comb += dr_idle.eq(1)
                with m.If(run_go):
                    m.d.sync += [d_b.eq(0), ob_b.eq(0)]
                    m.next = "POP"
            with m.State("POP"):
                m.d.comb += dr_wait_acc.eq(1)
                # (and an output tile bank the store agent is done with)
                with m.If(dq.r_rdy & acc_full.bit_select(d_b, 1)
                          & (~has_res | res_ready.bit_select(d_b, 1))
                          & (logits | ~ob_full.bit_select(ob_b, 1))):
                    m.d.comb += dq.r_en.eq(1)
                    m.d.sync += [d_rows.eq(dq_head.rows), d_cols.eq(dq_head.cols),
                                 d_meff.eq(dq_head.m_eff), d_mo.eq(dq_head.mo_base),
                                 d_r0.eq(dq_head.r0), d_c0.eq(dq_head.c0),
                                 d_plane0.eq(dq_head.plane0), d_last.eq(dq_head.last),
                                 dr_wait.eq(0)]
                    m.next = "DIV"
            with m.State("DIV"):  # the dividers see this tile's first / last column
                m.d.sync += dr_wait.eq(dr_wait + 1)
                with m.If(dr_wait == dv_c0.latency + 1):
                    m.next = "SETUP"
            with m.State("SETUP"):  # per-tile addresses of the output side
                lg0 = out_addr + d_mo * out_plane + d_r0 * out_row + d_c0 * 2
                left = out_planes_total - d_plane0
                m.d.sync += st_np.eq(Mux(left < geo.out_planes, left, geo.out_planes))
                m.d.sync += [
                    ot_s0.eq(dv_c0.r), st_bx0.eq(dv_c0.q),
                    st_slast.eq(dv_last.r), st_nb.eq(dv_last.q - dv_c0.q + 1),
                    st_row_addr.eq(out_addr + d_plane0 * out_plane + d_r0 * out_row),
                    lg_pix_row.eq(lg0), lg_addr.eq(lg0), lg_cur.eq(lg0),
                    dr_r.eq(0), dr_q.eq(0), dr_pix.eq(0), dr_cq.eq(0), dr_cr.eq(0),
                    ot_r.eq(0), ot_c.eq(0), ot_bx.eq(0), ot_s.eq(dv_c0.r),
                    lg_lane.eq(0), lg_done.eq(0), lg_k.eq(0), lg_cmd_done.eq(0),
                    lg_dat_done.eq(0), ot_q.eq(0), dr_qp.eq(0),
                ]
                m.next = "READ"
            def read_pair(r, q, cq, cr):
                """Read pair ``q`` of tile row ``r`` (pixel A in residual bank ``cr`` at bank
                column ``cq``): accumulators and both residuals."""
                m.d.comb += [ab_r.addr.eq(Mux(d_b, DA, 0) + r * QC + q), ab_r.en.eq(1)]
                rbase = Mux(d_b, DRK, 0) + r * RCW
                if NB == 1:  # both pixels in the one bank: two read ports
                    m.d.comb += [rb_ra[0].addr.eq(rbase + cq), rb_rb[0].addr.eq(rbase + cq + 1),
                                 rb_ra[0].en.eq(1), rb_rb[0].en.eq(1)]
                    m.d.sync += [dr_sa.eq(0), dr_sb.eq(0)]
                else:  # pixel B is in the next bank (bank column + 1 after the last bank)
                    crb = Mux(cr == NB - 1, 0, cr + 1)
                    cqb = Mux(cr == NB - 1, cq + 1, cq)
                    for k in range(NB):
                        m.d.comb += [rb_ra[k].addr.eq(rbase + Mux(cr == k, cq, cqb)),
                                     rb_ra[k].en.eq(1)]
                    m.d.sync += [dr_sa.eq(cr), dr_sb.eq(crb)]
                m.d.sync += [dr_pix.eq(0), d_lat.eq(1)]

            # bank column and bank of the next pair's pixel A (column + 2)
            if NB == 1:
                ncq, ncr = dr_cq + 2, Const(0)
            else:
                csum = dr_cr + 2
                ccar = csum >= NB
                ncq, ncr = dr_cq + ccar, Mux(ccar, csum - NB, csum)

            with m.State("READ"):  # wait for a cycle the compute write-back does not read
                with m.If(~pe.valid_out):
                    read_pair(dr_r, dr_q, dr_cq, dr_cr)
                    m.next = "PUSH"
            with m.State("PUSH"):
                m.d.comb += rq.i.valid.eq(1)
                last_pix = dr_pix | ~(dr_q * 2 + 1 < d_cols)
                with m.If(rq.i.ready & ((dr_qp != RQP - 1) if RQP > 1 else Const(0))):
                    m.d.sync += dr_qp.eq(dr_qp + 1)  # next pass of the same pixel
                with m.Elif(rq.i.ready):
                    if RQP > 1:
                        m.d.sync += dr_qp.eq(0)
                    with m.If(~last_pix):
                        m.d.sync += dr_pix.eq(1)
                    with m.Else():  # the pair is pushed: read the next one in the same cycle
                        row_end = ~((dr_q + 1) * 2 < d_cols)
                        nr = Mux(row_end, dr_r + 1, dr_r)
                        nq = Mux(row_end, 0, dr_q + 1)
                        nq_c = Mux(row_end, 0, ncq)
                        nq_r = Mux(row_end, 0, ncr)
                        m.d.sync += [dr_q.eq(nq), dr_r.eq(nr), dr_cq.eq(nq_c), dr_cr.eq(nq_r)]
                        with m.If(row_end & (dr_r + 1 == d_rows)):
                            m.next = "WAIT"
                        with m.Elif(~pe.valid_out):
                            read_pair(nr, nq, nq_c, nq_r)
                        with m.Else():
                            m.next = "READ"
            with m.State("WAIT"):  # requant results still in flight
                with m.If(~rq.o.valid & (ot_count == 0)):
                    # accumulators, params and residual of this step are no longer needed;
                    # the output tile goes to the store agent with its parameters
                    m.d.comb += [clr_acc.eq(Mux(d_b, 2, 1)), clr_busy.eq(Mux(d_b, 2, 1))]
                    with m.If(~logits):
                        m.d.comb += [sq.w_en.eq(1), set_ob.eq(Mux(ob_b, 2, 1)),
                                     sq_in.row_addr.eq(st_row_addr), sq_in.bx0.eq(st_bx0),
                                     sq_in.nb.eq(st_nb), sq_in.slast.eq(st_slast),
                                     sq_in.s0.eq(ot_s0), sq_in.np.eq(st_np),
                                     sq_in.rows.eq(d_rows)]
                        m.d.sync += ob_b.eq(~ob_b)
                    m.next = "NEXT"
            with m.State("NEXT"):
                m.d.sync += d_b.eq(~d_b)
                with m.If(d_last):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "POP"

        # ================= main sequencer: program header, descriptors, layers =============
        bad_op, bad_win, bad_addr, bad_dim = Signal(), Signal(), Signal(), Signal()
        lay_last = Signal()
        m.d.comb += ctrl.idle.eq(~busy)
        ax_err = Signal()
        m.d.comb += ax_err.eq(self.rd_error | self.wr_error)
        ax_err_r = Signal()  # the DMAs' errors are sticky: one cycle late is still seen
        m.d.sync += ax_err_r.eq(ax_err)
        in_layer = Signal()
        with m.If(in_layer & ~cp_issue):  # why the PE array is not busy
            with m.If(cp_wait_acc | (cp_idle & (~dr_idle | dr_store))
                      | (cp_wait_in & dr_store & fe_idle)):
                m.d.comb += cls_o.eq(1)
            with m.Elif(fe_w | cp_wait_w):
                m.d.comb += cls_w.eq(1)
            with m.Else():
                m.d.comb += cls_i.eq(1)

        m.submodules.dv_inc = dv_inc = ConstDivider(DIM + 1, G)
        m.submodules.dv_outc = dv_outc = ConstDivider(DIM + 1, G)
        m.d.comb += [dv_inc.x.eq(in_c + G - 1), dv_outc.x.eq(out_c + G - 1)]
        pl_wait = Signal(range(DIM + 4))
        with m.FSM(name="main"):
            with m.State("IDLE"):
                with m.If(ctrl.start):
                    m.d.comb += ctrl.ready.eq(1)
                    m.d.sync += [busy.eq(1), base.eq(ctrl.args.layers[:AW]), status.eq(0),
                                 cyc.eq(0), st_w.eq(0), st_i.eq(0), st_o.eq(0), layer.eq(0)]
                    m.next = "HDR_CMD"
            with m.State("HDR_CMD"):
                m.d.comb += cls_i.eq(1)
                with m.If(base[:6] != 0):
                    m.d.sync += status.eq(ST_ALIGN)
                    m.next = "FINISH"
                with m.Else():
                    m.d.comb += [self.rd_cmd.valid.eq(1), self.rd_cmd.p.addr.eq(base),
                                 self.rd_cmd.p.beats.eq(HEADER_SIZE // BB)]
                    with m.If(self.rd_cmd.ready):
                        m.next = "HDR_RD"
            with m.State("HDR_RD"):
                m.d.comb += [cls_i.eq(1), self.rd_data.ready.eq(1)]
                with m.If(self.rd_data.valid):
                    m.d.sync += hdr.eq(Cat(hdr[B:], self.rd_data.p.data) if B < len(hdr)
                                       else self.rd_data.p.data)
                    with m.If(self.rd_data.p.last):
                        m.next = "HDR_CHECK"
            with m.State("HDR_CHECK"):  # the header's compares, registered
                h = bytes.fromhex(cfg.config_hash())[:16]
                magic = int.from_bytes(MAGIC, "little")
                sizes = VERSION | (HEADER_SIZE << 16) | (DESC_SIZE << 32)
                m.d.sync += [hb_magic.eq(hdr[_w(0)] != magic), hb_sizes.eq(hdr[64:112] != sizes),
                             hb_config.eq(hdr[192:320] != int.from_bytes(h, "little")),
                             hb_empty.eq(hdr[112:128] == 0), n_layers.eq(hdr[112:128]),
                             desc_addr.eq(base + HEADER_SIZE)]
                m.next = "HDR_JUDGE"
            with m.State("HDR_JUDGE"):  # (with the compares: 10 LUT levels to the main state)
                with m.If(hb_magic):
                    m.d.sync += status.eq(ST_MAGIC)
                    m.next = "FINISH"
                with m.Elif(hb_sizes):
                    m.d.sync += status.eq(ST_VERSION)
                    m.next = "FINISH"
                with m.Elif(hb_config):
                    m.d.sync += status.eq(ST_CONFIG)
                    m.next = "FINISH"
                with m.Elif(hb_empty):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "DESC_CMD"
            with m.State("DESC_CMD"):
                m.d.comb += [cls_i.eq(1), self.rd_cmd.valid.eq(1),
                             self.rd_cmd.p.addr.eq(desc_addr),
                             self.rd_cmd.p.beats.eq(DESC_SIZE // BB)]
                with m.If(self.rd_cmd.ready):
                    m.next = "DESC_RD"
            with m.State("DESC_RD"):
                m.d.comb += [cls_i.eq(1), self.rd_data.ready.eq(1)]
                with m.If(self.rd_data.valid):
                    m.d.sync += desc.eq(Cat(desc[B:], self.rd_data.p.data))
                    with m.If(self.rd_data.p.last):
                        m.next = "DECODE"
            with m.State("DECODE"):
                m.d.comb += cls_i.eq(1)
                f_op = field("op", 8)
                m.d.sync += [
                    op.eq(f_op), flags.eq(field("flags", 8)),
                    in_c.eq(field("in_c", DIM)), in_h.eq(field("in_h", DIM)),
                    in_w.eq(field("in_w", DIM)), out_c.eq(field("out_c", DIM)),
                    out_h.eq(field("out_h", DIM)), out_w.eq(field("out_w", DIM)),
                    kh.eq(field("kh")), kw.eq(field("kw")),
                    sh.eq(field("stride_h")), sw.eq(field("stride_w")),
                    ph.eq(field("pad_h")), pw.eq(field("pad_w")),
                    pad_code.eq(field("pad_code", ACT_BITS)),
                    lo.eq(field("lo", 16, True)), hi.eq(field("hi", 16, True)),
                    in_addr.eq(field("in_addr", AW)), in_row.eq(field("in_row_bytes", 32)),
                    in_plane.eq(field("in_plane_bytes", 32)),
                    res_addr.eq(field("res_addr", AW)), res_row.eq(field("res_row_bytes", 32)),
                    res_plane.eq(field("res_plane_bytes", 32)),
                    out_addr.eq(field("out_addr", AW)), out_row.eq(field("out_row_bytes", 32)),
                    out_plane.eq(field("out_plane_bytes", 32)),
                    logits.eq(field("out_layout", 1)),
                    w_addr.eq(field("w_addr", AW)), p_addr.eq(field("p_addr", AW)),
                    w_chunks.eq(field("w_chunks", DIM)),
                    u_mult.eq(field("mult", MULT_BITS)),
                    u_mult_b.eq(field("mult_b", RES_MULT_BITS)),
                    u_offset.eq(field("offset", Y_BITS, True)),
                    u_shift.eq(field("shift", SHIFT_BITS)),
                ]
                # stem mode (layer 0, input im2col written by the host): a 1x1 conv over the
                # im2col tensor (stem_c channels, the output's height, width and layout) with
                # the weights the exporter packed for it
                f_stem = ((field("mode") == MODE_STEM) & (f_op == OP_CONV)
                          & (field("stem_addr") != 0))
                with m.If(f_stem):
                    m.d.sync += [
                        kh.eq(1), kw.eq(1), sh.eq(1), sw.eq(1), ph.eq(0), pw.eq(0),
                        in_c.eq(field("stem_c", DIM)), in_h.eq(field("out_h", DIM)),
                        in_w.eq(field("out_w", DIM)), in_addr.eq(field("stem_addr", AW)),
                        in_row.eq(field("out_row_bytes", 32)),
                        in_plane.eq(field("out_plane_bytes", 32)),
                        w_addr.eq(field("stem_w_addr", AW)),
                        w_chunks.eq(field("stem_w_chunks", DIM)),
                    ]
                # descriptor checks (the exporter refuses these first: geometry.check_program),
                # registered in three groups and judged in CHECK (a short path to `status`)
                fk = [field(n) for n in ("kh", "kw")]
                m.d.sync += [
                    bad_op.eq((f_op == 0) | (f_op > OP_ADD)),
                    bad_win.eq(
                        (fk[0] > KMAX) | (fk[1] > KMAX) | (fk[0] == 0) | (fk[1] == 0)
                        | (field("stride_h") > SMAX) | (field("stride_w") > SMAX)
                        | (field("stride_h") == 0) | (field("stride_w") == 0)
                        | (field("pad_h") > PMAX) | (field("pad_w") > PMAX)
                        | (((f_op == OP_CONV) | (f_op == OP_LINEAR)) & (field("w_lanes") != TN))
                        | ((f_op == OP_DW) & (field("out_c") != field("in_c")))),
                    bad_addr.eq(
                        (field("in_addr")[AW:] != 0) | (field("out_addr")[AW:] != 0)
                        | (field("res_addr")[AW:] != 0) | (field("w_addr")[AW:] != 0)
                        | (field("p_addr")[AW:] != 0)
                        | (f_stem & ((field("stem_w_addr") == 0)
                                     | (field("stem_w_addr")[AW:] != 0)
                                     | (field("stem_addr")[AW:] != 0)
                                     | (field("stem_c")[DIM:] != 0)
                                     | (field("stem_w_chunks")[DIM:] != 0)))),
                    bad_dim.eq(
                        (field("out_c")[DIM:] != 0) | (field("in_c")[DIM:] != 0)
                        | (field("out_h")[DIM:] != 0) | (field("out_w")[DIM:] != 0)
                        | (field("in_h")[DIM:] != 0) | (field("in_w")[DIM:] != 0)
                        | (field("out_c") == 0) | (field("out_h") == 0) | (field("out_w") == 0)),
                ]
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += cls_i.eq(1)
                with m.If(bad_op):
                    m.d.sync += status.eq(ST_OP | (layer << 8))
                    m.next = "FINISH"
                with m.Elif(bad_win | bad_addr | bad_dim):
                    m.d.sync += status.eq(ST_DESC | (layer << 8))
                    m.next = "FINISH"
                with m.Else():
                    m.next = "LAYER"
            with m.State("LAYER"):
                m.d.comb += cls_i.eq(1)
                # the program ends after this layer: a register, not a 16-bit compare on the
                # path into the main state (12 LUT levels on PYNQ-Z2)
                m.d.sync += lay_last.eq(((flags & FLAG_LAST) != 0) | (layer + 1 == n_layers))
                m.d.sync += in_skip.eq((kh == 1) & (sh == 2) & (ph == 0))
                conv_like = (op == OP_CONV) | (op == OP_LINEAR) | (op == OP_DW)
                m.d.sync += [
                    mode.eq(Mux(op == OP_DW, MODE_DW,
                                Mux((op == OP_CONV) | (op == OP_LINEAR), MODE_DENSE, MODE_UNIT))),
                    is_max.eq(op == OP_MAXPOOL),
                    has_w.eq(conv_like),
                    has_res.eq(((flags & FLAG_RESIDUAL) != 0) | (op == OP_ADD)),
                    n_chunks.eq(Mux((op == OP_CONV) | (op == OP_LINEAR), w_chunks, 1)),
                    taps.eq(kh * kw), taps_wf.eq(kh * kw * WF),
                    dgw.eq(1),
                    chunk_bytes.eq(kh * kw * Mux(op == OP_DW, geo.dw_rec_bytes, geo.rec_bytes)),
                    sh_tc.eq(sh * CW), tr_sh.eq(sh * TR), tc_sw.eq(sw * TC),
                ]
                if DWT > 1:  # a depthwise kernel row in groups of dw_group_width taps
                    lim = Mux(sw == 2, dw_group_width(DWT, NB, KMAX, 2),
                              dw_group_width(DWT, NB, KMAX, 1))
                    with m.If(op == OP_DW):
                        m.d.sync += dgw.eq(Mux(kw < lim, kw, lim))
                with m.If(op == OP_MAXPOOL):
                    m.d.sync += [u_mult.eq(1), u_offset.eq(0), u_shift.eq(0)]
                with m.If(op != OP_ADD):
                    m.d.sync += u_mult_b.eq(0)
                m.d.sync += pl_wait.eq(0)
                m.next = "PLANES"
            with m.State("PLANES"):  # ceil(channels / G) through the pipelined dividers
                m.d.comb += cls_i.eq(1)
                m.d.sync += pl_wait.eq(pl_wait + 1)
                # compute passes per chunk: kh x ceil(kw / dgw) groups per kernel row
                with m.Switch(dgw):
                    for g in range(1, DWT + 1):
                        with m.Case(g):
                            with m.Switch(kw):
                                for k in range(1, KMAX + 1):
                                    with m.Case(k):
                                        m.d.sync += ctaps.eq(kh * -(-k // g))
                with m.If(pl_wait == dv_inc.latency + 1):
                    m.d.sync += [in_planes_total.eq(dv_inc.q), out_planes_total.eq(dv_outc.q)]
                    m.next = "GO"
            with m.State("GO"):
                m.d.comb += [run_go.eq(1), cls_i.eq(1)]
                m.d.sync += [in_layer.eq(1), w_full.eq(0),
                             group_bytes.eq(chunk_bytes * n_chunks), last_chunk.eq(n_chunks - 1),
                             w_resident.eq(n_chunks * taps <= DWB)]
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(fe_idle & cp_idle & dr_idle & st_idle):
                    m.d.sync += in_layer.eq(0)
                    m.next = "LAYER_END"
            with m.State("LAYER_END"):
                m.d.comb += cls_o.eq(1)
                m.next = "LAYER_END2"
            with m.State("LAYER_END2"):  # the layer's writes have landed
                m.d.comb += cls_o.eq(1)
                with m.If(~self.wr_busy):
                    m.next = "LAYER_DONE"
            with m.State("LAYER_DONE"):  # AXI errors through a register (a short path)
                m.d.comb += cls_o.eq(1)
                m.d.sync += [layer.eq(layer + 1), desc_addr.eq(desc_addr + DESC_SIZE)]
                with m.If(ax_err_r):
                    m.d.sync += status.eq(ST_AXI | (layer << 8))
                    m.next = "FINISH"
                with m.Elif(lay_last):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "DESC_CMD"
            with m.State("FINISH"):
                m.d.comb += ctrl.done.eq(1)
                m.d.sync += [busy.eq(0), in_full.eq(0), acc_full.eq(0), step_busy.eq(0),
                             w_full.eq(0), ob_full.eq(0),
                             res_ready.eq(0)]
                m.next = "IDLE"
        return m
