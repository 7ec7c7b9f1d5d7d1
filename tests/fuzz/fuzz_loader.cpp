// libFuzzer target: the scenario loader and the parameter resolution on arbitrary bytes.
// Every input either loads or is refused with a LoadError; anything else (a crash, a
// sanitizer report, another exception, a hang) is a finding.
#include "tests/fuzz/fuzz_driver.hpp"
#include "tests/fuzz/loader_target.hpp"

static int one_input(const uint8_t* data, size_t size) {
    hvsim::fuzz::run_loader_input(data, size);
    return 0;
}

int main(int argc, char** argv) { return LLVMFuzzerRunDriver(&argc, &argv, one_input); }
