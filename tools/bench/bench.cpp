// hvsim-bench: how fast the simulator simulates. Each workload is one scenario run
// through the real engine (SystemC threads, MMU, KVM, VMM); the figure is guest
// accesses per host second over the measured step only (setup and warm-up excluded).
//
//   tlb-hit   a 64 KiB working set read over and over: every access hits the L1 TLB.
//             (tlb-hit and walk access shared memory, so every VM type runs them: --set vm.type=snp)
//   walk      random reads over 4 GiB, which the guest maps with 4K pages and the host with
//             2M ones (host.thp: the pre-fault maps the huge zero page): nearly every access
//             misses both TLBs and does a two-dimensional walk (--walk-size: another size).
//   fault     first touch of 256 MiB with 4K host pages and no guest paging: every page
//             takes an NPF through KVM (GUP, page allocation, TDP MMU map).
//   convert   a 64 GiB shared->private->shared conversion (per-VM attributes) on a
//             sw_protected VM with 16 MiB touched: host time follows the pages, not the size.
//   tlb-hit-private, walk-private: the same on private memory (guest_memfd), for the
//             confidential VM types (--set vm.type=snp|tdx; sw_protected by default), every
//             page written first.
//   tlb-hit-shared, walk-shared: the private workloads' steps on a plain memslot (the
//             default VM): their like-for-like baseline.
//   scale     a 1 TiB sw_protected guest (in-place conversion) with 4 GiB of private memory
//             touched by one 8-byte store per page, then 64 GiB converted to shared and back:
//             peak host memory and the conversion's host time.
//   vcpus64   the quickstart workload (first touch, read-back and random reads on every vCPU) on
//             64 vCPUs and on 2: host time per guest access of each (vcpus1024: 1,024 vCPUs; peak RSS).
//   sev-pin   legacy SEV: KVM_MEMORY_ENCRYPT_REG_REGION over 64 GiB of guest RAM, then unregister.
//   convert-1t  a 1 TiB guest_memfd guest, 16 MiB touched, converted to private and back.
//
// SystemC elaborates once per process, so each workload runs in a child process.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <systemc>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "sim/engine.hpp"
#include "sim/host_tuning.hpp"
#include "sim/json_util.hpp"
#include "sim/loader.hpp"

using namespace hvsim;

namespace {

std::string scenario_text(const std::string& w, uint64_t n, const std::string& walk_size) {
    const std::string slot1g =
        R"({"slot": 0, "gpa": 0, "size": "8GiB", "userspace_addr": "0x7f0000000000"})";
    if (w == "tlb-hit")
        return fmt::format(R"({{"name": "bench-tlb-hit", "vm": {{"vcpus": 1, "memslots": [{}]}},
          "steps": [
            {{"vcpu": 0, "access": {{"gpa": 0, "size": "64KiB", "op": "write", "value": 1, "private": false}}}},
            {{"vcpu": 0, "access": {{"gpa": 0, "size": "64KiB", "pattern": "random", "width": 8, "count": {}, "op": "read", "private": false}}}}
          ]}})", slot1g, n);
    if (w == "walk")
        return fmt::format(R"({{"name": "bench-walk", "vm": {{"vcpus": 1, "memslots": [{0}]}},
          "steps": [
            {{"ioctl": {{"pre_fault_memory": {{"vcpu": 0, "gpa": 0, "size": "{1}"}}}}}},
            {{"vcpu": 0, "access": {{"gpa": 0, "size": "{1}", "pattern": "stride", "stride": 4096, "width": 8, "op": "read", "private": false}}}},
            {{"vcpu": 0, "access": {{"gpa": 0, "size": "{1}", "pattern": "random", "width": 8, "count": {2}, "op": "read", "private": false}}}}
          ]}})", slot1g, walk_size, n);
    // The same two workloads on private memory (guest_memfd, all private): what a
    // confidential VM's accesses cost (--set vm.type=snp|tdx|sw_protected; a VM type without
    // private memory refuses them). Their -shared twins run the same steps on a plain
    // memslot (the default VM, or any VM type with --set): the baseline a private variant is
    // compared with, since `walk` reads never-written memory (the huge zero page) while these
    // write every page first, so the data reads go to distinct host pages.
    const bool priv = w == "tlb-hit-private" || w == "walk-private";
    if (priv || w == "tlb-hit-shared" || w == "walk-shared") {
        const bool hit = w.rfind("tlb-hit", 0) == 0;
        const std::string vm =
            priv ? R"("vm": {"type": "sw_protected", "vcpus": 1, "guest_memfd": [{"id": "g0", "size": "8GiB"}],
              "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "8GiB",
                            "userspace_addr": "0x7f0000000000", "guest_memfd": "g0"}],
              "private": [{"gpa": 0, "size": "8GiB"}]})"
                 : fmt::format(R"("vm": {{"vcpus": 1, "memslots": [{}]}})", slot1g);
        const char* const p = priv ? "true" : "false";
        if (hit)
            return fmt::format(R"({{"name": "bench-{0}", {1},
              "steps": [
                {{"vcpu": 0, "access": {{"gpa": 0, "size": "64KiB", "op": "write", "value": 1, "private": {2}}}}},
                {{"vcpu": 0, "access": {{"gpa": 0, "size": "64KiB", "pattern": "random", "width": 8, "count": {3}, "op": "read", "private": {2}}}}}
              ]}})", w, vm, p, n);
        return fmt::format(R"({{"name": "bench-{0}", {1},
              "steps": [
                {{"vcpu": 0, "access": {{"gpa": 0, "size": "{2}", "pattern": "stride", "stride": 4096, "width": 8, "op": "write", "value": 1, "private": {3}}}}},
                {{"vcpu": 0, "access": {{"gpa": 0, "size": "{2}", "pattern": "random", "width": 8, "count": {4}, "op": "read", "private": {3}}}}}
              ]}})", w, vm, walk_size, p, n);
    }
    if (w == "fault")
        return fmt::format(R"({{"name": "bench-fault", "params": {{"host.thp": false}},
          "vm": {{"vcpus": 1, "guest_paging": "none", "memslots": [{}]}},
          "steps": [
            {{"vcpu": 0, "access": {{"gpa": 0, "size": "4KiB", "op": "read"}}}},
            {{"vcpu": 0, "access": {{"gpa": 0, "size": "{}", "pattern": "stride", "stride": 4096, "width": 8, "op": "write", "value": 7}}}}
          ]}})", slot1g, n * 4096);
    if (w == "convert")
        return R"({"name": "bench-convert", "params": {"kvm.config.vm_memory_attributes": true},
          "vm": {"type": "sw_protected", "vcpus": 1, "guest_paging": "none",
                 "guest_memfd": [{"id": "g0", "size": "64GiB"}],
                 "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "64GiB",
                               "userspace_addr": "0x7f0000000000", "guest_memfd": "g0"}]},
          "steps": [
            {"vcpu": 0, "access": {"gpa": 0, "size": "16MiB", "pattern": "stride", "stride": 4096, "op": "write", "value": 1}},
            {"ioctl": {"set_memory_attributes": {"gpa": 0, "size": "64GiB", "attributes": ["private"]}}},
            {"ioctl": {"set_memory_attributes": {"gpa": 0, "size": "64GiB", "attributes": []}}}
          ]})";
    if (w == "scale")
        return R"({"name": "bench-scale", "params": {"kvm.profile": "inplace"},
          "vm": {"type": "sw_protected", "vcpus": 1, "guest_paging": "none",
                 "guest_memfd": [{"id": "g0", "size": "1TiB"}],
                 "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "1TiB",
                               "userspace_addr": "0x10000000000", "guest_memfd": "g0"}]},
          "steps": [
            {"vcpu": 0, "access": {"gpa": 0, "size": "4GiB", "pattern": "stride", "stride": 4096, "width": 8, "op": "write", "value": 7, "private": true}},
            {"ioctl": {"set_memory_attributes2": {"guest_memfd": "g0", "offset": 0, "size": "64GiB", "attributes": [], "content_policy": "zero"}}},
            {"ioctl": {"set_memory_attributes2": {"guest_memfd": "g0", "offset": 0, "size": "64GiB", "attributes": ["private"], "content_policy": "preserve"}}}
          ]})";
    // Many vCPUs: the quickstart workload (first touch of 64 MiB, a read-back and random
    // reads on every vCPU) with `n` vCPUs; the random reads are split between the vCPUs so
    // the run does the same number of accesses whatever n is.
    if (w.rfind("vcpus-n", 0) == 0) {
        const uint64_t vcpus = std::stoull(w.substr(7));
        return fmt::format(R"({{"name": "bench-vcpus", "seed": 1,
          "vm": {{"vcpus": {}, "guest_paging": "4-level",
                 "memslots": [{{"slot": 0, "gpa": 0, "size": "1GiB", "userspace_addr": "0x7f0000000000"}}]}},
          "steps": [
            {{"vcpu": 0, "access": {{"gpa": 0, "size": "64MiB", "pattern": "seq", "op": "write", "value": "0x5a"}}}},
            {{"vcpu": "all", "access": {{"gpa": 0, "size": "64KiB", "op": "read"}}}},
            {{"vcpu": "all", "access": {{"gpa": 0, "size": "64MiB", "pattern": "random", "count": {}, "op": "read"}}}}
          ]}})", vcpus, std::max<uint64_t>(1, n / vcpus));
    }
    // Legacy SEV pinning: KVM_MEMORY_ENCRYPT_REG_REGION over 64 GiB of guest RAM (every page
    // faulted in and pinned long-term, sev_pin_memory()), then unregistered. The anonymous
    // pages are backed one by one, so the run lifts sim.max_host_pages to 2^24 (64 GiB).
    if (w == "sev-pin")
        return R"({"name": "bench-sev-pin", "params": {"sim.max_host_pages": 16777216},
          "vm": {"type": "sev", "vcpus": 1, "guest_paging": "none",
                 "memslots": [{"slot": 0, "gpa": 0, "size": "64GiB", "userspace_addr": "0x10000000000"}]},
          "steps": [
            {"ioctl": {"memory_encrypt_reg_region": {"addr": "0x10000000000", "size": "64GiB"}}},
            {"ioctl": {"memory_encrypt_unreg_region": {"addr": "0x10000000000", "size": "64GiB"}}}
          ]})";
    // A 1 TiB conversion: a 1 TiB guest_memfd guest with 16 MiB touched, all of it made
    // private and back with KVM_SET_MEMORY_ATTRIBUTES (per-VM attributes).
    if (w == "convert-1t")
        return R"({"name": "bench-convert-1t", "params": {"kvm.config.vm_memory_attributes": true},
          "vm": {"type": "sw_protected", "vcpus": 1, "guest_paging": "none",
                 "guest_memfd": [{"id": "g0", "size": "1TiB"}],
                 "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "1TiB",
                               "userspace_addr": "0x10000000000", "guest_memfd": "g0"}]},
          "steps": [
            {"vcpu": 0, "access": {"gpa": 0, "size": "16MiB", "pattern": "stride", "stride": 4096, "op": "write", "value": 1}},
            {"ioctl": {"set_memory_attributes": {"gpa": 0, "size": "1TiB", "attributes": ["private"]}}},
            {"ioctl": {"set_memory_attributes": {"gpa": 0, "size": "1TiB", "attributes": []}}}
          ]})";
    throw std::invalid_argument("unknown workload " + w);
}

double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

double peak_rss_mib() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;
}

int run_workload(const std::string& w, uint64_t n, const std::vector<std::pair<std::string, std::string>>& sets,
                 bool no_guest_paging, const std::string& walk_size) {
    auto s = load_scenario_text(scenario_text(w, n, walk_size), "bench-" + w);
    apply_scenario_sets(s, sets);   // --set vm.type=snp, platform=...: the same workload on another VM
    // arm64 guests run without guest stage-1 tables (not modelled): compare them with an x86
    // run that has no guest paging either.
    if (no_guest_paging) s.vm.guest_paging_levels = 0;
    const auto p = resolve_params(s, sets);
    RunOptions opt;
    opt.check_invariants = false;
    const double cpu0 = cpu_seconds();
    const auto out = run_scenario(s, p, opt);
    const double cpu_s = cpu_seconds() - cpu0;
    if (!out.refused.empty()) {
        fmt::print(stderr, "bench {}: refused: {}\n", w, out.refused);
        return 2;
    }
    if (!out.fatal.empty() || !out.failures.empty()) {
        fmt::print(stderr, "bench {}: {}\n", w, out.fatal.empty() ? out.failures.front().text : out.fatal);
        return 1;
    }
    const auto& steps = out.results.at("steps");
    if (w.rfind("vcpus-n", 0) == 0) {
        // Host CPU time per guest access over the whole run (elaboration and the first touch
        // included: what a vCPU count costs end to end; CPU time, not wall clock, because the
        // 64-vCPU comparison must hold on a loaded machine), and the process's peak RSS.
        const uint64_t acc = out.results.at("metrics").at("accesses").get<uint64_t>();
        fmt::print("vcpus {} {} {:.6f} {:.1f}\n", w.substr(7), acc, cpu_s, peak_rss_mib());
        return 0;
    }
    if (w == "sev-pin") {
        const auto& m = out.results.at("metrics");
        // The whole run's CPU time includes the process exit (the machine is torn down
        // inside run_scenario()), which frees every page: the figure the steps leave out.
        fmt::print("{:<8} 64 GiB KVM_MEMORY_ENCRYPT_REG_REGION: {:.3f} s ({} pages pinned), unregister {:.3f} s; "
                   "whole run {:.3f} s CPU (set-up, both steps, process exit); peak host RSS {:.0f} MiB\n",
                   w, out.step_wall_s[0], m.at("process.pins").get<uint64_t>(), out.step_wall_s[1], cpu_s,
                   peak_rss_mib());
        return 0;
    }
    if (w == "convert-1t") {
        fmt::print("{:<8} 1 TiB to private {:.3f} ms, back to shared {:.3f} ms ({} pages touched); peak host RSS {:.0f} MiB\n",
                   w, out.step_wall_s[1] * 1e3, out.step_wall_s[2] * 1e3, 4096, peak_rss_mib());
        return 0;
    }
    if (w == "scale") {
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        const auto& m = out.results.at("metrics");
        fmt::print("{:<8} 1 TiB guest, {} GiB touched ({} private faults in {:.2f} s): peak host RSS {:.0f} MiB; "
                   "64 GiB to shared {:.1f} ms, back to private {:.1f} ms ({} SPTEs zapped)\n",
                   w, m.at("gmem.pages.allocated").get<uint64_t>() >> 18, m.at("faults.private").get<uint64_t>(),
                   out.step_wall_s[0], double(ru.ru_maxrss) / 1024.0, out.step_wall_s[1] * 1e3,
                   out.step_wall_s[2] * 1e3, m.at("mmu.sptes.zapped").get<uint64_t>());
        return 0;
    }
    if (w == "convert") {
        const double secs = out.step_wall_s[1] + out.step_wall_s[2];
        fmt::print("{:<8} 2 conversions of 64 GiB ({} pages touched): {:.3f} ms host, {} invalidations\n", w,
                   4096, secs * 1e3, out.results.at("metrics").at("invalidations.count").get<uint64_t>());
        return 0;
    }
    // For tools/bench/run --callgrind: every access of the run (warm-up included), which is
    // what an instruction count collected inside the access loops divides by.
    fmt::print("total_accesses {} {}\n", w, out.results.at("metrics").at("accesses").get<uint64_t>());
    const size_t last = steps.size() - 1;
    const uint64_t acc = steps[last].at("accesses").get<uint64_t>();
    const double secs = out.step_wall_s[last];
    const auto& m = out.results.at("metrics");
    const uint64_t walks = steps[last].at("walks").get<uint64_t>();
    // For tools/bench/run: M accesses/s and M walks/s of the measured step.
    fmt::print("rate {} {:.4f} {:.4f}\n", w, double(acc) / secs / 1e6, double(walks) / secs / 1e6);
    fmt::print("{:<8} {:>10} accesses in {:6.3f} s = {:6.2f} M accesses/s, {:10} 2D walks = {:5.2f} M walks/s  "
               "(NPFs in the run {})\n",
               w, acc, secs, double(acc) / secs / 1e6, walks, double(walks) / secs / 1e6,
               m.at("faults.npf").get<uint64_t>());
    return 0;
}

}  // namespace

int sc_main(int argc, char* argv[]) {
    CLI::App app{"hvsim-bench: simulated accesses per host second"};
    std::vector<std::string> workloads{"tlb-hit", "walk", "fault", "convert", "scale"};
    uint64_t scale = 100;
    app.add_option("workloads", workloads,
                   "tlb-hit, walk, fault, convert, scale, tlb-hit-private, walk-private, tlb-hit-shared, walk-shared, "
                   "vcpus64, vcpus1024, sev-pin, convert-1t");
    app.add_option("--scale", scale, "Percent of the default access counts (callgrind runs use ~1)");
    bool no_guest_paging = false;
    app.add_flag("--no-guest-paging", no_guest_paging,
                 "Run the workloads with \"guest_paging\": \"none\" (what arm64 stage-2 VMs need)");
    std::string walk_size = "4GiB";
    app.add_option("--walk-size", walk_size,
                   "Guest range of the walk workloads (default 4GiB; a smaller one, e.g. 64MiB, keeps a "
                   "callgrind run short)");
    std::vector<std::string> set_args;
    app.add_option("--set", set_args, "Scenario/parameter override for every workload (vm.type=snp, platform=...)");
    CLI11_PARSE(app, argc, argv);
    std::vector<std::pair<std::string, std::string>> sets;
    try {
        for (const auto& a : set_args) sets.push_back(parse_set_option(a));
    } catch (const LoadError& e) {
        fmt::print(stderr, "hvsim-bench: {}\n", e.what());
        return 2;
    }
    // The walk workloads pre-fault and stride over whole pages: a size of at least one page,
    // in pages, checked here so the error names the option and not the generated scenario.
    try {
        const uint64_t bytes = jsonu::parse_size_text(walk_size);
        if (bytes == 0 || bytes % kPageSize)
            throw jsonu::ValueError("expected a non-zero multiple of 4KiB, got " + jsonu::quote(walk_size));
    } catch (const jsonu::ValueError& e) {
        fmt::print(stderr, "hvsim-bench: --walk-size: {}\n", e.what());
        return 2;
    }
    int rc = 0;
    fmt::print("host heap: {}\n", host_heap_thp() ? "transparent huge pages (glibc.malloc.hugetlb=1)"
                                                  : "4 KiB pages (HVSIM_HOST_THP=0, a sanitizer, valgrind or an older glibc)");
    // vcpusN: the quickstart workload on N vCPUs and on 2, in two processes (vcpus-nN).
    struct VcpuRun {
        uint64_t vcpus, accesses;
        double secs, rss_mib;
    };
    std::vector<VcpuRun> vcpu_runs;
    std::vector<std::string> runs;
    for (const auto& w : workloads) {
        if (w.rfind("vcpus", 0) == 0 && w.rfind("vcpus-n", 0) != 0) {
            runs.push_back("vcpus-n2");
            runs.push_back("vcpus-n" + w.substr(5));
        } else {
            runs.push_back(w);
        }
    }
    for (const auto& w : runs) {
        uint64_t n = w.rfind("tlb-hit", 0) == 0 ? 20000000
                     : w.rfind("walk", 0) == 0  ? 4000000
                     : w == "fault"             ? 65536
                     : w.rfind("vcpus", 0) == 0 ? 2000000
                                                : 0;
        n = std::max<uint64_t>(1, n * scale / 100);
        std::fflush(stdout);
        int fds[2];
        if (pipe(fds)) return 2;
        const pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            dup2(fds[1], STDOUT_FILENO);
            int r = 1;
            try {
                r = run_workload(w, n, sets, no_guest_paging, walk_size);
            } catch (const std::exception& e) {
                fmt::print(stderr, "bench {}: {}\n", w, e.what());
                r = 2;
            }
            std::fflush(stdout);
            _exit(r);
        }
        close(fds[1]);
        std::string text;
        char buf[4096];
        for (ssize_t k; (k = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, size_t(k));
        close(fds[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status)) rc = std::max(rc, WIFEXITED(status) ? WEXITSTATUS(status) : 1);
        fmt::print("{}", text);
        VcpuRun v{};
        if (std::sscanf(text.c_str(), "vcpus %lu %lu %lf %lf", &v.vcpus, &v.accesses, &v.secs, &v.rss_mib) == 4)
            vcpu_runs.push_back(v);
    }
    // Host CPU nanoseconds per guest access of each vCPU count, against the 2-vCPU run before it.
    for (size_t i = 0; i < vcpu_runs.size(); ++i) {
        const auto& v = vcpu_runs[i];
        const double ns = v.secs * 1e9 / double(std::max<uint64_t>(1, v.accesses));
        double base = 0;
        for (size_t j = 0; j < i; ++j)
            if (vcpu_runs[j].vcpus == 2) base = vcpu_runs[j].secs * 1e9 / double(std::max<uint64_t>(1, vcpu_runs[j].accesses));
        fmt::print("vcpus{:<5} {:>10} accesses, {:7.1f} ns of host CPU per access{}; peak host RSS {:.0f} MiB\n", v.vcpus, v.accesses,
                   ns, base > 0 && v.vcpus != 2 ? fmt::format(" ({:.2f}x the 2-vCPU run)", ns / base) : "",
                   v.rss_mib);
    }
    return rc;
}

// Our own main (the executable's definition wins over libsystemc's): the SystemC banner
// is printed when the kernel starts, before sc_main, and would land in our output.
int main(int argc, char* argv[]) {
    reexec_with_host_thp(argv);   // host time only (sim/host_tuning.hpp)
    setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 1);
    return sc_core::sc_elab_and_sim(argc, argv);
}
