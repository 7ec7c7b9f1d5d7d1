// hvsim sensitivity: which of a run's parameters its numbers rest on. Every cost.* parameter
// and every latency (unit cycles or ps) is scaled down and up (x0.5 and x2 by default), one at
// a time, and the chosen metrics are compared with the run at the preset values; parameters
// are ranked by the largest relative move they cause. Most costs in the presets are estimates:
// the ranking says which of them a conclusion depends on.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/params.hpp"

namespace hvsim {

struct SensitivityParam {
    std::string key;
    nlohmann::json preset;         // the value of the base run
    std::string source;            // the preset's source ("estimate ..." or a citation)
    std::string low, high;         // the perturbed values as --set text
};

struct SensitivityPlan {
    std::vector<SensitivityParam> params;
    std::vector<std::string> zero;   // at 0 in the base run: scaling cannot move them
};

// The parameters to perturb: cost.* and latencies (unit "cycles" or "ps"), numeric, not 0.
// Integer parameters are rounded and moved by at least 1.
SensitivityPlan plan_sensitivity(const ParamSet& base, double low, double high);

// Reads DIR/base/results.json and DIR/<key>@low|high/results.json. Returns the report: a
// table (text), the same as CSV, and JSON (rows sorted by largest move, "moves_nothing").
struct SensitivityReport {
    std::string table, csv;
    nlohmann::ordered_json json;
};
SensitivityReport sensitivity_report(const std::filesystem::path& dir, const std::string& scenario_name,
                                     const SensitivityPlan& plan, const std::vector<std::string>& metrics,
                                     double low, double high);

// The run folder of one perturbed point.
std::string sensitivity_run_name(const std::string& key, bool high);

}  // namespace hvsim
