// The DDR memory model of the Verilator harness: the rules of fpgacnn/sim/ddr.py (the
// definition, with the rules written out in its docstring), in C++ for speed.
// A test holds the two to the same cycle counts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <string>
#include <vector>

struct DdrOutputs {
    bool ar_ready = false;
    bool r_valid = false;
    const uint8_t *r_data = nullptr;
    bool r_last = false;
    bool aw_ready = false;
    bool w_ready = false;
    bool b_valid = false;
};

struct DdrInputs {
    bool ar_valid = false;
    uint64_t ar_addr = 0;
    uint32_t ar_len = 0;
    bool r_ready = false;
    bool aw_valid = false;
    uint64_t aw_addr = 0;
    uint32_t aw_len = 0;
    bool w_valid = false;
    const uint8_t *w_data = nullptr;
    uint64_t w_strb = 0;
    bool w_last = false;
    bool b_ready = false;
};

class Ddr {
  public:
    Ddr(std::vector<uint8_t> memory, int word_bytes, int latency, double bytes_per_cycle,
        int max_outstanding)
        : memory(std::move(memory)), word_bytes(word_bytes), latency(latency),
          bytes_per_cycle(bytes_per_cycle), max_outstanding(max_outstanding) {}

    std::vector<uint8_t> memory;
    uint64_t cycle = 0;
    uint64_t bytes_read = 0, bytes_written = 0;
    std::string error;  // set (and the run stopped) when the design breaks a rule

    const DdrOutputs &outputs() {
        if (have_outputs) return out;
        out = DdrOutputs();
        credit = std::min(credit + bytes_per_cycle, bytes_per_cycle + word_bytes);
        bool read_wants = !presenting && !reads.empty() && reads.front().ready <= cycle;
        bool write_wants = !writes.empty();
        bool both_wait = read_wants && write_wants;
        if (read_wants && credit >= word_bytes && !(write_wants && write_turn)) {
            credit -= word_bytes;
            presenting = true;
            read_wants = false;
        }
        if (presenting) {
            const ReadBurst &burst = reads.front();
            out.r_valid = true;
            out.r_data = memory.data() + burst.addr;
            out.r_last = burst.left == 1;
        }
        out.w_ready = write_wants && credit >= word_bytes && !(read_wants && !write_turn);
        if (both_wait) write_turn = !write_turn;
        out.ar_ready = (int)reads.size() < max_outstanding;
        out.aw_ready = (int)writes.size() < max_outstanding;
        out.b_valid = !responses.empty() && responses.front() <= cycle;
        have_outputs = true;
        return out;
    }

    void clock(const DdrInputs &in) {
        const DdrOutputs &o = outputs();
        if (o.r_valid && in.r_ready) {
            ReadBurst &burst = reads.front();
            burst.addr += word_bytes;
            burst.left -= 1;
            bytes_read += word_bytes;
            presenting = false;
            if (burst.left == 0) reads.pop_front();
        }
        if (o.ar_ready && in.ar_valid && check(in.ar_addr, in.ar_len + 1))
            reads.push_back({in.ar_addr, in.ar_len + 1, cycle + latency});
        if (o.w_ready && in.w_valid) write_beat(in);
        if (o.aw_ready && in.aw_valid && check(in.aw_addr, in.aw_len + 1))
            writes.push_back({in.aw_addr, in.aw_len + 1});
        if (o.b_valid && in.b_ready) responses.pop_front();
        cycle += 1;
        have_outputs = false;
    }

  private:
    struct ReadBurst {
        uint64_t addr;
        uint32_t left;
        uint64_t ready;
    };
    struct WriteBurst {
        uint64_t addr;
        uint32_t left;
    };

    int word_bytes, latency;
    double bytes_per_cycle;
    int max_outstanding;
    double credit = 0;
    bool presenting = false, write_turn = false, have_outputs = false;
    std::deque<ReadBurst> reads;
    std::deque<WriteBurst> writes;
    std::deque<uint64_t> responses;
    DdrOutputs out;

    bool check(uint64_t addr, uint64_t beats) {
        if (addr % word_bytes == 0 && addr + beats * word_bytes <= memory.size()) return true;
        char line[200];
        snprintf(line, sizeof line,
                 "memory: burst of %llu beats at byte 0x%llx is unaligned or outside the "
                 "%zu-byte image", (unsigned long long)beats, (unsigned long long)addr,
                 memory.size());
        if (error.empty()) error = line;
        return false;
    }

    void write_beat(const DdrInputs &in) {
        credit -= word_bytes;
        WriteBurst &burst = writes.front();
        if (in.w_last != (burst.left == 1) && error.empty()) {
            char line[200];
            snprintf(line, sizeof line, "memory: w.last=%d with %u beats left in the burst at "
                     "byte 0x%llx", (int)in.w_last, burst.left, (unsigned long long)burst.addr);
            error = line;
        }
        for (int i = 0; i < word_bytes; i++)
            if (in.w_strb >> i & 1) memory[burst.addr + i] = in.w_data[i];
        burst.addr += word_bytes;
        burst.left -= 1;
        bytes_written += word_bytes;
        if (burst.left == 0) {
            writes.pop_front();
            responses.push_back(cycle + latency);
        }
    }
};
