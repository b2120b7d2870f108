"""Quantization-aware training with filter-wise mixed precision (FILM-QNN, FPGA'22).

:func:`prepare_qat` wraps a float model into a :class:`QuantModel`:

1. **Capture.** The model is traced with ``torch.fx`` and parsed into layers with fused
   BN/residual/ReLU (:mod:`filmqnn_quant.graph`).
2. **Weights.** Every Conv2d/Linear has a per-filter (per-row) ``bits`` buffer (4 or 8).
   Codes are symmetric with zero (4-bit [-7, 7], 8-bit [-127, 127]); the clipping range
   ``alpha`` is the layer's ``max|W|`` (paper, default ``alpha="layer"``) or each filter's
   (``alpha="filter"``). Rounding uses the straight-through estimator.
3. **Activations.** Every stored tensor gets a 5-bit unsigned quantizer with a per-tensor
   scale; tensors after ReLU have zero point 0, tensors without ReLU (a downsample branch,
   MobileNet-V2's linear bottleneck outputs) are asymmetric with a zero point in 0..31. The
   range is the EMA (momentum 0.1) of the batch min/max during training, or set by
   :meth:`QuantModel.calibrate` (max or percentile), and is frozen in eval mode. ReLU6
   outputs are capped at 6. The network input is pixels in [0, 1] with scale 1/31
   (:func:`numerics.quantize_input`). The logits are signed 16-bit with scale
   ``max|logit| / 4095`` (8x headroom).
4. **8-bit selection** (paper Eq. 4): for filter ``k`` of a layer, ``E_k = ||W_k * A_q -
   Q4(W_k) * A_q||_2`` over the output map of a batch, ``A_q`` the layer's quantized input.
   Filters are chosen per *channel group* (tensors that must share one channel order:
   residual operands and sums, depthwise input/output, pool input/output): every layer that
   writes into a group shares one set of 8-bit channels, ranked by the sum over those layers
   of ``E / sum(E)``. The count is ``config.n8_capacity(C)`` with an accelerator config and
   ``round(ratio * C)`` without. Fixed-order groups (the logits) get, with a config, the
   filters that already sit in 8-bit slots.
5. **Eval mode mirrors the integer model.** In eval mode the forward pass *is* the integer
   model: BN folded, integer codes, convolutions accumulated in float64 on integer codes
   (exact), then :func:`numerics.requantize` with the per-channel ``mult/offset/shift`` from
   :func:`layer_integer_params`, the one function :mod:`filmqnn_quant.convert` also uses.
   The returned logits are ``scale * code``. Training mode is ordinary fake quantization
   (BN with batch statistics, STE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.numerics import (
    ACT_MAX,
    INPUT_SCALE,
    LOGIT_MAX,
    LOGIT_MIN,
    W4_MAX,
    W8_MAX,
    NumericsError,
    quantize_input,
    quantize_multiplier,
    quantize_weights,
    requantize,
    round_half_up,
)
from filmqnn_quant.graph import AliasNode, GraphError, LayerNode, PoolNode, QGraph, capture

__all__ = [
    "ActQuant",
    "LayerInt",
    "PoolInt",
    "QuantModel",
    "prepare_qat",
    "layer_integer_params",
    "pool_integer_params",
    "fake_quant_weight",
    "GraphError",
]

_TINY = 1e-8
#: Smallest activation range: a dead (always-zero) tensor still gets a usable scale.
MIN_RANGE = 1e-3
LOGIT_HEADROOM = 4095  # the observed max |logit| maps to this code (8x headroom)


def _key(name: str) -> str:
    return name.replace(".", "__")


class ActQuant(nn.Module):
    """Per-tensor activation quantizer: scale, zero point, observed range (float64 buffers).

    ``signed`` tensors (no ReLU) are asymmetric with a zero point; ``logits`` tensors are
    signed 16-bit symmetric; all others are unsigned 5-bit with zero point 0.
    """

    def __init__(
        self, signed: bool, cap: float | None = None, logits: bool = False, momentum: float = 0.1
    ):
        super().__init__()
        self.signed = signed
        self.cap = cap
        self.logits = logits
        self.momentum = momentum
        self.register_buffer("lo_stat", torch.zeros((), dtype=torch.float64))
        self.register_buffer("hi_stat", torch.zeros((), dtype=torch.float64))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.calib: str | None = None
        self._calib_n = 0
        self.percentile = 99.99

    def qparams(self) -> tuple[float, int, int, int]:
        """``(scale, zero_point, lo, hi)`` of the codes."""
        lo, hi = float(self.lo_stat), float(self.hi_stat)
        if self.logits:
            m = max(abs(lo), abs(hi), MIN_RANGE)
            return m / LOGIT_HEADROOM, 0, LOGIT_MIN, LOGIT_MAX
        if self.cap is not None:
            hi = min(hi, self.cap)
        if not self.signed:
            return max(hi, MIN_RANGE) / ACT_MAX, 0, 0, ACT_MAX
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = max(hi - lo, MIN_RANGE) / ACT_MAX
        z = int(np.clip(round_half_up(-lo / scale), 0, ACT_MAX))
        return scale, z, 0, ACT_MAX

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        """Update the range from a batch (EMA, or calibration accumulation)."""
        xd = x.detach()
        if self.calib == "percentile":
            flat = xd.flatten().double()
            if flat.numel() > 1_000_000:
                flat = flat[:: flat.numel() // 1_000_000 + 1]
            q = self.percentile / 100.0
            bmin = float(torch.quantile(flat, 1.0 - q))
            bmax = float(torch.quantile(flat, q))
        else:
            bmin, bmax = float(xd.min()), float(xd.max())
        if self.calib is not None:
            n = self._calib_n
            if n == 0:
                lo, hi = bmin, bmax
            elif self.calib == "max":
                lo, hi = min(float(self.lo_stat), bmin), max(float(self.hi_stat), bmax)
            else:  # running mean of per-batch percentiles
                lo = (float(self.lo_stat) * n + bmin) / (n + 1)
                hi = (float(self.hi_stat) * n + bmax) / (n + 1)
            self._calib_n = n + 1
        elif not bool(self.initialized):
            lo, hi = bmin, bmax
        else:
            m = self.momentum
            lo = (1 - m) * float(self.lo_stat) + m * bmin
            hi = (1 - m) * float(self.hi_stat) + m * bmax
        self.lo_stat.fill_(lo)
        self.hi_stat.fill_(hi)
        self.initialized.fill_(True)

    def fake_quant(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize-dequantize with a straight-through gradient inside the range."""
        if self.logits:
            return x
        s, z, lo, hi = self.qparams()
        xc = x.clamp(s * (lo - z), s * (hi - z))
        q = (torch.floor(x.detach() / s + 0.5) + z).clamp(lo, hi) - z
        return xc + (q * s - xc).detach()


class LayerQuant(nn.Module):
    """Per-layer weight-quantization state: the per-filter ``bits`` buffer (4 or 8)."""

    def __init__(self, out_channels: int):
        super().__init__()
        self.register_buffer("bits", torch.full((out_channels,), 4, dtype=torch.int64))


def _alpha(w: torch.Tensor, mode: str) -> torch.Tensor:
    a = w.detach().abs()
    if mode == "layer":
        return a.max().clamp_min(_TINY).expand(w.shape[0])
    return a.reshape(w.shape[0], -1).amax(dim=1).clamp_min(_TINY)


def fake_quant_weight(
    w: torch.Tensor, bits: torch.Tensor, alpha_mode: str = "layer", ste: bool = True
) -> torch.Tensor:
    """Quantize-dequantize a weight (filter on axis 0) to per-filter 4/8-bit symmetric levels."""
    shape = (-1,) + (1,) * (w.dim() - 1)
    qmax = torch.where(bits == 8, W8_MAX, W4_MAX).to(w.dtype).reshape(shape)
    alpha = _alpha(w, alpha_mode).to(w.dtype).reshape(shape)
    q = torch.minimum(torch.maximum(torch.floor(w / alpha * qmax + 0.5), -qmax), qmax)
    wq = q * alpha / qmax
    return w + (wq - w).detach() if ste else wq


@dataclass
class LayerInt:
    """Integer parameters of one layer (before any reordering), numpy int64 arrays."""

    weight: np.ndarray  # (C_out, C_in/groups, kh, kw) or (C_out, in_features) for linear
    bits: np.ndarray
    mult: np.ndarray
    offset: np.ndarray
    shift: np.ndarray
    res_mult: np.ndarray | None
    lo: int
    hi: int
    pad_code: int


@dataclass
class PoolInt:
    """Integer parameters of an average pool (one value for all channels)."""

    mult: int
    offset: int
    shift: int
    lo: int
    hi: int
    pad_code: int


def _requant_params(
    ratio: float, bias_codes: float, res_ratio: float | None, res_zp: int
) -> tuple[int, int, int, int]:
    """``(mult, offset, shift, res_mult)`` for ``out = round(ratio*acc + bias [+ res term])``."""
    if ratio > 0:
        mult, shift = quantize_multiplier(ratio)
    else:
        mult, shift = 0, (quantize_multiplier(res_ratio)[1] if res_ratio else 0)
    res_mult = 0
    if res_ratio is not None:
        res_mult = int(round_half_up(res_ratio * 2.0**shift))
    offset = int(round_half_up(bias_codes * 2.0**shift)) - res_zp * res_mult
    if shift > 0:
        offset += 1 << (shift - 1)
    return mult, offset, shift, res_mult


def layer_integer_params(qm: QuantModel, layer: LayerNode) -> LayerInt:
    """Fold weights, BN, bias, scales and the residual into one layer's integer pipeline.

    Real output of channel ``k`` (before clamping), with ``d_k = alpha_k / qmax_k``,
    ``g_k = gamma_k / sqrt(var_k + eps)`` (1 without BN)::

        out_k = g_k*d_k*s_in/s_out * acc_k
                + (g_k*(b_k - mu_k - d_k*s_in*z_in*sum(w_k)) + beta_k)/s_out + z_out
                [+ s_res/s_out * (res - z_res)]

    A negative ``g_k`` negates filter ``k``'s codes so that ``mult`` stays unsigned.
    """
    mod = qm.model.get_submodule(layer.name)
    w = mod.weight.detach().double().cpu().numpy()
    bits = qm.layer_quant[_key(layer.name)].bits.cpu().numpy().astype(np.int64)
    if qm.alpha_mode == "layer":
        alpha = np.full(w.shape[0], max(float(np.abs(w).max(initial=0.0)), _TINY))
    else:
        alpha = np.maximum(np.abs(w.reshape(w.shape[0], -1)).max(axis=1), _TINY)
    codes = quantize_weights(w, alpha, bits)
    qmax = np.where(bits == 8, W8_MAX, W4_MAX).astype(np.float64)
    d = alpha / qmax
    s_in, z_in, _, _ = qm.act_qparams(layer.input)
    s_out, z_out, lo, hi = qm.act_qparams(layer.output)
    c = w.shape[0]
    b = np.zeros(c) if mod.bias is None else mod.bias.detach().double().cpu().numpy()
    if layer.bn is not None:
        bn = qm.model.get_submodule(layer.bn)
        g = bn.weight.detach().double().cpu().numpy() / np.sqrt(
            bn.running_var.detach().double().cpu().numpy() + bn.eps
        )
        mu = bn.running_mean.detach().double().cpu().numpy()
        beta = bn.bias.detach().double().cpu().numpy()
    else:
        g, mu, beta = np.ones(c), np.zeros(c), np.zeros(c)
    sumq = codes.reshape(c, -1).sum(axis=1).astype(np.float64)
    ratio = g * d * s_in / s_out
    bias_codes = (g * (b - mu - d * s_in * z_in * sumq) + beta) / s_out + z_out
    res_ratio, res_zp = None, 0
    if layer.residual is not None:
        s_r, res_zp, _, _ = qm.act_qparams(layer.residual)
        res_ratio = s_r / s_out
    sign = np.where(ratio < 0, -1, 1)
    codes = codes * sign.reshape((-1,) + (1,) * (codes.ndim - 1))
    mult, offset, shift, rmul = (np.zeros(c, dtype=np.int64) for _ in range(4))
    try:
        for k in range(c):
            mult[k], offset[k], shift[k], rmul[k] = _requant_params(
                float(abs(ratio[k])), float(bias_codes[k]), res_ratio, res_zp
            )
    except NumericsError as e:
        raise NumericsError(
            f"layer {layer.name!r}, filter {k}: {e}; the output range of {layer.output!r} is "
            f"{s_out * ACT_MAX:.3g}, far below its input's (calibrate() on real data)"
        ) from e
    if layer.act == "relu":
        lo = max(lo, z_out)
    elif layer.act == "relu6":
        lo = max(lo, z_out)
        hi = min(hi, z_out + int(round_half_up(6.0 / s_out)))
    return LayerInt(
        weight=codes.astype(np.int64),
        bits=bits,
        mult=mult,
        offset=offset,
        shift=shift,
        res_mult=rmul if layer.residual is not None else None,
        lo=int(lo),
        hi=int(hi),
        pad_code=int(z_in),
    )


def pool_integer_params(qm: QuantModel, pool: PoolNode, window: int) -> PoolInt:
    """Requantization of an average pool's window sum of ``window`` codes."""
    s_in, z_in, _, _ = qm.act_qparams(pool.input)
    s_out, z_out, lo, hi = qm.act_qparams(pool.output)
    ratio = s_in / (window * s_out)
    bias_codes = z_out - z_in * s_in / s_out
    mult, offset, shift, _ = _requant_params(ratio, bias_codes, None, 0)
    return PoolInt(mult, offset, shift, lo, hi, z_in)


_F32_EXACT = 1 << 24


def exact_conv(
    codes: torch.Tensor,
    weight_np: np.ndarray,
    weight: torch.Tensor,
    padding: tuple[int, int],
    pad_code: int,
    stride: Any,
    groups: int,
) -> torch.Tensor:
    """Exact integer accumulators of a convolution of codes (int64, NCHW).

    Every partial sum is an integer bounded by ``max_k sum|w_k| * max|code|``. Below 2**24
    float32 represents all of them exactly, so the float32 convolution (direct or GEMM, the
    only algorithms PyTorch's CPU backends use with NNPACK disabled) is exact; otherwise
    float64 (exact below 2**53, the golden model's method). A non-integer result (which an
    inexact algorithm would produce) falls back to float64.
    """
    amax = max(int(codes.abs().max()) if codes.numel() else 0, abs(pad_code), 1)
    bound = int(np.abs(weight_np).reshape(weight_np.shape[0], -1).sum(axis=1).max(initial=0))
    bound *= amax
    ph, pw = padding
    if bound < _F32_EXACT:
        with torch.backends.nnpack.flags(enabled=False):
            xp = F.pad(codes.float(), (pw, pw, ph, ph), value=float(pad_code))
            acc = F.conv2d(xp, weight.float(), None, stride, 0, 1, groups)
        if bool(torch.all(acc == torch.round(acc))):
            return acc.to(torch.int64)
    if bound >= 1 << 52:
        raise GraphError("accumulator bound exceeds the exact float64 range")
    xp = F.pad(codes.double(), (pw, pw, ph, ph), value=float(pad_code))
    acc = F.conv2d(xp, weight.double(), None, stride, 0, 1, groups)
    return torch.round(acc).to(torch.int64)


class QuantModel(nn.Module):
    """A float model wrapped for filter-wise mixed-precision QAT (see the module docstring).

    State: ``model.*`` (the original parameters and BN statistics), ``acts.*`` (activation
    ranges), ``layer_quant.*.bits`` (per-filter bit widths), ``selection_frozen``.
    """

    def __init__(
        self,
        model: nn.Module,
        graph: QGraph,
        config: AcceleratorConfig | None,
        ratio: float,
        alpha_mode: str,
        input_scale: float,
        momentum: float,
    ):
        super().__init__()
        if alpha_mode not in ("layer", "filter"):
            raise ValueError(f"alpha must be 'layer' or 'filter', not {alpha_mode!r}")
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio of 8-bit filters must be in [0, 1], not {ratio}")
        self.model = model
        self.graph = graph
        self.config = config
        self.ratio = ratio
        self.alpha_mode = alpha_mode
        self.input_scale = input_scale
        self.acts = nn.ModuleDict()
        for name, t in graph.tensors.items():
            if t.kind in ("act", "logits"):
                self.acts[_key(name)] = ActQuant(t.signed, t.cap, t.kind == "logits", momentum)
        self.layer_quant = nn.ModuleDict()
        for layer in graph.layers():
            mod = model.get_submodule(layer.name)
            self.layer_quant[_key(layer.name)] = LayerQuant(mod.weight.shape[0])
        self.register_buffer("selection_frozen", torch.zeros((), dtype=torch.bool))
        self._int_cache: dict[str, LayerInt] | None = None
        self._int_version: tuple[int, ...] = ()

    # -- bookkeeping -----------------------------------------------------------------------------
    def _invalidate(self) -> None:
        self._int_cache = None

    def train(self, mode: bool = True) -> QuantModel:
        self._invalidate()
        return super().train(mode)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self._invalidate()
        return super().load_state_dict(*args, **kwargs)

    def act_qparams(self, tensor: str) -> tuple[float, int, int, int]:
        """``(scale, zero_point, lo, hi)`` of a graph tensor's codes."""
        name = self.graph.quant_name(tensor)
        if self.graph.tensors[name].kind == "input":
            return self.input_scale, 0, 0, ACT_MAX
        return self.acts[_key(name)].qparams()

    def bits(self, layer: str) -> torch.Tensor:
        """The per-filter bit widths of a layer (by module name)."""
        return self.layer_quant[_key(layer)].bits

    def _state_version(self) -> tuple[int, ...]:
        """Changes whenever any parameter or buffer is modified (in place or replaced)."""
        key: list[int] = []
        for t in list(self.parameters()) + list(self.buffers()):
            key += [id(t), t._version]
        return tuple(key)

    def integer_params(self) -> dict[str, LayerInt]:
        """Integer parameters of every layer, recomputed whenever any parameter/buffer changed."""
        version = self._state_version()
        if self._int_cache is None or self._int_version != version:
            self._int_cache = {
                layer.name: layer_integer_params(self, layer) for layer in self.graph.layers()
            }
            self._int_version = version
        return self._int_cache

    # -- float fake-quant forward --------------------------------------------------------------
    def _forward_float(
        self, x: torch.Tensor, *, observe: bool, bn_mode: str, hook: Any = None
    ) -> torch.Tensor:
        g = self.graph
        s = self.input_scale
        env: dict[str, torch.Tensor] = {
            "input": (torch.floor(x.detach() / s + 0.5).clamp(0, ACT_MAX) * s).to(x.dtype)
        }

        def quant(name: str, y: torch.Tensor) -> torch.Tensor:
            aq = self.acts[_key(name)]
            if observe or not bool(aq.initialized) or aq.calib is not None:
                aq.observe(y)
            return aq.fake_quant(y)

        for op in g.ops:
            if isinstance(op, LayerNode):
                mod = self.model.get_submodule(op.name)
                xin = env[op.input]
                if hook is not None:
                    hook(op, mod, xin)
                wq = fake_quant_weight(mod.weight, self.bits(op.name), self.alpha_mode)
                if op.kind == "linear":
                    y = F.linear(xin.flatten(1), wq, mod.bias)
                else:
                    y = F.conv2d(xin, wq, mod.bias, mod.stride, mod.padding, 1, mod.groups)
                if op.bn is not None:
                    bn = self.model.get_submodule(op.bn)
                    if bn_mode == "module":
                        y = bn(y)
                    else:
                        batch = bn_mode == "batch"
                        y = F.batch_norm(
                            y,
                            None if batch else bn.running_mean,
                            None if batch else bn.running_var,
                            bn.weight,
                            bn.bias,
                            batch,
                            0.0,
                            bn.eps,
                        )
                if op.residual is not None:
                    y = y + env[op.residual]
                if op.act == "relu":
                    y = F.relu(y)
                elif op.act == "relu6":
                    y = F.relu6(y)
                env[op.output] = quant(op.output, y)
            elif isinstance(op, PoolNode):
                xin = env[op.input]
                if op.mode == "max":
                    env[op.output] = F.max_pool2d(xin, op.kernel, op.stride, op.padding)
                else:
                    if op.mode == "avg":
                        y = F.avg_pool2d(xin, op.kernel, op.stride, op.padding)
                    else:
                        y = F.adaptive_avg_pool2d(xin, 1)
                    env[op.output] = quant(op.output, y)
            else:
                assert isinstance(op, AliasNode)
                y = env[op.input]
                if op.module is not None:
                    y = self.model.get_submodule(op.module)(y)
                env[op.output] = y.flatten(1) if op.flatten else y
        return env[g.output]

    # -- integer (eval) forward -----------------------------------------------------------------
    def forward_codes(self, codes: torch.Tensor, keep: bool = False) -> Any:
        """Run the integer model on input codes (N, C, H, W) with torch; exact.

        Returns the output codes (int64, (N, C, H, W)) or, with ``keep=True``, every stored
        tensor by name (the same names :func:`filmqnn_quant.convert.to_integer` gives them).
        """
        if codes.dim() != 4:
            raise ValueError(f"input codes must be (N, C, H, W), not {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) > ACT_MAX):
            raise ValueError(f"input codes must be in [0, {ACT_MAX}] (use quantize_input)")
        params = self.integer_params()
        g = self.graph
        env: dict[str, torch.Tensor] = {"input": codes.to(torch.int64)}

        def chan(v: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.asarray(v, dtype=np.int64)).reshape(1, -1, 1, 1)

        for op in g.ops:
            if isinstance(op, LayerNode):
                p = params[op.name]
                xin = env[op.input]
                w = torch.from_numpy(p.weight)
                if op.kind == "linear":
                    w = w.reshape(w.shape[0], *xin.shape[1:])
                    stride, pad, groups = (1, 1), (0, 0), 1
                else:
                    mod = self.model.get_submodule(op.name)
                    stride, pad, groups = mod.stride, mod.padding, mod.groups
                acc = exact_conv(xin, p.weight, w, (pad[0], pad[1]), p.pad_code, stride, groups)
                res = env[op.residual] if op.residual is not None else None
                env[op.output] = requantize(
                    acc,
                    chan(p.mult),
                    chan(p.offset),
                    chan(p.shift),
                    p.lo,
                    p.hi,
                    res,
                    None if p.res_mult is None else chan(p.res_mult),
                )
            elif isinstance(op, PoolNode):
                xin = env[op.input]
                if op.mode == "max":
                    y = F.max_pool2d(xin.double(), op.kernel, op.stride, op.padding)
                    env[op.output] = y.to(torch.int64)
                    continue
                if op.mode == "gavg":
                    window = xin.shape[2] * xin.shape[3]
                    pp = pool_integer_params(self, op, window)
                    acc = xin.sum(dim=(2, 3), keepdim=True)
                else:
                    kh, kw = op.kernel  # type: ignore[misc]
                    pp = pool_integer_params(self, op, kh * kw)
                    ph, pw = op.padding
                    xp = F.pad(xin.double(), (pw, pw, ph, ph), value=pp.pad_code)
                    acc = F.avg_pool2d(xp, op.kernel, op.stride, 0, divisor_override=1)
                    acc = torch.round(acc).to(torch.int64)
                env[op.output] = requantize(acc, pp.mult, pp.offset, pp.shift, pp.lo, pp.hi)
            else:
                env[op.output] = env[op.input]
        if keep:
            return {n: v for n, v in env.items() if g.tensors[n].alias_of is None}
        return env[g.output]

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Input codes of real images (the same function the golden model's users call)."""
        return torch.from_numpy(quantize_input(x.detach().cpu().numpy(), self.input_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training: fake-quant forward. Eval: the exact integer model, logits = scale*code."""
        if self.training:
            return self._forward_float(x, observe=True, bn_mode="module")
        codes = self.forward_codes(self.quantize_input(x))
        s, z, _, _ = self.act_qparams(self.graph.output)
        out = ((codes - z).double() * s).to(x.dtype if x.is_floating_point() else torch.float32)
        out = out.to(x.device)
        return out.flatten(1) if self.graph.tensors[self.graph.output].from_linear else out

    # -- calibration and selection -------------------------------------------------------------
    @torch.no_grad()
    def calibrate(self, batches: Any, method: str = "max", percentile: float = 99.99) -> None:
        """Set every activation range from ``batches`` (iterable of inputs or (input, label)).

        ``method="max"``: overall min/max; ``"percentile"``: mean over batches of the
        ``percentile``/``100-percentile`` quantiles. BN uses running statistics; the model's
        training flag is restored afterwards.
        """
        if method not in ("max", "percentile"):
            raise ValueError(f"calibration method must be 'max' or 'percentile', not {method!r}")
        for aq in self.acts.values():
            aq.calib, aq._calib_n, aq.percentile = method, 0, percentile
        n = 0
        try:
            for b in batches:
                x = b[0] if isinstance(b, (tuple, list)) else b
                self._forward_float(x, observe=True, bn_mode="running")
                n += 1
        finally:
            for aq in self.acts.values():
                aq.calib = None
            self._invalidate()
        if n == 0:
            raise ValueError("calibrate() got no batches")

    @torch.no_grad()
    def filter_errors(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Paper Eq. 4 per layer: ``E_k = ||conv(A_q, W_k) - conv(A_q, Q4(W_k))||_2``."""
        errs: dict[str, torch.Tensor] = {}

        def hook(op: LayerNode, mod: nn.Module, xin: torch.Tensor) -> None:
            w = mod.weight.detach()
            w4 = fake_quant_weight(
                w, torch.full_like(self.bits(op.name), 4), self.alpha_mode, ste=False
            )
            dw = w - w4
            if op.kind == "linear":
                y = F.linear(xin.flatten(1), dw)
                errs[op.name] = y.double().pow(2).sum(dim=0).sqrt()
            else:
                y = F.conv2d(xin, dw, None, mod.stride, mod.padding, 1, mod.groups)
                errs[op.name] = y.double().pow(2).sum(dim=(0, 2, 3)).sqrt()

        self._forward_float(
            x, observe=False, bn_mode="batch" if self.training else "running", hook=hook
        )
        return errs

    def n8_target(self, channels: int) -> int:
        """How many 8-bit filters a layer with ``channels`` filters gets."""
        if self.config is not None:
            return self.config.n8_capacity(channels)
        return int(math.floor(self.ratio * channels + 0.5))

    @torch.no_grad()
    def select_8bit(self, x_batch: torch.Tensor) -> bool:
        """Recompute the 8-bit filters on a batch (Eq. 4, jointly per channel group).

        Returns False (and changes nothing) once :meth:`freeze_selection` was called.
        """
        if bool(self.selection_frozen):
            return False
        errs = self.filter_errors(x_batch)
        g = self.graph
        fixed = g.fixed_groups()
        by_group: dict[str, list[LayerNode]] = {}
        for layer in g.layers():
            by_group.setdefault(g.find(layer.output), []).append(layer)
        for root, layers in by_group.items():
            c = int(self.bits(layers[0].name).shape[0])
            if any(int(self.bits(la.name).shape[0]) != c for la in layers):
                raise GraphError(
                    f"layers {[la.name for la in layers]} share a channel group but have "
                    "different output channel counts"
                )
            score = torch.zeros(c, dtype=torch.float64)
            for la in layers:
                e = errs[la.name]
                score += e / max(float(e.sum()), 1e-300)
            if root in fixed and self.config is not None:
                chosen = [p for p in range(c) if self.config.is_8bit_slot(p)]
            else:
                k = self.n8_target(c)
                order = sorted(range(c), key=lambda i: (-float(score[i]), i))
                chosen = order[:k]
            bits = torch.full((c,), 4, dtype=torch.int64)
            bits[chosen] = 8
            for la in layers:
                self.bits(la.name).copy_(bits)
        self._invalidate()
        return True

    def freeze_selection(self) -> None:
        """Stop :meth:`select_8bit` from changing the 8-bit filters (fine-tuning phase)."""
        self.selection_frozen.fill_(True)


def prepare_qat(
    model: nn.Module,
    config: AcceleratorConfig | None = None,
    *,
    ratio: float = 0.05,
    example_input: torch.Tensor,
    alpha: str = "layer",
    input_scale: float = INPUT_SCALE,
    momentum: float = 0.1,
) -> QuantModel:
    """Wrap ``model`` for filter-wise mixed-precision QAT.

    ``example_input`` (a batch of images in [0, 1]) initialises every activation range and
    the first 8-bit selection. With ``config`` the number of 8-bit filters per layer is
    ``config.n8_capacity(C_out)``; without it ``round(ratio * C_out)`` (0: pure W4A5, 1:
    pure W8A5). ``alpha``: ``"layer"`` (paper) or ``"filter"`` weight clipping ranges.
    The returned model is in the same training mode as ``model``.
    """
    graph = capture(model)
    qm = QuantModel(model, graph, config, ratio, alpha, input_scale, momentum)
    training = model.training
    with torch.no_grad():
        qm._forward_float(example_input, observe=True, bn_mode="batch" if training else "running")
    qm.select_8bit(example_input)
    qm.train(training)
    return qm
