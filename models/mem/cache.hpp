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
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "models/common/types.hpp"

namespace hvsim {

struct CacheLevelConfig {
    std::string name;        // "l1d", "l2", "llc"
    uint64_t size_bytes = 0;
    unsigned ways = 8;
    Cycles hit_cycles = 0;   // load-to-use latency when this level hits
};

enum class LlcPolicy : uint8_t { inclusive, victim };

struct MemHierarchyConfig {
    std::vector<CacheLevelConfig> levels;
    unsigned line_bytes = 64;
    Cycles dram_cycles = 0;
    LlcPolicy llc_policy = LlcPolicy::inclusive;   // how the last level is filled (above)
    unsigned llc_shared_by = 1;                     // cores per LLC instance (the platform wires it)
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
};

class CacheHierarchy;

// One set-associative LRU array several hierarchies can share as their last level. Which
// core filled a line is not recorded: any core that asks finds it.
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
    // A mask instead of a 64-bit division on the hot path whenever the geometry allows.
    size_t set_of(uint64_t line) const { return set_mask_ ? size_t(line & set_mask_) : size_t(line % sets_); }

    CacheLevelConfig cfg_;
    unsigned sets_ = 0, ways_ = 0;
    size_t slots_ = 0;
    uint64_t set_mask_ = 0;
    std::unique_ptr<uint64_t[], FreeDeleter> tags_;
    std::unique_ptr<uint32_t[], FreeDeleter> age_;
    uint32_t clock_ = 0;
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
    Cycles access(Hpa a) {
        const uint64_t raw = a.raw() >> line_shift_;
        if (raw == last_line_) {
            ++stats_.levels[0].hits;
            return l1_hit_;
        }
        return access_line(raw);
    }
    // A guest load or store (counted apart from the walker's references).
    Cycles access_data(Hpa a) {
        ++stats_.data_refs;
        return access(a);
    }
    // Drops a line from every level (CLFLUSH).
    void flush_line(Hpa a);
    // Empties the private levels (a shared LLC keeps the other cores' lines).
    void invalidate_all();
    // Misses go to `f` (nullptr: a fixed config().dram_cycles, the plain C++ default).
    void set_line_fill(LineFill* f) { fill_ = f; }

    const MemHierarchyConfig& config() const { return cfg_; }
    const MemHierarchyStats& stats() const { return stats_; }

private:
    Cycles access_line(uint64_t raw);
    // Victim LLC: puts the line the L2 evicted into the last level.
    void cast_out(uint64_t tag);

    // A level: its array (owned for the private levels, shared for a shared LLC) and
    // its hit latency.
    struct Level {
        SharedCache* arr = nullptr;
        Cycles hit = 0;
    };
    static constexpr uint64_t kInvalid = 0;   // tags are line + 1, so calloc's zeros are empty

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
};

}  // namespace hvsim
