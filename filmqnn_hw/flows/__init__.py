"""The flow layer: from gateware to files and tools (imports ``spec``, ``gateware``, ``models``).

* ``verilog``: Verilog emission with Vivado-recognised AXI port names.
* ``synth``, ``pyosys_cli``: yosys synthesis and its reports.
* ``calibrate``: synthesises buffer and unit shapes to fit the resource model.
* ``vivado``: the Vivado block design and bitstream scripts.
* ``hls``: the Vivado HLS C++ kernel (``hls_templates/``) and its g++ C-simulation.
"""
