// TLBs, page-walk cache, nested TLB and flushes.
#include <catch2/catch.hpp>

#include <random>

#include "tests/mmu/rig.hpp"

using namespace hvsim;
using namespace hvsim::mmu;
using namespace hvsim::mmu::test;

namespace {
uint64_t page(unsigned i) { return kGva + uint64_t(i) * kPageSize; }
}

TEST_CASE("an L1 hit costs the L1 latency and no reference", "[mmu][tlb]") {
    Rig r(bare_config());
    r.standard();
    REQUIRE(r.rd(page(1)).ok());
    const TranslateResult h = r.rd(page(1) + 0xabc);
    CHECK(h.tlb_hit);
    CHECK(h.mem_refs == 0);
    CHECK(h.cycles == 1);
    CHECK(h.hpa == Hpa(kDataGpa + kPageSize + 0xabc + kHostOff));
    CHECK(h.page_size == PgLevel::k4K);
    CHECK(h.writable);
    const TranslateResult f = r.fetch(page(1));   // instruction fetch shares the TLB
    CHECK(f.tlb_hit);
    CHECK(r.mmu.stats().l1_hits == 2);
    CHECK(r.mmu.stats().accesses == 3);
    CHECK(r.mmu.stats().misses == 1);
}

TEST_CASE("the L1 TLB replaces its least recently used entry", "[mmu][tlb]") {
    MmuConfig c = bare_config();
    c.l1 = {4, 4, 1};
    c.l2 = {0, 0, 7};
    Rig r(c);
    r.standard();
    for (unsigned i = 0; i < 4; ++i) REQUIRE(r.rd(page(i)).ok());
    CHECK(r.rd(page(0)).tlb_hit);        // 0 becomes most recent; 1 is now LRU
    REQUIRE(r.rd(page(4)).ok());         // evicts 1
    CHECK(r.mmu.l1_tlb().peek(Mmu::tlb_key(page(1), PgLevel::k4K)) == nullptr);
    CHECK(r.mmu.l1_tlb().peek(Mmu::tlb_key(page(0), PgLevel::k4K)) != nullptr);
    CHECK(r.rd(page(0)).tlb_hit);
    CHECK(r.rd(page(2)).tlb_hit);
    const TranslateResult m = r.rd(page(1));
    CHECK_FALSE(m.tlb_hit);
    CHECK(m.mem_refs == 24);
    CHECK(m.cycles == 1 + 7 + 2400);     // a disabled L2 still has its lookup latency
    CHECK(r.mmu.stats().l1_hits == 3);
    CHECK(r.mmu.stats().misses == 6);
    CHECK(r.mmu.l1_tlb().evictions() == 2);   // 1 (by 4), then 3 (by 1)
}

TEST_CASE("an L2 hit refills the L1", "[mmu][tlb]") {
    MmuConfig c = bare_config();
    c.l1 = {2, 2, 1};
    c.l2 = {8, 2, 7};
    Rig r(c);
    r.standard();
    for (unsigned i = 0; i < 3; ++i) REQUIRE(r.rd(page(i)).ok());   // page 0 leaves the L1
    REQUIRE(r.mmu.l1_tlb().peek(Mmu::tlb_key(page(0), PgLevel::k4K)) == nullptr);
    const TranslateResult h2 = r.rd(page(0) + 8);
    CHECK(h2.tlb_hit);
    CHECK(h2.mem_refs == 0);
    CHECK(h2.cycles == 8);
    CHECK(h2.hpa == Hpa(kDataGpa + 8 + kHostOff));
    CHECK(r.mmu.stats().l2_hits == 1);
    const TranslateResult h1 = r.rd(page(0) + 16);
    CHECK(h1.cycles == 1);
    CHECK(r.mmu.stats().l1_hits == 1);
    CHECK(r.mmu.stats().misses == 3);
}

TEST_CASE("the L2 TLB replaces LRU within a set", "[mmu][tlb]") {
    MmuConfig c = bare_config();
    c.l1 = {0, 0, 1};      // L1 off: every lookup reaches the L2
    c.l2 = {4, 2, 7};      // 2 sets: even VPNs in set 0
    Rig r(c);
    r.standard();
    REQUIRE(((kGva >> 12) & 1) == 0);
    REQUIRE(r.rd(page(0)).ok());
    REQUIRE(r.rd(page(2)).ok());
    REQUIRE(r.rd(page(1)).ok());           // set 1: no effect on set 0
    CHECK(r.rd(page(0)).tlb_hit);          // 2 is LRU of set 0
    REQUIRE(r.rd(page(4)).ok());           // evicts 2
    CHECK(r.rd(page(0)).tlb_hit);
    CHECK(r.rd(page(1)).tlb_hit);
    CHECK_FALSE(r.rd(page(2)).tlb_hit);
    CHECK(r.mmu.stats().l2_hits == 3);
    CHECK(r.mmu.stats().l1_hits == 0);
    CHECK(r.mmu.stats().misses == 5);
}

TEST_CASE("1G translations are smashed into 2M entries in the L2", "[mmu][tlb]") {
    const bool l1_on = GENERATE(true, false);
    MmuConfig c = bare_config();
    if (!l1_on) c.l1 = {0, 0, 1};
    Rig r(c);
    r.standard(PgLevel::k1G, PgLevel::k1G);
    const TranslateResult a = r.rd(kGva + 0x1234);
    REQUIRE(a.ok());
    CHECK(a.page_size == PgLevel::k1G);
    CHECK(r.mmu.l1_tlb().count_code(unsigned(PgLevel::k1G)) == (l1_on ? 1u : 0u));
    CHECK(r.mmu.l2_tlb().count_code(unsigned(PgLevel::k1G)) == 0);
    CHECK(r.mmu.l2_tlb().count_code(unsigned(PgLevel::k2M)) == 1);
    const auto* e = r.mmu.l2_tlb().peek(Mmu::tlb_key(kGva, PgLevel::k2M));
    REQUIRE(e != nullptr);
    CHECK(e->hbase == kDataGpa + kHostOff);

    // Another 2M piece of the same 1G page: the L1 (1G entry) covers it, the L2 does not.
    const TranslateResult b = r.rd(kGva + 0x20'0000 + 0x40);
    REQUIRE(b.ok());
    CHECK(b.hpa == Hpa(kDataGpa + 0x20'0000 + 0x40 + kHostOff));
    CHECK(b.tlb_hit == l1_on);
    CHECK(b.mem_refs == (l1_on ? 0u : 8u));
    // Same 2M piece as the first access: an L2 hit reports the 2M piece.
    if (!l1_on) {
        const TranslateResult h = r.rd(kGva + 0x5000);
        CHECK(h.tlb_hit);
        CHECK(h.page_size == PgLevel::k2M);
        CHECK(h.hpa == Hpa(kDataGpa + 0x5000 + kHostOff));
        CHECK(r.mmu.stats().l2_hits == 1);
    }
}

TEST_CASE("warm PWC and nested TLB cut a neighbouring page's walk by the exact amount", "[mmu][pwc][ntlb]") {
    // Guest tables share one 2M gPA region (1G region 0); data sits in 1G region 1.
    struct Case {
        bool pwc, ntlb;
        unsigned cold_refs, cold_pwc, cold_ntlb;
        unsigned warm_refs, warm_pwc, warm_ntlb;
    };
    const auto k = GENERATE(values<Case>({
        // Cold: T4 walks in full (4); T3, T2, T1 hit the nested PDE (1 each); the data
        // gPA hits the nested PML4E (3). Warm: guest PDE cached -> T1 (nested PDE, 1),
        // the guest PTE (1), the data gPA (nested PDE, 1).
        {true, false, 14, 4, 0, 3, 2 + 1, 0},
        // Nested TLB only: cold is the full 24; warm, the 4 table pages hit the NTLB.
        {false, true, 24, 0, 0, 8, 0, 4},
        // Both: as PWC, and T1 comes from the NTLB.
        {true, true, 14, 4, 0, 2, 2, 1},
    }));
    const auto fmt = GENERATE(NestedFormat::npt, NestedFormat::ept);
    MmuConfig c = bare_config(4, 4, fmt);
    if (k.pwc) c.pwc = {64, 64, 2};
    if (k.ntlb) c.ntlb = {32, 32, 3};
    Rig r(c);
    r.standard();

    const TranslateResult a = r.rd(page(6));
    REQUIRE(a.ok());
    CHECK(a.mem_refs == k.cold_refs);
    CHECK(r.mmu.stats().pwc_hits == k.cold_pwc);
    CHECK(r.mmu.stats().ntlb_hits == k.cold_ntlb);
    CHECK(a.cycles == 8 + 100ull * k.cold_refs + 2ull * k.cold_pwc + 3ull * k.cold_ntlb);

    const TranslateResult b = r.rd(page(7) + 0x18);
    REQUIRE(b.ok());
    CHECK(b.hpa == Hpa(kDataGpa + 7 * kPageSize + 0x18 + kHostOff));
    CHECK(b.mem_refs == k.warm_refs);
    CHECK(r.mmu.stats().pwc_hits - k.cold_pwc == k.warm_pwc);
    CHECK(r.mmu.stats().ntlb_hits - k.cold_ntlb == k.warm_ntlb);
    CHECK(b.cycles == 8 + 100ull * k.warm_refs + 2ull * k.warm_pwc + 3ull * k.warm_ntlb);
    CHECK(r.mmu.stats().walk_mem_refs == k.cold_refs + k.warm_refs);
    // A/D still reached memory although the upper levels were skipped.
    CHECK((r.guest.read(page(7), 1) & pte::A) != 0);

    // flush_all (after KVM zapped NPT entries) forces the cold walk again.
    r.mmu.flush_all();
    const TranslateResult again = r.rd(page(7));
    CHECK_FALSE(again.tlb_hit);
    CHECK(again.mem_refs == k.cold_refs);
    CHECK(r.mmu.stats().flushes == 1);
    CHECK(r.mmu.stats().misses == 3);
}

TEST_CASE("the PWC covers the nested walks of table pages in other 2M regions", "[mmu][pwc]") {
    MmuConfig c = bare_config();
    c.pwc = {64, 64, 2};
    c.ntlb = {32, 32, 2};
    Rig r(c);
    r.standard();
    // A gVA 2M away uses a new guest PT page (allocated next in the pool) under the same PD.
    r.guest.map(kGva + 0x20'0000, kDataGpa + 0x8000, PgLevel::k4K);
    REQUIRE(r.rd(page(0)).ok());
    const TranslateResult b = r.rd(kGva + 0x20'0000);
    REQUIRE(b.ok());
    // Guest PDPTE cached -> T2 from the NTLB, read the PDE (1); new T1: nested PDE cached
    // (1), read the PTE (1); data gPA: nested PDE cached (1).
    CHECK(b.mem_refs == 4);
    CHECK(b.hpa == Hpa(kDataGpa + 0x8000 + kHostOff));
}

TEST_CASE("INVLPG drops that page's TLB entries and the guest half of the PWC", "[mmu][tlb][pwc]") {
    MmuConfig c = bare_config();
    c.pwc = {64, 64, 2};
    Rig r(c);
    r.standard();
    REQUIRE(r.rd(page(0)).ok());
    REQUIRE(r.rd(page(1)).ok());
    r.mmu.flush_gva(Gva(page(1) + 0x10));
    CHECK(r.mmu.stats().invlpgs == 1);
    CHECK(r.rd(page(0)).tlb_hit);
    const TranslateResult m = r.rd(page(1));
    CHECK_FALSE(m.tlb_hit);
    // Guest walk from the root; each table page's nested walk hits the nested PDE.
    CHECK(m.mem_refs == 4 * (1 + 1) + 1);
}

TEST_CASE("a new guest or nested root drops cached translations", "[mmu][tlb]") {
    MmuConfig c = bare_config();
    c.pwc = {64, 64, 2};
    c.ntlb = {32, 32, 2};
    Rig r(c);
    r.standard();
    REQUIRE(r.rd(page(0)).ok());
    r.roots();                                    // same roots: nothing dropped
    CHECK(r.rd(page(0)).tlb_hit);
    r.mmu.set_guest_root(Gpa(0x5000));
    r.mmu.set_guest_root(Gpa(r.guest.root()));
    TranslateResult g = r.rd(page(0));
    CHECK_FALSE(g.tlb_hit);
    CHECK(g.mem_refs == 4 + 1);                   // guest PWC gone: 4 guest entries (tables from the
                                                  // NTLB) + the data gPA (nested PDE cached)
    r.mmu.set_nested_root(Hpa(0x7000));
    r.mmu.set_nested_root(Hpa(r.nested.root()));
    g = r.rd(page(0));
    CHECK(g.mem_refs == 14);
    CHECK(r.mmu.stats().flushes == 0);
}

TEST_CASE("translate_gpa goes through the nested TLB", "[mmu][ntlb]") {
    MmuConfig c = bare_config();
    c.ntlb = {32, 32, 3};
    Rig r(c);
    r.standard();
    const uint64_t g = kDataGpa + 0x2468;
    TranslateResult a = r.mmu.translate_gpa(Gpa(g), AccessType::read, false);
    REQUIRE(a.ok());
    CHECK(a.mem_refs == 4);
    CHECK(a.cycles == 400);
    CHECK(a.hpa == Hpa(g + kHostOff));
    CHECK((r.nested.leaf(g) & (pte::A | pte::D)) == pte::A);
    TranslateResult b = r.mmu.translate_gpa(Gpa(g + 8), AccessType::read, false);
    CHECK(b.tlb_hit);
    CHECK(b.mem_refs == 0);
    CHECK(b.cycles == 3);
    CHECK(b.hpa == Hpa(g + 8 + kHostOff));
    // The read-filled entry is clean: a write re-walks and sets D.
    TranslateResult w = r.mmu.translate_gpa(Gpa(g), AccessType::write, false);
    CHECK_FALSE(w.tlb_hit);
    CHECK(w.mem_refs == 4);
    CHECK((r.nested.leaf(g) & pte::D) != 0);
    CHECK(r.mmu.translate_gpa(Gpa(g), AccessType::write, false).tlb_hit);
    // Counted apart from the two-dimensional lookups: hits + walks = lookups.
    CHECK(r.mmu.stats().gpa_lookups == 4);
    CHECK(r.mmu.stats().gpa_ntlb_hits == 2);
    CHECK(r.mmu.stats().gpa_walks == 2);
    CHECK(r.mmu.stats().perm_rewalks == 1);
    CHECK(r.mmu.stats().accesses == 0);
    CHECK(r.mmu.stats().misses == 0);
    CHECK(r.mmu.stats().ntlb_hits == 0);
    // Unmapped gPA: a final-translation NPF.
    TranslateResult f = r.mmu.translate_gpa(Gpa(kDataGpa + 0x10'0000), AccessType::write, true);
    CHECK(f.status == TranslateResult::Status::npf);
    CHECK(f.fault_gpa == Gpa(kDataGpa + 0x10'0000));
    CHECK(f.error_code == (PFERR_USER | PFERR_WRITE | PFERR_GUEST_FINAL | PFERR_GUEST_ENC));
}

TEST_CASE("a re-walk replaces the denying TLB entry even when the page size grew", "[mmu][tlb]") {
    Rig r(bare_config());
    r.standard();
    const uint64_t g = kGva + 0x4000'0000;          // next 1G of gVA
    const uint64_t d = kDataGpa + 0x20'0000;        // 2M aligned
    r.guest.map(g, d, PgLevel::k2M);
    r.map_gpa(d, 0x20'0000, PgLevel::k4K, /*writable=*/false);
    const TranslateResult a = r.rd(g + 0x1000);
    REQUIRE(a.ok());
    CHECK(a.page_size == PgLevel::k4K);
    CHECK_FALSE(a.writable);
    // KVM replaces the 4K read-only mapping with a writable 2M leaf (no flush needed
    // for a permission upgrade).
    r.nested.write(d, 2, NestedPte{}.make_leaf(d + kHostOff, PgLevel::k2M, true, true));
    const TranslateResult w = r.wr(g + 0x1000);
    REQUIRE(w.ok());
    CHECK(w.page_size == PgLevel::k2M);
    CHECK(r.mmu.l1_tlb().peek(Mmu::tlb_key(g + 0x1000, PgLevel::k4K)) == nullptr);
    const TranslateResult w2 = r.wr(g + 0x1008);
    CHECK(w2.tlb_hit);
    const TranslateResult w3 = r.wr(g + 0x7000);   // elsewhere in the 2M page
    CHECK(w3.tlb_hit);
    CHECK(w3.hpa == Hpa(d + 0x7000 + kHostOff));
    CHECK(r.mmu.stats().perm_rewalks == 1);
    CHECK(r.mmu.stats().misses == 2);
}

TEST_CASE("issue 15 item 14: INVLPG drops every 4K piece of a guest 2M page splintered by 4K nested pages", "[mmu][tlb]") {
    Rig r(bare_config());
    r.standard(PgLevel::k2M, PgLevel::k4K);
    REQUIRE(r.rd(page(0)).page_size == PgLevel::k4K);
    REQUIRE(r.rd(page(5)).ok());
    REQUIRE(r.rd(page(9)).ok());
    CHECK(r.mmu.l1_tlb().count_code(unsigned(PgLevel::k4K)) == 3);
    r.mmu.flush_gva(Gva(page(0)));
    // The guest's INVLPG names its 2M page: no piece of it may survive (SDM vol. 3A §4.10.4.1).
    CHECK(r.mmu.l1_tlb().count_code(unsigned(PgLevel::k4K)) == 0);
    CHECK(r.mmu.l2_tlb().count_code(unsigned(PgLevel::k4K)) == 0);
    CHECK_FALSE(r.rd(page(5)).tlb_hit);
}

TEST_CASE("INVLPG of a guest 4K page keeps the other pages' entries", "[mmu][tlb]") {
    Rig r(bare_config());
    r.standard(PgLevel::k4K, PgLevel::k2M);
    REQUIRE(r.rd(page(0)).ok());
    REQUIRE(r.rd(page(5)).ok());
    r.mmu.flush_gva(Gva(page(0)));
    CHECK(r.rd(page(5)).tlb_hit);
    CHECK_FALSE(r.rd(page(0)).tlb_hit);
}

TEST_CASE("issue 15 item 14: a smashed 1G page reloads into the L1 as 1G", "[mmu][tlb]") {
    MmuConfig c = bare_config();
    c.l1 = {1, 1, 1};
    Rig r(c);
    r.standard(PgLevel::k1G, PgLevel::k1G);
    r.guest.map(kGva + (1ull << 30), kDataGpa, PgLevel::k1G);   // a second 1G gVA, same data
    REQUIRE(r.rd(kGva + 0x1234).page_size == PgLevel::k1G);
    REQUIRE(r.rd(kGva + (1ull << 30)).ok());   // takes the only L1 entry
    const TranslateResult h = r.rd(kGva + 0x5000);   // the L2's 2M piece of the first page
    CHECK(h.tlb_hit);
    CHECK(h.page_size == PgLevel::k1G);
    CHECK(h.hpa == Hpa(kDataGpa + 0x5000 + kHostOff));
    CHECK(r.mmu.l1_tlb().count_code(unsigned(PgLevel::k1G)) == 1);
    // Another 2M piece of that page: the reloaded 1G entry covers it.
    const uint64_t l1_before = r.mmu.stats().l1_hits;
    const TranslateResult b = r.rd(kGva + 0x20'0000 + 0x40);
    CHECK(b.tlb_hit);
    CHECK(b.mem_refs == 0);
    CHECK(b.hpa == Hpa(kDataGpa + 0x20'0000 + 0x40 + kHostOff));
    CHECK(r.mmu.stats().l1_hits == l1_before + 1);
}

TEST_CASE("issue 15 item 14: AMD's PTE cache visits every level, Intel's PSCs skip, both with and without nested entries", "[mmu][pwc]") {
    // 4+4 levels, 4K pages, no nested TLB. Page 6 cold, then page 7 (same guest tables).
    //  pte: a non-leaf entry (either dimension) found by its hPA is a 2-cycle hit instead of
    //       a reference; leaves are always read. Cold: T4's nested walk 4 refs; T3, T2, T1
    //       3 hits + 1 each; the 4 guest entries; the data gPA 1 hit (nested PML4E) + 3.
    //       Warm: each of the 5 nested walks 3 hits + 1; guest T4..T2 hit, the PTE is read.
    //  psc: as the existing numbers: the deepest cached entry skips the levels above it.
    //  Without nested entries, every nested reference is made.
    struct Case {
        MmuConfig::PwcOrg org;
        bool nested;
        unsigned cold_refs, cold_hits, warm_refs, warm_hits;
    };
    using O = MmuConfig::PwcOrg;
    const auto k = GENERATE(values<Case>({
        {O::pte, true, 14, 10, 6, 18},
        {O::pte, false, 24, 0, 21, 3},
        {O::psc, true, 14, 4, 3, 3},
        {O::psc, false, 24, 0, 9, 1},
    }));
    const auto fmt = GENERATE(NestedFormat::npt, NestedFormat::ept);
    CAPTURE(int(k.org), k.nested, int(fmt));
    MmuConfig c = bare_config(4, 4, fmt);
    c.pwc = {256, 256, 2};
    c.pwc_org = k.org;
    c.pwc_nested = k.nested;
    Rig r(c);
    r.standard();
    const TranslateResult a = r.rd(page(6));
    REQUIRE(a.ok());
    CHECK(a.mem_refs == k.cold_refs);
    CHECK(r.mmu.stats().pwc_hits == k.cold_hits);
    CHECK(a.cycles == 8 + 100ull * k.cold_refs + 2ull * k.cold_hits);
    const TranslateResult b = r.rd(page(7) + 0x18);
    REQUIRE(b.ok());
    CHECK(b.hpa == Hpa(kDataGpa + 7 * kPageSize + 0x18 + kHostOff));
    CHECK(b.mem_refs == k.warm_refs);
    CHECK(r.mmu.stats().pwc_hits - k.cold_hits == k.warm_hits);
    CHECK(b.cycles == 8 + 100ull * k.warm_refs + 2ull * k.warm_hits);
    // A/D still reached memory although references were served by the PWC.
    CHECK((r.guest.read(page(7), 1) & pte::A) != 0);
}

// The vCPU's access loop asks try_hit() first and translates only when it fails;
// translate_slow() then skips the L1 look-up try_l1_hit() just made (Mmu::l1_missed_).
// The pair must see exactly what translate() alone sees, also when the entry found
// denies the access (a write through a read-filled entry) or a flush comes between.
TEST_CASE("the hit check then a translation see what one translation sees", "[mmu][tlb]") {
    MmuConfig c = bare_config();
    // 8 entries: a scanned set, smaller than the 16 pages (L2 hits); 20: the hashed L1.
    const unsigned l1 = GENERATE(8u, 20u);
    c.l1 = {l1, l1, 1};
    c.l2 = {16, 4, 7};
    Rig a(c), b(c);
    a.standard();
    b.standard();
    std::mt19937_64 rng(7);
    for (unsigned i = 0; i < 20000; ++i) {
        const uint64_t va = page(unsigned(rng() % 16)) + (rng() % 512) * 8;
        const AccessType at = rng() % 4 == 0 ? AccessType::write : AccessType::read;
        const bool flush = rng() % 16 == 0;
        const uint64_t flushed = page(unsigned(rng() % 16));
        Hpa hpa;
        Cycles cy = 0;
        const bool hit = a.mmu.try_hit(Gva(va), at, &hpa, &cy);
        // A flush between a failed hit check and its translation, else after the access.
        auto flush_both = [&] {
            a.mmu.flush_gva(Gva(flushed));
            b.mmu.flush_gva(Gva(flushed));
        };
        if (hit) {
            const TranslateResult rb = b.mmu.translate(Gva(va), at, false);
            REQUIRE(rb.tlb_hit);
            REQUIRE(rb.hpa == hpa);
            REQUIRE(rb.cycles == cy);
            if (flush) flush_both();
            continue;
        }
        if (flush) flush_both();
        const TranslateResult rb = b.mmu.translate(Gva(va), at, false);
        REQUIRE(rb.ok());
        const TranslateResult ra = a.mmu.translate(Gva(va), at, false);
        REQUIRE(ra.ok());
        REQUIRE(ra.tlb_hit == rb.tlb_hit);
        REQUIRE(ra.hpa == rb.hpa);
        REQUIRE(ra.cycles == rb.cycles);
        REQUIRE(ra.mem_refs == rb.mem_refs);
    }
    const MmuStats& sa = a.mmu.stats();
    const MmuStats& sb = b.mmu.stats();
    CHECK(sa.l1_hits == sb.l1_hits);
    CHECK(sa.l2_hits == sb.l2_hits);
    CHECK(sa.misses == sb.misses);
    CHECK(sa.perm_rewalks == sb.perm_rewalks);
    CHECK(sb.perm_rewalks > 0);   // the denied case ran
    if (l1 == 8) CHECK(sb.l2_hits > 0);
    CHECK(a.mmu.l1_tlb().size() == b.mmu.l1_tlb().size());
}
