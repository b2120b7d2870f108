// Verilator system testbench for a FILM-QNN accelerator top with Vivado port names.
//
// Written next to a generated "tb_config.h" by filmqnn_hw.sim.verilator.build_verilator;
// that header includes the Verilated model's header and defines
//   TB_TOP_CLASS       the Verilated class (V<top_name>)
//   TB_PORTS(X)        X(0) X(1) ... : the AXI4 master ports m_axi_gmem<N> of the top
//   TB_HAS_ID          1 if the m_axi_gmem<N> ports have ID signals (awid/bid/arid/rid)
//   TB_BEAT_BYTES      bytes per data beat (B / 8) of every m_axi_gmem<N>
//   TB_LAYERS_OFFSET   s_axi_control offset of the 64-bit `layers` argument
//   TB_COUNTERS(X)     X(name, offset, bits) for each counter of the control map
//
// Usage: tb DDR_IN DDR_OUT LAYERS_ADDR [options]      (numbers: decimal or 0x hex)
//   --read-latency N     cycles from AR handshake to the first R beat (default 40)
//   --write-latency N    cycles from the last W beat to BVALID (default 10)
//   --stall-seed S       enable random READY/VALID stalls on the slave side with seed S
//   --stall-prob P       probability of a stall per signal per cycle (default 0.25)
//   --max-outstanding N  read bursts and write bursts accepted at once, each (default 16)
//   --max-cycles N       give up after N simulated cycles (default 200000000)
//   --poll N             read AP_CTRL every N cycles (default 64)
//   --reset-cycles N     cycles with ap_rst_n low (default 8)
//   --mem-size N         pad the DDR image with zeros to N bytes
//   --ddr-beats-per-cycle R
//                        shared DDR bandwidth: all ports together move at most R beats per
//                        cycle on average (R and W beats; default 0 = no limit)
//   --desc-base A --desc-size N --desc-count K
//                        log the cycle of the AR handshake that fetches each of the K layer
//                        descriptors at A, A+N, ... (per-layer cycle counts)
//
// Memory: a byte array at address 0 holding the DDR_IN file. Every m_axi_gmem<N> port gets its
// own AXI4 slave on that memory (own queues, latency and stalls; stall draws share one seed):
// INCR bursts (any AxLEN, FIXED accepted only for single beats), AxSIZE must be the full beat
// width, WSTRB honoured per byte, in-order R and B responses, several bursts outstanding.
// A burst outside the memory, crossing a 4 KiB boundary, with a narrow AxSIZE or a misplaced
// WLAST, or a master dropping VALID before its handshake, is reported and exits non-zero.
//
// Output (stdout), on success (exit 0): with --desc-*, a line
//   layers start=<cycle of the ap_start write> desc=<cycle>,<cycle>,...
// and, last line:
//   cycles=... stall_weight=... stall_input=... stall_output=... sim_cycles=... wall_s=...
// Exit codes: 0 ok, 1 usage/file error, 2 timeout (prints AP_CTRL), 3 AXI error,
// 4 write transactions still outstanding after ap_done.
#include "tb_config.h"

#include <verilated.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#ifndef TB_HAS_ID
#define TB_HAS_ID 0
#endif

static_assert(TB_BEAT_BYTES >= 4 && TB_BEAT_BYTES <= 128, "beat must be 4..128 bytes");

// ---- access to Verilator port types (CData/SData/IData/QData or VlWide<N>) ----
template <class T> static inline uint64_t get_u64(const T& v) { return static_cast<uint64_t>(v); }
template <std::size_t N> static inline uint64_t get_u64(const VlWide<N>& v) {
    return N > 1 ? (static_cast<uint64_t>(v.at(1)) << 32) | v.at(0) : v.at(0);
}
template <class T> static inline bool get_bit(const T& v, int i) {
    return (static_cast<uint64_t>(v) >> i) & 1;
}
template <std::size_t N> static inline bool get_bit(const VlWide<N>& v, int i) {
    return (v.at(i / 32) >> (i % 32)) & 1;
}
template <class T> static inline void load_bytes(T& sig, const uint8_t* p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n && i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
    sig = static_cast<T>(v);
}
template <std::size_t N> static inline void load_bytes(VlWide<N>& sig, const uint8_t* p, int n) {
    for (std::size_t w = 0; w < N; ++w) {
        uint32_t v = 0;
        for (int b = 0; b < 4; ++b) {
            int i = static_cast<int>(w) * 4 + b;
            if (i < n) v |= static_cast<uint32_t>(p[i]) << (8 * b);
        }
        sig.at(w) = v;
    }
}
template <class T> static inline void store_bytes(const T& sig, uint8_t* p, int n) {
    uint64_t v = static_cast<uint64_t>(sig);
    for (int i = 0; i < n && i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
template <std::size_t N> static inline void store_bytes(const VlWide<N>& sig, uint8_t* p, int n) {
    for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(sig.at(i / 4) >> (8 * (i % 4)));
}

// ---- errors ----
struct TbExit {
    int code;
};
[[noreturn]] static void fail(int code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::fprintf(stderr, "error: ");
    std::vfprintf(stderr, fmt, ap);
    std::fprintf(stderr, "\n");
    va_end(ap);
    throw TbExit{code};
}

// ---- options ----
struct Options {
    std::string in_path, out_path;
    uint64_t layers = 0;
    uint64_t read_latency = 40, write_latency = 10;
    bool stall = false;
    uint64_t stall_seed = 0;
    double stall_prob = 0.25;
    uint64_t max_outstanding = 16;
    uint64_t max_cycles = 200000000ULL;
    uint64_t poll = 64;
    uint64_t reset_cycles = 8;
    uint64_t mem_size = 0;
    uint64_t desc_base = 0, desc_size = 0, desc_count = 0;
    double ddr_beats = 0;  // 0: unlimited
};

static uint64_t parse_u64(const char* s, const char* what) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 0);
    if (errno || end == s || *end) fail(1, "bad number for %s: '%s'", what, s);
    return v;
}

static Options parse_args(int argc, char** argv) {
    Options o;
    std::vector<std::string> pos;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("--", 0) != 0) {
            pos.push_back(a);
            continue;
        }
        if (i + 1 >= argc) fail(1, "option %s needs a value", a.c_str());
        const char* v = argv[++i];
        if (a == "--read-latency") o.read_latency = parse_u64(v, "--read-latency");
        else if (a == "--write-latency") o.write_latency = parse_u64(v, "--write-latency");
        else if (a == "--stall-seed") { o.stall = true; o.stall_seed = parse_u64(v, a.c_str()); }
        else if (a == "--stall-prob") {
            char* end = nullptr;
            o.stall_prob = std::strtod(v, &end);
            if (end == v || *end || o.stall_prob < 0 || o.stall_prob >= 1)
                fail(1, "--stall-prob must be in [0, 1), not '%s'", v);
        }
        else if (a == "--max-outstanding") o.max_outstanding = parse_u64(v, a.c_str());
        else if (a == "--max-cycles") o.max_cycles = parse_u64(v, a.c_str());
        else if (a == "--poll") o.poll = parse_u64(v, a.c_str());
        else if (a == "--reset-cycles") o.reset_cycles = parse_u64(v, a.c_str());
        else if (a == "--mem-size") o.mem_size = parse_u64(v, a.c_str());
        else if (a == "--ddr-beats-per-cycle") {
            char* end = nullptr;
            o.ddr_beats = std::strtod(v, &end);
            if (end == v || *end || !(o.ddr_beats >= 0))
                fail(1, "--ddr-beats-per-cycle must be a number >= 0, not '%s'", v);
        }
        else if (a == "--desc-base") o.desc_base = parse_u64(v, a.c_str());
        else if (a == "--desc-size") o.desc_size = parse_u64(v, a.c_str());
        else if (a == "--desc-count") o.desc_count = parse_u64(v, a.c_str());
        else fail(1, "unknown option %s", a.c_str());
    }
    if (pos.size() != 3) fail(1, "usage: %s DDR_IN DDR_OUT LAYERS_ADDR [options]", argv[0]);
    o.in_path = pos[0];
    o.out_path = pos[1];
    o.layers = parse_u64(pos[2].c_str(), "LAYERS_ADDR");
    if (o.max_outstanding < 1) fail(1, "--max-outstanding must be >= 1");
    if (o.poll < 1) fail(1, "--poll must be >= 1");
    if (o.desc_count && o.desc_size < 1) fail(1, "--desc-count needs --desc-size >= 1");
    return o;
}

static std::vector<uint8_t> read_file(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail(1, "cannot open %s", path.c_str());
    std::vector<uint8_t> buf;
    uint8_t chunk[1 << 16];
    size_t n;
    while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) buf.insert(buf.end(), chunk, chunk + n);
    std::fclose(f);
    return buf;
}

static void write_file(const std::string& path, const std::vector<uint8_t>& buf) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) fail(1, "cannot create %s", path.c_str());
    if (!buf.empty() && std::fwrite(buf.data(), 1, buf.size(), f) != buf.size())
        fail(1, "short write to %s", path.c_str());
    std::fclose(f);
}

// ---- the simulated system ----
constexpr int BEAT = TB_BEAT_BYTES;
constexpr int SIZE_CODE = __builtin_ctz(TB_BEAT_BYTES);

struct Burst {
    uint64_t addr;  // byte address of beat 0, aligned down to the beat size
    uint32_t len;   // AxLEN
    uint32_t beat;  // next beat
    uint32_t id;
    uint64_t ready_at;
};
struct WBeat {
    uint8_t data[BEAT];
    uint8_t strb[BEAT];
    bool last;
};
struct BResp {
    uint32_t id;
    uint64_t ready_at;
};

struct Stats {
    uint64_t ar = 0, r_beats = 0, aw = 0, w_beats = 0, b = 0;
};

// Member access of one AXI4 master port of the Verilated top, by port number.
#if TB_HAS_ID
#define TB_ID_ACCESSORS(N)                                                                    \
    static auto& arid(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_arid; }                  \
    static auto& rid(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_rid; }                    \
    static auto& awid(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_awid; }                  \
    static auto& bid(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_bid; }
#else
#define TB_ID_ACCESSORS(N)
#endif
#define TB_PORT_ACCESSORS(N)                                                                  \
    struct PortIo##N {                                                                        \
        static constexpr const char* name = "m_axi_gmem" #N;                                  \
        static auto& arvalid(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_arvalid; }          \
        static auto& arready(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_arready; }          \
        static auto& araddr(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_araddr; }            \
        static auto& arlen(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_arlen; }              \
        static auto& arsize(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_arsize; }            \
        static auto& arburst(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_arburst; }          \
        static auto& rvalid(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_rvalid; }            \
        static auto& rready(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_rready; }            \
        static auto& rdata(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_rdata; }              \
        static auto& rlast(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_rlast; }              \
        static auto& rresp(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_rresp; }              \
        static auto& awvalid(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_awvalid; }          \
        static auto& awready(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_awready; }          \
        static auto& awaddr(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_awaddr; }            \
        static auto& awlen(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_awlen; }              \
        static auto& awsize(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_awsize; }            \
        static auto& awburst(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_awburst; }          \
        static auto& wvalid(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_wvalid; }            \
        static auto& wready(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_wready; }            \
        static auto& wdata(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_wdata; }              \
        static auto& wstrb(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_wstrb; }              \
        static auto& wlast(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_wlast; }              \
        static auto& bvalid(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_bvalid; }            \
        static auto& bready(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_bready; }            \
        static auto& bresp(TB_TOP_CLASS* t) { return t->m_axi_gmem##N##_bresp; }              \
        TB_ID_ACCESSORS(N)                                                                    \
    };
TB_PORTS(TB_PORT_ACCESSORS)

// Shared by the port models: the memory, options, clock, stall source, descriptor log.
struct Shared {
    Options opt;
    std::vector<uint8_t> mem;
    uint64_t cycle = 0;
    Stats stats;
    std::mt19937_64 rng;
    std::bernoulli_distribution stall_dist;
    std::vector<uint64_t> desc_cycles;  // AR handshake cycle of descriptor i (in fetch order)
    // shared DDR bandwidth (token bucket): a port may start a beat only with a token; every
    // R or W beat takes one (several ports in one cycle may run into debt), each cycle adds
    // ddr_beats up to a small burst allowance
    double tokens = 0;

    explicit Shared(const Options& o)
        : opt(o), rng(o.stall_seed), stall_dist(o.stall ? o.stall_prob : 0.0),
          tokens(o.ddr_beats) {}

    bool stall() { return opt.stall && stall_dist(rng); }
    bool ddr_ready() const { return opt.ddr_beats <= 0 || tokens >= 1.0; }
    void ddr_take() { if (opt.ddr_beats > 0) tokens -= 1.0; }
    void ddr_refill() {
        if (opt.ddr_beats > 0)
            tokens = std::min(tokens + opt.ddr_beats, 2.0 * opt.ddr_beats + 1.0);
    }

    void check_range(const char* port, const char* what, uint64_t addr, uint64_t len,
                     uint64_t raw) {
        uint64_t bytes = (len + 1) * BEAT;
        if (addr > mem.size() || bytes > mem.size() - addr)
            fail(3, "%s: %s burst out of range: addr=0x%llx len=%llu (%llu bytes) but the "
                 "memory holds 0x%llx bytes", port, what, (unsigned long long)raw,
                 (unsigned long long)len, (unsigned long long)bytes,
                 (unsigned long long)mem.size());
        if ((raw >> 12) != ((addr + bytes - 1) >> 12))
            fail(3, "%s: %s burst crosses a 4 KiB boundary: addr=0x%llx len=%llu", port, what,
                 (unsigned long long)raw, (unsigned long long)len);
    }

    void check_burst(const char* port, const char* what, uint64_t raw, uint64_t len,
                     uint64_t size, uint64_t type) {
        if (size != SIZE_CODE)
            fail(3, "%s: %s burst with AxSIZE=%llu at 0x%llx: only full-width beats "
                 "(AxSIZE=%d) are modelled", port, what, (unsigned long long)size,
                 (unsigned long long)raw, SIZE_CODE);
        if (type != 1 && !(type == 0 && len == 0))
            fail(3, "%s: %s burst type %llu at 0x%llx: only INCR bursts are modelled", port,
                 what, (unsigned long long)type, (unsigned long long)raw);
        check_range(port, what, raw & ~static_cast<uint64_t>(BEAT - 1), len, raw);
    }
};

// The AXI4 slave of one master port (all ports serve the same memory).
template <class IO> class PortModel {
public:
    std::deque<Burst> rq, wq;
    std::deque<WBeat> wbuf;
    std::deque<BResp> bq;
    // slave-driven outputs (registered in this model)
    bool s_arready = false, s_rvalid = false, s_awready = false, s_wready = false,
         s_bvalid = false;
    // master stability checks
    bool prev_arvalid_pending = false, prev_awvalid_pending = false, prev_wvalid_pending = false;
    uint64_t prev_araddr = 0, prev_arlen = 0, prev_awaddr = 0, prev_awlen = 0;
    // handshakes sampled before the current edge
    bool r_hs = false, b_hs = false;

    // Drive the slave outputs for the coming cycle from the model state.
    void drive(TB_TOP_CLASS* t, Shared& sh) {
        s_arready = rq.size() < sh.opt.max_outstanding && !sh.stall();
        s_awready = wq.size() < sh.opt.max_outstanding && !sh.stall();
        s_wready = wbuf.size() < 4096 && sh.ddr_ready() && !sh.stall();
        if (!s_rvalid) {
            // VALID may only rise on its own; once up it stays until the handshake
            s_rvalid = !rq.empty() && sh.cycle >= rq.front().ready_at && sh.ddr_ready()
                       && !sh.stall();
        }
        if (s_rvalid) {
            const Burst& b = rq.front();
            load_bytes(IO::rdata(t), &sh.mem[b.addr + uint64_t(b.beat) * BEAT], BEAT);
            IO::rlast(t) = b.beat == b.len;
#if TB_HAS_ID
            IO::rid(t) = b.id;
#endif
        } else {
            IO::rlast(t) = 0;
        }
        IO::rresp(t) = 0;
        if (!s_bvalid) s_bvalid = !bq.empty() && sh.cycle >= bq.front().ready_at && !sh.stall();
        if (s_bvalid) {
#if TB_HAS_ID
            IO::bid(t) = bq.front().id;
#endif
        }
        IO::bresp(t) = 0;
        IO::arready(t) = s_arready;
        IO::rvalid(t) = s_rvalid;
        IO::awready(t) = s_awready;
        IO::wready(t) = s_wready;
        IO::bvalid(t) = s_bvalid;
    }

    // Sample the master's outputs before the rising edge: checks, new bursts, W beats.
    void sample(TB_TOP_CLASS* t, Shared& sh, bool log_desc) {
        bool arvalid = IO::arvalid(t), awvalid = IO::awvalid(t), wvalid = IO::wvalid(t);
        if (prev_arvalid_pending && (!arvalid || get_u64(IO::araddr(t)) != prev_araddr
                                     || get_u64(IO::arlen(t)) != prev_arlen))
            fail(3, "%s: ARVALID dropped or AR payload changed before ARREADY (cycle %llu)",
                 IO::name, (unsigned long long)sh.cycle);
        if (prev_awvalid_pending && (!awvalid || get_u64(IO::awaddr(t)) != prev_awaddr
                                     || get_u64(IO::awlen(t)) != prev_awlen))
            fail(3, "%s: AWVALID dropped or AW payload changed before AWREADY (cycle %llu)",
                 IO::name, (unsigned long long)sh.cycle);
        if (prev_wvalid_pending && !wvalid)
            fail(3, "%s: WVALID dropped before WREADY (cycle %llu)", IO::name,
                 (unsigned long long)sh.cycle);
        bool ar_hs = arvalid && s_arready;
        bool aw_hs = awvalid && s_awready;
        bool w_hs = wvalid && s_wready;
        r_hs = s_rvalid && IO::rready(t);
        b_hs = s_bvalid && IO::bready(t);
        if (r_hs) sh.ddr_take();
        if (w_hs) sh.ddr_take();
        prev_arvalid_pending = arvalid && !ar_hs;
        prev_awvalid_pending = awvalid && !aw_hs;
        prev_wvalid_pending = wvalid && !w_hs;
        prev_araddr = get_u64(IO::araddr(t));
        prev_arlen = get_u64(IO::arlen(t));
        prev_awaddr = get_u64(IO::awaddr(t));
        prev_awlen = get_u64(IO::awlen(t));
        const Options& opt = sh.opt;
        if (ar_hs) {
            uint64_t raw = prev_araddr, len = prev_arlen;
            sh.check_burst(IO::name, "read", raw, len, get_u64(IO::arsize(t)),
                           get_u64(IO::arburst(t)));
            uint32_t id = 0;
#if TB_HAS_ID
            id = static_cast<uint32_t>(get_u64(IO::arid(t)));
#endif
            rq.push_back(Burst{raw & ~static_cast<uint64_t>(BEAT - 1), uint32_t(len), 0, id,
                               sh.cycle + opt.read_latency});
            ++sh.stats.ar;
            if (log_desc && opt.desc_count && raw >= opt.desc_base) {
                uint64_t off = raw - opt.desc_base, i = off / opt.desc_size;
                if (off % opt.desc_size == 0 && i < opt.desc_count && i == sh.desc_cycles.size())
                    sh.desc_cycles.push_back(sh.cycle);
            }
        }
        if (aw_hs) {
            uint64_t raw = prev_awaddr, len = prev_awlen;
            sh.check_burst(IO::name, "write", raw, len, get_u64(IO::awsize(t)),
                           get_u64(IO::awburst(t)));
            uint32_t id = 0;
#if TB_HAS_ID
            id = static_cast<uint32_t>(get_u64(IO::awid(t)));
#endif
            wq.push_back(Burst{raw & ~static_cast<uint64_t>(BEAT - 1), uint32_t(len), 0, id, 0});
            ++sh.stats.aw;
        }
        if (w_hs) {
            WBeat w;
            store_bytes(IO::wdata(t), w.data, BEAT);
            for (int i = 0; i < BEAT; ++i) w.strb[i] = get_bit(IO::wstrb(t), i);
            w.last = IO::wlast(t);
            wbuf.push_back(w);
        }
    }

    // After the rising edge: retire the sampled R/B handshakes and the complete W beats.
    void update(Shared& sh) {
        if (r_hs) {
            Burst& b = rq.front();
            ++sh.stats.r_beats;
            s_rvalid = false;
            if (b.beat == b.len) rq.pop_front();
            else ++b.beat;
        }
        if (b_hs) {
            bq.pop_front();
            s_bvalid = false;
            ++sh.stats.b;
        }
        while (!wq.empty() && !wbuf.empty()) {
            Burst& b = wq.front();
            const WBeat& w = wbuf.front();
            bool want_last = b.beat == b.len;
            if (w.last != want_last)
                fail(3, "%s: WLAST=%d on beat %u of a %u-beat write burst at 0x%llx", IO::name,
                     int(w.last), b.beat, b.len + 1, (unsigned long long)b.addr);
            uint8_t* dst = &sh.mem[b.addr + uint64_t(b.beat) * BEAT];
            for (int i = 0; i < BEAT; ++i)
                if (w.strb[i]) dst[i] = w.data[i];
            wbuf.pop_front();
            ++sh.stats.w_beats;
            if (want_last) {
                bq.push_back(BResp{b.id, sh.cycle + sh.opt.write_latency});
                wq.pop_front();
            } else {
                ++b.beat;
            }
        }
    }

    bool writes_pending() const { return !wq.empty() || !wbuf.empty() || !bq.empty(); }

    std::string pending() const {
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "%s: read_bursts=%zu write_bursts=%zu w_beats_buffered=%zu b_pending=%zu",
                      IO::name, rq.size(), wq.size(), wbuf.size(), bq.size());
        return buf;
    }
};

class System : public Shared {
public:
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<TB_TOP_CLASS> top;
    uint64_t start_cycle = 0;
#define TB_DECLARE_PORT(N) PortModel<PortIo##N> port##N;
    TB_PORTS(TB_DECLARE_PORT)
#undef TB_DECLARE_PORT
    // AXI-Lite master handshakes seen in the last cycle
    bool l_aw_hs = false, l_w_hs = false, l_b_hs = false, l_ar_hs = false, l_r_hs = false;
    uint32_t l_rdata = 0, l_resp = 0;

    explicit System(const Options& o, int argc, char** argv) : Shared(o) {
        ctx.reset(new VerilatedContext);
        ctx->commandArgs(argc, argv);
        top.reset(new TB_TOP_CLASS{ctx.get()});
    }

    // Drive the slave outputs of every port for the coming cycle.
    void drive_slave() {
#define TB_DRIVE_PORT(N) port##N.drive(top.get(), *this);
        TB_PORTS(TB_DRIVE_PORT)
#undef TB_DRIVE_PORT
    }

    // One clock cycle: settle with clk low, sample handshakes, rising edge, update the models.
    void tick() {
        if (cycle >= opt.max_cycles) throw TbExit{-1};
        auto* t = top.get();
        t->ap_clk = 0;
        t->eval();
        // --- sample (values before the edge); descriptors are read through port 0 ---
#define TB_SAMPLE_PORT(N) port##N.sample(t, *this, N == 0);
        TB_PORTS(TB_SAMPLE_PORT)
#undef TB_SAMPLE_PORT
        l_aw_hs = t->s_axi_control_awvalid && t->s_axi_control_awready;
        l_w_hs = t->s_axi_control_wvalid && t->s_axi_control_wready;
        l_b_hs = t->s_axi_control_bvalid && t->s_axi_control_bready;
        l_ar_hs = t->s_axi_control_arvalid && t->s_axi_control_arready;
        l_r_hs = t->s_axi_control_rvalid && t->s_axi_control_rready;
        if (l_r_hs) {
            l_rdata = static_cast<uint32_t>(get_u64(t->s_axi_control_rdata));
            l_resp = static_cast<uint32_t>(get_u64(t->s_axi_control_rresp));
        }
        if (l_b_hs) l_resp = static_cast<uint32_t>(get_u64(t->s_axi_control_bresp));
        // --- rising edge ---
        t->ap_clk = 1;
        t->eval();
        ++cycle;
        // --- update the slave models ---
        ddr_refill();
#define TB_UPDATE_PORT(N) port##N.update(*this);
        TB_PORTS(TB_UPDATE_PORT)
#undef TB_UPDATE_PORT
        drive_slave();
    }

    bool reads_pending() const {
        bool any = false;
#define TB_READS_PORT(N) any = any || !port##N.rq.empty();
        TB_PORTS(TB_READS_PORT)
#undef TB_READS_PORT
        return any;
    }

    bool writes_pending() const {
        bool any = false;
#define TB_WRITES_PORT(N) any = any || port##N.writes_pending();
        TB_PORTS(TB_WRITES_PORT)
#undef TB_WRITES_PORT
        return any;
    }

    void lite_idle() {
        auto* t = top.get();
        t->s_axi_control_awvalid = 0;
        t->s_axi_control_wvalid = 0;
        t->s_axi_control_arvalid = 0;
        t->s_axi_control_bready = 1;
        t->s_axi_control_rready = 1;
        t->s_axi_control_awprot = 0;
        t->s_axi_control_arprot = 0;
        t->s_axi_control_wstrb = 0xF;
    }

    void lite_write(uint32_t addr, uint32_t data) {
        auto* t = top.get();
        t->s_axi_control_awaddr = addr;
        t->s_axi_control_awvalid = 1;
        t->s_axi_control_wdata = data;
        t->s_axi_control_wstrb = 0xF;
        t->s_axi_control_wvalid = 1;
        for (;;) {
            tick();
            if (l_aw_hs) t->s_axi_control_awvalid = 0;
            if (l_w_hs) t->s_axi_control_wvalid = 0;
            if (l_b_hs) break;
        }
        if (l_resp) fail(3, "s_axi_control write to 0x%02x: BRESP=%u", addr, l_resp);
    }

    uint32_t lite_read(uint32_t addr) {
        auto* t = top.get();
        t->s_axi_control_araddr = addr;
        t->s_axi_control_arvalid = 1;
        for (;;) {
            tick();
            if (l_ar_hs) t->s_axi_control_arvalid = 0;
            if (l_r_hs) break;
        }
        if (l_resp) fail(3, "s_axi_control read of 0x%02x: RRESP=%u", addr, l_resp);
        return l_rdata;
    }

    uint64_t read_counter(uint32_t offset, int bits) {
        uint64_t lo = lite_read(offset);  // latches the high word
        uint64_t hi = bits == 64 ? lite_read(offset + 4) : 0;
        return lo | (hi << 32);
    }

    std::string pending() const {
        std::string out;
#define TB_PENDING_PORT(N) out += (N ? "; " : "") + port##N.pending();
        TB_PORTS(TB_PENDING_PORT)
#undef TB_PENDING_PORT
        return out;
    }
};

int main(int argc, char** argv) {
    int code = 0;
    System* sys = nullptr;
    uint32_t ap_ctrl = 0;
    try {
        Options opt = parse_args(argc, argv);
        std::vector<uint8_t> mem = read_file(opt.in_path);
        if (opt.mem_size > mem.size()) mem.resize(opt.mem_size, 0);
        sys = new System(opt, argc, argv);
        sys->mem.swap(mem);
        auto* t = sys->top.get();
        auto t0 = std::chrono::steady_clock::now();
        // reset
        t->ap_rst_n = 0;
        sys->lite_idle();
        sys->drive_slave();
        for (uint64_t i = 0; i < opt.reset_cycles; ++i) sys->tick();
        t->ap_rst_n = 1;
        sys->tick();
        // program the arguments and start
        sys->lite_write(TB_LAYERS_OFFSET, static_cast<uint32_t>(opt.layers));
        sys->lite_write(TB_LAYERS_OFFSET + 4, static_cast<uint32_t>(opt.layers >> 32));
        sys->lite_write(0x00, 1);
        sys->start_cycle = sys->cycle;
        for (;;) {
            ap_ctrl = sys->lite_read(0x00);
            if (ap_ctrl & 2) break;
            for (uint64_t i = 0; i < opt.poll; ++i) sys->tick();
        }
        std::string counters;
#define TB_READ_COUNTER(name, offset, bits)                                                     \
    counters += std::string(#name "=") + std::to_string(sys->read_counter(offset, bits)) + " ";
        TB_COUNTERS(TB_READ_COUNTER)
#undef TB_READ_COUNTER
        double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        sys->top->final();
        write_file(opt.out_path, sys->mem);
        const Stats& s = sys->stats;
        std::printf("axi ar=%llu r_beats=%llu aw=%llu w_beats=%llu b=%llu\n",
                    (unsigned long long)s.ar, (unsigned long long)s.r_beats,
                    (unsigned long long)s.aw, (unsigned long long)s.w_beats,
                    (unsigned long long)s.b);
        if (opt.desc_count) {
            std::string d;
            for (uint64_t c : sys->desc_cycles) d += (d.empty() ? "" : ",") + std::to_string(c);
            std::printf("layers start=%llu desc=%s\n", (unsigned long long)sys->start_cycle,
                        d.c_str());
        }
        if (sys->reads_pending())
            std::fprintf(stderr, "warning: read bursts still outstanding after ap_done: %s\n",
                         sys->pending().c_str());
        if (sys->writes_pending())
            fail(4, "write transactions still outstanding after ap_done and the counter reads: "
                 "%s", sys->pending().c_str());
        std::printf("%ssim_cycles=%llu wall_s=%.6f\n", counters.c_str(),
                    (unsigned long long)sys->cycle, wall);
    } catch (const TbExit& e) {
        if (e.code == -1) {
            auto* t = sys->top.get();
            if (!t->s_axi_control_arvalid && !t->s_axi_control_awvalid
                && !t->s_axi_control_wvalid) {
                // the control bus is idle: take a fresh look at AP_CTRL (a few cycles more)
                sys->opt.max_cycles = sys->cycle + 1000;
                try {
                    ap_ctrl = sys->lite_read(0x00);
                } catch (const TbExit&) {
                }
            }
            std::printf("timeout: ap_done not seen after %llu cycles; AP_CTRL=0x%08x "
                        "(bit0 ap_start, bit1 ap_done, bit2 ap_idle, bit3 ap_ready); %s\n",
                        (unsigned long long)sys->cycle, ap_ctrl, sys->pending().c_str());
            std::fflush(stdout);
            code = 2;
        } else {
            code = e.code;
        }
    }
    std::fflush(stdout);
    delete sys;
    return code;
}
