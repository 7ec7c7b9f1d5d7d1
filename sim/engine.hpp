// One run of one scenario: elaborate the SystemC top (vCPU threads, VMM threads, the
// step controller), simulate, and assemble results.json. SystemC elaborates once per
// process, so a process runs at most one scenario (the CLI forks per file).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/params.hpp"
#include "sim/scenario.hpp"

namespace hvsim {

struct RunOptions {
    bool progress = false;          // print a progress line on stderr after ~2 s
    bool check_invariants = true;   // cross-model invariants after every step
};

struct RunOutput {
    nlohmann::json results;             // the results.json document
    std::vector<std::string> failures;  // failed expectations, one line each
    std::string fatal;                  // the run could not complete (setup error, model error)
    std::vector<double> step_wall_s;    // host seconds per top-level step (benchmarks; not in results)
};

RunOutput run_scenario(const scn::Scenario& s, const ParamSet& p, const RunOptions& opt);

// The human-readable summary of a results document.
std::string format_summary(const nlohmann::json& results);

}  // namespace hvsim
