#include "models/mmu/mmu_module.hpp"

namespace hvsim::mmu {

MmuModule::MmuModule(sc_core::sc_module_name name, const MmuConfig& cfg, uint64_t period_ps)
    : sc_module(name), WalkPort(period_ps, "page-table access"), mmu_(cfg, static_cast<WalkMemory&>(*this)) {}

}  // namespace hvsim::mmu
