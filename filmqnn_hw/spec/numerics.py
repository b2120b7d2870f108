"""The numeric contract: every integer step of inference, implemented exactly once.

``docs/numerics.md`` is the prose version of this module. Everything here works on numpy
integer arrays and, where noted, on torch integer tensors too (only operators and ``.clip``
are used), so the fake-quant model's evaluation path, the golden integer model, the hardware
tests and the HLS tests all call the *same* functions. This module imports neither torch
nor amaranth.

Summary
-------
* Activations: unsigned 5-bit codes ``a`` in 0..31, real value ``s * (a - z)`` with a
  per-tensor scale ``s`` and zero point ``z`` (``z = 0`` after ReLU, which is every tensor in
  ResNets; ``z > 0`` only for tensors without ReLU, e.g. MobileNet-V2's linear bottlenecks).
* Weights: symmetric codes ``w`` with zero, 4-bit in [-7, 7], 8-bit in [-127, 127]; real value
  ``alpha / 7 * w`` or ``alpha / 127 * w``.
* Accumulation: exact integer ``acc = sum(w * a)`` (the zero point is handled in the offset;
  padding uses the code ``z``), width :func:`filmqnn_hw.spec.config.accumulator_bits`.
* Requantization, per output channel ``c``::

      y   = acc * mult[c] + offset[c] (+ res * res_mult[c])      # exact, |y| < 2**47
      q   = y >> shift[c]                                        # arithmetic shift: floor
      out = clip(q, lo, hi)

  ``offset`` holds the folded bias/BN shift, the zero-point corrections and the rounding
  constant ``2**(shift-1)``: the rounding rule is *round half up* (towards +inf).
  ``mult`` is an unsigned integer below ``2**MULT_BITS``, ``res_mult`` below
  ``2**RES_MULT_BITS``; ``0 <= shift <= SHIFT_MAX``.
  ReLU is ``lo = z_out``; the 5-bit clamp is ``hi = 31``; ReLU6 is ``hi = z_out + round(6/s)``
  when that is below 31.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from filmqnn_hw.spec.config import ACT_MAX, W4_MAX, W8_MAX

__all__ = [
    "ACT_MAX",
    "W4_MAX",
    "W8_MAX",
    "INPUT_SCALE",
    "MULT_BITS",
    "RES_MULT_BITS",
    "SHIFT_MAX",
    "Y_BITS",
    "LOGIT_MIN",
    "LOGIT_MAX",
    "NumericsError",
    "quantize_multiplier",
    "round_half_up",
    "quantize_input",
    "quantize_weights",
    "requantize",
    "check_requant_range",
]

#: Scale of the network input: pixels in [0, 1] become codes 0..31 (see quantize_input).
INPUT_SCALE = 1.0 / ACT_MAX
#: Requantization multipliers are unsigned and below 2**MULT_BITS (fits a DSP's 18-bit B port).
MULT_BITS = 15
#: Residual multipliers share the conv's shift, so they are wider: unsigned, below 2**RES_MULT_BITS.
#: (``res_mult = s_res / s_out * 2**shift`` where ``shift`` was chosen for the conv's far smaller
#: ratio; measured up to 26 bits on full-width ResNets.) The residual code is 5 bits, so the
#: product ``res * res_mult`` is a 5 x 31-bit multiply: a few shift-adds in fabric.
RES_MULT_BITS = 31
#: Largest per-channel right shift.
SHIFT_MAX = 46
#: Every intermediate ``y`` of :func:`requantize` fits a signed Y_BITS register (DSP48 P is 48).
Y_BITS = 48
#: The last layer (logits) is requantized to signed 16-bit instead of 5-bit unsigned.
LOGIT_MIN, LOGIT_MAX = -(1 << 15), (1 << 15) - 1


class NumericsError(ValueError):
    """A value that the integer contract cannot represent. The message names the layer."""


def round_half_up(x: Any) -> Any:
    """``floor(x + 0.5)`` elementwise: the one rounding rule of the contract."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)


def quantize_multiplier(ratio: float) -> tuple[int, int]:
    """Represent a positive real ``ratio`` as ``mult / 2**shift``.

    ``mult`` is normalised into ``[2**(MULT_BITS-1), 2**MULT_BITS)`` (15 significant bits)
    unless ``shift`` would exceed :data:`SHIFT_MAX`, in which case ``shift = SHIFT_MAX`` and
    ``mult`` is the (smaller, possibly zero) rounded value. ``ratio == 0`` gives ``(0, 0)``.
    """
    if not math.isfinite(ratio) or ratio < 0:
        raise NumericsError(f"requantization ratio must be finite and >= 0, not {ratio}")
    if ratio == 0.0:
        return 0, 0
    # Smallest shift with ratio * 2**shift >= 2**(MULT_BITS-1).
    shift = (MULT_BITS - 1) - math.floor(math.log2(ratio))
    if ratio * 2.0**shift < 2 ** (MULT_BITS - 1):  # log2 rounding at exact powers of two
        shift += 1
    while shift > 0 and ratio * 2.0**shift >= 2**MULT_BITS:
        shift -= 1
    if shift < 0:
        raise NumericsError(
            f"requantization ratio {ratio:g} is too large to represent with a {MULT_BITS}-bit "
            "multiplier (the output scale is far smaller than the accumulator's)"
        )
    shift = min(shift, SHIFT_MAX)
    mult = int(math.floor(ratio * 2.0**shift + 0.5))
    if mult >= 2**MULT_BITS:  # rounding carried out of the top bit
        mult >>= 1
        shift -= 1
    return mult, shift


def quantize_input(x: np.ndarray, scale: float, zero_point: int = 0) -> np.ndarray:
    """Quantize a real network input to 5-bit codes: ``clip(floor(x/scale + 0.5) + z, 0, 31)``.

    The shipped models take images with pixels in [0, 1] and ``scale = 1/31``, ``z = 0``, so
    the code is the pixel rounded to 5 bits (see ``docs/numerics.md`` for why).
    """
    if not scale > 0:
        raise NumericsError(f"input scale must be positive, not {scale}")
    q = round_half_up(np.asarray(x, dtype=np.float64) / scale) + zero_point
    return np.clip(q, 0, ACT_MAX).astype(np.int64)


def quantize_weights(w: np.ndarray, alpha: float | np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Symmetric weight codes per filter (paper Eq. 1).

    ``w`` has the filter (output channel) on axis 0; ``bits[c]`` is 4 or 8; ``alpha`` is the
    clipping range, a scalar (per layer, as the paper) or one value per filter. The code is
    ``clip(floor(w / alpha * qmax + 0.5), -qmax, qmax)`` with ``qmax = 7`` or ``127``.
    """
    w = np.asarray(w, dtype=np.float64)
    bits = np.asarray(bits)
    if bits.shape != (w.shape[0],):
        raise NumericsError(f"bits must have one entry per filter ({w.shape[0]}), not {bits.shape}")
    if not np.all((bits == 4) | (bits == 8)):
        raise NumericsError(f"filter bit widths must be 4 or 8, got {sorted(set(bits.tolist()))}")
    qmax = np.where(bits == 8, W8_MAX, W4_MAX).astype(np.float64)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (w.shape[0],))
    if np.any(alpha <= 0):
        raise NumericsError("weight clipping range alpha must be positive")
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = round_half_up(w / alpha.reshape(shape) * qmax.reshape(shape))
    return np.clip(q, -qmax.reshape(shape), qmax.reshape(shape)).astype(np.int64)


def requantize(
    acc: Any,
    mult: Any,
    offset: Any,
    shift: Any,
    lo: int,
    hi: int,
    res: Any = None,
    res_mult: Any = None,
) -> Any:
    """The output pipeline of every layer: ``clip((acc*mult + offset [+ res*res_mult]) >> shift)``.

    ``acc`` (and ``res``) are integer arrays (numpy int64 or torch int64) whose channel axis is
    the one ``mult``/``offset``/``shift``/``res_mult`` broadcast against (the caller reshapes
    the per-channel vectors, e.g. to ``(C, 1, 1)`` for NCHW). ``>>`` is an arithmetic right
    shift (floor division by ``2**shift``), which with the ``2**(shift-1)`` folded into
    ``offset`` gives round-half-up.
    """
    y = acc * mult + offset
    if res is not None:
        y = y + res * res_mult
    return (y >> shift).clip(lo, hi)


def check_requant_range(
    name: str,
    acc_bound: int,
    mult: np.ndarray,
    offset: np.ndarray,
    res_mult: np.ndarray | None = None,
    res_max: int = ACT_MAX,
) -> None:
    """Raise :class:`NumericsError` unless every ``y`` of :func:`requantize` fits Y_BITS.

    ``acc_bound`` bounds ``|acc|`` (fan-in x max|w| x 31); the check is on the worst case, so a
    layer that passes can never overflow the hardware's requantization register.
    """
    mult = np.asarray(mult, dtype=object)
    offset = np.asarray(offset, dtype=object)
    if any(not 0 <= int(m) < (1 << MULT_BITS) for m in mult.ravel()):
        raise NumericsError(
            f"layer {name!r}: requantization multiplier outside [0, 2**{MULT_BITS})"
        )
    if res_mult is not None and any(
        not 0 <= int(m) < (1 << RES_MULT_BITS) for m in np.asarray(res_mult).ravel()
    ):
        raise NumericsError(
            f"layer {name!r}: residual multiplier outside [0, 2**{RES_MULT_BITS}): the residual's "
            "scale is far larger than the output's; recalibrate the activation ranges"
        )
    worst = abs(int(acc_bound)) * np.abs(mult) + np.abs(offset)
    if res_mult is not None:
        worst = worst + res_max * np.abs(np.asarray(res_mult, dtype=object))
    limit = 1 << (Y_BITS - 1)
    bad = [i for i, v in enumerate(worst.tolist()) if v >= limit]
    if bad:
        raise NumericsError(
            f"layer {name!r}: requantization of channel(s) {bad[:8]} can exceed the signed "
            f"{Y_BITS}-bit range (bias or scale ratio too large); retrain with a smaller bias "
            "or a larger output scale"
        )
