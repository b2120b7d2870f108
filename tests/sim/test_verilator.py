# amaranth: UnusedElaboratable=no
"""Whole-system Verilator simulation: a tiny AXI4-Lite-controlled DMA core against the C++
AXI4 memory model (filmqnn_hw.sim.verilator)."""

from __future__ import annotations

import random
import time

import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.flows.verilog import convert_vivado, write_vivado
from filmqnn_hw.gateware.axi.dma import AXI4DMA
from filmqnn_hw.gateware.axi.lite_regs import AXI4LiteControl
from filmqnn_hw.gateware.axi.signatures import AXI4Signature
from filmqnn_hw.sim import verilator as vs
from filmqnn_hw.sim.verilator import (
    VerilatorError,
    VerilatorNotFoundError,
    build_verilator,
    run_verilator,
    tb_config_header,
    verilator_lint,
)

BEATS = 200
OUT_OFFSET = 4096
MEM_SIZE = 16384
#: source crosses the 4 KiB boundary at 0x2000 for both widths, the copy the one at 0x3000
LAYERS = 0x1C00
TOP = "echo_top"

class EchoCore(wiring.Component):
    """On ap_start: read BEATS beats at ``layers``, write them byte-reversed per beat to
    ``layers + OUT_OFFSET``, count cycles/stalls, then pulse done and ready."""

    def __init__(self, data_width: int, beats: int = BEATS, id_width: int = 0):
        self.data_width, self.beats = data_width, beats
        self._ctrl = AXI4LiteControl()
        self._dma = AXI4DMA("m_axi_gmem0", addr_width=32, data_width=data_width,
                            id_width=id_width, max_burst=64)
        super().__init__({
            "s_axi_control": In(self._ctrl.s_axi_control.signature.flip()),
            "m_axi_gmem0": Out(AXI4Signature(32, data_width, id_width)),
            "interrupt": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl = ctrl = self._ctrl
        m.submodules.dma = dma = self._dma
        wiring.connect(m, wiring.flipped(self.s_axi_control), ctrl.s_axi_control)
        wiring.connect(m, wiring.flipped(self.m_axi_gmem0), dma.m_axi_gmem0)
        m.d.comb += self.interrupt.eq(ctrl.interrupt)
        core = ctrl.core
        n = self.data_width // 8
        addr = core.args.layers[:32]
        cycles, stall_in, stall_out = Signal(64), Signal(64), Signal(64)
        m.d.comb += [core.counters.cycles.eq(cycles), core.counters.stall_input.eq(stall_in),
                     core.counters.stall_output.eq(stall_out), core.counters.stall_weight.eq(0)]
        src = dma.rd_data.p.data
        m.d.comb += [
            dma.wr_data.p.eq(Cat(*(src[8 * (n - 1 - i): 8 * (n - i)] for i in range(n)))),
            dma.wr_data.valid.eq(dma.rd_data.valid),
            dma.rd_data.ready.eq(dma.wr_data.ready),
        ]
        rd_sent, wr_sent = Signal(), Signal()
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += core.idle.eq(1)
                with m.If(core.start):
                    m.d.sync += [rd_sent.eq(0), wr_sent.eq(0), cycles.eq(0), stall_in.eq(0),
                                 stall_out.eq(0)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.sync += cycles.eq(cycles + 1)
                m.d.comb += [
                    dma.rd_cmd.valid.eq(~rd_sent), dma.rd_cmd.p.addr.eq(addr),
                    dma.rd_cmd.p.beats.eq(self.beats),
                    dma.wr_cmd.valid.eq(~wr_sent), dma.wr_cmd.p.addr.eq(addr + OUT_OFFSET),
                    dma.wr_cmd.p.beats.eq(self.beats),
                ]
                with m.If(dma.rd_cmd.ready):
                    m.d.sync += rd_sent.eq(1)
                with m.If(dma.wr_cmd.ready):
                    m.d.sync += wr_sent.eq(1)
                with m.If(~dma.rd_data.valid):
                    m.d.sync += stall_in.eq(stall_in + 1)
                with m.If(dma.wr_data.valid & ~dma.wr_data.ready):
                    m.d.sync += stall_out.eq(stall_out + 1)
                with m.If(dma.wr_done):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [core.done.eq(1), core.ready.eq(1)]
                m.next = "IDLE"
        return m


def expected(mem: bytes, width: int, layers: int = LAYERS) -> bytearray:
    n = width // 8
    out = bytearray(mem)
    for i in range(BEATS):
        a = layers + i * n
        out[a + OUT_OFFSET: a + OUT_OFFSET + n] = mem[a: a + n][::-1]
    return out


@pytest.fixture(scope="module", params=[(64, 0), (128, 1)], ids=["B64", "B128-id1"])
def built(request, tmp_path_factory):
    width, id_width = request.param
    d = tmp_path_factory.mktemp(f"vsim{width}")
    write_vivado(EchoCore(width, id_width=id_width), TOP, d / "echo.v")
    t0 = time.perf_counter()
    exe = build_verilator(d / "echo.v", TOP, width, d / "build")
    return width, d, exe, time.perf_counter() - t0


@pytest.mark.verilator
@pytest.mark.parametrize("stall_seed", [None, 7], ids=["nostall", "stall"])
def test_echo_memory(built, stall_seed, tmp_path):
    width, _, exe, _ = built
    mem = random.Random(width).randbytes(MEM_SIZE)
    r = run_verilator(exe, mem, LAYERS, tmp_path, stall_seed=stall_seed)
    assert r.memory == expected(mem, width)
    # every counter of the control map is read (the map may grow, e.g. a status word)
    assert {"cycles", "stall_weight", "stall_input", "stall_output"} <= set(r.counters)
    assert all(v == 0 for k, v in r.counters.items() if not k.startswith(("cycles", "stall")))
    assert r.axi["r_beats"] == BEATS and r.axi["w_beats"] == BEATS
    assert r.axi["ar"] == r.axi["aw"] == 4  # 64-beat bursts split at the 4 KiB boundary
    assert BEATS + 40 <= r.counters["cycles"] < r.sim_cycles
    assert r.counters["stall_weight"] == 0
    if stall_seed is None:
        assert r.counters["stall_output"] == 0
        assert r.counters["cycles"] < BEATS + 100  # one beat per cycle after the read latency
    else:
        assert r.counters["stall_output"] > 0 and r.counters["stall_input"] > 60
    assert r.wall_s > 0


@pytest.mark.verilator
def test_read_latency_and_seed_are_used(built, tmp_path):
    width, _, exe, _ = built
    mem = random.Random(1).randbytes(MEM_SIZE)
    fast = run_verilator(exe, mem, LAYERS, tmp_path, read_latency=2)
    slow = run_verilator(exe, mem, LAYERS, tmp_path, read_latency=300)
    assert fast.memory == slow.memory == expected(mem, width)
    assert slow.counters["cycles"] - fast.counters["cycles"] >= 290
    a = run_verilator(exe, mem, LAYERS, tmp_path, stall_seed=3)
    b = run_verilator(exe, mem, LAYERS, tmp_path, stall_seed=3)
    c = run_verilator(exe, mem, LAYERS, tmp_path, stall_seed=4)
    assert a.counters == b.counters and a.sim_cycles == b.sim_cycles
    assert a.memory == c.memory == expected(mem, width)
    assert list(tmp_path.iterdir()) == []  # temporary image files are removed


@pytest.mark.verilator
def test_shared_ddr_bandwidth(built, tmp_path):
    """--ddr-beats-per-cycle caps reads and writes together: the echo's BEATS reads and
    BEATS writes, which overlap without a cap, take 2 BEATS / R cycles at R beats per cycle."""
    width, _, exe, _ = built
    mem = random.Random(2).randbytes(MEM_SIZE)
    free = run_verilator(exe, mem, LAYERS, tmp_path)
    for rate in (1.0, 0.5):
        capped = run_verilator(exe, mem, LAYERS, tmp_path, ddr_beats_per_cycle=rate)
        assert capped.memory == expected(mem, width)
        assert capped.counters["cycles"] >= 2 * BEATS / rate - 10
        assert capped.counters["cycles"] <= 2 * BEATS / rate + 150
    assert free.counters["cycles"] < BEATS + 100
    with pytest.raises(ValueError, match="ddr_beats_per_cycle"):
        run_verilator(exe, mem, LAYERS, tmp_path, ddr_beats_per_cycle=0)


@pytest.mark.verilator
def test_build_is_cached(built):
    width, d, exe, first = built
    mtime = exe.stat().st_mtime_ns
    t0 = time.perf_counter()
    assert build_verilator(d / "echo.v", TOP, width, d / "build") == exe
    assert time.perf_counter() - t0 < max(2.0, first / 4)
    assert exe.stat().st_mtime_ns == mtime


@pytest.mark.verilator
def test_timeout_reports_ap_ctrl(built, tmp_path):
    _, _, exe, _ = built
    with pytest.raises(VerilatorError, match=r"timed out.*AP_CTRL=0x00000001"):
        run_verilator(exe, bytes(MEM_SIZE), LAYERS, tmp_path, max_cycles=100)


@pytest.mark.verilator
def test_out_of_range_is_an_error(built, tmp_path):
    width, _, exe, _ = built
    # the reads fit, the second half of the copy falls off the end of the 16 KiB image
    layers = MEM_SIZE - OUT_OFFSET - BEATS * width // 16
    with pytest.raises(VerilatorError, match=r"write burst out of range: addr=0x4000"):
        run_verilator(exe, bytes(MEM_SIZE), layers, tmp_path)
    # shorter image: even the reads are out of range
    with pytest.raises(VerilatorError, match=r"read burst out of range"):
        run_verilator(exe, bytes(0x1C80), LAYERS, tmp_path)


@pytest.mark.verilator
def test_lint(built, tmp_path):
    _, d, _, _ = built
    verilator_lint(d / "echo.v", TOP)
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, output b);\n  assign b = a +;\nendmodule\n")
    with pytest.raises(VerilatorError, match="syntax error"):
        verilator_lint(bad, "bad")


@pytest.mark.verilator
def test_build_failure_shows_log(built, tmp_path):
    width, d, _, _ = built
    broken = tmp_path / "broken.v"
    broken.write_text((d / "echo.v").read_text().replace("endmodule", "  wire x = ;\nendmodule",
                                                          1))
    with pytest.raises(VerilatorError, match=r"Verilator build failed.*\n.*syntax error"):
        build_verilator(broken, TOP, width, tmp_path / "build")


def test_port_checks(tmp_path):
    text = convert_vivado(EchoCore(64), TOP)
    cfg = tb_config_header(text, TOP, 64)
    assert "#define TB_BEAT_BYTES 8" in cfg and "#define TB_HAS_ID 0" in cfg
    assert "X(cycles, 0x18, 64) X(stall_weight, 0x20, 64)" in cfg
    assert "#define TB_LAYERS_OFFSET 0x10" in cfg
    with pytest.raises(VerilatorError, match="64 bits wide, not data_width=128"):
        tb_config_header(text, TOP, 128)
    with pytest.raises(VerilatorError, match="module 'other' not found"):
        tb_config_header(text, "other", 64)
    ctrl = convert_vivado(AXI4LiteControl(), "ctrl_only")
    with pytest.raises(VerilatorError, match="lacks the port.*m_axi_gmem0_awaddr"):
        tb_config_header(ctrl, "ctrl_only", 64)


def test_missing_verilator(monkeypatch, tmp_path):
    monkeypatch.setattr(vs.shutil, "which", lambda name: None)
    with pytest.raises(VerilatorNotFoundError, match="verilator not found on PATH"):
        build_verilator(tmp_path / "x.v", TOP, 64, tmp_path)
    with pytest.raises(VerilatorNotFoundError):
        verilator_lint(tmp_path / "x.v", TOP)
