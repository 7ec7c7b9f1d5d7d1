#include "models/stage2/casemate_trace.hpp"

#include <fmt/format.h>

namespace hvsim::stage2 {

namespace {
const char* tlbi_name(TlbiOp op) {
    switch (op) {
    case TlbiOp::ipas2e1is: return "ipas2e1is";
    case TlbiOp::ipas2e1: return "ipas2e1";
    case TlbiOp::vmalle1is: return "vmalle1is";
    case TlbiOp::vmalle1: return "vmalle1";
    case TlbiOp::vmalls12e1is: return "vmalls12e1is";
    }
    return "?";
}
const char* dsb_kind(Barrier b) {
    switch (b) {
    case Barrier::dsb_ish: return "ish";
    case Barrier::dsb_ishst: return "ishst";
    case Barrier::dsb_nsh: return "nsh";
    case Barrier::isb: return "";
    }
    return "";
}
}  // namespace

void CasemateTrace::head(const char* kind, unsigned tid) { os_ << fmt::format("({} (id {}) (tid {})", kind, id_++, tid); }

void CasemateTrace::event(const TraceEvent& e) {
    switch (e.kind) {
    case TraceEvent::Kind::table_init:
        // A zeroed table page, then which tree it belongs to (the root owns itself and
        // names its lock).
        head("mem-init", e.cpu);
        os_ << fmt::format(" (address {:#x}) (size {:#x}))\n", e.loc, e.ia);
        head("hint", e.cpu);
        if (e.loc == e.value)
            os_ << fmt::format(" (kind set_root_lock) (location {:#x}) (value {:#x}))\n", e.loc, (1ull << 63) | e.loc);
        else
            os_ << fmt::format(" (kind set_owner_root) (location {:#x}) (value {:#x}))\n", e.loc, e.value);
        break;
    case TraceEvent::Kind::table_release:
        head("hint", e.cpu);
        os_ << fmt::format(" (kind release) (location {:#x}) (value {:#x}))\n", e.loc, e.value);
        break;
    case TraceEvent::Kind::lock:
    case TraceEvent::Kind::unlock:
        head(e.kind == TraceEvent::Kind::lock ? "lock" : "unlock", e.cpu);
        os_ << fmt::format(" (address {:#x}))\n", e.loc);
        break;
    case TraceEvent::Kind::write:
        head("mem-write", e.cpu);
        os_ << fmt::format(" (mem-order {}) (address {:#x}) (value {:#x}))\n", e.release ? "release" : "plain", e.loc,
                           e.value);
        break;
    case TraceEvent::Kind::barrier:
        head("barrier", e.cpu);
        if (e.barrier == Barrier::isb) os_ << " isb)\n";
        else os_ << fmt::format(" dsb (kind {}))\n", dsb_kind(e.barrier));
        break;
    case TraceEvent::Kind::tlbi:
        head("tlbi", e.cpu);
        if (e.tlbi == TlbiOp::ipas2e1is || e.tlbi == TlbiOp::ipas2e1)
            os_ << fmt::format(" {} (addr {:#x}) (level {}))\n", tlbi_name(e.tlbi), e.ia, e.level);
        else
            os_ << fmt::format(" {})\n", tlbi_name(e.tlbi));
        break;
    case TraceEvent::Kind::vttbr:
        // VTTBR_EL2: VMID in bits 63:48 (16-bit VMIDs), the root's base address.
        head("msr", e.cpu);
        os_ << fmt::format(" (sysreg vttbr_el2) (value {:#x}))\n", (uint64_t(e.vmid) << 48) | e.value);
        break;
    }
}

}  // namespace hvsim::stage2
