// The AMD SEV-SNP Reverse Map Table (AMD APM vol. 2 §15.36) as hardware: a table of
// 16-byte entries in simulated physical memory, one per 4 KiB system page, changed only
// through its instructions (RMPUPDATE, PSMASH from the host; PVALIDATE, RMPADJUST,
// RMPQUERY from the guest) and consulted by the checks the CPU makes on a TLB fill
// (§15.36.10). The model knows physical memory and nothing of KVM.
//
// Layout (non-architectural Zen 3/Zen 4 layout; Linux arch/x86/virt/svm/sev.c
// `struct rmpentry_raw`, AMD's SEV firmware `rmp_fields_t`):
//   RMP_BASE .. +16 KiB   CPU bookkeeping: 2048 u64 per-ASID counters of assigned pages
//   RMP_BASE + 16 KiB + 16 * PFN   the entry of PFN
//   qword 0: bit 0 assigned, 1 page size (2M), 2 immutable, 11:3 subpage count (head of
//            a 2 MB region: assigned 4K entries among its 511 other pages), 50:12 GPA >> 12,
//            60:51 ASID, 61 VMSA, 62 validated, 63 lock
//   qword 1: bytes 0..3 VMPL0..VMPL3 permission masks (R, W, X-user, X-supervisor, SSS)
//
// Choices where the manuals are silent (each an estimate, see docs/kvm-model.md "SNP"):
//  - A 2M entry lives in the 2M-aligned (head) entry; RMPUPDATE(2M) leaves the 511 tail
//    entries unassigned and PSMASH writes them. The authoritative entry of PFN p is the
//    head if it says 2M, else p's own (Linux `__snp_lookup_rmpentry`).
//  - A check of a 4K-mapped access reads the head entry and, unless it is a 2M page,
//    the page's own entry (two references); a 2M-mapped access reads the head only
//    (the subpage count answers "is any 4K page of the region assigned").
//  - RMPUPDATE to unassigned always writes a 4K-sized entry (a released 2M page is 512
//    hypervisor pages; Linux makes single 4K pages private inside it without PSMASH).
//  - FAIL_OVERLAP is persistent: a 2M update over assigned 4K pages, a 4K update inside
//    an assigned 2M page.
#pragma once

#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <vector>

#include "models/common/types.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/mem/tlm_mem.hpp"
#include "models/mmu/assoc_cache.hpp"
#include "models/mmu/mmu.hpp"

namespace hvsim::rmp {

// Instruction status codes (EAX), arch/x86/include/asm/sev.h and the APM.
enum RmpStatus : int {
    RMP_SUCCESS = 0,
    RMP_FAIL_INPUT = 1,
    RMP_FAIL_PERMISSION = 2,
    RMP_FAIL_INUSE = 3,
    RMP_FAIL_OVERLAP = 4,
    RMP_FAIL_SIZEMISMATCH = 6,
    PSMASH_FAIL_BADPAGE = 7,    // "page doesn't meet the requirements for expansion"
};

// #NPF EXITINFO1 bits an RMP check adds (APM vol. 2 §15.36.10; kvm_host.h PFERR_GUEST_*).
inline constexpr uint64_t NPF_RMP = 1ull << 31, NPF_SIZEM = 1ull << 35, NPF_VMPL = 1ull << 36;
// Host #PF error-code bit for an RMP violation (arch/x86/include/asm/trap_pf.h X86_PF_RMP).
inline constexpr uint64_t X86_PF_RMP = 1ull << 31;
// #VC error code of an access to an unvalidated private page (SVM_EXIT_VC PAGE_NOT_VALIDATED).
inline constexpr uint64_t SVM_VMGEXIT_PAGE_NOT_VALIDATED = 0x404;

// VMPL permission mask bits (APM Table 15-36).
inline constexpr uint8_t VMPL_R = 1, VMPL_W = 2, VMPL_XU = 4, VMPL_XS = 8, VMPL_SSS = 16;
inline constexpr uint8_t VMPL_ALL = VMPL_R | VMPL_W | VMPL_XU | VMPL_XS | VMPL_SSS;
inline constexpr unsigned kMaxAsid = 1023;   // 10-bit ASID field

struct RmpEntry {
    bool assigned = false;
    bool size_2m = false;
    bool immutable = false;
    bool vmsa = false;
    bool validated = false;
    bool lock = false;
    uint16_t subpage_count = 0;
    uint16_t asid = 0;
    Gpa gpa;
    std::array<uint8_t, 4> perms{};

    static RmpEntry decode(uint64_t lo, uint64_t hi);
    // Fields of the raw words (decode() uses them too), for the checks, which read an
    // entry on every TLB fill and need a few fields of it.
    static constexpr bool lo_assigned(uint64_t lo) { return lo & 1; }
    static constexpr bool lo_size_2m(uint64_t lo) { return (lo >> 1) & 1; }
    static constexpr bool lo_immutable(uint64_t lo) { return (lo >> 2) & 1; }
    static constexpr Gpa lo_gpa(uint64_t lo) { return Gpa(((lo >> 12) & ((1ull << 39) - 1)) << kPageShift); }
    static constexpr uint16_t lo_asid(uint64_t lo) { return uint16_t((lo >> 51) & 0x3ff); }
    static constexpr bool lo_validated(uint64_t lo) { return (lo >> 62) & 1; }
    static constexpr uint8_t hi_perms(uint64_t hi, unsigned vmpl) { return uint8_t(hi >> (8 * (vmpl & 3))); }
    uint64_t lo() const;
    uint64_t hi() const;
    bool operator==(const RmpEntry&) const = default;
};

// RMPUPDATE's input (asm/sev.h `struct rmp_state`).
struct RmpState {
    Gpa gpa;
    bool assigned = false;
    PgLevel size = PgLevel::k4K;
    bool immutable = false;
    uint16_t asid = 0;
};

// The running guest as the checks and guest instructions see it.
struct GuestCtx {
    uint16_t asid = 0;
    uint8_t vmpl = 0;
    bool snp_active = true;   // false: a legacy/SEV/SEV-ES guest (only Hypervisor-Owned writes)
};

enum class Access : uint8_t { read, write, fetch };

// Outcome of a check or a guest instruction.
struct RmpResult {
    enum class Kind : uint8_t { ok, npf, vc } kind = Kind::ok;
    int eax = RMP_SUCCESS;    // instructions
    bool cf = false;          // PVALIDATE: entry unchanged
    uint64_t npf_bits = 0;    // npf: RMP (+ SIZEM, VMPL)
    // RMPQUERY outputs
    uint8_t perms = 0;
    bool vmsa = false;
    bool size_2m = false;
    bool ok() const { return kind == Kind::ok; }
};

struct RmpConfig {
    Hpa base;                   // RMP_BASE (1 MiB aligned)
    uint64_t covered_pages = 0; // PFNs [0, covered_pages) have entries; the rest are hypervisor pages
    unsigned cache_entries = 0; // what-if RMP entry cache in front of the table (0 = none)
    Cycles cache_hit_cycles = 0;
};

struct RmpStats {
    uint64_t checks = 0;        // RMP checks made (TLB fills of checked accesses)
    uint64_t faults = 0;        // checks and guest instructions that raised NPF/#VC/#PF
    uint64_t entry_reads = 0;   // entry references the checks made to memory
    uint64_t cache_hits = 0;    // entry references served by the RMP cache
    uint64_t updates = 0;       // RMPUPDATE executed (any status)
    uint64_t psmash = 0;
    uint64_t pvalidate = 0;
    uint64_t rmpadjust = 0;
    uint64_t rmpquery = 0;
};

// Where a check's entry references go: the walker's memory port, which reads the 16-byte
// entry as one timed reference through the cache model (both words lie in one line:
// WalkMemory::read64_pair()).
using RmpReader = mmu::WalkMemory;

// Where the RMP's own references to its table go: entries (16 bytes) and per-ASID counters
// (8 bytes), read and written by the instructions; `debug` reads are the untimed views
// (read_entry(), lookup(): KVM's lookups, invariant checks) that are no hardware reference.
// Without one the table is read and written in physical memory directly; the SystemC
// module (rmp_module.hpp) routes them through its TLM socket.
class RmpTableMemory {
public:
    virtual ~RmpTableMemory() = default;
    virtual void read(uint64_t hpa, void* dst, unsigned n, bool debug) = 0;
    virtual void write(uint64_t hpa, const void* src, unsigned n) = 0;
};

class Rmp final : public EncryptedPages {
public:
    Rmp(const RmpConfig& cfg, PhysMem& mem);
    Rmp(const Rmp&) = delete;
    Rmp& operator=(const Rmp&) = delete;

    const RmpConfig& config() const { return cfg_; }
    // nullptr: physical memory directly (the default).
    void set_table_memory(RmpTableMemory* t) { tm_ = t; }
    const RmpStats& stats() const { return stats_; }
    bool covered(Pfn p) const { return p.raw() < cfg_.covered_pages; }
    Hpa entry_addr(Pfn p) const { return cfg_.base + kBookkeeping + 16 * p.raw(); }
    // Bytes of memory the table occupies (bookkeeping + entries).
    uint64_t table_bytes() const { return kBookkeeping + 16 * cfg_.covered_pages; }

    // Debug views (no timing): the raw entry, the authoritative one (and its level),
    // the per-ASID counter.
    RmpEntry read_entry(Pfn p) const;
    RmpEntry lookup(Pfn p, PgLevel* level = nullptr) const;
    uint64_t asid_pages(uint16_t asid) const;
    // EncryptedPages: a page assigned to a guest ASID is only ever accessed with that
    // guest's key (the RMP refuses other accesses), so its lines are encrypted. Asked on
    // every line fill from DRAM (the memory controller is not modelled reading the RMP:
    // in hardware the key ID travels with the request), so it answers from a bit per
    // page that every entry write keeps (write_entry()), not by reading two entries.
    bool encrypted(Pfn p) const override {
        return covered(p) && ((enc_bits_.get()[p.raw() >> 6] >> (p.raw() & 63)) & 1);
    }

    // --- host instructions (ASID 0; cur_asid != 0 models execution inside a guest) ---
    int rmpupdate(Hpa spa, const RmpState& st, uint16_t cur_asid = 0);
    int psmash(Hpa spa, uint16_t cur_asid = 0);
    // VMRUN marks the VMSA (and VMCB) in use until #VMEXIT (§15.36.12): RMPUPDATE and
    // PSMASH of the page return FAIL_INUSE meanwhile.
    void set_in_use(Pfn p, bool in_use);

    // --- guest instructions, executed after the gVA translated to gpa -> spa through a
    //     nested leaf of nested_level ---
    RmpResult pvalidate(const GuestCtx& g, Gpa gpa, Hpa spa, PgLevel nested_level, PgLevel size, bool validate);
    RmpResult rmpadjust(const GuestCtx& g, Gpa gpa, Hpa spa, PgLevel nested_level, PgLevel size, uint8_t target_vmpl,
                        uint8_t mask, bool vmsa);
    RmpResult rmpquery(const GuestCtx& g, Gpa gpa, Hpa spa, PgLevel nested_level, uint8_t target_vmpl);

    // --- checks (§15.36.10, Table 15-39) ---
    // A guest access translated gpa -> spa through a nested leaf of nested_level; enc is
    // the effective C-bit; table: a guest page-table reference (always C = 1, always a
    // write for the Hypervisor-Owned check since the walker may set A/D). Entry reads go
    // through `rd` (nullptr: untimed).
    RmpResult check_guest(const GuestCtx& g, Gpa gpa, Hpa spa, PgLevel nested_level, Access a, bool enc, bool table,
                          RmpReader* rd, Cycles& cycles);
    // A host write through a mapping of `mapping` size: false = #PF with X86_PF_RMP.
    // Host reads are never checked.
    bool host_write_allowed(Hpa spa, PgLevel mapping, RmpReader* rd, Cycles& cycles);

    // Drops the what-if cache (tests).
    void flush_cache() { cache_.clear(); }

    // --- the AMD Secure Processor's own writes (no x86 instruction: the SEV firmware owns
    //     the table and updates entries in its commands, e.g. SNP_LAUNCH_UPDATE moving a
    //     Pre-Guest page to Guest-Valid). A 4K entry only; checked builds assert the
    //     page-state edge, tagged `op`.
    void firmware_write_entry(Pfn p, const RmpEntry& e, const char* op);

private:
    static constexpr uint64_t kBookkeeping = 16 * 1024;
    // An entry's two words as read from the table: a check decodes only the entry that
    // decides (a 4K page's 2M head is read for its size bit alone).
    struct Words {
        uint64_t lo = 0, hi = 0;
    };
    Words fetch(Pfn p, RmpReader* rd, Cycles& cycles);   // a check's reference
    // The instructions' own references (b_transport through the module's socket), and the
    // authoritative entry read with them.
    Words load_words(Pfn p, bool debug) const;
    RmpEntry load(Pfn p, bool debug) const;
    RmpEntry load_auth(Pfn p, PgLevel* level, bool debug) const;
    // 8 bytes of the table, from physical memory or through the table socket.
    uint64_t read_table64(Hpa a, bool debug) const;
    // encrypted() from the table itself (the authoritative entry's low word, a debug read):
    // what write_entry() stores in enc_bits_, and what checked builds compare it with.
    bool encrypted_in_table(Pfn p) const;
    void set_encrypted_bit(uint64_t pfn, bool on) {
        uint64_t& w = enc_bits_.get()[pfn >> 6];
        w = on ? w | (1ull << (pfn & 63)) : w & ~(1ull << (pfn & 63));
    }
    uint64_t load_counter(uint16_t asid, bool debug) const;
    void write_entry(Pfn p, const RmpEntry& e);
    void add_asid(uint16_t asid, int64_t d);
    // Ownership part of the guest checks: RMP-Covered, Guest-Owned, Reverse-Map, Mutable,
    // on the authoritative entry's low word.
    bool owned_by(const GuestCtx& g, uint64_t lo, Pfn p, Gpa page_gpa) const;
    bool owned_by(const GuestCtx& g, const RmpEntry& e, Pfn p, Gpa page_gpa) const {
        return owned_by(g, e.lo(), p, page_gpa);
    }
    // The authoritative entry's words and level of PFN p, read through `rd`.
    Words auth(Pfn p, PgLevel& level, RmpReader* rd, Cycles& cycles);
    static RmpResult npf(uint64_t bits) {
        RmpResult r;
        r.kind = RmpResult::Kind::npf;
        r.npf_bits = bits;
        return r;
    }
    static RmpResult status(int eax) {
        RmpResult r;
        r.eax = eax;
        return r;
    }
    // Checked builds: the page states of [first, first + n) before an instruction, and the
    // assertion that each page moved along an edge of the SNP page-state graph.
    std::vector<uint8_t> snapshot(uint64_t first, uint64_t n) const;
    void verify(uint64_t first, uint64_t n, const std::vector<uint8_t>& before, const char* op) const;
    RmpResult count_fault(RmpResult r) {
        if (!r.ok()) ++stats_.faults;
        return r;
    }

    RmpConfig cfg_;
    PhysMem& mem_;
    RmpTableMemory* tm_ = nullptr;
    mmu::AssocCache<Words> cache_;   // the what-if cache keeps entries as read
    struct FreeDeleter {
        void operator()(void* q) const { std::free(q); }
    };
    // encrypted()'s answer per covered page, one bit each (calloc: the host commits the
    // pages of the bitmap that hold a set bit, 32 MiB of address space for 1 TiB covered).
    std::unique_ptr<uint64_t[], FreeDeleter> enc_bits_;
    std::set<uint64_t> in_use_;          // PFNs marked in use by VMRUN
    RmpStats stats_;
};

}  // namespace hvsim::rmp
