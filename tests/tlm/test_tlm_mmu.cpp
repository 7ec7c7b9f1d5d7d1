// Test benches for MmuModule: its page-table references leave through the `mem`
// socket, to a user-written target or to hvsim's own caches and a replaceable DRAM.
#include <catch2/catch.hpp>

#include "models/mem/tlm_mem.hpp"
#include "models/mmu/mmu_module.hpp"
#include "tests/mmu/pt_builder.hpp"
#include "tests/tlm/tlm_bench.hpp"

using namespace hvsim;
using namespace hvsim::mmu;
using namespace hvsim::test;
using hvsim::mmu::test::TableBuilder;
using sc_core::sc_time;
using sc_core::SC_NS;

namespace {

constexpr uint64_t kPeriod = 500;   // ps
constexpr uint64_t kGpa = 0x4000'0000ull, kHpa = 0x1'4000'0000ull, kPool = 0x1000'0000ull;

MmuConfig nested_only() {
    MmuConfig c;
    c.guest_levels = 0;
    c.nested_levels = 4;
    c.nested_format = NestedFormat::npt;
    c.l1 = {8, 8, 1};
    c.l2 = {32, 4, 7};
    c.pwc = {0, 0, 2};
    c.ntlb = {0, 0, 2};
    return c;
}

// A memory model of the user's: serves 8-byte accesses from its own PhysMem, 10 ns each.
struct TableMemory : sc_core::sc_module, tlm::tlm_fw_transport_if<> {
    tlm::tlm_target_socket<> socket;
    PhysMem& mem;
    uint64_t reads = 0, writes = 0;
    TableMemory(sc_core::sc_module_name n, PhysMem& m) : sc_module(n), socket("socket"), mem(m) { socket.bind(*this); }
    void b_transport(tlm::tlm_generic_payload& t, sc_time& d) override {
        REQUIRE(t.get_data_length() == 8);
        uint64_t v;
        if (t.is_read()) {
            ++reads;
            v = mem.read64(Hpa(t.get_address()));
            std::memcpy(t.get_data_ptr(), &v, 8);
        } else {
            ++writes;
            std::memcpy(&v, t.get_data_ptr(), 8);
            mem.write64(Hpa(t.get_address()), v);
        }
        d += sc_time(10, SC_NS);
        t.set_response_status(tlm::TLM_OK_RESPONSE);
    }
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload&, tlm::tlm_dmi&) override { return false; }
    unsigned transport_dbg(tlm::tlm_generic_payload&) override { return 0; }
};

}  // namespace

TEST_CASE("mmu module: a walk's references are transactions with the target's annotated delay") {
    PhysMem mem;
    TableBuilder nested(mem, NestedPte{NestedFormat::npt}, 4, kPool);
    nested.map(kGpa, kHpa, PgLevel::k4K);
    MmuModule mmu("mmu", nested_only(), kPeriod);
    TableMemory tm("tables", mem);
    mmu.mem.bind(tm.socket);
    elaborate();
    CHECK_FALSE(mmu.direct());

    mmu.mmu().set_nested_root(Hpa(nested.root()));
    const TranslateResult r = mmu.mmu().translate(Gva(kGpa + 0x123), AccessType::read, false);
    REQUIRE(r.ok());
    CHECK(r.hpa.raw() == kHpa + 0x123);
    CHECK(r.mem_refs == 4);
    // TLB lookups (1 + 7) and four dependent reads of 10 ns = 20 cycles each.
    CHECK(r.cycles == 1 + 7 + 4 * 20);
    CHECK(tm.reads == 4);
    // Accessed bits set in the four entries: posted stores, no delay charged.
    CHECK(tm.writes == 4);
    CHECK(mmu.transactions() == 8);
    CHECK((nested.read(kGpa, 1) & pte::A) != 0);
    // A TLB hit makes no transaction.
    CHECK(mmu.mmu().translate(Gva(kGpa + 0x200), AccessType::read, false).tlb_hit);
    CHECK(mmu.transactions() == 8);
}

TEST_CASE("mmu module: bound to hvsim's caches it calls them directly, and a user DRAM target sees the fills") {
    PhysMem mem;
    TableBuilder nested(mem, NestedPte{NestedFormat::npt}, 4, kPool);
    nested.map(kGpa, kHpa, PgLevel::k4K);
    nested.map(kGpa + kPageSize, kHpa + kPageSize, PgLevel::k4K);
    MemHierarchyConfig h;
    h.levels = {{"l1d", 32 * 1024, 8, 4}, {"l2", 256 * 1024, 8, 14}};
    MmuModule mmu("mmu", nested_only(), kPeriod);
    MemHierarchy caches("caches", h, kPeriod);
    PhysMemTarget phys("phys", mem);
    CountingDram dram("dram", sc_time(30, SC_NS));   // in place of the built-in DRAM
    mmu.mem.bind(caches.in);
    caches.phys.bind(phys.socket);
    caches.dram.bind(dram.socket);
    elaborate();
    CHECK(mmu.direct());

    mmu.mmu().set_nested_root(Hpa(nested.root()));
    TranslateResult r = mmu.mmu().translate(Gva(kGpa), AccessType::read, false);
    REQUIRE(r.ok());
    // Four misses in every level, each a line fill from the DRAM target: 30 ns = 60 cycles.
    CHECK(r.cycles == 1 + 7 + 4 * 60);
    CHECK(dram.reads == 4);
    CHECK(dram.writes == 0);
    // The next page's entries share the four lines: L1D hits, no DRAM traffic.
    r = mmu.mmu().translate(Gva(kGpa + kPageSize), AccessType::read, false);
    REQUIRE(r.ok());
    CHECK(r.hpa.raw() == kHpa + kPageSize);
    CHECK(r.cycles == 1 + 7 + 4 * 4);
    CHECK(dram.reads == 4);
    CHECK(mmu.transactions() == 0);   // direct calls, no payloads
    CHECK(phys.transactions() == 0);

    // Same walk, same cycles as the plain C++ MMU over a hierarchy with a fixed 60-cycle DRAM.
    PhysMem mem2;
    TableBuilder nested2(mem2, NestedPte{NestedFormat::npt}, 4, kPool);
    nested2.map(kGpa, kHpa, PgLevel::k4K);
    h.dram_cycles = 60;
    CacheHierarchy plain_caches(h);
    Mmu plain(nested_only(), mem2, plain_caches);
    plain.set_nested_root(Hpa(nested2.root()));
    CHECK(plain.translate(Gva(kGpa), AccessType::read, false).cycles == 1 + 7 + 4 * 60);
}

TEST_CASE("mmu module: bound to physical memory it takes the DMI grants and walks through them") {
    PhysMem mem;
    TableBuilder nested(mem, NestedPte{NestedFormat::npt}, 4, kPool);
    nested.map(kGpa, kHpa, PgLevel::k4K);
    MmuModule mmu("mmu", nested_only(), kPeriod);
    PhysMemTarget phys("phys", mem);
    mmu.mem.bind(phys.socket);
    elaborate();
    CHECK_FALSE(mmu.direct());

    mmu.mmu().set_nested_root(Hpa(nested.root()));
    TranslateResult r = mmu.mmu().translate(Gva(kGpa + 0x10), AccessType::read, false);
    REQUIRE(r.ok());
    CHECK(r.hpa.raw() == kHpa + 0x10);
    // Four reads through b_transport, each answered with the DMI hint: one grant per table
    // page (read-write: the pages hold their own bytes), through which the A-bit stores go.
    CHECK(mmu.transactions() == 4);
    CHECK(mmu.dmi_grants() == 4);
    CHECK(mmu.dmi_accesses() == 4);
    CHECK(phys.dmi_grants() == 4);
    CHECK((nested.read(kGpa, 1) & pte::A) != 0);
    CHECK(r.cycles == 1 + 7);   // physical memory annotates no delay; DMI grants none either
    // A cold walk again: every reference through the pointers, no transaction.
    mmu.mmu().flush_all();
    r = mmu.mmu().translate(Gva(kGpa + 0x10), AccessType::read, false);
    REQUIRE(r.ok());
    CHECK(r.mem_refs == 4);
    CHECK(mmu.transactions() == 4);
    CHECK(mmu.dmi_accesses() == 8);
}
