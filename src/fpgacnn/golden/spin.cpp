// The worker threads' waits (fpgacnn.golden.workers): spinning, the GIL released by ctypes;
// and parts of a C++ kernel shared with the spinning threads without the GIL (run_parts).
#include <immintrin.h>
#include <sched.h>
#include <stdint.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>

namespace {

using Part = void (*)(const void *arguments, int64_t first, int64_t last);

struct PartJob {
    Part part;
    const void *arguments;
    const int64_t *bounds;                     // part i: bounds[i] .. bounds[i + 1] - 1
    int64_t parts;
    std::atomic<int64_t> next{0}, finished{0};
};

std::atomic<PartJob *> posted{nullptr};        // the job spinning threads help with, if any
std::atomic<int64_t> visitors{0};              // threads that may hold `posted`'s old value
std::atomic<int64_t> spinners{0};

void run_remaining_parts(PartJob &job) {
    for (int64_t i; (i = job.next.fetch_add(1)) < job.parts;) {
        job.part(job.arguments, job.bounds[i], job.bounds[i + 1]);
        job.finished.fetch_add(1, std::memory_order_release);
    }
}

// Runs parts of the posted job, if any; whether there was one. A thread counts itself a
// visitor before it reads `posted`, so the poster, having cleared it, waits for every thread
// that could still reach its job.
bool help_with_posted_job() {
    if (!posted.load(std::memory_order_relaxed)) return false;
    visitors.fetch_add(1);
    PartJob *job = posted.load();
    if (job) run_remaining_parts(*job);
    visitors.fetch_sub(1);
    return job != nullptr;
}

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
// then does not have to wake a sleeping thread. A spinning thread helps with run_parts' jobs;
// after each, its limit starts again.
int spin_while_equal(const int64_t *word, int64_t seen, int64_t limit_ns) {
    using clock = std::chrono::steady_clock;
    constexpr int PAUSES_PER_CLOCK_READ = 32;           // a few microseconds
    constexpr int CLOCK_READS_PER_YIELD = 16;
    constexpr auto OTHER_THREAD_RAN = std::chrono::microseconds(100);
    struct Spinning {
        Spinning() { spinners.fetch_add(1); }
        ~Spinning() { spinners.fetch_sub(1); }
    } counted;
    long switches = involuntary_switches();
    auto now = clock::now();
    auto end = now + std::chrono::nanoseconds(limit_ns);
    for (int reads = 1;; reads++) {
        for (int i = 0; i < PAUSES_PER_CLOCK_READ; i++) {
            if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != seen) return CHANGED;
            if (help_with_posted_job()) {
                switches = involuntary_switches();
                now = clock::now();
                end = now + std::chrono::nanoseconds(limit_ns);
            }
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

// part(arguments, bounds[i], bounds[i + 1]) for i < parts, this thread taking parts beside
// the threads spinning in spin_while_equal (without the GIL: a hand-over costs no wake-up).
// Returns when every part has finished. Where another thread's job is posted, this thread
// runs all its parts itself.
void run_parts(Part part, const void *arguments, const int64_t *bounds, int64_t parts) {
    PartJob job;
    job.part = part, job.arguments = arguments, job.bounds = bounds, job.parts = parts;
    PartJob *none = nullptr;
    bool shared = parts > 1 && posted.compare_exchange_strong(none, &job);
    run_remaining_parts(job);
    if (!shared) return;
    posted.store(nullptr);
    while (visitors.load() != 0 || job.finished.load(std::memory_order_acquire) != parts)
        _mm_pause();
}

// How many threads spin in spin_while_equal now.
int64_t spinning_threads(void) { return spinners.load(); }

// In a forked child, which has none of its parent's other threads.
void forget_other_threads(void) {
    spinners.store(0);
    visitors.store(0);
    posted.store(nullptr);
}

// Sets *asleep, then returns whether *count differs from `seen`: either this sees a
// count_and_spin's add or that sees *asleep set.
int announce_sleep(int64_t *asleep, const int64_t *count, int64_t seen) {
    __atomic_store_n(asleep, 1, __ATOMIC_SEQ_CST);
    return __atomic_load_n(count, __ATOMIC_SEQ_CST) != seen;
}

}  // extern "C"
