"""Arithmetic generators: packed DSP multipliers, LUT multipliers and dot-product units.

* ``packed_dsp``: W4A5 filter packing (4/DSP), W4A5 kernel packing (6/DSP), W8A5 (2/DSP) on
  DSP48E1 and DSP48E2, behavioural or primitive flavour (``dsp_primitives``); their bit
  layouts and exact numpy models are :mod:`filmqnn_hw.spec.packing`.
* ``cascade``: W8A5 dot product summed in a DSP PCIN cascade.
* ``lut_mul``: shift-add W4A5 / W8A5 multipliers that map to LUTs.
* ``dot``: dot-product / accumulate units with fan-in-sized accumulators.
* ``dsp48e2_model``: simulation models (yosys's DSP48E1, our DSP48E2 subset).

The exhaustive lane checks are :mod:`filmqnn_hw.verify.exhaustive`; the measured per-MAC
costs are :mod:`filmqnn_hw.models.arith_costs`.
"""
