// pKVM in runs: a protected VM (KVM_VM_TYPE_ARM_PROTECTED) whose memory the EL2 hypervisor
// owns page by page (arch/arm64/kvm/pkvm.c host glue, arch/arm64/kvm/hyp/nvhe/mem_protect.c
// and pkvm.c at EL2, Linux 7.1). The pieces:
//  - the host's own stage 2 (VMID 0): an identity map built lazily on host aborts
//    (handle_host_mem_abort()), in which every page the host gave away carries a DONATION
//    annotation, so a VMM access to it faults (SIGSEGV) and nothing leaks;
//  - pkvm_mem_abort(): a protected guest's stage-2 fault pins one page of the memslot's
//    userspace memory and donates it (__pkvm_host_donate_guest(): host stage-2 annotated,
//    guest stage-2 mapped PAGE_SIZE RWX, never a block);
//  - the guest's MEM_SHARE / MEM_UNSHARE hypercalls, handled at EL2 without the host: an
//    ownership and permission change in place (contents preserved, no copy), with the
//    stage-2 and TLB maintenance it needs; or, for comparison, the copy-based conversion
//    of a design where shared and private memory are distinct pages;
//  - teardown: __pkvm_start_teardown_vm(), then every page reclaimed (zeroed if the guest
//    owned it, cleaned to PoC) and unpinned, then the VMID flushed.
// The ownership states and their errnos come from PkvmMemProtect; this file drives the
// stage-2 tables (KvmPgtable) to agree with them and charges each step.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "kernel/arm64/kvm_mmu.hpp"
#include "kernel/arm64/pkvm_mem_protect.hpp"
#include "kernel/kvm_arch_ops.hpp"
#include "kernel/process.hpp"

namespace hvsim::kvm::arm64 {

// Host stage-2 invalid-entry annotation (KVM_HOST_INVALID_PTE_TYPE_DONATION, Linux 7.1): type
// in 63:60, owner id in 3:1, metadata in 59:4 (guest: VM handle in meta[15:0], gfn in meta[55:16]).
inline constexpr uint64_t KVM_INVALID_PTE_TYPE_SHIFT = 60;
inline constexpr uint64_t KVM_HOST_INVALID_PTE_TYPE_DONATION = 2;
inline constexpr uint64_t KVM_GUEST_INVALID_PTE_TYPE_POISONED = 3;
uint64_t pkvm_host_donation_annotation(PkvmOwner owner, unsigned handle, uint64_t gfn);
// pkvm_mkstate(): a guest page's state in the leaf's SW0/SW1 bits (55, 56).
uint64_t pkvm_mkstate(PkvmPageState s);
PkvmPageState pkvm_getstate(uint64_t pte);

// The guest's vendor-hyp SMCCC calls (Documentation/virt/kvm/arm/hypercalls.rst).
inline constexpr uint64_t ARM_SMCCC_KVM_FUNC_MEM_SHARE = 0xC6000003;
inline constexpr uint64_t ARM_SMCCC_KVM_FUNC_MEM_UNSHARE = 0xC6000004;
inline constexpr uint64_t ARM_SMCCC_KVM_FUNC_MEM_RELINQUISH = 0xC6000009;
inline constexpr int64_t SMCCC_RET_INVALID_PARAMETER = -3;
inline constexpr int64_t SMCCC_RET_NOT_SUPPORTED = -1;

enum class PkvmConversion : uint8_t { in_place, copy };

struct PkvmCosts {
    Cycles host_hvc = 0;    // cost.pkvm_hvc: the host kernel's HVC into EL2 and back
    Cycles guest_hvc = 0;   // cost.pkvm_guest_hvc: a guest HVC EL2 handles itself (no host)
    Cycles cmo_2m = 0;      // cost.pkvm_cmo_2m: clean+invalidate 2 MiB to PoC at EL2
    Cycles zero_4k = 0, copy_4k = 0, pin_page = 0, unpin_page = 0;
    Cycles cmo_4k() const { return cmo_2m / 512; }
};

struct PkvmRunStats {
    uint64_t host_aborts = 0;        // host stage-2 faults EL2 resolved by mapping (handle_host_mem_abort)
    uint64_t host_refused = 0;       // host accesses to a page the host gave away (abort injected)
    uint64_t guest_hvcs = 0;         // MEM_SHARE / MEM_UNSHARE / MEM_RELINQUISH calls handled at EL2
    uint64_t share_enoent = 0;       // MEM_SHARE on a page not yet donated (faked fault, donate, retry)
    uint64_t pages_copied = 0;       // copy-based conversion: pages copied
    uint64_t pages_zeroed = 0;       // reclaimed guest-owned pages zeroed before the host gets them
    uint64_t forced_reclaims = 0;    // host kernel accesses that took a donated page back (IPA poisoned)
    uint64_t pinned = 0;             // pages pinned for the guest right now
    uint64_t gmem_donated = 0;       // guest_memfd folios donated (kvm.profile inplace), cumulative
    uint64_t gmem_held = 0;          // guest_memfd folios the guest holds right now
    Cycles teardown_cycles = 0;
};

class PkvmHyp final : public KvmArchOps, public ProtectedAbortHandler, public HostStage2 {
public:
    // `host_mem`: the host's RAM (one memblock); `guest`: the VM's stage-2 MMU (VMID = handle).
    PkvmHyp(Kvm& kvm, PhysMem& mem, HostPageAllocator& alloc, VmmProcess& proc, Arm64Mmu& guest,
            stage2::TlbiDomain& dom, PkvmMemProtect::Memblock host_mem, const PkvmCosts& costs,
            const PgtableCosts& pgt_costs, PkvmConversion conv);
    ~PkvmHyp() override;

    // KvmArchOps (kvm_vm_is_protected()).
    VmType type() const override { return VmType::pkvm; }
    bool has_private_mem() const override { return true; }
    bool has_protected_state() const override { return true; }
    bool pre_fault_allowed_initially() const override { return false; }
    bool supported_by(const KvmConfig& c) const override { return c.pkvm; }
    bool has_readonly_mem(const KvmConfig& c) const override { return c.readonly_mem; }
    bool fault_is_private(const Kvm& k, Gfn g, uint64_t) const override { return k.kvm_mem_is_private(g); }
    bool supports_content_policy(ContentPolicy p, bool to_private) const override {
        return p == ContentPolicy::preserve || KvmArchOps::supports_content_policy(p, to_private);
    }
    bool is_protected() const override { return true; }
    int prepare_memory_region(const Kvm& kvm, const kvm_memory_slot* new_slot, kvm_mr_change change) const override;
    void vcpu_run(Kvm&) override { hyp_vm_created_ = true; }
    std::vector<std::string> unmodelled(HostPaging host) const override;
    // The kernel profile the run follows (kvm.profile): which kernel's protected VMs the
    // warnings compare this model with (docs/arm64.md, "Kernel profiles").
    void set_kernel_profile(std::string p) { profile_ = std::move(p); }
    // kvm.profile inplace: a protected VM's private memory may come from guest_memfd (the
    // in-place conversion proposal for pKVM); upstream profiles refuse such memslots.
    bool gmem_backed() const { return profile_ == "inplace"; }

    // ProtectedAbortHandler: pkvm_mem_abort().
    PageFaultOutcome pkvm_mem_abort(Gpa ipa, uint64_t esr, const kvm_memory_slot& slot, ExecContext& ctx) override;
    // HostStage2: a host access (EL0 = the VMM) to pfn through the host stage 2.
    int host_stage2_access(Pfn pfn, bool el0, ExecContext& ctx) override;

    // An access by the host kernel (EL1) to pfn (vhost-like uaccess on the VMM's memory). A
    // page the host gave away aborts in the host stage 2; EL2 injects the abort at EL1 and
    // the kernel's fault handler takes the page back by force (pkvm_force_reclaim_guest_page()
    // -> __pkvm_host_force_reclaim_page_guest: the page zeroed and cleaned, the host's again,
    // the guest's IPA POISONED), then retries the access. 0 when the access may go ahead;
    // -errno when the kernel would die ("access to hypervisor-protected memory").
    int host_kernel_access(Pfn pfn, ExecContext& ctx);

    // The guest's hypercalls at EL2: 0, or an SMCCC error; `*fault_ipa` is set when MEM_SHARE
    // met a page not yet donated (EL2 fakes a write translation fault at that IPA).
    int64_t mem_share(Gfn gfn, ExecContext& ctx, bool* needs_fault);
    int64_t mem_unshare(Gfn gfn, ExecContext& ctx);
    int64_t mem_relinquish(Gfn gfn, ExecContext& ctx);

    // The VMM destroys the VM: start teardown, reclaim and unpin every page, flush the VMID.
    void teardown(ExecContext& ctx);
    bool torn_down() const { return torn_down_; }

    // Checked builds, after every step: the host stage 2 maps no page the host gave away,
    // every DONATION annotation matches the ownership, and the guest stage 2 agrees.
    std::string check() const;

    PkvmMemProtect& mem_protect() { return mp_; }
    const PkvmMemProtect& mem_protect() const { return mp_; }
    KvmPgtable& host_pgt() { return *host_pgt_; }
    const KvmPgtable& host_pgt() const { return *host_pgt_; }
    const PkvmRunStats& stats() const { return stats_; }
    PkvmConversion conversion() const { return conv_; }
    unsigned handle() const { return handle_; }
    // PAGE_SIZE: pKVM's unit, the stage-2 granule (what HYP_MEMINFO returns to the guest).
    // Ownership, donations, shares, reclaims and the guest's leaves are per page of this
    // size; a 16K or 64K page is 4 or 16 frames of simulated memory held as one unit.
    uint64_t page_size() const { return 1ull << page_shift_; }

private:
    struct HostMemcache final : PgtableMemcache {
        HostPageAllocator* alloc = nullptr;
        PhysMem* mem = nullptr;
        unsigned order = 0;   // a table page is one granule
        std::optional<Hpa> alloc_table_page() override;
        void free_table_page(Hpa page) override;
    };
    struct Donated {
        Hva hva;     // the pinned userspace page behind the gfn
        Pfn pfn;
        // kvm.profile inplace: the page is a guest_memfd folio (file page `index`), held
        // by a folio reference instead of a pin of the VMM's memory.
        GuestMemfd* gmem = nullptr;
        uint64_t index = 0;
    };
    // The guest_memfd path of pkvm_mem_abort() (kvm.profile inplace).
    PageFaultOutcome pkvm_gmem_abort(Gfn gfn, const kvm_memory_slot& slot, ExecContext& ctx);
    // Give a donated page back to where it came from: unpin the VMM's page, or drop the
    // folio reference (the page stays in guest_memfd's page cache).
    void release_backing(const Donated& d, ExecContext& ctx);
    // The guest_memfd's shareability of a donated page follows a conversion at EL2.
    void gmem_shareability(Gfn gfn, bool shared, ExecContext& ctx);
    // handle_host_mem_abort(): map the largest block around pa inside the host's memory.
    int host_stage2_idmap(uint64_t pa, ExecContext& ctx);
    void host_hvc(StepName what, ExecContext& ctx) { ctx.charge(what, costs_.host_hvc); }
    int donate(Gfn gfn, Pfn pfn, Hva hva, ExecContext& ctx, GuestMemfd* gmem = nullptr, uint64_t index = 0);
    // The host stage-2 maps pfn again (the annotation replaced by a valid identity entry).
    void host_stage2_set_owned(Pfn pfn, ExecContext& ctx);
    void zero_and_clean(Pfn pfn, ExecContext& ctx);
    int64_t share_in_place(Gfn gfn, Pfn pfn, ExecContext& ctx);
    int64_t unshare_in_place(Gfn gfn, Pfn pfn, ExecContext& ctx);
    // Copy-based conversion: the page's bytes move to a fresh page, the old one is reclaimed.
    int64_t convert_by_copy(Gfn gfn, bool to_shared, ExecContext& ctx);
    // 4 KiB frame numbers (Gfn / Pfn) to pKVM's page numbers and back.
    uint64_t pg(uint64_t frame) const { return frame >> (page_shift_ - kPageShift); }
    uint64_t frames() const { return page_size() >> kPageShift; }
    bool page_aligned(Gfn gfn) const { return (gfn.raw() & (frames() - 1)) == 0; }
    // Zeroing and cleaning to PoC a PAGE_SIZE page: the 4 KiB costs times the frames (the
    // CMO is cost.pkvm_cmo_2m scaled to the page).
    Cycles zero_cost() const { return costs_.zero_4k * frames(); }
    Cycles cmo_cost() const { return costs_.cmo_2m / ((2ull << 20) >> page_shift_); }

    Kvm& kvm_;
    PhysMem& mem_;
    HostPageAllocator& alloc_;
    VmmProcess& proc_;
    Arm64Mmu& guest_;
    PkvmMemProtect::Memblock host_mem_;
    PkvmCosts costs_;
    PkvmConversion conv_;
    unsigned page_shift_;
    PkvmMemProtect mp_;
    unsigned handle_;
    HostMemcache host_mc_;
    Pfn host_pgd_;
    unsigned host_pgd_order_ = 0;
    std::unique_ptr<KvmPgtable> host_pgt_;
    std::map<uint64_t, Donated> donated_;   // gfn -> the pinned page (pkvm_mappings)
    // Pages donated by MEM_SHARE's fault: still the host's bytes, shared without a copy
    // even by the copy-based conversion.
    std::set<uint64_t> share_donated_;
    // Guest IPAs poisoned by a forced reclaim: the page is the host's again (still pinned
    // until teardown), the guest's leaf a POISONED annotation.
    std::set<uint64_t> poisoned_;
    bool hyp_vm_created_ = false;
    bool torn_down_ = false;
    PkvmRunStats stats_;
    std::string profile_;
};

}  // namespace hvsim::kvm::arm64
