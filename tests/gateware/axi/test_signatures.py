# amaranth: UnusedElaboratable=no
"""AXI signatures: members, widths, argument checking, read/write merging."""

from __future__ import annotations

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.gateware.axi.signatures import AXI4LiteSignature, AXI4Signature, connect_read_write


def test_lite_members():
    sig = AXI4LiteSignature(6)
    assert set(sig.members) == {
        "awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready",
        "bresp", "bvalid", "bready", "araddr", "arprot", "arvalid", "arready",
        "rdata", "rresp", "rvalid", "rready"}
    assert sig.members["awaddr"].shape == 6 and sig.members["wstrb"].shape == 4
    assert sig.members["rdata"].flow == In and sig.members["arvalid"].flow == Out
    assert sig == AXI4LiteSignature(6) and sig != AXI4LiteSignature(7)
    assert AXI4LiteSignature(8, 64).members["wstrb"].shape == 8


def test_axi4_members():
    sig = AXI4Signature(40, 128, 2)
    assert sig.members["awid"].shape == 2 and sig.members["rid"].flow == In
    assert sig.members["araddr"].shape == 40 and sig.members["arlen"].shape == 8
    assert sig.members["wstrb"].shape == 16 and sig.size_code == 4
    assert "awid" not in AXI4Signature(32, 64).members
    ro = AXI4Signature(32, 64, read=True, write=False)
    assert not any(n.startswith(("aw", "w", "b")) for n in ro.members)
    wo = AXI4Signature(32, 64, read=False)
    assert not any(n.startswith(("ar", "r")) for n in wo.members)
    assert sig == AXI4Signature(40, 128, 2) and sig != AXI4Signature(40, 128, 1)
    assert ro != AXI4Signature(32, 64)


@pytest.mark.parametrize("args,kwargs,exc,match", [
    ((32, 48), {}, ValueError, "data_width must be one of 32, 64, 128"),
    ((32, 2048), {}, ValueError, "data_width"),
    ((11, 64), {}, ValueError, r"addr_width must be in \[12, 64\], not 11"),
    ((65, 64), {}, ValueError, "addr_width"),
    ((32, 64, 33), {}, ValueError, "id_width"),
    ((32, 64, -1), {}, ValueError, "id_width"),
    ((32.0, 64), {}, TypeError, "addr_width must be an int"),
    ((32, 64), {"read": False, "write": False}, ValueError, "read channels, the write channels"),
])
def test_axi4_bad_widths(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        AXI4Signature(*args, **kwargs)


def test_lite_bad_widths():
    with pytest.raises(ValueError, match="data_width must be one of 32, 64 bits, not 128"):
        AXI4LiteSignature(8, 128)
    with pytest.raises(ValueError, match="addr_width"):
        AXI4LiteSignature(0)


def test_connect_read_write():
    full = AXI4Signature(32, 64, 1).create(path=("full",))
    rd = AXI4Signature(32, 64, 1, write=False).create(path=("rd",))
    wr = AXI4Signature(32, 64, 1, read=False).create(path=("wr",))
    m = Module()
    connect_read_write(m, full, read=rd, write=wr)
    with pytest.raises(ValueError, match="does not match the full port"):
        connect_read_write(Module(), full, read=AXI4Signature(32, 128, 1, write=False).create())
    with pytest.raises(ValueError, match="has no read channels"):
        connect_read_write(Module(), full, read=wr)


def test_flipped_connect():
    class Master(wiring.Component):
        def __init__(self):
            super().__init__({"bus": Out(AXI4Signature(32, 64))})

        def elaborate(self, platform):
            return Module()

    class Slave(wiring.Component):
        def __init__(self):
            super().__init__({"bus": In(AXI4Signature(32, 64))})

        def elaborate(self, platform):
            return Module()

    m = Module()
    wiring.connect(m, Master().bus, Slave().bus)
