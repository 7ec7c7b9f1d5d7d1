#include "models/rmp/rmp_module.hpp"

#include "models/mem/debug_port.hpp"
#include <string>

namespace hvsim::rmp {

RmpModule::RmpModule(sc_core::sc_module_name name, const RmpConfig& cfg, PhysMem& mem)
    : sc_module(name), table("table"), rmp_(cfg, mem) {
    table.bind(*this);
}

// Bound to hvsim's physical memory (or not bound at all): the table is read and written in
// place, exactly as without the module; any other target gets the transactions.
void RmpModule::end_of_elaboration() {
    direct_ = table.size() == 0 || dynamic_cast<PhysMemTarget*>(table.operator->()) != nullptr;
    rmp_.set_table_memory(direct_ ? nullptr : static_cast<RmpTableMemory*>(this));
}

void RmpModule::transport(tlm::tlm_command cmd, uint64_t hpa, uint8_t* p, unsigned n, bool debug) {
    set_payload(tr_, cmd, hpa, p, n);
    if (debug) {
        ++debug_transactions_;
        if (table->transport_dbg(tr_) != n)
            SC_REPORT_ERROR(name(), "RMP table debug access failed");
        return;
    }
    ++transactions_;
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    table->b_transport(tr_, d);
    delay_ += d;
    if (tr_.is_response_error())
        SC_REPORT_ERROR(name(), (std::string("RMP table access failed: ") + tr_.get_response_string()).c_str());
}

void RmpModule::read(uint64_t hpa, void* dst, unsigned n, bool debug) {
    transport(tlm::TLM_READ_COMMAND, hpa, static_cast<uint8_t*>(dst), n, debug);
}

void RmpModule::write(uint64_t hpa, const void* src, unsigned n) {
    // The payload's data pointer is not const; a write does not change the bytes it points to.
    transport(tlm::TLM_WRITE_COMMAND, hpa, static_cast<uint8_t*>(const_cast<void*>(src)), n, false);
}

tlm::tlm_sync_enum RmpModule::nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) {
    return tlm::TLM_COMPLETED;
}

void RmpModule::invalidate_direct_mem_ptr(sc_dt::uint64, sc_dt::uint64) {}

}  // namespace hvsim::rmp
