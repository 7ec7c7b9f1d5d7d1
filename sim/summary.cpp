// The summary table `hvsim run` prints: the headline figures of a results document.
#include <fmt/format.h>

#include <string>

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
    const uint64_t look = u(m, "tlb.lookups");
    line("TLB", fmt::format("{} lookups: L1 hits {}, L2 hits {}, misses {}", grouped(look),
                            pct(u(m, "tlb.l1.hits"), look), pct(u(m, "tlb.l2.hits"), look),
                            pct(u(m, "tlb.misses"), look)));
    const uint64_t walks = u(m, "walk.count");
    line("walks", fmt::format("{} walks, {} memory refs ({:.1f}/walk), {} cycles; PWC hits {}, nested TLB hits {}",
                              grouped(walks), grouped(u(m, "walk.mem_refs")),
                              walks ? double(u(m, "walk.mem_refs")) / double(walks) : 0.0,
                              grouped(u(m, "walk.cycles")), grouped(u(m, "walk.pwc_hits")),
                              grouped(u(m, "walk.ntlb_hits"))));
    line("faults", fmt::format("NPF {} (private {}, shared {}, retried {}, spurious {}), guest #PF {}, "
                               "memory-fault exits {}",
                               grouped(u(m, "faults.npf")), grouped(u(m, "faults.private")),
                               grouped(u(m, "faults.shared")), grouped(u(m, "faults.retry")),
                               grouped(u(m, "faults.spurious")), grouped(u(m, "faults.guest_pf")),
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
    line("conversions", fmt::format("to private {} ({} pages), to shared {} ({} pages), failed {}",
                                    grouped(c.at("to_private").at("count").get<uint64_t>()),
                                    grouped(c.at("to_private").at("pages").get<uint64_t>()),
                                    grouped(c.at("to_shared").at("count").get<uint64_t>()),
                                    grouped(c.at("to_shared").at("pages").get<uint64_t>()),
                                    grouped(c.at("failed").get<uint64_t>())));
    const auto& fps = r.at("fault_paths");
    if (!fps.empty()) {
        o += fmt::format("\n  {:<36} {:>10} {:>12} {:>12} {:>12}\n", "fault path (cycles)", "count", "mean", "p50",
                         "p99");
        for (const auto& f : fps) {
            const auto& cy = f.at("cycles");
            o += fmt::format("  {:<36} {:>10} {:>12} {:>12} {:>12}\n", f.at("path").get<std::string>(),
                             grouped(f.at("count").get<uint64_t>()), grouped(cy.at("mean").get<uint64_t>()),
                             grouped(cy.at("p50").get<uint64_t>()), grouped(cy.at("p99").get<uint64_t>()));
            for (const auto& s : f.at("steps"))
                o += fmt::format("    {:<34} {:>10} {:>12}\n", s.at("name").get<std::string>(), "",
                                 grouped(s.at("cycles").get<uint64_t>()));
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
