// hls_compat/hls_stream.h -- a header-only stand-in for Xilinx's hls::stream<T> for
// C-simulation with g++, written for the filmqnn project (not derived from Xilinx's sources).
//
// Semantics (UG902 / UG1399 C-simulation behaviour):
//   * An unbounded FIFO: write() never blocks and full() is always false, whatever the DEPTH
//     template argument or `#pragma HLS STREAM depth=` says (in C-simulation a DATAFLOW region
//     runs its processes one after another, so a stream must hold everything its producer
//     writes). Size the real FIFO depth for RTL/co-simulation, not here.
//   * read() / operator>> on an empty stream throws hls::stream_empty_error (a
//     std::runtime_error naming the stream): in hardware that read would block forever, and
//     Xilinx's C-simulation warns about exactly this. Use empty() or read_nb() to poll.
//   * A stream destroyed while still holding data prints a warning to stderr (leftover data
//     usually means a producer/consumer count mismatch).
//   * Streams cannot be copied (pass them by reference, as HLS requires); hls::stream<T, D>
//     derives from hls::stream<T>, so it binds to hls::stream<T>& parameters.
#ifndef FILMQNN_HLS_COMPAT_HLS_STREAM_H
#define FILMQNN_HLS_COMPAT_HLS_STREAM_H

#include <cstddef>
#include <deque>
#include <iostream>
#include <stdexcept>
#include <string>

namespace hls {

// Thrown by a blocking read of an empty stream.
struct stream_empty_error : std::runtime_error {
  explicit stream_empty_error(const std::string& what) : std::runtime_error(what) {}
};

template <class T, int DEPTH = 0> class stream;

// hls::stream<T> (DEPTH 0): the FIFO itself.
template <class T> class stream<T, 0> {
 public:
  typedef T value_type;

  stream() : name_("hls::stream") {}
  explicit stream(const char* name) : name_(name ? name : "hls::stream") {}
  explicit stream(const std::string& name) : name_(name) {}
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  ~stream() {
    if (!fifo_.empty())
      std::cerr << "WARNING [hls_compat]: hls::stream '" << name_ << "' destroyed with "
                << fifo_.size() << " leftover element(s)\n";
  }

  // --- producer side ---
  void write(const T& v) { fifo_.push_back(v); }
  bool write_nb(const T& v) {
    write(v);
    return true;
  }
  void operator<<(const T& v) { write(v); }

  // --- consumer side ---
  T read() {
    if (fifo_.empty())
      throw stream_empty_error("hls::stream '" + name_ +
                               "': read while empty (in hardware this read would block forever: "
                               "the producer wrote fewer elements than the consumer reads)");
    T v = fifo_.front();
    fifo_.pop_front();
    return v;
  }
  void read(T& v) { v = read(); }
  bool read_nb(T& v) {
    if (fifo_.empty()) return false;
    v = read();
    return true;
  }
  void operator>>(T& v) { v = read(); }

  // --- status ---
  bool empty() const { return fifo_.empty(); }
  bool full() const { return false; }  // unbounded in C-simulation
  std::size_t size() const { return fifo_.size(); }
  int depth() const { return 0; }
  const std::string& name() const { return name_; }
  const char* get_name() const { return name_.c_str(); }

 private:
  std::string name_;
  std::deque<T> fifo_;
};

// hls::stream<T, DEPTH>: a hls::stream<T> (it binds to hls::stream<T>& parameters) that records
// the depth; C-simulation behaviour is identical.
template <class T, int DEPTH> class stream : public stream<T, 0> {
  static_assert(DEPTH > 0, "hls::stream<T, DEPTH>: DEPTH must be positive");

 public:
  stream() : stream<T, 0>() {}
  explicit stream(const char* name) : stream<T, 0>(name) {}
  explicit stream(const std::string& name) : stream<T, 0>(name) {}
  int depth() const { return DEPTH; }
};

}  // namespace hls

#endif  // FILMQNN_HLS_COMPAT_HLS_STREAM_H
