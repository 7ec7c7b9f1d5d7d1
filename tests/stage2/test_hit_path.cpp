// The stage-2 MMU's hit path (try_hit(): the most recently used entry, then the L1 TLB
// probe) against the full lookup (translate()). The vCPU calls try_hit() first and
// translate() only when it declines, so the pair must behave exactly like translate()
// alone: the same address and cycles on a hit, the same statistics, the same LRU order
// (hence the same later hits and evictions). Two identical machines run the same random
// mix of accesses and TLB maintenance, one through try_hit() + translate(), the other
// through translate() alone, and are compared after every operation.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

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
constexpr uint64_t kS2Xn = 2ull << desc::S2_XN_SHIFT;

constexpr uint64_t kPages = 48;               // 4K stage-2 pages at kIpa4K
constexpr uint64_t kIpa4K = 0x2000'0000;
constexpr uint64_t kIpa2M = 0x2020'0000;      // a 2 MiB stage-2 block
constexpr uint64_t kIpa1G = 0xC000'0000;      // a 1 GiB stage-2 block

// Small TLBs and caches, so that the working set evicts: a hit path that left the LRU
// order alone would evict another entry than translate() does, and a later access
// would hit in one machine and miss in the other.
Stage2Config small() {
    Stage2Config c;
    c.l1 = {8, 4, 1};
    c.l2 = {32, 4, 5};
    c.s2tlb = {16, 4, 2};
    c.walk_cache = {16, 4, 2};
    return c;
}

uint64_t s2_attrs(uint64_t i) { return i % 6 == 1 ? kS2Ro : i % 6 == 2 ? (kS2Rw | kS2Xn) : kS2Rw; }
uint64_t s1_attrs(uint64_t i) { return i % 5 == 3 ? kS1Ro : i % 7 == 4 ? (kS1Rw | desc::S1_PXN) : kS1Rw; }

// One core with stage-2 tables of 4K pages (read-only and execute-never among them), a
// 2M and a 1G block; with stage 1 on, stage-1 tables of 4K pages (read-only and
// privileged-execute-never among them), 2M and 1G blocks over those, and addresses that
// fault in either stage.
struct Machine {
    PhysMem mem;
    CountingMemory port{mem};
    S2Geometry geo = kvm_stage2_geometry(Granule::k4K, 40);
    S1Geometry s1g = s1_geometry(Granule::k4K, 48);
    DescBuilder s2 = DescBuilder::stage2(mem, geo, kS2Pool);
    DescBuilder s1 = DescBuilder::stage1(mem, s1g, kS1Pool, [](uint64_t a) { return a + kS1Shift; });
    Stage2Mmu mmu;
    std::vector<std::pair<uint64_t, uint64_t>> targets;   // (base, size) the accesses pick from

    explicit Machine(bool stage1, const Stage2Config& cfg = small()) : mmu(cfg, port) {
        for (uint64_t i = 0; i < kPages; ++i)
            s2.map(kIpa4K + i * 4096, 0x1'0000'0000 + ((i * 7) % kPages) * 4096, 3, s2_attrs(i));
        s2.map(kIpa2M, 0x1'4000'0000, 2, kS2Rw);
        s2.map(kIpa1G, 0x2'0000'0000, 1, kS2Rw);
        mmu.set_vtcr(kvm_vtcr(geo));
        mmu.set_vttbr(1, Hpa(s2.root()));
        if (!stage1) {
            mmu.set_stage1_off();
            for (uint64_t i = 0; i <= kPages; ++i) targets.push_back({kIpa4K + i * 4096, 4096});   // the last faults
            targets.push_back({kIpa2M, 2ull << 20});
            targets.push_back({kIpa1G, 1ull << 30});
            targets.push_back({1ull << 40, 4096});   // beyond the IPA size
            return;
        }
        for (uint64_t i = 0; i <= kPages; ++i) {
            const uint64_t va = 0x10'0000'0000 + i * 4096;
            s1.map(va, kIpa4K + i * 4096, 3, s1_attrs(i));   // page kPages has no stage 2
            targets.push_back({va, 4096});
        }
        s1.map(0x20'0000'0000, kIpa2M, 2, kS1Rw);            // 2M over 2M: a 2M entry
        s1.map(0x20'0020'0000, kIpa4K, 2, kS1Rw);            // 2M over 4K pages: 4K entries
        targets.push_back({0x20'0000'0000, 4ull << 20});
        for (uint64_t i = 0; i < 16; ++i) {
            const uint64_t va = 0x30'0000'0000 + i * 4096;   // 4K over the 1G block
            s1.map(va, kIpa1G + i * 3 * 4096, 3, kS1Rw);
            targets.push_back({va, 4096});
        }
        s1.map(0x30'4000'0000, kIpa1G, 1, kS1Rw);            // 1G over 1G: a 1G entry
        targets.push_back({0x30'4000'0000, 1ull << 30});
        targets.push_back({0x40'0000'0000, 4096});           // no stage-1 entry
        for (uint64_t a = kS1Pool; a < s1.next_free(); a += 4096) s2.map(a, a + kS1Shift, 3, kS2Rw);
        mmu.set_tcr(Granule::k4K, 48);
        mmu.set_ttbr0(7, Gpa(s1.root()));
    }
};

void same_stats(const Stage2Mmu& a, const Stage2Mmu& b) {
    const mmu::MmuStats &x = a.stats(), &y = b.stats();
    CHECK(x.accesses == y.accesses);
    CHECK(x.l1_hits == y.l1_hits);
    CHECK(x.l2_hits == y.l2_hits);
    CHECK(x.misses == y.misses);
    CHECK(x.gpa_lookups == y.gpa_lookups);
    CHECK(x.walk_mem_refs == y.walk_mem_refs);
    CHECK(x.walk_cycles == y.walk_cycles);
    CHECK(x.pwc_hits == y.pwc_hits);
    CHECK(x.ntlb_hits == y.ntlb_hits);
    CHECK(x.guest_faults == y.guest_faults);
    CHECK(x.npfs == y.npfs);
    CHECK(x.ad_writes == y.ad_writes);
    CHECK(x.flushes == y.flushes);
    CHECK(x.perm_rewalks == y.perm_rewalks);
    const Stage2Stats &p = a.s2_stats(), &q = b.s2_stats();
    CHECK(p.s2_walks == q.s2_walks);
    CHECK(p.s2_mem_refs == q.s2_mem_refs);
    CHECK(p.s1_mem_refs == q.s1_mem_refs);
    CHECK(p.s2_faults == q.s2_faults);
    CHECK(p.s2tlb_hits == q.s2tlb_hits);
    CHECK(p.walk_cache_hits == q.walk_cache_hits);
    CHECK(p.tlbi == q.tlbi);
}

void same_result(const TranslateResult& x, const TranslateResult& y) {
    CHECK(x.status == y.status);
    CHECK(x.hpa.raw() == y.hpa.raw());
    CHECK(x.page_size == y.page_size);
    CHECK(x.writable == y.writable);
    CHECK(x.cycles == y.cycles);
    CHECK(x.mem_refs == y.mem_refs);
    CHECK(x.tlb_hit == y.tlb_hit);
    CHECK(x.fault_gpa.raw() == y.fault_gpa.raw());
    CHECK(x.error_code == y.error_code);
    CHECK(x.fault_level == y.fault_level);
    CHECK(x.fault_gva.raw() == y.fault_gva.raw());
    CHECK(x.fault_pte_gpa.raw() == y.fault_pte_gpa.raw());
}

// Runs `ops` random operations on two identical machines: `fast` translates through
// try_hit() then translate(), `ref` through translate() alone. Returns how many accesses
// try_hit() served.
uint64_t run_mix(bool stage1, uint64_t seed, unsigned ops) {
    Machine fast(stage1), ref(stage1);
    std::mt19937_64 rng(seed);
    auto both = [&](auto&& f) { f(fast); f(ref); };
    uint64_t served = 0;
    for (unsigned n = 0; n < ops; ++n) {
        const unsigned op = unsigned(rng() % 1000);
        INFO("operation " << n << " (" << op << ")");
        if (op < 960) {
            // Mostly the same few pages, as a working set is; sometimes anywhere.
            const size_t k = op < 700 ? size_t(rng() % 6) : size_t(rng() % fast.targets.size());
            const auto [base, size] = fast.targets[k];
            const uint64_t va = base + ((rng() % size) & ~7ull);
            const unsigned r = unsigned(rng() % 10);
            const AccessType at = r < 6 ? AccessType::read : r < 9 ? AccessType::write : AccessType::fetch;
            INFO("va " << std::hex << va << std::dec << ", access " << unsigned(at));
            Hpa hpa;
            Cycles cyc = 0;
            const TranslateResult want = ref.mmu.translate(Gva(va), at, false);
            if (fast.mmu.try_hit(Gva(va), at, &hpa, &cyc)) {
                ++served;
                REQUIRE(want.ok());
                CHECK(want.tlb_hit);
                CHECK(hpa.raw() == want.hpa.raw());
                CHECK(cyc == want.cycles);
            } else {
                same_result(fast.mmu.translate(Gva(va), at, false), want);
            }
        } else if (op < 970) {
            both([](Machine& m) { m.mmu.tlbi_vmalle1(1); });
        } else if (op < 980) {
            // Change a 4K stage-2 page (new frame, other permissions), then KVM's
            // sequence: IPAS2E1IS and VMALLE1IS. Without the TLBI (every other time)
            // both machines keep serving the stale entry.
            const uint64_t i = rng() % kPages, pa = 0x1'8000'0000 + (rng() % 64) * 4096;
            const uint64_t attrs = s2_attrs(rng() % 6);
            const bool tlbi = rng() & 1;
            both([&](Machine& m) {
                m.s2.map(kIpa4K + i * 4096, pa, 3, attrs);
                if (!tlbi) return;
                m.mmu.tlbi_ipas2e1(1, kIpa4K + i * 4096, 3);
                m.mmu.tlbi_vmalle1(1);
            });
        } else if (op < 985) {
            both([](Machine& m) { m.mmu.tlbi_vmalls12e1(1); });
        } else if (op < 990) {
            both([](Machine& m) { m.mmu.flush_all(); });
        } else if (stage1) {
            // Another address space over the same tables: entries are ASID-tagged.
            const uint16_t asid = fast.mmu.asid() == 7 ? 8 : 7;
            both([&](Machine& m) { m.mmu.set_ttbr0(asid, Gpa(m.s1.root())); });
        } else {
            // Another VMID over the same stage 2 (entries are VMID-tagged), and back.
            const uint16_t vmid = fast.mmu.vmid() == 1 ? 2 : 1;
            both([&](Machine& m) { m.mmu.set_vttbr(vmid, Hpa(m.s2.root())); });
        }
        same_stats(fast.mmu, ref.mmu);
    }
    return served;
}

}  // namespace

TEST_CASE("hit path: try_hit then translate equals translate alone, stage 2 only (nVHE or pKVM without guest paging)") {
    for (uint64_t seed : {1, 2, 3}) {
        INFO("seed " << seed);
        CHECK(run_mix(false, seed, 4000) > 1000);
    }
}

TEST_CASE("hit path: try_hit then translate equals translate alone with a guest stage 1") {
    for (uint64_t seed : {1, 2, 3}) {
        INFO("seed " << seed);
        CHECK(run_mix(true, seed, 4000) > 1000);
    }
}

TEST_CASE("hit path: an L1 entry other than the most recent one is served by try_hit") {
    Machine m(false, Stage2Config{});
    for (uint64_t i : {0, 1, 2, 5}) REQUIRE(m.mmu.translate(Gva(kIpa4K + i * 4096), AccessType::read, false).ok());
    const uint64_t misses = m.mmu.stats().misses, hits = m.mmu.stats().l1_hits;
    Hpa hpa;
    Cycles cyc = 0;
    // Page 0 is in the L1 TLB but not the most recent translation (page 5 is).
    REQUIRE(m.mmu.try_hit(Gva(kIpa4K + 0x18), AccessType::read, &hpa, &cyc));
    CHECK(hpa.raw() == 0x1'0000'0000 + 0x18);
    CHECK(cyc == Stage2Config{}.l1.hit_cycles);
    CHECK(m.mmu.stats().l1_hits == hits + 1);
    CHECK(m.mmu.stats().accesses == hits + 1 + misses);
    CHECK(m.mmu.stats().misses == misses);
    // An L1 entry that does not allow the access is no hit: translate() re-walks it and
    // takes the permission fault. Page 1 is read-only at stage 2, page 2 execute-never.
    CHECK_FALSE(m.mmu.try_hit(Gva(kIpa4K + 1 * 4096), AccessType::write, &hpa, &cyc));
    CHECK_FALSE(m.mmu.try_hit(Gva(kIpa4K + 2 * 4096), AccessType::fetch, &hpa, &cyc));
    CHECK(m.mmu.stats().accesses == hits + 1 + misses);   // declined probes count nothing
    CHECK(m.mmu.translate(Gva(kIpa4K + 1 * 4096), AccessType::write, false).status ==
          TranslateResult::Status::npf);
    CHECK(m.mmu.stats().perm_rewalks == 1);
    CHECK(m.mmu.try_hit(Gva(kIpa4K + 2 * 4096), AccessType::read, &hpa, &cyc));
    CHECK(hpa.raw() == 0x1'0000'0000 + ((2 * 7) % kPages) * 4096);
}

TEST_CASE("hit path: after TLBI VMALLE1IS or a VMID switch try_hit serves nothing stale") {
    Machine m(false, Stage2Config{});
    for (uint64_t i : {0, 3}) REQUIRE(m.mmu.translate(Gva(kIpa4K + i * 4096), AccessType::read, false).ok());
    Hpa hpa;
    Cycles cyc = 0;
    REQUIRE(m.mmu.try_hit(Gva(kIpa4K), AccessType::read, &hpa, &cyc));
    m.mmu.tlbi_vmalle1(1);
    CHECK_FALSE(m.mmu.try_hit(Gva(kIpa4K), AccessType::read, &hpa, &cyc));
    CHECK_FALSE(m.mmu.try_hit(Gva(kIpa4K + 3 * 4096), AccessType::read, &hpa, &cyc));
    for (uint64_t i : {0, 3}) REQUIRE(m.mmu.translate(Gva(kIpa4K + i * 4096), AccessType::read, false).ok());
    m.mmu.set_vttbr(2, Hpa(m.s2.root()));   // VMID 2's entries: none yet
    CHECK_FALSE(m.mmu.try_hit(Gva(kIpa4K), AccessType::read, &hpa, &cyc));
    m.mmu.set_vttbr(1, Hpa(m.s2.root()));   // VMID 1's survive
    CHECK(m.mmu.try_hit(Gva(kIpa4K), AccessType::read, &hpa, &cyc));
}
