// The RMP as a SystemC module (docs/systemc.md): the table model (rmp.hpp) with its counters,
// and a TLM-2.0 initiator socket `table` through which its own references to the table leave
// the module: the instructions' entry and per-ASID-counter reads and writes as b_transport
// (16 bytes per entry, 8 per counter, at the entry's address in the RMP table), the debug
// views (KVM's lookups, the invariant checks, checked builds' state snapshots) as
// transport_dbg. Bound to hvsim's PhysMemTarget it calls physical memory directly, as
// MmuModule calls MemHierarchy; unbound (a machine built without a simulation) likewise.
//
// An RMP check made on a TLM fill reads its entries through the walker's memory path (the
// core's caches, rmp_checker.hpp), not through this socket: the check is the CPU's walker
// reading the table. The delay a target annotates on the instructions' references is summed
// (delay()) but not charged: each instruction costs its preset cycles (cost.rmpupdate, ...).
#pragma once

#include <systemc>
#include <tlm>

#include <cstdint>

#include "models/mem/tlm_mem.hpp"
#include "models/rmp/rmp.hpp"

namespace hvsim::rmp {

class RmpModule final : public sc_core::sc_module, public tlm::tlm_bw_transport_if<>, private RmpTableMemory {
public:
    tlm::tlm_initiator_socket<32, tlm::tlm_base_protocol_types, 1, sc_core::SC_ZERO_OR_MORE_BOUND> table;

    RmpModule(sc_core::sc_module_name name, const RmpConfig& cfg, PhysMem& mem);

    Rmp& rmp() { return rmp_; }
    const Rmp& rmp() const { return rmp_; }
    // Transactions sent through the socket (0 while the direct path is in use).
    uint64_t transactions() const { return transactions_; }
    uint64_t debug_transactions() const { return debug_transactions_; }
    bool direct() const { return direct_; }
    sc_core::sc_time delay() const { return delay_; }

    // tlm_bw_transport_if
    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph,
                                       sc_core::sc_time& t) override;
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) override;

private:
    void end_of_elaboration() override;
    // RmpTableMemory
    void read(uint64_t hpa, void* dst, unsigned n, bool debug) override;
    void write(uint64_t hpa, const void* src, unsigned n) override;
    void transport(tlm::tlm_command cmd, uint64_t hpa, uint8_t* p, unsigned n, bool debug);

    Rmp rmp_;
    tlm::tlm_generic_payload tr_;
    bool direct_ = true;
    uint64_t transactions_ = 0, debug_transactions_ = 0;
    sc_core::sc_time delay_ = sc_core::SC_ZERO_TIME;
};

}  // namespace hvsim::rmp
