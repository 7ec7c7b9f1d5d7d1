// One run of one scenario: elaborate the SystemC top (vCPU threads, VMM threads, the
// step controller), simulate, and assemble results.json. SystemC elaborates once per
// process, so a process runs at most one scenario (the CLI forks per file).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/params.hpp"
#include "sim/run_status.hpp"
#include "sim/scenario.hpp"

namespace hvsim {

struct RunOptions {
    bool progress = false;          // print a progress line on stderr after ~2 s
    bool check_invariants = true;   // cross-model invariants after every step
};

struct RunOutput {
    nlohmann::json results;             // the results.json document (also when status is error)
    RunStatus status = RunStatus::passed;
    std::vector<Failure> failures;      // failed expectations, invariants
    std::string fatal;                  // the run could not complete (setup error, model error)
    std::vector<double> step_wall_s;    // host seconds per top-level step (benchmarks; not in results)
};

RunOutput run_scenario(const scn::Scenario& s, const ParamSet& p, const RunOptions& opt);

// Asks the run in progress to stop early: the vCPUs end their work within a few thousand
// accesses, the step in progress completes, no further step starts, and the results
// cover what ran (status interrupted). Async-signal-safe: SIGINT/SIGTERM handlers call it.
void request_interrupt() noexcept;

// results.json "status" for a run and its failures (an error or interruption wins).
RunStatus run_status(const RunOutput& out, bool interrupted);

// The human-readable summary of a results document.
std::string format_summary(const nlohmann::json& results);

}  // namespace hvsim
