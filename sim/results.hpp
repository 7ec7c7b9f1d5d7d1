// results.json (the contract in docs/design.md "Results"): assembled from each model's own
// counters after the run. Models keep plain structs; only this file formats them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/cpu/guest_os.hpp"
#include "models/cpu/vcpu.hpp"
#include "models/mem/cache.hpp"
#include "models/mmu/mmu.hpp"
#include "sim/machine.hpp"
#include "sim/params.hpp"
#include "sim/run_status.hpp"
#include "sim/scenario.hpp"

namespace hvsim {

struct StepSummary {
    size_t index = 0;
    std::string pointer, name, op;
    std::string result;     // what the step really returned: "ok", an errno name, "exit <reason>", ...
    std::string expected;   // its expect, as one line ("" when it has none)
    std::string bytes;      // reads: "0x5a" when every byte read was equal, "mixed" otherwise
    bool passed = true;     // every expectation of the step held
    Cycles cycles = 0;
    uint64_t accesses = 0;
    uint64_t walks = 0;
};

struct ResultInputs {
    const scn::Scenario& s;
    const ParamSet& p;
    Machine& m;
    const cpu::GuestOs* guest;
    const std::vector<cpu::Vcpu*>& vcpus;
    const std::vector<const cpu::Translator*>& mmus;   // each vCPU's translation hardware
    const std::vector<const CacheHierarchy*>& caches;
    Cycles setup_cycles = 0;
    Cycles sim_cycles = 0;
    double wall_s = 0;
    const std::vector<StepSummary>* steps = nullptr;
    RunStatus status = RunStatus::passed;
    std::string error;                                // status error: why
    const std::vector<Failure>* failures = nullptr;
    std::vector<std::string> warnings;                // what the run rests on that is not modelled
};

// The version written into results.json and printed by --version.
inline constexpr const char* kHvsimVersion = "0.1.0";

nlohmann::json build_results(const ResultInputs& in);

// Appends a failure for every scenario `expect.metrics` bound the results miss.
std::vector<Failure> check_metric_expectations(const scn::Scenario& s, const nlohmann::json& results,
                                               std::vector<Failure> failures);

// results.json "failures": one object per failure.
nlohmann::json failures_json(const std::vector<Failure>& failures);

// results.json without the host-dependent part, for determinism checks.
nlohmann::json strip_host(nlohmann::json results);

}  // namespace hvsim
