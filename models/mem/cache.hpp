// Latency model for the memory references a table walk makes: a hierarchy of
// set-associative, LRU caches (L1D, L2, LLC) in front of DRAM, sized and timed
// by the platform preset. Every level is filled on a miss (mostly-inclusive).
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

struct MemHierarchyConfig {
    std::vector<CacheLevelConfig> levels;
    unsigned line_bytes = 64;
    Cycles dram_cycles = 0;
};

struct CacheLevelStats {
    uint64_t hits = 0;
    uint64_t misses = 0;
};

struct MemHierarchyStats {
    std::vector<CacheLevelStats> levels;
    uint64_t dram = 0;       // references served by DRAM
};

// Where a miss in every level goes (the DRAM behind the LLC): returns the fill's latency.
class LineFill {
public:
    virtual ~LineFill() = default;
    virtual Cycles fill(uint64_t line_addr) = 0;
};

class CacheHierarchy {
public:
    explicit CacheHierarchy(const MemHierarchyConfig& cfg);

    // One reference to the line holding a; returns its latency.
    Cycles access(Hpa a);
    // Drops a line from every level (CLFLUSH).
    void flush_line(Hpa a);
    void invalidate_all();
    // Misses go to `f` (nullptr: a fixed config().dram_cycles, the plain C++ default).
    void set_line_fill(LineFill* f) { fill_ = f; }

    const MemHierarchyConfig& config() const { return cfg_; }
    const MemHierarchyStats& stats() const { return stats_; }

private:
    // Zero-filled arrays from calloc: the host maps their pages only when a set is first
    // used, so a large cache costs the host memory its touched sets need (1024 vCPUs
    // with a 32 MiB LLC each would otherwise commit 6 GiB before the first access).
    struct FreeDeleter {
        void operator()(void* p) const { std::free(p); }
    };
    template <class T>
    using LazyArray = std::unique_ptr<T[], FreeDeleter>;
    template <class T>
    static LazyArray<T> lazy_zeroed(size_t n);

    struct Level {
        unsigned sets = 0, ways = 0;
        Cycles hit = 0;
        size_t slots = 0;             // sets*ways
        LazyArray<uint64_t> tags;     // line + 1 per way; 0 when empty (so calloc's zeros are empty)
        LazyArray<uint32_t> age;      // LRU stamp per way
        uint32_t clock = 0;
        uint64_t set_mask = 0;        // sets - 1 when sets is a power of two, else 0
        // A mask instead of a 64-bit division on the hot path whenever the geometry allows.
        size_t set_of(uint64_t line) const { return set_mask ? size_t(line & set_mask) : size_t(line % sets); }
    };
    static constexpr uint64_t kInvalid = 0;

    MemHierarchyConfig cfg_;
    unsigned line_shift_ = 6;
    std::vector<Level> levels_;
    MemHierarchyStats stats_;
    LineFill* fill_ = nullptr;
};

}  // namespace hvsim
