// Runs a scenario's uAPI steps (VM creation, guest_memfd, memslots, attributes,
// fallocate, host mmap accesses, pre-fault, SEV regions, check_extension, close)
// against the simulated KVM and reports one StepOutcome per step, flattened in
// order (parallel groups contribute their members in order). Steps that are not
// uAPI calls (vCPU accesses, hypercalls) are reported as skipped.
#pragma once

#include <string>
#include <vector>

#include "sim/outcome.hpp"
#include "sim/scenario.hpp"

namespace hvsim {

class ParamSet;

struct UapiStepResult {
    const scn::Step* step = nullptr;   // points into the Scenario passed in
    StepOutcome outcome;
};

struct UapiRun {
    int create_vm_err = 0;             // KVM_CREATE_VM result for vm.type (0 = ok)
    std::string setup_error;           // vm.guest_memfd / vm.memslots setup failure, if any
    std::vector<UapiStepResult> steps;
};

UapiRun run_uapi_steps_simulated(const scn::Scenario& s, const ParamSet& params);

}  // namespace hvsim
