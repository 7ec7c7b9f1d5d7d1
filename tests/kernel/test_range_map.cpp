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
