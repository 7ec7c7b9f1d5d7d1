// The TDX module as a SystemC module (docs/systemc.md): the firmware model (tdx_module.hpp)
// with its counters, and a TLM-2.0 initiator socket `mem` through which the module's own
// memory references leave: the S-EPT entries its leaves read and write (8 bytes at the
// entry's HPA), the initialisation of a table TDH.MEM.SEPT.ADD takes over (512 entry
// writes), the page copy of TDH.MEM.PAGE.ADD and the zeroing of TDG.MEM.PAGE.ACCEPT (4 KiB
// each, the zeroing a write that carries a FillExtension), and the PAMT entries (16 bytes
// each at tdx::pamt::entry_hpa(); RANGE.BLOCK writes the 8-byte BEPOCH). The inspection
// views (KVM's checks of the S-EPT against the mirror and of the PAMT, the printers, the
// encrypted-pages hook) go as transport_dbg.
//
// The module runs on a logical processor in SEAM mode: it is firmware, not a device, and one
// of it serves every core; the platform builds it once, as `top.tdx`, a peer of the cores.
//
// Three ways out, one behaviour: bound to hvsim's PhysMemTarget (or not bound: a machine
// built without a platform) the module reads and writes physical memory in place; a target
// that grants DMI (tlm_dmi) is accessed through its pointer; any other target gets
// b_transport. The delay a target annotates is summed (delay()) but not charged: each leaf
// costs its preset cycles (cost.tdx_*), as the RMP's instructions do.
//
// Not through the socket: the TD control structures (TDR/TDCS fields), kept in the module's
// own state rather than in simulated memory.
#pragma once

#include <systemc>
#include <tlm>

#include <array>
#include <cstdint>

#include "models/mem/tlm_mem.hpp"
#include "models/tdx/tdx_module.hpp"

namespace hvsim::tdx {

class SeamModule final : public sc_core::sc_module, public tlm::tlm_bw_transport_if<>, private TdxMemory {
public:
    tlm::tlm_initiator_socket<32, tlm::tlm_base_protocol_types, 1, sc_core::SC_ZERO_OR_MORE_BOUND> mem;

    SeamModule(sc_core::sc_module_name name, PhysMem& phys);

    TdxModule& module() { return tdx_; }
    const TdxModule& module() const { return tdx_; }
    bool direct() const { return direct_; }
    // Timed references sent through the socket (b_transport), and the bytes they carried.
    uint64_t reads() const { return reads_; }
    uint64_t writes() const { return writes_; }
    uint64_t bytes() const { return bytes_; }
    uint64_t debug_transactions() const { return debug_transactions_; }
    uint64_t dmi_grants() const { return dmi_grants_; }
    uint64_t dmi_accesses() const { return dmi_accesses_; }
    uint64_t dmi_invalidations() const { return dmi_invalidations_; }
    sc_core::sc_time delay() const { return delay_; }

    // tlm_bw_transport_if
    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph,
                                       sc_core::sc_time& t) override;
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) override;

private:
    void end_of_elaboration() override;
    // TdxMemory
    void read(uint64_t hpa, void* dst, unsigned n, bool debug) override;
    void write(uint64_t hpa, const void* src, unsigned n) override;
    void fill(uint64_t hpa, uint8_t byte, unsigned n) override;
    void transport(tlm::tlm_command cmd, uint64_t hpa, uint8_t* p, unsigned n, bool fill);
    void debug(tlm::tlm_command cmd, uint64_t hpa, uint8_t* p, unsigned n);
    // A DMI grant covering [hpa, hpa + n) for the access, or nullptr.
    const tlm::tlm_dmi* dmi_for(uint64_t hpa, unsigned n, bool write) const;

    static constexpr unsigned kDmiSlots = 4;
    TdxModule tdx_;
    tlm::tlm_generic_payload tr_;
    FillExtension fill_ext_;
    bool direct_ = true;
    std::array<tlm::tlm_dmi, kDmiSlots> dmi_;
    std::array<bool, kDmiSlots> dmi_valid_{};
    unsigned dmi_next_ = 0;
    uint64_t reads_ = 0, writes_ = 0, bytes_ = 0, debug_transactions_ = 0;
    uint64_t dmi_grants_ = 0, dmi_accesses_ = 0, dmi_invalidations_ = 0;
    sc_core::sc_time delay_ = sc_core::SC_ZERO_TIME;
};

}  // namespace hvsim::tdx
