// The x86 translation hardware behind the vCPU's translation port: mmu::MmuModule
// (TLBs, PWC, nested TLB, the NPT/EPT walker), unchanged.
#pragma once

#include "models/cpu/translator.hpp"
#include "models/mmu/mmu_module.hpp"

namespace hvsim::cpu {

class X86Translator final : public Translator {
public:
    X86Translator(const char* name, const mmu::MmuConfig& cfg, uint64_t period_ps) : mod_(name, cfg, period_ps) {}

    mmu::MmuModule& hw_module() { return mod_; }
    mmu::Mmu& hw() { return mod_.mmu(); }

    sc_core::sc_module& module() override { return mod_; }
    tlm::tlm_initiator_socket<>& mem_socket() override { return mod_.mem; }
    std::string_view kind() const override { return "x86 mmu"; }
    void run_access(Vcpu& v, const AccessSpec& a) override;
    mmu::TranslateResult translate(Gva va, mmu::AccessType at, bool enc) override {
        return mod_.mmu().translate(va, at, enc);
    }
    mmu::TranslateResult translate_gpa(Gpa gpa, mmu::AccessType at, bool enc, bool check = true) override {
        return mod_.mmu().translate_gpa(gpa, at, enc, check);
    }
    void set_guest_root(Gpa root) override { mod_.mmu().set_guest_root(root); }
    void flush_all() override { mod_.mmu().flush_all(); }
    const mmu::MmuStats& stats() const override { return mod_.mmu().stats(); }

    // The default factory (x86 platforms).
    static std::unique_ptr<Translator> make(const char* name, const VcpuConfig& cfg);

private:
    mmu::MmuModule mod_;
};

}  // namespace hvsim::cpu
