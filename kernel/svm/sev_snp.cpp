#include "kernel/svm/sev_snp.hpp"

#include <cerrno>

#include "kernel/guest_memfd.hpp"
#include "kernel/kvm.hpp"

namespace hvsim::kvm {

namespace {
constexpr uint64_t kPtrsPerPmd = 512;
constexpr uint64_t align_down_pmd(uint64_t x) { return x & ~(kPtrsPerPmd - 1); }
// RMPUPDATE_FAIL_OVERLAP is transient in Linux's view ("would get resolved relatively
// quickly by the firmware", arch/x86/virt/svm/sev.c rmpupdate()); the model's overlaps are
// persistent, so the retry loop is bounded here to surface a KVM bug instead of spinning.
constexpr unsigned kOverlapRetries = 8;
}  // namespace

SevSnpOps::SevSnpOps(rmp::Rmp& rmp, uint16_t asid, const SnpCosts& costs)
    : base_(kvm_default_arch_ops(VmType::snp)), rmp_(rmp), asid_(asid), costs_(costs) {}

std::vector<std::string> SevSnpOps::unmodelled(HostPaging) const {   // installed on AMD hosts only
    std::vector<std::string> w;
    // The RMP, its checks and instructions, KVM's gmem hooks and the guest's validation
    // are modelled; what is not:
    w.emplace_back("SNP launch partly modelled: each vCPU's VMSA is measured as a zero page (register state not "
                   "modelled), the SECRETS page holds no key material and the CPUID page is not checked by the "
                   "firmware; a run without snp_launch_* steps never finishes a launch, so KVM_PRE_FAULT_MEMORY "
                   "stays refused");
    w.emplace_back("SNP gaps: 2 MiB guest_memfd folios (2M RMP entries, PSMASH) only as the gmem.max_order=9 what-if "
                   "(upstream guest_memfd is 4K), no RMP check of device DMA (IOMMU); VMPLs: the guest kernel runs "
                   "at VMPL0 without an SVSM, so RMPADJUST only sets and clears the VMSA bit of an AP's VMSA "
                   "(snp_ap_create steps) and no VMPL1-3 software or RMPQUERY runs; an AP's VMSA register "
                   "contents are not modelled and AP_CREATE_ON_INIT's INIT is not sent");
    return w;
}

int SevSnpOps::rmpupdate(Pfn pfn, const rmp::RmpState& st, ExecContext& ctx) {
    for (unsigned tries = 0;; ++tries) {
        ctx.charge("rmpupdate", costs_.rmpupdate);
        const int rc = rmp_.rmpupdate(pfn_to_hpa(pfn), st);
        if (rc != rmp::RMP_FAIL_OVERLAP || tries + 1 == kOverlapRetries) return rc;
    }
}

// rmp_make_private(): assigned, this ASID, the page's GPA. A 2M level needs a 2M-aligned
// PFN (the wrapper returns -EFAULT before executing otherwise).
int SevSnpOps::rmp_make_private(Pfn pfn, Gpa gpa, PgLevel level, bool immutable, ExecContext& ctx) {
    if (level == PgLevel::k2M && !is_aligned(pfn.raw(), kPtrsPerPmd)) return -EFAULT;
    const int rc = rmpupdate(pfn, rmp::RmpState{gpa, true, level, immutable, asid_}, ctx);
    return rc ? -EFAULT : 0;
}

// rmp_make_shared(): the all-zero state (hypervisor-owned) at the page's size.
int SevSnpOps::rmp_make_shared(Pfn pfn, PgLevel level, ExecContext& ctx) {
    if (level == PgLevel::k2M && !is_aligned(pfn.raw(), kPtrsPerPmd)) return -EFAULT;
    const int rc = rmpupdate(pfn, rmp::RmpState{Gpa(0), false, level, false, 0}, ctx);
    return rc ? -EFAULT : 0;
}

int SevSnpOps::snp_rmptable_psmash(Pfn pfn, ExecContext& ctx) {
    const Pfn head(align_down_pmd(pfn.raw()));
    for (;;) {
        ctx.charge("psmash", costs_.psmash);
        const int rc = rmp_.psmash(pfn_to_hpa(head));
        if (rc != rmp::RMP_FAIL_INUSE) return rc;
    }
}

// is_large_rmp_possible(): a folio of order >= 9 whose 2 MB of PFNs are all unassigned.
// With huge folios (gmem.max_order 9) the 2 MB of gfns must also all be private: a 2M
// guest-owned entry over a gfn the guest uses shared would fault its shared accesses.
bool SevSnpOps::is_large_rmp_possible(Kvm& kvm, Pfn pfn, Gfn gfn, int order) const {
    if (order < 9) return false;
    if ((pfn.raw() ^ gfn.raw()) & (kPtrsPerPmd - 1)) return false;
    const uint64_t h = align_down_pmd(pfn.raw());
    for (uint64_t p = h; p < h + kPtrsPerPmd; ++p)
        if (rmp_.lookup(Pfn(p)).assigned) return false;
    const Gfn g(align_down_pmd(gfn.raw()));
    return kvm.kvm_range_has_memory_attributes(g, g + kPtrsPerPmd, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE,
                                               uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE);
}

// sev_gmem_prepare(): make the page guest-owned (Guest-Invalid) before KVM maps it
// private; the guest validates it with PVALIDATE. Idempotent for an assigned page.
int SevSnpOps::gmem_prepare(Kvm& kvm, Pfn pfn, Gfn gfn, int order, ExecContext& ctx) {
    // A guest_memfd page mapped shared (in-place conversion: the file backs both kinds)
    // stays hypervisor-owned; the in-place conversion series prepares private pages only.
    if (!kvm.kvm_mem_is_private(gfn)) return 0;
    if (!rmp_.covered(pfn)) return -ENOENT;   // snp_lookup_rmpentry() failed
    if (rmp_.lookup(pfn).assigned) return 0;
    PgLevel level = PgLevel::k4K;
    Pfn p = pfn;
    Gfn g = gfn;
    if (is_large_rmp_possible(kvm, pfn, gfn, order)) {
        level = PgLevel::k2M;
        p = Pfn(align_down_pmd(pfn.raw()));
        g = Gfn(align_down_pmd(gfn.raw()));
    }
    if (rmp_make_private(p, gfn_to_gpa(g), level, false, ctx)) {
        ++stats_.rmpupdate_failures;
        return -EINVAL;
    }
    ++stats_.prepare_rmpupdates;
    if (level == PgLevel::k2M) ++stats_.prepare_2m;
    return 0;
}

// sev_gmem_invalidate(): pages leaving private use go back to the hypervisor, with a
// CLFLUSH of each (guest_memfd pages are not covered by the SEV-ES MMU-notifier WBINVD).
void SevSnpOps::gmem_invalidate(Kvm&, Pfn start, Pfn end, ExecContext& ctx) {
    for (uint64_t p = start.raw(); p < end.raw();) {
        PgLevel level;
        if (!rmp_.covered(Pfn(p))) {
            ++p;
            continue;
        }
        const rmp::RmpEntry e = rmp_.lookup(Pfn(p), &level);
        if (!e.assigned) {
            ++p;
            continue;
        }
        uint64_t n = 1;
        if (level == PgLevel::k2M && is_aligned(p, kPtrsPerPmd) && p + kPtrsPerPmd <= end.raw()) {
            n = kPtrsPerPmd;
        } else if (level == PgLevel::k2M) {
            // A 4K page out of a 2M entry: split the entry first (WARN on failure, go on).
            if (snp_rmptable_psmash(Pfn(p), ctx)) ++stats_.rmpupdate_failures;
            level = PgLevel::k4K;
        }
        if (rmp_make_shared(Pfn(p), level, ctx)) {
            // A failed RMPUPDATE is a WARN and the loop goes on (goto next_pfn): no flush, and
            // the folio is still freed by the page cache after this hook returns.
            ++stats_.rmpupdate_failures;
        } else {
            ++stats_.invalidate_rmpupdates;
            ctx.charge("clflush", costs_.clflush_4k * n);
        }
        p += n;
    }
}

// sev_handle_rmp_fault(): called after the fault path returned to the guest for an NPF
// with PFERR_GUEST_RMP. The case KVM repairs is a 2M RMP entry under a smaller access
// (PVALIDATE/RMPADJUST 4K with SIZEM, or a 4K NPT leaf): PSMASH it and zap the 2 MB of
// the NPT so the next fault maps at 4K. Anything else is spurious or a VMM error.
void SevSnpOps::handle_rmp_fault(Kvm& kvm, Gpa gpa, uint64_t, ExecContext& ctx) {
    ++stats_.rmp_faults;
    const Gfn gfn = gpa_to_gfn(gpa);
    if (!kvm.kvm_mem_is_private(gfn)) return;   // "Unexpected RMP fault for non-private GPA"
    const kvm_memory_slot* slot = kvm.gfn_to_memslot(0, gfn);
    if (!slot || !slot->gmem.file) return;
    Pfn pfn;
    int order = 0;
    if (kvm_gmem_get_pfn(kvm, *slot, gfn, pfn, order, ctx)) return;
    PgLevel level;
    const rmp::RmpEntry e = rmp_.lookup(pfn, &level);
    if (!e.assigned || level == PgLevel::k4K) return;   // spurious (a concurrent PSMASH)
    const int rc = snp_rmptable_psmash(pfn, ctx);
    if (rc == 0) ++stats_.rmp_fault_psmash;
    // kvm_zap_gfn_range(gfn, gfn + PTRS_PER_PMD): the NPT stops mapping the 2 MB.
    const Gfn s(align_down_pmd(gfn.raw()));
    kvm_gfn_range r;
    r.slot = slot;
    r.start = s < slot->base_gfn ? slot->base_gfn : s;
    r.end = Gfn(std::min(s.raw() + kPtrsPerPmd, slot->base_gfn.raw() + slot->npages));
    if (kvm.mmu().kvm_unmap_gfn_range(r, ctx)) kvm.mmu().kvm_flush_remote_tlbs(ctx);
}

// sev_gmem_max_mapping_level(): a private NPT leaf never maps more than the RMP entry
// under it covers (else every access through it fails the Page-Size check); a page not
// yet assigned is mapped at 4K.
PgLevel SevSnpOps::gmem_max_mapping_level(const Kvm&, Pfn pfn) const {
    if (!rmp_.covered(pfn)) return PgLevel::k4K;
    PgLevel level = PgLevel::k4K;
    const rmp::RmpEntry e = rmp_.lookup(pfn, &level);
    return e.assigned ? level : PgLevel::k4K;
}

}  // namespace hvsim::kvm
