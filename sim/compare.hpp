// hvsim compare: one workload on several platforms and/or VM types, the same figures side by
// side. Each column is `hvsim run FILE --set platform=P --set vm.type=T` into DIR/<column>/;
// a column that cannot run (a VM type the platform lacks, a setup KVM refuses) says why.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hvsim {

struct CompareColumn {
    std::string name;                  // "zen4-genoa", "snp", "zen4-genoa/snp"
    std::string platform, vm_type;     // empty: the scenario's own
    std::vector<std::string> sets;     // the --set arguments of its run
};

// The product of the lists (either may be empty: the scenario's own value).
std::vector<CompareColumn> compare_columns(const std::vector<std::string>& platforms,
                                           const std::vector<std::string>& vm_types,
                                           const std::vector<std::string>& base_sets);

struct CompareReport {
    std::string table, csv;
    nlohmann::ordered_json json;   // {scenario, columns: [{name, platform, vm_type, status, reason}],
                                   //  rows: [names], table: {row: {column: value}}}
};
// Reads DIR/<column>/results.json (and DIR/<column>/stderr.txt for a column that did not run).
// Rows: total cycles, accesses, faults, walk cost, invalidation cost, conversion cost per page,
// each fault path's count and mean cycles, then the extra metrics.
CompareReport compare_report(const std::filesystem::path& dir, const std::string& scenario,
                             const std::vector<CompareColumn>& cols, const std::vector<int>& rcs,
                             const std::vector<std::string>& extra_metrics);

}  // namespace hvsim
