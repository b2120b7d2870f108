"""The simulation layer: run the generated accelerator on a memory image.

* ``pysim``: the whole top in Amaranth's simulator with an AXI memory model.
* ``mem_model``, ``lite_sim``: the AXI4 memory and AXI4-Lite host models pysim uses.
* ``verilator``: the emitted Verilog in Verilator with a C++ AXI testbench.
"""
