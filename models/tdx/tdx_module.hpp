// The Intel TDX module as firmware: it alone changes a TD's secure EPT (S-EPT) and the
// PAMT, through the SEAMCALL leaves the host calls and the TDCALL leaf the guest accepts
// pages with. Semantics follow the TDX module 1.5.01 source (intel/tdx-module, the
// tdh_mem_*.c handlers, sept_manager, pamt_manager, helpers.c) and the TDX module ABI
// specification. The module knows physical memory and its own interface, never KVM.
//
// State kept where the module keeps it:
//  - S-EPT entries are 64-bit EPT entries in simulated memory (the root is a TDCS page
//    the TD owns, lower tables are pages the host hands to TDH.MEM.SEPT.ADD). The state of
//    an entry sits in otherwise-ignored bits (sept_manager.h: D, TDEX, TDBW, TDB, TDP,
//    IPAT, PS); present (RWX != 0) only in NL_MAPPED and MAPPED, so the CPU's EPT walk
//    faults on every other state.
//  - The PAMT: page type, owner TDR and BEPOCH per 1G, 2M and 4K page, 16-byte entries in
//    physical memory (namespace pamt below), read and written like the S-EPT through the
//    module's memory references.
//  - Per TD (TDR/TDCS): OP_STATE, lifecycle, TD_EPOCH and REFCOUNT[2], child count, MRTD.
//
// Simplifications (documented):
//  - One key domain: contents are copied and zeroed as they are, not encrypted.
//  - The MRTD is SHA-384 as the module computes it (TDX module ABI specification,
//    TDH.MEM.PAGE.ADD / TDH.MR.EXTEND / TDH.MR.FINALIZE): one running hash over 128-byte
//    blocks, "MEM.PAGE.ADD" + GPA for PAGE.ADD (contents not measured), "MR.EXTEND" + GPA
//    followed by the 256 bytes of data for MR.EXTEND; MR.FINALIZE finalizes it.
//  - Locks: leaves run to completion one at a time. "Another logical processor inside a
//    leaf" is expressed two ways: hold()/release() (a lock held until released, for tests;
//    the guest side holds S-EPT entry locks through guest_lock_entry()), and in a timed run
//    at(now, hold): the next leaf runs over [now, now + hold) of simulated time and the
//    locks it takes stay held until then, so a leaf another thread starts before that
//    answers OPERAND_BUSY with the lock's operand id. Callers bring their local time in
//    line with the global time first, so leaves are made in time order.
//  - 1G private pages and migration states are not modelled (the module accepts only 4K
//    and 2M in ACCEPT; KVM maps private memory at 4K).
//  - A 2M ACCEPT runs to completion (no interruption, accept_counter not kept).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "models/common/sha384.hpp"
#include "models/common/types.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/tdx/tdx_status.hpp"

namespace hvsim::tdx {

// S-EPT entry states of a TD that is not migrating (sept_state_lookup.h).
enum class SeptState : uint8_t { free, removed, nl_mapped, nl_blocked, mapped, blocked, pending, pending_blocked };
const char* sept_state_name(SeptState s);
// The state code the module reports in RDX bits 15:8 and through TDH.MEM.SEPT.RD.
uint8_t sept_public_state(SeptState s);
bool sept_is_leaf(SeptState s);

// S-EPT entry encoding (module level 0 = 4K PTE, 1 = 2M PDE, 2 = 1G PDPTE, 3 = PML4E, 4 = PML5E).
namespace septe {
inline constexpr uint64_t R = 1ull << 0, W = 1ull << 1, X = 1ull << 2, RWX = 7;
inline constexpr uint64_t MT_WB = 6ull << 3;
inline constexpr uint64_t IPAT = 1ull << 6, PS = 1ull << 7, D = 1ull << 9, TDEL = 1ull << 11;
inline constexpr uint64_t TDHP = 1ull << 52, TDEX = 1ull << 53, TDBW = 1ull << 54, TDB = 1ull << 55, TDP = 1ull << 56;
inline constexpr uint64_t SVE = 1ull << 63;
inline constexpr uint64_t ADDR = 0x000FFFFFFFFFF000ull;
uint64_t make(SeptState s, uint64_t hpa);
SeptState state(uint64_t e);
// What the module reports in RCX on S-EPT errors: a FREE entry reads as SVE only.
uint64_t arch_view(uint64_t e);
constexpr bool present(uint64_t e) { return (e & RWX) != 0; }
}  // namespace septe

enum class PageType : uint8_t { nda = 0, rsvd = 1, reg = 3, tdr = 4, tdcx = 5, tdvpr = 6, ept = 8 };
struct PamtEntry {
    PageType pt = PageType::nda;
    uint64_t owner = 0;    // TDR HPA
    uint64_t bepoch = 0;   // TD_EPOCH when the page (or child table) was blocked
};

// Where the PAMT lives and how an entry is encoded. The kernel hands the module one PAMT area
// per TDMR at TDX init (arch/x86/virt/vmx/tdx/tdx.c: tdmr_set_up_pamt()); here one TDMR
// covers host physical [0, kCovered) and its three arrays (PAMT_1G, PAMT_2M, PAMT_4K) sit
// at kBase, above every address the host page allocator hands out (host.mem_base +
// host.mem_size stays below 2^40), so they move no allocation. Memory is sparse: an
// untouched entry reads as zero, which is PT_NDA with no owner, so an unused PAMT costs
// nothing. Entry layout (TDX module 1.5 pamt_manager.h, pamt_entry_t), little endian:
//   bytes 0-1  entry lock (always 0 here: leaves run one at a time)
//   byte  2    page type (PageType)
//   bytes 3-7  owner: TDR HPA >> 12 (40 bits)
//   bytes 8-15 BEPOCH
// Clearing an entry writes zeros (the module sets PT_NDA; the stale owner is never read).
namespace pamt {
inline constexpr uint64_t kCovered = 1ull << 48;          // one TDMR: host PA [0, 256 TiB)
inline constexpr unsigned kEntryBytes = 16;
inline constexpr uint64_t kBase = 1ull << 51;             // PAMT_4K array
inline constexpr uint64_t kBase4k = kBase;
inline constexpr uint64_t kBase2m = kBase4k + (kCovered >> 12) * kEntryBytes;
inline constexpr uint64_t kBase1g = kBase2m + (kCovered >> 21) * kEntryBytes;
inline constexpr uint64_t kEnd = kBase1g + (kCovered >> 30) * kEntryBytes;
// The entry of the page containing pa at module level 0 (4K), 1 (2M) or 2 (1G).
constexpr uint64_t entry_hpa(uint64_t pa, unsigned level) {
    return (level == 0 ? kBase4k : level == 1 ? kBase2m : kBase1g) + (pa >> (12 + 9 * level)) * kEntryBytes;
}
void encode(const PamtEntry& e, uint8_t out[kEntryBytes]);
PamtEntry decode(const uint8_t in[kEntryBytes]);
}  // namespace pamt

enum class OpState : uint8_t { uninitialized, initialized, runnable };
enum class Lifecycle : uint8_t { hkid_assigned, keys_configured, blocked, teardown };

// Register outputs of a SEAMCALL.
struct SeamRet {
    uint64_t rax = 0, rcx = 0, rdx = 0, r8 = 0;
};

// GPA operand (RCX): bits 2:0 level, 51:12 GPA.
constexpr uint64_t gpa_level(uint64_t gpa, unsigned level) { return gpa | level; }

// The guest's view of an ACCEPT or of an access: either a completion status in RAX, or a
// TD exit (EPT violation, basic reason 48) with the extended exit qualification the module
// reports (type 1 = ACCEPT: requested level, reached level, public state, leaf; type 6 =
// access to a PENDING page with PENDING_VE_DISABLE), or a #VE injected into the guest.
struct GuestRet {
    enum class Kind : uint8_t { status, td_exit, ve } kind = Kind::status;
    uint64_t rax = 0;
    unsigned eeq_type = 0;          // td_exit: 0 plain EPT violation, 1 ACCEPT, 6 PENDING access
    unsigned req_level = 0, reached_level = 0;
    uint8_t public_state = 0;
    bool leaf = false;
    uint64_t gpa = 0;               // td_exit / ve: the faulting GPA (R8 / VE info)
};

struct TdxStats {
    uint64_t seamcalls = 0;          // every host leaf call, failures included
    uint64_t busy = 0;               // calls answered OPERAND_BUSY (any operand)
    uint64_t sept_add = 0, sept_remove = 0, page_add = 0, aug = 0, block = 0, unblock = 0, track = 0, remove = 0,
             demote = 0, promote = 0, wbinvd = 0, mr_extend = 0, reclaim = 0;   // successful calls
    uint64_t vp_flush = 0, vpflushdone = 0, cache_wb = 0, key_freeid = 0;  // successful teardown leaves
    uint64_t accept = 0;             // successful TDG.MEM.PAGE.ACCEPT (4K or 2M)
    uint64_t accept_4k_pages = 0;    // pages zeroed by accepts
    uint64_t accept_exits = 0;       // ACCEPTs that became TD exits (A4/A9)
    uint64_t ve = 0;                 // #VE injected for a PENDING access
    uint64_t vp_enters = 0, td_exits = 0, epoch_flushes = 0;
    uint64_t vp_enter_calls = 0;     // TDH.VP.ENTER calls (in `seamcalls`), refused ones included
    uint64_t sept_pages = 0;         // S-EPT pages (PT_EPT) in use, root excluded
};

// Where the module's own memory references go when it is not reading and writing physical
// memory in place: the SystemC module (seam_module.hpp) sends them through its socket.
// `debug` marks the inspection views (sept_read(), sept_leaves(): KVM's checks and the
// printers), which are no references the module makes.
class TdxMemory {
public:
    virtual ~TdxMemory() = default;
    virtual void read(uint64_t hpa, void* dst, unsigned n, bool debug) = 0;
    virtual void write(uint64_t hpa, const void* src, unsigned n) = 0;
    virtual void fill(uint64_t hpa, uint8_t byte, unsigned n) = 0;   // n bytes of one value
};

class TdxModule {
public:
    explicit TdxModule(PhysMem& mem);
    TdxModule(const TdxModule&) = delete;
    TdxModule& operator=(const TdxModule&) = delete;
    // nullptr: physical memory in place (the default).
    void set_memory(TdxMemory* m) { mem_.port = m; }

    // TD build (TDH.MNG.CREATE, KEY.CONFIG, ADDCX, MNG.INIT collapsed): the TDR page, the
    // page that becomes the S-EPT root (a TDCS page), the S-EPT levels (4 or 5; GPAW 48 or
    // 52) and PENDING_VE_DISABLE (from the SEPT_VE_DISABLE attribute). The TD starts in
    // OP_STATE INITIALIZED, lifecycle KEYS_CONFIGURED, TD_EPOCH 1.
    void create_td(Hpa tdr, Hpa sept_root, unsigned levels, bool pending_ve_disable = true);
    // TDH.VP.CREATE (+ VP.INIT): returns the vCPU index. With `tdvpr`, that page becomes the
    // vCPU's TDVPR (PAMT PT_TDVPR owned by the TD, one more child of the TDR), which
    // TDH.VP.FLUSH names and teardown reclaims.
    unsigned vp_create(Hpa tdr, std::optional<Hpa> tdvpr = std::nullopt);

    // ---- SEAMCALLs (host) ----
    SeamRet tdh_mem_sept_add(uint64_t gpa_lvl, Hpa tdr, Hpa page, bool allow_existing = false);
    SeamRet tdh_mem_page_add(uint64_t gpa_lvl, Hpa tdr, Hpa target, Hpa source);
    SeamRet tdh_mr_extend(uint64_t gpa, Hpa tdr);
    SeamRet tdh_mr_finalize(Hpa tdr);
    SeamRet tdh_mem_page_aug(uint64_t gpa_lvl, Hpa tdr, Hpa page);
    SeamRet tdh_mem_range_block(uint64_t gpa_lvl, Hpa tdr);
    SeamRet tdh_mem_range_unblock(uint64_t gpa_lvl, Hpa tdr);
    SeamRet tdh_mem_track(Hpa tdr);
    SeamRet tdh_mem_page_remove(uint64_t gpa_lvl, Hpa tdr);
    SeamRet tdh_mem_sept_remove(uint64_t gpa_lvl, Hpa tdr);
    SeamRet tdh_mem_page_demote(uint64_t gpa_lvl, Hpa tdr, Hpa new_table);
    SeamRet tdh_mem_page_promote(uint64_t gpa_lvl, Hpa tdr);
    SeamRet tdh_phymem_page_wbinvd(Hpa page);
    // ---- teardown (tdh_vp_flush.c, tdh_mng_vpflushdone.c, tdh_phymem_cache_wb.c,
    // tdh_mng_key_freeid.c, tdh_phymem_page_reclaim.c) ----
    // TDH.VP.FLUSH(TDVPR): flush the vCPU's cached state on its logical processor and
    // dissociate it. Keys must still be configured; a vCPU not associated answers
    // VCPU_NOT_ASSOCIATED, one inside the TD OPERAND_BUSY|RCX.
    SeamRet tdh_vp_flush(Hpa tdvpr);
    // TDH.MNG.VPFLUSHDONE(TDR): every vCPU flushed (else FLUSHVP_NOT_DONE); lifecycle
    // KEYS_CONFIGURED -> BLOCKED (else LIFECYCLE_STATE_INCORRECT). TDR exclusive.
    SeamRet tdh_mng_vpflushdone(Hpa tdr);
    // TDH.PHYMEM.CACHE.WB: write back the package's caches; every TD whose HKID is BLOCKED
    // may then free it. NO_HKID_READY_TO_WBCACHE (not an error) when no TD waits for it.
    // One package is modelled and the leaf is never interrupted (no INTERRUPTED_RESUMABLE).
    SeamRet tdh_phymem_cache_wb();
    // TDH.MNG.KEY.FREEID(TDR): lifecycle BLOCKED (else LIFECYCLE_STATE_INCORRECT) and a
    // CACHE.WB since (else WBCACHE_NOT_COMPLETE); -> TEARDOWN, the HKID is free.
    SeamRet tdh_mng_key_freeid(Hpa tdr);
    // TDH.PHYMEM.PAGE.RECLAIM(page): a TD page (REG, EPT, TDCX, TDVPR or the TDR itself)
    // whose owner is in TEARDOWN goes back to PT_NDA. RCX = its old page type, RDX = the
    // owner TDR, R8 = its PAMT level. The TDR last: CHLDCNT must be 0
    // (TD_ASSOCIATED_PAGES_EXIST). The module neither flushes nor clears the page.
    SeamRet tdh_phymem_page_reclaim(Hpa page);
    Lifecycle lifecycle(Hpa tdr) const;
    // Whether the TDR names a TD the module still has (false once its TDR was reclaimed).
    bool has_td(Hpa tdr) const { return td(tdr) && !td(tdr)->reclaimed; }

    // TD entry and exit of a vCPU (the TLB-epoch side of TDH.VP.ENTER and of any TD exit).
    SeamRet tdh_vp_enter(Hpa tdr, unsigned vcpu);
    void td_exit(Hpa tdr, unsigned vcpu);

    // ---- TDCALL (guest) ----
    GuestRet tdg_mem_page_accept(Hpa tdr, unsigned vcpu, uint64_t gpa_lvl);
    // The module's EPT-violation handler for a guest access the CPU's S-EPT walk faulted on
    // (td_ept_violation.c): a PENDING leaf gives #VE or a type-6 exit, anything else a
    // plain EPT-violation TD exit.
    GuestRet td_ept_violation(Hpa tdr, unsigned vcpu, uint64_t gpa);

    // ---- contention in simulated time ----
    // The next leaf (a SEAMCALL through prologue(), TDH.VP.ENTER or TDG.MEM.PAGE.ACCEPT)
    // starts at cycle `now` and keeps the locks it takes until `now + hold`. One-shot: a
    // leaf made without it takes no timed lock and sees only the hold()s below.
    void at(Cycles now, Cycles hold) { call_ = Timing{true, now, hold}; }
    // A host interrupt reached the TD's vCPUs (KVM's kick IPI): a TDCALL in progress returns
    // to the guest with its progress kept (a 2M ACCEPT's accept_counter) and releases its
    // entry lock; the guest re-executes it later.
    void interrupt_guest_leaves(Hpa tdr);

    // ---- contention: another logical processor inside a leaf ----
    enum class Hold : uint8_t { sept_tree_exclusive, sept_tree_shared, tdr_exclusive, epoch_exclusive };
    void hold(Hpa tdr, Hold h);
    void release(Hpa tdr, Hold h);
    // The guest holds / releases the S-EPT entry lock of gpa (inside an ACCEPT on another vCPU).
    void guest_lock_entry(Hpa tdr, uint64_t gpa);
    void guest_unlock_entry(Hpa tdr, uint64_t gpa);

    // ---- inspection (TDH.MEM.SEPT.RD-like; for checks, printers and tests) ----
    struct SeptView {
        unsigned level = 0;        // level the walk stopped at
        SeptState state = SeptState::free;
        uint64_t entry = 0;
        Hpa entry_hpa;
    };
    // Walks the S-EPT of tdr to `level` (or stops above it at a leaf or a non-present table).
    SeptView sept_read(Hpa tdr, uint64_t gpa, unsigned level) const;
    // Every leaf entry (state mapped/blocked/pending/pending_blocked), in GPA order.
    struct Leaf4 { uint64_t gpa; unsigned level; SeptState state; Hpa hpa; };
    std::vector<Leaf4> sept_leaves(Hpa tdr) const;
    // The page's leaf PAMT entry (the covering 1G or 2M one if that is PT_REG, else the 4K
    // one), read as an inspection view (transport_dbg through the socket).
    PamtEntry pamt(Hpa page) const;
    OpState op_state(Hpa tdr) const;
    uint64_t td_epoch(Hpa tdr) const;
    uint64_t child_count(Hpa tdr) const;
    // The MRTD: final after TDH.MR.FINALIZE; before it, the digest of the blocks so far.
    Sha384::Digest mrtd(Hpa tdr) const;
    Hpa sept_root(Hpa tdr) const;
    unsigned sept_levels(Hpa tdr) const;
    bool vcpu_inside(Hpa tdr, unsigned vcpu) const;
    const TdxStats& stats() const { return stats_; }

private:
    struct Vcpu {
        uint64_t tdvpr = 0;   // 0: created without a TDVPR page (unit tests)
        uint64_t epoch = 0;
        bool inside = false;
        bool associated = false;
    };
    struct Td {
        uint64_t tdr = 0, root = 0;
        unsigned levels = 4;
        OpState op = OpState::initialized;
        Lifecycle life = Lifecycle::keys_configured;
        bool fatal = false, pending_ve_disable = true;
        uint64_t epoch = 1;
        uint32_t refcount[2] = {0, 0};
        uint64_t chldcnt = 0;
        bool wbcache_done = false;    // a TDH.PHYMEM.CACHE.WB since the lifecycle became BLOCKED
        bool reclaimed = false;       // the TDR page was reclaimed: the TD no longer exists
        Sha384 mrtd;                  // TDCS MRTD: the running SHA-384 context
        std::optional<Sha384::Digest> mrtd_final;   // set by TDH.MR.FINALIZE
        std::vector<Vcpu> vcpus;
        // Locks held by other logical processors (hold()) and by vCPUs inside the TD.
        unsigned tdr_shared = 0, sept_shared = 0;
        bool tdr_excl = false, sept_excl = false, epoch_excl = false;
        std::set<uint64_t> guest_locked;   // S-EPT entry locks held by a guest ACCEPT (GPA|level-free)
        // Timed holds (at()): the cycle until which leaves of other threads hold each lock.
        struct TimedLock {
            Cycles shared_until = 0, excl_until = 0;
        };
        TimedLock tdr_t, sept_t, epoch_t;
        std::unordered_map<uint64_t, Cycles> host_entry_until, guest_entry_until;   // by entry HPA
    };
    struct Timing {
        bool on = false;
        Cycles now = 0, hold = 0;
    };
    // Takes the timing at() set for this leaf (and clears it for the next one).
    Timing take_timing() {
        const Timing t = call_;
        call_ = Timing{};
        return t;
    }
    // A timed lock request at cur_: BUSY when another leaf holds it in a conflicting mode;
    // otherwise held until cur_.now + cur_.hold.
    bool timed_busy(Td::TimedLock& l, bool exclusive);
    static bool timed_busy_entry(std::unordered_map<uint64_t, Cycles>& m, uint64_t entry, Cycles now) {
        auto it = m.find(entry);
        return it != m.end() && it->second > now;
    }
    struct Walk {
        bool ok = false;           // reached the requested level
        unsigned level = 0;        // level of `entry`
        uint64_t entry = 0;
        uint64_t entry_hpa = 0;
    };
    Td* td(Hpa tdr);
    const Td* td(Hpa tdr) const;
    // The TDR operand of a management leaf (check_lock_and_map_explicit_tdr()): its PAMT
    // entry PT_TDR and its lock in `exclusive` mode, else the error with `operand`.
    std::optional<SeamRet> tdr_operand(Hpa tdr, bool exclusive, uint64_t operand);
    // Walk to `level` through NL_MAPPED (and, for host leaves, NL_BLOCKED) entries.
    Walk walk(const Td& t, uint64_t gpa, unsigned level, bool through_blocked) const;
    // Common prologue of the memory leaves (check_any_td_state_map_tdcs_and_lock()).
    std::optional<SeamRet> prologue(Hpa tdr, Leaf leaf, bool tdr_exclusive, uint64_t tdr_busy_operand);
    std::optional<SeamRet> check_gpa(const Td& t, uint64_t gpa_lvl, unsigned min_level, unsigned max_level) const;
    std::optional<SeamRet> sept_lock(Td& t, bool exclusive);
    // Host entry lock on a guest-locked entry: sets TDHP (host priority) and answers BUSY|RCX.
    std::optional<SeamRet> host_entry_lock(Td& t, const Walk& w, uint64_t gpa);
    SeamRet walk_error(const Walk& w) const;
    SeamRet state_error(const Walk& w) const;
    bool is_tlb_tracked(const Td& t, uint64_t bepoch) const;
    // The second-level rule of REMOVE/SEPT.REMOVE/DEMOTE/PROMOTE/UNBLOCK in RUNNABLE.
    std::optional<SeamRet> require_blocked_tracked(const Td& t, const Walk& w, uint64_t page_pa,
                                                   uint64_t tracking_operand) const;
    bool page_nda_4k(uint64_t pa) const;           // 4K PAMT NDA and not inside a 2M private page
    bool range_nda(uint64_t pa, uint64_t pages) const;
    // Every S-EPT entry change goes through here and must be an edge of the S-EPT
    // page-state graph (sept_state_graph.hpp); std::logic_error otherwise.
    void write_entry(const Walk& w, uint64_t v);
    // PAMT references (the entries in memory, see namespace pamt).
    PamtEntry pamt_entry(uint64_t pa, unsigned level) const;
    // pamt_walk(): 1G, then 2M, then 4K entry; the first PT_REG one is the leaf.
    PamtEntry pamt_walk(uint64_t pa) const;
    void set_pamt(uint64_t pa, unsigned level, PamtEntry e);
    void clear_pamt(uint64_t pa, unsigned level);
    void set_bepoch(uint64_t pa, unsigned level, uint64_t bepoch);
    void fill_free_table(uint64_t table_pa);
    // Extends the MRTD with one 128-byte block: the ASCII tag, the GPA at byte 16.
    static void mrtd_block(Td& t, const char* tag, uint64_t gpa);
    SeamRet done(SeamRet r);

    // The module's memory references (S-EPT entries, table initialisation, page copies and
    // zeroing): physical memory in place, or through a TdxMemory. Same calls as PhysMem's.
    struct ModuleMemory {
        PhysMem& phys;
        TdxMemory* port = nullptr;
        mutable unsigned debug = 0;   // > 0 inside an inspection view (DebugView)
        uint64_t read64(Hpa a) const {
            if (!port) return phys.read64(a);
            uint64_t v = 0;
            port->read(a.raw(), &v, sizeof v, debug > 0);
            return v;
        }
        void write64(Hpa a, uint64_t v) {
            if (!port) return phys.write64(a, v);
            port->write(a.raw(), &v, sizeof v);
        }
        void read(Hpa a, void* dst, size_t n) const {
            if (!port) return phys.read(a, dst, n);
            port->read(a.raw(), dst, unsigned(n), debug > 0);
        }
        void write(Hpa a, const void* src, size_t n) {
            if (!port) return phys.write(a, src, n);
            port->write(a.raw(), src, unsigned(n));
        }
        void fill(Hpa a, uint8_t byte, size_t n) {
            if (!port) return phys.fill(a, byte, n);
            port->fill(a.raw(), byte, unsigned(n));
        }
    };
    // Marks the references an inspection view makes as debug ones.
    struct DebugView {
        const ModuleMemory& m;
        explicit DebugView(const ModuleMemory& mm) : m(mm) { ++m.debug; }
        ~DebugView() { --m.debug; }
        DebugView(const DebugView&) = delete;
        DebugView& operator=(const DebugView&) = delete;
    };
    ModuleMemory mem_;
    std::map<uint64_t, Td> tds_;
    TdxStats stats_;
    Timing call_, cur_;   // the timing set by at() for the next leaf, and that of the leaf running
};

}  // namespace hvsim::tdx
