// Where a replayed access stream comes from (a real program's memory trace): the vCPU asks
// for the next access and runs it like any other (sim/replay.hpp reads the trace formats).
#pragma once

#include <cstdint>

namespace hvsim::cpu {

struct TraceAccess {
    uint64_t offset = 0;        // into the step's guest range [gpa, gpa + size)
    unsigned width = 8;         // bytes, a power of two 1..64
    bool write = false;
    uint64_t instructions = 0;  // instructions executed since the previous access
};

class AddressSource {
public:
    virtual ~AddressSource() = default;
    // The next access, or false at the end of the trace. Throws std::runtime_error on a
    // malformed trace (the step then fails with that message).
    virtual bool next(TraceAccess& out) = 0;
};

}  // namespace hvsim::cpu
