"""Reusable AXI building blocks (Amaranth 0.5): signatures, an HLS-style AXI4-Lite control
block, AXI4 burst read/write masters with a burst splitter, a DMA and a skid buffer.

The memory model for simulation is :mod:`filmqnn_hw.sim.mem_model`; Verilog with Vivado's
port names is :mod:`filmqnn_hw.flows.verilog`. Submodules import amaranth; import them
directly (``from filmqnn_hw.gateware.axi.lite_regs import ...``).
"""
