// pKVM page ownership at EL2: every transition legal or refused with mem_protect.c's
// errno, in its order (arm64 case ids 28-40), contents preserved across MEM_SHARE /
// MEM_UNSHARE, and after every step the host stage-2 maps no page the host gave away.
#include <catch2/catch.hpp>

#include <cerrno>

#include "kernel/arm64/pkvm_mem_protect.hpp"

using namespace hvsim;
using namespace hvsim::kvm::arm64;
using S = PkvmPageState;

namespace {

constexpr uint64_t kPfn = 0x100;   // a host page (memory: 0..64 MiB in two memblocks)
constexpr uint32_t kRWX = 7;

struct Rig {
    PhysMem mem;
    PkvmMemProtect pm{mem, {{0, 32ull << 20, false}, {32ull << 20, 30ull << 20, false}, {62ull << 20, 2ull << 20, true}}};
    // Every call goes through here: the host stage-2 invariant is checked after each.
    int operator()(int r) {
        const std::string bad = pm.check_host_stage2();
        INFO(bad);
        CHECK(bad.empty());
        return r;
    }
};

}  // namespace

TEST_CASE("pkvm: arm64 case 28: a hyp-owned page refuses every host and guest transition") {
    Rig r;
    REQUIRE(r(r.pm.__pkvm_host_donate_hyp(kPfn, 1)) == 0);
    CHECK(r.pm.host_state(kPfn) == S::nopage);
    CHECK(r.pm.hyp_state(kPfn) == S::owned);
    CHECK(r(r.pm.__pkvm_host_donate_hyp(kPfn, 1)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_share_hyp(kPfn)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_unshare_hyp(kPfn)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_share_ffa(kPfn, 1)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_unshare_ffa(kPfn, 1)) == -EPERM);
    CHECK(r(r.pm.hyp_pin_shared_mem(kPfn)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_share_guest(kPfn, 0x10, 1, 1, kRWX)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_donate_guest(kPfn, 0x10, 1)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_unshare_guest(0x10, 1, 1)) == -ENOENT);
    CHECK(r.pm.host_access(kPfn) == -EPERM);
}

TEST_CASE("pkvm: arm64 case 29: hyp_donate_host returns the page, a repeat is -EPERM") {
    Rig r;
    REQUIRE(r(r.pm.__pkvm_host_donate_hyp(kPfn, 1)) == 0);
    CHECK(r(r.pm.__pkvm_hyp_donate_host(kPfn, 1)) == 0);
    CHECK(r.pm.host_state(kPfn) == S::owned);
    CHECK(r.pm.hyp_state(kPfn) == S::nopage);
    CHECK(r.pm.host_access(kPfn) == 0);
    CHECK(r(r.pm.__pkvm_hyp_donate_host(kPfn, 1)) == -EPERM);
}

TEST_CASE("pkvm: arm64 cases 30-31: share with the hypervisor, pins block the unshare (-EBUSY)") {
    Rig r;
    REQUIRE(r(r.pm.__pkvm_host_share_hyp(kPfn)) == 0);
    CHECK(r.pm.host_state(kPfn) == S::shared_owned);
    CHECK(r.pm.hyp_state(kPfn) == S::shared_borrowed);
    CHECK(r.pm.host_access(kPfn) == 0);   // sharing leaves the host mapping in place
    CHECK(r(r.pm.__pkvm_host_share_hyp(kPfn)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_donate_hyp(kPfn, 1)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_share_ffa(kPfn, 1)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_share_guest(kPfn, 0x10, 1, 1, kRWX)) == -EPERM);   // case 34: count 0
    CHECK(r(r.pm.__pkvm_host_donate_guest(kPfn, 0x10, 1)) == -EPERM);
    REQUIRE(r.pm.hyp_pin_shared_mem(kPfn) == 0);
    REQUIRE(r.pm.hyp_pin_shared_mem(kPfn) == 0);
    REQUIRE(r.pm.hyp_unpin_shared_mem(kPfn) == 0);
    CHECK(r(r.pm.__pkvm_host_unshare_hyp(kPfn)) == -EBUSY);
    REQUIRE(r.pm.hyp_unpin_shared_mem(kPfn) == 0);
    CHECK(r(r.pm.__pkvm_host_unshare_hyp(kPfn)) == 0);
    CHECK(r.pm.host_state(kPfn) == S::owned);
}

TEST_CASE("pkvm: arm64 case 32: FF-A share and unshare") {
    Rig r;
    REQUIRE(r(r.pm.__pkvm_host_share_ffa(kPfn, 1)) == 0);
    CHECK(r.pm.host_state(kPfn) == S::shared_owned);
    CHECK(r(r.pm.__pkvm_host_share_ffa(kPfn, 1)) == -EPERM);
    CHECK(r(r.pm.hyp_pin_shared_mem(kPfn)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_unshare_ffa(kPfn, 1)) == 0);
    CHECK(r(r.pm.__pkvm_host_unshare_ffa(kPfn, 1)) == -EPERM);
}

TEST_CASE("pkvm: arm64 cases 33-34: one page shared with a non-protected guest at two IPAs, size and prot rules") {
    Rig r;
    REQUIRE(r(r.pm.__pkvm_host_share_guest(kPfn, 0x10, 1, 1, kRWX)) == 0);
    CHECK(r(r.pm.__pkvm_host_share_guest(kPfn, 0x10, 1, 1, kRWX)) == -EPERM);
    REQUIRE(r(r.pm.__pkvm_host_share_guest(kPfn, 0x11, 1, 1, kRWX)) == 0);
    CHECK(r.pm.share_guest_count(kPfn) == 2);
    CHECK(r.pm.guest_state(1, 0x11) == S::shared_borrowed);
    REQUIRE(r(r.pm.__pkvm_host_unshare_guest(0x10, 1, 1)) == 0);
    CHECK(r.pm.host_state(kPfn) == S::shared_owned);
    REQUIRE(r(r.pm.__pkvm_host_unshare_guest(0x11, 1, 1)) == 0);
    CHECK(r.pm.host_state(kPfn) == S::owned);
    // A 2 MiB share at an unaligned IPA, and a DEVICE prot, are -EINVAL.
    CHECK(r(r.pm.__pkvm_host_share_guest(0x200, 0x201, 512, 1, kRWX)) == -EINVAL);
    CHECK(r(r.pm.__pkvm_host_share_guest(kPfn, 0x20, 1, 1, kRWX | 8)) == -EINVAL);
    REQUIRE(r(r.pm.__pkvm_host_share_guest(0x200, 0x400, 512, 1, kRWX)) == 0);
    CHECK(r(r.pm.__pkvm_host_unshare_guest(0x400, 1, 1)) == -E2BIG);
}

TEST_CASE("pkvm: arm64 case 35: donation to a protected guest annotates the host stage-2") {
    Rig r;
    REQUIRE(r(r.pm.__pkvm_host_donate_guest(kPfn, 0x10, 1)) == 0);
    CHECK(r.pm.host_state(kPfn) == S::nopage);
    CHECK(r.pm.annotation(kPfn) == PkvmOwner::guest);
    CHECK(r.pm.guest_state(1, 0x10) == S::owned);
    CHECK(r.pm.host_access(kPfn) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_donate_guest(kPfn, 0x10, 1)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_donate_guest(kPfn, 0x11, 1)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_share_guest(kPfn, 0x12, 1, 2, kRWX)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_share_ffa(kPfn, 1)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_share_hyp(kPfn)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_donate_hyp(kPfn, 1)) == -EPERM);
    CHECK(r(r.pm.__pkvm_hyp_donate_host(kPfn, 1)) == -EPERM);
}

TEST_CASE("pkvm: arm64 cases 36-37: MEM_SHARE / MEM_UNSHARE convert in place, contents preserved, no copy") {
    Rig r;
    const Hpa page(kPfn << kPageShift);
    REQUIRE(r(r.pm.__pkvm_guest_share_host(1, 0x10)) == -ENOENT);   // case 37: not donated yet
    REQUIRE(r(r.pm.__pkvm_host_donate_guest(kPfn, 0x10, 1)) == 0);
    r.mem.fill(page, 0x5a, kPageSize);   // the guest's private data
    REQUIRE(r(r.pm.__pkvm_guest_share_host(1, 0x10)) == 0);
    CHECK(r.pm.host_state(kPfn) == S::shared_borrowed);
    CHECK(r.pm.guest_state(1, 0x10) == S::shared_owned);
    CHECK(r.pm.host_access(kPfn) == 0);
    CHECK(r.mem.read64(page) == 0x5a5a5a5a5a5a5a5aull);   // PRESERVE: same frame, same bytes
    CHECK(r(r.pm.__pkvm_guest_share_host(1, 0x10)) == -EPERM);
    r.mem.fill(page, 0x77, 64);   // the host writes into the shared buffer
    REQUIRE(r(r.pm.__pkvm_guest_unshare_host(1, 0x10)) == 0);
    CHECK(r.pm.host_state(kPfn) == S::nopage);
    CHECK(r.pm.guest_state(1, 0x10) == S::owned);
    CHECK(r.pm.host_access(kPfn) == -EPERM);
    CHECK(r.mem.read64(page) == 0x7777777777777777ull);
    CHECK(r(r.pm.__pkvm_guest_unshare_host(1, 0x10)) == -EPERM);
    CHECK(r.pm.stats().share == 1);
    CHECK(r.pm.stats().unshare == 1);
}

TEST_CASE("pkvm: arm64 case 38: a host access to a donated page: forced reclaim zeroes it and poisons the IPA") {
    Rig r;
    const Hpa page(kPfn << kPageShift);
    REQUIRE(r(r.pm.__pkvm_host_donate_guest(kPfn, 0x10, 1)) == 0);
    r.mem.fill(page, 0x5a, kPageSize);
    CHECK(r.pm.host_access(kPfn) == -EPERM);
    REQUIRE(r(r.pm.__pkvm_host_force_reclaim_page_guest(page.raw())) == 0);
    CHECK(r.pm.host_state(kPfn) == S::owned);
    CHECK(r.pm.guest_state(1, 0x10) == S::poison);
    CHECK(r.mem.read64(page) == 0);
    CHECK(r.pm.host_access(kPfn) == 0);
    CHECK(r(r.pm.__pkvm_host_force_reclaim_page_guest(page.raw())) == -EAGAIN);   // no longer faults
    CHECK(r(r.pm.__pkvm_host_donate_guest(0x101, 0x10, 1)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_share_guest(0x101, 0x10, 1, 1, kRWX)) == -EPERM);
    CHECK(r(r.pm.__pkvm_guest_share_host(1, 0x10)) == -EHWPOISON);
    CHECK(r(r.pm.__pkvm_guest_unshare_host(1, 0x10)) == -EHWPOISON);
}

TEST_CASE("pkvm: arm64 case 39: teardown reclaim: only while dying, OWNED zeroed, SHARED_OWNED kept, POISON ok") {
    Rig r;
    REQUIRE(r(r.pm.__pkvm_host_donate_guest(0x100, 0x10, 1)) == 0);
    REQUIRE(r(r.pm.__pkvm_host_donate_guest(0x101, 0x11, 1)) == 0);
    REQUIRE(r(r.pm.__pkvm_host_donate_guest(0x102, 0x12, 1)) == 0);
    r.mem.fill(Hpa(0x100ull << kPageShift), 0x11, 3 * kPageSize);
    REQUIRE(r(r.pm.__pkvm_guest_share_host(1, 0x11)) == 0);
    REQUIRE(r(r.pm.__pkvm_host_force_reclaim_page_guest(0x102ull << kPageShift)) == 0);
    CHECK(r(r.pm.__pkvm_host_reclaim_page_guest(0x10, 1)) == -EINVAL);
    REQUIRE(r(r.pm.__pkvm_start_teardown_vm(1)) == 0);
    CHECK(r(r.pm.__pkvm_start_teardown_vm(1)) == -EINVAL);
    CHECK(r(r.pm.__pkvm_host_reclaim_page_guest(0x10, 1)) == 0);
    CHECK(r.mem.read64(Hpa(0x100ull << kPageShift)) == 0);
    CHECK(r(r.pm.__pkvm_host_reclaim_page_guest(0x11, 1)) == 0);
    CHECK(r.mem.read64(Hpa(0x101ull << kPageShift)) == 0x1111111111111111ull);
    CHECK(r(r.pm.__pkvm_host_reclaim_page_guest(0x12, 1)) == 0);
    CHECK(r(r.pm.__pkvm_host_reclaim_page_guest(0x13, 1)) == -ENOENT);
    for (uint64_t p : {0x100, 0x101, 0x102}) CHECK(r.pm.host_state(p) == S::owned);
    CHECK(r.pm.stats().reclaim == 3);
}

TEST_CASE("pkvm: arm64 case 40: -EBUSY while pinned at EL2, memblock boundary -EINVAL, NOMAP -EPERM") {
    Rig r;
    REQUIRE(r(r.pm.__pkvm_host_share_hyp(kPfn)) == 0);
    REQUIRE(r.pm.hyp_pin_shared_mem(kPfn) == 0);
    CHECK(r(r.pm.__pkvm_host_unshare_hyp(kPfn)) == -EBUSY);
    // 32 MiB is a memblock boundary; 62 MiB.. is NOMAP.
    CHECK(r(r.pm.__pkvm_host_donate_hyp((32ull << 20 >> kPageShift) - 1, 2)) == -EINVAL);
    CHECK(r(r.pm.__pkvm_host_donate_hyp(62ull << 20 >> kPageShift, 1)) == -EPERM);
    CHECK(r(r.pm.__pkvm_host_donate_hyp(1ull << 30 >> kPageShift, 1)) == -EINVAL);   // beyond memory
}

TEST_CASE("pkvm: the ownership graph: every performed transition is an edge, DOT names the hypercalls") {
    CHECK(pkvm_check_transition(PkvmJoint::host_owned, PkvmJoint::guest_owned));
    CHECK(pkvm_check_transition(PkvmJoint::guest_owned, PkvmJoint::guest_shared_host));
    CHECK_FALSE(pkvm_check_transition(PkvmJoint::host_shared_hyp, PkvmJoint::guest_owned));
    CHECK_FALSE(pkvm_check_transition(PkvmJoint::hyp_owned, PkvmJoint::guest_owned));
    const std::string dot = pkvm_state_dot();
    CHECK(dot.find("digraph pkvm_page") == 0);
    CHECK(dot.find("MEM_SHARE") != std::string::npos);
    CHECK(dot.find("__pkvm_host_donate_guest") != std::string::npos);
}

// With a 64K (or 16K) host PAGE_SIZE, pKVM's unit is that page: pfns and gfns count 64 KiB
// pages, a donation or reclaim moves all 16 frames of one at once, and the zeroing of a
// reclaimed page covers all of it.
TEST_CASE("pkvm: 64K pages: donate, MEM_SHARE, MEM_UNSHARE and teardown reclaim move one 64 KiB unit") {
    PhysMem mem;
    PkvmMemProtect pm{mem, {{0, 64ull << 20, false}}, 16};
    CHECK(pm.page_size() == 65536);
    CHECK(pm.block_pages() == 8192);   // one level-2 block: 512 MiB
    constexpr uint64_t pfn = 0x20;     // PA 2 MiB
    const Hpa base(pfn << 16);
    REQUIRE(pm.__pkvm_host_donate_guest(pfn, 0x3, 1) == 0);
    CHECK(pm.host_state(pfn) == S::nopage);
    CHECK(pm.host_state(pfn + 1) == S::owned);   // the next 64 KiB page is untouched
    CHECK(pm.host_access(pfn) == -EPERM);
    CHECK(pm.check_host_stage2().empty());
    mem.fill(base, 0x5a, 65536);   // the guest's data fills the whole page
    REQUIRE(pm.__pkvm_guest_share_host(1, 0x3) == 0);
    CHECK(pm.host_state(pfn) == S::shared_borrowed);
    CHECK(mem.read64(Hpa(base.raw() + 0xfff8)) == 0x5a5a5a5a5a5a5a5aull);   // preserved, last frame too
    REQUIRE(pm.__pkvm_guest_unshare_host(1, 0x3) == 0);
    CHECK(pm.host_state(pfn) == S::nopage);
    REQUIRE(pm.__pkvm_start_teardown_vm(1) == 0);
    REQUIRE(pm.__pkvm_host_reclaim_page_guest(0x3, 1) == 0);
    CHECK(pm.host_state(pfn) == S::owned);
    for (uint64_t off = 0; off < 65536; off += 4096) CHECK(mem.read64(Hpa(base.raw() + off + 8)) == 0);   // all 16 frames zeroed
    CHECK(pm.check_host_stage2().empty());
    CHECK(pm.stats().donate == 1);
    CHECK(pm.stats().share == 1);
    CHECK(pm.stats().unshare == 1);
    CHECK(pm.stats().reclaim == 1);
}

TEST_CASE("pkvm: 64K pages: a forced reclaim zeroes the whole 64 KiB page, share_guest blocks are 512 MiB") {
    PhysMem mem;
    PkvmMemProtect pm{mem, {{0, 1ull << 30, false}}, 16};
    const Hpa base(0x20ull << 16);
    REQUIRE(pm.__pkvm_host_donate_guest(0x20, 0x3, 1) == 0);
    mem.fill(base, 0x5a, 65536);
    // An address inside the page (the 9th frame) names the page.
    REQUIRE(pm.__pkvm_host_force_reclaim_page_guest(base.raw() + 0x8000) == 0);
    CHECK(mem.read64(Hpa(base.raw() + 0xfff8)) == 0);
    CHECK(pm.guest_state(1, 0x3) == S::poison);
    // nr must be 1 or a 512 MiB block (8192 pages) aligned in both spaces.
    CHECK(pm.__pkvm_host_share_guest(0x40, 0x10, 512, 2, kRWX) == -EINVAL);
    CHECK(pm.__pkvm_host_share_guest(0x2000, 0x10, 8192, 2, kRWX) == -EINVAL);   // gfn not block-aligned
    CHECK(pm.__pkvm_host_share_guest(0x40, 0x10, 1, 2, kRWX) == 0);
}

TEST_CASE("pkvm: 16K pages: block_pages is a 32 MiB block, a page outside memory is -EINVAL") {
    PhysMem mem;
    PkvmMemProtect pm{mem, {{0, 64ull << 20, false}}, 14};
    CHECK(pm.block_pages() == 2048);
    CHECK(pm.__pkvm_host_donate_guest(4096, 0, 1) == -EINVAL);   // 64 MiB / 16 KiB = 4096 pages
    CHECK(pm.__pkvm_host_donate_guest(4095, 0, 1) == 0);
    CHECK_THROWS_AS((PkvmMemProtect{mem, {{0, 1ull << 20, false}}, 13}), std::invalid_argument);
}
