// KVM's side of an SEV-SNP guest's launch (arch/x86/kvm/svm/sev.c snp_launch_start(),
// snp_launch_update() -> kvm_gmem_populate() -> sev_gmem_post_populate(),
// snp_launch_update_vmsa(), snp_launch_finish()). The firmware's side, and the launch
// digest, are in models/psp/snp_firmware.hpp.
#include <cerrno>

#include "kernel/error_rule.hpp"
#include "kernel/guest_memfd.hpp"
#include "kernel/kvm.hpp"
#include "kernel/svm/sev_snp.hpp"

namespace hvsim::kvm {

namespace {
// KVM_SEV_SNP_PAGE_TYPE_* KVM accepts from userspace (VMSA pages are KVM's own, at finish).
bool snp_user_page_type(uint8_t t) {
    using psp::SnpPageType;
    return t == uint8_t(SnpPageType::normal) || t == uint8_t(SnpPageType::zero) ||
           t == uint8_t(SnpPageType::unmeasured) || t == uint8_t(SnpPageType::secrets) ||
           t == uint8_t(SnpPageType::cpuid);
}
}  // namespace

int SevSnpOps::snp_launch_start(Kvm&, uint64_t policy, uint32_t flags, int& fw_error, ExecContext&) {
    fw_error = 0;
    if (!fw_) return -ENOTTY;
    if (flags) return -EINVAL;
    // Only the policy bits KVM knows, and the reserved-must-be-one bit.
    if ((policy & ~SNP_POLICY_MASK_VALID) || !(policy & SNP_POLICY_MASK_RSVD_MBO))
        return error_rule(-EINVAL, "snp_launch_start(): policy outside SNP_POLICY_MASK_VALID or RSVD_MBO (bit 17) clear");
    // One guest context per VM ("if (sev->snp_context) return -EINVAL").
    if (fw_->state() != psp::SnpGuestState::none)
        return error_rule(-EINVAL, "snp_launch_start(): the VM already has an SNP guest context");
    fw_error = fw_->launch_start(asid_, policy);
    return fw_error ? -EIO : 0;
}

void SevSnpOps::snp_reclaim_and_share(Pfn pfn, ExecContext& ctx) {
    // snp_page_reclaim(): SNP_PAGE_RECLAIM turns the firmware-held page back into a
    // mutable guest page; kvm_rmp_make_shared() then gives it back to the hypervisor.
    rmp::RmpEntry e = rmp_.lookup(pfn);
    if (e.assigned && e.immutable) {
        e.immutable = false;
        rmp_.firmware_write_entry(pfn, e, "snp_page_reclaim");
    }
    if (rmp_make_shared(pfn, PgLevel::k4K, ctx)) ++stats_.rmpupdate_failures;
}

// sev_gmem_post_populate() for one 4K page: the RMP entry must be unassigned; KVM copies
// the source in (not for ZERO pages), makes the page private and immutable (Pre-Guest),
// and the firmware's SNP_LAUNCH_UPDATE measures and encrypts it (Guest-Valid).
int SevSnpOps::gmem_post_populate(Kvm& kvm, Gfn gfn, Pfn pfn, std::optional<Pfn> src, ExecContext& ctx) {
    if (!fw_) return -EOPNOTSUPP;
    if (!rmp_.covered(pfn)) return -EINVAL;          // snp_lookup_rmpentry() failed
    if (rmp_.lookup(pfn).assigned) return -EEXIST;   // "already assigned"
    if (src && populate_type_ != uint8_t(psp::SnpPageType::zero)) {
        // copy_from_user() into the kernel mapping of the gmem page.
        ctx.charge("copy", kvm.costs().copy_4k);
        uint8_t buf[kPageSize];
        mem_->read(pfn_to_hpa(*src), buf, kPageSize);
        mem_->write(pfn_to_hpa(pfn), buf, kPageSize);
    }
    if (rmp_make_private(pfn, gfn_to_gpa(gfn), PgLevel::k4K, /*immutable=*/true, ctx)) {
        ++stats_.rmpupdate_failures;
        return -EFAULT;
    }
    ctx.charge("snp_launch_update", costs_.launch_update);
    populate_fw_error_ = fw_->launch_update(pfn_to_hpa(pfn), psp::SnpPageType(populate_type_));
    if (populate_fw_error_) {
        // The firmware refused: reclaim the page and hand it back (the CPUID page's
        // copy-back to userspace on INVALID_PARAM is not modelled).
        snp_reclaim_and_share(pfn, ctx);
        return -EIO;
    }
    ++stats_.launch_pages;
    return 0;
}

int SevSnpOps::snp_launch_update(Kvm& kvm, KvmSevSnpLaunchUpdate& p, const std::vector<Pfn>& src, int& fw_error,
                                 ExecContext& ctx) {
    fw_error = 0;
    if (!fw_) return -ENOTTY;
    if (fw_->state() == psp::SnpGuestState::none)
        return error_rule(-EINVAL, "snp_launch_update(): no SNP guest context (SNP_LAUNCH_START first)");
    if (p.flags) return -EINVAL;
    if (!p.len || (p.len & kPageMask)) return error_rule(-EINVAL, "snp_launch_update(): len zero or not page aligned");
    if (!snp_user_page_type(p.type)) return error_rule(-EINVAL, "snp_launch_update(): page type not NORMAL, ZERO, UNMEASURED, SECRETS or CPUID");
    const kvm_memory_slot* slot = kvm.gfn_to_memslot(0, p.gfn_start);
    if (!slot || !slot->has_gmem()) return error_rule(-EINVAL, "snp_launch_update(): the gfn's memslot has no guest_memfd");
    populate_type_ = p.type;
    populate_fw_error_ = 0;
    // ZERO pages have no source (src = NULL in snp_launch_update()).
    static const std::vector<Pfn> kNone;
    const long count = kvm_gmem_populate(kvm, p.gfn_start, p.type == uint8_t(psp::SnpPageType::zero) ? kNone : src,
                                         long(p.len >> kPageShift), ctx);
    if (count < 0) {
        fw_error = populate_fw_error_;
        return error_rule(-EIO, "snp_launch_update(): kvm_gmem_populate() failed on the first page (page not private, "
                                "already prepared or populated, or refused by the firmware)");   // any populate failure is -EIO, the firmware's code in `error`
    }
    p.gfn_start = Gfn(p.gfn_start.raw() + uint64_t(count));
    p.len -= uint64_t(count) << kPageShift;
    return 0;
}

int SevSnpOps::snp_launch_finish(Kvm& kvm, const std::vector<Pfn>& vmsa_pages, uint32_t flags, int& fw_error,
                                 ExecContext& ctx) {
    fw_error = 0;
    if (!fw_) return -ENOTTY;
    if (fw_->state() == psp::SnpGuestState::none)
        return error_rule(-EINVAL, "snp_launch_finish(): no SNP guest context (SNP_LAUNCH_START first)");
    if (flags) return -EINVAL;
    if (fw_->state() == psp::SnpGuestState::running) {
        // A second finish: the firmware answers INVALID_GUEST_STATE (the model does not
        // redo the VMSA updates first).
        fw_error = fw_->launch_finish();
        return -EIO;
    }
    // snp_launch_update_vmsa(): each vCPU's VMSA (sev_es_sync_vmsa() wrote its register
    // state) becomes an immutable private page at SNP_INITIAL_VMSA_GPA and is measured.
    for (const Pfn pfn : vmsa_pages) {
        if (rmp_make_private(pfn, Gpa(SNP_INITIAL_VMSA_GPA), PgLevel::k4K, true, ctx)) {
            ++stats_.rmpupdate_failures;
            return -EFAULT;
        }
        ctx.charge("snp_launch_update", costs_.launch_update);
        fw_error = fw_->launch_update(pfn_to_hpa(pfn), psp::SnpPageType::vmsa);
        if (fw_error) {
            snp_reclaim_and_share(pfn, ctx);
            return -EIO;
        }
        ++stats_.launch_pages;
    }
    fw_error = fw_->launch_finish();
    if (fw_error) return -EIO;
    kvm.pre_fault_allowed = true;
    return 0;
}

}  // namespace hvsim::kvm
