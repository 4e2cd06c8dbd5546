// The Verilator harness: runs the fpgacnn_top of fpgacnn/hw/verilog.py against a DDR image.
//
//   harness IMAGE_IN IMAGE_OUT [--max-cycles N] [--latency L] [--bytes-per-cycle B]
//           [--max-outstanding O] [--args A0,A1,A2,A3] [--vcd FILE]
//
// Loads IMAGE_IN as the DDR contents, clocks the design out of its power-on reset, pulses
// `start` with `args`, clocks until `busy` falls (or N cycles), writes the DDR contents to
// IMAGE_OUT and prints one JSON line: finished, cycles, status, bytes_read, bytes_written,
// seconds and cpu_seconds (of the simulation loop), error.
// The top has no `rst` port: its reset is high in the first cycle (hw/verilog.py PowerOnReset).
// Port field offsets are -D macros derived from the Amaranth layouts (fpgacnn/sim/build.py).
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "Vfpgacnn_top.h"
#include "bits.h"
#include "ddr.h"
#include "verilated.h"
#ifdef TRACE
#include "verilated_vcd_c.h"
#endif

static const int WORD_BYTES = DATA_BITS / 8;

// Amaranth names the port of member `rd.ar.valid` `rd__ar__valid`; Verilator escapes the
// double underscores.
#define PORT(port, channel, field) port##___05F##channel##___05F##field

struct Options {
    std::string image_in, image_out, vcd;
    uint64_t max_cycles = 100000000;
    int latency = 20, max_outstanding = 16;
    double bytes_per_cycle = 8.0;
    uint32_t args[4] = {0, 0, 0, 0};
};

static void usage_error(const char *what) {
    fprintf(stderr, "harness: %s\n", what);
    exit(1);
}

static Options parse(int argc, char **argv) {
    Options o;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a.rfind("--", 0) == 0 && i + 1 >= argc) usage_error(("missing value for " + a).c_str());
        if (a == "--max-cycles") o.max_cycles = strtoull(argv[++i], nullptr, 0);
        else if (a == "--latency") o.latency = atoi(argv[++i]);
        else if (a == "--bytes-per-cycle") o.bytes_per_cycle = atof(argv[++i]);
        else if (a == "--max-outstanding") o.max_outstanding = atoi(argv[++i]);
        else if (a == "--vcd") o.vcd = argv[++i];
        else if (a == "--args") {
            char *p = argv[++i];
            for (int k = 0; k < 4 && *p; k++) {
                o.args[k] = uint32_t(strtoull(p, &p, 0));
                if (*p == ',') p++;
            }
        } else positional.push_back(a);
    }
    if (positional.size() != 2) usage_error("expected IMAGE_IN IMAGE_OUT");
    o.image_in = positional[0];
    o.image_out = positional[1];
    return o;
}

static void drive(Vfpgacnn_top &top, const DdrOutputs &o) {
    top.PORT(rd, ar, ready) = o.ar_ready;
    top.PORT(rd, r, valid) = o.r_valid;
    if (o.r_valid) {
        bytes_set(top.PORT(rd, r, payload), WORD_BYTES, o.r_data);
        bits_set(top.PORT(rd, r, payload), R_LAST_LSB, 1, o.r_last);
    }
    top.PORT(wr, aw, ready) = o.aw_ready;
    top.PORT(wr, w, ready) = o.w_ready;
    top.PORT(wr, b, valid) = o.b_valid;
    top.PORT(wr, b, payload) = 0;
}

static DdrInputs sample(const Vfpgacnn_top &top, uint8_t *w_data) {
    DdrInputs in;
    in.ar_valid = top.PORT(rd, ar, valid);
    in.ar_addr = bits_get(top.PORT(rd, ar, payload), AR_ADDR_LSB, AR_ADDR_BITS);
    in.ar_len = uint32_t(bits_get(top.PORT(rd, ar, payload), AR_LEN_LSB, AR_LEN_BITS));
    in.r_ready = top.PORT(rd, r, ready);
    in.aw_valid = top.PORT(wr, aw, valid);
    in.aw_addr = bits_get(top.PORT(wr, aw, payload), AR_ADDR_LSB, AR_ADDR_BITS);
    in.aw_len = uint32_t(bits_get(top.PORT(wr, aw, payload), AR_LEN_LSB, AR_LEN_BITS));
    in.w_valid = top.PORT(wr, w, valid);
    if (in.w_valid) {
        bytes_get(top.PORT(wr, w, payload), WORD_BYTES, w_data);
        in.w_strb = bits_get(top.PORT(wr, w, payload), W_STRB_LSB, WORD_BYTES);
        in.w_last = bits_get(top.PORT(wr, w, payload), W_LAST_LSB, 1);
    }
    in.w_data = w_data;
    in.b_ready = top.PORT(wr, b, ready);
    return in;
}

static void tick(Vfpgacnn_top &top) {
    top.clk = 0;
    top.eval();
    top.clk = 1;
    top.eval();
}

int main(int argc, char **argv) {
    Options opt = parse(argc, argv);
    std::ifstream in_file(opt.image_in, std::ios::binary);
    if (!in_file) usage_error(("cannot read " + opt.image_in).c_str());
    std::vector<uint8_t> image((std::istreambuf_iterator<char>(in_file)),
                               std::istreambuf_iterator<char>());
    Ddr ddr(std::move(image), WORD_BYTES, opt.latency, opt.bytes_per_cycle, opt.max_outstanding);

    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vfpgacnn_top>(context.get());
#ifdef TRACE
    std::unique_ptr<VerilatedVcdC> vcd;
    if (!opt.vcd.empty()) {
        context->traceEverOn(true);
        vcd = std::make_unique<VerilatedVcdC>();
        top->trace(vcd.get(), 99);
        vcd->open(opt.vcd.c_str());
    }
#else
    if (!opt.vcd.empty()) usage_error("--vcd needs a simulator built with tracing");
#endif
    top->start = 0;
    for (int i = 0; i < 3; i++) tick(*top);
    for (int k = 0; k < 4; k++) bits_set(top->args, 32 * k, 32, opt.args[k]);

    std::vector<uint8_t> w_data(WORD_BYTES);
    auto began = std::chrono::steady_clock::now();
    std::clock_t cpu_began = std::clock();
    bool finished = false;
    uint64_t cycle = 0;
    for (; cycle < opt.max_cycles && ddr.error.empty(); cycle++) {
        top->start = cycle == 0;
        drive(*top, ddr.outputs());
        top->clk = 0;
        top->eval();
#ifdef TRACE
        if (vcd) vcd->dump(2 * cycle);
#endif
        if (cycle > 0 && !top->busy) {
            finished = true;
            break;
        }
        DdrInputs in = sample(*top, w_data.data());
        top->clk = 1;
        top->eval();
#ifdef TRACE
        if (vcd) vcd->dump(2 * cycle + 1);
#endif
        ddr.clock(in);
    }
    top->final();
#ifdef TRACE
    if (vcd) vcd->close();
#endif
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    double cpu_seconds = double(std::clock() - cpu_began) / CLOCKS_PER_SEC;

    std::ofstream out_file(opt.image_out, std::ios::binary);
    out_file.write(reinterpret_cast<const char *>(ddr.memory.data()), ddr.memory.size());
    if (!out_file) usage_error(("cannot write " + opt.image_out).c_str());
    std::string error;
    for (char c : ddr.error) error += (c == '"' || c == '\\') ? '\'' : c;
    printf("{\"finished\": %s, \"cycles\": %llu, \"status\": %llu, \"bytes_read\": %llu, "
           "\"bytes_written\": %llu, \"seconds\": %.6f, \"cpu_seconds\": %.6f, "
           "\"error\": \"%s\"}\n",
           finished ? "true" : "false", (unsigned long long)cycle, (unsigned long long)bits_get(top->status, 0, 64),
           (unsigned long long)ddr.bytes_read, (unsigned long long)ddr.bytes_written, seconds,
           cpu_seconds, error.c_str());
    return 0;
}
