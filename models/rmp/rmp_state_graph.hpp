// The page-state graph of one 4 KiB system page under SEV-SNP: vertices are the RMP page
// states the model reaches (the SEV firmware's names, `rmp_entry_get_state`), edges the
// instructions that move a page between them (Boost.Graph). In checked builds
// (HVSIM_CHECKED) the RMP asserts that every entry it writes makes a transition on this
// graph, so a bug such as "a page went from hypervisor-owned to validated" fails loudly.
// `hvsim graph snp` prints it as DOT.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/rmp/rmp.hpp"

namespace hvsim::rmp {

enum class RmpPageState : uint8_t {
    hypervisor,      // assigned 0
    guest_invalid,   // assigned, guest ASID, mutable, not validated
    guest_valid,     // assigned, guest ASID, mutable, validated
    pre_guest,       // assigned, guest ASID, immutable, not validated (launch: before SNP_LAUNCH_UPDATE)
    firmware,        // assigned, ASID 0, immutable (AMD-SP pages)
    reclaim,         // assigned, ASID 0, mutable
};
inline constexpr int kNumRmpPageStates = 6;
const char* rmp_page_state_name(RmpPageState s);
// The state of a page whose authoritative entry is e.
RmpPageState rmp_page_state(const RmpEntry& e);

struct RmpTransition {
    RmpPageState from, to;
    const char* op;
};
const std::vector<RmpTransition>& rmp_page_transitions();
// True iff from -> to is an edge (from == to is always allowed).
bool rmp_check_transition(RmpPageState from, RmpPageState to);
// Throws std::logic_error naming both states and `where` unless it is an edge.
void rmp_assert_transition(RmpPageState from, RmpPageState to, const char* where);
std::string rmp_page_state_dot();

}  // namespace hvsim::rmp
