// The ap_int idioms an HLS CNN kernel uses (compiled by test_ap_int_kernel_patterns.py).
//   P4 w0 w1 w2 w3        pack four 4-bit weights into ap_uint<16> with range(), unpack
//   P5 a0 .. a7           pack eight 5-bit activations into ap_uint<40>, unpack
//   M bits n w1..wn a1..an  weights packed (4 per ap_uint<16>, or 2 per ap_uint<16> for 8-bit),
//                         activations packed 8 per ap_uint<40>; unpacked MAC into ap_int<26>
//   Q acc mult offset shift lo hi res res_mult
//                         requantize: clip((acc*mult + offset + res*res_mult) >> shift, lo, hi)
//                         in ap_int<48>, in ap_int<64> and in the exact expression type
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "ap_int.h"

typedef ap_int<4> w4_t;
typedef ap_int<8> w8_t;
typedef ap_uint<5> act_t;
typedef ap_int<26> acc_t;
typedef ap_uint<15> mult_t;
typedef ap_int<48> offset_t;
typedef ap_uint<6> shift_t;
typedef ap_uint<16> wword_t;
typedef ap_uint<40> aword_t;

static wword_t pack4(const w4_t w[4]) {
  wword_t p = 0;
  for (int k = 0; k < 4; ++k) {
#pragma HLS UNROLL
    p.range(4 * k + 3, 4 * k) = w[k];
  }
  return p;
}

static aword_t pack5(const act_t a[8]) {
  aword_t p = 0;
  for (int k = 0; k < 8; ++k) {
#pragma HLS UNROLL
    p(5 * k + 4, 5 * k) = a[k];
  }
  return p;
}

static acc_t mac(int bits, const std::vector<wword_t>& wwords, const std::vector<aword_t>& awords,
                 int n) {
  acc_t acc = 0;
  for (int i = 0; i < n; ++i) {
#pragma HLS PIPELINE II = 1
    act_t a = awords[i / 8].range(5 * (i % 8) + 4, 5 * (i % 8));
    if (bits == 4) {
      w4_t w = wwords[i / 4].range(4 * (i % 4) + 3, 4 * (i % 4));
      acc += w * a;  // ap_int<9>
    } else {
      w8_t w = wwords[i / 2].range(8 * (i % 2) + 7, 8 * (i % 2));
      acc += w * a;  // ap_int<13>
    }
  }
  return acc;
}

// The N integers next on an input line, as codes of type T.
template <class T, int N> static void read_codes(std::istream& in, T (&codes)[N]) {
  for (int k = 0; k < N; ++k) {
    int v;
    in >> v;
    codes[k] = v;
  }
}

template <class Q> static long long clip(const Q& q, int lo, int hi) {
  if (q < lo) return lo;
  if (q > hi) return hi;
  return q.to_int64();
}

int main() {
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string kind;
    in >> kind;
    if (kind == "P4") {
      w4_t w[4];
      read_codes(in, w);
      wword_t p = pack4(w);
      std::cout << p;
      for (int k = 0; k < 4; ++k) std::cout << ' ' << w4_t(p.range(4 * k + 3, 4 * k));
    } else if (kind == "P5") {
      act_t a[8];
      read_codes(in, a);
      aword_t p = pack5(a);
      std::cout << p;
      for (int k = 0; k < 8; ++k) std::cout << ' ' << act_t(p(5 * k + 4, 5 * k));
    } else if (kind == "M") {
      int bits, n;
      in >> bits >> n;
      const int per = bits == 4 ? 4 : 2;
      std::vector<wword_t> ww((n + per - 1) / per, 0);
      std::vector<aword_t> aw((n + 7) / 8, 0);
      for (int i = 0; i < n; ++i) {
        int v;
        in >> v;
        ww[i / per].range(bits * (i % per) + bits - 1, bits * (i % per)) = v;
      }
      for (int i = 0; i < n; ++i) {
        int v;
        in >> v;
        aw[i / 8].range(5 * (i % 8) + 4, 5 * (i % 8)) = v;
      }
      std::cout << mac(bits, ww, aw, n);
    } else if (kind == "Q") {
      long long sacc, smult, soff, shift, res, res_mult;
      int lo, hi;
      in >> sacc >> smult >> soff >> shift >> lo >> hi >> res >> res_mult;
      const acc_t acc = sacc;
      const mult_t mult = smult;
      const offset_t offset = soff;
      const shift_t sh = shift;
      const act_t r = res;
      const mult_t rm = res_mult;
      ap_int<48> y48 = acc * mult + offset;  // ap_int<41> + ap_int<48> -> ap_int<49> -> wraps
      y48 += r * rm;                         // ap_uint<20>
      ap_int<48> q48 = y48 >> sh;            // arithmetic: floor
      ap_int<64> y64 = acc * mult + offset + r * rm;
      ap_int<64> q64 = y64 >> sh;
      auto yfull = acc * mult + offset + r * rm;  // exact type: ap_int<50>
      std::cout << clip(q48, lo, hi) << ' ' << clip(q64, lo, hi) << ' '
                << clip(yfull >> sh, lo, hi) << ' ' << decltype(yfull)::width;
    } else {
      std::cerr << "bad line: " << line << "\n";
      return 2;
    }
    std::cout << '\n';
  }
  return 0;
}
