// The metrics a run can report, read from the results contract (scenarios/results.schema.json,
// compiled in): their names, units and one-line definitions. `hvsim sweep` refuses a metric
// no run can report; `--stats gem5` takes each stat's unit and description from here.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace hvsim {

struct MetricInfo {
    std::string unit;          // x-unit of the schema ("cycles", "pages", "ns", ...)
    std::string description;
};

// The entry for a metric name: a fixed name or one of the per-vCPU patterns; nullopt when
// no run reports such a metric.
std::optional<MetricInfo> metric_info(const std::string& name);
// "" when a run can report `name`, else "expected a metric of the results (docs/results.md),
// got 'x' (did you mean 'y'?)" for the caller to prefix with where it was given.
std::string metric_name_error(const std::string& name);
// The fixed names (for did-you-mean and listings), sorted.
const std::vector<std::string>& metric_names();

}  // namespace hvsim
