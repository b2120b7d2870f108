"""Reusable AXI building blocks (Amaranth 0.5): signatures, an HLS-style AXI4-Lite control
block, AXI4 burst read/write masters, a pysim AXI memory model and a Vivado-naming Verilog
emitter.

Submodules import amaranth; import them directly (``from filmqnn_hw.gateware.axi.lite_regs import
...``).
"""
