#include "sim/compare.hpp"

#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "sim/paths.hpp"

namespace fs = std::filesystem;

namespace hvsim {

std::vector<CompareColumn> compare_columns(const std::vector<std::string>& platforms,
                                           const std::vector<std::string>& vm_types,
                                           const std::vector<std::string>& base_sets) {
    const std::vector<std::string> ps = platforms.empty() ? std::vector<std::string>{""} : platforms;
    const std::vector<std::string> ts = vm_types.empty() ? std::vector<std::string>{""} : vm_types;
    std::vector<CompareColumn> cols;
    for (const auto& p : ps)
        for (const auto& t : ts) {
            CompareColumn c;
            c.platform = p;
            c.vm_type = t;
            c.name = p.empty() ? t : t.empty() ? p : p + "/" + t;
            c.sets = base_sets;
            if (!p.empty()) c.sets.push_back("platform=" + p);
            if (!t.empty()) c.sets.push_back("vm.type=" + t);
            cols.push_back(std::move(c));
        }
    return cols;
}

namespace {

// The one line a refused run printed: its last line without the "hvsim: FILE: " prefix.
std::string reason_of(const fs::path& err_file, int rc) {
    std::ifstream f(err_file);
    std::string line, last;
    while (std::getline(f, line))
        if (!line.empty()) last = line;
    if (last.rfind("hvsim: ", 0) == 0) last = last.substr(7);
    if (const size_t k = last.find(".json: "); k != std::string::npos) last = last.substr(k + 7);
    return last.empty() ? fmt::format("exit {}", rc) : last;
}

std::optional<double> num(const nlohmann::json& j, const std::string& key) {
    if (!j.contains(key) || !j[key].is_number()) return std::nullopt;
    return j[key].get<double>();
}

std::string cell(const nlohmann::json& v) {
    if (v.is_null()) return "-";
    if (v.is_number_integer() || v.is_number_unsigned()) return fmt::format("{}", v.get<int64_t>());
    const double d = v.get<double>();
    return d >= 100 ? fmt::format("{:.0f}", d) : fmt::format("{:.2f}", d);
}

}  // namespace

CompareReport compare_report(const fs::path& dir, const std::string& scenario, const std::vector<CompareColumn>& cols,
                             const std::vector<int>& rcs, const std::vector<std::string>& extra_metrics) {
    CompareReport rep;
    std::vector<std::string> rows = {"sim.cycles", "accesses", "faults.npf", "exits.total", "walk.count",
                                     "walk.cycles_per_walk", "walk.mem_refs_per_walk", "invalidations.count",
                                     "invalidations.cycles", "conversions.to_private.cycles_per_page",
                                     "conversions.to_shared.cycles_per_page"};
    std::map<std::string, std::map<std::string, nlohmann::json>> table;   // row -> column -> value
    std::vector<std::string> path_rows;
    rep.json["scenario"] = scenario;
    rep.json["columns"] = nlohmann::ordered_json::array();
    for (size_t c = 0; c < cols.size(); ++c) {
        const auto& col = cols[c];
        nlohmann::ordered_json jc{{"name", col.name}, {"platform", col.platform}, {"vm_type", col.vm_type}};
        nlohmann::json r;
        if (std::ifstream f(dir / safe_file_name(col.name) / "results.json"); f) r = nlohmann::json::parse(f, nullptr, false);
        if (!r.is_object() || !r.contains("metrics")) {
            jc["status"] = "not run";
            jc["reason"] = reason_of(dir / safe_file_name(col.name) / "stderr.txt", rcs[c]);
            rep.json["columns"].push_back(std::move(jc));
            continue;
        }
        jc["status"] = r.value("status", "?");
        jc["platform"] = r.value("platform", col.platform);
        if (r.contains("warnings") && !r["warnings"].empty()) jc["warnings"] = r["warnings"];
        rep.json["columns"].push_back(std::move(jc));
        const auto& m = r["metrics"];
        auto put = [&](const std::string& row, std::optional<double> v) {
            if (v) table[row][col.name] = *v;
        };
        for (const char* k : {"sim.cycles", "accesses", "faults.npf", "exits.total", "walk.count", "invalidations.count"})
            if (m.contains(k)) table[k][col.name] = m[k];
        const auto wc = num(m, "walk.count");
        if (wc && *wc > 0) {
            put("walk.cycles_per_walk", num(m, "walk.cycles").value_or(0) / *wc);
            put("walk.mem_refs_per_walk", num(m, "walk.mem_refs").value_or(0) / *wc);
        }
        if (r.contains("invalidations")) {
            double cyc = 0;
            for (const auto& inv : r["invalidations"]) cyc += inv.value("cycles", 0.0);
            put("invalidations.cycles", cyc);
        }
        if (r.contains("conversions"))
            for (const char* to : {"to_private", "to_shared"}) {
                const auto& cv = r["conversions"].value(to, nlohmann::json::object());
                if (cv.value("pages", 0.0) > 0)
                    put(fmt::format("conversions.{}.cycles_per_page", to), cv.value("cycles", 0.0) / cv["pages"].get<double>());
            }
        for (const auto& fp : r.value("fault_paths", nlohmann::json::array())) {
            const std::string base = "fault_path." + fp.at("path").get<std::string>();
            for (const std::string& row : {base + ".count", base + ".mean_cycles"})
                if (std::find(path_rows.begin(), path_rows.end(), row) == path_rows.end()) path_rows.push_back(row);
            table[base + ".count"][col.name] = fp.at("count");
            table[base + ".mean_cycles"][col.name] = fp.at("cycles").at("mean");
        }
        for (const auto& k : extra_metrics)
            if (m.contains(k)) table[k][col.name] = m[k];
    }
    std::sort(path_rows.begin(), path_rows.end());
    rows.insert(rows.end(), path_rows.begin(), path_rows.end());
    for (const auto& k : extra_metrics)
        if (std::find(rows.begin(), rows.end(), k) == rows.end()) rows.push_back(k);

    // Text table and CSV: a row per figure, a column per run.
    size_t w0 = 8;
    for (const auto& r : rows) w0 = std::max(w0, r.size());
    std::vector<size_t> w;
    for (const auto& c : cols) w.push_back(std::max<size_t>(12, c.name.size()));
    rep.table = fmt::format("compare {}:\n{:<{}}", scenario, "", w0);
    rep.csv = "figure";
    for (size_t c = 0; c < cols.size(); ++c) {
        rep.table += fmt::format("  {:>{}}", cols[c].name, w[c]);
        rep.csv += "," + cols[c].name;
    }
    rep.table += "\n";
    rep.csv += "\n";
    rep.json["rows"] = rows;
    rep.json["table"] = nlohmann::ordered_json::object();
    for (const auto& r : rows) {
        rep.table += fmt::format("{:<{}}", r, w0);
        rep.csv += r;
        nlohmann::ordered_json jr = nlohmann::ordered_json::object();
        for (size_t c = 0; c < cols.size(); ++c) {
            nlohmann::json v;
            if (auto it = table[r].find(cols[c].name); it != table[r].end()) v = it->second;
            rep.table += fmt::format("  {:>{}}", cell(v), w[c]);
            rep.csv += "," + (v.is_null() ? std::string() : v.dump());
            jr[cols[c].name] = v;
        }
        rep.json["table"][r] = std::move(jr);
        rep.table += "\n";
        rep.csv += "\n";
    }
    std::string notes;
    for (const auto& jc : rep.json["columns"]) {
        if (jc["status"] == "not run")
            notes += fmt::format("  {}: cannot run: {}\n", jc["name"].get<std::string>(), jc["reason"].get<std::string>());
        else if (jc["status"] != "passed")
            notes += fmt::format("  {}: run {} (its figures are shown)\n", jc["name"].get<std::string>(),
                                 jc["status"].get<std::string>());
        if (jc.contains("warnings"))
            for (const auto& wtext : jc["warnings"])
                notes += fmt::format("  {}: warning: {}\n", jc["name"].get<std::string>(), wtext.get<std::string>());
    }
    if (!notes.empty()) rep.table += "\n" + notes;
    return rep;
}

}  // namespace hvsim
