#include "models/stage2/stage2_translator.hpp"

#include "models/cpu/vcpu_loop.hpp"

namespace hvsim::stage2 {

Stage2Module::Stage2Module(sc_core::sc_module_name name, const Stage2Config& cfg, uint64_t period_ps)
    : sc_module(name), WalkPort(period_ps, "descriptor access"), mmu_(cfg, static_cast<mmu::WalkMemory&>(*this)) {}

void Stage2Translator::run_access(cpu::Vcpu& v, const cpu::AccessSpec& a) { v.run_access_on(mod_.mmu(), a); }

cpu::TranslatorFactory Stage2Translator::factory(const Stage2Config& cfg) {
    return [cfg](const char* name, const cpu::VcpuConfig& vc) -> std::unique_ptr<cpu::Translator> {
        return std::make_unique<Stage2Translator>(name, cfg, vc.period_ps);
    };
}

}  // namespace hvsim::stage2
