#include <catch2/catch.hpp>

#include "models/mem/cache.hpp"

using namespace hvsim;

static MemHierarchyConfig small() {
    MemHierarchyConfig c;
    c.levels = {{"l1d", 2 * 64 * 2, 2, 4}, {"l2", 8 * 64 * 2, 2, 14}};   // 2 sets x 2 ways, 8 sets x 2 ways
    c.dram_cycles = 300;
    return c;
}

TEST_CASE("latency follows the level that hits", "[mem]") {
    CacheHierarchy h(small());
    CHECK(h.access(Hpa(0x1000)) == 300);
    CHECK(h.access(Hpa(0x1008)) == 4);          // same line
    CHECK(h.stats().dram == 1);
    CHECK(h.stats().levels[0].hits == 1);
    h.flush_line(Hpa(0x1000));
    CHECK(h.access(Hpa(0x1000)) == 300);
}

TEST_CASE("LRU evicts the least recently used way", "[mem]") {
    CacheHierarchy h(small());
    // Lines 0, 2, 4 map to set 0 of the 2-set L1.
    h.access(Hpa(0 * 64));
    h.access(Hpa(2 * 64));
    h.access(Hpa(0 * 64));       // 0 is now most recent
    h.access(Hpa(4 * 64));       // evicts 2 from L1
    CHECK(h.access(Hpa(0 * 64)) == 4);
    CHECK(h.access(Hpa(2 * 64)) == 14);   // still in L2
}

TEST_CASE("bad geometry is rejected", "[mem]") {
    MemHierarchyConfig c;
    c.levels = {{"l1d", 100, 3, 4}};
    CHECK_THROWS(CacheHierarchy(c));
}
