// The arm64 translation hardware as a vCPU's child module, behind the vCPU's
// translation port (cpu::Translator): Stage2Mmu whose descriptor reads leave through the
// TLM-2.0 initiator socket `mem` (mmu::WalkPort, the port the x86 MMU module uses too:
// 8-byte reads and posted writes; direct calls into hvsim's MemHierarchy, DMI where a
// target grants it, b_transport otherwise).
#pragma once

#include <systemc>
#include <tlm>

#include <memory>

#include "models/cpu/translator.hpp"
#include "models/mmu/walk_port.hpp"
#include "models/stage2/stage2_mmu.hpp"

namespace hvsim::stage2 {

class Stage2Module : public sc_core::sc_module, public mmu::WalkPort {
public:
    Stage2Module(sc_core::sc_module_name name, const Stage2Config& cfg, uint64_t period_ps);
    Stage2Mmu& mmu() { return mmu_; }
    const Stage2Mmu& mmu() const { return mmu_; }

private:
    void end_of_elaboration() override { find_direct_target(); }

    Stage2Mmu mmu_;
};

class Stage2Translator final : public cpu::Translator {
public:
    Stage2Translator(const char* name, const Stage2Config& cfg, uint64_t period_ps) : mod_(name, cfg, period_ps) {}
    Stage2Mmu& hw() { return mod_.mmu(); }
    Stage2Module& hw_module() { return mod_; }

    sc_core::sc_module& module() override { return mod_; }
    tlm::tlm_initiator_socket<>& mem_socket() override { return mod_.mem; }
    std::string_view kind() const override { return "arm64 mmu"; }
    void run_access(cpu::Vcpu& v, const cpu::AccessSpec& a) override;
    mmu::TranslateResult translate(Gva va, mmu::AccessType at, bool enc) override {
        return mod_.mmu().translate(va, at, enc);
    }
    // check: the SNP physical-access check switch of the x86 walker; arm64 has none.
    mmu::TranslateResult translate_gpa(Gpa ipa, mmu::AccessType at, bool enc, bool /*check*/ = true) override {
        return mod_.mmu().translate_gpa(ipa, at, enc);
    }
    // The guest kernel turning its MMU on: TCR_EL1 (TG0 = 4K, T0SZ = 16: 48-bit VA, the
    // format cpu::GuestOs builds) and TTBR0_EL1 (ASID 1: one address space per guest here).
    void set_guest_root(Gpa root) override {
        mod_.mmu().set_tcr(Granule::k4K, 48);
        mod_.mmu().set_ttbr0(1, root);
    }
    void flush_all() override { mod_.mmu().flush_all(); }
    const mmu::MmuStats& stats() const override { return mod_.mmu().stats(); }

    // A factory for VcpuConfig::make_translator.
    static cpu::TranslatorFactory factory(const Stage2Config& cfg);

private:
    Stage2Module mod_;
};

}  // namespace hvsim::stage2
