// The requantization of int32 sums into stored int8 codes, shared by int8conv.cpp and
// int8gemv.cpp. s = sum + correction (int32, wrapping: the final value fits int32, so it is
// exact). In float32 mode, the operations of fpgacnn/golden/epilogue.py in the same order, so
// the same bits: v = float32(s) * multiplier; v + magic rounds it half to even and the clamp
// bounds it; the low byte of the result's bits is the stored code, or the result indexes a
// table of codes (a scalar activation). In the integer modes, y = the mode's function of
// fpgacnn/golden/requant.py (gemmlowp, single_round, shift with its rounding) in int64 lanes,
// exact where the caller checked the products fit; y clamped to [int_low, int_high] indexes
// the table, or y + code_shift is the code.
#pragma once
#include <immintrin.h>
#include <stdint.h>

#include <algorithm>

#include "int8tile.h"

namespace requant {

using int8tile::LANES;
using int8tile::TILE_OUTPUTS;

enum Mode { FLOAT32 = 0, GEMMLOWP = 1, SINGLE_ROUND = 2, SHIFT = 3 };
enum Rounding { HALF_UP = 0, HALF_EVEN = 1, TRUNCATE = 2 };

struct Requant {
    const int32_t *corrections;          // per output (whole tiles): -128 * sum(w) + epilogue's
    const float *multipliers;            // per output (whole tiles), or null: no multiplication
    float magic, low, high;              // high and low already include magic
    const int8_t *table;                 // or null; indexed by bits - table_base (float32 mode)
    int64_t table_base, late_shift;      // or by y - int_low (integer modes)
    int64_t mode, rounding;              // Mode; Rounding of the shift mode
    const int64_t *m, *left, *right;     // per output (whole tiles): multiplier and shifts
    int64_t int_low, int_high, code_shift;
};

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq")))

AVX512 inline __m512i ones_where(__mmask8 mask) {
    return _mm512_maskz_mov_epi64(mask, _mm512_set1_epi64(1));
}

// gemmlowp: SaturatingRoundingDoublingHighMul(saturate(s << left), m), RoundingDivideByPOT.
AVX512 inline __m512i gemmlowp(__m512i s, __m512i m, __m512i left, __m512i right) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i x = _mm512_sllv_epi64(s, left);
    x = _mm512_min_epi64(_mm512_max_epi64(x, _mm512_set1_epi64(INT32_MIN)),
                         _mm512_set1_epi64(INT32_MAX));
    __m512i ab = _mm512_mul_epi32(x, m);
    __m512i nudge = _mm512_mask_blend_epi64(_mm512_cmplt_epi64_mask(ab, zero),
                                            _mm512_set1_epi64(1 << 30),
                                            _mm512_set1_epi64(1 - (1 << 30)));
    __m512i total = _mm512_add_epi64(ab, nudge);
    __m512i quotient = _mm512_mask_sub_epi64(              // C division truncates toward 0
        _mm512_srai_epi64(total, 31), _mm512_cmplt_epi64_mask(total, zero), zero,
        _mm512_srai_epi64(_mm512_sub_epi64(zero, total), 31));
    __mmask8 overflow = _mm512_cmpeq_epi64_mask(x, _mm512_set1_epi64(INT32_MIN)) &
                        _mm512_cmpeq_epi64_mask(m, _mm512_set1_epi64(INT32_MIN));
    quotient = _mm512_mask_mov_epi64(quotient, overflow, _mm512_set1_epi64(INT32_MAX));
    __m512i mask = _mm512_sub_epi64(_mm512_sllv_epi64(_mm512_set1_epi64(1), right),
                                    _mm512_set1_epi64(1));
    __m512i remainder = _mm512_and_si512(quotient, mask);
    __m512i threshold = _mm512_add_epi64(_mm512_srai_epi64(mask, 1),
                                         ones_where(_mm512_cmplt_epi64_mask(quotient, zero)));
    return _mm512_add_epi64(_mm512_srav_epi64(quotient, right),
                            ones_where(_mm512_cmpgt_epi64_mask(remainder, threshold)));
}

// x / 2**right rounded as shift_round does (right >= 0).
AVX512 inline __m512i shift_round(__m512i x, __m512i right, int64_t rounding) {
    __m512i floor = _mm512_srav_epi64(x, right);
    if (rounding == TRUNCATE) return floor;
    __mmask8 shifted = _mm512_cmpgt_epi64_mask(right, _mm512_setzero_si512());
    __m512i half = _mm512_maskz_sllv_epi64(
        shifted, _mm512_set1_epi64(1), _mm512_sub_epi64(right, _mm512_set1_epi64(1)));
    if (rounding == HALF_UP) return _mm512_srav_epi64(_mm512_add_epi64(x, half), right);
    __m512i remainder = _mm512_sub_epi64(x, _mm512_sllv_epi64(floor, right));
    __mmask8 odd = _mm512_test_epi64_mask(floor, _mm512_set1_epi64(1));
    __mmask8 up = _mm512_cmpgt_epi64_mask(remainder, half) |
                  (_mm512_cmpeq_epi64_mask(remainder, half) & shifted & odd);
    return _mm512_add_epi64(floor, ones_where(up));
}

// y of 8 outputs o .. o + 7 in the integer mode of q, from their sums s (int64 lanes).
AVX512 inline __m512i integer_requantize(const Requant &q, __m512i s, int64_t o) {
    __m512i m = _mm512_loadu_si512(q.m + o), left = _mm512_loadu_si512(q.left + o),
            right = _mm512_loadu_si512(q.right + o);
    if (q.mode == GEMMLOWP) return gemmlowp(s, m, left, right);
    if (q.mode == SINGLE_ROUND) return shift_round(_mm512_mul_epi32(s, m), right, HALF_UP);
    return shift_round(_mm512_sllv_epi64(_mm512_mullo_epi64(s, m), left), right, q.rounding);
}

// The codes of `lanes` (<= 8) outputs o .. from their sums s, into dst.
AVX512 inline void integer_codes(const Requant &q, __m256i sums, int64_t o, int64_t lanes,
                                 int8_t *dst) {
    __m512i y = integer_requantize(q, _mm512_cvtepi32_epi64(sums), o);
    y = _mm512_min_epi64(_mm512_max_epi64(y, _mm512_set1_epi64(q.int_low)),
                         _mm512_set1_epi64(q.int_high));
    if (q.table) {
        alignas(64) int64_t index[8];
        _mm512_store_si512(index, _mm512_sub_epi64(y, _mm512_set1_epi64(q.int_low)));
        for (int64_t i = 0; i < lanes; i++) dst[i] = q.table[index[i]];
    } else {
        _mm512_mask_cvtepi64_storeu_epi8(dst, (__mmask8)((1u << lanes) - 1),
                                         _mm512_add_epi64(y, _mm512_set1_epi64(q.code_shift)));
    }
}

// out[r * out_stride + o] for the outputs first .. first + width - 1 (width <= TILE_OUTPUTS)
// of rows r < rows = the codes of sums[r * TILE_OUTPUTS + o - first].
AVX512 inline void requantize(
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
            int64_t lanes = width - v * LANES < LANES ? width - v * LANES : LANES;
            if (q.mode != FLOAT32) {
                integer_codes(q, _mm512_castsi512_si256(sum), o, std::min<int64_t>(lanes, 8),
                              dst + v * LANES);
                if (lanes > 8)
                    integer_codes(q, _mm512_extracti64x4_epi64(sum, 1), o + 8, lanes - 8,
                                  dst + v * LANES + 8);
                continue;
            }
            __m512 f = _mm512_cvtepi32_ps(sum);
            if (q.multipliers) f = _mm512_mul_ps(f, _mm512_loadu_ps(q.multipliers + o));
            f = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(f, magic), low), high);
            __m512i bits = _mm512_castps_si512(f);
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
