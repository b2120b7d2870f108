"""Explicit DSP48E1 / DSP48E2 primitive instances for the packed multipliers (Vivado flavour).

One configuration is used everywhere: ``P = (A + D) * B`` (or ``A * B`` when D is unused),
registered as AREG=BREG=DREG=1, ADREG=0, MREG=1, PREG=1 (latency 3 from the ports to ``P``),
static control inputs (INMODE/OPMODE/ALUMODE/CARRYINSEL unregistered), clock enables tied
high, resets tied low (the datapath needs no reset: ``valid`` is reset in fabric).

* DSP48E1 (UG479): INMODE = 0b00100 (A2 + D) or 0b00000 (A2), OPMODE = 0b000_01_01 (X=Y=M,
  Z=0), ALUMODE = 0, USE_DPORT = "TRUE"/"FALSE".
* DSP48E2 (UG579): the same INMODE/ALUMODE encodings, OPMODE = 0b00_000_01_01 (W=0, Z=0,
  Y=X=M), AMULTSEL = "AD"/"A", BMULTSEL = "B", PREADDINSEL = "A".
"""

from __future__ import annotations

from amaranth import Cat, Const, Instance, Signal

from filmqnn_hw.spec.packing import DSP_PORTS

__all__ = ["packed_dsp_instance", "PRIMITIVE_LATENCY"]

#: Cycles from the A/B/D ports to P.
PRIMITIVE_LATENCY = 3


def _sext(v: Signal, width: int):
    n = len(v)
    if n >= width:
        return v[:width]
    return Cat(v, v[n - 1].replicate(width - n))


def packed_dsp_instance(
    family: str,
    *,
    a: Signal,
    d: Signal,
    b: Signal,
    p: Signal,
    use_d: bool,
    pcin: Signal | None = None,
    pcout: Signal | None = None,
) -> Instance:
    """``Instance`` of the family's DSP computing ``p <= (a + d) * b [+ pcin]`` with latency 3.

    ``a``/``d``/``b`` are signed Amaranth values (sign-extended here to the port widths),
    ``p`` a 48-bit signal driven by the primitive's P output. With ``pcin`` (the previous
    DSP's PCOUT) the post-adder adds it (OPMODE Z = PCIN); ``pcout`` receives PCOUT.
    """
    ports = DSP_PORTS[family]
    common = dict(
        p_AREG=1,
        p_BREG=1,
        p_ACASCREG=1,
        p_BCASCREG=1,
        p_DREG=1,
        p_ADREG=0,
        p_MREG=1,
        p_PREG=1,
        p_CREG=0,
        p_INMODEREG=0,
        p_OPMODEREG=0,
        p_ALUMODEREG=0,
        p_CARRYINREG=0,
        p_CARRYINSELREG=0,
        p_A_INPUT="DIRECT",
        p_B_INPUT="DIRECT",
        p_USE_MULT="MULTIPLY",
        p_USE_SIMD="ONE48",
    )
    conn = dict(
        i_A=_sext(a, ports["a"]),
        i_B=_sext(b, ports["b"]),
        i_D=_sext(d, ports["d"]),
        i_C=Const(0, 48),
        i_ALUMODE=Const(0, 4),
        i_CARRYIN=Const(0, 1),
        i_CARRYINSEL=Const(0, 3),
        i_INMODE=Const(0b00100 if use_d else 0, 5),
        i_CEA1=Const(1, 1),
        i_CEA2=Const(1, 1),
        i_CEB1=Const(1, 1),
        i_CEB2=Const(1, 1),
        i_CEC=Const(0, 1),
        i_CED=Const(1, 1),
        i_CEAD=Const(1, 1),
        i_CEM=Const(1, 1),
        i_CEP=Const(1, 1),
        i_CECTRL=Const(1, 1),
        i_CEINMODE=Const(1, 1),
        i_CEALUMODE=Const(1, 1),
        i_CECARRYIN=Const(1, 1),
        i_RSTA=Const(0, 1),
        i_RSTB=Const(0, 1),
        i_RSTC=Const(0, 1),
        i_RSTD=Const(0, 1),
        i_RSTM=Const(0, 1),
        i_RSTP=Const(0, 1),
        i_RSTCTRL=Const(0, 1),
        i_RSTINMODE=Const(0, 1),
        i_RSTALUMODE=Const(0, 1),
        i_RSTALLCARRYIN=Const(0, 1),
        o_P=p,
    )
    z_pcin = 0b001 << 4 if pcin is not None else 0  # OPMODE Z = PCIN (cascade) or 0
    if pcin is not None:
        conn["i_PCIN"] = pcin
    if pcout is not None:
        conn["o_PCOUT"] = pcout
    if family == "xc7":
        return Instance(
            "DSP48E1",
            **common,
            p_USE_DPORT="TRUE" if use_d else "FALSE",
            i_OPMODE=Const(0b0000101 | z_pcin, 7),
            **conn,
            i_CLK=_clk(),
        )
    return Instance(
        "DSP48E2",
        **common,
        p_AMULTSEL="AD" if use_d else "A",
        p_BMULTSEL="B",
        p_PREADDINSEL="A",
        i_OPMODE=Const(0b000000101 | z_pcin, 9),
        **conn,
        i_CLK=_clk(),
    )


def _clk():
    from amaranth.hdl import ClockSignal

    return ClockSignal("sync")
