"""Arithmetic generators: packed DSP multipliers, LUT multipliers and dot-product units.

``packing`` (numpy only) describes and models every packed layout bit by bit; the Amaranth
components live in ``packed_dsp``, ``lut_mul`` and ``dot``; ``costs`` loads the measured
per-MAC resource coefficients used by the resource model.
"""
