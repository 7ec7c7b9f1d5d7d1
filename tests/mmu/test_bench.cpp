// Throughput of the translation model (hidden: run with `test_mmu "[.bench]"`).
// Prints figures; asserts only counts, never times.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>

#include "tests/mmu/rig.hpp"

using namespace hvsim;
using namespace hvsim::mmu;
using namespace hvsim::mmu::test;

namespace {

MemHierarchyConfig genoa_like() {
    MemHierarchyConfig h;
    h.levels = {{"l1d", 32 * 1024, 8, 4}, {"l2", 1024 * 1024, 8, 14}, {"llc", 32 * 1024 * 1024, 16, 50}};
    h.dram_cycles = 360;
    return h;
}

template <class F>
double per_second(uint64_t n, F&& body) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return double(n) / s;
}

uint64_t xorshift(uint64_t& x) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

}  // namespace

TEST_CASE("translation throughput", "[.bench]") {
    constexpr unsigned kPages = 16384;   // 64 MiB of 4K pages: far beyond L1 + L2 TLB reach
    Rig r(MmuConfig{}, genoa_like());
    r.map_gpa(kGuestPtPool & ~0x1f'ffffull, 0x20'0000, PgLevel::k4K);
    r.map_gpa(kDataGpa, uint64_t(kPages) * kPageSize, PgLevel::k4K);
    r.guest.map_range(kGva, kDataGpa, uint64_t(kPages) * kPageSize, PgLevel::k4K);
    r.roots();
    uint64_t sink = 0;

    // 1. Same-page hits (the MRU path): 8-byte strides through 64 pages.
    constexpr uint64_t kHitN = 50'000'000;
    for (unsigned p = 0; p < 64; ++p) sink += r.rd(kGva + p * kPageSize).hpa.raw();
    r.mmu.reset_stats();
    const double mru = per_second(kHitN, [&] {
        for (uint64_t i = 0; i < kHitN; ++i) sink += r.rd(kGva + ((i * 8) & (64 * kPageSize - 1))).hpa.raw();
    });
    CHECK(r.mmu.stats().l1_hits == kHitN);

    // 2. L1 hits on a different page every time (hash lookup, no MRU).
    r.mmu.reset_stats();
    const double l1 = per_second(kHitN, [&] {
        for (uint64_t i = 0; i < kHitN; ++i) sink += r.rd(kGva + (i % 61) * kPageSize).hpa.raw();
    });
    CHECK(r.mmu.stats().l1_hits == kHitN);

    // 3. Walk-bound: random pages over 64 MiB, PWC/NTLB/data caches warm.
    constexpr uint64_t kWalkN = 4'000'000;
    uint64_t x = 88172645463325252ull;
    r.mmu.reset_stats();
    const double walks = per_second(kWalkN, [&] {
        for (uint64_t i = 0; i < kWalkN; ++i) sink += r.rd(kGva + (xorshift(x) % kPages) * kPageSize).hpa.raw();
    });
    const MmuStats ws = r.mmu.stats();
    CHECK(ws.accesses == kWalkN);

    // 4. Cold 2D walks: flush_all before each access (24 references, data caches warm).
    constexpr uint64_t kColdN = 1'000'000;
    r.mmu.reset_stats();
    const double cold = per_second(kColdN, [&] {
        for (uint64_t i = 0; i < kColdN; ++i) {
            r.mmu.flush_all();
            sink += r.rd(kGva + (xorshift(x) % kPages) * kPageSize).hpa.raw();
        }
    });
    CHECK(r.mmu.stats().misses == kColdN);

    // 5. Cold walks with PWC and nested TLB off: the full 24 references, every time,
    //    once through the Genoa-like hierarchy and once with DRAM only (isolates the
    //    cost of the walker itself from the cache model's).
    auto bare_walks = [&](const MemHierarchyConfig& h, double& refs) {
        MmuConfig c;
        c.pwc = {0, 0, 2};
        c.ntlb = {0, 0, 2};
        Rig b(c, h);
        b.map_gpa(kGuestPtPool & ~0x1f'ffffull, 0x20'0000, PgLevel::k4K);
        b.map_gpa(kDataGpa, uint64_t(kPages) * kPageSize, PgLevel::k4K);
        b.guest.map_range(kGva, kDataGpa, uint64_t(kPages) * kPageSize, PgLevel::k4K);
        b.roots();
        uint64_t y = 1234567;
        const double rate = per_second(kColdN, [&] {
            for (uint64_t i = 0; i < kColdN; ++i) {
                b.mmu.flush_all();
                sink += b.rd(kGva + (xorshift(y) % kPages) * kPageSize).hpa.raw();
            }
        });
        refs = double(b.mmu.stats().walk_mem_refs) / double(kColdN);
        return rate;
    };
    double refs_g = 0, refs_d = 0;
    const double full_g = bare_walks(genoa_like(), refs_g);
    const double full_d = bare_walks(dram_only(360), refs_d);
    CHECK(refs_g == 24.0);
    CHECK(refs_d == 24.0);

    std::printf("mmu bench: MRU L1 hits      %8.1f M/s\n", mru / 1e6);
    std::printf("mmu bench: hashed L1 hits   %8.1f M/s\n", l1 / 1e6);
    std::printf("mmu bench: random accesses  %8.2f M/s (%.1f%% walks, %.2f refs/walk)\n", walks / 1e6,
                100.0 * double(ws.misses) / double(ws.accesses), double(ws.walk_mem_refs) / double(ws.misses));
    std::printf("mmu bench: cold 2D walks    %8.2f M/s (%.1f refs/walk, %.0f ns/walk)\n", cold / 1e6,
                double(r.mmu.stats().walk_mem_refs) / double(kColdN), 1e9 / cold);
    std::printf("mmu bench: 24-ref walks     %8.2f M/s (%.0f ns/walk, Genoa-like caches)\n", full_g / 1e6, 1e9 / full_g);
    std::printf("mmu bench: 24-ref walks     %8.2f M/s (%.0f ns/walk, DRAM-only hierarchy)\n", full_d / 1e6, 1e9 / full_d);
    CHECK(sink != 0);
}
