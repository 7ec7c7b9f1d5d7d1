// The x86 translation hardware of one vCPU: L1/L2 data TLBs, a page-walk cache for
// the upper levels of both dimensions, a nested TLB for guest page-table pages, and
// the two-dimensional walker (AMD NPT, APM vol. 2 §15.25; Intel EPT, SDM vol. 3C §29.3).
//
// The walker is functional and timed: every paging-structure entry is read through a
// WalkMemory (PhysMem timed by a CacheHierarchy in plain C++; a TLM-2.0 socket in
// MmuModule) and each read is one reference whose latencies add up (the references of
// a walk are dependent). Accessed/dirty bits are written back
// into memory as hardware does. Structure after Bhargava et al., ASPLOS 2008
// ("Accelerating two-dimensional page walks for virtualized systems").
//
// Simplifications (documented, deliberate):
//  - The simulated guest runs in ring 0 with NX unused, so guest U/S and NX bits are
//    not checked; CR0.WP = 1 (guest RW is enforced, as Linux runs with WP set).
//  - Reserved-bit checks are limited to PS in a PML4E/PML5E (and, on EPT, write without
//    read and a leaf's reserved memory types: an EPT misconfiguration); MAXPHYADDR bits and
//    the SEV C-bit inside guest PTEs are not interpreted (the C-bit is the `enc` argument).
//  - One TLB serves data and instruction fetches; TLB entries are not tagged with
//    `enc` (on real SNP the C-bit comes from the guest PTE, so a gVA has one value).
//  - A/D write-backs are locked updates of the line the walker just read: they are
//    counted (ad_writes) but charge no extra reference or cycles.
//  - Timing: a TLB miss pays the L1 and L2 lookup latencies; PWC and nested-TLB
//    lookups are free on a miss and cost hit_cycles on a hit (MmuConfig::PwcOrg: one
//    hit per dimension walk with paging-structure caches, one per cached entry with a
//    page-table-entry cache). One walk at a time (no concurrent walkers, no
//    speculative walks).
//
// Rules the walker follows, as the brief and the manuals give them:
//  - Every guest paging-structure access is a nested user write on AMD NPT and on
//    EPT with A/D enabled (MmuConfig::ept_ad): the table page needs nested write
//    permission, gets its nested D bit set, and a fault reports WRITE|USER|GUEST_PAGE.
//    With EPT without A/D it is a read; setting A/D in a guest entry then still
//    writes its table page, which needs nested write permission.
//  - A TLB entry caches the AND of both dimensions' permissions and whether both
//    leaves were dirty; an access the entry does not allow re-walks (perm_rewalks).
#pragma once

#include <cstdint>

#include "models/common/types.hpp"
#include "models/mem/cache.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/mmu/assoc_cache.hpp"
#include "models/mmu/leaf_hints.hpp"
#include "models/mmu/x86_pte.hpp"

namespace hvsim::mmu {

enum class AccessType : uint8_t { read, write, fetch };

// Page-fault error-code bits (arch/x86/include/asm/kvm_host.h PFERR_*).
inline constexpr uint64_t PFERR_PRESENT = 1ull << 0, PFERR_WRITE = 1ull << 1, PFERR_USER = 1ull << 2,
                          PFERR_RSVD = 1ull << 3, PFERR_FETCH = 1ull << 4, PFERR_GUEST_RMP = 1ull << 31,
                          PFERR_GUEST_FINAL = 1ull << 32, PFERR_GUEST_PAGE = 1ull << 33,
                          PFERR_GUEST_ENC = 1ull << 34;

struct TlbConfig {
    unsigned entries;      // 0 disables the structure
    unsigned ways;         // ways == entries: fully associative
    Cycles hit_cycles;     // lookup latency (a TLB miss pays L1 + L2 lookup before the walk)
};

struct MmuConfig {
    unsigned guest_levels = 4;          // 0 (no guest paging: GVA == GPA), 4 or 5
    unsigned nested_levels = 4;         // 4 or 5
    NestedFormat nested_format = NestedFormat::npt;
    TlbConfig l1{72, 72, 0};            // L1 DTLB: holds 4K/2M/1G
    TlbConfig l2{3072, 12, 7};          // L2 DTLB: 4K/2M; 1G translations are stored as 2M ("smashed")
    TlbConfig pwc{64, 64, 2};           // page-walk cache: upper-level entries of BOTH dimensions
    // How the page-walk cache is organised:
    //  - pte: AMD's page-table-entry cache (Bhargava et al., ASPLOS'08 §2.3: the PWC of
    //    the Opteron walker). Non-leaf entries tagged by their host-physical address;
    //    a walk still visits every level, and a hit replaces that level's memory
    //    reference with a PWC lookup. No level is skipped.
    //  - psc: Intel's paging-structure caches (SDM vol. 3A §4.10.3: PML4E, PDPTE and PDE
    //    caches, pooled here) tagged by the address bits that select the entry: the
    //    deepest hit lets the walk start below it, skipping the levels above.
    enum class PwcOrg : uint8_t { pte, psc } pwc_org = PwcOrg::psc;
    // The PWC also holds nested-dimension entries (true), or guest entries only: the
    // baseline Bhargava et al. extend (their "PWC without nested entries").
    bool pwc_nested = true;
    TlbConfig ntlb{32, 32, 2};          // nested TLB: gPA->hPA for guest page-table pages
    // EPTP bit 6: EPT accessed/dirty flags. KVM turns it on whenever the CPU has it
    // (vmx.c enable_ept_ad_bits). With it, every guest paging-structure access counts
    // as a write for EPT (SDM vol. 3C §29.3.3.2), as KVM's emulated walker mirrors
    // with nested_access = WRITE|USER (paging_tmpl.h, FNAME(walk_addr_generic)).
    bool ept_ad = true;
    // SEV/SNP: guest page-table walks are always encrypted (APM vol. 2 §15.34.5), so a
    // fault on a guest page-table page reports GUEST_ENC whatever the data access was.
    // When false, GUEST_PAGE faults carry GUEST_ENC only if the access had `enc`.
    bool guest_tables_encrypted = false;
    // TDX: the shared GPA bit (47 with GPAW 48, 51 with GPAW 52; 0 = none). A guest maps
    // shared memory with the bit in its PTE's address (arch/x86/coco/tdx/tdx.c cc_mask), so
    // an access that is not `enc` reaches the nested walk at gpa | bit: the shared alias.
    unsigned shared_gpa_bit = 0;
};

struct MmuStats {
    uint64_t accesses = 0;       // translate() calls: l1_hits + l2_hits + misses
    uint64_t l1_hits = 0;
    uint64_t l2_hits = 0;
    uint64_t misses = 0;         // = two-dimensional walks started (including ones that fault)
    // translate_gpa() (a guest-physical address, nested dimension only): served by the
    // nested TLB or by a nested walk; gpa_ntlb_hits + gpa_walks = gpa_lookups.
    uint64_t gpa_lookups = 0;
    uint64_t gpa_ntlb_hits = 0;
    uint64_t gpa_walks = 0;
    uint64_t walk_mem_refs = 0;  // paging-structure entries read from memory (both kinds of walk)
    uint64_t walk_cycles = 0;    // walk latency (references + PWC/NTLB hit cycles)
    uint64_t pwc_hits = 0;       // walk dimensions started below a cached upper-level entry
    uint64_t ntlb_hits = 0;      // guest-table gPAs of a 2D walk found in the nested TLB
    uint64_t guest_faults = 0;
    uint64_t npfs = 0;
    uint64_t ad_writes = 0;      // A/D bits written back into guest or nested entries
    uint64_t flushes = 0;        // flush_all()
    uint64_t perm_rewalks = 0;   // walks caused by a TLB entry that did not allow the access
                                 // (write to a clean/read-only entry, fetch to a non-exec one)
    uint64_t invlpgs = 0;        // flush_gva()
    uint64_t phys_check_faults = 0;   // fills refused by the physical-access checker (NPF or #VC)
    uint64_t ept_misconfigs = 0;      // EPT misconfigurations (reserved bits, W without R)
};

struct TranslateResult {
    // vc: the physical-access checker raised a #VC in the guest (SEV-SNP: a private
    // access to an unvalidated page); error_code is the #VC code, fault_gva the gVA.
    enum class Status : uint8_t { ok, guest_page_fault, npf, vc } status = Status::ok;
    Hpa hpa;                          // ok: the host-physical address of the access
    PgLevel page_size = PgLevel::k4K; // ok: effective TLB page size = min(guest leaf, nested leaf)
    bool writable = false;            // ok: both dimensions allow writes
    Cycles cycles = 0;                // TLB lookup + walk latency (sum of dependent reference latencies)
    unsigned mem_refs = 0;            // memory references this translation made
    bool tlb_hit = false;
    // npf: the gPA that faulted and the error code as KVM's fault handler sees it:
    //   NPT: EXITINFO1 (npf_interception): USER always (nested walks are user accesses),
    //        WRITE/FETCH from the access, PRESENT for a permission (not a missing-entry) fault.
    //   EPT: the exit qualification as __vmx_handle_ept_violation() folds it into PFERR
    //        bits: read -> USER, write -> WRITE, fetch -> FETCH, PRESENT if the entry was.
    //   Both: GUEST_FINAL for the final gPA, GUEST_PAGE while translating a guest
    //        page-table page, GUEST_ENC when the access was encrypted/private.
    Gpa fault_gpa;
    uint64_t error_code = 0;          // npf: as above; guest_page_fault: the #PF error code
    // npf on EPT: an EPT misconfiguration (SDM vol. 3C §29.3.3.1: a reserved bit set, or
    // write without read), the EPT_MISCONFIG exit rather than an EPT violation. KVM's
    // handle_ept_misconfig() has no qualification to fold: error_code is PFERR_RSVD alone.
    bool misconfig = false;
    // guest_page_fault: the gVA, the guest level (5..1) whose entry was not present (or
    // denied the access), and the gPA of that entry.
    Gva fault_gva;
    unsigned fault_level = 0;
    Gpa fault_pte_gpa;

    bool ok() const { return status == Status::ok; }
};

// Where the walker's paging-structure references go. read64 is a timed load (its
// latency is added to `cycles`); write64 is a posted store (the A/D update of an entry
// the walker just read: no latency); load64 is the read half of a locked update of such
// an entry (no latency). MmuModule sends them through a TLM-2.0 socket.
class WalkMemory {
public:
    virtual ~WalkMemory() = default;
    virtual uint64_t read64(uint64_t hpa, Cycles& cycles) = 0;
    virtual void write64(uint64_t hpa, uint64_t v) = 0;
    virtual uint64_t load64(uint64_t hpa) = 0;
    // Two words of one line (an RMP entry) as one reference: the first timed as read64(),
    // the one after it read with it.
    virtual uint64_t read64_pair(uint64_t hpa, Cycles& cycles, uint64_t& next) {
        const uint64_t v = read64(hpa, cycles);
        next = load64(hpa + 8);
        return v;
    }
    // A host-side hint that the bytes at hpa will be read soon; no modelled effect.
    virtual void prefetch(uint64_t /*hpa*/) {}
};

// A check of the physical pages a walk reaches, made when a translation is filled (so
// a TLB hit is not checked again): SEV-SNP's RMP check (APM vol. 2 §15.36.10) on the
// final access and on each guest page-table page a nested walk translated. Its own
// references go through `mem`, the walker's timed path, and add to `cycles`.
struct PhysCheck {
    Gpa gpa;                     // the guest-physical page the nested walk translated
    Hpa hpa;
    PgLevel nested_level = PgLevel::k4K;
    AccessType at = AccessType::read;
    bool enc = false;            // effective C-bit of the access
    bool table = false;          // a guest page-table reference
};
struct PhysCheckResult {
    enum class Kind : uint8_t { ok, npf, vc } kind = Kind::ok;
    uint64_t bits = 0;           // npf: error-code bits to add (PFERR_GUEST_RMP ...); vc: the #VC code
};
class PhysAccessChecker {
public:
    virtual ~PhysAccessChecker() = default;
    virtual PhysCheckResult check(const PhysCheck& c, WalkMemory& mem, Cycles& cycles) = 0;
};

class Mmu {
public:
    // Plain C++: the walker reads PhysMem and times its references with `cache`.
    Mmu(const MmuConfig& cfg, PhysMem& mem, CacheHierarchy& cache);
    // The walker's references go to `port`.
    Mmu(const MmuConfig& cfg, WalkMemory& port);
    Mmu(const Mmu&) = delete;
    Mmu& operator=(const Mmu&) = delete;

    // Guest CR3 (ignored when guest_levels == 0). A new value drops the TLBs and the
    // guest half of the PWC: MOV CR3 without PCID (SDM vol. 3A §4.10.4.1).
    void set_guest_root(Gpa cr3);
    // nCR3 / EPTP root table. A new root drops every cached translation: KVM requests
    // KVM_REQ_TLB_FLUSH_CURRENT when it loads a new root, and Intel tags cached
    // guest-physical mappings with the EPTP root (EPTRTA).
    void set_nested_root(Hpa ncr3);
    Gpa guest_root() const { return Gpa(cr3_); }
    Hpa nested_root() const { return Hpa(ncr3_); }
    // TD vCPU: the secure EPTP the TDX module programs (its S-EPT root). With a shared GPA
    // bit configured, GPAs without the bit are walked from here, GPAs with it from the
    // shared EPTP (set_nested_root(), KVM's direct root). 0 = none. The secure EPT runs
    // without A/D bits: its D bit holds S-EPT state. Changing it drops cached translations.
    void set_secure_nested_root(Hpa root);
    Hpa secure_nested_root() const { return Hpa(sept_root_); }

    // TLB (L1, then L2), then the 2D walk. Throws std::out_of_range for a non-canonical
    // gVA or a gPA beyond the nested tables' reach (never produced by a correct guest/KVM).
    inline TranslateResult translate(Gva va, AccessType at, bool enc);
    // The hit path alone: true (with the host address and hit latency) when the last
    // L1 entry used covers va and allows the access; false means call translate().
    inline bool try_hit(Gva va, AccessType at, Hpa* hpa, Cycles* cycles);
    // Host speed only, nothing modelled is read or changed: asks the host to fetch the
    // guest leaf entry a walk of va would read, from where the last walk in va's 2 MiB of
    // guest-virtual space found its leaf table. The vCPU calls it for its next access while
    // it simulates this one, so that the host's miss on that entry overlaps the work.
    void prefetch_walk(Gva va) {
        uint64_t table;
        unsigned level;
        if (hints_.find(va.raw(), table, level)) port_->prefetch(table + table_index(va.raw(), level) * 8u);
    }
    // Nested dimension only, through the nested TLB (the guest kernel writing its own
    // page tables at known gPAs). Faults report GUEST_FINAL; page_size is the nested
    // TLB's 4K granule (a nested walk reports its leaf's size). check = false: no
    // physical-access check and no nested-TLB fill (a guest instruction such as PVALIDATE
    // that makes its own RMP checks on the page).
    TranslateResult translate_gpa(Gpa gpa, AccessType at, bool enc, bool check = true);

    // The checker consulted on each fill (nullptr: none, the default). Setting it drops
    // every cached translation, since none of them was checked.
    void set_phys_checker(PhysAccessChecker* c);

    void flush_all();            // ASID/VPID flush: TLBs, PWC and nested TLB
    void flush_gva(Gva va);      // guest INVLPG: TLB entries covering va, guest PWC entries

    const MmuStats& stats() const { return stats_; }
    void reset_stats() { stats_ = MmuStats{}; }
    const MmuConfig& config() const { return cfg_; }
    NestedPte nested_pte() const { return npte_; }

    // Cached structures, for tests and inspection.
    struct TlbEntry {
        uint64_t hbase = 0;      // host-physical base of the (effective) page
        uint8_t allow = 0;       // access bits this entry serves without a walk (1 << AccessType)
        bool writable = false;
        // The guest page the entry is part of (a 4K entry of a guest 2M page backed by
        // 4K nested pages is a "splinter"); equal to the entry's size without guest paging.
        PgLevel guest_size = PgLevel::k4K;
        // The translation's own size: 1G for the 2M piece the L2 holds of a 1G page.
        PgLevel full_size = PgLevel::k4K;
    };
    struct PwcEntry {
        uint64_t next_table = 0; // address of the next-level table (gPA or hPA by dimension)
        uint8_t perm = 0;        // R/W/X allowed by this entry and the ones above it
    };
    struct NtlbEntry {
        uint64_t hpa = 0;        // host frame of the guest page
        uint8_t perm = 0;        // R/W/X allowed by the nested translation
        bool dirty = false;      // nested leaf D was set when this was filled
    };
    enum Dim : unsigned { kGuest = 0, kNested = 1 };
    static constexpr uint64_t tlb_key(uint64_t va, PgLevel s) {
        return ((va >> level_shift(s)) << 4) | unsigned(s);
    }
    static constexpr uint64_t pwc_key(Dim d, unsigned level, uint64_t addr) {
        return ((addr >> table_shift(level)) << 4) | (unsigned(d) << 3) | level;
    }
    static constexpr uint64_t ntlb_key(uint64_t gpa) { return (gpa >> kPageShift) << 4; }
    // PwcOrg::pte: an entry by its host-physical address (level bits 0: psc keys use 2..5).
    static constexpr uint64_t pte_key(Dim d, uint64_t pte_hpa) { return ((pte_hpa >> 3) << 4) | (unsigned(d) << 3); }
    const AssocCache<TlbEntry>& l1_tlb() const { return l1_; }
    const AssocCache<TlbEntry>& l2_tlb() const { return l2_; }
    const AssocCache<PwcEntry>& pwc() const { return pwc_; }
    const AssocCache<NtlbEntry>& ntlb() const { return ntlb_; }

private:
    static constexpr uint8_t kR = 1, kW = 2, kX = 4;   // == 1 << AccessType
    struct WalkCtx {
        Cycles cycles = 0;
        unsigned refs = 0;
    };
    struct Nested {              // outcome of one nested-dimension walk
        bool ok = false;
        uint64_t hpa = 0;
        unsigned level = 1;      // leaf level (1 = 4K)
        uint8_t perm = 0;
        bool dirty = false;
        uint64_t leaf_pte_hpa = 0;
        uint64_t err = 0;        // !ok: error code without the GUEST_* bits
        bool misconfig = false;  // !ok: an EPT misconfiguration (err unused)
    };
    struct TableXlate {          // a guest page-table page's host frame
        uint64_t hpa = 0;
        uint8_t perm = 0;
        bool dirty = false;
        bool from_walk = false;  // leaf_pte_hpa valid (translated by this walk)
        uint64_t leaf_pte_hpa = 0;
        unsigned level = 1;      // from_walk: the nested leaf's level
    };
    struct Mru {                 // last L1 entry used: the hit path's shortcut
        uint64_t vmask = 0, vbase = 1;   // vbase 1 never matches an aligned page base
        uint64_t hbase = 0;
        uint8_t allow = 0;
        bool writable = false;
        PgLevel size = PgLevel::k4K;
    };

    TranslateResult translate_slow(Gva va, AccessType at, bool enc);
    bool try_l1_hit(uint64_t v, AccessType at, Hpa* hpa, Cycles* cycles);
    TranslateResult walk(uint64_t va, AccessType at, bool enc);
    Nested nested_walk(uint64_t gpa, uint8_t acc, WalkCtx& w);
    bool adopt_walk(uint64_t page_gpa, const Nested& o, TableXlate& tx, Nested& fault);
    void pwc_skip(Dim dim, unsigned top, uint64_t addr, uint64_t& table, uint8_t& perm, unsigned& level,
                  WalkCtx& w);
    bool table_read(uint64_t page_gpa, WalkCtx& w, TableXlate& tx, Nested& fault);
    // PwcOrg::pte: the entry at pte_hpa from the PWC instead of memory (true on a hit).
    bool pte_cache_read(Dim dim, uint64_t pte_hpa, uint64_t& e, WalkCtx& w);
    // Caches a non-leaf entry e the walk just used (either organisation). `cached`: the walk
    // read the entry from the PWC (pte_cache_read()) as `read`.
    void pwc_fill(Dim dim, unsigned level, uint64_t addr, uint64_t pte_hpa, uint64_t e, uint64_t table, uint8_t perm,
                  bool cached, uint64_t read);
    bool pwc_holds(Dim dim) const { return pwc_.enabled() && (dim == kGuest || cfg_.pwc_nested); }
    bool table_write(uint64_t page_gpa, WalkCtx& w, TableXlate& tx, Nested& fault);
    uint64_t npf_code(uint8_t acc, bool present) const;
    uint8_t nested_perm(uint64_t e) const;
    TranslateResult npf(uint64_t gpa, uint64_t code);
    // The NPF of a failed nested walk: its error code plus `bits`, or an EPT misconfiguration.
    TranslateResult nested_fault(uint64_t gpa, const Nested& o, uint64_t bits);
    TranslateResult vc(uint64_t va, uint64_t gpa, uint64_t code);
    // The physical-access check of a fill; false with `out` set to the fault.
    bool phys_check(uint64_t va, uint64_t gpa, uint64_t hpa, unsigned nested_level, AccessType at, bool enc,
                    bool table, uint64_t fault_gpa, uint64_t fault_code, WalkCtx& w, TranslateResult& out);
    TranslateResult guest_fault(uint64_t va, unsigned level, uint64_t pte_gpa, uint64_t code);
    void fill_tlbs(uint64_t va, const TranslateResult& r, uint8_t allow, PgLevel guest_size);
    void set_mru(uint64_t va, PgLevel s, const TlbEntry& e) {
        l1_missed_.forget();   // every L1 fill comes with set_mru()
        mru_.vmask = ~(level_size(s) - 1);
        mru_.vbase = va & mru_.vmask;
        mru_.hbase = e.hbase;
        mru_.allow = e.allow;
        mru_.writable = e.writable;
        mru_.size = s;
    }
    void drop_mru() {
        mru_ = Mru{};
        l1_missed_.forget();
    }
    static TranslateResult hit_result(uint64_t hpa, PgLevel s, bool writable, Cycles c);

    struct DirectMemory final : WalkMemory {
        PhysMem* mem = nullptr;
        CacheHierarchy* cache = nullptr;
        uint64_t read64(uint64_t hpa, Cycles& cycles) override {
            const uint64_t v = mem->read64(Hpa(hpa));   // first: see MemHierarchy::read64
            cycles += cache->access(Hpa(hpa));
            return v;
        }
        void write64(uint64_t hpa, uint64_t v) override { mem->write64(Hpa(hpa), v); }
        uint64_t load64(uint64_t hpa) override { return mem->read64(Hpa(hpa)); }
        void prefetch(uint64_t hpa) override { mem->prefetch(Hpa(hpa)); }
    };
    void init();

    MmuConfig cfg_;
    DirectMemory direct_;
    WalkMemory* port_;
    PhysAccessChecker* checker_ = nullptr;
    NestedPte npte_;
    bool nested_ad_ = true;        // nested dimension maintains A/D
    uint8_t table_acc_ = kR;       // nested access of a guest paging-structure read
    uint64_t cr3_ = 0, ncr3_ = 0, sept_root_ = 0;
    uint64_t guest_va_bits_ = 48, nested_pa_bits_ = 48;
    AssocCache<TlbEntry> l1_, l2_;
    AssocCache<PwcEntry> pwc_;
    AssocCache<NtlbEntry> ntlb_;
    Mru mru_;
    L1WayHints l0_;      // try_hit(): the L1 ways of recently hit 4K pages
    L1Miss l1_missed_;   // try_l1_hit() found no entry of any size (set_mru() forgets it)
    MmuStats stats_;
    LeafHints hints_;   // prefetch_walk(): the host page of each region's last guest leaf table
    // TLB entries filled since the last full flush that are splinters of a larger guest
    // page (INVLPG must then find every piece, not only the one at the address).
    uint64_t splinters_ = 0;
};

inline TranslateResult Mmu::hit_result(uint64_t hpa, PgLevel s, bool writable, Cycles c) {
    TranslateResult r;
    r.hpa = Hpa(hpa);
    r.page_size = s;
    r.writable = writable;
    r.cycles = c;
    r.tlb_hit = true;
    return r;
}

// Hit path: one compare against the most recently used L1 entry. It is the LRU
// head already, so skipping the LRU update leaves the replacement order exact.
inline bool Mmu::try_hit(Gva va, AccessType at, Hpa* hpa, Cycles* cycles) {
    const uint64_t v = va.raw();
    if ((v & mru_.vmask) == mru_.vbase && (mru_.allow >> unsigned(at)) & 1u) {
        ++stats_.accesses;
        ++stats_.l1_hits;
        *hpa = Hpa(mru_.hbase | (v & ~mru_.vmask));
        *cycles = cfg_.l1.hit_cycles;
        return true;
    }
    // Then a 4K entry the L1 hit before, found where it was (the L1's look-up would find
    // the same entry first: it tries 4K first). One that denies the access is left to
    // try_l1_hit(), which declines it.
    const L1WayHints::Hint* h = l0_.find(v);
    if (h && l1_.holds(h->way, h->key)) {
        const TlbEntry& e = l1_.value(h->way);
        if ((e.allow >> unsigned(at)) & 1u) {
            l1_.hit(h->way);
            ++stats_.accesses;
            ++stats_.l1_hits;
            set_mru(v, PgLevel::k4K, e);
            *hpa = Hpa(e.hbase | (v & kPageMask));
            *cycles = cfg_.l1.hit_cycles;
            return true;
        }
    }
    return try_l1_hit(v, at, hpa, cycles);
}

inline TranslateResult Mmu::translate(Gva va, AccessType at, bool enc) {
    const uint64_t v = va.raw();
    if ((v & mru_.vmask) == mru_.vbase && (mru_.allow >> unsigned(at)) & 1u) {
        ++stats_.accesses;
        ++stats_.l1_hits;
        return hit_result(mru_.hbase | (v & ~mru_.vmask), mru_.size, mru_.writable, cfg_.l1.hit_cycles);
    }
    return translate_slow(va, at, enc);
}

}  // namespace hvsim::mmu
