// Prints the scenario a uapi fuzz input decodes to, so a finding can be replayed with
// `hvsim run` and kept as a regression scenario:  fuzz_decode CRASH_FILE > scenario.json
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/fuzz/uapi_decoder.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: fuzz_decode INPUT\n");
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "fuzz_decode: cannot open %s\n", argv[1]);
        return 2;
    }
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::printf("%s\n", hvsim::fuzz::decode_uapi_scenario(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                          bytes.size()).c_str());
    return 0;
}
