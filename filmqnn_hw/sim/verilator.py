"""Simulate a generated accelerator top as a whole system with Verilator.

The top is Verilog with Vivado port names (:func:`filmqnn_hw.flows.verilog.convert_vivado`):
``ap_clk``, ``ap_rst_n``, the AXI4-Lite slave ``s_axi_control_*`` (the
:func:`~filmqnn_hw.gateware.axi.lite_regs.accelerator_control_map` layout), AXI4 masters
``m_axi_gmem0_*``, ``m_axi_gmem1_*``, ... of 32..1024 data bits (ID signals optional) and
``interrupt``. Other input
ports are left at 0.

:func:`build_verilator` compiles it with the C++ testbench ``filmqnn_hw/sim/verilator_axi_tb.cpp``
(plus a generated ``tb_config.h``) into one executable. The testbench

* loads a DDR image file (raw bytes, base address 0) and serves every ``m_axi_gmem<N>`` from
  it as an independent AXI4 slave (one shared memory, no shared bandwidth limit): INCR bursts,
  full-width AxSIZE, per-byte WSTRB, in-order R/B responses, several bursts outstanding, a read
  latency (AR handshake to first R beat) and optional random READY/VALID stalls; bursts outside
  the image, across 4 KiB, narrow or with a bad WLAST are errors (non-zero exit), never
  wrapped;
* holds ``ap_rst_n`` low for a few cycles, writes the 64-bit ``layers`` address, sets ap_start,
  polls AP_CTRL every ``--poll`` cycles until ap_done, then reads the 64-bit counters;
* writes the final memory to an output file and prints
  ``cycles=.. stall_weight=.. stall_input=.. stall_output=.. sim_cycles=.. wall_s=..``.

:func:`run_verilator` runs it on a memory image and returns a :class:`VerilatorRun`.
:func:`verilator_lint` is the ``--lint-only`` check with the same warning set.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from filmqnn_hw.gateware.axi.lite_regs import ControlMap, accelerator_control_map
from filmqnn_hw.gateware.axi.signatures import AXI_DATA_WIDTHS
from filmqnn_hw.spec.files import atomic_write
from filmqnn_hw.spec.program import DESC_SIZE, HEADER_SIZE

__all__ = [
    "VerilatorError",
    "VerilatorNotFoundError",
    "VerilatorRun",
    "VERILATOR_WARNING_FLAGS",
    "TESTBENCH",
    "top_ports",
    "tb_config_header",
    "build_verilator",
    "run_verilator",
    "verilator_lint",
]

#: Warnings disabled for Amaranth output. WIDTH: Amaranth's arithmetic mixes widths on purpose;
#: SYMRSVDWORD: the HLS port name ``interrupt`` is a reserved word for Verilator's C++;
#: UNOPTFLAT: Amaranth packs unrelated bits into one vector (not a real loop, only slower);
#: CASEINCOMPLETE/CASEOVERLAP: ``casez`` from ``m.Switch``, resolved by priority as in Amaranth.
VERILATOR_WARNING_FLAGS: tuple[str, ...] = (
    "-Wno-WIDTH", "-Wno-SYMRSVDWORD", "-Wno-UNOPTFLAT", "-Wno-CASEINCOMPLETE",
    "-Wno-CASEOVERLAP",
)
#: Name of the C++ testbench template in ``filmqnn_hw/sim``.
TESTBENCH = "verilator_axi_tb.cpp"
#: Ports the testbench drives or reads (``m_axi_gmem<N>_{aw,ar}id``/``{b,r}id`` are optional).
_AXI_MEMBERS = (
    "awaddr awlen awsize awburst awvalid awready wdata wstrb wlast wvalid wready "
    "bresp bvalid bready araddr arlen arsize arburst arvalid arready "
    "rdata rresp rlast rvalid rready").split()
_REQUIRED_PORTS = ("ap_clk", "ap_rst_n") + tuple(
    f"s_axi_control_{s}" for s in (
        "awaddr awprot awvalid awready wdata wstrb wvalid wready bresp bvalid bready "
        "araddr arprot arvalid arready rdata rresp rvalid rready").split()
) + tuple(f"m_axi_gmem0_{s}" for s in _AXI_MEMBERS)
_ID_MEMBERS = ("awid", "bid", "arid", "rid")
_RESULT_RE = re.compile(r"^(?=.*\bsim_cycles=)(?:\w+=\S+[ \t]*)+$", re.M)


class VerilatorError(RuntimeError):
    """A Verilator build, lint or simulation failed; the message holds the tool's output."""


class VerilatorNotFoundError(VerilatorError):
    """The ``verilator`` binary is not on ``PATH``."""


@dataclass
class VerilatorRun:
    """Result of one :func:`run_verilator` call."""

    memory: bytearray  #: DDR image after the run
    counters: dict[str, int]  #: control-map counters (``cycles``, ``stall_weight``, ...)
    sim_cycles: int  #: simulated clock cycles including reset and register accesses
    wall_s: float  #: wall time of the simulation loop (without process start and file I/O)
    axi: dict[str, int] = field(default_factory=dict)  #: AR/R/AW/W/B handshake counts
    stdout: str = ""
    #: cycles of each layer (``n_layers`` given): from the fetch of its descriptor to the fetch
    #: of the next (the first also counts the header, the last ends at ``counters['cycles']``);
    #: sums to ``counters['cycles']``. Empty if not every descriptor was fetched.
    layer_cycles: list[int] = field(default_factory=list)

    @property
    def cycles_per_s(self) -> float:
        """Simulation speed."""
        return self.sim_cycles / self.wall_s if self.wall_s > 0 else float("inf")


def _verilator() -> str:
    exe = shutil.which("verilator")
    if exe is None:
        raise VerilatorNotFoundError(
            "verilator not found on PATH: install Verilator 5 (Debian/Ubuntu: "
            "apt-get install verilator) to build the system simulation")
    return exe


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def top_ports(verilog: str, top_name: str) -> dict[str, tuple[str, int]]:
    """``{port: (direction, width)}`` of module ``top_name`` in Amaranth-style Verilog text."""
    m = re.search(rf"^\s*module\s+{re.escape(top_name)}\s*\((.*?)^\s*endmodule", verilog,
                  re.M | re.S)
    if m is None:
        raise VerilatorError(f"module {top_name!r} not found in the Verilog")
    ports = {}
    for d, msb, lsb, name in re.findall(
            r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s*)?(\w+)\s*;",
            m.group(1), re.M):
        ports[name] = (d, int(msb) - int(lsb) + 1 if msb else 1)
    return ports


def tb_config_header(verilog: str, top_name: str, data_width: int,
                     cmap: ControlMap | None = None) -> str:
    """Text of the ``tb_config.h`` for ``top_name``; checks the ports the testbench needs."""
    if data_width not in AXI_DATA_WIDTHS:
        raise ValueError(f"data_width must be one of {AXI_DATA_WIDTHS}, not {data_width}")
    if not top_name.isidentifier():
        raise ValueError(f"top_name must be a Verilog identifier, not {top_name!r}")
    cmap = accelerator_control_map() if cmap is None else cmap
    ports = top_ports(verilog, top_name)
    missing = [p for p in _REQUIRED_PORTS if p not in ports]
    if missing:
        raise VerilatorError(f"module {top_name!r} lacks the port(s) the testbench drives: "
                             f"{', '.join(missing)} (emit it with filmqnn_hw.flows.verilog."
                             "convert_vivado and members s_axi_control/m_axi_gmem0)")
    # AXI4 master ports m_axi_gmem0, m_axi_gmem1, ... (numbered without gaps)
    n_ports = 0
    while f"m_axi_gmem{n_ports}_rdata" in ports:
        n_ports += 1
    has_id = None
    for k in range(n_ports):
        name = f"m_axi_gmem{k}"
        missing = [f"{name}_{s}" for s in _AXI_MEMBERS if f"{name}_{s}" not in ports]
        if missing:
            raise VerilatorError(f"module {top_name!r} lacks the port(s) the testbench drives: "
                                 f"{', '.join(missing)}")
        width = ports[f"{name}_rdata"][1]
        if width != data_width or ports[f"{name}_wdata"][1] != data_width:
            raise VerilatorError(f"{name} of {top_name!r} is {width} bits wide, not "
                                 f"data_width={data_width}")
        if ports[f"{name}_wstrb"][1] != data_width // 8:
            raise VerilatorError(f"{name}_wstrb of {top_name!r} is not {data_width // 8} bits")
        ids = [f"{name}_{s}" in ports for s in _ID_MEMBERS]
        if any(ids) and not all(ids):
            raise VerilatorError(f"{name} of {top_name!r} has only some of the ID ports "
                                 f"{', '.join(f'{name}_{s}' for s in _ID_MEMBERS)}")
        if has_id is not None and has_id != all(ids):
            raise VerilatorError(f"the AXI ports of {top_name!r} differ in their ID ports")
        has_id = all(ids)
    entry = cmap.entry("layers")
    if entry.bits != 64:
        raise VerilatorError("the control map's 'layers' argument must be 64 bits")
    counters = " ".join(f"X({e.name}, 0x{cmap.offset_of(e.name):02X}, {e.bits})"
                        for e in cmap.counters)
    return "\n".join([
        "// Generated by filmqnn_hw.sim.verilator; do not edit.",
        "#ifndef TB_CONFIG_H",
        "#define TB_CONFIG_H",
        f'#include "V{top_name}.h"',
        f"#define TB_TOP_CLASS V{top_name}",
        f"#define TB_PORTS(X) {' '.join(f'X({k})' for k in range(n_ports))}",
        f"#define TB_HAS_ID {int(bool(has_id))}",
        f"#define TB_BEAT_BYTES {data_width // 8}",
        f"#define TB_LAYERS_OFFSET 0x{cmap.offset_of('layers'):02X}",
        f"#define TB_COUNTERS(X) {counters}",
        "#endif",
        "",
    ])


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    atomic_write(path, text)


def _verilator_version(exe: str) -> str:
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return r.stdout.strip()


def build_verilator(verilog_path: str | os.PathLike, top_name: str, data_width: int,
                    out_dir: str | os.PathLike, *, jobs: int = 2,
                    cmap: ControlMap | None = None, extra_flags: tuple[str, ...] = (),
                    timeout: float = 1800.0) -> Path:
    """Compile ``top_name`` from ``verilog_path`` with the system testbench; return the executable.

    ``out_dir`` receives ``verilator_axi_tb.cpp``, ``tb_config.h``, ``obj_dir/`` and the
    build stamp ``build.sha256``. If the stamp matches the hash of the Verilog, the testbench,
    the config header, the flags and the Verilator version, and the executable exists, the
    build is skipped. ``cmap`` is the control map the top implements (default
    :func:`~filmqnn_hw.gateware.axi.lite_regs.accelerator_control_map`). Raises
    :class:`VerilatorNotFoundError` without ``verilator`` and :class:`VerilatorError` (with
    the tail of the build log) when the build fails.
    """
    verilator = _verilator()
    src = Path(verilog_path).resolve()
    if not src.is_file():
        raise VerilatorError(f"Verilog file not found: {src}")
    verilog = src.read_text()
    config_h = tb_config_header(verilog, top_name, data_width, cmap)
    tb = resources.files("filmqnn_hw.sim").joinpath(TESTBENCH).read_text()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    obj = out / "obj_dir"
    exe_name = f"{top_name}_sim"
    exe = obj / exe_name
    flags = ["--cc", "--exe", "--build", "-O3", *VERILATOR_WARNING_FLAGS, *extra_flags,
             "--top-module", top_name, "-CFLAGS", "-std=c++17"]
    h = hashlib.sha256()
    for part in (verilog, tb, config_h, "\0".join(flags), _verilator_version(verilator)):
        h.update(part.encode())
        h.update(b"\0\1")
    digest = h.hexdigest()
    stamp = out / "build.sha256"
    if exe.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return exe
    if stamp.exists():
        stamp.unlink()
    tb_path = out / TESTBENCH
    _write_if_changed(tb_path, tb)
    _write_if_changed(out / "tb_config.h", config_h)
    cmd = [verilator, *flags, "-j", str(jobs), "--Mdir", str(obj), "-o", exe_name,
           str(src), str(tb_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise VerilatorError(f"Verilator build timed out after {timeout:.0f} s: "
                             f"{' '.join(cmd)}") from e
    log = proc.stdout + proc.stderr
    (out / "build.log").write_text(" ".join(cmd) + "\n" + log)
    if proc.returncode != 0 or not exe.is_file():
        raise VerilatorError(f"Verilator build failed (exit {proc.returncode}): {' '.join(cmd)}"
                             f"\n{_tail(log)}")
    stamp.write_text(digest + "\n")
    return exe


def run_verilator(exe: str | os.PathLike, memory: bytes | bytearray, layers_addr: int,
                  work_dir: str | os.PathLike, *, read_latency: int = 40,
                  write_latency: int = 10, stall_seed: int | None = None,
                  stall_prob: float = 0.25, max_cycles: int = 200_000_000, poll: int = 64,
                  max_outstanding: int = 16, timeout: float = 3600.0,
                  n_layers: int | None = None,
                  ddr_beats_per_cycle: float | None = None) -> VerilatorRun:
    """Run one accelerator invocation on the DDR image ``memory`` (base address 0).

    ``layers_addr`` is written to the ``layers`` argument before ap_start. ``stall_seed``
    enables random READY/VALID stalls on the memory side (``stall_prob`` per signal and
    cycle). ``ddr_beats_per_cycle`` caps the beats (reads and writes) of all ports together
    per cycle on average, the board's shared DDR bandwidth (``None``: every port moves a beat
    per cycle). With ``n_layers`` (the program's layer count) the testbench logs when each
    descriptor is fetched and the result has :attr:`VerilatorRun.layer_cycles`. Raises
    :class:`VerilatorError` with the simulator's output if it exits non-zero
    (timeout after ``max_cycles``, an AXI error such as an out-of-range burst) or dies.
    """
    if not 0 <= layers_addr < 1 << 64:
        raise ValueError(f"layers_addr must be a 64-bit address, not {layers_addr}")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="vsim_", dir=work)
    os.close(fd)
    src, dst = Path(tmp + ".in"), Path(tmp + ".out")
    cmd = [str(exe), str(src), str(dst), hex(layers_addr),
           "--read-latency", str(read_latency), "--write-latency", str(write_latency),
           "--max-cycles", str(max_cycles), "--poll", str(poll),
           "--max-outstanding", str(max_outstanding)]
    if stall_seed is not None:
        cmd += ["--stall-seed", str(stall_seed), "--stall-prob", repr(float(stall_prob))]
    if ddr_beats_per_cycle is not None:
        if not ddr_beats_per_cycle > 0:
            raise ValueError(f"ddr_beats_per_cycle must be > 0, not {ddr_beats_per_cycle}")
        cmd += ["--ddr-beats-per-cycle", repr(float(ddr_beats_per_cycle))]
    if n_layers is not None:
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, not {n_layers}")
        cmd += ["--desc-base", hex(layers_addr + HEADER_SIZE), "--desc-size", str(DESC_SIZE),
                "--desc-count", str(n_layers)]
    try:
        src.write_bytes(bytes(memory))
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise VerilatorError(f"simulation did not finish within {timeout:.0f} s wall: "
                                 f"{' '.join(cmd)}") from e
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            what = {2: "timed out", 3: "AXI error", 4: "writes outstanding at ap_done"}.get(
                proc.returncode, "failed")
            if proc.returncode < 0:
                what = f"died with signal {-proc.returncode}"
            raise VerilatorError(f"simulation {what} (exit {proc.returncode}, "
                                 f"{time.perf_counter() - t0:.1f} s): {_tail(output)}")
        m = _RESULT_RE.search(proc.stdout)
        if m is None:
            raise VerilatorError(f"simulation printed no result line: {_tail(output)}")
        values = dict(re.findall(r"(\w+)=(\S+)", m.group(0)))
        sim_cycles = int(values.pop("sim_cycles"))
        wall_s = float(values.pop("wall_s"))
        axi_line = re.search(r"^axi (.*)$", proc.stdout, re.M)
        axi = ({k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", axi_line.group(1))}
               if axi_line else {})
        counters = {k: int(v) for k, v in values.items()}
        per_layer: list[int] = []
        lay = re.search(r"^layers start=(\d+) desc=([\d,]*)$", proc.stdout, re.M)
        if lay and n_layers is not None and "cycles" in counters:
            start = int(lay.group(1))
            at = [int(x) for x in lay.group(2).split(",") if x]
            if len(at) == n_layers:
                ends = at[1:] + [start + counters["cycles"]]
                per_layer = [e - b for b, e in zip(at, ends, strict=True)]
                per_layer[0] += at[0] - start
        return VerilatorRun(memory=bytearray(dst.read_bytes()), counters=counters,
                            sim_cycles=sim_cycles, wall_s=wall_s, axi=axi, stdout=proc.stdout,
                            layer_cycles=per_layer)
    finally:
        for p in (Path(tmp), src, dst):
            if p.exists():
                p.unlink()


def verilator_lint(verilog_path: str | os.PathLike, top_name: str, *,
                   extra_flags: tuple[str, ...] = ()) -> str:
    """``verilator --lint-only`` with :data:`VERILATOR_WARNING_FLAGS`; return its messages.

    Raises :class:`VerilatorError` with the messages when Verilator reports an error or a
    warning that is not disabled, and :class:`VerilatorNotFoundError` without ``verilator``.
    """
    verilator = _verilator()
    cmd = [verilator, "--lint-only", *VERILATOR_WARNING_FLAGS, *extra_flags,
           "--top-module", top_name, str(verilog_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    messages = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise VerilatorError(f"Verilator lint of {top_name!r} failed: {' '.join(cmd)}\n"
                             f"{_tail(messages, 100)}")
    return messages
