// The worker threads' waits (fpgacnn.golden.workers): spinning, the GIL released by ctypes.
#include <immintrin.h>
#include <sched.h>
#include <stdint.h>
#include <sys/resource.h>

#include <chrono>

namespace {

long involuntary_switches() {
    struct rusage usage;
    getrusage(RUSAGE_THREAD, &usage);
    return usage.ru_nivcsw;
}

}  // namespace

extern "C" {

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
