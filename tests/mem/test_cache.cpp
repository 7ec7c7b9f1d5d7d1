#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <vector>

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

namespace {
// Resident set of this process in bytes (/proc/self/statm, second field, pages).
uint64_t rss_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
        std::fclose(f);
    }
    return uint64_t(resident) * 4096;
}
}  // namespace

TEST_CASE("a cache costs the host memory of the sets it touches, not its size", "[mem][scale]") {
    // 64 hierarchies with a 32 MiB LLC each (a 64-vCPU VM): 12 bytes of state per line
    // would be 384 MiB if the arrays were filled up front.
    MemHierarchyConfig c;
    c.levels = {{"l1d", 32 * 1024, 8, 4}, {"l2", 1 << 20, 8, 14}, {"llc", 32u << 20, 16, 50}};
    c.dram_cycles = 360;
    const uint64_t before = rss_bytes();
    std::vector<std::unique_ptr<CacheHierarchy>> hs;
    for (int i = 0; i < 64; ++i) hs.push_back(std::make_unique<CacheHierarchy>(c));
    for (auto& h : hs)
        for (uint64_t a = 0; a < 64 * 4096; a += 64) h->access(Hpa(a));
    const uint64_t grown = rss_bytes() - before;
#if defined(HVSIM_ASAN)
    // AddressSanitizer's allocator backs and poisons what calloc hands out, so RSS says
    // nothing about laziness there; the ordinary build checks it.
    (void)grown;
#else
    CHECK(grown < (64u << 20));
#endif
    // Still a working cache: the lines just touched hit in L2 (256 KiB fits, L1 does not).
    CHECK(hs[0]->access(Hpa(0)) == 14);
    hs[0]->invalidate_all();
    CHECK(hs[0]->access(Hpa(0)) == 360);
}

namespace {
// L1 2 sets x 2 ways, L2 8 sets x 2 ways, LLC 16 sets x 2 ways.
MemHierarchyConfig three(LlcPolicy p) {
    MemHierarchyConfig c;
    c.levels = {{"l1d", 2 * 64 * 2, 2, 4}, {"l2", 8 * 64 * 2, 2, 14}, {"llc", 16 * 64 * 2, 2, 50}};
    c.dram_cycles = 300;
    c.llc_policy = p;
    return c;
}
}  // namespace

TEST_CASE("victim LLC: filled only by L2 evictions, a hit moves the line back up", "[mem]") {
    CacheHierarchy h(three(LlcPolicy::victim));
    // Lines 0, 8, 16 map to set 0 of the 8-set L2 (and set 0 of the 2-set L1).
    CHECK(h.access(Hpa(0 * 64)) == 300);
    h.flush_line(Hpa(64 * 1000));   // break the last-line filter
    CHECK(h.stats().castouts == 0);
    h.access(Hpa(8 * 64));
    h.access(Hpa(16 * 64));   // evicts line 0 from the L2: it goes to the LLC
    CHECK(h.stats().castouts == 1);
    CHECK(h.stats().levels[2].hits == 0);
    CHECK(h.access(Hpa(0 * 64)) == 50);   // an LLC hit (its miss did not fill the LLC)
    CHECK(h.stats().levels[2].hits == 1);
    CHECK(h.stats().castouts == 2);       // coming back, 0 evicted 8 from the L2
    h.access(Hpa(24 * 64));               // evicts 16
    h.access(Hpa(32 * 64));               // evicts 0: it went back to the LLC only now
    CHECK(h.stats().castouts == 4);
    CHECK(h.access(Hpa(8 * 64)) == 50);
    CHECK(h.access(Hpa(0 * 64)) == 50);
}

TEST_CASE("inclusive LLC: a miss fills it, so a line the L2 lost still hits there", "[mem]") {
    CacheHierarchy h(three(LlcPolicy::inclusive));
    h.access(Hpa(0 * 64));
    h.access(Hpa(8 * 64));
    h.access(Hpa(16 * 64));   // evicts 0 from the L2
    CHECK(h.stats().castouts == 0);
    CHECK(h.access(Hpa(0 * 64)) == 50);
    CHECK(h.access(Hpa(0 * 64)) == 4);
}

TEST_CASE("a shared LLC: one core's fill is another core's hit", "[mem]") {
    const MemHierarchyConfig c = three(LlcPolicy::inclusive);
    SharedCache llc(c.levels.back(), c.line_bytes);
    CacheHierarchy a(c, &llc), b(c, &llc), lone(c);
    CHECK(a.access(Hpa(0x4000)) == 300);
    CHECK(b.access(Hpa(0x4000)) == 50);     // the LLC a filled
    CHECK(lone.access(Hpa(0x4000)) == 300); // a private LLC did not see it
    // Emptying a core's private levels leaves the shared LLC alone.
    a.invalidate_all();
    CHECK(a.access(Hpa(0x4000)) == 50);
    // The geometry must match the hierarchy's last level.
    MemHierarchyConfig other = c;
    other.levels.back().size_bytes *= 2;
    CHECK_THROWS(CacheHierarchy(other, &llc));
}

TEST_CASE("a shared victim LLC: a line one core evicted is an LLC hit for another", "[mem]") {
    const MemHierarchyConfig c = three(LlcPolicy::victim);
    SharedCache llc(c.levels.back(), c.line_bytes);
    CacheHierarchy a(c, &llc), b(c, &llc);
    a.access(Hpa(0 * 64));
    CHECK(b.access(Hpa(8 * 64)) == 300);
    a.access(Hpa(8 * 64));
    a.access(Hpa(16 * 64));                // a's L2 evicts line 0 into the shared LLC
    CHECK(b.access(Hpa(0 * 64)) == 50);
    CHECK(a.stats().castouts == 1);
    CHECK(b.stats().levels[2].hits == 1);
}

TEST_CASE("the last-line filter: a repeated line is an L1 hit and changes nothing else", "[mem]") {
    // The same reference stream, once with repeats and once with each repeat replaced by
    // a flush of an unrelated line (which defeats the filter): same latencies, same misses.
    CacheHierarchy f(three(LlcPolicy::victim)), g(three(LlcPolicy::victim));
    uint64_t s = 12345;
    Cycles tf = 0, tg = 0;
    for (int i = 0; i < 20000; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const Hpa a((s >> 33) % 4096 * 64);
        for (int r = 0; r < 3; ++r) {
            tf += f.access(a);
            g.flush_line(Hpa(0x10000000));   // never referenced: resets g's filter only
            tg += g.access(a);
        }
    }
    CHECK(tf == tg);
    for (size_t l = 0; l < 3; ++l) {
        CHECK(f.stats().levels[l].hits == g.stats().levels[l].hits);
        CHECK(f.stats().levels[l].misses == g.stats().levels[l].misses);
    }
    CHECK(f.stats().dram == g.stats().dram);
    CHECK(f.stats().levels[0].hits >= 40000);   // the two repeats of every reference
}

TEST_CASE("data references are counted apart and share the walker's sets", "[mem]") {
    CacheHierarchy h(three(LlcPolicy::inclusive));
    CHECK(h.access_data(Hpa(0x1000)) == 300);
    CHECK(h.access(Hpa(0x1000)) == 4);   // a table read of the line the data brought in
    CHECK(h.stats().data_refs == 1);
    CHECK(h.stats().dram == 1);
}

TEST_CASE("a hierarchy without cache levels sends every reference to DRAM", "[mem]") {
    MemHierarchyConfig c;
    c.dram_cycles = 100;
    CacheHierarchy h(c);
    CHECK(h.access(Hpa(0x40)) == 100);
    CHECK(h.access(Hpa(0x40)) == 100);   // no L1 to hit: the last-line filter stays off
    CHECK(h.stats().dram == 2);
}

// ---- overlapped misses and the L2 stream prefetcher ----
namespace {
// L1 32 KiB 8-way, L2 256 KiB 8-way, LLC 1 MiB 16-way: big enough that a few pages of
// prefetched lines stay in the L2.
MemHierarchyConfig streaming(LlcPolicy p, unsigned mshrs, bool prefetch) {
    MemHierarchyConfig c;
    c.levels = {{"l1d", 32 << 10, 8, 4}, {"l2", 256 << 10, 8, 14}, {"llc", 1 << 20, 16, 50}};
    c.dram_cycles = 300;
    c.llc_policy = p;
    c.mshrs = mshrs;
    c.prefetch.l2_stream = prefetch;
    return c;
}
// Records every line fill (demand or prefetch) and answers with a fixed latency.
struct RecordingFill : LineFill {
    std::vector<uint64_t> lines;
    Cycles fill(uint64_t a) override {
        lines.push_back(a);
        return 300;
    }
};
// A clock the test moves by hand.
struct TestClock : CoreClock {
    Cycles t = 0;
    Cycles cycles_now() const override { return t; }
};
}  // namespace

TEST_CASE("prefetch: a sequential stream of loads finds its lines prefetched", "[mem][prefetch]") {
    for (auto pol : {LlcPolicy::inclusive, LlcPolicy::victim}) {
        CacheHierarchy on(streaming(pol, 48, true)), off(streaming(pol, 48, false));
        Cycles t_on = 0, t_off = 0;
        for (uint64_t l = 0; l < 64; ++l) {
            t_on += on.access_data(Hpa(0x100000 + l * 64));
            t_off += off.access_data(Hpa(0x100000 + l * 64));
        }
        CHECK(off.stats().prefetches == 0);
        CHECK(off.stats().dram == 64);
        CHECK(t_off == 64 * 300);
        // Three demand misses train the stream (two steps up); the rest of the page is
        // prefetched, a few lines still in flight when the load comes.
        CHECK(on.stats().dram == 3);
        CHECK(on.stats().prefetches == 61);
        CHECK(on.stats().prefetch_hits == 61);
        CHECK(on.stats().prefetch_late > 0);
        CHECK(on.stats().levels[1].hits == 61);
        CHECK(t_on < t_off / 4);
    }
}

TEST_CASE("prefetch: a descending stream is followed too", "[mem][prefetch]") {
    CacheHierarchy h(streaming(LlcPolicy::inclusive, 48, true));
    for (int l = 63; l >= 0; --l) h.access_data(Hpa(0x200000 + uint64_t(l) * 64));
    CHECK(h.stats().dram == 3);
    CHECK(h.stats().prefetch_hits == 61);
}

TEST_CASE("prefetch: random references train no stream", "[mem][prefetch]") {
    CacheHierarchy h(streaming(LlcPolicy::victim, 48, true));
    uint64_t s = 99;
    for (int i = 0; i < 20000; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        h.access_data(Hpa((s >> 20) % (1ull << 30) & ~63ull));   // 1 GiB, 16 Ki pages
    }
    CHECK(h.stats().prefetches == 0);
    CHECK(h.stats().prefetch_hits == 0);
}

TEST_CASE("prefetch: never beyond the 4 KiB page of the stream", "[mem][prefetch]") {
    RecordingFill f;
    CacheHierarchy h(streaming(LlcPolicy::inclusive, 48, true));
    h.set_line_fill(&f);
    const uint64_t page = 0x300000;
    for (uint64_t l = 0; l < 64; ++l) h.access_data(Hpa(page + l * 64));
    for (int l = 63; l >= 0; --l) h.access_data(Hpa(page + 0x10000 + uint64_t(l) * 64));
    REQUIRE(f.lines.size() == 128);   // every line of both pages once, demand or prefetch
    for (uint64_t a : f.lines) CHECK(((a >= page && a < page + 4096) || (a >= page + 0x10000 && a < page + 0x11000)));
    // The lines next to the pages were never fetched: the first reference to each misses.
    const uint64_t d = h.stats().dram;
    h.access_data(Hpa(page + 4096));
    h.access_data(Hpa(page + 0x10000 - 64));
    CHECK(h.stats().dram == d + 2);
}

TEST_CASE("prefetch: the walker's table reads are dependent loads and train nothing", "[mem][prefetch]") {
    CacheHierarchy h(streaming(LlcPolicy::inclusive, 48, true));
    Cycles t = 0;
    for (uint64_t l = 0; l < 64; ++l) t += h.access(Hpa(0x400000 + l * 64));
    CHECK(h.stats().prefetches == 0);
    CHECK(t == 64 * 300);
}

TEST_CASE("MSHRs: store misses are posted until every MSHR is busy", "[mem][mshr]") {
    TestClock clk;
    CacheHierarchy h(streaming(LlcPolicy::inclusive, 4, false));
    h.set_clock(&clk);
    // Stores to lines in different pages (no stream): the first four retire at once.
    for (int i = 0; i < 4; ++i) {
        CHECK(h.access_data(Hpa(0x1000000 + uint64_t(i) * 0x10000), true) == 4);
        clk.t += 10;
    }
    CHECK(h.inflight() == 4);
    // The fifth waits for the oldest fill (issued at 0, done at 300; now is 40).
    CHECK(h.access_data(Hpa(0x1000000 + 4 * 0x10000), true) == 260 + 4);
    CHECK(h.stats().mshr_full == 1);
    CHECK(h.stats().mshr_wait_cycles == 260);
    CHECK(h.inflight() == 4);
    CHECK(h.stats().posted_stores == 5);
    // A load of a line whose posted store is still in flight waits for the rest of it.
    clk.t = 100;
    CHECK(h.access_data(Hpa(0x1000000 + 0x10000)) == 210);   // issued at 10, done at 310
    // Once time passes every fill, the MSHRs are free again.
    clk.t = 10000;
    CHECK(h.access_data(Hpa(0x2000000), true) == 4);
    CHECK(h.inflight() == 1);
}

TEST_CASE("MSHRs: 0 is the blocking model, a store miss waits like a load", "[mem][mshr]") {
    CacheHierarchy h(streaming(LlcPolicy::inclusive, 0, true));
    for (uint64_t l = 0; l < 64; ++l) CHECK(h.access_data(Hpa(0x500000 + l * 64), true) == 300);
    CHECK(h.stats().prefetches == 0);   // no MSHR to track a prefetch: the prefetcher is off
    CHECK(h.stats().posted_stores == 0);
}

TEST_CASE("MSHRs bound the prefetches in flight", "[mem][prefetch][mshr]") {
    TestClock clk;   // time stands still: nothing completes
    CacheHierarchy h(streaming(LlcPolicy::inclusive, 4, true));
    h.set_clock(&clk);
    for (uint64_t l = 0; l < 64; ++l) {
        h.access_data(Hpa(0x600000 + l * 64), true);
        CHECK(h.inflight() <= 4);
    }
    CHECK(h.stats().prefetch_dropped > 0);
}

// A reference model of the hierarchy's replacement: per level and set, a list of lines,
// most recent first; private levels filled on every miss, a victim LLC only with the lines
// the L2 evicts (a hit there moves the line back up), an inclusive one on every miss.
namespace {
struct RefHierarchy {
    struct Level {
        unsigned sets, ways;
        Cycles hit;
        std::vector<std::list<uint64_t>> s;
        std::list<uint64_t>& set(uint64_t line) { return s[line % sets]; }
        bool take(uint64_t line) {   // hit: to the front
            auto& l = set(line);
            auto it = std::find(l.begin(), l.end(), line);
            if (it == l.end()) return false;
            l.splice(l.begin(), l, it);
            return true;
        }
        std::optional<uint64_t> push(uint64_t line) {   // fill: the evicted line, if any
            auto& l = set(line);
            l.push_front(line);
            if (l.size() <= ways) return std::nullopt;
            const uint64_t out = l.back();
            l.pop_back();
            return out;
        }
        void drop(uint64_t line) { set(line).remove(line); }
    };
    std::vector<Level> lv;
    bool victim;
    Cycles dram;
    Cycles access(uint64_t line) {
        const size_t n = lv.size(), filled = victim ? n - 1 : n;
        size_t i = 0;
        for (; i < n; ++i) {
            if (i >= filled) {
                auto& l = lv[i].set(line);
                auto it = std::find(l.begin(), l.end(), line);
                if (it == l.end()) continue;
                l.erase(it);   // a victim LLC hit leaves the LLC
                break;
            }
            if (lv[i].take(line)) break;
        }
        for (size_t j = 0; j < std::min(i, filled); ++j) {
            const auto out = lv[j].push(line);
            if (victim && j + 1 == filled && out && !lv[n - 1].take(*out)) lv[n - 1].push(*out);
        }
        return i < n ? lv[i].hit : dram;
    }
    void flush(uint64_t line) {
        for (auto& l : lv) l.drop(line);
    }
};
}  // namespace

TEST_CASE("replacement matches a reference LRU model under random traffic and flushes", "[mem]") {
    const bool victim = GENERATE(false, true);
    // Power-of-two set counts (a mask), and others (the set by a precomputed reciprocal) with
    // line numbers far above 32 bits.
    const bool odd = GENERATE(false, true);
    const uint64_t base = odd ? (1ull << 45) + 12345 : 0;
    MemHierarchyConfig c;
    c.levels = {{"l1d", 4 * 4 * 64, 4, 4}, {"l2", 8 * 8 * 64, 8, 14}, {"llc", 16 * 16 * 64, 16, 40}};
    if (odd) c.levels = {{"l1d", 3 * 4 * 64, 4, 4}, {"l2", 6 * 8 * 64, 8, 14}, {"llc", 15 * 15 * 64, 15, 40}};
    c.dram_cycles = 300;
    c.llc_policy = victim ? LlcPolicy::victim : LlcPolicy::inclusive;
    CacheHierarchy h(c);
    RefHierarchy ref{{}, victim, 300};
    for (const auto& l : c.levels) {
        const unsigned sets = unsigned(l.size_bytes / 64 / l.ways);
        ref.lv.push_back({sets, l.ways, l.hit_cycles, std::vector<std::list<uint64_t>>(sets)});
    }
    std::mt19937_64 rng(7);
    uint64_t hits = 0, misses = 0;
    for (int op = 0; op < 40000; ++op) {
        const uint64_t line = base + rng() % 600;
        if (rng() % 25 == 0) {
            h.flush_line(Hpa(line * 64));
            ref.flush(line);
            continue;
        }
        const Cycles want = ref.access(line);
        REQUIRE(h.access(Hpa(line * 64 + rng() % 64)) == want);
        (want == 300 ? misses : hits) += 1;
    }
    CHECK(hits > 10000);
    CHECK(misses > 1000);
    if (victim) CHECK(h.stats().castouts > 1000);
}
