"""The integer graph: the golden model every piece of hardware must equal bit for bit.

An :class:`IntGraph` is a list of integer operations in execution order over named tensors
of 5-bit codes. It is produced from a quantized torch model by
:func:`filmqnn_quant.convert.to_integer`, serialised into weight images by
:mod:`filmqnn_hw.spec.weight_image`, and executed here with numpy only (no torch, no amaranth), so
the
hardware tests depend on nothing but this module and :mod:`filmqnn_hw.spec.numerics`.

Exactness: convolutions are evaluated as float64 matrix products of integer-valued arrays.
Every product and every partial sum is an integer below 2**53 in magnitude (checked), so
the float64 result is the exact integer sum; it is then converted to int64 and compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from filmqnn_hw.spec.config import ACT_MAX, W4_MAX, W8_MAX
from filmqnn_hw.spec.numerics import NumericsError, requantize

__all__ = ["TensorSpec", "ConvOp", "PoolOp", "AddOp", "IntGraph", "conv_accumulate"]

_EXACT_LIMIT = 1 << 52


@dataclass
class TensorSpec:
    """A tensor of codes: real value = ``scale * (code - zero_point)``, codes in [lo, hi]."""

    name: str
    channels: int
    height: int
    width: int
    scale: float
    zero_point: int = 0
    lo: int = 0
    hi: int = ACT_MAX

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass
class ConvOp:
    """Convolution (also depthwise, via ``groups``, and FC, as a conv over the whole input).

    ``weight`` has shape ``(C_out, C_in // groups, kh, kw)`` of codes; ``bits[c]`` is 4 or 8 and
    bounds ``weight[c]`` to [-7, 7] or [-127, 127]. Output channel ``c`` is
    ``requantize(acc_c, mult[c], offset[c], shift[c], lo, hi, res_c, res_mult[c])`` where
    ``acc_c`` is the exact sum of ``weight * input_code`` with the input padded by
    ``pad_code``, and ``res`` (optional) is a tensor of the output's shape (a fused residual
    add).
    """

    name: str
    input: str
    output: str
    weight: np.ndarray
    bits: np.ndarray
    mult: np.ndarray
    offset: np.ndarray
    shift: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    pad_code: int = 0
    lo: int = 0
    hi: int = ACT_MAX
    residual: str | None = None
    res_mult: np.ndarray | None = None
    kind: str = "conv"  # "conv", "depthwise", "linear"
    permutation: np.ndarray | None = None  # original filter index of each output position
    meta: dict = field(default_factory=dict)

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1] * self.groups)

    @property
    def kernel(self) -> tuple[int, int]:
        return (int(self.weight.shape[2]), int(self.weight.shape[3]))

    @property
    def fan_in(self) -> int:
        return int(np.prod(self.weight.shape[1:]))

    @property
    def n_8bit(self) -> int:
        return int(np.sum(self.bits == 8))

    def validate(self) -> None:
        w, b = self.weight, self.bits
        if w.ndim != 4:
            raise NumericsError(f"layer {self.name!r}: weight must be 4-D, not {w.shape}")
        c = w.shape[0]
        for attr in ("bits", "mult", "offset", "shift"):
            v = getattr(self, attr)
            if np.shape(v) != (c,):
                raise NumericsError(
                    f"layer {self.name!r}: {attr} must have {c} entries, has {np.shape(v)}"
                )
        qmax = np.where(b == 8, W8_MAX, W4_MAX).reshape(-1, 1, 1, 1)
        if not np.all((b == 4) | (b == 8)):
            raise NumericsError(f"layer {self.name!r}: filter widths must be 4 or 8")
        if np.any(np.abs(w) > qmax):
            bad = np.nonzero(np.any(np.abs(w) > qmax, axis=(1, 2, 3)))[0]
            raise NumericsError(
                f"layer {self.name!r}: filters {bad[:8].tolist()} have codes outside their "
                "declared range ([-7, 7] for 4-bit, [-127, 127] for 8-bit)"
            )
        if (self.residual is None) != (self.res_mult is None):
            raise NumericsError(f"layer {self.name!r}: residual and res_mult go together")


@dataclass
class PoolOp:
    """Max or average pooling on codes (``kernel=None`` with ``mode='avg'``: global average).

    Max pooling keeps the input's scale and zero point; padded positions never win.
    Average pooling sums the window (padded positions count as ``pad_code``, PyTorch's
    ``count_include_pad=True``) and requantizes the sum with the per-layer
    ``mult``/``offset``/``shift`` (one value, broadcast over channels).
    """

    name: str
    input: str
    output: str
    mode: str  # "max" | "avg"
    kernel: tuple[int, int] | None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    pad_code: int = 0
    mult: int = 1
    offset: int = 0
    shift: int = 0
    lo: int = 0
    hi: int = ACT_MAX


@dataclass
class AddOp:
    """Stand-alone residual add of two code tensors with different scales.

    ``out = clip((a * mult_a + b * mult_b + offset) >> shift, lo, hi)``; used only where the add
    cannot be fused into the preceding convolution's output pipeline.
    """

    name: str
    a: str
    b: str
    output: str
    mult_a: int
    mult_b: int
    offset: int
    shift: int
    lo: int = 0
    hi: int = ACT_MAX


Op = ConvOp | PoolOp | AddOp


@dataclass
class IntGraph:
    """A whole integer network: input quantization, operations, output tensor."""

    input: TensorSpec
    ops: list[Op]
    output: str
    tensors: dict[str, TensorSpec]
    name: str = "model"

    def conv_ops(self) -> list[ConvOp]:
        return [op for op in self.ops if isinstance(op, ConvOp)]

    def validate(self) -> None:
        known = {self.input.name}
        for op in self.ops:
            srcs = (
                [op.input] + ([op.residual] if isinstance(op, ConvOp) and op.residual else [])
                if not isinstance(op, AddOp)
                else [op.a, op.b]
            )
            for s in srcs:
                if s not in known:
                    raise NumericsError(f"op {op.name!r} reads tensor {s!r} before it is produced")
            if isinstance(op, ConvOp):
                op.validate()
            known.add(op.output)
        if self.output not in known:
            raise NumericsError(f"graph output {self.output!r} is never produced")

    # -- execution -----------------------------------------------------------------------------
    def run(self, codes: np.ndarray, *, keep: bool = False) -> np.ndarray | dict[str, np.ndarray]:
        """Execute on input codes of shape (N, C, H, W); return output codes (int64).

        With ``keep=True`` returns every tensor by name (for per-layer comparisons).
        """
        x = np.asarray(codes)
        if x.ndim != 4:
            raise NumericsError(f"input codes must be (N, C, H, W), not {x.shape}")
        if x.min() < self.input.lo or x.max() > self.input.hi:
            raise NumericsError("input codes outside the input tensor's declared range")
        env: dict[str, np.ndarray] = {self.input.name: x.astype(np.int64)}
        for op in self.ops:
            env[op.output] = run_op(op, env)
        return env if keep else env[self.output]


def _pad(x: np.ndarray, padding: tuple[int, int], value: int) -> np.ndarray:
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """(N, C, Ho, Wo, kh, kw) view of the (already padded) input."""
    kh, kw = kernel
    v = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return v[:, :, :: stride[0], :: stride[1]]


def conv_accumulate(
    x: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int,
    pad_code: int,
) -> np.ndarray:
    """Exact integer accumulators (N, C_out, Ho, Wo) of a grouped convolution of codes."""
    n, cin, _, _ = x.shape
    cout, cpg, kh, kw = weight.shape
    if cin != cpg * groups:
        raise NumericsError(f"conv expects {cpg * groups} input channels, got {cin}")
    bound = int(np.abs(weight).reshape(cout, -1).sum(axis=1).max(initial=0)) * int(
        max(abs(int(x.max(initial=0))), abs(pad_code), 1)
    )
    if bound >= _EXACT_LIMIT:
        raise NumericsError("accumulator bound exceeds the exact float64 range")
    xp = _pad(x, padding, pad_code).astype(np.float64)
    win = _windows(xp, (kh, kw), stride)  # N, C, Ho, Wo, kh, kw
    ho, wo = win.shape[2], win.shape[3]
    out = np.empty((n, cout, ho, wo), dtype=np.float64)
    wf = weight.astype(np.float64)
    if groups == 1:
        out[:] = np.einsum("nchwij,ocij->nohw", win, wf, optimize=True)
    elif groups == cin:  # depthwise, channel multiplier cout // cin
        ws = wf.reshape(cin, cout // cin, kh, kw)
        out[:] = np.einsum("nchwij,cmij->ncmhw", win, ws, optimize=True).reshape(n, cout, ho, wo)
    else:
        opg = cout // groups
        for g in range(groups):
            xs = win[:, g * cpg : (g + 1) * cpg]
            ws = wf[g * opg : (g + 1) * opg]
            out[:, g * opg : (g + 1) * opg] = np.einsum("nchwij,ocij->nohw", xs, ws, optimize=True)
    acc = np.rint(out).astype(np.int64)
    return acc


def _chan(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, dtype=np.int64).reshape(1, -1, 1, 1)


def run_op(op: Op, env: dict[str, np.ndarray]) -> np.ndarray:
    """Execute one operation on the named tensors of ``env``."""
    if isinstance(op, ConvOp):
        x = env[op.input]
        if op.kind == "linear" and x.shape[2:] != op.kernel:
            raise NumericsError(
                f"layer {op.name!r}: FC expects a {op.kernel} input, got {x.shape[2:]}"
            )
        acc = conv_accumulate(x, op.weight, op.stride, op.padding, op.groups, op.pad_code)
        res = env[op.residual] if op.residual is not None else None
        if res is not None and res.shape != acc.shape:
            raise NumericsError(
                f"layer {op.name!r}: residual {op.residual!r} has shape {res.shape}, "
                f"output has {acc.shape}"
            )
        return requantize(
            acc,
            _chan(op.mult),
            _chan(op.offset),
            _chan(op.shift),
            op.lo,
            op.hi,
            res,
            None if op.res_mult is None else _chan(op.res_mult),
        )
    if isinstance(op, PoolOp):
        x = env[op.input]
        if op.kernel is None:
            s = x.sum(axis=(2, 3), keepdims=True)
            return requantize(s, op.mult, op.offset, op.shift, op.lo, op.hi)
        if op.mode == "max":
            pad_val = np.iinfo(np.int64).min
            xp = _pad(x, op.padding, pad_val)
            return _windows(xp, op.kernel, op.stride).max(axis=(4, 5))
        xp = _pad(x, op.padding, op.pad_code)
        s = _windows(xp, op.kernel, op.stride).sum(axis=(4, 5))
        return requantize(s, op.mult, op.offset, op.shift, op.lo, op.hi)
    if isinstance(op, AddOp):
        a, b = env[op.a], env[op.b]
        return requantize(a, op.mult_a, op.offset, op.shift, op.lo, op.hi, b, op.mult_b)
    raise NumericsError(f"unknown op {op!r}")
