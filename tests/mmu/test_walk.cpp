// The two-dimensional walk: reference counts (docs/sources.md §5 oracles), addresses,
// timing through CacheHierarchy, effective page size, accessed/dirty write-back.
#include <catch2/catch.hpp>

#include "tests/mmu/counting_memory.hpp"
#include "tests/mmu/rig.hpp"

using namespace hvsim;
using namespace hvsim::mmu;
using namespace hvsim::mmu::test;

namespace {
struct CountCase {
    unsigned gl, nl;
    PgLevel g, n;
    unsigned refs;
};
}  // namespace

TEST_CASE("a cold 2D walk makes (n+1)(m+1)-1 references, fewer with large pages", "[mmu][walk]") {
    const auto fmt = GENERATE(NestedFormat::npt, NestedFormat::ept);
    using L = PgLevel;
    const auto cc = GENERATE(values<CountCase>({
        {4, 4, L::k4K, L::k4K, 24}, {5, 5, L::k4K, L::k4K, 35}, {4, 5, L::k4K, L::k4K, 29},
        {5, 4, L::k4K, L::k4K, 29}, {4, 4, L::k2M, L::k4K, 19}, {4, 4, L::k1G, L::k4K, 14},
        {4, 4, L::k4K, L::k2M, 19}, {4, 4, L::k4K, L::k1G, 14}, {4, 4, L::k2M, L::k2M, 15},
        {5, 5, L::k2M, L::k2M, 24}, {4, 4, L::k1G, L::k1G, 8},  {0, 4, L::k4K, L::k4K, 4},
        {0, 5, L::k4K, L::k4K, 5},  {0, 4, L::k4K, L::k2M, 3},
    }));
    CAPTURE(int(fmt), cc.gl, cc.nl, int(cc.g), int(cc.n));
    Rig r(bare_config(cc.gl, cc.nl, fmt));
    r.standard(cc.g, cc.n);
    const uint64_t va = (cc.gl ? r.gva0() : kDataGpa) + 0x3123;

    const TranslateResult res = r.rd(va);
    REQUIRE(res.ok());
    CHECK(res.mem_refs == cc.refs);
    CHECK(res.hpa == Hpa(kDataGpa + 0x3123 + kHostOff));
    CHECK(res.page_size == (cc.gl ? std::min(cc.g, cc.n) : cc.n));
    CHECK(res.writable);
    CHECK_FALSE(res.tlb_hit);
    // DRAM-only hierarchy (100 cycles) plus the L1 (1) and L2 (7) TLB lookups.
    CHECK(res.cycles == 8 + 100ull * cc.refs);
    const MmuStats& s = r.mmu.stats();
    CHECK(s.accesses == 1);
    CHECK(s.misses == 1);
    CHECK(s.walk_mem_refs == cc.refs);
    CHECK(s.walk_cycles == 100ull * cc.refs);
    CHECK(s.l1_hits + s.l2_hits + s.pwc_hits + s.ntlb_hits == 0);
}

// Reproduction: the cold two-dimensional walk of Bhargava et al. (ASPLOS'08, §3) makes
// (n+1)(m+1)-1 references for n guest and m nested levels walked; a large page ends a
// dimension's walk early (a 2M leaf walks one level fewer, a 1G leaf two). Every
// combination of 4/5 levels in each dimension and 4K/2M/1G pages in each, both formats.
TEST_CASE("reproduce: cold 2D walk counts (n+1)(m+1)-1 for 4/5 levels x 4K/2M/1G in both dimensions", "[mmu][walk][reproduce]") {
    const auto fmt = GENERATE(NestedFormat::npt, NestedFormat::ept);
    const unsigned gl = GENERATE(4u, 5u), nl = GENERATE(4u, 5u);
    using L = PgLevel;
    const L g = GENERATE(L::k4K, L::k2M, L::k1G), n = GENERATE(L::k4K, L::k2M, L::k1G);
    const unsigned gwalked = gl - (unsigned(g) - 1), nwalked = nl - (unsigned(n) - 1);
    const unsigned refs = (gwalked + 1) * (nwalked + 1) - 1;
    CAPTURE(int(fmt), gl, nl, int(g), int(n), refs);
    Rig r(bare_config(gl, nl, fmt));
    r.standard(g, n);
    const TranslateResult res = r.rd(r.gva0() + 0x3123);
    REQUIRE(res.ok());
    CHECK(res.mem_refs == refs);
    CHECK(res.hpa == Hpa(kDataGpa + 0x3123 + kHostOff));
    CHECK(res.page_size == std::min(g, n));
    CHECK(res.cycles == 8 + 100ull * refs);
}

TEST_CASE("walk latency is the sum of the hierarchy latencies of the exact reference sequence", "[mmu][walk]") {
    MemHierarchyConfig h;
    h.levels = {{"l1d", 4096, 4, 4}, {"l2", 64 * 1024, 8, 14}};
    h.dram_cycles = 300;
    Rig r(bare_config(), h);
    r.standard();
    const uint64_t va = kGva + 5 * kPageSize + 0x40;

    // Oracle: for each guest level, the nested walk of the guest table page, then the
    // guest entry; finally the nested walk of the data gPA.
    std::vector<uint64_t> seq;
    for (uint64_t pte_gpa : r.guest.path(va)) {
        for (uint64_t a : r.nested.path(pte_gpa & ~kPageMask)) seq.push_back(a);
        seq.push_back(r.guest.host(pte_gpa));
    }
    for (uint64_t a : r.nested.path(r.guest.lookup(va))) seq.push_back(a);
    REQUIRE(seq.size() == 24);
    CacheHierarchy twin(h);
    Cycles sum = 0;
    for (uint64_t a : seq) sum += twin.access(Hpa(a));

    const TranslateResult res = r.rd(va);
    REQUIRE(res.ok());
    CHECK(res.cycles == 1 + 7 + sum);
    CHECK(sum < 24 * 300);   // shared table lines hit in the data caches
    CHECK(r.cache.stats().dram == twin.stats().dram);
    CHECK(r.cache.stats().levels[0].hits == twin.stats().levels[0].hits);
}

TEST_CASE("the effective page size is the smaller of the two leaves", "[mmu][walk]") {
    using L = PgLevel;
    const auto pr = GENERATE(std::pair<L, L>{L::k2M, L::k4K}, std::pair<L, L>{L::k4K, L::k2M},
                             std::pair<L, L>{L::k1G, L::k2M}, std::pair<L, L>{L::k2M, L::k1G},
                             std::pair<L, L>{L::k1G, L::k1G}, std::pair<L, L>{L::k2M, L::k2M});
    Rig r(bare_config());
    r.standard(pr.first, pr.second);
    const L eff = std::min(pr.first, pr.second);
    const TranslateResult a = r.rd(kGva + 0x10);
    REQUIRE(a.ok());
    CHECK(a.page_size == eff);
    CHECK(r.mmu.l1_tlb().count_code(unsigned(eff)) == 1);
    // The neighbouring 4K page is covered by the TLB entry only if eff > 4K.
    const TranslateResult b = r.rd(kGva + kPageSize + 0x10);
    REQUIRE(b.ok());
    CHECK(b.hpa == Hpa(kDataGpa + kPageSize + 0x10 + kHostOff));
    CHECK(b.tlb_hit == (eff != L::k4K));
    CHECK(r.mmu.stats().misses == (eff == L::k4K ? 2u : 1u));
}

TEST_CASE("accessed and dirty bits are written back to both dimensions", "[mmu][walk][ad]") {
    Rig r(bare_config());
    r.standard();
    const uint64_t va = kGva + 2 * kPageSize;
    const uint64_t data_gpa = kDataGpa + 2 * kPageSize;

    REQUIRE(r.rd(va).ok());
    for (unsigned l = 4; l >= 1; --l) CHECK((r.guest.read(va, l) & pte::A) != 0);
    CHECK((r.guest.read(va, 1) & pte::D) == 0);
    CHECK((r.nested.leaf(data_gpa) & (pte::A | pte::D)) == pte::A);
    for (unsigned l = 4; l >= 2; --l) CHECK((r.nested.read(data_gpa, l) & pte::A) != 0);
    // Setting A in a guest entry wrote its table page: nested D set for every table page.
    REQUIRE(r.guest.tables().size() == 4);
    for (uint64_t t : r.guest.tables()) CHECK((r.nested.leaf(t) & (pte::A | pte::D)) == (pte::A | pte::D));
    // 10 distinct nested entries get A (1 PML4E, 2 PDPTEs, 2 PDEs, 5 PTEs; the 4
    // table-page leaves get A and D in one update: the walk's table accesses are nested
    // writes), 4 guest entries get A.
    CHECK(r.mmu.stats().ad_writes == 14);
    // The entry for another page of the same table is untouched.
    CHECK((r.guest.read(va + kPageSize, 1) & pte::A) == 0);

    // A write through the read-filled (clean) TLB entry re-walks to set D.
    const TranslateResult w = r.wr(va + 8);
    REQUIRE(w.ok());
    CHECK_FALSE(w.tlb_hit);
    CHECK(w.mem_refs == 24);
    CHECK(r.mmu.stats().perm_rewalks == 1);
    CHECK(r.mmu.stats().ad_writes == 16);
    CHECK((r.guest.read(va, 1) & pte::D) != 0);
    CHECK((r.nested.leaf(data_gpa) & pte::D) != 0);
    CHECK((r.guest.read(va, 2) & pte::D) == 0);   // D only in leaves
    CHECK((r.nested.read(data_gpa, 2) & pte::D) == 0);
    // Now the entry is dirty: writes hit.
    const TranslateResult w2 = r.wr(va + 16);
    CHECK(w2.tlb_hit);
    CHECK(w2.mem_refs == 0);
    CHECK(r.mmu.stats().misses == 2);

    // A cold write sets A and D together (no extra write-backs).
    const uint64_t before = r.mmu.stats().ad_writes;
    REQUIRE(r.wr(va + kPageSize).ok());
    CHECK((r.guest.read(va + kPageSize, 1) & (pte::A | pte::D)) == (pte::A | pte::D));
    CHECK((r.nested.leaf(data_gpa + kPageSize) & (pte::A | pte::D)) == (pte::A | pte::D));
    CHECK(r.mmu.stats().ad_writes == before + 2);   // the guest PTE and the nested PTE, one write each
}

TEST_CASE("EPT keeps A/D at bits 8/9 only when EPTP enables them", "[mmu][walk][ad][ept]") {
    const bool ad = GENERATE(true, false);
    MmuConfig c = bare_config(4, 4, NestedFormat::ept);
    c.ept_ad = ad;
    Rig r(c);
    r.standard();
    const uint64_t data_gpa = kDataGpa + 0x1000;
    REQUIRE(r.rd(kGva + 0x1000).ok());
    const uint64_t leaf = r.nested.leaf(data_gpa);
    for (uint64_t t : r.guest.tables()) {
        // With A/D on, guest paging-structure accesses are EPT writes: A and D on each table page.
        CHECK((r.nested.leaf(t) & (ept::A | ept::D)) == (ad ? (ept::A | ept::D) : 0));
    }
    CHECK((leaf & (ept::A | ept::D)) == (ad ? ept::A : 0));
    CHECK((r.nested.read(data_gpa, 4) & ept::A) == (ad ? ept::A : 0));
    // Bits 6:3 (the x86 A/D positions) are memory type and IPAT in EPT: left as KVM wrote them.
    CHECK((leaf & 0x78) == (ept::MT_WB | ept::IPAT));
    // Guest entries keep x86 A/D regardless.
    CHECK((r.guest.read(kGva + 0x1000, 1) & pte::A) != 0);
    // With A/D: 10 nested entries (table-page leaves get A|D in one write) + 4 guest.
    CHECK(r.mmu.stats().ad_writes == (ad ? 14u : 4u));

    REQUIRE(r.wr(kGva + 0x1000).ok());
    CHECK((r.nested.leaf(data_gpa) & ept::D) == (ad ? ept::D : 0));
    CHECK((r.guest.read(kGva + 0x1000, 1) & pte::D) != 0);
}

TEST_CASE("out-of-reach addresses are programming errors", "[mmu][walk]") {
    SECTION("non-canonical gVA, 4-level") {
        Rig r(bare_config());
        r.standard();
        CHECK_THROWS_AS(r.rd(0x0000'8000'0000'0000ull), std::out_of_range);
        CHECK(r.rd(0xffff'8000'0000'0000ull).status == TranslateResult::Status::guest_page_fault);
    }
    SECTION("5-level guests use bits 56:0") {
        Rig r(bare_config(5, 5));
        r.standard();
        CHECK(r.rd(kGva5).ok());
        CHECK_THROWS_AS(r.rd(0x0100'0000'0000'0000ull), std::out_of_range);
    }
    SECTION("gPA beyond the 4-level nested reach") {
        Rig r(bare_config(0, 4));
        r.standard();
        CHECK_THROWS_AS(r.rd(1ull << 48), std::out_of_range);
        Rig r5(bare_config(0, 5));
        r5.standard();
        CHECK(r5.rd(1ull << 48).status == TranslateResult::Status::npf);   // in reach, unmapped
    }
    SECTION("a guest PTE pointing beyond the nested reach") {
        Rig r(bare_config());
        r.standard();
        r.guest.map(kGva + 0x20'0000, 1ull << 50, PgLevel::k4K);
        CHECK_THROWS_AS(r.rd(kGva + 0x20'0000), std::out_of_range);
    }
    SECTION("bad geometry") {
        PhysMem m;
        CacheHierarchy h(dram_only());
        MmuConfig c = bare_config(3, 4);
        CHECK_THROWS_AS(Mmu(c, m, h), std::invalid_argument);
        c = bare_config(4, 4);
        c.l2 = {3072, 7, 7};
        CHECK_THROWS_AS(Mmu(c, m, h), std::invalid_argument);
    }
}

// Mmu::prefetch_walk() is a host-side hint: it names the guest leaf entry the walk of an
// address would read, from the leaf table the last walk in its 2 MiB region ended in, and
// leaves every modelled structure as it was.
TEST_CASE("prefetch_walk names the guest leaf entry the next walk reads and changes nothing", "[mmu][walk]") {
    const PgLevel gsize = GENERATE(PgLevel::k4K, PgLevel::k2M);
    CAPTURE(int(gsize));
    Rig r(bare_config());
    r.standard(gsize);
    CountingMemory rec(r.mem);
    rec.log = true;
    Mmu m(r.cfg, rec);
    m.set_guest_root(Gpa(r.guest.root()));
    m.set_nested_root(Hpa(r.nested.root()));
    const uint64_t va = r.gva0();

    // Nothing walked in the region yet: no hint.
    m.prefetch_walk(Gva(va + 0x5008));
    CHECK(rec.prefetches.empty());

    REQUIRE(m.translate(Gva(va + 0x1010), AccessType::read, false).ok());
    const MmuStats before = m.stats();
    m.prefetch_walk(Gva(va + 0x5008));
    REQUIRE(rec.prefetches.size() == 1);
    const uint64_t hinted = rec.prefetches[0];
    CHECK(m.stats().accesses == before.accesses);
    CHECK(m.stats().misses == before.misses);

    // The walk of that address (nested 4K pages: the TLB holds 4K pieces) reads the
    // entry hinted: the PTE of its page, or with a 2M guest page the PDE the first walk read.
    rec.read_log.clear();
    const TranslateResult t = m.translate(Gva(va + 0x5008), AccessType::read, false);
    REQUIRE(t.ok());
    REQUIRE_FALSE(t.tlb_hit);
    CHECK(std::find(rec.read_log.begin(), rec.read_log.end(), hinted) != rec.read_log.end());
    if (gsize == PgLevel::k4K) CHECK(hinted % kPageSize == table_index(va + 0x5008, 1) * 8);
    else CHECK(hinted % kPageSize == table_index(va, 2) * 8);

    // Another 2 MiB region of guest-virtual space has no hint of its own.
    rec.prefetches.clear();
    m.prefetch_walk(Gva(va + (1ull << 21)));
    CHECK(rec.prefetches.empty());
}
