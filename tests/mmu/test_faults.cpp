// Guest page faults and nested page faults: status, address, level, error code.
#include <catch2/catch.hpp>

#include "tests/mmu/rig.hpp"

using namespace hvsim;
using namespace hvsim::mmu;
using namespace hvsim::mmu::test;
using Status = TranslateResult::Status;

namespace {
uint64_t page(unsigned i) { return kGva + uint64_t(i) * kPageSize; }
}

TEST_CASE("a missing final nested entry is an NPF with GUEST_FINAL", "[mmu][fault]") {
    const auto fmt = GENERATE(NestedFormat::npt, NestedFormat::ept);
    const bool ept = fmt == NestedFormat::ept;
    Rig r(bare_config(4, 4, fmt));
    r.standard();
    const uint64_t gpa = kDataGpa + 3 * kPageSize;
    r.nested.unmap(gpa);
    const uint64_t va = page(3) + 0x10;

    struct Case {
        AccessType at;
        bool enc;
        uint64_t npt, ept;
    };
    const uint64_t F = PFERR_GUEST_FINAL;
    for (const Case& c : {Case{AccessType::read, false, PFERR_USER | F, PFERR_USER | F},
                          Case{AccessType::write, false, PFERR_USER | PFERR_WRITE | F, PFERR_WRITE | F},
                          Case{AccessType::fetch, false, PFERR_USER | PFERR_FETCH | F, PFERR_FETCH | F},
                          Case{AccessType::read, true, PFERR_USER | F | PFERR_GUEST_ENC, PFERR_USER | F | PFERR_GUEST_ENC}}) {
        const TranslateResult res = r.mmu.translate(Gva(va), c.at, c.enc);
        CHECK(res.status == Status::npf);
        CHECK(res.fault_gpa == Gpa(gpa + 0x10));
        CHECK(res.error_code == (ept ? c.ept : c.npt));
        CHECK(res.mem_refs == 24);
        CHECK(res.cycles == 8 + 2400);
    }
    CHECK(r.mmu.stats().npfs == 4);
    CHECK(r.mmu.stats().guest_faults == 0);
    CHECK(r.mmu.l1_tlb().size() == 0);   // nothing is cached from a failed walk
    CHECK(r.mmu.l2_tlb().size() == 0);
}

TEST_CASE("a write to a read-only nested leaf is a PRESENT|WRITE NPF, and fixing it needs no flush", "[mmu][fault]") {
    const auto fmt = GENERATE(NestedFormat::npt, NestedFormat::ept);
    const bool ept = fmt == NestedFormat::ept;
    const NestedPte n{fmt};
    Rig r(bare_config(4, 4, fmt));
    r.standard();
    const uint64_t gpa = kDataGpa + 5 * kPageSize;
    r.nested.set_leaf(gpa, n.write_protect(r.nested.leaf(gpa)));

    const TranslateResult rd = r.rd(page(5));
    REQUIRE(rd.ok());
    CHECK_FALSE(rd.writable);
    const TranslateResult w = r.wr(page(5) + 8);   // the TLB entry denies it: re-walk, then fault
    CHECK(w.status == Status::npf);
    CHECK(w.fault_gpa == Gpa(gpa + 8));
    CHECK(w.error_code == (PFERR_PRESENT | PFERR_WRITE | PFERR_GUEST_FINAL | (ept ? 0 : PFERR_USER)));
    CHECK(w.mem_refs == 24);
    CHECK(r.mmu.stats().perm_rewalks == 1);
    CHECK((r.nested.leaf(gpa) & n.dirty_bit()) == 0);

    // KVM makes the SPTE writable and does not flush: the next write re-walks and succeeds.
    r.nested.set_leaf(gpa, n.make_writable(r.nested.leaf(gpa)));
    const TranslateResult ok = r.wr(page(5) + 8);
    REQUIRE(ok.ok());
    CHECK(ok.writable);
    CHECK((r.nested.leaf(gpa) & n.dirty_bit()) != 0);
    CHECK(r.mmu.stats().npfs == 1);
}

TEST_CASE("a missing nested entry for a guest page-table page is an NPF with GUEST_PAGE", "[mmu][fault]") {
    const auto fmt = GENERATE(NestedFormat::npt, NestedFormat::ept);
    const bool tables_enc = GENERATE(false, true);
    MmuConfig c = bare_config(4, 4, fmt);
    c.guest_tables_encrypted = tables_enc;
    Rig r(c);
    r.standard();
    const uint64_t va = page(9);
    const uint64_t t2_entry = r.guest.pte_addr(va, 2);   // PD entry's gPA
    r.nested.unmap(r.guest.tables()[2]);
    REQUIRE((t2_entry & ~kPageMask) == r.guest.tables()[2]);

    for (bool enc : {false, true}) {
        const TranslateResult res = r.rd(va, enc);
        CHECK(res.status == Status::npf);
        CHECK(res.fault_gpa == Gpa(t2_entry));
        // Reading a guest entry is a nested user write (NPT; EPT with A/D), as KVM's
        // nested_tdp_fault_test and the APM expect.
        uint64_t want = PFERR_USER | PFERR_WRITE | PFERR_GUEST_PAGE;
        if (enc || tables_enc) want |= PFERR_GUEST_ENC;
        CHECK(res.error_code == want);
        CHECK(res.mem_refs == 5 + 5 + 4);
    }
    CHECK(r.mmu.stats().npfs == 2);
}

TEST_CASE("setting A/D in a guest entry needs write access to its table page", "[mmu][fault][ad]") {
    const bool ntlb = GENERATE(false, true);
    MmuConfig c = bare_config();
    if (ntlb) c.ntlb = {32, 32, 2};
    Rig r(c);
    r.standard();
    const NestedPte n{NestedFormat::npt};
    const uint64_t t1 = r.guest.tables()[3];
    const uint64_t va = page(4);
    const uint64_t pte_gpa = r.guest.pte_addr(va, 1);
    r.nested.set_leaf(t1, n.write_protect(r.nested.leaf(t1)));

    const uint64_t code = PFERR_PRESENT | PFERR_USER | PFERR_WRITE | PFERR_GUEST_PAGE;
    TranslateResult res = r.rd(va);                    // the PTE's A bit is clear
    CHECK(res.status == Status::npf);
    CHECK(res.fault_gpa == Gpa(pte_gpa));
    CHECK(res.error_code == code);
    CHECK((r.guest.read(va, 1) & pte::A) == 0);
    CHECK((r.guest.read(va, 2) & pte::A) != 0);         // upper levels were updated

    // With A already set, reading through the read-only table page still faults: on NPT
    // every guest paging-structure access is a nested write.
    r.guest.write(va, 1, r.guest.read(va, 1) | pte::A);
    res = r.rd(va);
    CHECK(res.status == Status::npf);
    CHECK(res.error_code == code);

    // KVM makes the table page writable, no flush: the write goes through.
    r.nested.set_leaf(t1, n.make_writable(r.nested.leaf(t1)));
    res = r.wr(va);
    REQUIRE(res.ok());
    CHECK((r.guest.read(va, 1) & pte::D) != 0);
    CHECK((r.nested.leaf(t1) & pte::D) != 0);
    CHECK(r.mmu.stats().npfs == 2);
}

TEST_CASE("with EPT A/D every guest paging-structure access is an EPT write", "[mmu][fault][ept]") {
    const bool ad = GENERATE(true, false);
    MmuConfig c = bare_config(4, 4, NestedFormat::ept);
    c.ept_ad = ad;
    Rig r(c);
    r.standard();
    const NestedPte n{NestedFormat::ept};
    const uint64_t va = page(4);
    for (unsigned l = 1; l <= 4; ++l) r.guest.write(va, l, r.guest.read(va, l) | pte::A);   // no A/D to set
    const uint64_t t1 = r.guest.tables()[3];
    r.nested.set_leaf(t1, n.write_protect(r.nested.leaf(t1)));
    const TranslateResult res = r.rd(va);
    if (ad) {
        CHECK(res.status == Status::npf);
        CHECK(res.fault_gpa == Gpa(r.guest.pte_addr(va, 1)));
        CHECK(res.error_code == (PFERR_PRESENT | PFERR_USER | PFERR_WRITE | PFERR_GUEST_PAGE));
    } else {
        CHECK(res.ok());
        CHECK(r.mmu.stats().ad_writes == 0);
    }
}

TEST_CASE("nested U/S, NX and reserved bits", "[mmu][fault]") {
    SECTION("NPT entries without U/S deny every access") {
        Rig r(bare_config());
        r.standard();
        const uint64_t gpa = kDataGpa + 0x6000;
        r.nested.set_leaf(gpa, r.nested.leaf(gpa) & ~pte::US);
        const TranslateResult res = r.rd(page(6));
        CHECK(res.status == Status::npf);
        CHECK(res.error_code == (PFERR_PRESENT | PFERR_USER | PFERR_GUEST_FINAL));
    }
    SECTION("a fetch from a non-executable nested leaf faults even after a read filled the TLB") {
        const auto fmt = GENERATE(NestedFormat::npt, NestedFormat::ept);
        Rig r(bare_config(4, 4, fmt));
        r.standard();
        const uint64_t gpa = kDataGpa + 0x6000;
        r.nested.set_leaf(gpa, NestedPte{fmt}.make_leaf(gpa + kHostOff, PgLevel::k4K, true, false));
        REQUIRE(r.rd(page(6)).ok());
        const TranslateResult res = r.fetch(page(6));
        CHECK(res.status == Status::npf);
        CHECK(res.error_code ==
              (PFERR_PRESENT | PFERR_FETCH | PFERR_GUEST_FINAL | (fmt == NestedFormat::npt ? PFERR_USER : 0)));
        CHECK(r.mmu.stats().perm_rewalks == 1);
    }
    SECTION("PS in a nested PML4E is reserved") {
        Rig r(bare_config());
        r.standard();
        const uint64_t t4 = r.guest.root();
        r.nested.write(t4, 4, r.nested.read(t4, 4) | pte::PS);
        const TranslateResult res = r.rd(page(0));
        CHECK(res.status == Status::npf);
        CHECK(res.fault_gpa == Gpa(r.guest.root() + table_index(kGva, 4) * 8));
        CHECK(res.error_code == (PFERR_PRESENT | PFERR_USER | PFERR_WRITE | PFERR_RSVD | PFERR_GUEST_PAGE));
        CHECK(res.mem_refs == 1);
    }
    SECTION("issue 15 item 14: EPT bit 7 in a PML4E is a misconfiguration, not a violation") {
        Rig r(bare_config(4, 4, NestedFormat::ept));
        r.standard();
        const uint64_t t4 = r.guest.root();
        r.nested.write(t4, 4, r.nested.read(t4, 4) | ept::LARGE);
        const TranslateResult res = r.rd(page(0));
        CHECK(res.status == Status::npf);
        CHECK(res.misconfig);
        // handle_ept_misconfig() hands kvm_mmu_page_fault() PFERR_RSVD_MASK alone.
        CHECK(res.error_code == PFERR_RSVD);
        CHECK(res.fault_gpa == Gpa(r.guest.root() + table_index(kGva, 4) * 8));
        CHECK(r.mmu.stats().ept_misconfigs == 1);
    }
    SECTION("issue 15 item 14: an EPT leaf that allows write without read is a misconfiguration") {
        Rig r(bare_config(4, 4, NestedFormat::ept));
        r.standard();
        const uint64_t gpa = kDataGpa + 0x3000;
        r.nested.set_leaf(gpa, (NestedPte{NestedFormat::ept}.make_leaf(gpa + kHostOff, PgLevel::k4K, true, true)) & ~ept::R);
        const TranslateResult res = r.rd(page(3));
        CHECK(res.status == Status::npf);
        CHECK(res.misconfig);
        CHECK(res.error_code == PFERR_RSVD);
        CHECK(res.fault_gpa == Gpa(gpa));
    }
    SECTION("NPT: PS in a PML4E stays a reserved-bit NPF (no misconfiguration exit on AMD)") {
        Rig r(bare_config());
        r.standard();
        const uint64_t t4 = r.guest.root();
        r.nested.write(t4, 4, r.nested.read(t4, 4) | pte::PS);
        const TranslateResult res = r.rd(page(0));
        CHECK_FALSE(res.misconfig);
        CHECK((res.error_code & PFERR_RSVD) != 0);
        CHECK(r.mmu.stats().ept_misconfigs == 0);
    }
    SECTION("PS in a guest PML4E is a reserved-bit #PF") {
        Rig r(bare_config());
        r.standard();
        r.guest.write(kGva, 4, r.guest.read(kGva, 4) | pte::PS);
        const TranslateResult res = r.wr(page(0));
        CHECK(res.status == Status::guest_page_fault);
        CHECK(res.fault_level == 4);
        CHECK(res.error_code == (PFERR_PRESENT | PFERR_WRITE | PFERR_RSVD));
    }
}

TEST_CASE("guest page faults report the level and the entry's gPA, never an NPF", "[mmu][fault]") {
    Rig r(bare_config());
    r.standard();
    SECTION("not-present PTE") {
        const uint64_t va = page(20) + 0x44;   // the PT exists, its entry is empty
        const TranslateResult res = r.rd(va);
        CHECK(res.status == Status::guest_page_fault);
        CHECK(res.fault_gva == Gva(va));
        CHECK(res.fault_level == 1);
        CHECK(res.fault_pte_gpa == Gpa(r.guest.tables()[3] + table_index(va, 1) * 8));
        CHECK(res.error_code == 0);
        CHECK(res.mem_refs == 20);
        CHECK(r.wr(va).error_code == PFERR_WRITE);
        CHECK(r.fetch(va).error_code == PFERR_FETCH);
    }
    SECTION("not-present PML4E") {
        const uint64_t va = kGva + (1ull << 39);
        const TranslateResult res = r.rd(va);
        CHECK(res.status == Status::guest_page_fault);
        CHECK(res.fault_level == 4);
        CHECK(res.fault_pte_gpa == Gpa(r.guest.root() + table_index(va, 4) * 8));
        CHECK(res.mem_refs == 5);
    }
    SECTION("write to a read-only guest page (CR0.WP)") {
        const uint64_t va = kGva + 0x40'0000;
        r.guest.map(va, kDataGpa + 0x9000, PgLevel::k4K, false);
        REQUIRE(r.rd(va).ok());
        CHECK_FALSE(r.rd(va).writable);
        const TranslateResult res = r.wr(va);
        CHECK(res.status == Status::guest_page_fault);
        CHECK(res.fault_level == 1);
        CHECK(res.error_code == (PFERR_PRESENT | PFERR_WRITE));
        CHECK((r.guest.read(va, 1) & pte::D) == 0);
    }
    CHECK(r.mmu.stats().npfs == 0);
    CHECK(r.mmu.stats().guest_faults >= 1);
}
