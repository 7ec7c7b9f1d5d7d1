// One run of one scenario: elaborate the SystemC top (vCPU threads, VMM threads, the
// step controller), simulate, and assemble results.json. SystemC elaborates once per
// process, so a process runs at most one scenario (the CLI forks per file).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/params.hpp"
#include "sim/trace.hpp"
#include "sim/run_status.hpp"
#include "sim/scenario.hpp"

namespace hvsim {

struct RunOptions {
    bool progress = false;          // print a progress line on stderr after ~2 s
    bool check_invariants = true;   // cross-model invariants after every step
    bool setup_only = false;        // stop after the VM setup and elaboration (hvsim validate)
    const TraceOptions* trace = nullptr;   // write the run's timeline (sim/trace.hpp)
    // arm64 presets: write the run's stage-2 maintenance as a Casemate trace to this file.
    std::string casemate;
};

struct RunOutput {
    nlohmann::json results;             // the results.json document (also when status is error)
    RunStatus status = RunStatus::passed;
    std::vector<Failure> failures;      // failed expectations, invariants
    std::string fatal;                  // the run could not complete (model error)
    std::string trace_summary;          // RunOptions::trace: "N events, ..." once written
    // The scenario cannot run on this configuration, found before the simulation starts
    // (an unsupported platform, a VM setup KVM refuses, an unknown metric in
    // expect.metrics): bad input, exit 2, no results file. Starts with the JSON pointer
    // it is about.
    std::string refused;
    std::vector<double> step_wall_s;    // host seconds per top-level step (benchmarks; not in results)
};

RunOutput run_scenario(const scn::Scenario& s, const ParamSet& p, const RunOptions& opt);

// Asks the run in progress to stop early: the vCPUs end their work within a few thousand
// accesses, the step in progress completes, no further step starts, and the results
// cover what ran (status interrupted). Async-signal-safe: SIGINT/SIGTERM handlers call it.
void request_interrupt() noexcept;

// results.json "status" for a run and its failures (an error or interruption wins).
RunStatus run_status(const RunOutput& out, bool interrupted);

// The progress line of a long run: "NAME: step 3/10, 1200/4000 guest accesses (30%),
// 2.0 s, ETA 5 s" (the ETA from the access rate so far, once there is one).
std::string format_progress_line(const std::string& name, uint64_t step, uint64_t steps, uint64_t accesses,
                                 uint64_t planned, double secs);

// The human-readable summary of a results document.
std::string format_summary(const nlohmann::json& results);

}  // namespace hvsim
