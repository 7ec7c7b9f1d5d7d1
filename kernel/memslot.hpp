// One memslot address space (struct kvm_memslots): slots by id and an ordered map keyed
// by base gfn, so gfn_to_memslot(), the overlap check and "every slot in a gfn range"
// cost O(log n) at 32764 slots (Linux keeps an rbtree by gfn and a hash by id).
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "kernel/kvm_host.hpp"

namespace hvsim::kvm {

// KVM_MR_* of kvm_set_memslot().
enum class kvm_mr_change : uint8_t { create, delete_, move, flags_only };

class KvmMemslots {
public:
    kvm_memory_slot* id_to_memslot(uint16_t id) const;
    // Slot containing gfn, or nullptr (search_memslots()).
    kvm_memory_slot* gfn_to_memslot(Gfn gfn) const;
    // kvm_check_memslot_overlap(): another slot (not `id`) intersects [start, end).
    bool check_overlap(uint16_t id, Gfn start, Gfn end) const;

    // kvm_for_each_memslot_in_gfn_range(): slots intersecting [start, end) in gfn order.
    // fn(kvm_memory_slot&) must not insert or remove slots.
    template <class F>
    void for_each_in_gfn_range(Gfn start, Gfn end, F&& fn) const {
        if (start >= end) return;
        auto it = by_gfn_.upper_bound(start.raw());
        if (it != by_gfn_.begin()) {
            auto prev = std::prev(it);
            if (prev->second->end_gfn() > start) it = prev;
        }
        for (; it != by_gfn_.end() && it->first < end.raw(); ++it) fn(*it->second);
    }
    template <class F>
    void for_each(F&& fn) const {
        for (auto& [gfn, slot] : by_gfn_) fn(*slot);
    }

    void insert(std::unique_ptr<kvm_memory_slot> slot);
    std::unique_ptr<kvm_memory_slot> remove(uint16_t id);
    // Re-key a slot whose base_gfn is about to change (KVM_MR_MOVE).
    void move(uint16_t id, Gfn new_base);

    size_t size() const { return by_id_.size(); }
    uint64_t generation = 0;         // bumped on every installed change

private:
    std::map<uint16_t, std::unique_ptr<kvm_memory_slot>> by_id_;
    std::map<uint64_t, kvm_memory_slot*> by_gfn_;
};

}  // namespace hvsim::kvm
