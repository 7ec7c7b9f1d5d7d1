#include "tests/fuzz/loader_target.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "sim/loader.hpp"

namespace hvsim::fuzz {

bool run_loader_input(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        auto s = load_scenario_text(text, "fuzz.json");
        (void)resolve_params(s, {});
        return true;
    } catch (const LoadError& e) {
        // A refusal is one line: a newline inside would break the CLI's contract.
        const std::string msg = e.what();
        if (msg.empty() || msg.find('\n') != std::string::npos) {
            std::fprintf(stderr, "hvsim fuzz finding: load error is not one line: [%s]\n", msg.c_str());
            std::abort();
        }
        return false;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hvsim fuzz finding: loader threw %s\n", e.what());
        std::abort();
    }
}

}  // namespace hvsim::fuzz
