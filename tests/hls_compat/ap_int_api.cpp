// API corners of hls_compat/ap_int.h (compiled by test_ap_int.py): prints "name value" lines.
//   ./ap_int_api          fixed checks
//   ./ap_int_api cat3     nested lvalue concatenation (a4, b5, c3) = v for v in 0..4095
#include <cmath>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>

#include "ap_int.h"

template <class F> static void expect_throw(const char* name, F f) {
  try {
    f();
    std::cout << name << " no-throw\n";
  } catch (const std::exception& e) {
    std::cout << name << " " << e.what() << "\n";
  }
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "cat3") {
    for (int v = 0; v < 4096; ++v) {
      ap_int<4> a;
      ap_uint<5> b;
      ap_int<3> c;
      (a, b, c) = ap_uint<12>(v);
      ap_uint<12> back = (a, b, c);
      std::cout << a << ' ' << b << ' ' << c << ' ' << back << '\n';
    }
    return 0;
  }
  ap_int<4> x = -6;  // 0b1010
  ap_uint<5> y = 19;  // 0b10011
  std::cout << "bit_cat " << (x[3], y) << "\n";                 // 1_10011 = 51
  std::cout << "cat_bit " << (y, x[0]) << "\n";                 // 10011_0 = 38
  std::cout << "bit_bit " << (x[1], x[2]) << "\n";              // 1_0 = 2
  auto ci = (x, 1);
  std::cout << "cat_int " << ci << " " << ci.width << "\n";     // 0b1010 << 32 | 1
  std::cout << "cat_range " << (x.range(3, 2), y).width << "\n";  // range ref is ap_uint<4>
  ap_uint<96> big("0x123456789abcdef012345678");
  std::cout << "hex96 " << big << " " << big.to_string(16) << "\n";
  ap_int<70> neg("-0d590295810358705651712");  // -2**69, the minimum
  ap_int<70> neg_wrap("-0d1180591620717411303424");  // -2**70 wraps to 0
  std::cout << "neg70 " << neg << " " << neg_wrap << "\n";
  std::cout << "radix " << ap_uint<12>("777", 8) << " " << ap_uint<12>("101", 2) << " "
            << ap_int<12>("-7ff", 16) << " " << ap_uint<16>("1_000", 10) << "\n";
  expect_throw("no_radix", [] { ap_uint<8> v("12"); (void)v; });
  expect_throw("bad_digit", [] { ap_uint<8> v("0b102"); (void)v; });
  expect_throw("div0", [] { ap_int<8> a = 5; ap_int<8> z = 0; auto q = a / z; (void)q; });
  expect_throw("mod0", [] { ap_int<8> a = 5; a %= 0; });
  expect_throw("range_oob", [] { ap_uint<8> a = 5; a.range(8, 0) = 1; });
  expect_throw("range_rev", [] { ap_uint<8> a = 5; auto r = a.range(1, 3); (void)r; });
  expect_throw("bit_oob", [] { ap_uint<8> a = 5; a[-1] = 1; });
  expect_throw("nan", [] { ap_int<8> a = std::nan(""); (void)a; });
  std::cout << "double " << ap_int<8>(-2.7) << " " << ap_uint<8>(300.9) << " " << ap_int<8>(-129.0)
            << " " << ap_int<128>(1e30) << " " << ap_int<100>(-1e30) << " "
            << ap_uint<4>(2.5f) << "\n";
  std::cout.precision(17);
  std::cout << "to_double " << ap_int<64>(-(1LL << 53)).to_double() << " "
            << ap_uint<128>(ap_uint<128>(1) << 127).to_double() << "\n";
  std::cout << "to_string " << ap_int<8>(-6).to_string(2) << " " << ap_int<8>(-6).to_string(2, false)
            << " " << ap_int<8>(-6).to_string(16) << " " << ap_int<8>(-6).to_string(8, false)
            << " " << ap_int<8>(-6).to_string(10) << " " << ap_uint<8>(0).to_string(16) << "\n";
  std::cout << "stream " << std::hex << ap_int<8>(-6) << " " << std::oct << ap_uint<9>(511)
            << std::dec << " " << ap_int<8>(-6) << "\n";
  ap_uint<8> r = 0x1d;  // 00011101
  r.reverse();
  std::cout << "reverse " << r << "\n";  // 10111000 = 184
  ap_uint<8> rot = 0x81;
  rot.lrotate(1);
  std::cout << "lrotate " << rot;  // 0x03
  rot.rrotate(2);
  std::cout << " " << rot << "\n";  // 0xc0 = 192
  std::cout << "clz " << ap_uint<10>(1).countLeadingZeros() << " " << ap_uint<10>(0).countLeadingZeros()
            << " " << ap_int<10>(-1).countLeadingZeros() << "\n";
  ap_int<26> acc = 5;
  ap_uint<8> bits = 0x3;
  acc += bits[0];
  acc -= bits[1];
  acc += bits[7];
  std::cout << "acc_bit " << acc << "\n";  // 5
  // Implicit conversions a kernel relies on: array index, switch, bool context, C arithmetic.
  int table[8] = {0, 10, 20, 30, 40, 50, 60, 70};
  ap_uint<3> idx = 6;
  int sw = 0;
  switch (ap_uint<2>(2)) {
    case 2: sw = 1; break;
    default: sw = -1;
  }
  long long wide = ap_int<48>(-(1LL << 46));
  std::cout << "implicit " << table[idx] << " " << sw << " " << (ap_uint<1>(1) ? 1 : 0) << " "
            << wide << " " << (ap_int<8>(-3) * 2.5) << "\n";
  // Wide values: implicit conversion truncates to 64 bits (as UG1399 warns).
  ap_uint<65> w65 = ap_uint<65>(1) << 64;
  unsigned long long t = w65;
  std::cout << "wide_trunc " << t << " " << w65.to_bool() << " " << w65 << "\n";
  // Nested range/bit writes on a signed value keep the sign consistent.
  ap_int<12> s = 0;
  s.range(11, 8) = 0xF;
  s[0] = 1;
  std::cout << "signed_range " << s << " " << s.sign() << "\n";  // 0xF01 -> -255
  // ++ / -- wrap; unary minus widens; ~ keeps the type.
  ap_uint<4> u = 15;
  ++u;
  ap_int<4> m = -8;
  std::cout << "wrap " << u << " " << -m << " " << (-m).width << " " << ~ap_uint<4>(5) << "\n";
  // Comparisons across signedness and against C integers.
  std::cout << "cmp " << (ap_int<4>(-1) < ap_uint<4>(15)) << (ap_uint<128>(-1) > ap_int<128>(-1))
            << (ap_int<8>(-1) == -1) << (ap_uint<8>(255) == -1) << (ap_uint<8>(255) == 255u)
            << (0 < ap_int<8>(1)) << "\n";
  return 0;
}
