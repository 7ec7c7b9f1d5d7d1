#include "models/psp/snp_firmware.hpp"

#include <cstring>

namespace hvsim::psp {

const char* snp_page_type_name(SnpPageType t) {
    switch (t) {
    case SnpPageType::normal: return "normal";
    case SnpPageType::vmsa: return "vmsa";
    case SnpPageType::zero: return "zero";
    case SnpPageType::unmeasured: return "unmeasured";
    case SnpPageType::secrets: return "secrets";
    case SnpPageType::cpuid: return "cpuid";
    }
    return "?";
}

SnpFirmware::SnpFirmware(rmp::Rmp& rmp, PhysMem& mem) : rmp_(rmp), mem_(mem) {}

int SnpFirmware::launch_start(uint16_t asid, uint64_t policy) {
    if (state_ != SnpGuestState::none) return fail(SEV_RET_INVALID_GUEST_STATE);
    if (!asid || asid > rmp::kMaxAsid) return fail(SEV_RET_INVALID_PARAM);
    state_ = SnpGuestState::launch;
    asid_ = asid;
    policy_ = policy;
    ld_.fill(0);
    return SEV_RET_SUCCESS;
}

Sha384::Digest SnpFirmware::extend(const Sha384::Digest& ld, const Sha384::Digest& contents, SnpPageType type, Gpa gpa,
                                   bool imi, uint8_t vmpl1, uint8_t vmpl2, uint8_t vmpl3) {
    // PAGE_INFO (firmware ABI, "Layout of the PAGE_INFO structure"), 0x70 bytes.
    uint8_t pi[0x70] = {};
    std::memcpy(pi, ld.data(), 48);
    std::memcpy(pi + 0x30, contents.data(), 48);
    pi[0x60] = 0x70;   // LENGTH, little endian
    pi[0x61] = 0x00;
    pi[0x62] = uint8_t(type);
    pi[0x63] = imi ? 1 : 0;
    pi[0x64] = vmpl3;
    pi[0x65] = vmpl2;
    pi[0x66] = vmpl1;
    const uint64_t g = gpa.raw();
    for (unsigned i = 0; i < 8; ++i) pi[0x68 + i] = uint8_t(g >> (8 * i));
    return Sha384::of(pi, sizeof pi);
}

int SnpFirmware::launch_update(Hpa page, SnpPageType type, bool imi, uint8_t vmpl1, uint8_t vmpl2, uint8_t vmpl3) {
    if (state_ != SnpGuestState::launch) return fail(SEV_RET_INVALID_GUEST_STATE);
    if (page.raw() & kPageMask) return fail(SEV_RET_INVALID_PARAM);
    const Pfn pfn = hpa_to_pfn(page);
    if (!rmp_.covered(pfn)) return fail(SEV_RET_INVALID_PAGE_STATE);
    PgLevel level;
    rmp::RmpEntry e = rmp_.lookup(pfn, &level);
    // The page must be Pre-Guest (assigned, immutable, not validated) and this guest's;
    // launch pages are 4K (VMSA, SECRETS and CPUID pages can only be).
    if (level != PgLevel::k4K) return fail(SEV_RET_INVALID_PAGE_SIZE);
    if (!e.assigned || !e.immutable || e.validated) return fail(SEV_RET_INVALID_PAGE_STATE);
    if (e.asid != asid_) return fail(SEV_RET_INVALID_PAGE_OWNER);
    Sha384::Digest contents{};
    switch (type) {
    case SnpPageType::normal:
    case SnpPageType::vmsa: {
        uint8_t buf[kPageSize];
        mem_.read(page, buf, kPageSize);
        contents = Sha384::of(buf, kPageSize);
        ++stats_.measured_pages;
        break;
    }
    case SnpPageType::zero:
    case SnpPageType::secrets:
        mem_.discard(pfn);   // the firmware writes the page: zeros (SECRETS: key material not modelled)
        break;
    case SnpPageType::unmeasured:
    case SnpPageType::cpuid:
        break;
    }
    ld_ = extend(ld_, contents, type, e.gpa, imi, vmpl1, vmpl2, vmpl3);
    // Pre-Guest -> Guest-Valid: the firmware validates the page for the guest.
    e.immutable = false;
    e.validated = true;
    e.vmsa = type == SnpPageType::vmsa;
    e.perms[1] = vmpl1;
    e.perms[2] = vmpl2;
    e.perms[3] = vmpl3;
    rmp_.firmware_write_entry(pfn, e, "snp_launch_update");
    ++stats_.launch_updates;
    return SEV_RET_SUCCESS;
}

int SnpFirmware::launch_finish() {
    if (state_ != SnpGuestState::launch) return fail(SEV_RET_INVALID_GUEST_STATE);
    state_ = SnpGuestState::running;
    return SEV_RET_SUCCESS;
}

}  // namespace hvsim::psp
