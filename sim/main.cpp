// hvsim: the command line. Exit codes: 0 success, 1 a run failed (expectation, model
// error, DIFFER), 2 bad input (the scenario, a parameter or the command line).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <systemc>
#include <fcntl.h>
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
#include <functional>
#include <map>
#include <thread>

#include "kernel/arm64/pkvm_mem_protect.hpp"
#include "kernel/page_state_graph.hpp"
#include "models/rmp/rmp_state_graph.hpp"
#include "models/tdx/sept_state_graph.hpp"
#include "sim/compare.hpp"
#include "sim/diff_kvm.hpp"
#include "sim/gem5_stats.hpp"
#include "sim/host_tuning.hpp"
#include "sim/engine.hpp"
#include "sim/json_util.hpp"
#include "sim/loader.hpp"
#include "sim/paths.hpp"
#include "sim/metric_catalog.hpp"
#include "sim/results.hpp"
#include "sim/sensitivity.hpp"
#include "sim/sweep.hpp"

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
    std::string stats;   // "gem5": DIR/stats.gem5.json beside results.json
    TraceOptions trace;  // --trace FILE (path empty: none)
    std::string casemate;   // --casemate FILE (arm64 presets)
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

std::vector<std::pair<std::string, std::string>> parse_sets(const std::vector<std::string>& sets) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& s : sets) out.push_back(parse_set_option(s));
    return out;
}

// "0:2ms", "1.5us:40us", "100:200" (ns) -> [start, end] in ns; nullopt when malformed.
std::optional<std::pair<uint64_t, uint64_t>> parse_time_window(const std::string& w) {
    auto one = [](std::string t) -> std::optional<uint64_t> {
        double scale = 1;
        for (const auto& [suf, mul] : {std::pair<const char*, double>{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}}) {
            const std::string sx = suf;
            if (t.size() > sx.size() && t.compare(t.size() - sx.size(), sx.size(), sx) == 0) {
                scale = mul;
                t.resize(t.size() - sx.size());
                break;
            }
        }
        if (t.empty() || t.find_first_not_of("0123456789.") != std::string::npos) return std::nullopt;
        char* end = nullptr;
        const double v = std::strtod(t.c_str(), &end);
        if (*end || v < 0 || v * scale > 1.8e19) return std::nullopt;
        return uint64_t(v * scale);
    };
    const auto colon = w.find(':');
    if (colon == std::string::npos) return std::nullopt;
    const auto a = one(w.substr(0, colon)), b = one(w.substr(colon + 1));
    if (!a || !b || *a >= *b) return std::nullopt;
    return std::make_pair(*a, *b);
}

// One scenario in this process. Returns the exit code.
int run_one(const std::string& file, const RunArgs& a, bool multi) {
    scn::Scenario s;
    std::optional<ParamSet> params;
    try {
        s = load_scenario_file(file);
        apply_scenario_sets(s, parse_sets(a.sets));
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
    if (!a.trace.path.empty()) {
        if (std::string err = prepare_output_file(a.trace.path); !err.empty()) {
            fmt::print(stderr, "hvsim: {}\n", err);
            return 2;
        }
        opt.trace = &a.trace;
    }
    if (!a.casemate.empty()) {
        if (std::string err = prepare_output_file(a.casemate); !err.empty()) {
            fmt::print(stderr, "hvsim: {}\n", err);
            return 2;
        }
        opt.casemate = a.casemate;
    }
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
        if (a.stats == "gem5") write_file(dir / "stats.gem5.json", gem5_stats(out.results).dump(2) + "\n");
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
        if (!out.trace_summary.empty()) std::cout << fmt::format("  trace: {} ({})\n", a.trace.path, out.trace_summary);
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
                auto s = load_scenario_file(f);
                apply_scenario_sets(s, parse_sets(sets));
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


// Runs `scenario` once per entry of `sets` (its --set list) into dirs[i], at most `jobs` at a
// time, one process each (SystemC elaborates once per process); on_done(i, exit code) as each
// ends. Returns the exit codes.
// capture_stderr: each run's stderr goes to dirs[i]/stderr.txt (what a refused run said).
std::vector<int> run_pool(const std::string& scenario, const std::vector<std::vector<std::string>>& sets,
                          const std::vector<fs::path>& dirs, unsigned jobs,
                          const std::function<void(size_t, int)>& on_done, bool capture_stderr = false) {
    std::vector<int> rcs(sets.size(), 0);
    std::map<pid_t, size_t> running;
    size_t next = 0;
    while (next < sets.size() || !running.empty()) {
        while (next < sets.size() && running.size() < jobs) {
            std::fflush(stdout);
            if (capture_stderr) fs::create_directories(dirs[next]);
            const pid_t pid = fork();
            if (pid == 0) {
                if (capture_stderr) {
                    const int fd = open((dirs[next] / "stderr.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
                    if (fd >= 0) dup2(fd, STDERR_FILENO);
                }
                RunArgs a;
                a.quiet = true;
                a.no_progress = true;
                a.out_dir = dirs[next].string();
                a.sets = sets[next];
                const int rc = run_one(scenario, a, false);
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
        on_done(i, rcs[i]);
        std::fflush(stdout);
    }
    return rcs;
}

// ---- hvsim sweep (sim/sweep.hpp) -------------------------------------------------------
// Runs every point here (-j in parallel, one process each), or writes the points for a
// cluster (--emit slurm|parallel DIR, --jobs-file FILE), or gathers what ran (--collect DIR).

int cmd_sweep(const std::string& file, const std::string& out_dir, unsigned jobs, const std::string& jobs_file,
              const std::vector<std::string>& emit, const std::string& self) {
    const SweepSpec sp = load_sweep(file);
    const std::vector<SweepPoint> pts = sweep_points(sp);
    // Check the scenario and every point before running anything.
    const scn::Scenario s = load_scenario_file(sp.scenario);
    for (const auto& p : pts) {
        scn::Scenario sp_s = s;
        apply_scenario_sets(sp_s, p);
        resolve_params(sp_s, p);
    }
    fs::path dir = fs::absolute(out_dir.empty() ? fs::path("out") / ("sweep-" + safe_file_name(s.name)) : fs::path(out_dir));
    if (!emit.empty()) {
        dir = fs::absolute(emit.at(1));
        if (std::string err = prepare_output_dir(dir); !err.empty()) throw LoadError(err);
        fmt::print("{}: {} points written to {}\n{}", file, pts.size(), dir.string(), emit_sweep(emit[0], dir, sp, pts, self));
        return 0;
    }
    if (!jobs_file.empty()) {
        std::string text;
        for (size_t i = 0; i < pts.size(); ++i) text += sweep_command(self, sp, dir, i, pts[i]) + "\n";
        write_file(jobs_file, text);
        write_sweep_manifest(dir, sp, pts, self);
        fmt::print("{}: {} runs written to {}\n", file, pts.size(), jobs_file);
        return 0;
    }
    if (std::string err = prepare_output_dir(dir); !err.empty()) throw LoadError(err);
    write_sweep_manifest(dir, sp, pts, self);
    std::vector<std::vector<std::string>> sets;
    std::vector<fs::path> dirs;
    for (size_t i = 0; i < pts.size(); ++i) {
        sets.push_back(sweep_set_args(pts[i]));
        dirs.push_back(dir / std::to_string(i));
    }
    size_t done = 0;
    const std::vector<int> rcs = run_pool(sp.scenario, sets, dirs, jobs, [&](size_t i, int rc) {
        fmt::print("[{}/{}] {} {}\n", ++done, pts.size(), rc == 0 ? "ok  " : "FAIL", fmt::join(sets[i], " "));
    });
    const SweepTable t = sweep_table(dir, sp, pts, &rcs);
    write_file(dir / "sweep.csv", t.csv);
    std::cout << t.csv;
    fmt::print("sweep: {} runs, {} failed; table in {}\n", pts.size(),
               std::count_if(rcs.begin(), rcs.end(), [](int rc) { return rc != 0; }), (dir / "sweep.csv").string());
    return *std::max_element(rcs.begin(), rcs.end()) ? 1 : 0;
}

// ---- hvsim sensitivity (sim/sensitivity.hpp) ------------------------------------------

int cmd_sensitivity(const std::string& file, std::vector<std::string> metrics, const std::vector<std::string>& sets,
                    const std::string& out_dir, unsigned jobs, double low, double high) {
    scn::Scenario s = load_scenario_file(file);
    const auto base_sets = parse_sets(sets);
    apply_scenario_sets(s, base_sets);
    const ParamSet base = resolve_params(s, base_sets);
    if (metrics.empty()) metrics = {"sim.cycles"};
    for (const auto& m : metrics)
        if (const std::string e = metric_name_error(m); !e.empty()) throw LoadError("sensitivity: --metric: " + e);
    SensitivityPlan plan = plan_sensitivity(base, low, high);
    // A scaled value the parameter's range refuses is reported, not run.
    std::vector<std::string> refused;
    std::erase_if(plan.params, [&](const SensitivityParam& p) {
        for (const auto& v : {p.low, p.high}) {
            auto with = base_sets;
            with.emplace_back(p.key, v);
            try {
                resolve_params(s, with);
            } catch (const LoadError& e) {
                refused.push_back(e.what());
                return true;
            }
        }
        return false;
    });
    const fs::path dir = fs::absolute(out_dir.empty() ? fs::path("out") / ("sensitivity-" + safe_file_name(s.name))
                                                      : fs::path(out_dir));
    if (std::string err = prepare_output_dir(dir); !err.empty()) throw LoadError(err);
    std::vector<std::vector<std::string>> run_sets{sets};
    std::vector<fs::path> dirs{dir / "base"};
    for (const auto& p : plan.params)
        for (bool hi : {false, true}) {
            auto v = sets;
            v.push_back(p.key + "=" + (hi ? p.high : p.low));
            run_sets.push_back(std::move(v));
            dirs.push_back(dir / sensitivity_run_name(p.key, hi));
        }
    fmt::print("sensitivity: {} parameters x{} and x{}: {} runs, {} at a time\n", plan.params.size(), low, high,
               run_sets.size(), jobs);
    size_t done = 0;
    const auto rcs = run_pool(fs::absolute(file).string(), run_sets, dirs, jobs, [&](size_t, int) {
        if (++done % 10 == 0 || done == run_sets.size()) fmt::print("  {}/{} runs\n", done, run_sets.size());
    });
    if (!fs::exists(dir / "base" / "results.json"))
        throw std::runtime_error(fmt::format("{}: the run at the preset values failed (exit {})", file, rcs[0]));
    const SensitivityReport rep = sensitivity_report(dir, s.name, plan, metrics, low, high);
    for (const auto& r : refused) fmt::print(stderr, "hvsim: sensitivity: not scaled: {}\n", r);
    write_file(dir / "sensitivity.txt", rep.table);
    write_file(dir / "sensitivity.csv", rep.csv);
    write_file(dir / "sensitivity.json", rep.json.dump(2) + "\n");
    std::cout << "\n" << rep.table;
    fmt::print("  tables: {}  (plot: hvsim plot {})\n", (dir / "sensitivity.csv").string(),
               (dir / "sensitivity.json").string());
    return 0;
}

// ---- hvsim plot ----------------------------------------------------------------------
// The pictures are drawn by tools/plot/hvsim_plot.py (matplotlib from Debian's
// python3-matplotlib, which tools/setup.sh installs): the Python that has it is Debian's
// /usr/bin/python3, not whichever python3 is first on PATH. HVSIM_PYTHON overrides.
int cmd_plot(const std::vector<std::string>& args) {
    const char* env = std::getenv("HVSIM_PYTHON");
    const std::string py = env && *env ? env : (fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
    const std::string script = std::string(HVSIM_SOURCE_DIR) + "/tools/plot/hvsim_plot.py";
    if (!fs::exists(script)) {
        fmt::print(stderr, "hvsim: plot: {} not found (the plotting script lives in the source tree)\n", script);
        return 2;
    }
    std::vector<std::string> argv_s{py, script};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    execvp(argv[0], argv.data());
    fmt::print(stderr, "hvsim: plot: cannot run {}: {}\n", py, std::strerror(errno));
    return 2;
}

// ---- hvsim compare (sim/compare.hpp) --------------------------------------------------

int cmd_compare(const std::string& file, const std::vector<std::string>& platforms,
                const std::vector<std::string>& vm_types, const std::vector<std::string>& metrics,
                const std::vector<std::string>& sets, const std::string& out_dir, unsigned jobs) {
    if (platforms.empty() && vm_types.empty())
        throw LoadError("compare: expected --platform and/or --vm-type (comma-separated lists)");
    scn::Scenario s = load_scenario_file(file);
    for (const auto& m : metrics)
        if (const std::string e = metric_name_error(m); !e.empty()) throw LoadError("compare: --metric: " + e);
    const auto cols = compare_columns(platforms, vm_types, sets);
    // Names and values are checked up front; what a platform or VM type cannot run is found
    // by running it, and reported in its column.
    for (const auto& c : cols) {
        scn::Scenario cs = s;
        const auto cset = parse_sets(c.sets);
        apply_scenario_sets(cs, cset);
        resolve_params(cs, cset);
    }
    const fs::path dir = fs::absolute(out_dir.empty() ? fs::path("out") / ("compare-" + safe_file_name(s.name))
                                                      : fs::path(out_dir));
    if (std::string err = prepare_output_dir(dir); !err.empty()) throw LoadError(err);
    std::vector<std::vector<std::string>> run_sets;
    std::vector<fs::path> dirs;
    for (const auto& c : cols) {
        run_sets.push_back(c.sets);
        dirs.push_back(dir / safe_file_name(c.name));
    }
    const auto rcs = run_pool(fs::absolute(file).string(), run_sets, dirs, jobs, [](size_t, int) {}, true);
    const CompareReport rep = compare_report(dir, s.name, cols, rcs, metrics);
    write_file(dir / "compare.txt", rep.table);
    write_file(dir / "compare.csv", rep.csv);
    write_file(dir / "compare.json", rep.json.dump(2) + "\n");
    std::cout << rep.table;
    fmt::print("  tables: {}  (plot: hvsim plot {} --metric sim.cycles)\n", (dir / "compare.csv").string(),
               (dir / "compare.json").string());
    return 0;
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
    run->add_option("--set", ra.sets, "Override a parameter: --set mmu.l2_tlb.entries=1536 (repeatable)");
    run->add_flag("-q,--quiet", ra.quiet, "Print nothing but errors");
    run->add_flag("--no-progress", ra.no_progress, "No progress line on long runs");
    run->add_flag("--no-invariants", ra.no_check, "Skip the invariant checks after every step");
    std::string trace_window;
    run->add_option("--trace", ra.trace.path,
                    "Write the run's timeline: FILE.pftrace (Perfetto protobuf) or FILE.json (Chrome trace events)");
    run->add_option("--trace-window", trace_window, "Only events in START:END of simulated time (e.g. 0:2ms, 1.5us:40us)");
    run->add_option("--trace-sample", ra.trace.sample, "Record one vCPU exit in N (default 1: every exit)")
        ->check(CLI::Range(1u, 1000000000u));
    run->add_option("--trace-max-events", ra.trace.max_events,
                    "Stop recording exits and walks after N events (default 2000000)")
        ->check(CLI::Range(uint64_t(1), uint64_t(1) << 40));
    CLI::Option* trace_walks = run->add_option("--trace-walks", ra.trace.walk_sample,
                    "Record one page walk in N on each vCPU's walk track (default 64; 0: no walk slices)")
        ->check(CLI::Range(0u, 1000000000u));
    run->add_option("--casemate", ra.casemate,
                    "arm64 presets: write the run's stage-2 updates (descriptor writes, barriers, TLBIs, locks) as a "
                    "trace in the format of Casemate, the break-before-make checker (rems-project/casemate)");
    run->add_option("--stats", ra.stats, "Also write the metrics as DIR/stats.gem5.json in gem5's JSON statistics shape")
        ->check(CLI::IsMember({"gem5"}));

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
    std::vector<std::string> sweep_emit;
    std::string sweep_collect;
    auto* sweep_file_opt =
        sweep->add_option("file", sweep_file, "Sweep file: {\"scenario\", \"grid\": {param: [values]}, \"metrics\"}");
    sweep->add_option("-o,--out", sweep_out, "Output directory (default: out/sweep-<scenario name>)");
    sweep->add_option("-j,--jobs", sweep_jobs, "Runs in parallel")->check(CLI::Range(1u, 256u));
    sweep->add_option("--jobs-file", jobs_file, "Write one hvsim command line per run (GNU parallel, Slurm array) instead");
    auto* emit_opt = sweep->add_option("--emit", sweep_emit,
                                       "slurm DIR: an array job (DIR/sweep.sbatch); parallel DIR: a GNU parallel job "
                                       "list (DIR/jobs.txt); the runs write DIR/<i>/, --collect DIR gathers them")
                         ->expected(2)
                         ->type_name("KIND DIR");
    auto* collect_opt = sweep->add_option("--collect", sweep_collect,
                                          "Gather DIR/<i>/results.json of an emitted sweep into DIR/sweep.csv; list "
                                          "the missing points in DIR/rerun.txt");
    collect_opt->excludes(sweep_file_opt)->excludes(emit_opt);

    std::string sens_file, sens_out;
    std::vector<std::string> sens_metrics, sens_sets;
    unsigned sens_jobs = std::max(1u, std::thread::hardware_concurrency());
    double sens_low = 0.5, sens_high = 2.0;
    auto* sens = app.add_subcommand("sensitivity", "Rank the cost and latency parameters by how much each moves a run's metrics");
    sens->add_option("file", sens_file, "Scenario file")->required();
    sens->add_option("-m,--metric", sens_metrics, "Metric to watch (repeatable; default sim.cycles)");
    sens->add_option("--set", sens_sets, "Parameter overrides for every run (the base point)");
    sens->add_option("-o,--out", sens_out, "Output directory (default: out/sensitivity-<scenario name>)");
    sens->add_option("-j,--jobs", sens_jobs, "Runs in parallel")->check(CLI::Range(1u, 256u));
    sens->add_option("--low", sens_low, "Scale factor down (default 0.5)")->check(CLI::Range(0.0, 1.0));
    sens->add_option("--high", sens_high, "Scale factor up (default 2)")->check(CLI::Range(1.0, 1e6));

    std::string cmp_file, cmp_out;
    std::vector<std::string> cmp_platforms, cmp_types, cmp_metrics, cmp_sets;
    unsigned cmp_jobs = std::max(1u, std::thread::hardware_concurrency());
    auto* compare = app.add_subcommand("compare", "One workload on several platforms / VM types, figures side by side");
    compare->add_option("file", cmp_file, "Scenario file")->required();
    compare->add_option("--platform", cmp_platforms, "Platforms, comma-separated (zen4-genoa,sapphire-rapids,neoverse-n2)")
        ->delimiter(',');
    compare->add_option("--vm-type", cmp_types, "VM types, comma-separated (snp,tdx,pkvm,sw_protected,...)")->delimiter(',');
    compare->add_option("-m,--metric", cmp_metrics, "Further metrics to show (repeatable)");
    compare->add_option("--set", cmp_sets, "Parameter overrides for every column");
    compare->add_option("-o,--out", cmp_out, "Output directory (default: out/compare-<scenario name>)");
    compare->add_option("-j,--jobs", cmp_jobs, "Runs in parallel")->check(CLI::Range(1u, 256u));

    auto* plot = app.add_subcommand("plot", "Draw results.json, sweep.csv, sensitivity.json or compare.json (PNG/SVG)");
    plot->prefix_command();   // everything after `plot` goes to the plotting script
    plot->set_help_flag();    // ... --help included

    std::string arch = "generic";
    auto* graph = app.add_subcommand("graph", "Print a page-state graph as Graphviz DOT");
    graph->add_option("arch", arch, "generic: the guest_memfd page of the generic KVM core; snp: a system page's "
                                    "RMP states under SEV-SNP; tdx: one secure-EPT entry under the TDX module; pkvm: a "
                                    "page's ownership under pKVM (host, hypervisor, guests), edges the hypercalls")
        ->check(CLI::IsMember({"generic", "snp", "tdx", "pkvm"}));

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
        if (*run) {
            if (!ra.trace.path.empty()) {
                if (!Trace::known_extension(ra.trace.path)) {
                    fmt::print(stderr, "hvsim: --trace {}: expected a file name ending in .pftrace, .perfetto-trace or .json\n",
                               ra.trace.path);
                    return 2;
                }
                if (expand(ra.files).size() != 1) {
                    fmt::print(stderr, "hvsim: --trace: expected one scenario file, got {}\n", expand(ra.files).size());
                    return 2;
                }
            }
            if (trace_walks->count() && ra.trace.path.empty()) {
                fmt::print(stderr, "hvsim: --trace-walks: needs --trace FILE\n");
                return 2;
            }
            if (!trace_window.empty()) {
                if (ra.trace.path.empty()) {
                    fmt::print(stderr, "hvsim: --trace-window: needs --trace FILE\n");
                    return 2;
                }
                const auto w = parse_time_window(trace_window);
                if (!w) {
                    fmt::print(stderr, "hvsim: --trace-window {}: expected START:END in simulated time "
                                       "(ns, us, ms or s; e.g. 0:2ms), START < END\n", trace_window);
                    return 2;
                }
                ra.trace.window_start_ns = w->first;
                ra.trace.window_end_ns = w->second;
            }
            return cmd_run(ra);
        }
        if (*validate) return cmd_validate(vfiles, vsets);
        if (*check) return cmd_check(cfiles, csets, junit, jobs, cbase);
        if (*diff) return diff_kvm_main(expand(dfiles), !ddiff_only, std::cout, std::cerr);
        if (*params) return cmd_params(platform);
        if (*plot) return cmd_plot(plot->remaining());
        if (*compare) return cmd_compare(cmp_file, cmp_platforms, cmp_types, cmp_metrics, cmp_sets, cmp_out, cmp_jobs);
        if (*sens) return cmd_sensitivity(sens_file, sens_metrics, sens_sets, sens_out, sens_jobs, sens_low, sens_high);
        if (*sweep) {
            if (!sweep_collect.empty()) return collect_sweep(fs::absolute(sweep_collect));
            if (sweep_file.empty()) {
                fmt::print(stderr, "hvsim: sweep: expected a sweep file (or --collect DIR)\n");
                return 2;
            }
            if (!sweep_emit.empty() && sweep_emit[0] != "slurm" && sweep_emit[0] != "parallel") {
                fmt::print(stderr, "hvsim: sweep: --emit: expected slurm or parallel, got '{}'{}\n", sweep_emit[0],
                           jsonu::suggestion_suffix(sweep_emit[0], {"slurm", "parallel"}));
                return 2;
            }
            return cmd_sweep(sweep_file, sweep_out, sweep_jobs, jobs_file, sweep_emit,
                             fs::canonical("/proc/self/exe").string());
        }
        if (*graph) {
            const std::string dot = arch == "tdx"    ? tdx::sept_state_dot()
                                    : arch == "snp"  ? rmp::rmp_page_state_dot()
                                    : arch == "pkvm" ? kvm::arm64::pkvm_state_dot()
                                                     : kvm::gmem_page_state_dot();
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
    reexec_with_host_thp(argv);   // host time only (sim/host_tuning.hpp)
    setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 1);
    return sc_core::sc_elab_and_sim(argc, argv);
}
