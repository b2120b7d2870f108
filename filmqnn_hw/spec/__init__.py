"""The specification layer: what every other layer agrees on, in pure Python (numpy only).

It imports nothing else of the project, so the quantizer (``filmqnn_quant``) and every layer
of ``filmqnn_hw`` can use it without a cycle, and without amaranth or torch installed.

* ``config``: :class:`AcceleratorConfig`, the one object every generator and the exporter read.
* ``geometry``: every size and latency derived from a config (buffers, records, ports, unit
  latencies) and the RTL's fixed limits.
* ``numerics``: the integer arithmetic contract (requantization, rounding, ranges).
* ``intgraph``: the integer network and the golden model that defines every bit.
* ``packing``: the bit layouts and exact models of the packed DSP multipliers.
* ``weight_image``: the exported weight-image file format.
* ``program``: the layer-program format (descriptors, op/mode/flag codes, DDR layouts).
* ``networks``: layer-shape descriptions of networks, for the models and the design search.
* ``files``: atomic file writes.
"""
