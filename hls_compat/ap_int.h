// hls_compat/ap_int.h -- a header-only stand-in for the integer part of Xilinx's ap_int.h,
// written for the filmqnn project (not derived from Xilinx's sources).
//
// Purpose: HLS C-simulation with a plain g++. The same kernel source compiles here with
// `-I<hls_compat>` and with Vivado/Vitis HLS against Xilinx's own headers. Semantics follow
// the documented behaviour of ap_[u]int (UG902 / UG1399); every deviation is listed in
// hls_compat/README.md. Summary:
//
//   * ap_int<W> (signed, two's complement) and ap_uint<W> for 1 <= W <= 128
//     (AP_INT_MAX_W). A wider type -- including the *result type* of an expression, e.g.
//     ap_int<100> * ap_int<40> -- is a compile-time static_assert error, never a silent wrap.
//   * Construction/assignment from any integer or ap type wraps to W bits (sign extension for
//     ap_int, zero extension for ap_uint); from floating point: truncation towards zero,
//     then wrap.
//   * Result types (the RType rules; with E1 = W1 + (S2 && !S1), E2 = W2 + (S1 && !S2)):
//       a + b  -> max(E1, E2) + 1 bits, signed if either is signed
//       a - b  -> max(E1, E2) + 1 bits, always signed
//       a * b  -> W1 + W2 bits,          signed if either is signed
//       a / b  -> W1 + S2 bits,          signed if either is signed (C: truncate to zero)
//       a % b  -> min(W1, W2 + (S1 && !S2)) bits, signedness of a (C: sign of dividend)
//       a & | ^ b -> max(E1, E2) bits,   signed if either is signed
//       -a -> ap_int<W+1>; ~a, +a, a << n, a >> n -> the type of a (bits shifted out are lost,
//       >> of a signed value is arithmetic, i.e. floor); a negative shift count shifts the
//       other way.  A C integer operand behaves as ap_[u]int<8*sizeof(T)>, bool as ap_uint<1>.
//       All results are exact (the widths are chosen so nothing can overflow).
//   * Comparisons compare mathematical values (ap_int<4>(-1) < ap_uint<4>(15) is true).
//   * x[i] (bit reference), x.range(hi, lo) / x(hi, lo) (read/write range reference, value
//     zero-extended to an ap_uint<W>), (a, b) and a.concat(b) (ap_uint<W1 + W2>; (a, b) of two
//     non-const variables may be assigned to), to_int/to_uint/to_int64/to_uint64/to_long/
//     to_ulong/to_bool/to_double, length(), and/or/xor(/nand/nor/xnor)_reduce, to_string,
//     std::ostream << (honours std::dec/hex/oct).
//   * Out-of-range bit indices / ranges throw std::out_of_range with a message.
#ifndef FILMQNN_HLS_COMPAT_AP_INT_H
#define FILMQNN_HLS_COMPAT_AP_INT_H

#include <cmath>
#include <cstdint>
#include <iostream>  // Xilinx's ap_int.h makes std::cout available too
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>

#ifndef AP_INT_MAX_W
#define AP_INT_MAX_W 128
#endif
#if AP_INT_MAX_W > 128
#error "hls_compat/ap_int.h supports at most 128-bit ap_[u]int (AP_INT_MAX_W <= 128)"
#endif

// Marker so that code can tell the stand-in from Xilinx's header if it must.
#define FILMQNN_HLS_COMPAT 1

template <int W, bool S> struct ap_int_base;
template <int W> struct ap_int;
template <int W> struct ap_uint;
template <int W, bool S> struct ap_bit_ref;
template <int W, bool S> struct ap_range_ref;
template <class H, class L> struct ap_concat_ref;

namespace hls_compat_detail {

__extension__ typedef unsigned __int128 u128;  // __extension__: -Wpedantic clean
__extension__ typedef __int128 s128;

constexpr int kMaxW = AP_INT_MAX_W;
constexpr int cmax(int a, int b) { return a > b ? a : b; }
constexpr int cmin(int a, int b) { return a < b ? a : b; }

// Mask of the low n bits, 0 <= n <= 128.
inline constexpr u128 mask_n(int n) {
  return n >= 128 ? ~u128(0) : n <= 0 ? u128(0) : ((u128(1) << n) - 1);
}

// Keep the low W bits of v and extend them to 128 bits (sign extension when S).
template <int W, bool S> inline constexpr u128 norm(u128 v) {
  if constexpr (W >= 128) {
    return v;
  } else {
    v &= mask_n(W);
    if (S && ((v >> (W - 1)) & 1)) v |= ~mask_n(W);
    return v;
  }
}

// The ap type of a result: ap_int<W> when S, else ap_uint<W>.
template <int W, bool S> struct ap_type { typedef ap_int<W> type; };
template <int W> struct ap_type<W, false> { typedef ap_uint<W> type; };
template <int W, bool S> using ap_t = typename ap_type<W, S>::type;

// C integer types as ap types: bool -> ap_uint<1>, T -> ap_[u]int<8 * sizeof(T)>.
template <class T> struct c_int {
  static constexpr int width = std::is_same<T, bool>::value ? 1 : int(8 * sizeof(T));
  static constexpr bool sign = std::is_signed<T>::value;
  typedef ap_t<width, sign> type;
};
template <class T>
using if_int = typename std::enable_if<std::is_integral<T>::value, int>::type;
template <class T>
using if_float = typename std::enable_if<std::is_floating_point<T>::value, int>::type;

// Widths and signedness of binary results (see the header comment).
template <int W1, bool S1, int W2, bool S2> struct rtype {
  static constexpr int e1 = W1 + (S2 && !S1);
  static constexpr int e2 = W2 + (S1 && !S2);
  static constexpr int plus_w = cmax(e1, e2) + 1;
  static constexpr bool plus_s = S1 || S2;
  static constexpr int minus_w = cmax(e1, e2) + 1;
  static constexpr bool minus_s = true;
  static constexpr int mult_w = W1 + W2;
  static constexpr bool mult_s = S1 || S2;
  static constexpr int div_w = W1 + (S2 ? 1 : 0);
  static constexpr bool div_s = S1 || S2;
  static constexpr int mod_w = cmin(W1, W2 + (S1 && !S2));
  static constexpr bool mod_s = S1;
  static constexpr int logic_w = cmax(e1, e2);
  static constexpr bool logic_s = S1 || S2;
};

template <int W, bool S> inline ap_t<W, S> make(u128 raw);

inline u128 from_double(double d) {
  if (std::isnan(d)) throw std::invalid_argument("ap_[u]int: cannot convert NaN to an integer");
  if (std::isinf(d)) throw std::invalid_argument("ap_[u]int: cannot convert infinity to an integer");
  d = std::trunc(d);
  const bool neg = d < 0;
  const double two128 = 340282366920938463463374607431768211456.0;  // 2**128
  d = std::fmod(std::fabs(d), two128);  // exact
  // d is an integer in [0, 2**128): split it into two 64-bit halves exactly.
  const double two64 = 18446744073709551616.0;
  const double hi = std::floor(d / two64);
  const double lo = d - hi * two64;
  const u128 mag = (u128(uint64_t(hi)) << 64) | u128(uint64_t(lo));
  return neg ? u128(0) - mag : mag;
}

inline int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  return 99;
}

// Parse "[-]digits" in radix, or with a 0x/0o/0b/0d prefix (which overrides radix); radix 0
// means "prefix required". The result is the value modulo 2**128.
inline u128 parse(const char* s, int radix) {
  if (s == nullptr) throw std::invalid_argument("ap_[u]int: null string");
  const char* p = s;
  bool neg = false;
  if (*p == '-' || *p == '+') neg = (*p++ == '-');
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) radix = 16, p += 2;
  else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B')) radix = 2, p += 2;
  else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) radix = 8, p += 2;
  else if (p[0] == '0' && (p[1] == 'd' || p[1] == 'D')) radix = 10, p += 2;
  if (radix == 0)
    throw std::invalid_argument(std::string("ap_[u]int(\"") + s +
                                "\"): the radix is ambiguous; write a 0x/0b/0o/0d prefix or "
                                "pass the radix, e.g. ap_uint<96>(\"ff\", 16)");
  if (radix != 2 && radix != 8 && radix != 10 && radix != 16)
    throw std::invalid_argument("ap_[u]int: radix must be 2, 8, 10 or 16");
  if (*p == '\0') throw std::invalid_argument(std::string("ap_[u]int(\"") + s + "\"): no digits");
  u128 v = 0;
  for (; *p; ++p) {
    if (*p == '_' || *p == '\'') continue;  // digit separators
    int d = digit_value(*p);
    if (d >= radix)
      throw std::invalid_argument(std::string("ap_[u]int(\"") + s + "\"): invalid digit '" + *p +
                                  "' for radix " + std::to_string(radix));
    v = v * u128(radix) + u128(d);
  }
  return neg ? u128(0) - v : v;
}

inline std::string utoa(u128 v, int radix) {
  if (v == 0) return "0";
  std::string out;
  while (v != 0) {
    int d = int(v % u128(radix));
    out.insert(out.begin(), char(d < 10 ? '0' + d : 'a' + d - 10));
    v /= u128(radix);
  }
  return out;
}

inline void check_bit(int i, int w) {
  if (i < 0 || i >= w)
    throw std::out_of_range("ap_[u]int<" + std::to_string(w) + ">: bit index " +
                            std::to_string(i) + " is outside 0.." + std::to_string(w - 1));
}

inline void check_range(int hi, int lo, int w) {
  if (lo < 0 || hi >= w || hi < lo)
    throw std::out_of_range("ap_[u]int<" + std::to_string(w) + ">.range(" + std::to_string(hi) +
                            ", " + std::to_string(lo) + "): need 0 <= lo <= hi < " +
                            std::to_string(w) +
                            " (hls_compat does not implement hi < lo bit reversal)");
}

// Raw operations on 128-bit extended values (xn/yn: the value is negative). Exact modulo 2**128.
inline u128 div_raw(u128 x, bool xn, u128 y, bool yn) {
  if (y == 0) throw std::domain_error("ap_[u]int: division by zero");
  const u128 q = (xn ? u128(0) - x : x) / (yn ? u128(0) - y : y);
  return xn != yn ? u128(0) - q : q;
}
inline u128 mod_raw(u128 x, bool xn, u128 y, bool yn) {
  if (y == 0) throw std::domain_error("ap_[u]int: remainder by zero");
  const u128 r = (xn ? u128(0) - x : x) % (yn ? u128(0) - y : y);
  return xn ? u128(0) - r : r;
}
// x << n / x >> n for a non-negative count n; arith: x is signed (sign-extended).
inline u128 shl_raw(u128 x, u128 n) { return n >= 128 ? u128(0) : x << int(n); }
inline u128 shr_raw(u128 x, u128 n, bool arith) {
  if (arith) return u128(s128(x) >> int(n >= 127 ? 127 : n));
  return n >= 128 ? u128(0) : x >> int(n);
}
// Shift by a signed count: a negative count shifts the other way.
inline u128 shift_raw(u128 x, bool arith, u128 n, bool nneg, bool left) {
  const u128 mag = nneg ? u128(0) - n : n;
  return (left != nneg) ? shl_raw(x, mag) : shr_raw(x, mag, arith);
}

}  // namespace hls_compat_detail

// ---------------------------------------------------------------------------------------------
// ap_int_base<W, S>: the value, held as the W-bit value extended to 128 bits (sign-extended if
// S, zero-extended otherwise), so that 128-bit machine arithmetic is exact modulo 2**128.
// ---------------------------------------------------------------------------------------------
template <int W, bool S> struct ap_int_base {
  static_assert(W >= 1, "ap_[u]int<W>: W must be at least 1");
  static_assert(W <= AP_INT_MAX_W,
                "ap_[u]int<W>: hls_compat supports W <= 128 (AP_INT_MAX_W). This also fires when "
                "an expression's result type is wider than 128 bits (e.g. ap_int<100> * "
                "ap_int<40>, or ap_int<128> + 1): narrow an operand first");

  typedef hls_compat_detail::u128 u128;
  typedef hls_compat_detail::s128 s128;
  static const int width = W;
  static const bool sign_flag = S;
  // Implicit conversion target, as in Xilinx's headers (wider values are truncated to 64 bits).
  typedef typename std::conditional<
      (W <= 32), typename std::conditional<S, int, unsigned>::type,
      typename std::conditional<S, long long, unsigned long long>::type>::type RetType;

  u128 V;  // W-bit value, extended to 128 bits (invariant: V == norm<W, S>(V))

  // --- construction: always wraps to W bits ---
  ap_int_base() : V(0) {}
  ap_int_base(const ap_int_base& o) = default;
  template <int W2, bool S2>
  ap_int_base(const ap_int_base<W2, S2>& o) : V(hls_compat_detail::norm<W, S>(o.V)) {}
  template <int W2, bool S2>
  ap_int_base(const ap_bit_ref<W2, S2>& b) : V(hls_compat_detail::norm<W, S>(u128(bool(b)))) {}
  template <class T, hls_compat_detail::if_int<T> = 0>
  ap_int_base(T v)
      : V(hls_compat_detail::norm<W, S>(std::is_signed<T>::value ? u128(s128(v)) : u128(v))) {}
  template <class T, hls_compat_detail::if_float<T> = 0>
  ap_int_base(T v) : V(hls_compat_detail::norm<W, S>(hls_compat_detail::from_double(double(v)))) {}
  // String: "0x..", "0b..", "0o..", "0d.." (optionally with a leading '-'); a string without a
  // prefix needs the radix argument (throws std::invalid_argument otherwise).
  explicit ap_int_base(const char* s, int radix = 0)
      : V(hls_compat_detail::norm<W, S>(hls_compat_detail::parse(s, radix))) {}

  ap_int_base& operator=(const ap_int_base& o) & = default;

  // --- value access ---
  bool is_neg() const { return S && ((V >> 127) & 1); }
  operator RetType() const { return RetType(V); }
  int to_int() const { return int(uint32_t(V)); }
  unsigned to_uint() const { return unsigned(V); }
  long long to_int64() const { return (long long)(uint64_t(V)); }
  unsigned long long to_uint64() const { return (unsigned long long)(uint64_t(V)); }
  long to_long() const { return long(uint64_t(V)); }
  unsigned long to_ulong() const { return (unsigned long)(uint64_t(V)); }
  bool to_bool() const { return V != 0; }
  double to_double() const { return S ? double(s128(V)) : double(V); }
  float to_float() const { return float(to_double()); }
  int length() const { return W; }
  bool iszero() const { return V == 0; }
  bool sign() const { return is_neg(); }

  // --- reductions over the W bits ---
  bool and_reduce() const { return (V & hls_compat_detail::mask_n(W)) == hls_compat_detail::mask_n(W); }
  bool or_reduce() const { return V != 0; }
  bool xor_reduce() const {
    u128 v = V & hls_compat_detail::mask_n(W);
    return (__builtin_popcountll(uint64_t(v)) + __builtin_popcountll(uint64_t(v >> 64))) & 1;
  }
  bool nand_reduce() const { return !and_reduce(); }
  bool nor_reduce() const { return !or_reduce(); }
  bool xnor_reduce() const { return !xor_reduce(); }
  int countLeadingZeros() const {
    for (int i = W - 1; i >= 0; --i)
      if ((V >> i) & 1) return W - 1 - i;
    return W;
  }

  // --- bit access ---
  ap_bit_ref<W, S> operator[](int i) { return ap_bit_ref<W, S>(*this, i); }
  bool operator[](int i) const { return get_bit(i); }
  ap_bit_ref<W, S> bit(int i) { return ap_bit_ref<W, S>(*this, i); }
  bool bit(int i) const { return get_bit(i); }
  bool get_bit(int i) const {
    hls_compat_detail::check_bit(i, W);
    return (V >> i) & 1;
  }
  void set_bit(int i, bool b) {
    hls_compat_detail::check_bit(i, W);
    u128 m = u128(1) << i;
    V = hls_compat_detail::norm<W, S>(b ? (V | m) : (V & ~m));
  }
  void set(int i) { set_bit(i, true); }
  void clear(int i) { set_bit(i, false); }
  void invert(int i) { set_bit(i, !get_bit(i)); }
  // In-place bit order reversal and rotations of the W bits.
  ap_int_base& reverse() {
    u128 r = 0;
    for (int i = 0; i < W; ++i) r |= ((V >> i) & 1) << (W - 1 - i);
    V = hls_compat_detail::norm<W, S>(r);
    return *this;
  }
  void lrotate(int n) {
    n = ((n % W) + W) % W;
    if (n == 0) return;
    const u128 b = V & hls_compat_detail::mask_n(W);
    V = hls_compat_detail::norm<W, S>((b << n) | (b >> (W - n)));
  }
  void rrotate(int n) { lrotate(-(n % W)); }

  // --- range access (value is zero-extended into an ap_uint<W>) ---
  ap_range_ref<W, S> range(int hi, int lo) { return ap_range_ref<W, S>(*this, hi, lo); }
  ap_range_ref<W, S> range() { return ap_range_ref<W, S>(*this, W - 1, 0); }
  ap_range_ref<W, S> operator()(int hi, int lo) { return ap_range_ref<W, S>(*this, hi, lo); }
  ap_uint<W> range(int hi, int lo) const {
    hls_compat_detail::check_range(hi, lo, W);
    return hls_compat_detail::make<W, false>((V >> lo) & hls_compat_detail::mask_n(hi - lo + 1));
  }
  ap_uint<W> range() const { return range(W - 1, 0); }
  ap_uint<W> operator()(int hi, int lo) const { return range(hi, lo); }
  ap_uint<W> get_range(int hi, int lo) const { return range(hi, lo); }

  template <int W2, bool S2> ap_uint<W + W2> concat(const ap_int_base<W2, S2>& lo) const {
    return hls_compat_detail::make<W + W2, false>(
        ((V & hls_compat_detail::mask_n(W)) << W2) | (lo.V & hls_compat_detail::mask_n(W2)));
  }

  std::string to_string(int radix = 2, bool sign = S) const {
    if (radix != 2 && radix != 8 && radix != 10 && radix != 16)
      throw std::invalid_argument("ap_[u]int::to_string: radix must be 2, 8, 10 or 16");
    u128 mag = V & hls_compat_detail::mask_n(W);
    bool neg = false;
    if (sign && is_neg()) neg = true, mag = u128(0) - V;  // |value| (fits: W <= 128)
    const char* prefix = radix == 2 ? "0b" : radix == 8 ? "0o" : radix == 16 ? "0x" : "";
    return std::string(neg ? "-" : "") + prefix + hls_compat_detail::utoa(mag, radix);
  }

  // --- compound assignment (the full-width result wraps to W bits) ---
#define HLS_COMPAT_COMPOUND(OP, EXPR)                                                            \
  template <int W2, bool S2> ap_int_base& operator OP##=(const ap_int_base<W2, S2>& b) & {     \
    const u128 x = V, y = b.V;                                                                   \
    const bool xn = is_neg(), yn = b.is_neg();                                                   \
    (void)xn, (void)yn;                                                                          \
    V = hls_compat_detail::norm<W, S>(EXPR);                                                     \
    return *this;                                                                                \
  }                                                                                              \
  template <class T, hls_compat_detail::if_int<T> = 0> ap_int_base& operator OP##=(T b) & {    \
    return *this OP##= typename hls_compat_detail::c_int<T>::type(b);                            \
  }                                                                                              \
  template <int W2, bool S2> ap_int_base& operator OP##=(const ap_bit_ref<W2, S2>& b) & {      \
    return *this OP##= ap_uint<1>(bool(b));                                                      \
  }
  // The low W bits of +, -, *, &, |, ^ only depend on the low bits of the operands, and / and %
  // are exact in 128 bits, so x op= y needs no wide intermediate type (works for W = 128 too).
  HLS_COMPAT_COMPOUND(+, x + y)
  HLS_COMPAT_COMPOUND(-, x - y)
  HLS_COMPAT_COMPOUND(*, x * y)
  HLS_COMPAT_COMPOUND(/, hls_compat_detail::div_raw(x, xn, y, yn))
  HLS_COMPAT_COMPOUND(%, hls_compat_detail::mod_raw(x, xn, y, yn))
  HLS_COMPAT_COMPOUND(&, x & y)
  HLS_COMPAT_COMPOUND(|, x | y)
  HLS_COMPAT_COMPOUND(^, x ^ y)
  HLS_COMPAT_COMPOUND(<<, hls_compat_detail::shift_raw(x, S, y, yn, true))
  HLS_COMPAT_COMPOUND(>>, hls_compat_detail::shift_raw(x, S, y, yn, false))
#undef HLS_COMPAT_COMPOUND

  ap_int_base& operator++() & {
    V = hls_compat_detail::norm<W, S>(V + 1);
    return *this;
  }
  ap_int_base& operator--() & {
    V = hls_compat_detail::norm<W, S>(V - 1);
    return *this;
  }
  hls_compat_detail::ap_t<W, S> operator++(int) & {
    hls_compat_detail::ap_t<W, S> old = hls_compat_detail::make<W, S>(V);
    ++*this;
    return old;
  }
  hls_compat_detail::ap_t<W, S> operator--(int) & {
    hls_compat_detail::ap_t<W, S> old = hls_compat_detail::make<W, S>(V);
    --*this;
    return old;
  }

  // --- unary operators ---
  hls_compat_detail::ap_t<W, S> operator+() const { return hls_compat_detail::make<W, S>(V); }
  ap_int<W + 1> operator-() const { return hls_compat_detail::make<W + 1, true>(u128(0) - V); }
  hls_compat_detail::ap_t<W, S> operator~() const { return hls_compat_detail::make<W, S>(~V); }
  bool operator!() const { return V == 0; }
};

template <int W> struct ap_int : ap_int_base<W, true> {
  typedef ap_int_base<W, true> Base;
  ap_int() {}
  ap_int(const ap_int&) = default;
  template <int W2, bool S2> ap_int(const ap_int_base<W2, S2>& o) : Base(o) {}
  template <int W2, bool S2> ap_int(const ap_bit_ref<W2, S2>& b) : Base(b) {}
  template <class T, typename std::enable_if<std::is_arithmetic<T>::value, int>::type = 0>
  ap_int(T v) : Base(v) {}
  explicit ap_int(const char* s, int radix = 0) : Base(s, radix) {}
  ap_int& operator=(const ap_int&) & = default;
};

template <int W> struct ap_uint : ap_int_base<W, false> {
  typedef ap_int_base<W, false> Base;
  ap_uint() {}
  ap_uint(const ap_uint&) = default;
  template <int W2, bool S2> ap_uint(const ap_int_base<W2, S2>& o) : Base(o) {}
  template <int W2, bool S2> ap_uint(const ap_bit_ref<W2, S2>& b) : Base(b) {}
  template <class T, typename std::enable_if<std::is_arithmetic<T>::value, int>::type = 0>
  ap_uint(T v) : Base(v) {}
  explicit ap_uint(const char* s, int radix = 0) : Base(s, radix) {}
  ap_uint& operator=(const ap_uint&) & = default;
};

namespace hls_compat_detail {
template <int W, bool S> inline ap_t<W, S> make(u128 raw) {
  ap_t<W, S> r;
  r.V = norm<W, S>(raw);
  return r;
}
}  // namespace hls_compat_detail

// ---------------------------------------------------------------------------------------------
// Bit reference x[i]: reads as bool, assignable (any non-zero value sets the bit).
// ---------------------------------------------------------------------------------------------
template <int W, bool S> struct ap_bit_ref {
  ap_int_base<W, S>& p;
  int i;
  ap_bit_ref(ap_int_base<W, S>& parent, int index) : p(parent), i(index) {
    hls_compat_detail::check_bit(i, W);
  }
  ap_bit_ref(const ap_bit_ref&) = default;
  operator bool() const { return p.get_bit(i); }
  bool to_bool() const { return p.get_bit(i); }
  bool get() const { return p.get_bit(i); }
  int length() const { return 1; }
  ap_bit_ref& operator=(bool b) {
    p.set_bit(i, b);
    return *this;
  }
  template <class T, hls_compat_detail::if_int<T> = 0> ap_bit_ref& operator=(T v) {
    return *this = bool(v != 0);
  }
  template <int W2, bool S2> ap_bit_ref& operator=(const ap_int_base<W2, S2>& v) {
    return *this = bool(v.V != 0);
  }
  ap_bit_ref& operator=(const ap_bit_ref& o) { return *this = bool(o); }
  template <int W2, bool S2> ap_bit_ref& operator=(const ap_bit_ref<W2, S2>& o) {
    return *this = bool(o);
  }
  bool operator~() const { return !bool(*this); }
  bool operator!() const { return !bool(*this); }
};

// ---------------------------------------------------------------------------------------------
// Range reference x.range(hi, lo): an ap_uint<W> holding the (zero-extended) bits hi..lo at the
// time it was taken, that writes through to x when assigned.
// ---------------------------------------------------------------------------------------------
template <int W, bool S> struct ap_range_ref : ap_uint<W> {
  typedef hls_compat_detail::u128 u128;
  ap_int_base<W, S>& p;
  int hi, lo;
  ap_range_ref(ap_int_base<W, S>& parent, int h, int l) : p(parent), hi(h), lo(l) {
    hls_compat_detail::check_range(hi, lo, W);
    this->V = (p.V >> lo) & hls_compat_detail::mask_n(hi - lo + 1);
  }
  ap_range_ref(const ap_range_ref&) = default;
  int length() const { return hi - lo + 1; }
  ap_range_ref& assign_bits(u128 bits) {
    u128 m = hls_compat_detail::mask_n(hi - lo + 1) << lo;
    p.V = hls_compat_detail::norm<W, S>((p.V & ~m) | ((bits << lo) & m));
    this->V = (p.V >> lo) & hls_compat_detail::mask_n(hi - lo + 1);
    return *this;
  }
  ap_range_ref& operator=(const ap_range_ref& o) { return assign_bits(o.V); }
  template <int W2, bool S2> ap_range_ref& operator=(const ap_int_base<W2, S2>& v) {
    return assign_bits(v.V);
  }
  template <class T, hls_compat_detail::if_int<T> = 0> ap_range_ref& operator=(T v) {
    return assign_bits(std::is_signed<T>::value ? u128(hls_compat_detail::s128(v)) : u128(v));
  }
  template <int W2, bool S2> ap_range_ref& operator=(const ap_bit_ref<W2, S2>& b) {
    return assign_bits(u128(bool(b)));
  }
#define HLS_COMPAT_RANGE_COMPOUND(OP)                                              \
  template <class T> ap_range_ref& operator OP##=(const T& b) {                   \
    ap_uint<W> t = *this;                                                          \
    t OP##= b;                                                                     \
    return *this = t;                                                              \
  }
  HLS_COMPAT_RANGE_COMPOUND(+)
  HLS_COMPAT_RANGE_COMPOUND(-)
  HLS_COMPAT_RANGE_COMPOUND(*)
  HLS_COMPAT_RANGE_COMPOUND(/)
  HLS_COMPAT_RANGE_COMPOUND(%)
  HLS_COMPAT_RANGE_COMPOUND(&)
  HLS_COMPAT_RANGE_COMPOUND(|)
  HLS_COMPAT_RANGE_COMPOUND(^)
  HLS_COMPAT_RANGE_COMPOUND(<<)
  HLS_COMPAT_RANGE_COMPOUND(>>)
#undef HLS_COMPAT_RANGE_COMPOUND
  ap_range_ref& operator++() { return assign_bits(this->V + 1); }
  ap_range_ref& operator--() { return assign_bits(this->V - 1); }
};

// ---------------------------------------------------------------------------------------------
// Concatenation (hi, lo): an ap_uint<WH + WL>; when both sides are variables (or nested
// concatenations of variables) the result can be assigned to and writes the parts back.
// ---------------------------------------------------------------------------------------------
namespace hls_compat_detail {
template <int W, bool S> struct lvalue_part {
  static constexpr int width = W;
  ap_int_base<W, S>* p;
  void store(u128 bits) { p->V = norm<W, S>(bits); }
};
}  // namespace hls_compat_detail

template <class H, class L> struct ap_concat_ref : ap_uint<H::width + L::width> {
  typedef hls_compat_detail::u128 u128;
  static constexpr int width = H::width + L::width;
  H h;
  L l;
  ap_concat_ref(H hh, L ll, u128 bits) : h(hh), l(ll) { this->V = bits; }
  ap_concat_ref(const ap_concat_ref&) = default;
  void store(u128 bits) {
    l.store(bits & hls_compat_detail::mask_n(L::width));
    h.store(bits >> L::width);
    this->V = hls_compat_detail::norm<width, false>(bits);
  }
  ap_concat_ref& operator=(const ap_concat_ref& o) {
    store(o.V);
    return *this;
  }
  template <int W2, bool S2> ap_concat_ref& operator=(const ap_int_base<W2, S2>& v) {
    store(ap_uint<width>(v).V);
    return *this;
  }
  template <class T, hls_compat_detail::if_int<T> = 0> ap_concat_ref& operator=(T v) {
    store(ap_uint<width>(v).V);
    return *this;
  }
  template <class T> ap_concat_ref& operator+=(const T&) = delete;
  template <class T> ap_concat_ref& operator-=(const T&) = delete;
};

template <int W1, bool S1, int W2, bool S2>
inline ap_uint<W1 + W2> operator,(const ap_int_base<W1, S1>& a, const ap_int_base<W2, S2>& b) {
  return a.concat(b);
}
template <int W1, bool S1, int W2, bool S2>
inline ap_concat_ref<hls_compat_detail::lvalue_part<W1, S1>, hls_compat_detail::lvalue_part<W2, S2>>
operator,(ap_int_base<W1, S1>& a, ap_int_base<W2, S2>& b) {
  return {{&a}, {&b}, a.concat(b).V};
}
template <class H, class L, int W2, bool S2>
inline ap_concat_ref<ap_concat_ref<H, L>, hls_compat_detail::lvalue_part<W2, S2>>
operator,(ap_concat_ref<H, L>&& a, ap_int_base<W2, S2>& b) {
  hls_compat_detail::u128 bits = a.concat(b).V;
  return {a, {&b}, bits};
}
template <int W1, bool S1, class H, class L>
inline ap_concat_ref<hls_compat_detail::lvalue_part<W1, S1>, ap_concat_ref<H, L>>
operator,(ap_int_base<W1, S1>& a, ap_concat_ref<H, L>&& b) {
  hls_compat_detail::u128 bits = a.concat(b).V;
  return {{&a}, b, bits};
}
template <class H1, class L1, class H2, class L2>
inline ap_concat_ref<ap_concat_ref<H1, L1>, ap_concat_ref<H2, L2>>
operator,(ap_concat_ref<H1, L1>&& a, ap_concat_ref<H2, L2>&& b) {
  hls_compat_detail::u128 bits = a.concat(b).V;
  return {a, b, bits};
}
template <int W1, bool S1, int W2, bool S2>
inline ap_uint<W1 + 1> operator,(const ap_int_base<W1, S1>& a, const ap_bit_ref<W2, S2>& b) {
  return a.concat(ap_uint<1>(bool(b)));
}
template <int W1, bool S1, int W2, bool S2>
inline ap_uint<1 + W2> operator,(const ap_bit_ref<W1, S1>& a, const ap_int_base<W2, S2>& b) {
  return ap_uint<1>(bool(a)).concat(b);
}
template <int W1, bool S1, int W2, bool S2>
inline ap_uint<2> operator,(const ap_bit_ref<W1, S1>& a, const ap_bit_ref<W2, S2>& b) {
  return ap_uint<1>(bool(a)).concat(ap_uint<1>(bool(b)));
}
// A C integer in a concatenation counts as ap_[u]int<8 * sizeof(T)> (so (x, 1) is 32 bits wider
// than x; cast literals to ap_uint<N> to say what you mean).
template <int W, bool S, class T, hls_compat_detail::if_int<T> = 0>
inline ap_uint<W + hls_compat_detail::c_int<T>::width> operator,(const ap_int_base<W, S>& a, T b) {
  return a.concat(typename hls_compat_detail::c_int<T>::type(b));
}
template <int W, bool S, class T, hls_compat_detail::if_int<T> = 0>
inline ap_uint<hls_compat_detail::c_int<T>::width + W> operator,(T a, const ap_int_base<W, S>& b) {
  return typename hls_compat_detail::c_int<T>::type(a).concat(b);
}

// ---------------------------------------------------------------------------------------------
// Binary arithmetic and logic. Every ap x ap operator has ap x C-int and C-int x ap forms that
// treat the C integer as ap_[u]int<8*sizeof(T)>.
// ---------------------------------------------------------------------------------------------
#define HLS_COMPAT_INT_FORMS(OP)                                                              \
  template <int W, bool S, class T, hls_compat_detail::if_int<T> = 0>                         \
  inline auto operator OP(const ap_int_base<W, S>& a, T b) {                                  \
    return a OP typename hls_compat_detail::c_int<T>::type(b);                                \
  }                                                                                           \
  template <int W, bool S, class T, hls_compat_detail::if_int<T> = 0>                         \
  inline auto operator OP(T a, const ap_int_base<W, S>& b) {                                  \
    return typename hls_compat_detail::c_int<T>::type(a) OP b;                                \
  }

#define HLS_COMPAT_BINARY(OP, KIND, EXPR)                                                      \
  template <int W1, bool S1, int W2, bool S2>                                                 \
  inline hls_compat_detail::ap_t<hls_compat_detail::rtype<W1, S1, W2, S2>::KIND##_w,          \
                                 hls_compat_detail::rtype<W1, S1, W2, S2>::KIND##_s>          \
  operator OP(const ap_int_base<W1, S1>& a, const ap_int_base<W2, S2>& b) {                   \
    typedef hls_compat_detail::rtype<W1, S1, W2, S2> R;                                       \
    hls_compat_detail::u128 x = a.V, y = b.V;                                                 \
    (void)x, (void)y;                                                                         \
    return hls_compat_detail::make<R::KIND##_w, R::KIND##_s>(EXPR);                           \
  }                                                                                           \
  HLS_COMPAT_INT_FORMS(OP)

HLS_COMPAT_BINARY(+, plus, x + y)
HLS_COMPAT_BINARY(-, minus, x - y)
HLS_COMPAT_BINARY(*, mult, x * y)
HLS_COMPAT_BINARY(&, logic, x & y)
HLS_COMPAT_BINARY(|, logic, x | y)
HLS_COMPAT_BINARY(^, logic, x ^ y)

HLS_COMPAT_BINARY(/, div, hls_compat_detail::div_raw(x, a.is_neg(), y, b.is_neg()))
HLS_COMPAT_BINARY(%, mod, hls_compat_detail::mod_raw(x, a.is_neg(), y, b.is_neg()))
#undef HLS_COMPAT_BINARY

// ---------------------------------------------------------------------------------------------
// Shifts: the result has the type of the left operand; a negative (signed) count shifts the
// other way; counts >= W shift everything out (>> of a negative value then gives -1).
// ---------------------------------------------------------------------------------------------
template <int W1, bool S1, int W2, bool S2>
inline hls_compat_detail::ap_t<W1, S1> operator<<(const ap_int_base<W1, S1>& a,
                                                  const ap_int_base<W2, S2>& n) {
  return hls_compat_detail::make<W1, S1>(
      hls_compat_detail::shift_raw(a.V, S1, n.V, n.is_neg(), true));
}
template <int W1, bool S1, int W2, bool S2>
inline hls_compat_detail::ap_t<W1, S1> operator>>(const ap_int_base<W1, S1>& a,
                                                  const ap_int_base<W2, S2>& n) {
  return hls_compat_detail::make<W1, S1>(
      hls_compat_detail::shift_raw(a.V, S1, n.V, n.is_neg(), false));
}
template <int W, bool S, class T, hls_compat_detail::if_int<T> = 0>
inline hls_compat_detail::ap_t<W, S> operator<<(const ap_int_base<W, S>& a, T n) {
  return a << typename hls_compat_detail::c_int<T>::type(n);
}
template <int W, bool S, class T, hls_compat_detail::if_int<T> = 0>
inline hls_compat_detail::ap_t<W, S> operator>>(const ap_int_base<W, S>& a, T n) {
  return a >> typename hls_compat_detail::c_int<T>::type(n);
}

// ---------------------------------------------------------------------------------------------
// Comparisons of mathematical values.
// ---------------------------------------------------------------------------------------------
namespace hls_compat_detail {
template <int W1, bool S1, int W2, bool S2>
inline int compare(const ap_int_base<W1, S1>& a, const ap_int_base<W2, S2>& b) {
  bool na = a.is_neg(), nb = b.is_neg();
  if (na != nb) return na ? -1 : 1;
  return a.V < b.V ? -1 : a.V > b.V ? 1 : 0;  // same sign: 128-bit patterns order correctly
}
}  // namespace hls_compat_detail

#define HLS_COMPAT_COMPARE(OP)                                                                 \
  template <int W1, bool S1, int W2, bool S2>                                                 \
  inline bool operator OP(const ap_int_base<W1, S1>& a, const ap_int_base<W2, S2>& b) {       \
    return hls_compat_detail::compare(a, b) OP 0;                                             \
  }                                                                                           \
  template <int W, bool S, class T, hls_compat_detail::if_int<T> = 0>                         \
  inline bool operator OP(const ap_int_base<W, S>& a, T b) {                                  \
    return hls_compat_detail::compare(a, typename hls_compat_detail::c_int<T>::type(b)) OP 0; \
  }                                                                                           \
  template <int W, bool S, class T, hls_compat_detail::if_int<T> = 0>                         \
  inline bool operator OP(T a, const ap_int_base<W, S>& b) {                                  \
    return hls_compat_detail::compare(typename hls_compat_detail::c_int<T>::type(a), b) OP 0; \
  }
HLS_COMPAT_COMPARE(==)
HLS_COMPAT_COMPARE(!=)
HLS_COMPAT_COMPARE(<)
HLS_COMPAT_COMPARE(<=)
HLS_COMPAT_COMPARE(>)
HLS_COMPAT_COMPARE(>=)
#undef HLS_COMPAT_COMPARE
#undef HLS_COMPAT_INT_FORMS

// ---------------------------------------------------------------------------------------------
// Printing: decimal value by default; std::hex / std::oct print the W-bit pattern.
// ---------------------------------------------------------------------------------------------
template <int W, bool S>
inline std::ostream& operator<<(std::ostream& os, const ap_int_base<W, S>& x) {
  std::ios_base::fmtflags base = os.flags() & std::ios_base::basefield;
  std::string s;
  if (base == std::ios_base::hex)
    s = hls_compat_detail::utoa(x.V & hls_compat_detail::mask_n(W), 16);
  else if (base == std::ios_base::oct)
    s = hls_compat_detail::utoa(x.V & hls_compat_detail::mask_n(W), 8);
  else
    s = x.to_string(10, S);
  return os << s;
}
template <int W, bool S>
inline std::ostream& operator<<(std::ostream& os, const ap_bit_ref<W, S>& b) {
  return os << (bool(b) ? '1' : '0');
}

#endif  // FILMQNN_HLS_COMPAT_AP_INT_H
