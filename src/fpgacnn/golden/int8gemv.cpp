// Exact int8 x int8 -> int32 products of a few rows by a packed weight matrix: see int8tile.h.
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <vector>

#include "int8tile.h"
#include "requant.h"

using int8tile::TILE_OUTPUTS;

extern "C" {

int int8gemv_tile_outputs(void) { return TILE_OUTPUTS; }

int int8_kernels_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}

struct Gemv {
    const uint8_t *xu;                   // rows x k4: x + 128 (u8), then 128 up to k4
    int64_t rows;
    const int8_t *packed;                // pack's layout, K rounded up to k4 (a multiple of 4)
    const int32_t *corrections;
    int64_t k4;
    int32_t *out;                        // rows out_stride apart; points at output 0
    int64_t out_stride;
};

struct RequantizedGemv {
    Gemv gemv;                           // corrections and out unused
    requant::Requant requant;
    int8_t *codes;                       // rows codes_stride apart
    int64_t codes_stride, outputs;
};

}  // extern "C"

namespace {

// at_tile(t, sums) for the tiles first_tile .. last_tile - 1, sums (rows x TILE_OUTPUTS) the
// products of the tile plus `corrections` (of the tile; null: none).
template <typename AtTile>
void tiles(const Gemv &g, int64_t first_tile, int64_t last_tile, const int32_t *corrections,
           AtTile at_tile) {
    int64_t rows = g.rows, k4 = g.k4;
    if (rows <= 0) return;
    std::vector<int32_t> sums(rows * TILE_OUTPUTS), zeros(TILE_OUTPUTS);
    for (int64_t t = first_tile; t < last_tile; t++) {
        int8tile::tile(g.xu, rows, k4, g.packed + t * k4 * TILE_OUTPUTS,
                       corrections ? corrections + t * TILE_OUTPUTS : zeros.data(), sums.data());
        at_tile(t, sums.data());
    }
}

}  // namespace

extern "C" {

// out[r * out_stride + o] = sum_k x[r * x_stride + k] * w[o][k] for r < rows and the outputs
// o of tiles first_tile .. last_tile - 1.
void int8gemv(const Gemv *g, int64_t first_tile, int64_t last_tile) {
    tiles(*g, first_tile, last_tile, g->corrections, [g](int64_t t, const int32_t *sums) {
        for (int64_t r = 0; r < g->rows; r++)
            memcpy(g->out + r * g->out_stride + t * TILE_OUTPUTS, sums + r * TILE_OUTPUTS,
                   TILE_OUTPUTS * sizeof(int32_t));
    });
}

// The same products, requantized (requant.h) into codes, for the outputs below p->outputs.
void int8gemv_requantized(const RequantizedGemv *p, int64_t first_tile, int64_t last_tile) {
    tiles(p->gemv, first_tile, last_tile, nullptr, [p](int64_t t, const int32_t *sums) {
        int64_t first = t * TILE_OUTPUTS;
        requant::requantize(p->requant, first, std::min<int64_t>(TILE_OUTPUTS, p->outputs - first),
                            sums, p->gemv.rows, p->codes, p->codes_stride);
    });
}

}  // extern "C"
