// A context that forwards every charge to another and adds up what passed through it: the
// cycles of one piece of work inside a larger one (a TD's private fault, whose cycles the
// VM type makes the fault wait for; a TD's teardown, timed apart from the run).
#pragma once

#include "models/common/exec_context.hpp"

namespace hvsim {

class CountingContext final : public ExecContext {
public:
    explicit CountingContext(ExecContext& inner) : inner_(inner) {}
    void charge(StepName step, Cycles c) override {
        total += c;
        inner_.charge(step, c);
    }
    void sync() override { inner_.sync(); }
    std::optional<Cycles> local_cycles() const override { return inner_.local_cycles(); }
    Cycles total = 0;

private:
    ExecContext& inner_;
};

}  // namespace hvsim
