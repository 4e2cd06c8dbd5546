// The float32 requantization of int32 sums into stored int8 codes, shared by int8conv.cpp and
// int8gemv.cpp: the operations of fpgacnn/golden/epilogue.py, in the same order, so the same
// bits. s = sum + correction (int32, wrapping: the final value fits int32, so it is exact);
// v = float32(s) * multiplier; v + magic rounds it half to even and the clamp bounds it; the low
// byte of the result's bits is the stored code, or the result indexes a table of codes (a
// scalar activation).
#pragma once
#include <immintrin.h>
#include <stdint.h>

#include "int8tile.h"

namespace requant {

using int8tile::LANES;
using int8tile::TILE_OUTPUTS;

struct Requant {
    const int32_t *corrections;          // per output (whole tiles): -128 * sum(w) + epilogue's
    const float *multipliers;            // per output (whole tiles), or null: no multiplication
    float magic, low, high;              // high and low already include magic
    const int8_t *table;                 // or null; indexed by bits - table_base
    int64_t table_base, late_shift;
};

// out[r * out_stride + o] for the outputs first .. first + width - 1 (width <= TILE_OUTPUTS)
// of rows r < rows = the codes of sums[r * TILE_OUTPUTS + o - first].
__attribute__((target("avx512f,avx512bw"))) inline void requantize(
        const Requant &q, int64_t first, int64_t width, const int32_t *sums, int64_t rows,
        int8_t *out, int64_t out_stride) {
    const __m512 magic = _mm512_set1_ps(q.magic), low = _mm512_set1_ps(q.low),
                 high = _mm512_set1_ps(q.high);
    const __m512i late = _mm512_set1_epi32((int32_t)q.late_shift);
    for (int64_t r = 0; r < rows; r++) {
        int8_t *dst = out + r * out_stride + first;
        for (int64_t v = 0; v * LANES < width; v++) {
            int64_t o = first + v * LANES;
            __m512i sum = _mm512_add_epi32(_mm512_loadu_si512(sums + r * TILE_OUTPUTS + v * LANES),
                                           _mm512_loadu_si512(q.corrections + o));
            __m512 f = _mm512_cvtepi32_ps(sum);
            if (q.multipliers) f = _mm512_mul_ps(f, _mm512_loadu_ps(q.multipliers + o));
            f = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(f, magic), low), high);
            __m512i bits = _mm512_castps_si512(f);
            int64_t lanes = width - v * LANES < LANES ? width - v * LANES : LANES;
            if (q.table) {
                alignas(64) int32_t index[LANES];
                __m512i base = _mm512_set1_epi32((int32_t)q.table_base);
                _mm512_store_si512(index, _mm512_sub_epi32(bits, base));
                for (int64_t i = 0; i < lanes; i++) dst[v * LANES + i] = q.table[index[i]];
            } else {
                __m512i codes = _mm512_add_epi32(bits, late);      // low byte: the code
                _mm512_mask_cvtepi32_storeu_epi8(dst + v * LANES, (__mmask16)((1u << lanes) - 1),
                                                 codes);
            }
        }
    }
}

}  // namespace requant
