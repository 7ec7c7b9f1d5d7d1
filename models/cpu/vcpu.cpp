#include "models/cpu/vcpu.hpp"

#include "models/mem/debug_port.hpp"
#include "models/cpu/vcpu_loop.hpp"
#include "models/cpu/x86_translator.hpp"

#include <algorithm>

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

namespace hvsim::cpu {

namespace {
// The guest ABI of a page-state change (include/uapi/linux/kvm_para.h).
constexpr uint64_t kKvmHcMapGpaRange = 12;
constexpr uint64_t kMapGpaRangeEncrypted = 1ull << 4;
}  // namespace

namespace {

// A fault that keeps coming back means KVM or the VMM cannot resolve it (a livelock
// in the model or the scenario); stop with a message instead of spinning forever.
constexpr unsigned kMaxFaultRetries = 10000;

}  // namespace

std::atomic<uint64_t> Vcpu::progress_{0};
std::atomic<bool> Vcpu::stop_{false};

Vcpu::Vcpu(sc_core::sc_module_name name, const VcpuConfig& cfg, GuestOs* guest, VcpuHost& host)
    : sc_module(name),
      data("data"),
      cfg_(cfg),
      xlat_(cfg.make_translator ? cfg.make_translator("mmu", cfg) : X86Translator::make("mmu", cfg)),
      caches_("caches", cfg.mem, cfg.period_ps, cfg.llc),
      guest_(guest),
      host_(host) {
    data.bind(*this);
    xlat_->mem_socket().bind(caches_.in);
    caches_.caches().set_clock(this);
    SC_THREAD(thread);
    if (guest_ && guest_->config().levels) xlat_->set_guest_root(guest_->cr3());
}

void Vcpu::end_of_elaboration() {
    if (auto* t = dynamic_cast<PhysMemTarget*>(data.operator->())) mem_ = &t->mem();
}

tlm::tlm_sync_enum Vcpu::nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) {
    return tlm::TLM_COMPLETED;
}

void Vcpu::invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) {
    if (dmi_valid_ && start <= dmi_.get_end_address() && end >= dmi_.get_start_address()) dmi_valid_ = false;
}

void Vcpu::data_transport(tlm::tlm_command cmd, uint64_t a, uint8_t* p, unsigned n, bool fill) {
    ++data_tr_count_;
    set_payload(data_tr_, cmd, a, p, n);
    if (fill) data_tr_.set_extension(&fill_ext_);
    // Physical memory annotates no delay; data_access_cycles is the access's cost.
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    data->b_transport(data_tr_, d);
    if (fill) data_tr_.clear_extension(&fill_ext_);
    if (data_tr_.is_response_error())
        throw std::runtime_error(fmt::format("vCPU {}: data access at {:#x} failed: {}", cfg_.id, a,
                                            data_tr_.get_response_string()));
    if (cmd == tlm::TLM_READ_COMMAND && data_tr_.is_dmi_allowed()) {
        // Ask for direct access to what was just read: the next reads of it skip the socket.
        data_tr_.set_address(a);
        dmi_valid_ = data->get_direct_mem_ptr(data_tr_, dmi_) && dmi_.is_read_allowed();
    }
}

uint64_t Vcpu::load64(Hpa a) {
    if (mem_) return mem_->read64(a);
    uint64_t v = 0;
    data_transport(tlm::TLM_READ_COMMAND, a.raw() & ~7ull, reinterpret_cast<uint8_t*>(&v), 8, false);
    return v;
}

void Vcpu::store64(Hpa a, uint64_t v) {
    if (mem_) return mem_->write64(a, v);
    data_transport(tlm::TLM_WRITE_COMMAND, a.raw() & ~7ull, reinterpret_cast<uint8_t*>(&v), 8, false);
}

void Vcpu::post_access(const AccessSpec& a) {
    if (busy_) throw std::logic_error("vCPU given work while busy");
    kind_ = Kind::access;
    access_ = a;
    busy_ = true;
    work_ev_.notify(sc_core::SC_ZERO_TIME);
}

void Vcpu::post_hypercall(const HypercallSpec& h) {
    if (busy_) throw std::logic_error("vCPU given work while busy");
    kind_ = Kind::hypercall;
    hypercall_ = h;
    busy_ = true;
    work_ev_.notify(sc_core::SC_ZERO_TIME);
}

Cycles Vcpu::cycles_now() const {
    return (sc_core::sc_time_stamp() + qk_.get_local_time()).value() / cfg_.period_ps + pending_;
}

void Vcpu::thread() {
    qk_.reset();
    const Cycles quantum = tlm_utils::tlm_quantumkeeper::get_global_quantum().value() / cfg_.period_ps;
    batch_cycles_ = std::clamp<Cycles>(quantum, 1, kMaxBatchCycles);
    for (;;) {
        sc_core::wait(work_ev_);
        result_ = WorkResult{};
        in_host_ = false;
        // A model error ends this vCPU's work with a message the controller reports,
        // instead of escaping into the SystemC kernel.
        try {
            if (!host_.enter_guest(cfg_.id, *this)) {
                result_.stopped = true;
            } else if (kind_ == Kind::access) {
                xlat_->run_access(*this, access_);
            } else if (kind_ == Kind::hypercall) {
                ++stats_.hypercall_exits;
                const auto& h = hypercall_;
                std::optional<bool> guest_ran;
                if (vc_) guest_ran = vc_->guest_call(*this, h.nr, h.a0, h.a1, h.a2, &result_.hypercall_ret);
                if (guest_ran) {
                    --stats_.hypercall_exits;   // the call's own exits are counted where they happen
                    result_.stopped = !*guest_ran;
                } else if (vc_ && h.nr == kKvmHcMapGpaRange &&
                    !vc_->before_map_gpa_range(*this, Gpa(h.a0), h.a1, h.a2 & kMapGpaRangeEncrypted)) {
                    result_.stopped = true;
                } else if (vc_) {
                    vc_->before_hypercall(*this);
                }
                if (!guest_ran && !result_.stopped && !host_.handle_hypercall(cfg_.id, h.nr, h.a0, h.a1, h.a2, &result_.hypercall_ret, *this))
                    result_.stopped = true;
            }
        } catch (const std::exception& e) {
            error_ = fmt::format("vCPU {}: {}", cfg_.id, e.what());
            result_.stopped = true;
        }
        sync_now();
        kind_ = Kind::none;
        busy_ = false;
        done_.notify(sc_core::SC_ZERO_TIME);
    }
}

void Vcpu::charge(StepName, Cycles c) { add_cycles(c); }

void Vcpu::sync() { sync_now(); }

std::optional<mmu::TranslateResult> Vcpu::translate(Gva va, mmu::AccessType at, bool enc, bool gpa_only,
                                                    bool* emulated) {
    for (unsigned tries = 0;; ++tries) {
        if (tries == kMaxFaultRetries)
            throw std::runtime_error(fmt::format("vCPU {}: translation of {:#x} still faulting after {} retries",
                                                 cfg_.id, va.raw(), kMaxFaultRetries));
        // A fault that keeps retrying (an invalidation in progress on another thread)
        // must let simulated time reach the other thread, as a real vCPU's re-entries do.
        if (tries) maybe_sync();
        if (before_guest_) {   // a request (remote TLB flush) made while it ran or waited
            add_cycles(before_guest_);
            request_cycles_ += before_guest_;
            before_guest_ = 0;
        }
        const Cycles t0 = walk_obs_ ? cycles_now() : 0;
        mmu::TranslateResult r =
            gpa_only ? xlat_->translate_gpa(Gpa(va.raw()), at, enc, !insn_xlate_) : xlat_->translate(va, at, enc);
        if (walk_obs_ && !r.tlb_hit) walk_obs_->walk(t0, va, gpa_only, r);
        add_cycles(r.cycles);
        switch (r.status) {
        case mmu::TranslateResult::Status::ok:
            return r;
        case mmu::TranslateResult::Status::guest_page_fault:
            ++stats_.guest_page_faults;
            if (!guest_) throw std::logic_error("guest page fault without a guest kernel model");
            if (!guest_->handle_page_fault(r.fault_gva, r.fault_level, *this, *this)) return std::nullopt;
            break;
        case mmu::TranslateResult::Status::vc:
            ++stats_.vc_exceptions;
            if (!vc_) throw std::logic_error(fmt::format("vCPU {}: #VC {:#x} at {:#x} without a guest #VC handler",
                                                         cfg_.id, r.error_code, r.fault_gpa.raw()));
            if (!vc_->handle_vc(*this, r.fault_gva, r.fault_gpa, r.error_code)) return std::nullopt;
            break;
        case mmu::TranslateResult::Status::npf:
            in_host_ = true;
            const NpfAction act = host_.handle_npf(cfg_.id, r.fault_gpa, r.error_code, *this);
            in_host_ = false;
            if (act != NpfAction::guest) ++stats_.npf_exits;
            switch (act) {
            case NpfAction::retry:
            case NpfAction::guest: break;
            case NpfAction::stop: return std::nullopt;
            case NpfAction::emulated:
                // Only a data access can be emulated; the guest's own table reads cannot.
                if (!emulated) throw std::runtime_error(fmt::format(
                    "vCPU {}: guest page-table access at {:#x} hit emulated MMIO", cfg_.id, r.fault_gpa.raw()));
                *emulated = true;
                return r;
            }
            break;
        }
    }
}

std::optional<mmu::TranslateResult> Vcpu::translate_for_insn(Gpa gpa) {
    const bool outer = insn_xlate_;
    insn_xlate_ = true;
    auto r = translate(Gva(gpa.raw()), mmu::AccessType::read, true, true);
    insn_xlate_ = outer;
    return r;
}

bool Vcpu::insn_npf(Gpa gpa, uint64_t error_code) {
    ++stats_.npf_exits;
    in_host_ = true;
    const NpfAction act = host_.handle_npf(cfg_.id, gpa, error_code, *this);
    in_host_ = false;
    return act == NpfAction::retry;
}

bool Vcpu::guest_hypercall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t* ret) {
    ++stats_.hypercall_exits;
    in_host_ = true;
    const bool ok = host_.handle_hypercall(cfg_.id, nr, a0, a1, a2, ret, *this);
    in_host_ = false;
    return ok;
}

std::unique_ptr<Translator> X86Translator::make(const char* name, const VcpuConfig& cfg) {
    return std::make_unique<X86Translator>(name, cfg.mmu, cfg.period_ps);
}

void X86Translator::run_access(Vcpu& v, const AccessSpec& a) { v.run_access_on(mod_.mmu(), a); }

uint64_t Vcpu::planned_accesses(const AccessSpec& a) {
    if (a.size == 0) return 0;
    if (a.source) return a.count;   // a replay's length is the trace's (or count)
    using P = AccessSpec::Pattern;
    const unsigned w = a.width ? a.width : (a.pattern == P::seq ? 64u : 8u);
    uint64_t step = a.pattern == P::stride ? a.stride : w;
    if (step == 0) step = w;
    if (a.count) return a.count;
    return a.pattern == P::random ? std::max<uint64_t>(1, a.size / 64) : std::max<uint64_t>(1, a.size / step);
}

std::optional<uint64_t> Vcpu::read_gpa64(Gpa a, ExecContext&) {
    auto tr = translate(Gva(a.raw()), mmu::AccessType::read, cfg_.guest_tables_enc, true);
    if (!tr) return std::nullopt;
    add_cycles(data_cycles(tr->hpa));
    return load64(tr->hpa);
}

std::optional<uint64_t> Vcpu::read_gpa64_for_update(Gpa a, ExecContext&) {
    auto tr = translate(Gva(a.raw()), mmu::AccessType::write, cfg_.guest_tables_enc, true);
    if (!tr) return std::nullopt;
    add_cycles(data_cycles(tr->hpa));
    return load64(tr->hpa);
}

bool Vcpu::write_gpa64(Gpa a, uint64_t v, ExecContext&) {
    auto tr = translate(Gva(a.raw()), mmu::AccessType::write, cfg_.guest_tables_enc, true);
    if (!tr) return false;
    add_cycles(data_cycles(tr->hpa, true));
    store64(tr->hpa, v);
    return true;
}

bool Vcpu::zero_gpa_page(Gpa page, ExecContext&) {
    auto tr = translate(Gva(page.raw()), mmu::AccessType::write, cfg_.guest_tables_enc, true);
    if (!tr) return false;
    // clear_page() of a new guest page-table page (cost.guest_clear_page).
    add_cycles(cfg_.clear_page_cycles);
    store_fill(Hpa(tr->hpa.raw() & ~kPageMask), 0, kPageSize);
    return true;
}

}  // namespace hvsim::cpu
