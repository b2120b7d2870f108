"""A user's own SoC top that reuses filmqnn's Amaranth components.

``MySoC`` is *the user's* ``wiring.Component``. With the user's own parameters (none of them
are filmqnn's defaults) it instantiates

(a) a W4A5 filter-packed DSP multiplier for a DSP48E2 (``family="xcup"``, field spacing 11,
    symmetric weights -7..7), driven by the user's own input registers and followed by the
    user's own per-channel adders;
(b) a :class:`~filmqnn_hw.gateware.pe_array.PEArray` built from the user's
    :class:`~filmqnn_hw.spec.config.AcceleratorConfig` (every field spelled out in
    :func:`my_config`), its ports forwarded to the top with ``wiring.connect``;
(c) the whole :class:`~filmqnn_hw.gateware.top.FilmQnnAccelerator` for the same config, its
    AXI4-Lite control slave and AXI4 master exposed at the top under the Vivado names
    ``s_axi_control`` / ``m_axi_gmem0`` (``wiring.flipped`` connections), plus the user's own
    status-LED register.

Run ``python examples/my_soc.py [OUT.v]`` to write the top's Verilog (Vivado port names via
:func:`filmqnn_hw.flows.verilog.convert_vivado`); ``tests/test_examples.py`` simulates it.
"""

from __future__ import annotations

import argparse
import os
import sys

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from filmqnn_hw.flows.verilog import convert_vivado
from filmqnn_hw.gateware.arith.packed_dsp import W4A5FilterPackedDsp
from filmqnn_hw.gateware.axi.signatures import AXI4LiteSignature, AXI4Signature
from filmqnn_hw.gateware.pe_array import PEArray
from filmqnn_hw.gateware.top import FilmQnnAccelerator
from filmqnn_hw.spec.config import AcceleratorConfig

__all__ = ["my_config", "MySoC", "main"]


def my_config() -> AcceleratorConfig:
    """The user's accelerator: an 8 x 4 array on an UltraScale+ part, every field given.

    The RTL reads ``family``, ``tm``/``tn``/``tr``/``tc``, the lane split, ``act_pack``,
    ``axi_data_bits``, ``max_fan_in`` and the weight ranges. ``kernel_packing``,
    ``axi_ports > 1``, ``px_max``, ``fm_cache_kbits``, ``wfill_cycles`` and ``requant_lanes``
    are cycle-model features not in the RTL yet (``docs/rtl.md``), so they are left at the
    values the RTL builds. ``geometry()`` requires ``tm`` and ``tn`` to be multiples of
    ``act_pack`` and, with 20-bit words on 64-bit beats (3 words per beat), ``tc`` a
    multiple of 3.
    """
    return AcceleratorConfig(
        # -- target
        board="my_board",
        part="xczu3eg-sbva484-1-e",
        family="xcup",  # DSP48E2
        clock_mhz=150.0,
        # -- PE array: 8 output lanes x 4 input slots, 3 x 3 output tiles
        tm=8,
        tn=4,
        tr=3,
        tc=3,
        n8_slots=2,  # lanes 0, 1 hold the 8-bit filters of every 8-wide tile
        w8_dsp_lanes=1,  # lane 0: W8A5 packed DSP (2 MACs/DSP)
        w8_lut_lanes=1,  # lane 1: LUT multipliers
        w4_dsp_lanes=4,  # lanes 2..5: two W4A5 filter-packed DSP pairs (4 MACs/DSP)
        w4_lut_lanes=2,  # lanes 6, 7: LUT multipliers
        kernel_packing=False,
        # -- data movement
        act_pack=4,  # 4 activations (20 bits) per packed word
        axi_data_bits=64,
        axi_ports=1,
        ddr_bytes_per_cycle=0.0,
        wfill_cycles=1,
        fm_cache_kbits=0,
        px_max=1,
        requant_lanes=0,
        # -- numerics
        ratio_8bit=0.25,
        max_fan_in=1152,  # 3x3x128: 24-bit accumulators instead of the default 26
        w4_min=-7,
        w4_max=7,
        w8_min=-127,
        w8_max=127,
        notes={"origin": "examples/my_soc.py"},
    )


class MySoC(wiring.Component):
    """The user's top level.

    Parameters
    ----------
    config : AcceleratorConfig | None
        Accelerator and PE-array configuration; default :func:`my_config`.
    addr_width : int
        DDR address width of ``m_axi_gmem0``.
    heartbeat_bits : int
        Width of the free-running counter whose two top bits blink ``leds[3:2]``.

    Members
    -------
    s_axi_control : In(AXI4LiteSignature(6, 32))
        The accelerator's control slave (HLS ``ap_ctrl_hs`` register layout).
    m_axi_gmem0 : Out(AXI4Signature(addr_width, config.axi_data_bits))
        The accelerator's DDR master.
    interrupt : Out(1)
        The accelerator's interrupt.
    leds : Out(4)
        The user's status register: bit 0 "done" (set when ``interrupt`` rises, cleared by
        ``led_clear``), bit 1 "DDR busy" (any ``m_axi_gmem0`` VALID in the previous cycle),
        bits 3:2 the heartbeat.
    led_clear : In(1)
    mul_w : In(ArrayLayout(signed(4), 2))      weights of two output channels (-7..7)
    mul_x : In(ArrayLayout(unsigned(5), 2))    two activation codes (0..31)
    mul_valid : In(1)
    mul_lanes : Out(ArrayLayout(signed(11), 4))  the multiplier's lanes (``layout.lanes`` order:
        ``w0*x0, w0*x1, w1*x0, w1*x1``)
    mul_sums : Out(ArrayLayout(signed(12), 2))   ``w[c] * (x[0] + x[1])`` per channel
    mul_valid_out : Out(1)
        ``mul_lanes``/``mul_sums`` belong to the operands given ``mul_latency`` (6) cycles
        earlier: 1 input register + 4 in the packed DSP + 1 adder register.
    pe : Out(PEArray(config).signature)
        The PE array's ports, same names and directions (``pe.x``, ``pe.record``, ``pe.mode``,
        ``pe.valid``, ``pe.phase`` in; ``pe.sum``, ``pe.valid_out`` out).
    """

    #: DSP field spacing of the user's multiplier: 11 bits per lane needs the DSP48E2's 27-bit
    #: pre-adder (w1 sits at bit 22); on a DSP48E1 (25 bits) this layout is refused.
    MUL_SPACING = 11

    def __init__(self, config: AcceleratorConfig | None = None, *, addr_width: int = 32,
                 heartbeat_bits: int = 26) -> None:
        self.config = my_config() if config is None else config
        self.heartbeat_bits = heartbeat_bits
        # the reused components are built here so their parameters can size the top's ports
        self.mul = W4A5FilterPackedDsp(self.config.family, spacing=self.MUL_SPACING,
                                       full_range=False)
        self.pe_array = PEArray(self.config)
        self.accel = FilmQnnAccelerator(self.config, addr_width=addr_width)
        lane_w = self.mul.lane_width
        super().__init__({
            "s_axi_control": In(AXI4LiteSignature(self.accel.cmap.addr_width, 32)),
            "m_axi_gmem0": Out(AXI4Signature(addr_width, self.config.axi_data_bits)),
            "interrupt": Out(1),
            "leds": Out(4),
            "led_clear": In(1),
            "mul_w": In(data.ArrayLayout(signed(4), 2)),
            "mul_x": In(data.ArrayLayout(unsigned(5), 2)),
            "mul_valid": In(1),
            "mul_lanes": Out(data.ArrayLayout(signed(lane_w), 4)),
            "mul_sums": Out(data.ArrayLayout(signed(lane_w + 1), 2)),
            "mul_valid_out": Out(1),
            "pe": Out(self.pe_array.signature),
        })

    @property
    def mul_latency(self) -> int:
        """Cycles from ``mul_valid`` to ``mul_valid_out``."""
        return 1 + self.mul.latency + 1

    def elaborate(self, platform):
        m = Module()

        # (a) the packed multiplier, driven by the user's own pipeline -----------------------
        m.submodules.mul = mul = self.mul
        w_r = Signal.like(self.mul_w, name="mul_w_reg")
        x_r = Signal.like(self.mul_x, name="mul_x_reg")
        v_r = Signal(name="mul_valid_reg")
        m.d.sync += [w_r.eq(self.mul_w), x_r.eq(self.mul_x), v_r.eq(self.mul_valid)]
        m.d.comb += [
            mul.w0.eq(w_r[0]), mul.w1.eq(w_r[1]),
            mul.x0.eq(x_r[0]), mul.x1.eq(x_r[1]),
            mul.valid_in.eq(v_r),
        ]
        # lane k holds the product named in layout.lanes[k]; the user's adders sum, per
        # weight (= output channel), its products with both activations
        by_weight: dict[str, list] = {"w0": [], "w1": []}
        for k, lane in enumerate(mul.layout.lanes):
            ((a, b),) = lane.products
            by_weight[a if a.startswith("w") else b].append(mul.lanes[k])
        m.d.sync += [
            self.mul_lanes.eq(mul.lanes),
            self.mul_sums[0].eq(by_weight["w0"][0] + by_weight["w0"][1]),
            self.mul_sums[1].eq(by_weight["w1"][0] + by_weight["w1"][1]),
            self.mul_valid_out.eq(mul.valid_out),
        ]

        # (b) the PE array, its ports forwarded unchanged --------------------------------------
        m.submodules.pe_array = self.pe_array
        wiring.connect(m, wiring.flipped(self.pe), self.pe_array)

        # (c) the whole accelerator on the top's AXI ports -------------------------------------
        m.submodules.accel = acc = self.accel
        wiring.connect(m, wiring.flipped(self.s_axi_control), acc.s_axi_control)
        wiring.connect(m, acc.m_axi_gmem0, wiring.flipped(self.m_axi_gmem0))
        m.d.comb += self.interrupt.eq(acc.interrupt)

        # the user's status-LED register ---------------------------------------------------------
        irq_prev = Signal()
        done = Signal()
        busy = Signal()
        beat = Signal(self.heartbeat_bits)
        bus = self.m_axi_gmem0
        m.d.sync += [
            irq_prev.eq(acc.interrupt),
            busy.eq(bus.arvalid | bus.awvalid | bus.wvalid | bus.rvalid | bus.bvalid),
            beat.eq(beat + 1),
        ]
        with m.If(self.led_clear):
            m.d.sync += done.eq(0)
        with m.Elif(acc.interrupt & ~irq_prev):
            m.d.sync += done.eq(1)
        m.d.comb += self.leds.eq(
            done | (busy << 1) | (beat[self.heartbeat_bits - 2:] << 2))
        return m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write the Verilog of the example user SoC.")
    ap.add_argument("out", nargs="?", default="build/examples/my_soc.v",
                    help="output file (default: %(default)s)")
    ap.add_argument("--name", default="my_soc", help="Verilog module name")
    args = ap.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    top = MySoC()
    text = convert_vivado(top, args.name)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}: module {args.name}, {text.count(chr(10))} lines, config "
          f"{top.config.config_hash()[:12]} (tm={top.config.tm}, tn={top.config.tn}, "
          f"{top.config.family}, {top.config.axi_data_bits}-bit AXI)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
