#include "models/tdx/seam_module.hpp"

#include "models/mem/debug_port.hpp"
#include <cstring>
#include <string>
#include <vector>

namespace hvsim::tdx {

SeamModule::SeamModule(sc_core::sc_module_name name, PhysMem& phys) : sc_module(name), mem("mem"), tdx_(phys) {
    mem.bind(*this);
}

// Bound to hvsim's physical memory (or not bound at all): the module reads and writes it in
// place, exactly as the plain model does; any other target gets the references.
void SeamModule::end_of_elaboration() {
    direct_ = mem.size() == 0 || dynamic_cast<PhysMemTarget*>(mem.operator->()) != nullptr;
    tdx_.set_memory(direct_ ? nullptr : static_cast<TdxMemory*>(this));
}

const tlm::tlm_dmi* SeamModule::dmi_for(uint64_t hpa, unsigned n, bool write) const {
    for (unsigned i = 0; i < kDmiSlots; ++i) {
        const tlm::tlm_dmi& d = dmi_[i];
        if (dmi_valid_[i] && hpa >= d.get_start_address() && hpa + n - 1 <= d.get_end_address() &&
            (write ? d.is_write_allowed() : d.is_read_allowed()))
            return &d;
    }
    return nullptr;
}

void SeamModule::transport(tlm::tlm_command cmd, uint64_t hpa, uint8_t* p, unsigned n, bool fill) {
    const bool w = cmd == tlm::TLM_WRITE_COMMAND;
    ++(w ? writes_ : reads_);
    bytes_ += n;
    if (const tlm::tlm_dmi* d = dmi_for(hpa, n, w)) {
        ++dmi_accesses_;
        uint8_t* q = d->get_dmi_ptr() + (hpa - d->get_start_address());
        if (w) std::memcpy(q, p, n);
        else std::memcpy(p, q, n);
        delay_ += w ? d->get_write_latency() : d->get_read_latency();
        return;
    }
    set_payload(tr_, cmd, hpa, p, n);
    if (fill) tr_.set_extension(&fill_ext_);
    sc_core::sc_time t = sc_core::SC_ZERO_TIME;
    mem->b_transport(tr_, t);
    if (fill) tr_.clear_extension(&fill_ext_);
    delay_ += t;
    if (tr_.is_response_error())
        SC_REPORT_ERROR(name(), (std::string("TDX module memory access failed: ") + tr_.get_response_string()).c_str());
    // The target offers direct access to the range: take a grant for later references.
    if (tr_.is_dmi_allowed()) {
        tlm::tlm_dmi d;
        tr_.set_address(hpa);
        if (mem->get_direct_mem_ptr(tr_, d) && d.get_dmi_ptr()) {
            ++dmi_grants_;
            dmi_[dmi_next_] = d;
            dmi_valid_[dmi_next_] = true;
            dmi_next_ = (dmi_next_ + 1) % kDmiSlots;
        }
    }
}

void SeamModule::debug(tlm::tlm_command cmd, uint64_t hpa, uint8_t* p, unsigned n) {
    ++debug_transactions_;
    if (debug_transport(mem, cmd, Hpa(hpa), p, n) != n) SC_REPORT_ERROR(name(), "TDX module debug access failed");
}

void SeamModule::read(uint64_t hpa, void* dst, unsigned n, bool dbg) {
    if (dbg) return debug(tlm::TLM_READ_COMMAND, hpa, static_cast<uint8_t*>(dst), n);
    transport(tlm::TLM_READ_COMMAND, hpa, static_cast<uint8_t*>(dst), n, false);
}

void SeamModule::write(uint64_t hpa, const void* src, unsigned n) {
    // The payload's data pointer is not const; a write does not change the bytes it points to.
    transport(tlm::TLM_WRITE_COMMAND, hpa, static_cast<uint8_t*>(const_cast<void*>(src)), n, false);
}

void SeamModule::fill(uint64_t hpa, uint8_t byte, unsigned n) {
    std::vector<uint8_t> buf(n, byte);
    transport(tlm::TLM_WRITE_COMMAND, hpa, buf.data(), n, true);
}

tlm::tlm_sync_enum SeamModule::nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) {
    return tlm::TLM_COMPLETED;
}

void SeamModule::invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) {
    for (unsigned i = 0; i < kDmiSlots; ++i)
        if (dmi_valid_[i] && dmi_[i].get_start_address() <= end && start <= dmi_[i].get_end_address()) {
            dmi_valid_[i] = false;
            ++dmi_invalidations_;
        }
}

}  // namespace hvsim::tdx
