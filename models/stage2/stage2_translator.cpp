#include "models/stage2/stage2_translator.hpp"

#include <string>

#include "models/cpu/vcpu_loop.hpp"

namespace hvsim::stage2 {

Stage2Module::Stage2Module(sc_core::sc_module_name name, const Stage2Config& cfg, uint64_t period_ps)
    : sc_module(name), mem("mem"), period_ps_(period_ps), mmu_(cfg, static_cast<mmu::WalkMemory&>(*this)) {
    mem.bind(*this);
}

sc_core::sc_time Stage2Module::transport(tlm::tlm_command cmd, uint64_t hpa, uint64_t& v) {
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
        SC_REPORT_ERROR(name(), (std::string("descriptor access failed: ") + tr_.get_response_string()).c_str());
    return d;
}

uint64_t Stage2Module::read64(uint64_t hpa, Cycles& cycles) {
    if (hier_) return hier_->read64(hpa, cycles);
    uint64_t v = 0;
    const sc_core::sc_time d = transport(tlm::TLM_READ_COMMAND, hpa, v);
    cycles += (d.value() + period_ps_ - 1) / period_ps_;
    return v;
}

void Stage2Module::write64(uint64_t hpa, uint64_t v) {
    if (hier_) return hier_->write64(hpa, v);
    transport(tlm::TLM_WRITE_COMMAND, hpa, v);
}

uint64_t Stage2Module::load64(uint64_t hpa) {
    if (hier_) return hier_->load64(hpa);
    uint64_t v = 0;
    transport(tlm::TLM_READ_COMMAND, hpa, v);
    return v;
}

void Stage2Translator::run_access(cpu::Vcpu& v, const cpu::AccessSpec& a) { v.run_access_on(mod_.mmu(), a); }

cpu::TranslatorFactory Stage2Translator::factory(const Stage2Config& cfg) {
    return [cfg](const char* name, const cpu::VcpuConfig& vc) -> std::unique_ptr<cpu::Translator> {
        return std::make_unique<Stage2Translator>(name, cfg, vc.period_ps);
    };
}

}  // namespace hvsim::stage2
