// An ungrouped 8-bit convolution (or a linear layer, as a 1x1 one) with its requantization, in
// one pass (AVX-512 VNNI, or AMX where the CPU and the kernel allow it).
//
// Output positions are taken in blocks of BLOCK_ROWS: the block's im2col rows (kh, kw, C order,
// moved to u8 as int8tile.h wants, K padded to k_padded) are built in a per-thread buffer,
// multiplied by each 64-output tile of the packed weights (gemv's layout, whose rows of 4
// inputs x 16 outputs are also AMX's B tiles) and requantized at once, while in cache
// (requant.h).
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "int8tile.h"
#include "requant.h"

using int8tile::LANES;
using int8tile::TILE_OUTPUTS;

namespace {

constexpr int64_t BLOCK_ROWS = 64;              // a multiple of AMX_ROWS
constexpr int64_t AMX_ROWS = 32;                // two A tiles of 16 rows
constexpr int64_t AMX_K = 64;                   // inputs per A tile row
constexpr long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;

struct Conv {
    const int8_t *x;                     // stored input codes, (N, H, W, C), channels unit stride
    int64_t n, h, w, c, stride_n, stride_h, stride_w;
    int64_t kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow;
    int64_t pad_value;                   // stored code of the padding
    const int8_t *packed;                // gemv.pack's layout, K padded to k_padded
    int64_t k_padded, tiles, use_amx;    // k_padded: a multiple of AMX_K for AMX, else of 4
    requant::Requant requant;
    int8_t *out;                         // (N * OH * OW, outputs)
    int64_t outputs;
};

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

// dst[i] = src[i] + 128 as u8, for i < count.
VNNI void to_u8(uint8_t *dst, const int8_t *src, int64_t count) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    int64_t i = 0;
    for (; i + 64 <= count; i += 64)
        _mm512_storeu_si512(dst + i, _mm512_xor_si512(_mm512_loadu_si512(src + i), flip));
    __mmask64 rest = (1ULL << (count - i)) - 1;            // count - i < 64
    _mm512_mask_storeu_epi8(dst + i, rest,
                            _mm512_xor_si512(_mm512_maskz_loadu_epi8(rest, src + i), flip));
}

// The im2col row of output position m, as u8.
VNNI void im2col_row(const Conv &p, int64_t m, uint8_t *row) {
    int64_t ox = m % p.ow, oy = m / p.ow % p.oh, image = m / (p.ow * p.oh);
    const int8_t *base = p.x + image * p.stride_n;
    uint8_t pad = (uint8_t)(p.pad_value + 128);
    int64_t y0 = oy * p.sh - p.pad_top, x0 = ox * p.sw - p.pad_left;
    bool inside_x = x0 >= 0 && x0 + (p.kw - 1) * p.dw < p.w;
    for (int64_t i = 0; i < p.kh; i++, row += p.kw * p.c) {
        int64_t y = y0 + i * p.dh;
        if (y < 0 || y >= p.h) {
            memset(row, pad, p.kw * p.c);
        } else if (inside_x && p.dw == 1 && p.stride_w == p.c) {
            to_u8(row, base + y * p.stride_h + x0 * p.stride_w, p.kw * p.c);
        } else {
            for (int64_t j = 0; j < p.kw; j++) {
                int64_t x = x0 + j * p.dw;
                if (x < 0 || x >= p.w) memset(row + j * p.c, pad, p.c);
                else to_u8(row + j * p.c, base + y * p.stride_h + x * p.stride_w, p.c);
            }
        }
    }
}

struct TileConfig {
    uint8_t palette, start_row, reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
};

#define AMX __attribute__((target("amx-tile,amx-int8")))

// Whether this process may use AMX's tile registers (Linux asks each process to request them).
bool amx_usable() {
    static const bool usable = [] {
        unsigned eax, ebx, ecx, edx;
        __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(0));
        bool tile = (edx >> 24) & 1, int8 = (edx >> 25) & 1;
        return tile && int8 &&
               syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    }();
    return usable;
}

// Tiles 0-3: int32 sums (16 x 16); 4-5: 16 im2col rows x 64 inputs; 6-7: 16 quads x 16 outputs.
// (In memory: g++ 12 drops the stores to a local config, not knowing ldtilecfg reads them.)
constexpr TileConfig TILES = {1, 0, {}, {64, 64, 64, 64, 64, 64, 64, 64},
                              {16, 16, 16, 16, 16, 16, 16, 16}};

AMX void amx_configure() { _tile_loadconfig(&TILES); }

// sums (BLOCK_ROWS x TILE_OUTPUTS) = rows (count, padded to AMX_ROWS) times one weight tile.
AMX void amx_tile(const uint8_t *rows, int64_t count, int64_t k_padded, const int8_t *weights,
                  int32_t *sums) {
    constexpr int64_t QUAD_ROW = 4 * TILE_OUTPUTS, SUM_ROW = 4 * TILE_OUTPUTS;
    for (int64_t r = 0; r < count; r += AMX_ROWS) {
        const uint8_t *a = rows + r * k_padded;
        int32_t *c = sums + r * TILE_OUTPUTS;
        for (int64_t j = 0; j < TILE_OUTPUTS; j += 2 * LANES) {
            _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
            for (int64_t k = 0; k < k_padded; k += AMX_K) {
                const int8_t *b = weights + k / 4 * QUAD_ROW + j * 4;
                _tile_loadd(4, a + k, k_padded);
                _tile_loadd(5, a + 16 * k_padded + k, k_padded);
                _tile_loadd(6, b, QUAD_ROW);
                _tile_loadd(7, b + LANES * 4, QUAD_ROW);
                _tile_dpbusd(0, 4, 6); _tile_dpbusd(1, 4, 7);
                _tile_dpbusd(2, 5, 6); _tile_dpbusd(3, 5, 7);
            }
            _tile_stored(0, c + j, SUM_ROW);
            _tile_stored(1, c + j + LANES, SUM_ROW);
            _tile_stored(2, c + 16 * TILE_OUTPUTS + j, SUM_ROW);
            _tile_stored(3, c + 16 * TILE_OUTPUTS + j + LANES, SUM_ROW);
        }
    }
}

AMX void amx_release() { _tile_release(); }

// Output positions first .. last - 1 (over N * OH * OW) and the outputs of the weight tiles
// first_tile .. last_tile - 1 of the convolution `p`.
void convolve(const Conv &p, int64_t first, int64_t last, int64_t first_tile,
              int64_t last_tile) {
    int64_t k = p.kh * p.kw * p.c, kp = p.k_padded;
    bool amx = p.use_amx && amx_usable();
    thread_local std::vector<uint8_t> rows;
    thread_local std::vector<int32_t> sums, zeros;
    rows.resize(BLOCK_ROWS * kp);
    sums.resize(BLOCK_ROWS * TILE_OUTPUTS);
    zeros.resize(TILE_OUTPUTS);
    if (amx) amx_configure();
    for (int64_t m0 = first; m0 < last; m0 += BLOCK_ROWS) {
        int64_t count = last - m0 < BLOCK_ROWS ? last - m0 : BLOCK_ROWS;
        for (int64_t r = 0; r < count; r++) {
            im2col_row(p, m0 + r, rows.data() + r * kp);
            memset(rows.data() + r * kp + k, 128, kp - k);     // meets zero weights
        }
        for (int64_t t = first_tile; t < last_tile; t++) {
            const int8_t *weights = p.packed + t * kp * TILE_OUTPUTS;
            if (amx) amx_tile(rows.data(), count, kp, weights, sums.data());
            else int8tile::tile(rows.data(), count, kp, weights, zeros.data(), sums.data());
            int64_t first_output = t * TILE_OUTPUTS;
            int64_t width = std::min<int64_t>(TILE_OUTPUTS, p.outputs - first_output);
            requant::requantize(p.requant, first_output, width, sums.data(), count,
                                p.out + m0 * p.outputs, p.outputs);
        }
    }
    if (amx) amx_release();
}

}  // namespace

extern "C" {

// Output positions first .. last - 1 (over N * OH * OW) of the convolution `p`.
void int8conv(const Conv *p, int64_t first, int64_t last) {
    convolve(*p, first, last, 0, p->tiles);
}

// Every output position, for the outputs of the weight tiles first_tile .. last_tile - 1 (a
// few positions, many weights: a linear layer as a 1x1 convolution).
void int8conv_tiles(const Conv *p, int64_t first_tile, int64_t last_tile) {
    convolve(*p, 0, p->n * p->oh * p->ow, first_tile, last_tile);
}

// Whether int8conv can use AMX here (else it runs on VNNI).
int int8conv_amx_usable(void) { return amx_usable(); }

}  // extern "C"
