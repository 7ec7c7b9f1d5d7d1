// The parameter registry (gem5/Ramulator style). Every tunable of a run -- hardware
// sizes and latencies, software costs, the simulated kernel configuration -- is declared
// once here with its type, unit, default, description and source; a platform preset is
// a named set of values over these declarations, each value carrying its source (a
// citation, or a string starting with "estimate"). A ParamSet is the resolved view a run
// reads: preset, then scenario "params", then --set overrides, each value remembering
// where it came from. See docs/scenario.md for the list of keys.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace hvsim {

struct ParamError : std::runtime_error {
    using runtime_error::runtime_error;
};

enum class ParamType : uint8_t { integer, real, boolean, string, size };
const char* param_type_name(ParamType t);   // "int", "double", "bool", "string", "size"

struct ParamValue {
    std::variant<int64_t, double, bool, std::string> v;   // size and int -> int64_t
    std::string source;   // citation, "estimate ...", "simulator setting", or "override" for user values
    std::string origin;   // "preset zen4-genoa", "scenario params", "--set"
};

struct ParamDecl {
    std::string name;           // dotted snake_case
    ParamType type = ParamType::integer;
    std::string unit;           // "cycles", "bytes", "entries", ... ("" for flags and names)
    std::string description;    // one line
    // Checks applied by ParamSet::set (cross-key checks live in ParamSet::validate).
    int64_t min = INT64_MIN, max = INT64_MAX;   // integer / size bounds
    bool power_of_two = false;
    uint64_t multiple_of = 0;                   // size: must be a multiple of this (0: any)
    std::vector<std::string> choices;           // string: allowed values
    bool unlimited = false;                     // size: the word "unlimited" means 0
    // Hardware-dependent (cpu., mem., mmu., cost.): a preset that does not give its own
    // value inherits the default, which is then only an estimate for that platform.
    bool platform_dependent = false;
    nlohmann::json default_value;               // the zen4-genoa value
    std::string default_source;
};

// All declarations, sorted by name.
const std::vector<ParamDecl>& param_decls();
const ParamDecl* find_param(const std::string& name);
std::vector<std::string> param_names();

class ParamSet {
public:
    static std::vector<std::string> platforms();                       // known preset names
    static std::string platform_description(const std::string& platform);
    // The preset's values over every declaration. Unknown name -> ParamError with did-you-mean.
    static ParamSet preset(const std::string& platform);

    // Typed and range-checked; unknown key -> ParamError "unknown parameter 'k' (did you mean 'x'?)",
    // bad value -> ParamError "expected <what>, got <what>".
    void set(const std::string& key, const nlohmann::json& value, const std::string& origin);
    // The text of `--set key=text`: integers (decimal or 0x-hex), sizes ("4KiB"), true/false,
    // numbers, names.
    void set_from_string(const std::string& key, const std::string& text, const std::string& origin);

    // Checks that span several keys (cache geometry, TLB sets, nested levels per format).
    // Throws ParamError. resolve_params() calls it after the last override.
    void validate() const;

    int64_t get_int(const std::string& key) const;        // int and size parameters
    uint64_t get_u64(const std::string& key) const;       // int and size parameters, >= 0
    double get_double(const std::string& key) const;      // double (and int) parameters
    bool get_bool(const std::string& key) const;
    const std::string& get_string(const std::string& key) const;
    const ParamValue& value(const std::string& key) const;
    const std::string& platform() const { return platform_; }

    nlohmann::json to_json() const;    // { key: value }, sorted keys (results.json "params")
    // results.json "kernel_profile": {"name", "config": {kvm.config.* resolved}, "overrides":
    // [kvm.config.* keys whose value differs from the profile's]}.
    nlohmann::json kernel_profile_json() const;
    nlohmann::json describe() const;   // key -> {value, type, unit, description, source, origin}

private:
    ParamSet() = default;
    const ParamValue& lookup(const std::string& key, ParamType want, bool allow_int) const;
    void apply_kernel_profile(const std::string& name, const std::string& origin);
    std::string platform_;
    std::map<std::string, ParamValue> values_;
};

// A kernel profile (kvm.profile): a named set of kvm.config.* values describing one kernel
// (sim/presets.cpp). Setting kvm.profile writes every value of the profile; resolve_params()
// sets the profile before the other overrides, so an explicit kvm.config.* key wins.
struct KernelProfileValue {
    std::string key;
    nlohmann::json value;
};
struct KernelProfile {
    std::string name;
    std::string description;   // what kernel, with its source
    std::vector<KernelProfileValue> values;
};
const std::vector<KernelProfile>& kernel_profiles();
const KernelProfile* find_kernel_profile(const std::string& name);

namespace detail {
// Preset tables (sim/presets.cpp). A preset lists the values that differ from the
// declared defaults; zen4-genoa is the defaults themselves.
struct PresetValue {
    std::string key;
    nlohmann::json value;
    std::string source;
};
struct PresetDef {
    std::string name;
    std::string description;
    std::vector<PresetValue> values;
};
const std::vector<PresetDef>& preset_defs();
}  // namespace detail

}  // namespace hvsim
