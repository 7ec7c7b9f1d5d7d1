// The last-level cache several cores share (mem.llc.shared_by cores: a Zen 4 CCX's L3, the
// Sapphire Rapids mesh LLC) as a SystemC module of the memory side, top.mem.llc
// (docs/systemc.md). It owns the shared array, and its line fills leave through the
// initiator socket `dram`.
//
// Target socket `in` (any number of initiators): line reads.
//  - From hvsim's own cores (MemHierarchy): each core looks the shared array up itself as
//    part of its access (array(): a direct reference, the look-up is on the hot path of
//    every reference that misses the L2, and a payload per look-up would add nothing), and
//    sends here only the fills of lines that missed every level, this LLC included; such a
//    fill carries an LlcMissExtension naming the array it missed in, and goes straight on
//    to `dram`, with the delay DRAM annotates.
//  - From any other initiator (a core model of another platform): a line read is looked up
//    in the shared array (the LLC's hit latency, or a fill from `dram` that leaves the line
//    in the LLC), so a foreign cache hierarchy can bind its misses here.
// No DMI: a cache that handed out pointers would bypass the latency it models.
#pragma once

#include <systemc>
#include <tlm>

#include <cstdint>

#include "models/mem/cache.hpp"

namespace hvsim {

// On a line fill: the sender's hierarchy looked the line up in `array` (its last level) and
// missed. An ignorable extension: DRAM targets and other memory models need not know it.
struct LlcMissExtension : tlm::tlm_extension<LlcMissExtension> {
    const SharedCache* array = nullptr;
    tlm::tlm_extension_base* clone() const override { return new LlcMissExtension(*this); }
    void copy_from(const tlm::tlm_extension_base& e) override { array = static_cast<const LlcMissExtension&>(e).array; }
};

class LlcModule : public sc_core::sc_module,
                  public tlm::tlm_fw_transport_if<>,
                  public tlm::tlm_bw_transport_if<>,
                  private LineFill {
public:
    tlm::tlm_target_socket<32, tlm::tlm_base_protocol_types, 0> in;   // the cores' line fills
    tlm::tlm_initiator_socket<> dram;                                  // this LLC's fills

    // `cfg`: the LLC level of the preset (size, ways, hit latency); `line_bytes` the line.
    LlcModule(sc_core::sc_module_name name, const CacheLevelConfig& cfg, unsigned line_bytes, uint64_t period_ps);

    // The shared array the cores' hierarchies use as their last level.
    SharedCache& array() { return array_; }
    const SharedCache& array() const { return array_; }
    // Fills that passed through to DRAM for the cores that share the array.
    uint64_t core_fills() const { return core_fills_; }
    // A core's fill that went on to DRAM by direct call (MemHierarchy::fill()), counted as
    // one that passed through here.
    void count_core_fill() { ++core_fills_; }
    // Line reads of other initiators: looked up here (hits and misses, misses filled).
    uint64_t foreign_hits() const { return foreign_.stats().levels[0].hits; }
    uint64_t foreign_misses() const { return foreign_.stats().levels[0].misses; }

    // tlm_fw_transport_if
    void b_transport(tlm::tlm_generic_payload& tr, sc_core::sc_time& delay) override;
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph,
                                       sc_core::sc_time& t) override;
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& tr, tlm::tlm_dmi& dmi) override;
    unsigned transport_dbg(tlm::tlm_generic_payload& tr) override;
    // tlm_bw_transport_if (from dram)
    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph,
                                       sc_core::sc_time& t) override;
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) override;

private:
    static MemHierarchyConfig single_level(const CacheLevelConfig& cfg, unsigned line_bytes);
    // LineFill: a foreign reference's miss, filled from `dram`.
    Cycles fill(uint64_t line_addr) override;

    SharedCache array_;
    CacheHierarchy foreign_;   // the look-ups of other initiators, over array_
    uint64_t period_ps_;
    uint64_t core_fills_ = 0;
    tlm::tlm_generic_payload fill_tr_;
    uint8_t line_buf_[4096];
};

}  // namespace hvsim
