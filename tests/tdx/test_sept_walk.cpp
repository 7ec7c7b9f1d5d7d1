// The CPU's walk of a TD's two EPTs (models/mmu): private GPAs through the secure EPT the
// TDX module built (real S-EPT entries in simulated memory, from the secure EPTP), shared
// GPAs through KVM's shared EPT (SDM: a TD vCPU's VMCS holds both EPTPs; Linux
// tdx_load_mmu_pgd() writes the shared one).
#include <catch2/catch.hpp>

#include "models/mmu/mmu.hpp"
#include "models/tdx/tdx_module.hpp"
#include "tests/mmu/pt_builder.hpp"

using namespace hvsim;
using namespace hvsim::tdx;

namespace {

constexpr uint64_t G = 0x40000000;
constexpr uint64_t kShared = 1ull << 47;

struct WalkRig {
    PhysMem mem;
    CacheHierarchy cache{MemHierarchyConfig{}};
    TdxModule m{mem};
    Hpa tdr{0x10000000};
    uint64_t next = 0x10100000;
    mmu::test::TableBuilder shared{mem, mmu::NestedPte{mmu::NestedFormat::ept}, 4, 0x20000000};
    mmu::Mmu hw;

    static mmu::MmuConfig config() {
        mmu::MmuConfig c;
        c.guest_levels = 0;
        c.nested_levels = 4;
        c.nested_format = mmu::NestedFormat::ept;
        c.shared_gpa_bit = 47;
        return c;
    }
    WalkRig() : hw(config(), mem, cache) {
        m.create_td(tdr, Hpa(0x10001000), 4);
        m.vp_create(tdr);
        REQUIRE(m.tdh_mr_finalize(tdr).rax == 0);
        for (unsigned l = 3; l > 0; --l)
            REQUIRE(m.tdh_mem_sept_add(gpa_level(G & ~((1ull << (12 + 9 * l)) - 1), l), tdr, page()).rax == 0);
        hw.set_nested_root(Hpa(shared.root()));
        hw.set_secure_nested_root(m.sept_root(tdr));
    }
    Hpa page() {
        const Hpa p(next);
        next += kPageSize;
        return p;
    }
};

}  // namespace

TEST_CASE("sept walk: a private GPA translates through the S-EPT, its shared alias through KVM's EPT",
          "[tdx][walk]") {
    WalkRig r;
    const Hpa priv = r.page();
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, priv).rax == 0);
    // PENDING: RWX = 0, the CPU's walk faults (the module then decides #VE or a TD exit).
    auto t = r.hw.translate_gpa(Gpa(G), mmu::AccessType::read, true);
    CHECK(t.status == mmu::TranslateResult::Status::npf);
    CHECK(t.fault_gpa.raw() == G);
    REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G, 0)).rax == 0);
    r.hw.flush_all();   // the TD entry after the accept (the faulting walk filled the PWC)
    t = r.hw.translate_gpa(Gpa(G + 0x10), mmu::AccessType::write, true);
    REQUIRE(t.ok());
    CHECK(t.hpa.raw() == priv.raw() + 0x10);
    // 4 references: PML4E (TDCS root page), PDPTE, PDE, PTE - all S-EPT pages.
    CHECK(t.mem_refs == 4);
    // No A/D write-back into the S-EPT: the D bit holds the entry's state.
    CHECK(r.m.sept_read(r.tdr, G, 0).state == SeptState::mapped);
    CHECK(r.hw.stats().ad_writes == 0);

    // The shared alias is not mapped in KVM's EPT yet: an EPT violation at gpa | BIT(47).
    t = r.hw.translate_gpa(Gpa(G), mmu::AccessType::read, false);
    REQUIRE(t.status == mmu::TranslateResult::Status::npf);
    CHECK(t.fault_gpa.raw() == (G | kShared));
    const uint64_t shared_page = 0x30000000;
    r.shared.map(G | kShared, shared_page, PgLevel::k4K);
    t = r.hw.translate_gpa(Gpa(G), mmu::AccessType::read, false);
    REQUIRE(t.ok());
    CHECK(t.hpa.raw() == shared_page);
    // The private translation is unchanged by the shared mapping.
    t = r.hw.translate_gpa(Gpa(G + 0x10), mmu::AccessType::read, true);
    REQUIRE(t.ok());
    CHECK(t.hpa.raw() == priv.raw() + 0x10);
}

TEST_CASE("sept walk: a blocked private page faults once the TLBs are flushed", "[tdx][walk]") {
    WalkRig r;
    const Hpa priv = r.page();
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, priv).rax == 0);
    REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G, 0)).rax == 0);
    REQUIRE(r.hw.translate_gpa(Gpa(G), mmu::AccessType::read, true).ok());
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0);
    // Cached until the TLB-epoch flush at the next TD entry (TRACK + kick).
    CHECK(r.hw.translate_gpa(Gpa(G), mmu::AccessType::read, true).ok());
    r.hw.flush_all();
    CHECK(r.hw.translate_gpa(Gpa(G), mmu::AccessType::read, true).status == mmu::TranslateResult::Status::npf);
}

TEST_CASE("sept walk: a 2M private leaf maps a 2M page", "[tdx][walk]") {
    WalkRig r;
    const uint64_t g2 = G + (2ull << 20);
    const Hpa big(0x40000000);
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(g2, 1), r.tdr, big).rax == 0);
    REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(g2, 1)).rax == 0);
    const auto t = r.hw.translate_gpa(Gpa(g2 + 0x12345), mmu::AccessType::read, true);
    REQUIRE(t.ok());
    CHECK(t.hpa.raw() == big.raw() + 0x12345);
    CHECK(t.mem_refs == 3);
}
