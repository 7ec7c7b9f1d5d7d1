#include <catch2/catch.hpp>

#include <list>
#include <map>
#include <random>

#include "models/mmu/assoc_cache.hpp"

using namespace hvsim::mmu;

namespace {
uint64_t key(uint64_t n, unsigned code = 1) { return (n << 4) | code; }
}

TEST_CASE("a disabled cache never hits and never stores", "[mmu][cache]") {
    AssocCache<int> c(0, 0);
    c.insert(key(1), 5);
    CHECK(c.find(key(1)) == nullptr);
    CHECK(c.size() == 0);
    CHECK_FALSE(c.enabled());
    CHECK_THROWS_AS(AssocCache<int>(10, 4), std::invalid_argument);
    CHECK_THROWS_AS(AssocCache<int>(8, 0), std::invalid_argument);
}

TEST_CASE("LRU replacement works per set", "[mmu][cache]") {
    AssocCache<int> c(4, 2);   // 2 sets x 2 ways; even n -> set 0
    REQUIRE(c.sets() == 2);
    c.insert(key(0), 10);
    c.insert(key(2), 12);
    c.insert(key(1), 11);      // set 1, does not disturb set 0
    REQUIRE(c.find(key(0)) != nullptr);   // 0 becomes most recent in set 0
    c.insert(key(4), 14);      // evicts 2
    CHECK(c.evictions() == 1);
    CHECK(c.peek(key(2)) == nullptr);
    CHECK(*c.peek(key(0)) == 10);
    CHECK(*c.peek(key(4)) == 14);
    CHECK(*c.peek(key(1)) == 11);
    CHECK(c.size() == 3);

    c.insert(key(4), 44);      // replace in place: no eviction
    CHECK(c.evictions() == 1);
    CHECK(*c.peek(key(4)) == 44);
    // peek does not touch: 0 is now LRU of set 0 (4 was just written).
    c.insert(key(6), 16);
    CHECK(c.peek(key(0)) == nullptr);
    CHECK(c.count_code(1) == 3);
    c.insert(key(8, 2), 1);    // code 2 lands in set 0 as well (n = 8)
    CHECK(c.count_code(2) == 1);
    CHECK(c.count_code(1) == 2);
}

TEST_CASE("erase and erase_if keep the index consistent", "[mmu][cache]") {
    AssocCache<int> c(8, 8);
    for (int i = 0; i < 8; ++i) c.insert(key(uint64_t(i) * 1024), i);
    CHECK(c.erase(key(3 * 1024)));
    CHECK_FALSE(c.erase(key(3 * 1024)));
    CHECK(c.erase_if([](uint64_t, const int& v) { return v % 2 == 0; }) == 4);
    CHECK(c.size() == 3);
    for (int i : {1, 5, 7}) CHECK(*c.peek(key(uint64_t(i) * 1024)) == i);
    for (int i : {0, 2, 3, 4, 6}) CHECK(c.peek(key(uint64_t(i) * 1024)) == nullptr);
    c.clear();
    CHECK(c.size() == 0);
    CHECK(c.peek(key(1024)) == nullptr);
    // Refill after a clear: every slot reusable, nothing stale in the index.
    for (int i = 0; i < 8; ++i) c.insert(key(uint64_t(i) * 7), i);
    CHECK(c.size() == 8);
    CHECK(c.evictions() == 0);
    for (int i = 0; i < 8; ++i) CHECK(*c.peek(key(uint64_t(i) * 7)) == i);
}

// Random operations against a straightforward reference model (per-set LRU lists).
TEST_CASE("matches a reference LRU model under random traffic", "[mmu][cache]") {
    // Both organisations: scanned sets up to AssocCache::kScanWays ways (12, 16; 3 sets: not a
    // power of two), hashed wider ones (17, 64, 72).
    const auto geo = GENERATE(std::pair<unsigned, unsigned>{64, 64}, std::pair<unsigned, unsigned>{96, 12},
                              std::pair<unsigned, unsigned>{72, 72}, std::pair<unsigned, unsigned>{48, 16},
                              std::pair<unsigned, unsigned>{34, 17});
    AssocCache<uint64_t> c(geo.first, geo.second);
    const unsigned sets = geo.first / geo.second;
    std::vector<std::list<uint64_t>> model(sets);   // front = most recent
    std::map<uint64_t, uint64_t> vals;
    std::mt19937_64 rng(42);
    uint64_t hits = 0, clears = 0, rare_present = 0;
    for (int op = 0; op < 50000; ++op) {
        // Codes 1-3 often; code 4 seldom and on few keys, so its count keeps returning to 0.
        const bool rare = rng() % 50 == 0;
        const uint64_t k = rare ? key(rng() % 4, 4) : key(rng() % 300, unsigned(rng() % 3) + 1);
        auto& set = model[(k >> 4) % sets];
        auto it = std::find(set.begin(), set.end(), k);
        if (rng() % 2000 == 0) {   // flush: both the sparse and the full sweep get exercised
            c.clear();
            for (auto& s : model) s.clear();
            ++clears;
            continue;
        }
        switch (rng() % 4) {
        case 0:
        case 1: {   // find
            uint64_t* v = c.find(k);
            REQUIRE((v != nullptr) == (it != set.end()));
            if (v) {
                ++hits;
                REQUIRE(*v == vals[k]);
                set.splice(set.begin(), set, it);
            }
            break;
        }
        case 2: {   // insert (an absent key half the time through insert_new, which skips the look-up)
            const uint64_t v = rng();
            if (it == set.end() && rng() % 2) c.insert_new(k, v);
            else c.insert(k, v);
            vals[k] = v;
            if (it != set.end()) set.erase(it);
            else if (set.size() == geo.second) set.pop_back();
            set.push_front(k);
            break;
        }
        default:    // erase
            REQUIRE(c.erase(k) == (it != set.end()));
            if (it != set.end()) set.erase(it);
        }
        // Per-code counts and the mask of codes present follow the live entries.
        unsigned count[16] = {};
        for (auto& s : model)
            for (uint64_t m : s) ++count[m & 15u];
        unsigned mask = 0;
        for (unsigned code = 0; code < 16; ++code) {
            REQUIRE(c.count_code(code) == count[code]);
            if (count[code]) mask |= 1u << code;
        }
        REQUIRE(c.code_mask() == mask);
        rare_present += (mask >> 4) & 1;
    }
    CHECK(rare_present > 100);   // code 4 came and went
    CHECK(rare_present < 49000);
    size_t live = 0;
    for (auto& s : model) live += s.size();
    CHECK(c.size() == live);
    CHECK(hits > 500);   // the test exercised the hit path (the 34-entry cache hits least)
    CHECK(clears > 10);
}
