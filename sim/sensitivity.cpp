#include "sim/sensitivity.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace fs = std::filesystem;

namespace hvsim {

namespace {

bool perturbable(const std::string& key, const nlohmann::json& d) {
    if (!d.at("value").is_number()) return false;
    const std::string unit = d.value("unit", "");
    return key.rfind("cost.", 0) == 0 || unit == "cycles" || unit == "ps";
}

std::string scaled(const nlohmann::json& v, double f) {
    if (v.is_number_integer() || v.is_number_unsigned()) {
        const int64_t x = v.get<int64_t>();
        int64_t y = int64_t(std::llround(double(x) * f));
        if (y == x) y = f < 1 ? x - 1 : x + 1;   // a move of at least one unit
        return std::to_string(std::max<int64_t>(y, 0));
    }
    return fmt::format("{}", v.get<double>() * f);
}

std::optional<double> metric_of(const fs::path& file, const std::string& m) {
    std::ifstream f(file);
    if (!f) return std::nullopt;
    const auto r = nlohmann::json::parse(f, nullptr, false);
    if (!r.is_object() || !r.contains("metrics") || !r["metrics"].contains(m) || !r["metrics"][m].is_number())
        return std::nullopt;
    return r["metrics"][m].get<double>();
}

std::string pct(std::optional<double> v) {
    if (!v) return "n/a";
    if (*v == 0) return "0";
    if (std::isinf(*v)) return *v > 0 ? "+inf" : "-inf";
    return fmt::format("{:+.3g}%", *v * 100.0);
}

}  // namespace

std::string sensitivity_run_name(const std::string& key, bool high) { return key + (high ? "@high" : "@low"); }

SensitivityPlan plan_sensitivity(const ParamSet& base, double low, double high) {
    SensitivityPlan plan;
    const auto d = base.describe();
    for (auto it = d.begin(); it != d.end(); ++it) {
        if (!perturbable(it.key(), it.value())) continue;
        const auto& v = it.value().at("value");
        if (v.get<double>() == 0) {
            plan.zero.push_back(it.key());
            continue;
        }
        plan.params.push_back({it.key(), v, it.value().value("source", ""), scaled(v, low), scaled(v, high)});
    }
    return plan;
}

SensitivityReport sensitivity_report(const fs::path& dir, const std::string& scenario_name, const SensitivityPlan& plan,
                                     const std::vector<std::string>& metrics, double low, double high) {
    struct Row {
        const SensitivityParam* p;
        std::vector<std::optional<double>> lo, hi;   // relative move per metric
        double score = 0;                            // largest |move| over the metrics
    };
    std::vector<double> base;
    for (const auto& m : metrics) {
        const auto v = metric_of(dir / "base" / "results.json", m);
        if (!v) throw std::runtime_error(fmt::format("{}: the base run reports no metric '{}'",
                                                     (dir / "base" / "results.json").string(), m));
        base.push_back(*v);
    }
    auto rel = [&](std::optional<double> v, size_t i) -> std::optional<double> {
        if (!v) return std::nullopt;
        if (base[i] == 0) return *v == 0 ? 0.0 : std::optional<double>(INFINITY);
        return (*v - base[i]) / base[i];
    };
    std::vector<Row> rows;
    for (const auto& p : plan.params) {
        Row r{&p, {}, {}, 0};
        for (size_t i = 0; i < metrics.size(); ++i) {
            r.lo.push_back(rel(metric_of(dir / sensitivity_run_name(p.key, false) / "results.json", metrics[i]), i));
            r.hi.push_back(rel(metric_of(dir / sensitivity_run_name(p.key, true) / "results.json", metrics[i]), i));
            for (const auto& x : {r.lo.back(), r.hi.back()})
                if (x) r.score = std::max(r.score, std::fabs(*x));
        }
        rows.push_back(std::move(r));
    }
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.score > b.score; });

    SensitivityReport rep;
    rep.json["scenario"] = scenario_name;
    rep.json["factors"] = {low, high};
    rep.json["metrics"] = nlohmann::ordered_json::object();
    for (size_t i = 0; i < metrics.size(); ++i) rep.json["metrics"][metrics[i]] = base[i];
    rep.json["rows"] = nlohmann::ordered_json::array();
    rep.json["moves_nothing"] = nlohmann::ordered_json::array();
    rep.json["zero_at_preset"] = plan.zero;

    rep.table = fmt::format("sensitivity of {}: each parameter x{} and x{}, one at a time\n", scenario_name, low, high);
    for (size_t i = 0; i < metrics.size(); ++i) rep.table += fmt::format("  {} = {} at the preset values\n", metrics[i], base[i]);
    std::string head = fmt::format("{:>4}  {:<34} {:>12}  {:<9}", "rank", "parameter", "value", "source");
    for (size_t i = 0; i < metrics.size(); ++i) head += fmt::format(" {:>11} {:>11}", fmt::format("x{}", low), fmt::format("x{}", high));
    rep.table += "\n" + head + "\n";
    if (metrics.size() > 1) {
        std::string mh = fmt::format("{:>4}  {:<34} {:>12}  {:<9}", "", "", "", "");
        for (const auto& m : metrics) mh += fmt::format(" {:>23}", m.size() > 23 ? m.substr(0, 23) : m);
        rep.table += mh + "\n";
    }
    rep.csv = "rank,parameter,value,source";
    for (const auto& m : metrics) rep.csv += fmt::format(",{0}@x{1},{0}@x{2}", m, low, high);
    rep.csv += "\n";
    size_t rank = 0;
    std::vector<std::string> still;
    for (const auto& r : rows) {
        const bool estimate = r.p->source.rfind("estimate", 0) == 0;
        if (r.score == 0) {
            still.push_back(r.p->key);
            rep.json["moves_nothing"].push_back(r.p->key);
            continue;
        }
        ++rank;
        std::string line = fmt::format("{:>4}  {:<34} {:>12}  {:<9}", rank, r.p->key, r.p->preset.dump(),
                                       estimate ? "estimate" : "sourced");
        rep.csv += fmt::format("{},{},{},{}", rank, r.p->key, r.p->preset.dump(), estimate ? "estimate" : "sourced");
        nlohmann::ordered_json jr;
        jr["parameter"] = r.p->key;
        jr["value"] = r.p->preset;
        jr["low"] = r.p->low;
        jr["high"] = r.p->high;
        jr["source"] = r.p->source;
        for (size_t i = 0; i < metrics.size(); ++i) {
            line += fmt::format(" {:>11} {:>11}", pct(r.lo[i]), pct(r.hi[i]));
            rep.csv += fmt::format(",{},{}", r.lo[i] ? fmt::format("{}", *r.lo[i]) : "", r.hi[i] ? fmt::format("{}", *r.hi[i]) : "");
            jr["moves"][metrics[i]] = {r.lo[i] ? nlohmann::json(*r.lo[i]) : nlohmann::json(nullptr),
                                       r.hi[i] ? nlohmann::json(*r.hi[i]) : nlohmann::json(nullptr)};
        }
        rep.table += line + "\n";
        rep.csv += "\n";
        rep.json["rows"].push_back(std::move(jr));
    }
    if (!still.empty()) rep.table += fmt::format("\nmoves nothing ({}): {}\n", still.size(), fmt::join(still, ", "));
    if (!plan.zero.empty())
        rep.table += fmt::format("0 at the preset, not scaled ({}): {}\n", plan.zero.size(), fmt::join(plan.zero, ", "));
    return rep;
}

}  // namespace hvsim
