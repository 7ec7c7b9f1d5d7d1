// The page-state graph of a generic guest_memfd page: vertices are the states one file
// page can be in, edges the operations that move it (Boost.Graph). In checked builds
// (HVSIM_CHECKED) GuestMemfd asserts that every transition it performs is an edge, so a
// modelling bug such as "a private page became host-mapped" fails loudly. `hvsim graph
// gmem` prints the graph as DOT. Architectures with their own state (RMP, SEPT, pKVM
// ownership) add their own graphs next to this one.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace hvsim::kvm {

enum class GmemPageState : uint8_t {
    hole_shared,     // no page allocated, attribute shared
    hole_private,    // no page allocated, attribute private
    shared,          // allocated, shared, not mapped by the host
    shared_mapped,   // allocated, shared, mapped in a host mmap (holds a reference)
    shared_pinned,   // allocated, shared, long-term pinned (GUP; blocks to-private)
    private_,        // allocated, private: never host-mapped or pinned
};
inline constexpr int kNumGmemPageStates = 6;

const char* gmem_page_state_name(GmemPageState s);

struct GmemTransition {
    GmemPageState from, to;
    const char* op;
};
// Every edge of the graph (the transitions hvsim's guest_memfd may perform).
const std::vector<GmemTransition>& gmem_page_transitions();

// True iff from -> to is an edge (from == to is always allowed: nothing happened).
bool kvm_check_transition(GmemPageState from, GmemPageState to);
// Throws std::logic_error naming both states and `where` unless it is an edge.
void kvm_assert_transition(GmemPageState from, GmemPageState to, const char* where);

// The graph in Graphviz DOT, built with boost::write_graphviz.
void write_gmem_page_state_dot(std::ostream& os);
std::string gmem_page_state_dot();

}  // namespace hvsim::kvm
