// KVM's SEV-SNP backend (arch/x86/kvm/svm/sev.c) over the RMP hardware model: guest_memfd
// pages become guest-owned with RMPUPDATE when they are prepared for a private mapping
// (sev_gmem_prepare), hypervisor-owned again when they are freed or converted to shared
// (sev_gmem_invalidate, with the CLFLUSH Linux does), and an NPF that carries the RMP bit
// splits a 2M RMP entry (sev_handle_rmp_fault). KVM reaches the RMP only through its
// instructions and, like Linux's __snp_lookup_rmpentry, by reading the table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernel/kvm_arch_ops.hpp"
#include "models/rmp/rmp.hpp"

namespace hvsim::kvm {

// Cycle costs of the host-side RMP instructions and SNP exit overheads (platform preset).
struct SnpCosts {
    Cycles rmpupdate = 0;     // cost.rmpupdate
    Cycles psmash = 0;        // cost.psmash
    Cycles clflush_4k = 0;    // cost.clflush_4k (KvmCosts)
    Cycles ae_exit = 0;       // cost.snp_ae_exit: extra of an SEV-ES/SNP automatic exit over a plain one
};

struct SnpStats {
    uint64_t prepare_rmpupdates = 0;   // sev_gmem_prepare -> rmp_make_private
    uint64_t prepare_2m = 0;           // of those, 2M entries
    uint64_t invalidate_rmpupdates = 0;
    uint64_t rmp_faults = 0;           // NPFs with PFERR_GUEST_RMP handed to sev_handle_rmp_fault
    uint64_t rmp_fault_psmash = 0;
    uint64_t rmpupdate_failures = 0;   // pages leaked (snp_leak_pages) or prepare errors
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
    // sev_gmem_max_mapping_level(): the RMP entry's level if the page is assigned, else 4K.
    PgLevel gmem_max_mapping_level(const Kvm& kvm, Pfn pfn) const override;

    uint16_t asid() const { return asid_; }
    const SnpStats& stats() const { return stats_; }

private:
    // arch/x86/virt/svm/sev.c wrappers: RMPUPDATE with the FAIL_OVERLAP retry loop.
    int rmp_make_private(Pfn pfn, Gpa gpa, PgLevel level, bool immutable, ExecContext& ctx);
    int rmp_make_shared(Pfn pfn, PgLevel level, ExecContext& ctx);
    int rmpupdate(Pfn pfn, const rmp::RmpState& st, ExecContext& ctx);
    // kvm/svm/sev.c snp_rmptable_psmash(): PSMASH, retried while FAIL_INUSE.
    int snp_rmptable_psmash(Pfn pfn, ExecContext& ctx);
    bool is_large_rmp_possible(Kvm& kvm, Pfn pfn, Gfn gfn, int order) const;

    KvmArchOps& base_;
    rmp::Rmp& rmp_;
    uint16_t asid_;
    SnpCosts costs_;
    SnpStats stats_;
};

}  // namespace hvsim::kvm
