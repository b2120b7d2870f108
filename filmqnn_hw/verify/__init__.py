"""The verification layer: harnesses the tests and benchmarks share.

* ``formal``: yosys ``sat`` proofs of the requantization unit over its whole input domain.
* ``exhaustive``: Verilator checks of every packed lane over every operand.
"""
