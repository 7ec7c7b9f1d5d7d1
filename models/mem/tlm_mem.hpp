// The memory side of the platform as SystemC modules with TLM-2.0 sockets:
//
//   PhysMemTarget  physical memory (the bytes): a target any number of initiators bind.
//                  b_transport and transport_dbg read and write PhysMem; DMI is granted
//                  a 4 KiB page at a time (read-only for a page that is untouched or
//                  shares a uniform copy, read-write for a page with bytes of its own)
//                  and invalidated whenever the page's backing changes.
//   MemHierarchy   one core's caches (L1D, L2 and its view of the LLC the cores
//                  share): a target for the walker's table reads and writes, and
//                  the timing of the core's data accesses (data_cycles()). A read's annotated delay is the latency of the
//                  level that hits; a miss sends a line fill out of its `dram` socket
//                  and adds that target's annotated delay. The bytes come from its
//                  `phys` socket. Stores are posted: no latency, no cache state change
//                  (the walker's A/D updates are locked writes to the line just read).
//
// Zero delay is annotated by PhysMemTarget: it is a store, not a timing model.
// A FillExtension on a write marks it as "these bytes are all one value" (the vCPU's
// stores); PhysMemTarget then keeps uniform pages shared. Other targets may ignore it.
#pragma once

#include <systemc>
#include <tlm>

#include <cstdint>

#include "models/mem/cache.hpp"
#include "models/mem/dram.hpp"
#include "models/mem/llc_module.hpp"
#include "models/mem/phys_mem.hpp"

namespace hvsim {

struct FillExtension : tlm::tlm_extension<FillExtension> {
    tlm::tlm_extension_base* clone() const override { return new FillExtension(*this); }
    void copy_from(const tlm::tlm_extension_base&) override {}
};

class PhysMemTarget : public sc_core::sc_module, public tlm::tlm_fw_transport_if<> {
public:
    tlm::tlm_target_socket<32, tlm::tlm_base_protocol_types, 0> socket;

    PhysMemTarget(sc_core::sc_module_name name, PhysMem& mem);
    ~PhysMemTarget() override;

    PhysMem& mem() { return mem_; }
    uint64_t transactions() const { return transactions_; }
    uint64_t dmi_grants() const { return dmi_grants_; }
    uint64_t dmi_invalidations() const { return dmi_invalidations_; }

    void b_transport(tlm::tlm_generic_payload& tr, sc_core::sc_time& delay) override;
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph,
                                       sc_core::sc_time& t) override;
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& tr, tlm::tlm_dmi& dmi) override;
    unsigned transport_dbg(tlm::tlm_generic_payload& tr) override;

private:
    bool access(tlm::tlm_generic_payload& tr);
    static void page_changed(void* self, uint64_t pfn);

    PhysMem& mem_;
    uint64_t transactions_ = 0, dmi_grants_ = 0, dmi_invalidations_ = 0;
    bool dmi_out_ = false;   // a grant was handed out since the last elaboration
};

class MemHierarchy : public sc_core::sc_module,
                     public tlm::tlm_fw_transport_if<>,
                     public tlm::tlm_bw_transport_if<>,
                     private LineFill {
public:
    tlm::tlm_target_socket<> in;         // the walker's table reads and writes
    tlm::tlm_initiator_socket<> dram;    // line fills of misses in every level
    tlm::tlm_initiator_socket<> phys;    // the bytes

    // `llc`: a last level shared with other cores' hierarchies (nullptr: a private one).
    MemHierarchy(sc_core::sc_module_name name, const MemHierarchyConfig& cfg, uint64_t period_ps,
                 SharedCache* llc = nullptr);

    CacheHierarchy& caches() { return cache_; }
    // Memory encryption: DRAM fills of lines in pages `pages` says are encrypted cost
    // `extra` more cycles (nullptr: none, the default).
    void set_encryption(const EncryptedPages* pages, Cycles extra) {
        enc_pages_ = pages;
        enc_extra_ = extra;
    }
    uint64_t encrypted_fills() const { return enc_fills_; }
    const CacheHierarchy& caches() const { return cache_; }

    // What b_transport does, as direct calls for an initiator that knows this class
    // (hvsim's MMU: the socket would add nothing but a virtual call and a payload).
    // The bytes are loaded before the caches are modelled: the two are independent, so the
    // host's miss on the page-table bytes overlaps the cache model's work.
    uint64_t read64(uint64_t addr, Cycles& cycles) {
        if (!phys_mem_) {
            cycles += cache_.access(Hpa(addr));
            return read_phys(addr);
        }
        const uint64_t v = phys_mem_->read64(Hpa(addr));
        cycles += cache_.access(Hpa(addr));
        return v;
    }
    void write64(uint64_t addr, uint64_t v) {
        if (phys_mem_) phys_mem_->write64(Hpa(addr), v);
        else write_phys(addr, v);
    }
    // The latency of a guest load or store of the line holding a (the bytes move on the
    // vCPU's own data path). Write-allocate; a load waits for its data (an in-order core);
    // a store that misses is posted while an MSHR is free (cache.hpp), and the L2 stream
    // prefetcher's fills overlap the core's work.
    Cycles data_cycles(Hpa a, bool write = false) { return cache_.access_data(a, write); }
    // A read that is part of a locked update of a line the walker holds: no latency.
    uint64_t load64(uint64_t addr) { return phys_mem_ ? phys_mem_->read64(Hpa(addr)) : read_phys(addr); }
    // A host-side hint (WalkMemory::prefetch()): nothing modelled, nothing on the sockets.
    void prefetch(uint64_t addr) const {
        if (phys_mem_) phys_mem_->prefetch(Hpa(addr));
        cache_.prefetch_sets(Hpa(addr));
    }

    // tlm_fw_transport_if
    void b_transport(tlm::tlm_generic_payload& tr, sc_core::sc_time& delay) override;
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph,
                                       sc_core::sc_time& t) override;
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& tr, tlm::tlm_dmi& dmi) override;
    unsigned transport_dbg(tlm::tlm_generic_payload& tr) override;
    // tlm_bw_transport_if (from dram and phys)
    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph,
                                       sc_core::sc_time& t) override;
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) override;

private:
    void end_of_elaboration() override;
    Cycles fill(uint64_t line_addr) override;
    // A fill's latency from the delay DRAM gave it (ps), with the encryption engine's.
    Cycles fill_cycles(uint64_t line_addr, uint64_t ps);
    Cycles with_encryption(uint64_t line_addr, Cycles c);
    void phys_transport(tlm::tlm_command cmd, uint64_t addr, uint64_t* v);
    uint64_t read_phys(uint64_t addr);
    void write_phys(uint64_t addr, uint64_t v);

    CacheHierarchy cache_;
    uint64_t period_ps_;
    PhysMem* phys_mem_ = nullptr;   // set when `phys` is bound to a PhysMemTarget
    // Set when a line fill would only pass through hvsim's own modules to hvsim's DRAM
    // (end_of_elaboration()): `dram` bound to a DramTarget, or to the LlcModule whose array
    // is this hierarchy's last level with a DramTarget behind it. The fill is then a direct
    // call with the same latency and counts (no payload, extension and two virtual calls).
    DramTarget* direct_dram_ = nullptr;
    LlcModule* direct_llc_ = nullptr;
    const EncryptedPages* enc_pages_ = nullptr;
    Cycles enc_extra_ = 0;
    uint64_t enc_fills_ = 0;
    tlm::tlm_generic_payload fill_tr_, phys_tr_;
    // On each line fill: the shared last level it missed in (an LlcModule that owns that
    // array passes the fill on to DRAM without a second look-up).
    LlcMissExtension miss_ext_;
    uint8_t line_buf_[4096];
};

}  // namespace hvsim
