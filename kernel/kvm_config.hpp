// The simulated kernel's configuration: which Kconfig options and module parameters
// the simulated KVM was "built" with. The default is a distribution kernel on a host
// with hardware virtualisation (everything on); `hvsim diff-kvm` narrows it to match
// the host's /dev/kvm, and scenarios override fields as `kvm.config.<field>`.
#pragma once

#include <cstdint>

namespace hvsim::kvm {

struct KvmConfig {
    // CONFIG_KVM_SMM: a second memslot address space (SMRAM) for VMs without private memory.
    bool smm = true;
    // CONFIG_KVM_SW_PROTECTED_VM (also needs the TDP MMU, see kvm_is_vm_type_supported()).
    bool sw_protected_vm = true;
    // CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES: KVM_SET_MEMORY_ATTRIBUTES exists (else ENOTTY).
    bool generic_memory_attributes = true;
    // tdp_enabled (npt/ept module params): TDP MMU, KVM_PRE_FAULT_MEMORY, host MAXPHYADDR limit.
    bool tdp = true;
    // kvm_amd.sev / sev_es / sev_snp and kvm_intel.tdx: hardware + module support per VM type.
    bool sev = true;
    bool sev_es = true;
    bool snp = true;
    bool tdx = true;
    // arm64 pKVM protected VMs (KVM_VM_TYPE_ARM_PROTECTED). Not an x86 Kconfig: hvsim models
    // pKVM next to the x86 types and lets this switch it off.
    bool pkvm = true;
    // CONFIG_KVM_GUEST_MEMFD: KVM_CREATE_GUEST_MEMFD and KVM_MEM_GUEST_MEMFD memslots.
    bool guest_memfd = true;
    // GUEST_MEMFD_FLAG_MMAP / GUEST_MEMFD_FLAG_INIT_SHARED offered (KVM_CAP_GUEST_MEMFD_FLAGS).
    bool guest_memfd_mmap = true;
    bool guest_memfd_init_shared = true;
    // __KVM_HAVE_READONLY_MEM (x86: yes; still refused for VMs with protected state).
    bool readonly_mem = true;
    // KVM_CAP_EXIT_HYPERCALL (KVM_HC_MAP_GPA_RANGE exits).
    bool exit_hypercall = true;
    // The defaults below are the linux-6.18 kernel profile (sim: kvm.profile); the inplace
    // profile flips the first two, linux-7.2 the third.
    // [PROPOSED] KVM_SET_MEMORY_ATTRIBUTES2 on guest_memfd (in-place conversion series).
    bool memory_attributes2 = false;
    // [PROPOSED] module param kvm.vm_memory_attributes. true = Linux today (per-VM attributes,
    // KVM_SET_MEMORY_ATTRIBUTES); false = attributes live in each guest_memfd (in-place
    // conversion, the KVM_SET_MEMORY_ATTRIBUTES2 content-policy series; kvm.profile inplace).
    bool vm_memory_attributes = true;
    // kvm_gmem_bind(): a range already bound to another memslot is EEXIST from Linux 7.2,
    // EINVAL before.
    bool gmem_bind_eexist = false;
    // KVM_X86_QUIRK_SLOT_ZAP_ALL, on by default (kvm_check_has_quirk()): deleting or moving a
    // memslot of a default VM zaps every SPTE of the VM. Userspace turns it off with
    // KVM_CAP_DISABLE_QUIRKS2; other VM types always zap only the slot.
    bool quirk_slot_zap_all = true;
    // Host MAXPHYADDR in bits; kvm_mmu_max_gfn() uses it with TDP, 52 without.
    unsigned maxphyaddr = 52;
    // KVM_USER_MEM_SLOTS (KVM_CAP_NR_MEMSLOTS); x86: SHRT_MAX - 3 internal slots.
    uint32_t nr_memslots = 32764;
    // RLIMIT_MEMLOCK of the VMM in bytes for legacy SEV pinning; 0 = unlimited.
    uint64_t memlock_limit = 0;
    // [PROPOSED] largest guest_memfd folio order (sim: gmem.max_order). 0 = upstream (order-0
    // folios only); 9 = 2 MiB folios, as the guest_memfd huge-folio (HugeTLB) series proposes.
    unsigned gmem_max_order = 0;
};

}  // namespace hvsim::kvm
