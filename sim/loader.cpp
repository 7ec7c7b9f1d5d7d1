#include "sim/loader.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "kernel/uapi.hpp"
#include "sim/json_util.hpp"

namespace hvsim {

namespace {

using json = nlohmann::json;
using jsonu::describe;
using jsonu::join_list;

using FlagTable = std::vector<std::pair<std::string, uint64_t>>;

const FlagTable kGmemFlags = {{"mmap", uapi::GUEST_MEMFD_FLAG_MMAP},
                              {"init_shared", uapi::GUEST_MEMFD_FLAG_INIT_SHARED}};
const FlagTable kMemslotFlags = {{"log_dirty_pages", uapi::KVM_MEM_LOG_DIRTY_PAGES},
                                 {"readonly", uapi::KVM_MEM_READONLY},
                                 {"guest_memfd", uapi::KVM_MEM_GUEST_MEMFD}};
const FlagTable kAttributes = {{"private", uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE}};
const FlagTable kFallocModes = {{"keep_size", uapi::falloc::KEEP_SIZE},
                                {"punch_hole", uapi::falloc::PUNCH_HOLE},
                                {"collapse_range", uapi::falloc::COLLAPSE_RANGE},
                                {"zero_range", uapi::falloc::ZERO_RANGE},
                                {"insert_range", uapi::falloc::INSERT_RANGE},
                                {"unshare_range", uapi::falloc::UNSHARE_RANGE}};
const FlagTable kExitFlags = {{"private", uapi::KVM_MEMORY_EXIT_FLAG_PRIVATE}};
const FlagTable kNoFlags = {};

const std::vector<std::pair<std::string, uint64_t>> kContentPolicies = {
    {"zero", uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_ZERO},
    {"preserve", uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_PRESERVE},
    {"none", uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_NONE}};

const std::vector<std::pair<std::string, int>> kCaps = {
    {"nr_memslots", uapi::KVM_CAP_NR_MEMSLOTS},
    {"readonly_mem", uapi::KVM_CAP_READONLY_MEM},
    {"multi_address_space", uapi::KVM_CAP_MULTI_ADDRESS_SPACE},
    {"exit_hypercall", uapi::KVM_CAP_EXIT_HYPERCALL},
    {"user_memory2", uapi::KVM_CAP_USER_MEMORY2},
    {"memory_attributes", uapi::KVM_CAP_MEMORY_ATTRIBUTES},
    {"guest_memfd", uapi::KVM_CAP_GUEST_MEMFD},
    {"vm_types", uapi::KVM_CAP_VM_TYPES},
    {"pre_fault_memory", uapi::KVM_CAP_PRE_FAULT_MEMORY},
    {"guest_memfd_flags", uapi::KVM_CAP_GUEST_MEMFD_FLAGS},
};

const std::vector<std::string> kVmTypes = {"default", "sw_protected", "sev", "sev_es", "snp", "tdx", "pkvm"};
constexpr unsigned kMaxVcpus = 1024;
// KVM_MAX_NR_ADDRESS_SPACES: address space 1 is SMM (include/linux/kvm_host.h).
constexpr uint32_t kMaxAddressSpaces = 2;

std::vector<std::string> names_of(const FlagTable& t) {
    std::vector<std::string> r;
    for (const auto& [n, v] : t) r.push_back(n);
    return r;
}

// One line of text whatever the input held: line breaks become spaces, other control
// characters (a NUL would cut the message short) are shown as \xNN.
std::string sanitize_line(const std::string& s) {
    std::string r;
    r.reserve(s.size());
    for (char c : s) {
        if (c == '\n' || c == '\r') r += ' ';
        else if ((unsigned char)c < 0x20 || c == 0x7f) r += fmt::format("\\x{:02x}", (unsigned char)c);
        else r += c;
    }
    return r;
}

std::string range_text(uint64_t start, uint64_t size) {
    return "[" + jsonu::hex(start) + ", " + jsonu::hex(start + size) + ")";
}

// Dotted snake_case: [a-z0-9_]+ segments joined by single dots.
bool is_metric_name(const std::string& n) {
    if (n.empty() || n.front() == '.' || n.back() == '.') return false;
    for (size_t i = 0; i < n.size(); ++i) {
        const char c = n[i];
        if (c == '.') {
            if (n[i - 1] == '.') return false;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

std::string article(const std::string& word) {
    return !word.empty() && std::string_view("aeiou").find(word[0]) != std::string_view::npos ? "an" : "a";
}

// What an expectation may check, per kind of step.
enum class OpKind { ioctl, host_access, host_mmap, access, hypercall, close };

class Loader {
public:
    explicit Loader(std::string file) : file_(std::move(file)) {}

    scn::Scenario run(const json& root) {
        static const std::vector<std::string> kTop = {"$schema", "name",  "description", "platform", "params",
                                                      "seed",    "vm",    "steps",       "expect"};
        if (!root.is_object()) expected("", "a scenario object", describe(root));
        check_keys(root, "", kTop);
        s_.file = file_;
        s_.name = std::filesystem::path(file_).stem().string();
        if (auto* v = opt(root, "$schema")) string_value(*v, "/$schema");
        if (auto* v = opt(root, "name")) {
            s_.name = string_value(*v, "/name");
            if (s_.name.empty()) expected("/name", "a non-empty name", describe(*v));
            for (char c : s_.name)
                if ((unsigned char)c < 0x20 || c == 0x7f)
                    expected("/name", "a name without control characters", describe(*v));
        }
        if (auto* v = opt(root, "description")) string_value(*v, "/description");
        if (auto* v = opt(root, "platform")) {
            s_.platform = string_value(*v, "/platform");
            s_.platform_named = true;
            const auto plats = ParamSet::platforms();
            if (std::find(plats.begin(), plats.end(), s_.platform) == plats.end())
                expected("/platform", "one of " + join_list(plats), describe(*v),
                         jsonu::suggestion_suffix(s_.platform, plats));
        } else if (const json* vm = opt(root, "vm"); vm && vm->is_object()) {
            // A TDX VM needs an Intel host: without a platform it gets the preset made for it.
            if (const json* t = opt(*vm, "type"); t && t->is_string()) s_.platform = default_platform(t->get<std::string>());
        }
        if (auto* v = opt(root, "params")) params(*v, "/params");
        else params(json::object(), "/params");
        if (auto* v = opt(root, "seed")) s_.seed = uint_value(*v, "/seed", UINT64_MAX, "a seed (non-negative integer)");
        if (auto* v = opt(root, "vm")) vm(*v, "/vm");
        if (auto* v = opt(root, "steps")) {
            if (!v->is_array()) expected("/steps", "an array of steps", describe(*v));
            for (size_t i = 0; i < v->size(); ++i) {
                const std::string p = "/steps/" + std::to_string(i);
                if ((*v)[i].is_object() && (*v)[i].contains("repeat")) repeat((*v)[i], p);
                else s_.steps.push_back(step((*v)[i], p, false));
            }
        }
        // vm.accept "eager": the guest's firmware accepts every private range at boot on
        // vCPU 0 (TDVF / Linux accept_memory(): 2M where aligned, 4K otherwise), as steps
        // that run before the scenario's own.
        if (s_.vm.accept == "eager") {
            std::vector<scn::Step> boot;
            for (size_t i = 0; i < s_.vm.private_ranges.size(); ++i) {
                const scn::Range& r = s_.vm.private_ranges[i];
                scn::Step st;
                st.pointer = "/vm/private/" + std::to_string(i);
                st.name = "boot: the guest accepts " + range_text(r.gpa, r.size);
                st.vcpus = {0};
                scn::MapGpaRange m;
                m.gpa = r.gpa;
                m.size = r.size;
                m.accept = true;
                m.accept_level = (r.gpa | r.size) & (level_size(PgLevel::k2M) - 1) ? PgLevel::k4K : PgLevel::k2M;
                st.op = m;
                boot.push_back(std::move(st));
            }
            s_.steps.insert(s_.steps.begin(), boot.begin(), boot.end());
        }
        launch_order();
        if (auto* v = opt(root, "expect")) top_expect(*v, "/expect");
        return std::move(s_);
    }

private:
    // A scenario that launches the guest itself runs no vCPU before the launch is done:
    // the VMM issues KVM_RUN only after SNP_LAUNCH_FINISH / KVM_TDX_FINALIZE_VM (KVM
    // refuses to run a TD that is not RUNNABLE, tdx_vcpu_pre_run()).
    void launch_order() const {
        using Op = scn::Launch::Op;
        const bool snp = scn::scenario_has_launch_op(s_, Op::snp_launch_start);
        const bool tdx = scn::scenario_has_launch_op(s_, Op::tdx_finalize_vm);
        if (!snp && !tdx) return;
        const Op done = snp ? Op::snp_launch_finish : Op::tdx_finalize_vm;
        std::function<bool(const scn::Step&)> is_done = [&](const scn::Step& st) {
            if (auto* l = std::get_if<scn::Launch>(&st.op)) return l->op == done;
            if (auto* g = std::get_if<std::vector<scn::Step>>(&st.op))
                for (const auto& m : *g)
                    if (is_done(m)) return true;
            return false;
        };
        for (const scn::Step& st : s_.steps) {
            if (is_done(st)) return;
            if (!st.vcpus.empty())
                expected(st.pointer, std::string("no vCPU step before ") + scn::launch_op_name(done) +
                                         " (the VMM runs the guest only once its launch is done" +
                                         (s_.vm.accept == "eager" ? "; vm.accept \"eager\" accepts at boot, before it" : "") + ")",
                         "a vCPU step");
        }
    }

    std::string file_;
    scn::Scenario s_;
    // guest_memfd ids known so far, with where each was declared (for messages).
    std::vector<std::string> gmem_ids_;
    std::map<std::string, std::string> gmem_where_;
    std::vector<std::string> map_ids_;                 // host mmap step names, in order
    std::map<std::string, std::string> map_where_;
    std::map<std::string, uint64_t> vm_gmem_size_;

    // ---- errors ----------------------------------------------------------
    [[noreturn]] void fail(const std::string& ptr, const std::string& msg) const {
        throw LoadError(sanitize_line(file_ + ": " + (ptr.empty() ? "/" : ptr) + ": " + msg));
    }
    [[noreturn]] void expected(const std::string& ptr, const std::string& what, const std::string& got,
                               const std::string& extra = "") const {
        fail(ptr, "expected " + what + ", got " + got + extra);
    }

    // ---- objects -----------------------------------------------------------
    void check_keys(const json& j, const std::string& ptr, const std::vector<std::string>& allowed) const {
        for (const auto& [k, v] : j.items()) {
            if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
            expected(ptr + "/" + jsonu::pointer_token(k), "one of " + join_list(allowed), "'" + k + "'",
                     jsonu::suggestion_suffix(k, allowed));
        }
    }
    const json& object(const json& j, const std::string& ptr, const std::vector<std::string>& allowed,
                       const std::string& what) const {
        if (!j.is_object()) expected(ptr, what, describe(j));
        check_keys(j, ptr, allowed);
        return j;
    }
    static const json* opt(const json& o, const char* key) {
        auto it = o.find(key);
        return it == o.end() ? nullptr : &*it;
    }
    const json& req(const json& o, const std::string& ptr, const char* key) const {
        auto it = o.find(key);
        if (it == o.end()) expected(ptr, std::string("key '") + key + "'", "an object without it");
        return *it;
    }

    // ---- scalars -----------------------------------------------------------
    std::string string_value(const json& j, const std::string& ptr) const {
        if (!j.is_string()) expected(ptr, "a string", describe(j));
        return j.get<std::string>();
    }
    bool bool_value(const json& j, const std::string& ptr) const {
        if (!j.is_boolean()) expected(ptr, "true or false", describe(j));
        return j.get<bool>();
    }
    std::string choice(const json& j, const std::string& ptr, const std::vector<std::string>& choices) const {
        if (!j.is_string()) expected(ptr, "one of " + join_list(choices), describe(j));
        const std::string s = j.get<std::string>();
        if (std::find(choices.begin(), choices.end(), s) == choices.end())
            expected(ptr, "one of " + join_list(choices), describe(j), jsonu::suggestion_suffix(s, choices));
        return s;
    }
    uint64_t size_value(const json& j, const std::string& ptr, bool short_suffix = false) const {
        try {
            return jsonu::parse_size(j, short_suffix);
        } catch (const jsonu::ValueError& e) {
            fail(ptr, e.what());
        }
    }
    uint64_t uint_value(const json& j, const std::string& ptr, uint64_t max, const std::string& what = "") const {
        try {
            return jsonu::parse_uint(j, max, what);
        } catch (const jsonu::ValueError& e) {
            fail(ptr, e.what());
        }
    }
    uint8_t byte_value(const json& j, const std::string& ptr) const {
        try {
            return jsonu::parse_byte(j);
        } catch (const jsonu::ValueError& e) {
            fail(ptr, e.what());
        }
    }
    double number_value(const json& j, const std::string& ptr) const {
        if (!j.is_number()) expected(ptr, "a number", describe(j));
        return j.get<double>();
    }
    // A list of flag names from `table`, or a raw integer (so a test can pass unknown bits).
    uint64_t flags_value(const json& j, const std::string& ptr, const FlagTable& table,
                         uint64_t max = UINT64_MAX) const {
        const auto names = names_of(table);
        const std::string what = table.empty() ? std::string("an empty list or an integer")
                                               : "a list of names from " + join_list(names) + " or an integer";
        if (j.is_array()) {
            uint64_t bits = 0;
            for (size_t i = 0; i < j.size(); ++i) {
                const std::string p = ptr + "/" + std::to_string(i);
                const json& e = j[i];
                if (!e.is_string()) expected(p, table.empty() ? "no names (none are defined)" : "one of " + join_list(names), describe(e));
                bool found = false;
                for (const auto& [n, v] : table) {
                    if (n == e.get_ref<const std::string&>()) {
                        bits |= v;
                        found = true;
                    }
                }
                if (!found)
                    expected(p, table.empty() ? "no names (none are defined)" : "one of " + join_list(names), describe(e),
                             jsonu::suggestion_suffix(e.get_ref<const std::string&>(), names));
            }
            return bits;
        }
        if (j.is_number_integer() ||
            (j.is_string() && j.get_ref<const std::string&>().size() >= 2 && j.get_ref<const std::string&>()[0] == '0' &&
             (j.get_ref<const std::string&>()[1] == 'x' || j.get_ref<const std::string&>()[1] == 'X')))
            return uint_value(j, ptr, max, max == UINT64_MAX ? "a non-negative integer" : "an integer 0.." + std::to_string(max));
        expected(ptr, what, describe(j));
    }
    // vm.* describe the initial machine: raw flag integers may only carry bits that have names.
    void known_bits(const json& j, const std::string& ptr, uint64_t bits, const FlagTable& table) const {
        uint64_t known = 0;
        for (const auto& [n, v] : table) known |= v;
        if (bits & ~known)
            expected(ptr, "only the flag bits " + join_list(names_of(table)) + " (" + jsonu::hex(known) + ") in vm", describe(j));
    }
    void aligned(const json& j, const std::string& ptr, uint64_t v) const {
        if (!is_aligned(v, kPageSize)) expected(ptr, "a multiple of 4KiB (page aligned)", describe(j));
    }

    // ---- params ------------------------------------------------------------
    // Checked against the registry now, so a typo fails at load; stored as the text a
    // --set would give (strings unquoted), which resolve_params applies.
    void params(const json& j, const std::string& ptr) {
        if (!j.is_object()) expected(ptr, "an object of dotted parameter names", describe(j));
        ParamSet ps = ParamSet::preset(s_.platform);
        for (const auto& [k, v] : j.items()) {
            const std::string p = ptr + "/" + jsonu::pointer_token(k);
            try {
                ps.set(k, v, "scenario params");
            } catch (const ParamError& e) {
                fail(p, e.what());
            }
            s_.params[k] = v.is_string() ? v.get<std::string>() : v.dump();
        }
        // The scenario alone must describe a consistent machine (cache geometry, TLB sets).
        try {
            ps.validate();
        } catch (const ParamError& e) {
            fail(ptr, e.what());
        }
    }

    // ---- fd references -------------------------------------------------------
    scn::FdRef gmem_ref(const json& j, const std::string& ptr) const {
        scn::FdRef r;
        if (j.is_string()) {
            const std::string id = j.get<std::string>();
            if (!gmem_where_.count(id))
                expected(ptr,
                         "a guest_memfd id declared in vm.guest_memfd or created by an earlier step" +
                             (gmem_ids_.empty() ? std::string(" (none so far)") : " " + join_list(gmem_ids_)),
                         describe(j), jsonu::suggestion_suffix(id, gmem_ids_));
            r.kind = scn::FdRef::Kind::gmem;
            r.id = id;
            return r;
        }
        static const std::vector<std::string> kFdKinds = {"kvm", "vm", "memfd", "invalid"};
        if (j.is_object()) {
            check_keys(j, ptr, {"fd"});
            const json& fd = req(j, ptr, "fd");
            const std::string p = ptr + "/fd";
            if (fd.is_number_integer()) {
                if (fd.is_number_unsigned() ? fd.get<uint64_t>() > uint64_t(INT32_MAX)
                                            : (fd.get<int64_t>() < INT32_MIN || fd.get<int64_t>() > INT32_MAX))
                    expected(p, "a descriptor number that fits an int", describe(fd));
                r.kind = scn::FdRef::Kind::raw;
                r.raw = int(fd.get<int64_t>());
                return r;
            }
            if (!fd.is_string()) expected(p, "one of " + join_list(kFdKinds) + " or a descriptor number", describe(fd));
            const std::string k = choice(fd, p, kFdKinds);
            r.kind = k == "kvm" ? scn::FdRef::Kind::kvm
                     : k == "vm" ? scn::FdRef::Kind::vm
                     : k == "memfd" ? scn::FdRef::Kind::memfd
                                    : scn::FdRef::Kind::invalid;
            return r;
        }
        expected(ptr, "a guest_memfd id or {\"fd\": \"kvm\"|\"vm\"|\"memfd\"|\"invalid\"|N}", describe(j));
    }
    // A mapping named by an earlier host mmap step (the pointer it returned).
    std::string mapping_ref(const json& j, const std::string& ptr) const {
        const std::string id = string_value(j, ptr);
        if (!map_where_.count(id))
            expected(ptr,
                     "a mapping id declared by an earlier host mmap step" +
                         (map_ids_.empty() ? std::string(" (none so far)") : " " + join_list(map_ids_)),
                     describe(j), jsonu::suggestion_suffix(id, map_ids_));
        return id;
    }
    void declare_gmem(const std::string& id, const std::string& ptr, const json& j) {
        if (id.empty()) expected(ptr, "a non-empty guest_memfd id", describe(j));
        auto it = gmem_where_.find(id);
        if (it != gmem_where_.end())
            expected(ptr, "a guest_memfd id not used before", describe(j), " (declared at " + it->second + ")");
        gmem_where_[id] = ptr;
        gmem_ids_.push_back(id);
    }

    // ---- vm ------------------------------------------------------------------
    scn::Range range(const json& j, const std::string& ptr, bool strict) const {
        object(j, ptr, {"gpa", "size"}, "a range {\"gpa\", \"size\"}");
        scn::Range r;
        const json& g = req(j, ptr, "gpa");
        const json& s = req(j, ptr, "size");
        r.gpa = size_value(g, ptr + "/gpa");
        r.size = size_value(s, ptr + "/size");
        if (strict) {
            aligned(g, ptr + "/gpa", r.gpa);
            aligned(s, ptr + "/size", r.size);
            if (r.size == 0) expected(ptr + "/size", "a non-zero size", describe(s));
            if (r.gpa + r.size < r.gpa) expected(ptr, "a range that does not wrap past 2^64", range_text(r.gpa, r.size));
        }
        return r;
    }

    scn::GmemDecl gmem_decl(const json& j, const std::string& ptr, bool strict) {
        object(j, ptr, {"id", "size", "flags"}, "a guest_memfd object {\"id\", \"size\", \"flags\"}");
        scn::GmemDecl g;
        if (auto* v = opt(j, "id")) {
            g.id = string_value(*v, ptr + "/id");
            declare_gmem(g.id, ptr + "/id", *v);
        } else if (strict) {
            req(j, ptr, "id");
        }
        const json& sz = req(j, ptr, "size");
        g.size = size_value(sz, ptr + "/size");
        if (strict) {
            // kvm_gmem_create: size must be a non-zero multiple of PAGE_SIZE.
            if (g.size == 0) expected(ptr + "/size", "a non-zero size", describe(sz));
            aligned(sz, ptr + "/size", g.size);
        }
        if (auto* v = opt(j, "flags")) {
            g.flags = flags_value(*v, ptr + "/flags", kGmemFlags);
            if (strict) known_bits(*v, ptr + "/flags", g.flags, kGmemFlags);
        }
        return g;
    }

    // The slot field: bits 15:0 slot id, bits 31:16 address space (kvm_userspace_memory_region2.slot).
    void slot_fields(const json& j, const std::string& ptr, scn::MemslotDecl& m) const {
        const json& sl = req(j, ptr, "slot");
        const uint64_t raw = uint_value(sl, ptr + "/slot", UINT32_MAX);
        if (auto* a = opt(j, "as_id")) {
            if (raw > 0xffff) expected(ptr + "/slot", "a slot id 0..65535 when as_id is given", describe(sl));
            m.slot = uint32_t(raw);
            m.as_id = uint32_t(uint_value(*a, ptr + "/as_id", 0xffff));
        } else {
            m.slot = uint32_t(raw & 0xffff);
            m.as_id = uint32_t(raw >> 16);
        }
    }

    scn::MemslotDecl memslot(const json& j, const std::string& ptr, bool strict) const {
        object(j, ptr,
               {"slot", "as_id", "flags", "gpa", "size", "userspace_addr", "guest_memfd", "guest_memfd_offset"},
               "a memslot object");
        scn::MemslotDecl m;
        slot_fields(j, ptr, m);
        if (auto* v = opt(j, "flags")) m.flags = uint32_t(flags_value(*v, ptr + "/flags", kMemslotFlags, UINT32_MAX));
        const json* gpa = strict ? &req(j, ptr, "gpa") : opt(j, "gpa");
        if (gpa) m.gpa = size_value(*gpa, ptr + "/gpa");
        const json& size = req(j, ptr, "size");
        m.size = size_value(size, ptr + "/size");
        const json* ua = opt(j, "userspace_addr");
        if (ua) m.userspace_addr = size_value(*ua, ptr + "/userspace_addr");
        const json* off = opt(j, "guest_memfd_offset");
        if (off) m.guest_memfd_offset = size_value(*off, ptr + "/guest_memfd_offset");
        const json* gm = opt(j, "guest_memfd");
        if (strict) {
            // vm.memslots describe the initial machine: reject what KVM would refuse
            // (kvm_set_memory_region: page alignment, non-zero size, slot id and as_id range).
            if (m.slot >= uapi::KVM_USER_MEM_SLOTS)
                expected(ptr + "/slot", fmt::format("a slot id 0..{}", uapi::KVM_USER_MEM_SLOTS - 1),
                         describe(req(j, ptr, "slot")));
            if (m.as_id >= kMaxAddressSpaces)
                expected(ptr + (opt(j, "as_id") ? "/as_id" : "/slot"), "address space 0 or 1",
                         std::to_string(m.as_id));
            if (auto* f = opt(j, "flags")) known_bits(*f, ptr + "/flags", m.flags, kMemslotFlags);
            aligned(*gpa, ptr + "/gpa", m.gpa);
            if (m.size == 0)
                expected(ptr + "/size", "a non-zero size (vm.memslots create slots; delete one in a step)",
                         describe(size));
            aligned(size, ptr + "/size", m.size);
            if (m.gpa + m.size < m.gpa) expected(ptr, "a gpa range that does not wrap", range_text(m.gpa, m.size));
            if (ua) aligned(*ua, ptr + "/userspace_addr", m.userspace_addr);
            if (off) aligned(*off, ptr + "/guest_memfd_offset", m.guest_memfd_offset);
            const bool has_flag = m.flags & uapi::KVM_MEM_GUEST_MEMFD;
            if (has_flag && !gm) expected(ptr, "key 'guest_memfd' (flags include guest_memfd)", "an object without it");
            if (!has_flag && gm)
                expected(ptr + "/guest_memfd", "no guest_memfd without the guest_memfd flag (KVM would ignore it)",
                         describe(*gm));
            if (gm) {
                if (!gm->is_string()) expected(ptr + "/guest_memfd", "a guest_memfd id from vm.guest_memfd", describe(*gm));
                const std::string id = gm->get<std::string>();
                auto it = vm_gmem_size_.find(id);
                if (it == vm_gmem_size_.end()) {
                    std::vector<std::string> ids;
                    for (const auto& [k, v] : vm_gmem_size_) ids.push_back(k);
                    expected(ptr + "/guest_memfd", "a guest_memfd id declared in vm.guest_memfd " + join_list(ids),
                             describe(*gm), jsonu::suggestion_suffix(id, ids));
                }
                // kvm_gmem_bind: the bound range must lie inside the file.
                if (m.guest_memfd_offset + m.size < m.guest_memfd_offset || m.guest_memfd_offset + m.size > it->second)
                    expected(ptr, fmt::format("guest_memfd_offset + size within guest_memfd '{}' ({} bytes)", id, it->second),
                             range_text(m.guest_memfd_offset, m.size));
                m.guest_memfd = scn::FdRef{scn::FdRef::Kind::gmem, id, -1};
            }
        } else if (gm) {
            m.guest_memfd = gmem_ref(*gm, ptr + "/guest_memfd");
        }
        return m;
    }

    void vm(const json& j, const std::string& ptr) {
        object(j, ptr,
               {"type", "vcpus", "guest_paging", "guest_page_size", "guest_pt_region", "guest_memfd", "memslots",
                "private", "accept"},
               "a vm object");
        scn::VmDecl& vm = s_.vm;
        if (auto* v = opt(j, "type")) vm.type = choice(*v, ptr + "/type", kVmTypes);
        if (auto* v = opt(j, "vcpus"))
            vm.vcpus = unsigned(uint_value(*v, ptr + "/vcpus", kMaxVcpus, fmt::format("an integer 1..{}", kMaxVcpus)));
        if (vm.vcpus == 0) expected(ptr + "/vcpus", fmt::format("an integer 1..{}", kMaxVcpus), "0");
        if (auto* v = opt(j, "guest_paging")) {
            const std::string p = choice(*v, ptr + "/guest_paging", {"none", "4-level", "5-level"});
            vm.guest_paging_levels = p == "none" ? 0 : p == "4-level" ? 4 : 5;
        }
        if (auto* v = opt(j, "guest_page_size")) {
            const uint64_t sz = size_value(*v, ptr + "/guest_page_size", true);
            if (sz == level_size(PgLevel::k4K)) vm.guest_page_size = PgLevel::k4K;
            else if (sz == level_size(PgLevel::k2M)) vm.guest_page_size = PgLevel::k2M;
            else if (sz == level_size(PgLevel::k1G)) vm.guest_page_size = PgLevel::k1G;
            else expected(ptr + "/guest_page_size", "4K, 2M or 1G", describe(*v));
        }
        if (auto* v = opt(j, "guest_memfd")) {
            if (!v->is_array()) expected(ptr + "/guest_memfd", "an array of guest_memfd objects", describe(*v));
            for (size_t i = 0; i < v->size(); ++i) {
                auto g = gmem_decl((*v)[i], ptr + "/guest_memfd/" + std::to_string(i), true);
                vm_gmem_size_[g.id] = g.size;
                vm.guest_memfd.push_back(std::move(g));
            }
        }
        if (auto* v = opt(j, "memslots")) {
            if (!v->is_array()) expected(ptr + "/memslots", "an array of memslot objects", describe(*v));
            // Per address space: start gpa -> (end, pointer), to find overlaps in O(n log n).
            std::map<uint32_t, std::map<uint64_t, std::pair<uint64_t, std::string>>> spans;
            std::map<std::pair<uint32_t, uint32_t>, std::string> ids;
            for (size_t i = 0; i < v->size(); ++i) {
                const std::string p = ptr + "/memslots/" + std::to_string(i);
                auto m = memslot((*v)[i], p, true);
                auto [it, fresh] = ids.emplace(std::make_pair(m.as_id, m.slot), p);
                if (!fresh)
                    expected(p + "/slot", fmt::format("a slot id not already used in address space {}", m.as_id),
                             std::to_string(m.slot), " (used by " + it->second + ")");
                // kvm_set_memory_region: EEXIST when a new slot overlaps another in its address space.
                auto& sp = spans[m.as_id];
                const uint64_t end = m.gpa + m.size;
                auto next = sp.lower_bound(m.gpa);
                const std::pair<const uint64_t, std::pair<uint64_t, std::string>>* clash = nullptr;
                if (next != sp.end() && next->first < end) clash = &*next;
                if (!clash && next != sp.begin() && std::prev(next)->second.first > m.gpa) clash = &*std::prev(next);
                if (clash)
                    expected(p, fmt::format("a gpa range that does not overlap another memslot of address space {}", m.as_id),
                             range_text(m.gpa, m.size),
                             " overlapping " + clash->second.second + " " + range_text(clash->first, clash->second.first - clash->first));
                sp.emplace(m.gpa, std::make_pair(end, p));
                vm.memslots.push_back(std::move(m));
            }
        }
        if (auto* v = opt(j, "guest_pt_region")) {
            scn::Range r = range(*v, ptr + "/guest_pt_region", true);
            bool inside = false;
            for (const auto& m : vm.memslots)
                if (m.as_id == 0 && r.gpa >= m.gpa && r.gpa + r.size <= m.gpa + m.size) inside = true;
            if (!inside)
                expected(ptr + "/guest_pt_region", "a range inside one memslot of address space 0",
                         range_text(r.gpa, r.size));
            vm.guest_pt_region = r;
        }
        if (auto* v = opt(j, "private")) {
            if (!v->is_array()) expected(ptr + "/private", "an array of ranges {\"gpa\", \"size\"}", describe(*v));
            for (size_t i = 0; i < v->size(); ++i)
                vm.private_ranges.push_back(range((*v)[i], ptr + "/private/" + std::to_string(i), true));
        }
        if (auto* v = opt(j, "accept")) {
            vm.accept = choice(*v, ptr + "/accept", {"lazy", "eager"});
            if (vm.type != "tdx") expected(ptr + "/accept", "no 'accept' on a " + vm.type + " VM (TDX only)", describe(*v));
        }
    }

    // ---- steps ---------------------------------------------------------------
    std::vector<unsigned> vcpu_list(const json& j, const std::string& ptr) const {
        const unsigned n = s_.vm.vcpus;
        const std::string what = n == 1 ? std::string("vCPU index 0 (vm.vcpus is 1) or \"all\"")
                                        : fmt::format("a vCPU index 0..{} (vm.vcpus is {}) or \"all\"", n - 1, n);
        std::vector<unsigned> r;
        if (j.is_string() && j.get_ref<const std::string&>() == "all") {
            for (unsigned i = 0; i < n; ++i) r.push_back(i);
            return r;
        }
        if (!j.is_number_integer() || j.get<int64_t>() < 0 || uint64_t(j.get<int64_t>()) >= n) expected(ptr, what, describe(j));
        r.push_back(unsigned(j.get<int64_t>()));
        return r;
    }
    unsigned vcpu_index(const json& j, const std::string& ptr) const {
        const unsigned n = s_.vm.vcpus;
        if (!j.is_number_integer() || j.get<int64_t>() < 0 || uint64_t(j.get<int64_t>()) >= n)
            expected(ptr, fmt::format("a vCPU index 0..{} (vm.vcpus is {})", n - 1, n), describe(j));
        return unsigned(j.get<int64_t>());
    }

    // {"repeat": {"var": V, "from": A, "to": B, "step": {...}}}: the step once for every
    // integer v from A to B, with every string "$V" in it replaced by the number v and every
    // "{V}" in its name by v in decimal. A selftest's loop (every guest_memfd size 1..4095,
    // every unaligned offset) stays one step in the file. Expanded here: the engine, the
    // results and the pointers of errors in the body (/steps/N/repeat/step/...) see ordinary steps.
    static constexpr uint64_t kMaxRepeat = 1u << 16;
    void repeat(const json& j, const std::string& ptr) {
        object(j, ptr, {"repeat"}, "a repeat step {\"repeat\": {\"var\", \"from\", \"to\", \"step\"}} (name it in its step)");
        const json& r = j.at("repeat");
        const std::string rp = ptr + "/repeat";
        object(r, rp, {"var", "from", "to", "step"}, "a repeat object {\"var\", \"from\", \"to\", \"step\"}");
        const json& vj = req(r, rp, "var");
        const std::string var = string_value(vj, rp + "/var");
        const bool ident = !var.empty() && (std::islower(uint8_t(var[0])) || var[0] == '_') &&
                           std::all_of(var.begin(), var.end(), [](char c) {
                               return std::islower(uint8_t(c)) || std::isdigit(uint8_t(c)) || c == '_';
                           });
        if (!ident) expected(rp + "/var", "a lower-case identifier ([a-z_][a-z0-9_]*)", describe(vj));
        const uint64_t from = uint_value(req(r, rp, "from"), rp + "/from", UINT64_MAX);
        const json& tj = req(r, rp, "to");
        const uint64_t to = uint_value(tj, rp + "/to", UINT64_MAX);
        if (to < from) expected(rp + "/to", "a value >= from (" + std::to_string(from) + ")", describe(tj));
        if (to - from >= kMaxRepeat)
            expected(rp + "/to", fmt::format("at most {} repetitions", kMaxRepeat), std::to_string(to - from + 1));
        const json& body = req(r, rp, "step");
        if (!body.is_object()) expected(rp + "/step", "a step object", describe(body));
        if (body.contains("repeat")) expected(rp + "/step/repeat", "a step that is not itself a repeat", "a nested repeat");
        const std::string token = "$" + var, in_name = "{" + var + "}";
        for (uint64_t v = from;; ++v) {
            json inst = substitute(body, token, v);
            if (auto it = inst.find("name"); it != inst.end() && it->is_string()) {
                std::string n = it->get<std::string>();
                for (size_t at = n.find(in_name); at != std::string::npos; at = n.find(in_name, at))
                    n.replace(at, in_name.size(), std::to_string(v));
                *it = n;
            }
            s_.steps.push_back(step(inst, rp + "/step", false));
            if (v == to) break;
        }
    }
    static json substitute(const json& j, const std::string& token, uint64_t v) {
        if (j.is_string() && j.get_ref<const std::string&>() == token) return json(v);
        if (j.is_object()) {
            json o = json::object();
            for (const auto& [k, x] : j.items()) o[k] = substitute(x, token, v);
            return o;
        }
        if (j.is_array()) {
            json a = json::array();
            for (const auto& x : j) a.push_back(substitute(x, token, v));
            return a;
        }
        return j;
    }

    // An object with exactly one key naming a sub-operation, e.g. {"ioctl": {"fallocate": {...}}}.
    std::pair<std::string, const json*> one_of(const json& j, const std::string& ptr, const std::vector<std::string>& names,
                                              const std::string& what) const {
        object(j, ptr, names, what);
        if (j.size() != 1)
            expected(ptr, "exactly one of " + join_list(names),
                     j.empty() ? std::string("an empty object") : fmt::format("{} keys", j.size()));
        return {j.begin().key(), &j.begin().value()};
    }

    scn::Step step(const json& j, const std::string& ptr, bool in_parallel) {
        static const std::vector<std::string> kStepKeys = {"name",      "vcpu",  "ioctl",    "host", "access",
                                                           "hypercall", "close", "parallel", "expect"};
        static const std::vector<std::string> kOps = {"ioctl", "host", "access", "hypercall", "close", "parallel"};
        object(j, ptr, kStepKeys, "a step object");
        scn::Step st;
        st.pointer = ptr;
        if (auto* v = opt(j, "name")) st.name = string_value(*v, ptr + "/name");
        std::string op;
        for (const auto& o : kOps) {
            if (!j.contains(o)) continue;
            if (!op.empty()) expected(ptr + "/" + o, "one operation per step", "both '" + op + "' and '" + o + "'");
            op = o;
        }
        if (op.empty()) expected(ptr, "a step with one of " + join_list(kOps), "none");
        const json& body = j.at(op);
        const std::string bp = ptr + "/" + op;
        const json* vcpu = opt(j, "vcpu");
        if ((op == "access" || op == "hypercall") != (vcpu != nullptr)) {
            if (vcpu)
                expected(ptr + "/vcpu", "no 'vcpu' on a " + op + " step (only access and hypercall steps run on a vCPU)",
                         describe(*vcpu));
            expected(ptr, "key 'vcpu' (a vCPU index or \"all\")", article(op) + " " + op + " step without it");
        }
        if (vcpu) st.vcpus = vcpu_list(*vcpu, ptr + "/vcpu");

        OpKind kind = OpKind::ioctl;
        std::string sub;   // ioctl / host operation name
        if (op == "parallel") {
            if (in_parallel) expected(bp, "a step that is not itself parallel inside a parallel group", "a nested parallel");
            if (!body.is_array() || body.size() < 2) expected(bp, "an array of at least two steps", describe(body));
            std::vector<scn::Step> members;
            // A vCPU runs one thing at a time: two members on one vCPU cannot run in parallel.
            std::map<unsigned, std::string> busy;
            for (size_t i = 0; i < body.size(); ++i) {
                const std::string mp = bp + "/" + std::to_string(i);
                members.push_back(step(body[i], mp, true));
                for (unsigned v : members.back().vcpus) {
                    auto [it, fresh] = busy.emplace(v, mp);
                    if (!fresh)
                        expected(mp + "/vcpu", "a vCPU no other member of the parallel group uses",
                                 fmt::format("vCPU {}", v), " (also used by " + it->second + ")");
                }
            }
            st.op = std::move(members);
            if (auto* e = opt(j, "expect"))
                expected(ptr + "/expect", "expectations on the members of a parallel group", describe(*e));
            return st;
        } else if (op == "ioctl") {
            auto [name, args] = one_of(body, bp,
                                       {"create_guest_memfd", "set_user_memory_region2", "set_memory_attributes",
                                        "set_memory_attributes2", "fallocate", "pre_fault_memory",
                                        "memory_encrypt_reg_region", "memory_encrypt_unreg_region", "check_extension",
                                        "get_dirty_log", "clear_dirty_log", "set_user_memory_region",
                                        "snp_launch_start", "snp_launch_update", "snp_launch_finish",
                                        "tdx_init_mem_region", "tdx_finalize_vm"},
                                       "an ioctl object");
            sub = name;
            ioctl(st, name, *args, bp + "/" + name);
        } else if (op == "host") {
            auto [name, args] = one_of(body, bp, {"read", "write", "mmap", "munmap", "pin", "unpin"}, "a host object");
            sub = name;
            kind = name == "mmap" || name == "munmap" ? OpKind::host_mmap : OpKind::host_access;
            host(st, name, *args, bp + "/" + name);
        } else if (op == "access") {
            kind = OpKind::access;
            access(st, body, bp);
        } else if (op == "hypercall") {
            kind = OpKind::hypercall;
            auto [name, args] =
                one_of(body, bp,
                       {"map_gpa_range", "accept", "mem_share", "mem_unshare", "mem_relinquish", "snp_ap_create"},
                       "a hypercall object");
            sub = name;
            const std::string p = bp + "/" + name;
            if (name == "snp_ap_create") {
                // The SNP guest's AP bring-up: RMPADJUST of the VMSA page and the AP Creation VMGEXIT.
                if (s_.vm.type != "snp") expected(p, "an snp_ap_create on an SNP VM (vm.type \"snp\")", "a " + s_.vm.type + " VM");
                object(*args, p, {"apic_id", "vmsa_gpa", "request", "vmpl"},
                       "an snp_ap_create object {\"apic_id\", \"vmsa_gpa\", \"request\", \"vmpl\"}");
                scn::MapGpaRange m;
                m.ap_create = true;
                m.apic_id = uint_value(req(*args, p, "apic_id"), p + "/apic_id", UINT32_MAX);
                if (auto* r = opt(*args, "request"))
                    m.ap_request = choice(*r, p + "/request", {"create", "destroy"}) == "destroy" ? 2 : 1;
                if (auto* g = opt(*args, "vmsa_gpa")) m.gpa = size_value(*g, p + "/vmsa_gpa");
                else if (m.ap_request == 1) req(*args, p, "vmsa_gpa");
                else m.gpa_given = false;
                if (auto* l = opt(*args, "vmpl")) m.vmpl = uint8_t(uint_value(*l, p + "/vmpl", 3));
                m.size = kPageSize;
                st.op = m;
            } else if (name == "accept") {
                // The TDX guest's TDG.MEM.PAGE.ACCEPT (a TDCALL, not a hypercall to KVM).
                if (s_.vm.type != "tdx") expected(p, "an accept on a tdx VM", "a " + s_.vm.type + " VM");
                object(*args, p, {"gpa", "size", "page_size"}, "an accept object {\"gpa\", \"size\", \"page_size\"}");
                scn::MapGpaRange m;
                m.accept = true;
                m.gpa = size_value(req(*args, p, "gpa"), p + "/gpa");
                m.size = size_value(req(*args, p, "size"), p + "/size");
                if (auto* ps = opt(*args, "page_size"))
                    m.accept_level = choice(*ps, p + "/page_size", {"4K", "2M"}) == "2M" ? PgLevel::k2M : PgLevel::k4K;
                const uint64_t a = level_size(m.accept_level);
                if ((m.gpa | m.size) & (a - 1) || !m.size)
                    expected(p, fmt::format("a non-empty range aligned to the page size ({:#x})", a),
                             range_text(m.gpa, m.size));
                st.op = m;
            } else if (name != "map_gpa_range") {
                // A pKVM guest's own SMCCC calls (Documentation/virt/kvm/arm/hypercalls.rst):
                // MEM_SHARE and MEM_UNSHARE are what map_gpa_range becomes on pKVM.
                if (s_.vm.type != "pkvm") expected(p, "a " + name + " on a pkvm VM", "a " + s_.vm.type + " VM");
                object(*args, p, {"gpa", "size"}, "a " + name + " object {\"gpa\", \"size\"}");
                scn::MapGpaRange m;
                m.gpa = size_value(req(*args, p, "gpa"), p + "/gpa");
                m.size = size_value(req(*args, p, "size"), p + "/size");
                m.to_private = name == "mem_unshare";
                m.relinquish = name == "mem_relinquish";
                if ((m.gpa | m.size) & kPageMask || !m.size)
                    expected(p, "a non-empty range aligned to 4 KiB", range_text(m.gpa, m.size));
                st.op = m;
            } else {
            object(*args, p, {"gpa", "size", "to"}, "a map_gpa_range object {\"gpa\", \"size\", \"to\"}");
            scn::MapGpaRange m;
            m.gpa = size_value(req(*args, p, "gpa"), p + "/gpa");
            m.size = size_value(req(*args, p, "size"), p + "/size");
            m.to_private = choice(req(*args, p, "to"), p + "/to", {"private", "shared"}) == "private";
            st.op = m;
            }
        } else {   // close
            kind = OpKind::close;
            scn::Close c;
            if (body.is_string()) {
                if (body.get_ref<const std::string&>() != "vm")
                    expected(bp, "\"vm\" or {\"guest_memfd\": ID}", describe(body));
                c.vm = true;
            } else if (body.is_object()) {
                object(body, bp, {"guest_memfd"}, "\"vm\" or {\"guest_memfd\": ID}");
                c.guest_memfd = gmem_ref(req(body, bp, "guest_memfd"), bp + "/guest_memfd");
            } else {
                expected(bp, "\"vm\" or {\"guest_memfd\": ID}", describe(body));
            }
            st.op = c;
        }
        if (auto* e = opt(j, "expect")) step_expect(st, *e, ptr + "/expect", kind, sub);
        return st;
    }

    void ioctl(scn::Step& st, const std::string& name, const json& a, const std::string& p) {
        if (name == "create_guest_memfd") {
            scn::CreateGuestMemfd c;
            c.gmem = gmem_decl(a, p, false);
            st.op = c;
        } else if (name == "set_user_memory_region2") {
            st.op = scn::SetUserMemoryRegion2{memslot(a, p, false)};
        } else if (name == "set_user_memory_region") {
            // KVM_SET_USER_MEMORY_REGION: struct kvm_userspace_memory_region has no guest_memfd fields.
            object(a, p, {"slot", "as_id", "flags", "gpa", "size", "userspace_addr"}, "a set_user_memory_region object");
            st.op = scn::SetUserMemoryRegion2{memslot(a, p, false), true};
        } else if (name == "set_memory_attributes") {
            object(a, p, {"gpa", "size", "attributes", "flags"}, "a set_memory_attributes object");
            scn::SetMemoryAttributes m;
            m.gpa = size_value(req(a, p, "gpa"), p + "/gpa");
            m.size = size_value(req(a, p, "size"), p + "/size");
            if (auto* v = opt(a, "attributes")) m.attributes = flags_value(*v, p + "/attributes", kAttributes);
            if (auto* v = opt(a, "flags")) m.flags = flags_value(*v, p + "/flags", kNoFlags);
            st.op = m;
        } else if (name == "set_memory_attributes2") {
            object(a, p, {"guest_memfd", "offset", "size", "attributes", "content_policy", "flags"},
                   "a set_memory_attributes2 object");
            scn::SetMemoryAttributes2 m;
            m.guest_memfd = gmem_ref(req(a, p, "guest_memfd"), p + "/guest_memfd");
            if (auto* v = opt(a, "offset")) m.offset = size_value(*v, p + "/offset");
            m.size = size_value(req(a, p, "size"), p + "/size");
            if (auto* v = opt(a, "attributes")) m.attributes = flags_value(*v, p + "/attributes", kAttributes);
            const json* cp = opt(a, "content_policy");
            const json* fl = opt(a, "flags");
            if (cp && fl) expected(p + "/flags", "either content_policy or flags", "both");
            if (cp) {
                std::vector<std::string> names;
                for (const auto& [n, v] : kContentPolicies) names.push_back(n);
                const std::string c = choice(*cp, p + "/content_policy", names);
                for (const auto& [n, v] : kContentPolicies)
                    if (n == c) m.flags = v;
            }
            if (fl) m.flags = flags_value(*fl, p + "/flags", kNoFlags);
            st.op = m;
        } else if (name == "fallocate") {
            object(a, p, {"guest_memfd", "mode", "offset", "len"}, "a fallocate object");
            scn::Fallocate f;
            f.guest_memfd = gmem_ref(req(a, p, "guest_memfd"), p + "/guest_memfd");
            if (auto* v = opt(a, "mode")) f.mode = int(flags_value(*v, p + "/mode", kFallocModes, INT32_MAX));
            if (auto* v = opt(a, "offset")) f.offset = size_value(*v, p + "/offset");
            f.len = size_value(req(a, p, "len"), p + "/len");
            st.op = f;
        } else if (name == "pre_fault_memory") {
            object(a, p, {"vcpu", "gpa", "size", "flags"}, "a pre_fault_memory object");
            scn::PreFaultMemory f;
            if (auto* v = opt(a, "vcpu")) f.vcpu = vcpu_index(*v, p + "/vcpu");
            f.gpa = size_value(req(a, p, "gpa"), p + "/gpa");
            f.size = size_value(req(a, p, "size"), p + "/size");
            if (auto* v = opt(a, "flags")) f.flags = flags_value(*v, p + "/flags", kNoFlags);
            st.op = f;
        } else if (name == "get_dirty_log" || name == "clear_dirty_log") {
            scn::DirtyLog d;
            d.clear = name == "clear_dirty_log";
            if (d.clear)
                object(a, p, {"slot", "as_id", "first_page", "num_pages", "dirty_bitmap"},
                       "a clear_dirty_log object {\"slot\", \"as_id\", \"first_page\", \"num_pages\", \"dirty_bitmap\"}");
            else
                object(a, p, {"slot", "as_id"}, "a get_dirty_log object {\"slot\", \"as_id\"}");
            const json& sl = req(a, p, "slot");
            const uint64_t raw = uint_value(sl, p + "/slot", UINT32_MAX);
            d.slot = uint32_t(raw);
            if (auto* v = opt(a, "as_id")) {
                if (raw > 0xffff) expected(p + "/slot", "a slot id 0..65535 when as_id is given", describe(sl));
                d.slot |= uint32_t(uint_value(*v, p + "/as_id", 0xffff)) << 16;
            }
            if (d.clear) {
                d.first_page = uint_value(req(a, p, "first_page"), p + "/first_page", UINT64_MAX);
                d.num_pages = uint32_t(uint_value(req(a, p, "num_pages"), p + "/num_pages", UINT32_MAX));
                if (auto* v = opt(a, "dirty_bitmap")) d.dirty_bitmap = page_list(*v, p + "/dirty_bitmap", d.num_pages);
            }
            st.op = d;
        } else if (name == "memory_encrypt_reg_region" || name == "memory_encrypt_unreg_region") {
            object(a, p, {"addr", "size"}, "an encrypt-region object {\"addr\", \"size\"}");
            scn::EncryptRegion r;
            r.reg = name == "memory_encrypt_reg_region";
            r.addr = size_value(req(a, p, "addr"), p + "/addr");
            r.size = size_value(req(a, p, "size"), p + "/size");
            st.op = r;
        } else if (name.rfind("snp_launch_", 0) == 0 || name.rfind("tdx_", 0) == 0) {
            st.op = launch(name, a, p);
        } else {   // check_extension
            object(a, p, {"cap", "scope"}, "a check_extension object {\"cap\", \"scope\"}");
            scn::CheckExtension c;
            const json& cap = req(a, p, "cap");
            std::vector<std::string> names;
            for (const auto& [n, v] : kCaps) names.push_back(n);
            if (cap.is_number_integer()) {
                if (cap.is_number_unsigned() && cap.get<uint64_t>() > uint64_t(INT64_MAX))
                    expected(p + "/cap", "a capability number", describe(cap));
                c.cap_nr = cap.get<int64_t>();
                for (const auto& [n, v] : kCaps)
                    if (v == c.cap_nr) c.cap = n;
            } else if (cap.is_string()) {
                c.cap = choice(cap, p + "/cap", names);
                for (const auto& [n, v] : kCaps)
                    if (n == c.cap) c.cap_nr = v;
            } else {
                expected(p + "/cap", "a capability name from " + join_list(names) + " or a number", describe(cap));
            }
            if (auto* v = opt(a, "scope")) c.vm_scope = choice(*v, p + "/scope", {"vm", "system"}) == "vm";
            st.op = c;
        }
    }

    // KVM_MEMORY_ENCRYPT_OP launch commands (scn::Launch); each on the VM type it belongs to.
    scn::Launch launch(const std::string& name, const json& a, const std::string& p) {
        using Op = scn::Launch::Op;
        scn::Launch l;
        const bool snp = name[0] == 's';
        const std::string vt = snp ? "snp" : "tdx";
        // "an SNP VM", "a TDX VM": the letters are spoken.
        const std::string vn = snp ? "an SNP" : "a TDX";
        if (s_.vm.type != vt) expected(p, name + " on " + vn + " VM (vm.type \"" + vt + "\")", "vm.type \"" + s_.vm.type + "\"");
        if (name == "snp_launch_start") {
            l.op = Op::snp_launch_start;
            object(a, p, {"policy", "flags"}, "an snp_launch_start object {\"policy\", \"flags\"}");
            if (auto* v = opt(a, "policy")) l.policy = uint_value(*v, p + "/policy", UINT64_MAX, "a policy (integer)");
        } else if (name == "snp_launch_update") {
            l.op = Op::snp_launch_update;
            object(a, p, {"gpa", "size", "type", "value", "flags"},
                   "an snp_launch_update object {\"gpa\", \"size\", \"type\", \"value\", \"flags\"}");
            l.gpa = size_value(req(a, p, "gpa"), p + "/gpa");
            l.size = size_value(req(a, p, "size"), p + "/size");
            if (auto* v = opt(a, "type")) {
                // A name, or the raw KVM_SEV_SNP_PAGE_TYPE_* number (to exercise KVM's check).
                static const std::vector<std::pair<std::string, uint8_t>> kTypes = {
                    {"normal", 1}, {"zero", 3}, {"unmeasured", 4}, {"secrets", 5}, {"cpuid", 6}};
                if (v->is_number_integer()) {
                    l.page_type = uint8_t(uint_value(*v, p + "/type", 255, "a page type name or number 0..255"));
                } else {
                    std::vector<std::string> names;
                    for (const auto& [n, t] : kTypes) names.push_back(n);
                    const std::string c = choice(*v, p + "/type", names);
                    for (const auto& [n, t] : kTypes)
                        if (n == c) l.page_type = t;
                }
            }
            if (auto* v = opt(a, "value")) l.value = byte_value(*v, p + "/value");
        } else if (name == "snp_launch_finish") {
            l.op = Op::snp_launch_finish;
            object(a, p, {"flags"}, "an snp_launch_finish object {\"flags\"}");
        } else if (name == "tdx_init_mem_region") {
            l.op = Op::tdx_init_mem_region;
            object(a, p, {"vcpu", "gpa", "size", "value", "measure", "flags"},
                   "a tdx_init_mem_region object {\"vcpu\", \"gpa\", \"size\", \"value\", \"measure\", \"flags\"}");
            if (auto* v = opt(a, "vcpu")) l.vcpu = vcpu_index(*v, p + "/vcpu");
            l.gpa = size_value(req(a, p, "gpa"), p + "/gpa");
            l.size = size_value(req(a, p, "size"), p + "/size");
            if (l.size & kPageMask) expected(p + "/size", "a whole number of 4 KiB pages (nr_pages)", describe(a["size"]));
            if (auto* v = opt(a, "value")) l.value = byte_value(*v, p + "/value");
            if (auto* v = opt(a, "measure")) l.measure = bool_value(*v, p + "/measure");
        } else {
            l.op = Op::tdx_finalize_vm;
            object(a, p, {"flags"}, "a tdx_finalize_vm object {\"flags\"}");
        }
        if (auto* v = opt(a, "flags")) l.flags = uint_value(*v, p + "/flags", UINT32_MAX, "flags (integer)");
        if ((l.op == Op::snp_launch_update || l.op == Op::tdx_init_mem_region) && l.size > (1ull << 30))
            expected(p + "/size", "at most 1 GiB of launch image", describe(a["size"]));
        return l;
    }

    void host(scn::Step& st, const std::string& name, const json& a, const std::string& p) {
        scn::HostAccess h;
        if (name == "mmap") {
            object(a, p, {"guest_memfd", "offset", "size", "shared", "id"}, "a host mmap object");
            h.op = scn::HostAccess::Op::mmap;
            h.guest_memfd = gmem_ref(req(a, p, "guest_memfd"), p + "/guest_memfd");
            if (auto* v = opt(a, "offset")) h.offset = size_value(*v, p + "/offset");
            h.size = size_value(req(a, p, "size"), p + "/size");
            if (auto* v = opt(a, "shared")) h.map_shared = bool_value(*v, p + "/shared");
            if (auto* v = opt(a, "id")) {
                h.mapping = string_value(*v, p + "/id");
                if (h.mapping.empty()) expected(p + "/id", "a non-empty mapping id", describe(*v));
                if (auto it = map_where_.find(h.mapping); it != map_where_.end())
                    expected(p + "/id", "a mapping id not used before", describe(*v), " (declared at " + it->second + ")");
                map_where_[h.mapping] = p + "/id";
                map_ids_.push_back(h.mapping);
            }
            st.op = h;
            return;
        }
        if (name == "munmap") {
            // kvm_munmap(mem + offset, size): the mapping a named mmap step returned.
            object(a, p, {"mapping", "offset", "size"}, "a host munmap object {\"mapping\", \"offset\", \"size\"}");
            h.op = scn::HostAccess::Op::munmap;
            h.mapping = mapping_ref(req(a, p, "mapping"), p + "/mapping");
            if (auto* v = opt(a, "offset")) h.offset = size_value(*v, p + "/offset");
            h.size = size_value(req(a, p, "size"), p + "/size");
            st.op = h;
            return;
        }
        const bool write = name == "write";
        std::vector<std::string> keys = {"guest_memfd", "mapping", "offset", "userspace_addr", "size"};
        if (write) keys.push_back("value");
        if (write || name == "read") keys.push_back("who");
        object(a, p, keys, "a host " + name + " object");
        h.op = name == "read"    ? scn::HostAccess::Op::read
               : write           ? scn::HostAccess::Op::write
               : name == "pin"   ? scn::HostAccess::Op::pin
                                 : scn::HostAccess::Op::unpin;
        const json* gm = opt(a, "guest_memfd");
        const json* ua = opt(a, "userspace_addr");
        const json* mp = opt(a, "mapping");
        if (int(gm != nullptr) + int(ua != nullptr) + int(mp != nullptr) > 1)
            expected(p, "one of guest_memfd (+ offset), mapping (+ offset) or userspace_addr", "more than one");
        if (!gm && !ua && !mp) expected(p, "key 'guest_memfd', 'mapping' or 'userspace_addr'", "an object with none");
        if (gm) h.guest_memfd = gmem_ref(*gm, p + "/guest_memfd");
        if (mp) h.mapping = mapping_ref(*mp, p + "/mapping");
        if (auto* v = opt(a, "offset")) {
            if (ua)
                expected(p + "/offset", "an offset only with guest_memfd or mapping (userspace_addr is the address)",
                         describe(*v));
            h.offset = size_value(*v, p + "/offset");
        }
        if (ua) h.userspace_addr = size_value(*ua, p + "/userspace_addr");
        h.size = size_value(req(a, p, "size"), p + "/size");
        if (write) h.value = byte_value(req(a, p, "value"), p + "/value");
        if (auto* v = opt(a, "who")) {
            const std::string who = string_value(*v, p + "/who");
            if (who != "vmm" && who != "kernel") expected(p + "/who", "\"vmm\" or \"kernel\"", describe(*v));
            h.kernel = who == "kernel";
            // The kernel reaches the VMM's memory through the VMM's address space (uaccess).
            if (h.kernel && !ua) expected(p + "/who", "\"kernel\" only with userspace_addr", describe(*v));
        }
        st.op = h;
    }

    void access(scn::Step& st, const json& a, const std::string& p) {
        object(a, p, {"gpa", "size", "pattern", "op", "value", "count", "private", "width", "stride", "trace"},
               "an access object");
        scn::Access x;
        x.gpa = size_value(req(a, p, "gpa"), p + "/gpa");
        x.size = size_value(req(a, p, "size"), p + "/size");
        if (auto* v = opt(a, "pattern")) {
            const std::string s = choice(*v, p + "/pattern", {"seq", "stride", "random", "replay"});
            x.pattern = s == "seq"      ? scn::Access::Pattern::seq
                        : s == "stride" ? scn::Access::Pattern::stride
                        : s == "random" ? scn::Access::Pattern::random
                                        : scn::Access::Pattern::replay;
        }
        if (x.pattern == scn::Access::Pattern::replay) {
            // The trace decides addresses, widths and reads vs writes.
            for (const char* k : {"op", "width", "stride"})
                if (auto* v = opt(a, k))
                    expected(p + "/" + k, std::string("no ") + k + " with pattern replay (the trace gives it)", describe(*v));
            x.replay = replay(req(a, p, "trace"), p + "/trace");
            if (x.size < kPageSize) expected(p + "/size", "at least one page for a replay", describe(a["size"]));
        } else if (auto* v = opt(a, "trace")) {
            expected(p + "/trace", "a trace only with \"pattern\": \"replay\"", describe(*v));
        }
        if (auto* v = opt(a, "op"))
            x.op = choice(*v, p + "/op", {"read", "write"}) == "write" ? scn::Access::Op::write : scn::Access::Op::read;
        if (auto* v = opt(a, "value")) {
            if (x.op != scn::Access::Op::write)
                expected(p + "/value", "a value only on a write access (check reads with expect.bytes)", describe(*v));
            x.value = byte_value(*v, p + "/value");
        }
        if (auto* v = opt(a, "count")) x.count = uint_value(*v, p + "/count", UINT64_MAX);
        if (auto* v = opt(a, "private")) x.is_private = bool_value(*v, p + "/private");
        if (auto* v = opt(a, "width")) {
            // scn::Access::width: a power of two up to a page (above a cache line: a string
            // store such as clear_page()); absent = the runner's default.
            const std::string what = "bytes per access: a power of two from 1 to 4096";
            const uint64_t w = uint_value(*v, p + "/width", 4096, what);
            if (!std::has_single_bit(w)) expected(p + "/width", what, describe(*v));
            x.width = unsigned(w);
        }
        if (auto* v = opt(a, "stride")) {
            x.stride = size_value(*v, p + "/stride");
            if (x.stride == 0) expected(p + "/stride", "a non-zero stride", describe(*v));
        }
        st.op = x;
    }

    scn::Replay replay(const json& j, const std::string& p) {
        object(j, p, {"file", "format", "cycles_per_instruction"}, "a trace object {file, format, cycles_per_instruction}");
        scn::Replay r;
        const std::string f = string_value(req(j, p, "file"), p + "/file");
        std::filesystem::path fp(f);
        if (fp.is_relative()) fp = std::filesystem::path(file_).parent_path() / fp;
        r.file = std::filesystem::absolute(fp).lexically_normal().string();
        std::error_code ec;
        if (!std::filesystem::is_regular_file(r.file, ec))
            expected(p + "/file", "a trace file (relative to the scenario)", jsonu::quote(f) + " (" + r.file + " not found)");
        r.format = choice(req(j, p, "format"), p + "/format", {"lackey", "champsim"});
        if (auto* v = opt(j, "cycles_per_instruction")) {
            if (!v->is_number() || v->get<double>() < 0 || v->get<double>() > 1000)
                expected(p + "/cycles_per_instruction", "a number 0..1000", describe(*v));
            r.cycles_per_instruction = v->get<double>();
        }
        return r;
    }

    // ---- expectations --------------------------------------------------------
    // A list of page numbers below `limit` (a dirty bitmap written as the pages it has set).
    std::vector<uint64_t> page_list(const json& j, const std::string& ptr, uint64_t limit) const {
        if (!j.is_array()) expected(ptr, "an array of page numbers", describe(j));
        std::vector<uint64_t> out;
        for (size_t i = 0; i < j.size(); ++i) {
            const std::string p = ptr + "/" + std::to_string(i);
            const uint64_t v = uint_value(j[i], p, UINT64_MAX);
            if (v >= limit) expected(p, "a page number below " + std::to_string(limit), describe(j[i]));
            out.push_back(v);
        }
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
        return out;
    }

    void step_expect(scn::Step& st, const json& j, const std::string& ptr, OpKind kind, const std::string& sub) {
        static const std::vector<std::string> kKeys = {"errno", "error_offset", "remaining", "exit",
                                                       "signal", "bytes",       "value", "dirty_pages",
                                                       "dirty_bitmap", "launch_digest", "status"};
        object(j, ptr, kKeys, "an expect object");
        // What each kind of step can report (StepOutcome, or the vCPU's exit).
        std::vector<std::string> ok = {"errno"};
        const bool reads = (kind == OpKind::host_access && sub == "read") ||
                           (kind == OpKind::access && std::get<scn::Access>(st.op).op == scn::Access::Op::read);
        if (kind == OpKind::ioctl && sub == "set_memory_attributes2") ok.push_back("error_offset");
        if (kind == OpKind::ioctl && sub == "pre_fault_memory") ok.push_back("remaining");
        if (kind == OpKind::ioctl && sub == "check_extension") ok.push_back("value");
        if (kind == OpKind::ioctl && (sub == "snp_launch_update" || sub == "tdx_init_mem_region")) ok.push_back("remaining");
        if (kind == OpKind::ioctl && (sub == "snp_launch_finish" || sub == "tdx_finalize_vm")) ok.push_back("launch_digest");
        if (kind == OpKind::ioctl && sub == "get_dirty_log") {
            ok.push_back("dirty_pages");
            ok.push_back("dirty_bitmap");
        }
        if (kind == OpKind::access || kind == OpKind::hypercall) ok.push_back("exit");
        if (kind == OpKind::hypercall && sub == "snp_ap_create") ok.push_back("status");
        if (kind == OpKind::host_access) ok.push_back("signal");
        if (reads) ok.push_back("bytes");
        for (const auto& [k, v] : j.items()) {
            if (std::find(ok.begin(), ok.end(), k) == ok.end()) {
                const std::string what = kind == OpKind::ioctl ? "ioctl " + sub
                                         : kind == OpKind::host_access || kind == OpKind::host_mmap ? "host " + sub
                                         : kind == OpKind::access ? (reads ? "read access" : "write access")
                                         : kind == OpKind::hypercall ? "hypercall" : "close";
                expected(ptr + "/" + jsonu::pointer_token(k),
                         "an expectation " + article(what) + " " + what + " step reports " + join_list(ok),
                         "'" + k + "'");
            }
        }
        scn::Expect& e = st.expect;
        if (auto* v = opt(j, "errno")) {
            std::vector<std::string> names = known_errno_names();
            names.insert(names.begin(), "ok");
            e.err = choice(*v, ptr + "/errno", names);
        }
        if (auto* v = opt(j, "error_offset")) e.error_offset = size_value(*v, ptr + "/error_offset");
        if (auto* v = opt(j, "remaining")) e.remaining = size_value(*v, ptr + "/remaining");
        if (auto* v = opt(j, "status")) {
            std::vector<std::string> names;
            for (const auto& n : scn::ap_status_names()) names.push_back(n.first);
            e.status = choice(*v, ptr + "/status", names);
        }
        if (auto* v = opt(j, "signal")) e.signal = choice(*v, ptr + "/signal", {"SIGBUS", "SIGSEGV"});
        if (auto* v = opt(j, "bytes")) e.bytes = byte_value(*v, ptr + "/bytes");
        if (auto* v = opt(j, "value")) {
            if (!v->is_number_integer()) expected(ptr + "/value", "an integer", describe(*v));
            if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
                expected(ptr + "/value", "an integer below 2^63", describe(*v));
            e.value = v->get<int64_t>();
        }
        if (auto* v = opt(j, "launch_digest")) {
            const std::string d = string_value(*v, ptr + "/launch_digest");
            if (d.size() != 96 || d.find_first_not_of("0123456789abcdef") != std::string::npos)
                expected(ptr + "/launch_digest", "a SHA-384 digest as 96 lower-case hex digits", describe(*v));
            e.launch_digest = d;
        }
        if (auto* v = opt(j, "dirty_pages")) e.dirty_pages = uint_value(*v, ptr + "/dirty_pages", UINT64_MAX);
        if (auto* v = opt(j, "dirty_bitmap")) e.dirty_bitmap = page_list(*v, ptr + "/dirty_bitmap", UINT64_MAX);
        if (auto* v = opt(j, "exit")) {
            const std::string p = ptr + "/exit";
            object(*v, p, {"reason", "gpa", "size", "flags"}, "an exit object {\"reason\", \"gpa\", \"size\", \"flags\"}");
            scn::ExitExpect x;
            x.reason = choice(req(*v, p, "reason"), p + "/reason", {"memory_fault", "hypercall", "mmio", "fail_entry", "halted"});
            if (auto* g = opt(*v, "gpa")) x.gpa = size_value(*g, p + "/gpa");
            if (auto* s = opt(*v, "size")) x.size = size_value(*s, p + "/size");
            if (auto* f = opt(*v, "flags")) x.flags = flags_value(*f, p + "/flags", kExitFlags);
            e.exit = x;
        }
    }

    void top_expect(const json& j, const std::string& ptr) {
        object(j, ptr, {"metrics", "arch"}, "an expect object {\"metrics\", \"arch\"}");
        if (const json* m = opt(j, "metrics")) metric_bounds(*m, ptr + "/metrics", nullptr);
        // Per-architecture bounds: {"arch": {"arm64": {"metrics": {...}}, "x86": {...}}}.
        if (const json* a = opt(j, "arch")) {
            const std::string ap = ptr + "/arch";
            object(*a, ap, {"x86", "arm64"}, "an object of architectures {\"x86\", \"arm64\"}");
            for (const auto& [arch, e] : a->items()) {
                const std::string p = ap + "/" + arch;
                object(e, p, {"metrics"}, "an expect object {\"metrics\"}");
                auto& into = s_.expect_metrics_arch[arch];
                if (const json* m = opt(e, "metrics")) metric_bounds(*m, p + "/metrics", &into);
            }
        }
    }

    // A metrics object: name -> bound. `arch`: the per-architecture map (null drops a bound).
    void metric_bounds(const json& m, const std::string& mp,
                       std::map<std::string, std::optional<scn::MetricBound>>* arch) {
        if (!m.is_object()) expected(mp, "an object of metric bounds", describe(m));
        for (const auto& item : m.items()) {
            const std::string& name = item.key();
            const json& b = item.value();
            const std::string p = mp + "/" + jsonu::pointer_token(name);
            if (!is_metric_name(name))
                expected(p, "a dotted snake_case metric name", "'" + name + "'");
            if (arch && b.is_null()) {
                (*arch)[name] = std::nullopt;
                continue;
            }
            scn::MetricBound mb;
            if (b.is_number()) {
                mb.eq = b.get<double>();
            } else {
                object(b, p, {"min", "max", "eq"}, "a number or a bound object {\"min\", \"max\", \"eq\"}");
                if (b.empty()) expected(p, "at least one of [min, max, eq]", "an empty object");
                if (auto* v = opt(b, "min")) mb.min = number_value(*v, p + "/min");
                if (auto* v = opt(b, "max")) mb.max = number_value(*v, p + "/max");
                if (auto* v = opt(b, "eq")) mb.eq = number_value(*v, p + "/eq");
                if (mb.eq && (mb.min || mb.max)) expected(p, "eq alone or min/max", "both");
                if (mb.min && mb.max && *mb.min > *mb.max)
                    expected(p, "min <= max", fmt::format("min {} > max {}", *mb.min, *mb.max));
            }
            if (arch) (*arch)[name] = mb;
            else s_.expect_metrics[name] = mb;
        }
    }
};

// JSON has one number type: 2.0 and 2 are the same number (RFC 8259, and JSON Schema's
// "integer" accepts both). Integral floats become integers before the loader looks, so the
// loader and scenario.schema.json agree; 2.5 stays a float and is refused where an integer
// is expected.
void integral_floats_to_integers(json& j) {
    if (j.is_number_float()) {
        const double d = j.get<double>();
        if (std::isfinite(d) && d == std::floor(d)) {
            if (d >= 0 && d < 18446744073709551616.0) j = uint64_t(d);
            else if (d < 0 && d >= -9223372036854775808.0) j = int64_t(d);
        }
    } else if (j.is_structured()) {
        for (auto& e : j) integral_floats_to_integers(e);
    }
}

// Parses JSON (comments allowed), rejecting duplicate keys, which nlohmann would
// otherwise resolve silently by keeping the last one.
// Finds the first key given twice in one object, as a SAX pass over the text (no DOM).
// nlohmann's callback parser would do the same, but it rescans the parent container at
// every object's end, which makes loading quadratic in the number of steps.
class DuplicateKeySax {
public:
    std::optional<std::pair<std::string, std::string>> dup;   // pointer, key

    bool null() { return value(); }
    bool boolean(bool) { return value(); }
    bool number_integer(json::number_integer_t) { return value(); }
    bool number_unsigned(json::number_unsigned_t) { return value(); }
    bool number_float(json::number_float_t, const json::string_t&) { return value(); }
    bool string(json::string_t&) { return value(); }
    bool binary(json::binary_t&) { return value(); }
    bool start_object(std::size_t) {
        stack_.push_back(Frame{});
        return true;
    }
    bool key(json::string_t& k) {
        Frame& f = stack_.back();
        f.key = k;
        if (!f.keys.insert(k).second && !dup) {
            std::string ptr;
            for (const auto& fr : stack_) ptr += "/" + (fr.array ? std::to_string(fr.index) : jsonu::pointer_token(fr.key));
            dup = std::make_pair(ptr, k);
        }
        return true;
    }
    bool end_object() { return end(); }
    bool start_array(std::size_t) {
        stack_.push_back(Frame{true, 0, {}, {}});
        return true;
    }
    bool end_array() { return end(); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

private:
    struct Frame {
        bool array = false;
        size_t index = 0;
        std::string key;
        std::set<std::string> keys;
    };
    std::vector<Frame> stack_;
    bool value() {
        if (!stack_.empty() && stack_.back().array) ++stack_.back().index;
        return true;
    }
    bool end() {
        stack_.pop_back();
        return value();
    }
};

json parse_json(const std::string& text, const std::string& file) {
    json root;
    try {
        root = json::parse(text, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
    } catch (const json::out_of_range& e) {
        // nlohmann: "[json.exception.out_of_range.406] number overflow parsing '1e400'".
        const std::string what = e.what();
        const auto q = what.find('\'');
        throw LoadError(sanitize_line(file + ": expected numbers within the range of a double (about 1.8e308), got " +
                                      (q == std::string::npos ? what : what.substr(q))));
    } catch (const json::parse_error& e) {
        // nlohmann: "[json.exception.parse_error.101] parse error at line L, column C: MESSAGE".
        const std::string what = e.what();
        const auto at = what.find(" at line ");
        const auto col = what.find(", column ", at);
        const auto msg = what.find(": ", col);
        if (at != std::string::npos && col != std::string::npos && msg != std::string::npos)
            throw LoadError(sanitize_line(file + ":" + what.substr(at + 9, col - at - 9) + ":" +
                                          what.substr(col + 9, msg - col - 9) + ": " + what.substr(msg + 2)));
        throw LoadError(sanitize_line(file + ": " + what));
    }
    DuplicateKeySax sax;
    json::sax_parse(text, &sax, json::input_format_t::json, /*strict=*/true, /*ignore_comments=*/true);
    if (const auto& dup = sax.dup)
        throw LoadError(sanitize_line(file + ": " + dup->first + ": expected each key once, got '" + dup->second + "' twice"));
    integral_floats_to_integers(root);
    return root;
}

}  // namespace

const std::vector<std::string>& known_errno_names() {
    static const std::vector<std::string> v = {"EINVAL", "EEXIST", "EFAULT", "EAGAIN", "ENOMEM",    "EOPNOTSUPP", "ENOTTY",
                                               "ENODEV", "EBADF",  "ENOENT", "EIO",    "EINTR",     "ESPIPE",     "EPERM",
                                               "E2BIG",  "ENOSPC", "EHWPOISON", "ENXIO", "EACCES", "EBUSY",
                                               "ENOSYS", "EFBIG",  "EISDIR", "ETXTBSY", "EOVERFLOW"};
    return v;
}

const std::vector<std::string>& known_capability_names() {
    static const std::vector<std::string> v = [] {
        std::vector<std::string> r;
        for (const auto& [n, c] : kCaps) r.push_back(n);
        return r;
    }();
    return v;
}

scn::Scenario load_scenario_text(const std::string& text, const std::string& file_for_messages) {
    const json root = parse_json(text, file_for_messages);
    return Loader(file_for_messages).run(root);
}

scn::Scenario load_scenario_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw LoadError(sanitize_line(path + ": cannot open: " + std::strerror(errno)));
    // A scenario is a small text file: reading stops at a limit, so `hvsim run /dev/zero`
    // (or a mistyped path to a disk image) is refused instead of filling memory.
    constexpr size_t kMaxScenarioBytes = 64u << 20;
    std::string text;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        text.append(buf, n);
        if (text.size() > kMaxScenarioBytes) {
            std::fclose(f);
            throw LoadError(sanitize_line(path + ": expected a scenario file of at most 64 MiB, got more (not a scenario?)"));
        }
    }
    const bool bad = std::ferror(f);
    const int err = errno;
    std::fclose(f);
    if (bad) throw LoadError(sanitize_line(path + ": cannot read: " + std::strerror(err)));
    return load_scenario_text(text, path);
}

ParamSet resolve_params(const scn::Scenario& s, const std::vector<std::pair<std::string, std::string>>& cli_sets) {
    const std::string file = s.file.empty() ? std::string("<scenario>") : s.file;
    std::optional<ParamSet> ps;
    std::optional<std::string> cli_platform;
    for (const auto& [k, v] : cli_sets)
        if (k == "platform") cli_platform = v;
    try {
        ps = ParamSet::preset(cli_platform.value_or(s.platform));
    } catch (const ParamError& e) {
        throw LoadError(sanitize_line(cli_platform ? "--set platform=" + *cli_platform + ": " + e.what()
                                                   : file + ": /platform: " + e.what()));
    }
    // The kernel profile first (--set wins over the scenario), so that explicit kvm.config.*
    // keys of the scenario or --set override the profile's values.
    const std::string kProfile = "kvm.profile";
    std::optional<std::pair<std::string, std::string>> profile;   // value, origin
    if (auto it = s.params.find(kProfile); it != s.params.end()) profile = {it->second, "scenario params"};
    for (const auto& [k, v] : cli_sets)
        if (k == kProfile) profile = {v, "--set"};
    if (profile) {
        try {
            ps->set_from_string(kProfile, profile->first, profile->second);
        } catch (const ParamError& e) {
            throw LoadError(sanitize_line(profile->second == "--set"
                                              ? "--set " + kProfile + "=" + profile->first + ": " + e.what()
                                              : file + ": /params/" + kProfile + ": " + e.what()));
        }
    }
    for (const auto& [k, v] : s.params) {
        if (k == kProfile) continue;
        try {
            ps->set_from_string(k, v, "scenario params");
        } catch (const ParamError& e) {
            throw LoadError(sanitize_line(file + ": /params/" + jsonu::pointer_token(k) + ": " + e.what()));
        }
    }
    for (const auto& [k, v] : cli_sets) {
        if (k == kProfile || k == "platform" || k == "vm.type") continue;   // see apply_scenario_sets
        try {
            ps->set_from_string(k, v, "--set");
        } catch (const ParamError& e) {
            throw LoadError(sanitize_line("--set " + k + "=" + v + ": " + e.what()));
        }
    }
    try {
        ps->validate();
    } catch (const ParamError& e) {
        throw LoadError(sanitize_line(file + (cli_sets.empty() ? ": /params: " : " with --set overrides: ") + e.what()));
    }
    return std::move(*ps);
}

std::string default_platform(const std::string& vm_type) {
    // A TDX VM needs an Intel host: without a platform it gets the preset made for it.
    return vm_type == "tdx" ? "sapphire-rapids" : "zen4-genoa";
}

void apply_scenario_sets(scn::Scenario& s, const std::vector<std::pair<std::string, std::string>>& cli_sets) {
    bool platform_set = false;
    for (const auto& [k, v] : cli_sets) {
        if (k == "platform") {
            s.platform = v;   // checked against the presets by resolve_params
            platform_set = true;
        }
        if (k == "vm.type") {
            if (std::find(kVmTypes.begin(), kVmTypes.end(), v) == kVmTypes.end())
                throw LoadError(sanitize_line("--set vm.type=" + v + ": expected one of " + jsonu::join_list(kVmTypes) +
                                              ", got '" + v + "'" + jsonu::suggestion_suffix(v, kVmTypes)));
            s.vm.type = v;
        }
    }
    // As in the file: a TDX VM without a platform gets the preset made for it.
    if (!platform_set && !s.platform_named) s.platform = default_platform(s.vm.type);
}

std::pair<std::string, std::string> parse_set_option(const std::string& text) {
    const auto eq = text.find('=');
    if (eq == std::string::npos)
        throw LoadError(sanitize_line("--set " + text + ": expected KEY=VALUE, got no '='"));
    if (eq == 0) throw LoadError(sanitize_line("--set " + text + ": expected KEY=VALUE, got an empty key"));
    return {text.substr(0, eq), text.substr(eq + 1)};
}

}  // namespace hvsim
