"""The numeric contract: multipliers, rounding, requantization, input/weight quantization."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from filmqnn_hw.spec.numerics import (
    LOGIT_MAX,
    LOGIT_MIN,
    MULT_BITS,
    SHIFT_MAX,
    NumericsError,
    check_requant_range,
    quantize_input,
    quantize_multiplier,
    quantize_weights,
    requantize,
)


def test_quantize_multiplier_precision_and_ranges():
    rng = np.random.default_rng(0)
    ratios = np.concatenate([10.0 ** rng.uniform(-9, 4, 2000), [1.0, 0.5, 2.0**-20, 3.0, 2.0**14]])
    for r in ratios:
        m, s = quantize_multiplier(float(r))
        assert 0 <= m < 2**MULT_BITS and 0 <= s <= SHIFT_MAX
        if s < SHIFT_MAX:
            assert m >= 2 ** (MULT_BITS - 1)
            assert abs(m / 2.0**s - r) <= 2.0**-(MULT_BITS) * r * 1.0001
        else:  # saturated shift: the best representable value at SHIFT_MAX
            assert m == math.floor(r * 2.0**SHIFT_MAX + 0.5)
    assert quantize_multiplier(1.0) == (2 ** (MULT_BITS - 1), MULT_BITS - 1)
    assert quantize_multiplier(0.0) == (0, 0)


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_quantize_multiplier_rejects_bad_ratios(bad):
    with pytest.raises(NumericsError):
        quantize_multiplier(bad)


def test_quantize_multiplier_rejects_ratio_too_large():
    with pytest.raises(NumericsError, match="too large"):
        quantize_multiplier(2.0**MULT_BITS * 4)


def test_requantize_rounds_half_up_and_clamps():
    shift = 4
    mult = 1
    offset = 1 << (shift - 1)
    acc = np.arange(-64, 65, dtype=np.int64)
    out = requantize(acc, mult, offset, shift, -1000, 1000)
    expect = np.floor(acc / 16 + 0.5).astype(np.int64)
    assert np.array_equal(out, expect)
    # halves go up: -8/16 = -0.5 -> 0, 8/16 = 0.5 -> 1, -24/16 = -1.5 -> -1
    assert out[acc == -8][0] == 0 and out[acc == 8][0] == 1 and out[acc == -24][0] == -1
    clamped = requantize(acc, mult, offset, shift, 0, 31)
    assert clamped.min() == 0 and clamped.max() == 4


def test_requantize_numpy_and_torch_agree_exactly():
    rng = np.random.default_rng(1)
    acc = rng.integers(-(1 << 25), 1 << 25, size=(4, 6, 5, 5), dtype=np.int64)
    res = rng.integers(0, 32, size=acc.shape, dtype=np.int64)
    mult = rng.integers(0, 1 << 15, size=(1, 6, 1, 1), dtype=np.int64)
    res_mult = rng.integers(0, 1 << 15, size=(1, 6, 1, 1), dtype=np.int64)
    shift = rng.integers(0, SHIFT_MAX + 1, size=(1, 6, 1, 1), dtype=np.int64)
    offset = rng.integers(-(1 << 40), 1 << 40, size=(1, 6, 1, 1), dtype=np.int64)
    for lo, hi in ((0, 31), (LOGIT_MIN, LOGIT_MAX)):
        a = requantize(acc, mult, offset, shift, lo, hi, res, res_mult)
        t = requantize(
            *(torch.from_numpy(v) for v in (acc, mult, offset, shift)),
            lo,
            hi,
            torch.from_numpy(res),
            torch.from_numpy(res_mult),
        )
        assert np.array_equal(a, t.numpy())


def test_quantize_input_codes():
    x = np.array([0.0, 1 / 62, 1 / 62 - 1e-9, 0.5, 1.0, 1.2, -0.3])
    assert quantize_input(x, 1 / 31).tolist() == [0, 1, 0, 16, 31, 31, 0]


def test_quantize_weights_symmetric_levels():
    w = np.array([[1.0, -1.0, 0.5, -0.5, 0.0, 2.0], [1.0, -1.0, 0.5, -0.5, 0.0, 2.0]])
    q = quantize_weights(w, 1.0, np.array([4, 8]))
    assert q[0].tolist() == [7, -7, 4, -3, 0, 7]  # -3.5 rounds half up to -3
    assert q[1].tolist() == [127, -127, 64, -63, 0, 127]
    assert q.min() >= -127 and (q[0] >= -7).all()
    with pytest.raises(NumericsError, match="4 or 8"):
        quantize_weights(w, 1.0, np.array([4, 6]))
    with pytest.raises(NumericsError, match="one entry per filter"):
        quantize_weights(w, 1.0, np.array([4]))


def test_check_requant_range():
    check_requant_range("ok", 4608 * 127 * 31, np.array([32767]), np.array([1 << 40]))
    with pytest.raises(NumericsError, match="layer 'big'"):
        check_requant_range(
            "big", 4608 * 127 * 31, np.array([32767]), np.array([(1 << 47) - (1 << 30)])
        )
