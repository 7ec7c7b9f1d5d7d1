// `hvsim diff-kvm`: the simulated KVM, configured like the host, against the host's KVM.
#include "sim/diff_kvm.hpp"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <ostream>

#include <fmt/format.h>

#include "kernel/uapi.hpp"
#include "sim/errno_names.hpp"
#include "sim/loader.hpp"
#include "sim/params.hpp"
#include "sim/uapi_runner.hpp"

namespace hvsim {

namespace {

namespace fs = std::filesystem;

std::string hex(uint64_t v) { return fmt::format("{:#x}", v); }

std::string fd_text(const scn::FdRef& r) {
    using K = scn::FdRef::Kind;
    switch (r.kind) {
    case K::gmem: return r.id;
    case K::kvm: return "fd:kvm";
    case K::vm: return "fd:vm";
    case K::memfd: return "fd:memfd";
    case K::invalid: return "fd:invalid";
    case K::raw: return fmt::format("fd:{}", r.raw);
    }
    return "?";
}

struct Row {
    std::string num, pointer, op, sim, real;
    StepVerdict v;
};

struct Counts {
    size_t agree = 0, differ = 0, skip = 0;
    void add(Verdict v) { (v == Verdict::agree ? agree : v == Verdict::differ ? differ : skip)++; }
};

Verdict overall(const Counts& c) {
    if (c.differ) return Verdict::differ;
    if (c.agree) return Verdict::agree;
    return Verdict::skip;
}

std::string setup_text(int create_err, const std::string& setup_error) {
    if (create_err) return errno_name(create_err);
    if (!setup_error.empty()) return "setup failed";
    return "ok";
}

std::string verdict_text(const StepVerdict& v) {
    if (v.why.empty()) return verdict_name(v.verdict);
    return fmt::format("{} ({})", verdict_name(v.verdict), v.why);
}

void print_table(std::ostream& out, const std::vector<Row>& rows) {
    size_t w[5] = {1, 7, 9, 9, 4};   // "#", "pointer", "operation", "simulated", "real"
    for (const Row& r : rows) {
        w[0] = std::max(w[0], r.num.size());
        w[1] = std::max(w[1], r.pointer.size());
        w[2] = std::max(w[2], r.op.size());
        w[3] = std::max(w[3], r.sim.size());
        w[4] = std::max(w[4], r.real.size());
    }
    auto line = [&](const std::string& a, const std::string& b, const std::string& c, const std::string& d,
                    const std::string& e, const std::string& f) {
        out << fmt::format("  {:<{}}  {:<{}}  {:<{}}  {:<{}}  {:<{}}  {}\n", a, w[0], b, w[1], c, w[2], d, w[3], e,
                           w[4], f);
    };
    line("#", "pointer", "operation", "simulated", "real", "verdict");
    for (const Row& r : rows) line(r.num, r.pointer, r.op, r.sim, r.real, verdict_text(r.v));
}

void describe_host(std::ostream& out, const HostKvmCaps& c) {
    out << fmt::format(
        "host: Linux {}, KVM API {}, VM types {:#x}, guest_memfd {} (flags {:#x}), user_memory2 {}, "
        "memory_attributes {} (ioctl {}), set_memory_attributes2 ioctl {}, pre_fault_memory {}, "
        "multi_address_space {}, nr_memslots {}, readonly_mem {}, exit_hypercall {:#x}, vCPU {}, "
        "MAXPHYADDR {}\n",
        c.kernel_release, c.api_version, c.vm_types_mask, c.guest_memfd, c.guest_memfd_flags, c.user_memory2,
        c.memory_attributes, c.set_memory_attributes_ioctl ? "yes" : "ENOTTY",
        c.set_memory_attributes2_ioctl ? "yes" : "ENOTTY", c.pre_fault_memory, c.multi_address_space,
        c.nr_memslots, c.readonly_mem, c.exit_hypercall, c.vcpu_create ? "yes" : "no", c.host_phys_bits);
}

std::string vm_summary(const scn::VmDecl& vm) {
    std::string s = "create_vm type=" + vm.type;
    if (!vm.guest_memfd.empty()) s += fmt::format(" guest_memfd={}", vm.guest_memfd.size());
    if (!vm.memslots.empty()) s += fmt::format(" memslots={}", vm.memslots.size());
    if (!vm.private_ranges.empty()) s += fmt::format(" private={}", vm.private_ranges.size());
    return s;
}

// The VM creation and setup row: KVM_CREATE_VM's errno, then whether setup failed.
StepVerdict compare_setup(const scn::Scenario& s, const HostKvmCaps& host, const UapiRun& sim, const RealRun& real) {
    if (!host.available || x86_vm_type_number(s.vm.type) < 0) return {Verdict::skip, real.setup_error};
    if (sim.create_vm_err != real.create_vm_err)
        return {Verdict::differ, fmt::format("KVM_CREATE_VM: simulated {}, real {}", setup_text(sim.create_vm_err, ""),
                                             setup_text(real.create_vm_err, ""))};
    if (sim.create_vm_err) return {Verdict::agree, {}};
    if (sim.setup_error.empty() != real.setup_error.empty())
        return {Verdict::differ,
                fmt::format("setup: simulated '{}', real '{}'", sim.setup_error.empty() ? "ok" : sim.setup_error,
                            real.setup_error.empty() ? "ok" : real.setup_error)};
    return {Verdict::agree, {}};
}

}  // namespace

const char* verdict_name(Verdict v) {
    switch (v) {
    case Verdict::agree: return "AGREE";
    case Verdict::differ: return "DIFFER";
    case Verdict::skip: return "SKIP";
    }
    return "?";
}

std::string format_outcome(const StepOutcome& o) {
    if (o.skipped) return "skipped";
    std::vector<std::string> parts;
    if (o.err) parts.push_back(errno_name(o.err));
    if (o.signal) parts.push_back(*o.signal);
    if (o.value) parts.push_back(fmt::format("value={}", *o.value));
    if (o.error_offset) parts.push_back("error_offset=" + hex(*o.error_offset));
    if (o.remaining) parts.push_back("remaining=" + hex(*o.remaining));
    if (o.bytes) parts.push_back(fmt::format("bytes={:#04x}", *o.bytes));
    if (o.bytes_mixed) parts.push_back("bytes=mixed");
    if (parts.empty()) return "ok";
    return fmt::format("{}", fmt::join(parts, " "));
}

StepVerdict compare_outcomes(const StepOutcome& sim, const StepOutcome& real) {
    if (real.skipped) return {Verdict::skip, real.skip_reason};
    if (sim.skipped) return {Verdict::skip, "simulator: " + sim.skip_reason};
    std::vector<std::string> diffs;
    const bool both_ok = sim.err == 0 && real.err == 0;
    if (sim.err != real.err)
        diffs.push_back(fmt::format("err {} vs {}", sim.err ? errno_name(sim.err) : "ok",
                                    real.err ? errno_name(real.err) : "ok"));
    if (sim.signal != real.signal)
        diffs.push_back(fmt::format("signal {} vs {}", sim.signal.value_or("none"), real.signal.value_or("none")));
    auto field = [&](const char* name, const auto& a, const auto& b, auto show) {
        if (a && b) {
            if (*a != *b) diffs.push_back(fmt::format("{} {} vs {}", name, show(*a), show(*b)));
        } else if (a.has_value() != b.has_value() && both_ok && !sim.signal && !real.signal) {
            diffs.push_back(fmt::format("{} {} vs {}", name, a ? show(*a) : "none", b ? show(*b) : "none"));
        }
    };
    auto dec = [](int64_t v) { return std::to_string(v); };
    auto hx = [](uint64_t v) { return hex(v); };
    auto byte = [](uint8_t v) { return fmt::format("{:#04x}", v); };
    field("value", sim.value, real.value, dec);
    field("error_offset", sim.error_offset, real.error_offset, hx);
    field("remaining", sim.remaining, real.remaining, hx);
    if (!sim.signal && !real.signal && both_ok) {
        // A read whose bytes differ has no single value, whatever a side put in `bytes`.
        const auto uniform = [](const StepOutcome& o) { return o.bytes_mixed ? std::nullopt : o.bytes; };
        field("bytes", uniform(sim), uniform(real), byte);
        if (sim.bytes_mixed != real.bytes_mixed)
            diffs.push_back(fmt::format("bytes {} vs {}", sim.bytes_mixed ? "mixed" : "uniform",
                                        real.bytes_mixed ? "mixed" : "uniform"));
    }
    if (diffs.empty()) return {Verdict::agree, {}};
    return {Verdict::differ, fmt::format("{}", fmt::join(diffs, "; "))};
}

std::string describe_step(const scn::Step& st) {
    return std::visit(
        [&](const auto& op) -> std::string {
            using T = std::decay_t<decltype(op)>;
            if constexpr (std::is_same_v<T, std::monostate>) {
                return "(empty)";
            } else if constexpr (std::is_same_v<T, scn::CreateGuestMemfd>) {
                return fmt::format("create_guest_memfd id={} size={} flags={}", op.gmem.id, hex(op.gmem.size),
                                   hex(op.gmem.flags));
            } else if constexpr (std::is_same_v<T, scn::SetUserMemoryRegion2>) {
                const scn::MemslotDecl& m = op.region;
                std::string s = op.v1 ? "set_user_memory_region slot=" : "set_user_memory_region2 slot=";
                if (m.as_id) s += fmt::format("{}:", m.as_id);
                s += fmt::format("{} flags={} gpa={} size={}", m.slot, hex(m.flags), hex(m.gpa), hex(m.size));
                if (m.guest_memfd && (m.flags & uapi::KVM_MEM_GUEST_MEMFD))
                    s += fmt::format(" gmem={}+{}", fd_text(*m.guest_memfd), hex(m.guest_memfd_offset));
                return s;
            } else if constexpr (std::is_same_v<T, scn::SetMemoryAttributes>) {
                return fmt::format("set_memory_attributes gpa={} size={} attributes={} flags={}", hex(op.gpa),
                                   hex(op.size), hex(op.attributes), hex(op.flags));
            } else if constexpr (std::is_same_v<T, scn::SetMemoryAttributes2>) {
                return fmt::format("set_memory_attributes2 gmem={} offset={} size={} attributes={} flags={}",
                                   fd_text(op.guest_memfd), hex(op.offset), hex(op.size), hex(op.attributes),
                                   hex(op.flags));
            } else if constexpr (std::is_same_v<T, scn::Fallocate>) {
                return fmt::format("fallocate gmem={} mode={} offset={} len={}", fd_text(op.guest_memfd),
                                   hex(static_cast<uint32_t>(op.mode)), hex(op.offset), hex(op.len));
            } else if constexpr (std::is_same_v<T, scn::PreFaultMemory>) {
                return fmt::format("pre_fault_memory vcpu={} gpa={} size={} flags={}", op.vcpu, hex(op.gpa),
                                   hex(op.size), hex(op.flags));
            } else if constexpr (std::is_same_v<T, scn::EncryptRegion>) {
                return fmt::format("memory_encrypt_{}_region addr={} size={}", op.reg ? "reg" : "unreg", hex(op.addr),
                                   hex(op.size));
            } else if constexpr (std::is_same_v<T, scn::CheckExtension>) {
                int64_t nr = op.cap_nr >= 0 ? op.cap_nr : cap_number(op.cap);
                std::string cap = op.cap.empty() ? std::to_string(nr) : fmt::format("{} ({})", op.cap, nr);
                return fmt::format("check_extension {} scope={}", cap, op.vm_scope ? "vm" : "system");
            } else if constexpr (std::is_same_v<T, scn::Close>) {
                return op.vm ? std::string("close vm") : "close " + fd_text(op.guest_memfd);
            } else if constexpr (std::is_same_v<T, scn::DirtyLog>) {
                return op.clear ? fmt::format("clear_dirty_log slot={} first_page={} num_pages={}", hex(op.slot),
                                              op.first_page, op.num_pages)
                                : fmt::format("get_dirty_log slot={}", hex(op.slot));
            } else if constexpr (std::is_same_v<T, scn::HostAccess>) {
                static const char* names[] = {"read", "write", "mmap", "pin", "unpin", "munmap"};
                std::string s = fmt::format("host {} ", names[static_cast<int>(op.op)]);
                if (!op.mapping.empty() && op.op != scn::HostAccess::Op::mmap)
                    s += fmt::format("mapping={} offset={}", op.mapping, hex(op.offset));
                else if (op.guest_memfd)
                    s += fmt::format("gmem={} offset={}", fd_text(*op.guest_memfd), hex(op.offset));
                else if (op.userspace_addr)
                    s += "uaddr=" + hex(*op.userspace_addr);
                s += " size=" + hex(op.size);
                if (op.op == scn::HostAccess::Op::write) s += fmt::format(" value={:#04x}", op.value);
                if (op.op == scn::HostAccess::Op::mmap && !op.map_shared) s += " private";
                if (op.op == scn::HostAccess::Op::mmap && !op.mapping.empty()) s += " as " + op.mapping;
                return s;
            } else if constexpr (std::is_same_v<T, scn::Access>) {
                return fmt::format("vcpu access {} gpa={} size={}", op.op == scn::Access::Op::read ? "read" : "write",
                                   hex(op.gpa), hex(op.size));
            } else if constexpr (std::is_same_v<T, scn::MapGpaRange>) {
                return fmt::format("vcpu hypercall map_gpa_range gpa={} size={} to={}", hex(op.gpa), hex(op.size),
                                   op.to_private ? "private" : "shared");
            } else if constexpr (std::is_same_v<T, scn::Launch>) {
                return fmt::format("{} gpa={} size={}", scn::launch_op_name(op.op), hex(op.gpa), hex(op.size));
            } else {
                return fmt::format("parallel ({} steps)", op.size());
            }
        },
        st.op);
}

std::vector<std::string> collect_scenario_files(const std::vector<std::string>& paths,
                                                std::vector<std::string>& missing) {
    std::vector<std::string> files;
    for (const std::string& p : paths) {
        std::error_code ec;
        if (fs::is_directory(p, ec)) {
            std::vector<std::string> found;
            for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::recursive_directory_iterator();
                 it.increment(ec)) {
                if (!it->is_regular_file(ec)) continue;
                const std::string name = it->path().filename().string();
                if (name.size() > 5 && name.ends_with(".json") && !name.ends_with(".schema.json"))
                    found.push_back(it->path().string());
            }
            std::sort(found.begin(), found.end());
            files.insert(files.end(), found.begin(), found.end());
        } else if (fs::exists(p, ec)) {
            files.push_back(p);
        } else {
            missing.push_back(p);
        }
    }
    return files;
}

int diff_kvm_run(const std::vector<std::string>& paths, bool verbose, const HostKvmCaps& host, std::ostream& out,
                 std::ostream& err) {
    std::vector<std::string> missing;
    const std::vector<std::string> files = collect_scenario_files(paths, missing);
    for (const std::string& m : missing) err << "diff-kvm: " << m << ": no such file or directory\n";
    bool bad_input = !missing.empty();

    if (!host.available) {
        out << "diff-kvm: no usable /dev/kvm (" << host.why_not << "): every scenario is SKIP\n";
        out << fmt::format("diff-kvm: {} scenarios, 0 agree, 0 differ, {} skipped\n", files.size(), files.size());
        return bad_input ? 2 : 0;
    }

    const auto host_config = sim_config_for_host(host);
    describe_host(out, host);
    if (verbose) {
        out << "simulated kvm.config for this host:";
        for (const auto& [k, v] : host_config) out << ' ' << k << '=' << v;
        out << '\n';
    }

    Counts scenarios, steps;
    size_t load_failures = 0;
    for (const std::string& file : files) {
        scn::Scenario s;
        std::optional<ParamSet> params;
        try {
            s = load_scenario_file(file);
            params = ParamSet::preset(s.platform);
            // The kernel profile first, so that the scenario's explicit kvm.config.* keys win.
            if (auto it = s.params.find("kvm.profile"); it != s.params.end())
                params->set_from_string(it->first, it->second, "scenario params");
            for (const auto& [k, v] : s.params)
                if (k != "kvm.profile") params->set_from_string(k, v, "scenario params");
            for (const auto& [k, v] : host_config) params->set_from_string(k, v, "diff-kvm host");
            params->validate();
        } catch (const LoadError& e) {
            err << e.what() << '\n';
            ++load_failures;
            continue;
        } catch (const ParamError& e) {
            err << file << ": params: " << e.what() << '\n';
            ++load_failures;
            continue;
        }

        std::vector<Row> rows;
        UapiRun sim;
        std::string sim_failure;
        try {
            sim = run_uapi_steps_simulated(s, *params);
        } catch (const std::exception& e) {
            sim_failure = e.what();
        }
        const RealRun real = run_uapi_steps_real(s);
        const std::vector<FlatStep> flat = flatten_steps(s.steps);

        Counts c;
        Row vm {"vm", "/vm", vm_summary(s.vm), setup_text(sim.create_vm_err, sim.setup_error),
                setup_text(real.create_vm_err, real.setup_error), {}};
        if (!sim_failure.empty()) {
            vm.sim = "exception";
            vm.v = {Verdict::differ, "simulator threw: " + sim_failure};
        } else {
            vm.v = compare_setup(s, host, sim, real);
        }
        rows.push_back(vm);
        c.add(vm.v.verdict);

        for (size_t i = 0; i < flat.size(); ++i) {
            const scn::Step& st = *flat[i].step;
            Row r {std::to_string(i + 1), st.pointer, describe_step(st), "-", format_outcome(real.steps.at(i)), {}};
            if (!sim_failure.empty()) {
                r.v = real.steps[i].skipped ? StepVerdict {Verdict::skip, real.steps[i].skip_reason}
                                            : StepVerdict {Verdict::differ, "simulator threw"};
            } else if (i >= sim.steps.size()) {
                r.v = {Verdict::differ, fmt::format("simulator reported {} steps, expected {}", sim.steps.size(),
                                                    flat.size())};
            } else if (sim.steps[i].step && sim.steps[i].step != &st) {
                r.v = {Verdict::differ, "simulator reported steps out of order"};
            } else {
                r.sim = format_outcome(sim.steps[i].outcome);
                r.v = compare_outcomes(sim.steps[i].outcome, real.steps[i]);
            }
            c.add(r.v.verdict);
            rows.push_back(std::move(r));
        }

        const Verdict v = overall(c);
        scenarios.add(v);
        steps.agree += c.agree;
        steps.differ += c.differ;
        steps.skip += c.skip;
        out << fmt::format("{} ({}): {} ({} agree, {} differ, {} skipped)\n", s.name, file, verdict_name(v), c.agree,
                           c.differ, c.skip);
        if (!verbose)
            rows.erase(std::remove_if(rows.begin(), rows.end(),
                                      [](const Row& r) { return r.v.verdict != Verdict::differ; }),
                       rows.end());
        if (!rows.empty()) print_table(out, rows);
    }

    if (load_failures) out << fmt::format("diff-kvm: {} files did not load\n", load_failures);
    out << fmt::format("diff-kvm: steps: {} agree, {} differ, {} skipped\n", steps.agree, steps.differ, steps.skip);
    out << fmt::format("diff-kvm: {} scenarios, {} agree, {} differ, {} skipped\n",
                       scenarios.agree + scenarios.differ + scenarios.skip, scenarios.agree, scenarios.differ,
                       scenarios.skip);
    if (bad_input || load_failures) return 2;
    return scenarios.differ ? 1 : 0;
}

int diff_kvm_main(const std::vector<std::string>& paths, bool verbose, std::ostream& out, std::ostream& err) {
    return diff_kvm_run(paths, verbose, host_kvm_caps(), out, err);
}

}  // namespace hvsim
