"""Conversion of a :class:`~filmqnn_quant.qat.QuantModel` into the golden integer graph.

:func:`to_integer` emits one :class:`~filmqnn_hw.spec.intgraph.ConvOp` per Conv2d/Linear (BN
folded into per-channel ``mult/offset/shift``, ReLU fused as ``lo = z_out``, a residual add
fused into the convolution that precedes it), one :class:`~filmqnn_hw.spec.intgraph.PoolOp`
per pooling step, and drops flatten/dropout/identity. The integer parameters come from
:func:`filmqnn_quant.qat.layer_integer_params`, the same function the QuantModel's eval
forward uses, so both compute identical codes.

Reordering (with an accelerator config): every free channel group (see
:mod:`filmqnn_quant.graph`) gets one permutation ``perm`` (``perm[pos]`` = original channel
at position ``pos``): inside every ``tm`` tile the ``n8_slots`` first positions hold 8-bit
filters. The group's 8-bit channels take the 8-bit slot positions in ascending order, the
4-bit channels fill the rest in ascending order. Every layer writing into the group permutes
its filters (and ``bits``, ``mult``, ``offset``, ``shift``, ``res_mult``); every layer
reading it permutes its input channels; ``ConvOp.permutation`` records ``perm``. Fixed
groups (network input and logits) keep the identity; their 8-bit filters must already sit in
8-bit slots (``prepare_qat`` with the config guarantees it).

Residual scaling: the residual shares the convolution's per-channel ``shift`` (chosen for a
15-bit ``mult``), so ``res_mult = round(s_res / s_out * 2**shift)`` is *not* limited to 15
bits (measured: up to 26 bits on full-width ResNet-18/50); :func:`check_requant_range`
still guarantees every ``y`` fits 48 bits.
"""

from __future__ import annotations

import numpy as np
import torch

from filmqnn_hw.spec.config import ACT_MAX, AcceleratorConfig, accumulator_bits
from filmqnn_hw.spec.intgraph import ConvOp, IntGraph, PoolOp, TensorSpec
from filmqnn_hw.spec.numerics import NumericsError, check_requant_range, quantize_input
from filmqnn_quant.graph import GraphError, LayerNode, PoolNode
from filmqnn_quant.qat import QuantModel, pool_integer_params

__all__ = ["to_integer", "group_permutations", "seeded_network", "ConversionError",
           "GraphError"]


class ConversionError(ValueError):
    """The quantized model cannot be mapped onto the integer graph / accelerator."""


def group_permutations(
    qmodel: QuantModel, config: AcceleratorConfig | None
) -> dict[str, np.ndarray]:
    """One permutation per channel group root (identity without a config)."""
    g = qmodel.graph
    params = qmodel.integer_params()
    channels: dict[str, int] = {}
    bits_of: dict[str, tuple[str, np.ndarray]] = {}
    for layer in g.layers():
        root = g.find(layer.output)
        b = params[layer.name].bits
        if root in bits_of:
            other, ob = bits_of[root]
            if not np.array_equal(ob, b):
                raise ConversionError(
                    f"layers {other!r} and {layer.name!r} write into the same channel group but "
                    "have different 8-bit filters; call select_8bit() on the QuantModel"
                )
        else:
            bits_of[root] = (layer.name, b)
        channels[root] = b.shape[0]
    perms: dict[str, np.ndarray] = {}
    fixed = g.fixed_groups()
    for root, (lname, b) in bits_of.items():
        c = channels[root]
        if config is None:
            perms[root] = np.arange(c)
            continue
        eight = np.nonzero(b == 8)[0]
        slots = [p for p in range(c) if config.is_8bit_slot(p)]
        if len(eight) > len(slots):
            raise ConversionError(
                f"layer {lname!r} has {len(eight)} 8-bit filters but the accelerator (tm="
                f"{config.tm}, n8_slots={config.n8_slots}) has only {len(slots)} 8-bit slots for "
                f"{c} channels; prepare the model with this config (prepare_qat(model, config))"
            )
        if root in fixed:
            bad = [int(k) for k in eight if not config.is_8bit_slot(int(k))]
            if bad:
                raise ConversionError(
                    f"layer {lname!r} writes the network output, whose channel order is fixed, "
                    f"but its 8-bit filters {bad[:8]} are not in 8-bit slots; prepare the model "
                    "with this config (prepare_qat(model, config))"
                )
            perms[root] = np.arange(c)
            continue
        perm = np.empty(c, dtype=np.int64)
        four = [k for k in range(c) if b[k] != 8]
        slot_set = set(slots[: len(eight)])
        it8, it4 = iter(eight.tolist()), iter(four)
        for pos in range(c):
            perm[pos] = next(it8) if pos in slot_set else next(it4)
        perms[root] = perm
    return perms


def to_integer(
    qmodel: QuantModel,
    input_shape: tuple[int, int, int],
    config: AcceleratorConfig | None = None,
) -> IntGraph:
    """Build the golden :class:`IntGraph` of ``qmodel`` for inputs of shape ``(C, H, W)``.

    With ``config`` the filters are reordered for the accelerator's 8-bit slots (the network
    output is unchanged; every intermediate tensor's channels are permuted by its group's
    permutation). Raises :class:`ConversionError`/:class:`NumericsError` naming the layer when
    something cannot be represented.
    """
    if len(input_shape) != 3:
        raise ConversionError(f"input_shape must be (C, H, W), not {input_shape}")
    g = qmodel.graph
    params = qmodel.integer_params()
    with torch.no_grad():
        probe = qmodel.forward_codes(torch.zeros((1, *input_shape), dtype=torch.int64), keep=True)
    perms = group_permutations(qmodel, config)

    def perm_of(tensor: str) -> np.ndarray | None:
        p = perms.get(g.find(tensor))
        if p is None or np.array_equal(p, np.arange(len(p))):
            return None
        return p

    tensors: dict[str, TensorSpec] = {}
    for name, codes in probe.items():
        s, z, lo, hi = qmodel.act_qparams(name)
        _, c, h, w = codes.shape
        tensors[name] = TensorSpec(name, int(c), int(h), int(w), float(s), int(z), lo, hi)

    ops: list[ConvOp | PoolOp] = []
    for op in g.ops:
        if isinstance(op, LayerNode):
            p = params[op.name]
            src = g.resolve(op.input)
            out = op.output
            cin, h, w = tensors[src].shape
            weight = p.weight
            if op.kind == "linear":
                if weight.shape[1] != cin * h * w:
                    raise ConversionError(
                        f"Linear {op.name!r} expects {weight.shape[1]} inputs but the flattened "
                        f"tensor has {cin}x{h}x{w} = {cin * h * w} (wrong input_shape?)"
                    )
                weight = weight.reshape(weight.shape[0], cin, h, w)
                stride, padding, groups = (1, 1), (0, 0), 1
            else:
                mod = qmodel.model.get_submodule(op.name)
                stride = tuple(int(v) for v in mod.stride)
                padding = tuple(int(v) for v in mod.padding)
                groups = int(mod.groups)
            bits, mult, offset, shift, res_mult = p.bits, p.mult, p.offset, p.shift, p.res_mult
            pout, pin = perm_of(out), perm_of(src)
            if pout is not None:
                weight = weight[pout]
                bits, mult, offset, shift = bits[pout], mult[pout], offset[pout], shift[pout]
                res_mult = None if res_mult is None else res_mult[pout]
            if pin is not None and op.kind != "depthwise":
                weight = weight[:, pin]
            fan_in = int(np.prod(weight.shape[1:]))
            if config is not None and fan_in > config.max_fan_in:
                raise ConversionError(
                    f"layer {op.name!r}: fan-in {fan_in} exceeds the accelerator's max_fan_in "
                    f"{config.max_fan_in}"
                )
            acc_bound = int(np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1).max()) * max(
                ACT_MAX, abs(p.pad_code)
            )
            check_requant_range(op.name, acc_bound, mult, offset, res_mult)
            cop = ConvOp(
                name=op.name,
                input=src,
                output=out,
                weight=np.ascontiguousarray(weight, dtype=np.int64),
                bits=np.asarray(bits, dtype=np.int64),
                mult=np.asarray(mult, dtype=np.int64),
                offset=np.asarray(offset, dtype=np.int64),
                shift=np.asarray(shift, dtype=np.int64),
                stride=stride,  # type: ignore[arg-type]
                padding=padding,  # type: ignore[arg-type]
                groups=groups,
                pad_code=p.pad_code,
                lo=p.lo,
                hi=p.hi,
                residual=None if op.residual is None else g.resolve(op.residual),
                res_mult=None if res_mult is None else np.asarray(res_mult, dtype=np.int64),
                kind=op.kind,
                permutation=None if pout is None else np.asarray(pout, dtype=np.int64),
                meta={
                    "bn": op.bn,
                    "act": op.act,
                    "acc_bits": accumulator_bits(fan_in),
                    "alpha_mode": qmodel.alpha_mode,
                },
            )
            ops.append(cop)
        elif isinstance(op, PoolNode):
            src = g.resolve(op.input)
            cin, h, w = tensors[src].shape
            if op.mode == "max":
                ops.append(PoolOp(op.name, src, op.output, "max", op.kernel, op.stride, op.padding))
                continue
            if op.mode == "gavg":
                window, kernel, stride, padding = h * w, None, (1, 1), (0, 0)
            else:
                kernel, stride, padding = op.kernel, op.stride, op.padding
                window = kernel[0] * kernel[1]  # type: ignore[index]
            pp = pool_integer_params(qmodel, op, window)
            check_requant_range(
                op.name, window * ACT_MAX, np.array([pp.mult]), np.array([pp.offset])
            )
            ops.append(
                PoolOp(
                    op.name,
                    src,
                    op.output,
                    "avg",
                    kernel,
                    stride,
                    padding,
                    pp.pad_code,
                    pp.mult,
                    pp.offset,
                    pp.shift,
                    pp.lo,
                    pp.hi,
                )
            )
    used = {"input"} | {op.output for op in ops}
    graph = IntGraph(
        input=tensors["input"],
        ops=ops,  # type: ignore[arg-type]
        output=g.resolve(g.output),
        tensors={k: v for k, v in tensors.items() if k in used},
        name=type(qmodel.model).__name__,
    )
    try:
        graph.validate()
    except NumericsError as e:
        raise ConversionError(f"converted graph is invalid: {e}") from e
    return graph


def seeded_network(name: str, cfg: AcceleratorConfig, shape: tuple[int, ...], *,
                   model_kw: dict | None = None, ratio: float | None = None, batch: int = 2,
                   frames: int = 1, seed: int = 0) -> tuple[IntGraph, np.ndarray]:
    """``(IntGraph, codes)``: ``build_model(name, **model_kw)`` with torch seed ``seed``,
    QAT-prepared for ``cfg`` (8-bit filters at ``ratio``, default ``cfg.ratio_8bit``), its
    activation ranges calibrated on ``batch`` random inputs of ``shape`` and 8-bit filters
    selected on them, converted with :func:`to_integer`; ``codes`` are the first ``frames``
    inputs quantized. For networks :mod:`filmqnn_hw.random_graph` cannot describe (width
    multipliers, the small CNN) and for tests of the conversion itself."""
    from filmqnn_quant.models import build_model
    from filmqnn_quant.qat import prepare_qat

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = build_model(name, **(model_kw or {}))
        x = torch.rand(batch, *shape)
        qm = prepare_qat(model, cfg, ratio=cfg.ratio_8bit if ratio is None else ratio,
                         example_input=x)
        qm.train()
        with torch.no_grad():
            qm(x)  # calibrate the activation ranges
        qm.select_8bit(x)
        qm.eval()
        g = to_integer(qm, shape, cfg)
    finally:
        torch.set_num_threads(threads)
    return g, quantize_input(x[:frames].numpy(), g.input.scale, g.input.zero_point)
