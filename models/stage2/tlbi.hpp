// Broadcast TLB maintenance of an arm64 system (Arm ARM D8.16.6, "TLB maintenance
// instructions"; B2.3.12 "Data Synchronization Barrier"). A TLBI ...IS reaches every
// core of the Inner Shareable domain in hardware: no IPI, the other cores do not stop.
// The issuing core pays for the instruction and for the DSB ISH that waits for its
// completion everywhere; an ISB then resynchronises its own context.
//
// Every descriptor write, barrier, TLBI and VTTBR change the hypervisor makes can be
// observed (TraceSink): the break-before-make checker and the Casemate trace export
// read the same events.
#pragma once

#include <cstdint>
#include <vector>

#include "models/common/types.hpp"
#include "models/stage2/stage2_mmu.hpp"

namespace hvsim::stage2 {

enum class TlbiOp : uint8_t {
    ipas2e1is,      // stage-2 entries of one IPA (by address, with the TTL level hint)
    ipas2e1,        // the same, this core only (KVM's relax-permissions path, with DSB NSH)
    vmalle1is,      // every stage-1 (and combined) entry of the current VMID
    vmalle1,        // the same, this core only
    vmalls12e1is,   // every entry of both stages of the current VMID
};
enum class Barrier : uint8_t { dsb_ish, dsb_ishst, dsb_nsh, isb };

constexpr bool is_broadcast(TlbiOp op) {
    return op == TlbiOp::ipas2e1is || op == TlbiOp::vmalle1is || op == TlbiOp::vmalls12e1is;
}

// One event of the hypervisor's page-table maintenance.
struct TraceEvent {
    // table_init: a zeroed table page joins the tree rooted at `value` (loc = the page,
    // ia = its size); table_release: it leaves; lock / unlock: the tree's lock (loc).
    enum class Kind : uint8_t { write, barrier, tlbi, vttbr, table_init, table_release, lock, unlock } kind = Kind::write;
    uint64_t loc = 0;        // write: the descriptor's physical address
    uint64_t value = 0;      // write: the new value; vttbr: the root
    uint64_t old = 0;        // write: the value it replaces
    bool release = false;    // write: store-release
    uint64_t ia = 0;         // write: first input address the descriptor maps; tlbi: the IPA
    int level = 3;           // write: descriptor level; tlbi: TTL hint
    Granule granule = Granule::k4K;
    uint16_t vmid = 0;       // write: the tree's VMID; vttbr: the VMID loaded
    Barrier barrier = Barrier::dsb_ish;
    TlbiOp tlbi = TlbiOp::vmalls12e1is;
    unsigned cpu = 0;
};

class TraceSink {
public:
    virtual ~TraceSink() = default;
    virtual void event(const TraceEvent& e) = 0;
};

// What the issuing core pays (cycles; the platform preset fills them: cost.arm64_*). A
// broadcast TLBI is posted to the interconnect; the DSB ISH after it is what waits for every
// core to complete it, so the wait is charged to the DSB, the TLBI itself only issues.
struct TlbiCosts {
    Cycles ipas2e1is = 0;      // TLBI IPAS2E1IS: stage-2 entries of one IPA, broadcast
    Cycles vmalle1is = 0;      // TLBI VMALLE1IS: every stage-1 (and combined) entry of the VMID, broadcast
    Cycles vmalls12e1is = 0;   // TLBI VMALLS12E1IS: every entry of both stages of the VMID, broadcast
    Cycles local = 0;          // TLBI IPAS2E1 / VMALLE1: this core only
    Cycles dsb_ish = 0;        // DSB ISH: waits for the broadcast maintenance before it, everywhere
    Cycles dsb_ishst = 0;      // DSB ISHST: only prior stores (a descriptor write) made visible
    Cycles dsb_nsh = 0;        // DSB NSH: this core only
    Cycles isb = 0;
    // Every TLBI at `tlbi`, both inner-shareable DSBs at `dsb_ish` (unit tests).
    static TlbiCosts uniform(Cycles tlbi, Cycles dsb_ish, Cycles dsb_nsh, Cycles isb) {
        return {tlbi, tlbi, tlbi, tlbi, dsb_ish, dsb_ish, dsb_nsh, isb};
    }
    Cycles of(TlbiOp op) const {
        switch (op) {
        case TlbiOp::ipas2e1is: return ipas2e1is;
        case TlbiOp::vmalle1is: return vmalle1is;
        case TlbiOp::vmalls12e1is: return vmalls12e1is;
        case TlbiOp::ipas2e1:
        case TlbiOp::vmalle1: return local;
        }
        return 0;
    }
};

struct TlbiStats {
    uint64_t tlbi = 0, tlbi_broadcast = 0, dsb = 0, isb = 0, writes = 0;
};

// The Inner Shareable domain: every core's Stage2Mmu, and the observers of maintenance.
class TlbiDomain {
public:
    explicit TlbiDomain(const TlbiCosts& c = {}) : costs_(c) {}
    void attach(Stage2Mmu& core) { cores_.push_back(&core); }
    // A core going away (its module destroyed before the hypervisor's teardown).
    void detach(Stage2Mmu& core) { std::erase(cores_, &core); }
    void add_sink(TraceSink* s) { sinks_.push_back(s); }
    const std::vector<Stage2Mmu*>& cores() const { return cores_; }

    // A TLBI issued by core `cpu` against `vmid` (the VMID the issuer has loaded in
    // VTTBR_EL2). Returns the issuer's cycles.
    Cycles tlbi(TlbiOp op, uint16_t vmid, uint64_t ipa = 0, int level = 3, unsigned cpu = 0) {
        ++stats_.tlbi;
        if (is_broadcast(op)) ++stats_.tlbi_broadcast;
        auto apply = [&](Stage2Mmu& m) {
            switch (op) {
            case TlbiOp::ipas2e1is:
            case TlbiOp::ipas2e1: m.tlbi_ipas2e1(vmid, ipa, level); break;
            case TlbiOp::vmalle1is:
            case TlbiOp::vmalle1: m.tlbi_vmalle1(vmid); break;
            case TlbiOp::vmalls12e1is: m.tlbi_vmalls12e1(vmid); break;
            }
        };
        if (is_broadcast(op)) {
            for (Stage2Mmu* m : cores_) apply(*m);
        } else if (cpu < cores_.size()) {
            apply(*cores_[cpu]);
        }
        TraceEvent e;
        e.kind = TraceEvent::Kind::tlbi;
        e.tlbi = op;
        e.vmid = vmid;
        e.ia = ipa;
        e.level = level;
        e.cpu = cpu;
        emit(e);
        return costs_.of(op);
    }
    Cycles barrier(Barrier b, unsigned cpu = 0) {
        if (b == Barrier::isb) ++stats_.isb;
        else ++stats_.dsb;
        TraceEvent e;
        e.kind = TraceEvent::Kind::barrier;
        e.barrier = b;
        e.cpu = cpu;
        emit(e);
        switch (b) {
        case Barrier::dsb_ish: return costs_.dsb_ish;
        case Barrier::dsb_ishst: return costs_.dsb_ishst;
        case Barrier::dsb_nsh: return costs_.dsb_nsh;
        case Barrier::isb: return costs_.isb;
        }
        return 0;
    }
    // A descriptor store the hypervisor made (the bytes are written by the caller).
    void wrote(const TraceEvent& w) {
        ++stats_.writes;
        emit(w);
    }
    // Logical events of the page-table code (no hardware effect, no cost).
    void note(TraceEvent::Kind k, uint64_t loc, uint64_t value = 0, uint64_t size = 0) {
        TraceEvent e;
        e.kind = k;
        e.loc = loc;
        e.value = value;
        e.ia = size;
        emit(e);
    }
    void vttbr(uint16_t vmid, uint64_t root, unsigned cpu = 0) {
        TraceEvent e;
        e.kind = TraceEvent::Kind::vttbr;
        e.vmid = vmid;
        e.value = root;
        e.cpu = cpu;
        emit(e);
    }
    const TlbiStats& stats() const { return stats_; }
    const TlbiCosts& costs() const { return costs_; }

private:
    void emit(const TraceEvent& e) {
        for (TraceSink* s : sinks_) s->event(e);
    }
    TlbiCosts costs_;
    std::vector<Stage2Mmu*> cores_;
    std::vector<TraceSink*> sinks_;
    TlbiStats stats_;
};

}  // namespace hvsim::stage2
