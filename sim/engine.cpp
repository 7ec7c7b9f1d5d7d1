#include "sim/engine.hpp"

#include "models/stage2/casemate_trace.hpp"

#include <systemc>
#include <tlm_utils/tlm_quantumkeeper.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "kernel/guest_memfd.hpp"
#include "models/mem/debug_port.hpp"
#include "sim/errno_names.hpp"
#include "sim/json_util.hpp"
#include "sim/machine.hpp"
#include "sim/replay.hpp"
#include "sim/results.hpp"

namespace hvsim {

namespace {

using namespace sc_core;

// A VMM thread: runs host-side steps (ioctls, host accesses) with its own local time.
class HostThread : public sc_module, public ExecContext {
public:
    SC_HAS_PROCESS(HostThread);
    HostThread(sc_module_name n, uint64_t period_ps) : sc_module(n), period_ps_(period_ps) { SC_THREAD(thread); }
    void post(std::function<void(ExecContext&)> job, std::string label = {}) {
        job_ = std::move(job);
        label_ = std::move(label);
        work_.notify(SC_ZERO_TIME);
    }
    // Trace the jobs (a slice each) and their charges (nested) on `track`.
    void set_trace(Trace* t, uint32_t track, std::string track_name, Machine* m) {
        trace_ = t;
        track_ = track;
        track_name_ = std::move(track_name);
        machine_ = m;
    }
    sc_event& done() { return done_; }
    // A model error in the last job (empty if none); the controller names the step.
    const std::string& error() const { return error_; }
    void charge(StepName step, Cycles c) override {
        if (trace_) trace_charge(step, c);
        qk_.inc(sc_time::from_value(c * period_ps_));
    }
    void sync() override { qk_.sync(); }
    // Its local time (the simulation's time plus its quantum offset), for kvm->mmu_lock.
    std::optional<Cycles> local_cycles() const override { return local_now(); }

private:
    Cycles local_now() const { return (sc_time_stamp() + qk_.get_local_time()).value() / period_ps_; }
    void trace_charge(std::string_view step, Cycles c) {
        const Cycles t = local_now();
        trace_->slice(track_, step, t, c);
        trace_->hw_slice(track_name_, step, t, c);
        machine_->trace_new_invalidations(*trace_, inv_track_, name(), t + c);
    }
    void thread() {
        qk_.reset();
        for (;;) {
            wait(work_);
            error_.clear();
            // A model error ends the job with a message instead of escaping into the
            // SystemC kernel; the controller ends the run naming the step.
            const Cycles start = local_now();
            try {
                job_(*this);
            } catch (const std::exception& e) {
                error_ = fmt::format("VMM thread: {}", e.what());
            }
            if (trace_) trace_->slice(track_, label_.empty() ? "host step" : label_, start, local_now() - start);
            qk_.sync();
            done_.notify(SC_ZERO_TIME);
        }
    }
    uint64_t period_ps_;
    tlm_utils::tlm_quantumkeeper qk_;
    std::function<void(ExecContext&)> job_;
    std::string label_;
    Trace* trace_ = nullptr;
    uint32_t track_ = 0;
    std::string track_name_;
    Machine* machine_ = nullptr;
    std::optional<uint32_t> inv_track_;
    std::string error_;
    sc_event work_, done_;
};

// What one step (or one member of a parallel group) produced.
struct StepRecord {
    const scn::Step* step = nullptr;
    size_t index = 0;
    StepOutcome outcome;                      // uAPI steps
    HostThread* host = nullptr;               // the VMM thread that ran a uAPI step
    std::vector<unsigned> vcpus;              // vCPU steps
    uint64_t accesses = 0;
    bool stopped = false;
    std::optional<VcpuExitRecord> exit;       // first vCPU exit that stopped the step
    std::optional<int64_t> hypercall_ret;
    std::optional<uint8_t> byte0;
    bool bytes_mixed = false;
    Cycles start = 0, end = 0;
    uint64_t walks = 0;                       // two-dimensional walks the step's vCPUs made
    bool interrupted = false;                 // request_stop() ended its vCPU work early
    bool failed = false;                      // an expectation of the step did not hold
};

std::string step_label(const StepRecord& r) {
    std::string s = fmt::format("step {} ({})", r.index, r.step->pointer);
    if (!r.step->name.empty()) s += fmt::format(" \"{}\"", r.step->name);
    return s;
}

std::string op_name(const scn::Step& st) {
    return std::visit(
        [](const auto& op) -> std::string {
            using T = std::decay_t<decltype(op)>;
            if constexpr (std::is_same_v<T, scn::CreateGuestMemfd>) return "create_guest_memfd";
            else if constexpr (std::is_same_v<T, scn::SetUserMemoryRegion2>) return op.v1 ? "set_user_memory_region" : "set_user_memory_region2";
            else if constexpr (std::is_same_v<T, scn::SetMemoryAttributes>) return "set_memory_attributes";
            else if constexpr (std::is_same_v<T, scn::SetMemoryAttributes2>) return "set_memory_attributes2";
            else if constexpr (std::is_same_v<T, scn::Fallocate>) return "fallocate";
            else if constexpr (std::is_same_v<T, scn::PreFaultMemory>) return "pre_fault_memory";
            else if constexpr (std::is_same_v<T, scn::EncryptRegion>)
                return op.reg ? "memory_encrypt_reg_region" : "memory_encrypt_unreg_region";
            else if constexpr (std::is_same_v<T, scn::CheckExtension>) return "check_extension";
            else if constexpr (std::is_same_v<T, scn::Close>) return "close";
            else if constexpr (std::is_same_v<T, scn::DirtyLog>) return op.clear ? "clear_dirty_log" : "get_dirty_log";
            else if constexpr (std::is_same_v<T, scn::HostAccess>) {
                const char* n[] = {"host read", "host write", "host mmap", "host pin", "host unpin", "host munmap"};
                return n[int(op.op)];
            } else if constexpr (std::is_same_v<T, scn::Access>) return op.op == scn::Access::Op::write ? "access write" : "access read";
            else if constexpr (std::is_same_v<T, scn::MapGpaRange>)
                return op.accept ? "accept" : op.ap_create ? "snp_ap_create" : "map_gpa_range";
            else if constexpr (std::is_same_v<T, scn::Launch>) return scn::launch_op_name(op.op);
            else if constexpr (std::is_same_v<T, std::vector<scn::Step>>) return "parallel";
            else return "?";
        },
        st.op);
}

// An ENOTTY that the kernel profile decides: the parameter that changes it.
std::string enotty_hint(const scn::Step& st, int err, const kvm::KvmConfig& k) {
    if (err != ENOTTY) return {};
    if (std::holds_alternative<scn::SetMemoryAttributes2>(st.op)) {
        if (!k.vm_memory_attributes && k.memory_attributes2) return {};
        return " (KVM_SET_MEMORY_ATTRIBUTES2 exists only with in-place conversion: \"params\": {\"kvm.profile\": "
               "\"inplace\"}, or kvm.config.vm_memory_attributes=false and kvm.config.memory_attributes2=true)";
    }
    if (std::holds_alternative<scn::SetMemoryAttributes>(st.op)) {
        if (!k.generic_memory_attributes)
            return " (KVM_SET_MEMORY_ATTRIBUTES needs kvm.config.generic_memory_attributes=true)";
        if (!k.vm_memory_attributes)
            return " (attributes live in each guest_memfd with kvm.config.vm_memory_attributes=false, as in "
                   "kvm.profile inplace; KVM_SET_MEMORY_ATTRIBUTES needs kvm.profile linux-6.18 or linux-7.2, or "
                   "kvm.config.vm_memory_attributes=true)";
    }
    if (std::holds_alternative<scn::CreateGuestMemfd>(st.op) && !k.guest_memfd)
        return " (KVM_CREATE_GUEST_MEMFD needs kvm.config.guest_memfd=true)";
    return {};
}

bool is_vcpu_step(const scn::Step& st) {
    return std::holds_alternative<scn::Access>(st.op) || std::holds_alternative<scn::MapGpaRange>(st.op);
}

// Guest accesses one vCPU makes for an access step (as cpu::Vcpu::run_access counts them).
uint64_t planned_accesses(const scn::Access& a) {
    if (a.replay) return a.count;   // a trace's length is known once it has run
    cpu::AccessSpec sp;
    sp.pattern = a.pattern == scn::Access::Pattern::seq      ? cpu::AccessSpec::Pattern::seq
                 : a.pattern == scn::Access::Pattern::stride ? cpu::AccessSpec::Pattern::stride
                                                             : cpu::AccessSpec::Pattern::random;
    sp.size = a.size;
    sp.stride = a.stride;
    sp.count = a.count;
    sp.width = a.width;
    return cpu::Vcpu::planned_accesses(sp);
}

unsigned host_threads_needed(const std::vector<scn::Step>& steps) {
    unsigned most = 1;
    for (const auto& st : steps)
        if (auto* group = std::get_if<std::vector<scn::Step>>(&st.op)) {
            unsigned n = 0;
            for (const auto& m : *group)
                if (!is_vcpu_step(m)) ++n;
            most = std::max(most, n);
        }
    return most;
}

}  // namespace

std::string format_progress_line(const std::string& name, uint64_t step, uint64_t steps, uint64_t accesses,
                                 uint64_t planned, double secs) {
    const uint64_t done = std::min(accesses, planned);
    std::string line = fmt::format("{}: step {}/{}, {}/{} guest accesses", name, step, steps, done, planned);
    if (planned) line += fmt::format(" ({:.0f}%)", 100.0 * double(done) / double(planned));
    line += fmt::format(", {:.1f} s", secs);
    if (done && planned) line += fmt::format(", ETA {:.0f} s", secs * double(planned - done) / double(done));
    return line;
}

namespace {

// Progress for long runs: a host thread samples counters the simulation publishes.
// The line shows the step, the guest accesses done of those planned (the total of every
// access step), the elapsed time and an estimate of the time left from the access rate.
struct Progress {
    std::atomic<uint64_t> step{0};
    uint64_t steps = 0;
    uint64_t planned = 0;   // guest accesses the whole scenario makes
    std::atomic<bool> stop{false};
    std::thread th;
    void start(bool enabled, const std::string& name) {
        if (!enabled) return;
        th = std::thread([this, name] {
            const auto t0 = std::chrono::steady_clock::now();
            bool shown = false;
            while (!stop.load()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
                const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                if (s < 2.0 || stop.load()) continue;
                fmt::print(stderr, "\r{}   ", format_progress_line(name, std::min(step.load() + 1, steps), steps,
                                                                  cpu::Vcpu::progress_accesses(), planned, s));
                std::fflush(stderr);
                shown = true;
            }
            if (shown) fmt::print(stderr, "\r{:80}\r", "");
        });
    }
    void finish() {
        stop = true;
        if (th.joinable()) th.join();
    }
};

// The platform's memory side, shared by the cores: the bytes, the DRAM, and the last-level
// caches between them (one per mem.llc.shared_by cores: top.mem.llc, or top.mem.llc0,
// llc1, ... when there are several), each filling from the DRAM.
class MemSystem : public sc_module {
public:
    MemSystem(sc_module_name n, PhysMem& mem, const DramConfig& dram_cfg, uint64_t period_ps,
              const MemHierarchyConfig& caches, unsigned cores)
        : sc_module(n), phys("phys", mem), dram("dram", dram_cfg, period_ps) {
        if (caches.levels.empty()) return;
        const unsigned per = std::max(1u, caches.llc_shared_by), groups = (cores + per - 1) / per;
        for (unsigned g = 0; g < groups; ++g) {
            const std::string llc_name = groups == 1 ? "llc" : fmt::format("llc{}", g);
            llcs.push_back(new LlcModule(llc_name.c_str(), caches.levels.back(), caches.line_bytes, period_ps));
            llcs.back()->dram.bind(dram.socket);
        }
    }
    PhysMemTarget phys;
    DramTarget dram;
    std::vector<LlcModule*> llcs;   // SystemC modules live as long as the simulation
    // The LLC core `i` shares (nullptr: no caches).
    LlcModule* llc_of(unsigned i, unsigned per) const {
        return llcs.empty() ? nullptr : llcs[i / std::max(1u, per)];
    }
};

// The platform's root module and the scenario controller. Every module of the platform is
// created inside its constructor (`elaborate`), so the hierarchy shows in the names:
// top.mem.phys, top.vcpu0.mmu, top.vmm0 (docs/systemc.md).
class Top : public sc_module {
public:
    SC_HAS_PROCESS(Top);
    Top(sc_module_name n, const scn::Scenario& s, const RunOptions& opt, Progress& prog,
        const std::function<void(Top&)>& elaborate)
        : sc_module(n), s_(s), opt_(opt), prog_(prog) {
        SC_THREAD(controller);
        elaborate(*this);
    }
    // The machine (built inside `elaborate`, so the VM's hardware modules are children of
    // top), the vCPUs and VMM threads the controller drives.
    void attach(Machine& m, std::vector<cpu::Vcpu*> vcpus, std::vector<HostThread*> hosts) {
        m_ = &m;
        vcpus_ = std::move(vcpus);
        hosts_ = std::move(hosts);
    }

    std::vector<StepRecord> records;
    std::vector<double> step_wall;
    std::vector<Failure> failures;
    std::string fatal;
    bool interrupted = false;

private:
    Cycles now() const { return sc_time_stamp().value() / m_->config().period_ps; }

    cpu::AccessSpec access_spec(const scn::Access& a, unsigned vcpu, size_t step_index) const {
        cpu::AccessSpec sp;
        using P = scn::Access::Pattern;
        sp.pattern = a.pattern == P::seq      ? cpu::AccessSpec::Pattern::seq
                     : a.pattern == P::stride ? cpu::AccessSpec::Pattern::stride
                                              : cpu::AccessSpec::Pattern::random;
        sp.write = a.op == scn::Access::Op::write;
        sp.gpa = Gpa(a.gpa);
        sp.size = a.size;
        sp.stride = a.stride;
        sp.count = a.count;
        sp.width = a.width;
        sp.value = a.value;
        // Without an explicit choice the guest addresses memory the way it believes it
        // is: private where the VM has private memory and the attributes say so.
        sp.enc = a.is_private.value_or(m_->kvm() && m_->kvm()->has_private_mem() &&
                                       m_->kvm()->kvm_mem_is_private(gpa_to_gfn(Gpa(a.gpa))));
        // A different stream per step and per vCPU, all derived from the scenario seed.
        sp.seed = s_.seed * 0x9e3779b97f4a7c15ull + step_index * 0x100000001b3ull + vcpu;
        if (a.replay) {
            // Each vCPU streams the trace from its start (sim/replay.hpp).
            replays_.push_back(open_trace(a.replay->file,
                                          a.replay->format == "champsim" ? TraceFormat::champsim : TraceFormat::lackey,
                                          a.size));
            sp.source = replays_.back().get();
            sp.cycles_per_instruction = a.replay->cycles_per_instruction;
        }
        return sp;
    }
    mutable std::vector<std::unique_ptr<cpu::AddressSource>> replays_;

    // Start one step (or group member); returns the events to wait for.
    void launch(const scn::Step& st, StepRecord& rec, unsigned& host_idx, sc_event_and_list& evs) {
        rec.step = &st;
        rec.start = now();
        for (unsigned v : st.vcpus) rec.walks -= vcpus_[v]->translator().stats().misses + vcpus_[v]->translator().stats().gpa_walks;
        if (auto* a = std::get_if<scn::Access>(&st.op)) {
            rec.vcpus = st.vcpus;
            for (unsigned v : st.vcpus) {
                m_->arm_vcpu(v, st.expect.exit.has_value());
                vcpus_[v]->post_access(access_spec(*a, v, rec.index));
                evs &= vcpus_[v]->done();
            }
        } else if (auto* h = std::get_if<scn::MapGpaRange>(&st.op)) {
            rec.vcpus = st.vcpus;
            for (unsigned v : st.vcpus) {
                m_->arm_vcpu(v, st.expect.exit.has_value());
                cpu::HypercallSpec hs;
                hs.nr = uapi::KVM_HC_MAP_GPA_RANGE;
                hs.a0 = h->gpa;
                hs.a1 = h->size >> kPageShift;
                hs.a2 = (h->to_private ? uapi::KVM_MAP_GPA_RANGE_ENCRYPTED : uapi::KVM_MAP_GPA_RANGE_DECRYPTED) |
                        uapi::KVM_MAP_GPA_RANGE_PAGE_SZ_4K;
                if (h->accept) {
                    hs.nr = Machine::kTdcallAccept;
                    hs.a2 = unsigned(h->accept_level);
                }
                if (h->relinquish) hs.nr = kvm::arm64::ARM_SMCCC_KVM_FUNC_MEM_RELINQUISH;
                if (h->ap_create) {
                    // Guest kernel work the SNP guest model runs (cpu::SnpGuest::guest_call()).
                    hs.nr = cpu::SnpGuest::kApControlCall;
                    hs.a0 = h->gpa;
                    hs.a1 = h->apic_id;
                    hs.a2 = h->ap_request | uint64_t(h->vmpl) << 8 | (h->gpa_given ? cpu::SnpGuest::kApGpaGiven : 0);
                }
                vcpus_[v]->post_hypercall(hs);
                evs &= vcpus_[v]->done();
            }
        } else {
            HostThread* worker = hosts_.at(host_idx++);
            rec.host = worker;
            StepRecord* r = &rec;
            worker->post([this, r, &st](ExecContext& ctx) { r->outcome = m_->exec_uapi_step(st, ctx); },
                         trace ? step_label(rec) + ": " + op_name(st) : std::string());
            evs &= worker->done();
        }
    }

    void collect(StepRecord& rec) {
        rec.end = now();
        if (rec.host && !rec.host->error().empty()) throw std::runtime_error(step_label(rec) + ": " + rec.host->error());
        for (unsigned v : rec.vcpus)
            if (!vcpus_[v]->error().empty()) throw std::runtime_error(step_label(rec) + ": " + vcpus_[v]->error());
        for (unsigned v : rec.vcpus) rec.walks += vcpus_[v]->translator().stats().misses + vcpus_[v]->translator().stats().gpa_walks;
        if (trace) trace_step(rec);
        for (unsigned v : rec.vcpus) {
            const auto& res = vcpus_[v]->result();
            rec.accesses += res.accesses;
            rec.stopped |= res.stopped;
            if (res.byte0) {
                if (!rec.byte0) rec.byte0 = res.byte0;
                else if (*rec.byte0 != *res.byte0) rec.bytes_mixed = true;
            }
            rec.bytes_mixed |= res.bytes_mixed;
            rec.interrupted |= res.interrupted;
            if (std::holds_alternative<scn::MapGpaRange>(rec.step->op) && !res.stopped)
                rec.hypercall_ret = int64_t(res.hypercall_ret);
            auto e = m_->take_exit(v);
            // KVM_EXIT_MMIO carries the emulated access's length (kvm_run->mmio.len): the
            // access's width, in fragments of at most 8 bytes (emulator_read_write_onepage()).
            if (e && e->reason == "mmio" && e->size == 0)
                if (const auto* a = std::get_if<scn::Access>(&rec.step->op))
                    e->size = std::min<uint64_t>(a->width ? a->width : (a->pattern == scn::Access::Pattern::seq ? 64 : 8), 8);
            if (e && !rec.exit) rec.exit = std::move(e);
        }
    }

public:
    // The run's trace (nullptr: none): the tracks the controller writes to.
    Trace* trace = nullptr;
    std::vector<uint32_t> vcpu_tracks;
    uint32_t private_pages_track = 0, shared_pages_track = 0;
    std::vector<uint32_t> hit_rate_tracks, walk_tracks, cache_hit_tracks;

private:
    struct TlbSnap {
        uint64_t lookups = 0, hits = 0, walks = 0;
        uint64_t cache_refs = 0, cache_hits = 0;   // the vCPU's cache hierarchy, all levels
    };
    std::vector<TlbSnap> tlb_prev_;

    // A vCPU step's slice on each of its vCPUs (exits nest inside), and the counters at its end.
    void trace_step(const StepRecord& rec) {
        for (unsigned v : rec.vcpus)
            trace->slice(vcpu_tracks.at(v), step_label(rec) + ": " + op_name(*rec.step), rec.start, rec.end - rec.start,
                         {TraceArg::num("accesses", vcpus_[v]->result().accesses)});
        if (tlb_prev_.size() != vcpus_.size()) tlb_prev_.assign(vcpus_.size(), TlbSnap{});
        for (size_t v = 0; v < vcpus_.size(); ++v) {
            const auto& st = vcpus_[v]->translator().stats();
            TlbSnap now{st.accesses, st.l1_hits + st.l2_hits, st.misses + st.gpa_walks, 0, 0};
            // The hierarchy serves the walker's references (and SNP's RMP reads); guest data
            // does not go through it yet (docs/results.md, "The timing model").
            const auto& cs = vcpus_[v]->caches().caches().stats();
            if (!cs.levels.empty()) now.cache_refs = cs.levels.front().hits + cs.levels.front().misses;
            for (const auto& l : cs.levels) now.cache_hits += l.hits;
            const uint64_t dl = now.lookups - tlb_prev_[v].lookups;
            if (dl) trace->counter(hit_rate_tracks.at(v), rec.end, 100.0 * double(now.hits - tlb_prev_[v].hits) / double(dl));
            trace->counter(walk_tracks.at(v), rec.end, double(now.walks - tlb_prev_[v].walks));
            if (const uint64_t dr = now.cache_refs - tlb_prev_[v].cache_refs)
                trace->counter(cache_hit_tracks.at(v), rec.end,
                               100.0 * double(now.cache_hits - tlb_prev_[v].cache_hits) / double(dr));
            tlb_prev_[v] = now;
        }
        if (const kvm::Kvm* k = m_->kvm()) {
            const uint64_t priv = k->nr_private_pages();
            trace->counter(private_pages_track, rec.end, double(priv));
            trace->counter(shared_pages_track, rec.end, double(k->nr_memslot_pages() - std::min(priv, k->nr_memslot_pages())));
        }
    }

    void fail(StepRecord& r, const std::string& what) {
        r.failed = true;
        failures.push_back(Failure{"expectation", r.step->pointer, r.index, what, step_label(r) + ": " + what});
    }

    // What a content policy does to the bytes of a converted page.
    static std::string policy_effect(const std::string& policy) {
        if (policy == "zero") return "zero: the pages read as 0x00 afterwards";
        if (policy == "preserve") return "preserve: the pages keep their bytes";
        if (policy == "none") return "none: the contents are unspecified afterwards (filled with a pattern here)";
        return policy;
    }

    // For a byte mismatch: the last conversion of the bytes read, and its content policy
    // (the usual cause of a surprise). vCPU reads look at the VMM's conversions by gpa,
    // host reads of a guest_memfd at earlier set_memory_attributes2 steps on that file.
    std::string conversion_hint(const StepRecord& r) const {
        if (auto* a = std::get_if<scn::Access>(&r.step->op)) {
            const auto& cs = m_->conversions();
            for (auto it = cs.rbegin(); it != cs.rend(); ++it)
                if (!it->err && it->gpa < a->gpa + a->size && a->gpa < it->gpa + it->size)
                    return fmt::format("; the range was last converted to {} ({}, gpa {:#x} size {:#x}) with content policy {}",
                                       it->to_private ? "private" : "shared", it->trigger, it->gpa, it->size,
                                       policy_effect(it->policy));
            return "";
        }
        auto* h = std::get_if<scn::HostAccess>(&r.step->op);
        if (!h || !h->guest_memfd) return "";
        for (auto it = records.rbegin(); it != records.rend(); ++it) {
            if (&*it == &r || !it->step || it->outcome.err || it->outcome.skipped) continue;
            auto* c = std::get_if<scn::SetMemoryAttributes2>(&it->step->op);
            if (!c || c->guest_memfd.kind != scn::FdRef::Kind::gmem || h->guest_memfd->kind != scn::FdRef::Kind::gmem ||
                c->guest_memfd.id != h->guest_memfd->id)
                continue;
            if (c->offset < h->offset + h->size && h->offset < c->offset + c->size) {
                const char* policy = c->flags & uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_PRESERVE ? "preserve"
                                     : c->flags & uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_NONE  ? "none"
                                                                                                         : "zero";
                return fmt::format("; the range was last converted to {} by {} with content policy {}",
                                   c->attributes & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE ? "private" : "shared",
                                   step_label(*it), policy_effect(policy));
            }
        }
        return "";
    }

    void check(StepRecord& r) {
        const scn::Step& st = *r.step;
        const scn::Expect& ex = st.expect;
        if (r.outcome.skipped || r.interrupted) return;
        if (is_vcpu_step(st)) {
            // KVM_RUN's errno: an exit that ended the step, else ok.
            int err = r.exit ? r.exit->err : 0;
            if (r.hypercall_ret && *r.hypercall_ret < 0) err = int(-*r.hypercall_ret == 1000 ? ENOSYS : -*r.hypercall_ret);
            if (ex.exit) {
                if (!r.exit) fail(r, fmt::format("expected a {} exit, the step completed without one", ex.exit->reason));
                else {
                    const auto& e = *r.exit;
                    if (e.reason != ex.exit->reason)
                        fail(r, fmt::format("expected exit {}, got {}{}", ex.exit->reason, e.reason,
                                            e.detail.empty() ? "" : " (" + e.detail + ")"));
                    if (ex.exit->gpa && *ex.exit->gpa != e.gpa)
                        fail(r, fmt::format("expected exit gpa {:#x}, got {:#x}", *ex.exit->gpa, e.gpa));
                    if (ex.exit->size && *ex.exit->size != e.size)
                        fail(r, fmt::format("expected exit size {:#x}, got {:#x}", *ex.exit->size, e.size));
                    if (ex.exit->flags && *ex.exit->flags != e.flags)
                        fail(r, fmt::format("expected exit flags {:#x}, got {:#x}", *ex.exit->flags, e.flags));
                }
            } else if (r.exit && !ex.err) {
                fail(r, fmt::format("vCPU stopped: {} {}", r.exit->reason, r.exit->detail));
            }
            if (ex.err) {
                auto want = errno_from_name(*ex.err);
                if (want && *want != err) fail(r, fmt::format("expected errno {}, got {}", *ex.err, errno_name(err)));
            } else if (!ex.exit && err && !r.exit) {
                fail(r, fmt::format("hypercall failed: {}", errno_name(err)));
            }
            if (ex.bytes) {
                if (!r.byte0) fail(r, "expected bytes, but nothing was read");
                else if (r.bytes_mixed || *r.byte0 != *ex.bytes)
                    fail(r, fmt::format("expected every byte read to be {:#04x}, got {}{}", *ex.bytes,
                                        r.bytes_mixed ? "differing bytes" : fmt::format("{:#04x}", *r.byte0),
                                        conversion_hint(r)));
            }
            // An AP bring-up: what the guest saw (an RMPADJUST status or KVM's GHCB error).
            if (const auto* h = std::get_if<scn::MapGpaRange>(&st.op); h && h->ap_create && !r.exit) {
                const std::string got = scn::ap_status_name(r.hypercall_ret ? uint64_t(*r.hypercall_ret) : 0);
                if (ex.status && got != *ex.status) fail(r, fmt::format("expected status {}, got {}", *ex.status, got));
                else if (!ex.status && got != "ok")
                    fail(r, fmt::format("AP {} failed: {} (add \"expect\": {{\"status\": \"{}\"}} if that is intended)",
                                        h->ap_request == 2 ? "destroy" : "creation", got, got));
            }
            return;
        }
        const StepOutcome& o = r.outcome;
        if (ex.signal) {
            if (o.signal != ex.signal)
                fail(r, fmt::format("expected {}, got {}", *ex.signal, o.signal ? *o.signal : errno_name(o.err)));
        } else if (o.signal) {
            fail(r, fmt::format("host access raised {}", *o.signal));
        }
        if (ex.err) {
            auto want = errno_from_name(*ex.err);
            if (want && *want != o.err)
                fail(r, fmt::format("expected errno {}, got {}{}", *ex.err, errno_name(o.err),
                                    o.err && !o.why.empty() ? " (" + o.why + ")"
                                                            : enotty_hint(st, o.err, m_->config().kvm)));
        } else if (o.err && !ex.signal) {
            fail(r, fmt::format("{} failed: {}{} (add \"expect\": {{\"errno\": \"{}\"}} if that is intended)",
                                op_name(st), errno_name(o.err),
                                o.why.empty() ? enotty_hint(st, o.err, m_->config().kvm) : ": " + o.why,
                                errno_name(o.err)));
        }
        if (ex.error_offset && o.error_offset != ex.error_offset)
            fail(r, fmt::format("expected error_offset {:#x}, got {}", *ex.error_offset,
                                o.error_offset ? fmt::format("{:#x}", *o.error_offset) : "none"));
        if (ex.remaining && o.remaining != ex.remaining)
            fail(r, fmt::format("expected remaining {:#x}, got {}", *ex.remaining,
                                o.remaining ? fmt::format("{:#x}", *o.remaining) : "none"));
        if (ex.dirty_pages && (!o.dirty || o.dirty->size() != *ex.dirty_pages))
            fail(r, fmt::format("expected {} dirty pages, got {}", *ex.dirty_pages,
                                o.dirty ? std::to_string(o.dirty->size()) : "no dirty log"));
        if (ex.dirty_bitmap && (!o.dirty || *o.dirty != *ex.dirty_bitmap))
            fail(r, fmt::format("expected dirty pages [{}], got {}", fmt::join(*ex.dirty_bitmap, ", "),
                                o.dirty ? fmt::format("[{}]", fmt::join(*o.dirty, ", ")) : "no dirty log"));
        if (ex.launch_digest && o.launch_digest != ex.launch_digest)
            fail(r, fmt::format("expected launch digest {}, got {}", *ex.launch_digest,
                                o.launch_digest ? *o.launch_digest : "none"));
        if (ex.value && o.value != ex.value)
            fail(r, fmt::format("expected value {}, got {}", *ex.value, o.value ? std::to_string(*o.value) : "none"));
        if (ex.bytes) {
            if (!o.bytes) fail(r, "expected bytes, but nothing was read");
            else if (o.bytes_mixed || *o.bytes != *ex.bytes)
                fail(r, fmt::format("expected every byte read to be {:#04x}, got {}{}", *ex.bytes,
                                    o.bytes_mixed ? "differing bytes" : fmt::format("{:#04x}", *o.bytes),
                                    conversion_hint(r)));
        }
    }

    void controller() {
        try {
            for (size_t i = 0; i < s_.steps.size(); ++i) {
                if (cpu::Vcpu::stop_requested()) {
                    interrupted = true;
                    break;
                }
                prog_.step = i;
                const auto w0 = std::chrono::steady_clock::now();
                const scn::Step& st = s_.steps[i];
                unsigned host_idx = 0;
                sc_event_and_list evs;
                if (auto* group = std::get_if<std::vector<scn::Step>>(&st.op)) {
                    const size_t first = records.size();
                    for (size_t k = 0; k < group->size(); ++k) {
                        records.push_back(StepRecord{});
                        records.back().index = i;
                    }
                    for (size_t k = 0; k < group->size(); ++k) launch((*group)[k], records[first + k], host_idx, evs);
                    wait(evs);
                    for (size_t k = first; k < records.size(); ++k) {
                        collect(records[k]);
                        check(records[k]);
                    }
                } else {
                    records.push_back(StepRecord{});
                    records.back().index = i;
                    launch(st, records.back(), host_idx, evs);
                    wait(evs);
                    collect(records.back());
                    check(records.back());
                }
                step_wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count());
                if (opt_.check_invariants)
                    if (auto bad = m_->check_invariants())
                        failures.push_back(Failure{"invariant", st.pointer, i, *bad,
                                                   fmt::format("invariant violated after step {} ({}): {}", i,
                                                               st.pointer, *bad)});
            }
        } catch (const std::exception& e) {
            fatal = e.what();
        }
        for (const auto& r : records) interrupted |= r.interrupted;
        // Returning leaves every other thread waiting on events nobody will notify:
        // sc_start() returns by starvation, without sc_stop()'s report.
    }

    const scn::Scenario& s_;
    Machine* m_ = nullptr;
    std::vector<cpu::Vcpu*> vcpus_;
    std::vector<HostThread*> hosts_;
    RunOptions opt_;
    Progress& prog_;
};

// The guest's page-table region: the scenario's, else the top of the first memslot
// (1/256 of it, at least 64 KiB: identity-mapping all of it with 4K pages needs 1/512).
std::pair<Gpa, uint64_t> guest_pt_region(const scn::Scenario& s) {
    if (s.vm.guest_pt_region) return {Gpa(s.vm.guest_pt_region->gpa), s.vm.guest_pt_region->size};
    if (s.vm.memslots.empty()) throw std::invalid_argument("guest paging needs a memslot for its page tables (vm.memslots is empty; set vm.guest_paging to \"none\" or vm.guest_pt_region)");
    const auto& m = s.vm.memslots.front();
    uint64_t size = std::max<uint64_t>(64 * 1024, (m.size / 256 + kPageMask) & ~kPageMask);
    size = std::min(size, m.size);
    return {Gpa(m.gpa + m.size - size), size};
}

// What a step expected, as one short line (results.json steps[].expected).
std::string expect_text(const scn::Expect& e) {
    std::vector<std::string> parts;
    if (e.err) parts.push_back("errno " + *e.err);
    if (e.exit) {
        std::string x = "exit " + e.exit->reason;
        if (e.exit->gpa) x += fmt::format(" gpa {:#x}", *e.exit->gpa);
        if (e.exit->size) x += fmt::format(" size {:#x}", *e.exit->size);
        if (e.exit->flags) x += fmt::format(" flags {:#x}", *e.exit->flags);
        parts.push_back(x);
    }
    if (e.signal) parts.push_back(*e.signal);
    if (e.error_offset) parts.push_back(fmt::format("error_offset {:#x}", *e.error_offset));
    if (e.remaining) parts.push_back(fmt::format("remaining {:#x}", *e.remaining));
    if (e.value) parts.push_back(fmt::format("value {}", *e.value));
    if (e.bytes) parts.push_back(fmt::format("bytes {:#04x}", *e.bytes));
    if (e.launch_digest) parts.push_back("launch_digest " + *e.launch_digest);
    if (e.status) parts.push_back("status " + *e.status);
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
    return out;
}

// The SystemC module hierarchy and each hardware module's counters (results.json
// "modules"; docs/systemc.md). Names are the modules' hierarchical names.
nlohmann::json module_tree(Machine& machine, MemSystem& memsys, unsigned llc_shared_by,
                           const std::vector<cpu::Vcpu*>& vcpus) {
    PhysMemTarget& phys = memsys.phys;
    const DramTarget& dram = memsys.dram;
    nlohmann::json m = nlohmann::json::object();
    // Each LLC's hits and misses: those of the cores that share it.
    std::vector<CacheLevelStats> llc_refs(memsys.llcs.size());
    for (unsigned i = 0; i < vcpus.size(); ++i) {
        cpu::Vcpu& vc = *vcpus[i];
        const LlcModule* llc = memsys.llc_of(i, llc_shared_by);
        const auto& st = vc.translator().stats();
        m[vc.translator().module().name()] = {{"kind", std::string(vc.translator().kind())},
                                     {"socket", "mem -> " + std::string(vc.caches().name()) + ".in"},
                                     {"l1_hits", st.l1_hits},
                                     {"l2_hits", st.l2_hits},
                                     {"walks", st.misses},
                                     {"walk_mem_refs", st.walk_mem_refs},
                                     {"pwc_hits", st.pwc_hits},
                                     {"ntlb_hits", st.ntlb_hits}};
        nlohmann::json c = {{"kind", "cache hierarchy"},
                             {"sockets", fmt::format("in; dram -> {}; phys -> {}",
                                                     llc ? llc->in.name() : dram.socket.name(), phys.socket.name())}};
        const auto& cs = vc.caches().caches().stats();
        const auto& cc = vc.caches().caches().config();
        for (size_t l = 0; l < cc.levels.size(); ++l)
            c[cc.levels[l].name] = {{"hits", cs.levels[l].hits}, {"misses", cs.levels[l].misses}};
        c["line_fills"] = cs.dram;
        m[vc.caches().name()] = c;
        if (llc && !cs.levels.empty()) {
            auto& r = llc_refs[size_t(std::find(memsys.llcs.begin(), memsys.llcs.end(), llc) - memsys.llcs.begin())];
            r.hits += cs.levels.back().hits;
            r.misses += cs.levels.back().misses;
        }
    }
    for (size_t g = 0; g < memsys.llcs.size(); ++g) {
        const LlcModule& l = *memsys.llcs[g];
        m[l.name()] = {{"kind", "llc"},
                       {"sockets", fmt::format("in; dram -> {}", dram.socket.name())},
                       {"size_bytes", l.array().config().size_bytes},
                       {"ways", l.array().config().ways},
                       {"hits", llc_refs[g].hits},
                       {"misses", llc_refs[g].misses},
                       {"line_fills", l.core_fills()}};
    }
    const auto& ds = dram.timing().stats();
    nlohmann::json d = {{"kind", "dram"},
                        {"model", dram.timing().config().model == DramConfig::Model::ddr5 ? "ddr5" : "fixed"},
                        {"reads", ds.reads},
                        {"writes", ds.writes}};
    if (dram.timing().config().model == DramConfig::Model::ddr5) {
        d["row_hits"] = ds.row_hits;
        d["row_empty"] = ds.row_empty;
        d["row_conflicts"] = ds.row_conflicts;
    }
    m[dram.name()] = d;
    m[phys.name()] = {{"kind", "physical memory"},
                      {"pages_resident", phys.mem().pages_resident()},
                      {"pages_uniform", phys.mem().pages_uniform()}};
    // The VM's hardware: the RMP of an SEV-SNP VM (its instruction and check counters are
    // the rmp.* metrics; here its own table traffic through its socket).
    if (const rmp::RmpModule* r = machine.rmp_module())
        m[r->name()] = {{"kind", "rmp"},
                        {"socket", "table -> " + std::string(phys.socket.name())},
                        {"direct", r->direct()},
                        {"transactions", r->transactions()},
                        {"debug_transactions", r->debug_transactions()}};
    // The TDX module of a TD (its leaves' counters are the tdx.* metrics; here its own
    // memory traffic through its socket).
    if (const tdx::SeamModule* t = machine.tdx_module())
        m[t->name()] = {{"kind", "tdx module"},
                        {"socket", "mem -> " + std::string(phys.socket.name())},
                        {"direct", t->direct()},
                        {"reads", t->reads()},
                        {"writes", t->writes()},
                        {"debug_transactions", t->debug_transactions()}};
    return m;
}

}  // namespace

void request_interrupt() noexcept { cpu::Vcpu::request_stop(); }

RunStatus run_status(const RunOutput& out, bool interrupted) {
    if (!out.fatal.empty()) return RunStatus::error;
    if (interrupted) return RunStatus::interrupted;
    return out.failures.empty() ? RunStatus::passed : RunStatus::failed;
}

// Work the scenario asks for that the model cannot do in reasonable time or memory,
// refused before anything runs with an estimate of the cost and the limit it exceeds.
static std::string check_step_costs(const scn::Scenario& s, const ParamSet& p) {
    const uint64_t max_accesses = p.get_u64("sim.max_accesses");
    const uint64_t host_mem = p.get_u64("host.mem_size");
    const uint64_t max_pages = p.get_u64("sim.max_host_pages");
    // Writes and pins back every page with its own host page and bookkeeping.
    auto too_many_pages = [&](const std::string& ptr, uint64_t size) {
        const uint64_t pages = (size + kPageMask) >> kPageShift;
        if (pages <= max_pages) return std::string();
        return fmt::format("{}: expected at most sim.max_host_pages = {} pages backed one by one, got {} ({}, an "
                           "estimated {:.1f} GB of host memory); lower the size or raise sim.max_host_pages",
                           ptr, max_pages, pages, jsonu::format_size(size), double(pages) * 200 / 1e9);
    };
    uint64_t total = 0;
    std::string first_big;   // the step that contributes most, for the pointer
    uint64_t biggest = 0;
    std::string err;
    std::function<void(const scn::Step&)> visit = [&](const scn::Step& st) {
        if (!err.empty()) return;
        if (auto* a = std::get_if<scn::Access>(&st.op)) {
            const uint64_t one = planned_accesses(*a);
            const uint64_t n = one > UINT64_MAX / std::max<size_t>(1, st.vcpus.size()) ? UINT64_MAX : one * st.vcpus.size();
            total = n > UINT64_MAX - total ? UINT64_MAX : total + n;
            if (n > biggest) {
                biggest = n;
                first_big = st.pointer + (a->count ? "/access/count" : "/access/size");
            }
        } else if (auto* h = std::get_if<scn::HostAccess>(&st.op)) {
            // Every page of a host access is visited (and a write or pin backs it with a
            // host page): more than the simulated host memory cannot be meant.
            if (h->op != scn::HostAccess::Op::mmap && h->op != scn::HostAccess::Op::unpin &&
                h->op != scn::HostAccess::Op::munmap && h->size > host_mem) {
                const char* n[] = {"read", "write", "mmap", "pin", "unpin", "munmap"};
                err = fmt::format("{}/host/{}/size: expected at most the simulated host memory (host.mem_size = {}), "
                                  "got {} ({} pages to visit)",
                                  st.pointer, n[int(h->op)], jsonu::format_size(host_mem), jsonu::format_size(h->size),
                                  h->size >> kPageShift);
            } else if (h->op == scn::HostAccess::Op::write || h->op == scn::HostAccess::Op::pin) {
                err = too_many_pages(st.pointer + (h->op == scn::HostAccess::Op::write ? "/host/write/size" : "/host/pin/size"),
                                     h->size);
            }
        } else if (auto* r = std::get_if<scn::EncryptRegion>(&st.op)) {
            if (r->reg && r->size > host_mem)
                err = fmt::format("{}/ioctl/memory_encrypt_reg_region/size: expected at most the simulated host memory "
                                  "(host.mem_size = {}) to pin, got {}",
                                  st.pointer, jsonu::format_size(host_mem), jsonu::format_size(r->size));
            else if (r->reg)
                err = too_many_pages(st.pointer + "/ioctl/memory_encrypt_reg_region/size", r->size);
        } else if (auto* g = std::get_if<std::vector<scn::Step>>(&st.op)) {
            for (const auto& m : *g) visit(m);
        }
    };
    for (const auto& st : s.steps) visit(st);
    if (!err.empty()) return err;
    if (total > max_accesses) {
        // About 20 M accesses per host second when the TLB hits (tools/bench/run), fewer on walks.
        const double secs = double(total) / 20e6;
        return fmt::format("{}: expected at most sim.max_accesses = {} guest accesses in all, got {} (an estimated {} of "
                           "host time at 20 M accesses/s); lower the count or raise sim.max_accesses",
                           first_big, max_accesses, total,
                           secs < 3600 ? fmt::format("{:.0f} s", secs)
                           : secs < 86400 * 365.0 ? fmt::format("{:.1f} h", secs / 3600)
                                                  : fmt::format("{:.1e} years", secs / (86400 * 365.0)));
    }
    return "";
}

RunOutput run_scenario(const scn::Scenario& s, const ParamSet& p, const RunOptions& opt) {
    RunOutput out;
    if (std::string err = check_step_costs(s, p); !err.empty()) {
        out.refused = err;
        return out;
    }
    const auto t0 = std::chrono::steady_clock::now();
    MachineConfig mc;
    try {
        mc = machine_config(p, s);
    } catch (const std::invalid_argument& e) {
        out.refused = fmt::format("/platform: {}", e.what());
        return out;
    }
    // A VM type that needs one vendor's hardware (TDX: Intel EPT and the TDX module) does
    // not run on another preset: refused, not approximated.
    if (const auto t = kvm::vm_type_from_name(s.vm.type)) {
        const auto need = kvm::kvm_default_arch_ops(*t).requires_host();
        const auto have = mc.mmu.nested_format == mmu::NestedFormat::ept ? kvm::HostPaging::intel_ept
                                                                          : kvm::HostPaging::amd_npt;
        if (need && *need != have) {
            out.refused = fmt::format("/platform: a {} VM needs an Intel host with EPT and the TDX module, such as "
                                      "\"sapphire-rapids\"; preset {} is not one", s.vm.type, s.platform);
            return out;
        }
    }
    // 2M private leaves need 2M guest_memfd folios to map (kvm_max_level_for_order()).
    if (mc.tdx_huge_private && mc.kvm.gmem_max_order != 9) {
        out.refused = "/params/kvm.config.tdx_huge_private: needs gmem.max_order = 9 (2 MiB guest_memfd folios)";
        return out;
    }
    sc_set_time_resolution(1, SC_PS);
    tlm_utils::tlm_quantumkeeper::set_global_quantum(sc_time(double(mc.quantum_ns), SC_NS));

    // hvsim run --casemate: the stage-2 maintenance as Casemate checks it (arm64 presets).
    std::ofstream casemate_file;
    std::unique_ptr<stage2::CasemateTrace> casemate;
    if (!opt.casemate.empty() && mc.stage2 && !opt.setup_only) {
        casemate_file.open(opt.casemate);
        if (!casemate_file) {
            out.refused = "--casemate: cannot write " + opt.casemate;
            return out;
        }
        casemate = std::make_unique<stage2::CasemateTrace>(casemate_file);
        mc.stage2_sink = casemate.get();
    }
    // The platform, elaborated inside `top`: the machine (KVM and the VM, whose hardware
    // modules, the RMP of an SEV-SNP VM and the TDX module of a TD, are then top.rmp and
    // top.tdx), physical memory and DRAM shared by the cores (top.mem), the vCPU modules
    // each bringing its MMU and caches (top.vcpuN), the VMM threads (top.vmmN) and the debug
    // port the invariant checks read memory through (top.debug; docs/systemc.md).
    mc.hw_modules = true;
    std::unique_ptr<Machine> machine;
    kvm::CycleCounter boot;
    std::unique_ptr<cpu::GuestOs> guest;
    MemSystem* memsys = nullptr;
    std::vector<const CacheHierarchy*> caches;
    std::vector<const cpu::Translator*> mmus;
    std::vector<cpu::Vcpu*> vcpus;
    std::vector<HostThread*> hosts;
    Progress prog;
    auto elaborate = [&](Top& t) {
        machine = std::make_unique<Machine>(s, mc);
        if (std::string err = machine->setup(boot); !err.empty()) {
            out.refused = err;
            return;
        }
        if (s.vm.guest_paging_levels) {
            if (!s.vm.guest_pt_region && s.vm.memslots.empty()) {
                out.refused = "/vm/guest_paging: guest paging needs a memslot for its page tables (vm.memslots is "
                              "empty; set vm.guest_paging to \"none\" or vm.guest_pt_region)";
                return;
            }
            auto [base, size] = guest_pt_region(s);
            cpu::GuestOsConfig gc;
            gc.levels = s.vm.guest_paging_levels;
            // The guest's tables are in the format of the platform's MMU: arm64's stage 1 under stage 2.
            gc.format = mc.stage2 ? cpu::GuestPtFormat::vmsa : cpu::GuestPtFormat::x86;
            gc.page_size = s.vm.guest_page_size;
            gc.pt_base = base;
            gc.pt_size = size;
            gc.pf_cycles = mc.costs.guest_pf;
            guest = std::make_unique<cpu::GuestOs>(gc);
        }
        // The machine completes the MMU configuration from the VM type (its arch ops).
        const MachineConfig& vmc = machine->config();
        memsys = new MemSystem("mem", machine->mem(), mc.dram, mc.period_ps, mc.mem, s.vm.vcpus);
        // SEV-SNP: the RMP's own table references go to physical memory (rmp_module.hpp).
        if (rmp::RmpModule* rm = machine->rmp_module()) rm->table.bind(memsys->phys.socket);
        // TDX: the module's S-EPT references, page copies and zeroing (seam_module.hpp).
        if (tdx::SeamModule* tm = machine->tdx_module()) tm->mem.bind(memsys->phys.socket);
        for (unsigned i = 0; i < s.vm.vcpus; ++i) {
            cpu::VcpuConfig vc;
            // vCPU i shares LLC i / mem.llc.shared_by with its neighbours (a CCX, a mesh).
            LlcModule* llc = memsys->llc_of(i, mc.mem.llc_shared_by);
            if (llc) vc.llc = &llc->array();
            vc.cache_data = mc.cache_data;
            vc.id = i;
            vc.mmu = vmc.mmu;
            vc.mem = mc.mem;
            vc.period_ps = mc.period_ps;
            vc.data_access_cycles = mc.data_access_cycles;
            vc.wide_store_line_cycles = mc.wide_store_line;
            vc.clear_page_cycles = mc.guest_clear_page;
            vc.guest_tables_enc = vmc.mmu.guest_tables_encrypted;
            vc.make_translator = machine->translator_factory();
            auto* v = new cpu::Vcpu(fmt::format("vcpu{}", i).c_str(), vc, guest.get(), *machine);
            v->data.bind(memsys->phys.socket);
            v->caches().phys.bind(memsys->phys.socket);
            // Line fills: through the LLC this core shares to DRAM (no caches: straight there).
            if (llc) v->caches().dram.bind(llc->in);
            else v->caches().dram.bind(memsys->dram.socket);
            machine->attach_vcpu(i, v->translator());
            machine->attach_vcpu_module(i, *v);
            caches.push_back(&v->caches().caches());
            mmus.push_back(&v->translator());
            vcpus.push_back(v);
        }
        for (unsigned i = 0; i < host_threads_needed(s.steps); ++i)
            hosts.push_back(new HostThread(fmt::format("vmm{}", i).c_str(), mc.period_ps));
        auto* debug = new DebugMemPort("debug");
        debug->socket.bind(memsys->phys.socket);
        machine->attach_debug_port(debug);
        t.attach(*machine, vcpus, hosts);
    };
    auto* top = new Top("top", s, opt, prog, elaborate);
    if (!out.refused.empty()) return out;
    // kvm->mmu_lock is held in simulated time (kernel/mmu_lock.hpp): the global time here,
    // the taking thread's local time from the context it charges (ExecContext::local_cycles()).
    if (kvm::Kvm* k = machine->kvm())
        k->mmu_lock().set_clock([ps = mc.period_ps] { return Cycles(sc_time_stamp().value() / ps); });
    // The TDX module's locks are held in simulated time (KvmTdx::set_clock()).
    if (kvm::TdxBackend* t = machine->tdx()) {
        t->kvm_tdx().set_clock([ps = mc.period_ps] { return Cycles(sc_time_stamp().value() / ps); });
        // TDH.VP.ENTER and the TD exit reach the module as the vCPU's own (its SystemC thread).
        auto vcpu_of = std::make_shared<std::unordered_map<const sc_object*, unsigned>>();
        for (unsigned i = 0; i < vcpus.size(); ++i)
            for (sc_object* o : vcpus[i]->get_child_objects())
                if (sc_process_handle(o).valid()) (*vcpu_of)[o] = i;
        t->set_current_vcpu([vcpu_of]() -> std::optional<unsigned> {
            const sc_process_handle p = sc_get_current_process_handle();
            if (!p.valid()) return std::nullopt;
            auto it = vcpu_of->find(p.get_process_object());
            if (it == vcpu_of->end()) return std::nullopt;
            return it->second;
        });
    }
    std::unique_ptr<Trace> trace;
    std::vector<uint32_t> vcpu_tracks;
    if (opt.trace && !opt.setup_only) {
        trace = std::make_unique<Trace>(*opt.trace, mc.period_ps, s.name);
        for (unsigned i = 0; i < s.vm.vcpus; ++i) vcpu_tracks.push_back(trace->thread_track(fmt::format("vCPU {}", i)));
        for (unsigned i = 0; i < hosts.size(); ++i)
            hosts[i]->set_trace(trace.get(), trace->thread_track(fmt::format("VMM thread {}", i)),
                                fmt::format("VMM thread {}", i), machine.get());
        machine->set_trace(trace.get(), vcpu_tracks);
    }

    // Every metric named in expect.metrics must be one this run reports: the names are
    // known once the machine is elaborated (they depend on the VM and the cache levels).
    {
        ResultInputs pre{s, p, *machine, guest.get(), vcpus, mmus, caches, 0, 0, 0.0, nullptr, RunStatus::passed, {}, nullptr, {}};
        const nlohmann::json m = build_results(pre).at("metrics");
        std::vector<std::string> names;
        for (auto it = m.begin(); it != m.end(); ++it) names.push_back(it.key());
        // The scenario's bounds for this platform's architecture (expect.arch): another
        // architecture's metrics (s2.* on x86) need not exist in this run.
        const std::vector<scn::EffectiveBound> all =
            scn::effective_metric_bounds(s, scn::expect_arch_of_nested_format(p.get_string("mmu.nested_format")));
        for (const auto& eb : all)
            if (!m.contains(eb.name)) {
                out.refused = fmt::format("{}: expected a metric this run reports, got '{}'{}", eb.ptr, eb.name,
                                          jsonu::suggestion_suffix(eb.name, names));
                return out;
            }
    }
    if (opt.setup_only) return out;

    prog.steps = s.steps.size();
    std::function<void(const scn::Step&)> plan = [&](const scn::Step& st) {
        if (auto* a = std::get_if<scn::Access>(&st.op)) {
            const uint64_t n = planned_accesses(*a) * st.vcpus.size();
            prog.planned = n > UINT64_MAX - prog.planned ? UINT64_MAX : prog.planned + n;
        } else if (auto* g = std::get_if<std::vector<scn::Step>>(&st.op)) {
            for (const auto& m : *g) plan(m);
        }
    };
    for (const auto& st : s.steps) plan(st);
    if (trace) {
        top->trace = trace.get();
        top->vcpu_tracks = vcpu_tracks;
        top->private_pages_track = trace->counter_track("private pages", "pages");
        top->shared_pages_track = trace->counter_track("shared pages (memslot pages not private)", "pages");
        for (unsigned i = 0; i < s.vm.vcpus; ++i) {
            top->hit_rate_tracks.push_back(trace->counter_track(fmt::format("vCPU {}: TLB hit rate", i), "%"));
            top->walk_tracks.push_back(trace->counter_track(fmt::format("vCPU {}: 2D walks per step", i), "walks"));
            top->cache_hit_tracks.push_back(
                trace->counter_track(fmt::format("vCPU {}: cache hit rate (walker and data references)", i), "%"));
        }
    }
    prog.start(opt.progress && isatty(2), s.name);
    sc_start();
    prog.finish();
    // The VMM destroys the VM (pKVM: teardown reclaims every page, timed apart).
    machine->finish_run();

    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!top->fatal.empty()) out.fatal = top->fatal;
    out.failures = std::move(top->failures);
    out.step_wall_s = top->step_wall;
    ResultInputs in{s, p, *machine, guest.get(), vcpus, mmus, caches, boot.total,
                    sc_time_stamp().value() / mc.period_ps, wall, nullptr, RunStatus::passed, {}, nullptr, {}};
    std::vector<StepSummary> steps;
    for (const auto& r : top->records) {
        StepSummary ss;
        ss.index = r.index;
        ss.pointer = r.step->pointer;
        ss.name = r.step->name;
        ss.op = op_name(*r.step);
        ss.cycles = r.end - r.start;
        ss.accesses = r.accesses;
        ss.walks = r.walks;
        ss.passed = !r.failed;
        if (const bool vstep = is_vcpu_step(*r.step); vstep ? r.byte0.has_value() : r.outcome.bytes.has_value()) {
            const bool mixed = vstep ? r.bytes_mixed : r.outcome.bytes_mixed;
            ss.bytes = mixed ? "mixed" : fmt::format("{:#04x}", vstep ? *r.byte0 : *r.outcome.bytes);
        }
        ss.expected = expect_text(r.step->expect);
        if (r.interrupted) {
            ss.result = "interrupted";
        } else if (is_vcpu_step(*r.step)) {
            if (r.exit) ss.result = r.exit->reason == "error" ? errno_name(r.exit->err) : "exit " + r.exit->reason;
            else if (const auto* h = std::get_if<scn::MapGpaRange>(&r.step->op); h && h->ap_create)
                ss.result = scn::ap_status_name(r.hypercall_ret ? uint64_t(*r.hypercall_ret) : 0);
            else if (r.hypercall_ret && *r.hypercall_ret) ss.result = fmt::format("ret {}", *r.hypercall_ret);
            else ss.result = "ok";
        } else {
            ss.result = r.outcome.skipped ? "skipped" : r.outcome.signal ? *r.outcome.signal : errno_name(r.outcome.err);
        }
        steps.push_back(ss);
    }
    in.steps = &steps;
    in.warnings = machine->warnings();
    // Metric bounds are checked on the metrics (a first pass), then the document is built
    // with the status they give. An interrupted run does not check them (it is partial).
    out.results = build_results(in);
    if (!top->interrupted && top->fatal.empty())
        out.failures = check_metric_expectations(s, out.results, std::move(out.failures));
    out.status = run_status(out, top->interrupted);
    in.status = out.status;
    in.error = out.fatal;
    in.failures = &out.failures;
    out.results = build_results(in);
    out.results["modules"] = module_tree(*machine, *memsys, mc.mem.llc_shared_by, vcpus);
    if (trace) {
        machine->set_trace(nullptr, {});
        trace->write();
        out.trace_summary = fmt::format("{} events{}{}", trace->events(),
                                        trace->dropped_exits() ? fmt::format(", {} exits not recorded (--trace-max-events)",
                                                                             trace->dropped_exits())
                                                               : std::string(),
                                        trace->dropped_walks() ? fmt::format(", {} sampled walks not recorded (--trace-max-events)",
                                                                             trace->dropped_walks())
                                                               : std::string());
    }
    // SystemC objects are torn down with the process; the machine first (it holds
    // references into the MMUs only through the vCPU slots, which die with it).
    return out;
}

}  // namespace hvsim
