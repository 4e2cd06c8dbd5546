// Reading and writing bit fields of Verilator port values, whatever C++ type Verilator chose
// for the port's width (CData/SData/IData/QData up to 64 bits, VlWide<N> above).
// Field offsets come from the Amaranth layouts, passed in as -D macros by fpgacnn/sim/build.py.
#pragma once

#include <cstdint>
#include <cstring>

#include "verilated.h"

static inline uint64_t low_mask(int width) {
    return width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1;
}

template <typename T>
struct PortBits {  // an integral port of at most 64 bits
    static uint64_t get(const T &v, int lsb, int width) {
        return (uint64_t(v) >> lsb) & low_mask(width);
    }
    static void set(T &v, int lsb, int width, uint64_t x) {
        uint64_t m = low_mask(width) << lsb;
        v = T((uint64_t(v) & ~m) | ((x << lsb) & m));
    }
    static void get_bytes(const T &v, int n, uint8_t *out) {  // the n bytes from bit 0
        uint64_t x = v;
        for (int i = 0; i < n; i++) out[i] = uint8_t(x >> (8 * i));
    }
    static void set_bytes(T &v, int n, const uint8_t *in) {
        uint64_t x = 0;
        for (int i = 0; i < n; i++) x |= uint64_t(in[i]) << (8 * i);
        set(v, 0, 8 * n, x);
    }
};

template <std::size_t N>
struct PortBits<VlWide<N>> {  // 32-bit words, least significant first
    static uint64_t get(const VlWide<N> &v, int lsb, int width) {
        uint64_t r = 0;
        for (int i = 0; i < width;) {
            int pos = lsb + i, bit = pos % 32;
            int take = width - i < 32 - bit ? width - i : 32 - bit;
            r |= ((uint64_t(v.at(pos / 32)) >> bit) & low_mask(take)) << i;
            i += take;
        }
        return r;
    }
    static void set(VlWide<N> &v, int lsb, int width, uint64_t x) {
        for (int i = 0; i < width;) {
            int pos = lsb + i, bit = pos % 32;
            int take = width - i < 32 - bit ? width - i : 32 - bit;
            uint32_t m = uint32_t(low_mask(take) << bit);
            uint32_t chunk = uint32_t(((x >> i) & low_mask(take)) << bit);
            v.at(pos / 32) = (v.at(pos / 32) & ~m) | chunk;
            i += take;
        }
    }
    static void get_bytes(const VlWide<N> &v, int n, uint8_t *out) {
        for (int i = 0; i < n; i++) out[i] = uint8_t(v.at(i / 4) >> (8 * (i % 4)));
    }
    static void set_bytes(VlWide<N> &v, int n, const uint8_t *in) {
        int whole = n / 4;
        for (int w = 0; w < whole; w++)
            v.at(w) = uint32_t(in[4 * w]) | uint32_t(in[4 * w + 1]) << 8 |
                      uint32_t(in[4 * w + 2]) << 16 | uint32_t(in[4 * w + 3]) << 24;
        for (int i = 4 * whole; i < n; i++) set(v, 8 * i, 8, in[i]);
    }
};

template <typename T> uint64_t bits_get(const T &v, int lsb, int width) {
    return PortBits<T>::get(v, lsb, width);
}
template <typename T> void bits_set(T &v, int lsb, int width, uint64_t x) {
    PortBits<T>::set(v, lsb, width, x);
}
template <typename T> void bytes_get(const T &v, int n, uint8_t *out) {
    PortBits<T>::get_bytes(v, n, out);
}
template <typename T> void bytes_set(T &v, int n, const uint8_t *in) {
    PortBits<T>::set_bytes(v, n, in);
}
