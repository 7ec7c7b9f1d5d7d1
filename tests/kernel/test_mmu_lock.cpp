// kvm->mmu_lock held in simulated time (kernel/mmu_lock.hpp): readers share it, a writer
// excludes everyone, a waiter advances its local time to the release.
#include <catch2/catch.hpp>

#include <functional>
#include <optional>
#include <string>

#include "kernel/mmu_lock.hpp"

using namespace hvsim;
using namespace hvsim::kvm;

namespace {

// One simulated thread: a local time (what the lock reads, ExecContext::local_cycles()), and
// a sync() that lets the "other threads" run.
struct Thread final : ExecContext {
    Cycles t = 0;
    Cycles waited = 0;
    std::function<void()> at_sync;
    void charge(StepName step, Cycles c) override {
        t += c;
        if (step == "mmu_lock_wait") waited += c;
    }
    void sync() override {
        if (at_sync) at_sync();
    }
    std::optional<Cycles> local_cycles() const override { return t; }
};

// The simulation around the lock: the global time.
struct Sim {
    Cycles global = 0;
    MmuLock l;
    Sim() {
        l.set_clock([this] { return global; });
    }
    bool lock(Thread& th, MmuLock::Mode m) { return l.lock(m, th, kCost); }
    void unlock(Thread& th, MmuLock::Mode m) { l.unlock(m, th, true); }
    static constexpr Cycles kCost = 60;
};

constexpr Cycles kCost = Sim::kCost;
constexpr auto R = MmuLock::Mode::read;
constexpr auto W = MmuLock::Mode::write;

}  // namespace

TEST_CASE("mmu_lock: a writer waits in simulated time for a reader that holds it", "[mmu_lock]") {
    Sim s;
    Thread reader, writer;
    s.global = reader.t = 100;
    REQUIRE(s.lock(reader, R));
    reader.charge("map", 1000);   // the fault's work under the lock
    s.unlock(reader, R);          // released at 1160
    REQUIRE(reader.t == 1160);
    s.global = writer.t = 200;
    REQUIRE(s.lock(writer, W));
    CHECK(writer.waited == 960);   // 200 -> 1160
    CHECK(writer.t == 1160 + kCost);
    s.unlock(writer, W);   // at 1220
    CHECK(s.l.stats().waits == 1);
    CHECK(s.l.stats().wait_cycles == 960);
    // A reader after the writer's release does not wait; one inside its hold does.
    Thread late, early;
    s.global = late.t = 5000;
    s.lock(late, R);
    CHECK(late.waited == 0);
    s.unlock(late, R);
    s.global = early.t = 1200;
    s.lock(early, R);
    CHECK(early.waited == 20);
    s.unlock(early, R);
}

TEST_CASE("mmu_lock: two readers hold it at once and neither waits", "[mmu_lock]") {
    Sim s;
    Thread a, b;
    s.global = a.t = b.t = 10;
    REQUIRE(s.lock(a, R));
    a.charge("map", 5000);
    REQUIRE(s.lock(b, R));   // a still inside
    CHECK(s.l.readers_inside() == 2);
    b.charge("map", 5000);
    s.unlock(a, R);
    s.unlock(b, R);
    CHECK(a.waited == 0);
    CHECK(b.waited == 0);
    CHECK(s.l.stats().waits == 0);
    CHECK(s.l.stats().read_acquires == 2);
}

TEST_CASE("mmu_lock: a reader spins while a writer that yielded is inside, then takes it at the release", "[mmu_lock]") {
    Sim s;
    Thread writer, reader;
    REQUIRE(s.lock(writer, W));
    writer.charge("zap", 100);   // then it syncs inside (a SEAMCALL): its release is unknown
    CHECK(s.l.writer_inside());
    int polls = 0;
    s.global = reader.t = 10;
    // Each poll of the reader lets the writer run; on the third it finishes at 400.
    reader.at_sync = [&] {
        s.global = reader.t;
        if (++polls == 3) {
            writer.charge("remove", 240);   // 160 -> 400
            s.unlock(writer, W);
        }
    };
    REQUIRE(s.lock(reader, R));
    CHECK(polls == 3);
    // Three polls of 60 (10 -> 190), then the rest of the writer's hold (-> 400).
    CHECK(reader.waited == 390);
    CHECK(reader.t == 400 + kCost);
    s.unlock(reader, R);
}

TEST_CASE("mmu_lock: a waiting writer keeps new readers out until it has been in", "[mmu_lock]") {
    Sim s;
    Thread r1, w, r2;
    REQUIRE(s.lock(r1, R));   // r1 inside, yields
    bool reader_would_wait = false;
    w.at_sync = [&, first = true]() mutable {
        if (!first) return;
        first = false;
        // While the writer waits for r1, a new reader conflicts (qrwlock queues it).
        reader_would_wait = s.l.writers_waiting() == 1 && !s.l.would_take(R);
        r1.t = 500;
        s.unlock(r1, R);
    };
    REQUIRE(s.lock(w, W));
    CHECK(reader_would_wait);
    CHECK(w.t == 500 + kCost);
    CHECK(s.l.writers_waiting() == 0);
    // While the writer is inside, a reader spins; the writer leaves at 700.
    s.global = r2.t = 520;
    r2.at_sync = [&, first = true]() mutable {
        if (!first) return;
        first = false;
        w.t = 700;
        s.unlock(w, W);
    };
    REQUIRE(s.lock(r2, R));
    CHECK(r2.t == 700 + kCost);
    s.unlock(r2, R);
    CHECK(s.l.stats().waits == 2);
}

TEST_CASE("mmu_lock: a thread ahead of the global time syncs first, so acquisitions are made in time order",
          "[mmu_lock]") {
    Sim s;
    Thread ahead;
    ahead.t = 900;
    s.global = 100;
    int syncs = 0;
    ahead.at_sync = [&] {
        ++syncs;
        s.global = ahead.t;   // the quantum keeper's wait: global time catches up
    };
    s.lock(ahead, W);
    CHECK(syncs == 1);
    s.unlock(ahead, W);
    // In line with the global time: no sync.
    s.global = ahead.t;
    s.lock(ahead, R);
    CHECK(syncs == 1);
    s.unlock(ahead, R);
}

TEST_CASE("mmu_lock: without a clock or a local time the lock is its cost only", "[mmu_lock]") {
    MmuLock l;
    CycleCounter c;
    CHECK_FALSE(l.lock(W, c, kCost));
    CHECK_FALSE(l.writer_inside());
    l.unlock(W, c, false);
    CHECK(c.total == kCost);
    Sim s;   // timed, but the context is no simulated thread's
    CHECK_FALSE(s.l.lock(R, c, kCost));
    CHECK(c.total == 2 * kCost);
    CHECK(s.l.stats().waits == 0);
}
