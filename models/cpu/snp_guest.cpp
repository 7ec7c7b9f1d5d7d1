#include "models/cpu/snp_guest.hpp"

#include <algorithm>

namespace hvsim::cpu {

namespace {
constexpr uint64_t k2M = 2ull << 20;
constexpr unsigned kUnitShift = 21;
// The guest ABI of the page-state change as KVM forwards it (include/uapi/linux/kvm_para.h).
constexpr uint64_t KVM_HC_MAP_GPA_RANGE = 12;
constexpr uint64_t KVM_MAP_GPA_RANGE_ENCRYPTED = 1ull << 4;
constexpr uint64_t KVM_MAP_GPA_RANGE_PAGE_SZ_2M = 1ull << 0;
// #NPF error-code bits of an instruction's own RMP fault: a present, encrypted, final-gPA
// user access (what the NPT walk of a guest access reports, mmu.hpp).
constexpr uint64_t kInsnNpfBits = mmu::PFERR_PRESENT | mmu::PFERR_USER | mmu::PFERR_GUEST_FINAL |
                                  mmu::PFERR_GUEST_ENC;
constexpr unsigned kMaxInsnRetries = 4;
// The AP Creation NAE event (GHCB specification; arch/x86/include/uapi/asm/svm.h).
constexpr uint64_t SVM_VMGEXIT_AP_CREATION = 0x80000013ull;
constexpr uint32_t SVM_VMGEXIT_AP_DESTROY = 2;   // AP_CREATE (1) and other requests pass through as given
// The new VMSA's SEV_FEATURES, passed in RAX (SVM_SEV_FEAT_SNP_ACTIVE).
constexpr uint64_t kSevFeatSnpActive = 1;
// snp_set_vmsa(): RMPADJUST's target VMPL; a VMSA can only be made for a VMPL above the
// caller's, and Linux at VMPL0 names VMPL1 with no permissions (attrs = 1 | VMSA bit).
constexpr uint8_t kVmsaTargetVmpl = 1;
}  // namespace

SnpGuest::SnpGuest(const SnpGuestConfig& cfg, rmp::Rmp& rmp, const rmp::GuestCtx& g)
    : cfg_(cfg), rmp_(rmp), g_(g) {}

bool SnpGuest::handle_vc(Vcpu& v, Gva, Gpa gpa, uint64_t code) {
    ++stats_.vc;
    v.ctx().charge("vc", cfg_.vc_cycles);
    // vc_handle_exitcode() has no case for PAGE_NOT_VALIDATED: anything but the accept
    // path is a termination request (GHCB_TERM_REASON general).
    if (code != rmp::SVM_VMGEXIT_PAGE_NOT_VALIDATED) {
        ++stats_.terminated;
        return false;
    }
    const uint64_t unit = gpa.raw() >> kUnitShift;
    if (cfg_.accept == SnpGuestConfig::Accept::eager && !eager_done_) {
        eager_done_ = true;
        const bool was_accepted = accepted_.count(unit) != 0;
        for (const auto& [base, size] : cfg_.ram) {
            const uint64_t first = base.raw() >> kUnitShift, last = (base.raw() + size - 1) >> kUnitShift;
            for (uint64_t u = first; u <= last; ++u)
                if (!accepted_.count(u) && !accept_unit(v, u)) return false;
        }
        if (!was_accepted && accepted_.count(unit)) return true;   // validated just now
    }
    if (!accepted_.count(unit)) return accept_unit(v, unit);
    // A page made private after its unit was accepted: validate it (PVALIDATE after PSC).
    if (!pvalidate(v, Gpa(gpa.raw() & ~kPageMask), PgLevel::k4K)) return false;
    rescinded_.erase(gpa.raw() >> kPageShift);
    return true;
}

bool SnpGuest::holds_validated(uint64_t page) const {
    return accepted_.count(page >> (kUnitShift - kPageShift)) && !rescinded_.count(page);
}

bool SnpGuest::before_map_gpa_range(Vcpu& v, Gpa gpa, uint64_t npages, bool to_private) {
    // To private: the PSC comes first and validation after it (on first use here, see
    // handle_vc()). To shared: validation is rescinded first, so the page is never
    // validated while the hypervisor may own it (__set_pages_state(); early boot code
    // does the same per 4K page, early_set_pages_state()).
    if (to_private) return true;
    const uint64_t first = gpa.raw() >> kPageShift, end = first + npages;
    constexpr uint64_t kPagesPer2M = k2M >> kPageShift;
    for (uint64_t p = first; p < end;) {
        const bool big = cfg_.validate_2m && !cfg_.psc_msr && is_aligned(p, kPagesPer2M) && end - p >= kPagesPer2M &&
                         [&] {
                             for (uint64_t i = 0; i < kPagesPer2M; ++i)
                                 if (!holds_validated(p + i)) return false;
                             return true;
                         }();
        if (big) {
            if (!pvalidate(v, Gpa(p << kPageShift), PgLevel::k2M, false)) return false;
            for (uint64_t i = 0; i < kPagesPer2M; ++i) rescinded_.insert(p + i);
            p += kPagesPer2M;
            continue;
        }
        if (holds_validated(p)) {
            if (!pvalidate(v, Gpa(p << kPageShift), PgLevel::k4K, false)) return false;
            rescinded_.insert(p);
        }
        ++p;
    }
    return true;
}

void SnpGuest::before_hypercall(Vcpu& v) {
    ++stats_.vmmcall_vc;
    v.ctx().charge("vc", cfg_.vc_cycles);
    v.ctx().charge("vmgexit", cfg_.vmgexit_cycles);
}

bool SnpGuest::accept_unit(Vcpu& v, uint64_t unit) {
    accepted_.insert(unit);   // first: another vCPU's #VC in this unit validates its page only
    ++stats_.units_accepted;
    // The unit clipped to the RAM range that holds it.
    const uint64_t s = unit << kUnitShift, e = s + k2M;
    for (const auto& [base, size] : cfg_.ram) {
        const uint64_t lo = std::max(s, base.raw()), hi = std::min(e, base.raw() + size);
        if (lo < hi && !accept(v, Gpa(lo), Gpa(hi))) return false;
    }
    return true;
}

bool SnpGuest::psc(Vcpu& v, Gpa start, uint64_t npages) {
    // One GHCB page-state-change request; KVM forwards it as KVM_HC_MAP_GPA_RANGE.
    ++stats_.psc_requests;
    v.ctx().charge("vmgexit", cfg_.vmgexit_cycles);
    uint64_t attrs = KVM_MAP_GPA_RANGE_ENCRYPTED;
    if (npages == 512 && is_aligned(start.raw(), k2M)) attrs |= KVM_MAP_GPA_RANGE_PAGE_SZ_2M;
    uint64_t ret = 0;
    if (!v.guest_hypercall(KVM_HC_MAP_GPA_RANGE, start.raw(), npages, attrs, &ret)) return false;
    if (ret != 0) {   // a non-zero SW_EXITINFO2: the guest terminates
        ++stats_.terminated;
        return false;
    }
    return true;
}

bool SnpGuest::accept(Vcpu& v, Gpa start, Gpa end) {
    const uint64_t npages = (end.raw() - start.raw()) >> kPageShift;
    if (cfg_.psc_msr) {
        // early_set_pages_state(): per 4K page, PSC over the GHCB MSR (KVM forwards each as
        // a one-page KVM_HC_MAP_GPA_RANGE), then PVALIDATE 4K.
        for (uint64_t a = start.raw(); a < end.raw(); a += kPageSize)
            if (!psc(v, Gpa(a), 1) || !pvalidate(v, Gpa(a), PgLevel::k4K)) return false;
        return true;
    }
    if (!psc(v, start, npages)) return false;
    for (uint64_t a = start.raw(); a < end.raw();) {
        const bool big = cfg_.validate_2m && is_aligned(a, k2M) && end.raw() - a >= k2M;
        if (!pvalidate(v, Gpa(a), big ? PgLevel::k2M : PgLevel::k4K)) return false;
        a += big ? k2M : kPageSize;
    }
    return true;
}

// One PVALIDATE: translate, execute, and hand an NPF it raises to the host (retrying
// after, as the guest re-executes the faulting instruction).
bool SnpGuest::pvalidate_one(Vcpu& v, Gpa gpa, PgLevel size, int* eax, bool validate) {
    for (unsigned tries = 0; tries < kMaxInsnRetries; ++tries) {
        const auto tr = v.translate_for_insn(gpa);
        if (!tr) return false;
        ++stats_.pvalidate;
        if (size == PgLevel::k2M) ++stats_.pvalidate_2m;
        if (!validate) ++stats_.rescinds;
        v.ctx().charge("pvalidate", size == PgLevel::k2M ? cfg_.pvalidate_2m : cfg_.pvalidate_4k);
        const rmp::RmpResult r = rmp_.pvalidate(g_, gpa, tr->hpa, tr->page_size, size, validate);
        if (r.kind == rmp::RmpResult::Kind::npf) {
            ++stats_.insn_npfs;
            if (!v.insn_npf(gpa, kInsnNpfBits | r.npf_bits)) return false;
            continue;
        }
        if (r.cf) ++stats_.no_update;
        *eax = r.eax;
        return true;
    }
    ++stats_.terminated;
    return false;
}

bool SnpGuest::pvalidate(Vcpu& v, Gpa gpa, PgLevel size, bool validate) {
    int eax = 0;
    if (!pvalidate_one(v, gpa, size, &eax, validate)) return false;
    if (eax == rmp::RMP_FAIL_SIZEMISMATCH && size == PgLevel::k2M) {
        // pval_pages(): a 2M request over 4K RMP entries is redone page by page.
        ++stats_.size_mismatch;
        for (uint64_t i = 0; i < 512; ++i) {
            if (!pvalidate_one(v, gpa + i * kPageSize, PgLevel::k4K, &eax, validate)) return false;
            if (eax != 0) {
                ++stats_.terminated;
                return false;
            }
        }
        return true;
    }
    if (eax != 0) {
        ++stats_.terminated;   // GHCB_TERM_PVALIDATE
        return false;
    }
    return true;
}

}  // namespace hvsim::cpu

namespace hvsim::cpu {

int SnpGuest::snp_set_vmsa(Vcpu& v, Gpa vmsa, uint8_t vmpl, bool make_vmsa, bool* stopped) {
    // snp_alloc_vmsa_page() takes the page from the allocator, which accepts memory before
    // handing it out (accept_memory()).
    const uint64_t unit = vmsa.raw() >> kUnitShift;
    if (!accepted_.count(unit) && !accept_unit(v, unit)) {
        *stopped = true;
        return 0;
    }
    rmp::GuestCtx g = g_;
    g.vmpl = vmpl;
    for (unsigned tries = 0; tries < kMaxInsnRetries; ++tries) {
        const auto tr = v.translate_for_insn(vmsa);
        if (!tr) break;
        ++stats_.rmpadjust;
        v.ctx().charge("rmpadjust", cfg_.rmpadjust_4k);
        const rmp::RmpResult r =
            rmp_.rmpadjust(g, vmsa, tr->hpa, tr->page_size, PgLevel::k4K, kVmsaTargetVmpl, 0, make_vmsa);
        if (r.kind == rmp::RmpResult::Kind::npf) {
            // Not this guest's page, or a 2M RMP entry (SIZEM): the host repairs what it can.
            ++stats_.insn_npfs;
            if (!v.insn_npf(vmsa, kInsnNpfBits | r.npf_bits)) break;
            continue;
        }
        if (r.kind == rmp::RmpResult::Kind::vc) {
            // An unvalidated page (J3): the #VC handler validates it, the guest retries.
            if (!handle_vc(v, Gva(vmsa.raw()), vmsa, uint64_t(r.eax))) break;
            continue;
        }
        return r.eax;
    }
    *stopped = true;
    return 0;
}

bool SnpGuest::vmgexit_ap_control(Vcpu& v, uint32_t event, Gpa vmsa, uint64_t apic_id, uint64_t* ghcb_err) {
    ++stats_.ap_create;
    // Guest code writes the GHCB and issues VMGEXIT itself (no #VC first).
    v.ctx().charge("vmgexit", cfg_.vmgexit_cycles);
    uint64_t ret = 0;
    if (!v.guest_hypercall(SVM_VMGEXIT_AP_CREATION, apic_id << 32 | event, vmsa.raw(), kSevFeatSnpActive, &ret))
        return false;
    // The host's answer: SW_EXITINFO1[31:0] (non-zero: error) and SW_EXITINFO2 above it.
    *ghcb_err = uint32_t(ret) ? (ret >> 32) : 0;
    if (uint32_t(ret) && !*ghcb_err) *ghcb_err = uint32_t(ret);
    return true;
}

// wakeup_cpu_via_vmgexit() (create) and the AP shutdown before kexec (destroy), in
// arch/x86/coco/sev/core.c.
std::optional<bool> SnpGuest::guest_call(Vcpu& v, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
                                         uint64_t* ret) {
    if (nr != kApControlCall) return std::nullopt;
    const uint32_t request = uint32_t(a2 & 0xff);
    const uint8_t vmpl = uint8_t((a2 >> 8) & 0xff);
    const uint64_t apic_id = a1;
    bool stopped = false;
    uint64_t err = 0;
    *ret = 0;
    const auto cur = vmsa_of_.find(apic_id);
    const bool has_cur = cur != vmsa_of_.end();
    const Gpa cur_vmsa = has_cur ? cur->second : Gpa(0);
    if (request == SVM_VMGEXIT_AP_DESTROY) {
        const Gpa vmsa = (a2 & kApGpaGiven) ? Gpa(a0) : cur_vmsa;
        if (!vmgexit_ap_control(v, SVM_VMGEXIT_AP_DESTROY, vmsa, apic_id, &err)) return false;
        if (err) {
            ++stats_.ap_create_failed;
            *ret = kApStatusGhcb | err;
            return true;
        }
        // The AP runs no more: its VMSA page loses the VMSA bit before it is freed
        // (snp_cleanup_vmsa()).
        if (has_cur) {
            snp_set_vmsa(v, cur_vmsa, vmpl, false, &stopped);
            vmsa_of_.erase(apic_id);
        }
        return !stopped;
    }
    const Gpa vmsa(a0);
    const int rc = snp_set_vmsa(v, vmsa, vmpl, true, &stopped);
    if (stopped) return false;
    if (rc) {
        // "set VMSA page failed": the page is freed, no VMGEXIT, the AP is not started.
        ++stats_.ap_create_failed;
        *ret = uint64_t(rc);
        return true;
    }
    if (!vmgexit_ap_control(v, request, vmsa, apic_id, &err)) return false;
    bool created = true;
    if (err) {
        // "SNP AP Creation error": the new page gives up the VMSA bit (snp_cleanup_vmsa()).
        ++stats_.ap_create_failed;
        *ret = kApStatusGhcb | err;
        snp_set_vmsa(v, vmsa, vmpl, false, &stopped);
        if (stopped) return false;
        created = false;
    }
    // Any previous VMSA of the AP is retired either way (Linux allocates a new page each
    // time; a step naming the current page again keeps it).
    if (has_cur && cur_vmsa != vmsa) {
        snp_set_vmsa(v, cur_vmsa, vmpl, false, &stopped);
        if (stopped) return false;
    }
    if (created) vmsa_of_[apic_id] = vmsa;
    else vmsa_of_.erase(apic_id);
    return true;
}

}  // namespace hvsim::cpu
