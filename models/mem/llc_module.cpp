#include "models/mem/llc_module.hpp"

#include <string>

namespace hvsim {

MemHierarchyConfig LlcModule::single_level(const CacheLevelConfig& cfg, unsigned line_bytes) {
    MemHierarchyConfig c;
    c.levels = {cfg};
    c.line_bytes = line_bytes;
    return c;
}

LlcModule::LlcModule(sc_core::sc_module_name name, const CacheLevelConfig& cfg, unsigned line_bytes,
                     uint64_t period_ps)
    : sc_module(name),
      in("in"),
      dram("dram"),
      array_(cfg, line_bytes),
      foreign_(single_level(cfg, line_bytes), &array_),
      period_ps_(period_ps) {
    in.bind(*this);
    dram.bind(*this);
    foreign_.set_line_fill(this);
}

void LlcModule::b_transport(tlm::tlm_generic_payload& tr, sc_core::sc_time& delay) {
    // A core that shares the array already missed in it: the fill goes on to DRAM as it is.
    if (const auto* m = tr.get_extension<LlcMissExtension>(); m && m->array == &array_) {
        ++core_fills_;
        dram->b_transport(tr, delay);
        return;
    }
    if (tr.get_command() != tlm::TLM_READ_COMMAND) {
        tr.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
        return;
    }
    // Another initiator's line read(s): looked up here, a miss filled from DRAM. The last
    // line of the array's LRU order is not an L1 (foreign_ has one level): forget it.
    const uint64_t lb = foreign_.config().line_bytes;
    const uint64_t a = tr.get_address();
    const uint64_t last = (a + (tr.get_data_length() ? tr.get_data_length() - 1 : 0)) & ~(lb - 1);
    Cycles c = 0;
    for (uint64_t l = a & ~(lb - 1);; l += lb) {
        foreign_.invalidate_all();
        c += foreign_.access(Hpa(l));
        if (l == last) break;
    }
    delay += sc_core::sc_time::from_value(c * period_ps_);
    tr.set_dmi_allowed(false);
    tr.set_response_status(tlm::TLM_OK_RESPONSE);
}

Cycles LlcModule::fill(uint64_t line_addr) {
    const unsigned lb = foreign_.config().line_bytes;
    fill_tr_.set_command(tlm::TLM_READ_COMMAND);
    fill_tr_.set_address(line_addr);
    fill_tr_.set_data_ptr(line_buf_);
    fill_tr_.set_data_length(lb);
    fill_tr_.set_streaming_width(lb);
    fill_tr_.set_byte_enable_ptr(nullptr);
    fill_tr_.set_dmi_allowed(false);
    fill_tr_.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    dram->b_transport(fill_tr_, d);
    if (fill_tr_.is_response_error())
        SC_REPORT_ERROR(name(), ("line fill failed: " + fill_tr_.get_response_string()).c_str());
    return (d.value() + period_ps_ - 1) / period_ps_;
}

tlm::tlm_sync_enum LlcModule::nb_transport_fw(tlm::tlm_generic_payload& tr, tlm::tlm_phase&, sc_core::sc_time&) {
    tr.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
    return tlm::TLM_COMPLETED;
}

bool LlcModule::get_direct_mem_ptr(tlm::tlm_generic_payload&, tlm::tlm_dmi&) { return false; }

// The LLC holds no bytes (physical memory does): nothing to read or write for a debugger.
unsigned LlcModule::transport_dbg(tlm::tlm_generic_payload&) { return 0; }

tlm::tlm_sync_enum LlcModule::nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) {
    return tlm::TLM_COMPLETED;
}

void LlcModule::invalidate_direct_mem_ptr(sc_dt::uint64, sc_dt::uint64) {}

}  // namespace hvsim
