// hvsim-bench: how fast the simulator simulates. Each workload is one scenario run
// through the real engine (SystemC threads, MMU, KVM, VMM); the figure is guest
// accesses per host second over the measured step only (setup and warm-up excluded).
//
//   tlb-hit   a 64 KiB working set read over and over: every access hits the L1 TLB.
//             (tlb-hit and walk access shared memory, so every VM type runs them: --set vm.type=snp)
//   walk      random reads over 4 GiB mapped with 4K pages on both dimensions: nearly
//             every access misses both TLBs and does a two-dimensional walk.
//   fault     first touch of 256 MiB with 4K host pages and no guest paging: every page
//             takes an NPF through KVM (GUP, page allocation, TDP MMU map).
//   convert   a 64 GiB shared->private->shared conversion (per-VM attributes) on a
//             sw_protected VM with 16 MiB touched: host time follows the pages, not the size.
//   tlb-hit-private, walk-private: the same on private memory (guest_memfd), for the
//             confidential VM types (--set vm.type=snp|tdx; sw_protected by default).
//   scale     a 1 TiB sw_protected guest (in-place conversion) with 4 GiB of private memory
//             touched by one 8-byte store per page, then 64 GiB converted to shared and back:
//             peak host memory and the conversion's host time.
//
// SystemC elaborates once per process, so each workload runs in a child process.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <systemc>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "sim/engine.hpp"
#include "sim/loader.hpp"

using namespace hvsim;

namespace {

std::string scenario_text(const std::string& w, uint64_t n) {
    const std::string slot1g =
        R"({"slot": 0, "gpa": 0, "size": "8GiB", "userspace_addr": "0x7f0000000000"})";
    if (w == "tlb-hit")
        return fmt::format(R"({{"name": "bench-tlb-hit", "vm": {{"vcpus": 1, "memslots": [{}]}},
          "steps": [
            {{"vcpu": 0, "access": {{"gpa": 0, "size": "64KiB", "op": "write", "value": 1, "private": false}}}},
            {{"vcpu": 0, "access": {{"gpa": 0, "size": "64KiB", "pattern": "random", "width": 8, "count": {}, "op": "read", "private": false}}}}
          ]}})", slot1g, n);
    if (w == "walk")
        return fmt::format(R"({{"name": "bench-walk", "vm": {{"vcpus": 1, "memslots": [{}]}},
          "steps": [
            {{"ioctl": {{"pre_fault_memory": {{"vcpu": 0, "gpa": 0, "size": "4GiB"}}}}}},
            {{"vcpu": 0, "access": {{"gpa": 0, "size": "4GiB", "pattern": "stride", "stride": 4096, "width": 8, "op": "read", "private": false}}}},
            {{"vcpu": 0, "access": {{"gpa": 0, "size": "4GiB", "pattern": "random", "width": 8, "count": {}, "op": "read", "private": false}}}}
          ]}})", slot1g, n);
    // The same two workloads on private memory (guest_memfd, all private): what a
    // confidential VM's accesses cost (--set vm.type=snp|tdx|sw_protected; a VM type without
    // private memory refuses them).
    if (w == "tlb-hit-private" || w == "walk-private") {
        const bool hit = w == "tlb-hit-private";
        const std::string vm = R"("vm": {"type": "sw_protected", "vcpus": 1, "guest_memfd": [{"id": "g0", "size": "8GiB"}],
              "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "8GiB",
                            "userspace_addr": "0x7f0000000000", "guest_memfd": "g0"}],
              "private": [{"gpa": 0, "size": "8GiB"}]})";
        if (hit)
            return fmt::format(R"({{"name": "bench-tlb-hit-private", {},
              "steps": [
                {{"vcpu": 0, "access": {{"gpa": 0, "size": "64KiB", "op": "write", "value": 1, "private": true}}}},
                {{"vcpu": 0, "access": {{"gpa": 0, "size": "64KiB", "pattern": "random", "width": 8, "count": {}, "op": "read", "private": true}}}}
              ]}})", vm, n);
        return fmt::format(R"({{"name": "bench-walk-private", {},
              "steps": [
                {{"vcpu": 0, "access": {{"gpa": 0, "size": "4GiB", "pattern": "stride", "stride": 4096, "width": 8, "op": "write", "value": 1, "private": true}}}},
                {{"vcpu": 0, "access": {{"gpa": 0, "size": "4GiB", "pattern": "random", "width": 8, "count": {}, "op": "read", "private": true}}}}
              ]}})", vm, n);
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
    throw std::invalid_argument("unknown workload " + w);
}

int run_workload(const std::string& w, uint64_t n, const std::vector<std::pair<std::string, std::string>>& sets) {
    auto s = load_scenario_text(scenario_text(w, n), "bench-" + w);
    apply_scenario_sets(s, sets);   // --set vm.type=snp, platform=...: the same workload on another VM
    const auto p = resolve_params(s, sets);
    RunOptions opt;
    opt.check_invariants = false;
    const auto out = run_scenario(s, p, opt);
    if (!out.refused.empty()) {
        fmt::print(stderr, "bench {}: refused: {}\n", w, out.refused);
        return 2;
    }
    if (!out.fatal.empty() || !out.failures.empty()) {
        fmt::print(stderr, "bench {}: {}\n", w, out.fatal.empty() ? out.failures.front().text : out.fatal);
        return 1;
    }
    const auto& steps = out.results.at("steps");
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
    app.add_option("workloads", workloads, "tlb-hit, walk, fault, convert, scale, tlb-hit-private, walk-private");
    app.add_option("--scale", scale, "Percent of the default access counts (callgrind runs use ~1)");
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
    int rc = 0;
    for (const auto& w : workloads) {
        uint64_t n = w.rfind("tlb-hit", 0) == 0 ? 20000000 : w.rfind("walk", 0) == 0 ? 4000000 : w == "fault" ? 65536 : 0;
        n = std::max<uint64_t>(1, n * scale / 100);
        std::fflush(stdout);
        const pid_t pid = fork();
        if (pid == 0) {
            int r = 1;
            try {
                r = run_workload(w, n, sets);
            } catch (const std::exception& e) {
                fmt::print(stderr, "bench {}: {}\n", w, e.what());
                r = 2;
            }
            std::fflush(stdout);
            _exit(r);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status)) rc = std::max(rc, WIFEXITED(status) ? WEXITSTATUS(status) : 1);
    }
    return rc;
}

// Our own main (the executable's definition wins over libsystemc's): the SystemC banner
// is printed when the kernel starts, before sc_main, and would land in our output.
int main(int argc, char* argv[]) {
    setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 1);
    return sc_core::sc_elab_and_sim(argc, argv);
}
