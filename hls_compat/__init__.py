"""Header-only C-simulation stand-ins for the Xilinx HLS headers a filmqnn kernel includes.

``ap_int.h`` (``ap_int<W>``/``ap_uint<W>``, 1 <= W <= 128), ``hls_stream.h`` (``hls::stream``)
and ``ap_axi_sdata.h`` (AXI-Stream side-channel structs) let the *same* kernel source compile
with a plain g++ (C-simulation, ``-I`` :func:`include_dir`) and with Vivado/Vitis HLS against
Xilinx's own headers. See ``hls_compat/README.md`` for the supported API and every deviation
from Xilinx's behaviour.
"""

from __future__ import annotations

from pathlib import Path

from hls_compat.csim import CXXFLAGS, CsimError, compile_csim

__all__ = ["include_dir", "CXXFLAGS", "CsimError", "compile_csim"]


def include_dir() -> Path:
    """The directory holding ``ap_int.h``, ``hls_stream.h`` and ``ap_axi_sdata.h`` (for ``-I``)."""
    return Path(__file__).resolve().parent
