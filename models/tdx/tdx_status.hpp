// TDX module completion status codes and operand ids, as the TDX module 1.5 source defines
// them (include/auto_gen/tdx_error_codes_defs.h; Linux keeps the subset it tests in
// arch/x86/include/asm/shared/tdx_errno.h). RAX bit 63 = error, bits 47:32 = class and
// details, bits 31:0 = the operand id (or, for ACCEPT's non-errors, the S-EPT level).
#pragma once

#include <cstdint>

namespace hvsim::tdx {

namespace status {
inline constexpr uint64_t SUCCESS = 0x0000000000000000ull;
inline constexpr uint64_t INTERRUPTED_RESUMABLE = 0x8000000300000000ull;
inline constexpr uint64_t INTERRUPTED_RESTARTABLE = 0x8000000400000000ull;
inline constexpr uint64_t OPERAND_INVALID = 0xC000010000000000ull;
inline constexpr uint64_t OPERAND_ADDR_RANGE_ERROR = 0xC000010100000000ull;
inline constexpr uint64_t OPERAND_BUSY = 0x8000020000000000ull;
inline constexpr uint64_t PREVIOUS_TLB_EPOCH_BUSY = 0x8000020100000000ull;
inline constexpr uint64_t OPERAND_BUSY_HOST_PRIORITY = 0x8000020400000000ull;
inline constexpr uint64_t PAGE_METADATA_INCORRECT = 0xC000030000000000ull;
inline constexpr uint64_t TD_ASSOCIATED_PAGES_EXIST = 0xC000040000000000ull;
inline constexpr uint64_t TD_FATAL = 0xE000060400000000ull;
inline constexpr uint64_t LIFECYCLE_STATE_INCORRECT = 0xC000060700000000ull;
inline constexpr uint64_t OP_STATE_INCORRECT = 0xC000060800000000ull;
inline constexpr uint64_t NO_VCPUS = 0xC000060900000000ull;
inline constexpr uint64_t VCPU_NOT_ASSOCIATED = 0x8000070200000000ull;
inline constexpr uint64_t TD_KEYS_NOT_CONFIGURED = 0x8000081000000000ull;
inline constexpr uint64_t WBCACHE_NOT_COMPLETE = 0x8000081700000000ull;
inline constexpr uint64_t NO_HKID_READY_TO_WBCACHE = 0x0000082100000000ull;   // not an error (bit 63 clear)
inline constexpr uint64_t FLUSHVP_NOT_DONE = 0x8000082400000000ull;
inline constexpr uint64_t EPT_WALK_FAILED = 0xC0000B0000000000ull;
inline constexpr uint64_t EPT_ENTRY_NOT_PRESENT = 0xC0000B0300000000ull;
inline constexpr uint64_t GPA_RANGE_NOT_BLOCKED = 0xC0000B0600000000ull;
inline constexpr uint64_t GPA_RANGE_ALREADY_BLOCKED = 0x00000B0700000000ull;
inline constexpr uint64_t TLB_TRACKING_NOT_DONE = 0xC0000B0800000000ull;
inline constexpr uint64_t EPT_INVALID_PROMOTE_CONDITIONS = 0xC0000B0900000000ull;
inline constexpr uint64_t PAGE_ALREADY_ACCEPTED = 0x00000B0A00000000ull;
inline constexpr uint64_t PAGE_SIZE_MISMATCH = 0xC0000B0B00000000ull;
inline constexpr uint64_t EPT_ENTRY_STATE_INCORRECT = 0xC0000B0D00000000ull;
inline constexpr uint64_t EPT_PAGE_NOT_FREE = 0xC0000B0E00000000ull;
// Linux TDX_SEAMCALL_STATUS_MASK: the class and details without the operand id.
inline constexpr uint64_t STATUS_MASK = 0xFFFFFFFF00000000ull;
}  // namespace status

// Operand ids in the low 32 bits of an error status.
namespace operand {
inline constexpr uint64_t RCX = 0x01, RDX = 0x02, R8 = 0x08, R9 = 0x09;
inline constexpr uint64_t TDR = 0x80, SEPT_TREE = 0x92, SEPT_ENTRY = 0x93, TD_EPOCH = 0xA9, OP_STATE = 0xAC;
}  // namespace operand

constexpr bool is_error(uint64_t rax) { return rax >> 63; }
// Linux tdx_operand_busy(): any OPERAND_BUSY, whatever the operand (PREVIOUS_TLB_EPOCH_BUSY
// and BUSY_HOST_PRIORITY are other codes and do not count).
constexpr bool is_operand_busy(uint64_t rax) { return (rax & status::STATUS_MASK) == status::OPERAND_BUSY; }

// SEAMCALL leaf numbers (tdx_api_defs.h) and the TDCALL leaf the guest accepts with.
enum class Leaf : uint16_t {
    vp_enter = 0, mem_page_add = 2, mem_sept_add = 3, mem_page_aug = 6, mem_range_block = 7,
    mem_page_demote = 15, mr_extend = 16, mr_finalize = 17, vp_flush = 18, mng_vpflushdone = 19, mng_key_freeid = 20,
    mem_page_promote = 23, phymem_page_reclaim = 28, mem_page_remove = 29, mem_sept_remove = 30, mem_track = 38,
    mem_range_unblock = 39, phymem_cache_wb = 40, phymem_page_wbinvd = 41,
};
inline constexpr uint16_t kTdgMemPageAccept = 6;
const char* leaf_name(Leaf l);   // "TDH.MEM.PAGE.AUG", ...

}  // namespace hvsim::tdx
