// Test bench for the debug port (models/mem/debug_port.hpp): the result writers and the
// invariant checks read simulated memory by transport_dbg, through a cache hierarchy or
// at physical memory, and must not change what the run measures.
#include <catch2/catch.hpp>

#include <array>
#include <cstring>

#include "models/mem/debug_port.hpp"
#include "models/mem/tlm_mem.hpp"
#include "tests/tlm/tlm_bench.hpp"

using namespace hvsim;
using namespace hvsim::test;
using sc_core::sc_time;
using sc_core::SC_NS;

namespace {

constexpr uint64_t kPeriod = 500;   // ps
constexpr uint64_t kA = 0x12'3440ull, kB = 0x45'6780ull;

MemHierarchyConfig two_levels() {
    MemHierarchyConfig h;
    h.levels = {{"l1d", 32 * 1024, 8, 4}, {"l2", 256 * 1024, 8, 14}};
    return h;
}

struct Counters {
    std::vector<uint64_t> hits, misses;
    uint64_t dram_refs = 0, dram_reads = 0, phys_tr = 0, dmi_grants = 0;
    bool operator==(const Counters&) const = default;
};

Counters counters(const MemHierarchy& caches, const CountingDram& dram, const PhysMemTarget& phys) {
    Counters c;
    for (const auto& l : caches.caches().stats().levels) {
        c.hits.push_back(l.hits);
        c.misses.push_back(l.misses);
    }
    c.dram_refs = caches.caches().stats().dram;
    c.dram_reads = dram.reads;
    c.phys_tr = phys.transactions();
    c.dmi_grants = phys.dmi_grants();
    return c;
}

}  // namespace

TEST_CASE("debug port: a debug read through the cache hierarchy returns the bytes and changes no counter or cache state") {
    PhysMem mem;
    mem.write64(Hpa(kA), 0x1122'3344'5566'7788ull);
    mem.write64(Hpa(kB), 0x99aa'bbcc'ddee'ff00ull);
    std::array<uint8_t, kPageSize> page{};
    for (size_t i = 0; i < page.size(); ++i) page[i] = uint8_t(i * 7 + 3);
    mem.write(Hpa(0x80'0000), page.data(), page.size());

    MemHierarchy caches("caches", two_levels(), kPeriod);
    PhysMemTarget phys("phys", mem);
    CountingDram dram("dram", sc_time(30, SC_NS));
    DebugMemPort debug("debug");
    caches.phys.bind(phys.socket);
    caches.dram.bind(dram.socket);
    debug.socket.bind(caches.in);   // through the hierarchy: it forwards transport_dbg
    elaborate();

    // A timed reference warms kA's line (a miss in both levels, one fill).
    Cycles c = 0;
    CHECK(caches.read64(kA, c) == 0x1122'3344'5566'7788ull);
    CHECK(dram.reads == 1);
    const Counters before = counters(caches, dram, phys);

    // Debug reads: the same bytes as the timed path and the store; nothing counted.
    CHECK(debug.read64(Hpa(kA)) == 0x1122'3344'5566'7788ull);
    CHECK(debug.read64(Hpa(kB)) == 0x99aa'bbcc'ddee'ff00ull);
    uint64_t entries[512];
    REQUIRE(debug.read_page(Pfn(0x800), entries));
    CHECK(std::memcmp(entries, page.data(), kPageSize) == 0);
    CHECK(debug.read64(Hpa(0x7000'0000)) == 0);   // never written: zeros, nothing allocated
    CHECK(mem.page_if_present(Pfn(0x7'0000)) == nullptr);
    CHECK(counters(caches, dram, phys) == before);
    CHECK(debug.reads() == 4);

    // No cache state changed: kB's line is still cold (a miss and a fill), kA's still hot.
    c = 0;
    CHECK(caches.read64(kB, c) == 0x99aa'bbcc'ddee'ff00ull);
    CHECK(dram.reads == 2);
    CHECK(c == 60);   // a miss in every level costs the fill (30 ns)
    c = 0;
    caches.read64(kA, c);
    CHECK(c == 4);
}

TEST_CASE("debug port: at physical memory a debug read grants no DMI, counts no transaction and invalidates nothing") {
    PhysMem mem;
    mem.write64(Hpa(kA), 42);
    PhysMemTarget phys("phys", mem);
    TestInitiator cpu("cpu");
    DebugMemPort debug("debug");
    cpu.socket.bind(phys.socket);
    debug.socket.bind(phys.socket);
    elaborate();

    tlm::tlm_dmi d;
    REQUIRE(cpu.dmi(tlm::TLM_READ_COMMAND, kA, d));   // a grant is out
    CHECK(debug.read64(Hpa(kA)) == 42);
    CHECK(debug_read64(cpu.socket, Hpa(kA)) == 42);   // the free function, on any socket
    CHECK(phys.transactions() == 0);
    CHECK(phys.dmi_grants() == 1);
    CHECK(phys.dmi_invalidations() == 0);
    CHECK(cpu.invalidations.empty());
    // A short read past the top of the address space: the target serves none, the buffer is zeroed.
    uint64_t v = ~0ull;
    CHECK_FALSE(debug.read(Hpa((1ull << 52) - 4), &v, 8));
    CHECK(v == 0);
}
