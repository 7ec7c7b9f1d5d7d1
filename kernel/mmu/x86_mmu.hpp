// The x86 TDP fault path and the arch half of MMU invalidation (arch/x86/kvm/mmu/mmu.c,
// tdp_mmu.c): kvm_mmu_page_fault() -> kvm_tdp_page_fault() -> kvm_mmu_faultin_pfn() ->
// kvm_tdp_mmu_map(), the KVM_PRE_FAULT_MEMORY arch hook, and KvmMmuOps for generic KVM.
// Every decision follows KVM's order, so a result maps back to a line of Linux.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "kernel/kvm.hpp"
#include "kernel/mmu/tdp_mmu.hpp"
#include "models/common/vcpu_requests.hpp"
#include "models/mmu/mmu.hpp"

namespace hvsim::kvm {

// enum ret_pf (mmu_internal.h).
enum RetPf : int {
    RET_PF_CONTINUE = 0,
    RET_PF_RETRY,
    RET_PF_EMULATE,
    RET_PF_WRITE_PROTECTED,
    RET_PF_INVALID,
    RET_PF_FIXED,
    RET_PF_SPURIOUS,
};

// KVM-synthetic error-code bit: the fault is on private memory (mmu.h PFERR_PRIVATE_ACCESS).
inline constexpr uint64_t PFERR_PRIVATE_ACCESS = 1ull << 49;

// struct kvm_page_fault, the parts the TDP path uses.
struct kvm_page_fault {
    Gpa addr;
    Gfn gfn;
    uint64_t error_code = 0;
    bool write = false, exec = false, is_private = false, prefetch = false;
    PgLevel max_level = PgLevel::k1G;
    PgLevel goal_level = PgLevel::k4K;
    const kvm_memory_slot* slot = nullptr;
    Pfn pfn;
    bool map_writable = false;
    uint64_t mmu_seq = 0;
};

// run->memory_fault of a KVM_EXIT_MEMORY_FAULT (kvm_prepare_memory_fault_exit()).
struct MemoryFaultExit {
    uint64_t gpa = 0, size = 0, flags = 0;
};

struct PageFaultOutcome {
    int r = RET_PF_FIXED;                  // RET_PF_* (>= 0) or -errno for KVM_RUN
    std::optional<MemoryFaultExit> exit;   // set with r = -EFAULT (or the gmem errno)
    bool is_private = false;
    PgLevel level = PgLevel::k4K;          // mapping level installed (FIXED/SPURIOUS)
    bool fast = false;                     // fixed by fast_page_fault() (no mmu_lock, no faultin)
    const char* why = "";                  // short reason for retries and errors
};

struct X86MmuStats {
    uint64_t faults = 0, fixed = 0, spurious = 0, retries = 0, emulated = 0, memory_fault_exits = 0;
    uint64_t private_faults = 0, shared_faults = 0;
    uint64_t map_4k = 0, map_2m = 0, map_1g = 0;
    uint64_t remote_flushes = 0;
    uint64_t remote_flush_ipis = 0;
    uint64_t fast_fixes = 0;              // write-protected SPTEs made writable by fast_page_fault()       // vCPUs kicked out of guest mode by those flushes
    uint64_t prefault_calls = 0, prefault_pages = 0;
    uint64_t prefault_faults = 0;   // kvm_tdp_page_fault() calls made by pre-faulting (retries included)
    uint64_t external_busy = 0;     // mirror faults whose external SPTE answered -EBUSY (retried)
};

class X86Mmu final : public KvmMmuOps {
public:
    X86Mmu(Kvm& kvm, PhysMem& mem, HostPageAllocator& alloc, unsigned levels, mmu::NestedFormat fmt);
    ~X86Mmu() override;

    // A vCPU's hardware MMU: gets the nested root and is flushed on remote flushes.
    // `requests` (optional) says whether the vCPU is in guest mode and takes what a
    // request costs it; without it the vCPU is flushed for free.
    void attach_vcpu(mmu::Mmu& hw, VcpuRequestTarget* requests = nullptr);
    // Give the vCPU attached as number `index` its request target (attached later).
    void set_vcpu_requests(size_t index, VcpuRequestTarget* requests) { vcpus_.at(index).requests = requests; }
    void detach_vcpus() { vcpus_.clear(); }

    // kvm_mmu_page_fault() for an #NPF / EPT violation at gpa with the hardware error code.
    // max_level caps the mapping (a TD's ACCEPT exit: the guest's requested accept level,
    // which the TDX huge-page series honours).
    PageFaultOutcome kvm_mmu_page_fault(Gpa gpa, uint64_t error_code, ExecContext& ctx,
                                        PgLevel max_level = PgLevel::k1G);
    // kvm_vcpu_pre_fault_memory() (virt/kvm/kvm_main.c) with the x86 arch hook;
    // returns 0 or -errno and updates range->gpa/size as the ioctl copies them back.
    int kvm_vcpu_pre_fault_memory(uapi::kvm_pre_fault_memory& range, ExecContext& ctx);
    // kvm_tdp_mmu_map_private_pfn() (TDX initial image): install gfn -> pfn at 4K in the
    // mirror root, retrying while the external SPTE is busy. 0, -EIO (refused / VM bugged)
    // or -EOPNOTSUPP without a mirror root.
    int kvm_tdp_mmu_map_private_pfn(Gfn gfn, Pfn pfn, ExecContext& ctx);

    // KvmMmuOps
    bool kvm_unmap_gfn_range(const kvm_gfn_range& range, ExecContext& ctx) override;
    void kvm_flush_remote_tlbs(ExecContext& ctx) override;
    void kvm_arch_flush_shadow_memslot(const kvm_memory_slot& slot, ExecContext& ctx) override;
    bool kvm_memslot_flush_zap_all() const override;
    bool kvm_arch_pre_set_memory_attributes(const kvm_gfn_range& range, ExecContext& ctx) override;
    void kvm_mmu_slot_apply_flags(const kvm_memory_slot& slot, uint32_t old_flags, ExecContext& ctx) override;
    void kvm_arch_mmu_enable_log_dirty_pt_masked(const kvm_memory_slot& slot, uint64_t gfn_offset, uint64_t mask,
                                                 ExecContext& ctx) override;
    void kvm_arch_post_set_memory_attributes(const kvm_memory_slot& slot, Gfn start, Gfn end) override;
    void kvm_arch_create_memslot(const kvm_memory_slot& slot) override;
    void kvm_arch_free_memslot(const kvm_memory_slot& slot) override;
    uint64_t sptes_zapped_total() const override {
        return tdp_.stats().sptes_zapped + (mirror_ ? mirror_->stats().sptes_zapped : 0);
    }

    TdpMmu& tdp() { return tdp_; }
    const TdpMmu& tdp() const { return tdp_; }
    // The mirror root of private mappings (kvm_has_mirrored_tdp() VMs), else nullptr; its
    // changes go to `ext` (TDX: the secure EPT).
    TdpMmu* mirror() { return mirror_.get(); }
    const TdpMmu* mirror() const { return mirror_.get(); }
    void set_external_ops(ExternalSpteOps* ext) {
        if (mirror_) mirror_->set_external_ops(ext);
    }
    const X86MmuStats& stats() const { return stats_; }

private:
    PageFaultOutcome kvm_tdp_page_fault(kvm_page_fault& fault, ExecContext& ctx);
    // kvm_mmu_faultin_pfn(): RET_PF_CONTINUE when fault.pfn is ready to map.
    int kvm_mmu_faultin_pfn(kvm_page_fault& fault, PageFaultOutcome& out, ExecContext& ctx);
    int kvm_mmu_faultin_pfn_gmem(kvm_page_fault& fault, PageFaultOutcome& out, ExecContext& ctx);
    void kvm_mmu_prepare_memory_fault_exit(const kvm_page_fault& fault, PageFaultOutcome& out);
    // kvm_mmu_max_mapping_level() + the hugepage adjust: the largest level whose frame
    // lies in the slot, is congruently aligned in gfn and hva, is backed that large, and
    // (for VMs with private memory) has uniform attributes.
    PgLevel max_mapping_level(const kvm_page_fault& fault, PgLevel backing) const;
    bool is_page_fault_stale(const kvm_page_fault& fault) const;
    bool fast_page_fault(const kvm_page_fault& fault, ExecContext& ctx);
    Gfn root_gfn(const kvm_page_fault& fault) const;
    // Zap [start, end) in the roots `filter` selects (both on VMs without direct bits).
    bool zap_gfn_range(Gfn start, Gfn end, AttrFilter filter, ExecContext& ctx);

    // The root a fault maps into: the mirror for private faults when there is one.
    TdpMmu& root_for(const kvm_page_fault& fault) { return fault.is_private && mirror_ ? *mirror_ : tdp_; }

    Kvm& kvm_;
    TdpMmu tdp_;
    std::unique_ptr<TdpMmu> mirror_;
    struct VcpuRef {
        mmu::Mmu* hw = nullptr;
        VcpuRequestTarget* requests = nullptr;
    };
    std::vector<VcpuRef> vcpus_;
    X86MmuStats stats_;
};

}  // namespace hvsim::kvm
