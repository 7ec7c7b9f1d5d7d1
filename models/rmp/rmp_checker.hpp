// The RMP check as the x86 walker's physical-access checker: one per vCPU, carrying the
// running guest's ASID and VMPL. Its entry reads go through the walker's WalkMemory, so
// they are timed by the same caches as the walk's own references.
#pragma once

#include "models/mmu/mmu.hpp"
#include "models/rmp/rmp.hpp"

namespace hvsim::rmp {

class RmpChecker final : public mmu::PhysAccessChecker {
public:
    RmpChecker(Rmp& rmp, const GuestCtx& g) : rmp_(rmp), g_(g) {}
    void set_vmpl(uint8_t vmpl) { g_.vmpl = vmpl; }
    const GuestCtx& guest() const { return g_; }

    mmu::PhysCheckResult check(const mmu::PhysCheck& c, mmu::WalkMemory& mem, Cycles& cycles) override {
        const Access a = c.at == mmu::AccessType::write ? Access::write
                         : c.at == mmu::AccessType::fetch ? Access::fetch
                                                          : Access::read;
        const RmpResult r = rmp_.check_guest(g_, c.gpa, c.hpa, c.nested_level, a, c.enc, c.table, &mem, cycles);
        mmu::PhysCheckResult out;
        if (r.kind == RmpResult::Kind::npf) {
            out.kind = mmu::PhysCheckResult::Kind::npf;
            out.bits = r.npf_bits;   // NPF_RMP is PFERR_GUEST_RMP (bit 31)
        } else if (r.kind == RmpResult::Kind::vc) {
            out.kind = mmu::PhysCheckResult::Kind::vc;
            out.bits = SVM_VMGEXIT_PAGE_NOT_VALIDATED;
        }
        return out;
    }

private:
    Rmp& rmp_;
    GuestCtx g_;
};

static_assert(NPF_RMP == mmu::PFERR_GUEST_RMP);

}  // namespace hvsim::rmp
