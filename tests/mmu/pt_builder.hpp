// Test builder: writes x86 (guest or NPT) and EPT page tables into PhysMem by hand,
// independently of the walker under test. Table pages come from a bump allocator in
// the tables' own address space (gPA for guest tables, hPA for nested tables); to_hpa
// says where such an address lives in host memory (identity for nested tables, the
// nested mapping for guest tables).
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <vector>

#include "models/mem/phys_mem.hpp"
#include "models/mmu/x86_pte.hpp"

namespace hvsim::mmu::test {

class TableBuilder {
public:
    using ToHpa = std::function<uint64_t(uint64_t)>;

    TableBuilder(PhysMem& mem, NestedPte fmt, unsigned levels, uint64_t pool, ToHpa to_hpa = {})
        : mem_(mem), fmt_(fmt), levels_(levels), next_(pool), to_hpa_(std::move(to_hpa)) {
        root_ = alloc_table();
    }

    uint64_t root() const { return root_; }
    unsigned levels() const { return levels_; }
    uint64_t next_free() const { return next_; }
    // Table pages allocated so far, in allocation order (root first).
    const std::vector<uint64_t>& tables() const { return tables_; }

    uint64_t alloc_table() {
        const uint64_t t = next_;
        next_ += kPageSize;
        tables_.push_back(t);
        return t;
    }

    // Maps one page of `size` at va -> pa, creating missing tables.
    void map(uint64_t va, uint64_t pa, PgLevel size, bool writable = true, bool exec = true) {
        const unsigned leaf = unsigned(size);
        uint64_t table = root_;
        for (unsigned l = levels_; l > leaf; --l) {
            const uint64_t ea = table + table_index(va, l) * 8u;
            uint64_t e = rd(ea);
            if (!fmt_.present(e)) {
                e = fmt_.make_table(alloc_table());
                wr(ea, e);
            } else if (fmt_.is_leaf(e, l)) {
                throw std::logic_error("TableBuilder: a larger page already maps this address");
            }
            table = fmt_.addr(e, l);
        }
        wr(table + table_index(va, leaf) * 8u, fmt_.make_leaf(pa, size, writable, exec));
    }

    void map_range(uint64_t va, uint64_t pa, uint64_t bytes, PgLevel size, bool writable = true, bool exec = true) {
        for (uint64_t off = 0; off < bytes; off += level_size(size)) map(va + off, pa + off, size, writable, exec);
    }

    // Address (in table space) of the entry at `level` on va's path; throws if a table
    // above it is missing or a leaf above it maps va.
    uint64_t pte_addr(uint64_t va, unsigned level) const {
        uint64_t table = root_;
        for (unsigned l = levels_; l > level; --l) {
            const uint64_t e = rd(table + table_index(va, l) * 8u);
            if (!fmt_.present(e) || fmt_.is_leaf(e, l)) throw std::logic_error("TableBuilder: no table at that level");
            table = fmt_.addr(e, l);
        }
        return table + table_index(va, level) * 8u;
    }
    uint64_t read(uint64_t va, unsigned level) const { return rd(pte_addr(va, level)); }
    void write(uint64_t va, unsigned level, uint64_t v) { wr(pte_addr(va, level), v); }
    // Leaf level mapping va (1..3); throws when unmapped.
    unsigned leaf_level(uint64_t va) const {
        uint64_t table = root_;
        for (unsigned l = levels_;; --l) {
            const uint64_t e = rd(table + table_index(va, l) * 8u);
            if (!fmt_.present(e)) throw std::logic_error("TableBuilder: unmapped");
            if (fmt_.is_leaf(e, l)) return l;
            table = fmt_.addr(e, l);
        }
    }
    uint64_t leaf(uint64_t va) const { return read(va, leaf_level(va)); }
    void set_leaf(uint64_t va, uint64_t v) { write(va, leaf_level(va), v); }
    void unmap(uint64_t va) { set_leaf(va, 0); }

    // Functional translation (no timing): what the walker must produce.
    uint64_t lookup(uint64_t va) const {
        const unsigned l = leaf_level(va);
        return fmt_.addr(read(va, l), l) | (va & ((1ull << table_shift(l)) - 1));
    }
    // Table-space addresses of the entries a walk of va reads, top level first.
    std::vector<uint64_t> path(uint64_t va) const {
        std::vector<uint64_t> p;
        uint64_t table = root_;
        for (unsigned l = levels_;; --l) {
            const uint64_t ea = table + table_index(va, l) * 8u;
            p.push_back(ea);
            const uint64_t e = rd(ea);
            if (!fmt_.present(e)) throw std::logic_error("TableBuilder: unmapped");
            if (fmt_.is_leaf(e, l)) return p;
            table = fmt_.addr(e, l);
        }
    }

    uint64_t host(uint64_t a) const { return to_hpa_ ? to_hpa_(a) : a; }

private:
    uint64_t rd(uint64_t a) const { return mem_.read64(Hpa(host(a))); }
    void wr(uint64_t a, uint64_t v) { mem_.write64(Hpa(host(a)), v); }

    PhysMem& mem_;
    NestedPte fmt_;
    unsigned levels_;
    uint64_t next_;
    ToHpa to_hpa_;
    uint64_t root_ = 0;
    std::vector<uint64_t> tables_;
};

}  // namespace hvsim::mmu::test
