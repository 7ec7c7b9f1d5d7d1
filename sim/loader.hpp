// The scenario loader: reads a scenario JSON file (the contract in docs/scenario.md and
// scenarios/scenario.schema.json) into scn::Scenario, rejecting anything it does not
// understand with a one-line error that names the file, the JSON pointer of the value,
// what was expected and what was found, with a did-you-mean where a near name exists:
//
//   quick.json: /vm/vcpu: expected one of [type, vcpus, ...], got 'vcpu' (did you mean 'vcpus'?)
//   quick.json:3:14: syntax error while parsing object - unexpected '}'; expected string literal
//   missing.json: cannot open: No such file or directory
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sim/params.hpp"
#include "sim/scenario.hpp"

namespace hvsim {

// One line, no trailing newline.
struct LoadError : std::runtime_error {
    using runtime_error::runtime_error;
};

scn::Scenario load_scenario_file(const std::string& path);
// file_for_messages prefixes every error and gives the default name (its stem).
scn::Scenario load_scenario_text(const std::string& text, const std::string& file_for_messages);

// preset(platform), then the scenario's params, then the --set overrides in order; then the
// cross-key checks (ParamSet::validate). A ParamError becomes a LoadError:
//   "FILE: /params/KEY: ...", "--set KEY=VALUE: ...", and for the cross-key checks
//   "FILE: /params: ..." or "FILE with --set overrides: ...".
ParamSet resolve_params(const scn::Scenario& s, const std::vector<std::pair<std::string, std::string>>& cli_sets);

// --set platform=NAME and --set vm.type=TYPE change the scenario itself (they are not
// parameters; hvsim compare and sweeps over platforms or VM types use them). Applies them to
// s (LoadError "--set vm.type=X: expected one of [...]" for an unknown type); resolve_params
// takes the platform from --set as well and ignores vm.type.
// The platform a scenario without "platform" runs on, by its VM type.
std::string default_platform(const std::string& vm_type);
void apply_scenario_sets(scn::Scenario& s, const std::vector<std::pair<std::string, std::string>>& cli_sets);

// Splits a --set argument "key=value" (the value may contain '='). LoadError
// "--set TEXT: expected KEY=VALUE, ..." when there is no '=' or the key is empty.
std::pair<std::string, std::string> parse_set_option(const std::string& text);

// Names the loader accepts, for `hvsim validate` / docs and tests.
const std::vector<std::string>& known_errno_names();     // "ok" excluded
const std::vector<std::string>& known_capability_names(); // check_extension "cap" names

}  // namespace hvsim
