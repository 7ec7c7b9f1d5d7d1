#include "models/mmu/walk_port.hpp"

#include <cstring>
#include <string>

namespace hvsim::mmu {

WalkPort::WalkPort(uint64_t period_ps, const char* what) : mem("mem"), period_ps_(period_ps), what_(what) {
    mem.bind(*this);
}

const tlm::tlm_dmi* WalkPort::dmi_for(uint64_t hpa, bool write) const {
    for (unsigned i = 0; i < kDmiSlots; ++i) {
        if (!dmi_valid_[i]) continue;
        const tlm::tlm_dmi& d = dmi_[i];
        if (hpa < d.get_start_address() || hpa + 7 > d.get_end_address()) continue;
        if (write ? d.is_write_allowed() : d.is_read_allowed()) return &d;
    }
    return nullptr;
}

// The target said DMI is allowed for this address (tlm_generic_payload::is_dmi_allowed):
// ask for the grant once, for the accesses that follow.
void WalkPort::request_dmi(uint64_t hpa) {
    tlm::tlm_generic_payload tr;
    tr.set_command(tlm::TLM_READ_COMMAND);
    tr.set_address(hpa);
    tlm::tlm_dmi d;
    if (!mem->get_direct_mem_ptr(tr, d) || !d.get_dmi_ptr()) return;
    const unsigned slot = dmi_next_++ % kDmiSlots;
    dmi_[slot] = d;
    dmi_valid_[slot] = true;
    ++dmi_grants_;
}

void WalkPort::invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) {
    for (unsigned i = 0; i < kDmiSlots; ++i)
        if (dmi_valid_[i] && dmi_[i].get_start_address() <= end && start <= dmi_[i].get_end_address()) {
            dmi_valid_[i] = false;
            ++dmi_invalidations_;
        }
}

sc_core::sc_time WalkPort::transport(tlm::tlm_command cmd, uint64_t hpa, uint64_t& v) {
    ++transactions_;
    tr_.set_command(cmd);
    tr_.set_address(hpa);
    tr_.set_data_ptr(reinterpret_cast<uint8_t*>(&v));
    tr_.set_data_length(8);
    tr_.set_streaming_width(8);
    tr_.set_byte_enable_ptr(nullptr);
    tr_.set_dmi_allowed(false);
    tr_.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    mem->b_transport(tr_, d);
    if (tr_.is_response_error())
        SC_REPORT_ERROR(mem.name(), (std::string(what_) + " failed: " + tr_.get_response_string()).c_str());
    if (tr_.is_dmi_allowed()) request_dmi(hpa);
    return d;
}

uint64_t WalkPort::read_socket(uint64_t hpa, Cycles* cycles) {
    uint64_t v = 0;
    if (const tlm::tlm_dmi* d = dmi_for(hpa, false)) {
        ++dmi_accesses_;
        std::memcpy(&v, d->get_dmi_ptr() + (hpa - d->get_start_address()), 8);
        if (cycles) *cycles += to_cycles(d->get_read_latency());
        return v;
    }
    const sc_core::sc_time t = transport(tlm::TLM_READ_COMMAND, hpa, v);
    if (cycles) *cycles += to_cycles(t);
    return v;
}

void WalkPort::write_socket(uint64_t hpa, uint64_t v) {
    if (const tlm::tlm_dmi* d = dmi_for(hpa, true)) {
        ++dmi_accesses_;
        std::memcpy(d->get_dmi_ptr() + (hpa - d->get_start_address()), &v, 8);
        return;
    }
    transport(tlm::TLM_WRITE_COMMAND, hpa, v);
}

}  // namespace hvsim::mmu
