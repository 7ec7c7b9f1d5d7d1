// Test initiators and targets for the module test benches.
#pragma once

#include <systemc>
#include <tlm>

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace hvsim::test {

// An initiator the test drives by hand after elaboration: b_transport, DMI requests and
// debug transactions through its socket, and the invalidations the target sends back.
struct TestInitiator : sc_core::sc_module, tlm::tlm_bw_transport_if<> {
    tlm::tlm_initiator_socket<> socket;
    std::vector<std::pair<uint64_t, uint64_t>> invalidations;
    tlm::tlm_generic_payload tr;

    explicit TestInitiator(sc_core::sc_module_name n) : sc_module(n), socket("socket") { socket.bind(*this); }

    void setup(tlm::tlm_command cmd, uint64_t a, void* p, unsigned n) {
        tr.set_command(cmd);
        tr.set_address(a);
        tr.set_data_ptr(static_cast<uint8_t*>(p));
        tr.set_data_length(n);
        tr.set_streaming_width(n);
        tr.set_byte_enable_ptr(nullptr);
        tr.set_dmi_allowed(false);
        tr.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    }
    // Returns the annotated delay.
    sc_core::sc_time transport(tlm::tlm_command cmd, uint64_t a, void* p, unsigned n) {
        setup(cmd, a, p, n);
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        socket->b_transport(tr, d);
        return d;
    }
    uint64_t read64(uint64_t a, sc_core::sc_time* d = nullptr) {
        uint64_t v = 0;
        const sc_core::sc_time t = transport(tlm::TLM_READ_COMMAND, a, &v, 8);
        if (d) *d = t;
        return v;
    }
    sc_core::sc_time write64(uint64_t a, uint64_t v) { return transport(tlm::TLM_WRITE_COMMAND, a, &v, 8); }
    bool dmi(tlm::tlm_command cmd, uint64_t a, tlm::tlm_dmi& d) {
        setup(cmd, a, nullptr, 0);
        return socket->get_direct_mem_ptr(tr, d);
    }
    unsigned dbg(tlm::tlm_command cmd, uint64_t a, void* p, unsigned n) {
        setup(cmd, a, p, n);
        return socket->transport_dbg(tr);
    }

    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    void invalidate_direct_mem_ptr(sc_dt::uint64 s, sc_dt::uint64 e) override { invalidations.emplace_back(s, e); }
};

// A user-written DRAM stand-in: counts what reaches it and annotates a fixed delay.
// Binds any number of initiators, as the built-in DramTarget does.
struct CountingDram : sc_core::sc_module, tlm::tlm_fw_transport_if<> {
    tlm::tlm_target_socket<32, tlm::tlm_base_protocol_types, 0> socket;
    sc_core::sc_time latency;
    uint64_t reads = 0, writes = 0;
    std::vector<uint64_t> addrs;

    CountingDram(sc_core::sc_module_name n, sc_core::sc_time lat) : sc_module(n), socket("socket"), latency(lat) {
        socket.bind(*this);
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time& d) override {
        ++(t.is_write() ? writes : reads);
        addrs.push_back(t.get_address());
        d += latency;
        t.set_response_status(tlm::TLM_OK_RESPONSE);
    }
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload&, tlm::tlm_dmi&) override { return false; }
    unsigned transport_dbg(tlm::tlm_generic_payload&) override { return 0; }
};

// Elaborates the modules built so far (binding completes), without running time.
inline void elaborate() { sc_core::sc_start(sc_core::SC_ZERO_TIME); }

}  // namespace hvsim::test
