#include "sim/gem5_stats.hpp"

#include <bit>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sim/metric_catalog.hpp"

namespace hvsim {

namespace {

using ojson = nlohmann::ordered_json;

std::vector<std::string> split_dots(const std::string& name) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t i = 0; i <= name.size(); ++i)
        if (i == name.size() || name[i] == '.') {
            parts.push_back(name.substr(start, i - start));
            start = i + 1;
        }
    // vcpu.N.x -> vcpuN.x, as gem5 names the members of a vector of objects (cpu0, cpu1).
    if (parts.size() > 1 && parts[0] == "vcpu") {
        parts[1] = "vcpu" + parts[1];
        parts.erase(parts.begin());
    }
    return parts;
}

ojson group() { return ojson{{"type", "Group"}, {"time_conversion", nullptr}}; }

bool is_stat(const ojson& n) { return n.is_object() && n.value("type", "") != "Group"; }

// Place `stat` at the dotted path below root, turning a Scalar that is in the way into
// its group's "total".
void place(ojson& root, const std::vector<std::string>& path, ojson stat) {
    ojson* node = &root;
    for (size_t i = 0; i + 1 < path.size(); ++i) {
        ojson& child = (*node)[path[i]];
        if (child.is_null()) {
            child = group();
        } else if (is_stat(child)) {
            ojson g = group();
            g["total"] = std::move(child);
            child = std::move(g);
        }
        node = &child;
    }
    ojson& leaf = (*node)[path.back()];
    if (!leaf.is_null() && !is_stat(leaf))
        leaf["total"] = std::move(stat);
    else
        leaf = std::move(stat);
}

// gem5's unit names (src/base/stats/units.hh) for the results contract's x-unit.
std::string gem5_unit(const std::string& u) {
    if (u == "cycles") return "Cycle";
    if (u == "ns" || u == "s") return "Second";
    if (u == "bytes") return "Byte";
    if (u == "events/s") return "(Count/Second)";
    return "Count";
}

ojson scalar(const nlohmann::json& v, const std::string& unit, const std::string& description) {
    ojson s{{"type", "Scalar"}};
    s["value"] = v;
    s["unit"] = unit;
    s["description"] = description;
    s["datatype"] = v.is_number_unsigned() || v.is_number_integer() ? "u64" : "f64";
    return s;
}

}  // namespace

ojson gem5_stats(const nlohmann::json& r) {
    ojson out;
    const auto& metrics = r.at("metrics");
    const double ns = metrics.contains("sim.time_ns") ? metrics["sim.time_ns"].get<double>() : 0.0;
    out["name"] = r.contains("scenario") && r["scenario"].is_object() ? r["scenario"].value("name", "") : "";
    out["creation_time"] = nullptr;   // results are a function of the scenario alone
    out["time_conversion"] = {{"scale_factor", 1e-9}, {"description", "simulated times in nanoseconds"}};
    out["simulated_begin_time"] = 0;
    out["simulated_end_time"] = metrics.contains("sim.time_ns") ? metrics["sim.time_ns"] : nlohmann::json(0);
    // The two stats every gem5 dump starts with.
    out["simSeconds"] = scalar(ns * 1e-9, "Second", "Number of seconds simulated");
    out["simTicks"] = scalar(uint64_t(ns * 1000.0 + 0.5), "Tick", "Number of ticks simulated (1 tick = 1 ps)");

    for (auto it = metrics.begin(); it != metrics.end(); ++it) {
        const auto info = metric_info(it.key());
        if (it.key() == "sim.time_ns") {
            place(out, {"sim", "time"}, scalar(ns * 1e-9, "Second", info ? info->description : ""));
            continue;
        }
        place(out, split_dots(it.key()),
              scalar(it.value(), gem5_unit(info ? info->unit : ""), info ? info->description : ""));
    }

    // Fault latency: log2 buckets keyed by their lower bound -> a Distribution over the
    // exponent, so every bucket keeps its count and bins stay equal-sized.
    std::map<std::string, uint64_t> path_total;
    if (r.contains("fault_paths"))
        for (const auto& p : r["fault_paths"]) path_total[p.at("path")] = p.at("cycles").at("total");
    if (r.contains("histograms"))
        for (auto h = r["histograms"].begin(); h != r["histograms"].end(); ++h) {
            std::map<unsigned, uint64_t> by_exp;
            for (auto b = h.value().begin(); b != h.value().end(); ++b) {
                const uint64_t lo = std::stoull(b.key());
                by_exp[lo == 0 ? 0u : unsigned(std::bit_width(lo) - 1)] += b.value().get<uint64_t>();
            }
            if (by_exp.empty()) continue;
            const unsigned lo = by_exp.begin()->first, hi = by_exp.rbegin()->first;
            std::vector<uint64_t> bins(hi - lo + 1, 0);
            for (const auto& [e, n] : by_exp) bins[e - lo] = n;
            ojson d{{"type", "Distribution"}};
            d["value"] = bins;
            d["min"] = lo;
            d["max"] = hi;
            d["num_bins"] = bins.size();
            d["bin_size"] = 1;
            const std::string name = h.key();
            const std::string path = name.rfind("fault_cycles.", 0) == 0 ? name.substr(13) : "";
            if (auto t = path_total.find(path); t != path_total.end())
                d["sum"] = t->second;
            else
                d["sum"] = nullptr;
            d["sum_squared"] = nullptr;
            d["underflow"] = 0;
            d["overflow"] = 0;
            d["logs"] = nullptr;
            d["unit"] = "Count";
            d["description"] = "faults by latency: bin i counts faults of 2^(min+i) to 2^(min+i+1)-1 cycles";
            d["datatype"] = "u64";
            place(out, split_dots(name), std::move(d));
        }

    // Fault paths: count, latency summary and the cycles of each step.
    if (r.contains("fault_paths"))
        for (const auto& p : r["fault_paths"]) {
            std::vector<std::string> base = split_dots(p.at("path").get<std::string>());
            base.insert(base.begin(), "fault_paths");
            auto at = [&](const std::string& leaf) {
                auto v = base;
                v.push_back(leaf);
                return v;
            };
            place(out, at("count"), scalar(p.at("count"), "Count", "faults that took this path"));
            const auto& c = p.at("cycles");
            for (const char* k : {"total", "mean", "p50", "p99"})
                if (c.contains(k))
                    place(out, at(std::string("cycles_") + k),
                          scalar(c[k], "Cycle", std::string("fault latency, ") + k));
            std::map<std::string, unsigned> seen;
            for (const auto& s : p.value("steps", nlohmann::json::array())) {
                std::string n = s.at("name");
                if (const unsigned k = seen[n]++; k) n += "_" + std::to_string(k);
                auto v = at("steps");
                v.push_back(n);
                place(out, v, scalar(s.at("cycles"), "Cycle", "cycles of this step in one fault of this path"));
            }
        }
    return out;
}

}  // namespace hvsim
