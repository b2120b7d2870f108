"""The model layer: resource and cycle models in pure Python (imports ``spec`` only).

* ``resources``: LUT/FF/DSP/BRAM of a config, with coefficients from measured data files.
* ``arith_costs``: loader of the per-MAC costs that ``benchmarks/arith.py`` writes.
* ``rtl_estimate``: the fast per-layer estimate of the RTL's cycles the design search ranks
  (the RTL's own cycles are measured on its timing twin: ``filmqnn_hw.sim.twin``).
* ``cycles``: the target schedule of ``docs/architecture.md`` (not the built RTL).
"""
