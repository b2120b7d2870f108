"""The host driver (:mod:`filmqnn_hw.host.driver`): register sequencing on a fake MMIO core, the
refusals (another config's weight image, a missing overlay, no pynq, a timeout), and end to
end through :class:`SimBackend` (Verilator) equal to the golden model with ``==``, and the
demo (``python -m filmqnn_quant.demo``) on one Fashion-MNIST image.

The Verilator build of the small config lives in the session's base temp directory
(``driver_sim``) and is built once (the demo test reuses it through its stamp).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import small_network

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.gateware.axi.lite_regs import AP_CTRL, IER, ISR, accelerator_control_map
from filmqnn_hw.host.driver import (
    AP_DONE,
    AP_IDLE,
    AP_START,
    Accelerator,
    AcceleratorStatusError,
    AcceleratorTimeout,
    Backend,
    ConfigMismatchError,
    DeviceBuffer,
    DriverError,
    OverlayMissingError,
    PynqBackend,
    SimBackend,
    decode_status,
)
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_quant.export import export_graph

#: The driver tests' simulated accelerator (G=8 on 128-bit beats; builds in ~40 s).
CFG = AcceleratorConfig.small(act_pack=8, axi_data_bits=128)
CMAP = accelerator_control_map()


def sim_dir(tmp_path_factory):
    """The session-wide Verilator cache shared with test_demo.py."""
    d = tmp_path_factory.getbasetemp() / "driver_sim"
    d.mkdir(exist_ok=True)
    return d


# ---------------------------------------------------------------------------------------------
# a fake core behind MMIO (pure Python): register sequencing without Verilator
# ---------------------------------------------------------------------------------------------
class FakeBuffer(DeviceBuffer):
    def __init__(self, n, phys):
        self.array = np.zeros(n, np.uint8)
        self.physical_address = phys
        self.device = bytearray(n)
        self.syncs = []

    def sync_to_device(self):
        self.syncs.append("to")
        self.device[:] = self.array.tobytes()

    def sync_from_device(self):
        self.syncs.append("from")
        self.array[:] = np.frombuffer(bytes(self.device), np.uint8)


class FakeCore(Backend):
    """A core that 'computes' with the golden model on the program it finds in its buffer.

    It decodes the program header at the ``layers`` address (so a wrong base shows up),
    writes the golden output, counts register accesses, and can hang or report a status.
    """

    description = "fake MMIO core"

    def __init__(self, config, graph, phys=0x1000_0000, *, hang=False, status=0,
                 busy_polls=3):
        self.config, self.graph, self.phys = config, graph, phys
        self.hang, self.status, self.busy_polls = hang, status, busy_polls
        self.log, self.regs, self.hi = [], {}, {}
        self.ctrl = AP_IDLE
        self.polls = 0
        self.counters = {"cycles": (5 << 32) + 1234, "stall_weight": 7, "stall_input": 8,
                         "stall_output": 9, "status": status}

    def allocate(self, n):
        self.buf = FakeBuffer(n, self.phys)
        return self.buf

    def write(self, off, v):
        self.log.append(("w", off, v))
        if off == AP_CTRL and v & AP_START:
            assert self.buf.syncs and self.buf.syncs[-1] == "to", "ap_start before sync"
            self.ctrl = AP_START
            self.polls = 0
        else:
            self.regs[off] = v

    def read(self, off):
        self.log.append(("r", off))
        if off == AP_CTRL:
            if self.ctrl & AP_START and not self.hang:
                self.polls += 1
                if self.polls >= self.busy_polls:
                    self._compute()
                    self.ctrl = AP_DONE | AP_IDLE
            v = self.ctrl
            self.ctrl &= ~AP_DONE
            return v
        for e in CMAP.counters:
            o = CMAP.offset_of(e.name)
            if off == o:
                self.hi[o] = self.counters[e.name] >> 32
                return self.counters[e.name] & 0xFFFFFFFF
            if off == o + 4:
                return self.hi.pop(o)  # only after the low word latched it
        return self.regs.get(off, 0)

    def _compute(self):
        layers = self.regs[0x10] | self.regs[0x14] << 32
        mem = bytes(self.buf.device)
        # the program the host wrote sits at 'layers' inside the buffer
        from filmqnn_hw.spec.program import LayerProgram

        head, _ = LayerProgram.parse(mem[layers - self.phys:][:64 + 384 * len(self.graph.ops)
                                                             + 4], self.config)
        prog = build_program(self.graph, self.config, base=self.phys)
        assert head["input_addr"] == prog.input_addr
        x = prog.read_tensor(b"\0" * self.phys + mem, prog.input_spec.name)
        y = self.graph.run(x[None])[0]
        from filmqnn_hw.spec.program import pack_logits

        out = pack_logits(y)
        o = prog.output_addr - self.phys
        self.buf.device[o:o + len(out)] = out


def test_fake_core_register_sequence():
    g = small_network(CFG)
    core = FakeCore(CFG, g)
    acc = Accelerator(core, graph=g, poll_s=0)
    # the program was built for the buffer's physical address
    assert acc.program.base == core.phys and acc.base == core.phys
    assert all(r.addr >= core.phys for r in acc.program.regions)
    x = np.random.default_rng(1).integers(0, 32, g.input.shape)
    core.log.clear()
    out = acc.run(x)
    log = list(core.log)
    assert np.array_equal(out, g.run(x[None])[0])
    assert acc.classify(x) == int(np.argmax(g.run(x[None]).reshape(-1)))
    # idle check, layers low/high, start, polls until done, counters low-then-high, status
    assert log[0] == ("r", AP_CTRL)
    assert log[1] == ("w", 0x10, core.phys) and log[2] == ("w", 0x14, 0)
    assert log[3] == ("w", AP_CTRL, AP_START)
    polls = [e for e in log[4:] if e == ("r", AP_CTRL)]
    assert len(polls) == core.busy_polls
    reads = [e[1] for e in log if e[0] == "r" and e[1] != AP_CTRL]
    assert reads == [0x18, 0x1C, 0x20, 0x24, 0x28, 0x2C, 0x30, 0x34, 0x38]
    c = acc.counters()
    assert c["cycles"] == (5 << 32) + 1234 and c["stall_output"] == 9 and c["status"] == 0
    assert acc.last_fps() == pytest.approx(CFG.clock_mhz * 1e6 / c["cycles"])
    assert core.buf.syncs[-2:] == ["to", "from"]


def test_fake_core_timeout_message_has_registers():
    g = small_network(CFG)
    acc = Accelerator(FakeCore(CFG, g, hang=True), graph=g, timeout_s=0.05, poll_s=0.001)
    with pytest.raises(AcceleratorTimeout, match=r"AP_CTRL=0x00000001 \(ap_start\), "
                       r"status=0x00000000 \(ok\)") as ei:
        acc.run(np.zeros(g.input.shape, np.int64))
    assert ei.value.ap_ctrl == AP_START and ei.value.status == 0


def test_fake_core_status_error_is_decoded():
    g = small_network(CFG)
    acc = Accelerator(FakeCore(CFG, g, status=5 | 3 << 8), graph=g, poll_s=0)
    with pytest.raises(AcceleratorStatusError,
                       match=r"code 5 \(unsupported descriptor\) at layer 3 \('b'\)") as ei:
        acc.run(np.zeros(g.input.shape, np.int64))
    assert ei.value.code == 5 and ei.value.layer == 3
    assert decode_status(0) == "ok" and "AXI error" in decode_status(6)


def test_bad_input_shape_and_busy_core_are_refused():
    g = small_network(CFG)
    core = FakeCore(CFG, g)
    acc = Accelerator(core, graph=g, poll_s=0)
    with pytest.raises(DriverError, match=r"input must have shape \(3, 11, 11\)"):
        acc.run(np.zeros((3, 10, 11), np.int64))
    core.ctrl = AP_START
    with pytest.raises(DriverError, match="accelerator is busy"):
        acc.run(np.zeros(g.input.shape, np.int64))


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------
def test_weight_image_for_another_config_is_refused(tmp_path):
    other = CFG.replace(tr=2)  # same slots, different accelerator
    g = small_network(CFG)
    export_graph(tmp_path / "exp", g, other, log=lambda m: None)
    backend = SimBackend(CFG, tmp_path / "sim")  # lazy: nothing is built
    with pytest.raises(ConfigMismatchError) as ei:
        Accelerator(backend, tmp_path / "exp")
    msg = str(ei.value)
    assert other.config_hash()[:12] in msg and CFG.config_hash()[:12] in msg
    # the image itself is checked too (config.json replaced by this accelerator's)
    (tmp_path / "exp" / "config.json").write_text(CFG.to_json())
    with pytest.raises(ConfigMismatchError, match="packed for config") as ei:
        Accelerator(backend, tmp_path / "exp")
    assert other.config_hash()[:12] in str(ei.value)
    # a graph handed over with another config
    with pytest.raises(ConfigMismatchError, match=other.config_hash()[:12]):
        Accelerator(backend, graph=g, config=other)
    assert backend.exe is None


@pytest.mark.parametrize(("text", "what"), [('{"layers": [', "is not a readable JSON manifest"),
                                            ("[]", "is not a filmqnn manifest")])
def test_a_damaged_manifest_is_refused_naming_it(tmp_path, text, what):
    from filmqnn_hw.host.driver import DriverError, load_export

    export_graph(tmp_path / "exp", small_network(CFG), CFG, log=lambda m: None)
    (tmp_path / "exp" / "manifest.json").write_text(text)
    with pytest.raises(DriverError, match=what) as ei:
        load_export(tmp_path / "exp", CFG)
    assert str(tmp_path / "exp" / "manifest.json") in str(ei.value)


def test_graph_that_does_not_fit_the_slots_is_refused(tmp_path):
    g = small_network(AcceleratorConfig.small(act_pack=8, axi_data_bits=128, n8_slots=4))
    with pytest.raises(ConfigMismatchError, match="does not fit"):
        Accelerator(SimBackend(CFG, tmp_path), graph=g)


def test_missing_overlay_is_refused(tmp_path):
    with pytest.raises(OverlayMissingError, match="missing overlay: .*nope.bit.*"
                       "build_bitstream.tcl on a Vivado machine"):
        PynqBackend(tmp_path / "nope.bit")
    (tmp_path / "a.bit").write_bytes(b"\0")
    with pytest.raises(OverlayMissingError, match=r"a\.hwh"):
        PynqBackend(tmp_path / "a.bit")
    (tmp_path / "a.hwh").write_text("<xml/>")
    with pytest.raises(OverlayMissingError, match="config.json"):
        PynqBackend(tmp_path / "a.bit")


def test_pynq_missing_is_refused(tmp_path, monkeypatch):
    for f in ("a.bit", "a.hwh"):
        (tmp_path / f).write_bytes(b"\0")
    (tmp_path / "config.json").write_text(CFG.to_json())
    monkeypatch.setitem(sys.modules, "pynq", None)  # import pynq -> ImportError
    with pytest.raises(DriverError, match="pynq is not installed"):
        PynqBackend(tmp_path / "a.bit")
    assert "filmqnn_hw.host.driver" in sys.modules  # importing the driver never needs pynq


def test_pynq_backend_with_a_stub_module(tmp_path, monkeypatch):
    """The PYNQ calls (Overlay, ip_dict, mmio, allocate, sync) on a stand-in module."""
    import types

    g = small_network(CFG)
    core = FakeCore(CFG, g, phys=0x3000_0000)

    class Buf(np.ndarray):
        pass

    def allocate(shape, dtype):
        fb = core.allocate(shape[0])
        b = fb.array.view(Buf)
        b.physical_address = fb.physical_address
        b.sync_to_device, b.sync_from_device = fb.sync_to_device, fb.sync_from_device
        fb.array = b
        return b

    class Overlay:
        def __init__(self, path, download=True):
            self.ip_dict = {"filmqnn_0": {"phys_addr": 0x4000_0000, "addr_range": 0x1000}}
            self.filmqnn_0 = types.SimpleNamespace(mmio=types.SimpleNamespace(
                read=core.read, write=core.write))

    monkeypatch.setitem(sys.modules, "pynq", types.SimpleNamespace(Overlay=Overlay,
                                                                   allocate=allocate))
    for f in ("a.bit", "a.hwh"):
        (tmp_path / f).write_bytes(b"\0")
    (tmp_path / "config.json").write_text(CFG.to_json())
    be = PynqBackend(tmp_path / "a.bit")
    assert be.config == CFG
    acc = Accelerator(be, graph=g, poll_s=0)
    assert acc.program.base == 0x3000_0000
    x = np.random.default_rng(3).integers(0, 32, g.input.shape)
    assert np.array_equal(acc.run(x), g.run(x[None])[0])
    with pytest.raises(DriverError, match="no IP named 'other'"):
        PynqBackend(tmp_path / "a.bit", ip_name="other")


# ---------------------------------------------------------------------------------------------
# end to end in Verilator
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_backend(tmp_path_factory):
    be = SimBackend(CFG, sim_dir(tmp_path_factory), jobs=2)
    be.build()
    return be


@pytest.mark.verilator
def test_sim_end_to_end_export_dir(sim_backend, tmp_path):
    """Export directory in, class scores out, == the golden model for several frames."""
    g = small_network(CFG)
    export_graph(tmp_path / "exp", g, CFG, log=lambda m: None)
    acc = Accelerator(sim_backend, tmp_path / "exp", timeout_s=60)
    assert acc.program.base == 0
    rng = np.random.default_rng(0)
    preds = set()
    for _ in range(3):
        x = rng.integers(0, 32, g.input.shape)
        ref = g.run(x[None])[0]
        out = acc.run(x)
        assert out.shape == (10, 1, 1) and np.array_equal(out, ref)
        c = acc.counters()
        assert c["status"] == 0 and c["cycles"] > 0
        assert acc.last_fps() == pytest.approx(100e6 / c["cycles"])
        preds.add(acc.classify(x))
        assert sim_backend.read(AP_CTRL) & AP_IDLE
    assert len(np.unique(ref)) > 3  # not a trivially clipped output


@pytest.mark.verilator
def test_sim_graph_and_interrupt_status(sim_backend):
    g = small_network(CFG, seed=11)
    acc = Accelerator(sim_backend, graph=g, config=CFG, timeout_s=60)
    sim_backend.write(IER, 1)
    sim_backend.write(0x04, 1)
    x = np.random.default_rng(5).integers(0, 32, g.input.shape)
    assert np.array_equal(acc.run(x), g.run(x[None])[0])
    assert sim_backend.interrupt() and sim_backend.read(ISR) == 1
    sim_backend.write(ISR, 1)  # toggle on write clears it
    assert not sim_backend.interrupt()
    sim_backend.write(IER, 0)


@pytest.mark.verilator
def test_sim_timeout_message_has_registers(sim_backend, tmp_path):
    g = small_network(CFG)
    tiny = SimBackend(CFG, sim_backend.work_dir, max_cycles=500)  # same cached build
    acc = Accelerator(tiny, graph=g, timeout_s=60)
    with pytest.raises(AcceleratorTimeout, match=r"max_cycles=500.*AP_CTRL=0x[0-9a-f]{8} "
                       r"\(.*\), status=0x00000000 \(ok\)"):
        acc.run(np.zeros(g.input.shape, np.int64))
    assert tiny.seconds["build"] < 30  # cached


@pytest.mark.verilator
def test_demo_one_image(sim_backend, tmp_path, capsys):
    """``python -m filmqnn_quant.demo`` on one test image with the small simulated config."""
    pytest.importorskip("torch")
    from filmqnn_quant.data import load_dataset

    try:
        load_dataset("fashion_mnist", "test")
    except (FileNotFoundError, ValueError) as e:
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    from filmqnn_quant.demo import main, small_sim_config

    assert small_sim_config() == CFG  # so the cached build is reused
    rc = main(["--images", "1", "--sim-config", "small", "--out", str(tmp_path / "demo"),
               "--sim-dir", str(sim_backend.work_dir), "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "| image | label | hardware | golden | match | pynq_z2 golden |" in out
    assert "hardware == golden model (all logits, ==): 1/1" in out
    assert "Verilog of config" in out and "cached" in out
    assert "SIMULATED small config" in out and "no pynq_z2 FPS is measured" in out
