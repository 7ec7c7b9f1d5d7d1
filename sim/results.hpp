// results.json (the contract in DESIGN.md "Results"): assembled from each model's own
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
#include "sim/scenario.hpp"

namespace hvsim {

struct StepSummary {
    size_t index = 0;
    std::string pointer, name, op, result;
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
    const std::vector<const mmu::Mmu*>& mmus;
    const std::vector<const CacheHierarchy*>& caches;
    Cycles setup_cycles = 0;
    Cycles sim_cycles = 0;
    double wall_s = 0;
    const std::vector<StepSummary>* steps = nullptr;
};

nlohmann::json build_results(const ResultInputs& in);

// Appends a failure for every scenario `expect.metrics` bound the results miss.
std::vector<std::string> check_metric_expectations(const scn::Scenario& s, const nlohmann::json& results,
                                                   std::vector<std::string> failures);

// results.json without the host-dependent part, for determinism checks.
nlohmann::json strip_host(nlohmann::json results);

}  // namespace hvsim
