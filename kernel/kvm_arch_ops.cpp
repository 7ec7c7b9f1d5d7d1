#include "kernel/kvm_arch_ops.hpp"

#include "kernel/kvm.hpp"
#include "kernel/uapi.hpp"

namespace hvsim::kvm {

const char* vm_type_name(VmType t) {
    switch (t) {
    case VmType::default_vm: return "default";
    case VmType::sw_protected: return "sw_protected";
    case VmType::sev: return "sev";
    case VmType::sev_es: return "sev_es";
    case VmType::snp: return "snp";
    case VmType::tdx: return "tdx";
    case VmType::pkvm: return "pkvm";
    }
    return "?";
}

std::optional<VmType> vm_type_from_name(std::string_view n) {
    for (VmType t : kAllVmTypes)
        if (n == vm_type_name(t)) return t;
    return std::nullopt;
}

uint64_t vm_type_uapi(VmType t) {
    switch (t) {
    case VmType::default_vm: return uapi::KVM_X86_DEFAULT_VM;
    case VmType::sw_protected: return uapi::KVM_X86_SW_PROTECTED_VM;
    case VmType::sev: return uapi::KVM_X86_SEV_VM;
    case VmType::sev_es: return uapi::KVM_X86_SEV_ES_VM;
    case VmType::snp: return uapi::KVM_X86_SNP_VM;
    case VmType::tdx: return uapi::KVM_X86_TDX_VM;
    case VmType::pkvm: return KVM_VM_TYPE_ARM_PROTECTED;
    }
    return ~0ull;
}

std::optional<VmType> vm_type_from_uapi(uint64_t type) {
    for (VmType t : kAllVmTypes)
        if (vm_type_uapi(t) == type) return t;
    return std::nullopt;
}

const char* content_policy_name(ContentPolicy p) {
    switch (p) {
    case ContentPolicy::zero: return "zero";
    case ContentPolicy::preserve: return "preserve";
    case ContentPolicy::none: return "none";
    }
    return "?";
}

bool KvmArchOps::supports_content_policy(ContentPolicy p, bool to_private) const {
    switch (p) {
    case ContentPolicy::zero: return !to_private;   // guests must not trust host zeroing
    case ContentPolicy::preserve: return false;     // encrypted memory cannot be preserved
    case ContentPolicy::none: return true;
    }
    return false;
}

// A default VM runs on whichever stage-2 / nested paging the preset has (arm64 presets
// run KVM/arm64's stage 2; the platform refuses x86-only VM types there).
std::vector<std::string> KvmArchOps::unmodelled(HostPaging) const { return {}; }

namespace {

// One sentence for a VM type that needs one vendor's hardware on a preset of another.
std::string wrong_vendor(const char* type, const char* needs, HostPaging host) {
    const char* has = host == HostPaging::amd_npt ? "an AMD preset (NPT)"
                      : host == HostPaging::intel_ept ? "an Intel preset (EPT)"
                                                      : "an arm64 preset";
    return std::string("a ") + type + " VM on " + has + ": real " + type + " needs " + needs +
           "; the run uses the preset's nested paging and costs";
}

// KVM_X86_DEFAULT_VM: everything shared; gmem-only slots served from guest_memfd.
class DefaultVmOps final : public KvmArchOps {
public:
    VmType type() const override { return VmType::default_vm; }
    bool has_private_mem() const override { return false; }
    bool has_protected_state() const override { return false; }
    bool pre_fault_allowed_initially() const override { return true; }
    bool supported_by(const KvmConfig&) const override { return true; }
};

// KVM_X86_SW_PROTECTED_VM: the testing vehicle. Private memory without encryption, so it
// honours every content policy and scribbles 0xab for NONE (the KVM_SET_MEMORY_ATTRIBUTES2 content-policy series).
class SwProtectedVmOps final : public KvmArchOps {
public:
    VmType type() const override { return VmType::sw_protected; }
    bool has_private_mem() const override { return true; }
    bool has_protected_state() const override { return false; }
    bool pre_fault_allowed_initially() const override { return true; }
    // x86.c kvm_is_vm_type_supported(): CONFIG_KVM_SW_PROTECTED_VM and the TDP MMU.
    bool supported_by(const KvmConfig& c) const override { return c.sw_protected_vm && c.tdp; }
    bool supports_content_policy(ContentPolicy, bool) const override { return true; }
    std::optional<uint8_t> none_policy_fill() const override { return uint8_t{0xab}; }
    // KVM synthesizes PFERR_PRIVATE_ACCESS from the attributes (never a mismatch).
    bool fault_is_private(const Kvm& k, Gfn g, uint64_t) const override { return k.kvm_mem_is_private(g); }
};

// KVM_X86_SEV_VM / SEV_ES_VM: legacy SEV, no private-memory tracking in KVM; memory is
// pinned up front through KVM_MEMORY_ENCRYPT_REG_REGION (svm/sev.c).
class SevVmOps final : public KvmArchOps {
public:
    explicit SevVmOps(bool es) : es_(es) {}
    VmType type() const override { return es_ ? VmType::sev_es : VmType::sev; }
    bool has_private_mem() const override { return false; }
    bool has_protected_state() const override { return es_; }
    bool pre_fault_allowed_initially() const override { return true; }   // !has_private_mem
    // SEV needs NPT; SEV-ES needs SEV (sev_hardware_setup()).
    bool supported_by(const KvmConfig& c) const override {
        return c.tdp && c.sev && (!es_ || c.sev_es);
    }
    bool sev_guest() const override { return true; }
    // The guest's encrypted memory as KVM knows it: the pages the VMM registered (and KVM
    // pinned) with KVM_MEMORY_ENCRYPT_REG_REGION, which the guest reaches with the C-bit
    // set, its page tables included (sev_pin_memory()).
    const EncryptedPages* encrypted_pages(const Kvm& k) const override { return &k.sev_encrypted_pages(); }
    std::vector<std::string> unmodelled(HostPaging host) const override {
        std::vector<std::string> w;
        if (es_)
            w.emplace_back("SEV-ES exits not modelled: no #VC / VMGEXIT through the GHCB, exits cost as for a "
                           "plain VM");
        if (host != HostPaging::amd_npt) w.push_back(wrong_vendor(es_ ? "SEV-ES" : "SEV", "AMD NPT", host));
        return w;
    }

private:
    bool es_;
};

// KVM_X86_SNP_VM: private memory from guest_memfd, RMP-protected; pre-fault only after
// SNP_LAUNCH_FINISH. sev_guest() is true for SNP too, so REG_REGION is not refused.
class SnpVmOps final : public KvmArchOps {
public:
    VmType type() const override { return VmType::snp; }
    bool has_private_mem() const override { return true; }
    bool has_protected_state() const override { return true; }
    bool pre_fault_allowed_initially() const override { return false; }
    bool supported_by(const KvmConfig& c) const override {
        return c.tdp && c.sev && c.sev_es && c.snp;
    }
    bool sev_guest() const override { return true; }
    bool fault_is_private(const Kvm&, Gfn, uint64_t ec) const override { return ec & PFERR_GUEST_ENC_MASK; }
    std::vector<std::string> unmodelled(HostPaging host) const override {
        std::vector<std::string> w;
        w.emplace_back("RMP not modelled: SNP runs on plain nested paging (no RMP check, RMPUPDATE, PSMASH or "
                       "PVALIDATE) with plain-VM exit costs (no #VC / VMGEXIT)");
        if (host != HostPaging::amd_npt) w.push_back(wrong_vendor("SNP", "AMD NPT and the RMP", host));
        return w;
    }
};

// KVM_X86_TDX_VM: private memory in the secure EPT; GPA bit GPAW-1 is the shared bit, so
// gfns with it set alias private gfns (kvm_is_gfn_alias()).
class TdxVmOps final : public KvmArchOps {
public:
    VmType type() const override { return VmType::tdx; }
    bool has_private_mem() const override { return true; }
    bool has_protected_state() const override { return true; }
    bool pre_fault_allowed_initially() const override { return false; }
    bool supported_by(const KvmConfig& c) const override { return c.tdp && c.tdx; }
    unsigned shared_gpa_bit(unsigned tdp_levels) const override { return tdp_levels >= 5 ? 51 : 47; }
    bool guest_tables_private() const override { return true; }
    // tdx_handle_ept_violation(): PFERR_PRIVATE_ACCESS iff the GPA's shared bit is clear.
    bool fault_is_private(const Kvm& k, Gfn g, uint64_t) const override { return !k.kvm_is_gfn_alias(g); }
    bool has_mirrored_tdp() const override { return true; }
    PgLevel private_max_mapping_level() const override { return PgLevel::k4K; }
    std::vector<std::string> unmodelled(HostPaging) const override {
        return {"TDX partly modelled: the module's locks are held in simulated time by the SEAMCALLs, TD entries "
                "(TDH.VP.ENTER: TDR and epoch lock) and ACCEPTs of a run, but TDH.VP.ENTER's zero-step filter (the "
                "S-EPT tree lock) is not modelled; private memory is mapped at 4K only (no 2M "
                "AUG, DEMOTE or PROMOTE in runs); idle vCPUs' ticks delay private faults through an estimated "
                "serialization (tdx.idle_tick_hz)"};
    }
    std::optional<HostPaging> requires_host() const override { return HostPaging::intel_ept; }
};

// arm64 pKVM protected VM: one hypervisor-owned stage-2, conversion is an ownership /
// permission change without encryption, so contents can be preserved (the pKVM in-place conversion discussion on the KVM list).
class PkvmVmOps final : public KvmArchOps {
public:
    VmType type() const override { return VmType::pkvm; }
    bool has_private_mem() const override { return true; }
    bool has_protected_state() const override { return true; }
    bool pre_fault_allowed_initially() const override { return false; }   // x86-only ioctl
    bool supported_by(const KvmConfig& c) const override { return c.pkvm; }
    // arm64 has no protected-state restriction on read-only memslots.
    bool has_readonly_mem(const KvmConfig& c) const override { return c.readonly_mem; }
    // No fault-time bit on arm64: the hypervisor's page state, mirrored by the attributes.
    bool fault_is_private(const Kvm& k, Gfn g, uint64_t) const override { return k.kvm_mem_is_private(g); }
    bool supports_content_policy(ContentPolicy p, bool to_private) const override {
        if (p == ContentPolicy::preserve) return true;
        return KvmArchOps::supports_content_policy(p, to_private);
    }
    std::vector<std::string> unmodelled(HostPaging host) const override {
        std::vector<std::string> w;
        // On an arm64 preset the platform gives a pkvm VM the EL2 model (kernel/arm64/pkvm.hpp),
        // whose own backend says what it leaves out.
        if (host == HostPaging::arm64_stage2) return w;
        w.emplace_back("arm64 stage-2 and the pKVM EL2 hypervisor not modelled: a pKVM VM runs on x86 nested "
                       "paging with x86 exit costs (no EL2 page ownership, no hypercalls to the hypervisor)");
        w.push_back(wrong_vendor("pKVM", "arm64 stage-2 under pKVM", host));
        return w;
    }
};

}  // namespace

KvmArchOps& kvm_default_arch_ops(VmType t) {
    static DefaultVmOps def;
    static SwProtectedVmOps swp;
    static SevVmOps sev(false), sev_es(true);
    static SnpVmOps snp;
    static TdxVmOps tdx;
    static PkvmVmOps pkvm;
    switch (t) {
    case VmType::default_vm: return def;
    case VmType::sw_protected: return swp;
    case VmType::sev: return sev;
    case VmType::sev_es: return sev_es;
    case VmType::snp: return snp;
    case VmType::tdx: return tdx;
    case VmType::pkvm: return pkvm;
    }
    return def;
}

}  // namespace hvsim::kvm
