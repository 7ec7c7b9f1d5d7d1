// Walker memory for tests of either walker (x86 MMU, arm64 Stage2Mmu): every read costs one
// cycle and is counted; with `log` set the addresses read are kept, and the addresses the
// walker asks to prefetch always are.
#pragma once

#include <cstdint>
#include <vector>

#include "models/mem/phys_mem.hpp"
#include "models/mmu/mmu.hpp"

namespace hvsim::mmu::test {

struct CountingMemory final : WalkMemory {
    explicit CountingMemory(PhysMem& m) : mem(m) {}
    PhysMem& mem;
    uint64_t reads = 0, writes = 0;
    bool log = false;                             // keep read_log
    std::vector<uint64_t> read_log, prefetches;   // addresses read (when log), prefetched
    uint64_t read64(uint64_t hpa, Cycles& cycles) override {
        ++reads;
        if (log) read_log.push_back(hpa);
        cycles += 1;
        return mem.read64(Hpa(hpa));
    }
    void write64(uint64_t hpa, uint64_t v) override {
        ++writes;
        mem.write64(Hpa(hpa), v);
    }
    uint64_t load64(uint64_t hpa) override { return mem.read64(Hpa(hpa)); }
    void prefetch(uint64_t hpa) override { prefetches.push_back(hpa); }
};

}  // namespace hvsim::mmu::test
