// Exact int8 x int8 -> int32 products of a few rows by a packed weight matrix (AVX-512 VNNI).
//
// vpdpbusd multiplies unsigned by signed bytes, so each row is moved to u8 (x + 128) and every
// output gets the correction -128 * sum(w) (`corrections`). The int32 adds wrap, and the exact
// result fits int32 (the caller keeps K below 2**31 / 128**2), so the wrapped sum is exact.
//
// Packed weights: tiles of TILE_OUTPUTS output channels; a tile holds, for each group of 4
// inputs k, the 4 weights of each of its outputs: [tile][k / 4][output in tile][k % 4].
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sched.h>
#include <sys/resource.h>

#include <chrono>
#include <vector>

namespace {

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
void tile(const uint8_t *xu, int64_t rows, int64_t k4, const int8_t *weights,
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

long involuntary_switches() {
    struct rusage usage;
    getrusage(RUSAGE_THREAD, &usage);
    return usage.ru_nivcsw;
}

}  // namespace

extern "C" {

int int8gemv_tile_outputs(void) { return TILE_OUTPUTS; }

int int8gemv_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

// out[r * out_stride + o] = sum_k x[r * x_stride + k] * w[o][k] for r < rows and the outputs
// o of tiles first_tile .. last_tile - 1 (out points at output 0; k4 = K rounded up to 4).
void int8gemv(const int8_t *x, int64_t rows, int64_t x_stride, int64_t k, const int8_t *packed,
              const int32_t *corrections, int64_t k4, int64_t first_tile, int64_t last_tile,
              int32_t *out, int64_t out_stride) {
    if (rows <= 0) return;
    std::vector<uint8_t> xu(rows * k4, 128);    // padding meets zero weights
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < k; i++) xu[r * k4 + i] = (uint8_t)(x[r * x_stride + i] ^ 0x80);
    std::vector<int32_t> sums(rows * TILE_OUTPUTS);
    for (int64_t t = first_tile; t < last_tile; t++) {
        tile(xu.data(), rows, k4, packed + t * k4 * TILE_OUTPUTS, corrections + t * TILE_OUTPUTS,
             sums.data());
        for (int64_t r = 0; r < rows; r++)
            memcpy(out + r * out_stride + t * TILE_OUTPUTS, sums.data() + r * TILE_OUTPUTS,
                   TILE_OUTPUTS * sizeof(int32_t));
    }
}

enum SpinOutcome { GAVE_UP = 0, CHANGED = 1, SLEEPER_WAITS = 2, PREEMPTED = 3 };

// Spins until *word differs from `seen` (CHANGED) or `limit_ns` have passed (GAVE_UP); stops
// early (PREEMPTED) where another thread wants the core: spinning would take it from work.
// Every few tens of microseconds the spinner offers its core (sched_yield: at once back unless
// another thread was waiting for it); PREEMPTED is a pause of the spin in which the kernel
// switched to another thread (short interruptions, and the hypervisor's pauses, do not count).
// The worker threads wait for each other this way (the GIL released by ctypes): a hand-over
// then does not have to wake a sleeping thread.
int spin_while_equal(const int64_t *word, int64_t seen, int64_t limit_ns) {
    using clock = std::chrono::steady_clock;
    constexpr int PAUSES_PER_CLOCK_READ = 32;           // a few microseconds
    constexpr int CLOCK_READS_PER_YIELD = 16;
    constexpr auto OTHER_THREAD_RAN = std::chrono::microseconds(100);
    long switches = involuntary_switches();
    auto now = clock::now();
    auto end = now + std::chrono::nanoseconds(limit_ns);
    for (int reads = 1;; reads++) {
        for (int i = 0; i < PAUSES_PER_CLOCK_READ; i++) {
            if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != seen) return CHANGED;
            _mm_pause();
        }
        if (reads % CLOCK_READS_PER_YIELD == 0) sched_yield();
        auto before = now;
        now = clock::now();
        if (now - before > OTHER_THREAD_RAN && involuntary_switches() != switches)
            return PREEMPTED;
        if (now >= end) return GAVE_UP;
    }
}

// Adds 1 to *count, then spin_while_equal(word, seen, limit_ns); but returns SLEEPER_WAITS if
// *asleep is set (a thread sleeps until *count changes: wake it). Adding here, the GIL already
// released, lets a thread spinning on *count take the GIL without waiting for it.
int count_and_spin(int64_t *count, const int64_t *asleep, const int64_t *word, int64_t seen,
                   int64_t limit_ns) {
    __atomic_add_fetch(count, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(asleep, __ATOMIC_SEQ_CST)) return SLEEPER_WAITS;
    return spin_while_equal(word, seen, limit_ns);
}

// Sets *asleep, then returns whether *count differs from `seen`: either this sees a
// count_and_spin's add or that sees *asleep set.
int announce_sleep(int64_t *asleep, const int64_t *count, int64_t seen) {
    __atomic_store_n(asleep, 1, __ATOMIC_SEQ_CST);
    return __atomic_load_n(count, __ATOMIC_SEQ_CST) != seen;
}

}  // extern "C"
