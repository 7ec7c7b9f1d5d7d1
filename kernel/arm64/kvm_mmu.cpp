#include "kernel/arm64/kvm_mmu.hpp"

#include <bit>
#include <cerrno>
#include <stdexcept>

#include "kernel/guest_memfd.hpp"
#include "kernel/process.hpp"

namespace hvsim::kvm::arm64 {

namespace esr = stage2::esr;
using stage2::level_size;

std::optional<Hpa> Arm64Mmu::Memcache::alloc_table_page() {
    auto p = alloc->alloc(order);
    if (!p) return std::nullopt;
    const Hpa a = pfn_to_hpa(*p);
    mem->fill(a, 0, kPageSize << order);
    return a;
}

void Arm64Mmu::Memcache::free_table_page(Hpa page) { alloc->free(hpa_to_pfn(page), order); }

Arm64Mmu::Arm64Mmu(Kvm& kvm, PhysMem& mem, HostPageAllocator& alloc, const stage2::S2Geometry& geo, uint16_t vmid,
                   stage2::TlbiDomain& dom, const Arm64MmuCosts& costs, bool fwb, bool dic)
    : kvm_(kvm), alloc_(alloc), dom_(dom), costs_(costs), dic_(dic) {
    mc_.alloc = &alloc;
    mc_.mem = &mem;
    mc_.order = stage2::granule_shift(geo.granule) - kPageShift;
    // kvm_pgd_pages(): the concatenated root, naturally aligned (a buddy block is).
    const uint64_t pgd_pages = geo.root_bytes() >> kPageShift;
    pgd_order_ = unsigned(std::countr_zero(std::bit_ceil(pgd_pages)));
    auto p = alloc.alloc(pgd_order_);
    if (!p) throw std::runtime_error("arm64: no host memory for the stage-2 pgd");
    pgd_pfn_ = *p;
    mem.fill(pfn_to_hpa(pgd_pfn_), 0, pgd_pages << kPageShift);
    pgt_ = std::make_unique<KvmPgtable>(mem, mc_, dom, geo, vmid, pfn_to_hpa(pgd_pfn_), costs.pgtable, fwb);
    kvm_.set_mmu_ops(this);
}

Arm64Mmu::~Arm64Mmu() {
    kvm_.set_mmu_ops(nullptr);
    CycleCounter c;
    pgt_->kvm_pgtable_stage2_destroy(c);
    alloc_.free(pgd_pfn_, pgd_order_);
}

void Arm64Mmu::attach_vcpu(stage2::Stage2Mmu& hw) {
    hw.set_vtcr(stage2::kvm_vtcr(pgt_->geometry()));
    hw.set_vttbr(pgt_->vmid(), pgt_->pgd());
    dom_.attach(hw);
    vcpus_.push_back(&hw);
}

bool Arm64Mmu::fault_supports_stage2_huge_mapping(const kvm_memory_slot& slot, uint64_t hva, uint64_t size) const {
    const uint64_t gpa_start = slot.base_gfn.raw() << kPageShift;
    const uint64_t uaddr_start = slot.userspace_addr.raw();
    const uint64_t uaddr_end = uaddr_start + (slot.npages << kPageShift);
    if ((gpa_start & (size - 1)) != (uaddr_start & (size - 1))) return false;
    const uint64_t block = hva & ~(size - 1);
    return block >= uaddr_start && block + size <= uaddr_end;
}

PageFaultOutcome Arm64Mmu::kvm_handle_guest_abort(Gpa ipa, uint64_t e, ExecContext& ctx) {
    ++stats_.aborts;
    ctx.charge("kvm_handle_guest_abort", costs_.handle_guest_abort);
    PageFaultOutcome out;
    const auto& geo = pgt_->geometry();
    const bool translation = esr::is_translation(e), perm = esr::is_permission(e), af = esr::is_access_flag(e);
    // An IPA beyond the VM's IPA size: KVM injects an SEA (or an address-size fault above
    // the CPU's PARange) into the guest, which hvsim's guest model cannot take.
    if (translation && (ipa.raw() >> geo.ipa_bits)) {
        ++stats_.errors;
        out.r = -EFAULT;
        out.why = "IPA beyond the VM's IPA size: KVM injects an external abort into the guest (not modelled)";
        return out;
    }
    if (!translation && !perm && !af) {
        ++stats_.errors;
        out.r = -EFAULT;
        out.why = "Unsupported FSC";
        return out;
    }
    const int idx = kvm_.srcu_read_lock();
    const Gfn gfn = gpa_to_gfn(ipa);
    // Private memory (a VM type with private memory and the gfn's attributes say so)
    // comes from guest_memfd, as the generic fault path has it (kvm_mem_is_private()).
    const bool priv = kvm_.has_private_mem() && kvm_.arch().fault_is_private(kvm_, gfn, e);
    (priv ? stats_.private_faults : stats_.shared_faults)++;
    const kvm_memory_slot* slot = kvm_.gfn_to_memslot(0, gfn);
    const bool write = (e & esr::S1PTW) || (esr::ec(e) != esr::EC_IABT_LOW && esr::is_write(e));
    if (!slot || (slot->flags & KVM_MEMSLOT_INVALID) || (write && (slot->flags & uapi::KVM_MEM_READONLY))) {
        kvm_.srcu_read_unlock(idx);
        if (slot && (slot->flags & KVM_MEMSLOT_INVALID)) {
            ++stats_.retries;
            out.r = RET_PF_RETRY;
            out.why = "memslot being deleted or moved";
            return out;
        }
        // An instruction fetch or a stage-1 walk outside memory: an SEA for the guest.
        if (esr::ec(e) == esr::EC_IABT_LOW || (e & esr::S1PTW)) {
            ++stats_.errors;
            out.r = -EFAULT;
            out.why = "fetch or stage-1 walk outside every memslot: KVM injects an external abort (not modelled)";
            return out;
        }
        ++stats_.mmio;
        out.r = RET_PF_EMULATE;
        out.why = "no memslot: MMIO emulation";
        return out;
    }
    if (af) {
        // handle_access_fault(): mkyoung under the read lock; no TLB maintenance.
        ++stats_.access_flag;
        pgt_->kvm_pgtable_stage2_mkyoung(ipa.raw() & ~kPageMask, ctx);
        kvm_.srcu_read_unlock(idx);
        ++stats_.fixed;
        out.r = RET_PF_FIXED;
        return out;
    }
    // A protected VM's memory is the memslot's userspace memory, donated page by page
    // (kvm_handle_guest_abort(): kvm_vm_is_protected() goes to pkvm_mem_abort() before the
    // guest_memfd and user_mem_abort() paths).
    if (pkvm_) {
        ++stats_.pkvm_aborts;
        out = pkvm_->pkvm_mem_abort(ipa, e, *slot, ctx);
        out.is_private = priv;
        kvm_.srcu_read_unlock(idx);
        if (out.r == RET_PF_FIXED) ++stats_.fixed, ++stats_.map_page;
        else if (out.r == RET_PF_RETRY) ++stats_.retries;
        else if (out.r < 0) ++stats_.errors;
        return out;
    }
    // A gmem-only slot is always served from guest_memfd.
    if (priv && !slot->has_gmem()) {
        kvm_.srcu_read_unlock(idx);
        ++stats_.memory_fault_exits;
        ++stats_.errors;
        out.exit = MemoryFaultExit{gfn_to_gpa(gfn).raw(), kPageSize, uapi::KVM_MEMORY_EXIT_FLAG_PRIVATE};
        out.is_private = true;
        out.r = -EFAULT;
        out.why = "private fault on a memslot without guest_memfd";
        return out;
    }
    out = slot->has_gmem() && (priv || slot->gmem_only()) ? gmem_abort(ipa, e, *slot, ctx)
                                                          : user_mem_abort(ipa, e, *slot, ctx);
    out.is_private = priv;
    kvm_.srcu_read_unlock(idx);
    if (out.r == RET_PF_FIXED) ++stats_.fixed;
    else if (out.r == RET_PF_RETRY) ++stats_.retries;
    else if (out.r < 0) ++stats_.errors;
    return out;
}

// A permission fault whose granule is the mapping size relaxes the leaf in place; any
// other fault maps (which may split or collapse with break-before-make).
int Arm64Mmu::map_or_relax(uint64_t ipa, uint64_t size, uint64_t pa, uint32_t prot, uint64_t e, ExecContext& ctx) {
    if (esr::is_permission(e)) {
        ++stats_.perm_faults;
        const uint64_t granule = level_size(pgt_->geometry().granule, esr::fault_level(e));
        if (granule == size) {
            ++stats_.relaxed;
            const int r = pgt_->kvm_pgtable_stage2_relax_perms(ipa, prot, ctx);
            return r == -EAGAIN ? 0 : r;
        }
    }
    const int r = pgt_->kvm_pgtable_stage2_map(ipa & ~(size - 1), size, pa & ~(size - 1), prot, ctx);
    if (r == 0) (size > stage2::granule_size(pgt_->geometry().granule) ? stats_.map_block : stats_.map_page)++;
    // -EAGAIN: the same mapping exists (another vCPU won the race); resume.
    return r == -EAGAIN ? 0 : r;
}

PageFaultOutcome Arm64Mmu::user_mem_abort(Gpa ipa, uint64_t e, const kvm_memory_slot& slot, ExecContext& ctx) {
    PageFaultOutcome out;
    const Gfn gfn = gpa_to_gfn(ipa);
    const bool exec = esr::ec(e) == esr::EC_IABT_LOW;
    const bool write = (e & esr::S1PTW) || (!exec && esr::is_write(e));
    const bool logging = slot.flags & uapi::KVM_MEM_LOG_DIRTY_PAGES;
    // Snapshot before faulting in the page (mmu_seq = kvm->mmu_invalidate_seq).
    const uint64_t mmu_seq = kvm_.mmu_invalidate_seq;
    const Hva hva = slot.gfn_to_hva(gfn);
    const GupResult g = kvm_.process().get_user_pages(hva, write, ctx);
    if (g.err) {
        out.r = g.err;
        out.why = g.sigbus ? "SIGBUS on the memslot's userspace mapping" : "__kvm_faultin_pfn failed";
        return out;
    }
    // The mapping size: PAGE for a dirty-logged slot, else what backs the hva, kept only
    // where the slot allows a block (pKVM: PMD at most; 1 GiB for hugetlb only).
    // With a 16K or 64K granule the host's PAGE_SIZE is the granule: the page is a granule of
    // one folio (the simulated host keeps 4 KiB pages, so it must be a transparent huge page).
    const uint64_t gsz = stage2::granule_size(pgt_->geometry().granule);
    uint64_t size = kPageSize;
    if (gsz > kPageSize) {
        if (g.level != PgLevel::k2M || !fault_supports_stage2_huge_mapping(slot, hva.raw(), gsz)) {
            out.r = -EFAULT;
            out.why = "a 16K/64K-granule page needs a transparent huge page congruent with the slot (host.thp; the "
                      "simulated host's base pages are 4 KiB)";
            return out;
        }
        size = gsz;
    } else if (!logging && g.level == PgLevel::k2M && fault_supports_stage2_huge_mapping(slot, hva.raw(), 2ull << 20)) {
        size = 2ull << 20;
    }
    // Permissions: R always; W when the page is writable and the slot not logging (or
    // this is the write); X for a fetch, or for cacheable memory with CTR_EL0.DIC.
    uint32_t prot = KVM_PGTABLE_PROT_R;
    const bool writable = g.writable && !(slot.flags & uapi::KVM_MEM_READONLY);
    if (writable && (!logging || write)) prot |= KVM_PGTABLE_PROT_W;
    if (exec || dic_) prot |= KVM_PGTABLE_PROT_X;
    ctx.sync();
    // kvm_fault_lock(): read_lock(&kvm->mmu_lock) (stage-2 faults in parallel since 6.2).
    MmuLockGuard lock(kvm_.mmu_lock(), MmuLock::Mode::read, ctx, costs_.mmu_lock);
    if (kvm_.mmu_invalidate_retry_gfn(mmu_seq, gfn)) {
        out.r = RET_PF_RETRY;
        out.why = "invalidation raced the fault";
        return out;
    }
    const int r = map_or_relax(ipa.raw() & ~(size - 1), size, g.pfn.raw() << kPageShift, prot, e, ctx);
    if (r < 0) {
        out.r = r;
        out.why = r == -ENOMEM ? "stage-2 memcache exhausted" : "kvm_pgtable_stage2_map failed";
        return out;
    }
    if (prot & KVM_PGTABLE_PROT_W) {
        // The dirty bitmap counts 4 KiB gfns: a 16K/64K page dirties all of its own.
        const Gfn first = gfn - ((gfn.raw() - slot.base_gfn.raw()) & ((gsz >> kPageShift) - 1));
        for (uint64_t i = 0; i < (gsz > kPageSize && size == gsz ? gsz >> kPageShift : 1); ++i)
            Kvm::mark_page_dirty_in_slot(slot, size == gsz && gsz > kPageSize ? first + i : gfn);
    }
    out.r = RET_PF_FIXED;
    out.level = size == (2ull << 20) ? PgLevel::k2M : PgLevel::k4K;
    return out;
}

// gmem_abort(): PAGE_SIZE always; a kvm_gmem_get_pfn() failure becomes
// KVM_EXIT_MEMORY_FAULT with the errno.
PageFaultOutcome Arm64Mmu::gmem_abort(Gpa ipa, uint64_t e, const kvm_memory_slot& slot, ExecContext& ctx) {
    ++stats_.gmem_faults;
    PageFaultOutcome out;
    if (stage2::granule_size(pgt_->geometry().granule) != kPageSize) {
        out.r = -EFAULT;
        out.why = "guest_memfd with a 16K/64K stage-2 granule is not modelled (its folios are 4 KiB)";
        return out;
    }
    const Gfn gfn = gpa_to_gfn(ipa);
    const bool exec = esr::ec(e) == esr::EC_IABT_LOW;
    const uint64_t mmu_seq = kvm_.mmu_invalidate_seq;
    Pfn pfn;
    int max_order = 0;
    const int r = kvm_gmem_get_pfn(kvm_, slot, gfn, pfn, max_order, ctx);
    if (r) {
        ++stats_.memory_fault_exits;
        // kvm_prepare_memory_fault_exit(): a shared fault (arm64 has no private bit here).
        out.exit = MemoryFaultExit{gfn_to_gpa(gfn).raw(), kPageSize, 0};
        out.r = r;
        out.why = "kvm_gmem_get_pfn failed";
        return out;
    }
    uint32_t prot = KVM_PGTABLE_PROT_R;
    if (!(slot.flags & uapi::KVM_MEM_READONLY)) prot |= KVM_PGTABLE_PROT_W;
    if (exec || dic_) prot |= KVM_PGTABLE_PROT_X;
    ctx.sync();
    // kvm_fault_lock(): read_lock(&kvm->mmu_lock) (stage-2 faults in parallel since 6.2).
    MmuLockGuard lock(kvm_.mmu_lock(), MmuLock::Mode::read, ctx, costs_.mmu_lock);
    if (kvm_.mmu_invalidate_retry_gfn(mmu_seq, gfn)) {
        out.r = RET_PF_RETRY;
        out.why = "invalidation raced the fault";
        return out;
    }
    const int m = map_or_relax(ipa.raw() & ~kPageMask, kPageSize, pfn.raw() << kPageShift, prot, e, ctx);
    if (m < 0) {
        out.r = m;
        out.why = "kvm_pgtable_stage2_map failed";
        return out;
    }
    if (prot & KVM_PGTABLE_PROT_W) Kvm::mark_page_dirty_in_slot(slot, gfn);
    out.r = RET_PF_FIXED;
    return out;
}

// kvm_unmap_gfn_range() -> __unmap_stage2_range(): the unmap walker does its own TLB
// maintenance per leaf, so no further flush is asked for.
bool Arm64Mmu::kvm_unmap_gfn_range(const kvm_gfn_range& range, ExecContext& ctx) {
    if (pkvm_) return false;
    pgt_->kvm_pgtable_stage2_unmap(gfn_to_gpa(range.start).raw(), (range.end - range.start) << kPageShift, ctx);
    return false;
}

// kvm_arch_flush_remote_tlbs(): __kvm_tlb_flush_vmid, a broadcast VMALLS12E1IS (no IPIs).
void Arm64Mmu::kvm_flush_remote_tlbs(ExecContext& ctx) {
    ++stats_.remote_flushes;
    pgt_->kvm_tlb_flush_vmid(ctx);
}

void Arm64Mmu::kvm_arch_flush_shadow_memslot(const kvm_memory_slot& slot, ExecContext& ctx) {
    if (pkvm_) return;   // nothing leaves a protected VM's stage 2 before teardown
    pgt_->kvm_pgtable_stage2_unmap(gfn_to_gpa(slot.base_gfn).raw(), slot.npages << kPageShift, ctx);
}

// kvm_arch_commit_memory_region(): enabling dirty logging write-protects the slot
// (kvm_mmu_wp_memory_region(), then a remote flush); blocks are split lazily on write
// faults (eager splitting is off by default: kvm->arch.mmu.split_page_chunk_size == 0).
void Arm64Mmu::kvm_mmu_slot_apply_flags(const kvm_memory_slot& slot, uint32_t old_flags, ExecContext& ctx) {
    const bool now = slot.flags & uapi::KVM_MEM_LOG_DIRTY_PAGES, before = old_flags & uapi::KVM_MEM_LOG_DIRTY_PAGES;
    if (!now || before) return;
    pgt_->kvm_pgtable_stage2_wrprotect(gfn_to_gpa(slot.base_gfn).raw(), slot.npages << kPageShift, ctx);
    kvm_flush_remote_tlbs(ctx);
}

void Arm64Mmu::kvm_arch_mmu_enable_log_dirty_pt_masked(const kvm_memory_slot& slot, uint64_t gfn_offset,
                                                       uint64_t mask, ExecContext& ctx) {
    for (unsigned i = 0; i < 64; ++i)
        if (mask & (1ull << i))
            pgt_->kvm_pgtable_stage2_wrprotect(gfn_to_gpa(slot.base_gfn + gfn_offset + i).raw(), kPageSize, ctx);
}

}  // namespace hvsim::kvm::arm64
