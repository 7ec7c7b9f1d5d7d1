// The loader fuzz target's body, shared by the libFuzzer executable and the corpus replay.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hvsim::fuzz {

// Load the bytes as a scenario and resolve its parameters. Returns true when it loaded;
// a refusal (LoadError) returns false; anything else is a finding: print it and abort.
bool run_loader_input(const uint8_t* data, size_t size);

}  // namespace hvsim::fuzz
