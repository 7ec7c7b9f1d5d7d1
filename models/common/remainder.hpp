// r % n for a fixed n >= 1 over many r, on hot paths (a cache's set index, a random
// pattern's slot): a mask when n is a power of two, else the remainder by n's precomputed
// reciprocal (libdivide: exact, a multiply and a shift). A 64-bit division costs tens of
// cycles, more than the rest of a TLB hit's bookkeeping.
#pragma once

#include <bit>
#include <cstdint>
#include <stdexcept>

#include <libdivide.h>

namespace hvsim {

class Remainder {
public:
    explicit Remainder(uint64_t n = 1) : n_(n), mask_(n - 1), pow2_(std::has_single_bit(n)), div_(check(n)) {}
    uint64_t operator()(uint64_t r) const { return pow2_ ? r & mask_ : r - (r / div_) * n_; }
    uint64_t divisor() const { return n_; }

private:
    static uint64_t check(uint64_t n) {
        if (n == 0) throw std::invalid_argument("Remainder: modulus 0");
        return n;
    }
    uint64_t n_, mask_;
    bool pow2_;
    libdivide::divider<uint64_t> div_;
};

}  // namespace hvsim
