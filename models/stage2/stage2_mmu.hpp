// The arm64 translation hardware of one core running a guest at EL1: stage-1 (TTBR0_EL1,
// TCR_EL1) nested inside stage-2 (VTTBR_EL2, VTCR_EL2), walked over real descriptors in
// simulated memory (Arm ARM D8, VMSAv8-64).
//
// Structures:
//  - a combined (stage-1 + stage-2) L1 and L2 TLB, each entry tagged with VMID and ASID
//    and holding the smaller of the two leaves (Arm ARM D8.16 "Translation Lookaside Buffers");
//  - a stage-2 TLB (IPA -> PA, tagged with the VMID): the nested translations of the
//    stage-1 table pages and of final IPAs, as the ARM "IPA cache";
//  - a walk cache of table (non-leaf) descriptors of both stages, tagged like the TLBs.
// TLB maintenance (TLBI IPAS2E1IS, VMALLE1IS, VMALLS12E1IS) drops what the Arm ARM says
// each operation covers (D8.16.6); the broadcast to every core is TlbiDomain's.
//
// A walk reads each descriptor through mmu::WalkMemory (one reference each, latencies
// added: the references are dependent). Cold, an n-level stage-1 inside an m-level
// stage-2 makes (n+1)(m+1) - 1 references.
//
// Simplifications (documented):
//  - TTBR0_EL1 only (the guest's kernel half, TTBR1, is not used); all entries non-global.
//  - Stage-1 permissions for an EL1 access: write needs AP[2] = 0, fetch needs PXN = 0.
//  - Access flag: hardware-managed in both stages (VTCR_EL2.HA, which KVM sets, and
//    TCR_EL1.HA, which Linux sets); the AF write-back is a posted store (counted, no latency).
//  - The stage-1 walk's own reads are stage-2 reads (S1PTW); an AF update in a stage-1
//    descriptor needs no stage-2 write permission here.
//  - Contiguous hints (PTE bit 52) are ignored: each descriptor fills its own TLB entry
//    (KVM never sets PTE_CONT at stage 2; a guest's stage-1 hint would only save TLB space).
#pragma once

#include <cstdint>

#include "models/common/types.hpp"
#include "models/mmu/assoc_cache.hpp"
#include "models/mmu/leaf_hints.hpp"
#include "models/mmu/mmu.hpp"
#include "models/stage2/vmsa.hpp"

namespace hvsim::stage2 {

struct Stage2Config {
    mmu::TlbConfig l1{48, 48, 0};        // L1 data TLB (Neoverse N2: 48 entries, fully associative)
    mmu::TlbConfig l2{1536, 6, 6};       // L2 unified TLB (Neoverse N2: 1536 entries, 6-way)
    mmu::TlbConfig s2tlb{64, 64, 2};     // stage-2 (IPA -> PA) cache
    mmu::TlbConfig walk_cache{64, 64, 2};// table descriptors of both stages
};

// Stage-2 specific counters (results: s2.*).
struct Stage2Stats {
    uint64_t s2_walks = 0;       // stage-2 walks started (each nested walk of a 2D walk counts)
    uint64_t s2_mem_refs = 0;    // stage-2 descriptors read
    uint64_t s1_mem_refs = 0;    // stage-1 descriptors read
    uint64_t s2_faults = 0;      // stage-2 aborts taken to EL2
    uint64_t s2tlb_hits = 0;     // IPA -> PA translations served by the stage-2 TLB
    uint64_t walk_cache_hits = 0;
    uint64_t tlbi = 0;           // TLBI operations received (broadcast ones count on every core)
};

class Stage2Mmu {
public:
    Stage2Mmu(const Stage2Config& cfg, mmu::WalkMemory& port);
    Stage2Mmu(const Stage2Mmu&) = delete;
    Stage2Mmu& operator=(const Stage2Mmu&) = delete;

    // System registers. A new VMID / root / configuration needs no flush: entries are
    // tagged (a VMID is flushed with VMALLS12E1IS before it is reused, as KVM does).
    void set_vtcr(uint64_t vtcr);
    void set_vttbr(uint16_t vmid, Hpa root);
    // Stage 1 off (SCTLR_EL1.M = 0): VA == IPA.
    void set_stage1_off();
    void set_tcr(Granule g, unsigned va_bits);
    void set_ttbr0(uint16_t asid, Gpa root);
    uint16_t vmid() const { return vmid_; }
    uint16_t asid() const { return asid_; }
    const S2Geometry& s2() const { return s2_; }
    bool stage1_on() const { return s1_on_; }
    const S1Geometry& s1() const { return s1_; }

    // As mmu::Mmu: the MRU hit path, the full lookup, and the stage-2 dimension alone.
    inline bool try_hit(Gva va, mmu::AccessType at, Hpa* hpa, Cycles* cycles);
    // As mmu::Mmu::prefetch_walk(): the host-side hints for the stage-1 leaf descriptor a
    // walk of va would read and for the stage-2 leaf descriptor of its IPA, taken to be va
    // (the guest model maps GVA = GPA, cpu::GuestOs; stage 1 off, it is). The stage-2
    // references of the stage-1 walk are not hinted.
    void prefetch_walk(Gva va) {
        uint64_t table;
        unsigned level;
        if (s1_on_ && hints_.find(va.raw(), table, level))
            port_->prefetch(table + table_index(s1_.granule, int(level), va.raw()) * 8);
        if (s2hints_.find(va.raw(), table, level))
            port_->prefetch(table + table_index(s2_.granule, int(level), va.raw()) * 8);
    }
    mmu::TranslateResult translate(Gva va, mmu::AccessType at, bool enc);
    mmu::TranslateResult translate_gpa(Gpa ipa, mmu::AccessType at, bool enc);

    // TLB maintenance as this core performs it (received from the broadcast).
    void tlbi_ipas2e1(uint16_t vmid, uint64_t ipa, int level);   // stage-2-only entries of one IPA
    void tlbi_vmalle1(uint16_t vmid);                            // stage-1 and combined entries of a VMID
    void tlbi_vmalls12e1(uint16_t vmid);                         // everything of a VMID
    void flush_all();                                            // every VMID (local)

    const mmu::MmuStats& stats() const { return stats_; }
    const Stage2Stats& s2_stats() const { return s2stats_; }
    const Stage2Config& config() const { return cfg_; }

private:
    static constexpr uint8_t kR = 1, kW = 2, kX = 4;
    struct TlbEntry {
        uint64_t vpage = 0;      // VA >> shift (tag check: keys are hashed)
        uint64_t ipa_page = 0;   // IPA of the page (>> shift), for inspection
        uint64_t hbase = 0;
        uint16_t vmid = 0, asid = 0;
        uint8_t allow = 0;
        uint8_t shift = 12;
    };
    struct S2Entry {             // IPA page -> PA page (stage-2 TLB)
        uint64_t ipage = 0;
        uint64_t pa = 0;
        uint16_t vmid = 0;
        uint8_t perm = 0;
        uint8_t shift = 12;      // stage-2 leaf size
    };
    struct WcEntry {             // a table descriptor: next table's address
        uint64_t tag = 0;
        uint64_t next = 0;
        uint16_t vmid = 0, asid = 0;
    };
    struct S2Out {
        bool ok = false;
        uint64_t pa = 0;
        uint8_t perm = 0;
        unsigned shift = 12;     // leaf size
        uint64_t fsc = 0;
        uint64_t leaf_table = 0;   // ok after a walk: the table holding the leaf (0: a TLB hit)
        int leaf_level = 0;
    };
    struct Mru {
        uint64_t vmask = 0, vbase = 1;
        uint64_t hbase = 0;
        uint8_t allow = 0;
    };

    mmu::TranslateResult translate_slow(uint64_t va, mmu::AccessType at);
    // The L1 hit of translate_slow() without a result record: a working set of 4K stage-2
    // pages (pKVM maps guests page by page) misses the one-entry MRU on most accesses.
    bool try_l1_hit(uint64_t v, mmu::AccessType at, Hpa* hpa, Cycles* cycles);
    mmu::TranslateResult walk(uint64_t va, mmu::AccessType at, Cycles c);
    S2Out s2_translate(uint64_t ipa, uint8_t acc, Cycles& cyc, unsigned& refs);
    S2Out s2_walk(uint64_t ipa, uint8_t acc, Cycles& cyc, unsigned& refs);
    mmu::TranslateResult s2_fault(uint64_t ipa, const S2Out& o, mmu::AccessType at, bool s1ptw);
    static uint64_t tlb_key(uint16_t vmid, uint16_t asid, uint64_t vpage, unsigned code);
    static unsigned size_code(unsigned shift);
    uint8_t s2_perm(uint64_t d) const;
    void drop_mru() {
        mru_ = Mru{};
        l1_missed_.forget();
    }

    Stage2Config cfg_;
    mmu::WalkMemory* port_;
    S2Geometry s2_;
    S1Geometry s1_;
    bool s1_on_ = false;
    bool ha_ = true;
    uint16_t vmid_ = 0, asid_ = 0;
    uint64_t vttbr_ = 0, ttbr0_ = 0;
    mmu::AssocCache<TlbEntry> l1_, l2_;
    mmu::AssocCache<S2Entry> s2tlb_;
    mmu::AssocCache<WcEntry> wc_;
    uint16_t codes_used_ = 0;   // bit per size code present in the TLBs
    Mru mru_;
    mmu::L1WayHints l0_;      // try_hit(): the L1 ways of recently hit 4K pages
    mmu::L1Miss l1_missed_;   // try_l1_hit() found no entry (forgotten on fills, drop_mru())
    mmu::MmuStats stats_;
    Stage2Stats s2stats_;
    // prefetch_walk(): per region, where the last walk's stage-1 leaf table lies (its
    // descriptor's PA less its index: exact where stage 2 maps the table contiguously).
    mmu::LeafHints hints_;
    // Per region of IPA: the stage-2 table the last walk of a data IPA there ended in, when
    // that was a table of page descriptors (level 3).
    mmu::LeafHints s2hints_;
};

inline bool Stage2Mmu::try_hit(Gva va, mmu::AccessType at, Hpa* hpa, Cycles* cycles) {
    const uint64_t v = va.raw();
    if ((v & mru_.vmask) == mru_.vbase && (mru_.allow >> unsigned(at)) & 1u) {
        ++stats_.accesses;
        ++stats_.l1_hits;
        *hpa = Hpa(mru_.hbase | (v & ~mru_.vmask));
        *cycles = cfg_.l1.hit_cycles;
        return true;
    }
    // Then a 4K entry the L1 hit before, found where it was (as mmu::Mmu; the L1's look-up
    // tries the smallest size first, so it would find the same entry).
    const mmu::L1WayHints::Hint* h = l0_.find(v);
    if (h && l1_.holds(h->way, h->key)) {
        const TlbEntry& e = l1_.value(h->way);
        if (e.vpage == (v >> 12) && e.shift == 12 && e.vmid == vmid_ && e.asid == asid_ &&
            ((e.allow >> unsigned(at)) & 1u)) {
            l1_.hit(h->way);
            ++stats_.accesses;
            ++stats_.l1_hits;
            mru_.vmask = ~0xfffull;
            mru_.vbase = v & mru_.vmask;
            mru_.hbase = e.hbase;
            mru_.allow = e.allow;
            *hpa = Hpa(e.hbase | (v & 0xfff));
            *cycles = cfg_.l1.hit_cycles;
            return true;
        }
    }
    return try_l1_hit(v, at, hpa, cycles);
}

}  // namespace hvsim::stage2
