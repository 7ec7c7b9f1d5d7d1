// MMU invalidation state (§5.3) and the lock boundaries where a concurrently simulated
// vCPU may observe it (ExecContext::sync()).
#include <catch2/catch.hpp>

#include <functional>

#include "kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;
using namespace hvsim::uapi;

TEST_CASE("invalidate: begin / range_add union / end and the retry checks", "[invalidate]") {
    Env e;
    Kvm& k = *e.kvm;
    const uint64_t seq = k.mmu_invalidate_seq;
    REQUIRE_FALSE(k.mmu_invalidate_retry_gfn(seq, Gfn(5)));
    k.kvm_mmu_invalidate_begin();
    REQUIRE(k.mmu_invalidate_in_progress == 1);
    REQUIRE(k.mmu_invalidate_range_start.raw() == kInvalidGfn);
    // In progress without a range yet: a KVM bug, retry (locked check); the lockless
    // pre-check cannot match INVALID.
    REQUIRE(k.mmu_invalidate_retry_gfn(seq, Gfn(5)));
    REQUIRE_FALSE(k.mmu_invalidate_retry_gfn_unsafe(seq, Gfn(5)));
    k.kvm_mmu_invalidate_range_add(Gfn(10), Gfn(20));
    k.kvm_mmu_invalidate_range_add(Gfn(30), Gfn(40));
    REQUIRE(k.mmu_invalidate_range_start == Gfn(10));
    REQUIRE(k.mmu_invalidate_range_end == Gfn(40));
    REQUIRE(k.mmu_invalidate_retry_gfn(seq, Gfn(25)));           // inside the union
    REQUIRE(k.mmu_invalidate_retry_gfn_unsafe(seq, Gfn(39)));
    REQUIRE_FALSE(k.mmu_invalidate_retry_gfn(seq, Gfn(40)));
    REQUIRE_FALSE(k.mmu_invalidate_retry_gfn(seq, Gfn(9)));
    // A nested begin keeps the range; only the outermost begin resets it.
    k.kvm_mmu_invalidate_begin();
    REQUIRE(k.mmu_invalidate_range_start == Gfn(10));
    k.kvm_mmu_invalidate_end();
    REQUIRE(k.mmu_invalidate_in_progress == 1);
    REQUIRE(k.mmu_invalidate_seq == seq + 1);
    REQUIRE(k.mmu_invalidate_retry_gfn(seq, Gfn(100)));          // seq moved on
    REQUIRE_FALSE(k.mmu_invalidate_retry_gfn(seq + 1, Gfn(100)));
    k.kvm_mmu_invalidate_end();
    REQUIRE(k.mmu_invalidate_in_progress == 0);
    REQUIRE_FALSE(k.mmu_invalidate_retry_gfn(seq + 2, Gfn(25)));
    k.kvm_mmu_invalidate_begin();
    REQUIRE(k.mmu_invalidate_range_start.raw() == kInvalidGfn);   // reset on 0 -> 1
    k.kvm_mmu_invalidate_end();
}

namespace {
// A context whose sync() runs a probe, standing in for a vCPU thread scheduled at a
// lock boundary.
struct ProbeContext final : ExecContext {
    std::function<void()> at_sync;
    Cycles total = 0;
    void charge(StepName, Cycles c) override { total += c; }
    void sync() override {
        if (at_sync) at_sync();
    }
};
}  // namespace

TEST_CASE("invalidate: a fault at the punch-hole lock boundary sees the invalidation and retries", "[invalidate]") {
    Env e(VmType::sw_protected);
    const int g = e.gmem(64 * 4096);
    REQUIRE(e.gslot(0, 0x400 * 4096, 32 * 4096, g, 16 * 4096) == 0);   // file [16,48) at gfn 0x400
    Kvm& k = *e.kvm;
    const uint64_t seq = k.mmu_invalidate_seq;
    std::vector<std::tuple<int64_t, bool, bool>> seen;   // in_progress, retry(gfn in range), retry(gfn outside)
    ProbeContext pc;
    pc.at_sync = [&] {
        seen.emplace_back(k.mmu_invalidate_in_progress, k.mmu_invalidate_retry_gfn(seq, Gfn(0x405)),
                          k.mmu_invalidate_retry_gfn(seq, Gfn(0x410)));
    };
    REQUIRE(e.proc->fallocate(g, uapi::falloc::KEEP_SIZE | uapi::falloc::PUNCH_HOLE, 20 * 4096, 2 * 4096, pc) == 0);
    // Two boundaries (after unmap+flush, before end), both with the invalidation running:
    // gfns [0x404, 0x406) retry, others do not.
    REQUIRE(seen.size() == 2);
    for (auto& [inprog, in_range, outside] : seen) {
        REQUIRE(inprog == 1);
        REQUIRE(in_range);
        REQUIRE_FALSE(outside);
    }
    REQUIRE(k.mmu_invalidate_seq == seq + 1);
    REQUIRE(k.mmu_invalidate_retry_gfn(seq, Gfn(0x410)));   // stale seq after end
    REQUIRE(k.stats().invalidations.back().cycles == pc.total - e.costs.ioctl - e.costs.mmu_lock);
}

TEST_CASE("invalidate: memslot delete publishes INVALID before zapping", "[invalidate][memslot]") {
    Env e;
    REQUIRE(e.slot(3, 0, 16 * 4096) == 0);
    const kvm_memory_slot* s = e.memslot(3);
    bool invalid_at_sync = false;
    size_t log_at_sync = 99;
    ProbeContext pc;
    pc.at_sync = [&] {
        invalid_at_sync = (s->flags & KVM_MEMSLOT_INVALID) != 0;
        log_at_sync = e.mmu.log.size();
    };
    e.mmu.clear();
    uapi::kvm_userspace_memory_region2 m{};
    m.slot = 3;
    REQUIRE(e.proc->ioctl_set_user_memory_region2(e.vmfd, m, pc) == 0);
    REQUIRE(invalid_at_sync);
    REQUIRE(log_at_sync == 0);   // nothing zapped yet when vCPUs can see INVALID
    REQUIRE(e.mmu.log == std::vector<std::string>{"flush_slot:3", "free:3"});
}

TEST_CASE("invalidate: memslot delete waits for SRCU readers before zapping and before freeing",
          "[invalidate][memslot][srcu]") {
    // Regression: the deletion used to zap right after publishing INVALID, so a fault that
    // had found the slot valid could install its SPTE after the zap (a mapping of memory no
    // memslot maps) and keep using the freed slot. Linux waits in kvm_swap_active_memslots().
    Env e;
    REQUIRE(e.slot(3, 0, 16 * 4096) == 0);
    Kvm& k = *e.kvm;
    const int early = k.srcu_read_lock();   // a fault that found slot 3 valid, still running
    int late = -1;
    int syncs = 0;
    size_t log_at_early_exit = 99, log_at_late_exit = 99;
    ProbeContext pc;
    pc.at_sync = [&] {
        ++syncs;
        if (syncs == 2) late = k.srcu_read_lock();   // starts during the wait: sees INVALID
        if (syncs == 3) {
            log_at_early_exit = e.mmu.log.size();
            k.srcu_read_unlock(early);
        }
        if (syncs == 4) {
            log_at_late_exit = e.mmu.log.size();
            k.srcu_read_unlock(late);
        }
    };
    e.mmu.clear();
    uapi::kvm_userspace_memory_region2 m{};
    m.slot = 3;
    REQUIRE(e.proc->ioctl_set_user_memory_region2(e.vmfd, m, pc) == 0);
    // sync 1 publishes INVALID; the first grace period polls (2, 3) until the early reader
    // leaves, not waiting for the late one; the second, after the slot left the array,
    // waits (4) for the late reader before the slot is freed.
    REQUIRE(syncs == 4);
    REQUIRE(log_at_early_exit == 0);   // no zap while the early reader could still map
    REQUIRE(log_at_late_exit == 1);    // zapped, not yet freed while the late reader ran
    REQUIRE(e.mmu.log == std::vector<std::string>{"flush_slot:3", "free:3"});
    REQUIRE(k.srcu_readers() == 0);
    REQUIRE(e.memslot(3) == nullptr);
    // Three polls on top of the ioctl and the memslot update.
    REQUIRE(pc.total == e.costs.ioctl + e.costs.memslot_update + 3 * e.costs.srcu_poll);
}

TEST_CASE("invalidate: memslot delete and move without readers do not wait", "[invalidate][memslot][srcu]") {
    Env e;
    REQUIRE(e.slot(3, 0, 16 * 4096) == 0);
    REQUIRE(e.slot(4, 0x100000, 16 * 4096) == 0);
    int syncs = 0;
    ProbeContext pc;
    pc.at_sync = [&] { ++syncs; };
    uapi::kvm_userspace_memory_region2 m{};
    m.slot = 4;
    m.guest_phys_addr = 0x200000;
    m.memory_size = 16 * 4096;
    m.userspace_addr = 0x7f0000000000ull;
    REQUIRE(e.proc->ioctl_set_user_memory_region2(e.vmfd, m, pc) == 0);   // MOVE
    REQUIRE(e.memslot(4)->base_gfn == Gfn(0x200));
    m = {};
    m.slot = 3;
    REQUIRE(e.proc->ioctl_set_user_memory_region2(e.vmfd, m, pc) == 0);   // DELETE
    REQUIRE(syncs == 2);   // only the publication of INVALID, once per change
    REQUIRE(pc.total == 2 * (e.costs.ioctl + e.costs.memslot_update));
    REQUIRE(e.kvm->srcu_readers() == 0);
}
