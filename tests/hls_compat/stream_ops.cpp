// Test driver for hls_compat/hls_stream.h and ap_axi_sdata.h (compiled by test_hls_stream.py).
// A small DATAFLOW-style kernel (producer -> packer -> consumer) with HLS pragmas, so the build
// also proves that `-Wall -Werror -Wno-unknown-pragmas` accepts them.
//   ./stream_ops run N     run the kernel on N activations and the API checks, print results
//   ./stream_ops empty     read an empty stream without catching: must die with a message
//   ./stream_ops leftover  destroy a stream that still holds data: must warn on stderr
#include <cstdlib>
#include <iostream>
#include <string>

#include "ap_axi_sdata.h"
#include "ap_int.h"
#include "hls_stream.h"

typedef ap_uint<5> act_t;
typedef ap_uint<40> act_word_t;  // 8 activations of 5 bits

static void produce(int n, hls::stream<act_t>& out) {
  for (int i = 0; i < n; ++i) {
#pragma HLS PIPELINE II = 1
    out << act_t((i * 7 + 3) % 32);
  }
}

static void pack(int n, hls::stream<act_t>& in, hls::stream<act_word_t>& out) {
  act_word_t w = 0;
  for (int i = 0; i < n; ++i) {
#pragma HLS PIPELINE II = 1
    act_t a;
    in >> a;
    w.range(5 * (i % 8) + 4, 5 * (i % 8)) = a;
    if (i % 8 == 7 || i == n - 1) {
      out.write(w);
      w = 0;
    }
  }
}

static void consume(int n, hls::stream<act_word_t>& in, hls::stream<ap_axiu<32, 0, 0, 0>>& out) {
  ap_uint<32> sum = 0;
  int words = (n + 7) / 8;
  for (int k = 0; k < words; ++k) {
    act_word_t w = in.read();
    for (int j = 0; j < 8; ++j) {
#pragma HLS UNROLL
      sum += w(5 * j + 4, 5 * j);
    }
    ap_axiu<32, 0, 0, 0> beat;
    beat.data = sum;
    beat.keep = -1;
    beat.strb = -1;
    beat.last = (k == words - 1);
    out.write(beat);
  }
}

void kernel(int n, hls::stream<ap_axiu<32, 0, 0, 0>>& out) {
#pragma HLS DATAFLOW
  hls::stream<act_t> acts("acts");
#pragma HLS STREAM variable = acts depth = 8
  hls::stream<act_word_t, 2> words("words");
  produce(n, acts);
  pack(n, acts, words);
  consume(n, words, out);
}

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "leftover") {
    hls::stream<int> s("left");
    s.write(1);
    s.write(2);
    return 0;  // the destructor warns about the 2 unread elements
  }
  if (mode == "empty") {
    hls::stream<int> s("never_written");
    int v = s.read();  // throws hls::stream_empty_error: terminate prints its message
    std::cout << v << "\n";
    return 0;
  }
  if (mode != "run" || argc < 3) {
    std::cerr << "usage: stream_ops run N | stream_ops empty\n";
    return 2;
  }
  const int n = std::atoi(argv[2]);
  hls::stream<ap_axiu<32, 0, 0, 0>> out("out");
  kernel(n, out);
  std::cout << "beats " << out.size() << "\n";
  while (!out.empty()) {
    ap_axiu<32, 0, 0, 0> b = out.read();
    std::cout << "beat " << b.data << " " << b.last << " " << b.keep << "\n";
  }
  // API checks: FIFO order, size/empty/full, read_nb, both read forms, names, depth.
  hls::stream<ap_int<12>> s("fifo");
  std::cout << "name " << s.name() << " " << s.get_name() << " empty " << s.empty() << " full "
            << s.full() << "\n";
  for (int i = -3; i < 4; ++i) s.write(ap_int<12>(i * 100));
  s << ap_int<12>(2047);
  std::cout << "size " << s.size() << " full " << s.full() << "\n";
  ap_int<12> x;
  s.read(x);
  std::cout << "read " << x;
  s >> x;
  std::cout << " " << x;
  std::cout << " " << s.read();
  while (s.read_nb(x)) std::cout << " " << x;
  std::cout << "\n";
  bool got = s.read_nb(x);
  std::cout << "nb_empty " << got << " size " << s.size() << " write_nb " << s.write_nb(5) << "\n";
  s.read();
  try {
    s.read();
    std::cout << "no_throw\n";
  } catch (const hls::stream_empty_error& e) {
    std::cout << "caught " << e.what() << "\n";
  }
  hls::stream<int, 4> d;
  std::cout << "depth " << d.depth() << " default_name " << d.name() << "\n";
  hls::axis<ap_uint<64>, 2, 0, 0> ax;
  ax.data = 1;
  ax.user = 3;
  std::cout << "axis " << ax.keep.length() << " " << ax.user.length() << " " << ax.id.length()
            << "\n";
  return 0;
}
