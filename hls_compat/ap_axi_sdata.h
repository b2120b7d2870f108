// hls_compat/ap_axi_sdata.h -- stand-ins for Xilinx's AXI4-Stream side-channel structs
// (ap_axiu / ap_axis / hls::axis) for C-simulation, written for the filmqnn project.
//
// Fields as documented in UG1399: data, keep, strb, user, last, id, dest. Xilinx allows a side
// channel of width 0 (absent); here a width of 0 gives a 1-bit field that hardware ignores
// (C-simulation cannot have a 0-bit ap_uint). Kernels should only read/write the fields they
// declare with a non-zero width.
#ifndef FILMQNN_HLS_COMPAT_AP_AXI_SDATA_H
#define FILMQNN_HLS_COMPAT_AP_AXI_SDATA_H

#include "ap_int.h"

namespace hls_compat_detail {
constexpr int side_w(int w) { return w > 0 ? w : 1; }
}  // namespace hls_compat_detail

template <int D, int U = 0, int TI = 0, int TD = 0> struct ap_axiu {
  ap_uint<D> data;
  ap_uint<(D + 7) / 8> keep;
  ap_uint<(D + 7) / 8> strb;
  ap_uint<hls_compat_detail::side_w(U)> user;
  ap_uint<1> last;
  ap_uint<hls_compat_detail::side_w(TI)> id;
  ap_uint<hls_compat_detail::side_w(TD)> dest;
};

template <int D, int U = 0, int TI = 0, int TD = 0> struct ap_axis {
  ap_int<D> data;
  ap_uint<(D + 7) / 8> keep;
  ap_uint<(D + 7) / 8> strb;
  ap_uint<hls_compat_detail::side_w(U)> user;
  ap_uint<1> last;
  ap_uint<hls_compat_detail::side_w(TI)> id;
  ap_uint<hls_compat_detail::side_w(TD)> dest;
};

namespace hls_compat_detail {
// Bit width of an AXI-Stream payload type: W for ap_[u]int<W>, 8 * sizeof(T) otherwise.
template <class T> struct data_bits { static constexpr int value = int(8 * sizeof(T)); };
template <int W> struct data_bits<ap_int<W>> { static constexpr int value = W; };
template <int W> struct data_bits<ap_uint<W>> { static constexpr int value = W; };
}  // namespace hls_compat_detail

namespace hls {
// hls::axis<T, U, TI, TD>: an AXI4-Stream beat carrying a T (e.g. ap_uint<64>).
template <class T, int U = 0, int TI = 0, int TD = 0> struct axis {
  static constexpr int kBytes = (hls_compat_detail::data_bits<T>::value + 7) / 8;
  T data;
  ap_uint<kBytes> keep;
  ap_uint<kBytes> strb;
  ap_uint<hls_compat_detail::side_w(U)> user;
  ap_uint<1> last;
  ap_uint<hls_compat_detail::side_w(TI)> id;
  ap_uint<hls_compat_detail::side_w(TD)> dest;
};
}  // namespace hls

#endif  // FILMQNN_HLS_COMPAT_AP_AXI_SDATA_H
