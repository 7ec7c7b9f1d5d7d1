// A loosely-timed to approximately-timed bridge: hvsim's initiators (the caches' line
// fills, the walkers) call b_transport; a memory model that speaks the AT base protocol
// (nb_transport_fw / nb_transport_bw with BEGIN_REQ, END_REQ, BEGIN_RESP, END_RESP; IEEE
// 1666-2011 section 15.2) stands behind `out`. Bind `in` where the built-in DRAM's socket
// would go (docs/systemc.md, "Binding another memory model").
//
// Each b_transport sends BEGIN_REQ with the caller's annotated delay on a payload of the
// bridge's own (with a memory manager, as AT targets may hold a payload past the call)
// and follows the target's answer:
//   - TLM_COMPLETED, or TLM_UPDATED with BEGIN_RESP: the target answered within the call;
//     its annotated time is the returned delay (END_RESP is sent for the latter), nothing
//     waits: the caller keeps its temporal decoupling and sees the latency as delay;
//   - TLM_ACCEPTED, or TLM_UPDATED with END_REQ: the response comes later on the backward
//     path. The bridge waits for it on an event, which is legal only in an SC_THREAD (the
//     vCPUs' accesses are: the caches are called from the vCPU thread); it returns with
//     a zero delay, the latency having passed as simulated time. Another caller is an
//     error (reported, with TLM_GENERIC_ERROR_RESPONSE).
// The backward path's BEGIN_RESP is answered with TLM_COMPLETED (the response ends there,
// no separate END_RESP). One request at a time is in its request phase (the base
// protocol's request exclusion rule): a second caller waits for the first's END_REQ.
#pragma once

#include <systemc>
#include <tlm>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hvsim {

class LtAtBridge : public sc_core::sc_module, public tlm::tlm_fw_transport_if<>, public tlm::tlm_bw_transport_if<>,
                   private tlm::tlm_mm_interface {
public:
    tlm::tlm_target_socket<32, tlm::tlm_base_protocol_types, 0> in;   // any number of LT initiators
    tlm::tlm_initiator_socket<> out;                                   // the AT target

    explicit LtAtBridge(sc_core::sc_module_name name) : sc_module(name), in("in"), out("out") {
        in.bind(*this);
        out.bind(*this);
    }
    ~LtAtBridge() override {
        for (tlm::tlm_generic_payload* p : pool_) delete p;
    }

    uint64_t transactions() const { return transactions_; }
    uint64_t waited() const { return waited_; }   // transactions that waited for the target

    // ---- tlm_fw_transport_if (from the LT side) ----
    void b_transport(tlm::tlm_generic_payload& tr, sc_core::sc_time& delay) override {
        ++transactions_;
        while (req_busy_) {
            if (!can_wait(tr, "a request of another caller is in its request phase")) return;
            ++req_waiters_;
            sc_core::wait(end_req_);
            --req_waiters_;
        }
        tlm::tlm_generic_payload* p = allocate(tr);
        State& st = state_.try_emplace(p).first->second;
        tlm::tlm_phase ph = tlm::BEGIN_REQ;
        sc_core::sc_time t = delay;
        req_busy_ = true;
        const tlm::tlm_sync_enum s = out->nb_transport_fw(*p, ph, t);
        if (s == tlm::TLM_COMPLETED || (s == tlm::TLM_UPDATED && ph == tlm::BEGIN_RESP)) {
            req_busy_ = false;
            if (req_waiters_) end_req_.notify(sc_core::SC_ZERO_TIME);
            if (s == tlm::TLM_UPDATED) {   // the response came back on the return path
                tlm::tlm_phase end = tlm::END_RESP;
                sc_core::sc_time t2 = t;
                out->nb_transport_fw(*p, end, t2);
            }
            delay = t;
            finish(tr, *p);
            return;
        }
        if (s == tlm::TLM_UPDATED && ph == tlm::END_REQ) {
            st.req_done = true;
            req_busy_ = false;
            end_req_.notify(t);
        }
        if (!can_wait(tr, "the AT target answers later on the backward path")) {
            // The target still holds the request: it may answer later; the caller gets an error now.
            state_.erase(p);
            p->release();
            return;
        }
        ++waited_;
        // The caller's annotated delay went with BEGIN_REQ: the wait consumes it.
        while (!st.resp_done) sc_core::wait(st.resp);
        if (sc_core::sc_time_stamp() < st.resp_at) sc_core::wait(st.resp_at - sc_core::sc_time_stamp());
        delay = sc_core::SC_ZERO_TIME;
        finish(tr, *p);
    }
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload& tr, tlm::tlm_phase&, sc_core::sc_time&) override {
        tr.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);   // the LT side calls b_transport only
        return tlm::TLM_COMPLETED;
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& tr, tlm::tlm_dmi& dmi) override {
        return out->get_direct_mem_ptr(tr, dmi);
    }
    unsigned transport_dbg(tlm::tlm_generic_payload& tr) override { return out->transport_dbg(tr); }

    // ---- tlm_bw_transport_if (from the AT target) ----
    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph, sc_core::sc_time& t) override {
        auto it = state_.find(&tr);
        if (it == state_.end()) {
            SC_REPORT_ERROR(name(), "nb_transport_bw for a transaction the bridge does not have in flight");
            return tlm::TLM_COMPLETED;
        }
        State& st = it->second;
        if (ph == tlm::END_REQ) {
            st.req_done = true;
            req_busy_ = false;
            end_req_.notify(t);
            return tlm::TLM_ACCEPTED;
        }
        if (ph == tlm::BEGIN_RESP) {
            // BEGIN_RESP implies END_REQ if it was not sent (base protocol).
            if (!st.req_done) {
                st.req_done = true;
                req_busy_ = false;
                end_req_.notify(t);
            }
            st.resp_done = true;
            st.resp_at = sc_core::sc_time_stamp() + t;
            st.resp.notify(t);
            return tlm::TLM_COMPLETED;   // no END_RESP phase follows
        }
        SC_REPORT_ERROR(name(), "nb_transport_bw: expected END_REQ or BEGIN_RESP");
        return tlm::TLM_COMPLETED;
    }
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) override {
        for (int i = 0; i < in.size(); ++i) in[i]->invalidate_direct_mem_ptr(start, end);
    }

private:
    struct State {
        bool req_done = false, resp_done = false;
        sc_core::sc_time resp_at;   // when the response is due (the target's annotation)
        sc_core::sc_event resp;
    };

    // Only an SC_THREAD may wait; anyone else gets an error response.
    bool can_wait(tlm::tlm_generic_payload& tr, const char* why) {
        if (sc_core::sc_get_status() == sc_core::SC_RUNNING) {
            sc_core::sc_process_handle h = sc_core::sc_get_current_process_handle();
            if (h.valid() && h.proc_kind() == sc_core::SC_THREAD_PROC_) return true;
        }
        tr.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
        SC_REPORT_WARNING(name(), (std::string(why) + "; only an SC_THREAD caller can wait for it").c_str());
        return false;
    }

    tlm::tlm_generic_payload* allocate(const tlm::tlm_generic_payload& from) {
        tlm::tlm_generic_payload* p;
        if (pool_free_.empty()) {
            p = new tlm::tlm_generic_payload(this);
            pool_.push_back(p);
        } else {
            p = pool_free_.back();
            pool_free_.pop_back();
        }
        p->acquire();
        p->set_command(from.get_command());
        p->set_address(from.get_address());
        p->set_data_ptr(from.get_data_ptr());
        p->set_data_length(from.get_data_length());
        p->set_streaming_width(from.get_streaming_width());
        p->set_byte_enable_ptr(from.get_byte_enable_ptr());
        p->set_byte_enable_length(from.get_byte_enable_length());
        p->set_dmi_allowed(false);
        p->set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        return p;
    }
    void finish(tlm::tlm_generic_payload& tr, tlm::tlm_generic_payload& p) {
        tr.set_response_status(p.get_response_status());
        tr.set_dmi_allowed(p.is_dmi_allowed());
        state_.erase(&p);
        p.release();
    }
    // tlm_mm_interface: the last release returns the payload to the pool.
    void free(tlm::tlm_generic_payload* p) override {
        p->reset();
        pool_free_.push_back(p);
    }

    std::vector<tlm::tlm_generic_payload*> pool_, pool_free_;
    std::map<const tlm::tlm_generic_payload*, State> state_;
    bool req_busy_ = false;
    unsigned req_waiters_ = 0;
    sc_core::sc_event end_req_;
    uint64_t transactions_ = 0, waited_ = 0;
};

}  // namespace hvsim
