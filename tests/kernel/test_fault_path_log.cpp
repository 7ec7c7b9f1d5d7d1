// The fault-path recorder (kernel/fault_path.hpp): step names are interned by address, so
// these check that names with the same text at different addresses still aggregate as one
// step, and that a run reaching more charge sites than the address table first holds
// records every one of them.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <utility>

#include "kernel/fault_path.hpp"

using namespace hvsim;
using hvsim::kvm::FaultPathAgg;
using hvsim::kvm::FaultPathLog;

namespace {

// A distinct static array per I, "s00" ... "s99": as many addresses as charge sites.
template <int I>
struct Name {
    static constexpr char text[] = {'s', char('0' + I / 10), char('0' + I % 10), '\0'};
};

template <int... I>
void charge_all(FaultPathLog& log, std::integer_sequence<int, I...>) {
    (log.on_charge(StepName(Name<I>::text), Cycles(I + 1)), ...);
}

std::string fmt_name(int i) { return std::string{'s', char('0' + i / 10), char('0' + i % 10)}; }

std::map<std::string, FaultPathAgg> merged(const FaultPathLog& log) {
    std::map<std::string, FaultPathAgg> out;
    log.merge_into(out);
    return out;
}

}  // namespace

TEST_CASE("StepName: a compile-time name, its text and length", "[fault_path]") {
    constexpr StepName n("gup");
    STATIC_REQUIRE(n.size() == 3);
    CHECK(n.view() == "gup");
    CHECK(n == "gup");
    CHECK_FALSE(n == "gu");
    static constexpr char padded[8] = "ab";   // an array longer than its text
    CHECK(StepName(padded).size() == 2);
}

TEST_CASE("fault path log: one name at two addresses is one step", "[fault_path]") {
    static constexpr char a[] = "tdp_mmu_map";
    static constexpr char b[] = "tdp_mmu_map";
    REQUIRE(static_cast<const void*>(a) != static_cast<const void*>(b));
    FaultPathLog log;
    for (int i = 0; i < 3; ++i) {
        log.begin();
        log.on_charge(StepName(a), 10);
        log.on_charge("gup", 5);
        log.on_charge(StepName(b), 1);
        log.end("npf.shared.4K");
    }
    const auto out = merged(log);
    REQUIRE(out.size() == 1);
    const FaultPathAgg& p = out.at("npf.shared.4K");
    CHECK(p.count == 3);
    CHECK(p.total == 3 * 16);
    REQUIRE(p.steps.size() == 2);
    CHECK(p.steps[0] == std::pair<std::string, Cycles>("tdp_mmu_map", 33));
    CHECK(p.steps[1] == std::pair<std::string, Cycles>("gup", 15));
    CHECK(p.samples == std::vector<Cycles>{16, 16, 16});
}

TEST_CASE("fault path log: a hundred charge sites, more than the address table first holds", "[fault_path]") {
    FaultPathLog log;
    for (int f = 0; f < 2; ++f) {
        log.begin();
        charge_all(log, std::make_integer_sequence<int, 100>{});
        log.end("npf.test");
    }
    const auto out = merged(log);
    const FaultPathAgg& p = out.at("npf.test");
    CHECK(p.count == 2);
    CHECK(p.total == 2 * (100 * 101 / 2));
    REQUIRE(p.steps.size() == 100);
    for (int i = 0; i < 100; ++i) {
        const std::string want = fmt_name(i);
        CHECK(p.steps[size_t(i)].first == want);
        CHECK(p.steps[size_t(i)].second == Cycles(2 * (i + 1)));
    }
}
