#include "sim/results.hpp"
#include "sim/host_tuning.hpp"

#include <fmt/format.h>

#include <bit>

#include "kernel/fault_path.hpp"

namespace hvsim {

using nlohmann::json;

namespace {

const char* cause_name(kvm::InvalidateCause c) { return kvm::invalidate_cause_name(c); }

// Power-of-two buckets keyed by their lower bound: {"1024": n} counts totals in [1024, 2048).
json log2_histogram(const std::vector<Cycles>& samples) {
    std::map<uint64_t, uint64_t> b;
    for (Cycles c : samples) b[c ? std::bit_floor(c) : 0]++;
    json h = json::object();
    for (auto& [lo, n] : b) h[std::to_string(lo)] = n;
    return h;
}

}  // namespace

json build_results(const ResultInputs& in) {
    const MachineConfig& mc = in.m.config();
    json r;
    r["hvsim_version"] = kHvsimVersion;
    r["scenario"] = in.s.name;
    r["status"] = run_status_name(in.status);
    if (!in.error.empty()) r["error"] = in.error;
    r["failures"] = failures_json(in.failures ? *in.failures : std::vector<Failure>{});
    r["warnings"] = in.warnings;
    r["platform"] = in.p.platform();
    // The preset the run started from and every value the scenario or --set changed.
    json overrides = json::object();
    const json values = in.p.to_json();
    const json preset_values = ParamSet::preset(in.p.platform()).to_json();
    for (auto it = values.begin(); it != values.end(); ++it) {
        const ParamValue& pv = in.p.value(it.key());
        if (pv.origin.rfind("preset", 0) != 0)
            overrides[it.key()] = {{"value", it.value()}, {"preset_value", preset_values.at(it.key())},
                                   {"origin", pv.origin}};
    }
    r["preset"] = {{"name", in.p.platform()}, {"description", ParamSet::platform_description(in.p.platform())},
                   {"overrides", std::move(overrides)}};
    r["params"] = values;
    r["kernel_profile"] = in.p.kernel_profile_json();
    r["seed"] = in.s.seed;

    json m = json::object();
    m["sim.cycles"] = in.sim_cycles;
    m["sim.time_ns"] = in.sim_cycles * mc.period_ps / 1000;
    m["setup.cycles"] = in.setup_cycles;

    cpu::VcpuStats v{};
    for (const auto* vc : in.vcpus) {
        const auto& s = vc->stats();
        v.accesses += s.accesses;
        v.reads += s.reads;
        v.writes += s.writes;
        v.npf_exits += s.npf_exits;
        v.hypercall_exits += s.hypercall_exits;
        v.mmio_accesses += s.mmio_accesses;
        v.guest_page_faults += s.guest_page_faults;
        v.data_cycles += s.data_cycles;
        v.quantum_syncs += s.quantum_syncs;
    }
    m["sim.quantum_syncs"] = v.quantum_syncs;
    m["accesses"] = v.accesses;
    m["accesses.read"] = v.reads;
    m["accesses.write"] = v.writes;
    m["accesses.mmio"] = v.mmio_accesses;
    m["data.cycles"] = v.data_cycles;

    mmu::MmuStats t{};
    for (const auto& mu : in.mmus) {
        const auto& s = mu->stats();
        t.accesses += s.accesses;
        t.l1_hits += s.l1_hits;
        t.l2_hits += s.l2_hits;
        t.misses += s.misses;
        t.walk_mem_refs += s.walk_mem_refs;
        t.walk_cycles += s.walk_cycles;
        t.pwc_hits += s.pwc_hits;
        t.ntlb_hits += s.ntlb_hits;
        t.gpa_lookups += s.gpa_lookups;
        t.gpa_ntlb_hits += s.gpa_ntlb_hits;
        t.gpa_walks += s.gpa_walks;
        t.guest_faults += s.guest_faults;
        t.npfs += s.npfs;
        t.ad_writes += s.ad_writes;
        t.flushes += s.flushes;
        t.perm_rewalks += s.perm_rewalks;
        t.invlpgs += s.invlpgs;
    }
    m["tlb.lookups"] = t.accesses;
    m["tlb.l1.hits"] = t.l1_hits;
    m["tlb.l2.hits"] = t.l2_hits;
    m["tlb.misses"] = t.misses;
    m["tlb.flushes"] = t.flushes;
    m["tlb.gpa.lookups"] = t.gpa_lookups;
    m["tlb.gpa.ntlb_hits"] = t.gpa_ntlb_hits;
    m["tlb.gpa.walks"] = t.gpa_walks;
    m["walk.count"] = t.misses + t.gpa_walks;
    m["walk.mem_refs"] = t.walk_mem_refs;
    m["walk.cycles"] = t.walk_cycles;
    m["walk.pwc_hits"] = t.pwc_hits;
    m["walk.ntlb_hits"] = t.ntlb_hits;
    m["walk.ad_writes"] = t.ad_writes;
    m["walk.perm_rewalks"] = t.perm_rewalks;
    m["tlb.invlpgs"] = t.invlpgs;

    // The same per vCPU (vcpu.N.*): the sums above are these added up.
    for (size_t i = 0; i < in.vcpus.size(); ++i) {
        const auto& s = in.vcpus[i]->stats();
        const auto& ms = in.mmus.at(i)->stats();
        const std::string pre = fmt::format("vcpu.{}.", i);
        m[pre + "accesses"] = s.accesses;
        m[pre + "accesses.read"] = s.reads;
        m[pre + "accesses.write"] = s.writes;
        m[pre + "accesses.mmio"] = s.mmio_accesses;
        m[pre + "data.cycles"] = s.data_cycles;
        m[pre + "faults.npf"] = s.npf_exits;
        m[pre + "faults.guest_pf"] = s.guest_page_faults;
        m[pre + "exits.hypercall"] = s.hypercall_exits;
        m[pre + "tlb.lookups"] = ms.accesses;
        m[pre + "tlb.l1.hits"] = ms.l1_hits;
        m[pre + "tlb.l2.hits"] = ms.l2_hits;
        m[pre + "tlb.misses"] = ms.misses;
        m[pre + "tlb.gpa.lookups"] = ms.gpa_lookups;
        m[pre + "walk.count"] = ms.misses + ms.gpa_walks;
        m[pre + "walk.mem_refs"] = ms.walk_mem_refs;
        m[pre + "walk.cycles"] = ms.walk_cycles;
    }

    // Page-table reads (and, with cache.data, data accesses) through the cache hierarchy,
    // summed over the vCPUs.
    if (!in.caches.empty()) {
        const auto& cfg = in.caches.front()->config();
        uint64_t dram = 0;
        for (size_t l = 0; l < cfg.levels.size(); ++l) {
            uint64_t h = 0, mi = 0;
            for (const auto& c : in.caches) {
                h += c->stats().levels[l].hits;
                mi += c->stats().levels[l].misses;
            }
            m["cache." + cfg.levels[l].name + ".hits"] = h;
            m["cache." + cfg.levels[l].name + ".misses"] = mi;
        }
        uint64_t data = 0;
        MemHierarchyStats sum;
        for (const auto& c : in.caches) {
            const auto& s = c->stats();
            dram += s.dram;
            data += s.data_refs;
            sum.prefetches += s.prefetches;
            sum.prefetch_hits += s.prefetch_hits;
            sum.prefetch_late += s.prefetch_late;
            sum.prefetch_dropped += s.prefetch_dropped;
            sum.posted_stores += s.posted_stores;
            sum.mshr_full += s.mshr_full;
            sum.mshr_wait_cycles += s.mshr_wait_cycles;
        }
        m["cache.dram"] = dram;
        m["cache.data_refs"] = data;
        m["cache.prefetches"] = sum.prefetches;
        m["cache.prefetch_hits"] = sum.prefetch_hits;
        m["cache.prefetch_late"] = sum.prefetch_late;
        m["cache.prefetch_dropped"] = sum.prefetch_dropped;
        m["cache.posted_stores"] = sum.posted_stores;
        m["cache.mshr_full"] = sum.mshr_full;
        m["cache.mshr_wait_cycles"] = sum.mshr_wait_cycles;
        m["cache.encrypted_fills"] = in.m.encrypted_fills();
    }

    const auto& ex = in.m.exits();
    m["faults.npf"] = v.npf_exits;
    m["faults.guest_pf"] = v.guest_page_faults;
    m["exits.total"] = ex.total;
    m["exits.npf"] = ex.npf;
    m["exits.hypercall"] = ex.hypercall;
    m["exits.userspace"] = ex.userspace;
    m["exits.memory_fault"] = ex.memory_fault;
    m["exits.mmio"] = ex.mmio;
    m["exits.hypercall_userspace"] = ex.hypercall_user;

    // Runs with launch steps: what the launch put in and what its ioctls cost.
    if (auto lm = in.m.launch_measurement()) {
        m["launch.pages"] = lm->pages;
        m["launch.measured_pages"] = lm->measured_pages;
        Cycles lc = 0;
        if (in.steps)
            for (const auto& st : *in.steps)
                if (st.op.rfind("snp_launch_", 0) == 0 || st.op == "tdx_init_mem_region" || st.op == "tdx_finalize_vm")
                    lc += st.cycles;
        m["launch.cycles"] = lc;
    }

    // SEV-SNP runs: the RMP hardware and the guest's validation.
    if (const rmp::Rmp* r = in.m.rmp()) {
        const auto& s = r->stats();
        m["rmp.checks"] = s.checks;
        m["rmp.faults"] = s.faults;
        m["rmp.updates"] = s.updates;
        m["rmp.psmash"] = s.psmash;
        m["rmp.cache.hits"] = s.cache_hits;
        m["rmp.entry_reads"] = s.entry_reads;
        const cpu::SnpGuestStats g = in.m.snp_guest() ? in.m.snp_guest()->stats() : cpu::SnpGuestStats{};
        m["snp.pvalidate"] = g.pvalidate;
        m["snp.vc"] = g.vc;
        m["snp.psc_requests"] = g.psc_requests;
        m["snp.size_mismatch"] = g.size_mismatch;
        m["snp.pvalidate_rescind"] = g.rescinds;
        m["snp.encrypted_fills"] = in.m.encrypted_fills();
        m["snp.rmpadjust"] = g.rmpadjust;
        const kvm::SnpStats k = in.m.snp_ops() ? in.m.snp_ops()->stats() : kvm::SnpStats{};
        m["snp.ap_creation"] = k.ap_creation;
        m["snp.ap_creation_refused"] = k.ap_creation_refused;
    }

    if (auto* x = in.m.x86()) {
        const auto& s = x->stats();
        m["faults.private"] = s.private_faults;
        m["faults.shared"] = s.shared_faults;
        m["faults.fixed"] = s.fixed;
        m["faults.spurious"] = s.spurious;
        m["faults.retry"] = s.retries;
        m["faults.emulated"] = s.emulated;
        m["faults.memory_fault"] = s.memory_fault_exits;
        m["faults.fast"] = s.fast_fixes;
        m["mmu.map.4k"] = s.map_4k;
        m["mmu.map.2m"] = s.map_2m;
        m["mmu.map.1g"] = s.map_1g;
        m["mmu.remote_flushes"] = s.remote_flushes;
        m["mmu.remote_flush_ipis"] = s.remote_flush_ipis;
        m["prefault.calls"] = s.prefault_calls;
        m["prefault.pages"] = s.prefault_pages;
        m["faults.prefault"] = s.prefault_faults;
        // Both roots of the TDP MMU: the direct one and, with mirrored TDP (TDX), the mirror.
        kvm::TdpMmuStats d = x->tdp().stats();
        if (const kvm::TdpMmu* mr = x->mirror()) {
            // A TD's teardown zaps the mirror after the run: the run's figures are those before it.
            const auto* td = in.m.tdx();
            const auto& e = td && td->run_stats() ? td->run_stats()->mirror : mr->stats();
            d.sptes_installed += e.sptes_installed;
            d.sptes_zapped += e.sptes_zapped;
            d.sp_allocated += e.sp_allocated;
            d.sp_freed += e.sp_freed;
            d.huge_splits += e.huge_splits;
            d.leaves_4k += e.leaves_4k;
            d.leaves_2m += e.leaves_2m;
            d.leaves_1g += e.leaves_1g;
        }
        m["mmu.sptes.installed"] = d.sptes_installed;
        m["mmu.sptes.zapped"] = d.sptes_zapped;
        m["mmu.sp.allocated"] = d.sp_allocated;
        m["mmu.sp.freed"] = d.sp_freed;
        m["mmu.huge_splits"] = d.huge_splits;
        m["mmu.leaves.4k"] = d.leaves_4k;
        m["mmu.leaves.2m"] = d.leaves_2m;
        m["mmu.leaves.1g"] = d.leaves_1g;
    }
    if (const auto* t = in.m.tdx()) {
        // The TDX module's count of SEAMCALLs and of successful leaves, KVM's retries, as
        // they were at the end of the run (before the teardown, counted apart below).
        const auto& s = t->run_stats() ? t->run_stats()->module : t->module().stats();
        const auto& ks = t->run_stats() ? t->run_stats()->kvm : t->kvm_tdx().stats();
        // TDH.VP.ENTER (one per TD entry) is not counted among the SEAMCALLs here.
        m["tdx.seamcalls"] = s.seamcalls - s.vp_enter_calls;
        m["tdx.aug"] = s.aug;
        m["tdx.accept"] = s.accept;
        m["tdx.ve"] = s.ve;
        m["tdx.block"] = s.block;
        m["tdx.track"] = s.track;
        m["tdx.remove"] = s.remove;
        m["tdx.busy_retries"] = ks.busy_retries;
        m["tdx.vp_enter_busy"] = ks.vp_enter_busy;
        m["tdx.accept_busy_retries"] = t->guest_busy_retries();
        m["tdx.kick_exits"] = t->vcpus_kicked();
        m["tdx.epoch_flushes"] = s.epoch_flushes;
        m["tdx.idle_ticks"] = t->idle_ticks_waited();
        m["tdx.page_add"] = s.page_add;
        m["tdx.mr_extend"] = s.mr_extend;
        // kvm.config.tdx_huge_private: the 2M leaves among tdx.aug / tdx.remove, and DEMOTE.
        m["tdx.aug_2m"] = ks.aug_2m;
        m["tdx.remove_2m"] = ks.remove_2m;
        m["tdx.demote"] = s.demote;
        m["sept.pages"] = s.sept_pages;
        // The teardown that ends the run (TdxBackend::teardown(); not in sim.cycles).
        const auto& td = t->teardown_stats();
        m["tdx.teardown.cycles"] = td.cycles;
        m["tdx.teardown.pages_removed"] = td.pages_removed;
        m["tdx.teardown.seamcalls"] = td.seamcalls;
        m["tdx.reclaim"] = td.reclaimed;
    }
    if (auto* a = in.m.arm64()) {
        // KVM/arm64's abort handling, under the names the x86 fault path uses where the
        // meaning is the same; faults.fast: permission faults relaxed in place.
        const auto& s = a->stats();
        m["faults.private"] = s.private_faults;
        m["faults.shared"] = s.shared_faults;
        m["faults.fixed"] = s.fixed;
        m["faults.spurious"] = uint64_t(0);
        m["faults.retry"] = s.retries;
        m["faults.emulated"] = s.mmio;
        m["faults.memory_fault"] = s.memory_fault_exits;
        // The aborts past the FSC checks that ended KVM_RUN with an error other than a memory
        // fault exit (a poisoned IPA of a protected VM, an SEA KVM would inject): every error
        // but the FSC checks' (aborts not counted private or shared) and the memory-fault exits.
        m["faults.failed"] = s.errors - (s.aborts - s.private_faults - s.shared_faults) - s.memory_fault_exits;
        m["faults.fast"] = s.relaxed;
        m["mmu.map.4k"] = s.map_page;
        m["mmu.map.2m"] = s.map_block;
        m["mmu.map.1g"] = uint64_t(0);
        m["mmu.remote_flushes"] = s.remote_flushes;
        m["mmu.huge_splits"] = a->pgt().stats().splits;
        // KVM_PRE_FAULT_MEMORY is x86-only upstream (an arm64 port was only proposed).
        m["faults.prefault"] = uint64_t(0);
        m["prefault.calls"] = uint64_t(0);
        m["prefault.pages"] = uint64_t(0);
        uint64_t walks = 0, refs = 0, faults = 0;
        for (const auto* c : a->vcpus()) {
            walks += c->s2_stats().s2_walks;
            refs += c->s2_stats().s2_mem_refs;
            faults += c->s2_stats().s2_faults;
        }
        m["s2.walks"] = walks;
        m["s2.mem_refs"] = refs;
        m["s2.faults"] = faults;
        m["s2.tlbi"] = a->domain().stats().tlbi;
        m["s2.bbm"] = a->pgt().stats().bbm + (in.m.pkvm() ? in.m.pkvm()->host_pgt().stats().bbm : 0);
    }
    if (const auto* pk = in.m.pkvm()) {
        // pKVM at EL2: the ownership transitions (mem_protect.c) and what they cost around them.
        const auto& o = pk->mem_protect().stats();
        const auto& r = pk->stats();
        m["pkvm.hypercalls"] = o.hypercalls;
        m["pkvm.share"] = o.share;
        m["pkvm.unshare"] = o.unshare;
        m["pkvm.donate"] = o.donate;
        m["pkvm.reclaim"] = o.reclaim;
        m["pkvm.refused"] = o.refused;
        m["pkvm.guest_hvcs"] = r.guest_hvcs;
        m["pkvm.share_faults"] = r.share_enoent;
        m["pkvm.host_aborts"] = r.host_aborts;
        m["pkvm.host_refused"] = r.host_refused;
        m["pkvm.forced_reclaims"] = r.forced_reclaims;
        m["pkvm.pages_copied"] = r.pages_copied;
        m["pkvm.pages_zeroed"] = r.pages_zeroed;
        m["pkvm.pinned"] = r.pinned;
        m["pkvm.gmem_donated"] = r.gmem_donated;
        m["pkvm.gmem_held"] = r.gmem_held;
        m["pkvm.teardown_cycles"] = r.teardown_cycles;
        m["pkvm.host_s2.tables"] = uint64_t(pk->host_pgt().table_pages());
    }
    if (auto* k = in.m.kvm()) {
        const auto& s = k->stats();
        // kvm->mmu_lock held in simulated time (kernel/mmu_lock.hpp).
        m["mmu_lock.waits"] = k->mmu_lock().stats().waits;
        m["mmu_lock.wait_cycles"] = k->mmu_lock().stats().wait_cycles;
        m["kvm.memslot.create"] = s.memslot_create;
        m["kvm.memslot.delete"] = s.memslot_delete;
        m["kvm.memslot.move"] = s.memslot_move;
        m["kvm.memslot.flags_only"] = s.memslot_flags_only;
        m["kvm.dirty_log.gets"] = s.dirty_log_gets;
        m["kvm.dirty_log.clears"] = s.dirty_log_clears;
        m["gmem.created"] = s.gmem_created;
        m["gmem.released"] = s.gmem_released;
        m["gmem.pages.allocated"] = s.gmem_pages_allocated;
        m["gmem.pages.freed"] = s.gmem_pages_freed;
        m["gmem.pages.zeroed"] = s.gmem_pages_zeroed;
        m["gmem.huge_folios"] = s.gmem_huge_folios;
        m["gmem.get_pfn"] = s.gmem_get_pfn;
        m["gmem.punch_hole"] = s.gmem_punch_hole;
        m["attributes.set_calls"] = s.attr_set_calls;
        m["attributes.noop"] = s.attr_noop;
        m["attributes.pages_to_private"] = s.pages_to_private;
        m["attributes.pages_to_shared"] = s.pages_to_shared;
        m["attributes.eagain"] = s.conversion_eagain;
        m["policy.pages_zeroed"] = s.policy_pages_zeroed;
        m["policy.pages_preserved"] = s.policy_pages_preserved;
        m["policy.pages_filled"] = s.policy_pages_filled;
        m["sev.regions"] = s.sev_regions;
        m["sev.pages_pinned"] = s.sev_pages_pinned;
        m["sev.pages_pinned_peak"] = s.sev_pages_pinned_peak;
        m["invalidations.count"] = s.invalidations.size();
    }
    const auto& ps = in.m.process().stats();
    m["process.anon_pages"] = ps.anon_pages_allocated;
    m["process.thp"] = ps.thp_allocated;
    m["process.host_faults"] = ps.host_faults;
    m["process.sigbus"] = ps.host_sigbus;
    m["process.rmp_faults"] = ps.host_rmp_faults;
    m["process.zero_mapped_pages"] = in.m.process().nr_zero_mapped_pages();
    m["process.huge_zero_regions"] = in.m.process().nr_huge_zero_regions();
    m["process.gup_pages"] = ps.gup_pages;
    m["process.pins"] = ps.pins;
    m["host.pages_resident"] = in.m.mem().pages_resident();
    m["host.pages_used"] = in.m.allocator().used_pages();
    if (in.guest) {
        m["guest.page_faults"] = in.guest->stats().page_faults;
        m["guest.pt_pages"] = in.guest->stats().pt_pages;
        m["guest.pt_install_races"] = in.guest->stats().install_races;
    }

    // Conversions as the VMM performed them.
    json conv = json::object();
    uint64_t np = 0, ns = 0, pp = 0, sp = 0, failed = 0;
    Cycles cp = 0, cs = 0;
    json list = json::array();
    uint64_t setup_n = 0, setup_pages = 0;
    Cycles setup_c = 0;
    for (const auto& c : in.m.conversions()) {
        // vm.private is how the VM starts, not a conversion the guest asked for: it is
        // listed (trigger "vm.private") but counted apart, in conversions.setup.
        const bool at_setup = c.trigger == std::string("vm.private");
        if (at_setup) { ++setup_n; setup_pages += c.size >> kPageShift; setup_c += c.cycles; }
        else if (c.err) ++failed;
        else if (c.to_private) { ++np; pp += c.size >> kPageShift; cp += c.cycles; }
        else { ++ns; sp += c.size >> kPageShift; cs += c.cycles; }
        list.push_back({{"to", c.to_private ? "private" : "shared"}, {"gpa", c.gpa}, {"size", c.size},
                        {"trigger", c.trigger}, {"policy", c.policy}, {"errno", c.err}, {"cycles", c.cycles}});
    }
    conv["to_private"] = {{"count", np}, {"pages", pp}, {"cycles", cp}};
    conv["to_shared"] = {{"count", ns}, {"pages", sp}, {"cycles", cs}};
    conv["failed"] = failed;
    conv["setup"] = {{"count", setup_n}, {"pages", setup_pages}, {"cycles", setup_c}};
    conv["list"] = std::move(list);
    m["conversions.count"] = np + ns;
    m["conversions.to_private.pages"] = pp;
    m["conversions.to_shared.pages"] = sp;
    m["conversions.failed"] = failed;
    m["setup.private.pages"] = setup_pages;
    r["metrics"] = std::move(m);

    json fps = json::array();
    json hists = json::object();
    for (const auto& [name, a] : in.m.fault_paths()) {
        json f;
        f["path"] = name;
        f["count"] = a.count;
        f["cycles"] = {{"total", a.total},
                       {"mean", a.count ? a.total / a.count : 0},
                       {"p50", kvm::percentile(a.samples, 50)},
                       {"p99", kvm::percentile(a.samples, 99)}};
        json steps = json::array();
        for (const auto& [sn, c] : a.steps) steps.push_back({{"name", sn}, {"cycles", a.count ? c / a.count : 0}});
        f["steps"] = std::move(steps);
        fps.push_back(std::move(f));
        hists["fault_cycles." + name] = log2_histogram(a.samples);
    }
    r["fault_paths"] = std::move(fps);
    r["histograms"] = std::move(hists);

    json inv = json::array();
    if (auto* k = in.m.kvm())
        for (const auto& i : k->stats().invalidations) {
            json ranges = json::array();
            for (const auto& z : i.ranges)
                ranges.push_back({{"memslot", z.memslot < 0 ? json(nullptr) : json(z.memslot)},
                                  {"as_id", z.as_id},
                                  {"start_gfn", z.start_gfn},
                                  {"end_gfn", z.end_gfn},
                                  {"pages_zapped", z.pages_zapped}});
            inv.push_back({{"start_gfn", i.start_gfn},
                           {"end_gfn", i.end_gfn},
                           {"protected", {{"start_gfn", i.start_gfn}, {"end_gfn", i.end_gfn}}},
                           {"ranges", std::move(ranges)},
                           {"cause", cause_name(i.cause)},
                           {"attr_filter", kvm::attr_filter_name(i.attr_filter)},
                           {"pages_zapped", i.sptes_zapped},
                           {"flush", i.flush_remote ? "remote" : "none"},
                           {"cycles", i.cycles}});
        }
    r["invalidations"] = std::move(inv);
    r["conversions"] = std::move(conv);

    json steps = json::array();
    if (in.steps)
        for (const auto& s : *in.steps)
        {
            json j = {{"index", s.index}, {"pointer", s.pointer}, {"name", s.name}, {"op", s.op},
                      {"result", s.result}, {"passed", s.passed}, {"cycles", s.cycles}, {"accesses", s.accesses},
                      {"walks", s.walks}};
            if (!s.expected.empty()) j["expected"] = s.expected;
            if (!s.bytes.empty()) j["bytes"] = s.bytes;
            steps.push_back(std::move(j));
        }
    r["steps"] = std::move(steps);
    if (auto lm = in.m.launch_measurement())
        r["launch"] = {{"kind", lm->kind},
                       {"digest", lm->digest},
                       {"final", lm->final},
                       {"pages", lm->pages},
                       {"measured_pages", lm->measured_pages}};

    const double events = double(v.accesses + ex.total + (in.steps ? in.steps->size() : 0));
    r["host"] = {{"wall_s", in.wall_s},
                 {"sim_events_per_s", in.wall_s > 0 ? events / in.wall_s : 0.0},
                 {"heap_thp", host_heap_thp()}};
    return r;
}

std::vector<Failure> check_metric_expectations(const scn::Scenario& s, const json& results,
                                               std::vector<Failure> failures) {
    const json& m = results.at("metrics");
    // The bounds of the run's architecture (expect.arch), from the platform's MMU format.
    const std::string arch = scn::expect_arch_of_nested_format(
        results.contains("params") ? results.at("params").value("mmu.nested_format", std::string()) : std::string());
    for (const auto& entry : scn::effective_metric_bounds(s, arch)) {
        const std::string& name = entry.name;   // named, not a structured binding: lambdas below use it
        const auto& b = entry.bound;
        const std::string ptr = entry.ptr;
        auto add = [&](std::string msg, std::string text) {
            failures.push_back(Failure{"metric", ptr, std::nullopt, std::move(msg), std::move(text)});
        };
        if (!m.contains(name)) {
            add("no such metric in the results", fmt::format("{}: no such metric in the results", ptr));
            continue;
        }
        const double v = m.at(name).get<double>();
        auto bound = [&](const char* what, double want) {
            const std::string msg = fmt::format("{} = {}, expected {}{}", name, v, what, want);
            add(msg, "metric " + msg);
        };
        if (b.eq && v != *b.eq) bound("", *b.eq);
        if (b.min && v < *b.min) bound("at least ", *b.min);
        if (b.max && v > *b.max) bound("at most ", *b.max);
    }
    return failures;
}

json failures_json(const std::vector<Failure>& failures) {
    json a = json::array();
    for (const auto& f : failures) {
        json j = {{"kind", f.kind}, {"pointer", f.pointer}, {"message", f.message}};
        if (f.step) j["step"] = *f.step;
        a.push_back(std::move(j));
    }
    return a;
}

json strip_host(json results) {
    results.erase("host");
    return results;
}

}  // namespace hvsim
