// KVM/arm64's stage-2 MMU (arch/arm64/kvm/mmu.c): the abort handler
// kvm_handle_guest_abort() -> user_mem_abort() / gmem_abort() -> kvm_pgtable_stage2_map(),
// and the arch half of generic KVM's invalidations (KvmMmuOps), over the stage-2 tables
// of kvm_pgtable.hpp. The checks follow kvm_handle_guest_abort()'s order, so an outcome
// maps back to a line of Linux. Results use the generic fault outcome (PageFaultOutcome:
// RET_PF_FIXED = resume the guest, RET_PF_RETRY = resume and fault again,
// RET_PF_EMULATE = MMIO exit, negative = KVM_RUN's errno).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernel/arm64/kvm_pgtable.hpp"
#include "kernel/kvm.hpp"
#include "kernel/mmu/x86_mmu.hpp"   // PageFaultOutcome and RET_PF_*: the generic exit handling's vocabulary
#include "models/mem/page_alloc.hpp"
#include "models/stage2/stage2_mmu.hpp"
#include "models/stage2/tlbi.hpp"

namespace hvsim::kvm::arm64 {

// pkvm_mem_abort() (mmu.c): where a protected VM's stage-2 faults go (kernel/arm64/pkvm.hpp).
class ProtectedAbortHandler {
public:
    virtual ~ProtectedAbortHandler() = default;
    virtual PageFaultOutcome pkvm_mem_abort(Gpa ipa, uint64_t esr, const kvm_memory_slot& slot, ExecContext& ctx) = 0;
};

struct Arm64MmuCosts {
    Cycles handle_guest_abort = 0;   // kvm_handle_guest_abort() entry to the map (cost.kvm_mmu_page_fault)
    Cycles mmu_lock = 0;
    PgtableCosts pgtable;
};

struct Arm64MmuStats {
    uint64_t aborts = 0, fixed = 0, retries = 0, mmio = 0, errors = 0;
    uint64_t private_faults = 0, shared_faults = 0;   // of the aborts past the FSC checks
    uint64_t perm_faults = 0, relaxed = 0, access_flag = 0, gmem_faults = 0;
    uint64_t map_page = 0, map_block = 0;
    uint64_t pkvm_aborts = 0;   // protected-VM faults handed to pkvm_mem_abort()
    uint64_t memory_fault_exits = 0;
    uint64_t remote_flushes = 0;
};

class Arm64Mmu final : public KvmMmuOps {
public:
    // The VM's stage-2 geometry comes from its IPA size and the host granule
    // (kvm_init_stage2_mmu()); vmid 1.. per VM. `dic`: CTR_EL0.DIC (no I-cache
    // maintenance needed for exec), `fwb`: FEAT_S2FWB.
    Arm64Mmu(Kvm& kvm, PhysMem& mem, HostPageAllocator& alloc, const stage2::S2Geometry& geo, uint16_t vmid,
             stage2::TlbiDomain& dom, const Arm64MmuCosts& costs, bool fwb, bool dic);
    ~Arm64Mmu() override;

    // A vCPU's stage-2 hardware: loads VTCR_EL2 / VTTBR_EL2 and joins the broadcast domain.
    void attach_vcpu(stage2::Stage2Mmu& hw);
    void detach_vcpus() {
        for (stage2::Stage2Mmu* c : vcpus_) dom_.detach(*c);
        vcpus_.clear();
    }

    // kvm_handle_guest_abort(): a stage-2 abort with its IPA (HPFAR_EL2 | FAR_EL2[11:0])
    // and ESR_EL2.
    PageFaultOutcome kvm_handle_guest_abort(Gpa ipa, uint64_t esr, ExecContext& ctx);

    // KvmMmuOps
    bool kvm_unmap_gfn_range(const kvm_gfn_range& range, ExecContext& ctx) override;
    void kvm_flush_remote_tlbs(ExecContext& ctx) override;
    void kvm_arch_flush_shadow_memslot(const kvm_memory_slot& slot, ExecContext& ctx) override;
    void kvm_mmu_slot_apply_flags(const kvm_memory_slot& slot, uint32_t old_flags, ExecContext& ctx) override;
    void kvm_arch_mmu_enable_log_dirty_pt_masked(const kvm_memory_slot& slot, uint64_t gfn_offset, uint64_t mask,
                                                 ExecContext& ctx) override;
    void kvm_arch_post_set_memory_attributes(const kvm_memory_slot&, Gfn, Gfn) override {}
    void kvm_arch_create_memslot(const kvm_memory_slot&) override {}
    void kvm_arch_free_memslot(const kvm_memory_slot&) override {}
    uint64_t sptes_zapped_total() const override { return pgt_->stats().unmaps; }

    // A protected VM: its aborts go to pKVM, and the MMU notifiers leave its stage 2 alone
    // (the pages are pinned; kvm_unmap_gfn_range() and aging are no-ops for pVMs).
    void set_protected(ProtectedAbortHandler* h) { pkvm_ = h; }

    KvmPgtable& pgt() { return *pgt_; }
    const KvmPgtable& pgt() const { return *pgt_; }
    const Arm64MmuStats& stats() const { return stats_; }
    stage2::TlbiDomain& domain() { return dom_; }
    const stage2::TlbiDomain& domain() const { return dom_; }
    const std::vector<stage2::Stage2Mmu*>& vcpus() const { return vcpus_; }

private:
    PageFaultOutcome user_mem_abort(Gpa ipa, uint64_t esr, const kvm_memory_slot& slot, ExecContext& ctx);
    PageFaultOutcome gmem_abort(Gpa ipa, uint64_t esr, const kvm_memory_slot& slot, ExecContext& ctx);
    // fault_supports_stage2_huge_mapping(): gpa and hva congruent modulo `size` and the
    // aligned block inside the slot.
    bool fault_supports_stage2_huge_mapping(const kvm_memory_slot& slot, uint64_t hva, uint64_t size) const;
    int map_or_relax(uint64_t ipa, uint64_t size, uint64_t pa, uint32_t prot, uint64_t esr, ExecContext& ctx);

    struct Memcache final : PgtableMemcache {
        HostPageAllocator* alloc = nullptr;
        PhysMem* mem = nullptr;
        unsigned order = 0;
        std::optional<Hpa> alloc_table_page() override;
        void free_table_page(Hpa page) override;
    };

    Kvm& kvm_;
    HostPageAllocator& alloc_;
    stage2::TlbiDomain& dom_;
    Arm64MmuCosts costs_;
    bool dic_;
    Memcache mc_;
    Pfn pgd_pfn_;
    unsigned pgd_order_ = 0;
    std::unique_ptr<KvmPgtable> pgt_;
    std::vector<stage2::Stage2Mmu*> vcpus_;
    ProtectedAbortHandler* pkvm_ = nullptr;
    Arm64MmuStats stats_;
};

}  // namespace hvsim::kvm::arm64
