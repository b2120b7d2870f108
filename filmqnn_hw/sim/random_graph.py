"""Seeded random integer networks from a layer list, without torch.

:func:`random_graph` turns a :class:`~filmqnn_hw.spec.networks.Network` (shapes only) into an
:class:`~filmqnn_hw.spec.intgraph.IntGraph` with random weight codes and requantization
parameters, for runs that need a whole network with data but not a trained one: the RTL's
cycles depend only on the layer program's shapes, and the bit-exactness checks need codes
that exercise every bit. :func:`random_input` draws one input frame for it;
:func:`export_order` puts a layer list into the order the export emits its layers.

The graph is one a real export (``filmqnn_quant.convert.to_integer`` with the config) could
have produced:

* Weights: uniform codes over each filter's whole range (``[-7, 7]`` for 4-bit filters,
  ``[-127, 127]`` for 8-bit ones, narrowed to the config's ranges if those are narrower).
  Every output channel group is in the quantizer's reordered form: with ``ratio=None`` every
  8-bit slot (``config.is_8bit_slot``) holds an 8-bit filter, as ``prepare_qat`` with a
  config selects ``config.n8_capacity(C)`` of them; with a ``ratio`` the ``round(ratio * C)``
  8-bit filters take the first 8-bit slots in ascending order, the quantizer's convention.
  ``permutation`` is ``None`` (the filters have no original order).
* Activations: 5-bit codes. A convolution ends in ReLU (``lo = 0``, zero point 0) unless
  its output is linear as in the torchvision models: a 1x1 projection after a depthwise
  convolution (MobileNet-V2's linear bottleneck) or a tensor only ever added (ResNet's
  downsample path); those are signed tensors with a zero point, which is then the padding
  code of the layers that read them. The network output, when a dense convolution or FC
  writes it and nothing reads it, is signed 16-bit logits (the quantizer's rule).
* Requantization: chosen from a moment model of the codes (the mean and variance of every
  channel, propagated through the layers, with padding accounted for tap by tap and clamping
  as for a normal distribution) so that each filter's output, before clamping, has a random
  mean and spread inside the code range: most codes land inside ``[lo, hi]``, a few are
  clamped at either end. ``mult``/``shift``/``offset``/``res_mult`` are built as the
  quantizer builds them (``quantize_multiplier``, round-half-up offset) and pass
  ``check_requant_range``.

Numpy only: this module imports neither torch nor amaranth.
"""

from __future__ import annotations

import math

import numpy as np

from filmqnn_hw.spec.config import ACT_MAX, W4_MAX, W8_MAX, AcceleratorConfig, accumulator_bits
from filmqnn_hw.spec.intgraph import AddOp, ConvOp, IntGraph, PoolOp, TensorSpec
from filmqnn_hw.spec.networks import Layer, Network, NetworkError
from filmqnn_hw.spec.numerics import (
    INPUT_SCALE,
    LOGIT_MAX,
    LOGIT_MIN,
    check_requant_range,
    quantize_multiplier,
    round_half_up,
)

__all__ = ["random_graph", "random_input", "export_order"]

#: Pre-clamp targets of a ReLU output channel: mean and standard deviation, in codes, drawn
#: uniformly from these ranges per filter (about 6 % of the codes clamp at 0, 2 % at 31).
_RELU_MEAN, _RELU_STD = (9.0, 17.0), (6.0, 10.0)
#: Zero points of signed (linear) tensors; their channels are centred within +-3 of it.
_ZP_RANGE, _LINEAR_SHIFT, _LINEAR_STD = (10, 21), 3.0, (5.0, 9.0)
#: Logits: centres within +-_LOGIT_MEAN and spreads, in 16-bit codes (a real export maps the
#: largest logit it saw to 4095).
_LOGIT_MEAN, _LOGIT_STD = 512.0, (600.0, 1500.0)
#: Average pooling maps its mean plus two deviations to this code (ReLU input) or this far
#: from the zero point (signed input).
_POOL_SPAN_RELU, _POOL_SPAN_SIGNED = 28.0, 13.0
#: Smallest standard deviation (codes) assumed for a channel: the moment model's own error,
#: so that a layer reading nearly constant channels (a 1x1 map after global pooling) does not
#: amplify what the model cannot predict.
_STD_FLOOR = 1.5
#: Codes of the network input: uniform over 0..31.
_INPUT_MEAN, _INPUT_VAR = ACT_MAX / 2, ((ACT_MAX + 1) ** 2 - 1) / 12


class _Moments:
    """Per-channel mean and variance of a tensor's codes over positions and frames."""

    def __init__(self, mean: np.ndarray, var: np.ndarray, floor: float = _STD_FLOOR) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.var = np.maximum(np.asarray(var, dtype=np.float64), floor**2)

    @property
    def rms_std(self) -> float:
        return float(np.sqrt(self.var.mean()))


def _valid_taps(size_in: int, size_out: int, k: int, stride: int, pad: int) -> np.ndarray:
    """``v[o, t]``: 1.0 where kernel tap ``t`` of output position ``o`` reads a real pixel
    (not padding)."""
    pos = np.arange(size_out)[:, None] * stride - pad + np.arange(k)[None, :]
    return ((pos >= 0) & (pos < size_in)).astype(np.float64)


def _tap_geometry(ly: Layer) -> tuple[np.ndarray, np.ndarray]:
    """For the ``kh * kw`` taps of ``ly``'s window: the fraction ``f`` of output positions
    where each tap reads a real pixel, and the covariance over positions of those 0/1
    indicators (how much the padded/unpadded mix varies from one output position to another)."""
    vy = _valid_taps(ly.in_h, ly.out_h, ly.kh, ly.stride, ly.pad)
    vx = _valid_taps(ly.in_w, ly.out_w, ly.kw, ly.stride, ly.pad)
    f = np.outer(vy.mean(axis=0), vx.mean(axis=0)).reshape(-1)
    second = np.kron(vy.T @ vy / ly.out_h, vx.T @ vx / ly.out_w)
    return f, second - np.outer(f, f)


def _window_moments(w: np.ndarray, mom: _Moments, pad_code: int, ly: Layer,
                    depthwise: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the accumulators ``sum(w * x)`` of every filter of ``w``
    (``(K, C, kh, kw)``, or ``(C, 1, kh, kw)`` with ``depthwise``) over output positions.

    Inputs are treated as independent across taps with the channel's moments; padded taps
    contribute ``pad_code`` and no variance; the varying share of padded taps across positions
    adds the variance of the per-position mean."""
    f, cov = _tap_geometry(ly)
    k = w.shape[0]
    wf = w.reshape(k, w.shape[1], -1).astype(np.float64)
    d = mom.mean - pad_code  # a real pixel's mean above the padding code
    if depthwise:
        wf = wf[:, 0, :]  # (C, T): filter c reads channel c only
        mean = (wf * (pad_code + f[None, :] * d[:, None])).sum(axis=1)
        var = (wf**2 * f[None, :]).sum(axis=1) * mom.var
        a = wf * d[:, None]
    else:
        mean = pad_code * wf.sum(axis=(1, 2)) + np.einsum("kct,t,c->k", wf, f, d)
        var = np.einsum("kct,t,c->k", wf**2, f, mom.var)
        a = np.einsum("kct,c->kt", wf, d)
    var = var + np.einsum("kt,tu,ku->k", a, cov, a)
    return mean, var


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(np.asarray(z, dtype=np.float64) / math.sqrt(2.0)))


def _norm_pdf(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _norm_ppf(p: float) -> float:
    """Inverse of the standard normal CDF (bisection; one value per pooling layer)."""
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _clamped(mean: np.ndarray, std: np.ndarray, lo: int, hi: int) -> _Moments:
    """Moments of ``clip(X, lo, hi)`` for ``X`` normal with ``mean`` and ``std``."""
    m = np.asarray(mean, dtype=np.float64)
    s = np.maximum(np.asarray(std, dtype=np.float64), 1e-9)
    a, b = (lo - m) / s, (hi - m) / s
    ca, cb, pa, pb = _norm_cdf(a), _norm_cdf(b), _norm_pdf(a), _norm_pdf(b)
    inside = cb - ca
    e1 = lo * ca + hi * (1 - cb) + m * inside + s * (pa - pb)
    e2 = (lo * lo * ca + hi * hi * (1 - cb) + m * m * inside + 2 * m * s * (pa - pb)
          + s * s * (inside + a * pa - b * pb))
    return _Moments(e1, e2 - e1 * e1)


def _requant(ratio: np.ndarray, bias: np.ndarray, res_ratio: float | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """``(mult, offset, shift, res_mult)`` with ``out = round(ratio * acc + bias [+ res_ratio
    * res])`` per channel, built as the quantizer builds them: ``mult / 2**shift`` from
    :func:`quantize_multiplier`, the rounding constant ``2**(shift - 1)`` in the offset, the
    residual sharing the channel's shift."""
    c = len(ratio)
    mult, offset, shift, res_mult = (np.zeros(c, dtype=np.int64) for _ in range(4))
    for k in range(c):
        m, s = quantize_multiplier(float(ratio[k]))
        mult[k], shift[k] = m, s
        offset[k] = int(round_half_up(float(bias[k]) * 2.0**s)) + ((1 << (s - 1)) if s else 0)
        if res_ratio is not None:
            res_mult[k] = int(round_half_up(res_ratio * 2.0**s))
    return mult, offset, shift, (res_mult if res_ratio is not None else None)


def _output_kinds(net: Network) -> dict[str, str]:
    """``relu``, ``linear`` (signed, with a zero point) or ``logits`` for the output tensor of
    every convolution, following the torchvision models (see the module docstring)."""
    roles: dict[str, list[str]] = {}
    for ly in net.layers:
        roles.setdefault(ly.input, []).append("input")
        if ly.residual is not None:
            roles.setdefault(ly.residual, []).append("residual")
        if ly.input2 is not None:
            roles.setdefault(ly.input2, []).append("input2")
    dw_out = {ly.output for ly in net.layers if ly.kind == "dw"}
    kinds: dict[str, str] = {}
    for ly in net.layers:
        if ly.kind not in ("conv", "dw"):
            continue
        read_as = roles.get(ly.output, [])
        if ly.kind == "conv" and ly.output == net.output and not read_as:
            kinds[ly.output] = "logits"
        elif ly.kind == "conv" and ly.input in dw_out:  # linear bottleneck (projection)
            kinds[ly.output] = "linear"
        elif read_as and "input" not in read_as:  # only ever added: a shortcut branch
            kinds[ly.output] = "linear"
        else:
            kinds[ly.output] = "relu"
    return kinds


def _filter_bits(channels: int, config: AcceleratorConfig, ratio: float | None) -> np.ndarray:
    """Per-position filter widths of a layer with ``channels`` filters, in the reordered form
    the quantizer writes: 8-bit filters in the first 8-bit slots, in ascending order."""
    slots = [c for c in range(channels) if config.is_8bit_slot(c)]
    n8 = (config.n8_capacity(channels) if ratio is None
          else min(int(round_half_up(ratio * channels)), len(slots)))
    bits = np.full(channels, 4, dtype=np.int64)
    bits[slots[:n8]] = 8
    return bits


def _weights(rng: np.random.Generator, shape: tuple[int, ...], bits: np.ndarray,
             config: AcceleratorConfig) -> np.ndarray:
    """Uniform codes over each filter's range (the config's, within the numeric contract's)."""
    lo4, hi4 = max(config.w4_min, -W4_MAX), min(config.w4_max, W4_MAX)
    lo8, hi8 = max(config.w8_min, -W8_MAX), min(config.w8_max, W8_MAX)
    w = rng.integers(lo4, hi4, size=shape, endpoint=True, dtype=np.int64)
    eight = np.nonzero(bits == 8)[0]
    if eight.size:
        w[eight] = rng.integers(lo8, hi8, size=(eight.size, *shape[1:]), endpoint=True,
                                dtype=np.int64)
    flat = w.reshape(shape[0], -1)
    zero = ~flat.any(axis=1)  # an all-zero filter would have no spread to scale
    flat[zero, 0] = 1
    return w


def _targets(rng: np.random.Generator, kind: str, channels: int
             ) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """Pre-clamp mean and deviation per channel, zero point, ``lo`` and ``hi`` of an output."""
    if kind == "logits":
        mean = rng.uniform(-_LOGIT_MEAN, _LOGIT_MEAN, channels)
        return mean, rng.uniform(*_LOGIT_STD, channels), 0, LOGIT_MIN, LOGIT_MAX
    if kind == "linear":
        z = int(rng.integers(_ZP_RANGE[0], _ZP_RANGE[1], endpoint=True))
        mean = z + rng.uniform(-_LINEAR_SHIFT, _LINEAR_SHIFT, channels)
        return mean, rng.uniform(*_LINEAR_STD, channels), z, 0, ACT_MAX
    return rng.uniform(*_RELU_MEAN, channels), rng.uniform(*_RELU_STD, channels), 0, 0, ACT_MAX


def _conv(ly: Layer, kind: str, src: TensorSpec, src_m: _Moments,
          res: tuple[TensorSpec, _Moments] | None, config: AcceleratorConfig,
          ratio: float | None, rng: np.random.Generator
          ) -> tuple[ConvOp, TensorSpec, _Moments]:
    depthwise = ly.kind == "dw"
    cpg = 1 if depthwise else ly.in_ch
    fan_in = cpg * ly.kh * ly.kw
    if fan_in > config.max_fan_in:
        raise NetworkError(f"layer {ly.name!r}: fan-in {fan_in} exceeds the accelerator's "
                           f"max_fan_in {config.max_fan_in}")
    if ly.fc and ((ly.kh, ly.kw) != (ly.in_h, ly.in_w) or ly.stride != 1 or ly.pad != 0):
        raise NetworkError(f"layer {ly.name!r}: an FC layer's kernel must cover its "
                           f"{ly.in_h}x{ly.in_w} input with stride 1 and no padding")
    bits = _filter_bits(ly.out_ch, config, ratio)
    weight = _weights(rng, (ly.out_ch, cpg, ly.kh, ly.kw), bits, config)
    pad_code = src.zero_point
    acc_mean, acc_var = _window_moments(weight, src_m, pad_code, ly, depthwise)
    acc_std = np.sqrt(np.maximum(acc_var, 1.0))
    t_mean, t_std, z, lo, hi = _targets(rng, kind, ly.out_ch)
    scale = src.scale  # nominal: the weight scale that would relate the two is free
    res_ratio = res_mult = None
    if res is None:
        r = t_std / acc_std
        bias = t_mean - r * acc_mean
        pre_std = t_std
    else:  # half the variance from each branch; the residual's ratio is one per layer
        res_spec, res_m = res
        r = t_std / (math.sqrt(2.0) * acc_std)
        res_ratio = float(np.median(t_std)) / (math.sqrt(2.0) * res_m.rms_std)
        bias = t_mean - r * acc_mean - res_ratio * res_m.mean
        pre_std = np.sqrt((r * acc_std) ** 2 + res_ratio**2 * res_m.var)
        scale = res_spec.scale / res_ratio
    mult, offset, shift, res_mult = _requant(r, bias, res_ratio)
    acc_bound = int(np.abs(weight).reshape(ly.out_ch, -1).sum(axis=1).max()) * max(
        ACT_MAX, abs(pad_code))
    check_requant_range(ly.name, acc_bound, mult, offset, res_mult)
    op = ConvOp(
        name=ly.name, input=ly.input, output=ly.output, weight=weight, bits=bits, mult=mult,
        offset=offset, shift=shift, stride=(ly.stride, ly.stride), padding=(ly.pad, ly.pad),
        groups=ly.in_ch if depthwise else 1, pad_code=pad_code, lo=lo, hi=hi,
        residual=ly.residual, res_mult=res_mult,
        kind="depthwise" if depthwise else ("linear" if ly.fc else "conv"),
        meta={"act": None if kind != "relu" else "relu", "acc_bits": accumulator_bits(fan_in),
              "source": "filmqnn_hw.sim.random_graph"},
    )
    spec = TensorSpec(ly.output, ly.out_ch, ly.out_h, ly.out_w, scale, z, lo, hi)
    return op, spec, _clamped(t_mean, pre_std, lo, hi)


def _maxpool(ly: Layer, src: TensorSpec, src_m: _Moments) -> tuple[PoolOp, TensorSpec, _Moments]:
    """Max pooling keeps the input's codes and quantizer; the window's maximum sits about the
    expected maximum of its real taps above the mean."""
    f, _ = _tap_geometry(ly)
    n = max(float(f.sum()), 1.0)
    lift = _norm_ppf((n - 0.375) / (n + 0.25))  # Blom's expected maximum of n normals
    std = np.sqrt(src_m.var)
    op = PoolOp(ly.name, ly.input, ly.output, "max", (ly.kh, ly.kw), (ly.stride, ly.stride),
                (ly.pad, ly.pad))
    spec = TensorSpec(ly.output, ly.out_ch, ly.out_h, ly.out_w, src.scale, src.zero_point,
                      src.lo, src.hi)
    return op, spec, _clamped(src_m.mean + lift * std, 0.75 * std, src.lo, src.hi)


def _avgpool(ly: Layer, src: TensorSpec, src_m: _Moments) -> tuple[PoolOp, TensorSpec, _Moments]:
    """Average (or global average) pooling requantized as a real export does it: the output
    keeps the input's zero point and ``ratio = s_in / (window * s_out)``; ``s_out`` puts the
    channels' mean plus two deviations near the top of the code range."""
    glob = ly.kind == "gap"
    window = ly.kh * ly.kw
    z = src.zero_point
    if glob:
        s_mean, s_var = window * src_m.mean, window * src_m.var
    else:
        ones = np.ones((ly.in_ch, 1, ly.kh, ly.kw), dtype=np.int64)
        s_mean, s_var = _window_moments(ones, src_m, z, ly, depthwise=True)
    centre = s_mean / window - z  # average code above the zero point, per channel
    spread = math.sqrt(float(centre.var() + (s_var / window**2).mean()))
    span = _POOL_SPAN_RELU if z == 0 else _POOL_SPAN_SIGNED
    ratio = span / (window * (abs(float(centre.mean())) + 2.0 * spread))
    bias = z - ratio * window * z
    mult, offset, shift, _ = _requant(np.array([ratio]), np.array([bias]))
    check_requant_range(ly.name, window * max(ACT_MAX, abs(z)), mult, offset)
    kernel = None if glob else (ly.kh, ly.kw)
    op = PoolOp(ly.name, ly.input, ly.output, "avg", kernel, (ly.stride, ly.stride),
                (ly.pad, ly.pad), z, int(mult[0]), int(offset[0]), int(shift[0]), 0, ACT_MAX)
    spec = TensorSpec(ly.output, ly.out_ch, ly.out_h, ly.out_w, src.scale / (window * ratio),
                      z, 0, ACT_MAX)
    return op, spec, _clamped(ratio * s_mean + bias, ratio * np.sqrt(s_var), 0, ACT_MAX)


def _add(ly: Layer, b_name: str, a: tuple[TensorSpec, _Moments], b: tuple[TensorSpec, _Moments],
         rng: np.random.Generator) -> tuple[AddOp, TensorSpec, _Moments]:
    """A stand-alone residual add (``ly.input + b_name``) with ReLU, each operand contributing
    half the variance."""
    (sa, ma), (_, mb) = a, b
    t_std = float(np.mean(_RELU_STD))
    ra = t_std / (math.sqrt(2.0) * ma.rms_std)
    rb = t_std / (math.sqrt(2.0) * mb.rms_std)
    t_mean = float(rng.uniform(*_RELU_MEAN))
    bias = t_mean - ra * float(ma.mean.mean()) - rb * float(mb.mean.mean())
    _, shift = quantize_multiplier(max(ra, rb))
    mult_a = int(round_half_up(ra * 2.0**shift))
    mult_b = int(round_half_up(rb * 2.0**shift))
    offset = int(round_half_up(bias * 2.0**shift)) + ((1 << (shift - 1)) if shift else 0)
    check_requant_range(ly.name, ACT_MAX, [mult_a], [offset], [mult_b])
    op = AddOp(ly.name, ly.input, b_name, ly.output, mult_a, mult_b, offset, shift, 0, ACT_MAX)
    spec = TensorSpec(ly.output, ly.out_ch, ly.out_h, ly.out_w, sa.scale / ra, 0, 0, ACT_MAX)
    mean = ra * ma.mean + rb * mb.mean + bias
    return op, spec, _clamped(mean, np.sqrt(ra * ra * ma.var + rb * rb * mb.var), 0, ACT_MAX)


def random_graph(net: Network, config: AcceleratorConfig, seed: int = 0, *,
                 ratio: float | None = None) -> IntGraph:
    """A seeded random :class:`IntGraph` with exactly the layers of ``net``, for ``config``.

    Every layer becomes one op with the layer's name, tensors, shapes, kernel, stride and
    padding (``conv`` -> :class:`ConvOp`, ``kind="linear"`` when ``fc``; ``dw`` -> a
    depthwise :class:`ConvOp`; ``maxpool``/``avgpool``/``gap`` -> :class:`PoolOp`; ``add`` ->
    :class:`AddOp`; a fused ``residual`` stays fused), so
    :func:`filmqnn_hw.spec.networks.from_intgraph` gives ``net``'s layers back. Weights, zero
    points and requantization targets are drawn from ``seed`` (layer ``i`` from the seed
    sequence ``[seed, i]``, so the weights do not depend on the input size); see the module
    docstring for the rules.

    ``ratio``: ``None`` fills every 8-bit slot of every layer with an 8-bit filter (what
    ``prepare_qat`` with ``config`` selects); a fraction gives ``round(ratio * C)`` 8-bit
    filters per layer, at most the slots there are.

    Raises :class:`~filmqnn_hw.spec.networks.NetworkError` for a layer no export could produce on
    ``config`` (fan-in above ``config.max_fan_in``, an FC layer whose kernel is not its input).
    """
    net.validate()
    if ratio is not None and not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1] or None, not {ratio}")
    first = net.layers[0]
    specs = {net.input: TensorSpec(net.input, first.in_ch, first.in_h, first.in_w, INPUT_SCALE,
                                   0, 0, ACT_MAX)}
    moments = {net.input: _Moments(np.full(first.in_ch, _INPUT_MEAN),
                                   np.full(first.in_ch, _INPUT_VAR))}
    kinds = _output_kinds(net)
    ops: list[ConvOp | PoolOp | AddOp] = []
    for i, ly in enumerate(net.layers):
        rng = np.random.default_rng([seed, i])
        src, src_m = specs[ly.input], moments[ly.input]
        op: ConvOp | PoolOp | AddOp
        if ly.kind in ("conv", "dw"):
            res = None if ly.residual is None else (specs[ly.residual], moments[ly.residual])
            op, spec, mom = _conv(ly, kinds[ly.output], src, src_m, res, config, ratio, rng)
        elif ly.kind == "maxpool":
            op, spec, mom = _maxpool(ly, src, src_m)
        elif ly.kind in ("avgpool", "gap"):
            op, spec, mom = _avgpool(ly, src, src_m)
        elif ly.kind == "add":
            b = ly.input2
            assert b is not None  # Network.validate checks it
            op, spec, mom = _add(ly, b, (src, src_m), (specs[b], moments[b]), rng)
        else:
            raise NetworkError(f"layer {ly.name!r}: unknown kind {ly.kind!r}")
        ops.append(op)
        specs[ly.output], moments[ly.output] = spec, mom
    graph = IntGraph(input=specs[net.input], ops=ops, output=net.output, tensors=specs,
                     name=net.name)
    graph.validate()
    return graph


def export_order(net: Network) -> Network:
    """``net`` with its layers in the order ``filmqnn_quant``'s export emits them: a shortcut
    convolution (one whose output is only read as another convolution's fused residual, as
    ResNet's downsample) moves to right before that convolution. The torch trace reaches the
    shortcut after the block's main branch, and the conversion emits the fusing convolution
    when it reaches the add.

    The layers are the same; their order decides buffer lifetimes and what overlaps at layer
    boundaries, so the RTL's cycles of a graph built from this order equal those of a real
    export (to the cycle)."""
    readers: dict[str, list[Layer]] = {}
    for ly in net.layers:
        for t in (ly.input, ly.residual, ly.input2):
            if t is not None:
                readers.setdefault(t, []).append(ly)
    deferred: dict[str, Layer] = {}
    for ly in net.layers:
        rd = readers.get(ly.output, [])
        if (ly.kind == "conv" and ly.output != net.output and len(rd) == 1
                and rd[0].residual == ly.output and rd[0].input != ly.output):
            deferred[ly.output] = ly
    layers: list[Layer] = []
    for ly in net.layers:
        if ly.output in deferred:
            continue
        if ly.residual in deferred:
            layers.append(deferred[ly.residual])
        layers.append(ly)
    out = Network(net.name, layers, net.input, net.output, dict(net.meta))
    out.validate()
    return out


def random_input(graph: IntGraph, seed: int = 0) -> np.ndarray:
    """One input frame for ``graph``: codes drawn uniformly over the input tensor's range
    ``[lo, hi]``, shape ``(1, C, H, W)``, int64."""
    spec = graph.input
    rng = np.random.default_rng(seed)
    return rng.integers(spec.lo, spec.hi, size=(1, *spec.shape), endpoint=True, dtype=np.int64)
