"""Bit-level model of the packed layouts: exhaustive over every operand value, and the checks."""

import numpy as np
import pytest

from filmqnn_hw.spec.packing import (
    Operand,
    PackedLayout,
    PackingError,
    exhaustive_check,
    model_p,
    reference_lanes,
    w4a5_filter_layout,
    w4a5_kernel_layout,
    w8a5_layout,
)

FAMILIES = ["xc7", "xcup"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "make,macs,combos",
    [
        (w4a5_filter_layout, 4, 16 * 16 * 32 * 32),
        (w4a5_kernel_layout, 6, 16**3 * 32**2),
        (w8a5_layout, 2, 256 * 32 * 32),
    ],
)
def test_layout_exact_over_full_domain(family, make, macs, combos):
    lay = make(family)
    assert lay.macs == macs
    # full signed range: -8 / -128 included
    assert min(op.lo for op in lay.operands) in (-8, -128)
    assert exhaustive_check(lay) == combos


def test_w8a5_without_guard_bit_is_exact():
    lay = w8a5_layout("xc7", spacing=13)
    assert lay.x_bits == 19
    assert exhaustive_check(lay) == 256 * 32 * 32


def test_kernel_lanes_are_polynomial_product():
    lay = w4a5_kernel_layout("xc7")
    assert [lane.products for lane in lay.lanes] == [
        (("w0", "x0"),),
        (("w0", "x1"), ("w1", "x0")),
        (("w1", "x1"), ("w2", "x0")),
        (("w2", "x1"),),
    ]
    assert [lane.offset for lane in lay.lanes] == [0, 10, 20, 30]


def test_borrow_correction_is_needed():
    """Plain slicing without adding the borrow back is wrong for negative lower lanes."""
    lay = w4a5_filter_layout("xc7")
    vals = {"w0": np.array([-1]), "w1": np.array([3]), "x0": np.array([1]), "x1": np.array([2])}
    p = model_p(lay, vals)
    ref = reference_lanes(lay, vals)
    naive = (p >> 10) & 0x3FF
    naive = np.where(naive >= 512, naive - 1024, naive)
    assert int(naive[0]) != int(ref[1][0])  # -2 expected, slicing gives -3


@pytest.mark.parametrize(
    "make,kwargs,match",
    [
        (w4a5_filter_layout, {"family": "xc7", "spacing": 11}, "pre-adder operand needs 27 bits"),
        (w4a5_filter_layout, {"family": "xc7", "spacing": 8}, "needs 9 bits.*only 8 bits"),
        (w4a5_kernel_layout, {"family": "xc7", "spacing": 9}, "needs 10 bits.*only 9 bits"),
        (w4a5_kernel_layout, {"family": "xcup", "spacing": 12}, "DSP48E2 pre-adder"),
        (w8a5_layout, {"family": "xc7", "spacing": 12}, "needs 13 bits"),
        (w4a5_filter_layout, {"family": "xc6"}, "unknown FPGA family"),
    ],
)
def test_layout_errors(make, kwargs, match):
    with pytest.raises(PackingError, match=match):
        make(**kwargs)


def test_b_port_too_wide():
    x = Operand("w", 4, True, -8, 7)
    with pytest.raises(PackingError, match="B port is 18 bits"):
        PackedLayout(
            "t",
            "xc7",
            ((x, 0),),
            ((Operand("a", 5, False, 0, 31), 0), (Operand("b", 5, False, 0, 31), 14)),
        )


def test_operand_domain_error():
    with pytest.raises(PackingError, match="not inside the signed 4-bit range"):
        Operand("w", 4, True, -9, 7)
