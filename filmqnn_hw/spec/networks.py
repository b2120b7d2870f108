"""Pure-python layer lists of the benchmark networks, and the same description from an IntGraph.

The cycle model (:mod:`filmqnn_hw.models.cycles`) and the design-space exploration work on a
:class:`Network`: a list of :class:`Layer` in execution order, each naming the tensors it
reads and writes (so on-chip residency of feature maps can be planned). Shapes only; no
weights. The three benchmark networks are built here for 224x224 inputs exactly as in
torchvision (ResNet-18/50 v1.5 with the stride on the 3x3 conv, MobileNet-V2 width 1.0);
:func:`from_intgraph` turns an exported :class:`filmqnn_hw.spec.intgraph.IntGraph` into the
same description, so the model also covers any exported network.

Layer kinds
-----------
``conv``     dense convolution (groups == 1), also FC (a 1x1 conv on a 1x1 map, ``fc=True``)
``dw``       depthwise convolution (groups == in_ch == out_ch)
``maxpool``  / ``avgpool``  windowed pooling
``gap``      global average pooling (output 1x1)
``add``      stand-alone residual add of two tensors (when not fused into a conv)
A residual add fused into a conv's output pipeline is ``residual=<tensor name>``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Layer",
    "Network",
    "NetworkError",
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "get_network",
    "NETWORKS",
    "from_intgraph",
    "from_manifest",
]

KINDS = ("conv", "dw", "maxpool", "avgpool", "gap", "add")


class NetworkError(ValueError):
    """A network description that is inconsistent or unknown."""


def _out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


@dataclass(frozen=True)
class Layer:
    """One operation on feature maps: shapes, kernel, stride, padding, tensors read/written."""

    name: str
    kind: str
    in_ch: int
    out_ch: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    kh: int = 1
    kw: int = 1
    stride: int = 1
    pad: int = 0
    input: str = ""
    output: str = ""
    residual: str | None = None  # fused residual add (conv only)
    input2: str | None = None  # second operand of a stand-alone add
    fc: bool = False

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the layer (0 for pooling/add)."""
        if self.kind == "conv":
            return self.out_ch * self.in_ch * self.kh * self.kw * self.out_h * self.out_w
        if self.kind == "dw":
            return self.out_ch * self.kh * self.kw * self.out_h * self.out_w
        return 0

    @property
    def weights(self) -> int:
        """Number of weights (0 for pooling/add)."""
        if self.kind == "conv":
            return self.out_ch * self.in_ch * self.kh * self.kw
        if self.kind == "dw":
            return self.out_ch * self.kh * self.kw
        return 0

    def validate(self) -> None:
        """Check kind, positive sizes and that the output shape follows from the input."""
        if self.kind not in KINDS:
            raise NetworkError(f"layer {self.name!r}: kind must be one of {KINDS}")
        for k in ("in_ch", "out_ch", "in_h", "in_w", "out_h", "out_w", "kh", "kw", "stride"):
            if getattr(self, k) < 1:
                raise NetworkError(f"layer {self.name!r}: {k} must be >= 1")
        if self.pad < 0:
            raise NetworkError(f"layer {self.name!r}: pad must be >= 0")
        if self.kind in ("dw", "maxpool", "avgpool", "gap", "add") and self.in_ch != self.out_ch:
            raise NetworkError(f"layer {self.name!r}: {self.kind} keeps the channel count")
        if self.kind == "gap":
            if (self.out_h, self.out_w) != (1, 1):
                raise NetworkError(f"layer {self.name!r}: global pooling outputs 1x1")
        elif self.kind == "add":
            if (self.out_h, self.out_w) != (self.in_h, self.in_w) or self.input2 is None:
                raise NetworkError(f"layer {self.name!r}: add needs two equal-shape inputs")
        else:
            eh = _out(self.in_h, self.kh, self.stride, self.pad)
            ew = _out(self.in_w, self.kw, self.stride, self.pad)
            if (eh, ew) != (self.out_h, self.out_w):
                raise NetworkError(
                    f"layer {self.name!r}: output {self.out_h}x{self.out_w} does not follow from "
                    f"input {self.in_h}x{self.in_w}, kernel {self.kh}x{self.kw}, "
                    f"stride {self.stride}, pad {self.pad} (expected {eh}x{ew})"
                )
        if self.residual is not None and self.kind != "conv":
            raise NetworkError(f"layer {self.name!r}: only convolutions fuse a residual add")


@dataclass
class Network:
    """A network as a list of layers in execution order, over named feature-map tensors."""

    name: str
    layers: list[Layer]
    input: str = "input"
    output: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        """Total multiply-accumulates per frame."""
        return sum(ly.macs for ly in self.layers)

    @property
    def weights(self) -> int:
        """Total weights."""
        return sum(ly.weights for ly in self.layers)

    def validate(self) -> None:
        """Check every layer and that each tensor is produced before it is read."""
        if not self.layers:
            raise NetworkError(f"network {self.name!r} has no layers")
        shapes: dict[str, tuple[int, int, int]] = {}
        first = self.layers[0]
        shapes[self.input] = (first.in_ch, first.in_h, first.in_w)
        for ly in self.layers:
            ly.validate()
            for t, shp in (
                (ly.input, (ly.in_ch, ly.in_h, ly.in_w)),
                (ly.residual, (ly.out_ch, ly.out_h, ly.out_w)),
                (ly.input2, (ly.in_ch, ly.in_h, ly.in_w)),
            ):
                if t is None:
                    continue
                if t not in shapes:
                    raise NetworkError(f"layer {ly.name!r} reads {t!r} before it is produced")
                if shapes[t] != shp:
                    raise NetworkError(
                        f"layer {ly.name!r} reads {t!r} as {shp}, but it is {shapes[t]}"
                    )
            shapes[ly.output] = (ly.out_ch, ly.out_h, ly.out_w)
        if self.output not in shapes:
            raise NetworkError(f"network output {self.output!r} is never produced")

    def to_json(self) -> str:
        """JSON text of the layer list (loadable with :meth:`from_json`)."""
        return json.dumps(
            {"name": self.name, "input": self.input, "output": self.output,
             "layers": [asdict(ly) for ly in self.layers]},
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Network:
        """Inverse of :meth:`to_json`; validates."""
        d = json.loads(text)
        net = cls(d["name"], [Layer(**ly) for ly in d["layers"]], d["input"], d["output"])
        net.validate()
        return net


class _Builder:
    """Appends layers while tracking the current tensor and its shape."""

    def __init__(self, name: str, ch: int, h: int, w: int) -> None:
        self.layers: list[Layer] = []
        self.name = name
        self.cur = "input"
        self.shape = (ch, h, w)
        self.shapes: dict[str, tuple[int, int, int]] = {"input": self.shape}

    def _tensor(self, lname: str) -> str:
        return f"{lname}.out"

    def conv(
        self, lname: str, out_ch: int, k: int, s: int = 1, p: int | None = None, *,
        src: str | None = None, residual: str | None = None, dw: bool = False, fc: bool = False,
    ) -> str:
        src = self.cur if src is None else src
        c, h, w = self.shapes[src]
        p = k // 2 if p is None else p
        oh, ow = _out(h, k, s, p), _out(w, k, s, p)
        ly = Layer(lname, "dw" if dw else "conv", c, out_ch, h, w, oh, ow, k, k, s, p,
                   src, self._tensor(lname), residual, None, fc)
        return self._push(ly)

    def pool(self, lname: str, kind: str, k: int = 1, s: int = 1, p: int = 0) -> str:
        c, h, w = self.shape
        if kind == "gap":
            ly = Layer(lname, "gap", c, c, h, w, 1, 1, h, w, 1, 0, self.cur, self._tensor(lname))
        else:
            ly = Layer(lname, kind, c, c, h, w, _out(h, k, s, p), _out(w, k, s, p), k, k, s, p,
                       self.cur, self._tensor(lname))
        return self._push(ly)

    def _push(self, ly: Layer) -> str:
        self.layers.append(ly)
        self.cur = ly.output
        self.shape = (ly.out_ch, ly.out_h, ly.out_w)
        self.shapes[ly.output] = self.shape
        return ly.output

    def build(self, meta: dict[str, Any] | None = None) -> Network:
        net = Network(self.name, self.layers, "input", self.cur, meta or {})
        net.validate()
        return net


def resnet18(size: int = 224, num_classes: int = 1000) -> Network:
    """torchvision ResNet-18 (BasicBlock x [2, 2, 2, 2]) at ``size`` x ``size``."""
    return _resnet("resnet18", [2, 2, 2, 2], bottleneck=False, size=size, nc=num_classes)


def resnet50(size: int = 224, num_classes: int = 1000) -> Network:
    """torchvision ResNet-50 v1.5 (Bottleneck x [3, 4, 6, 3], stride on the 3x3)."""
    return _resnet("resnet50", [3, 4, 6, 3], bottleneck=True, size=size, nc=num_classes)


def _resnet(name: str, blocks: list[int], *, bottleneck: bool, size: int, nc: int) -> Network:
    b = _Builder(name, 3, size, size)
    b.conv("conv1", 64, 7, 2, 3)
    b.pool("maxpool", "maxpool", 3, 2, 1)
    in_ch = 64
    for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True), start=1):
        for i in range(n):
            s = 2 if (i == 0 and stage > 1) else 1
            out_ch = width * 4 if bottleneck else width
            pre = f"layer{stage}.{i}"
            x = b.cur
            if s != 1 or in_ch != out_ch:
                identity = b.conv(f"{pre}.downsample", out_ch, 1, s, 0, src=x)
            else:
                identity = x
            if bottleneck:
                b.conv(f"{pre}.conv1", width, 1, 1, 0, src=x)
                b.conv(f"{pre}.conv2", width, 3, s, 1)
                b.conv(f"{pre}.conv3", out_ch, 1, 1, 0, residual=identity)
            else:
                b.conv(f"{pre}.conv1", width, 3, s, 1, src=x)
                b.conv(f"{pre}.conv2", width, 3, 1, 1, residual=identity)
            in_ch = out_ch
    b.pool("avgpool", "gap")
    b.conv("fc", nc, 1, 1, 0, fc=True)
    return b.build({"source": "torchvision layer structure"})


def mobilenet_v2(size: int = 224, num_classes: int = 1000) -> Network:
    """torchvision MobileNet-V2 (width 1.0) at ``size`` x ``size``."""
    b = _Builder("mobilenet_v2", 3, size, size)
    b.conv("features.0", 32, 3, 2, 1)
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    in_ch, idx = 32, 1
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            pre = f"features.{idx}"
            x = b.cur
            hidden = in_ch * t
            if t != 1:
                b.conv(f"{pre}.expand", hidden, 1, 1, 0)
            b.conv(f"{pre}.dw", hidden, 3, stride, 1, dw=True)
            res = x if (stride == 1 and in_ch == c) else None
            b.conv(f"{pre}.project", c, 1, 1, 0, residual=res)
            in_ch, idx = c, idx + 1
    b.conv(f"features.{idx}", 1280, 1, 1, 0)
    b.pool("avgpool", "gap")
    b.conv("classifier", num_classes, 1, 1, 0, fc=True)
    return b.build({"source": "torchvision layer structure"})


NETWORKS = {"resnet18": resnet18, "resnet50": resnet50, "mobilenet_v2": mobilenet_v2}


def get_network(net: str | Network) -> Network:
    """A benchmark network by name (``resnet18``, ``resnet50``, ``mobilenet_v2``), or as given."""
    if isinstance(net, Network):
        return net
    if net not in NETWORKS:
        raise NetworkError(f"unknown network {net!r}; known: {', '.join(NETWORKS)}")
    return NETWORKS[net]()


def from_intgraph(graph: Any) -> Network:
    """Build the layer list of an exported :class:`filmqnn_hw.spec.intgraph.IntGraph`.

    ConvOp -> ``conv`` / ``dw`` (``kind == "depthwise"`` or groups == channels) / FC
    (``kind == "linear"``, a conv whose kernel covers the input); PoolOp -> ``maxpool`` /
    ``avgpool`` / ``gap``; AddOp -> ``add``. Grouped convolutions other than depthwise are
    refused (the accelerator has no mapping for them).
    """
    from filmqnn_hw.spec.intgraph import AddOp, ConvOp, PoolOp  # local: keep numpy-free import

    tensors = dict(graph.tensors)
    tensors.setdefault(graph.input.name, graph.input)

    def shp(name: str) -> tuple[int, int, int]:
        if name not in tensors:
            raise NetworkError(f"tensor {name!r} has no TensorSpec in the graph")
        t = tensors[name]
        return t.channels, t.height, t.width

    layers: list[Layer] = []
    for op in graph.ops:
        if isinstance(op, ConvOp):
            c, h, w = shp(op.input)
            oc, oh, ow = shp(op.output)
            kh, kw = op.kernel
            if op.stride[0] != op.stride[1] or op.padding[0] != op.padding[1]:
                raise NetworkError(f"layer {op.name!r}: only square stride/padding is modelled")
            if op.groups == 1:
                kind = "conv"
            elif op.groups == c == oc:
                kind = "dw"
            else:
                raise NetworkError(
                    f"layer {op.name!r}: grouped conv (groups={op.groups}) is not supported; "
                    "only dense and depthwise convolutions map onto the array"
                )
            fc = op.kind == "linear"
            layers.append(Layer(op.name, kind, c, oc, h, w, oh, ow, kh, kw, op.stride[0],
                                op.padding[0], op.input, op.output, op.residual, None, fc))
        elif isinstance(op, PoolOp):
            c, h, w = shp(op.input)
            _, oh, ow = shp(op.output)
            if op.kernel is None:
                layers.append(Layer(op.name, "gap", c, c, h, w, 1, 1, h, w, 1, 0,
                                    op.input, op.output))
            else:
                kind = "maxpool" if op.mode == "max" else "avgpool"
                layers.append(Layer(op.name, kind, c, c, h, w, oh, ow, op.kernel[0],
                                    op.kernel[1], op.stride[0], op.padding[0], op.input,
                                    op.output))
        elif isinstance(op, AddOp):
            c, h, w = shp(op.a)
            layers.append(Layer(op.name, "add", c, c, h, w, h, w, 1, 1, 1, 0, op.a, op.output,
                                None, op.b))
        else:
            raise NetworkError(f"unsupported op {type(op).__name__} ({getattr(op, 'name', '?')})")
    net = Network(graph.name, layers, graph.input.name, graph.output,
                  {"source": "IntGraph"})
    net.validate()
    return net


def from_manifest(manifest: dict[str, Any] | str | Any, name: str | None = None) -> Network:
    """Build the layer list from an exported ``manifest.json`` (``filmqnn_quant.export``).

    ``manifest`` is the parsed dict or a path to the file. The manifest lists every op with
    its kind, tensors, channels, kernel, stride and padding; spatial sizes are propagated
    from ``manifest["input"]["shape"]`` (C, H, W).
    """
    from pathlib import Path

    where = "manifest"
    if not isinstance(manifest, dict):
        where = str(manifest)
        try:
            manifest = json.loads(Path(manifest).read_text())
        except FileNotFoundError:
            raise NetworkError(f"{where} does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            raise NetworkError(f"{where} cannot be read: {e}") from None
        except json.JSONDecodeError as e:
            raise NetworkError(f"{where} is not JSON ({e.msg} at line {e.lineno}): give the "
                               "manifest.json that `python -m filmqnn_quant export` wrote, "
                               "or export again") from None
    try:
        return _network_of_manifest(manifest, name)
    except NetworkError as e:
        raise NetworkError(f"{where}: {e}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise NetworkError(f"{where} is not a filmqnn manifest ({type(e).__name__}: {e}): "
                           "give the manifest.json that `python -m filmqnn_quant export` "
                           "wrote, or export again") from None


def _network_of_manifest(manifest: Any, name: str | None) -> Network:
    """:func:`from_manifest` of a parsed manifest."""
    if not isinstance(manifest, dict):
        raise TypeError(f"the top level is a {type(manifest).__name__}, not an object")
    try:
        inp = manifest["input"]
        c0, h0, w0 = (int(x) for x in inp["shape"][-3:])
        entries = manifest["layers"]
    except (KeyError, TypeError, ValueError) as e:
        raise NetworkError(f"not a filmqnn manifest (missing input shape or layers): {e}") from e
    shapes: dict[str, tuple[int, int, int]] = {inp["tensor"]: (c0, h0, w0)}
    layers: list[Layer] = []
    for e in entries:
        kind = e.get("kind")
        nm = e.get("name", "?")
        src = e["inputs"][0] if kind == "add" else e.get("input")
        if src not in shapes:
            raise NetworkError(f"manifest layer {nm!r} reads {src!r} before it is produced")
        c, h, w = shapes[src]
        if kind in ("conv", "depthwise", "linear"):
            kh, kw = e["kernel"]
            (s, s2), (p, p2) = e["stride"], e["padding"]
            if s != s2 or p != p2:
                raise NetworkError(f"manifest layer {nm!r}: only square stride/padding modelled")
            groups = int(e.get("groups", 1))
            oc = int(e["out_channels"])
            if groups == 1:
                lk = "conv"
            elif groups == c == oc:
                lk = "dw"
            else:
                raise NetworkError(f"manifest layer {nm!r}: grouped conv (groups={groups}) is "
                                   "not supported")
            ly = Layer(nm, lk, c, oc, h, w, _out(h, kh, s, p), _out(w, kw, s, p), kh, kw, s, p,
                       src, e["output"], e.get("residual"), None, kind == "linear")
        elif kind in ("maxpool", "avgpool"):
            kh, kw = e["kernel"]
            (s, _), (p, _) = e["stride"], e["padding"]
            ly = Layer(nm, kind, c, c, h, w, _out(h, kh, s, p), _out(w, kw, s, p), kh, kw, s, p,
                       src, e["output"])
        elif kind == "global_avgpool":
            ly = Layer(nm, "gap", c, c, h, w, 1, 1, h, w, 1, 0, src, e["output"])
        elif kind == "add":
            ly = Layer(nm, "add", c, c, h, w, h, w, 1, 1, 1, 0, src, e["output"], None,
                       e["inputs"][1])
        else:
            raise NetworkError(f"manifest layer {nm!r}: unknown kind {kind!r}")
        layers.append(ly)
        shapes[ly.output] = (ly.out_ch, ly.out_h, ly.out_w)
    net = Network(name or str(manifest.get("model", "exported")), layers, inp["tensor"],
                  layers[-1].output if layers else "", {"source": "manifest.json"})
    net.validate()
    return net


def gmacs(net: Network) -> float:
    """Giga-MACs per frame."""
    return net.macs / 1e9


def tile_count(extent: int, tile: int) -> int:
    """Number of tiles of size ``tile`` covering ``extent``."""
    return math.ceil(extent / tile)
