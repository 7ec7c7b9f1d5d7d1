// `hvsim diff-kvm FILE|DIR...`: runs each scenario's uAPI steps on the simulated KVM
// (configured like the host: sim_config_for_host) and on the host's real /dev/kvm, and
// reports every step as AGREE, DIFFER or SKIP (with the reason). Step `expect` values are
// not consulted: the real kernel is the referee. See docs/ground-truth.md.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "sim/outcome.hpp"
#include "sim/realkvm.hpp"
#include "sim/scenario.hpp"

namespace hvsim {

// Prints one verdict line per scenario, followed by a table of its steps (number, JSON
// pointer, operation, simulated result, real result, verdict): every step with `verbose`,
// otherwise only the steps that differ; then the summary
// "diff-kvm: N scenarios, A agree, D differ, S skipped".
// Exit status: 0 all compared steps agree (or nothing could be compared), 1 some step
// differs, 2 bad input (a path that does not exist, a scenario that does not load).
int diff_kvm_main(const std::vector<std::string>& paths, bool verbose, std::ostream& out, std::ostream& err);

// The same against a given host description (tests pass an unavailable host).
int diff_kvm_run(const std::vector<std::string>& paths, bool verbose, const HostKvmCaps& host, std::ostream& out,
                 std::ostream& err);

// ---- pieces, exposed for tests ----

enum class Verdict { agree, differ, skip };
const char* verdict_name(Verdict v);   // "AGREE", "DIFFER", "SKIP"

struct StepVerdict {
    Verdict verdict = Verdict::skip;
    std::string why;   // SKIP: the reason; DIFFER: the fields that differ
};

// A step the host could not run (or the simulator did not run) is SKIP, never AGREE.
// Compared: err, signal, value, error_offset, remaining, bytes (a uniform value, or
// "mixed"; a value reported next to bytes_mixed is ignored). An optional field set on one
// side only counts as a difference when the call succeeded on both sides (a failing call's
// out-fields are not part of the contract).
StepVerdict compare_outcomes(const StepOutcome& sim, const StepOutcome& real);

// "ok", "EINVAL", "value=3", "SIGBUS", "bytes=0x5a", "EOPNOTSUPP remaining=0x1000", "skipped".
std::string format_outcome(const StepOutcome& o);

// A short summary of a step, e.g. "set_user_memory_region2 slot=0 flags=0x4 gpa=0x0 size=0x200000".
std::string describe_step(const scn::Step& st);

// Scenario files named by `paths`: files as given, directories searched recursively for
// *.json except *.schema.json; sorted within each directory walk. Paths that do not exist
// are appended to `missing`.
std::vector<std::string> collect_scenario_files(const std::vector<std::string>& paths,
                                                std::vector<std::string>& missing);

}  // namespace hvsim
