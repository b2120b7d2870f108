"""filmqnn_quant: filter-wise mixed-precision (W4/W8, A5) quantization and the golden model.

Light to import: torch is only imported by the submodules that train or convert models
(``qat``, ``models``, ``convert``, ``train``). ``numerics``, ``intgraph`` and ``image`` need
numpy only, so hardware tests can use the golden model without torch.
"""
