// ioctl request numbers of the KVM uAPI as the running kernel (Linux 6.18) defines them,
// computed like include/uapi/asm-generic/ioctl.h does from KVMIO and the argument struct
// sizes in kernel/uapi.hpp. Debian's linux-libc-dev predates KVM_CREATE_GUEST_MEMFD,
// KVM_SET_USER_MEMORY_REGION2 and KVM_PRE_FAULT_MEMORY (and has the 6.8-era 128-byte
// region2), so every number the real-KVM referee uses is declared here and the known
// values are pinned with static_asserts.
#pragma once

#include <cstdint>

#include "kernel/uapi.hpp"

namespace hvsim::linux_uapi {

// asm-generic/ioctl.h layout (x86): nr 8 bits, type 8 bits, size 14 bits, dir 2 bits.
inline constexpr uint32_t IOC_NONE = 0, IOC_WRITE = 1, IOC_READ = 2;
constexpr unsigned long ioc(uint32_t dir, uint32_t type, uint32_t nr, uint32_t size) {
    return (static_cast<unsigned long>(dir) << 30) | (static_cast<unsigned long>(size) << 16) |
           (static_cast<unsigned long>(type) << 8) | nr;
}

inline constexpr uint32_t KVMIO = 0xAE;
constexpr unsigned long kvm_io(uint32_t nr) { return ioc(IOC_NONE, KVMIO, nr, 0); }
constexpr unsigned long kvm_ior(uint32_t nr, uint32_t size) { return ioc(IOC_READ, KVMIO, nr, size); }
constexpr unsigned long kvm_iow(uint32_t nr, uint32_t size) { return ioc(IOC_WRITE, KVMIO, nr, size); }
constexpr unsigned long kvm_iowr(uint32_t nr, uint32_t size) {
    return ioc(IOC_READ | IOC_WRITE, KVMIO, nr, size);
}

inline constexpr int KVM_API_VERSION = 12;

// System ioctls (on /dev/kvm).
inline constexpr unsigned long KVM_GET_API_VERSION = kvm_io(0x00);
inline constexpr unsigned long KVM_CREATE_VM = kvm_io(0x01);
inline constexpr unsigned long KVM_CHECK_EXTENSION = kvm_io(0x03);   // also a VM ioctl
inline constexpr unsigned long KVM_GET_VCPU_MMAP_SIZE = kvm_io(0x04);

// VM ioctls.
inline constexpr unsigned long KVM_CREATE_VCPU = kvm_io(0x41);
inline constexpr unsigned long KVM_SET_USER_MEMORY_REGION =
    kvm_iow(0x46, sizeof(uapi::kvm_userspace_memory_region));
inline constexpr unsigned long KVM_SET_USER_MEMORY_REGION2 =
    kvm_iow(0x49, sizeof(uapi::kvm_userspace_memory_region2));
inline constexpr unsigned long KVM_MEMORY_ENCRYPT_REG_REGION = kvm_ior(0xbb, sizeof(uapi::kvm_enc_region));
inline constexpr unsigned long KVM_MEMORY_ENCRYPT_UNREG_REGION = kvm_ior(0xbc, sizeof(uapi::kvm_enc_region));
inline constexpr unsigned long KVM_SET_MEMORY_ATTRIBUTES = kvm_iow(0xd2, sizeof(uapi::kvm_memory_attributes));
inline constexpr unsigned long KVM_CREATE_GUEST_MEMFD = kvm_iowr(0xd4, sizeof(uapi::kvm_create_guest_memfd));

// vCPU ioctls.
inline constexpr unsigned long KVM_PRE_FAULT_MEMORY = kvm_iowr(0xd5, sizeof(uapi::kvm_pre_fault_memory));

// guest_memfd ioctl of the in-place conversion proposal (not in Linux 6.18): same nr as
// KVM_SET_MEMORY_ATTRIBUTES, read-write, 128-byte struct.
inline constexpr unsigned long KVM_SET_MEMORY_ATTRIBUTES2 = kvm_iowr(0xd2, sizeof(uapi::kvm_memory_attributes2));

// Struct sizes the numbers above encode (include/uapi/linux/kvm.h, Linux 6.18).
static_assert(sizeof(uapi::kvm_userspace_memory_region) == 32);
static_assert(sizeof(uapi::kvm_userspace_memory_region2) == 160);
static_assert(sizeof(uapi::kvm_create_guest_memfd) == 64);
static_assert(sizeof(uapi::kvm_memory_attributes) == 32);
static_assert(sizeof(uapi::kvm_memory_attributes2) == 128);
static_assert(sizeof(uapi::kvm_pre_fault_memory) == 64);
static_assert(sizeof(uapi::kvm_enc_region) == 16);

// Known values (checked against a real 6.18 kernel, docs/ground-truth.md, and the
// numbers strace prints on that kernel).
static_assert(KVM_GET_API_VERSION == 0xae00);
static_assert(KVM_CREATE_VM == 0xae01);
static_assert(KVM_CHECK_EXTENSION == 0xae03);
static_assert(KVM_CREATE_VCPU == 0xae41);
static_assert(KVM_SET_USER_MEMORY_REGION == 0x4020ae46);
static_assert(KVM_SET_USER_MEMORY_REGION2 == 0x40a0ae49);
static_assert(KVM_MEMORY_ENCRYPT_REG_REGION == 0x8010aebb);
static_assert(KVM_MEMORY_ENCRYPT_UNREG_REGION == 0x8010aebc);
static_assert(KVM_SET_MEMORY_ATTRIBUTES == 0x4020aed2);
static_assert(KVM_CREATE_GUEST_MEMFD == 0xc040aed4);
static_assert(KVM_PRE_FAULT_MEMORY == 0xc040aed5);
static_assert(KVM_SET_MEMORY_ATTRIBUTES2 == 0xc080aed2);

}  // namespace hvsim::linux_uapi
