"""HLS path: generated sources, and the C-simulated kernel equals the golden model (==).

The kernel is compiled once per configuration per test session (module fixture, two configs
in parallel) and then runs every case from a DDR image file.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import conv_graph, converted_network, graph_of, layer_cases, rand_conv, rand_input

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.flows.hls import (
    KERNEL_FILES,
    HlsError,
    build_csim,
    config_header,
    generate_hls,
    register_map,
    run_csim,
    write_hls,
)
from filmqnn_hw.gateware.axi.lite_regs import accelerator_control_map
from filmqnn_hw.spec.config import AcceleratorConfig

# A: G=4 (20-bit words, 3 per 64-bit beat), one 8-bit lane in 8.
# B: odd: tm=6 with 2 8-bit lanes (n4 even), tn=4, G=3 on 32-bit beats (descriptor words span
#    two beats), 3x2 tiles; C: n4 odd (spare nibble), G=8 on 128-bit beats (3 words per beat).
CFG_A = AcceleratorConfig.small()
CFG_B = AcceleratorConfig.small(tm=6, tn=4, n8_slots=2, act_pack=3, axi_data_bits=32, tr=3, tc=2)
CFG_C = AcceleratorConfig.small(tm=5, tn=3, n8_slots=2, act_pack=8, axi_data_bits=128, tr=2,
                                tc=5)
CFGS = {"A": CFG_A, "B": CFG_B, "C": CFG_C}


@pytest.fixture(scope="module")
def exes(tmp_path_factory):
    root = tmp_path_factory.mktemp("hls")
    with ThreadPoolExecutor(2) as ex:
        futs = {k: ex.submit(build_csim, c, root / k) for k, c in CFGS.items()}
        return {k: f.result() for k, f in futs.items()}, root


def _check(exes, key, graph, seed=0, every_tensor=False):
    exe, root = exes[0][key], exes[1]
    cfg = CFGS[key]
    rng = np.random.default_rng(seed)
    prog = build_program(graph, cfg, reuse=not every_tensor)
    x = rand_input(rng, graph)
    mem, iters = run_csim(exe, prog, x, root / "work")
    ref = graph.run(x, keep=True)
    out = prog.read_output(mem)
    assert out.shape == ref[graph.output].shape
    assert np.array_equal(out, ref[graph.output])
    if every_tensor:
        for name in ref:
            got = prog.read_tensor(mem, name)
            assert np.array_equal(got, ref[name][0]), name
    assert iters > 0
    return out, ref


_cases = layer_cases


CASE_NAMES = list(_cases(CFG_A))


@pytest.mark.parametrize("key", list(CFGS))
@pytest.mark.parametrize("case", CASE_NAMES)
def test_single_layers(exes, key, case):
    graph = _cases(CFGS[key])[case]
    _check(exes, key, graph, every_tensor=case in ("residual", "add"))


def test_outputs_are_not_trivial(exes):
    """Guard: the random layers exercise the clamp and many codes (the tests can fail)."""
    out, _ = _check(exes, "A", _cases(CFG_A)["conv3x3_pad"])
    assert out.min() <= 1 and out.max() == 31 and len(np.unique(out)) > 15


def test_extreme_weights_and_codes(exes):
    """All-max codes with +127/-127 and +7/-7 weights at fan-in 3x3x40: accumulator extremes."""
    cfg = CFG_A
    for sign in (1, -1):
        op = rand_conv(np.random.default_rng(3), cfg, "c0", "x", "y", 40, 8, 3, 1, 1)
        op.weight = np.where(op.bits.reshape(-1, 1, 1, 1) == 8, 127, 7) * sign * np.ones_like(
            op.weight)
        g = graph_of([op], {"x": (40, 4, 4), "y": (8, 4, 4)}, "x", "y")
        prog = build_program(g, cfg)
        x = np.full((1, 40, 4, 4), 31)
        mem, _ = run_csim(exes[0]["A"], prog, x, exes[1] / "work")
        assert np.array_equal(prog.read_output(mem), g.run(x))


NETS = {
    "resnet18": (dict(width_mult=0.125, small_input=True, num_classes=10), (3, 16, 16)),
    "small_cnn": (dict(width_mult=0.375, num_classes=10, input_size=16), (1, 16, 16)),
    "mobilenet_v2": (dict(width_mult=0.25, num_classes=10, last_channel=32), (3, 32, 32)),
}


@pytest.mark.parametrize("name", list(NETS))
def test_whole_network(exes, name):
    """A converted network (fused residuals / depthwise / GAP / FC logits) after one start."""
    g, codes = converted_network(name, CFG_A, *NETS[name], batch=8, frames=2)
    prog = build_program(g, CFG_A)
    for i in range(codes.shape[0]):
        mem, _ = run_csim(exes[0]["A"], prog, codes[i : i + 1], exes[1] / "work")
        ref = g.run(codes[i : i + 1])
        assert np.array_equal(prog.read_output(mem), ref)
        assert len(np.unique(ref)) > 3


def test_kernel_refuses_foreign_or_corrupt_programs(exes):
    g = conv_graph(np.random.default_rng(1), CFG_B, 3, 4, 4, 4, 3, 1, 1)
    prog = build_program(g, CFG_B)  # built for B, run on A
    with pytest.raises(HlsError, match="config mismatch"):
        run_csim(exes[0]["A"], prog, rand_input(np.random.default_rng(0), g), exes[1] / "w")
    prog = build_program(g, CFG_A)
    x = rand_input(np.random.default_rng(0), g)
    with pytest.raises(HlsError, match="bad magic"):  # 64 holds a descriptor, not a header
        run_csim(exes[0]["A"], prog, x, exes[1] / "w", layers=prog.base + 64)
    mem, _ = run_csim(exes[0]["A"], prog, x, exes[1] / "w")  # the same program is fine
    assert np.array_equal(prog.read_output(mem), g.run(x))


# ---------------------------------------------------------------------------------------------
ZCU = AcceleratorConfig.small(tm=32, tn=16, n8_slots=2, family="xcup", act_pack=8,
                              axi_data_bits=128).replace(board="zcu102",
                                                         part="xczu9eg-ffvb1156-2-e")


def test_generated_sources(tmp_path):
    paths = generate_hls(ZCU, tmp_path)
    assert [p.name for p in paths] == list(KERNEL_FILES)
    src = (tmp_path / "filmqnn_top.cpp").read_text()
    pragmas = [ln.strip() for ln in src.splitlines() if ln.strip().startswith("#pragma HLS")]
    assert not [p for p in pragmas if "FQ_" in p], "pragma constants must be literals"
    assert any(re.search(r"INTERFACE m_axi port=gmem offset=slave bundle=gmem0", p)
               for p in pragmas)
    regs = register_map()
    assert regs["layers"] == accelerator_control_map().offset_of("layers") == 0x10
    assert "INTERFACE s_axilite port=layers bundle=control offset=0x10" in " ".join(pragmas)
    assert "INTERFACE s_axilite port=return bundle=control" in " ".join(pragmas)
    assert any("BIND_OP" in p and "impl=dsp" in p for p in pragmas)
    assert any("ARRAY_PARTITION" in p for p in pragmas)
    # HLS-only registers never sit on an RTL register's offset
    rtl = {w.offset for w in accelerator_control_map().words}
    for name in ("cycles", "status", "gmem"):
        assert not rtl & set(range(regs[name], regs[name] + 12))
    hdr = (tmp_path / "filmqnn_config.h").read_text()
    for k, v in (("FQ_TM", 32), ("FQ_TN", 16), ("FQ_N8", 2), ("FQ_G", 8), ("FQ_WPB", 3),
                 ("FQ_AXI_BITS", 128), ("FQ_ACC_BITS", ZCU.acc_bits)):
        assert re.search(rf"#define {k} {v} ", hdr)
    assert hdr == config_header(ZCU)
    tcl = (tmp_path / "run_hls.tcl").read_text()
    assert "set_part {xczu9eg-ffvb1156-2-e}" in tcl and "csynth_design" in tcl
    assert "export_design" in tcl and "create_clock -period 10.000" in tcl and "error" not in tcl
    man = json.loads((tmp_path / "hls_manifest.json").read_text())
    assert man["config_hash"] == ZCU.config_hash() and man["registers"] == regs



def test_docs_register_table_gives_the_generated_offsets():
    """docs/hls.md's HLS column states the offsets the generated header defines."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs/hls.md").read_text()
    regs = register_map()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)`[^|]*\|[^|]*\| ([^|]+)\|",
                                                        doc, re.M)}
    assert rows["cycles"].startswith(f"0x{regs['cycles']:02X}/0x{regs['cycles'] + 4:02X} ")
    assert f"`ap_vld` at 0x{regs['cycles'] + 8:02X}" in rows["cycles"]
    assert rows["status"].startswith(f"0x{regs['status']:02X} ")
    assert f"`ap_vld` at 0x{regs['status'] + 4:02X}" in rows["status"]
    assert rows["gmem"].strip() == f"0x{regs['gmem']:02X}/0x{regs['gmem'] + 4:02X}"

def test_sim_config_tcl_refuses_to_synthesise(tmp_path):
    generate_hls(CFG_A, tmp_path)
    assert 'error "config' in (tmp_path / "run_hls.tcl").read_text()


def test_write_hls(tmp_path):
    d = write_hls(ZCU, tmp_path)
    assert d == tmp_path / "hls" and sorted(p.name for p in d.iterdir()) == sorted(KERNEL_FILES)
