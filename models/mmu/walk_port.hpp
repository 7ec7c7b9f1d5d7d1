// The memory port of a table-walker module (the x86 MMU, the arm64 stage-1/stage-2 MMU):
// the walker's paging-structure reads and its A/D (access flag / dirty) writes leave
// through the TLM-2.0 initiator socket `mem` as 8-byte generic-payload transactions.
//
// Three ways out, one behaviour:
//   - direct: when `mem` is bound to hvsim's MemHierarchy (found at the end of
//     elaboration), the port calls it directly: the socket would add a virtual call and a
//     payload per reference and nothing else;
//   - DMI: a target that grants direct memory access (tlm_dmi, IEEE 1666-2011 11.2.8) is
//     read and written through its pointer with the latency it granted; the grants are
//     dropped when the target invalidates them;
//   - b_transport: everything else; a read costs the delay the target annotates. Writes
//     are posted (the walker's locked update of the line it just read): their delay is
//     dropped.
#pragma once

#include <systemc>
#include <tlm>

#include <array>
#include <cstdint>

#include "models/mem/tlm_mem.hpp"
#include "models/mmu/mmu.hpp"

namespace hvsim::mmu {

class WalkPort : public tlm::tlm_bw_transport_if<>, protected WalkMemory {
public:
    tlm::tlm_initiator_socket<> mem;

    // b_transport calls made (none while the direct path or DMI serves the references).
    uint64_t transactions() const { return transactions_; }
    bool direct() const { return hier_ != nullptr; }
    uint64_t dmi_grants() const { return dmi_grants_; }
    uint64_t dmi_accesses() const { return dmi_accesses_; }
    uint64_t dmi_invalidations() const { return dmi_invalidations_; }

    // tlm_bw_transport_if
    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) override;

protected:
    // Constructed by the owning module (so the socket is named <module>.mem); `what` names
    // the references in an error report ("page-table access", "descriptor access").
    WalkPort(uint64_t period_ps, const char* what);
    // From the owner's end_of_elaboration(): the direct path if `mem` is bound to hvsim's
    // cache hierarchy.
    void find_direct_target() { hier_ = dynamic_cast<MemHierarchy*>(mem.operator->()); }

    // WalkMemory
    uint64_t read64(uint64_t hpa, Cycles& cycles) override {
        if (hier_) return hier_->read64(hpa, cycles);
        return read_socket(hpa, &cycles);
    }
    void write64(uint64_t hpa, uint64_t v) override {
        if (hier_) return hier_->write64(hpa, v);
        write_socket(hpa, v);
    }
    uint64_t load64(uint64_t hpa) override {
        if (hier_) return hier_->load64(hpa);
        return read_socket(hpa, nullptr);
    }
    void prefetch(uint64_t hpa) override {
        if (hier_) hier_->prefetch(hpa);
    }
    uint64_t read64_pair(uint64_t hpa, Cycles& cycles, uint64_t& next) override {
        if (!hier_) return WalkMemory::read64_pair(hpa, cycles, next);
        const uint64_t v = hier_->read64(hpa, cycles);
        next = hier_->load64(hpa + 8);
        return v;
    }

private:
    // A few grants (a walk touches one table page per level; PhysMemTarget grants a page).
    static constexpr unsigned kDmiSlots = 8;
    const tlm::tlm_dmi* dmi_for(uint64_t hpa, bool write) const;
    void request_dmi(uint64_t hpa);
    uint64_t read_socket(uint64_t hpa, Cycles* cycles);
    void write_socket(uint64_t hpa, uint64_t v);
    sc_core::sc_time transport(tlm::tlm_command cmd, uint64_t hpa, uint64_t& v);
    Cycles to_cycles(const sc_core::sc_time& t) const { return (t.value() + period_ps_ - 1) / period_ps_; }

    uint64_t period_ps_;
    const char* what_;
    MemHierarchy* hier_ = nullptr;
    tlm::tlm_generic_payload tr_;
    std::array<tlm::tlm_dmi, kDmiSlots> dmi_;
    std::array<bool, kDmiSlots> dmi_valid_{};
    unsigned dmi_next_ = 0;
    uint64_t transactions_ = 0, dmi_grants_ = 0, dmi_accesses_ = 0, dmi_invalidations_ = 0;
};

}  // namespace hvsim::mmu
