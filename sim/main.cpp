// hvsim: the command line. Exit codes: 0 success, 1 a run failed (expectation, model
// error, DIFFER), 2 bad input (the scenario, a parameter or the command line).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <systemc>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "kernel/arm64/pkvm_mem_protect.hpp"
#include "kernel/page_state_graph.hpp"
#include "sim/diff_kvm.hpp"
#include "sim/engine.hpp"
#include "sim/json_util.hpp"
#include "sim/loader.hpp"
#include "sim/paths.hpp"
#include "sim/results.hpp"

namespace fs = std::filesystem;
using namespace hvsim;

namespace {

const std::string kVersion = std::string("hvsim ") + kHvsimVersion;

// The signal that interrupted `hvsim run` (0: none).
volatile std::sig_atomic_t g_signal = 0;
// The child running a scenario while `hvsim run` has several (0: none): a signal sent to
// the parent alone (a scheduler's SIGTERM) is passed on, so the child writes its results.
volatile std::sig_atomic_t g_child = 0;
extern "C" void on_stop_signal(int sig) {
    g_signal = sig;
    if (g_child > 0) kill(pid_t(g_child), sig);
    request_interrupt();
}

// once: the first signal restores the default action, so a second one kills. A child of
// several runs keeps the handler: Ctrl-C reaches it twice (from the terminal and passed on
// by the parent), and the duplicate must not kill it before it writes its results.
void install_stop_handler(bool once) {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART | (once ? SA_RESETHAND : 0);   // the parent keeps waiting for its child
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

struct RunArgs {
    std::vector<std::string> files;
    std::string out_dir;
    std::vector<std::string> sets;
    bool quiet = false;
    bool no_progress = false;
    bool no_check = false;
    // hvsim check: compare the metrics with DIR/<scenario>/results.json (relative
    // tolerance), or write the results there as the new baseline.
    std::string baseline_dir;
    double tolerance = 0;
    std::string write_baseline_dir;
};

// Metrics that moved away from the baseline by more than the relative tolerance, and
// baseline metrics the run no longer reports; one line each.
std::vector<std::string> compare_with_baseline(const nlohmann::json& now, const fs::path& base_file, double tol) {
    std::vector<std::string> out;
    std::ifstream f(base_file);
    if (!f) return {fmt::format("no baseline at {}", base_file.string())};
    nlohmann::json base;
    try {
        base = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
        return {fmt::format("{}: not a results.json: {}", base_file.string(), e.what())};
    }
    if (!base.contains("metrics") || !base["metrics"].is_object())
        return {fmt::format("{}: has no metrics", base_file.string())};
    const auto& m = now.at("metrics");
    for (auto it = base["metrics"].begin(); it != base["metrics"].end(); ++it) {
        // How often the simulator yielded is a property of the run, not of the modelled
        // system: a baseline does not pin it.
        if (it.key() == "sim.quantum_syncs") continue;
        if (!m.contains(it.key())) {
            out.push_back(fmt::format("metric {} is in the baseline but no longer reported", it.key()));
            continue;
        }
        const double b = it.value().get<double>(), v = m.at(it.key()).get<double>();
        // A change from 0 has no relative size: say "from 0" rather than a made-up percentage.
        if (std::abs(v - b) > tol * std::max(std::abs(b), 1.0))
            out.push_back(fmt::format("metric {} = {}, baseline {} ({}, tolerance {:.2f}%)", it.key(), v, b,
                                      b != 0 ? fmt::format("{:+.2f}%", 100.0 * (v - b) / b) : std::string("up from 0"),
                                      100.0 * tol));
    }
    return out;
}

// Scenario files named directly, or found below a directory (*.json; schemas and the
// results.json files of earlier runs excluded).
std::vector<std::string> expand(const std::vector<std::string>& paths) {
    std::vector<std::string> out;
    for (const auto& p : paths) {
        std::error_code ec;
        if (fs::is_directory(p, ec)) {
            std::vector<std::string> found;
            for (const auto& e : fs::recursive_directory_iterator(p))
                if (e.is_regular_file() && e.path().extension() == ".json" &&
                    e.path().filename().string().find(".schema.") == std::string::npos &&
                    e.path().filename() != "results.json")
                    found.push_back(e.path().string());
            std::sort(found.begin(), found.end());
            out.insert(out.end(), found.begin(), found.end());
        } else {
            out.push_back(p);
        }
    }
    return out;
}

// Writes atomically: a reader never sees a half-written results.json.
void write_file(const fs::path& path, const std::string& text) {
    // A bare file name ("report.xml") has no parent to create.
    if (!path.parent_path().empty()) fs::create_directories(path.parent_path());
    const fs::path tmp = path.string() + ".tmp";
    {
        std::ofstream f(tmp);
        if (!f) throw std::runtime_error(fmt::format("{}: cannot write", tmp.string()));
        f << text;
        if (!f) throw std::runtime_error(fmt::format("{}: write failed", tmp.string()));
    }
    fs::rename(tmp, path);
}

std::vector<std::pair<std::string, std::string>> parse_sets(const std::vector<std::string>& sets) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& s : sets) out.push_back(parse_set_option(s));
    return out;
}

// One scenario in this process. Returns the exit code.
int run_one(const std::string& file, const RunArgs& a, bool multi) {
    scn::Scenario s;
    std::optional<ParamSet> params;
    try {
        s = load_scenario_file(file);
        params = resolve_params(s, parse_sets(a.sets));
    } catch (const LoadError& e) {
        fmt::print(stderr, "hvsim: {}\n", e.what());
        return 2;
    }
    // Where the results go, checked before the run: the scenario name is made a safe file
    // name, so nothing lands outside the folder the user chose.
    const std::string leaf = safe_file_name(s.name);
    fs::path dir = a.out_dir.empty() ? fs::path("out") / leaf : fs::path(a.out_dir);
    if (multi && !a.out_dir.empty()) dir /= leaf;
    for (const auto& d : {dir, a.write_baseline_dir.empty() ? fs::path() : fs::path(a.write_baseline_dir) / leaf}) {
        if (d.empty()) continue;
        if (std::string err = prepare_output_dir(d); !err.empty()) {
            fmt::print(stderr, "hvsim: {}\n", err);
            return 2;
        }
    }
    RunOptions opt;
    opt.progress = !a.no_progress && !a.quiet;
    opt.check_invariants = !a.no_check;
    RunOutput out;
    try {
        out = run_scenario(s, *params, opt);
    } catch (const std::invalid_argument& e) {
        fmt::print(stderr, "hvsim: {}: {}\n", file, e.what());
        return 2;
    } catch (const std::exception& e) {
        fmt::print(stderr, "hvsim: {}: simulation error: {}\n", file, e.what());
        return 1;
    }
    if (!out.refused.empty()) {
        fmt::print(stderr, "hvsim: {}: {}\n", file, out.refused);
        return 2;
    }
    // Baseline comparisons are failures of the run like its own expectations.
    if (!a.baseline_dir.empty() && out.status == RunStatus::passed) {
        for (auto& f : compare_with_baseline(out.results, fs::path(a.baseline_dir) / leaf / "results.json",
                                             a.tolerance))
            out.failures.push_back(Failure{"baseline", "", std::nullopt, f, f});
        out.status = run_status(out, false);
        out.results["status"] = run_status_name(out.status);
        out.results["failures"] = failures_json(out.failures);
    }
    // Written whatever the status: a failed, broken or interrupted run says so inside.
    try {
        write_file(dir / "results.json", out.results.dump(2) + "\n");
    } catch (const std::exception& e) {
        fmt::print(stderr, "hvsim: {}\n", e.what());
        return 1;
    }
    if (out.status == RunStatus::error) {
        fmt::print(stderr, "hvsim: {}: {}\n", file, out.fatal);
        return 1;
    }
    if (!a.quiet) {
        std::cout << format_summary(out.results);
        std::cout << fmt::format("  results: {}\n", (dir / "results.json").string());
    }
    if (out.status == RunStatus::interrupted) {
        const int sig = g_signal ? int(g_signal) : SIGINT;
        const auto& steps = out.results.at("steps");
        std::string where = "before the first step";
        if (!steps.empty()) {
            const auto& last = steps.back();
            where = fmt::format("{} step {} of {}", last.at("result") == "interrupted" ? "in" : "after",
                                last.at("index").get<size_t>(), s.steps.size());
        }
        fmt::print(stderr, "hvsim: {}: interrupted by {} {}; results so far in {}\n", file,
                   sig == SIGTERM ? "SIGTERM" : "SIGINT", where, (dir / "results.json").string());
        return 128 + sig;
    }
    if (!a.write_baseline_dir.empty()) {
        try {
            write_file(fs::path(a.write_baseline_dir) / leaf / "results.json", out.results.dump(2) + "\n");
        } catch (const std::exception& e) {
            fmt::print(stderr, "hvsim: {}\n", e.what());
            return 1;
        }
    }
    for (const auto& f : out.failures) fmt::print(stderr, "hvsim: {}: {}\n", file, f.text);
    return out.failures.empty() ? 0 : 1;
}

// SystemC elaborates once per process: more than one scenario means one child each.
int run_forked(const std::string& file, const std::function<int()>& fn) {
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) {
        fmt::print(stderr, "hvsim: {}: fork failed\n", file);
        return 1;
    }
    if (pid == 0) {
        install_stop_handler(false);
        const int rc = fn();
        std::fflush(stdout);
        std::fflush(stderr);
        _exit(rc);
    }
    g_child = pid;
    int status = 0;
    waitpid(pid, &status, 0);
    g_child = 0;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    fmt::print(stderr, "hvsim: {}: crashed (signal {})\n", file, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return 1;
}

int cmd_run(const RunArgs& a) {
    const auto files = expand(a.files);
    if (files.empty()) {
        fmt::print(stderr, "hvsim: run: no scenario files\n");
        return 2;
    }
    // SIGINT/SIGTERM: the run in progress stops early and writes what it has (status
    // interrupted); with several files no further file starts. A second signal kills.
    install_stop_handler(true);
    if (files.size() == 1) return run_one(files[0], a, false);
    int worst = 0;
    for (const auto& f : files) {
        worst = std::max(worst, run_forked(f, [&] { return run_one(f, a, true); }));
        if (g_signal) return 128 + int(g_signal);
    }
    return worst;
}

int cmd_validate(const std::vector<std::string>& paths, const std::vector<std::string>& sets) {
    int rc = 0;
    const auto files = expand(paths);
    if (files.empty()) {
        fmt::print(stderr, "hvsim: validate: no scenario files\n");
        return 2;
    }
    // What run refuses before simulating, validate refuses: the file and parameters, then
    // the VM setup and the elaboration (in a child: SystemC elaborates once per process).
    for (const auto& f : files) {
        const int r = run_forked(f, [&] {
            try {
                const auto s = load_scenario_file(f);
                const ParamSet p = resolve_params(s, parse_sets(sets));
                RunOptions opt;
                opt.setup_only = true;
                const RunOutput out = run_scenario(s, p, opt);
                if (!out.refused.empty()) {
                    fmt::print(stderr, "hvsim: {}: {}\n", f, out.refused);
                    return 2;
                }
                fmt::print("ok: {} ({} steps, platform {})\n", f, s.steps.size(), s.platform);
                return 0;
            } catch (const LoadError& e) {
                fmt::print(stderr, "hvsim: {}\n", e.what());
                return 2;
            } catch (const std::invalid_argument& e) {
                fmt::print(stderr, "hvsim: {}: {}\n", f, e.what());
                return 2;
            }
        });
        rc = std::max(rc, r);
    }
    return rc;
}

std::string xml_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
        case '<': o += "&lt;"; break;
        case '>': o += "&gt;"; break;
        case '&': o += "&amp;"; break;
        case '"': o += "&quot;"; break;
        default: o += c;
        }
    }
    return o;
}

int cmd_check(const std::vector<std::string>& paths, const std::vector<std::string>& sets, const std::string& junit,
              unsigned jobs, const RunArgs& base) {
    const auto files = expand(paths);
    if (files.empty()) {
        fmt::print(stderr, "hvsim: check: no scenario files\n");
        return 2;
    }
    // Every destination is checked before anything runs.
    if (!junit.empty())
        if (std::string err = prepare_output_file(junit); !err.empty()) {
            fmt::print(stderr, "hvsim: --junit {}\n", err);
            return 2;
        }
    if (!base.write_baseline_dir.empty())
        if (std::string err = prepare_output_dir(base.write_baseline_dir); !err.empty()) {
            fmt::print(stderr, "hvsim: --write-baseline {}\n", err);
            return 2;
        }
    if (!std::isfinite(base.tolerance) || base.tolerance < 0) {
        fmt::print(stderr, "hvsim: --tolerance: expected a finite number >= 0, got {}\n", base.tolerance);
        return 2;
    }
    struct Res { int rc = 0; std::string log; double secs = 0; };
    std::vector<Res> res(files.size());
    // Each scenario in a child; its stderr goes to a pipe so failures print with it.
    std::map<pid_t, std::pair<size_t, int>> running;   // pid -> (index, pipe fd)
    std::map<pid_t, std::chrono::steady_clock::time_point> started;
    size_t next = 0;
    auto reap_one = [&] {
        int status = 0;
        const pid_t pid = wait(&status);
        if (pid <= 0) return;
        auto [idx, fd] = running.at(pid);
        std::string log;
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) log.append(buf, size_t(n));
        close(fd);
        res[idx].rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        if (WIFSIGNALED(status)) log += fmt::format("crashed (signal {})\n", WTERMSIG(status));
        res[idx].log = log;
        res[idx].secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started[pid]).count();
        const char* verdict = res[idx].rc == 0 ? "PASS" : res[idx].rc == 2 ? "ERROR" : "FAIL";
        fmt::print("{:<5} {}\n", verdict, files[idx]);
        if (res[idx].rc) std::cout << log;
        std::cout.flush();
        running.erase(pid);
    };
    while (next < files.size() || !running.empty()) {
        while (next < files.size() && running.size() < jobs) {
            int p[2];
            if (pipe(p) != 0) return 1;
            std::fflush(stdout);
            const pid_t pid = fork();
            if (pid == 0) {
                close(p[0]);
                dup2(p[1], 2);
                if (!std::freopen("/dev/null", "w", stdout)) _exit(1);
                RunArgs a = base;
                a.files = {files[next]};
                a.sets = sets;
                a.quiet = true;
                a.no_progress = true;
                a.out_dir = (fs::temp_directory_path() / fmt::format("hvsim-check-{}", getpid())).string();
                const int rc = run_one(files[next], a, false);
                std::error_code ec;
                fs::remove_all(a.out_dir, ec);
                std::fflush(stderr);
                _exit(rc);
            }
            close(p[1]);
            running[pid] = {next, p[0]};
            started[pid] = std::chrono::steady_clock::now();
            ++next;
        }
        reap_one();
    }
    size_t pass = 0, fail = 0, err = 0;
    for (const auto& r : res) (r.rc == 0 ? pass : r.rc == 2 ? err : fail)++;
    fmt::print("{} passed, {} failed\n", pass, fail + err);
    if (!junit.empty()) {
        std::string x = fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"hvsim\" "
                                    "tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
                                    files.size(), fail, err);
        for (size_t i = 0; i < files.size(); ++i) {
            x += fmt::format("  <testcase classname=\"hvsim\" name=\"{}\" time=\"{:.3f}\"", xml_escape(files[i]),
                             res[i].secs);
            if (res[i].rc == 0) x += "/>\n";
            else
                x += fmt::format("><{} message=\"{}\">{}</{}></testcase>\n", res[i].rc == 2 ? "error" : "failure",
                                 res[i].rc == 2 ? "bad input" : "run failed", xml_escape(res[i].log),
                                 res[i].rc == 2 ? "error" : "failure");
        }
        x += "</testsuite>\n";
        try {
            write_file(junit, x);
        } catch (const std::exception& e) {
            fmt::print(stderr, "hvsim: {}\n", e.what());
            return 1;
        }
    }
    return err ? 2 : fail ? 1 : 0;
}


// ---- hvsim sweep -----------------------------------------------------------------------
// A sweep file names a scenario and a grid of parameter values:
//   { "scenario": "../quickstart.json", "grid": { "mmu.l2_tlb.entries": [1024, 3072] },
//     "metrics": ["sim.cycles", "walk.count"] }
// Every combination runs as `hvsim run SCENARIO --set k=v ...` (one process each, -j in
// parallel); DIR/sweep.csv gets one row per combination. --jobs-file writes the command
// lines instead, for GNU parallel or a Slurm array.

struct SweepSpec {
    std::string scenario;
    std::vector<std::pair<std::string, std::vector<std::string>>> grid;   // key -> values as --set text
    std::vector<std::string> metrics;
};

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
    SweepSpec sp;
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (it.key() != "scenario" && it.key() != "grid" && it.key() != "metrics" && it.key() != "description")
            throw LoadError(fmt::format("{}: /{}: expected one of [scenario, grid, metrics, description], got '{}'", path,
                                        it.key(), it.key()));
    }
    if (!j.contains("scenario") || !j["scenario"].is_string())
        throw LoadError(fmt::format("{}: /scenario: expected the path of a scenario file (relative to the sweep file)", path));
    fs::path sc = j["scenario"].get<std::string>();
    sp.scenario = fs::absolute(sc.is_absolute() ? sc : fs::path(path).parent_path() / sc).lexically_normal().string();
    if (!j.contains("grid") || !j["grid"].is_object() || j["grid"].empty())
        throw LoadError(fmt::format("{}: /grid: expected an object of parameter -> list of values", path));
    for (auto it = j["grid"].begin(); it != j["grid"].end(); ++it) {
        if (!it.value().is_array() || it.value().empty())
            throw LoadError(fmt::format("{}: /grid/{}: expected a non-empty list of values", path, it.key()));
        std::vector<std::string> vals;
        for (const auto& v : it.value()) vals.push_back(v.is_string() ? v.get<std::string>() : v.dump());
        sp.grid.emplace_back(it.key(), std::move(vals));
    }
    if (j.contains("metrics")) {
        if (!j["metrics"].is_array()) throw LoadError(fmt::format("{}: /metrics: expected a list of metric names", path));
        for (const auto& m : j["metrics"]) {
            if (!m.is_string()) throw LoadError(fmt::format("{}: /metrics: expected metric names (strings)", path));
            sp.metrics.push_back(m.get<std::string>());
        }
    } else {
        sp.metrics = {"sim.cycles", "accesses", "tlb.misses", "walk.mem_refs", "faults.npf", "exits.total"};
    }
    return sp;
}

std::string shell_quote(const std::string& s) {
    std::string o = "'";
    for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return o + "'";
}

int cmd_sweep(const std::string& file, const std::string& out_dir, unsigned jobs, const std::string& jobs_file,
              const std::string& self) {
    const SweepSpec sp = load_sweep(file);
    // Every combination of the grid, first key slowest.
    std::vector<std::vector<std::pair<std::string, std::string>>> combos(1);
    for (const auto& [key, vals] : sp.grid) {
        std::vector<std::vector<std::pair<std::string, std::string>>> next;
        for (const auto& c : combos)
            for (const auto& v : vals) {
                auto n = c;
                n.emplace_back(key, v);
                next.push_back(std::move(n));
            }
        combos = std::move(next);
    }
    // Check the scenario and every combination before running anything.
    const scn::Scenario s = load_scenario_file(sp.scenario);
    for (const auto& c : combos) resolve_params(s, c);
    const fs::path dir = fs::absolute(out_dir.empty() ? fs::path("out") / ("sweep-" + safe_file_name(s.name)) : fs::path(out_dir));
    auto set_args = [](const std::vector<std::pair<std::string, std::string>>& c) {
        std::vector<std::string> v;
        for (const auto& [k, val] : c) v.push_back(k + "=" + val);
        return v;
    };
    if (!jobs_file.empty()) {
        std::string text;
        for (size_t i = 0; i < combos.size(); ++i) {
            text += shell_quote(self) + " run --quiet --no-progress -o " + shell_quote((dir / std::to_string(i)).string());
            for (const auto& a : set_args(combos[i])) text += " --set " + shell_quote(a);
            text += " " + shell_quote(sp.scenario) + "\n";
        }
        write_file(jobs_file, text);
        fmt::print("{}: {} runs written to {}\n", file, combos.size(), jobs_file);
        return 0;
    }
    std::vector<int> rcs(combos.size(), 0);
    std::map<pid_t, size_t> running;
    size_t next = 0, done = 0;
    while (next < combos.size() || !running.empty()) {
        while (next < combos.size() && running.size() < jobs) {
            std::fflush(stdout);
            const pid_t pid = fork();
            if (pid == 0) {
                RunArgs a;
                a.quiet = true;
                a.no_progress = true;
                a.out_dir = (dir / std::to_string(next)).string();
                a.sets = set_args(combos[next]);
                const int rc = run_one(sp.scenario, a, false);
                std::fflush(stderr);
                _exit(rc);
            }
            running[pid] = next++;
        }
        int status = 0;
        const pid_t pid = wait(&status);
        if (pid <= 0) break;
        const size_t i = running.at(pid);
        running.erase(pid);
        rcs[i] = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        ++done;
        fmt::print("[{}/{}] {} {}\n", done, combos.size(), rcs[i] == 0 ? "ok  " : "FAIL",
                   fmt::join(set_args(combos[i]), " "));
        std::fflush(stdout);
    }
    // The table: one row per combination, the grid's values then the chosen metrics.
    std::string csv = "run";
    for (const auto& [key, vals] : sp.grid) csv += "," + key;
    for (const auto& m : sp.metrics) csv += "," + m;
    csv += ",status\n";
    for (size_t i = 0; i < combos.size(); ++i) {
        csv += std::to_string(i);
        for (const auto& [k, v] : combos[i]) csv += "," + v;
        nlohmann::json r;
        std::ifstream rf(dir / std::to_string(i) / "results.json");
        if (rf) r = nlohmann::json::parse(rf, nullptr, false);
        for (const auto& m : sp.metrics) {
            csv += ",";
            if (r.is_object() && r.contains("metrics") && r["metrics"].contains(m)) csv += r["metrics"][m].dump();
        }
        csv += rcs[i] == 0 ? ",ok\n" : ",failed\n";
    }
    write_file(dir / "sweep.csv", csv);
    std::cout << csv;
    fmt::print("sweep: {} runs, {} failed; table in {}\n", combos.size(),
               std::count_if(rcs.begin(), rcs.end(), [](int rc) { return rc != 0; }), (dir / "sweep.csv").string());
    return *std::max_element(rcs.begin(), rcs.end()) ? 1 : 0;
}

int cmd_params(const std::string& platform) {
    try {
        const ParamSet p = ParamSet::preset(platform);
        const auto d = p.describe();
        for (auto it = d.begin(); it != d.end(); ++it) {
            const auto& v = it.value();
            fmt::print("{:<40} {:<14} {:<8} {}  [{}]\n", it.key(), v.at("value").dump(), v.value("unit", ""),
                       v.value("description", ""), v.value("source", ""));
        }
        fmt::print("\nkernel profiles (kvm.profile; explicit kvm.config.* parameters override them):\n");
        for (const auto& prof : kernel_profiles()) {
            fmt::print("  {}{}: {}\n", prof.name, prof.name == kernel_profiles().front().name ? " (default)" : "",
                       prof.description);
            for (const auto& e : prof.values) fmt::print("      {} = {}\n", e.key, e.value.dump());
        }
    } catch (const ParamError& e) {
        fmt::print(stderr, "hvsim: {}\n", e.what());
        return 2;
    }
    return 0;
}

}  // namespace

int sc_main(int argc, char* argv[]) {
    CLI::App app{"hvsim: a cycle-level simulator of the hypervisor memory path (KVM, nested paging, guest_memfd)"};
    app.set_version_flag("--version", kVersion);
    app.require_subcommand(1);

    RunArgs ra;
    auto* run = app.add_subcommand("run", "Run scenario files; print a summary and write DIR/results.json");
    run->add_option("files", ra.files, "Scenario files or directories")->required();
    run->add_option("-o,--out", ra.out_dir, "Output directory (default: out/<scenario name>)");
    run->add_option("--set", ra.sets, "Override a parameter: --set mmu.l2_tlb.entries=2048 (repeatable)");
    run->add_flag("-q,--quiet", ra.quiet, "Print nothing but errors");
    run->add_flag("--no-progress", ra.no_progress, "No progress line on long runs");
    run->add_flag("--no-invariants", ra.no_check, "Skip the invariant checks after every step");

    std::vector<std::string> vfiles, vsets;
    auto* validate = app.add_subcommand("validate", "Check scenario files against the format and the parameters");
    validate->add_option("files", vfiles, "Scenario files or directories")->required();
    validate->add_option("--set", vsets, "Parameter overrides to check as well");

    std::vector<std::string> cfiles, csets;
    std::string junit;
    unsigned jobs = std::max(1u, std::thread::hardware_concurrency());
    auto* check = app.add_subcommand("check", "Run scenarios as a test suite: PASS/FAIL per file, CI exit code");
    check->add_option("paths", cfiles, "Scenario files or directories")->required();
    check->add_option("--set", csets, "Parameter overrides for every scenario");
    check->add_option("--junit", junit, "Write a JUnit XML report");
    check->add_option("-j,--jobs", jobs, "Scenarios run in parallel")->check(CLI::Range(1u, 256u));
    RunArgs cbase;
    check->add_option("--baseline", cbase.baseline_dir,
                      "Fail when a metric moves away from DIR/<scenario>/results.json by more than --tolerance")
        ->check(CLI::ExistingDirectory);
    check->add_option("--tolerance", cbase.tolerance, "Relative tolerance for --baseline (0.05 = 5%; default 0: exact)")
        ->check(CLI::Range(0.0, 1e6));
    check->add_option("--write-baseline", cbase.write_baseline_dir,
                      "Write each run's results.json to DIR/<scenario>/ as the new baseline");

    std::vector<std::string> dfiles;
    bool ddiff_only = false;
    auto* diff = app.add_subcommand("diff-kvm", "Run the uAPI steps on the simulated and the host's real KVM, step by step");
    diff->add_option("paths", dfiles, "Scenario files or directories")->required();
    diff->add_flag("-d,--differences-only", ddiff_only,
                   "Print only the steps that differ (default: every step, with the host's configuration)");

    std::string sweep_file, sweep_out, jobs_file;
    unsigned sweep_jobs = std::max(1u, std::thread::hardware_concurrency());
    auto* sweep = app.add_subcommand("sweep", "Run a scenario over a grid of parameter values; CSV of chosen metrics");
    sweep->add_option("file", sweep_file, "Sweep file: {\"scenario\", \"grid\": {param: [values]}, \"metrics\"}")->required();
    sweep->add_option("-o,--out", sweep_out, "Output directory (default: out/sweep-<scenario name>)");
    sweep->add_option("-j,--jobs", sweep_jobs, "Runs in parallel")->check(CLI::Range(1u, 256u));
    sweep->add_option("--jobs-file", jobs_file, "Write one hvsim command line per run (GNU parallel, Slurm array) instead");

    std::string arch = "generic";
    auto* graph = app.add_subcommand("graph", "Print a page-state graph as Graphviz DOT");
    graph->add_option("arch", arch, "generic: the guest_memfd page of the generic KVM core; pkvm: a page's "
                                    "ownership under pKVM (host, hypervisor, guests), edges the hypercalls (the SNP RMP "
                                    "and TDX secure EPT graphs come with their models)")
        ->check(CLI::IsMember({"generic", "pkvm"}));

    std::string platform = "zen4-genoa";
    auto* params = app.add_subcommand("params", "List every parameter with a preset's values and sources");
    params->add_option("platform", platform, "Preset name");

    // An unknown subcommand is named as such (CLI11 would call it an unexpected argument).
    if (argc > 1 && argv[1][0] != '-') {
        std::vector<std::string> subs;
        for (const auto* sc : app.get_subcommands([](const CLI::App*) { return true; })) subs.push_back(sc->get_name());
        if (std::find(subs.begin(), subs.end(), argv[1]) == subs.end()) {
            fmt::print(stderr, "hvsim: unknown subcommand '{}'{}, expected one of {} (hvsim --help)\n", argv[1],
                       jsonu::suggestion_suffix(argv[1], subs), jsonu::join_list(subs));
            return 2;
        }
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    try {
        if (*run) return cmd_run(ra);
        if (*validate) return cmd_validate(vfiles, vsets);
        if (*check) return cmd_check(cfiles, csets, junit, jobs, cbase);
        if (*diff) return diff_kvm_main(expand(dfiles), !ddiff_only, std::cout, std::cerr);
        if (*params) return cmd_params(platform);
        if (*sweep) return cmd_sweep(sweep_file, sweep_out, sweep_jobs, jobs_file, fs::canonical("/proc/self/exe").string());
        if (*graph) {
            const std::string dot = arch == "pkvm" ? kvm::arm64::pkvm_state_dot() : kvm::gmem_page_state_dot();
            std::cout << dot << (dot.empty() || dot.back() != '\n' ? "\n" : "");
            return 0;
        }
    } catch (const LoadError& e) {
        fmt::print(stderr, "hvsim: {}\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        fmt::print(stderr, "hvsim: {}\n", e.what());
        return 1;
    }
    return 2;
}

// Our own main (the executable's definition wins over libsystemc's): the SystemC banner
// is printed when the kernel starts, before sc_main, and would land in our output.
int main(int argc, char* argv[]) {
    setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 1);
    return sc_core::sc_elab_and_sim(argc, argv);
}
