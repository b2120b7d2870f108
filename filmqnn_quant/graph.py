"""Graph capture: a torch.fx trace turned into the quantizer's layer graph (``QGraph``).

The quantizer does not rewrite the fx graph node by node; it *parses* it into a short list of
integer-shaped operations, the same shapes the golden model (:mod:`filmqnn_hw.spec.intgraph`)
executes:

* :class:`LayerNode`: a ``Conv2d`` or ``Linear`` with everything fused into its output
  pipeline: the ``BatchNorm2d`` right after it, one residual ``+`` (the other operand is a
  stored tensor), and a final ``ReLU``/``ReLU6``.
* :class:`PoolNode`: max pooling, average pooling, global average pooling.
* :class:`AliasNode`: operations that do not touch codes (``flatten``, ``Dropout``,
  ``Identity``): in training they run (dropout is active), in the integer model they vanish.

A tensor is *materialized* (becomes a stored 5-bit code tensor with its own activation
quantizer) when something other than a fusable successor consumes it. Tensors written by a
layer without ReLU are signed (they get a zero point). The graph output must be a layer: it is
materialized as signed 16-bit logits.

Channel groups: tensors that must share one channel order (a residual add's operands and
result, a depthwise convolution's input and output, a pool's input and output, an alias's
input and output) are merged with union-find. The network input's group and the logits'
group are *fixed*: their channel order cannot be changed.

Anything else (dilated or grouped non-depthwise convolutions, sigmoid, concatenation, ...)
raises :class:`GraphError` naming the fx node and the module/function.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

__all__ = ["GraphError", "TensorNode", "LayerNode", "PoolNode", "AliasNode", "QGraph", "capture"]


class GraphError(ValueError):
    """A model the quantizer cannot represent. The message names the layer and the fix."""


@dataclass
class TensorNode:
    """A tensor of the integer model.

    ``kind``: ``"input"``, ``"act"`` (5-bit code tensor with its own quantizer), ``"logits"``
    (signed 16-bit), ``"shared"`` (max-pool output: same quantizer as ``quant_of``) or
    ``"alias"`` (same codes as ``alias_of``).
    """

    name: str
    kind: str
    signed: bool = False
    cap: float | None = None  # ReLU6 upper bound of the real value
    flat: bool = False
    from_linear: bool = False
    quant_of: str | None = None
    alias_of: str | None = None


@dataclass
class LayerNode:
    """A conv/linear layer with its fused BN, residual add and activation."""

    name: str  # module qualname of the conv/linear, e.g. "layer1.0.conv2"
    kind: str  # "conv" | "depthwise" | "linear"
    input: str
    output: str = ""
    bn: str | None = None
    residual: str | None = None
    act: str | None = None  # None | "relu" | "relu6"
    node: str = ""  # the torch.fx node that calls the layer (QGraph.gm)


@dataclass
class PoolNode:
    """Pooling: ``mode`` is ``"max"``, ``"avg"`` or ``"gavg"`` (global average)."""

    name: str
    mode: str
    input: str
    output: str
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    node: str = ""  # the torch.fx node of the pooling (QGraph.gm)


@dataclass
class AliasNode:
    """A code-preserving step (flatten, dropout, identity); ``module`` runs in training."""

    name: str
    input: str
    output: str
    module: str | None = None
    flatten: bool = False


@dataclass
class QGraph:
    """The parsed model: ops in execution order, tensors by name, channel groups."""

    ops: list[LayerNode | PoolNode | AliasNode]
    tensors: dict[str, TensorNode]
    output: str
    parent: dict[str, str] = field(default_factory=dict)
    gm: fx.GraphModule | None = None  # the traced model; PoolNode names are its node names

    def find(self, name: str) -> str:
        """Union-find root of a tensor's channel group."""
        p = self.parent
        while p[name] != name:
            p[name] = p[p[name]]
            name = p[name]
        return name

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def groups(self) -> dict[str, list[str]]:
        """Group root -> member tensor names."""
        out: dict[str, list[str]] = {}
        for t in self.tensors:
            out.setdefault(self.find(t), []).append(t)
        return out

    def fixed_groups(self) -> set[str]:
        """Roots of groups whose channel order is fixed (network input, logits)."""
        return {self.find("input"), self.find(self.output)}

    def layers(self) -> list[LayerNode]:
        return [op for op in self.ops if isinstance(op, LayerNode)]

    def resolve(self, name: str) -> str:
        """Follow aliases to the stored tensor."""
        while self.tensors[name].alias_of is not None:
            name = self.tensors[name].alias_of  # type: ignore[assignment]
        return name

    def quant_name(self, name: str) -> str:
        """The tensor whose activation quantizer defines ``name``'s scale/zero point."""
        name = self.resolve(name)
        t = self.tensors[name]
        while t.quant_of is not None:
            name = self.resolve(t.quant_of)
            t = self.tensors[name]
        return name


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


class _Pending:
    """A layer whose output is still being fused (BN, residual, activation)."""

    def __init__(self, layer: LayerNode, users: int):
        self.layer = layer
        self.users = users


_ADD = {operator.add, torch.add, operator.iadd}
_RELU_F = {F.relu, torch.relu}
_RELU6_F = {F.relu6}


class _Builder:
    def __init__(self, gm: fx.GraphModule, root: nn.Module):
        self.root = root
        self.mods = dict(root.named_modules())
        self.ops: list[LayerNode | PoolNode | AliasNode] = []
        self.tensors: dict[str, TensorNode] = {}
        self.val: dict[fx.Node, str | _Pending] = {}
        self.gm = gm
        self.output = ""
        self.parent: dict[str, str] = {}
        self.layer_names: set[str] = set()

    # -- helpers -----------------------------------------------------------------------------
    def _new_tensor(self, t: TensorNode) -> str:
        if t.name in self.tensors:
            i = 1
            while f"{t.name}_{i}" in self.tensors:
                i += 1
            t.name = f"{t.name}_{i}"
        self.tensors[t.name] = t
        self.parent[t.name] = t.name
        return t.name

    def _union(self, a: str, b: str) -> None:
        def find(x: str) -> str:
            while self.parent[x] != x:
                x = self.parent[x]
            return x

        ra, rb = find(a), find(b)
        if ra != rb:
            self.parent[rb] = ra

    def materialize(self, node: fx.Node, logits: bool = False) -> str:
        v = self.val.get(node)
        if v is None:
            raise GraphError(f"node {node.name!r} is not a tensor the quantizer tracks")
        if isinstance(v, str):
            if logits:
                raise GraphError(
                    f"the model output {node.name!r} must come straight from a Conv2d or Linear"
                    " layer (the logits layer), not from a pooling/activation step"
                )
            return v
        layer = v.layer
        t = TensorNode(
            name=layer.name,
            kind="logits" if logits else "act",
            signed=logits or layer.act is None,
            cap=6.0 if layer.act == "relu6" else None,
            from_linear=layer.kind == "linear",
        )
        name = self._new_tensor(t)
        layer.output = name
        self.ops.append(layer)  # a layer executes when its output is stored
        if layer.residual is not None:
            self._union(name, layer.residual)
        if layer.kind == "depthwise":
            self._union(name, layer.input)
        self.val[node] = name
        return name

    def pending_ok(self, node: fx.Node) -> _Pending | None:
        """The pending layer behind ``node`` if it can absorb one more fused step."""
        v = self.val.get(node)
        if isinstance(v, _Pending) and len(node.users) == 1 and v.layer.act is None:
            return v
        return None

    def module(self, node: fx.Node) -> nn.Module:
        return self.mods[str(node.target)]

    # -- node handlers -----------------------------------------------------------------------
    def run(self) -> QGraph:
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise GraphError(f"the model must take exactly one input, not {len(placeholders)}")
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.val[node] = self._new_tensor(TensorNode("input", "input"))
            elif node.op == "call_module":
                self.call_module(node)
            elif node.op == "call_function":
                self.call_function(node)
            elif node.op == "call_method":
                self.call_method(node)
            elif node.op == "output":
                arg = node.args[0]
                if not isinstance(arg, fx.Node):
                    raise GraphError("the model must return a single tensor (the logits)")
                self.output = self.materialize(arg, logits=True)
            else:
                raise GraphError(
                    f"unsupported fx node {node.name!r} ({node.op} {node.target}): parameters "
                    "used directly in forward() are not supported; use nn.Modules"
                )
        g = QGraph(self.ops, self.tensors, self.output, self.parent, self.gm)
        for t in g.tensors:  # compress
            g.find(t)
        return g

    def _arg(self, node: fx.Node, i: int = 0) -> fx.Node:
        a = node.args[i] if len(node.args) > i else None
        if not isinstance(a, fx.Node):
            raise GraphError(f"node {node.name!r}: expected a tensor argument, got {a!r}")
        return a

    def add_layer(self, node: fx.Node, name: str, kind: str) -> None:
        src = self._arg(node)
        inp = self.materialize(src)
        if kind == "linear":
            t = self.tensors[inp]
            if not (t.flat or t.from_linear):
                raise GraphError(
                    f"Linear layer {name!r} must be applied to a flattened tensor "
                    "(torch.flatten(x, 1) or another Linear's output)"
                )
        if name in self.layer_names:
            raise GraphError(
                f"layer {name!r} is called more than once in forward(); shared layers are not "
                "supported (give every call its own module)"
            )
        self.layer_names.add(name)
        layer = LayerNode(name=name, kind=kind, input=inp, node=node.name)
        self.val[node] = _Pending(layer, len(node.users))

    def add_act(self, node: fx.Node, act: str, what: str) -> None:
        src = self._arg(node)
        p = self.pending_ok(src)
        if p is None:
            raise GraphError(
                f"{what} {node.name!r} does not directly follow a Conv2d/Linear (+BN, +residual)"
                " whose only consumer it is; a stand-alone activation is not supported"
            )
        p.layer.act = act
        self.val[node] = p

    def add_pool(self, node: fx.Node, mode: str, kernel, stride, padding, flat=False,
                 name: str | None = None) -> None:
        """A pooling op, named ``name`` (a module's path) or by its fx node."""
        name = name or node.name
        inp = self.materialize(self._arg(node))
        src = self.tensors[inp]
        if mode == "max":
            t = TensorNode(name, "shared", signed=src.signed, cap=src.cap, quant_of=inp)
        else:
            t = TensorNode(name, "act", signed=src.signed, cap=src.cap, flat=flat)
        out = self._new_tensor(t)
        self._union(inp, out)
        self.ops.append(
            PoolNode(
                name,
                mode,
                inp,
                out,
                None if kernel is None else _pair(kernel),
                _pair(stride if stride is not None else kernel or 1),
                _pair(padding),
                node.name,
            )
        )
        self.val[node] = out

    def add_mean(self, node: fx.Node) -> None:
        """``x.mean((2, 3))`` / ``torch.mean(x, (-2, -1), keepdim)``: global average pool."""
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        dims = sorted(d % 4 for d in dim) if isinstance(dim, (tuple, list)) else None
        if dims != [2, 3] or node.kwargs.get("dtype") is not None:
            raise GraphError(
                f"mean {node.name!r}: only the spatial mean x.mean((2, 3)) is supported"
            )
        self.add_pool(node, "gavg", None, 1, 0, flat=not keep)

    def add_alias(self, node: fx.Node, module: str | None, flatten: bool) -> None:
        inp = self.materialize(self._arg(node))
        src = self.tensors[inp]
        t = TensorNode(
            node.name,
            "alias",
            signed=src.signed,
            cap=src.cap,
            flat=src.flat or flatten,
            from_linear=src.from_linear,
            alias_of=inp,
        )
        out = self._new_tensor(t)
        self._union(inp, out)
        self.ops.append(AliasNode(node.name, inp, out, module, flatten))
        self.val[node] = out

    def add_residual(self, node: fx.Node) -> None:
        if len(node.args) != 2 or node.kwargs:
            raise GraphError(f"add {node.name!r}: only 'a + b' of two tensors is supported")
        a, b = self._arg(node, 0), self._arg(node, 1)
        pa, pb = self.pending_ok(a), self.pending_ok(b)
        if pa is not None and pa.layer.residual is None:
            p, other = pa, b
        elif pb is not None and pb.layer.residual is None:
            p, other = pb, a
        else:
            raise GraphError(
                f"residual add {node.name!r}: neither operand is a Conv2d(+BN) output that can "
                "absorb the add (ReLU must come after the add; each conv absorbs one add)"
            )
        res = self.materialize(other)
        p.layer.residual = res
        self.val[node] = p

    def call_module(self, node: fx.Node) -> None:
        m = self.module(node)
        name = str(node.target)
        if isinstance(m, nn.Conv2d):
            if _pair(m.dilation) != (1, 1):
                raise GraphError(f"Conv2d {name!r}: dilation {m.dilation} is not supported")
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise GraphError(
                    f"Conv2d {name!r}: only numeric zero padding is supported "
                    f"(padding={m.padding!r}, padding_mode={m.padding_mode!r})"
                )
            if m.groups == 1:
                kind = "conv"
            elif m.groups == m.in_channels == m.out_channels:
                kind = "depthwise"
            else:
                raise GraphError(
                    f"Conv2d {name!r}: groups={m.groups} (in {m.in_channels}, out "
                    f"{m.out_channels}) is not supported; only groups=1 or depthwise with "
                    "in_channels == out_channels == groups"
                )
            self.add_layer(node, name, kind)
        elif isinstance(m, nn.Linear):
            self.add_layer(node, name, "linear")
        elif isinstance(m, nn.BatchNorm2d):
            src = self._arg(node)
            p = self.val.get(src)
            if (
                not isinstance(p, _Pending)
                or len(src.users) != 1
                or p.layer.bn is not None
                or p.layer.residual is not None
                or p.layer.act is not None
                or p.layer.kind == "linear"
            ):
                raise GraphError(
                    f"BatchNorm2d {name!r} must directly follow a Conv2d that feeds nothing else"
                )
            if not m.track_running_stats or m.running_mean is None:
                raise GraphError(f"BatchNorm2d {name!r} must track running statistics")
            p.layer.bn = name
            self.val[node] = p
        elif isinstance(m, nn.ReLU):
            self.add_act(node, "relu", f"ReLU {name!r}")
        elif isinstance(m, nn.ReLU6):
            self.add_act(node, "relu6", f"ReLU6 {name!r}")
        elif isinstance(m, nn.MaxPool2d):
            if _pair(m.dilation) != (1, 1) or m.ceil_mode or m.return_indices:
                raise GraphError(f"MaxPool2d {name!r}: dilation/ceil_mode are not supported")
            self.add_pool(node, "max", m.kernel_size, m.stride, m.padding, name=name)
        elif isinstance(m, nn.AvgPool2d):
            if m.ceil_mode or not m.count_include_pad or m.divisor_override is not None:
                raise GraphError(
                    f"AvgPool2d {name!r}: only ceil_mode=False, count_include_pad=True, no "
                    "divisor_override are supported"
                )
            self.add_pool(node, "avg", m.kernel_size, m.stride, m.padding, name=name)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            if _pair(m.output_size) != (1, 1):  # type: ignore[arg-type]
                raise GraphError(f"AdaptiveAvgPool2d {name!r}: only output size 1 is supported")
            self.add_pool(node, "gavg", None, 1, 0, name=name)
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise GraphError(f"Flatten {name!r}: only start_dim=1, end_dim=-1")
            self.add_alias(node, None, True)
        elif isinstance(m, (nn.Dropout, nn.Identity)):
            self.add_alias(node, name, False)
        else:
            raise GraphError(
                f"layer {name!r} of type {type(m).__name__} is not supported by the quantizer "
                "(supported: Conv2d, Linear, BatchNorm2d, ReLU, ReLU6, MaxPool2d, AvgPool2d, "
                "AdaptiveAvgPool2d(1), Flatten, Dropout, Identity, residual +)"
            )

    def call_function(self, node: fx.Node) -> None:
        f = node.target
        if f in _ADD:
            self.add_residual(node)
        elif f in _RELU_F:
            self.add_act(node, "relu", f"relu {node.name!r}")
        elif f in _RELU6_F:
            self.add_act(node, "relu6", f"relu6 {node.name!r}")
        elif f is torch.flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            if start != 1 or end != -1:
                raise GraphError(f"flatten {node.name!r}: only torch.flatten(x, 1) is supported")
            self.add_alias(node, None, True)
        elif f is F.adaptive_avg_pool2d:
            size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
            if _pair(size) != (1, 1):  # type: ignore[arg-type]
                raise GraphError(f"{node.name!r}: only adaptive_avg_pool2d(x, 1) is supported")
            self.add_pool(node, "gavg", None, 1, 0)
        elif f is torch.mean:
            self.add_mean(node)
        elif f is F.dropout:
            raise GraphError(f"{node.name!r}: use nn.Dropout modules instead of F.dropout")
        else:
            fname = getattr(f, "__name__", str(f))
            raise GraphError(
                f"function {fname!r} (fx node {node.name!r}) is not supported by the quantizer"
            )

    def call_method(self, node: fx.Node) -> None:
        meth = str(node.target)
        if meth == "flatten":
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            if start != 1 or len(node.args) > 2:
                raise GraphError(f"{node.name!r}: only x.flatten(1) is supported")
            self.add_alias(node, None, True)
        elif meth in ("add", "add_"):
            self.add_residual(node)
        elif meth == "mean":
            self.add_mean(node)
        elif meth in ("relu", "relu_"):
            self.add_act(node, "relu", f"relu {node.name!r}")
        else:
            raise GraphError(
                f"tensor method {meth!r} (fx node {node.name!r}) is not supported by the "
                "quantizer (use torch.flatten(x, 1) instead of view/reshape)"
            )


def capture(model: nn.Module) -> QGraph:
    """Trace ``model`` with ``torch.fx.symbolic_trace`` and parse it into a :class:`QGraph`."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise GraphError(f"torch.fx could not trace the model: {e}") from e
    return _Builder(gm, model).run()
