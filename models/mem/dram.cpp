#include "models/mem/dram.hpp"

#include <bit>
#include <stdexcept>

namespace hvsim {

DramTiming::DramTiming(const DramConfig& cfg) : cfg_(cfg) {
    if (cfg.model == DramConfig::Model::ddr5) {
        if (!std::has_single_bit(cfg.banks)) throw std::invalid_argument("dram: banks must be a power of two");
        if (!std::has_single_bit(cfg.page_bytes) || cfg.page_bytes < 64)
            throw std::invalid_argument("dram: page size must be a power of two of at least 64 bytes");
        page_shift_ = unsigned(std::countr_zero(cfg.page_bytes));
        open_row_.assign(cfg.banks, kClosed);
    }
}

Cycles DramTiming::access(uint64_t addr, bool write) {
    ++(write ? stats_.writes : stats_.reads);
    if (cfg_.model == DramConfig::Model::fixed) return cfg_.fixed_cycles;
    // Consecutive pages go to consecutive banks; the rest of the address selects the row.
    const uint64_t page = addr >> page_shift_;
    const size_t bank = size_t(page & (cfg_.banks - 1));
    const uint64_t row = page / cfg_.banks;
    uint64_t& open = open_row_[bank];
    Cycles c;
    if (open == row) {
        ++stats_.row_hits;
        c = cfg_.t_cl;
    } else if (open == kClosed) {
        ++stats_.row_empty;
        c = cfg_.t_rcd + cfg_.t_cl;
    } else {
        ++stats_.row_conflicts;
        c = cfg_.t_rp + cfg_.t_rcd + cfg_.t_cl;
    }
    open = row;
    return c;
}

DramTarget::DramTarget(sc_core::sc_module_name name, const DramConfig& cfg, uint64_t period_ps)
    : sc_module(name), socket("socket"), timing_(cfg), period_ps_(period_ps) {
    socket.bind(*this);
}

void DramTarget::b_transport(tlm::tlm_generic_payload& tr, sc_core::sc_time& delay) {
    const auto cmd = tr.get_command();
    if (cmd == tlm::TLM_IGNORE_COMMAND) {
        tr.set_response_status(tlm::TLM_OK_RESPONSE);
        return;
    }
    const Cycles c = timing_.access(tr.get_address(), cmd == tlm::TLM_WRITE_COMMAND);
    delay += sc_core::sc_time::from_value(c * period_ps_);
    tr.set_dmi_allowed(false);
    tr.set_response_status(tlm::TLM_OK_RESPONSE);
}

tlm::tlm_sync_enum DramTarget::nb_transport_fw(tlm::tlm_generic_payload& tr, tlm::tlm_phase&, sc_core::sc_time&) {
    tr.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
    return tlm::TLM_COMPLETED;   // loosely timed only
}

// No storage, so no direct access and nothing to show a debugger.
bool DramTarget::get_direct_mem_ptr(tlm::tlm_generic_payload&, tlm::tlm_dmi&) { return false; }
unsigned DramTarget::transport_dbg(tlm::tlm_generic_payload&) { return 0; }

}  // namespace hvsim
