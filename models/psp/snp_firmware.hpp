// The SEV firmware on the AMD Secure Processor (ASP/PSP), as far as an SNP guest's launch
// goes: the guest context's state (SNP_LAUNCH_START -> LAUNCH, SNP_LAUNCH_FINISH ->
// RUNNING) and SNP_LAUNCH_UPDATE, which takes a Pre-Guest page (RMPUPDATE'd by the host
// with Immutable set), measures it into the launch digest, encrypts it with the guest's key
// and makes it Guest-Valid without the guest's PVALIDATE. It knows the RMP and physical
// memory, never KVM. Semantics: the SEV Secure Nested Paging Firmware ABI specification
// (SNP_LAUNCH_START / SNP_LAUNCH_UPDATE / SNP_LAUNCH_FINISH and the PAGE_INFO structure),
// AMD's SEV firmware source (amd/AMD-ASPFW) and the status codes of
// include/uapi/linux/psp-sev.h.
//
// The launch digest is computed as the firmware computes it: for every page,
//   LD' = SHA-384(PAGE_INFO), PAGE_INFO = LD (48) | CONTENTS (48) | LENGTH 0x70 (2) |
//         PAGE_TYPE (1) | IMI_PAGE (1) | VMPL3 | VMPL2 | VMPL1 perms (1 each) | reserved (1) |
//         GPA (8, little endian)
// with CONTENTS = SHA-384 of the 4 KiB page for NORMAL and VMSA pages and zero for ZERO,
// UNMEASURED, SECRETS and CPUID pages; LD starts as 48 zero bytes at LAUNCH_START.
//
// Simplifications (documented): one key domain (the page keeps its bytes; the AES engine's
// time is the DRAM-fill adder of the cache model); SECRETS pages are zero-filled (the
// VMPCKs the firmware writes are not modelled); CPUID pages are accepted as given (the
// firmware's CPUID policy check is not modelled); no ID block / author key at finish.
#pragma once

#include <cstdint>

#include "models/common/sha384.hpp"
#include "models/common/types.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/rmp/rmp.hpp"

namespace hvsim::psp {

// SEV firmware status codes (include/uapi/linux/psp-sev.h sev_ret_code).
enum SevRet : int {
    SEV_RET_SUCCESS = 0,
    SEV_RET_INVALID_GUEST_STATE = 0x02,
    SEV_RET_INVALID_PARAM = 0x16,
    SEV_RET_INVALID_PAGE_SIZE = 0x19,
    SEV_RET_INVALID_PAGE_STATE = 0x1a,
    SEV_RET_INVALID_PAGE_OWNER = 0x1c,
};

// SNP_LAUNCH_UPDATE page types (the firmware ABI; KVM_SEV_SNP_PAGE_TYPE_* in uapi kvm.h).
enum class SnpPageType : uint8_t { normal = 1, vmsa = 2, zero = 3, unmeasured = 4, secrets = 5, cpuid = 6 };
const char* snp_page_type_name(SnpPageType t);

// The guest context's state (firmware ABI "Guest States"): none before LAUNCH_START.
enum class SnpGuestState : uint8_t { none, launch, running };

struct SnpFirmwareStats {
    uint64_t launch_updates = 0;    // successful SNP_LAUNCH_UPDATE pages
    uint64_t measured_pages = 0;    // of those, pages whose contents entered the digest (NORMAL, VMSA)
    uint64_t failures = 0;          // commands answered with a non-zero status
};

class SnpFirmware {
public:
    SnpFirmware(rmp::Rmp& rmp, PhysMem& mem);

    // SNP_GCTX_CREATE + SNP_LAUNCH_START + SNP_ACTIVATE for the guest of `asid`: the
    // context enters LAUNCH, the digest is zero. INVALID_GUEST_STATE if already started.
    int launch_start(uint16_t asid, uint64_t policy);
    // SNP_LAUNCH_UPDATE of the 4K page at `page` (the RMP entry gives GPA, size, ASID).
    // Requires LAUNCH state, a Pre-Guest 4K entry of this guest; measures (per the type),
    // zero-fills ZERO and SECRETS pages, and makes the entry Guest-Valid (Immutable clear,
    // VMPL1-3 permissions as given, VMSA set for VMSA pages).
    int launch_update(Hpa page, SnpPageType type, bool imi = false, uint8_t vmpl1 = 0, uint8_t vmpl2 = 0,
                      uint8_t vmpl3 = 0);
    // SNP_LAUNCH_FINISH: the digest is final, the context RUNNING.
    int launch_finish();

    SnpGuestState state() const { return state_; }
    uint16_t asid() const { return asid_; }
    uint64_t policy() const { return policy_; }
    const Sha384::Digest& launch_digest() const { return ld_; }
    const SnpFirmwareStats& stats() const { return stats_; }

    // The PAGE_INFO step alone: the digest that follows `ld` after a page of `type` at
    // `gpa` whose contents hash to `contents` (zero for the unmeasured types).
    static Sha384::Digest extend(const Sha384::Digest& ld, const Sha384::Digest& contents, SnpPageType type, Gpa gpa,
                                 bool imi, uint8_t vmpl1, uint8_t vmpl2, uint8_t vmpl3);

private:
    int fail(int code) {
        ++stats_.failures;
        return code;
    }
    rmp::Rmp& rmp_;
    PhysMem& mem_;
    SnpGuestState state_ = SnpGuestState::none;
    uint16_t asid_ = 0;
    uint64_t policy_ = 0;
    Sha384::Digest ld_{};
    SnpFirmwareStats stats_;
};

}  // namespace hvsim::psp
