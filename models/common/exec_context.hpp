// Where the cycles of an operation go. A vCPU's work charges the vCPU's local time;
// a host ioctl charges the VMM thread's. sync() marks the points where Linux drops or
// takes a lock, so concurrently simulated threads may interleave there. Models and the
// simulated KVM charge through this interface and never see SystemC.
#pragma once

#include <optional>
#include <string_view>

#include "models/common/step_name.hpp"
#include "models/common/types.hpp"

namespace hvsim {

class ExecContext {
public:
    virtual ~ExecContext() = default;
    virtual void charge(StepName step, Cycles c) = 0;
    virtual void sync() {}
    // The local time of the simulated thread whose work this is (a vCPU or a VMM thread:
    // its global time plus what it charged since its last sync), for locks held in
    // simulated time (kvm->mmu_lock); nullopt outside a simulated thread (setup, tests).
    virtual std::optional<Cycles> local_cycles() const { return std::nullopt; }
};

// A context that only adds up cycles (unit tests, setup outside a simulation).
class CycleCounter final : public ExecContext {
public:
    void charge(StepName, Cycles c) override { total += c; }
    Cycles total = 0;
};

}  // namespace hvsim
