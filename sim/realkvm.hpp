// The real-KVM referee: runs a scenario's uAPI steps on the host's /dev/kvm so `hvsim
// diff-kvm` can compare the simulated KVM with the kernel it claims to mirror. Only the
// uAPI is compared (errnos, returned values, host-visible memory contents and signals);
// guest execution and timing are not (see docs/ground-truth.md).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sim/outcome.hpp"
#include "sim/scenario.hpp"

namespace hvsim {

// What the host's KVM offers, read with KVM_CHECK_EXTENSION and a few harmless probes.
struct HostKvmCaps {
    bool available = false;
    std::string why_not;              // set when !available
    std::string kernel_release;       // uname -r
    int api_version = 0;
    uint32_t vm_types_mask = 0;       // KVM_CAP_VM_TYPES (BIT(type))
    // System-scope (/dev/kvm) KVM_CHECK_EXTENSION answers.
    int64_t guest_memfd = 0, guest_memfd_flags = 0, user_memory2 = 0, memory_attributes = 0,
            pre_fault_memory = 0, multi_address_space = 0, nr_memslots = 0, readonly_mem = 0,
            exit_hypercall = 0;
    // VM-scope answers on a default VM (they can differ: kvm_vm_ioctl_check_extension_generic).
    int64_t vm_guest_memfd_flags = 0, vm_memory_attributes = 0, vm_multi_address_space = 0;
    // ioctls probed by calling them with arguments every implementation rejects.
    bool set_memory_attributes_ioctl = false;    // KVM_SET_MEMORY_ATTRIBUTES is not ENOTTY
    bool set_memory_attributes2_ioctl = false;   // guest_memfd KVM_SET_MEMORY_ATTRIBUTES2 is not ENOTTY
    bool gmem_bind_eexist = false;               // a second binding of a guest_memfd page is EEXIST (7.2+)
    bool vcpu_create = false;                    // KVM_CREATE_VCPU works (pre-fault is a vCPU ioctl)
    unsigned host_phys_bits = 0;                 // CPUID 0x80000008 EAX[7:0]
    uint64_t memlock_limit = 0;                  // RLIMIT_MEMLOCK in bytes, 0 = unlimited
};

// Never throws; available=false with a reason when /dev/kvm cannot be used.
HostKvmCaps probe_host_kvm();

// The probe, done once per process (every run needs it; it creates a VM).
const HostKvmCaps& host_kvm_caps();

// `kvm.config.*` overrides (key, value text for ParamSet::set_from_string) that make the
// simulated KVM answer like this host. Empty when the host has no usable KVM.
std::vector<std::pair<std::string, std::string>> sim_config_for_host(const HostKvmCaps& caps);

struct RealRun {
    int create_vm_err = 0;           // KVM_CREATE_VM errno for vm.type (0 = created)
    std::string setup_error;         // vm.guest_memfd / vm.memslots / vm.private / vCPU setup failure
    std::vector<StepOutcome> steps;  // one per step, flattened like UapiRun (parallel members in order)
};

// Runs the scenario's VM setup and steps on /dev/kvm, in-process, and releases every fd
// and mapping it made before returning. Steps the host cannot run are `skipped` with the
// reason. Never throws for scenario contents.
RealRun run_uapi_steps_real(const scn::Scenario& s);

// Steps in the order both executors report them: a parallel group contributes its
// members (recursively), in order, and no entry of its own.
struct FlatStep {
    const scn::Step* step;
    bool in_parallel;
};
std::vector<FlatStep> flatten_steps(const std::vector<scn::Step>& steps);

// Helpers shared with diff-kvm.
int x86_vm_type_number(const std::string& type);          // -1 when not an x86 type (pkvm)
int64_t cap_number(const std::string& name);              // -1 when unknown

}  // namespace hvsim
