// Untimed reads and writes of simulated memory for the result writers and the invariant
// checks: TLM-2.0 debug transport (IEEE 1666-2011 section 11.3.4, transport_dbg), which a
// target serves with no timing, no counters and no change of cache or DMI state. A checker
// that reads the tables it checks through this port sees the bytes the hardware would see,
// without perturbing what the run measures.
//
//   debug_read(socket, hpa, buf, len)    one debug transaction through any initiator socket
//   debug_read64(socket, hpa)            one 8-byte word (0 if the target served none)
//   DebugMemPort                         a module with its own initiator socket, for code that
//                                        is not a module (sim/: results, invariants); bind it
//                                        to physical memory or to a cache hierarchy's `in`
//                                        (which forwards debug transactions)
#pragma once

#include <systemc>
#include <tlm>

#include <cstdint>
#include <cstring>

#include "models/common/types.hpp"

namespace hvsim {

// A payload reset for one plain transaction of `len` bytes at `addr` (no byte enables, no
// DMI hint, response incomplete): what every initiator here sets before b_transport or
// transport_dbg (IEEE 1666-2011 section 14.5, the initiator's obligations).
inline void set_payload(tlm::tlm_generic_payload& tr, tlm::tlm_command cmd, uint64_t addr, uint8_t* data,
                        unsigned len) {
    tr.set_command(cmd);
    tr.set_address(addr);
    tr.set_data_ptr(data);
    tr.set_data_length(len);
    tr.set_streaming_width(len);
    tr.set_byte_enable_ptr(nullptr);
    tr.set_dmi_allowed(false);
    tr.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
}

// One debug transaction of `len` bytes at `hpa`; returns the bytes the target transferred
// (a target may serve fewer than asked, or none).
template <class Socket>
unsigned debug_transport(Socket& socket, tlm::tlm_command cmd, Hpa hpa, void* buf, unsigned len) {
    tlm::tlm_generic_payload tr;
    set_payload(tr, cmd, hpa.raw(), static_cast<uint8_t*>(buf), len);
    return socket->transport_dbg(tr);
}

template <class Socket>
unsigned debug_read(Socket& socket, Hpa hpa, void* buf, unsigned len) {
    return debug_transport(socket, tlm::TLM_READ_COMMAND, hpa, buf, len);
}

template <class Socket>
uint64_t debug_read64(Socket& socket, Hpa hpa) {
    uint64_t v = 0;
    if (debug_read(socket, hpa, &v, 8) != 8) return 0;
    return v;
}

class DebugMemPort : public sc_core::sc_module, public tlm::tlm_bw_transport_if<> {
public:
    tlm::tlm_initiator_socket<> socket;

    explicit DebugMemPort(sc_core::sc_module_name name) : sc_module(name), socket("socket") { socket.bind(*this); }

    // Whole reads only: false if the target served fewer bytes (the buffer is then zeroed).
    bool read(Hpa hpa, void* buf, unsigned len) {
        ++reads_;
        if (debug_read(socket, hpa, buf, len) == len) return true;
        std::memset(buf, 0, len);
        return false;
    }
    uint64_t read64(Hpa hpa) {
        uint64_t v = 0;
        read(hpa, &v, 8);
        return v;
    }
    // A table page: the 512 entries of the frame `pfn`.
    bool read_page(Pfn pfn, uint64_t (&entries)[512]) { return read(pfn_to_hpa(pfn), entries, sizeof entries); }
    bool write(Hpa hpa, const void* buf, unsigned len) {
        return debug_transport(socket, tlm::TLM_WRITE_COMMAND, hpa, const_cast<void*>(buf), len) == len;
    }
    // Debug transactions this port made (its own count: the target counts none).
    uint64_t reads() const { return reads_; }

    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    void invalidate_direct_mem_ptr(sc_dt::uint64, sc_dt::uint64) override {}

private:
    uint64_t reads_ = 0;
};

}  // namespace hvsim
