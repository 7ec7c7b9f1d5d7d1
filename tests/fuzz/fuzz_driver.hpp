// libFuzzer's driver entry (libclang_rt.fuzzer_no_main): the fuzz executables bring their
// own main(), so neither libFuzzer's nor libsystemc's main() is linked in.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerRunDriver(int* argc, char*** argv, int (*cb)(const uint8_t* data, size_t size));
