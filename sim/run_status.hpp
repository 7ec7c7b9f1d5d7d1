// How a run ended and what failed in it: results.json "status" and "failures".
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace hvsim {

// passed: every expectation held; failed: one did not (or an invariant broke); error:
// the run could not complete (setup or model error); interrupted: SIGINT/SIGTERM
// stopped it, the results cover the steps done so far.
enum class RunStatus { passed, failed, error, interrupted };
inline const char* run_status_name(RunStatus s) {
    switch (s) {
    case RunStatus::passed: return "passed";
    case RunStatus::failed: return "failed";
    case RunStatus::error: return "error";
    case RunStatus::interrupted: return "interrupted";
    }
    return "?";
}

// One failed expectation.
struct Failure {
    std::string kind;              // "expectation" (a step's expect), "metric" (expect.metrics),
                                   // "invariant", "baseline" (hvsim check --baseline)
    std::string pointer;           // JSON pointer into the scenario ("" for baselines)
    std::optional<size_t> step;    // index of the top-level step, when there is one
    std::string message;           // what differed
    std::string text;              // the line printed on stderr
};

}  // namespace hvsim
