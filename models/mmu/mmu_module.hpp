// The x86 MMU of one vCPU as a SystemC module: the translation structures and the 2D
// walker of Mmu, whose paging-structure references leave through the TLM-2.0
// initiator socket `mem` (mmu::WalkPort: 8-byte reads and posted writes; direct calls
// into hvsim's MemHierarchy, DMI where a target grants it, b_transport otherwise).
#pragma once

#include <systemc>
#include <tlm>

#include <cstdint>

#include "models/mmu/mmu.hpp"
#include "models/mmu/walk_port.hpp"

namespace hvsim::mmu {

class MmuModule : public sc_core::sc_module, public WalkPort {
public:
    MmuModule(sc_core::sc_module_name name, const MmuConfig& cfg, uint64_t period_ps);

    Mmu& mmu() { return mmu_; }
    const Mmu& mmu() const { return mmu_; }

private:
    void end_of_elaboration() override { find_direct_target(); }

    Mmu mmu_;
};

}  // namespace hvsim::mmu
