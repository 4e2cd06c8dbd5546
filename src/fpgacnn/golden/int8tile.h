// Exact int8 x int8 -> int32 products of rows by a packed weight matrix (AVX-512 VNNI): the
// tile kernel that int8gemv.cpp and int8conv.cpp share.
//
// vpdpbusd multiplies unsigned by signed bytes, so each row is moved to u8 (x + 128) and every
// output gets the correction -128 * sum(w) (`corrections`). The int32 adds wrap, and the exact
// result fits int32 (the caller keeps K below 2**31 / 128**2), so the wrapped sum is exact.
//
// Packed weights: tiles of TILE_OUTPUTS output channels; a tile holds, for each group of 4
// inputs k, the 4 weights of each of its outputs: [tile][k / 4][output in tile][k % 4].
#pragma once
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
namespace int8tile {

constexpr int LANES = 16;                       // int32 sums per vector
constexpr int VECTORS = 4;                      // vectors per tile
constexpr int TILE_OUTPUTS = LANES * VECTORS;
constexpr int MAX_ROWS = 6;                     // rows per pass: 24 sums + 4 weights in registers
constexpr int PREFETCH_BYTES = 16384;           // into L2, this far ahead: 10% faster than the
                                                // hardware's own prefetch alone, weights in DRAM
constexpr int64_t BLOCK_QUADS = 128;            // 512 inputs: 32 KB of a tile, stays in L1

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define UNROLLED _Pragma("GCC unroll 8")

// sum += the four u8 x s8 products of each int32 lane. As inline asm: g++ 12 copies the
// accumulator around the intrinsic, which spills when 24 of them are live.
VNNI inline void dot_add(__m512i &sum, __m512i x, __m512i w) {
    asm("vpdpbusd %2, %1, %0" : "+v"(sum) : "v"(x), "v"(w));
}

// sums (ROWS x TILE_OUTPUTS, in memory) += rows xu times the tile's inputs 4 * q0 .. 4 * q1 - 1.
template <int ROWS>
VNNI void tile_rows(const uint8_t *xu, int64_t k4, const int8_t *tile, int64_t q0, int64_t q1,
                    int32_t *sums_io) {
    __m512i sums[ROWS][VECTORS];                // unrolled: kept in registers
    UNROLLED for (int r = 0; r < ROWS; r++)
        UNROLLED for (int v = 0; v < VECTORS; v++)
            sums[r][v] = _mm512_loadu_si512(sums_io + r * TILE_OUTPUTS + v * LANES);
    for (int64_t q = q0; q < q1; q++) {
        const int8_t *w = tile + q * 4 * TILE_OUTPUTS;
        __m512i weights[VECTORS];
        UNROLLED for (int v = 0; v < VECTORS; v++) {
            _mm_prefetch((const char *)(w + PREFETCH_BYTES + v * 64), _MM_HINT_T1);
            weights[v] = _mm512_load_si512(w + v * 64);
        }
        UNROLLED for (int r = 0; r < ROWS; r++) {
            int32_t four;
            memcpy(&four, xu + r * k4 + q * 4, 4);
            __m512i x = _mm512_set1_epi32(four);
            UNROLLED for (int v = 0; v < VECTORS; v++)
                dot_add(sums[r][v], x, weights[v]);
        }
    }
    UNROLLED for (int r = 0; r < ROWS; r++)
        UNROLLED for (int v = 0; v < VECTORS; v++)
            _mm512_storeu_si512(sums_io + r * TILE_OUTPUTS + v * LANES, sums[r][v]);
}

using TileRows = void (*)(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t,
                          int32_t *);
const TileRows BY_ROWS[MAX_ROWS + 1] = {nullptr,         tile_rows<1>, tile_rows<2>,
                                        tile_rows<3>,    tile_rows<4>, tile_rows<5>,
                                        tile_rows<6>};

// All rows times one tile: the sums start at the corrections; with more rows than one pass
// takes, the passes go block by block of inputs, so that all but the first read it from L1.
inline void tile(const uint8_t *xu, int64_t rows, int64_t k4, const int8_t *weights,
          const int32_t *corrections, int32_t *sums) {
    for (int64_t r = 0; r < rows; r++)
        memcpy(sums + r * TILE_OUTPUTS, corrections, TILE_OUTPUTS * sizeof(int32_t));
    int64_t passes = (rows + MAX_ROWS - 1) / MAX_ROWS;
    int64_t pass = (rows + passes - 1) / passes;    // even passes: more sums in flight
    int64_t quads = k4 / 4;
    int64_t block = passes == 1 ? quads : BLOCK_QUADS;
    for (int64_t q0 = 0; q0 < quads; q0 += block) {
        int64_t q1 = q0 + block < quads ? q0 + block : quads;
        for (int64_t r0 = 0; r0 < rows; r0 += pass) {
            int64_t n = rows - r0 < pass ? rows - r0 : pass;
            BY_ROWS[n](xu + r0 * k4, k4, weights, q0, q1, sums + r0 * TILE_OUTPUTS);
        }
    }
}

}  // namespace int8tile
