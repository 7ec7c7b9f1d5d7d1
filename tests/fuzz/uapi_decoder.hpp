// Decoding of fuzz inputs into scenarios, and running one without SystemC (shared by
// the libFuzzer target, the corpus replay test and the decode tool).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hvsim::fuzz {

// The scenario an input decodes to, as scenario JSON (loadable by `hvsim run`, which is
// how a finding becomes a regression scenario).
std::string decode_uapi_scenario(const uint8_t* data, size_t size);

// Decode, load, set up and run every step; check the invariants after each. A finding
// (model exception, invariant violation) prints what happened and aborts; inputs the
// loader or setup refuses return quietly. Returns the number of steps run.
size_t run_uapi_input(const uint8_t* data, size_t size, bool verbose);

}  // namespace hvsim::fuzz
