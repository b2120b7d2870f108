// FILM-QNN accelerator, Vivado/Vitis HLS path: a layer-program interpreter.
//
// One call runs a whole network: the kernel reads the layer program (docs/layer-program.md)
// at byte address `layers`, then for every descriptor runs the layer out of DDR (gmem) and
// writes its output back to DDR. Arithmetic is the numeric contract of docs/numerics.md:
//   acc = sum w * a                         (ap_int<FQ_ACC_BITS>, exact)
//   y   = acc*mult + offset [+ res*res_mult] (ap_int<48>)
//   out = clip(y >> shift, lo, hi)
// Tiling follows the accelerator: tm output lanes (the first n8 of every tile are 8-bit-weight
// lanes, the rest 4-bit, unpacked from the weight image's nibbles), tn input lanes per chunk,
// tr x tc output tiles, loop order ws/is from the descriptor. Padding is generated on chip.
//
// Static source: the accelerator parameters come from the generated filmqnn_config.h.
#include "filmqnn_top.h"

typedef ap_int<FQ_ACC_BITS> acc_t;
typedef ap_int<FQ_Y_BITS> y_t;
typedef ap_uint<5> act_t;
typedef ap_int<8> w8_t;
typedef ap_int<4> w4_t;

// ---------------------------------------------------------------------------------------------
// DDR access helpers (byte addresses relative to gmem)
// ---------------------------------------------------------------------------------------------
static ap_uint<8> rd8(beat_t *gmem, uint64_t addr) {
#pragma HLS INLINE
    beat_t b = gmem[addr / FQ_BEAT_BYTES];
    unsigned lo = (unsigned)(addr % FQ_BEAT_BYTES) * 8;
    return b.range(lo + 7, lo);
}

static void wr8(beat_t *gmem, uint64_t addr, ap_uint<8> v) {
#pragma HLS INLINE
    beat_t b = gmem[addr / FQ_BEAT_BYTES];
    unsigned lo = (unsigned)(addr % FQ_BEAT_BYTES) * 8;
    b.range(lo + 7, lo) = v;
    gmem[addr / FQ_BEAT_BYTES] = b;
}

static uint64_t rd64(beat_t *gmem, uint64_t addr) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
#pragma HLS PIPELINE II=1
        v = (v << 8) | (uint64_t)rd8(gmem, addr + i).to_uint();
    }
    return v;
}

// Packed activation layout: planes of G channels, one 5G-bit word per pixel, WPB words per
// beat, rows beat-aligned. A code never straddles a beat.
struct Tensor {
    uint64_t addr, row, plane;
};

static act_t act_get(beat_t *gmem, const Tensor &t, int c, int y, int x) {
#pragma HLS INLINE
    uint64_t a = t.addr + (uint64_t)(c / FQ_G) * t.plane + (uint64_t)y * t.row +
                 (uint64_t)(x / FQ_WPB) * FQ_BEAT_BYTES;
    beat_t b = gmem[a / FQ_BEAT_BYTES];
    unsigned lo = (unsigned)(x % FQ_WPB) * FQ_WORD_BITS + (unsigned)(c % FQ_G) * 5;
    return b.range(lo + 4, lo);
}

static void out_put(beat_t *gmem, const Tensor &t, bool logits, int c, int y, int x,
                    int64_t v) {
#pragma HLS INLINE
    if (logits) {  // little-endian int16, C x H x W
        uint64_t a = t.addr + (uint64_t)c * t.plane + (uint64_t)y * t.row + (uint64_t)x * 2;
        ap_int<16> s = v;
        wr8(gmem, a, s.range(7, 0));
        wr8(gmem, a + 1, s.range(15, 8));
        return;
    }
    uint64_t a = t.addr + (uint64_t)(c / FQ_G) * t.plane + (uint64_t)y * t.row +
                 (uint64_t)(x / FQ_WPB) * FQ_BEAT_BYTES;
    beat_t b = gmem[a / FQ_BEAT_BYTES];
    unsigned lo = (unsigned)(x % FQ_WPB) * FQ_WORD_BITS + (unsigned)(c % FQ_G) * 5;
    b.range(lo + 4, lo) = (act_t)v;
    gmem[a / FQ_BEAT_BYTES] = b;
}

static int64_t clip(int64_t v, int64_t lo, int64_t hi) {
#pragma HLS INLINE
    return v < lo ? lo : (v > hi ? hi : v);
}

struct Desc {
    int64_t w[FQ_DESC_WORDS];
};

// Per-channel parameters of one tile of tm output channels (PARAM_SIZE bytes per channel):
// offset i64 @0, mult u16 @8, shift u8 @10, bits u8 @11, res_mult i32 @12.
struct Params {
    ap_int<48> offset[FQ_TM];
    ap_uint<16> mult[FQ_TM];
    ap_int<32> res_mult[FQ_TM];
    ap_uint<6> shift[FQ_TM];
};

static void load_params(beat_t *gmem, uint64_t p_addr, int c0, int n, Params &p) {
    for (int m = 0; m < FQ_TM; m++) {
        uint64_t a = p_addr + (uint64_t)(c0 + m) * FQ_PARAM_SIZE;
        if (m < n) {
            p.offset[m] = (int64_t)rd64(gmem, a);
            uint64_t w = rd64(gmem, a + 8);
            p.mult[m] = w & 0xFFFF;
            p.shift[m] = (w >> 16) & 0xFF;
            p.res_mult[m] = (int32_t)(uint32_t)(w >> 32);
        } else {
            p.offset[m] = 0;
            p.mult[m] = 0;
            p.res_mult[m] = 0;
            p.shift[m] = 0;
        }
    }
}

// One weight word of the weight image: tile t, chunk k, tap (ky, kx): R rows x L lanes bytes.
// Row s < n8: 8-bit slot s; row n8 + j/2: 4-bit slots j (low nibble) and j+1 (high nibble).
static void load_weights(beat_t *gmem, uint64_t w_addr, int t, int k, int ky, int kx, int K,
                         int kh, int kw, int L, w8_t wbuf[FQ_TM][FQ_TN]) {
    uint64_t base = w_addr + (uint64_t)((((t * K + k) * kh + ky) * kw + kx) * FQ_WROWS) * L;
    for (int m = 0; m < FQ_TM; m++) {
        for (int i = 0; i < FQ_TN; i++) {
#pragma HLS PIPELINE II=1
            w8_t v = 0;
            if (i < L) {
                if (m < FQ_N8) {
                    v = (w8_t)rd8(gmem, base + (uint64_t)m * L + i);
                } else {
                    int j = m - FQ_N8;
                    ap_uint<8> byte = rd8(gmem, base + (uint64_t)(FQ_N8 + j / 2) * L + i);
                    w4_t nib = (j % 2) ? (w4_t)byte.range(7, 4) : (w4_t)byte.range(3, 0);
                    v = nib;
                }
            }
            wbuf[m][i] = v;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output pipeline (one output channel value)
// ---------------------------------------------------------------------------------------------
static int64_t requant(acc_t acc, const Params &p, int m, bool has_res, act_t res, int64_t lo,
                       int64_t hi) {
#pragma HLS INLINE
    y_t prod = acc * p.mult[m];
#pragma HLS BIND_OP variable=prod op=mul impl=dsp
    y_t y = prod + p.offset[m];
    if (has_res) y += res * p.res_mult[m];
    y_t q = y >> p.shift[m].to_uint();
    return clip(q.to_int64(), lo, hi);
}

// ---------------------------------------------------------------------------------------------
// Dense convolution / FC (and depthwise): tiles of tm x (tr x tc), chunks of tn lanes
// ---------------------------------------------------------------------------------------------
static uint64_t run_conv(beat_t *gmem, const Desc &d, bool dw) {
    const int in_c = d.w[FQ_D_IN_C], in_h = d.w[FQ_D_IN_H], in_w = d.w[FQ_D_IN_W];
    const int out_c = d.w[FQ_D_OUT_C], out_h = d.w[FQ_D_OUT_H], out_w = d.w[FQ_D_OUT_W];
    const int kh = d.w[FQ_D_KH], kw = d.w[FQ_D_KW];
    const int sh = d.w[FQ_D_STRIDE_H], sw = d.w[FQ_D_STRIDE_W];
    const int ph = d.w[FQ_D_PAD_H], pw = d.w[FQ_D_PAD_W];
    const int K = d.w[FQ_D_W_CHUNKS], L = d.w[FQ_D_W_LANES];
    const act_t pad_code = d.w[FQ_D_PAD_CODE];
    const int64_t lo = d.w[FQ_D_LO], hi = d.w[FQ_D_HI];
    const bool has_res = d.w[FQ_D_FLAGS] & FQ_FLAG_RESIDUAL;
    const bool logits = d.w[FQ_D_FLAGS] & FQ_FLAG_LOGITS;
    const int mult_ch = dw ? out_c / in_c : 1;  // depthwise channel multiplier
    const Tensor in = {(uint64_t)d.w[FQ_D_IN_ADDR], (uint64_t)d.w[FQ_D_IN_ROW_BYTES],
                       (uint64_t)d.w[FQ_D_IN_PLANE_BYTES]};
    const Tensor res = {(uint64_t)d.w[FQ_D_RES_ADDR], (uint64_t)d.w[FQ_D_RES_ROW_BYTES],
                        (uint64_t)d.w[FQ_D_RES_PLANE_BYTES]};
    const Tensor out = {(uint64_t)d.w[FQ_D_OUT_ADDR], (uint64_t)d.w[FQ_D_OUT_ROW_BYTES],
                        (uint64_t)d.w[FQ_D_OUT_PLANE_BYTES]};
    const uint64_t w_addr = d.w[FQ_D_W_ADDR], p_addr = d.w[FQ_D_P_ADDR];
    const int n_mo = (out_c + FQ_TM - 1) / FQ_TM;
    const int n_sr = (out_h + FQ_TR - 1) / FQ_TR, n_sc = (out_w + FQ_TC - 1) / FQ_TC;
    const int n_s = n_sr * n_sc;
    const bool order_is = d.w[FQ_D_ORDER] == 1;
    uint64_t iters = 0;

    static acc_t acc[FQ_TM][FQ_TR][FQ_TC];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=1
    static w8_t wbuf[FQ_TM][FQ_TN];
#pragma HLS ARRAY_PARTITION variable=wbuf complete dim=0
    static act_t ibuf[FQ_TN][FQ_TR][FQ_TC];
#pragma HLS ARRAY_PARTITION variable=ibuf complete dim=1
    static act_t dbuf[FQ_TM][FQ_TR][FQ_TC];
#pragma HLS ARRAY_PARTITION variable=dbuf complete dim=1
    // static: large on-chip buffers (BRAM/registers in HLS; off the stack in C-simulation)
    static Params prm;
#pragma HLS ARRAY_PARTITION variable=prm.offset complete
#pragma HLS ARRAY_PARTITION variable=prm.mult complete
#pragma HLS ARRAY_PARTITION variable=prm.res_mult complete
#pragma HLS ARRAY_PARTITION variable=prm.shift complete

STEPS:
    for (int step = 0; step < n_mo * n_s; step++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=4096
        const int mo = order_is ? step % n_mo : step / n_s;
        const int s = order_is ? step / n_mo : step % n_s;
        const int r0 = (s / n_sc) * FQ_TR, c0 = (s % n_sc) * FQ_TC;
        const int rows = out_h - r0 < FQ_TR ? out_h - r0 : FQ_TR;
        const int cols = out_w - c0 < FQ_TC ? out_w - c0 : FQ_TC;
        const int m_eff = out_c - mo * FQ_TM < FQ_TM ? out_c - mo * FQ_TM : FQ_TM;
        load_params(gmem, p_addr, mo * FQ_TM, m_eff, prm);
    CLEAR:
        for (int r = 0; r < FQ_TR; r++)
            for (int c = 0; c < FQ_TC; c++) {
#pragma HLS PIPELINE II=1
                for (int m = 0; m < FQ_TM; m++) acc[m][r][c] = 0;
            }
    CHUNKS:
        for (int no = 0; no < K; no++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=512
        TAPS:
            for (int tap = 0; tap < kh * kw; tap++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=49
                const int ky = tap / kw, kx = tap % kw;
                load_weights(gmem, w_addr, mo, no, ky, kx, K, kh, kw, L, wbuf);
                // input slice of this tap (padding generated here)
            LOAD:
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=FQ_TC
                        const int y = (r0 + r) * sh + ky - ph, x = (c0 + c) * sw + kx - pw;
                        const bool inside = y >= 0 && y < in_h && x >= 0 && x < in_w;
                        if (!dw) {
                            for (int i = 0; i < FQ_TN; i++) {
#pragma HLS PIPELINE II=1
                                const int ch = no * FQ_TN + i;
                                ibuf[i][r][c] = ch >= in_c ? (act_t)0
                                                : inside ? act_get(gmem, in, ch, y, x) : pad_code;
                            }
                        } else {
                            for (int m = 0; m < FQ_TM; m++) {
#pragma HLS PIPELINE II=1
                                const int ch = (mo * FQ_TM + m) / mult_ch;
                                dbuf[m][r][c] = m >= m_eff ? (act_t)0
                                                : inside ? act_get(gmem, in, ch, y, x) : pad_code;
                            }
                        }
                    }
            MAC:
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=FQ_TC
#pragma HLS PIPELINE II=1
                        iters++;
                        for (int m = 0; m < FQ_TM; m++) {
#pragma HLS UNROLL
                            acc_t sum = acc[m][r][c];
                            if (dw) {
                                sum += wbuf[m][0] * dbuf[m][r][c];
                            } else if (m < FQ_N8) {  // 8-bit lanes: DSP multipliers
                                for (int i = 0; i < FQ_TN; i++) {
#pragma HLS UNROLL
                                    ap_int<13> p8 = wbuf[m][i] * ibuf[i][r][c];
#pragma HLS BIND_OP variable=p8 op=mul impl=dsp
                                    sum += p8;
                                }
                            } else {  // 4-bit lanes: LUT multipliers (4 x 5 bits)
                                for (int i = 0; i < FQ_TN; i++) {
#pragma HLS UNROLL
                                    ap_int<9> p4 = (w4_t)wbuf[m][i] * ibuf[i][r][c];
#pragma HLS BIND_OP variable=p4 op=mul impl=fabric
                                    sum += p4;
                                }
                            }
                            acc[m][r][c] = sum;
                        }
                    }
            }
        }
        // output pipeline: requantize, fused residual, clamp, pack
    DRAIN:
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                for (int m = 0; m < FQ_TM; m++) {
#pragma HLS PIPELINE II=1
                    if (m >= m_eff) continue;
                    const int ch = mo * FQ_TM + m;
                    act_t rv = has_res ? act_get(gmem, res, ch, r0 + r, c0 + c) : (act_t)0;
                    out_put(gmem, out, logits, ch, r0 + r, c0 + c,
                            requant(acc[m][r][c], prm, m, has_res, rv, lo, hi));
                }
    }
    return iters;
}

// ---------------------------------------------------------------------------------------------
// Max / average / global average pooling: dw datapath without weights
// ---------------------------------------------------------------------------------------------
static uint64_t run_pool(beat_t *gmem, const Desc &d, bool is_max) {
    const int ch_n = d.w[FQ_D_IN_C], in_h = d.w[FQ_D_IN_H], in_w = d.w[FQ_D_IN_W];
    const int out_h = d.w[FQ_D_OUT_H], out_w = d.w[FQ_D_OUT_W];
    const int kh = d.w[FQ_D_KH], kw = d.w[FQ_D_KW];
    const int sh = d.w[FQ_D_STRIDE_H], sw = d.w[FQ_D_STRIDE_W];
    const int ph = d.w[FQ_D_PAD_H], pw = d.w[FQ_D_PAD_W];
    const int64_t pad_code = d.w[FQ_D_PAD_CODE], lo = d.w[FQ_D_LO], hi = d.w[FQ_D_HI];
    const ap_uint<16> mult = d.w[FQ_D_MULT];
    const ap_int<48> offset = d.w[FQ_D_OFFSET];
    const ap_uint<6> shift = d.w[FQ_D_SHIFT];
    const Tensor in = {(uint64_t)d.w[FQ_D_IN_ADDR], (uint64_t)d.w[FQ_D_IN_ROW_BYTES],
                       (uint64_t)d.w[FQ_D_IN_PLANE_BYTES]};
    const Tensor out = {(uint64_t)d.w[FQ_D_OUT_ADDR], (uint64_t)d.w[FQ_D_OUT_ROW_BYTES],
                        (uint64_t)d.w[FQ_D_OUT_PLANE_BYTES]};
    uint64_t iters = 0;
    ap_int<32> acc[FQ_TM];
#pragma HLS ARRAY_PARTITION variable=acc complete
    for (int c0 = 0; c0 < ch_n; c0 += FQ_TM)
        for (int y = 0; y < out_h; y++)
            for (int x = 0; x < out_w; x++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=FQ_TC
                for (int m = 0; m < FQ_TM; m++) acc[m] = is_max ? -1 : 0;
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++) {
#pragma HLS PIPELINE II=1
                        iters++;
                        const int yy = y * sh + ky - ph, xx = x * sw + kx - pw;
                        const bool inside = yy >= 0 && yy < in_h && xx >= 0 && xx < in_w;
                        for (int m = 0; m < FQ_TM; m++) {
#pragma HLS UNROLL
                            if (c0 + m >= ch_n) continue;
                            if (!inside) {  // max: padding never wins; avg: counts pad_code
                                if (!is_max) acc[m] += (int)pad_code;
                                continue;
                            }
                            ap_int<32> v = act_get(gmem, in, c0 + m, yy, xx);
                            if (is_max) acc[m] = v > acc[m] ? v : acc[m];
                            else acc[m] += v;
                        }
                    }
                for (int m = 0; m < FQ_TM; m++) {
#pragma HLS PIPELINE II=1
                    if (c0 + m >= ch_n) continue;
                    int64_t v;
                    if (is_max) {
                        v = acc[m].to_int64();
                    } else {
                        y_t yv = acc[m] * mult + offset;
                        v = clip((yv >> shift.to_uint()).to_int64(), lo, hi);
                    }
                    out_put(gmem, out, false, c0 + m, y, x, v);
                }
            }
    return iters;
}

// Stand-alone residual add: clip((a*mult_a + b*mult_b + offset) >> shift, lo, hi).
static uint64_t run_add(beat_t *gmem, const Desc &d) {
    const int ch_n = d.w[FQ_D_IN_C], h = d.w[FQ_D_IN_H], w = d.w[FQ_D_IN_W];
    const int64_t lo = d.w[FQ_D_LO], hi = d.w[FQ_D_HI];
    const ap_int<32> ma = d.w[FQ_D_MULT], mb = d.w[FQ_D_MULT_B];
    const ap_int<48> offset = d.w[FQ_D_OFFSET];
    const ap_uint<6> shift = d.w[FQ_D_SHIFT];
    const Tensor a = {(uint64_t)d.w[FQ_D_IN_ADDR], (uint64_t)d.w[FQ_D_IN_ROW_BYTES],
                      (uint64_t)d.w[FQ_D_IN_PLANE_BYTES]};
    const Tensor b = {(uint64_t)d.w[FQ_D_RES_ADDR], (uint64_t)d.w[FQ_D_RES_ROW_BYTES],
                      (uint64_t)d.w[FQ_D_RES_PLANE_BYTES]};
    const Tensor out = {(uint64_t)d.w[FQ_D_OUT_ADDR], (uint64_t)d.w[FQ_D_OUT_ROW_BYTES],
                        (uint64_t)d.w[FQ_D_OUT_PLANE_BYTES]};
    uint64_t iters = 0;
    for (int c = 0; c < ch_n; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
#pragma HLS PIPELINE II=1
                iters++;
                act_t va = act_get(gmem, a, c, y, x), vb = act_get(gmem, b, c, y, x);
                y_t yv = (y_t)(va * ma) + (y_t)(vb * mb) + offset;
                out_put(gmem, out, false, c, y, x, clip((yv >> shift.to_uint()).to_int64(), lo, hi));
            }
    return iters;
}

// ---------------------------------------------------------------------------------------------
void filmqnn_top(beat_t *gmem, ap_uint<64> layers, ap_uint<64> *cycles, ap_uint<32> *status) {
#pragma HLS INTERFACE m_axi port=gmem offset=slave bundle=gmem0 depth=FQ_GMEM_DEPTH max_read_burst_length=16 max_write_burst_length=16
#pragma HLS INTERFACE s_axilite port=gmem bundle=control offset=FQ_REG_GMEM
#pragma HLS INTERFACE s_axilite port=layers bundle=control offset=FQ_REG_LAYERS
#pragma HLS INTERFACE s_axilite port=cycles bundle=control offset=FQ_REG_CYCLES
#pragma HLS INTERFACE s_axilite port=status bundle=control offset=FQ_REG_STATUS
#pragma HLS INTERFACE s_axilite port=return bundle=control
    const uint64_t base = layers.to_uint64();
    uint64_t iters = 0;
    *status = FQ_OK;
    *cycles = 0;
    // header: magic, version/sizes, config hash (docs/layer-program.md)
    if (rd64(gmem, base) != FQ_PROG_MAGIC) { *status = FQ_ERR_MAGIC; return; }
    const uint64_t h1 = rd64(gmem, base + 8);
    const int version = h1 & 0xFFFF, hsize = (h1 >> 16) & 0xFFFF, dsize = (h1 >> 32) & 0xFFFF;
    const int n_layers = (h1 >> 48) & 0xFFFF;
    if (version != FQ_PROG_VERSION || hsize != FQ_HEADER_SIZE || dsize != FQ_DESC_WORDS * 8) {
        *status = FQ_ERR_VERSION;
        return;
    }
    if (rd64(gmem, base + 24) != FQ_CONFIG_HASH0 || rd64(gmem, base + 32) != FQ_CONFIG_HASH1) {
        *status = FQ_ERR_CONFIG;
        return;
    }
LAYERS:
    for (int l = 0; l < n_layers; l++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=64
        Desc d;
        const uint64_t da = base + FQ_HEADER_SIZE + (uint64_t)l * FQ_DESC_WORDS * 8;
        for (int i = 0; i < FQ_DESC_WORDS; i++) d.w[i] = (int64_t)rd64(gmem, da + 8 * i);
        const int op = d.w[FQ_D_OP];
        if ((op == FQ_OP_CONV || op == FQ_OP_LINEAR) && d.w[FQ_D_W_LANES] != FQ_TN) {
            *status = FQ_ERR_SHAPE | (l << 8);
            return;
        }
        if (op == FQ_OP_CONV || op == FQ_OP_LINEAR) iters += run_conv(gmem, d, false);
        else if (op == FQ_OP_DEPTHWISE) iters += run_conv(gmem, d, true);
        else if (op == FQ_OP_MAXPOOL) iters += run_pool(gmem, d, true);
        else if (op == FQ_OP_AVGPOOL || op == FQ_OP_GAP) iters += run_pool(gmem, d, false);
        else if (op == FQ_OP_ADD) iters += run_add(gmem, d);
        else { *status = FQ_ERR_OP | (l << 8); return; }
        if (d.w[FQ_D_FLAGS] & FQ_FLAG_LAST) break;
    }
    *cycles = iters;
}
