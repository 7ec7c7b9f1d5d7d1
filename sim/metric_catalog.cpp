#include "sim/metric_catalog.hpp"

#include <map>
#include <regex>
#include <utility>

#include <nlohmann/json.hpp>

#include "sim/json_util.hpp"

namespace hvsim {

extern const char* const kResultsSchemaText;

namespace {

struct Catalog {
    std::map<std::string, MetricInfo> fixed;
    std::vector<std::pair<std::regex, MetricInfo>> patterns;
    std::vector<std::string> names;
};

MetricInfo info_of(const nlohmann::json& e) {
    return MetricInfo{e.value("x-unit", ""), e.value("description", "")};
}

const Catalog& catalog() {
    static const Catalog c = [] {
        Catalog k;
        const auto schema = nlohmann::json::parse(kResultsSchemaText);
        const auto& m = schema.at("properties").at("metrics");
        for (auto it = m.at("properties").begin(); it != m.at("properties").end(); ++it) {
            k.fixed.emplace(it.key(), info_of(it.value()));
            k.names.push_back(it.key());
        }
        if (m.contains("patternProperties"))
            for (auto it = m["patternProperties"].begin(); it != m["patternProperties"].end(); ++it)
                k.patterns.emplace_back(std::regex(it.key(), std::regex::ECMAScript), info_of(it.value()));
        return k;
    }();
    return c;
}

}  // namespace

std::optional<MetricInfo> metric_info(const std::string& name) {
    const Catalog& c = catalog();
    if (auto it = c.fixed.find(name); it != c.fixed.end()) return it->second;
    for (const auto& [re, info] : c.patterns)
        if (std::regex_search(name, re)) return info;
    return std::nullopt;
}

const std::vector<std::string>& metric_names() { return catalog().names; }

std::string metric_name_error(const std::string& name) {
    if (metric_info(name)) return "";
    return "expected a metric of the results (docs/results.md), got '" + name + "'" +
           jsonu::suggestion_suffix(name, metric_names());
}

}  // namespace hvsim
