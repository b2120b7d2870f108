"""Host driver for the FILM-QNN accelerator, following PYNQ conventions.

One class, :class:`Accelerator`, runs frames through the accelerator behind a small backend
interface (:class:`Backend`): 32-bit MMIO reads/writes of the AXI4-Lite control registers
(:func:`~filmqnn_hw.gateware.axi.lite_regs.accelerator_control_map`) and one contiguous DDR buffer
the core can see. Two backends:

* :class:`PynqBackend` (on the board): ``pynq.Overlay(bitfile)``, the IP's MMIO and one
  ``pynq.allocate`` buffer (``sync_to_device`` / ``sync_from_device``,
  ``physical_address``). ``pynq`` is imported only when the backend is created.
* :class:`SimBackend` (here): the generated top (:func:`~filmqnn_hw.flows.verilog.emit_verilog`)
  compiled with Verilator (cached) and run with
  :func:`~filmqnn_hw.sim.verilator.run_verilator` on the buffer (DDR base address 0)
  when the host sets ``ap_start``; the registers read back what the simulated core reported
  (``ap_done``/``ap_idle``, the counters, ``status``), so the driver code is the same.

The layer program holds absolute DDR addresses, so :class:`Accelerator` builds it
(:func:`~filmqnn_hw.compiler.program_builder.build_program`) for the physical address of its
buffer: the
buffer is sized with a base-0 plan (regions are 64-byte aligned relative to ``base``, so the
span does not depend on an aligned base), then the program is rebuilt with
``base=buffer.physical_address``. An export's ``program.bin`` (built for base 0) is checked
against the base-0 plan, so a stale ``program.bin`` is refused rather than silently ignored.

Usage on a board::

    from filmqnn_hw.host.driver import Accelerator, PynqBackend
    acc = Accelerator(PynqBackend("filmqnn.bit"), "out/smallcnn_pynq_z2")
    logits = acc.run(codes)          # codes: (C, H, W) 5-bit input codes
    print(acc.classify(codes), acc.counters(), acc.last_fps())
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.gateware.axi.lite_regs import AP_CTRL, GIE, IER, ISR, accelerator_control_map
from filmqnn_hw.spec.config import AcceleratorConfig, ConfigError
from filmqnn_hw.spec.program import (
    ALIGN,
    STATUS,
    LayerProgram,
    ProgramError,
    unpack_activations,
    unpack_logits,
)

__all__ = [
    "AP_START",
    "AP_DONE",
    "AP_IDLE",
    "AP_READY",
    "DriverError",
    "ConfigMismatchError",
    "OverlayMissingError",
    "AcceleratorTimeout",
    "AcceleratorStatusError",
    "decode_status",
    "describe_config",
    "Backend",
    "DeviceBuffer",
    "PynqBackend",
    "SimBackend",
    "Accelerator",
    "load_export",
]

AP_START, AP_DONE, AP_IDLE, AP_READY = 0x1, 0x2, 0x4, 0x8
_CMAP = accelerator_control_map()
_LAYERS = _CMAP.offset_of("layers")
_STATUS = _CMAP.offset_of("status")
#: Counters read after every run (64-bit ones low word first: that read latches the high word).
_COUNTERS = tuple((e.name, _CMAP.offset_of(e.name), e.bits) for e in _CMAP.counters)


class DriverError(RuntimeError):
    """The driver cannot do what was asked; the message says why and what to do."""


class ConfigMismatchError(DriverError):
    """A weight image / program / graph made for another accelerator config."""


class OverlayMissingError(DriverError):
    """The bitstream, its ``.hwh`` or its ``config.json`` is missing."""


class AcceleratorTimeout(DriverError):
    """``ap_done`` was not seen in time; ``ap_ctrl`` and ``status`` hold the registers."""

    def __init__(self, message: str, ap_ctrl: int, status: int) -> None:
        super().__init__(message)
        self.ap_ctrl = ap_ctrl
        self.status = status


class AcceleratorStatusError(DriverError):
    """The core finished with a non-zero ``status`` register (code | layer << 8)."""

    def __init__(self, message: str, status: int, counters: dict[str, int]) -> None:
        super().__init__(message)
        self.status = status
        self.code = status & 0xFF
        self.layer = status >> 8
        self.counters = counters


def decode_status(status: int, layer_names: list[str] | None = None) -> str:
    """``'ok'`` or e.g. ``'code 5 (unsupported descriptor) at layer 3 ('conv2')'``."""
    if status == 0:
        return "ok"
    code, layer = status & 0xFF, status >> 8
    what = STATUS.get(code, "unknown status code")
    name = ""
    if layer_names is not None and layer < len(layer_names):
        name = f" ({layer_names[layer]!r})"
    return f"code {code} ({what}) at layer {layer}{name}"


def _decode_ctrl(ctrl: int) -> str:
    bits = [n for b, n in ((0, "ap_start"), (1, "ap_done"), (2, "ap_idle"), (3, "ap_ready"),
                           (7, "auto_restart")) if ctrl >> b & 1]
    return ", ".join(bits) or "busy (no bit set)"


def describe_config(config: AcceleratorConfig) -> str:
    """``'<hash12> (board B, tm=.., tn=.., n8_slots=..)'``: how errors name a config."""
    return (f"{config.config_hash()[:12]} (board {config.board}, tm={config.tm}, "
            f"tn={config.tn}, n8_slots={config.n8_slots})")


# =============================================================================================
# Backends
# =============================================================================================
class DeviceBuffer:
    """A contiguous DDR buffer: ``array`` (uint8, host view) at ``physical_address``.

    ``sync_to_device`` makes host writes visible to the core, ``sync_from_device`` the core's
    writes visible to the host (cache flush / invalidate on a board).
    """

    array: np.ndarray
    physical_address: int

    def sync_to_device(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def sync_from_device(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def free(self) -> None:
        """Release the buffer (no-op unless the backend needs it)."""


class Backend:
    """What :class:`Accelerator` needs: the config, MMIO and one DDR buffer.

    Subclasses set ``config`` (the accelerator the bitstream / simulation implements),
    ``description`` and ``addr_width`` (bits of the core's DDR address, 32 by default).
    """

    config: AcceleratorConfig
    description: str = "accelerator"
    addr_width: int = 32

    def read(self, offset: int) -> int:  # pragma: no cover - interface
        """32-bit read of control register ``offset``."""
        raise NotImplementedError

    def write(self, offset: int, value: int) -> None:  # pragma: no cover - interface
        """32-bit write of control register ``offset``."""
        raise NotImplementedError

    def allocate(self, nbytes: int) -> DeviceBuffer:  # pragma: no cover - interface
        """One contiguous, 64-byte-aligned buffer of ``nbytes`` the core can address."""
        raise NotImplementedError

    def gave_up(self) -> str | None:
        """A reason the running core will never raise ``ap_done`` (a simulation that stopped),
        else ``None``; lets the driver report a timeout without waiting for the wall clock."""
        return None

    def close(self) -> None:
        """Release the backend's resources."""


# ---- PYNQ ------------------------------------------------------------------------------------
class _PynqBuffer(DeviceBuffer):
    def __init__(self, buf: Any) -> None:
        self._buf = buf
        self.array = buf  # pynq's PynqBuffer is an ndarray subclass
        self.physical_address = int(getattr(buf, "physical_address", getattr(
            buf, "device_address", 0)))

    def sync_to_device(self) -> None:
        self._buf.sync_to_device()

    def sync_from_device(self) -> None:
        self._buf.sync_from_device()

    def free(self) -> None:
        fb = getattr(self._buf, "freebuffer", None)
        if callable(fb):
            fb()


def _import_pynq() -> Any:
    try:
        return importlib.import_module("pynq")
    except ImportError as e:
        raise DriverError(
            f"pynq is not installed ({e}): PynqBackend runs on the board's PYNQ image (Python "
            "with the pynq package and the Xilinx drivers); use SimBackend on a host without "
            "the board") from None


class PynqBackend(Backend):
    """The accelerator in a PYNQ overlay.

    Parameters
    ----------
    bitfile : path of the ``.bit``; its ``.hwh`` must sit next to it (PYNQ reads the block
        design from it).
    ip_name : name of the accelerator IP in the block design (``overlay.ip_dict``).
    config : the bitstream's :class:`AcceleratorConfig`; default: ``config.json`` next to
        the bitfile, else one directory up (``python -m filmqnn_hw.build BOARD --out DIR``
        writes ``DIR/config.json`` and the Vivado hand-off ``DIR/overlay/filmqnn.bit``).
    ip_name : the accelerator cell of the block design (``filmqnn_0`` in
        ``filmqnn_hw/flows/vivado.py``).
    download : program the PL (``Overlay(bitfile, download=...)``).
    """

    def __init__(self, bitfile: str | Path, *, ip_name: str = "filmqnn_0",
                 config: AcceleratorConfig | None = None, download: bool = True,
                 addr_width: int | None = None) -> None:
        bit = Path(bitfile)
        hwh = bit.with_suffix(".hwh")
        missing = [str(p) for p in (bit, hwh) if not p.is_file()]
        if missing:
            raise OverlayMissingError(
                f"missing overlay: {' and '.join(missing)} not found; build the bitstream with "
                "build_bitstream.tcl on a Vivado machine (docs/rtl.md) and copy the .bit and "
                ".hwh (and config.json) to the board")
        if config is None:
            cands = [bit.with_name("config.json"), bit.parent.parent / "config.json"]
            cj = next((c for c in cands if c.is_file()), cands[0])
            if not cj.is_file():
                raise OverlayMissingError(
                    f"missing overlay config: {' or '.join(map(str, cands))} not found; copy "
                    f"the config.json the bitstream was built from next to {bit.name} (or pass "
                    "config=)")
            try:
                config = AcceleratorConfig.read(cj)
            except ConfigError as e:
                raise DriverError(str(e)) from None
        self.config = config
        self.addr_width = addr_width or (49 if config.family == "xcup" else 32)
        pynq = _import_pynq()
        self._pynq = pynq
        self.overlay = pynq.Overlay(str(bit), download=download)
        ips = getattr(self.overlay, "ip_dict", {})
        if ip_name not in ips:
            raise DriverError(f"overlay {bit.name} has no IP named {ip_name!r}; its IPs: "
                              f"{', '.join(sorted(ips)) or 'none'} (pass ip_name=)")
        ip = getattr(self.overlay, ip_name, None)
        mmio = getattr(ip, "mmio", None)
        if mmio is None:
            mmio = pynq.MMIO(ips[ip_name]["phys_addr"], ips[ip_name]["addr_range"])
        self.mmio = mmio
        self.description = f"overlay {bit.name} IP {ip_name}"

    def read(self, offset: int) -> int:
        return int(self.mmio.read(offset)) & 0xFFFFFFFF

    def write(self, offset: int, value: int) -> None:
        self.mmio.write(offset, int(value) & 0xFFFFFFFF)

    def allocate(self, nbytes: int) -> DeviceBuffer:
        return _PynqBuffer(self._pynq.allocate(shape=(nbytes,), dtype=np.uint8))


# ---- Verilator simulation --------------------------------------------------------------------
class _SimBuffer(DeviceBuffer):
    def __init__(self, nbytes: int) -> None:
        self.array = np.zeros(nbytes, dtype=np.uint8)
        self.device = bytearray(nbytes)  # what the simulated core sees
        self.physical_address = 0

    def sync_to_device(self) -> None:
        self.device[:] = self.array.tobytes()

    def sync_from_device(self) -> None:
        self.array[:] = np.frombuffer(bytes(self.device), dtype=np.uint8)


def _rtl_source_hash() -> str:
    """Hash of the generator sources (filmqnn_hw/**/*.py): the emitted Verilog's cache key."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for p in sorted(root.rglob("*.py")):
        if p.name in ("driver.py", "demo.py"):
            continue
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


class SimBackend(Backend):
    """The generated top in Verilator, behind the same registers as the board.

    The buffer is the simulated DDR at address 0 (one buffer per backend). Writing
    ``ap_start`` runs the whole simulation (:func:`run_verilator`, which writes ``layers``
    and ``ap_start`` itself, polls ``AP_CTRL`` and reads the counters); afterwards ``AP_CTRL``
    reads ``ap_done`` (clear on read) and ``ap_idle``, and the counter/``status`` registers
    read what the simulated core reported. If the simulation reaches ``max_cycles`` without
    ``ap_done``, ``AP_CTRL`` keeps the value the testbench last read, the counters read 0 and
    ``status`` reads 0 (the core sets a non-zero status only together with ``ap_done``), and
    :meth:`gave_up` returns the testbench's message.

    The Verilog is emitted into ``work_dir`` once per (config, generator source) and the
    Verilator build is cached by :func:`build_verilator`'s stamp, so a second backend for the
    same config in the same ``work_dir`` starts at once.

    With ``shared_ddr`` (default) and a config that knows its board's DDR bandwidth
    (``ddr_bytes_per_cycle``), all AXI ports of the simulated core together move at most that
    many bytes per cycle, as on the board; otherwise every port moves a beat per cycle.
    """

    def __init__(self, config: AcceleratorConfig, work_dir: str | Path, *, jobs: int = 2,
                 read_latency: int = 40, write_latency: int = 10,
                 stall_seed: int | None = None, max_cycles: int = 200_000_000,
                 shared_ddr: bool = True,
                 log: Callable[[str], None] | None = None) -> None:
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        self.config = config
        self.work_dir = Path(work_dir)
        self.jobs = jobs
        ddr = config.ddr_beats_per_cycle
        self.sim_args = dict(read_latency=read_latency, write_latency=write_latency,
                             stall_seed=stall_seed, max_cycles=max_cycles,
                             ddr_beats_per_cycle=ddr if shared_ddr and ddr > 0 else None)
        self.log = log or (lambda msg: None)
        self.description = f"Verilator simulation of config {config.config_hash()[:12]}"
        self.exe: Path | None = None
        self.seconds: dict[str, float] = {}
        self.last_run = None  #: the last VerilatorRun
        self._buf: _SimBuffer | None = None
        self._regs: dict[int, int] = {}
        self._ctrl = AP_IDLE
        self._counters: dict[str, int] = {}
        self._latched_hi: dict[int, int] = {}
        self._gave_up: str | None = None

    # -- build ---------------------------------------------------------------------------------
    def build(self) -> Path:
        """Emit the top (cached) and build it with Verilator (cached); return the executable."""
        if self.exe is not None:
            return self.exe
        from filmqnn_hw.flows.verilog import emit_verilog
        from filmqnn_hw.gateware.top import TOP_NAME
        from filmqnn_hw.sim.verilator import build_verilator

        chash = self.config.config_hash()[:12]
        d = self.work_dir / f"{TOP_NAME}_{chash}"
        d.mkdir(parents=True, exist_ok=True)
        key = _rtl_source_hash()
        vpath = d / f"{TOP_NAME}.v"
        stamp = d / "verilog.key"
        t0 = time.perf_counter()
        if vpath.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
            self.log(f"[sim] Verilog of config {chash} cached: {vpath}")
        else:
            self.log(f"[sim] emitting Verilog for config {chash} (tm={self.config.tm}, "
                     f"tn={self.config.tn}) ...")
            emit_verilog(self.config, vpath)
            stamp.write_text(key + "\n")
            self.log(f"[sim] emitted {vpath} ({vpath.stat().st_size // 1024} KiB) in "
                     f"{time.perf_counter() - t0:.1f} s")
        self.seconds["emit"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.log(f"[sim] Verilator build (cached when unchanged; jobs={self.jobs}) ...")
        self.exe = build_verilator(vpath, TOP_NAME, self.config.axi_data_bits, d / "build",
                                   jobs=self.jobs)
        self.seconds["build"] = time.perf_counter() - t0
        self.log(f"[sim] Verilator executable ready in {self.seconds['build']:.1f} s: {self.exe}")
        return self.exe

    # -- memory ----------------------------------------------------------------------------------
    def allocate(self, nbytes: int) -> DeviceBuffer:
        self._buf = _SimBuffer(nbytes)
        return self._buf

    # -- registers -------------------------------------------------------------------------------
    def read(self, offset: int) -> int:
        if offset == AP_CTRL:
            v = self._ctrl
            self._ctrl &= ~(AP_DONE | AP_READY)  # clear on read
            return v
        for name, off, bits in _COUNTERS:
            value = self._counters.get(name, 0)
            if offset == off:
                if bits == 64:
                    self._latched_hi[off] = (value >> 32) & 0xFFFFFFFF
                return value & 0xFFFFFFFF
            if bits == 64 and offset == off + 4:
                return self._latched_hi.get(off, 0)
        return self._regs.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        value &= 0xFFFFFFFF
        if offset == AP_CTRL:
            if value & AP_START:
                self._start()
            return
        if offset == ISR:  # toggle on write
            self._regs[ISR] = self._regs.get(ISR, 0) ^ (value & 3)
            return
        self._regs[offset] = value

    def gave_up(self) -> str | None:
        return self._gave_up

    def _start(self) -> None:
        from filmqnn_hw.sim.verilator import VerilatorError, run_verilator

        if self._buf is None:
            raise DriverError("SimBackend: ap_start before any buffer was allocated")
        exe = self.build()
        layers = self._regs.get(_LAYERS, 0) | self._regs.get(_LAYERS + 4, 0) << 32
        self._gave_up = None
        self._counters = {}
        self._ctrl = AP_START  # running
        try:
            run = run_verilator(exe, self._buf.device, layers, self.work_dir / "runs",
                                **self.sim_args)
        except VerilatorError as e:
            msg = str(e)
            m = re.search(r"AP_CTRL=0x([0-9a-fA-F]+)", msg)
            if "timed out" in msg and m:
                self._ctrl = int(m.group(1), 16)
                self._gave_up = (f"the simulation stopped after max_cycles="
                                 f"{self.sim_args['max_cycles']} without ap_done: {msg}")
                return
            raise DriverError(f"simulation of the accelerator failed: {msg}") from None
        self.last_run = run
        self._buf.device[:] = run.memory[: len(self._buf.device)]
        self._counters = dict(run.counters)
        self._ctrl = AP_DONE | AP_IDLE | AP_READY
        if self._regs.get(IER, 0) & 1:  # ap_done interrupt enabled: ISR bit 0
            self._regs[ISR] = self._regs.get(ISR, 0) | 1

    def interrupt(self) -> bool:
        """The ``interrupt`` output: ``GIE & (ISR != 0)``."""
        return bool(self._regs.get(GIE, 0) & 1 and self._regs.get(ISR, 0))


# =============================================================================================
# Export directories
# =============================================================================================
def load_export(directory: str | Path, config: AcceleratorConfig):
    """``(graph, manifest, program_bytes_or_None)`` of an export directory for ``config``.

    Refuses (:class:`ConfigMismatchError`, naming both configs) an export whose
    ``config.json`` or weight image was made for another config.
    """
    from filmqnn_hw.spec.weight_image import WeightImageError, read_image

    d = Path(directory)
    if not d.is_dir():
        raise DriverError(f"export directory {d} does not exist; write it with "
                          "`python -m filmqnn_quant export ... --out DIR`")
    cj, wb = d / "config.json", d / "weights.bin"
    for p in (cj, wb):
        if not p.is_file():
            raise DriverError(f"{d} has no {p.name}: not a complete export; re-export it")
    try:
        ecfg = AcceleratorConfig.read(cj)
    except ConfigError as e:
        raise DriverError(str(e)) from None
    if ecfg.config_hash() != config.config_hash():
        raise ConfigMismatchError(
            f"export {d} was made for config {describe_config(ecfg)}, but this accelerator is "
            f"{describe_config(config)}; re-export with `python -m filmqnn_quant export "
            f"--config <the bitstream's config.json> ...`")
    try:
        graph, _ = read_image(wb, config)
    except WeightImageError as e:
        cls = ConfigMismatchError if "packed for config" in str(e) else DriverError
        raise cls(f"{wb}: {e}") from None
    manifest = {}
    mj = d / "manifest.json"
    if mj.is_file():
        try:
            manifest = json.loads(mj.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DriverError(f"{mj} is not a readable JSON manifest ({e}): copy the export "
                              "again or re-export it") from None
        if not isinstance(manifest, dict):
            raise DriverError(f"{mj} is not a filmqnn manifest (its top level is not an "
                              "object): copy the export again or re-export it")
    prog = (d / "program.bin").read_bytes() if (d / "program.bin").is_file() else None
    return graph, manifest, prog


# =============================================================================================
# The driver
# =============================================================================================
class Accelerator:
    """Runs frames of one network on one accelerator (board or simulation).

    Parameters
    ----------
    backend : :class:`PynqBackend`, :class:`SimBackend` or any :class:`Backend`.
    export_dir : a directory written by ``python -m filmqnn_quant export`` (config.json,
        weights.bin, program.bin); or give ``graph`` (an :class:`IntGraph`, with ``config``
        optionally, which must be the backend's).
    timeout_s : wall-clock limit of one run (polling ``AP_CTRL``).
    poll_s : sleep between ``AP_CTRL`` polls.

    The network's constant data (program, weights, parameters) is written to the buffer
    once; :meth:`run` writes only the input frame.
    """

    def __init__(self, backend: Backend, export_dir: str | Path | None = None, *,
                 graph=None, config: AcceleratorConfig | None = None, timeout_s: float = 10.0,
                 poll_s: float = 1e-4, log: Callable[[str], None] | None = None) -> None:
        self.backend = backend
        self.config = cfg = backend.config
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.log = log or (lambda msg: None)
        self.manifest: dict[str, Any] = {}
        program_bin = None
        if (export_dir is None) == (graph is None):
            raise TypeError("give exactly one of export_dir and graph")
        if export_dir is not None:
            if config is not None and config.config_hash() != cfg.config_hash():
                raise ConfigMismatchError(
                    f"config {describe_config(config)} is not the backend's "
                    f"{describe_config(cfg)}")
            graph, self.manifest, program_bin = load_export(export_dir, cfg)
        else:
            from filmqnn_hw.spec.weight_image import WeightImageError, pack_image

            if config is not None and config.config_hash() != cfg.config_hash():
                raise ConfigMismatchError(
                    f"the graph was made for config {describe_config(config)}, but this "
                    f"accelerator ({backend.description}) is {describe_config(cfg)}; convert "
                    "the model for this accelerator's config")
            try:
                pack_image(graph, cfg)  # every code and 8-bit slot fits this config
            except WeightImageError as e:
                raise ConfigMismatchError(
                    f"the graph does not fit this accelerator {describe_config(cfg)}: {e}"
                ) from None
        self.graph = graph
        self.layer_names = [op.name for op in graph.ops]
        # plan at base 0 to size the buffer, then build for the buffer's physical address
        try:
            plan = build_program(graph, cfg, base=0)
        except ProgramError as e:
            raise DriverError(f"cannot build the layer program: {e}") from None
        if program_bin is not None and plan.to_bytes() != program_bin:
            raise DriverError(
                f"{Path(export_dir) / 'program.bin'} is not the layer program of its "
                "weights.bin on this config (a stale or mixed export); re-export it")
        self.span = plan.mem_bytes
        self.buffer = backend.allocate(self.span)
        base = int(self.buffer.physical_address)
        if base % ALIGN:
            raise DriverError(f"buffer at 0x{base:x} is not {ALIGN}-byte aligned")
        if base + self.span > 1 << backend.addr_width:
            raise DriverError(f"buffer 0x{base:x}+{self.span} is beyond the core's "
                              f"{backend.addr_width}-bit address space")
        self.program = plan if base == 0 else build_program(graph, cfg, base=base)
        self._check_relocated(self.program, base)
        try:
            from filmqnn_hw.spec.geometry import RtlUnsupported, check_program

            check_program(self.program, cfg)
        except RtlUnsupported as e:
            raise DriverError(f"the accelerator cannot run this network: {e}") from None
        self.base = base
        arr = self.buffer.array
        arr[:] = 0
        self._put(self.program.base, self.program.to_bytes())
        for addr, blob in self.program.blobs.items():
            self._put(addr, blob)
        self._counters: dict[str, int] = {}
        self._seconds = 0.0
        self.log(f"[driver] {len(graph.ops)} layers, DDR span {self.span} bytes at 0x{base:x} "
                 f"on {backend.description}")

    def _check_relocated(self, prog: LayerProgram, base: int) -> None:
        if prog.base != base or prog.mem_bytes - base != self.span:
            raise DriverError(f"layer program for base 0x{base:x} spans "
                              f"{prog.mem_bytes - base} bytes, the base-0 plan {self.span}")
        for r in prog.regions:
            if r.addr < base or r.addr + r.size > base + self.span:
                raise DriverError(f"region {r.name!r} at 0x{r.addr:x} is outside the buffer")

    def _put(self, addr: int, data: bytes) -> None:
        off = addr - self.base
        self.buffer.array[off:off + len(data)] = np.frombuffer(data, dtype=np.uint8)

    def _read_counters(self) -> dict[str, int]:
        out = {}
        for name, off, bits in _COUNTERS:
            lo = self.backend.read(off)  # latches the high word
            hi = self.backend.read(off + 4) if bits == 64 else 0
            out[name] = lo | hi << 32
        return out

    # -- running -------------------------------------------------------------------------------
    def run(self, codes: np.ndarray) -> np.ndarray:
        """Run one frame of input codes ``(C, H, W)`` (or ``(1, C, H, W)``); return the
        network output ``(C, H, W)`` (int64; the int16 logits for a classifier)."""
        a = np.asarray(codes)
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.shape != tuple(self.program.input_spec.shape):
            raise DriverError(f"input must have shape {tuple(self.program.input_spec.shape)} "
                              f"(C, H, W), not {np.asarray(codes).shape}")
        try:
            writes = self.program.input_bytes(a)
        except ProgramError as e:
            raise DriverError(str(e)) from None
        for addr, blob in writes.items():
            self._put(addr, blob)
        self.buffer.sync_to_device()
        be = self.backend
        ctrl = be.read(AP_CTRL)  # also clears a stale ap_done
        if ctrl & AP_START or not ctrl & AP_IDLE:
            raise DriverError(f"accelerator is busy (AP_CTRL=0x{ctrl:08x}: "
                              f"{_decode_ctrl(ctrl)}); wait for it or reload the overlay")
        layers = self.program.base
        be.write(_LAYERS, layers & 0xFFFFFFFF)
        be.write(_LAYERS + 4, layers >> 32)
        t0 = time.perf_counter()
        be.write(AP_CTRL, AP_START)
        deadline = t0 + self.timeout_s
        while True:
            ctrl = be.read(AP_CTRL)
            if ctrl & AP_DONE:
                break
            reason = be.gave_up()
            if reason is not None or time.perf_counter() > deadline:
                status = be.read(_STATUS)
                why = reason or f"no ap_done within {self.timeout_s:g} s"
                raise AcceleratorTimeout(
                    f"accelerator timeout: {why}; AP_CTRL=0x{ctrl:08x} ({_decode_ctrl(ctrl)}), "
                    f"status=0x{status:08x} ({decode_status(status, self.layer_names)})",
                    ctrl, status)
            if self.poll_s:
                time.sleep(self.poll_s)
        self._seconds = time.perf_counter() - t0
        self._counters = self._read_counters()
        status = self._counters["status"]
        if status != 0:
            raise AcceleratorStatusError(
                f"accelerator reported status 0x{status:08x}: "
                f"{decode_status(status, self.layer_names)}", status, dict(self._counters))
        self.buffer.sync_from_device()
        prog = self.program
        name = prog.output_spec.name
        reg, shape = prog.tensors[name], prog.shapes[name]
        data = memoryview(self.buffer.array)[reg.addr - self.base:reg.addr - self.base + reg.size]
        if prog.output_logits:
            return unpack_logits(data, shape)
        return unpack_activations(data, shape, self.config)

    def classify(self, codes: np.ndarray) -> int:
        """Index of the largest output value (the predicted class)."""
        return int(np.argmax(self.run(codes).reshape(-1)))

    def counters(self) -> dict[str, int]:
        """Counters of the last run: ``cycles``, ``stall_weight``, ``stall_input``,
        ``stall_output``, ``status``."""
        return dict(self._counters)

    def last_fps(self) -> float:
        """Frames per second of the last run at the config clock (``clock_mhz``), from the
        core's ``cycles`` counter (for a SimBackend: of the simulated config)."""
        cycles = self._counters.get("cycles", 0)
        if not cycles:
            raise DriverError("no completed run yet")
        return self.config.clock_mhz * 1e6 / cycles

    def close(self) -> None:
        self.buffer.free()
        self.backend.close()
