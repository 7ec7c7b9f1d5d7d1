#include "kernel/mmu_lock.hpp"

#include <algorithm>
#include <stdexcept>

namespace hvsim::kvm {

namespace {
// A lock that stays held across this many polls is a model deadlock, not contention.
constexpr uint64_t kMaxPolls = 50000000;
}  // namespace

bool MmuLock::lock(Mode m, ExecContext& ctx, Cycles cost) {
    (m == Mode::read ? stats_.read_acquires : stats_.write_acquires) += 1;
    std::optional<Cycles> t = clock_ ? ctx.local_cycles() : std::nullopt;
    if (!t) {
        ctx.charge("mmu_lock", cost);
        return false;
    }
    // In time order: a thread ahead of the global time first lets the others catch up.
    if (*t > clock_()) {
        ctx.sync();
        t = ctx.local_cycles();
    }
    Cycles waited = 0;
    // A conflicting holder still inside (it yielded in its critical section): spin, one
    // acquire attempt per poll, until it has released.
    if (conflict_inside(m)) {
        if (m == Mode::write) ++writers_waiting_;
        const Cycles poll = std::max<Cycles>(cost, 1);
        for (uint64_t polls = 0; conflict_inside(m); ++polls) {
            if (polls == kMaxPolls) throw std::logic_error("mmu_lock: held across too many polls (a model deadlock)");
            ctx.charge("mmu_lock_wait", poll);
            waited += poll;
            ctx.sync();
        }
        if (m == Mode::write) --writers_waiting_;
        t = ctx.local_cycles();
    }
    // Released already, but later than the caller's time: wait for the release.
    const Cycles free_at = m == Mode::write ? std::max(write_.until, read_.until) : write_.until;
    if (free_at > *t) {
        ctx.charge("mmu_lock_wait", free_at - *t);
        waited += free_at - *t;
    }
    if (waited) {
        ++stats_.waits;
        stats_.wait_cycles += waited;
    }
    ctx.charge("mmu_lock", cost);
    ++(m == Mode::read ? read_ : write_).open;
    return true;
}

void MmuLock::unlock(Mode m, ExecContext& ctx, bool timed) {
    if (!timed) return;
    Side& s = m == Mode::read ? read_ : write_;
    if (s.open == 0) throw std::logic_error("mmu_lock: unlock without a matching lock");
    --s.open;
    if (const std::optional<Cycles> t = ctx.local_cycles()) s.until = std::max(s.until, *t);
}

}  // namespace hvsim::kvm
