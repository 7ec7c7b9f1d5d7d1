// SNP AP creation (arch/x86/kvm/svm/sev.c): the guest names a page it turned into a VMSA
// (RMPADJUST with the VMSA bit) in an AP Creation VMGEXIT; KVM checks the request, records
// the gPA and asks the target vCPU to load it before its next entry, where VMRUN checks the
// page in the RMP.
#include "kernel/guest_memfd.hpp"
#include "kernel/kvm.hpp"
#include "kernel/svm/sev_snp.hpp"

namespace hvsim::kvm {

namespace {
constexpr uint64_t kPmdSize = 2ull << 20;
}

// sev_snp_ap_creation(): the request in SW_EXITINFO1[31:0], the APIC ID in [63:32], the
// VMSA's gPA in SW_EXITINFO2. Every refusal is -EINVAL (vcpu_unimpl() in Linux).
int SevSnpOps::sev_snp_ap_creation(Kvm& kvm, unsigned, uint64_t info1, uint64_t info2, uint64_t rax) {
    const uint32_t request = uint32_t(info1);
    const uint64_t apic_id = info1 >> 32;
    // kvm_get_vcpu_by_id(): hvsim's vCPUs have APIC ID = vCPU index.
    if (apic_id >= vcpus_.size()) return -EINVAL;
    SnpVcpu& t = vcpus_[apic_id];
    switch (request) {
    case SVM_VMGEXIT_AP_CREATE_ON_INIT:
    case SVM_VMGEXIT_AP_CREATE: {
        if (rax != SVM_SEV_FEAT_SNP_ACTIVE) return -EINVAL;   // mismatched AP sev_features
        // page_address_valid(): page aligned and below the guest's MAXPHYADDR.
        const unsigned bits = kvm.config().maxphyaddr;
        if (!is_aligned(info2, kPageSize) || (bits < 64 && (info2 >> bits) != 0)) return -EINVAL;
        // A 2M-aligned VMSA could meet the erratum where a hugepage colliding with the
        // VMSA's RMP entry signals a spurious RMP #PF: refused.
        if (is_aligned(info2, kPmdSize)) return -EINVAL;
        t.snp_vmsa_gpa = Gpa(info2);
        break;
    }
    case SVM_VMGEXIT_AP_DESTROY:
        t.snp_vmsa_gpa.reset();
        break;
    default:
        return -EINVAL;
    }
    t.snp_ap_waiting_for_reset = true;
    // AP_CREATE_ON_INIT waits for the INIT the guest sends; the others load at once
    // (kvm_make_request(KVM_REQ_UPDATE_PROTECTED_GUEST_STATE) + kick).
    if (request != SVM_VMGEXIT_AP_CREATE_ON_INIT) t.update_protected_guest_state = true;
    return 0;
}

std::optional<KvmArchOps::VmgexitResult> SevSnpOps::handle_vmgexit(Kvm& kvm, unsigned vcpu, uint64_t exit_code,
                                                                   uint64_t info1, uint64_t info2, uint64_t rax,
                                                                   ExecContext&) {
    if (exit_code != SVM_VMGEXIT_AP_CREATION) return std::nullopt;
    ++stats_.ap_creation;
    VmgexitResult r;
    // sev_handle_vmgexit(): a refused request is reported in the GHCB, the guest resumes.
    if (sev_snp_ap_creation(kvm, vcpu, info1, info2, rax)) {
        ++stats_.ap_creation_refused;
        r.sw_exit_info_1 = GHCB_HV_RESP_ISSUE;
        r.sw_exit_info_2 = GHCB_ERR_INVALID_INPUT;
    }
    return r;
}

// sev_snp_init_protected_guest_state(): the vCPU stops using its VMSA; if the guest named a
// new one, its pfn comes from guest_memfd (the VMSA is private memory) and the vCPU is
// runnable again.
void SevSnpOps::sev_snp_init_protected_guest_state(Kvm& kvm, SnpVcpu& v, ExecContext& ctx) {
    if (!v.snp_ap_waiting_for_reset) return;
    v.snp_ap_waiting_for_reset = false;
    v.halted = true;           // kvm_set_mp_state(KVM_MP_STATE_HALTED)
    v.vmsa_pa.reset();         // vmcb->control.vmsa_pa = INVALID_PAGE
    if (!v.snp_vmsa_gpa) return;
    const Gfn gfn = gpa_to_gfn(*v.snp_vmsa_gpa);
    v.snp_vmsa_gpa.reset();
    const kvm_memory_slot* slot = kvm.gfn_to_memslot(0, gfn);
    if (!slot || !slot->gmem.file) return;
    Pfn pfn;
    int order = 0;
    if (kvm_gmem_get_pfn(kvm, *slot, gfn, pfn, order, ctx)) return;
    v.has_guest_vmsa = true;
    v.vmsa_pa = pfn;
    v.halted = false;          // KVM_MP_STATE_RUNNABLE
    ++stats_.vmsa_loads;
}

KvmArchOps::EntryResult SevSnpOps::vcpu_enter_guest(Kvm& kvm, unsigned vcpu, ExecContext& ctx) {
    if (vcpu >= vcpus_.size()) return EntryResult::run;
    SnpVcpu& v = vcpus_[vcpu];
    if (v.update_protected_guest_state) {
        v.update_protected_guest_state = false;
        sev_snp_init_protected_guest_state(kvm, v, ctx);
    }
    if (v.halted) return EntryResult::halted;
    if (!v.has_guest_vmsa) return EntryResult::run;   // the VMSA KVM measured at launch
    // VMRUN's checks of an SNP-active guest's VMSA (APM vol. 2 Table 15-41): RMP-Covered,
    // Guest-Owned, Mutable, a 4K entry, and the VMSA bit; else VMEXIT_INVALID. The
    // Reverse-Map comparand of a VMSA named by its system address is not documented: the
    // entry's GPA is not compared (estimate).
    PgLevel level = PgLevel::k4K;
    const rmp::RmpEntry e = rmp_.covered(*v.vmsa_pa) ? rmp_.lookup(*v.vmsa_pa, &level) : rmp::RmpEntry{};
    if (!e.assigned || e.asid != asid_ || e.immutable || level != PgLevel::k4K || !e.vmsa) {
        ++stats_.fail_entry;
        return EntryResult::fail_entry;
    }
    return EntryResult::run;
}

}  // namespace hvsim::kvm
