// results.json in the shape of gem5's JSON statistics (the pystats format that gem5's
// Python tools load: m5.ext.pystats), so parsers written for gem5 read hvsim runs.
#pragma once

#include <nlohmann/json.hpp>

namespace hvsim {

// The dotted metric names become nested groups ({"type": "Group", ...}); each metric a
// Scalar with value, unit, description (from the results contract) and datatype. A name
// that is both a metric and a group prefix ("accesses", "accesses.read") keeps the metric
// as the group's "total". vcpu.N.* becomes group vcpuN (gem5's cpu0, cpu1 naming).
// Fault latency histograms become Distributions over log2(cycles) (bin_size 1: the
// power-of-two buckets exactly), fault paths groups of their counts and per-step cycles.
nlohmann::ordered_json gem5_stats(const nlohmann::json& results);

}  // namespace hvsim
