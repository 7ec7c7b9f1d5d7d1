#include <catch2/catch.hpp>

#include "kernel/range_map.hpp"

using namespace hvsim;
using hvsim::kvm::RangeMap;

TEST_CASE("range map: assign merges equal neighbours and splits on overwrite", "[range_map]") {
    RangeMap<uint64_t> m;
    m.assign(0, 100, 1);
    m.assign(100, 200, 1);
    REQUIRE(m.nodes() == 1);
    REQUIRE(m.find(150) == 1u);
    m.assign(50, 60, 2);
    REQUIRE(m.nodes() == 3);
    REQUIRE(m.find(49) == 1u);
    REQUIRE(m.find(50) == 2u);
    REQUIRE(m.find(59) == 2u);
    REQUIRE(m.find(60) == 1u);
    m.assign(50, 60, 1);
    REQUIRE(m.nodes() == 1);
    REQUIRE_FALSE(m.find(200).has_value());
    REQUIRE(m.count(0, 1000) == 200);
}

TEST_CASE("range map: erase and clipped iteration", "[range_map]") {
    RangeMap<int> m;
    m.assign(10, 20, 7);
    m.assign(30, 40, 8);
    m.erase(15, 35);
    REQUIRE(m.nodes() == 2);
    REQUIRE(m.count(0, 100) == 10);
    std::vector<std::tuple<uint64_t, uint64_t, int>> seen;
    m.for_each(12, 38, [&](uint64_t s, uint64_t e, int v) { seen.emplace_back(s, e, v); });
    REQUIRE(seen.size() == 2);
    REQUIRE(seen[0] == std::make_tuple(12ull, 15ull, 7));
    REQUIRE(seen[1] == std::make_tuple(35ull, 38ull, 8));
    REQUIRE(m.first_in(0, 100) == 10u);
    REQUIRE(m.first_in(15, 35) == std::nullopt);
    REQUIRE_FALSE(m.any_in(20, 30));
}

TEST_CASE("range map: linear pfn runs coalesce and advance", "[range_map]") {
    RangeMap<Pfn> m;
    m.assign(0, 1, Pfn(100));
    m.assign(1, 2, Pfn(101));
    m.assign(2, 3, Pfn(500));
    REQUIRE(m.nodes() == 2);
    REQUIRE(m.find(1) == Pfn(101));
    m.erase(0, 1);
    REQUIRE(m.find(1) == Pfn(101));
    REQUIRE(m.nodes() == 2);
    m.assign(5, 10, Pfn(1000));
    m.erase(7, 8);
    REQUIRE(m.find(8) == Pfn(1003));
    REQUIRE(m.nodes() == 4);
}

TEST_CASE("range map: ranges up to the top of the key space", "[range_map]") {
    RangeMap<int> m;
    m.assign(5, 6, 1);
    m.assign(1ull << 40, (1ull << 40) + 3, 2);
    int n = 0;
    m.for_each(0, ~0ull, [&](uint64_t, uint64_t, int) { ++n; });
    REQUIRE(n == 2);
    m.erase(0, ~0ull);
    REQUIRE(m.empty());
}

// ---- the VMM's anonymous page table (kernel/anon_pages.hpp) ----
#include "kernel/anon_pages.hpp"

TEST_CASE("anon page table: insert, find, erase across leaves", "[range_map][anon]") {
    using hvsim::kvm::AnonPage;
    using hvsim::kvm::AnonPageTable;
    AnonPageTable t;
    const uint64_t base = 0x7f0000000000ull;
    REQUIRE(t.empty());
    REQUIRE_FALSE(t.next(0));
    // Pages 15, 16 and 40: three different 16-page leaves.
    for (uint64_t i : {15u, 16u, 40u}) t.insert(base + (i << kPageShift), AnonPage{Pfn(1000 + i), 0});
    REQUIRE(t.size() == 3);
    REQUIRE(t.contains(base + (16 << kPageShift)));
    REQUIRE_FALSE(t.contains(base + (17 << kPageShift)));
    REQUIRE(t.find(base + (40 << kPageShift))->pfn == Pfn(1040));
    // next() is lower_bound over pages: within a leaf, then in the following leaves.
    REQUIRE(*t.next(base) == base + (15 << kPageShift));
    REQUIRE(*t.next(base + (16 << kPageShift)) == base + (16 << kPageShift));
    REQUIRE(*t.next(base + (17 << kPageShift)) == base + (40 << kPageShift));
    REQUIRE_FALSE(t.next(base + (41 << kPageShift)));
    REQUIRE(t.any_in(base + (17 << kPageShift), base + (41 << kPageShift)));
    REQUIRE_FALSE(t.any_in(base + (17 << kPageShift), base + (40 << kPageShift)));
    // A pointer stays valid while other pages come and go; pins live in the entry.
    AnonPage* p = t.find(base + (16 << kPageShift));
    p->pins = 2;
    t.insert(base + (17 << kPageShift), AnonPage{Pfn(7), 0});
    REQUIRE(t.erase(base + (15 << kPageShift)));
    REQUIRE_FALSE(t.erase(base + (15 << kPageShift)));
    REQUIRE(t.find(base + (16 << kPageShift))->pins == 2u);
    REQUIRE(p == t.find(base + (16 << kPageShift)));
    // Emptying a leaf drops it; the remembered leaf must not outlive it.
    REQUIRE(t.erase(base + (40 << kPageShift)));
    REQUIRE_FALSE(t.find(base + (40 << kPageShift)));
    t.insert(base + (40 << kPageShift), AnonPage{Pfn(9), 0});
    REQUIRE(t.find(base + (40 << kPageShift))->pfn == Pfn(9));
    REQUIRE(t.size() == 3);
    while (!t.empty()) REQUIRE(t.erase(*t.next(0)));
    REQUIRE_FALSE(t.next(0));
}

TEST_CASE("anon page table: a 2 MiB region filled page by page is 32 leaves, found in order", "[range_map][anon]") {
    using hvsim::kvm::AnonPage;
    using hvsim::kvm::AnonPageTable;
    AnonPageTable t;
    const uint64_t region = 0x40000000ull;
    for (uint64_t i = 0; i < 512; ++i) t.insert(region + (i << kPageShift), AnonPage{Pfn(5000 + i), 0});
    REQUIRE(t.size() == 512);
    uint64_t n = 0, expect = region;
    for (auto p = t.next(region); p && *p < region + (2ull << 20); p = t.next(*p + kPageSize)) {
        REQUIRE(*p == expect);
        REQUIRE(t.find(*p)->pfn == Pfn(5000 + n));
        expect += kPageSize;
        ++n;
    }
    REQUIRE(n == 512);
    REQUIRE_FALSE(t.any_in(region + (2ull << 20), region + (4ull << 20)));
    REQUIRE_FALSE(t.any_in(0, region));
}

TEST_CASE("anon page table: insert_run fills partly used leaves and new ones, as page inserts would", "[range_map][anon]") {
    using hvsim::kvm::AnonPage;
    using hvsim::kvm::AnonPageTable;
    AnonPageTable run, paged;
    const uint64_t base = 0x7f0000000000ull;
    // Pages 3 and 60 mapped first: the run [4, 60) starts inside one leaf and ends inside another.
    for (AnonPageTable* t : {&run, &paged})
        for (uint64_t i : {3u, 60u}) t->insert(base + (i << kPageShift), AnonPage{Pfn(i), 0});
    run.insert_run(base + (4 << kPageShift), 56, Pfn(1000), 1);
    for (uint64_t i = 0; i < 56; ++i) paged.insert(base + ((4 + i) << kPageShift), AnonPage{Pfn(1000 + i), 1});
    REQUIRE(run.size() == paged.size());
    REQUIRE(run.size() == 58);
    for (uint64_t i = 0; i < 80; ++i) {
        const AnonPage* a = run.find(base + (i << kPageShift));
        const AnonPage* b = paged.find(base + (i << kPageShift));
        REQUIRE((a == nullptr) == (b == nullptr));
        if (a) {
            REQUIRE(a->pfn == b->pfn);
            REQUIRE(a->pins == b->pins);
        }
    }
    REQUIRE(run.find(base + (59 << kPageShift))->pfn == Pfn(1055));
    REQUIRE(run.find(base + (3 << kPageShift))->pins == 0u);
    REQUIRE(*run.next(base + (61 << kPageShift) - kPageSize) == base + (60 << kPageShift));
}

// ---- fault-path percentiles (kernel/fault_path.hpp): a selection must give the sorted rank ----
#include <algorithm>
#include <random>

#include "kernel/fault_path.hpp"

TEST_CASE("fault path percentile: nearest rank of the sorted samples", "[fault_path]") {
    REQUIRE(hvsim::kvm::percentile({}, 50) == 0u);
    REQUIRE(hvsim::kvm::percentile({7}, 99) == 7u);
    REQUIRE(hvsim::kvm::percentile({30, 10, 20}, 50) == 20u);   // rank ceil(1.5) = 2
    REQUIRE(hvsim::kvm::percentile({30, 10, 20}, 0) == 10u);
    REQUIRE(hvsim::kvm::percentile({30, 10, 20}, 100) == 30u);
    std::mt19937_64 rng(3);
    std::vector<Cycles> v(1001);
    for (auto& x : v) x = rng() % 500;   // duplicates too
    std::vector<Cycles> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    for (double p : {1.0, 50.0, 90.0, 99.0, 99.9}) {
        size_t rank = size_t(p / 100.0 * double(v.size()) + 0.999999);
        REQUIRE(hvsim::kvm::percentile(v, p) == sorted[rank - 1]);
    }
}

TEST_CASE("range map: add counts over ranges, absent keys count as zero, zero removes", "[range_map]") {
    RangeMap<uint32_t> m;
    m.add(0, 100, 1);
    REQUIRE(m.nodes() == 1);
    m.add(50, 150, 1);
    REQUIRE(m.find(10) == 1u);
    REQUIRE(m.find(60) == 2u);
    REQUIRE(m.find(120) == 1u);
    REQUIRE(m.nodes() == 3);
    m.add(0, 200, -1);   // keys 150..199 are absent: they stay absent
    REQUIRE_FALSE(m.contains(10));
    REQUIRE(m.find(60) == 1u);
    REQUIRE_FALSE(m.contains(120));
    REQUIRE_FALSE(m.contains(170));
    REQUIRE(m.nodes() == 1);
    m.add(50, 100, -1);
    REQUIRE(m.empty());
}

TEST_CASE("anon page table: for_each_in visits the pages of a range in order, as next() finds them", "[range_map][anon]") {
    using hvsim::kvm::AnonPage;
    using hvsim::kvm::AnonPageTable;
    AnonPageTable t;
    const uint64_t base = 0x7f0000000000ull;
    // Sparse pages over several leaves: whole leaves, partial ones, gaps of empty leaves.
    for (uint64_t i = 0; i < 200; ++i)
        if (i % 7 != 3 && !(i >= 64 && i < 112)) t.insert(base + (i << kPageShift), AnonPage{Pfn(9000 + 3 * i), 0});
    for (uint64_t s : {0u, 1u, 15u, 16u, 17u, 63u, 100u, 150u})
        for (uint64_t e : {s, s + 1, s + 15, s + 16, s + 33, 200ul, 400ul}) {
            INFO("pages [" << s << ", " << e << ")");
            std::vector<std::pair<uint64_t, Pfn>> want, got;
            const uint64_t hs = base + (s << kPageShift), he = base + (e << kPageShift);
            for (auto p = t.next(hs); p && *p < he; p = t.next(*p + kPageSize)) want.emplace_back(*p, t.find(*p)->pfn);
            t.for_each_in(hs, he, [&](uint64_t hva, AnonPage& a) { got.emplace_back(hva, a.pfn); });
            REQUIRE(got == want);
        }
    // The page handed to fn is the stored one: its pins can be changed in place.
    t.for_each_in(base, base + (16 << kPageShift), [](uint64_t, AnonPage& a) { a.pins = 5; });
    CHECK(t.find(base + (15 << kPageShift))->pins == 5u);
    CHECK(t.find(base + (16 << kPageShift))->pins == 0u);
}

TEST_CASE("range map: first_in finds the first stored key of a range with one search", "[range_map]") {
    hvsim::kvm::RangeMap<uint8_t> m;
    m.assign(10, 20, 1);
    m.assign(30, 31, 2);
    m.assign(100, 200, 3);
    for (uint64_t s = 0; s < 210; s += 3)
        for (uint64_t e : {s, s + 1, s + 5, s + 25, s + 90, ~uint64_t(0)}) {
            std::optional<uint64_t> want;
            m.for_each(s, e, [&](uint64_t a, uint64_t, uint8_t) {
                if (!want) want = a;
            });
            INFO(s << " " << e);
            REQUIRE(m.first_in(s, e) == want);
        }
}
