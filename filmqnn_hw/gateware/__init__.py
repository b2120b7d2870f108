"""The gateware layer: Amaranth components (imports ``spec`` and amaranth, nothing else).

``arith/`` (packed DSP and LUT multipliers, dot units), ``axi/`` (AXI4 and AXI4-Lite
masters and control), ``pe_array``, ``requant``, ``actpack``, ``gearbox``, ``divider``,
``delay``, the program ``engine`` and the accelerator ``top``. Every component is a
``wiring.Component``; import the submodules directly.
"""
