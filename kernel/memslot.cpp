#include "kernel/memslot.hpp"

#include <stdexcept>

namespace hvsim::kvm {

kvm_memory_slot* KvmMemslots::id_to_memslot(uint16_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second.get();
}

kvm_memory_slot* KvmMemslots::gfn_to_memslot(Gfn gfn) const {
    auto it = by_gfn_.upper_bound(gfn.raw());
    if (it == by_gfn_.begin()) return nullptr;
    --it;
    return it->second->contains(gfn) ? it->second : nullptr;
}

bool KvmMemslots::check_overlap(uint16_t id, Gfn start, Gfn end) const {
    // Slots are disjoint and sorted, so walking back from the last slot starting below
    // `end` meets at most one slot of our own id before the answer is known.
    auto it = by_gfn_.lower_bound(end.raw());
    while (it != by_gfn_.begin()) {
        --it;
        const kvm_memory_slot& s = *it->second;
        if (s.end_gfn() <= start) return false;
        if (s.id != id) return true;
    }
    return false;
}

void KvmMemslots::insert(std::unique_ptr<kvm_memory_slot> slot) {
    if (!slot || slot->npages == 0) throw std::logic_error("KvmMemslots::insert: empty slot");
    kvm_memory_slot* raw = slot.get();
    if (!by_gfn_.emplace(raw->base_gfn.raw(), raw).second)
        throw std::logic_error("KvmMemslots::insert: base gfn already used");
    by_id_[raw->id] = std::move(slot);
    ++generation;
}

std::unique_ptr<kvm_memory_slot> KvmMemslots::remove(uint16_t id) {
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return nullptr;
    std::unique_ptr<kvm_memory_slot> s = std::move(it->second);
    by_id_.erase(it);
    by_gfn_.erase(s->base_gfn.raw());
    ++generation;
    return s;
}

void KvmMemslots::move(uint16_t id, Gfn new_base) {
    kvm_memory_slot* s = id_to_memslot(id);
    if (!s) throw std::logic_error("KvmMemslots::move: no such slot");
    by_gfn_.erase(s->base_gfn.raw());
    s->base_gfn = new_base;
    by_gfn_.emplace(new_base.raw(), s);
    ++generation;
}

}  // namespace hvsim::kvm
