// The RMP check in the x86 walker: made on a TLB fill for the final access and for
// each guest page-table page a nested walk translates, with entry reads that go through
// the walker's timed memory path.
#include <catch2/catch.hpp>

#include "models/rmp/rmp_checker.hpp"
#include "tests/mmu/rig.hpp"

using namespace hvsim;
using namespace hvsim::mmu;
using namespace hvsim::mmu::test;
using namespace hvsim::rmp;

namespace {

constexpr uint64_t kCoveredPages = (8ull << 30) >> kPageShift;   // 8 GiB
constexpr uint64_t kRmpBase = 8ull << 30;
constexpr uint16_t kAsid = 5;

struct SnpRig {
    Rig rig{bare_config()};
    Rmp rmp{RmpConfig{Hpa(kRmpBase), kCoveredPages, 0, 0}, rig.mem};
    RmpChecker checker{rmp, GuestCtx{kAsid, 0, true}};

    SnpRig() {
        rig.standard();
        rig.mmu.set_phys_checker(&checker);
    }
    // Make the guest page [gpa, gpa + bytes) private in the RMP, optionally validated.
    void make_private(uint64_t gpa, uint64_t bytes, bool validate, uint16_t asid = kAsid) {
        for (uint64_t g = gpa; g < gpa + bytes; g += kPageSize) {
            REQUIRE(rmp.rmpupdate(Hpa(g + kHostOff), RmpState{Gpa(g), true, PgLevel::k4K, false, asid}) == 0);
            if (validate)
                REQUIRE(rmp.pvalidate(GuestCtx{asid, 0, true}, Gpa(g), Hpa(g + kHostOff), PgLevel::k4K, PgLevel::k4K,
                                      true).eax == 0);
        }
    }
    void tables_private(bool validate = true, uint16_t asid = kAsid) {
        make_private(kGuestPtPool, 64 * kPageSize, validate, asid);
    }
};

}  // namespace

TEST_CASE("the first guest page-table page owned by the hypervisor stops a private walk with an RMP NPF") {
    SnpRig s;
    const TranslateResult r = s.rig.rd(kGva, true);
    REQUIRE(r.status == TranslateResult::Status::npf);
    CHECK((r.error_code & PFERR_GUEST_RMP) != 0);
    CHECK((r.error_code & PFERR_GUEST_PAGE) != 0);
    CHECK((r.error_code & PFERR_GUEST_ENC) != 0);
    CHECK((r.error_code & PFERR_PRESENT) != 0);
    CHECK(r.fault_gpa.raw() >> kPageShift == s.rig.guest.root() >> kPageShift);
}

TEST_CASE("a Guest-Valid walk and data page translate, each filled page costs its RMP reads") {
    SnpRig s;
    s.tables_private();
    s.make_private(kDataGpa, 16 * kPageSize, true);
    const TranslateResult r = s.rig.rd(kGva, true);
    REQUIRE(r.ok());
    // 4 guest table pages and the data page are checked, each reading the head entry
    // of its 2 MB region and its own entry; the root table and the data page are their
    // region's head (one read each): 3 * 2 + 2 = 8.
    CHECK(s.rmp.stats().checks == 5);
    const uint64_t reads = s.rmp.stats().entry_reads;
    CHECK(reads == 8);

    // The same walk without the checker: the difference is the RMP reads at DRAM latency.
    Rig plain{bare_config()};
    plain.standard();
    const TranslateResult p = plain.rd(kGva, true);
    REQUIRE(p.ok());
    CHECK(r.cycles == p.cycles + reads * 100);
    CHECK(r.mem_refs == p.mem_refs);   // walk_mem_refs still counts paging-structure entries only

    // A TLB hit is not checked again.
    REQUIRE(s.rig.rd(kGva + 8, true).ok());
    CHECK(s.rmp.stats().checks == 5);
}

TEST_CASE("T08 through the walker: an unvalidated private data page raises #VC 0x404 with the gVA") {
    SnpRig s;
    s.tables_private();
    s.make_private(kDataGpa, 16 * kPageSize, false);
    const TranslateResult r = s.rig.wr(kGva + 0x10, true);
    REQUIRE(r.status == TranslateResult::Status::vc);
    CHECK(r.error_code == SVM_VMGEXIT_PAGE_NOT_VALIDATED);
    CHECK(r.fault_gva == Gva(kGva + 0x10));
    CHECK(r.fault_gpa == Gpa(kDataGpa + 0x10));
    CHECK(s.rig.mmu.stats().phys_check_faults == 1);
    // No translation was cached: after PVALIDATE the access succeeds.
    REQUIRE(s.rmp.pvalidate(GuestCtx{kAsid, 0, true}, Gpa(kDataGpa), Hpa(kDataGpa + kHostOff), PgLevel::k4K,
                            PgLevel::k4K, true).eax == 0);
    CHECK(s.rig.wr(kGva + 0x10, true).ok());
}

TEST_CASE("T17 through the walker: an unvalidated guest page-table page raises #VC") {
    SnpRig s;
    s.tables_private(false);
    s.make_private(kDataGpa, 16 * kPageSize, true);
    CHECK(s.rig.rd(kGva, true).status == TranslateResult::Status::vc);
}

TEST_CASE("T18 through the walker: a page-table page of another ASID gives NPF with RMP and GUEST_PAGE") {
    SnpRig s;
    s.tables_private(true, 7);
    const TranslateResult r = s.rig.rd(kGva, true);
    REQUIRE(r.status == TranslateResult::Status::npf);
    CHECK((r.error_code & (PFERR_GUEST_RMP | PFERR_GUEST_PAGE)) == (PFERR_GUEST_RMP | PFERR_GUEST_PAGE));
    CHECK((r.error_code & PFERR_GUEST_FINAL) == 0);
}

TEST_CASE("T15 through the walker: a shared write to an assigned page gives NPF RMP without ENC") {
    SnpRig s;
    s.tables_private();
    s.make_private(kDataGpa, 16 * kPageSize, true);
    const TranslateResult r = s.rig.wr(kGva, false);
    REQUIRE(r.status == TranslateResult::Status::npf);
    CHECK((r.error_code & PFERR_GUEST_RMP) != 0);
    CHECK((r.error_code & PFERR_GUEST_FINAL) != 0);
    CHECK((r.error_code & PFERR_GUEST_ENC) == 0);
    CHECK((r.error_code & PFERR_WRITE) != 0);
    // T16: the shared read of the same page is not checked (ciphertext).
    CHECK(s.rig.rd(kGva, false).ok());
}

TEST_CASE("a 2M nested leaf over a 2M RMP entry needs one RMP read, over 4K entries it faults (G8)") {
    Rig flat{bare_config(0)};
    flat.standard(PgLevel::k4K, PgLevel::k2M);
    Rmp frmp{RmpConfig{Hpa(kRmpBase), kCoveredPages, 0, 0}, flat.mem};
    RmpChecker fck{frmp, GuestCtx{kAsid, 0, true}};
    flat.mmu.set_phys_checker(&fck);
    const GuestCtx g{kAsid, 0, true};
    REQUIRE(frmp.rmpupdate(Hpa(kDataGpa + kHostOff), RmpState{Gpa(kDataGpa), true, PgLevel::k2M, false, kAsid}) == 0);
    REQUIRE(frmp.pvalidate(g, Gpa(kDataGpa), Hpa(kDataGpa + kHostOff), PgLevel::k2M, PgLevel::k2M, true).eax == 0);
    REQUIRE(flat.mmu.translate(Gva(kDataGpa + 0x5000), AccessType::read, true).ok());
    CHECK(frmp.stats().entry_reads == 1);
    // PSMASH: the 2M nested leaf now sits over 4K entries.
    REQUIRE(frmp.psmash(Hpa(kDataGpa + kHostOff)) == 0);
    flat.mmu.flush_all();
    const TranslateResult r = flat.mmu.translate(Gva(kDataGpa + 0x5000), AccessType::read, true);
    REQUIRE(r.status == TranslateResult::Status::npf);
    CHECK((r.error_code & PFERR_GUEST_RMP) != 0);
}

TEST_CASE("the RMP cache turns repeated entry reads into hits") {
    Rig rig{bare_config()};
    Rmp rmp{RmpConfig{Hpa(kRmpBase), kCoveredPages, 64, 2}, rig.mem};
    RmpChecker ck{rmp, GuestCtx{kAsid, 0, true}};
    rig.standard();
    rig.mmu.set_phys_checker(&ck);
    const GuestCtx g{kAsid, 0, true};
    for (uint64_t a = kGuestPtPool; a < kGuestPtPool + 64 * kPageSize; a += kPageSize) {
        REQUIRE(rmp.rmpupdate(Hpa(a + kHostOff), RmpState{Gpa(a), true, PgLevel::k4K, false, kAsid}) == 0);
        REQUIRE(rmp.pvalidate(g, Gpa(a), Hpa(a + kHostOff), PgLevel::k4K, PgLevel::k4K, true).eax == 0);
    }
    for (uint64_t a = kDataGpa; a < kDataGpa + 16 * kPageSize; a += kPageSize) {
        REQUIRE(rmp.rmpupdate(Hpa(a + kHostOff), RmpState{Gpa(a), true, PgLevel::k4K, false, kAsid}) == 0);
        REQUIRE(rmp.pvalidate(g, Gpa(a), Hpa(a + kHostOff), PgLevel::k4K, PgLevel::k4K, true).eax == 0);
    }
    REQUIRE(rig.rd(kGva, true).ok());
    // The table pages share one 2 MB region: its head entry is read once, then hit.
    const uint64_t reads = rmp.stats().entry_reads, hits = rmp.stats().cache_hits;
    CHECK(reads == 5);
    CHECK(hits == 3);
    rig.mmu.flush_all();
    REQUIRE(rig.rd(kGva, true).ok());
    CHECK(rmp.stats().entry_reads == reads);
    CHECK(rmp.stats().cache_hits - hits == 8);
}
