// libFuzzer target: random uAPI sequences against the simulated KVM with the invariant
// checks on (the decoding and the run are in uapi_decoder.cpp). Findings: a crash or
// sanitizer report, a model exception (every model error must reach the user as a
// message), a hang (-timeout), an invariant violation after a step.
#include "tests/fuzz/fuzz_driver.hpp"
#include "tests/fuzz/uapi_decoder.hpp"

static int one_input(const uint8_t* data, size_t size) {
    hvsim::fuzz::run_uapi_input(data, size, /*verbose=*/false);
    return 0;
}

int main(int argc, char** argv) { return LLVMFuzzerRunDriver(&argc, &argv, one_input); }
