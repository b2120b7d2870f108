"""AXI4 and AXI4-Lite interface signatures (flat, Vivado-style member names).

Every channel signal is a direct member of the signature, named exactly as in the AXI
specification in lower case (``awaddr``, ``wvalid``, ``rresp``, ...). A component member called
``m_axi_gmem0`` with an :class:`AXI4Signature` therefore becomes the Verilog ports
``m_axi_gmem0_awaddr``, ``m_axi_gmem0_arlen``, ... when emitted with
:func:`filmqnn_hw.flows.verilog.convert_vivado`, which is what Vivado's IP packager and
cocotbext-axi's ``from_prefix`` expect.

Direction convention: the signature is written from the *manager* (master) side.
A master port is ``Out(AXI4Signature(...))``, a slave port is ``In(AXI4Signature(...))``.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "AXI4Signature",
    "AXI4LiteSignature",
    "BURST_INCR",
    "RESP_OKAY",
    "RESP_EXOKAY",
    "RESP_SLVERR",
    "RESP_DECERR",
    "AXI_DATA_WIDTHS",
    "AXI_LITE_DATA_WIDTHS",
    "connect_read_write",
]

#: AxBURST encoding of an incrementing burst.
BURST_INCR = 0b01
#: xRESP encodings.
RESP_OKAY, RESP_EXOKAY, RESP_SLVERR, RESP_DECERR = 0b00, 0b01, 0b10, 0b11
#: Data widths allowed for AXI4 (AMBA AXI spec: 8..1024 bits; narrower than 32 is not useful here).
AXI_DATA_WIDTHS = (32, 64, 128, 256, 512, 1024)
#: Data widths allowed for AXI4-Lite.
AXI_LITE_DATA_WIDTHS = (32, 64)


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], not {value}")
    return value


def _check_data_width(name: str, value: object, allowed: tuple[int, ...]) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value not in allowed:
        raise ValueError(
            f"{name} must be one of {', '.join(map(str, allowed))} bits, not {value}"
        )
    return value


def _address_members(ch: str, addr_width: int, id_width: int) -> dict[str, wiring.Member]:
    """Manager-side members of the AXI4 address channel ``ch`` (``"aw"`` or ``"ar"``), in the
    order of the specification (``id`` only when ``id_width > 0``)."""
    members: dict[str, wiring.Member] = {f"{ch}id": Out(id_width)} if id_width else {}
    members.update({
        f"{ch}addr": Out(addr_width), f"{ch}len": Out(8), f"{ch}size": Out(3),
        f"{ch}burst": Out(2), f"{ch}lock": Out(1), f"{ch}cache": Out(4), f"{ch}prot": Out(3),
        f"{ch}qos": Out(4), f"{ch}valid": Out(1), f"{ch}ready": In(1),
    })
    return members


class _AXISignatureBase(wiring.Signature):
    """The address and data widths, and equality by class and :meth:`_key`, of the AXI4-Lite
    and AXI4 signatures (a flipped signature never equals an unflipped one)."""

    _addr_width: int
    _data_width: int

    @property
    def addr_width(self) -> int:
        """Byte address width."""
        return self._addr_width

    @property
    def data_width(self) -> int:
        """Data width in bits."""
        return self._data_width

    def _key(self) -> tuple:
        return (self._addr_width, self._data_width)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, type(self))
                and not isinstance(other, wiring.FlippedSignature) and self._key() == other._key())

    def __hash__(self) -> int:
        return hash((type(self), self._key()))


class AXI4LiteSignature(_AXISignatureBase):
    """AXI4-Lite manager-side signature.

    Members (manager view): ``aw{addr,prot,valid}`` out, ``awready`` in;
    ``w{data,strb,valid}`` out, ``wready`` in; ``b{resp,valid}`` in, ``bready`` out;
    ``ar{addr,prot,valid}`` out, ``arready`` in; ``r{data,resp,valid}`` in, ``rready`` out.

    Parameters
    ----------
    addr_width : int
        Byte address width, 1..64.
    data_width : int
        32 or 64.
    """

    def __init__(self, addr_width: int, data_width: int = 32):
        self._addr_width = _check_int("addr_width", addr_width, 1, 64)
        self._data_width = _check_data_width("data_width", data_width, AXI_LITE_DATA_WIDTHS)
        strb = data_width // 8
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(strb), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    def __repr__(self) -> str:
        return f"AXI4LiteSignature(addr_width={self.addr_width}, data_width={self.data_width})"


class AXI4Signature(_AXISignatureBase):
    """AXI4 (full) manager-side signature, optionally read-only or write-only.

    Channels and members (manager view, ``id`` members only when ``id_width > 0``):

    * AW: ``awid awaddr awlen(8) awsize(3) awburst(2) awlock(1) awcache(4) awprot(3) awqos(4)
      awvalid`` out, ``awready`` in
    * W: ``wdata wstrb wlast wvalid`` out, ``wready`` in
    * B: ``bid bresp(2) bvalid`` in, ``bready`` out
    * AR: ``arid araddr arlen arsize arburst arlock arcache arprot arqos arvalid`` out,
      ``arready`` in
    * R: ``rid rdata rresp(2) rlast rvalid`` in, ``rready`` out

    ``awregion``/``aruser`` and friends are omitted (optional in the spec; Vivado and
    cocotbext-axi treat them as absent).

    Parameters
    ----------
    addr_width : int
        Byte address width, 12..64 (at least one 4 KiB page).
    data_width : int
        One of 32, 64, 128, 256, 512, 1024.
    id_width : int
        0..32; 0 omits the ID members (Vivado then assumes ID 0). cocotbext-axi needs >= 1.
    read, write : bool
        Include the read (AR, R) and/or write (AW, W, B) channels.
    """

    def __init__(self, addr_width: int, data_width: int, id_width: int = 0, *,
                 read: bool = True, write: bool = True):
        self._addr_width = _check_int("addr_width", addr_width, 12, 64)
        self._data_width = _check_data_width("data_width", data_width, AXI_DATA_WIDTHS)
        self._id_width = _check_int("id_width", id_width, 0, 32)
        if not (read or write):
            raise ValueError(
                "an AXI4 signature needs the read channels, the write channels or both")
        self._read, self._write = bool(read), bool(write)
        members: dict[str, wiring.Member] = {}
        if write:
            members.update(_address_members("aw", addr_width, id_width))
            members.update({
                "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
                "wvalid": Out(1), "wready": In(1),
            })
            if id_width:
                members["bid"] = In(id_width)
            members.update({"bresp": In(2), "bvalid": In(1), "bready": Out(1)})
        if read:
            members.update(_address_members("ar", addr_width, id_width))
            if id_width:
                members["rid"] = In(id_width)
            members.update({
                "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
                "rvalid": In(1), "rready": Out(1),
            })
        super().__init__(members)

    @property
    def id_width(self) -> int:
        """ID width (0: no ID members)."""
        return self._id_width

    @property
    def read(self) -> bool:
        """True if the AR and R channels are present."""
        return self._read

    @property
    def write(self) -> bool:
        """True if the AW, W and B channels are present."""
        return self._write

    @property
    def bytes_per_beat(self) -> int:
        """Bytes per data beat."""
        return self._data_width // 8

    @property
    def size_code(self) -> int:
        """AxSIZE code of a full-width beat (log2 of bytes per beat)."""
        return (self._data_width // 8).bit_length() - 1

    def _key(self) -> tuple:
        return (self._addr_width, self._data_width, self._id_width, self._read, self._write)

    def __repr__(self) -> str:
        extra = ""
        if not (self._read and self._write):
            extra = ", read=False" if self._write else ", write=False"
        return (f"AXI4Signature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"id_width={self.id_width}{extra})")


def connect_read_write(m, full, *, read=None, write=None) -> None:
    """Wire a read-only and/or a write-only AXI4 manager interface onto one full AXI4 port.

    ``full`` is a manager-side port (e.g. the component's own ``Out(AXI4Signature(...))`` member),
    ``read``/``write`` are manager interfaces of sub-components with matching widths. Channels of
    ``full`` without a driver are tied idle (valid/ready low). Purely combinational.
    """
    sig = full.signature
    for part, name in ((read, "read"), (write, "write")):
        if part is None:
            continue
        ps = part.signature
        if (ps.addr_width, ps.data_width, ps.id_width) != (sig.addr_width, sig.data_width,
                                                           sig.id_width):
            raise ValueError(f"{name} interface {ps!r} does not match the full port {sig!r}")
        if not getattr(ps, name):
            raise ValueError(f"{name} interface {ps!r} has no {name} channels")
    for member_name, member in sig.members.items():
        is_read = member_name[0] in "r" or member_name.startswith("ar")
        src = read if is_read else write
        ours = getattr(full, member_name)
        if src is None:
            if member.flow == Out:
                m.d.comb += ours.eq(0)
            continue
        theirs = getattr(src, member_name)
        if member.flow == Out:
            m.d.comb += ours.eq(theirs)
        else:
            m.d.comb += theirs.eq(ours)
