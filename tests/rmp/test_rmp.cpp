// The RMP as hardware: entry layout, the instructions' status codes and the access
// checks of APM vol. 2 §15.36. Test names carry the case id of the SNP test list
// (T01..T40) where one applies.
#include <catch2/catch.hpp>

#include "models/rmp/rmp.hpp"
#include "models/rmp/rmp_state_graph.hpp"

using namespace hvsim;
using namespace hvsim::rmp;

namespace {

constexpr uint64_t kCovered = 1ull << 20;               // 4 GiB of covered memory
constexpr uint64_t kBase = 0x1'0000'0000ull;            // table above it
constexpr uint16_t kAsid = 5;

struct Fix {
    PhysMem mem;
    Rmp rmp{RmpConfig{Hpa(kBase), kCovered, 0, 0}, mem};
    GuestCtx g{kAsid, 0, true};
    Cycles c = 0;

    static Hpa spa(uint64_t pfn) { return pfn_to_hpa(Pfn(pfn)); }
    int priv(uint64_t pfn, uint64_t gpa, PgLevel s = PgLevel::k4K, uint16_t asid = kAsid, bool imm = false) {
        return rmp.rmpupdate(spa(pfn), RmpState{Gpa(gpa), true, s, imm, asid});
    }
    int shared(uint64_t pfn, PgLevel s = PgLevel::k4K) { return rmp.rmpupdate(spa(pfn), RmpState{Gpa(0), false, s, false, 0}); }
    // Guest-Valid at VMPL0 (RMPUPDATE then PVALIDATE through a 4K nested leaf).
    void gv(uint64_t pfn, uint64_t gpa, uint16_t asid = kAsid) {
        REQUIRE(priv(pfn, gpa, PgLevel::k4K, asid) == 0);
        GuestCtx o{asid, 0, true};
        REQUIRE(rmp.pvalidate(o, Gpa(gpa), spa(pfn), PgLevel::k4K, PgLevel::k4K, true).ok());
    }
    RmpResult access(uint64_t gpa, uint64_t pfn, Access a, bool enc = true, PgLevel nl = PgLevel::k4K) {
        return rmp.check_guest(g, Gpa(gpa), spa(pfn), nl, a, enc, false, nullptr, c);
    }
    bool host_write(uint64_t pfn, PgLevel m = PgLevel::k4K) { return rmp.host_write_allowed(spa(pfn), m, nullptr, c); }
};

}  // namespace

TEST_CASE("entry encoding round-trips every field in the raw Zen 4 layout") {
    RmpEntry e;
    e.assigned = true;
    e.size_2m = true;
    e.immutable = true;
    e.subpage_count = 511;
    e.gpa = Gpa(0x7f'ffff'f000ull);
    e.asid = 1023;
    e.vmsa = true;
    e.validated = true;
    e.lock = true;
    e.perms = {0x1f, 0x3, 0x1, 0};
    CHECK(RmpEntry::decode(e.lo(), e.hi()) == e);
    // The example of AMDSEV #245: lock | immutable | assigned.
    const RmpEntry fw = RmpEntry::decode(0x8000000000000005ull, 0);
    CHECK(fw.assigned);
    CHECK(fw.immutable);
    CHECK(fw.lock);
    CHECK(!fw.size_2m);
    CHECK(RmpEntry::decode(0x80000000000007fdull, 0).subpage_count == 255);
}

TEST_CASE("entries live at RMP_BASE + 16 KiB + 16 * PFN in physical memory") {
    Fix f;
    CHECK(f.rmp.entry_addr(Pfn(0)) == Hpa(kBase + 0x4000));
    CHECK(f.rmp.entry_addr(Pfn(3)) == Hpa(kBase + 0x4000 + 48));
    REQUIRE(f.priv(3, 0x5000) == 0);
    const uint64_t lo = f.mem.read64(Hpa(kBase + 0x4000 + 48));
    CHECK((lo & 1) == 1);                       // assigned
    CHECK(((lo >> 12) & ((1ull << 39) - 1)) == 5);   // GPA >> 12
    CHECK(((lo >> 51) & 0x3ff) == kAsid);
    CHECK(f.mem.read64(Hpa(kBase + 0x4000 + 56)) == VMPL_ALL);   // VMPL0 all, others none
    CHECK(f.rmp.asid_pages(kAsid) == 1);        // bookkeeping counter
    CHECK(f.rmp.table_bytes() == 0x4000 + 16 * kCovered);
}

TEST_CASE("encrypted() agrees with the authoritative entry: a guest ASID's 4K and 2M pages, not the hypervisor's") {
    Fix f;
    REQUIRE(f.priv(0x200, 0x1000) == 0);                            // 4K guest page
    REQUIRE(f.priv(0x400, 0x200000, PgLevel::k2M) == 0);            // 2M guest page
    REQUIRE(f.priv(0x601, 0x3000, PgLevel::k4K, 0) == 0);           // assigned to ASID 0 (firmware)
    for (uint64_t pfn : std::initializer_list<uint64_t>{0x200, 0x201, 0x400, 0x455, 0x5ff, 0x600, 0x601, 0x9000,
                         kCovered + 3}) {
        const RmpEntry e = f.rmp.lookup(Pfn(pfn));
        CHECK(f.rmp.encrypted(Pfn(pfn)) == (f.rmp.covered(Pfn(pfn)) && e.assigned && e.asid != 0));
    }
    CHECK(f.rmp.encrypted(Pfn(0x200)));
    CHECK_FALSE(f.rmp.encrypted(Pfn(0x201)));
    CHECK(f.rmp.encrypted(Pfn(0x455)));   // inside the 2M page: its head decides
    CHECK_FALSE(f.rmp.encrypted(Pfn(0x601)));
    CHECK_FALSE(f.rmp.encrypted(Pfn(kCovered + 3)));
}

TEST_CASE("encrypted() follows every entry write: 4K and 2M updates, PSMASH, release, firmware writes") {
    // encrypted() answers from a bit per page that the entry writes keep; after each step
    // of a random sequence over two 2M regions (and the pages around them) it must agree
    // with the authoritative entry of every page.
    Fix f;
    const uint64_t regions[] = {0x400, 0x600};
    auto agree = [&](int step) {
        uint64_t wrong = 0;   // the first page that disagrees, 0 if none
        for (uint64_t pfn = 0x3fe; pfn < 0x802 && !wrong; ++pfn) {
            const RmpEntry e = f.rmp.lookup(Pfn(pfn));
            if (f.rmp.encrypted(Pfn(pfn)) != (e.assigned && e.asid != 0)) wrong = pfn;
        }
        INFO("step " << step);
        REQUIRE(wrong == 0);
    };
    uint64_t x = 0x9e3779b97f4a7c15ull;
    auto next = [&] { return x = x * 6364136223846793005ull + 1442695040888963407ull, x >> 33; };
    unsigned encrypted_seen = 0, psmashed = 0;
    for (int step = 0; step < 4000; ++step) {
        const uint64_t region = regions[next() % 2];
        const uint64_t pfn = region + next() % 512;
        const uint16_t asid = next() % 4 == 0 ? 0 : kAsid;   // ASID 0: assigned, not encrypted
        // Assignments go to unassigned pages only (the page-state graph has no edge
        // between two assigned states: checked builds would stop on one).
        const bool free_page = !f.rmp.lookup(Pfn(pfn)).assigned;
        const bool free_region = !f.rmp.lookup(Pfn(region)).assigned;
        switch (next() % 6) {
            case 0: if (free_region) (void)f.priv(region, region << 12, PgLevel::k2M, asid); break;
            case 1: psmashed += f.rmp.psmash(Fix::spa(region)) == 0; break;
            case 2:   // the whole region back to the hypervisor: one 2M update or 512 4K ones
                if (f.rmp.lookup(Pfn(region)).size_2m) (void)f.shared(region, PgLevel::k2M);
                else
                    for (uint64_t q = region; q < region + 512; ++q) (void)f.shared(q);
                break;
            case 3: (void)f.shared(pfn); break;
            case 4: {   // the firmware validates a guest's 4K page (as SNP_LAUNCH_UPDATE)
                RmpEntry e = f.rmp.read_entry(Pfn(pfn));
                if (f.rmp.lookup(Pfn(pfn)).size_2m || !e.assigned || e.asid == 0 || e.validated) break;
                e.validated = true;
                f.rmp.firmware_write_entry(Pfn(pfn), e, "test");
                break;
            }
            default: if (free_page) (void)f.priv(pfn, pfn << 12, PgLevel::k4K, asid); break;
        }
        agree(step);
        encrypted_seen += f.rmp.encrypted(Pfn(pfn));
    }
    CHECK(encrypted_seen > 100);   // the sequence reached encrypted 4K and 2M pages
    CHECK(psmashed > 10);
}

TEST_CASE("T01 T02 T03 host write to a hypervisor page is allowed, to a guest page faults, reads never") {
    Fix f;
    CHECK(f.host_write(10));                    // T01
    f.gv(11, 0x1000);
    CHECK(!f.host_write(11));                   // T02: #PF with X86_PF_RMP
    CHECK(f.rmp.stats().faults == 1);
    // T03: host reads are not checked; the model has no read check to call, and the
    // entry stays Guest-Valid after the failed write.
    CHECK(f.rmp.read_entry(Pfn(11)).validated);
}

TEST_CASE("T04 host write through a 2M mapping faults when any 4K page of the region is assigned") {
    Fix f;
    REQUIRE(f.priv(513, 0x1000) == 0);          // p+1 in the 2 MB region of 512
    CHECK(!f.host_write(512, PgLevel::k2M));
    CHECK(!f.host_write(512, PgLevel::k1G));    // 1G is checked as 2M
    // T05's outcome: with the direct map split to 4K, the write to p is allowed.
    CHECK(f.host_write(512, PgLevel::k4K));
}

TEST_CASE("T06 a page beyond the RMP's coverage is a hypervisor page") {
    Fix f;
    CHECK(f.host_write(kCovered + 5));
    const RmpResult r = f.access(0x1000, kCovered + 5, Access::read);
    CHECK(r.kind == RmpResult::Kind::npf);
    CHECK(r.npf_bits == NPF_RMP);
    CHECK(f.rmp.rmpupdate(Fix::spa(kCovered + 5), RmpState{Gpa(0), true, PgLevel::k4K, false, kAsid}) ==
          RMP_FAIL_INPUT);
}

TEST_CASE("T07 T08 private access: Guest-Valid allowed, Guest-Invalid raises #VC 0x404") {
    Fix f;
    f.gv(20, 0x20000);
    CHECK(f.access(0x20000, 20, Access::read).ok());      // T07
    CHECK(f.access(0x20000, 20, Access::write).ok());
    CHECK(f.access(0x20000, 20, Access::fetch).ok());
    REQUIRE(f.priv(21, 0x21000) == 0);
    const RmpResult r = f.access(0x21000, 21, Access::read);   // T08
    CHECK(r.kind == RmpResult::Kind::vc);
    CHECK(r.eax == 0x404);
}

TEST_CASE("T09 T10 T11 other ASID, wrong GPA and Immutable raise NPF with the RMP bit") {
    Fix f;
    f.gv(30, 0x30000, 7);                                     // T09: ASID 7's page
    CHECK(f.access(0x30000, 30, Access::read).npf_bits == NPF_RMP);
    f.gv(31, 0x99000);                                        // T10: g' != g
    CHECK(f.access(0x31000, 31, Access::read).npf_bits == NPF_RMP);
    REQUIRE(f.priv(32, 0x32000, PgLevel::k4K, kAsid, true) == 0);   // T11: Pre-Guest
    CHECK(f.access(0x32000, 32, Access::read).npf_bits == NPF_RMP);
    CHECK(f.access(0x32000, 32, Access::read).kind == RmpResult::Kind::npf);
}

TEST_CASE("T12 size mismatch outranks Validated, after PSMASH the access raises #VC") {
    Fix f;
    REQUIRE(f.priv(1024, 0x40'0000, PgLevel::k2M) == 0);     // {1,2M,0,0,5,g2m}
    RmpResult r = f.access(0x40'3000, 1027, Access::read, true, PgLevel::k4K);
    CHECK(r.kind == RmpResult::Kind::npf);                    // not #VC
    CHECK(r.npf_bits == NPF_RMP);
    REQUIRE(f.rmp.psmash(Fix::spa(1024)) == 0);
    r = f.access(0x40'3000, 1027, Access::read, true, PgLevel::k4K);
    CHECK(r.kind == RmpResult::Kind::vc);
}

TEST_CASE("2M nested leaf over 4K RMP entries raises NPF (G8)") {
    Fix f;
    f.gv(1536, 0x60'0000);
    CHECK(f.access(0x60'0000, 1536, Access::read, true, PgLevel::k2M).npf_bits == NPF_RMP);
}

TEST_CASE("T13 a VMPL without the permission gets NPF with the RMP and VMPL bits") {
    Fix f;
    f.gv(40, 0x40000);
    REQUIRE(f.rmp.rmpadjust(f.g, Gpa(0x40000), Fix::spa(40), PgLevel::k4K, PgLevel::k4K, 1, VMPL_R, false).ok());
    GuestCtx v1{kAsid, 1, true};
    CHECK(f.rmp.check_guest(v1, Gpa(0x40000), Fix::spa(40), PgLevel::k4K, Access::read, true, false, nullptr, f.c).ok());
    const RmpResult r =
        f.rmp.check_guest(v1, Gpa(0x40000), Fix::spa(40), PgLevel::k4K, Access::write, true, false, nullptr, f.c);
    CHECK(r.npf_bits == (NPF_RMP | NPF_VMPL));
}

TEST_CASE("T14 T15 T16 shared (C=0) accesses: writes need a hypervisor page, reads are unchecked") {
    Fix f;
    CHECK(f.access(0x50000, 50, Access::write, false).ok());  // T14
    REQUIRE(f.priv(51, 0x51000) == 0);
    const RmpResult r = f.access(0x51000, 51, Access::write, false);   // T15
    CHECK(r.kind == RmpResult::Kind::npf);
    CHECK(r.npf_bits == NPF_RMP);
    f.gv(52, 0x52000);
    CHECK(f.access(0x52000, 52, Access::read, false).ok());   // T16: ciphertext, no check
}

TEST_CASE("T17 T18 guest page-table references are always private") {
    Fix f;
    REQUIRE(f.priv(60, 0x60000) == 0);                        // T17: unvalidated PT page
    CHECK(f.rmp.check_guest(f.g, Gpa(0x60000), Fix::spa(60), PgLevel::k4K, Access::read, false, true, nullptr, f.c)
              .kind == RmpResult::Kind::vc);
    f.gv(61, 0x61000, 7);                                     // T18: another guest's page
    CHECK(f.rmp.check_guest(f.g, Gpa(0x61000), Fix::spa(61), PgLevel::k4K, Access::read, false, true, nullptr, f.c)
              .npf_bits == NPF_RMP);
}

TEST_CASE("N1 a non-SNP guest's writes need hypervisor pages, its reads do not") {
    Fix f;
    REQUIRE(f.priv(70, 0x70000) == 0);
    GuestCtx legacy{kAsid, 0, false};
    CHECK(f.rmp.check_guest(legacy, Gpa(0x70000), Fix::spa(70), PgLevel::k4K, Access::write, true, false, nullptr, f.c)
              .npf_bits == NPF_RMP);
    CHECK(f.rmp.check_guest(legacy, Gpa(0x70000), Fix::spa(70), PgLevel::k4K, Access::read, true, false, nullptr, f.c)
              .ok());
}

TEST_CASE("T19 T20 PVALIDATE sets Validated once, then reports no update with CF") {
    Fix f;
    REQUIRE(f.priv(80, 0x80000) == 0);
    RmpResult r = f.rmp.pvalidate(f.g, Gpa(0x80000), Fix::spa(80), PgLevel::k4K, PgLevel::k4K, true);
    CHECK(r.ok());
    CHECK(r.eax == 0);
    CHECK(!r.cf);
    CHECK(f.rmp.read_entry(Pfn(80)).validated);
    r = f.rmp.pvalidate(f.g, Gpa(0x80000), Fix::spa(80), PgLevel::k4K, PgLevel::k4K, true);   // T20
    CHECK(r.eax == 0);
    CHECK(r.cf);
    // Rescind clears it again.
    r = f.rmp.pvalidate(f.g, Gpa(0x80000), Fix::spa(80), PgLevel::k4K, PgLevel::k4K, false);
    CHECK((r.eax == 0 && !r.cf));
    CHECK(!f.rmp.read_entry(Pfn(80)).validated);
}

TEST_CASE("T21 PVALIDATE 2M over 4K entries returns FAIL_SIZEMISMATCH and changes nothing") {
    Fix f;
    for (uint64_t i = 0; i < 512; ++i) REQUIRE(f.priv(2048 + i, 0x80'0000 + i * kPageSize) == 0);
    const RmpResult r = f.rmp.pvalidate(f.g, Gpa(0x80'0000), Fix::spa(2048), PgLevel::k4K, PgLevel::k2M, true);
    CHECK(r.eax == RMP_FAIL_SIZEMISMATCH);
    for (uint64_t i = 0; i < 512; ++i) CHECK(!f.rmp.read_entry(Pfn(2048 + i)).validated);
    // The guest's fallback: 512 x 4K.
    for (uint64_t i = 0; i < 512; ++i)
        REQUIRE(f.rmp.pvalidate(f.g, Gpa(0x80'0000 + i * kPageSize), Fix::spa(2048 + i), PgLevel::k4K, PgLevel::k4K,
                                true).eax == 0);
    for (uint64_t i = 0; i < 512; ++i) CHECK(f.rmp.read_entry(Pfn(2048 + i)).validated);
}

TEST_CASE("T22 PVALIDATE 4K inside a 2M entry raises NPF with SIZEM, after PSMASH only that page validates") {
    Fix f;
    REQUIRE(f.priv(2560, 0xa0'0000, PgLevel::k2M) == 0);
    RmpResult r = f.rmp.pvalidate(f.g, Gpa(0xa0'1000), Fix::spa(2561), PgLevel::k2M, PgLevel::k4K, true);
    CHECK(r.kind == RmpResult::Kind::npf);
    CHECK(r.npf_bits == (NPF_RMP | NPF_SIZEM));
    REQUIRE(f.rmp.psmash(Fix::spa(2560)) == 0);
    r = f.rmp.pvalidate(f.g, Gpa(0xa0'1000), Fix::spa(2561), PgLevel::k4K, PgLevel::k4K, true);
    CHECK((r.ok() && r.eax == 0 && !r.cf));
    CHECK(f.rmp.read_entry(Pfn(2561)).validated);
    CHECK(!f.rmp.read_entry(Pfn(2560)).validated);
    CHECK(!f.rmp.read_entry(Pfn(2562)).validated);
}

TEST_CASE("PVALIDATE 2M on a 2M entry validates the whole page") {
    Fix f;
    REQUIRE(f.priv(3072, 0xc0'0000, PgLevel::k2M) == 0);
    CHECK(f.rmp.pvalidate(f.g, Gpa(0xc0'0000), Fix::spa(3072), PgLevel::k2M, PgLevel::k2M, true).eax == 0);
    CHECK(f.access(0xc0'5000, 3077, Access::read, true, PgLevel::k2M).ok());
    CHECK(f.rmp.pvalidate(f.g, Gpa(0xc0'1000), Fix::spa(3072), PgLevel::k2M, PgLevel::k2M, true).eax ==
          RMP_FAIL_INPUT);   // misaligned 2M request
}

TEST_CASE("T23 PVALIDATE above VMPL0 returns FAIL_PERMISSION") {
    Fix f;
    REQUIRE(f.priv(90, 0x90000) == 0);
    GuestCtx v1{kAsid, 1, true};
    CHECK(f.rmp.pvalidate(v1, Gpa(0x90000), Fix::spa(90), PgLevel::k4K, PgLevel::k4K, true).eax == RMP_FAIL_PERMISSION);
    CHECK(!f.rmp.read_entry(Pfn(90)).validated);
}

TEST_CASE("PVALIDATE of a page the guest does not own raises NPF (V5)") {
    Fix f;
    const RmpResult r = f.rmp.pvalidate(f.g, Gpa(0x91000), Fix::spa(91), PgLevel::k4K, PgLevel::k4K, true);
    CHECK(r.npf_bits == NPF_RMP);
}

TEST_CASE("T24 RMPUPDATE assigns: V 0, VMSA 0, VMPL0 all, VMPL1-3 none") {
    Fix f;
    REQUIRE(f.priv(100, 0x100000) == 0);
    const RmpEntry e = f.rmp.read_entry(Pfn(100));
    CHECK(e.assigned);
    CHECK(!e.size_2m);
    CHECK(!e.immutable);
    CHECK(e.gpa == Gpa(0x100000));
    CHECK(e.asid == kAsid);
    CHECK(!e.validated);
    CHECK(!e.vmsa);
    CHECK(e.perms == std::array<uint8_t, 4>{VMPL_ALL, 0, 0, 0});
}

TEST_CASE("T25 RMPUPDATE of an Immutable page returns FAIL_PERMISSION and leaves it") {
    Fix f;
    REQUIRE(f.priv(110, 0, PgLevel::k4K, 0, true) == 0);   // Firmware-like: assigned, ASID 0, immutable
    const RmpEntry before = f.rmp.read_entry(Pfn(110));
    CHECK(f.shared(110) == RMP_FAIL_PERMISSION);
    CHECK(f.rmp.read_entry(Pfn(110)) == before);
}

TEST_CASE("T26 RMPUPDATE of a page in use after VMRUN returns FAIL_INUSE until #VMEXIT") {
    Fix f;
    f.gv(120, 0x120000);
    f.rmp.set_in_use(Pfn(120), true);
    CHECK(f.shared(120) == RMP_FAIL_INUSE);
    f.rmp.set_in_use(Pfn(120), false);
    CHECK(f.shared(120) == RMP_SUCCESS);
}

TEST_CASE("T27 RMPUPDATE 2M over an assigned 4K sub-page returns FAIL_OVERLAP") {
    Fix f;
    REQUIRE(f.priv(4097, 0x1000) == 0);
    CHECK(f.rmp.read_entry(Pfn(4096)).subpage_count == 1);
    CHECK(f.priv(4096, 0x20'0000, PgLevel::k2M) == RMP_FAIL_OVERLAP);
    REQUIRE(f.shared(4097) == 0);
    CHECK(f.rmp.read_entry(Pfn(4096)).subpage_count == 0);
    CHECK(f.priv(4096, 0x20'0000, PgLevel::k2M) == RMP_SUCCESS);
}

TEST_CASE("T28 RMPUPDATE 4K inside a 2M page returns FAIL_OVERLAP, after PSMASH it succeeds") {
    Fix f;
    REQUIRE(f.priv(4608, 0x40'0000, PgLevel::k2M) == 0);
    CHECK(f.shared(4611) == RMP_FAIL_OVERLAP);
    REQUIRE(f.rmp.psmash(Fix::spa(4608)) == 0);
    CHECK(f.shared(4611) == RMP_SUCCESS);
    CHECK(!f.rmp.read_entry(Pfn(4611)).assigned);
    CHECK(f.rmp.read_entry(Pfn(4610)).assigned);
}

TEST_CASE("T29 RMPUPDATE 2M at an address that is not 2M aligned returns FAIL_INPUT") {
    Fix f;
    CHECK(f.priv(5121, 0x20'0000, PgLevel::k2M) == RMP_FAIL_INPUT);
    CHECK(f.rmp.rmpupdate(Hpa(0x1234), RmpState{Gpa(0), true, PgLevel::k4K, false, kAsid}) == RMP_FAIL_INPUT);
    CHECK(f.priv(130, 0x1000, PgLevel::k4K, 1024) == RMP_FAIL_INPUT);   // ASID beyond 10 bits
    // U6: the host cannot create a hypervisor page with an ASID or Immutable.
    CHECK(f.rmp.rmpupdate(Fix::spa(131), RmpState{Gpa(0), false, PgLevel::k4K, true, 0}) == RMP_FAIL_INPUT);
}

TEST_CASE("T30 RMPUPDATE to a new GPA clears Validated and resets permissions") {
    Fix f;
    f.gv(140, 0x140000);
    REQUIRE(f.rmp.rmpadjust(f.g, Gpa(0x140000), Fix::spa(140), PgLevel::k4K, PgLevel::k4K, 1, VMPL_R, false).ok());
    REQUIRE(f.priv(140, 0x999000) == 0);
    const RmpEntry e = f.rmp.read_entry(Pfn(140));
    CHECK(!e.validated);
    CHECK(e.gpa == Gpa(0x999000));
    CHECK(e.perms == std::array<uint8_t, 4>{VMPL_ALL, 0, 0, 0});
    // U8: rewriting identical values keeps Validated.
    REQUIRE(f.rmp.pvalidate(f.g, Gpa(0x999000), Fix::spa(140), PgLevel::k4K, PgLevel::k4K, true).eax == 0);
    REQUIRE(f.priv(140, 0x999000) == 0);
    CHECK(f.rmp.read_entry(Pfn(140)).validated);
}

TEST_CASE("RMPUPDATE from inside a guest returns FAIL_PERMISSION (U1, S1)") {
    Fix f;
    CHECK(f.rmp.rmpupdate(Fix::spa(150), RmpState{Gpa(0), true, PgLevel::k4K, false, kAsid}, kAsid) ==
          RMP_FAIL_PERMISSION);
    CHECK(f.rmp.psmash(Fix::spa(512), kAsid) == RMP_FAIL_PERMISSION);
}

TEST_CASE("T31 PSMASH splits a 2M page into 512 entries keeping Validated and permissions") {
    Fix f;
    REQUIRE(f.priv(5632, 0x60'0000, PgLevel::k2M) == 0);
    REQUIRE(f.rmp.pvalidate(f.g, Gpa(0x60'0000), Fix::spa(5632), PgLevel::k2M, PgLevel::k2M, true).eax == 0);
    REQUIRE(f.rmp.rmpadjust(f.g, Gpa(0x60'0000), Fix::spa(5632), PgLevel::k2M, PgLevel::k2M, 1, VMPL_R, false).ok());
    REQUIRE(f.rmp.psmash(Fix::spa(5632)) == 0);
    for (uint64_t i = 0; i < 512; ++i) {
        const RmpEntry e = f.rmp.read_entry(Pfn(5632 + i));
        CHECK((e.assigned && !e.size_2m && !e.immutable && e.validated && e.asid == kAsid));
        CHECK(e.gpa == Gpa(0x60'0000 + i * kPageSize));
        CHECK(e.perms[1] == VMPL_R);
    }
    CHECK(f.rmp.asid_pages(kAsid) == 512);
}

TEST_CASE("T32 PSMASH of 4K entries returns 7, of a misaligned address FAIL_INPUT") {
    Fix f;
    REQUIRE(f.priv(6144, 0x1000) == 0);
    CHECK(f.rmp.psmash(Fix::spa(6144)) == PSMASH_FAIL_BADPAGE);
    CHECK(f.rmp.psmash(Fix::spa(6145)) == RMP_FAIL_INPUT);
}

TEST_CASE("T33 T34 T35 RMPADJUST grants a higher VMPL a subset of the caller's permissions") {
    Fix f;
    f.gv(160, 0x160000);
    RmpResult r = f.rmp.rmpadjust(f.g, Gpa(0x160000), Fix::spa(160), PgLevel::k4K, PgLevel::k4K, 1,
                                  VMPL_R | VMPL_W, false);   // T33
    CHECK((r.ok() && r.eax == 0));
    CHECK(f.rmp.read_entry(Pfn(160)).perms[1] == (VMPL_R | VMPL_W));
    r = f.rmp.rmpadjust(f.g, Gpa(0x160000), Fix::spa(160), PgLevel::k4K, PgLevel::k4K, 0, VMPL_R, false);   // T34
    CHECK(r.eax == RMP_FAIL_PERMISSION);
    f.gv(161, 0x161000);
    REQUIRE(f.rmp.rmpadjust(f.g, Gpa(0x161000), Fix::spa(161), PgLevel::k4K, PgLevel::k4K, 1, VMPL_R, false).ok());
    GuestCtx v1{kAsid, 1, true};
    r = f.rmp.rmpadjust(v1, Gpa(0x161000), Fix::spa(161), PgLevel::k4K, PgLevel::k4K, 2, VMPL_R | VMPL_W, false);   // T35
    CHECK(r.eax == RMP_FAIL_PERMISSION);
    r = f.rmp.rmpadjust(v1, Gpa(0x161000), Fix::spa(161), PgLevel::k4K, PgLevel::k4K, 2, VMPL_R, true);
    CHECK(r.eax == 0);
    CHECK(!f.rmp.read_entry(Pfn(161)).vmsa);   // J7: VMSA bit from VMPL1 ignored
    r = f.rmp.rmpadjust(f.g, Gpa(0x161000), Fix::spa(161), PgLevel::k4K, PgLevel::k4K, 1, 0, true);
    CHECK(f.rmp.read_entry(Pfn(161)).vmsa);    // VMPL0 sets it (target VMPL 1, as Linux snp_set_vmsa)
}

TEST_CASE("T36 RMPADJUST 2M on 4K entries returns FAIL_SIZEMISMATCH, 4K on a 2M entry NPF+SIZEM") {
    Fix f;
    for (uint64_t i = 0; i < 512; ++i) f.gv(6656 + i, 0xe0'0000 + i * kPageSize);
    CHECK(f.rmp.rmpadjust(f.g, Gpa(0xe0'0000), Fix::spa(6656), PgLevel::k4K, PgLevel::k2M, 1, VMPL_R, false).eax ==
          RMP_FAIL_SIZEMISMATCH);
    REQUIRE(f.priv(7168, 0x100'0000, PgLevel::k2M) == 0);
    REQUIRE(f.rmp.pvalidate(f.g, Gpa(0x100'0000), Fix::spa(7168), PgLevel::k2M, PgLevel::k2M, true).eax == 0);
    CHECK(f.rmp.rmpadjust(f.g, Gpa(0x100'1000), Fix::spa(7169), PgLevel::k2M, PgLevel::k4K, 1, VMPL_R, false)
              .npf_bits == (NPF_RMP | NPF_SIZEM));
}

TEST_CASE("RMPADJUST of an unvalidated page raises #VC (J3) and RMPQUERY reports permissions") {
    Fix f;
    REQUIRE(f.priv(170, 0x170000) == 0);
    CHECK(f.rmp.rmpadjust(f.g, Gpa(0x170000), Fix::spa(170), PgLevel::k4K, PgLevel::k4K, 1, VMPL_R, false).kind ==
          RmpResult::Kind::vc);
    REQUIRE(f.rmp.pvalidate(f.g, Gpa(0x170000), Fix::spa(170), PgLevel::k4K, PgLevel::k4K, true).eax == 0);
    REQUIRE(f.rmp.rmpadjust(f.g, Gpa(0x170000), Fix::spa(170), PgLevel::k4K, PgLevel::k4K, 2, VMPL_R | VMPL_XS, false)
                .ok());
    const RmpResult q = f.rmp.rmpquery(f.g, Gpa(0x170000), Fix::spa(170), PgLevel::k4K, 2);
    CHECK(q.ok());
    CHECK(q.perms == (VMPL_R | VMPL_XS));
    CHECK(!q.size_2m);
    CHECK(f.rmp.rmpquery(f.g, Gpa(0x171000), Fix::spa(171), PgLevel::k4K, 0).npf_bits == NPF_RMP);
}

TEST_CASE("J2 RMPADJUST of a page the guest does not own, under another GPA or Immutable raises NPF") {
    Fix f;
    // A hypervisor page, another guest's page, a remapped GPA, a Pre-Guest page.
    CHECK(f.rmp.rmpadjust(f.g, Gpa(0x180000), Fix::spa(180), PgLevel::k4K, PgLevel::k4K, 1, 0, true).npf_bits ==
          NPF_RMP);
    f.gv(181, 0x181000, 7);
    CHECK(f.rmp.rmpadjust(f.g, Gpa(0x181000), Fix::spa(181), PgLevel::k4K, PgLevel::k4K, 1, 0, true).npf_bits ==
          NPF_RMP);
    f.gv(182, 0x182000);
    CHECK(f.rmp.rmpadjust(f.g, Gpa(0x999000), Fix::spa(182), PgLevel::k4K, PgLevel::k4K, 1, 0, true).npf_bits ==
          NPF_RMP);
    REQUIRE(f.priv(183, 0x183000, PgLevel::k4K, kAsid, true) == 0);
    CHECK(f.rmp.rmpadjust(f.g, Gpa(0x183000), Fix::spa(183), PgLevel::k4K, PgLevel::k4K, 1, 0, true).npf_bits ==
          NPF_RMP);
    for (uint64_t p : {180, 181, 182, 183}) CHECK(!f.rmp.read_entry(Pfn(p)).vmsa);
    CHECK(f.rmp.stats().faults == 4);
}

TEST_CASE("RMPADJUST with malformed operands returns FAIL_INPUT before the VMPL rule") {
    Fix f;
    f.gv(184, 0x184000);
    auto adj = [&](uint64_t gpa, PgLevel size, uint8_t target, uint8_t mask) {
        return f.rmp.rmpadjust(f.g, Gpa(gpa), Fix::spa(184), PgLevel::k4K, size, target, mask, false).eax;
    };
    CHECK(adj(0x184000, PgLevel::k4K, 4, 0) == RMP_FAIL_INPUT);          // no VMPL 4
    CHECK(adj(0x184000, PgLevel::k4K, 1, 0x20) == RMP_FAIL_INPUT);       // mask bits 7:5 are reserved
    CHECK(adj(0x184000, PgLevel::k1G, 1, 0) == RMP_FAIL_INPUT);          // 4K or 2M only
    CHECK(adj(0x184000, PgLevel::k2M, 1, 0) == RMP_FAIL_INPUT);          // 2M request, address not 2M aligned
    CHECK(adj(0x184000, PgLevel::k4K, 0, 0xff) == RMP_FAIL_INPUT);       // malformed outranks J1
    CHECK(adj(0x184000, PgLevel::k4K, 0, VMPL_R) == RMP_FAIL_PERMISSION);   // J1
    CHECK(f.rmp.read_entry(Pfn(184)).perms == std::array<uint8_t, 4>{VMPL_ALL, 0, 0, 0});
}

TEST_CASE("making a 2M page shared again leaves 512 hypervisor pages") {
    Fix f;
    REQUIRE(f.priv(7680, 0x40'0000, PgLevel::k2M) == 0);
    CHECK(f.rmp.asid_pages(kAsid) == 512);
    REQUIRE(f.shared(7680, PgLevel::k2M) == 0);
    CHECK(f.rmp.asid_pages(kAsid) == 0);
    CHECK(f.host_write(7680 + 7, PgLevel::k2M));
    CHECK(f.priv(7680 + 7, 0x1000) == 0);   // a 4K assign inside it needs no PSMASH
}

TEST_CASE("the what-if RMP cache serves repeated checks and stays coherent with RMPUPDATE") {
    PhysMem mem;
    Rmp rmp{RmpConfig{Hpa(kBase), kCovered, 16, 1}, mem};
    GuestCtx g{kAsid, 0, true};
    Cycles c = 0;
    REQUIRE(rmp.rmpupdate(pfn_to_hpa(Pfn(512)), RmpState{Gpa(0x20'0000), true, PgLevel::k4K, false, kAsid}) == 0);
    REQUIRE(rmp.pvalidate(g, Gpa(0x20'0000), pfn_to_hpa(Pfn(512)), PgLevel::k4K, PgLevel::k4K, true).eax == 0);
    CHECK(rmp.check_guest(g, Gpa(0x20'0000), pfn_to_hpa(Pfn(512)), PgLevel::k4K, Access::read, true, false, nullptr, c)
              .ok());
    const uint64_t reads = rmp.stats().entry_reads;
    CHECK(rmp.check_guest(g, Gpa(0x20'0000), pfn_to_hpa(Pfn(512)), PgLevel::k4K, Access::read, true, false, nullptr, c)
              .ok());
    CHECK(rmp.stats().entry_reads == reads);
    CHECK(rmp.stats().cache_hits == 1);
    // RMPUPDATE drops the cached entry: the next check sees Guest-Invalid.
    REQUIRE(rmp.rmpupdate(pfn_to_hpa(Pfn(512)), RmpState{Gpa(0x30'0000), true, PgLevel::k4K, false, kAsid}) == 0);
    CHECK(rmp.check_guest(g, Gpa(0x30'0000), pfn_to_hpa(Pfn(512)), PgLevel::k4K, Access::read, true, false, nullptr, c)
              .kind == RmpResult::Kind::vc);
}

TEST_CASE("the SNP page-state graph accepts the instructions' transitions and rejects illegal ones") {
    using S = RmpPageState;
    CHECK(rmp_check_transition(S::hypervisor, S::guest_invalid));
    CHECK(rmp_check_transition(S::guest_invalid, S::guest_valid));
    CHECK(rmp_check_transition(S::guest_valid, S::hypervisor));
    CHECK(rmp_check_transition(S::pre_guest, S::guest_valid));
    CHECK(!rmp_check_transition(S::hypervisor, S::guest_valid));   // validated without being assigned
    CHECK(!rmp_check_transition(S::pre_guest, S::hypervisor));     // immutable: needs SNP_PAGE_RECLAIM
    CHECK(!rmp_check_transition(S::firmware, S::guest_valid));
    CHECK_THROWS_WITH(rmp_assert_transition(S::hypervisor, S::guest_valid, "test"),
                      Catch::Contains("hypervisor -> guest_valid is not an edge"));
    CHECK(rmp_page_state(RmpEntry{}) == S::hypervisor);
    RmpEntry e;
    e.assigned = true;
    e.asid = 5;
    CHECK(rmp_page_state(e) == S::guest_invalid);
    e.validated = true;
    CHECK(rmp_page_state(e) == S::guest_valid);
    e.immutable = true;
    e.validated = false;
    CHECK(rmp_page_state(e) == S::pre_guest);
    const std::string dot = rmp_page_state_dot();
    CHECK_THAT(dot, Catch::Contains("digraph snp_page"));
    CHECK_THAT(dot, Catch::Contains("rmpupdate_shared"));
}
