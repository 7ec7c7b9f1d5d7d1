// KVM uAPI as the simulated KVM and the real-KVM referee both speak it: ioctl
// argument structs, flag bits, capability numbers and exit reasons, declared here
// because Debian's linux-libc-dev predates the running kernel (include/uapi/linux/kvm.h,
// Linux 6.18; KVM_SET_MEMORY_ATTRIBUTES2 and its content policies from the
// in-place-conversion proposal, see docs/kvm-model.md).
#pragma once

#include <cstdint>

namespace hvsim::uapi {

// ---- VM types (arch/x86/include/uapi/asm/kvm.h) ----
inline constexpr uint32_t KVM_X86_DEFAULT_VM = 0;
inline constexpr uint32_t KVM_X86_SW_PROTECTED_VM = 1;
inline constexpr uint32_t KVM_X86_SEV_VM = 2;
inline constexpr uint32_t KVM_X86_SEV_ES_VM = 3;
inline constexpr uint32_t KVM_X86_SNP_VM = 4;
inline constexpr uint32_t KVM_X86_TDX_VM = 5;

// ---- memslots ----
inline constexpr uint32_t KVM_MEM_LOG_DIRTY_PAGES = 1u << 0;
inline constexpr uint32_t KVM_MEM_READONLY = 1u << 1;
inline constexpr uint32_t KVM_MEM_GUEST_MEMFD = 1u << 2;

inline constexpr uint32_t KVM_MEM_SLOTS_NUM = 32767;      // SHRT_MAX
inline constexpr uint32_t KVM_INTERNAL_MEM_SLOTS = 3;     // x86
inline constexpr uint32_t KVM_USER_MEM_SLOTS = KVM_MEM_SLOTS_NUM - KVM_INTERNAL_MEM_SLOTS;
inline constexpr uint64_t KVM_MEM_MAX_NR_PAGES = (1ull << 31) - 1;

struct kvm_userspace_memory_region2 {   // 160 bytes on Linux 6.18
    uint32_t slot;
    uint32_t flags;
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t guest_memfd_offset;
    uint32_t guest_memfd;
    uint32_t pad1;
    uint64_t pad2[14];
};
static_assert(sizeof(kvm_userspace_memory_region2) == 160);

struct kvm_userspace_memory_region {
    uint32_t slot;
    uint32_t flags;
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
};
static_assert(sizeof(kvm_userspace_memory_region) == 32);

// ---- guest_memfd ----
inline constexpr uint64_t GUEST_MEMFD_FLAG_MMAP = 1ull << 0;
inline constexpr uint64_t GUEST_MEMFD_FLAG_INIT_SHARED = 1ull << 1;

struct kvm_create_guest_memfd {
    uint64_t size;
    uint64_t flags;
    uint64_t reserved[6];
};
static_assert(sizeof(kvm_create_guest_memfd) == 64);

// fallocate(2) modes (include/uapi/linux/falloc.h), in a namespace of their own: the
// libc headers define FALLOC_FL_* as macros.
namespace falloc {
inline constexpr int KEEP_SIZE = 0x01;
inline constexpr int PUNCH_HOLE = 0x02;
inline constexpr int COLLAPSE_RANGE = 0x08;
inline constexpr int ZERO_RANGE = 0x10;
inline constexpr int INSERT_RANGE = 0x20;
inline constexpr int UNSHARE_RANGE = 0x40;
}  // namespace falloc

// ---- memory attributes ----
inline constexpr uint64_t KVM_MEMORY_ATTRIBUTE_PRIVATE = 1ull << 3;

struct kvm_memory_attributes {
    uint64_t address;
    uint64_t size;
    uint64_t attributes;
    uint64_t flags;
};

// Content policies of KVM_SET_MEMORY_ATTRIBUTES2 as the seed message defines them:
// ZERO is the default (0), PRESERVE and NONE are explicit requests.
inline constexpr uint64_t KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_ZERO = 0;
inline constexpr uint64_t KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_PRESERVE = 1ull << 0;
inline constexpr uint64_t KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_NONE = 1ull << 1;

struct kvm_memory_attributes2 {
    union {
        uint64_t address;
        uint64_t offset;
    };
    uint64_t size;
    uint64_t attributes;
    uint64_t flags;
    uint64_t error_offset;   // out
    uint64_t reserved[11];
};
static_assert(sizeof(kvm_memory_attributes2) == 128);

// ---- pre-fault ----
struct kvm_pre_fault_memory {
    uint64_t gpa;
    uint64_t size;
    uint64_t flags;
    uint64_t padding[5];
};

// ---- dirty logging (KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG) ----
// The bitmap pointer of the real structs is replaced by a buffer the caller passes.
struct kvm_dirty_log {
    uint32_t slot;           // as_id << 16 | slot id
};
struct kvm_clear_dirty_log {
    uint32_t slot;
    uint32_t num_pages;
    uint64_t first_page;
};

// ---- legacy SEV ----
struct kvm_enc_region {
    uint64_t addr;
    uint64_t size;
};

// ---- exits ----
inline constexpr uint32_t KVM_EXIT_UNKNOWN = 0;
inline constexpr uint32_t KVM_EXIT_IO = 2;
inline constexpr uint32_t KVM_EXIT_HYPERCALL = 3;
inline constexpr uint32_t KVM_EXIT_MMIO = 6;
inline constexpr uint32_t KVM_EXIT_MEMORY_FAULT = 39;
inline constexpr uint64_t KVM_MEMORY_EXIT_FLAG_PRIVATE = 1ull << 3;

inline constexpr uint64_t KVM_HC_MAP_GPA_RANGE = 12;
inline constexpr uint64_t KVM_MAP_GPA_RANGE_PAGE_SZ_4K = 0;
inline constexpr uint64_t KVM_MAP_GPA_RANGE_PAGE_SZ_2M = 1ull << 0;
inline constexpr uint64_t KVM_MAP_GPA_RANGE_PAGE_SZ_1G = 1ull << 1;
inline constexpr uint64_t KVM_MAP_GPA_RANGE_ENCRYPTED = 1ull << 4;
inline constexpr uint64_t KVM_MAP_GPA_RANGE_DECRYPTED = 0;

// ---- capabilities ----
inline constexpr int KVM_CAP_NR_MEMSLOTS = 10;
inline constexpr int KVM_CAP_READONLY_MEM = 81;
inline constexpr int KVM_CAP_MULTI_ADDRESS_SPACE = 118;
inline constexpr int KVM_CAP_EXIT_HYPERCALL = 201;
inline constexpr int KVM_CAP_USER_MEMORY2 = 231;
inline constexpr int KVM_CAP_MEMORY_ATTRIBUTES = 233;
inline constexpr int KVM_CAP_GUEST_MEMFD = 234;
inline constexpr int KVM_CAP_VM_TYPES = 235;
inline constexpr int KVM_CAP_PRE_FAULT_MEMORY = 236;
inline constexpr int KVM_CAP_GUEST_MEMFD_FLAGS = 244;

}  // namespace hvsim::uapi
