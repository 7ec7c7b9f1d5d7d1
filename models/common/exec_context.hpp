// Where the cycles of an operation go. A vCPU's work charges the vCPU's local time;
// a host ioctl charges the VMM thread's. sync() marks the points where Linux drops or
// takes a lock, so concurrently simulated threads may interleave there. Models and the
// simulated KVM charge through this interface and never see SystemC.
#pragma once

#include <string_view>

#include "models/common/step_name.hpp"
#include "models/common/types.hpp"

namespace hvsim {

class ExecContext {
public:
    virtual ~ExecContext() = default;
    virtual void charge(StepName step, Cycles c) = 0;
    virtual void sync() {}
};

// A context that only adds up cycles (unit tests, setup outside a simulation).
class CycleCounter final : public ExecContext {
public:
    void charge(StepName, Cycles c) override { total += c; }
    Cycles total = 0;
};

}  // namespace hvsim
