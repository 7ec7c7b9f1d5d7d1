// hvsim sweep: a scenario over a grid of parameter values. A sweep file:
//   { "scenario": "../quickstart.json", "grid": { "mmu.l2_tlb.entries": [1024, 3072] },
//     "metrics": ["sim.cycles", "walk.count"] }
// Every point of the grid is one `hvsim run SCENARIO --set k=v ...` into DIR/<i>/; DIR/sweep.json
// records the points, so the runs can happen here (-j), on a cluster (a Slurm array or a GNU
// parallel job list, --emit) or anywhere else, and --collect gathers DIR/<i>/results.json into
// DIR/sweep.csv whenever they are done.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hvsim {

struct SweepSpec {
    std::string scenario;                                                  // absolute path
    std::vector<std::pair<std::string, std::vector<std::string>>> grid;   // key -> values as --set text
    std::vector<std::string> metrics;
};
using SweepPoint = std::vector<std::pair<std::string, std::string>>;      // key=value per grid key

// Reads and checks a sweep file (LoadError with file and JSON pointer): known keys, a
// non-empty grid, and metric names a run can report (the results contract).
SweepSpec load_sweep(const std::string& path);
// Every combination of the grid, the first key varying slowest.
std::vector<SweepPoint> sweep_points(const SweepSpec& sp);
// "key=value" for each --set.
std::vector<std::string> sweep_set_args(const SweepPoint& p);
std::string shell_quote(const std::string& s);
// The shell command that runs point i into dir/i with the hvsim binary `self`.
std::string sweep_command(const std::string& self, const SweepSpec& sp, const std::filesystem::path& dir, size_t i,
                          const SweepPoint& p);

// DIR/sweep.json: the spec, its points and the binary, everything --collect needs.
void write_sweep_manifest(const std::filesystem::path& dir, const SweepSpec& sp, const std::vector<SweepPoint>& pts,
                          const std::string& self);

// DIR/jobs.txt (one command per point) and, for slurm, DIR/sweep.sbatch (an array job, one
// task per line of jobs.txt). kind: "slurm" or "parallel". Returns what to run next.
std::string emit_sweep(const std::string& kind, const std::filesystem::path& dir, const SweepSpec& sp,
                       const std::vector<SweepPoint>& pts, const std::string& self);

// The table: one row per point (grid values, metrics, status). Status is the run's own
// ("ok" when passed, else failed/error/interrupted), "failed" when the run's exit code
// (rcs, when known) was non-zero and it wrote nothing, "missing" when it has not run.
struct SweepTable {
    std::string csv;
    std::vector<size_t> missing;   // points without results
    size_t not_ok = 0;             // points whose status is not ok (missing included)
};
SweepTable sweep_table(const std::filesystem::path& dir, const SweepSpec& sp, const std::vector<SweepPoint>& pts,
                       const std::vector<int>* rcs);

// hvsim sweep --collect DIR: reads DIR/sweep.json, writes DIR/sweep.csv and DIR/rerun.txt
// (the commands of the missing points). Exit 0 when every point ran and passed, 1 otherwise.
int collect_sweep(const std::filesystem::path& dir);

}  // namespace hvsim
