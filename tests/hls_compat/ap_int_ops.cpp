// Test driver for hls_compat/ap_int.h (compiled by tests/hls_compat/test_ap_int.py).
//
// Reads lines from stdin and prints, for each, one line of tokens "name:W:S:value", where W/S
// are the width/signedness of the result type (W = 0 for bool/C-int results) and value is the
// decimal value printed with operator<<. The Python side recomputes every token with a
// reference model on Python ints and compares with ==.
//   B cfg a b          binary operators on (A, B) of configuration cfg
//   U cfg a            unary operators and conversions on A of configuration cfg
//   R cfg a hi lo v    range/bit read and write on A of configuration cfg
//   S cfg a n          shifts of A by the C int n and by ap_int<8>(n)
#include <iostream>
#include <sstream>
#include <string>

#include "ap_int.h"

static std::ostringstream out;

template <class T> void emit(const char* name, const T& r) {
  out << ' ' << name << ':' << T::width << ':' << int(T::sign_flag) << ':' << r;
}
void emit_c(const char* name, long long v) { out << ' ' << name << ":0:0:" << v; }
void emit_cu(const char* name, unsigned long long v) { out << ' ' << name << ":0:0:" << v; }

template <class A, class B> void binary(const std::string& sa, const std::string& sb) {
  constexpr int W1 = A::width, W2 = B::width;
  constexpr bool S1 = A::sign_flag, S2 = B::sign_flag;
  typedef hls_compat_detail::rtype<W1, S1, W2, S2> R;
  const A a(sa.c_str(), 10);
  const B b(sb.c_str(), 10);
  emit("a", a);
  emit("b", b);
  if constexpr (R::plus_w <= 128) {
    emit("add", a + b);
    emit("sub", a - b);
    A c = a;
    c += b;
    emit("iadd", c);
    c = a;
    c -= b;
    emit("isub", c);
    emit("nar_add_u3", ap_uint<3>(a + b));
    emit("nar_sub_s5", ap_int<5>(a - b));
  }
  if constexpr (R::mult_w <= 128) {
    emit("mul", a * b);
    A c = a;
    c *= b;
    emit("imul", c);
    emit("nar_mul_s5", ap_int<5>(a * b));
    emit("nar_mul_u3", ap_uint<3>(a * b));
    emit("cat", (a, b));
    emit("concat", a.concat(b));
    A x;
    B y;
    (x, y) = a * b;  // lvalue concatenation: high part to x, low part to y
    emit("lcat_hi", x);
    emit("lcat_lo", y);
  }
  if (b != 0) {
    if constexpr (R::div_w <= 128) {
      emit("div", a / b);
      A c = a;
      c /= b;
      emit("idiv", c);
    }
    emit("mod", a % b);
    A c = a;
    c %= b;
    emit("imod", c);
  }
  if constexpr (R::logic_w <= 128) {
    emit("and", a & b);
    emit("or", a | b);
    emit("xor", a ^ b);
    A c = a;
    c &= b;
    emit("iand", c);
    c = a;
    c |= b;
    emit("ior", c);
    c = a;
    c ^= b;
    emit("ixor", c);
  }
  emit("shl", a << b);
  emit("shr", a >> b);
  emit_c("eq", a == b);
  emit_c("ne", a != b);
  emit_c("lt", a < b);
  emit_c("le", a <= b);
  emit_c("gt", a > b);
  emit_c("ge", a >= b);
  // Mixed with C integers (int / unsigned / long long as ap_[u]int<32/64>).
  if constexpr (W1 < 64) {
    emit("add_int", a + int(-3));
    emit("mul_uint", a * 3u);
    emit("sub_ll", 5LL - a);
    emit_c("lt_int", a < -1);
    emit_c("eq_int", a == 1);
  }
}

template <class A> void unary(const std::string& sa) {
  constexpr int W = A::width;
  const A a(sa.c_str(), 10);
  emit("a", a);
  if constexpr (W < 128) emit("neg", -a);
  emit("pos", +a);
  emit("inv", ~a);
  emit_c("lnot", !a);
  A c = a;
  ++c;
  emit("inc", c);
  c = a;
  --c;
  emit("dec", c);
  c = a;
  emit("postinc", c++);
  emit("postinc_after", c);
  emit_c("to_int", a.to_int());
  emit_cu("to_uint", a.to_uint());
  emit_c("to_int64", a.to_int64());
  emit_cu("to_uint64", a.to_uint64());
  emit_c("to_bool", a.to_bool());
  emit_c("length", a.length());
  emit_c("and_reduce", a.and_reduce());
  emit_c("or_reduce", a.or_reduce());
  emit_c("xor_reduce", a.xor_reduce());
  emit_c("sign", a.sign());
  out << " bin:0:0:" << a.to_string(2, false) << " hex:0:0:" << a.to_string(16, false)
      << " dec:0:0:" << a.to_string(10, false) << " sdec:0:0:" << a.to_string(10, true);
  std::ostringstream h;
  h << std::hex << a;
  out << " ohex:0:0:" << h.str();
  // Wrap on assignment to narrower / wider types of both signednesses.
  emit("to_s3", ap_int<3>(a));
  emit("to_u3", ap_uint<3>(a));
  emit("to_s20", ap_int<20>(a));
  emit("to_u20", ap_uint<20>(a));
  emit("to_s128", ap_int<128>(a));
  emit("to_u128", ap_uint<128>(a));
  ap_int<7> n7;
  n7 = a;
  emit("asg_s7", n7);
}

template <class A> void ranges(const std::string& sa, int hi, int lo, long long v) {
  const A a(sa.c_str(), 10);
  emit("range", a.range(hi, lo));
  emit("call", a(hi, lo));
  A m = a;
  emit("range_ref", m.range(hi, lo));  // non-const: the reference's value
  m.range(hi, lo) = v;
  emit("range_wr", m);
  m = a;
  m(hi, lo) = ap_int<64>(v);
  emit("call_wr", m);
  m = a;
  m.range(hi, lo) += 1;
  emit("range_inc", m);
  emit_c("bit", a[lo]);
  m = a;
  m[hi] = v & 1;
  emit("bit_wr", m);
  m = a;
  m[lo] = ~m[lo];
  emit("bit_inv", m);
  m = a;
  m.set(hi);
  m.clear(lo);
  emit("set_clear", m);
}

template <class A> void shifts(const std::string& sa, int n) {
  const A a(sa.c_str(), 10);
  emit("shl_i", a << n);
  emit("shr_i", a >> n);
  emit("shl_ap", a << ap_int<8>(n));
  emit("shr_ap", a >> ap_int<8>(n));
  A c = a;
  c <<= n;
  emit("ishl", c);
  c = a;
  c >>= n;
  emit("ishr", c);
}

#define CONFIGS(X)            \
  X(0, ap_int<4>, ap_uint<5>)   \
  X(1, ap_int<8>, ap_uint<5>)   \
  X(2, ap_uint<5>, ap_int<4>)   \
  X(3, ap_int<4>, ap_int<4>)    \
  X(4, ap_uint<3>, ap_uint<4>)  \
  X(5, ap_uint<1>, ap_int<1>)   \
  X(6, ap_int<1>, ap_uint<2>)   \
  X(7, ap_int<26>, ap_uint<15>) \
  X(8, ap_int<41>, ap_int<48>)  \
  X(9, ap_uint<32>, ap_int<32>) \
  X(10, ap_int<64>, ap_int<64>) \
  X(11, ap_uint<64>, ap_uint<63>) \
  X(12, ap_int<100>, ap_uint<27>) \
  X(13, ap_int<127>, ap_uint<1>)  \
  X(14, ap_uint<128>, ap_int<128>) \
  X(15, ap_int<128>, ap_int<128>)  \
  X(16, ap_uint<120>, ap_uint<8>)  \
  X(17, ap_int<47>, ap_uint<33>)   \
  X(18, ap_uint<25>, ap_int<96>)

int main() {
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string kind, sa, sb;
    int cfg;
    in >> kind >> cfg >> sa;
    out.str("");
    out << kind << ' ' << cfg;
    if (kind == "B") {
      in >> sb;
      switch (cfg) {
#define X(I, A, B) case I: binary<A, B>(sa, sb); break;
        CONFIGS(X)
#undef X
        default: std::cerr << "bad cfg " << cfg << "\n"; return 2;
      }
    } else if (kind == "U") {
      switch (cfg) {
#define X(I, A, B) case I: unary<A>(sa); break;
        CONFIGS(X)
#undef X
        default: std::cerr << "bad cfg " << cfg << "\n"; return 2;
      }
    } else if (kind == "R") {
      int hi, lo;
      long long v;
      in >> hi >> lo >> v;
      switch (cfg) {
#define X(I, A, B) case I: ranges<A>(sa, hi, lo, v); break;
        CONFIGS(X)
#undef X
        default: std::cerr << "bad cfg " << cfg << "\n"; return 2;
      }
    } else if (kind == "S") {
      int n = std::stoi(sb.empty() ? (in >> sb, sb) : sb);
      switch (cfg) {
#define X(I, A, B) case I: shifts<A>(sa, n); break;
        CONFIGS(X)
#undef X
        default: std::cerr << "bad cfg " << cfg << "\n"; return 2;
      }
    } else {
      std::cerr << "bad line: " << line << "\n";
      return 2;
    }
    std::cout << out.str() << '\n';
  }
  return 0;
}
