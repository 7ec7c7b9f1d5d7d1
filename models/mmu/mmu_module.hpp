// The x86 MMU of one vCPU as a SystemC module: the translation structures and the 2D
// walker of Mmu, whose paging-structure references leave through the TLM-2.0
// initiator socket `mem` (b_transport, generic payload, 8-byte reads and writes).
//
// A table read's latency is the delay the target annotates. Stores (A/D updates) are
// posted: their delay is dropped. When `mem` is bound to hvsim's MemHierarchy, the
// module calls it directly (the same behaviour without building a payload per
// reference); any other target gets the generic payload.
#pragma once

#include <systemc>
#include <tlm>

#include <cstdint>

#include "models/mem/tlm_mem.hpp"
#include "models/mmu/mmu.hpp"

namespace hvsim::mmu {

class MmuModule : public sc_core::sc_module, public tlm::tlm_bw_transport_if<>, private WalkMemory {
public:
    tlm::tlm_initiator_socket<> mem;

    MmuModule(sc_core::sc_module_name name, const MmuConfig& cfg, uint64_t period_ps);

    Mmu& mmu() { return mmu_; }
    const Mmu& mmu() const { return mmu_; }
    // Transactions sent through the socket (0 while the direct path is in use).
    uint64_t transactions() const { return transactions_; }
    bool direct() const { return hier_ != nullptr; }

    // tlm_bw_transport_if
    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph,
                                       sc_core::sc_time& t) override;
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) override;

private:
    void end_of_elaboration() override;
    // WalkMemory
    uint64_t read64(uint64_t hpa, Cycles& cycles) override;
    void write64(uint64_t hpa, uint64_t v) override;
    uint64_t load64(uint64_t hpa) override;
    sc_core::sc_time transport(tlm::tlm_command cmd, uint64_t hpa, uint64_t& v);

    uint64_t period_ps_;
    Mmu mmu_;
    MemHierarchy* hier_ = nullptr;
    tlm::tlm_generic_payload tr_;
    uint64_t transactions_ = 0;
};

}  // namespace hvsim::mmu
