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

// ap_axiu / ap_axis: beats of D-bit unsigned / signed data, i.e. hls::axis of an ap_uint<D> /
// ap_int<D> (same fields, same order).
template <int D, int U = 0, int TI = 0, int TD = 0>
using ap_axiu = hls::axis<ap_uint<D>, U, TI, TD>;
template <int D, int U = 0, int TI = 0, int TD = 0>
using ap_axis = hls::axis<ap_int<D>, U, TI, TD>;

#endif  // FILMQNN_HLS_COMPAT_AP_AXI_SDATA_H
