// Latency model for a core's memory references (the walker's table reads and, with
// cache.data, the guest's loads and stores): a hierarchy of set-associative, LRU caches
// (L1D, L2, LLC) in front of DRAM, sized and timed by the platform preset.
//
// The private levels are filled on every miss (mostly-inclusive). The last level may be a
// SharedCache several cores' hierarchies point to (the vCPUs of one CCX or one mesh), with
// one of two organisations:
//  - inclusive: a miss fills the LLC too and an LLC hit leaves the line there (Intel's
//    mesh LLC, non-inclusive in Skylake-SP and later but filled on demand misses: the
//    common case of an inclusive fill without back-invalidation);
//  - victim: the LLC is filled only by lines the L2 evicts, and a hit moves the line back
//    to the L2 (AMD Zen 4's L3, "a victim cache for the L2", Software Optimization Guide
//    for AMD Family 19h, §2.11). Lines shared by several cores are not tracked: a hit
//    always takes the line out of the L3.
//
// Two mechanisms let the in-order core overlap misses (both per core, both optional):
//  - outstanding line fills (mem.mshrs): a fill from DRAM occupies a miss-status holding
//    register until its data arrives. A store that misses is posted (it retires into the
//    store buffer and its RFO proceeds), a load waits for its data; either waits for the
//    oldest fill when every MSHR is busy. The walker's table reads are dependent loads and
//    always wait.
//  - an L2 stream prefetcher (mem.prefetch.*), as Intel's L2 streamer (Intel 64 and IA-32
//    Architectures Optimization Reference Manual, "Data Prefetch to the L2 and Last Level
//    Cache": up to 32 streams, one per 4 KiB page and direction, up to 20 lines ahead, two
//    prefetches per L2 look-up) and Zen 4's L2 stream prefetcher (Software Optimization
//    Guide for AMD Family 19h, §2.6 "Data Prefetch"): it watches the data references that
//    reach the L2 (L1D misses), and once two steps in one direction within a page were seen
//    it fetches lines ahead into the L2 (and an inclusive LLC) through the same line fill as
//    a miss, never beyond the 4 KiB page. A prefetch needs a free MSHR (else it is dropped);
//    a demand reference to a line still in flight waits for the rest of its fill.
// Fills complete in the core's time (a CoreClock; without one, the time this hierarchy has
// charged so far, as for a core that does nothing but memory references).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "models/common/remainder.hpp"
#include "models/common/types.hpp"

namespace hvsim {

struct CacheLevelConfig {
    std::string name;        // "l1d", "l2", "llc"
    uint64_t size_bytes = 0;
    unsigned ways = 8;
    Cycles hit_cycles = 0;   // load-to-use latency when this level hits
};

enum class LlcPolicy : uint8_t { inclusive, victim };

struct PrefetchConfig {
    bool l2_stream = false;   // mem.prefetch.l2_stream
    unsigned streams = 32;    // pages tracked at once (LRU)
    unsigned distance = 20;   // how many lines ahead of the demand stream it runs
    unsigned degree = 2;      // prefetches issued per trained reference
};

struct MemHierarchyConfig {
    std::vector<CacheLevelConfig> levels;
    unsigned line_bytes = 64;
    Cycles dram_cycles = 0;
    LlcPolicy llc_policy = LlcPolicy::inclusive;   // how the last level is filled (above)
    unsigned llc_shared_by = 1;                     // cores per LLC instance (the platform wires it)
    // Outstanding line fills per core (0: none tracked, every miss waits for its data and
    // nothing overlaps: the blocking model; the prefetcher then stays off).
    unsigned mshrs = 0;
    PrefetchConfig prefetch;
};

struct CacheLevelStats {
    uint64_t hits = 0;
    uint64_t misses = 0;
};

struct MemHierarchyStats {
    std::vector<CacheLevelStats> levels;
    uint64_t dram = 0;       // references served by DRAM
    uint64_t data_refs = 0;  // of all references, the guest's loads and stores (access_data)
    uint64_t castouts = 0;   // victim LLC: lines the L2 evicted into it
    uint64_t prefetches = 0;      // lines the stream prefetcher fetched from DRAM
    uint64_t prefetch_hits = 0;   // demand references that found a prefetched line (first use)
    uint64_t prefetch_late = 0;   // of those, the line was still in flight (waited for the rest)
    uint64_t prefetch_dropped = 0;   // prefetches not issued: every MSHR busy
    uint64_t posted_stores = 0;   // store misses that retired without waiting for their fill
    uint64_t mshr_full = 0;       // misses that waited for a free MSHR
    Cycles mshr_wait_cycles = 0;  // cycles those waits took
};

// Which host pages hold data encrypted with a guest's key (SEV, SEV-ES, SNP: the C-bit and
// the ASID's key; TDX: a TD private KeyID). The memory controller's encryption engine adds
// latency to a DRAM fill of such a line (MemHierarchy::set_encryption); the model asks this
// oracle instead of carrying the key ID on every request. Each VM type's backend provides
// its own (KvmArchOps::encrypted_pages()).
class EncryptedPages {
public:
    virtual ~EncryptedPages() = default;
    virtual bool encrypted(Pfn pfn) const = 0;
};

// The core's time in cycles, for fills that complete while the core goes on.
class CoreClock {
public:
    virtual ~CoreClock() = default;
    virtual Cycles cycles_now() const = 0;
};

class CacheHierarchy;

// One set-associative LRU array several hierarchies can share as their last level. Which
// core filled a line is not recorded: any core that asks finds it. Each set keeps its tags
// in recency order, most recent first, with the empty ways after the valid ones: a hit
// moves its tag to the front, a fill pushes the new tag in front and drops the last one
// (an empty way if there is one, else the least recently used line), an invalidation moves
// the ways behind it up and leaves an empty way at the end. Exact LRU with no ages to keep
// and no victim to search for.
class SharedCache {
public:
    SharedCache(const CacheLevelConfig& cfg, unsigned line_bytes);
    const CacheLevelConfig& config() const { return cfg_; }

private:
    friend class CacheHierarchy;
    struct FreeDeleter {
        void operator()(void* p) const { std::free(p); }
    };
    // Zero-filled arrays from calloc: the host maps their pages only when a set is first
    // used, so a large cache costs the host memory its touched sets need (1024 vCPUs
    // with a 32 MiB LLC each would otherwise commit 6 GiB before the first access).
    void clear();
    // No division on the hot path (Sapphire Rapids' 15-way LLC has 114,688 sets).
    size_t set_of(uint64_t line) const { return size_t(set_of_(line)); }

    uint64_t* set_tags(uint64_t line) { return tags_.get() + set_of(line) * ways_; }
    const uint64_t* set_tags(uint64_t line) const { return tags_.get() + set_of(line) * ways_; }

    CacheLevelConfig cfg_;
    unsigned sets_ = 0, ways_ = 0;
    size_t slots_ = 0;
    Remainder set_of_;
    std::unique_ptr<uint64_t[], FreeDeleter> tags_;   // per set, most recently used first
};

// Where a miss in every level goes (the DRAM behind the LLC): returns the fill's latency.
class LineFill {
public:
    virtual ~LineFill() = default;
    virtual Cycles fill(uint64_t line_addr) = 0;
};

class CacheHierarchy {
public:
    // `llc`: the shared array to use as the last level (nullptr: a private one). Its
    // geometry must match cfg's last level.
    explicit CacheHierarchy(const MemHierarchyConfig& cfg, SharedCache* llc = nullptr);

    // One reference to the line holding a; returns its latency. A reference to the line
    // the previous reference touched is an L1 hit without a look-up (that line is the
    // L1's most recently used one, so nothing about the cache state changes): the hot
    // path of a sequential or repeated access is a compare.
    // This is a dependent load (the walker's): it waits for its data and trains nothing.
    Cycles access(Hpa a) { return access(a, Ref::walk); }
    // A guest load or store (counted apart from the walker's references; trains the
    // prefetcher; a store miss is posted when an MSHR is free).
    Cycles access_data(Hpa a, bool write = false) {
        ++stats_.data_refs;
        return access(a, write ? Ref::store : Ref::load);
    }
    // Host speed only: asks the host to bring the sets a reference to a would search
    // into its caches (the state is neither read nor changed).
    void prefetch_sets(Hpa a) const {
        const uint64_t raw = a.raw() >> line_shift_;
        for (const Level& l : levels_) {
            const uint64_t* t = l.arr->set_tags(raw);
            __builtin_prefetch(t);
            __builtin_prefetch(t + l.arr->ways_ - 1);   // a set of more than 8 ways spans lines
        }
    }
    // Drops a line from every level (CLFLUSH).
    void flush_line(Hpa a);
    // Empties the private levels (a shared LLC keeps the other cores' lines).
    void invalidate_all();
    // Misses go to `f` (nullptr: a fixed config().dram_cycles, the plain C++ default).
    void set_line_fill(LineFill* f) { fill_ = f; }
    // The core's clock (nullptr: the cycles this hierarchy returned so far).
    void set_clock(const CoreClock* c) { clock_ = c; }
    // Line fills in flight now (tests).
    unsigned inflight() const { return n_inflight_; }

    const MemHierarchyConfig& config() const { return cfg_; }
    const MemHierarchyStats& stats() const { return stats_; }

private:
    enum class Ref : uint8_t { walk, load, store };
    Cycles access(Hpa a, Ref r) {
        const uint64_t raw = a.raw() >> line_shift_;
        if (raw == last_line_) {
            ++stats_.levels[0].hits;
            own_now_ += l1_hit_;
            return l1_hit_;
        }
        const Cycles c = access_line(raw, r);
        own_now_ += c;
        return c;
    }
    Cycles access_line(uint64_t raw, Ref r);
    // Victim LLC: puts the line the L2 evicted into the last level.
    void cast_out(uint64_t tag);
    Cycles now() const { return clock_ ? clock_->cycles_now() : own_now_; }
    // Drops the fills that completed by `t`.
    void retire(Cycles t);
    // Waits (from `t`) for a free MSHR if every one is busy; returns the wait.
    Cycles free_mshr(Cycles t);
    // The stream prefetcher sees a data reference that reached the L2.
    void train(uint64_t raw);
    // Fetches `raw` into the L2 (and an inclusive LLC) unless it is there or in flight.
    // Returns false when it could not (every MSHR busy).
    bool prefetch(uint64_t raw, Cycles t);
    // Puts a line into level j's set (empty way or LRU victim; a victim LLC gets the L2's
    // evicted line).
    void install(size_t j, uint64_t raw, uint64_t tag);
    // A set's recency order (SharedCache): the tag at way p becomes the most recent with
    // value v; v pushed in front, returning the tag dropped from the end; way p emptied.
    static void to_front(uint64_t* t, unsigned p, uint64_t v) {
        for (unsigned k = p; k > 0; --k) t[k] = t[k - 1];
        t[0] = v;
    }
    static uint64_t push_front(uint64_t* t, unsigned ways, uint64_t v) {
        const uint64_t out = t[ways - 1];
        to_front(t, ways - 1, v);
        return out;
    }
    // Both in one pass, for a level a miss fills: the line found at way p moves to the
    // front as to_front(); absent, it is pushed in front as push_front() and the tag that
    // fell off the end goes to `out`. Returns the tag found (with its flag bits; tag bits in
    // `ignore` do not count in the match), kInvalid when absent. Each way moves as it is
    // compared, so a miss costs one sweep of the set instead of a search and a shift.
    static uint64_t find_or_push(uint64_t* t, unsigned ways, uint64_t line, uint64_t ignore, uint64_t& out) {
        uint64_t carry = line;
        for (unsigned k = 0; k < ways; ++k) {
            const uint64_t cur = t[k];
            t[k] = carry;
            if ((cur & ~ignore) == line) return cur;
            carry = cur;
        }
        out = carry;
        return kInvalid;
    }
    static void remove(uint64_t* t, unsigned ways, unsigned p) {
        for (unsigned k = p; k + 1 < ways; ++k) t[k] = t[k + 1];
        t[ways - 1] = kInvalid;
    }
    bool present(size_t j, uint64_t raw) const;

    // A level: its array (owned for the private levels, shared for a shared LLC) and
    // its hit latency.
    struct Level {
        SharedCache* arr = nullptr;
        Cycles hit = 0;
    };
    static constexpr uint64_t kInvalid = 0;   // tags are line + 1, so calloc's zeros are empty
    // A line the prefetcher brought in that no demand reference has used yet (L2 tags).
    static constexpr uint64_t kPrefetched = 1ull << 63;

    MemHierarchyConfig cfg_;
    unsigned line_shift_ = 6;
    std::vector<std::unique_ptr<SharedCache>> own_;
    std::vector<Level> levels_;
    MemHierarchyStats stats_;
    LineFill* fill_ = nullptr;
    // The last line referenced (the L1's MRU line); ~0 when none (after a flush).
    static constexpr uint64_t kNoLine = ~0ull;
    uint64_t last_line_ = kNoLine;
    Cycles l1_hit_ = 0;
    bool victim_llc_ = false;

    // Fills in flight (at most cfg_.mshrs, unordered).
    struct Inflight {
        uint64_t line;
        Cycles ready;
        bool prefetch;
    };
    std::vector<Inflight> inflight_;
    unsigned n_inflight_ = 0;
    const CoreClock* clock_ = nullptr;
    Cycles own_now_ = 0;
    // One stream per 4 KiB page: the last line offset, the direction and how many steps
    // in it were seen, and the next line to prefetch.
    struct Stream {
        uint64_t page = 0;   // page + 1 (0: unused)
        uint32_t stamp = 0;
        int16_t next = 0;
        uint8_t last = 0;
        int8_t dir = 0;
        uint8_t steps = 0;
    };
    std::vector<Stream> streams_;
    unsigned stream_ways_ = 1;   // the stream table's geometry (train()): ways, and sets by page
    Remainder stream_set_of_;
    uint32_t stream_clock_ = 0;
    unsigned page_lines_shift_ = 6;   // log2(lines per 4 KiB page)
    bool prefetch_on_ = false;
};

}  // namespace hvsim
