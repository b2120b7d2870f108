"""The layer list of a float torch model, as the accelerator's models see it, before any
quantization work.

:func:`network_of` traces the model the way the quantizer does (:func:`filmqnn_quant.graph.
capture`), propagates one input's shapes through the trace and returns a
:class:`filmqnn_hw.spec.networks.Network`: the same layers, kernels, strides, paddings,
feature-map sizes and fused residual adds the exported integer graph will have, named by the
model's own module paths (``features.7.conv``) and, for functional pools, by the traced op.
The exporter uses it to refuse a model the accelerator cannot run and to let the design
search optimise for the model, both before calibration.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from filmqnn_hw.spec.networks import Layer, Network, NetworkError
from filmqnn_quant.graph import LayerNode, PoolNode, QGraph, capture

__all__ = ["network_of"]


def _chw(shape: torch.Size) -> tuple[int, int, int]:
    """``(C, H, W)`` of a batch's ``(N, C, H, W)`` or ``(N, F)`` shape."""
    dims = tuple(int(d) for d in shape[1:])
    if len(dims) == 1:
        return dims[0], 1, 1
    if len(dims) == 3:
        return dims  # type: ignore[return-value]
    raise NetworkError(f"unexpected tensor shape {tuple(shape)}: expected (N, C, H, W) or (N, F)")


def _square(what: str, pair: tuple[int, int]) -> int:
    if pair[0] != pair[1]:
        raise NetworkError(f"{what}: only square strides and paddings are supported, not {pair}")
    return pair[0]


def _conv_layer(qg: QGraph, op: LayerNode, mod: nn.Module, shapes: dict[str, tuple[int, ...]],
                out: tuple[int, int, int]) -> Layer:
    c, h, w = shapes[qg.resolve(op.input)]
    oc, oh, ow = out
    res = qg.resolve(op.residual) if op.residual is not None else None
    if isinstance(mod, nn.Linear):
        # a classifier: one kernel over the whole (flattened) map, as the integer graph has it
        return Layer(op.name, "conv", c, oc, h, w, 1, 1, h, w, 1, 0, qg.resolve(op.input),
                     op.output, res, None, True)
    assert isinstance(mod, nn.Conv2d)
    kh, kw = (int(k) for k in mod.kernel_size)
    stride = _square(f"layer {op.name!r}", tuple(int(s) for s in mod.stride))
    pad = _square(f"layer {op.name!r}", tuple(int(p) for p in mod.padding))
    if mod.groups == 1:
        kind = "conv"
    elif mod.groups == c == oc:
        kind = "dw"
    else:
        raise NetworkError(f"layer {op.name!r}: grouped conv (groups={mod.groups}) is not "
                           "supported; only dense and depthwise convolutions map onto the array")
    return Layer(op.name, kind, c, oc, h, w, oh, ow, kh, kw, stride, pad, qg.resolve(op.input),
                 op.output, res)


def network_of(model: nn.Module, input_shape: tuple[int, int, int], name: str) -> Network:
    """The layer list of ``model`` for one input of ``input_shape`` ``(C, H, W)``.

    Raises :class:`filmqnn_quant.graph.GraphError` for a model the quantizer cannot represent
    and :class:`NetworkError` for a layer the accelerator's models do not describe.
    """
    qg = capture(model)
    gm = qg.gm
    assert gm is not None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
    node_shape = {n.name: _chw(n.meta["tensor_meta"].shape) for n in gm.graph.nodes
                  if "tensor_meta" in n.meta and hasattr(n.meta["tensor_meta"], "shape")}
    mods = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {"input": tuple(input_shape)}
    layers: list[Layer] = []
    for op in qg.ops:
        if isinstance(op, LayerNode):
            out = node_shape[op.node]
            layers.append(_conv_layer(qg, op, mods[op.name], shapes, out))
            shapes[op.output] = out
        elif isinstance(op, PoolNode):
            c, h, w = shapes[qg.resolve(op.input)]
            _, oh, ow = node_shape[op.node]
            src = qg.resolve(op.input)
            if op.kernel is None:
                layers.append(Layer(op.name, "gap", c, c, h, w, 1, 1, h, w, 1, 0, src,
                                    op.output))
            else:
                kind = "maxpool" if op.mode == "max" else "avgpool"
                layers.append(Layer(op.name, kind, c, c, h, w, oh, ow, op.kernel[0],
                                    op.kernel[1], _square(f"pool {op.name!r}", op.stride),
                                    _square(f"pool {op.name!r}", op.padding), src, op.output))
            shapes[op.output] = (c, oh, ow)
    net = Network(name, layers, "input", qg.resolve(qg.output), {"source": "torch model"})
    net.validate()
    return net
