#include <catch2/catch.hpp>

#include <vector>

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

TEST_CASE("buddy allocator: reused free-list nodes keep the lowest-block order", "[mem]") {
    // Many splits and merges (each an insert and an erase of a free-list node, the nodes
    // recycled through the allocator's pool) give the same placement as a fresh allocator.
    HostPageAllocator a(Hpa(1ull << 30), 1ull << 30);
    std::vector<Pfn> got;
    for (int round = 0; round < 3; ++round) {
        got.clear();
        for (int i = 0; i < 1000; ++i) got.push_back(*a.alloc(0));
        for (int i = 0; i < 1000; ++i) CHECK(got[size_t(i)].raw() == ((1ull << 30) >> 12) + uint64_t(i));
        // Free the odd pages first, then the even ones: every free of an even page merges.
        for (int i = 1; i < 1000; i += 2) a.free(got[size_t(i)], 0);
        for (int i = 0; i < 1000; i += 2) a.free(got[size_t(i)], 0);
        CHECK(a.used_pages() == 0);
    }
    auto g = a.alloc(18);
    REQUIRE(g);
    CHECK(g->raw() == (1ull << 30) >> 12);
}
