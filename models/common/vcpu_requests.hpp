// What a hypervisor needs of a vCPU to deliver a request (KVM: vcpu->mode and
// kvm_make_all_cpus_request()): whether it is running guest code, and a way to make it
// pay for work it does before it next runs guest code (an exit, a TLB flush, an entry).
// The vCPU model implements it; KVM sees nothing else of the vCPU.
#pragma once

#include "models/common/types.hpp"

namespace hvsim {

class VcpuRequestTarget {
public:
    virtual ~VcpuRequestTarget() = default;
    // The vCPU executes guest code now (IN_GUEST_MODE): it only sees a request if kicked.
    virtual bool in_guest_mode() const = 0;
    // Cycles the vCPU spends on the request before it next runs guest code.
    virtual void charge_before_guest(Cycles c) = 0;
    // The vCPU has no work: the guest's idle loop halted it (HLT; in a TD the
    // TDVMCALL<Instruction.HLT>), so it runs only to take interrupts such as its tick.
    virtual bool idle() const { return false; }
};

}  // namespace hvsim
