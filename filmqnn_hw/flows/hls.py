"""Vivado/Vitis HLS path: generate the C++ kernel, its testbench and the synthesis script.

The kernel (``hls_templates/filmqnn_top.cpp``) is a layer-program interpreter: one call of
``filmqnn_top(gmem, layers, &cycles, &status)`` runs every descriptor of the program
(:mod:`filmqnn_hw.spec.program`) at byte address ``layers``. Its source is static; everything
that depends on the accelerator comes from the generated ``filmqnn_config.h`` (tiling
``tm/tn/tr/tc``, 8-bit slots, ``G``, AXI width, accumulator width, the config hash the kernel
checks against the program header, descriptor word indices). ``#pragma HLS`` lines get their
``FQ_*`` constants substituted with literals, because not every HLS version expands macros in
pragmas.

Control interface (``s_axilite`` bundle ``control``), matched to
:func:`filmqnn_hw.gateware.axi.lite_regs.accelerator_control_map` where HLS allows it
(``docs/hls.md`` lists the differences): ``0x00..0x0C`` the ``ap_ctrl_hs`` block, ``layers``
at ``0x10``; the outputs and the ``gmem`` base pointer sit after the RTL map's last word,
so no RTL register offset holds something else on the HLS core.

:func:`build_csim` compiles the kernel with g++ and :mod:`hls_compat`; :func:`run_csim` runs
one frame from a :class:`~filmqnn_hw.spec.program.LayerProgram`. Neither needs Vivado.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from filmqnn_hw.spec import program as prog
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.files import atomic_write
from filmqnn_hw.spec.geometry import record_rows, words_per_beat
from filmqnn_hw.spec.program import LayerProgram

__all__ = [
    "HlsError",
    "KERNEL_FILES",
    "register_map",
    "config_header",
    "generate_hls",
    "write_hls",
    "build_csim",
    "run_csim",
]

#: Files :func:`generate_hls` writes.
KERNEL_FILES = ("filmqnn_config.h", "filmqnn_top.h", "filmqnn_top.cpp", "tb_filmqnn.cpp",
                "run_hls.tcl", "hls_manifest.json")
#: ``status`` codes of the kernel (low byte; bits 31..8 hold the layer index).
STATUS = {code: text for code, text in prog.STATUS.items() if code <= prog.ST_DESC}


class HlsError(RuntimeError):
    """Generation or C-simulation failed; the message says what and what to do."""


def register_map() -> dict[str, int]:
    """Byte offsets of the HLS core's ``s_axilite`` registers (see ``docs/hls.md``).

    ``layers`` takes the RTL map's offset; ``cycles``/``status``/``gmem`` follow the RTL
    map's end, each HLS output occupying data word(s) plus one ``ap_vld`` control word.
    """
    from filmqnn_hw.gateware.axi.lite_regs import accelerator_control_map

    cmap = accelerator_control_map()
    end = cmap.size  # first byte after the RTL map
    return {
        "layers": cmap.offset_of("layers"),  # 64-bit: data 0x10, 0x14 (+ reserved word)
        "cycles": end,  # 64-bit output: data end, end+4, ap_vld at end+8
        "status": end + 12,  # 32-bit output: data, ap_vld at +4
        "gmem": end + 24,  # m_axi base pointer, 64-bit (write 0: program addresses are absolute)
    }


def _hash_words(config: AcceleratorConfig) -> tuple[int, int]:
    h = bytes.fromhex(config.config_hash())[:16]
    return int.from_bytes(h[:8], "little"), int.from_bytes(h[8:], "little")


def config_header(config: AcceleratorConfig) -> str:
    """The generated ``filmqnn_config.h``: every accelerator constant the kernel uses."""
    h0, h1 = _hash_words(config)
    regs = register_map()
    defs: list[tuple[str, str, str]] = [
        ("FQ_AXI_BITS", str(config.axi_data_bits), "AXI4 data width (gmem)"),
        ("FQ_BEAT_BYTES", str(config.axi_data_bits // 8), "bytes per beat"),
        ("FQ_TM", str(config.tm), "output lanes per tile"),
        ("FQ_TN", str(config.tn), "input lanes per chunk"),
        ("FQ_TR", str(config.tr), "output rows per spatial tile"),
        ("FQ_TC", str(config.tc), "output columns per spatial tile"),
        ("FQ_N8", str(config.n8_slots), "8-bit lanes at the start of every tile"),
        ("FQ_WROWS", str(record_rows(config)),
         "weight-word rows: n8 + ceil(n4/2)"),
        ("FQ_G", str(config.act_pack), "activations per packed word"),
        ("FQ_WORD_BITS", str(config.act_word_bits), "packed word width (5 G)"),
        ("FQ_WPB", str(words_per_beat(config)), "packed words per beat"),
        ("FQ_ACC_BITS", str(config.acc_bits), "signed accumulator width"),
        ("FQ_Y_BITS", "48", "requantization register width (numerics.Y_BITS)"),
        ("FQ_PROG_MAGIC", f"0x{int.from_bytes(prog.MAGIC, 'little'):016X}ULL",
         "b'FQNNPROG' as a little-endian u64"),
        ("FQ_PROG_VERSION", str(prog.VERSION), "layer-program version"),
        ("FQ_HEADER_SIZE", str(prog.HEADER_SIZE), "program header bytes"),
        ("FQ_DESC_WORDS", str(prog.DESC_WORDS), "u64 words per descriptor"),
        ("FQ_PARAM_SIZE", str(prog.PARAM_SIZE), "parameter bytes per output channel"),
        ("FQ_CONFIG_HASH0", f"0x{h0:016X}ULL", "config hash bytes 0..7 (LE)"),
        ("FQ_CONFIG_HASH1", f"0x{h1:016X}ULL", "config hash bytes 8..15 (LE)"),
        ("FQ_GMEM_DEPTH", str(1 << 20), "co-simulation depth of gmem (beats)"),
    ]
    for name, off in regs.items():
        defs.append((f"FQ_REG_{name.upper()}", f"0x{off:02X}", f"s_axilite offset of {name}"))
    for op, code in prog.OP_CODES.items():
        defs.append((f"FQ_OP_{op.upper()}", str(code), "descriptor op code"))
    for name in ("RELU", "LAST", "LOGITS", "RESIDUAL"):
        defs.append((f"FQ_FLAG_{name}", str(getattr(prog, f"FLAG_{name}")), "descriptor flag"))
    for i, f in enumerate(prog.FIELDS):
        defs.append((f"FQ_D_{f.upper()}", str(i), "descriptor word index"))
    lines = [
        "// Generated by filmqnn_hw.flows.hls.generate_hls; do not edit.",
        f"// board {config.board}, part {config.part}, config {config.config_hash()[:16]}",
        "#ifndef FILMQNN_CONFIG_H",
        "#define FILMQNN_CONFIG_H",
    ]
    lines += [f"#define {n} {v} /* {c} */" for n, v, c in defs]
    lines += ["#endif", ""]
    return "\n".join(lines)


def _template(name: str) -> str:
    return resources.files("filmqnn_hw.flows").joinpath("hls_templates", name).read_text()


def _substitute_pragmas(src: str, header: str) -> str:
    """Replace ``FQ_*`` names in ``#pragma HLS`` lines by their literal values."""
    values = dict(re.findall(r"#define (FQ_\w+) (\S+)", header))
    values = {k: v.removesuffix("ULL") for k, v in values.items()}

    def fix(line: str) -> str:
        if not line.lstrip().startswith("#pragma HLS"):
            return line
        return re.sub(r"\bFQ_\w+\b", lambda m: values.get(m.group(0), m.group(0)), line)

    return "\n".join(fix(ln) for ln in src.split("\n"))


def _tcl(config: AcceleratorConfig) -> str:
    period = 1000.0 / config.clock_mhz
    part = config.part
    lines = [
        "# Generated by filmqnn_hw.flows.hls: C synthesis and IP export of the FILM-QNN HLS "
        "kernel.",
        "# Run in this directory:  vitis_hls -f run_hls.tcl   (or vivado_hls -f run_hls.tcl)",
        "# Optional C-simulation: set ::env(FQ_CSIM_ARGS) to 'IN.bin OUT.bin LAYERS_ADDR'.",
    ]
    if part in ("", "none"):
        lines.append(f'error "config {config.config_hash()[:12]} (board {config.board}) has no '
                     'FPGA part: generate the HLS sources from a board config '
                     '(filmqnn_hw.search.dse)"')
    lines += [
        "open_project -reset filmqnn_hls",
        "set_top filmqnn_top",
        'add_files filmqnn_top.cpp -cflags "-std=c++14"',
        'add_files -tb tb_filmqnn.cpp -cflags "-std=c++14"',
        "open_solution -reset solution1 -flow_target vivado",
        f"set_part {{{part}}}",
        f"create_clock -period {period:.3f} -name default",
        "if {[info exists ::env(FQ_CSIM_ARGS)]} { csim_design -argv $::env(FQ_CSIM_ARGS) }",
        "csynth_design",
        "export_design -format ip_catalog -rtl verilog -vendor filmqnn -library hls "
        "-version 1.0",
        "exit",
        "",
    ]
    return "\n".join(lines)



def generate_hls(config: AcceleratorConfig, out_dir: str | os.PathLike) -> list[Path]:
    """Write the HLS kernel, testbench and ``run_hls.tcl`` for ``config`` into ``out_dir``.

    Returns the written paths (:data:`KERNEL_FILES`). Each file is written to a temporary
    name and renamed, so a file is never half-written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = config_header(config)
    texts = {
        "filmqnn_config.h": header,
        "filmqnn_top.h": _template("filmqnn_top.h"),
        "filmqnn_top.cpp": _substitute_pragmas(_template("filmqnn_top.cpp"), header),
        "tb_filmqnn.cpp": _template("tb_filmqnn.cpp"),
        "run_hls.tcl": _tcl(config),
        "hls_manifest.json": json.dumps({
            "format": "filmqnn-hls-v1", "config_hash": config.config_hash(),
            "board": config.board, "part": config.part, "clock_mhz": config.clock_mhz,
            "layer_program_version": prog.VERSION, "registers": register_map(),
            "top": "filmqnn_top", "files": list(KERNEL_FILES),
        }, indent=2) + "\n",
    }
    paths = []
    for name in KERNEL_FILES:
        atomic_write(out / name, texts[name])
        paths.append(out / name)
    return paths


def write_hls(config: AcceleratorConfig, out_dir: str | os.PathLike) -> Path:
    """For the build CLI (``--hls``): write the HLS sources into ``out_dir/hls``; return it."""
    d = Path(out_dir) / "hls"
    generate_hls(config, d)
    return d


def build_csim(config: AcceleratorConfig, build_dir: str | os.PathLike,
               extra_flags: tuple[str, ...] = ("-Werror", "-Wno-unused-label")) -> Path:
    """Generate the sources into ``build_dir`` and compile the C-simulation executable."""
    from hls_compat.csim import CsimError, compile_csim

    d = Path(build_dir)
    generate_hls(config, d)
    try:
        return compile_csim([d / "filmqnn_top.cpp", d / "tb_filmqnn.cpp"], d / "tb_filmqnn",
                            extra_flags=list(extra_flags), include_dirs=[d])
    except CsimError as e:
        raise HlsError(f"C-simulation build failed: {e}") from None


def run_csim(exe: str | os.PathLike, program: LayerProgram, codes: np.ndarray,
             work_dir: str | os.PathLike, timeout: float = 600.0,
             layers: int | None = None) -> tuple[bytearray, int]:
    """Run one frame through the C-simulated kernel; return (DDR image after the run, cycles).

    ``cycles`` is the kernel's counter (pipelined inner-loop iterations, see docs/hls.md).
    ``layers`` overrides the address given to the kernel (default ``program.base``).
    Raises :class:`HlsError` with the kernel's status if it refused the program.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="csim_", dir=work)
    os.close(fd)
    src, dst = Path(tmp + ".in"), Path(tmp + ".out")
    try:
        src.write_bytes(program.memory_image(codes))
        proc = subprocess.run([str(exe), str(src), str(dst),
                               str(program.base if layers is None else layers)],
                              capture_output=True, text=True, timeout=timeout)
        m = re.search(r"cycles=(\d+) status=(\d+)", proc.stdout)
        if m is None:
            raise HlsError(f"C-simulation crashed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        status = int(m.group(2))
        if status:
            raise HlsError(f"kernel refused the program: status {status & 0xFF} "
                           f"({STATUS.get(status & 0xFF, '?')}) at layer {status >> 8}")
        return bytearray(dst.read_bytes()), int(m.group(1))
    finally:
        for p in (Path(tmp), src, dst):
            if p.exists():
                p.unlink()
        if not any(work.iterdir()):
            shutil.rmtree(work, ignore_errors=True)
