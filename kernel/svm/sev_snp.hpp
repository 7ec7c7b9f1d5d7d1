// KVM's SEV-SNP backend (arch/x86/kvm/svm/sev.c) over the RMP hardware model: guest_memfd
// pages become guest-owned with RMPUPDATE when they are prepared for a private mapping
// (sev_gmem_prepare), hypervisor-owned again when they are freed or converted to shared
// (sev_gmem_invalidate, with the CLFLUSH Linux does), and an NPF that carries the RMP bit
// splits a 2M RMP entry (sev_handle_rmp_fault). KVM reaches the RMP only through its
// instructions and, like Linux's __snp_lookup_rmpentry, by reading the table.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernel/kvm_arch_ops.hpp"
#include "models/psp/snp_firmware.hpp"
#include "models/rmp/rmp.hpp"

namespace hvsim::kvm {

// Cycle costs of the host-side RMP instructions and SNP exit overheads (platform preset).
struct SnpCosts {
    Cycles rmpupdate = 0;     // cost.rmpupdate
    Cycles psmash = 0;        // cost.psmash
    Cycles clflush_4k = 0;    // cost.clflush_4k (KvmCosts)
    Cycles ae_exit = 0;       // cost.snp_ae_exit: extra of an SEV-ES/SNP automatic exit over a plain one
    Cycles launch_update = 0; // cost.snp_launch_update: the SEV firmware's SNP_LAUNCH_UPDATE of one 4K page
};

// KVM_SEV_SNP_LAUNCH_UPDATE's argument (struct kvm_sev_snp_launch_update, uapi kvm.h); the
// source buffer (uaddr) is passed as its pages. gfn_start and len advance on partial progress.
struct KvmSevSnpLaunchUpdate {
    Gfn gfn_start;
    uint64_t len = 0;
    uint8_t type = 0;         // KVM_SEV_SNP_PAGE_TYPE_*: NORMAL 1, ZERO 3, UNMEASURED 4, SECRETS 5, CPUID 6
    uint32_t flags = 0;
};
// KVM_SEV_SNP_LAUNCH_START's policy bits KVM accepts (svm/sev.c SNP_POLICY_MASK_VALID) and
// the one that must be set (SNP_POLICY_MASK_RSVD_MBO, bit 17).
inline constexpr uint64_t SNP_POLICY_MASK_API_MINOR = 0xff, SNP_POLICY_MASK_API_MAJOR = 0xff00,
                          SNP_POLICY_MASK_SMT = 1ull << 16, SNP_POLICY_MASK_RSVD_MBO = 1ull << 17,
                          SNP_POLICY_MASK_DEBUG = 1ull << 19, SNP_POLICY_MASK_SINGLE_SOCKET = 1ull << 20;
inline constexpr uint64_t SNP_POLICY_MASK_VALID = SNP_POLICY_MASK_API_MINOR | SNP_POLICY_MASK_API_MAJOR |
                                                  SNP_POLICY_MASK_SMT | SNP_POLICY_MASK_RSVD_MBO |
                                                  SNP_POLICY_MASK_DEBUG | SNP_POLICY_MASK_SINGLE_SOCKET;
// The GPA KVM gives a vCPU's VMSA page in the RMP at launch finish (svm/sev.c).
inline constexpr uint64_t SNP_INITIAL_VMSA_GPA = 0xFFFFFFFFF000ull;

// The SEV-SNP AP Creation NAE event (GHCB specification; arch/x86/include/asm/svm.h,
// sev-common.h): SW_EXITCODE, the request in SW_EXITINFO1[31:0] (APIC ID in [63:32]), the
// VMSA's gPA in SW_EXITINFO2, the guest's SEV features in RAX.
inline constexpr uint64_t SVM_VMGEXIT_AP_CREATION = 0x80000013ull;
inline constexpr uint32_t SVM_VMGEXIT_AP_CREATE_ON_INIT = 0, SVM_VMGEXIT_AP_CREATE = 1, SVM_VMGEXIT_AP_DESTROY = 2;
// KVM's error answer in the GHCB: SW_EXITINFO1 = 2 (error), SW_EXITINFO2 = the reason.
inline constexpr uint64_t GHCB_HV_RESP_ISSUE = 2, GHCB_ERR_INVALID_INPUT = 5;
// SEV_FEATURES the VMSAs of an SNP guest carry (SVM_SEV_FEAT_SNP_ACTIVE): KVM refuses an AP
// whose RAX differs from the VM's (sev->vmsa_features).
inline constexpr uint64_t SVM_SEV_FEAT_SNP_ACTIVE = 1;

struct SnpStats {
    uint64_t prepare_rmpupdates = 0;   // sev_gmem_prepare -> rmp_make_private
    uint64_t prepare_2m = 0;           // of those, 2M entries
    uint64_t invalidate_rmpupdates = 0;
    uint64_t rmp_faults = 0;           // NPFs with PFERR_GUEST_RMP handed to sev_handle_rmp_fault
    uint64_t rmp_fault_psmash = 0;
    uint64_t rmpupdate_failures = 0;   // pages leaked (snp_leak_pages) or prepare errors
    uint64_t launch_pages = 0;         // pages SNP_LAUNCH_UPDATE put in (vCPU VMSAs included)
    uint64_t ap_creation = 0;          // AP Creation VMGEXITs handled (any request)
    uint64_t ap_creation_refused = 0;  // ... answered with a GHCB error
    uint64_t vmsa_loads = 0;           // guest-named VMSAs loaded (sev_snp_init_protected_guest_state)
    uint64_t fail_entry = 0;           // VMRUNs refused because the VMSA page failed the RMP checks
};

class SevSnpOps final : public KvmArchOps {
public:
    SevSnpOps(rmp::Rmp& rmp, uint16_t asid, const SnpCosts& costs);

    // The answers of the built-in snp backend (uAPI behaviour is unchanged).
    VmType type() const override { return base_.type(); }
    bool has_private_mem() const override { return base_.has_private_mem(); }
    bool has_protected_state() const override { return base_.has_protected_state(); }
    bool pre_fault_allowed_initially() const override { return base_.pre_fault_allowed_initially(); }
    bool supported_by(const KvmConfig& c) const override { return base_.supported_by(c); }
    bool sev_guest() const override { return true; }
    bool fault_is_private(const Kvm& k, Gfn g, uint64_t ec) const override { return base_.fault_is_private(k, g, ec); }
    std::vector<std::string> unmodelled(HostPaging host) const override;

    int gmem_prepare(Kvm& kvm, Pfn pfn, Gfn gfn, int order, ExecContext& ctx) override;
    void gmem_invalidate(Kvm& kvm, Pfn start, Pfn end, ExecContext& ctx) override;
    void handle_rmp_fault(Kvm& kvm, Gpa gpa, uint64_t error_code, ExecContext& ctx) override;
    Cycles exit_extra_cycles() const override { return costs_.ae_exit; }
    // The guest's encrypted pages are those the RMP assigns to its ASID (Rmp::encrypted()).
    const EncryptedPages* encrypted_pages(const Kvm&) const override { return &rmp_; }
    // sev_gmem_max_mapping_level(): the RMP entry's level if the page is assigned, else 4K.
    PgLevel gmem_max_mapping_level(const Kvm& kvm, Pfn pfn) const override;

    // SNP AP creation (sev_snp_ap_creation(), sev_snp_init_protected_guest_state()).
    std::optional<VmgexitResult> handle_vmgexit(Kvm& kvm, unsigned vcpu, uint64_t exit_code, uint64_t info1,
                                                uint64_t info2, uint64_t rax, ExecContext& ctx) override;
    EntryResult vcpu_enter_guest(Kvm& kvm, unsigned vcpu, ExecContext& ctx) override;
    // The VM's vCPUs (kvm_get_vcpu_by_id() answers for APIC IDs below this).
    void set_nr_vcpus(unsigned n) { vcpus_.resize(n); }
    // sev_snp_ap_creation(): 0, or -EINVAL (KVM then answers the guest with a GHCB error).
    int sev_snp_ap_creation(Kvm& kvm, unsigned vcpu, uint64_t info1, uint64_t info2, uint64_t rax);
    // The VMSA a vCPU runs from: nullopt while it uses the one KVM built at launch.
    std::optional<Pfn> guest_vmsa(unsigned vcpu) const {
        return vcpu < vcpus_.size() ? vcpus_[vcpu].vmsa_pa : std::nullopt;
    }

    uint16_t asid() const { return asid_; }
    const SnpStats& stats() const { return stats_; }

    // ---- launch (kernel/svm/sev_snp_launch.cpp) ----
    // The SEV firmware this VM's launch commands go to and the memory KVM copies the
    // source through (set by the platform when it creates the VM).
    void set_firmware(psp::SnpFirmware& fw, PhysMem& mem) {
        fw_ = &fw;
        mem_ = &mem;
    }
    const psp::SnpFirmware* firmware() const { return fw_; }
    // KVM_SEV_SNP_LAUNCH_START (snp_launch_start()): flags 0, policy within
    // SNP_POLICY_MASK_VALID with RSVD_MBO set, one context per VM; else -EINVAL.
    int snp_launch_start(Kvm& kvm, uint64_t policy, uint32_t flags, int& fw_error, ExecContext& ctx);
    // KVM_SEV_SNP_LAUNCH_UPDATE (snp_launch_update()): kvm_gmem_populate() with
    // sev_gmem_post_populate() per page. 0 with the arguments advanced by the pages done;
    // -EINVAL for bad arguments; -EIO (fw_error set when the firmware refused) when the
    // first page failed.
    int snp_launch_update(Kvm& kvm, KvmSevSnpLaunchUpdate& p, const std::vector<Pfn>& src, int& fw_error,
                          ExecContext& ctx);
    // KVM_SEV_SNP_LAUNCH_FINISH (snp_launch_finish()): every vCPU's VMSA page (one per
    // vCPU, given by the platform) made private and measured, SNP_LAUNCH_FINISH, then
    // pre-fault is allowed.
    int snp_launch_finish(Kvm& kvm, const std::vector<Pfn>& vmsa_pages, uint32_t flags, int& fw_error,
                          ExecContext& ctx);
    // sev_gmem_post_populate() for one page.
    int gmem_post_populate(Kvm& kvm, Gfn gfn, Pfn pfn, std::optional<Pfn> src, ExecContext& ctx) override;

private:
    // arch/x86/virt/svm/sev.c wrappers: RMPUPDATE with the FAIL_OVERLAP retry loop.
    int rmp_make_private(Pfn pfn, Gpa gpa, PgLevel level, bool immutable, ExecContext& ctx);
    int rmp_make_shared(Pfn pfn, PgLevel level, ExecContext& ctx);
    int rmpupdate(Pfn pfn, const rmp::RmpState& st, ExecContext& ctx);
    // kvm/svm/sev.c snp_rmptable_psmash(): PSMASH, retried while FAIL_INUSE.
    int snp_rmptable_psmash(Pfn pfn, ExecContext& ctx);
    bool is_large_rmp_possible(Kvm& kvm, Pfn pfn, Gfn gfn, int order) const;

    // snp_page_reclaim() + the make-shared of a page the firmware refused.
    void snp_reclaim_and_share(Pfn pfn, ExecContext& ctx);

    // svm->sev_es's AP-creation state of one vCPU.
    struct SnpVcpu {
        std::optional<Gpa> snp_vmsa_gpa;         // INVALID_PAGE when nullopt
        bool snp_ap_waiting_for_reset = false;
        bool update_protected_guest_state = false;   // KVM_REQ_UPDATE_PROTECTED_GUEST_STATE
        bool has_guest_vmsa = false;             // snp_has_guest_vmsa: the VMSA is a guest page
        std::optional<Pfn> vmsa_pa;              // the guest page VMRUN uses (has_guest_vmsa)
        bool halted = false;                     // KVM_MP_STATE_HALTED: no VMSA to run
    };
    // sev_snp_init_protected_guest_state().
    void sev_snp_init_protected_guest_state(Kvm& kvm, SnpVcpu& v, ExecContext& ctx);
    std::vector<SnpVcpu> vcpus_;

    psp::SnpFirmware* fw_ = nullptr;
    PhysMem* mem_ = nullptr;
    uint8_t populate_type_ = 0;        // sev_populate_args: the type of the update in progress
    int populate_fw_error_ = 0;        // ... and the firmware's answer
    KvmArchOps& base_;
    rmp::Rmp& rmp_;
    uint16_t asid_;
    SnpCosts costs_;
    SnpStats stats_;
};

}  // namespace hvsim::kvm
