// Test builder: writes VMSAv8-64 stage-1 or stage-2 tables into PhysMem by hand,
// independently of the walker under test. Tables come from a bump allocator in the
// tables' own address space (PA for stage 2, IPA for stage 1); to_pa says where such an
// address lives in physical memory.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>

#include "models/mem/phys_mem.hpp"
#include "models/mmu/mmu.hpp"
#include "models/stage2/vmsa.hpp"
#include "tests/mmu/counting_memory.hpp"

namespace hvsim::stage2::test {

inline constexpr uint64_t kS2Rw = desc::S2AP_R | desc::S2AP_W | desc::AF | desc::S2_MEMATTR_NORMAL_WB | desc::SH_INNER;
inline constexpr uint64_t kS2Ro = desc::S2AP_R | desc::AF | desc::S2_MEMATTR_NORMAL_WB | desc::SH_INNER;
inline constexpr uint64_t kS1Rw = desc::AF | desc::SH_INNER;                 // AP[2] = 0: read/write at EL1
inline constexpr uint64_t kS1Ro = desc::AF | desc::SH_INNER | desc::S1_AP2;

class DescBuilder {
public:
    using ToPa = std::function<uint64_t(uint64_t)>;
    // start_level / root_bytes from the geometry; pool: where tables are allocated.
    DescBuilder(PhysMem& mem, Granule g, int start_level, uint64_t root_entries, bool ds, uint64_t pool,
                ToPa to_pa = {})
        : mem_(mem), g_(g), start_(start_level), root_entries_(root_entries), ds_(ds), to_pa_(std::move(to_pa)) {
        const uint64_t gs = granule_size(g);
        const uint64_t root_bytes = std::max<uint64_t>(gs, root_entries * 8);
        root_ = (pool + root_bytes - 1) & ~(root_bytes - 1);
        next_ = root_ + ((root_bytes + gs - 1) & ~(gs - 1));
    }
    static DescBuilder stage2(PhysMem& mem, const S2Geometry& geo, uint64_t pool) {
        return DescBuilder(mem, geo.granule, geo.start_level, geo.root_entries(), geo.ds, pool);
    }
    static DescBuilder stage1(PhysMem& mem, const S1Geometry& s1, uint64_t pool, ToPa to_pa) {
        return DescBuilder(mem, s1.granule, s1.start_level, 1ull << level_bits(s1.granule), false, pool,
                           std::move(to_pa));
    }
    uint64_t root() const { return root_; }
    uint64_t next_free() const { return next_; }

    // The address (in the tables' space) of the descriptor for `ia` at `level`; creates
    // missing tables above it.
    uint64_t slot(uint64_t ia, int level) {
        uint64_t table = root_;
        for (int l = start_;; ++l) {
            const uint64_t entries = l == start_ ? root_entries_ : (1ull << level_bits(g_));
            const uint64_t a = table + ((ia >> level_shift(g_, l)) & (entries - 1)) * 8;
            if (l == level) return a;
            uint64_t d = read(a);
            if (!(d & desc::VALID)) {
                const uint64_t t = next_;
                next_ += granule_size(g_);
                d = desc::make_oa(t, g_, ds_) | desc::VALID | desc::TABLE;
                write(a, d);
            }
            if (!(d & desc::TABLE)) throw std::logic_error("builder: a block is in the way");
            table = desc::oa(d, g_, ds_);
        }
    }
    // Maps one leaf (block or page) of `level` at ia -> pa.
    uint64_t map(uint64_t ia, uint64_t pa, int level, uint64_t attrs) {
        const uint64_t a = slot(ia, level);
        if (ds_) attrs &= ~desc::SH_INNER;   // with LPA2, bits 9:8 carry OA[51:50]
        write(a, desc::make_oa(pa, g_, ds_) | attrs | desc::VALID | (level == 3 ? desc::TABLE : 0));
        return a;
    }
    uint64_t read(uint64_t a) const { return mem_.read64(Hpa(to_pa_ ? to_pa_(a) : a)); }
    void write(uint64_t a, uint64_t v) { mem_.write64(Hpa(to_pa_ ? to_pa_(a) : a), v); }

private:
    PhysMem& mem_;
    Granule g_;
    int start_;
    uint64_t root_entries_;
    bool ds_;
    ToPa to_pa_;
    uint64_t root_ = 0, next_ = 0;
};

// Walker memory for tests (reads counted, prefetches recorded): shared with the x86 tests.
using CountingMemory = mmu::test::CountingMemory;

}  // namespace hvsim::stage2::test
