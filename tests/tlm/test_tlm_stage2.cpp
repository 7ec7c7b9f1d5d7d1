// Test benches for the arm64 translation module (stage2::Stage2Module): its descriptor
// reads leave through the `mem` socket (mmu::WalkPort) to a test target that records every
// transaction, annotates a delay and, when asked, grants DMI and later withdraws it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <vector>

#include "models/mem/tlm_mem.hpp"
#include "models/stage2/stage2_translator.hpp"
#include "tests/stage2/s2_builder.hpp"
#include "tests/tlm/tlm_bench.hpp"

using namespace hvsim;
using namespace hvsim::stage2;
using namespace hvsim::stage2::test;
using hvsim::test::CountingDram;
using hvsim::test::elaborate;
using mmu::AccessType;
using mmu::TranslateResult;
using sc_core::sc_time;
using sc_core::SC_NS;

namespace {

constexpr uint64_t kPeriod = 500;   // ps
constexpr uint64_t kS2Pool = 0x4000'0000;     // stage-2 tables (PA)
constexpr uint64_t kS1Pool = 0x1000'0000;     // stage-1 tables (IPA)
constexpr uint64_t kS1Shift = 0x8000'0000;    // stage-1 table IPAs live at PA = IPA + this

// No TLB, no walk cache: every translation is a cold walk.
Stage2Config cold() {
    Stage2Config c;
    c.l1 = {0, 0, 0};
    c.l2 = {0, 0, 0};
    c.s2tlb = {0, 0, 0};
    c.walk_cache = {0, 0, 0};
    return c;
}

// A memory of the user's: serves the module's 8-byte accesses from a PhysMem, records them,
// annotates `latency`; with `grant_dmi` it sets the DMI hint and grants a page at a time.
struct RecordingMemory : sc_core::sc_module, tlm::tlm_fw_transport_if<> {
    tlm::tlm_target_socket<> socket;
    PhysMem& mem;
    sc_time latency;
    bool grant_dmi = false;
    struct Tr {
        bool write;
        uint64_t addr;
        unsigned len;
    };
    std::vector<Tr> log;
    uint64_t dmi_grants = 0;

    RecordingMemory(sc_core::sc_module_name n, PhysMem& m, sc_time lat) : sc_module(n), socket("socket"), mem(m), latency(lat) {
        socket.bind(*this);
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_time& d) override {
        log.push_back({t.is_write(), t.get_address(), t.get_data_length()});
        uint64_t v;
        if (t.is_read()) {
            v = mem.read64(Hpa(t.get_address()));
            std::memcpy(t.get_data_ptr(), &v, 8);
        } else {
            std::memcpy(&v, t.get_data_ptr(), 8);
            mem.write64(Hpa(t.get_address()), v);
        }
        d += latency;
        t.set_dmi_allowed(grant_dmi);
        t.set_response_status(tlm::TLM_OK_RESPONSE);
    }
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& t, tlm::tlm_dmi& d) override {
        if (!grant_dmi) return false;
        const uint64_t base = t.get_address() & ~kPageMask;
        d.set_start_address(base);
        d.set_end_address(base + kPageSize - 1);
        d.set_dmi_ptr(mem.page(hpa_to_pfn(Hpa(base))));
        d.set_granted_access(tlm::tlm_dmi::DMI_ACCESS_READ_WRITE);
        d.set_read_latency(latency);
        d.set_write_latency(latency);
        ++dmi_grants;
        return true;
    }
    unsigned transport_dbg(tlm::tlm_generic_payload&) override { return 0; }
    void invalidate(uint64_t start, uint64_t end) { socket->invalidate_direct_mem_ptr(start, end); }
};

// Stage 1 (4K granule, `va` bits) over stage 2 (IPA `ipa` bits) in one PhysMem; the stage-1
// table pages are mapped at stage 2 (PA = IPA + kS1Shift), the data IPA at 0x9000'0000.
struct Tables {
    S2Geometry geo;
    S1Geometry s1g;
    DescBuilder s2, s1;
    uint64_t va;
    static constexpr uint64_t kIpa = 0x2000'0000, kPa = 0x9000'0000;
    Tables(PhysMem& mem, unsigned va_bits, unsigned ipa_bits)
        : geo(kvm_stage2_geometry(Granule::k4K, ipa_bits)),
          s1g(s1_geometry(Granule::k4K, va_bits)),
          s2(DescBuilder::stage2(mem, geo, kS2Pool)),
          s1(DescBuilder::stage1(mem, s1g, kS1Pool, [](uint64_t a) { return a + kS1Shift; })),
          va(0x12'3456'0000ull & ((1ull << va_bits) - 1)) {
        s1.map(va, kIpa, 3, kS1Rw);
        for (uint64_t a = kS1Pool; a < s1.next_free(); a += kPageSize) s2.map(a, a + kS1Shift, 3, kS2Rw);
        s2.map(kIpa, kPa, 3, kS2Rw);
    }
    void load(Stage2Mmu& m) const {
        m.set_vtcr(kvm_vtcr(geo));
        m.set_vttbr(1, Hpa(s2.root()));
        m.set_tcr(Granule::k4K, s1g.va_bits);
        m.set_ttbr0(7, Gpa(s1.root()));
    }
};

}  // namespace

TEST_CASE("stage-2 module: a cold 2D walk is (n+1)(m+1)-1 read transactions at the tables' addresses, each with the target's delay") {
    struct C {
        unsigned va, ipa, n, m;
    };
    const C cs[] = {{48, 40, 4, 3}, {48, 48, 4, 4}};
    PhysMem mem;
    Tables t40(mem, cs[0].va, cs[0].ipa);
    PhysMem mem48;
    Tables t48(mem48, cs[1].va, cs[1].ipa);
    PhysMem mem0;
    Tables t0(mem0, cs[0].va, cs[0].ipa);
    Stage2Module a("s2_40", cold(), kPeriod), b("s2_48", cold(), kPeriod), z("s2_zero", cold(), kPeriod);
    RecordingMemory ma("mem40", mem, sc_time(10, SC_NS)), mb("mem48", mem48, sc_time(10, SC_NS));
    RecordingMemory mz("mem_zero", mem0, sc_core::SC_ZERO_TIME);
    a.mem.bind(ma.socket);
    b.mem.bind(mb.socket);
    z.mem.bind(mz.socket);
    elaborate();
    CHECK_FALSE(a.direct());

    t0.load(z.mmu());   // the same 4 x 3 walk over a target that annotates no delay
    const TranslateResult base = z.mmu().translate(Gva(t0.va + 0x40), AccessType::read, false);
    REQUIRE(base.ok());

    struct Run {
        Stage2Module& mod;
        RecordingMemory& tgt;
        Tables& t;
        C c;
    };
    Run runs[] = {{a, ma, t40, cs[0]}, {b, mb, t48, cs[1]}};
    for (Run& r : runs) {
        INFO("S1 " << r.c.n << " levels x S2 " << r.c.m << " levels");
        r.t.load(r.mod.mmu());
        const TranslateResult res = r.mod.mmu().translate(Gva(r.t.va + 0x40), AccessType::read, false);
        REQUIRE(res.ok());
        CHECK(res.hpa.raw() == Tables::kPa + 0x40);
        const uint64_t refs = (r.c.n + 1) * (r.c.m + 1) - 1;
        CHECK(res.mem_refs == refs);
        CHECK(r.mod.transactions() == refs);   // descriptors carry AF: no writes
        REQUIRE(r.tgt.log.size() == refs);
        // Every reference is an 8-byte read of a descriptor in a table page: n in stage-1
        // tables (at their stage-2 output addresses), (n + 1) m in stage-2 tables.
        uint64_t s1 = 0, s2 = 0;
        for (const auto& tr : r.tgt.log) {
            CHECK_FALSE(tr.write);
            CHECK(tr.len == 8);
            CHECK(tr.addr % 8 == 0);
            if (tr.addr >= kS2Pool && tr.addr < r.t.s2.next_free()) ++s2;
            else if (tr.addr >= kS1Pool + kS1Shift && tr.addr < r.t.s1.next_free() + kS1Shift) ++s1;
        }
        CHECK(s1 == r.c.n);
        CHECK(s2 == (r.c.n + 1) * r.c.m);
        // The walk starts at the stage-2 root (translating TTBR0's IPA) and ends at the
        // stage-2 leaf of the data IPA, whose index is the IPA's level-3 index.
        CHECK((r.tgt.log.front().addr & ~kPageMask) == (r.t.s2.root() & ~kPageMask));
        CHECK((r.tgt.log.back().addr & kPageMask) == ((Tables::kIpa >> 12) & 511) * 8);
        // Each dependent read costs the delay the target annotated: 10 ns = 20 cycles.
        if (r.c.ipa == cs[0].ipa) CHECK(res.cycles == base.cycles + refs * 20);
    }
    CHECK(base.mem_refs == 19);
}

TEST_CASE("stage-2 module: DMI granted by the target serves later walks without transactions until it is invalidated") {
    PhysMem mem;
    Tables t(mem, 48, 40);
    Stage2Module s2m("s2", cold(), kPeriod);
    RecordingMemory tgt("mem", mem, sc_time(10, SC_NS));
    tgt.grant_dmi = true;
    s2m.mem.bind(tgt.socket);
    elaborate();
    Stage2Mmu& m = s2m.mmu();
    t.load(m);
    m.set_stage1_off();   // a stage-2 walk alone: three table pages (IPA 40: levels 1-3)

    const TranslateResult r1 = m.translate(Gva(Tables::kIpa + 0x8), AccessType::read, false);
    REQUIRE(r1.ok());
    CHECK(r1.mem_refs == 3);
    CHECK(s2m.transactions() == 3);
    CHECK(s2m.dmi_grants() == 3);   // the target's hint on each: one grant per table page
    CHECK(tgt.dmi_grants == 3);

    // The same walk again: through the granted pointers, with the granted read latency.
    m.flush_all();
    const TranslateResult r2 = m.translate(Gva(Tables::kIpa + 0x8), AccessType::read, false);
    REQUIRE(r2.ok());
    CHECK(r2.hpa == r1.hpa);
    CHECK(r2.cycles == r1.cycles);
    CHECK(s2m.transactions() == 3);
    CHECK(s2m.dmi_accesses() == 3);

    // A changed descriptor is seen through DMI (the pointer is the memory, not a copy).
    t.s2.map(Tables::kIpa, Tables::kPa + 0x10'0000, 3, kS2Rw);
    m.flush_all();
    CHECK(m.translate(Gva(Tables::kIpa + 0x8), AccessType::read, false).hpa.raw() == Tables::kPa + 0x10'0008);

    // The target withdraws every grant: the walker falls back to transactions.
    tgt.invalidate(0, ~0ull);
    CHECK(s2m.dmi_invalidations() == 3);
    m.flush_all();
    REQUIRE(m.translate(Gva(Tables::kIpa + 0x8), AccessType::read, false).ok());
    CHECK(s2m.transactions() == 6);
    // An invalidation of a range holding none of the grants leaves them.
    tgt.invalidate(0, kPageSize - 1);
    CHECK(s2m.dmi_invalidations() == 3);
}

TEST_CASE("stage-2 module: bound to hvsim's caches it calls them directly and the walk's line fills reach the DRAM target") {
    PhysMem mem;
    Tables t(mem, 48, 40);
    MemHierarchyConfig h;
    h.levels = {{"l1d", 32 * 1024, 8, 4}, {"l2", 256 * 1024, 8, 14}};
    Stage2Module s2m("s2", cold(), kPeriod);
    MemHierarchy caches("caches", h, kPeriod);
    PhysMemTarget phys("phys", mem);
    CountingDram dram("dram", sc_time(30, SC_NS));
    s2m.mem.bind(caches.in);
    caches.phys.bind(phys.socket);
    caches.dram.bind(dram.socket);
    elaborate();
    CHECK(s2m.direct());
    t.load(s2m.mmu());
    const TranslateResult r = s2m.mmu().translate(Gva(t.va), AccessType::read, false);
    REQUIRE(r.ok());
    CHECK(r.mem_refs == 19);
    CHECK(s2m.transactions() == 0);
    CHECK(phys.transactions() == 0);
    // One fill per distinct line the walk touched, each line once.
    std::vector<uint64_t> lines(dram.addrs);
    std::sort(lines.begin(), lines.end());
    CHECK(std::adjacent_find(lines.begin(), lines.end()) == lines.end());
    CHECK(dram.reads == lines.size());
    // The stage-2 walks of the stage-1 table pages read the same upper descriptors again:
    // those references hit in the L1D.
    CHECK(dram.reads < 19);
}
