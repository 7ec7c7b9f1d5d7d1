// Per-VM-type backends, the simulated counterpart of kvm_x86_ops / the vendor split:
// generic code asks the VM's KvmArchOps instead of testing the VM type, so a later
// SNP (RMP), TDX (secure EPT) or pKVM (EL2 stage-2) model plugs in by overriding the
// gmem hooks of its backend (Kvm::set_arch_ops) without touching generic code.
#pragma once

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/kvm_config.hpp"
#include "kernel/kvm_host.hpp"
#include "kernel/memslot.hpp"

namespace hvsim {
class EncryptedPages;   // models/mem/cache.hpp
}

namespace hvsim::kvm {

class Kvm;

// The host's translation hardware as the platform preset describes it: which vendor's
// nested paging the simulated MMU walks (AMD NPT, Intel EPT; arm64 stage-2 when it exists).
enum class HostPaging : uint8_t { amd_npt, intel_ept, arm64_stage2 };

enum class VmType : uint8_t { default_vm, sw_protected, sev, sev_es, snp, tdx, pkvm };
inline constexpr VmType kAllVmTypes[] = {VmType::default_vm, VmType::sw_protected, VmType::sev,
                                         VmType::sev_es, VmType::snp, VmType::tdx, VmType::pkvm};

// pKVM protected-VM type flag of the Android/pKVM trees (not upstream, unverified); the
// x86 types are 0..5 (kernel/uapi.hpp).
inline constexpr uint64_t KVM_VM_TYPE_ARM_PROTECTED = 1ull << 31;
// AMD NPF error code: the guest accessed the page encrypted (arch/x86/include/asm/kvm_host.h).
inline constexpr uint64_t PFERR_GUEST_ENC_MASK = 1ull << 34;

const char* vm_type_name(VmType t);                            // "default", "sw_protected", ...
std::optional<VmType> vm_type_from_name(std::string_view name);
uint64_t vm_type_uapi(VmType t);                               // KVM_CREATE_VM argument
std::optional<VmType> vm_type_from_uapi(uint64_t type);

// KVM_SET_MEMORY_ATTRIBUTES2 content policies as the KVM_SET_MEMORY_ATTRIBUTES2 content-policy series defines them (ZERO is the default).
enum class ContentPolicy : uint8_t { zero, preserve, none };
const char* content_policy_name(ContentPolicy p);

class KvmArchOps {
public:
    virtual ~KvmArchOps() = default;
    virtual VmType type() const = 0;

    // kvm_arch_has_private_mem(): memory attributes / guest_memfd decide private vs shared.
    virtual bool has_private_mem() const = 0;
    // kvm->arch.has_protected_state: register state is hidden (no READONLY memslots).
    virtual bool has_protected_state() const = 0;
    // kvm->arch.pre_fault_allowed at creation (SNP/TDX flip it after launch/finalize).
    virtual bool pre_fault_allowed_initially() const = 0;
    // kvm_is_vm_type_supported(): the configuration offers this type.
    virtual bool supported_by(const KvmConfig& cfg) const = 0;
    // sev_guest(): legacy KVM_MEMORY_ENCRYPT_REG_REGION is accepted (svm/sev.c).
    virtual bool sev_guest() const { return false; }

    // kvm_arch_supports_gmem_init_shared(): x86 says !has_private_mem (6.18); the in-place
    // conversion proposal lifts this for CoCo VMs (see Kvm::kvm_gmem_get_supported_flags).
    virtual bool supports_gmem_init_shared() const { return !has_private_mem(); }
    // kvm_arch_has_readonly_mem(): x86 refuses READONLY slots for protected-state VMs.
    virtual bool has_readonly_mem(const KvmConfig& cfg) const {
        return cfg.readonly_mem && !has_protected_state();
    }
    // kvm_arch_nr_memslot_as_ids(): the SMM address space only without private memory.
    unsigned nr_memslot_as_ids(const KvmConfig& cfg) const {
        return has_private_mem() ? 1u : (cfg.smm ? 2u : 1u);
    }
    // kvm_mmu_max_gfn(): host MAXPHYADDR with TDP, 52 bits with shadow paging.
    virtual uint64_t max_gfn(const KvmConfig& cfg) const {
        const unsigned bits = cfg.tdp ? cfg.maxphyaddr : 52u;
        return (1ull << (bits - kPageShift)) - 1;
    }
    // tdx_td_init(): the GPA bit that selects KVM's direct (shared) root, whose gfn bit
    // becomes kvm->arch.gfn_direct_bits; 0 = none. TDX: bit GPAW-1, and the GPAW follows the
    // EPT level the TD is built with (setup_tdparams_eptp_controls(): 52 with 5-level EPT,
    // 48 with 4-level), so bit 51 or 47 (TDX_SHARED_BIT_PWL_5/4).
    virtual unsigned shared_gpa_bit(unsigned /*tdp_levels*/) const { return 0; }
    // The guest keeps its page tables in private memory (SEV family: the C-bit is forced
    // on for table walks, APM vol. 2 §15.34.5; TDX: page tables live in private memory).
    virtual bool guest_tables_private() const { return sev_guest(); }
    // kvm_mmu_page_fault(): does this fault set PFERR_PRIVATE_ACCESS? SW_PROTECTED: the
    // memory attributes; SNP: the NPF error code's C-bit (PFERR_GUEST_ENC_MASK); TDX: the
    // GPA's shared bit is clear; VMs without private memory: never. `gfn` is the faulting
    // gfn as the hardware reported it (shared bit not yet stripped).
    virtual bool fault_is_private(const Kvm&, Gfn, uint64_t /*error_code*/) const { return false; }

    // Which KVM_SET_MEMORY_ATTRIBUTES2 content policies this VM type honours per
    // direction (the KVM_SET_MEMORY_ATTRIBUTES2 content-policy series): ZERO to shared everywhere, to private only on sw_protected;
    // PRESERVE only where memory is not encrypted (sw_protected, pKVM); NONE everywhere.
    virtual bool supports_content_policy(ContentPolicy p, bool to_private) const;
    // NONE: the byte every converted page is filled with, if the backend scribbles
    // (sw_protected: 0xab, the KVM_SET_MEMORY_ATTRIBUTES2 content-policy series); nullopt leaves the bytes as they are.
    virtual std::optional<uint8_t> none_policy_fill() const { return std::nullopt; }

    // What a run of this VM type rests on that hvsim does not model (yet), one sentence
    // each, for the summary's and results.json's "warnings": the hardware a real host
    // of this type needs beyond nested paging, and a host of the wrong vendor. A backend
    // that gains its hardware model (RMP, secure EPT, stage-2) drops its sentence.
    virtual std::vector<std::string> unmodelled(HostPaging host) const;
    // The host hardware without which this VM type cannot run at all (TDX: Intel EPT and the
    // TDX module; a run on another preset is refused rather than warned about).
    virtual std::optional<HostPaging> requires_host() const { return std::nullopt; }

    // kvm_has_mirrored_tdp(): private memory is mapped through a mirror root of the TDP MMU
    // whose changes go to a table firmware owns (TDX: the secure EPT, via SEAMCALLs).
    virtual bool has_mirrored_tdp() const { return false; }
    // kvm_x86_ops.gmem_max_mapping_level(): the largest level KVM maps private memory at
    // (TDX: 4K, tdx_gmem_max_mapping_level()).
    virtual PgLevel private_max_mapping_level() const { return PgLevel::k1G; }
    // The same question for the page the fault got from guest_memfd (SNP: the RMP entry's
    // level, sev_gmem_max_mapping_level(), so a private NPT leaf never exceeds it).
    virtual PgLevel gmem_max_mapping_level(const Kvm&, Pfn) const { return private_max_mapping_level(); }

    // Hooks for the hardware models (no-ops in the generic backends):
    // kvm_arch_gmem_prepare(): a gmem page is about to be mapped private (SNP: RMPUPDATE
    // to guest-owned; TDX: nothing until TDH.MEM.PAGE.AUG; pKVM: donate to the guest).
    virtual int gmem_prepare(Kvm&, Pfn, Gfn, int /*order*/, ExecContext&) { return 0; }
    // kvm_arch_gmem_invalidate(): pages [start, end) leave private use (freed, or
    // converted to shared in place): SNP makes the RMP entries shared again.
    virtual void gmem_invalidate(Kvm&, Pfn /*start*/, Pfn /*end*/, ExecContext&) {}
    // npf_interception() -> sev_handle_rmp_fault(): an NPF with PFERR_GUEST_RMP after the
    // fault path let the guest re-enter (SNP: PSMASH a 2M RMP entry, zap the 2 MB).
    virtual void handle_rmp_fault(Kvm&, Gpa, uint64_t /*error_code*/, ExecContext&) {}
    // Cycles every VM exit costs on top of cost.vmexit + cost.vmentry (SEV-ES/SNP: the
    // automatic exit saves and restores the encrypted VMSA). 0 for plain VMs.
    virtual Cycles exit_extra_cycles() const { return 0; }
    // The host pages the memory controller encrypts with this VM's key, whose DRAM fills
    // pay the encryption engine (mem.encrypt_fill_cycles); nullptr: none (plain VMs,
    // sw_protected, pKVM: no memory encryption). The machine wires it into every vCPU's
    // caches; the object lives as long as `kvm` (or these ops).
    virtual const EncryptedPages* encrypted_pages(const Kvm&) const { return nullptr; }

    // kvm_vm_is_protected() (arm64): the VM's memory is owned page by page by the EL2
    // hypervisor (pKVM); its faults go to pkvm_mem_abort(). Only a backend with the EL2
    // model says so (a pkvm VM without it runs as a non-protected VM).
    virtual bool is_protected() const { return false; }
    // The arch half of kvm_arch_prepare_memory_region() (arm64: a protected VM's memslots
    // cannot be deleted or moved once it ran, and cannot be READONLY or dirty-logged).
    // `new_slot` is null for a delete. 0 or -errno (with its rule recorded).
    virtual int prepare_memory_region(const Kvm&, const kvm_memory_slot* /*new_slot*/, kvm_mr_change) const {
        return 0;
    }
    // kvm_arch_vcpu_run_pid_change(): a vCPU's first KVM_RUN (arm64: pkvm_create_hyp_vm()).
    virtual void vcpu_run(Kvm&) {}
    // The post_populate callback kvm_gmem_populate() calls for each page of a launch-time
    // copy-in (SNP: sev_gmem_post_populate(), RMPUPDATE + SNP_LAUNCH_UPDATE; TDX:
    // tdx_gmem_post_populate(), TDH.MEM.PAGE.ADD). `src` is the GUP'd source page or
    // nullopt (SNP ZERO pages); the per-ioctl arguments (page type, measure flag) are held
    // by the backend for the duration of its ioctl, as KVM passes them in `opaque`. 0 or
    // -errno; VM types without a launch flow refuse (-EOPNOTSUPP).
    virtual int gmem_post_populate(Kvm&, Gfn, Pfn, std::optional<Pfn> /*src*/, ExecContext&) { return -EOPNOTSUPP; }
    // A wait a vCPU's fault exit at `gpa` adds in proportion to its own cycles, for time the
    // fault competes with other vCPUs' work for a resource of the VM (TDX: idle vCPUs'
    // ticks, TdxBackend::charge_idle_ticks()). fault_wait_applies() says whether the caller
    // should count the fault's cycles; charge_fault_wait() charges the wait for them.
    virtual bool fault_wait_applies(const Kvm&, Gpa) const { return false; }
    virtual void charge_fault_wait(Cycles /*fault*/, ExecContext&) {}

    // sev_handle_vmgexit() for a VMGEXIT guest kernel code issues itself through the GHCB
    // (not a #VC of an intercepted instruction): SNP's AP creation. The answer is what KVM
    // writes back into the GHCB (SW_EXITINFO1/2); nullopt: the backend knows no such exit
    // (VMs that are not SEV-ES/SNP).
    struct VmgexitResult {
        uint64_t sw_exit_info_1 = 0, sw_exit_info_2 = 0;
    };
    virtual std::optional<VmgexitResult> handle_vmgexit(Kvm&, unsigned /*vcpu*/, uint64_t /*exit_code*/,
                                                        uint64_t /*info1*/, uint64_t /*info2*/, uint64_t /*rax*/,
                                                        ExecContext&) {
        return std::nullopt;
    }
    // vcpu_enter_guest(): the requests a vCPU handles before VM entry, and the entry's own
    // consistency checks (SNP: KVM_REQ_UPDATE_PROTECTED_GUEST_STATE loads a VMSA the guest
    // named; VMRUN checks the VMSA page in the RMP). run: the guest runs; fail_entry: VMRUN
    // failed (VMEXIT_INVALID -> KVM_EXIT_FAIL_ENTRY); halted: the vCPU has no state to run
    // (an SNP AP without a VMSA) and blocks in KVM_RUN.
    enum class EntryResult : uint8_t { run, fail_entry, halted };
    virtual EntryResult vcpu_enter_guest(Kvm&, unsigned /*vcpu*/, ExecContext&) { return EntryResult::run; }
};

// The built-in backend of each VM type (process-wide singletons; their hooks are no-ops).
KvmArchOps& kvm_default_arch_ops(VmType t);

}  // namespace hvsim::kvm
