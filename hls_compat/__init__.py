"""Header-only C-simulation stand-ins for the Xilinx HLS headers a filmqnn kernel includes.

``ap_int.h`` (``ap_int<W>``/``ap_uint<W>``, 1 <= W <= 128), ``hls_stream.h`` (``hls::stream``)
and ``ap_axi_sdata.h`` (AXI-Stream side-channel structs) let the *same* kernel source compile
with a plain g++ (C-simulation, ``-I`` :func:`include_dir`) and with Vivado/Vitis HLS against
Xilinx's own headers. See ``hls_compat/README.md`` for the supported API and every deviation
from Xilinx's behaviour.
"""

from __future__ import annotations

from hls_compat.csim import CXXFLAGS, CsimError, compile_csim, include_dir

__all__ = ["include_dir", "CXXFLAGS", "CsimError", "compile_csim"]

