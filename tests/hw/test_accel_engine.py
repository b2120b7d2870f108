"""The accelerator runs layer programs bit-exact: pysim of the whole top against the golden model.

Every case builds a layer program with :func:`filmqnn_hw.program.build_program`, runs the
generated top (AXI4-Lite control, AXI4 master on a memory model, engine) in Amaranth's
simulator, and compares the output tensor with ``IntGraph.run`` using ``==``.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import (
    CFG_A,
    CFG_B,
    CFG_B2,
    CFG_B4,
    CFG_C,
    CFG_D,
    CFG_E,
    CFG_E3,
    conv_graph,
    graph_of,
    layer_cases,
    rand_conv,
    small_network,
)

from filmqnn_hw.accel.limits import RtlUnsupported, check_program, geometry
from filmqnn_hw.accel.pysim import AcceleratorError, run_pysim
from filmqnn_hw.config import AcceleratorConfig
from filmqnn_hw.program import build_program

sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))  # pysim of the 28x32 array

CFGS = {"A": CFG_A, "B": CFG_B, "C": CFG_C, "B2": CFG_B2, "B4": CFG_B4, "E": CFG_E,
        "E3": CFG_E3}


def depthwise_cases(cfg) -> dict:
    """Depthwise layers whose kernel rows split into groups of every width (seeded)."""
    r = np.random.default_rng(23)

    def dw(c, h, w, k, stride, pad, **kw):
        return conv_graph(r, cfg, c, c, h, w, k, stride, pad, depthwise=True, **kw)
    return {
        "dw3x3_s1": dw(7, 6, 9, 3, 1, 1),
        "dw3x3_s2_padcode": dw(8, 9, 7, 3, 2, 1, pad_code=3),
        "dw5x5_pad2": dw(7, 9, 8, 5, 1, 2),
        "dw5x5_s2": dw(6, 11, 9, 5, 2, 2),
        "dw7x7_pad3": dw(5, 8, 9, 7, 1, 3),
        "dw7x7_s2": dw(6, 13, 11, 7, 2, 3),
        "dw3x3_on_1x1": dw(6, 1, 1, 3, 1, 1),
        "dw_1x3": dw(9, 4, 7, (1, 3), 1, 0),
        "dw_3x2_nopad": dw(6, 5, 6, (3, 2), 1, 0),
    }


_cases = layer_cases


CASE_NAMES = list(_cases(CFG_A))
_CACHE: dict[str, dict] = {}


def _case(key, name):
    if key not in _CACHE:
        _CACHE[key] = _cases(CFGS[key])
    return _CACHE[key][name]


def _run(cfg, graph, seed=0, every_tensor=False, **kw):
    rng = np.random.default_rng(seed)
    prog = build_program(graph, cfg, reuse=not every_tensor)
    check_program(prog, cfg)
    x = rng.integers(0, 32, (1,) + graph.input.shape)
    run = run_pysim(cfg, prog.memory_image(x), prog.base, **kw)
    ref = graph.run(x, keep=True)
    out = prog.read_output(run.memory)
    assert out.shape == ref[graph.output].shape
    assert np.array_equal(out, ref[graph.output])
    if every_tensor:
        for name in ref:
            if name in prog.tensors:
                assert np.array_equal(prog.read_tensor(run.memory, name), ref[name][0]), name
    assert run.counters["status"] == 0 and run.counters["cycles"] > 0
    return out, run


@pytest.mark.parametrize("key", ["A", "B", "C"])
@pytest.mark.parametrize("case", CASE_NAMES)
def test_single_layers(key, case):
    _run(CFGS[key], _case(key, case), every_tensor=case in ("residual", "add"))


DW_CASES = list(depthwise_cases(CFG_E))


@pytest.mark.parametrize("key", ["A", "E", "E3", "C"])
@pytest.mark.parametrize("case", DW_CASES)
def test_depthwise_tap_groups(key, case):
    """Depthwise kernel rows in tap groups (A: 3 banks, groups of 3; E: 2 banks, groups of 3
    at stride 1 and 2 at stride 2; E3: with two weight memories; C: one tap per pair): every
    kernel size, stride, padding code and partial last group, bit-exact."""
    cfg = CFGS[key]
    assert geometry(cfg).dw_taps == (1 if key == "C" else 3)
    graph = depthwise_cases(cfg)[case]
    _run(cfg, graph)


@pytest.mark.parametrize(("key", "case"), [
    ("B2", "conv3x3_s2_odd"), ("B2", "conv7x7_s2_stem"), ("B2", "depthwise3x3_s2"),
    ("B2", "fc_logits"), ("B2", "residual"), ("B2", "maxpool3s2p1"), ("B2", "add"),
    # three weight memories: records of a resident group start in any memory (15 taps of a
    # 5x3 kernel, 9 of a 3x3, 1 of a 1x1 with several chunks, 49 of the 7x7 stem)
    ("B4", "conv3x3_pad"), ("B4", "conv_5x3_kernel"), ("B4", "depthwise3x3"),
    ("B4", "fc_flatten_3x3"), ("B4", "conv7x7_s2_stem"), ("B4", "residual")])
def test_weight_ports(key, case):
    """Weights on their own AXI port(s), calm and with random stalls on every port: same
    bits as the golden model."""
    g = _case(key, case)
    _, calm = _run(CFGS[key], g, every_tensor=case in ("residual", "add"))
    _, stalled = _run(CFGS[key], g, stall=0.35, read_latency=7, seed=3)
    assert stalled.counters["cycles"] > calm.counters["cycles"]


@pytest.mark.parametrize("key", ["E", "E3"])
@pytest.mark.parametrize("case", ["residual", "add"])
def test_residual_banks_two_words_per_beat(key, case):
    """The residual tile's column banks with two words per beat (tiles of 4 columns start
    on either bank): same bits as the golden model, calm and with random stalls."""
    g = _case(key, case)
    _run(CFGS[key], g, every_tensor=True)
    _run(CFGS[key], g, stall=0.35, read_latency=7, seed=5)


def test_weight_port_count():
    """Ports beyond the first read weights, as many as DDR can feed."""
    assert [geometry(c).weight_ports for c in (CFG_B, CFG_B2, CFG_B4)] == [0, 1, 3]
    assert geometry(CFG_B4).axi_ports == 4 and geometry(CFG_B4).wbuf_memories == 3
    # 64-bit beats = 8 bytes: 16 B/cycle of DDR feeds two weight ports, 8 B/cycle one
    assert geometry(CFG_B4.replace(ddr_bytes_per_cycle=16.0)).weight_ports == 2
    assert geometry(CFG_B4.replace(ddr_bytes_per_cycle=15.99)).weight_ports == 2
    assert geometry(CFG_B4.replace(ddr_bytes_per_cycle=8.0)).weight_ports == 1
    assert geometry(CFG_B4.replace(ddr_bytes_per_cycle=100.0)).weight_ports == 3
    g = geometry(CFG_B4)
    assert g.wbuf_port_records * g.wbuf_memories >= g.wbuf_records


@pytest.mark.parametrize("case", ["conv3x3_s2_odd", "residual", "fc_logits", "maxpool3s2p1",
                                  "depthwise3x3"])
def test_back_pressure_does_not_change_results(case):
    """Random AXI stalls on every channel and late read data: same bits, more cycles."""
    g = _case("A", case)
    _, calm = _run(CFG_A, g)
    _, stalled = _run(CFG_A, g, stall=0.35, read_latency=7, seed=5)
    assert stalled.counters["cycles"] > calm.counters["cycles"]


@pytest.mark.parametrize("shape", [(33, 30, 4, 4, 1, 1, 0), (20, 40, 5, 5, 3, 1, 1),
                                   (40, 29, 7, 7, 3, 2, 1)])
def test_board_sized_array_every_group_and_row(shape):
    """Two channel groups on the PYNQ-Z2 array: both accumulator banks, every row."""
    cin, cout, h, w, k, s, p = shape
    _run(CFG_D, conv_graph(np.random.default_rng(2), CFG_D, cin, cout, h, w, k, s, p))


def test_outputs_are_not_trivial():
    """Guard: the random layers exercise the clamp and many codes (the tests can fail)."""
    out, _ = _run(CFG_A, _case("A", "conv3x3_pad"))
    assert out.min() <= 1 and out.max() == 31 and len(np.unique(out)) > 15


@pytest.mark.parametrize("key", ["A", "C"])
def test_extreme_weights_and_codes(key):
    """All-31 codes with +max / min weights at fan-in 3x3x40: the accumulator extremes."""
    cfg = CFGS[key]
    r = np.random.default_rng(3)
    for sign in (1, -1):
        op = rand_conv(r, cfg, "c", "x", "y", 40, cfg.tm + 1, 3, 1, 1, logits=True)
        q = np.where(op.bits == 8, 127, 7).reshape(-1, 1, 1, 1)
        op.weight[...] = sign * q
        op.mult[...] = 1
        op.shift[...] = 0
        op.offset[...] = 0
        g = graph_of([op], {"x": (40, 3, 3), "y": (cfg.tm + 1, 3, 3)}, "x", "y", logits=True)
        prog = build_program(g, cfg)
        x = np.full((1, 40, 3, 3), 31)
        run = run_pysim(cfg, prog.memory_image(x), prog.base)
        ref = g.run(x)
        assert np.array_equal(prog.read_output(run.memory), ref)
        # the centre pixel sums 3*3*40 products of +-127*31 / +-7*31 (clipped to int16 after)
        assert abs(int(ref[0, 0, 1, 1])) == 32768 - (sign > 0)


def test_small_network():
    """stem conv -> maxpool -> residual block -> gap -> fc logits, one start."""
    _run(CFG_A, small_network(CFG_A), every_tensor=True)


# ---------------------------------------------------------------------------------------------
# refusals: the engine's status register names the problem
# ---------------------------------------------------------------------------------------------
def _prog_mem(cfg):
    g = _case("A", "conv1x1")
    prog = build_program(g, cfg)
    return prog, prog.memory_image(np.zeros((1,) + g.input.shape, dtype=np.int64))


def test_program_for_another_config_is_refused():
    prog, mem = _prog_mem(CFG_A.replace(tr=2))
    with pytest.raises(AcceleratorError, match="config mismatch at layer 0"):
        run_pysim(CFG_A, mem, prog.base)


def test_bad_magic_and_version_are_refused():
    prog, mem = _prog_mem(CFG_A)
    bad = bytearray(mem)
    bad[prog.base] ^= 0xFF
    with pytest.raises(AcceleratorError, match="bad magic"):
        run_pysim(CFG_A, bad, prog.base)
    bad = bytearray(mem)
    bad[prog.base + 8] = 7
    with pytest.raises(AcceleratorError, match="unsupported program version"):
        run_pysim(CFG_A, bad, prog.base)


def test_axi_error_is_reported_with_layer_index():
    # the memory ends where the output starts: the output writes get DECERR, and the engine
    # reports it (through its registered error flag) after the layer, naming the layer
    prog, mem = _prog_mem(CFG_A)
    assert prog.output_addr > prog.base
    with pytest.raises(AcceleratorError, match="AXI error.* at layer 0"):
        run_pysim(CFG_A, mem[:prog.output_addr], prog.base)


def test_unsupported_descriptor_is_refused_with_layer_index():
    prog, mem = _prog_mem(CFG_A)
    bad = bytearray(mem)
    kh_word = prog.base + 64 + 8 * 11  # descriptor 0, word kh
    bad[kh_word] = 9  # larger than KMAX
    run = run_pysim(CFG_A, bad, prog.base, check_status=False)
    assert run.counters["status"] == 5  # unsupported descriptor, layer 0
    assert bytes(run.memory[prog.output_addr:prog.output_addr + 64]) == \
        bytes(mem[prog.output_addr:prog.output_addr + 64])  # nothing written


def test_rtl_limits_refused_at_export():
    r = np.random.default_rng(0)
    g = conv_graph(r, CFG_A, 3, 4, 12, 12, 9, 1, 4)
    prog = build_program(g, CFG_A)
    with pytest.raises(RtlUnsupported, match="layer 'c0'.*window 9x9"):
        check_program(prog, CFG_A)


def test_configs_the_rtl_cannot_build_are_refused():
    with pytest.raises(RtlUnsupported, match="tn=3 is not a multiple of act_pack"):
        geometry(AcceleratorConfig.small(tn=3, act_pack=4))
    with pytest.raises(RtlUnsupported, match="not byte-aligned and tc=4"):
        geometry(AcceleratorConfig.small())  # G=4 on 64-bit beats: 3 words per beat


@pytest.mark.parametrize("key", ["A", "B"])
def test_stem_mode_reads_the_im2col_input_and_its_weights(key):
    """A stem-mode layer 0 runs as a 1x1 conv over the host's im2col tensor: with the plain
    input and the 7x7-layout weights overwritten the result is still the golden model's, and
    the same descriptor with the stem fields cleared runs the 7x7 conv on the plain input."""
    cfg = CFGS[key]
    g = _case(key, "conv7x7_s2_stem")
    prog = build_program(g, cfg, reuse=False)
    d0 = prog.descriptors[0]
    assert d0.mode == "stem" and d0["stem_addr"] and d0["stem_w_addr"]
    x = np.random.default_rng(1).integers(0, 32, (1,) + g.input.shape)
    ref = g.run(x)
    mem = prog.memory_image(x)
    ins = next(r for r in prog.regions if r.kind == "input")
    w7 = next(r for r in prog.regions if r.kind == "weights" and r.name == g.ops[0].name)
    clobbered = bytearray(mem)
    for r in (ins, w7):
        clobbered[r.addr:r.addr + r.size] = b"\xa5" * r.size
    stem = run_pysim(cfg, clobbered, prog.base)
    assert stem.counters["status"] == 0
    assert np.array_equal(prog.read_output(stem.memory), ref)
    # the same descriptor with the stem fields cleared runs the 7x7 conv on the plain input
    d0.words.update(stem_addr=0, stem_w_addr=0, stem_w_chunks=0)
    conv7 = run_pysim(cfg, prog.memory_image(x), prog.base)
    assert np.array_equal(prog.read_output(conv7.memory), ref)


def test_stem_mode_is_faster_on_the_pynq_array():
    """On the PYNQ-Z2 array (tn=32) the ResNet stem is 5 one-tap chunks instead of 49 taps of
    a chunk with 3 live channels: fewer cycles, same bits (on the tiny test arrays the chunk
    loads dominate and stem mode gains nothing)."""
    g = conv_graph(np.random.default_rng(4), CFG_D, 3, 8, 20, 20, 7, 2, 3)
    prog = build_program(g, CFG_D, reuse=False)
    d0 = prog.descriptors[0]
    assert d0.mode == "stem" and d0["stem_w_chunks"] == 5
    x = np.random.default_rng(1).integers(0, 32, (1,) + g.input.shape)
    ref = g.run(x)
    stem = run_pysim(CFG_D, prog.memory_image(x), prog.base)
    d0.words.update(stem_addr=0, stem_w_addr=0, stem_w_chunks=0)
    conv7 = run_pysim(CFG_D, prog.memory_image(x), prog.base)
    for run in (stem, conv7):
        assert np.array_equal(prog.read_output(run.memory), ref)
    assert 2 * stem.counters["cycles"] < conv7.counters["cycles"]
