// Replaying a memory trace: the vCPU takes its accesses from an AddressSource instead of a
// synthetic pattern, each translated and performed like any other access.
#include "models/cpu/vcpu.hpp"

#include <cmath>

namespace hvsim::cpu {

void Vcpu::run_replay(const AccessSpec& a) {
    AccessSpec one = a;   // the trace decides read/write per access
    TraceAccess t;
    double carry = 0;     // fractional cycles of instructions not yet charged
    uint64_t n = 0;
    while ((a.count == 0 || n < a.count) && a.source->next(t)) {
        ++n;
        if (a.cycles_per_instruction > 0 && t.instructions) {
            carry += double(t.instructions) * a.cycles_per_instruction;
            const double whole = std::floor(carry);
            add_cycles(Cycles(whole));
            carry -= whole;
        }
        one.write = t.write;
        const uint64_t addr = a.gpa.raw() + (t.offset % a.size);
        const uint64_t in_page = kPageSize - (addr & kPageMask);
        const bool ok = in_page < t.width
                            ? one_access(addr, unsigned(in_page), one) && one_access(addr + in_page, unsigned(t.width - in_page), one)
                            : one_access(addr, t.width, one);
        if (!ok) {
            result_.stopped = true;
            return;
        }
    }
}

}  // namespace hvsim::cpu
