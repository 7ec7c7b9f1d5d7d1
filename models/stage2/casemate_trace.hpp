// Exports the stage-2 maintenance of a run as a trace in the format of Casemate, the
// break-before-make checker used on pKVM (rems-project/casemate, doc/trace-format.md):
// one s-expression per event, `(kind (id N) (tid T) fields...)`, written as the example
// trace of that document writes them (mem-init / hint set_root_lock, set_owner_root,
// release / lock / unlock / mem-write with its memory order / barrier dsb (kind ...) or
// isb / tlbi with addr and level / msr vttbr_el2). A run's trace can then be checked by a
// tool hvsim's authors did not write.
#pragma once

#include <cstdint>
#include <ostream>

#include "models/stage2/tlbi.hpp"

namespace hvsim::stage2 {

class CasemateTrace final : public TraceSink {
public:
    explicit CasemateTrace(std::ostream& os) : os_(os) {}
    void event(const TraceEvent& e) override;
    uint64_t records() const { return id_; }

private:
    void head(const char* kind, unsigned tid);
    std::ostream& os_;
    uint64_t id_ = 0;
};

}  // namespace hvsim::stage2
