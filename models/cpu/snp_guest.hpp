// The SEV-SNP side of the guest kernel (arch/x86/coco/sev/core.c, the EFI unaccepted
// memory of mm/page_alloc.c): it validates private memory with PVALIDATE before using
// it, and its #VC handler takes what the RMP check raises.
//
// Acceptance, per scenario (snp.accept):
//  - lazy: memory is accepted on first touch, in the 2 MB units of the unaccepted-memory
//    bitmap (EFI_UNACCEPTED_UNIT_SIZE): the touch raises #VC PAGE_NOT_VALIDATED, and the
//    handler runs snp_accept_memory() over the unit: a page-state change to private
//    (GHCB VMGEXIT -> KVM_HC_MAP_GPA_RANGE), then PVALIDATE 2M, falling back to 512 x 4K
//    on FAIL_SIZEMISMATCH (pval_pages()). Upstream Linux accepts from the page allocator
//    before first use rather than from #VC (it panics on an unexpected 0x404); the #VC
//    is the model's trigger for "first use", the work done is Linux's.
//  - eager: the first #VC accepts every RAM range the guest has (what accepting all
//    memory at boot does; charged when the first private page is touched).
// A #VC on a page of a unit already accepted is a page that became private later (a
// shared -> private conversion): the guest validates that 4K page (PVALIDATE after PSC,
// __set_pages_state()).
//
// PVALIDATE runs on the vCPU: its gPA goes through the nested translation (taking NPFs,
// so KVM faults the page in and prepares it) and the RMP executes it. An NPF the
// instruction raises (SIZEM: a 2M RMP entry under a 4K request) goes to the host, which
// PSMASHes, and the instruction is retried.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "models/cpu/vcpu.hpp"
#include "models/rmp/rmp.hpp"

namespace hvsim::cpu {

struct SnpGuestConfig {
    enum class Accept : uint8_t { lazy, eager } accept = Accept::lazy;
    bool validate_2m = true;                       // try PVALIDATE 2M first (Linux does when aligned)
    // Page-state changes through the GHCB MSR protocol (one 4K page per VMGEXIT, what the
    // early boot code uses: early_set_pages_state()) instead of a GHCB request per range.
    bool psc_msr = false;
    std::vector<std::pair<Gpa, uint64_t>> ram;     // the guest's RAM (its e820 map: the memslots)
    Cycles vc_cycles = 0;                          // cost.snp_vc: #VC handled in the guest
    Cycles vmgexit_cycles = 0;                     // cost.snp_vmgexit: GHCB protocol over a plain exit
    Cycles pvalidate_4k = 0, pvalidate_2m = 0;     // cost.pvalidate_4k / cost.pvalidate_2m
    Cycles rmpadjust_4k = 0;                       // cost.rmpadjust
    uint8_t vmpl = 0;                              // the VMPL the guest kernel runs at
};

struct SnpGuestStats {
    uint64_t vc = 0;               // #VC taken (PAGE_NOT_VALIDATED)
    uint64_t vmmcall_vc = 0;       // #VC taken for a VMMCALL (hypercall through the GHCB)
    uint64_t psc_requests = 0;     // page-state-change VMGEXITs
    uint64_t pvalidate = 0;        // PVALIDATE executed
    uint64_t pvalidate_2m = 0;
    uint64_t rescinds = 0;         // of those, PVALIDATE(0) before a conversion to shared
    uint64_t size_mismatch = 0;    // PVALIDATE 2M -> FAIL_SIZEMISMATCH, redone as 512 x 4K
    uint64_t no_update = 0;        // PVALIDATE with CF = 1 (Linux terminates; a race here)
    uint64_t insn_npfs = 0;        // NPFs raised by PVALIDATE itself (RMP/SIZEM)
    uint64_t units_accepted = 0;   // 2 MB units of unaccepted memory accepted
    uint64_t terminated = 0;       // GHCB termination requests (an unexpected #VC, a failed PVALIDATE)
    uint64_t rmpadjust = 0;        // RMPADJUST executed (VMSA bit set or cleared)
    uint64_t ap_create = 0;        // AP Creation VMGEXITs issued (create and destroy)
    uint64_t ap_create_failed = 0; // AP bring-ups that failed (RMPADJUST refused or a GHCB error)
};

// The result of an AP bring-up step as the guest sees it (the step's `status`): 0, the
// RMPADJUST status that stopped it (1..6), or kApStatusGhcb | the GHCB error KVM returned.
inline constexpr uint64_t kApStatusGhcb = 0x100;

class SnpGuest final : public VcHandler {
public:
    SnpGuest(const SnpGuestConfig& cfg, rmp::Rmp& rmp, const rmp::GuestCtx& g);
    bool handle_vc(Vcpu& v, Gva gva, Gpa gpa, uint64_t code) override;
    // vc_handle_vmmcall(): #VC then a VMGEXIT carrying the hypercall in the GHCB.
    void before_hypercall(Vcpu& v) override;
    // __set_pages_state(shared): PVALIDATE(0) of every page the guest holds validated in the
    // range (2M where a whole aligned 2 MiB is), before the page-state change.
    bool before_map_gpa_range(Vcpu& v, Gpa gpa, uint64_t npages, bool to_private) override;
    // wakeup_cpu_via_vmgexit() / the AP shutdown of kexec, as a step names them: the
    // call number below (no hypervisor knows it) with a0 = the VMSA's gPA, a1 = the APIC
    // ID, a2 = the request (SVM_VMGEXIT_AP_CREATE 1 / AP_DESTROY 2) | the VMPL << 8 the code
    // runs at | kApGpaGiven (a0 is meaningful; else destroy uses the AP's current VMSA).
    static constexpr uint64_t kApControlCall = 0x736e700000000013ull;
    static constexpr uint64_t kApGpaGiven = 1ull << 16;
    std::optional<bool> guest_call(Vcpu& v, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
                                   uint64_t* ret) override;
    const SnpGuestStats& stats() const { return stats_; }

private:
    // snp_set_vmsa(): RMPADJUST of the page to VMPL1 with the VMSA bit set or clear (the
    // page first accepted, as the page allocator hands out accepted memory). The status.
    int snp_set_vmsa(Vcpu& v, Gpa vmsa, uint8_t vmpl, bool make_vmsa, bool* stopped);
    // vmgexit_ap_control(): the AP Creation NAE event; the GHCB's SW_EXITINFO2 on an error.
    bool vmgexit_ap_control(Vcpu& v, uint32_t event, Gpa vmsa, uint64_t apic_id, uint64_t* ghcb_err);
    std::map<uint64_t, Gpa> vmsa_of_;   // per_cpu(sev_vmsa): each AP's current VMSA page
    // snp_accept_memory() over [start, end): PSC to private, then validation.
    bool accept(Vcpu& v, Gpa start, Gpa end);
    // pval_pages() for one range entry of `size`: PVALIDATE, the 2M -> 4K fallback.
    bool pvalidate(Vcpu& v, Gpa gpa, PgLevel size, bool validate = true);
    bool pvalidate_one(Vcpu& v, Gpa gpa, PgLevel size, int* eax, bool validate = true);
    // The guest's own view: a page is validated iff its 2 MB unit was accepted and it has
    // not been rescinded since (made shared, or made private again and not yet validated).
    bool holds_validated(uint64_t page) const;
    bool psc(Vcpu& v, Gpa start, uint64_t npages);
    bool accept_unit(Vcpu& v, uint64_t unit);

    SnpGuestConfig cfg_;
    rmp::Rmp& rmp_;
    rmp::GuestCtx g_;
    std::set<uint64_t> accepted_;   // 2 MB units (gPA >> 21) accepted
    std::set<uint64_t> rescinded_;  // 4K pages (gPA >> 12) of accepted units not validated now
    bool eager_done_ = false;
    SnpGuestStats stats_;
};

}  // namespace hvsim::cpu
