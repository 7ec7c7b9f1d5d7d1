// Test benches for PhysMemTarget (physical memory) and MemHierarchy (one core's caches).
#include <catch2/catch.hpp>

#include "models/mem/dram.hpp"
#include "models/mem/tlm_mem.hpp"
#include "tests/tlm/tlm_bench.hpp"

using namespace hvsim;
using namespace hvsim::test;
using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_PS;

TEST_CASE("phys: b_transport reads and writes bytes, annotates no delay") {
    PhysMem mem;
    PhysMemTarget phys("phys", mem);
    TestInitiator ini("ini");
    ini.socket.bind(phys.socket);
    elaborate();

    CHECK(ini.read64(0x5000) == 0);
    CHECK(mem.pages_resident() == 0);   // a read does not touch a page
    CHECK(ini.write64(0x5008, 0x1122334455667788ull) == sc_core::SC_ZERO_TIME);
    CHECK(ini.tr.is_response_ok());
    CHECK(ini.tr.is_dmi_allowed());
    CHECK(mem.read64(Hpa(0x5008)) == 0x1122334455667788ull);
    sc_time d;
    CHECK(ini.read64(0x5008, &d) == 0x1122334455667788ull);
    CHECK(d == sc_core::SC_ZERO_TIME);
    // A read across a page boundary.
    mem.write64(Hpa(0x6000), 0xaabbccddeeff0011ull);
    uint8_t buf[16];
    ini.transport(tlm::TLM_READ_COMMAND, 0x5ff8, buf, 16);
    uint64_t lo, hi;
    std::memcpy(&lo, buf, 8);
    std::memcpy(&hi, buf + 8, 8);
    CHECK(lo == 0);
    CHECK(hi == 0xaabbccddeeff0011ull);
    CHECK(phys.transactions() == 4);
    // Beyond 52 bits: an address error, not a crash.
    uint64_t v = 0;
    ini.transport(tlm::TLM_READ_COMMAND, 1ull << 52, &v, 8);
    CHECK(ini.tr.get_response_status() == tlm::TLM_ADDRESS_ERROR_RESPONSE);
}

TEST_CASE("phys: a write marked as a fill keeps a page shared, an unmarked one copies it") {
    PhysMem mem;
    PhysMemTarget phys("phys", mem);
    TestInitiator ini("ini");
    ini.socket.bind(phys.socket);
    elaborate();

    mem.fill(Hpa(0x10000), 0xab, kPageSize);   // a uniform page
    REQUIRE(mem.is_uniform(Pfn(0x10)));
    std::vector<uint8_t> ab(64, 0xab);
    FillExtension ext;
    ini.setup(tlm::TLM_WRITE_COMMAND, 0x10040, ab.data(), 64);
    ini.tr.set_extension(&ext);
    sc_time d = sc_core::SC_ZERO_TIME;
    ini.socket->b_transport(ini.tr, d);
    ini.tr.clear_extension(&ext);
    CHECK(mem.is_uniform(Pfn(0x10)));          // same value: nothing to copy
    CHECK(mem.pages_resident() == 0);
    ini.transport(tlm::TLM_WRITE_COMMAND, 0x10040, ab.data(), 64);
    CHECK_FALSE(mem.is_uniform(Pfn(0x10)));    // a plain write gives the page its own copy
    CHECK(mem.pages_resident() == 1);
}

TEST_CASE("phys: DMI is granted a page at a time and invalidated when the page's backing changes") {
    PhysMem mem;
    PhysMemTarget phys("phys", mem);
    TestInitiator a("a"), b("b");
    a.socket.bind(phys.socket);
    b.socket.bind(phys.socket);
    elaborate();

    tlm::tlm_dmi d;
    // Untouched page: read-only, reads as zeros.
    REQUIRE(a.dmi(tlm::TLM_READ_COMMAND, 0x7123, d));
    CHECK(d.get_start_address() == 0x7000);
    CHECK(d.get_end_address() == 0x7fff);
    CHECK(d.is_read_allowed());
    CHECK_FALSE(d.is_write_allowed());
    CHECK(d.get_dmi_ptr()[0x123] == 0);
    tlm::tlm_dmi w;
    CHECK_FALSE(a.dmi(tlm::TLM_WRITE_COMMAND, 0x7000, w));   // no write access to the zero page
    CHECK(phys.dmi_grants() == 1);

    // First write patches the page (one word over zeros): every initiator hears the
    // grant of the zero page is stale.
    a.write64(0x7100, 42);
    REQUIRE(a.invalidations.size() == 1);
    CHECK(a.invalidations[0] == std::pair<uint64_t, uint64_t>{0x7000, 0x7fff});
    CHECK(b.invalidations.size() == 1);
    CHECK(mem.pages_patched() == 1);
    // A grant needs the page's bytes at one address: the page gets its own copy (its
    // backing changes once more), read-write, and writes through the pointer are seen.
    REQUIRE(b.dmi(tlm::TLM_WRITE_COMMAND, 0x7100, w));
    CHECK(a.invalidations.size() == 2);
    CHECK(mem.pages_resident() == 1);
    CHECK(w.is_read_write_allowed());
    CHECK(w.get_dmi_ptr()[0x100] == 42);
    w.get_dmi_ptr()[0x108] = 7;
    CHECK(mem.read64(Hpa(0x7108)) == 7);
    // Discarding the page invalidates again.
    mem.discard(Pfn(7));
    CHECK(a.invalidations.size() == 3);
    CHECK(phys.dmi_invalidations() == 3);
}

TEST_CASE("phys: transport_dbg reads and writes without counting a transaction") {
    PhysMem mem;
    PhysMemTarget phys("phys", mem);
    TestInitiator ini("ini");
    ini.socket.bind(phys.socket);
    elaborate();
    uint64_t v = 0x55;
    CHECK(ini.dbg(tlm::TLM_WRITE_COMMAND, 0x9000, &v, 8) == 8);
    v = 0;
    CHECK(ini.dbg(tlm::TLM_READ_COMMAND, 0x9000, &v, 8) == 8);
    CHECK(v == 0x55);
    CHECK(phys.transactions() == 0);
}

namespace {
MemHierarchyConfig small_caches() {
    MemHierarchyConfig h;
    h.line_bytes = 64;
    h.dram_cycles = 1000;   // unused: the DRAM target decides
    h.levels = {{"l1d", 64 * 8, 8, 4}, {"l2", 64 * 64, 8, 14}};
    return h;
}
constexpr uint64_t kPeriod = 500;   // ps
}  // namespace

TEST_CASE("caches: a read's delay is the hit level's latency, a miss adds the DRAM target's delay") {
    PhysMem mem;
    PhysMemTarget phys("phys", mem);
    CountingDram dram("dram", sc_time(30, SC_NS));
    MemHierarchy caches("caches", small_caches(), kPeriod);
    TestInitiator ini("ini");
    ini.socket.bind(caches.in);
    caches.dram.bind(dram.socket);
    caches.phys.bind(phys.socket);
    elaborate();

    mem.write64(Hpa(0x20008), 0xfeed);
    sc_time d;
    CHECK(ini.read64(0x20008, &d) == 0xfeed);
    // Miss everywhere: 30 ns from the DRAM target = 60 cycles of 500 ps.
    CHECK(d == sc_time(30, SC_NS));
    CHECK(dram.reads == 1);
    CHECK(dram.addrs.back() == 0x20000);   // the line fill, line-aligned
    CHECK(ini.read64(0x20010, &d) == 0);   // same line: L1D hit
    CHECK(d == sc_time(4 * kPeriod, SC_PS));
    CHECK(dram.reads == 1);
    CHECK(caches.caches().stats().levels[0].hits == 1);
    CHECK(caches.caches().stats().dram == 1);

    // Stores are posted: no delay, no cache or DRAM traffic, bytes in physical memory.
    CHECK(ini.write64(0x30000, 99) == sc_core::SC_ZERO_TIME);
    CHECK(mem.read64(Hpa(0x30000)) == 99);
    CHECK(dram.reads == 1);
    CHECK(dram.writes == 0);
    CHECK(caches.caches().stats().levels[0].misses == 1);

    // No DMI through a cache (it would bypass the latency); debug reads reach memory
    // and leave the caches alone.
    tlm::tlm_dmi dm;
    CHECK_FALSE(ini.dmi(tlm::TLM_READ_COMMAND, 0x20000, dm));
    uint64_t v = 0;
    CHECK(ini.dbg(tlm::TLM_READ_COMMAND, 0x30000, &v, 8) == 8);
    CHECK(v == 99);
    CHECK(caches.caches().stats().levels[0].misses == 1);

    // The direct calls hvsim's MMU uses behave the same.
    Cycles c = 0;
    CHECK(caches.read64(0x20008, c) == 0xfeed);
    CHECK(c == 4);
    c = 0;
    caches.read64(0x40000, c);
    CHECK(c == 60);
    CHECK(dram.reads == 2);
}

TEST_CASE("caches: the built-in DRAM target keeps the fixed latency model") {
    PhysMem mem;
    PhysMemTarget phys("phys", mem);
    DramConfig dc;
    dc.fixed_cycles = 123;
    DramTarget dram("dram", dc, kPeriod);
    MemHierarchy caches("caches", small_caches(), kPeriod);
    TestInitiator ini("ini");
    ini.socket.bind(caches.in);
    caches.dram.bind(dram.socket);
    caches.phys.bind(phys.socket);
    elaborate();
    sc_time d;
    ini.read64(0x1000, &d);
    CHECK(d == sc_time(123 * kPeriod, SC_PS));
    CHECK(dram.timing().stats().reads == 1);
    // The same as the plain C++ hierarchy without a DRAM target.
    MemHierarchyConfig h = small_caches();
    h.dram_cycles = 123;
    CacheHierarchy plain(h);
    CHECK(plain.access(Hpa(0x1000)) == 123);
}

TEST_CASE("caches: a DRAM fill of an encrypted page pays the encryption adder, a shared page's does not, "
          "prefetches are fills through the DRAM socket and pay it too") {
    struct OnePage : EncryptedPages {
        bool encrypted(Pfn p) const override { return p.raw() == 0x20; }
    } enc;
    PhysMem mem;
    PhysMemTarget phys("phys", mem);
    CountingDram dram("dram", sc_time(30, SC_NS));   // 60 cycles
    MemHierarchyConfig h = small_caches();
    h.mshrs = 16;
    h.prefetch.l2_stream = true;
    MemHierarchy caches("caches", h, kPeriod);
    TestInitiator ini("ini");
    ini.socket.bind(caches.in);
    caches.dram.bind(dram.socket);
    caches.phys.bind(phys.socket);
    elaborate();
    caches.set_encryption(&enc, 10);

    Cycles c = 0;
    caches.read64(0x20000, c);   // encrypted page
    CHECK(c == 70);
    CHECK(caches.encrypted_fills() == 1);
    c = 0;
    caches.read64(0x30000, c);   // shared page
    CHECK(c == 60);
    CHECK(caches.encrypted_fills() == 1);
    c = 0;
    caches.read64(0x20000, c);   // a hit decrypts nothing
    CHECK(c == 4);
    CHECK(caches.encrypted_fills() == 1);
    // A stream of loads over the rest of the encrypted page: three demand misses train the
    // streamer, which fetches the other 60 lines through the DRAM socket.
    for (uint64_t l = 1; l < 64; ++l) caches.data_cycles(Hpa(0x20000 + l * 64));
    CHECK(caches.caches().stats().prefetches == 60);
    CHECK(dram.reads == 2 + 3 + 60);
    CHECK(caches.encrypted_fills() == 1 + 3 + 60);
}
