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

TEST_CASE("buddy allocator: alloc_bulk takes exactly the pages alloc(0) calls would, leaving the same free lists",
          "[mem]") {
    // Fragment two identical allocators the same way: order-0 holes, a split 2M block.
    HostPageAllocator a(Hpa(1ull << 30), 2ull << 30), b(Hpa(1ull << 30), 2ull << 30);
    for (HostPageAllocator* x : {&a, &b}) {
        std::vector<Pfn> held;
        for (int i = 0; i < 40; ++i) held.push_back(*x->alloc(0));
        const Pfn big = *x->alloc(9);
        for (int i = 0; i < 40; i += 3) x->free(held[size_t(i)], 0);
        x->free(big, 9);
        (void)x->alloc(3);
    }
    for (const uint64_t n : {uint64_t(1), uint64_t(5), uint64_t(777), uint64_t(300000)}) {
        INFO(n);
        std::vector<Pfn> one_by_one;
        for (uint64_t i = 0; i < n; ++i) one_by_one.push_back(*b.alloc(0));
        std::vector<Pfn> bulk;
        for (const auto& r : a.alloc_bulk(n))
            for (uint64_t i = 0; i < r.count; ++i) bulk.push_back(r.first + i);
        REQUIRE(bulk == one_by_one);
        REQUIRE(a.free_pages() == b.free_pages());
        // The same free lists: every later allocation agrees.
        for (unsigned o : {0u, 0u, 2u, 9u, 1u, 0u}) REQUIRE(a.alloc(o) == b.alloc(o));
    }
}

TEST_CASE("buddy allocator: alloc_bulk of more than is free takes nothing", "[mem]") {
    HostPageAllocator a(Hpa(1ull << 30), 1ull << 30);
    (void)a.alloc(0);
    CHECK(a.alloc_bulk(262144).empty());
    CHECK(a.used_pages() == 1);
    const auto runs = a.alloc_bulk(262143);   // the rest: the 1 GiB block's pages after the first
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].first == Pfn(((1ull << 30) >> 12) + 1));
    CHECK(runs[0].count == 262143);
    CHECK(a.free_pages() == 0);
}

TEST_CASE("buddy allocator: free_range leaves the free lists one-page frees would, in any order", "[mem]") {
    // Two identical allocators with a fragmented start: 3,000 single pages taken, every
    // thousandth given back, plus a 2M block and an order-3 block taken after them.
    HostPageAllocator a(Hpa(1ull << 30), 2ull << 30), b(Hpa(1ull << 30), 2ull << 30);
    std::vector<Pfn> held;
    for (HostPageAllocator* x : {&a, &b}) {
        held.clear();
        for (int i = 0; i < 3000; ++i) held.push_back(*x->alloc(0));
        for (int i = 0; i < 3000; i += 1000) x->free(held[size_t(i)], 0);
        (void)x->alloc(9);
        (void)x->alloc(3);
    }
    REQUIRE(a.free_lists() == b.free_lists());
    // Runs of consecutive in-use pages, unaligned at both ends and crossing block sizes.
    for (const auto& [from, to] : {std::pair<int, int>{1, 7}, {8, 14}, {15, 1000}, {1001, 2000}, {2001, 2999}}) {
        INFO("pages " << from << " to " << to);
        a.free_range(held[size_t(from)], uint64_t(to - from));
        for (int i = to - 1; i >= from; --i) b.free(held[size_t(i)], 0);   // highest first
        REQUIRE(a.free_pages() == b.free_pages());
        REQUIRE(a.free_lists() == b.free_lists());
    }
    // A whole aligned 1 GiB is one free-list entry again.
    HostPageAllocator c(Hpa(1ull << 30), 1ull << 30);
    const auto runs = c.alloc_bulk(c.total_pages());
    REQUIRE(runs.size() == 1);
    c.free_range(runs[0].first, runs[0].count);
    CHECK(c.free_lists()[HostPageAllocator::kMaxOrder] == std::vector<uint64_t>{(1ull << 30) >> kPageShift});
    CHECK(c.free_pages() == c.total_pages());
}
