// Memory attributes: the per-VM store of KVM_SET_MEMORY_ATTRIBUTES (Linux today,
// kvm.vm_memory_attributes = true) and the per-guest_memfd store of the in-place
// conversion proposal (KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd, the KVM_SET_MEMORY_ATTRIBUTES2 content-policy series, §4.5).
// The entry points are members of Kvm and GuestMemfd; this header holds the uAPI
// decoding they share.
#pragma once

#include <cstdint>

#include "kernel/kvm_arch_ops.hpp"
#include "kernel/uapi.hpp"

namespace hvsim::kvm {

// Flags KVM_SET_MEMORY_ATTRIBUTES2 accepts: the content-policy bits.
inline constexpr uint64_t KVM_SET_MEMORY_ATTRIBUTES2_POLICY_MASK =
    uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_PRESERVE |
    uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_NONE;

// Decode the flags into a policy: 0 (ZERO, the default), or -EINVAL for unknown bits or
// both policies at once.
int content_policy_from_flags(uint64_t flags, ContentPolicy& out);

}  // namespace hvsim::kvm
