// KVM/arm64's stage-2 page-table code (arch/arm64/kvm/hyp/pgtable.c and the TLB helpers
// of arch/arm64/kvm/hyp/nvhe/tlb.c), over real VMSAv8-64 descriptors in simulated
// memory: kvm_pgtable_stage2_map() with its block choice, break-before-make and cache
// maintenance, kvm_pgtable_stage2_unmap(), relax_perms(), wrprotect(), mkyoung(), and the
// TLB maintenance each needs, issued through the broadcast domain (no IPIs on arm64).
//
// Every descriptor store, barrier and TLBI is reported to the domain's observers, so the
// break-before-make checker (models/stage2/bbm_checker.hpp) and a Casemate trace see the
// same sequence KVM runs:
//   break (LOCKED marker) -> DSB ISHST -> TLBI IPAS2E1IS -> DSB ISH -> TLBI VMALLE1IS ->
//   DSB ISH -> ISB -> [DC CIVAC of the granule] -> store-release of the new descriptor.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>

#include "models/common/exec_context.hpp"
#include "models/common/types.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/stage2/tlbi.hpp"
#include "models/stage2/vmsa.hpp"

namespace hvsim::kvm::arm64 {

using stage2::Granule;
using stage2::S2Geometry;

// enum kvm_pgtable_prot (asm/kvm_pgtable.h).
enum kvm_pgtable_prot : uint32_t {
    KVM_PGTABLE_PROT_X = 1u << 0,
    KVM_PGTABLE_PROT_W = 1u << 1,
    KVM_PGTABLE_PROT_R = 1u << 2,
    KVM_PGTABLE_PROT_DEVICE = 1u << 3,
    KVM_PGTABLE_PROT_RWX = KVM_PGTABLE_PROT_R | KVM_PGTABLE_PROT_W | KVM_PGTABLE_PROT_X,
};

// The break marker: an invalid descriptor of type KVM_INVALID_PTE_TYPE_LOCKED (type in 63:60).
inline constexpr uint64_t KVM_INVALID_PTE_LOCKED = 1ull << 60;

// What the stage-2 code costs the CPU running it (cycles; the platform preset fills them).
struct PgtableCosts {
    Cycles pte_write = 0;        // one descriptor store
    Cycles cmo_per_page = 0;     // DC CIVAC over 4 KiB to PoC (no FWB)
};

struct PgtableStats {
    uint64_t maps = 0, unmaps = 0;           // leaves installed / removed
    uint64_t map_blocks = 0;                 // of the installed leaves, blocks
    uint64_t bbm = 0;                        // valid descriptors replaced by break-before-make
    uint64_t splits = 0;                     // blocks replaced by a table (a smaller map inside them)
    uint64_t relax = 0, wrprotect = 0, mkyoung = 0;
    uint64_t tables_allocated = 0, tables_freed = 0;
    uint64_t cmo_bytes = 0;
    uint64_t eagain = 0;
};

// Table pages for the walk (the vCPU's memcache, topped up before the fault takes the lock).
class PgtableMemcache {
public:
    virtual ~PgtableMemcache() = default;
    virtual std::optional<Hpa> alloc_table_page() = 0;   // zeroed, granule-sized
    virtual void free_table_page(Hpa page) = 0;
};

class KvmPgtable {
public:
    // `fwb`: HCR_EL2.FWB (the CPU forces write-back, no CMO needed before a map).
    KvmPgtable(PhysMem& mem, PgtableMemcache& mc, stage2::TlbiDomain& dom, const S2Geometry& geo, uint16_t vmid,
               Hpa pgd, const PgtableCosts& costs, bool fwb);
    KvmPgtable(const KvmPgtable&) = delete;
    KvmPgtable& operator=(const KvmPgtable&) = delete;

    const S2Geometry& geometry() const { return geo_; }
    uint16_t vmid() const { return vmid_; }
    Hpa pgd() const { return Hpa(pgd_); }

    // Installs addr..addr+size -> phys with `prot`; the largest leaf that the alignment
    // of addr and phys, the remaining size and max_level allow (KVM_PGTABLE_MIN_BLOCK_LEVEL
    // up). -EAGAIN when the only difference from an existing leaf is permissions
    // (stage2_pte_needs_update()), -ENOMEM when the memcache is empty.
    int kvm_pgtable_stage2_map(uint64_t addr, uint64_t size, uint64_t phys, uint32_t prot, ExecContext& ctx);
    int kvm_pgtable_stage2_unmap(uint64_t addr, uint64_t size, ExecContext& ctx);
    // Adds permissions to the leaf mapping addr in place; TLB maintenance local to this CPU
    // (__kvm_tlb_flush_vmid_ipa_nsh). -EAGAIN when there is no valid leaf.
    // The map's leaf level follows KVM: the largest block level (KVM_PGTABLE_MIN_BLOCK_LEVEL
    // and up) at which addr and phys are aligned and the block fits in the range.
    int kvm_pgtable_stage2_relax_perms(uint64_t addr, uint32_t prot, ExecContext& ctx);
    // Clears write permission of every leaf in range; no TLBI (the caller flushes).
    int kvm_pgtable_stage2_wrprotect(uint64_t addr, uint64_t size, ExecContext& ctx);
    int kvm_pgtable_stage2_mkyoung(uint64_t addr, ExecContext& ctx);
    // pKVM (mem_protect.c): replace the 4K entry at addr by an invalid descriptor carrying
    // `annotation` (host stage-2: KVM_HOST_INVALID_PTE_TYPE_DONATION with the owner; guest:
    // KVM_GUEST_INVALID_PTE_TYPE_POISONED). A valid leaf goes by break-before-make; a block
    // around addr is removed whole (the rest of it faults back lazily), as
    // host_stage2_set_owner_metadata_locked() does under the host's force-PTE policy.
    int kvm_pgtable_stage2_annotate(uint64_t addr, uint64_t annotation, ExecContext& ctx);
    // The software bits (58:55) of the valid leaf mapping addr, written in place: pKVM keeps
    // a guest page's state there (pkvm_mkstate()); no break-before-make, no TLBI needed.
    int kvm_pgtable_stage2_set_sw_bits(uint64_t addr, uint64_t sw, ExecContext& ctx);
    // The entry the walk for addr ends on, valid or not (0 when none): (descriptor, level).
    std::pair<uint64_t, int> get_entry(uint64_t addr) const;
    // Tear down: every table page back to the memcache.
    void kvm_pgtable_stage2_destroy(ExecContext& ctx);

    // The leaf mapping addr: (descriptor, level); level -1 when none.
    std::pair<uint64_t, int> get_leaf(uint64_t addr) const;
    // __kvm_tlb_flush_vmid(): every entry of this VMID (VMALLS12E1IS).
    void kvm_tlb_flush_vmid(ExecContext& ctx);
    const PgtableStats& stats() const { return stats_; }
    // Live table pages (the root excluded).
    size_t table_pages() const { return refcount_.size(); }

private:
    struct LockGuard;
    // The key a trace checker knows this tree's lock by (not a memory address).
    uint64_t lock_addr() const { return (1ull << 63) | pgd_; }
    uint64_t leaf_desc(uint64_t phys, uint32_t prot, int level) const;
    void write_pte(uint64_t loc, uint64_t old, uint64_t v, uint64_t ia, int level, bool release, ExecContext& ctx);
    // __kvm_tlb_flush_vmid_ipa(): the leaf sequence; the table sequence for table entries.
    void tlb_flush_vmid_ipa(uint64_t ipa, int level, ExecContext& ctx);
    void tlb_flush_vmid_ipa_nsh(uint64_t ipa, int level, ExecContext& ctx);
    // stage2_try_break_pte() + TLBI + stage2_make_pte().
    void break_pte(uint64_t loc, uint64_t old, uint64_t ia, int level, ExecContext& ctx);
    // Every live change of a descriptor: a valid `old` is broken first (break_pte()); returns
    // the value the slot holds now (the LOCKED marker, or `old` when it was invalid), which
    // the caller's store-release of the new descriptor replaces.
    uint64_t try_break_pte(uint64_t loc, uint64_t old, uint64_t ia, int level, ExecContext& ctx);
    void cmo(uint64_t bytes, ExecContext& ctx);
    int map_walk(uint64_t table, int level, uint64_t& addr, uint64_t end, uint64_t& phys, uint32_t prot,
                 ExecContext& ctx);
    bool unmap_walk(uint64_t table, int level, uint64_t addr, uint64_t end, ExecContext& ctx);
    void free_subtree(uint64_t table, int level, ExecContext& ctx);
    uint64_t entries(int level) const;
    uint64_t index(uint64_t addr, int level) const;
    bool leaf_allowed(uint64_t addr, uint64_t end, uint64_t phys, int level) const;
    std::optional<uint64_t> alloc_table();
    std::pair<uint64_t, int> leaf_slot(uint64_t addr) const;   // descriptor address, level

    PhysMem& mem_;
    PgtableMemcache& mc_;
    stage2::TlbiDomain& dom_;
    S2Geometry geo_;
    uint16_t vmid_;
    uint64_t pgd_;
    PgtableCosts costs_;
    bool fwb_;
    std::map<uint64_t, unsigned> refcount_;   // table page -> valid entries
    PgtableStats stats_;
};

}  // namespace hvsim::kvm::arm64
