// The vCPU's translation port: what a core needs of its address-translation hardware,
// whatever the architecture. The x86 two-dimensional MMU (mmu::Mmu) sits behind one
// implementation (X86Translator), the arm64 stage-1 + stage-2 MMU behind another; the
// platform's wiring picks one (VcpuConfig::make_translator) and the vCPU never asks
// which it has.
//
// Results use one record for both architectures (mmu::TranslateResult): `npf` is the
// nested/stage-2 fault (x86: #NPF/EPT violation with its PFERR error code; arm64: a
// stage-2 abort with its ESR_EL2 value, fault_gpa from HPFAR_EL2), `guest_page_fault`
// the stage-1 fault the guest kernel handles.
//
// Speed: the hot loop (Vcpu::run_access) is a template on the concrete hardware type,
// entered once per access step through run_access(); the L1-TLB hit check then inlines
// and no virtual call is made per access.
#pragma once

#include <systemc>
#include <tlm>

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "models/common/types.hpp"
#include "models/mmu/mmu.hpp"

namespace hvsim::cpu {

class Vcpu;
struct AccessSpec;
struct VcpuConfig;

class Translator {
public:
    virtual ~Translator() = default;

    // The module that holds the translation hardware (a child of the vCPU) and its
    // socket for table references (bound to the vCPU's cache hierarchy).
    virtual sc_core::sc_module& module() = 0;
    virtual tlm::tlm_initiator_socket<>& mem_socket() = 0;
    // What results.json's "modules" calls it ("x86 mmu", "arm64 mmu").
    virtual std::string_view kind() const = 0;

    // Runs the vCPU's access loop with this hardware's concrete type (see above).
    virtual void run_access(Vcpu& v, const AccessSpec& a) = 0;
    // The full lookup (TLBs, then the walk) of a guest-virtual address.
    virtual mmu::TranslateResult translate(Gva va, mmu::AccessType at, bool enc) = 0;
    // A guest-physical address (the guest kernel writing its own tables): the
    // nested / stage-2 dimension only.
    virtual mmu::TranslateResult translate_gpa(Gpa gpa, mmu::AccessType at, bool enc, bool check = true) = 0;
    // The guest's stage-1 / CR3 root, as its kernel loads it.
    virtual void set_guest_root(Gpa root) = 0;
    // Every cached translation of this core dropped.
    virtual void flush_all() = 0;

    // Counters with the meaning MmuStats documents (TLB lookups, hits, walks, references).
    virtual const mmu::MmuStats& stats() const = 0;
};

// Builds the translation hardware of one vCPU; called inside the vCPU's constructor
// (so the module is its child, named `name`).
using TranslatorFactory = std::function<std::unique_ptr<Translator>(const char* name, const VcpuConfig& cfg)>;

}  // namespace hvsim::cpu
