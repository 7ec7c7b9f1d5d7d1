#include "sim/sweep.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sim/json_util.hpp"
#include "sim/loader.hpp"
#include "sim/metric_catalog.hpp"
#include "sim/paths.hpp"

namespace fs = std::filesystem;

namespace hvsim {

SweepSpec load_sweep(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw LoadError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(f);
    } catch (const nlohmann::json::parse_error& e) {
        throw LoadError(fmt::format("{}: {}", path, e.what()));
    }
    if (!j.is_object()) throw LoadError(fmt::format("{}: /: expected a sweep object, got {}", path, j.type_name()));
    static const std::vector<std::string> kKeys = {"scenario", "grid", "metrics", "description"};
    for (auto it = j.begin(); it != j.end(); ++it)
        if (std::find(kKeys.begin(), kKeys.end(), it.key()) == kKeys.end())
            throw LoadError(fmt::format("{}: /{}: expected one of {}, got '{}'{}", path,
                                        jsonu::pointer_token(it.key()), jsonu::join_list(kKeys), it.key(),
                                        jsonu::suggestion_suffix(it.key(), kKeys)));
    SweepSpec sp;
    if (!j.contains("scenario") || !j["scenario"].is_string())
        throw LoadError(fmt::format("{}: /scenario: expected the path of a scenario file (relative to the sweep file)", path));
    fs::path sc = j["scenario"].get<std::string>();
    sp.scenario = fs::absolute(sc.is_absolute() ? sc : fs::path(path).parent_path() / sc).lexically_normal().string();
    if (!j.contains("grid") || !j["grid"].is_object() || j["grid"].empty())
        throw LoadError(fmt::format("{}: /grid: expected an object of parameter -> list of values", path));
    for (auto it = j["grid"].begin(); it != j["grid"].end(); ++it) {
        if (!it.value().is_array() || it.value().empty())
            throw LoadError(fmt::format("{}: /grid/{}: expected a non-empty list of values", path,
                                        jsonu::pointer_token(it.key())));
        std::vector<std::string> vals;
        for (const auto& v : it.value()) vals.push_back(v.is_string() ? v.get<std::string>() : v.dump());
        sp.grid.emplace_back(it.key(), std::move(vals));
    }
    if (j.contains("metrics")) {
        if (!j["metrics"].is_array()) throw LoadError(fmt::format("{}: /metrics: expected a list of metric names", path));
        for (size_t i = 0; i < j["metrics"].size(); ++i) {
            const auto& m = j["metrics"][i];
            if (!m.is_string())
                throw LoadError(fmt::format("{}: /metrics/{}: expected a metric name, got {}", path, i,
                                            jsonu::describe(m)));
            // A name no run reports would only ever give an empty column.
            if (const std::string e = metric_name_error(m.get<std::string>()); !e.empty())
                throw LoadError(fmt::format("{}: /metrics/{}: {}", path, i, e));
            sp.metrics.push_back(m.get<std::string>());
        }
    } else {
        sp.metrics = {"sim.cycles", "accesses", "tlb.misses", "walk.mem_refs", "faults.npf", "exits.total"};
    }
    return sp;
}

std::vector<SweepPoint> sweep_points(const SweepSpec& sp) {
    std::vector<SweepPoint> pts(1);
    for (const auto& [key, vals] : sp.grid) {
        std::vector<SweepPoint> next;
        for (const auto& p : pts)
            for (const auto& v : vals) {
                auto n = p;
                n.emplace_back(key, v);
                next.push_back(std::move(n));
            }
        pts = std::move(next);
    }
    return pts;
}

std::vector<std::string> sweep_set_args(const SweepPoint& p) {
    std::vector<std::string> v;
    for (const auto& [k, val] : p) v.push_back(k + "=" + val);
    return v;
}

std::string shell_quote(const std::string& s) {
    std::string o = "'";
    for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return o + "'";
}

std::string sweep_command(const std::string& self, const SweepSpec& sp, const fs::path& dir, size_t i,
                          const SweepPoint& p) {
    std::string text = shell_quote(self) + " run --quiet --no-progress -o " + shell_quote((dir / std::to_string(i)).string());
    for (const auto& a : sweep_set_args(p)) text += " --set " + shell_quote(a);
    return text + " " + shell_quote(sp.scenario);
}

void write_sweep_manifest(const fs::path& dir, const SweepSpec& sp, const std::vector<SweepPoint>& pts,
                          const std::string& self) {
    nlohmann::ordered_json m;
    m["scenario"] = sp.scenario;
    m["grid"] = nlohmann::ordered_json::array();
    for (const auto& [k, vals] : sp.grid) m["grid"].push_back({k, vals});
    m["metrics"] = sp.metrics;
    m["hvsim"] = self;
    m["points"] = nlohmann::ordered_json::array();
    for (const auto& p : pts) m["points"].push_back(sweep_set_args(p));
    write_file(dir / "sweep.json", m.dump(2) + "\n");
}

std::string emit_sweep(const std::string& kind, const fs::path& dir, const SweepSpec& sp,
                       const std::vector<SweepPoint>& pts, const std::string& self) {
    std::string jobs;
    for (size_t i = 0; i < pts.size(); ++i) jobs += sweep_command(self, sp, dir, i, pts[i]) + "\n";
    write_file(dir / "jobs.txt", jobs);
    write_sweep_manifest(dir, sp, pts, self);
    const std::string collect = fmt::format("{} sweep --collect {}", shell_quote(self), shell_quote(dir.string()));
    if (kind == "parallel")
        return fmt::format("run: parallel --jobs N < {0}   (or: parallel --sshlogin HOST,... :::: {0}; "
                           "the paths must exist there)\nthen: {1}\n",
                           shell_quote((dir / "jobs.txt").string()), collect);
    // Slurm: one array task per line of jobs.txt (SLURM_ARRAY_TASK_ID counts from 0).
    std::string s = "#!/bin/bash\n";
    s += "# hvsim sweep of " + sp.scenario + ": one array task per grid point (line of jobs.txt).\n";
    s += "#SBATCH --job-name=hvsim-sweep\n";
    s += fmt::format("#SBATCH --array=0-{}\n", pts.size() - 1);
    s += "#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=1\n";
    s += "#SBATCH --output=" + (dir / "slurm-%A_%a.out").string() + "\n";
    s += "set -euo pipefail\n";
    s += ": \"${SLURM_ARRAY_TASK_ID:?run this with sbatch (an array job)}\"\n";
    s += "line=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" " + shell_quote((dir / "jobs.txt").string()) + ")\n";
    s += "[ -n \"$line\" ] || { echo \"no grid point $SLURM_ARRAY_TASK_ID\" >&2; exit 2; }\n";
    s += "eval \"$line\"\n";
    write_file(dir / "sweep.sbatch", s);
    return fmt::format("run: sbatch {}\nthen: {}\n", shell_quote((dir / "sweep.sbatch").string()), collect);
}

SweepTable sweep_table(const fs::path& dir, const SweepSpec& sp, const std::vector<SweepPoint>& pts,
                       const std::vector<int>* rcs) {
    SweepTable t;
    t.csv = "run";
    for (const auto& [key, vals] : sp.grid) t.csv += "," + key;
    for (const auto& m : sp.metrics) t.csv += "," + m;
    t.csv += ",status\n";
    for (size_t i = 0; i < pts.size(); ++i) {
        t.csv += std::to_string(i);
        for (const auto& kv : pts[i]) t.csv += "," + kv.second;
        nlohmann::json r;
        if (std::ifstream rf(dir / std::to_string(i) / "results.json"); rf) r = nlohmann::json::parse(rf, nullptr, false);
        const bool have = r.is_object() && r.contains("metrics") && r["metrics"].is_object();
        for (const auto& m : sp.metrics) {
            t.csv += ",";
            if (have && r["metrics"].contains(m)) t.csv += r["metrics"][m].dump();
        }
        std::string status;
        if (have) {
            status = r.value("status", "error");
            if (status == "passed") status = "ok";
            if (rcs && (*rcs)[i] != 0 && status == "ok") status = "failed";
        } else if (rcs) {
            status = (*rcs)[i] == 0 ? "missing" : "failed";
        } else {
            status = "missing";
        }
        if (status == "missing") t.missing.push_back(i);
        if (status != "ok") ++t.not_ok;
        t.csv += "," + status + "\n";
    }
    return t;
}

int collect_sweep(const fs::path& dir) {
    const fs::path mf = dir / "sweep.json";
    std::ifstream f(mf);
    if (!f) throw LoadError(fmt::format("{}: cannot open: {} (is {} the folder of a sweep?)", mf.string(),
                                        std::strerror(errno), dir.string()));
    const auto m = nlohmann::json::parse(f, nullptr, false);
    if (!m.is_object() || !m.contains("points") || !m.contains("grid") || !m.contains("metrics") ||
        !m.contains("scenario"))
        throw LoadError(fmt::format("{}: /: expected the manifest hvsim sweep writes (scenario, grid, metrics, points)",
                                    mf.string()));
    SweepSpec sp;
    std::vector<SweepPoint> pts;
    std::string self;
    try {
        sp.scenario = m.at("scenario").get<std::string>();
        for (const auto& g : m.at("grid")) sp.grid.emplace_back(g.at(0).get<std::string>(), g.at(1).get<std::vector<std::string>>());
        sp.metrics = m.at("metrics").get<std::vector<std::string>>();
        self = m.value("hvsim", "hvsim");
        for (const auto& p : m.at("points")) {
            SweepPoint pt;
            for (const auto& kv : p) {
                const std::string s = kv.get<std::string>();
                const size_t eq = s.find('=');
                pt.emplace_back(s.substr(0, eq), eq == std::string::npos ? "" : s.substr(eq + 1));
            }
            pts.push_back(std::move(pt));
        }
    } catch (const nlohmann::json::exception& e) {
        throw LoadError(fmt::format("{}: not a sweep manifest: {}", mf.string(), e.what()));
    }
    const SweepTable t = sweep_table(dir, sp, pts, nullptr);
    write_file(dir / "sweep.csv", t.csv);
    std::string rerun;
    for (size_t i : t.missing) rerun += sweep_command(self, sp, dir, i, pts[i]) + "\n";
    write_file(dir / "rerun.txt", rerun);
    std::cout << t.csv;
    fmt::print("sweep: {} points, {} done, {} missing, {} not ok; table in {}\n", pts.size(),
               pts.size() - t.missing.size(), t.missing.size(), t.not_ok, (dir / "sweep.csv").string());
    if (!t.missing.empty()) {
        std::vector<std::string> ids;
        for (size_t i : t.missing) ids.push_back(std::to_string(i));
        fmt::print("missing: {}\nrerun them: parallel < {}\n", fmt::join(ids, " "), shell_quote((dir / "rerun.txt").string()));
    }
    return t.not_ok ? 1 : 0;
}

}  // namespace hvsim
