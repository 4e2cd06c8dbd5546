// Max pool of int8 NHWC tensors, 64 channels at a time with AVX-512 BW where the CPU has it,
// else 16 at a time (SSE2) and the channels left over one by one.
#include <stdint.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

// Strides count elements; channels have stride 1. Windows are clamped to the input, which
// is what padding holding the lowest value means as long as each window holds an element.
struct MaxPoolArgs {
    const int8_t *x;
    int8_t *y;
    int64_t h, w, channels;                 // input
    int64_t out_h, out_w;
    int64_t kernel_h, kernel_w, stride_h, stride_w, top, left;
    int64_t x_image, x_row, x_column;
    int64_t y_image, y_row, y_column;
};

// The input positions of one window along one axis, clamped: [first, last).
struct Span {
    int64_t first, last;
};

inline Span window(int64_t out, int64_t stride, int64_t before, int64_t kernel, int64_t size) {
    int64_t start = out * stride - before;
    return {start < 0 ? 0 : start, start + kernel < size ? start + kernel : size};
}

// One window's input positions: its first element and how to step to the others.
struct Taps {
    const int8_t *first;
    int64_t rows, columns, row_step, column_step;
};

// Output rows [first, last) (over every image): position_max(taps, y) for each output.
template <typename PositionMax>
inline void pool_rows(const MaxPoolArgs &a, int64_t first, int64_t last,
                      PositionMax position_max) {
    for (int64_t r = first; r < last; r++) {
        int64_t image = r / a.out_h, oy = r % a.out_h;
        Span rows = window(oy, a.stride_h, a.top, a.kernel_h, a.h);
        const int8_t *x = a.x + image * a.x_image + rows.first * a.x_row;
        int8_t *y = a.y + image * a.y_image + oy * a.y_row;
        for (int64_t ox = 0; ox < a.out_w; ox++) {
            Span columns = window(ox, a.stride_w, a.left, a.kernel_w, a.w);
            Taps taps = {x + columns.first * a.x_column, rows.last - rows.first,
                         columns.last - columns.first, a.x_row, a.x_column};
            position_max(taps, y + ox * a.y_column, a.channels);
        }
    }
}

void plain_max(const Taps &t, int8_t *y, int64_t first, int64_t last) {
    for (int64_t k = first; k < last; k++) {
        int8_t best = -128;
        for (int64_t i = 0; i < t.rows; i++)
            for (int64_t j = 0; j < t.columns; j++) {
                int8_t v = t.first[i * t.row_step + j * t.column_step + k];
                best = v > best ? v : best;
            }
        y[k] = best;
    }
}

typedef int8_t Bytes16 __attribute__((vector_size(16), aligned(1)));

void portable_max(const Taps &t, int8_t *y, int64_t channels) {
    int64_t k = 0;
    for (; k + 16 <= channels; k += 16) {
        Bytes16 best = Bytes16{} + (int8_t)-128;
        for (int64_t i = 0; i < t.rows; i++)
            for (int64_t j = 0; j < t.columns; j++) {
                Bytes16 v = *(const Bytes16 *)(t.first + i * t.row_step + j * t.column_step + k);
                best = v > best ? v : best;
            }
        *(Bytes16 *)(y + k) = best;
    }
    plain_max(t, y, k, channels);
}

void portable_rows(const MaxPoolArgs &a, int64_t first, int64_t last) {
    pool_rows(a, first, last, portable_max);
}

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw")

inline __m512i window_max(const Taps &t, const int8_t *at, __mmask64 lanes) {
    __m512i best = _mm512_set1_epi8(-128);
    for (int64_t i = 0; i < t.rows; i++, at += t.row_step)
        for (int64_t j = 0; j < t.columns; j++)
            best = _mm512_max_epi8(best, _mm512_maskz_loadu_epi8(lanes, at + j * t.column_step));
    return best;
}

void avx512_max(const Taps &t, int8_t *y, int64_t channels) {
    int64_t k = 0;
    for (; k + 64 <= channels; k += 64)
        _mm512_storeu_si512(y + k, window_max(t, t.first + k, ~0ULL));
    if (k < channels) {
        __mmask64 lanes = (1ULL << (channels - k)) - 1;
        _mm512_mask_storeu_epi8(y + k, lanes, window_max(t, t.first + k, lanes));
    }
}

void avx512_rows(const MaxPoolArgs &a, int64_t first, int64_t last) {
    pool_rows(a, first, last, avx512_max);
}

#pragma GCC pop_options

bool has_avx512bw() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}
#else
const auto avx512_rows = portable_rows;
bool has_avx512bw() { return false; }
#endif

}  // namespace

extern "C" {

// Output rows [first, last) of a max pool, counted over every image (row r: image r / out_h,
// row r % out_h).
void max_pool_rows(const MaxPoolArgs *args, int64_t first, int64_t last) {
    static const bool avx512 = has_avx512bw();
    (avx512 ? avx512_rows : portable_rows)(*args, first, last);
}

// The same on the path of CPUs without AVX-512.
void max_pool_rows_portable(const MaxPoolArgs *args, int64_t first, int64_t last) {
    portable_rows(*args, first, last);
}

}  // extern "C"
