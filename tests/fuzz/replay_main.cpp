// Runs the committed fuzz corpora through the fuzz targets' bodies in an ordinary build
// (no libFuzzer needed), so every input that once found a bug stays a regression test:
//   fuzz_replay loader|uapi PATH...   (files or folders)
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/fuzz/loader_target.hpp"
#include "tests/fuzz/uapi_decoder.hpp"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: fuzz_replay loader|uapi PATH...\n");
        return 2;
    }
    const std::string target = argv[1];
    if (target != "loader" && target != "uapi") {
        std::fprintf(stderr, "fuzz_replay: unknown target '%s' (loader, uapi)\n", argv[1]);
        return 2;
    }
    std::vector<fs::path> files;
    for (int i = 2; i < argc; ++i) {
        const fs::path p = argv[i];
        if (fs::is_directory(p)) {
            for (const auto& e : fs::recursive_directory_iterator(p))
                if (e.is_regular_file()) files.push_back(e.path());
        } else {
            files.push_back(p);
        }
    }
    std::sort(files.begin(), files.end());
    size_t loaded = 0, steps = 0;
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
        if (target == "loader") loaded += hvsim::fuzz::run_loader_input(d, bytes.size());
        else steps += hvsim::fuzz::run_uapi_input(d, bytes.size(), false);
    }
    if (target == "loader") std::printf("%zu inputs, %zu loaded\n", files.size(), loaded);
    else std::printf("%zu inputs, %zu steps run\n", files.size(), steps);
    return files.empty() ? 1 : 0;
}
