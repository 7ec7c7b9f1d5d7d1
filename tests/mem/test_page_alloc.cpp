#include <catch2/catch.hpp>

#include "models/mem/page_alloc.hpp"

using namespace hvsim;

TEST_CASE("buddy allocator hands out the lowest aligned block and merges on free", "[mem]") {
    HostPageAllocator a(Hpa(1ull << 30), 2ull << 30);
    CHECK(a.total_pages() == 2 * 262144);
    auto p0 = a.alloc(0);
    REQUIRE(p0);
    CHECK(p0->raw() == (1ull << 30) >> 12);
    auto p2m = a.alloc(9);
    REQUIRE(p2m);
    CHECK(p2m->raw() % 512 == 0);
    CHECK(p2m->raw() != p0->raw());
    auto p1 = a.alloc(0);
    REQUIRE(p1);
    CHECK(p1->raw() == p0->raw() + 1);
    CHECK(a.used_pages() == 514);
    a.free(*p0, 0);
    a.free(*p1, 0);
    a.free(*p2m, 9);
    CHECK(a.used_pages() == 0);
    // After merging, two 1 GiB blocks exist again.
    auto g0 = a.alloc(18), g1 = a.alloc(18), g2 = a.alloc(18);
    CHECK(g0);
    CHECK(g1);
    CHECK_FALSE(g2);
}

TEST_CASE("misaligned free and bad geometry are rejected", "[mem]") {
    CHECK_THROWS(HostPageAllocator(Hpa(4096), 1ull << 30));
    HostPageAllocator a(Hpa(0), 1ull << 30);
    CHECK_THROWS(a.free(Pfn(1), 9));
    CHECK_FALSE(a.alloc(19));
}
