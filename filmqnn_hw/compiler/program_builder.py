"""From an integer network to a layer program: the DDR memory map and one descriptor per op.

:func:`build_program` plans where every blob and tensor lives, packs the weights
(:func:`filmqnn_hw.spec.weight_image.pack_conv_weights`) and parameters, and picks each
layer's compute mode with the target-schedule model (:mod:`filmqnn_hw.models.cycles`) when
it can run; the program format itself is :mod:`filmqnn_hw.spec.program`.
"""

from __future__ import annotations

import math

import numpy as np

from filmqnn_hw.spec.config import ACT_MAX, AcceleratorConfig, ConfigError
from filmqnn_hw.spec.geometry import record_rows
from filmqnn_hw.spec.intgraph import AddOp, ConvOp, IntGraph, PoolOp
from filmqnn_hw.spec.numerics import NumericsError, check_requant_range
from filmqnn_hw.spec.program import (
    DESC_SIZE,
    FLAG_IN_ONCHIP,
    FLAG_LAST,
    FLAG_LOGITS,
    FLAG_OUT_ONCHIP,
    FLAG_RELU,
    FLAG_RES_ONCHIP,
    FLAG_RESIDUAL,
    HEADER_SIZE,
    LAYOUT_I16,
    MODES,
    OP_CODES,
    ORDERS,
    PARAM_DTYPE,
    PARAM_SIZE,
    Descriptor,
    LayerProgram,
    ProgramError,
    Region,
    act_layout,
    align_up,
)
from filmqnn_hw.spec.weight_image import pack_conv_weights

__all__ = ["build_program"]


# =============================================================================================
# Building
# =============================================================================================
def _plan_modes(
    graph: IntGraph, config: AcceleratorConfig
) -> tuple[list[tuple[str, int, str, dict[str, bool]]], bool]:
    """Per-op (mode, px, order, on_chip) from the cycle model, or by its rules if it cannot run.

    The cycle model needs the board's DDR bandwidth (``ddr_bytes_per_cycle > 0``) and square
    strides/padding; without them the mode follows the same rules (docs/architecture.md
    section 2) with ``px = 1`` and order ``ws``.
    """
    from filmqnn_hw.models.cycles import STEM_MAX_CH, network_cycles, plan_fm_cache
    from filmqnn_hw.spec.networks import NetworkError, from_intgraph

    try:
        net = from_intgraph(graph)
        nc = network_cycles(config, net)
        on_chip = plan_fm_cache(config, net)
        out = []
        for op, lc in zip(graph.ops, nc.layers, strict=True):
            ins = ([op.a, op.b] if isinstance(op, AddOp)
                   else [op.input, getattr(op, "residual", None)])
            oc = {"input": ins[0] in on_chip and lc.mode != "stem",
                  "residual": ins[1] in on_chip if ins[1] else False,
                  "output": op.output in on_chip}
            out.append((lc.mode, lc.px, lc.order, oc))
        return out, True
    except (ConfigError, NetworkError):
        pass
    out = []
    for i, op in enumerate(graph.ops):
        if isinstance(op, ConvOp):
            if op.groups != 1:
                mode = "dw"
            elif (i == 0 and op.input == graph.input.name and op.in_channels <= STEM_MAX_CH
                  and op.kernel[0] * op.kernel[1] > 1):
                mode = "stem"
            elif (config.kernel_packing and op.stride == (1, 1) and op.kernel[1] >= 3
                  and config.tn >= 4 and op.kind != "linear"):
                mode = "kernel"
            else:
                mode = "normal"
        elif isinstance(op, PoolOp):
            mode = "gap" if op.kernel is None else "pool"
        else:
            mode = "add"
        out.append((mode, 1, "ws", {"input": False, "residual": False, "output": False}))
    return out, False


class _Allocator:
    """First-fit allocator over ``[start, inf)`` with ALIGN-aligned blocks."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.used: list[tuple[int, int]] = []  # (addr, size), sorted
        self.end = start

    def alloc(self, size: int) -> int:
        size = align_up(max(size, 1))
        addr = self.start
        for a, s in self.used:
            if addr + size <= a:
                break
            addr = max(addr, a + s)
        self.used.append((addr, size))
        self.used.sort()
        self.end = max(self.end, addr + size)
        return addr

    def free(self, addr: int) -> None:
        self.used = [(a, s) for a, s in self.used if a != addr]


def _params_blob(op: ConvOp) -> bytes:
    c = op.out_channels
    res = np.zeros(c, dtype=np.int64) if op.res_mult is None else np.asarray(op.res_mult, np.int64)
    mult = np.asarray(op.mult, dtype=np.int64)
    shift = np.asarray(op.shift, dtype=np.int64)
    for what, v, lo, hi in (("mult", mult, 0, 0xFFFF), ("shift", shift, 0, 63),
                            ("res_mult", res, -(1 << 31), (1 << 31) - 1)):
        if v.size and (v.min() < lo or v.max() > hi):
            raise ProgramError(
                f"layer {op.name!r}: {what} outside [{lo}, {hi}] (the numeric contract keeps "
                "it smaller); re-convert the model"
            )
    rec = np.zeros(c, dtype=PARAM_DTYPE)
    rec["offset"] = np.asarray(op.offset, dtype=np.int64)
    rec["mult"] = mult
    rec["res_mult"] = res
    rec["shift"] = shift
    rec["bits"] = np.asarray(op.bits, dtype=np.int64)
    assert rec.itemsize == PARAM_SIZE
    return rec.tobytes()


def _check_ranges(op: ConvOp | PoolOp | AddOp, config: AcceleratorConfig, window: int = 1) -> None:
    """Refuse an op whose worst case overflows the accumulator or the 48-bit ``y``."""
    try:
        if isinstance(op, ConvOp):
            absw = np.abs(np.asarray(op.weight, dtype=np.int64)).reshape(op.out_channels, -1)
            bound = int(absw.sum(axis=1).max(initial=0)) * max(abs(int(op.pad_code)), ACT_MAX)
            if bound > (1 << (config.acc_bits - 1)) - 1:
                raise ProgramError(
                    f"layer {op.name!r}: worst-case accumulator {bound} exceeds the signed "
                    f"{config.acc_bits}-bit accumulator (max_fan_in={config.max_fan_in}); use a "
                    "config with a larger max_fan_in"
                )
            check_requant_range(op.name, bound, op.mult, op.offset, op.res_mult)
        elif isinstance(op, PoolOp):
            a = max(abs(int(op.pad_code)), ACT_MAX)
            check_requant_range(op.name, a * window, [op.mult], [op.offset])
        else:
            check_requant_range(op.name, ACT_MAX, [abs(op.mult_a)], [op.offset],
                                [abs(op.mult_b)])
    except NumericsError as e:
        raise ProgramError(str(e)) from None


def build_program(
    graph: IntGraph, config: AcceleratorConfig, *, base: int = 0, reuse: bool = True
) -> LayerProgram:
    """Plan the DDR memory map of ``graph`` on ``config`` and write one descriptor per op.

    Memory map from ``base`` (every region ALIGN-aligned): program, then per convolution its
    weight block (weight-image layout, :func:`filmqnn_hw.spec.weight_image.pack_conv_weights`)
    and its parameter block, then the network input, the stem im2col input (stem mode only), the
    network output, then activation buffers. With ``reuse`` a buffer is recycled once its
    last reader has run; ``reuse=False`` gives every tensor its own region (for debugging).

    Raises :class:`ProgramError` naming the op for anything the accelerator cannot run:
    grouped convolutions other than depthwise, a signed 16-bit output that another op reads,
    tensors of the wrong shape, or an unknown op.
    """
    graph.validate()
    tensors = dict(graph.tensors)
    tensors[graph.input.name] = graph.input
    shapes = {n: t.shape for n, t in tensors.items()}
    for op in graph.ops:
        if not isinstance(op, (ConvOp, PoolOp, AddOp)):
            raise ProgramError(
                f"op {getattr(op, 'name', op)!r} of type {type(op).__name__} is not supported "
                "by the layer program (conv, depthwise, linear, pool, add only)"
            )
        if op.output not in shapes:
            raise ProgramError(f"op {op.name!r}: output tensor {op.output!r} has no TensorSpec")
    last_read: dict[str, int] = {}
    for i, op in enumerate(graph.ops):
        srcs = [op.a, op.b] if isinstance(op, AddOp) else [op.input]
        if isinstance(op, ConvOp) and op.residual:
            srcs.append(op.residual)
        for s in srcs:
            last_read[s] = i
    modes, from_model = _plan_modes(graph, config)

    n = len(graph.ops)
    prog_size = HEADER_SIZE + n * DESC_SIZE + 4
    alloc = _Allocator(base)
    alloc.alloc(prog_size)
    regions = [Region("program", "program", base, prog_size)]
    blobs: dict[int, bytes] = {}
    wpar: dict[str, tuple[int, int, int, int, int, int, int]] = {}
    stem_w = (0, 0)  # (address, chunks) of the stem-mode weights
    for op in graph.ops:
        if not isinstance(op, ConvOp):
            continue
        cpg = int(op.weight.shape[1])
        if op.groups == 1:
            lanes = config.tn
        elif cpg == 1 and op.groups == op.in_channels:
            lanes = 1
        else:
            raise ProgramError(
                f"layer {op.name!r}: grouped convolution with groups={op.groups} is not supported "
                "(only dense, groups=1, and depthwise, groups=C_in)"
            )
        _check_ranges(op, config)
        wb = pack_conv_weights(op.weight, config.tm, config.n8_slots, lanes)
        pb = _params_blob(op)
        wa = alloc.alloc(len(wb))
        pa = alloc.alloc(len(pb))
        blobs[wa], blobs[pa] = wb, pb
        regions += [Region(op.name, "weights", wa, len(wb)), Region(op.name, "params", pa, len(pb))]
        chunks = math.ceil(cpg / lanes)
        rows = record_rows(config)
        wpar[op.name] = (wa, len(wb), lanes, chunks, rows, pa, len(pb))
        if op is graph.ops[0] and modes and modes[0][0] == "stem":
            # the same filters as a 1x1 conv over the im2col input (channel (ky kw + kx) C + c),
            # for an accelerator that runs the stem as that conv (the RTL; the HLS kernel
            # reads the plain input and the weights above)
            oc, c_in, kh_, kw_ = (int(d) for d in op.weight.shape)
            w1 = np.ascontiguousarray(
                np.asarray(op.weight).transpose(0, 2, 3, 1).reshape(oc, kh_ * kw_ * c_in, 1, 1))
            swb = pack_conv_weights(w1, config.tm, config.n8_slots, config.tn)
            swa = alloc.alloc(len(swb))
            blobs[swa] = swb
            regions.append(Region(op.name + ".stem", "weights", swa, len(swb)))
            stem_w = (swa, math.ceil(kh_ * kw_ * c_in / config.tn))

    out_name = graph.output
    out_spec = tensors[out_name]
    logits = out_spec.lo < 0 or out_spec.hi > ACT_MAX

    def tensor_size(name: str) -> int:
        c, h, w = shapes[name]
        if name == out_name and logits:
            return c * h * w * 2
        return act_layout(config, c, h, w)[2]

    treg: dict[str, Region] = {}
    a = alloc.alloc(tensor_size(graph.input.name))
    treg[graph.input.name] = Region(graph.input.name, "input", a, tensor_size(graph.input.name))
    stem = None
    if modes and modes[0][0] == "stem":
        op0 = graph.ops[0]
        assert isinstance(op0, ConvOp)
        kh, kw = op0.kernel
        _, ho, wo = shapes[op0.output]
        sc = op0.in_channels * kh * kw
        size = act_layout(config, sc, ho, wo)[2]
        sa = alloc.alloc(size)
        regions.append(Region(op0.name + ".im2col", "stem", sa, size))
        stem = (sa, op0)
    a = alloc.alloc(tensor_size(out_name))
    treg[out_name] = Region(out_name, "output", a, tensor_size(out_name))
    pinned = {graph.input.name, out_name}

    descs: list[Descriptor] = []
    for i, op in enumerate(graph.ops):
        mode, px, order, onchip = modes[i]
        t_out = tensors[op.output]
        op_lo, op_hi = getattr(op, "lo", 0), getattr(op, "hi", 0)
        if op.output != out_name and (t_out.lo < 0 or t_out.hi > ACT_MAX
                                      or op_lo < 0 or op_hi > ACT_MAX):
            raise ProgramError(
                f"op {op.name!r}: output {op.output!r} is not a 5-bit activation but is not the "
                "network output; only the last layer may produce signed 16-bit logits"
            )
        if op.output not in treg:
            size = tensor_size(op.output)
            treg[op.output] = Region(op.output, "activation", alloc.alloc(size), size)
        w: dict[str, int] = {"mode": MODES.index(mode), "px": px, "order": ORDERS.index(order),
                             "index": i}
        ins = [op.a, op.b] if isinstance(op, AddOp) else [op.input]
        if ins[0] not in treg:
            raise ProgramError(f"op {op.name!r} reads {ins[0]!r}, which has no buffer")
        ic, ih, iw = shapes[ins[0]]
        oc_, oh, ow = shapes[op.output]
        is_out_logits = op.output == out_name and logits
        flags = (FLAG_LOGITS if is_out_logits else 0) | (FLAG_LAST if i == n - 1 else 0)
        flags |= (FLAG_IN_ONCHIP if onchip["input"] else 0) | (
            FLAG_RES_ONCHIP if onchip["residual"] else 0) | (
            FLAG_OUT_ONCHIP if onchip["output"] else 0)
        irow, iplane, _ = act_layout(config, ic, ih, iw)
        if is_out_logits:
            orow, oplane = ow * 2, oh * ow * 2
        else:
            orow, oplane, _ = act_layout(config, oc_, oh, ow)
        w.update(in_c=ic, in_h=ih, in_w=iw, out_c=oc_, out_h=oh, out_w=ow,
                 in_addr=treg[ins[0]].addr, in_row_bytes=irow, in_plane_bytes=iplane,
                 out_addr=treg[op.output].addr, out_layout=LAYOUT_I16 if is_out_logits else 0,
                 out_row_bytes=orow, out_plane_bytes=oplane)
        zp_out = tensors[op.output].zero_point
        if isinstance(op, ConvOp):
            kind = {"conv": "conv", "depthwise": "depthwise", "linear": "linear"}.get(op.kind)
            if kind is None:
                raise ProgramError(f"layer {op.name!r}: unknown conv kind {op.kind!r}")
            if op.groups != 1:
                kind = "depthwise"
            exp_h = (ih + 2 * op.padding[0] - op.kernel[0]) // op.stride[0] + 1
            exp_w = (iw + 2 * op.padding[1] - op.kernel[1]) // op.stride[1] + 1
            if ic != op.in_channels or oc_ != op.out_channels or (oh, ow) != (exp_h, exp_w):
                raise ProgramError(
                    f"layer {op.name!r}: tensor shapes {shapes[ins[0]]} -> {shapes[op.output]} do "
                    "not match the convolution's weights, stride and padding"
                )
            wa, wl, lanes, chunks, rows, pa, pl = wpar[op.name]
            w.update(op=OP_CODES[kind], kh=op.kernel[0], kw=op.kernel[1],
                     stride_h=op.stride[0], stride_w=op.stride[1], pad_h=op.padding[0],
                     pad_w=op.padding[1], groups=op.groups, pad_code=op.pad_code, lo=op.lo,
                     hi=op.hi, w_addr=wa, w_bytes=wl, w_lanes=lanes, w_chunks=chunks, w_rows=rows,
                     p_addr=pa, p_bytes=pl)
            if op.lo == zp_out and not is_out_logits:
                flags |= FLAG_RELU
            if op.residual is not None:
                if shapes[op.residual] != shapes[op.output]:
                    raise ProgramError(
                        f"layer {op.name!r}: residual {op.residual!r} shape {shapes[op.residual]} "
                        f"differs from the output's {shapes[op.output]}"
                    )
                r = shapes[op.residual]
                rrow, rplane, _ = act_layout(config, *r)
                w.update(res_addr=treg[op.residual].addr, res_row_bytes=rrow,
                         res_plane_bytes=rplane)
                flags |= FLAG_RESIDUAL
            if i == 0 and stem is not None:
                w.update(stem_addr=stem[0], stem_c=op.in_channels * op.kernel[0] * op.kernel[1],
                         stem_w_addr=stem_w[0], stem_w_chunks=stem_w[1])
        elif isinstance(op, PoolOp):
            if oc_ != ic:
                raise ProgramError(f"pool {op.name!r}: output channels differ from input's")
            if op.kernel is None:
                kind, k, s, p = "gap", (ih, iw), (1, 1), (0, 0)
                if (oh, ow) != (1, 1):
                    raise ProgramError(f"pool {op.name!r}: global pooling output must be 1x1")
            else:
                kind = "maxpool" if op.mode == "max" else "avgpool"
                if op.mode not in ("max", "avg"):
                    raise ProgramError(f"pool {op.name!r}: unknown mode {op.mode!r}")
                k, s, p = op.kernel, op.stride, op.padding
            w.update(op=OP_CODES[kind], kh=k[0], kw=k[1], stride_h=s[0], stride_w=s[1],
                     pad_h=p[0], pad_w=p[1], groups=ic, pad_code=op.pad_code, lo=op.lo, hi=op.hi,
                     mult=op.mult, offset=op.offset, shift=op.shift)
            if kind == "maxpool":
                w.update(lo=0, hi=ACT_MAX)  # max pooling keeps codes; lo/hi unused
        else:
            if shapes[op.a] != shapes[op.b] or shapes[op.a] != shapes[op.output]:
                raise ProgramError(f"add {op.name!r}: operands and output must have one shape")
            rrow, rplane, _ = act_layout(config, *shapes[op.b])
            w.update(op=OP_CODES["add"], kh=1, kw=1, stride_h=1, stride_w=1, groups=ic,
                     lo=op.lo, hi=op.hi, mult=op.mult_a, mult_b=op.mult_b, offset=op.offset,
                     shift=op.shift, res_addr=treg[op.b].addr, res_row_bytes=rrow,
                     res_plane_bytes=rplane)
            if op.lo == zp_out:
                flags |= FLAG_RELU
        if isinstance(op, (PoolOp, AddOp)):
            if not 0 <= w["shift"] <= 46 or not 0 <= w["mult"] < 1 << 31:
                raise ProgramError(f"op {op.name!r}: shift/mult outside the numeric contract")
            _check_ranges(op, config, w["kh"] * w["kw"])
        w["flags"] = flags
        descs.append(Descriptor(op.name, w))
        if reuse:
            for t, last in last_read.items():
                if last == i and t not in pinned and t in treg:
                    alloc.free(treg[t].addr)
    regions += list(treg.values())
    mem = align_up(alloc.end)
    return LayerProgram(
        config=config, descriptors=descs, regions=regions, blobs=blobs, base=base, mem_bytes=mem,
        input_spec=graph.input, output_spec=out_spec, input_addr=treg[graph.input.name].addr,
        output_addr=treg[out_name].addr, output_logits=logits, tensors=treg, shapes=shapes,
        stem=stem, from_cycle_model=from_model,
    )
