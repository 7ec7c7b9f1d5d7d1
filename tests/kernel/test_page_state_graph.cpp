#include <catch2/catch.hpp>

#include "kernel/page_state_graph.hpp"
#include "kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;
using namespace hvsim::uapi;
using S = GmemPageState;

TEST_CASE("page-state graph: edges and non-edges", "[graph]") {
    REQUIRE(kvm_check_transition(S::hole_private, S::private_));
    REQUIRE(kvm_check_transition(S::shared, S::private_));
    REQUIRE(kvm_check_transition(S::shared_pinned, S::shared_pinned));
    REQUIRE_FALSE(kvm_check_transition(S::private_, S::shared_mapped));
    REQUIRE_FALSE(kvm_check_transition(S::shared_pinned, S::private_));
    REQUIRE_FALSE(kvm_check_transition(S::shared_mapped, S::private_));
    REQUIRE_FALSE(kvm_check_transition(S::hole_private, S::shared_mapped));
    REQUIRE_THROWS_AS(kvm_assert_transition(S::private_, S::shared_pinned, "test"), std::logic_error);
    REQUIRE(gmem_page_transitions().size() == 18);
}

TEST_CASE("page-state graph: DOT output names every state and operation", "[graph]") {
    const std::string dot = gmem_page_state_dot();
    REQUIRE(dot.rfind("digraph gmem_page {", 0) == 0);
    for (int i = 0; i < kNumGmemPageStates; ++i)
        REQUIRE(dot.find(std::string("\"") + gmem_page_state_name(GmemPageState(i)) + "\"") != std::string::npos);
    REQUIRE(dot.find("[label=\"convert_private\"]") != std::string::npos);
    size_t edges = 0;
    for (size_t p = dot.find("->"); p != std::string::npos; p = dot.find("->", p + 2)) ++edges;
    REQUIRE(edges == 18);
}

TEST_CASE("page-state graph: guest_memfd pages move along edges", "[graph]") {
    Env e(VmType::sw_protected);
    const int g = e.gmem(8 * 4096, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    GuestMemfd& f = e.file(g);
    REQUIRE(f.page_state(0) == S::hole_shared);
    REQUIRE(e.proc->host_write_gmem(g, 0, 4096, 1, e.ctx).err == 0);
    REQUIRE(f.page_state(0) == S::shared_mapped);
    REQUIRE(e.proc->pin_gmem(g, 0, 4096, e.ctx) == 1);
    REQUIRE(f.page_state(0) == S::shared_pinned);
    REQUIRE(e.proc->unpin_gmem(g, 0, 4096, e.ctx) == 1);
    REQUIRE(e.set_attrs2(g, 0, 8 * 4096, PRIV, uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_PRESERVE) == 0);
    REQUIRE(f.page_state(0) == S::private_);
    REQUIRE(f.page_state(1) == S::hole_private);
    REQUIRE(e.punch(g, 0, 4096) == 0);
    REQUIRE(f.page_state(0) == S::hole_private);
}
