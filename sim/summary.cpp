// The summary table `hvsim run` prints: the headline figures of a results document.
#include <algorithm>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "sim/engine.hpp"

namespace hvsim {

using nlohmann::json;

namespace {

uint64_t u(const json& m, const char* k) { return m.contains(k) ? m.at(k).get<uint64_t>() : 0; }

std::string grouped(uint64_t v) {
    std::string s = std::to_string(v), out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (i && (s.size() - i) % 3 == 0) out += ',';
        out += s[i];
    }
    return out;
}

std::string pct(uint64_t part, uint64_t whole) {
    return whole ? fmt::format("{:.1f}%", 100.0 * double(part) / double(whole)) : "-";
}

}  // namespace

std::string format_summary(const json& r) {
    const json& m = r.at("metrics");
    std::string o;
    auto line = [&](const std::string& k, const std::string& v) { o += fmt::format("  {:<16} {}\n", k, v); };
    o += fmt::format("{} on {} (seed {})\n", r.at("scenario").get<std::string>(), r.at("platform").get<std::string>(),
                     r.at("seed").get<uint64_t>());
    const uint64_t cyc = u(m, "sim.cycles");
    line("simulated time", fmt::format("{:.3f} us ({} cycles at {} MHz)", double(u(m, "sim.time_ns")) / 1000.0,
                                       grouped(cyc), r.at("params").value("cpu.freq_mhz", 0)));
    line("guest accesses", fmt::format("{} (reads {}, writes {}, mmio {})", grouped(u(m, "accesses")),
                                       grouped(u(m, "accesses.read")), grouped(u(m, "accesses.write")),
                                       grouped(u(m, "accesses.mmio"))));
    // Lookups of guest-virtual addresses: L1 hits + L2 hits + misses = lookups (100%).
    const uint64_t look = u(m, "tlb.lookups");
    line("TLB", fmt::format("{} lookups: L1 hits {}, L2 hits {}, misses {}", grouped(look),
                            pct(u(m, "tlb.l1.hits"), look), pct(u(m, "tlb.l2.hits"), look),
                            pct(u(m, "tlb.misses"), look)));
    // The guest kernel model reaches its page tables by guest-physical address: those
    // lookups use only the nested TLB and the nested walk, so they are counted apart.
    if (const uint64_t gl = u(m, "tlb.gpa.lookups"))
        line("", fmt::format("+ {} guest-physical lookups by the guest kernel (page-table updates): nested TLB "
                             "hits {}, nested walks {}",
                             grouped(gl), pct(u(m, "tlb.gpa.ntlb_hits"), gl), pct(u(m, "tlb.gpa.walks"), gl)));
    const uint64_t walks = u(m, "walk.count");
    line("walks", fmt::format("{} walks ({} two-dimensional = TLB misses, {} nested-only), {} memory refs "
                              "({:.1f}/walk), {} cycles",
                              grouped(walks), grouped(u(m, "tlb.misses")), grouped(u(m, "tlb.gpa.walks")),
                              grouped(u(m, "walk.mem_refs")),
                              walks ? double(u(m, "walk.mem_refs")) / double(walks) : 0.0,
                              grouped(u(m, "walk.cycles"))));
    // A page-walk-cache hit lets one dimension of a walk start below the cached upper-level
    // entries: it replaces memory references (not counted in them); a nested TLB hit gives
    // the host address of a guest page-table page without a nested walk.
    line("", fmt::format("PWC hits {} (upper levels skipped, no memory ref), nested TLB hits {} (nested walks "
                         "skipped)",
                         grouped(u(m, "walk.pwc_hits")), grouped(u(m, "walk.ntlb_hits"))));
    const uint64_t pre = u(m, "faults.prefault");
    line("faults", fmt::format("NPF exits {}{} = private {} + shared {}; guest #PF {}", grouped(u(m, "faults.npf")),
                               pre ? " + pre-fault " + grouped(pre) : std::string(),
                               grouped(u(m, "faults.private")), grouped(u(m, "faults.shared")),
                               grouped(u(m, "faults.guest_pf"))));
    // Every handled fault ends one way; spurious ones found the SPTE already there.
    line("", fmt::format("outcomes: mapped {}, spurious {}, retried {}, emulated {}, memory-fault exits {}",
                         grouped(u(m, "faults.fixed")), grouped(u(m, "faults.spurious")),
                         grouped(u(m, "faults.retry")), grouped(u(m, "faults.emulated")),
                         grouped(u(m, "faults.memory_fault"))));
    line("mappings", fmt::format("4K {}, 2M {}, 1G {}; SPTEs zapped {}", grouped(u(m, "mmu.map.4k")),
                                 grouped(u(m, "mmu.map.2m")), grouped(u(m, "mmu.map.1g")),
                                 grouped(u(m, "mmu.sptes.zapped"))));
    line("exits", fmt::format("{}: npf {}, hypercall {}, to userspace {} (memory fault {}, mmio {})",
                              grouped(u(m, "exits.total")), grouped(u(m, "exits.npf")),
                              grouped(u(m, "exits.hypercall")), grouped(u(m, "exits.userspace")),
                              grouped(u(m, "exits.memory_fault")), grouped(u(m, "exits.mmio"))));
    line("invalidations", fmt::format("{} ({} remote TLB flushes)", grouped(u(m, "invalidations.count")),
                                      grouped(u(m, "mmu.remote_flushes"))));
    const json& c = r.at("conversions");
    auto cu = [&](const char* k, const char* f) { return c.contains(k) ? c.at(k).at(f).get<uint64_t>() : 0; };
    line("conversions", fmt::format("to private {} ({} pages, {} cycles), to shared {} ({} pages, {} cycles), "
                                    "failed {}",
                                    grouped(cu("to_private", "count")), grouped(cu("to_private", "pages")),
                                    grouped(cu("to_private", "cycles")), grouped(cu("to_shared", "count")),
                                    grouped(cu("to_shared", "pages")), grouped(cu("to_shared", "cycles")),
                                    grouped(c.at("failed").get<uint64_t>())));
    if (cu("setup", "count"))
        line("", fmt::format("vm.private at setup: {} pages, not counted as conversions", grouped(cu("setup", "pages"))));
    const auto& fps = r.at("fault_paths");
    if (!fps.empty()) {
        // p50/p99: nearest-rank percentiles of the per-fault totals; the indented lines
        // are each step's mean cycles per fault (they add up to the mean).
        o += fmt::format("\n  {:<36} {:>10} {:>12} {:>12} {:>12}\n", "fault path (cycles per fault)", "count", "mean",
                         "p50", "p99");
        for (const auto& f : fps) {
            const auto& cy = f.at("cycles");
            o += fmt::format("  {:<36} {:>10} {:>12} {:>12} {:>12}\n", f.at("path").get<std::string>(),
                             grouped(f.at("count").get<uint64_t>()), grouped(cy.at("mean").get<uint64_t>()),
                             grouped(cy.at("p50").get<uint64_t>()), grouped(cy.at("p99").get<uint64_t>()));
            for (const auto& s : f.at("steps"))
                o += fmt::format("    {:<34} {:>10} {:>12}\n", s.at("name").get<std::string>(), "",
                                 grouped(s.at("cycles").get<uint64_t>()));
        }
        bool converted = false;
        for (const auto& f : fps) converted |= f.at("path").get<std::string>().rfind("npf.memory_fault.to_", 0) == 0;
        if (converted)
            o += "  (npf.memory_fault.to_* contain the VMM's conversion from its ioctl on, and the conversion "
                 "contains its invalidation: the conversions line and the invalidations list count those cycles "
                 "again, from the inside)\n";
    }
    // The steps, when there are few: cycles is the simulated time from the step's start to
    // its end, i.e. to its slowest vCPU for "vcpu": "all" (vCPUs run in parallel), and
    // for host steps the ioctls and page faults they charge (the data copy is not timed).
    const auto& steps = r.contains("steps") ? r.at("steps") : json::array();
    if (!steps.empty() && steps.size() <= 12) {
        // The op and result columns widen to their longest entry (GHCB_ERR_INVALID_INPUT).
        size_t wop = 26, wres = 14;
        for (const auto& st : steps) {
            wop = std::max(wop, st.at("op").get_ref<const std::string&>().size());
            wres = std::max(wres, st.at("result").get_ref<const std::string&>().size());
        }
        o += fmt::format("\n  {:<5} {:<{}} {:<{}} {:>14}  {}\n", "step", "op", wop, "result", wres, "cycles", "name");
        for (const auto& st : steps)
            o += fmt::format("  {:<5} {:<{}} {:<{}} {:>14}  {}\n", st.at("index").get<size_t>(),
                             st.at("op").get<std::string>(), wop, st.at("result").get<std::string>(), wres,
                             grouped(st.at("cycles").get<uint64_t>()), st.at("name").get<std::string>());
    }
    // Per vCPU (vcpu.N.* metrics; the lines above are their sums), for up to 16 vCPUs.
    std::vector<std::string> ids;
    for (unsigned i = 0; m.contains(fmt::format("vcpu.{}.accesses", i)); ++i) ids.push_back(std::to_string(i));
    if (ids.size() > 1 && ids.size() <= 16) {
        o += fmt::format("\n  {:<6} {:>14} {:>12} {:>12} {:>14} {:>10}\n", "vCPU", "accesses", "TLB misses", "walks",
                         "walk cycles", "NPF");
        for (const auto& id : ids) {
            auto g = [&](const char* k) { return u(m, ("vcpu." + id + "." + k).c_str()); };
            o += fmt::format("  {:<6} {:>14} {:>12} {:>12} {:>14} {:>10}\n", id, grouped(g("accesses")),
                             grouped(g("tlb.misses")), grouped(g("walk.count")), grouped(g("walk.cycles")),
                             grouped(g("faults.npf")));
        }
    }
    if (r.contains("warnings") && !r.at("warnings").empty()) {
        o += "\n  not modelled (the figures above rest on these):\n";
        for (const auto& w : r.at("warnings")) o += fmt::format("    warning: {}\n", w.get<std::string>());
    }
    if (r.contains("status")) {
        const std::string st = r.at("status").get<std::string>();
        const size_t nf = r.contains("failures") ? r.at("failures").size() : 0;
        o += fmt::format("\n  status: {}{}\n", st,
                         nf ? fmt::format(" ({} failed expectation{})", nf, nf == 1 ? "" : "s") : "");
    }
    if (r.contains("host"))
        o += fmt::format("\n  host: {:.2f} s wall, {} simulated events/s\n", r.at("host").at("wall_s").get<double>(),
                         grouped(uint64_t(r.at("host").at("sim_events_per_s").get<double>())));
    return o;
}

}  // namespace hvsim
