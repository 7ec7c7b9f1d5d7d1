// Stage-1 and stage-2 walks over hand-built descriptor tables (each granule and level
// count), the (n+1)(m+1)-1 reference count, blocks, and stage-2 faults with their ESR_EL2
// and HPFAR fields (arm64 case ids 1, 2, 3, 6, 7).
#include <catch2/catch.hpp>

#include "models/stage2/stage2_mmu.hpp"
#include "tests/stage2/s2_builder.hpp"

using namespace hvsim;
using namespace hvsim::stage2;
using namespace hvsim::stage2::test;
using mmu::AccessType;
using mmu::TranslateResult;

namespace {

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

struct Rig {
    PhysMem mem;
    CountingMemory port{mem};
    S2Geometry geo;
    DescBuilder s2;
    Stage2Mmu mmu;
    Rig(Granule g, unsigned ipa, Stage2Config cfg = cold())
        : geo(kvm_stage2_geometry(g, ipa)), s2(DescBuilder::stage2(mem, geo, kS2Pool)), mmu(cfg, port) {
        mmu.set_vtcr(kvm_vtcr(geo));
        mmu.set_vttbr(1, Hpa(s2.root()));
    }
};

}  // namespace

TEST_CASE("walk: stage 2 alone for every granule and IPA size resolves through `levels` descriptors") {
    const std::pair<Granule, unsigned> cases[] = {
        {Granule::k4K, 40},  {Granule::k4K, 44},  {Granule::k4K, 48},  {Granule::k4K, 52},
        {Granule::k16K, 40}, {Granule::k16K, 44}, {Granule::k16K, 48}, {Granule::k16K, 52},
        {Granule::k64K, 40}, {Granule::k64K, 44}, {Granule::k64K, 48}, {Granule::k64K, 52}};
    for (auto [g, ipa_bits] : cases) {
        INFO("granule shift " << granule_shift(g) << ", IPA " << ipa_bits);
        Rig r(g, ipa_bits);
        const uint64_t gs = granule_size(g);
        // The lowest page, one in the last root entry, and one in the middle.
        const uint64_t top = (1ull << ipa_bits) - gs;
        const uint64_t ipas[] = {0, top, (1ull << (ipa_bits - 1)) + 5 * gs};
        uint64_t pa = 0x2'0000'0000ull;
        for (uint64_t ipa : ipas) {
            r.s2.map(ipa, pa, 3, kS2Rw);
            const TranslateResult t = r.mmu.translate(Gva(ipa + 0x18), AccessType::read, false);
            REQUIRE(t.ok());
            CHECK(t.hpa.raw() == pa + 0x18);
            CHECK(t.mem_refs == r.geo.levels);
            pa += gs;
        }
        // Past the IPA size: a stage-2 translation fault at the start level.
        if (ipa_bits < 52) {
            const TranslateResult t = r.mmu.translate(Gva(1ull << ipa_bits), AccessType::read, false);
            CHECK(t.status == TranslateResult::Status::npf);
            CHECK(esr::is_translation(t.error_code));
        }
    }
}

TEST_CASE("walk: arm64 case 1: IPA 0xFF_FFFF_F000 walks through root index 1023 (the second concatenated page)") {
    Rig r(Granule::k4K, 40);
    const uint64_t slot = r.s2.slot(0xFFFFFFF000ull, 1);
    CHECK(slot == r.s2.root() + 1023 * 8);
    r.s2.map(0xFFFFFFF000ull, 0x3000'0000, 3, kS2Rw);
    const TranslateResult t = r.mmu.translate(Gva(0xFFFFFFF123ull), AccessType::write, false);
    REQUIRE(t.ok());
    CHECK(t.hpa.raw() == 0x3000'0123);
    CHECK(t.mem_refs == 3);
}

TEST_CASE("walk: arm64 case 2: 4K, IPA 44: an access at 1 << 44 is a stage-2 translation fault") {
    Rig r(Granule::k4K, 44);
    CHECK(r.geo.root_entries() == 32);
    const TranslateResult t = r.mmu.translate(Gva(1ull << 44), AccessType::read, false);
    REQUIRE(t.status == TranslateResult::Status::npf);
    CHECK(esr::is_translation(t.error_code));
    CHECK(esr::ec(t.error_code) == esr::EC_DABT_LOW);
    CHECK(t.fault_gpa.raw() == 1ull << 44);
}

TEST_CASE("walk: arm64 case 3: 4K, IPA 52 (LPA2): a high IPA resolves from level 0, four references") {
    Rig r(Granule::k4K, 52);
    const uint64_t ipa = (1ull << 51) + 0x7000;
    r.s2.map(ipa, 0x5000'0000, 3, kS2Rw);
    const TranslateResult t = r.mmu.translate(Gva(ipa), AccessType::read, false);
    REQUIRE(t.ok());
    CHECK(t.hpa.raw() == 0x5000'0000);
    CHECK(t.mem_refs == 4);
}

TEST_CASE("walk: blocks at each granule's block levels, a block where none is allowed faults") {
    SECTION("4K: 1 GiB at L1 and 2 MiB at L2") {
        Rig r(Granule::k4K, 40);
        r.s2.map(0x4000'0000, 0x8000'0000, 1, kS2Rw);
        r.s2.map(0x20'0000, 0x60'0000, 2, kS2Rw);
        TranslateResult t = r.mmu.translate(Gva(0x4000'0000 + 0x1234'5678), AccessType::read, false);
        REQUIRE(t.ok());
        CHECK(t.hpa.raw() == 0x8000'0000 + 0x1234'5678);
        CHECK(t.mem_refs == 1);
        t = r.mmu.translate(Gva(0x20'0000 + 0x1'2345), AccessType::read, false);
        REQUIRE(t.ok());
        CHECK(t.hpa.raw() == 0x60'0000 + 0x1'2345);
        CHECK(t.mem_refs == 2);
    }
    SECTION("16K: 32 MiB at L2; 64K: 512 MiB at L2") {
        Rig a(Granule::k16K, 40);
        a.s2.map(0x200'0000, 0x1000'0000, 2, kS2Rw);
        TranslateResult t = a.mmu.translate(Gva(0x200'0000 + 0x1ff'fff0), AccessType::read, false);
        REQUIRE(t.ok());
        CHECK(t.hpa.raw() == 0x1000'0000 + 0x1ff'fff0);
        Rig b(Granule::k64K, 44);
        b.s2.map(0x2000'0000, 0x4000'0000, 2, kS2Rw);
        t = b.mmu.translate(Gva(0x2000'0000 + 0x1fff'0000), AccessType::read, false);
        REQUIRE(t.ok());
        CHECK(t.hpa.raw() == 0x4000'0000 + 0x1fff'0000);
        CHECK(t.mem_refs == 1);
    }
    SECTION("a block descriptor at 16K level 1 (no FEAT_LPA2) is a translation fault at level 1") {
        Rig r(Granule::k16K, 48);
        const uint64_t slot = r.s2.slot(0, 1);
        r.s2.write(slot, 0x10'0000'0000ull | kS2Rw | desc::VALID);   // block type at L1
        const TranslateResult t = r.mmu.translate(Gva(0x1000), AccessType::read, false);
        REQUIRE(t.status == TranslateResult::Status::npf);
        CHECK(esr::fsc(t.error_code) == esr::fsc_fault(1));
    }
}

TEST_CASE("walk: stage-2 faults carry ESR_EL2 EC, WnR, S1PTW and FSC, and the IPA (HPFAR)") {
    Rig r(Granule::k4K, 40);
    r.s2.map(0x10'0000, 0x70'0000, 3, kS2Ro);
    SECTION("write to a read-only leaf: permission fault at level 3 with WnR") {
        const TranslateResult t = r.mmu.translate(Gva(0x10'0008), AccessType::write, false);
        REQUIRE(t.status == TranslateResult::Status::npf);
        CHECK(esr::fsc(t.error_code) == 0x0f);
        CHECK(esr::is_write(t.error_code));
        CHECK_FALSE(t.error_code & esr::S1PTW);
        CHECK(esr::ec(t.error_code) == esr::EC_DABT_LOW);
        CHECK(ipa_of_hpfar(hpfar_of_ipa(t.fault_gpa.raw())) == 0x10'0000);
    }
    SECTION("missing leaf: translation fault at the level whose entry was invalid") {
        const TranslateResult t = r.mmu.translate(Gva(0x10'1000), AccessType::read, false);
        REQUIRE(t.status == TranslateResult::Status::npf);
        CHECK(esr::fsc(t.error_code) == esr::fsc_fault(3));
        CHECK_FALSE(esr::is_write(t.error_code));
        const TranslateResult u = r.mmu.translate(Gva(0x8000'0000), AccessType::read, false);
        CHECK(esr::fsc(u.error_code) == esr::fsc_fault(1));   // root (level 1) entry 2 is invalid
    }
    SECTION("instruction fetch from an XN leaf: IABT, permission fault") {
        r.s2.map(0x11'0000, 0x71'0000, 3, kS2Rw | (2ull << desc::S2_XN_SHIFT));
        const TranslateResult t = r.mmu.translate(Gva(0x11'0000), AccessType::fetch, false);
        REQUIRE(t.status == TranslateResult::Status::npf);
        CHECK(esr::ec(t.error_code) == esr::EC_IABT_LOW);
        CHECK(esr::is_permission(t.error_code));
    }
    SECTION("AF clear with VTCR_EL2.HA: hardware sets it; without HA: access-flag fault") {
        const uint64_t slot = r.s2.map(0x12'0000, 0x72'0000, 3, kS2Rw & ~desc::AF);
        REQUIRE(r.mmu.translate(Gva(0x12'0000), AccessType::read, false).ok());
        CHECK(r.mem.read64(Hpa(slot)) & desc::AF);
        r.s2.map(0x13'0000, 0x73'0000, 3, kS2Rw & ~desc::AF);
        r.mmu.set_vtcr(kvm_vtcr(r.geo) & ~vtcr::HA);
        const TranslateResult t = r.mmu.translate(Gva(0x13'0000), AccessType::read, false);
        REQUIRE(t.status == TranslateResult::Status::npf);
        CHECK(esr::fsc(t.error_code) == esr::fsc_access(3));
    }
}

namespace {
// A two-stage rig: stage-1 tables at IPAs kS1Pool.., which stage 2 maps (4K pages) to
// PA = IPA + kS1Shift; data IPAs mapped by the caller.
struct Rig2 {
    PhysMem mem;
    CountingMemory port{mem};
    S2Geometry geo;
    S1Geometry s1g;
    DescBuilder s2, s1;
    Stage2Mmu mmu;
    Rig2(Granule g, unsigned ipa, unsigned va_bits, Stage2Config cfg = cold())
        : geo(kvm_stage2_geometry(g, ipa)),
          s1g(s1_geometry(g, va_bits)),
          s2(DescBuilder::stage2(mem, geo, kS2Pool)),
          s1(DescBuilder::stage1(mem, s1g, kS1Pool, [](uint64_t a) { return a + kS1Shift; })),
          mmu(cfg, port) {
        mmu.set_vtcr(kvm_vtcr(geo));
        mmu.set_vttbr(1, Hpa(s2.root()));
        mmu.set_tcr(g, va_bits);
        mmu.set_ttbr0(7, Gpa(s1.root()));
    }
    // Stage 2 for the stage-1 table pages allocated so far.
    void map_s1_tables() {
        const uint64_t gs = granule_size(geo.granule);
        for (uint64_t a = kS1Pool; a < s1.next_free(); a += gs) s2.map(a, a + kS1Shift, 3, kS2Rw);
    }
};
}  // namespace

TEST_CASE("walk: arm64 case 6: cold 2D walks make (n+1)(m+1)-1 references") {
    struct C {
        Granule g;
        unsigned va, ipa, expect;
    };
    const C cs[] = {{Granule::k4K, 48, 40, 19},   // S1 4 levels x S2 3 levels
                    {Granule::k4K, 48, 48, 24},   // x S2 4 levels
                    {Granule::k4K, 39, 40, 15},   // S1 3 levels x S2 3 levels
                    {Granule::k64K, 42, 40, 8},   // S1 2 levels x S2 2 levels
                    {Granule::k64K, 48, 48, 15},  // 3 x 3
                    {Granule::k16K, 47, 40, 11}}; // 3 x 2
    for (const C& c : cs) {
        INFO("granule shift " << granule_shift(c.g) << " VA " << c.va << " IPA " << c.ipa);
        Rig2 r(c.g, c.ipa, c.va);
        const uint64_t va = 0x12'3456'0000ull & ((1ull << c.va) - 1) & ~(granule_size(c.g) - 1);
        const uint64_t ipa = 0x2000'0000;
        r.s1.map(va, ipa, 3, kS1Rw);
        r.map_s1_tables();
        r.s2.map(ipa, 0x9000'0000, 3, kS2Rw);
        const TranslateResult t = r.mmu.translate(Gva(va + 0x40), AccessType::read, false);
        REQUIRE(t.ok());
        CHECK(t.hpa.raw() == 0x9000'0040);
        CHECK(t.mem_refs == c.expect);
        CHECK(r.mmu.s2_stats().s2_walks == r.s1g.levels + 1);
    }
}

TEST_CASE("walk: arm64 case 7: 2 MiB leaves in both stages (4K, S1 4 levels, IPA 40) make 11 references") {
    Rig2 r(Granule::k4K, 40, 48);
    const uint64_t va = 0x7f'0020'0000ull;
    r.s1.map(va, 0x4000'0000, 2, kS1Rw);   // guest 2 MiB leaf
    // Stage-1 table pages as 2 MiB stage-2 blocks too (the same rule applies to their walks).
    r.s2.map(kS1Pool, kS1Pool + kS1Shift, 2, kS2Rw);
    r.s2.map(0x4000'0000, 0x8000'0000, 2, kS2Rw);
    const TranslateResult t = r.mmu.translate(Gva(va + 0x1'2345), AccessType::read, false);
    REQUIRE(t.ok());
    CHECK(t.hpa.raw() == 0x8000'0000 + 0x1'2345);
    CHECK(t.mem_refs == 11);
    CHECK(t.page_size == PgLevel::k2M);
}

TEST_CASE("walk: stage-1 faults go to the guest, a stage-1 table page unmapped at stage 2 is an S1PTW abort") {
    Rig2 r(Granule::k4K, 40, 48);
    r.s1.map(0x40'0000, 0x2000'0000, 3, kS1Ro);
    SECTION("stage-1 table page missing at stage 2") {
        const TranslateResult t = r.mmu.translate(Gva(0x40'0000), AccessType::read, false);
        REQUIRE(t.status == TranslateResult::Status::npf);
        CHECK(t.error_code & esr::S1PTW);
        CHECK(esr::ec(t.error_code) == esr::EC_DABT_LOW);
        CHECK(t.fault_gpa.raw() == r.s1.root() + ((0x40'0000ull >> 39) & 511) * 8);
    }
    SECTION("stage-1 write to a read-only page, and an unmapped VA") {
        r.map_s1_tables();
        r.s2.map(0x2000'0000, 0x9000'0000, 3, kS2Rw);
        TranslateResult t = r.mmu.translate(Gva(0x40'0000), AccessType::write, false);
        REQUIRE(t.status == TranslateResult::Status::guest_page_fault);
        CHECK(esr::fsc(t.error_code) == esr::fsc_perm(3));
        CHECK(t.fault_level == 3);
        t = r.mmu.translate(Gva(0x40'1000), AccessType::read, false);
        REQUIRE(t.status == TranslateResult::Status::guest_page_fault);
        CHECK(esr::fsc(t.error_code) == esr::fsc_fault(3));
        CHECK(r.mmu.translate(Gva(0x40'0000), AccessType::read, false).ok());
    }
}

TEST_CASE("walk: the TLB and walk caches serve repeated and neighbouring accesses") {
    Rig2 r(Granule::k4K, 40, 48, Stage2Config{});
    for (uint64_t i = 0; i < 4; ++i) r.s1.map(0x40'0000 + i * 4096, 0x2000'0000 + i * 4096, 3, kS1Rw);
    r.map_s1_tables();
    for (uint64_t i = 0; i < 4; ++i) r.s2.map(0x2000'0000 + i * 4096, 0x9000'0000 + i * 4096, 3, kS2Rw);
    TranslateResult t = r.mmu.translate(Gva(0x40'0000), AccessType::read, false);
    REQUIRE(t.ok());
    // Even the first walk is shorter than the cold 19: the stage-2 walks of the stage-1
    // table pages (all in one 2 MiB region) and of the data IPA (same 1 GiB) reuse the
    // stage-2 table descriptors the first nested walk cached: 3 + 1 + 3 x (1 + 1) + 2.
    CHECK(t.mem_refs == 12);
    t = r.mmu.translate(Gva(0x40'0008), AccessType::write, false);
    CHECK(t.tlb_hit);
    // The next page: the stage-1 walk cache skips to level 3, the stage-2 TLB holds the
    // level-3 table page's IPA, so only the leaf and the data IPA's stage 2 remain.
    t = r.mmu.translate(Gva(0x40'1000), AccessType::read, false);
    REQUIRE(t.ok());
    CHECK(t.mem_refs < 19);
    CHECK(r.mmu.s2_stats().walk_cache_hits > 0);
    CHECK(r.mmu.s2_stats().s2tlb_hits > 0);
}
