// C-simulation testbench: load a DDR image, run filmqnn_top once, write the DDR image back.
//
//   tb_filmqnn IN.bin OUT.bin LAYERS_ADDR
//
// IN.bin holds DDR bytes from address 0 (program, weights, parameters, input; written by
// filmqnn_hw.spec.program.LayerProgram.memory_image). The kernel's output regions are in OUT.bin.
// Prints "cycles=<n> status=<s>"; exit status 0 only if the kernel reported FQ_OK.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "filmqnn_top.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s IN.bin OUT.bin LAYERS_ADDR\n", argv[0]);
        return 2;
    }
    std::FILE *f = std::fopen(argv[1], "rb");
    if (!f) {
        std::fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    std::vector<unsigned char> bytes;
    unsigned char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
    std::fclose(f);
    const size_t nb = (bytes.size() + FQ_BEAT_BYTES - 1) / FQ_BEAT_BYTES;
    bytes.resize(nb * FQ_BEAT_BYTES, 0);
    std::vector<beat_t> mem(nb);
    for (size_t i = 0; i < nb; i++)
        for (int j = 0; j < FQ_BEAT_BYTES; j++)
            mem[i].range(8 * j + 7, 8 * j) = bytes[i * FQ_BEAT_BYTES + j];
    ap_uint<64> cycles = 0;
    ap_uint<32> status = 0;
    filmqnn_top(mem.data(), ap_uint<64>(std::strtoull(argv[3], nullptr, 0)), &cycles, &status);
    for (size_t i = 0; i < nb; i++)
        for (int j = 0; j < FQ_BEAT_BYTES; j++)
            bytes[i * FQ_BEAT_BYTES + j] = mem[i].range(8 * j + 7, 8 * j).to_uint();
    std::FILE *o = std::fopen(argv[2], "wb");
    if (!o || std::fwrite(bytes.data(), 1, bytes.size(), o) != bytes.size()) {
        std::fprintf(stderr, "cannot write %s\n", argv[2]);
        return 2;
    }
    std::fclose(o);
    std::printf("cycles=%llu status=%u\n", (unsigned long long)cycles.to_uint64(),
                status.to_uint());
    return status == 0 ? 0 : 1;
}
