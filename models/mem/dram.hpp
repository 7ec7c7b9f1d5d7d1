// DRAM behind the last-level cache, as a TLM-2.0 target.
//
// The built-in target answers line fills with a latency and holds no data: the bytes
// live in physical memory (PhysMemTarget), as a timing-only DRAM simulator does
// (DRAMSys without storage). Two latency models, chosen by mem.dram.model:
//  - fixed: every fill costs mem.dram_cycles (the model hvsim always had);
//  - ddr5:  an open-page bank model. Lines are interleaved over the banks a row
//    (page) at a time; a fill to the open row costs CL (row hit), to a closed bank
//    tRCD + CL (row empty), to another row tRP + tRCD + CL (row conflict). The row stays
//    open afterwards. No refresh, no bus turnaround, no queueing: one fill at a time.
// Any other TLM-2.0 target (a counting target, DRAMSys or Ramulator behind an adapter)
// can be bound in its place: MemHierarchy only uses the annotated delay.
#pragma once

#include <systemc>
#include <tlm>

#include <cstdint>
#include <string>
#include <vector>

#include "models/common/types.hpp"

namespace hvsim {

struct DramConfig {
    enum class Model : uint8_t { fixed, ddr5 } model = Model::fixed;
    Cycles fixed_cycles = 0;     // fixed: latency of every fill
    // ddr5: timings in core cycles (the preset converts from nanoseconds).
    Cycles t_rcd = 0, t_rp = 0, t_cl = 0;
    unsigned banks = 32;         // banks across the channel (power of two)
    uint64_t page_bytes = 8192;  // row size per bank (power of two)
};

struct DramStats {
    uint64_t reads = 0, writes = 0;
    uint64_t row_hits = 0, row_empty = 0, row_conflicts = 0;   // ddr5 only
};

// The latency model alone (plain C++, one fill at a time).
class DramTiming {
public:
    explicit DramTiming(const DramConfig& cfg);
    Cycles access(uint64_t addr, bool write);
    const DramConfig& config() const { return cfg_; }
    const DramStats& stats() const { return stats_; }

private:
    static constexpr uint64_t kClosed = ~0ull;
    DramConfig cfg_;
    unsigned page_shift_ = 13;
    std::vector<uint64_t> open_row_;   // per bank; kClosed when precharged
    DramStats stats_;
};

// The built-in DRAM as a SystemC module with a TLM-2.0 target socket that any number
// of initiators (one memory hierarchy per core) may bind.
class DramTarget : public sc_core::sc_module, public tlm::tlm_fw_transport_if<> {
public:
    tlm::tlm_target_socket<32, tlm::tlm_base_protocol_types, 0> socket;

    DramTarget(sc_core::sc_module_name name, const DramConfig& cfg, uint64_t period_ps);

    const DramTiming& timing() const { return timing_; }
    // What b_transport() adds to a read's or write's delay, in DRAM cycles of period_ps(), by
    // direct call (for an initiator that knows this class: hvsim's own cache hierarchy).
    Cycles access_cycles(uint64_t addr, bool write) { return timing_.access(addr, write); }
    uint64_t period_ps() const { return period_ps_; }

    // tlm_fw_transport_if
    void b_transport(tlm::tlm_generic_payload& tr, sc_core::sc_time& delay) override;
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph,
                                       sc_core::sc_time& t) override;
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& tr, tlm::tlm_dmi& dmi) override;
    unsigned transport_dbg(tlm::tlm_generic_payload& tr) override;

private:
    DramTiming timing_;
    uint64_t period_ps_;
};

}  // namespace hvsim
