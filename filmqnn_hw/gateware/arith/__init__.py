"""Arithmetic generators: packed DSP multipliers, LUT multipliers and dot-product units.

* ``packing``: bit-level description and exact numpy model of every packed layout (no amaranth).
* ``packed_dsp``: W4A5 filter packing (4/DSP), W4A5 kernel packing (6/DSP), W8A5 (2/DSP) on
  DSP48E1 and DSP48E2, behavioural or primitive flavour (``dsp_primitives``).
* ``cascade``: W8A5 dot product summed in a DSP PCIN cascade.
* ``lut_mul``: shift-add W4A5 / W8A5 multipliers that map to LUTs.
* ``dot``: dot-product / accumulate units with fan-in-sized accumulators.
* ``dsp48e2_model``: simulation models (yosys's DSP48E1, our DSP48E2 subset).
* ``exhaustive``: Verilator harness checking every lane of every flavour over every operand.
* ``costs``: loader of the measured per-MAC coefficients (``data/arith_costs.json``).
"""
