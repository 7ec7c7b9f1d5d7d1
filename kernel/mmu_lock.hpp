// kvm->mmu_lock held in simulated time. On x86 it is an rwlock_t (KVM_HAVE_MMU_RWLOCK,
// include/linux/kvm_host.h) and so on arm64: TDP MMU faults take it for read
// (kvm_tdp_mmu_page_fault(), kvm_tdp_mmu_map()), invalidations take it for write
// (kvm_mmu_invalidate_begin() and kvm_unmap_gfn_range() under KVM_MMU_LOCK in
// kvm_handle_hva_range() / kvm_vm_set_mem_attributes(), kvm_gmem_invalidate_begin()),
// arm64's user_mem_abort() / gmem_abort() read (kvm_fault_lock()), pKVM's donation write.
//
// Timing follows the TDX module's timed locks (models/tdx/tdx_module.hpp, at()): a thread
// takes the lock at its local time after bringing it in line with the global time (so
// acquisitions are made in time order), holds it until its local time at unlock(), and a
// thread that takes it in a conflicting mode before then advances its local time to the
// release (charged as "mmu_lock_wait"): a writer waits for readers and readers for a
// writer, two readers never wait. A holder that yields inside its critical section (a
// SEAMCALL syncs) leaves its release time unknown; a conflicting thread then spins in
// simulated time, one acquire attempt per poll, until it is released. A waiting writer
// keeps new readers out (qrwlock is fair: queued readers wait behind a queued writer).
// Without a clock (unit tests, setup) or from a context with no local time (not a simulated
// thread's), the lock is its uncontended cost only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "models/common/exec_context.hpp"
#include "models/common/types.hpp"

namespace hvsim::kvm {

struct MmuLockStats {
    uint64_t read_acquires = 0, write_acquires = 0;
    uint64_t waits = 0;         // acquisitions that found the lock held in a conflicting mode
    uint64_t wait_cycles = 0;   // simulated cycles those acquisitions waited
};

class MmuLock {
public:
    enum class Mode : uint8_t { read, write };

    // The global simulated time in cycles (the SystemC time). Unset: a cost only. The
    // taking thread's local time comes from the context it charges (ctx.local_cycles()).
    void set_clock(std::function<Cycles()> global) { clock_ = std::move(global); }
    bool timed() const { return bool(clock_); }

    // read_lock() / write_lock(): waits as above, then charges `cost` (the uncontended
    // acquire and release) as "mmu_lock". Returns whether the hold is timed (pass it to
    // unlock()).
    bool lock(Mode m, ExecContext& ctx, Cycles cost);
    // read_unlock() / write_unlock() at the caller's local time.
    void unlock(Mode m, ExecContext& ctx, bool timed);

    const MmuLockStats& stats() const { return stats_; }
    // Holders inside now (timed holds only), for checks and tests.
    unsigned readers_inside() const { return read_.open; }
    bool writer_inside() const { return write_.open != 0; }
    unsigned writers_waiting() const { return writers_waiting_; }
    // Whether an acquisition in mode m now would get in without spinning.
    bool would_take(Mode m) const { return !conflict_inside(m); }

private:
    struct Side {
        Cycles until = 0;    // the latest release of a hold of this mode
        unsigned open = 0;   // holds taken and not yet released
    };
    bool conflict_inside(Mode m) const {
        return write_.open || (m == Mode::write ? read_.open != 0 : writers_waiting_ != 0);
    }

    std::function<Cycles()> clock_;
    Side read_, write_;
    unsigned writers_waiting_ = 0;
    MmuLockStats stats_;
};

// A scoped hold (guard(read_lock) / guard(write_lock)); unlock() releases early.
class MmuLockGuard {
public:
    MmuLockGuard(MmuLock& l, MmuLock::Mode m, ExecContext& ctx, Cycles cost)
        : l_(l), m_(m), ctx_(ctx), timed_(l.lock(m, ctx, cost)) {}
    ~MmuLockGuard() { unlock(); }
    MmuLockGuard(const MmuLockGuard&) = delete;
    MmuLockGuard& operator=(const MmuLockGuard&) = delete;
    void unlock() {
        if (held_) l_.unlock(m_, ctx_, timed_);
        held_ = false;
    }

private:
    MmuLock& l_;
    MmuLock::Mode m_;
    ExecContext& ctx_;
    bool timed_;
    bool held_ = true;
};

}  // namespace hvsim::kvm
