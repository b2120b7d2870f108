"""The accelerator runs layer programs bit-exact: pysim of the whole top against the golden model.

Every case builds a layer program with :func:`filmqnn_hw.compiler.program_builder.build_program`,
runs the generated top (AXI4-Lite control, AXI4 master on a memory model, engine) in
Amaranth's simulator, and compares the output tensor with ``IntGraph.run`` using ``==``.

The tests are parametrized over :class:`Run` values (a config, a graph, how it is built, its
input, the memory's stalls, an edit of the program). The module fixture ``pysim`` collects the
runs of the selected tests and, the first time a test needs a config, simulates all of that
config's runs back to back on one elaborated top (:func:`~filmqnn_hw.sim.pysim.run_pysim_jobs`,
a reset before each run); each test then checks its own runs. Most cases are marked ``slow``;
a few short ones on config A (single layers, the refusals) keep the engine in the fast tier.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

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

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.sim.pysim import AcceleratorError, PysimJob, PysimRun, run_pysim_jobs
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.geometry import RtlUnsupported, check_program, geometry
from filmqnn_hw.spec.intgraph import IntGraph
from filmqnn_hw.spec.program import LayerProgram

sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))  # pysim of the 28x32 array

CFGS = {"A": CFG_A, "B": CFG_B, "C": CFG_C, "D": CFG_D, "B2": CFG_B2, "B4": CFG_B4, "E": CFG_E,
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


def extreme_graphs(cfg) -> dict[int, IntGraph]:
    """Per sign: all-31 codes meet +max / min weights at fan-in 3x3x40 (unit requant, logits
    out), so the centre pixel reaches the accumulator's extremes."""
    r = np.random.default_rng(3)
    graphs = {}
    for sign in (1, -1):
        op = rand_conv(r, cfg, "c", "x", "y", 40, cfg.tm + 1, 3, 1, 1, logits=True)
        q = np.where(op.bits == 8, 127, 7).reshape(-1, 1, 1, 1)
        op.weight[...] = sign * q
        op.mult[...] = 1
        op.shift[...] = 0
        op.offset[...] = 0
        graphs[sign] = graph_of([op], {"x": (40, 3, 3), "y": (cfg.tm + 1, 3, 3)}, "x", "y",
                                logits=True)
    return graphs


#: graph families: name -> (config -> {case: graph}); every family is seeded
FAMILIES = {
    "layer": layer_cases,
    "dw": depthwise_cases,
    "board": lambda cfg: {shape: conv_graph(np.random.default_rng(2), cfg, *shape)
                          for shape in BOARD_SHAPES},
    "net": lambda cfg: {"small_network": small_network(cfg)},
    "extreme": extreme_graphs,
    "stem_d": lambda cfg: {"stem": conv_graph(np.random.default_rng(4), cfg, 3, 8, 20, 20, 7,
                                              2, 3)},
}
#: (cin, cout, h, w, k, stride, pad) of the board-sized array's layers
BOARD_SHAPES = [(33, 30, 4, 4, 1, 1, 0), (20, 40, 5, 5, 3, 1, 1), (40, 29, 7, 7, 3, 2, 1)]


# ---------------------------------------------------------------------------------------------
# runs: described at collection, simulated per config in one pysim
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One run of the top: ``FAMILIES[family](CFGS[key])[case]`` built with ``reuse``, on
    input ``inputs`` (an RNG seed for random codes, ``"zeros"`` or ``"max"``), with random
    stalls ``stall`` and ``read_latency`` on every port (stall seed 0), after ``edit`` of the
    program or its memory image (see :func:`_prepare`)."""

    key: str
    family: str
    case: object
    reuse: bool = True
    inputs: int | str = 0
    stall: float = 0.0
    read_latency: int = 0
    edit: str = ""


@dataclass
class Prepared:
    run: Run
    graph: IntGraph
    prog: LayerProgram
    x: np.ndarray
    memory: bytes | bytearray


_GRAPHS: dict[tuple[str, str], dict] = {}


def _graph(key: str, family: str, case) -> IntGraph:
    if (key, family) not in _GRAPHS:
        _GRAPHS[key, family] = FAMILIES[family](CFGS[key])
    return _GRAPHS[key, family][case]


def _prepare(r: Run) -> Prepared:
    cfg = CFGS[r.key]
    g = _graph(r.key, r.family, r.case)
    if r.edit == "other_config":  # the same graph's program for another tile height
        prog = build_program(g, cfg.replace(tr=2), reuse=r.reuse)
    else:
        prog = build_program(g, cfg, reuse=r.reuse)
    if r.edit == "stem_cleared":  # descriptor 0 as a plain 7x7 conv on the plain input
        prog.descriptors[0].words.update(stem_addr=0, stem_w_addr=0, stem_w_chunks=0)
    if not r.edit:
        check_program(prog, cfg)
    if r.inputs == "zeros":
        x = np.zeros((1,) + g.input.shape, dtype=np.int64)
    elif r.inputs == "max":
        x = np.full((1,) + g.input.shape, 31)
    else:
        x = np.random.default_rng(r.inputs).integers(0, 32, (1,) + g.input.shape)
    mem = prog.memory_image(x)
    if r.edit == "bad_magic":
        mem[prog.base] ^= 0xFF
    elif r.edit == "bad_version":
        mem[prog.base + 8] = 7
    elif r.edit == "truncated":  # the memory ends where the output starts
        mem = mem[:prog.output_addr]
    elif r.edit == "bad_kh":  # descriptor 0, word kh: larger than KMAX
        mem[prog.base + 64 + 8 * 11] = 9
    elif r.edit == "stem_clobbered":  # the plain input and the 7x7-layout weights
        ins = next(t for t in prog.regions if t.kind == "input")
        w7 = next(t for t in prog.regions if t.kind == "weights" and t.name == g.ops[0].name)
        for t in (ins, w7):
            mem[t.addr:t.addr + t.size] = b"\xa5" * t.size
    return Prepared(r, g, prog, x, mem)


def _runs_in(value):
    if isinstance(value, Run):
        yield value
    elif isinstance(value, tuple):
        for v in value:
            yield from _runs_in(v)


class Pysim:
    """Per config, one simulation of all wanted runs (on first use); then ``self(run)`` is
    ``(Prepared, PysimRun)``. A simulation that raises raises for every run of its config."""

    def __init__(self, wanted: list[Run]):
        self.wanted = wanted
        self.results: dict[Run, tuple[Prepared, PysimRun]] = {}
        self.failed: dict[str, Exception] = {}

    def __call__(self, run: Run) -> tuple[Prepared, PysimRun]:
        if run not in self.results:
            if run.key in self.failed:
                raise self.failed[run.key]
            batch = [r for r in self.wanted if r.key == run.key and r not in self.results]
            if run not in batch:
                batch.append(run)
            try:
                prepared = [_prepare(r) for r in batch]
                jobs = [PysimJob(p.memory, p.prog.base, stall=p.run.stall,
                                 read_latency=p.run.read_latency) for p in prepared]
                results = run_pysim_jobs(CFGS[run.key], jobs)
            except Exception as e:
                self.failed[run.key] = e
                raise
            self.results.update((p.run, (p, res))
                                for p, res in zip(prepared, results, strict=True))
        return self.results[run]


@pytest.fixture(scope="module")
def pysim(request) -> Pysim:
    """The runs in the parameters of this module's selected tests, in collection order."""
    wanted: dict[Run, None] = {}
    for item in request.session.items:
        if getattr(item, "module", None) is request.module and hasattr(item, "callspec"):
            for value in item.callspec.params.values():
                wanted.update(dict.fromkeys(_runs_in(value)))
    return Pysim(list(wanted))


def _check(pysim: Pysim, run: Run, every_tensor: bool = False) -> tuple[np.ndarray, PysimRun]:
    """The run finished with status 0 and its output (and with ``every_tensor`` every tensor
    the program keeps) ``==`` the golden model's."""
    p, res = pysim(run)
    res.check()
    g = p.graph
    ref = g.run(p.x, keep=True)
    out = p.prog.read_output(res.memory)
    assert out.shape == ref[g.output].shape
    assert np.array_equal(out, ref[g.output])
    if every_tensor:
        for name in ref:
            if name in p.prog.tensors:
                assert np.array_equal(p.prog.read_tensor(res.memory, name), ref[name][0]), name
    assert res.counters["status"] == 0 and res.counters["cycles"] > 0
    return out, res


def _layer(key, case, **kw) -> Run:
    """A single-layer case as the golden-model tests run it: every tensor kept and compared
    for the two-input layers (``residual``, ``add``)."""
    return Run(key, "layer", case, reuse=case not in ("residual", "add"), **kw)


def _stalled(run: Run, seed: int) -> Run:
    """``run`` with random stalls and late read data, on the codes of input seed ``seed``."""
    return Run(run.key, run.family, run.case, reuse=True, inputs=seed, stall=0.35,
               read_latency=7)


def _param(value, id: str, fast: bool = False):
    return pytest.param(value, id=id, marks=() if fast else pytest.mark.slow)


CASE_NAMES = list(layer_cases(CFG_A))
#: single layers of the fast tier (config A, each a few hundred cycles)
FAST_LAYERS = {"conv1x1", "maxpool3s2p1", "conv_1x1_spatial"}


@pytest.mark.parametrize("run", [
    _param(_layer(key, case), f"{case}-{key}", fast=key == "A" and case in FAST_LAYERS)
    for key in ("A", "B", "C") for case in CASE_NAMES])
def test_single_layers(pysim, run):
    _check(pysim, run, every_tensor=not run.reuse)


DW_CASES = list(depthwise_cases(CFG_E))


@pytest.mark.parametrize("run", [_param(Run(key, "dw", case), f"{case}-{key}")
                                 for key in ("A", "E", "E3", "C") for case in DW_CASES])
def test_depthwise_tap_groups(pysim, run):
    """Depthwise kernel rows in tap groups (A: 3 banks, groups of 3; E: 2 banks, groups of 3
    at stride 1 and 2 at stride 2; E3: with two weight memories; C: one tap per pair): every
    kernel size, stride, padding code and partial last group, bit-exact."""
    assert geometry(CFGS[run.key]).dw_taps == (1 if run.key == "C" else 3)
    _check(pysim, run)


@pytest.mark.parametrize("runs", [
    _param((_layer(key, case), _stalled(_layer(key, case), 3)), f"{key}-{case}")
    for key, case in [
        ("B2", "conv3x3_s2_odd"), ("B2", "conv7x7_s2_stem"), ("B2", "depthwise3x3_s2"),
        ("B2", "fc_logits"), ("B2", "residual"), ("B2", "maxpool3s2p1"), ("B2", "add"),
        # three weight memories: records of a resident group start in any memory (15 taps
        # of a 5x3 kernel, 9 of a 3x3, 1 of a 1x1 with several chunks, 49 of the 7x7 stem)
        ("B4", "conv3x3_pad"), ("B4", "conv_5x3_kernel"), ("B4", "depthwise3x3"),
        ("B4", "fc_flatten_3x3"), ("B4", "conv7x7_s2_stem"), ("B4", "residual")]])
def test_weight_ports(pysim, runs):
    """Weights on their own AXI port(s), calm and with random stalls on every port: same
    bits as the golden model."""
    calm, stalled = runs
    _, calm_run = _check(pysim, calm, every_tensor=not calm.reuse)
    _, stalled_run = _check(pysim, stalled)
    assert stalled_run.counters["cycles"] > calm_run.counters["cycles"]


@pytest.mark.parametrize("runs", [
    _param((_layer(key, case), _stalled(_layer(key, case), 5)), f"{case}-{key}")
    for key in ("E", "E3") for case in ("residual", "add")])
def test_residual_banks_two_words_per_beat(pysim, runs):
    """The residual tile's column banks with two words per beat (tiles of 4 columns start
    on either bank): same bits as the golden model, calm and with random stalls."""
    calm, stalled = runs
    _check(pysim, calm, every_tensor=True)
    _check(pysim, stalled)


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


@pytest.mark.parametrize("runs", [
    _param((Run("A", "layer", case), _stalled(Run("A", "layer", case), 5)), case)
    for case in ["conv3x3_s2_odd", "residual", "fc_logits", "maxpool3s2p1", "depthwise3x3"]])
def test_back_pressure_does_not_change_results(pysim, runs):
    """Random AXI stalls on every channel and late read data: same bits, more cycles."""
    calm, stalled = runs
    _, calm_run = _check(pysim, calm)
    _, stalled_run = _check(pysim, stalled)
    assert stalled_run.counters["cycles"] > calm_run.counters["cycles"]


@pytest.mark.parametrize("run", [_param(Run("D", "board", shape), f"shape{i}")
                                 for i, shape in enumerate(BOARD_SHAPES)])
def test_board_sized_array_every_group_and_row(pysim, run):
    """Two channel groups on the PYNQ-Z2 array: both accumulator banks, every row."""
    _check(pysim, run)


@pytest.mark.parametrize("run", [_param(Run("A", "layer", "conv3x3_pad"), "A")])
def test_outputs_are_not_trivial(pysim, run):
    """Guard: the random layers exercise the clamp and many codes (the tests can fail)."""
    out, _ = _check(pysim, run)
    assert out.min() <= 1 and out.max() == 31 and len(np.unique(out)) > 15


@pytest.mark.parametrize("runs", [
    _param(tuple(Run(key, "extreme", sign, inputs="max") for sign in (1, -1)), key)
    for key in ("A", "C")])
def test_extreme_weights_and_codes(pysim, runs):
    """All-31 codes with +max / min weights at fan-in 3x3x40: the accumulator extremes."""
    for run in runs:
        p, res = pysim(run)
        res.check()
        ref = p.graph.run(p.x)
        assert np.array_equal(p.prog.read_output(res.memory), ref)
        # the centre pixel sums 3*3*40 products of +-127*31 / +-7*31 (clipped to int16 after)
        assert abs(int(ref[0, 0, 1, 1])) == 32768 - (run.case > 0)


@pytest.mark.parametrize("run", [_param(Run("A", "net", "small_network", reuse=False), "A")])
def test_small_network(pysim, run):
    """stem conv -> maxpool -> residual block -> gap -> fc logits, one start."""
    _check(pysim, run, every_tensor=True)


# ---------------------------------------------------------------------------------------------
# refusals: the engine's status register names the problem (each run starts from a reset)
# ---------------------------------------------------------------------------------------------
def _refusal(edit: str) -> Run:
    return Run("A", "layer", "conv1x1", inputs="zeros", edit=edit)


@pytest.mark.parametrize("run", [_param(_refusal("other_config"), "A", fast=True)])
def test_program_for_another_config_is_refused(pysim, run):
    _, res = pysim(run)
    with pytest.raises(AcceleratorError, match="config mismatch at layer 0"):
        res.check()


@pytest.mark.parametrize("runs", [
    _param((_refusal("bad_magic"), _refusal("bad_version")), "A", fast=True)])
def test_bad_magic_and_version_are_refused(pysim, runs):
    magic, version = (pysim(r)[1] for r in runs)
    with pytest.raises(AcceleratorError, match="bad magic"):
        magic.check()
    with pytest.raises(AcceleratorError, match="unsupported program version"):
        version.check()


@pytest.mark.parametrize("run", [_param(_refusal("truncated"), "A", fast=True)])
def test_axi_error_is_reported_with_layer_index(pysim, run):
    # the memory ends where the output starts: the output writes get DECERR, and the engine
    # reports it (through its registered error flag) after the layer, naming the layer
    p, res = pysim(run)
    assert p.prog.output_addr > p.prog.base
    with pytest.raises(AcceleratorError, match="AXI error.* at layer 0"):
        res.check()


@pytest.mark.parametrize("run", [_param(_refusal("bad_kh"), "A", fast=True)])
def test_unsupported_descriptor_is_refused_with_layer_index(pysim, run):
    p, res = pysim(run)
    res.check(check_status=False)
    assert res.counters["status"] == 5  # unsupported descriptor, layer 0
    mem, out = p.memory, p.prog.output_addr
    assert bytes(res.memory[out:out + 64]) == bytes(mem[out:out + 64])  # nothing written


@pytest.mark.slow
def test_a_run_that_does_not_finish_is_named_and_stops_the_rest():
    """A run that misses its cycle budget has no result, and the runs after it in the same
    simulation are not started (their engine may still be busy with its bursts)."""
    p = _prepare(_layer("A", "conv1x1"))
    job = PysimJob(p.memory, p.prog.base)
    hung, after = run_pysim_jobs(CFG_A, [PysimJob(p.memory, p.prog.base, max_cycles=64), job])
    with pytest.raises(AcceleratorError, match="did not finish within 64 cycles"):
        hung.check()
    with pytest.raises(AcceleratorError, match="not run: job 0 did not finish"):
        after.check()


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


# ---------------------------------------------------------------------------------------------
# stem mode
# ---------------------------------------------------------------------------------------------
def _stem_runs(key: str, family: str, case: str, stem_edit: str = "") -> tuple[Run, Run]:
    """The stem-mode program on input seed 1 (after ``stem_edit``), and the same with
    descriptor 0's stem fields cleared."""
    return tuple(Run(key, family, case, reuse=False, inputs=1, edit=edit)
                 for edit in (stem_edit, "stem_cleared"))


@pytest.mark.parametrize("runs", [
    _param(_stem_runs(key, "layer", "conv7x7_s2_stem", "stem_clobbered"), key)
    for key in ("A", "B")])
def test_stem_mode_reads_the_im2col_input_and_its_weights(pysim, runs):
    """A stem-mode layer 0 runs as a 1x1 conv over the host's im2col tensor: with the plain
    input and the 7x7-layout weights overwritten the result is still the golden model's, and
    the same descriptor with the stem fields cleared runs the 7x7 conv on the plain input."""
    g = _graph(runs[0].key, "layer", "conv7x7_s2_stem")
    d0 = build_program(g, CFGS[runs[0].key], reuse=False).descriptors[0]
    assert d0.mode == "stem" and d0["stem_addr"] and d0["stem_w_addr"]
    (p, stem), (p7, conv7) = (pysim(r) for r in runs)
    assert p7.prog.descriptors[0]["stem_addr"] == 0
    ref = g.run(p.x)
    assert stem.check().counters["status"] == 0
    assert np.array_equal(p.prog.read_output(stem.memory), ref)
    conv7.check()
    assert np.array_equal(p7.prog.read_output(conv7.memory), ref)


@pytest.mark.parametrize("runs", [_param(_stem_runs("D", "stem_d", "stem"), "D")])
def test_stem_mode_is_faster_on_the_pynq_array(pysim, runs):
    """On the PYNQ-Z2 array (tn=32) the ResNet stem is 5 one-tap chunks instead of 49 taps of
    a chunk with 3 live channels: fewer cycles, same bits (on the tiny test arrays the chunk
    loads dominate and stem mode gains nothing)."""
    g = _graph("D", "stem_d", "stem")
    d0 = build_program(g, CFG_D, reuse=False).descriptors[0]
    assert d0.mode == "stem" and d0["stem_w_chunks"] == 5
    (p, stem), (p7, conv7) = (pysim(r) for r in runs)
    ref = g.run(p.x)
    for prep, run in ((p, stem), (p7, conv7)):
        assert np.array_equal(prep.prog.read_output(run.check().memory), ref)
    assert 2 * stem.counters["cycles"] < conv7.counters["cycles"]
