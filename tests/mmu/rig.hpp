// A guest + nested page-table setup around one Mmu, shared by the tests.
//
// Layout: gPA g is backed by hPA g + kHostOff. Guest page tables live at gPA
// kGuestPtPool (one 2M region, 1G region 0); data at kDataGpa (1G region 1); the gVA
// window starts at kGva (1G aligned, non-zero index at every level).
#pragma once

#include <algorithm>
#include <cstdint>

#include "models/mem/cache.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/mmu/mmu.hpp"
#include "tests/mmu/pt_builder.hpp"

namespace hvsim::mmu::test {

inline constexpr uint64_t kHostOff = 0x1'0000'0000ull;     // 4 GiB
inline constexpr uint64_t kNestedPool = 0x1000'0000ull;    // hPA of nested table pages
inline constexpr uint64_t kGuestPtPool = 0x100'0000ull;    // gPA of guest table pages
inline constexpr uint64_t kDataGpa = 0x4000'0000ull;       // 1 GiB
inline constexpr uint64_t kGva = 0x7f12'4000'0000ull;      // 1 GiB aligned
inline constexpr uint64_t kGva5 = 0x00ab'7f12'4000'0000ull; // 5-level: bits 56:48 non-zero too

// Caches off: the walk makes every reference (the oracle configuration).
inline MmuConfig bare_config(unsigned gl = 4, unsigned nl = 4, NestedFormat f = NestedFormat::npt) {
    MmuConfig c;
    c.guest_levels = gl;
    c.nested_levels = nl;
    c.nested_format = f;
    c.l1 = {8, 8, 1};
    c.l2 = {32, 4, 7};
    c.pwc = {0, 0, 2};
    c.ntlb = {0, 0, 2};
    return c;
}

inline MemHierarchyConfig dram_only(Cycles c = 100) {
    MemHierarchyConfig h;
    h.dram_cycles = c;
    return h;
}

struct Rig {
    MmuConfig cfg;
    PhysMem mem;
    CacheHierarchy cache;
    TableBuilder nested;
    TableBuilder guest;
    Mmu mmu;

    explicit Rig(const MmuConfig& c, const MemHierarchyConfig& h = dram_only())
        : cfg(c),
          cache(h),
          nested(mem, NestedPte{c.nested_format}, c.nested_levels, kNestedPool),
          guest(mem, NestedPte{NestedFormat::npt}, c.guest_levels ? c.guest_levels : 4, kGuestPtPool,
                [this](uint64_t gpa) { return nested.lookup(gpa); }),
          mmu(c, mem, cache) {}
    Rig(const Rig&) = delete;
    Rig& operator=(const Rig&) = delete;

    uint64_t gva0() const { return cfg.guest_levels == 5 ? kGva5 : kGva; }

    // Nested mapping of [gpa, gpa + bytes) to its backing hPA with pages of `size`.
    void map_gpa(uint64_t gpa, uint64_t bytes, PgLevel size, bool writable = true, bool exec = true) {
        nested.map_range(gpa, gpa + kHostOff, bytes, size, writable, exec);
    }

    // The standard picture: guest tables (nested-mapped with `nsize` pages), 16 pages of
    // data (or one large page) mapped by the guest with `gsize` pages and nested with `nsize`.
    void standard(PgLevel gsize = PgLevel::k4K, PgLevel nsize = PgLevel::k4K) {
        auto region = [&](uint64_t gpa, uint64_t bytes) {
            const uint64_t sz = level_size(nsize);
            const uint64_t lo = gpa & ~(sz - 1);
            const uint64_t hi = (gpa + bytes + sz - 1) & ~(sz - 1);
            map_gpa(lo, hi - lo, nsize);
        };
        region(kGuestPtPool, 64 * kPageSize);
        region(kDataGpa, 16 * kPageSize);
        if (cfg.guest_levels) {
            if (gsize == PgLevel::k4K) guest.map_range(gva0(), kDataGpa, 16 * kPageSize, gsize);
            else guest.map(gva0(), kDataGpa, gsize);
        }
        roots();
    }
    void roots() {
        mmu.set_guest_root(Gpa(guest.root()));
        mmu.set_nested_root(Hpa(nested.root()));
    }

    TranslateResult rd(uint64_t va, bool enc = false) { return mmu.translate(Gva(va), AccessType::read, enc); }
    TranslateResult wr(uint64_t va, bool enc = false) { return mmu.translate(Gva(va), AccessType::write, enc); }
    TranslateResult fetch(uint64_t va) { return mmu.translate(Gva(va), AccessType::fetch, false); }
};

}  // namespace hvsim::mmu::test
