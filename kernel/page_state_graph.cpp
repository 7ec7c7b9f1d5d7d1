#include "kernel/page_state_graph.hpp"

#include "models/common/state_graph.hpp"

#include <ostream>
#include <sstream>
#include <stdexcept>

namespace hvsim::kvm {

namespace {

using S = GmemPageState;

const StateGraph& graph() {
    static const StateGraph g(kNumGmemPageStates, [](int i) { return gmem_page_state_name(GmemPageState(i)); },
                              gmem_page_transitions());
    return g;
}

}  // namespace

const char* gmem_page_state_name(GmemPageState s) {
    switch (s) {
    case S::hole_shared: return "hole_shared";
    case S::hole_private: return "hole_private";
    case S::shared: return "shared";
    case S::shared_mapped: return "shared_mapped";
    case S::shared_pinned: return "shared_pinned";
    case S::private_: return "private";
    }
    return "?";
}

const std::vector<GmemTransition>& gmem_page_transitions() {
    static const std::vector<GmemTransition> t = {
        // allocation: fallocate(KEEP_SIZE), kvm_gmem_get_pfn(), a host fault on the mmap
        {S::hole_shared, S::shared, "allocate"},
        {S::hole_private, S::private_, "allocate"},
        {S::hole_shared, S::shared_mapped, "host_fault"},
        {S::shared, S::shared_mapped, "host_fault"},
        // host mappings and pins
        {S::shared_mapped, S::shared, "unmap"},
        {S::shared, S::shared_pinned, "pin"},
        {S::shared_mapped, S::shared_pinned, "pin"},
        {S::hole_shared, S::shared_pinned, "pin"},
        {S::shared_pinned, S::shared_mapped, "unpin"},
        {S::shared_pinned, S::shared, "unpin"},
        {S::shared_pinned, S::shared_pinned, "unmap"},
        // conversion (KVM_SET_MEMORY_ATTRIBUTES2): to private only unmapped and unpinned
        {S::shared, S::private_, "convert_private"},
        {S::private_, S::shared, "convert_shared"},
        {S::hole_shared, S::hole_private, "convert_private"},
        {S::hole_private, S::hole_shared, "convert_shared"},
        // punch hole / release: the page leaves the page cache (pinned: freed at unpin)
        {S::shared, S::hole_shared, "punch_hole"},
        {S::shared_pinned, S::hole_shared, "punch_hole"},
        {S::private_, S::hole_private, "punch_hole"},
    };
    return t;
}

bool kvm_check_transition(GmemPageState from, GmemPageState to) { return graph().allows(int(from), int(to)); }

void kvm_assert_transition(GmemPageState from, GmemPageState to, const char* where) {
    if (!kvm_check_transition(from, to))
        throw std::logic_error(std::string("guest_memfd page-state transition ") + gmem_page_state_name(from) +
                               " -> " + gmem_page_state_name(to) + " is not an edge (" + where + ")");
}

void write_gmem_page_state_dot(std::ostream& os) { graph().write_dot(os, "gmem_page"); }

std::string gmem_page_state_dot() {
    std::ostringstream os;
    write_gmem_page_state_dot(os);
    return os.str();
}

}  // namespace hvsim::kvm
