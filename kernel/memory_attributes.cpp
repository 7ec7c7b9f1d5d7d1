// Memory attributes in both stores (virt/kvm/kvm_main.c kvm_vm_ioctl_set_mem_attributes,
// kvm_vm_set_mem_attributes, kvm_range_has_memory_attributes; arch/x86/kvm/mmu/mmu.c
// kvm_arch_pre/post_set_memory_attributes; the in-place conversion series for the
// guest_memfd store).
#include "kernel/error_rule.hpp"
#include "kernel/memory_attributes.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <vector>

#include "kernel/guest_memfd.hpp"
#include "kernel/kvm.hpp"
#include "kernel/process.hpp"

namespace hvsim::kvm {

int content_policy_from_flags(uint64_t flags, ContentPolicy& out) {
    if (flags & ~KVM_SET_MEMORY_ATTRIBUTES2_POLICY_MASK) return -EINVAL;
    const bool preserve = flags & uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_PRESERVE;
    const bool none = flags & uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_NONE;
    if (preserve && none) return -EINVAL;
    out = preserve ? ContentPolicy::preserve : none ? ContentPolicy::none : ContentPolicy::zero;
    return 0;
}

namespace {

// True iff every key in [start, end) of `m` has (value & mask) == attrs, absent keys
// counting as 0 (the xarray/maple tree "no entry" value).
bool range_has(const RangeMap<uint64_t>& m, uint64_t start, uint64_t end, uint64_t mask, uint64_t attrs) {
    bool ok = true;
    uint64_t cursor = start;
    m.for_each(start, end, [&](uint64_t s, uint64_t e, uint64_t v) {
        if (s > cursor && (0 & mask) != attrs) ok = false;
        if ((v & mask) != attrs) ok = false;
        cursor = e;
    });
    if (cursor < end && (0 & mask) != attrs) ok = false;
    return ok;
}

}  // namespace

uint64_t Kvm::kvm_supported_mem_attributes() const {
    return has_private_mem() ? uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
}

// ---------------------------------------------------------------------------------
// Per-VM store (kvm.vm_memory_attributes = true)

int Kvm::kvm_vm_ioctl_set_mem_attributes(const uapi::kvm_memory_attributes& a, ExecContext& ctx) {
    ctx.charge("ioctl", costs().ioctl);
    // The ioctl exists only with CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES, and the in-place
    // conversion series removes it when attributes live in guest_memfd.
    if (!config().generic_memory_attributes)
        return error_rule(-ENOTTY, "KVM_SET_MEMORY_ATTRIBUTES needs CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES "
                                   "(kvm.config.generic_memory_attributes=true)");
    if (!config().vm_memory_attributes)
        return error_rule(-ENOTTY, "KVM_SET_MEMORY_ATTRIBUTES is gone when attributes live in guest_memfd "
                                   "(kvm.config.vm_memory_attributes=false; use set_memory_attributes2, or set it true)");
    if (a.flags) return error_rule(-EINVAL, "kvm_vm_ioctl_set_mem_attributes: flags must be 0");
    if (a.attributes & ~kvm_supported_mem_attributes())
        return error_rule(-EINVAL, "kvm_vm_ioctl_set_mem_attributes: an attribute this VM type does not support "
                                   "(kvm_supported_mem_attributes: PRIVATE only for VMs with private memory, "
                                   "kvm_arch_has_private_mem; not default or sev/sev_es VMs)");
    if (a.size == 0 || a.address + a.size < a.address)
        return error_rule(-EINVAL, "kvm_vm_ioctl_set_mem_attributes: size 0 or address + size wraps");
    if ((a.address & kPageMask) || (a.size & kPageMask))
        return error_rule(-EINVAL, "kvm_vm_ioctl_set_mem_attributes: address or size not page aligned");
    return kvm_vm_set_mem_attributes(Gfn(a.address >> kPageShift), Gfn((a.address + a.size) >> kPageShift),
                                     a.attributes, ctx);
}

int Kvm::kvm_vm_set_mem_attributes(Gfn start, Gfn end, uint64_t attrs, ExecContext& ctx) {
    // Nothing to do (no invalidation, no seq bump) if the range already has attrs.
    if (kvm_range_has_memory_attributes(start, end, ~0ull, attrs)) {
        ++stats_.attr_noop;
        return 0;
    }
    const bool to_private = attrs & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE;
    // kvm_arch_pre_set_memory_attributes(): "unmap the old attribute page".
    MmuInvalidation inv(*this, InvalidateCause::set_attributes,
                        to_private ? AttrFilter::shared : AttrFilter::private_, ctx);
    struct Clip { const kvm_memory_slot* slot; Gfn s, e; };
    std::vector<Clip> clips;
    for (unsigned as = 0; as < kvm_arch_nr_memslot_as_ids(); ++as)
        memslots_[as].for_each_in_gfn_range(start, end, [&](kvm_memory_slot& slot) {
            const Gfn s = slot.base_gfn > start ? slot.base_gfn : start;
            const Gfn e = slot.end_gfn() < end ? slot.end_gfn() : end;
            clips.push_back({&slot, s, e});
        });
    for (const Clip& c : clips) {
        inv.begin();
        // kvm_pre_set_memory_attributes() adds the range unconditionally; the x86 hook
        // (private-memory VMs only) widens it to the huge-page frames around it and zaps.
        if (has_private_mem()) inv.pre_set_attributes(*c.slot, c.s, c.e);
        else inv.range_add(c.s, c.e);
    }
    if (inv.begun()) inv.flush_and_unlock();

    // Count what changes, then store (the xarray holds one entry per gfn; attrs 0 erases).
    uint64_t priv = 0;
    mem_attr_array_.for_each(start.raw(), end.raw(), [&](uint64_t s, uint64_t e, uint64_t v) {
        if (v & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE) priv += e - s;
    });
    const uint64_t n = end - start;
    const uint64_t changed = to_private ? n - priv : priv;
    (to_private ? stats_.pages_to_private : stats_.pages_to_shared) += changed;
    if (attrs)
        mem_attr_array_.assign(start.raw(), end.raw(), attrs);
    else
        mem_attr_array_.erase(start.raw(), end.raw());
    inv.ctx().charge("attr_update", costs().attr_update * n);

    // kvm_handle_gfn_range(post): on_lock = kvm_mmu_invalidate_end, then the per-slot
    // hugepage recomputation.
    if (inv.begun()) inv.end();
    for (const Clip& c : clips) mmu_->kvm_arch_post_set_memory_attributes(*c.slot, c.s, c.e);
    ++stats_.attr_set_calls;
    return 0;
}

// ---------------------------------------------------------------------------------
// Queries (both stores)

uint64_t Kvm::kvm_get_memory_attributes(Gfn gfn) const {
    if (config().vm_memory_attributes) return mem_attr_array_.find(gfn.raw()).value_or(0);
    // In-place conversion: the gfn's memslot and its guest_memfd decide; a gfn without a
    // slot, outside guest_memfd, or whose file is closed is shared.
    const kvm_memory_slot* slot = memslots_[0].gfn_to_memslot(gfn);
    if (!slot || !slot->has_gmem() || !slot->gmem.file) return 0;
    const uint64_t index = gfn - slot->base_gfn + slot->gmem.pgoff;
    return slot->gmem.file->kvm_gmem_get_attributes(index) & kvm_supported_mem_attributes();
}

bool Kvm::kvm_range_has_memory_attributes(Gfn start, Gfn end, uint64_t mask, uint64_t attrs) const {
    mask &= kvm_supported_mem_attributes();
    if (attrs & ~mask) return false;
    if (start >= end) return true;
    if (config().vm_memory_attributes) return range_has(mem_attr_array_, start.raw(), end.raw(), mask, attrs);
    // In-place conversion: walk the slots of address space 0; gaps, non-gmem slots and
    // closed files read as 0.
    bool ok = true;
    Gfn cursor = start;
    memslots_[0].for_each_in_gfn_range(start, end, [&](kvm_memory_slot& slot) {
        if (!ok) return;
        const Gfn s = slot.base_gfn > start ? slot.base_gfn : start;
        const Gfn e = slot.end_gfn() < end ? slot.end_gfn() : end;
        if (s > cursor && (0 & mask) != attrs) ok = false;
        if (!slot.has_gmem() || !slot.gmem.file) {
            if ((0 & mask) != attrs) ok = false;
        } else {
            const uint64_t i0 = s - slot.base_gfn + slot.gmem.pgoff;
            ok = ok && range_has(slot.gmem.file->attributes(), i0, i0 + (e - s), mask, attrs);
        }
        cursor = e;
    });
    if (ok && cursor < end && (0 & mask) != attrs) ok = false;
    return ok;
}

uint64_t Kvm::nr_private_pages() const {
    uint64_t priv = 0;
    auto count = [&](const RangeMap<uint64_t>& m, uint64_t lo, uint64_t hi) {
        for (const auto& [start, run] : m.runs())
            if (run.value & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE) {
                const uint64_t a = std::max(start, lo), b = std::min(run.end, hi);
                if (a < b) priv += b - a;
            }
    };
    if (config().vm_memory_attributes) {
        count(mem_attr_array_, 0, UINT64_MAX);
        return priv;
    }
    memslots_[0].for_each_in_gfn_range(Gfn(0), Gfn(UINT64_MAX), [&](const kvm_memory_slot& slot) {
        if (slot.has_gmem() && slot.gmem.file)
            count(slot.gmem.file->attributes(), slot.gmem.pgoff, slot.gmem.pgoff + slot.npages);
    });
    return priv;
}

// ---------------------------------------------------------------------------------
// guest_memfd store (kvm.vm_memory_attributes = false): KVM_SET_MEMORY_ATTRIBUTES2

uint64_t GuestMemfd::kvm_gmem_get_attributes(uint64_t index) const {
    return attributes_.find(index).value_or(0);
}

void GuestMemfd::kvm_gmem_set_shareability(uint64_t index, bool shared) {
    if (index >= npages()) throw std::out_of_range("guest_memfd: shareability beyond the file");
    attributes_.assign(index, index + 1, shared ? 0 : uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE);
}

int GuestMemfd::kvm_gmem_set_attributes2(uapi::kvm_memory_attributes2& a, ExecContext& ctx) {
    const KvmConfig& cfg = proc_.config();
    ctx.charge("ioctl", proc_.costs().ioctl);
    // The guest_memfd ioctl exists only with in-place conversion (per-VM attributes: the
    // file has no such ioctl).
    if (!cfg.memory_attributes2)
        return error_rule(-ENOTTY, "the guest_memfd KVM_SET_MEMORY_ATTRIBUTES2 ioctl needs the in-place conversion "
                                   "series (kvm.config.memory_attributes2=true)");
    if (cfg.vm_memory_attributes)
        return error_rule(-ENOTTY, "the guest_memfd KVM_SET_MEMORY_ATTRIBUTES2 ioctl exists only when attributes "
                                   "live in guest_memfd (kvm.config.vm_memory_attributes=false)");
    if (!kvm_) return error_rule(-ENOTTY, "kvm_gmem_set_attributes2: the guest_memfd's VM is gone");
    Kvm& kvm = *kvm_;

    ContentPolicy policy;
    if (content_policy_from_flags(a.flags, policy)) return -EINVAL;
    if (a.error_offset != 0) return -EINVAL;   // output field must come in as 0
    for (uint64_t r : a.reserved)
        if (r) return -EINVAL;
    if (a.attributes & ~kvm.kvm_supported_mem_attributes())
        return error_rule(-EINVAL, "kvm_gmem_set_attributes2: an attribute this VM type does not support "
                                   "(kvm_supported_mem_attributes: PRIVATE only for VMs with private memory)");
    if (a.size == 0 || a.offset + a.size < a.offset) return -EINVAL;
    if ((a.offset & kPageMask) || (a.size & kPageMask)) return -EINVAL;
    if (a.offset >= size_ || a.offset + a.size > size_) return -EINVAL;

    const bool to_private = a.attributes & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE;
    if (!kvm.arch().supports_content_policy(policy, to_private))
        return error_rule(-EOPNOTSUPP, "kvm_gmem_set_attributes2: this VM type does not support the content policy "
                                       "for this direction (kvm_arch_gmem_supports_content_policy)");

    const uint64_t start = a.offset >> kPageShift, end = (a.offset + a.size) >> kPageShift;
    if (range_has(attributes_, start, end, ~0ull, a.attributes)) {
        ++kvm.stats().attr_noop;
        return 0;
    }
    KvmStats& st = kvm.stats();

    // filemap_invalidate_lock first, then unmap the host: a host fault from here on waits
    // until the attributes are stored, so it either completed before the conversion or
    // sees the page private afterwards (SIGBUS); it can never map a page turning private.
    InvalidateLock lock(*this);
    if (to_private) {
        // Host userspace must lose its mappings first; any page still referenced after
        // that (a GUP pin: VFIO, io_uring, ...) makes the conversion fail with EAGAIN and
        // the offset of the first such page.
        st.host_pages_unmapped += proc_.unmap_mapping_range(*this, start, end, ctx);
        auto pin = pins_.lower_bound(start);
        if (pin != pins_.end() && pin->first < end) {
            a.error_offset = pin->first << kPageShift;
            ++st.conversion_eagain;
            return -EAGAIN;
        }
    }

    // Invalidate the bound gfns (same arithmetic as punch hole), zapping mappings of the
    // old kind.
    ctx.charge("mmu_lock", proc_.costs().mmu_lock);
    MmuInvalidation inv(kvm, InvalidateCause::set_attributes,
                        to_private ? AttrFilter::shared : AttrFilter::private_, ctx);
    invalidate_begin(inv, start, end, /*set_attributes=*/true);

    // The pieces whose attribute changes, and the allocated pages in them: only those
    // are converted (never the guest size: unallocated pages have no content).
    std::vector<std::pair<uint64_t, uint64_t>> changing;
    attributes_.for_each(start, end, [&](uint64_t s, uint64_t e, uint64_t v) {
        if (v != a.attributes) changing.emplace_back(s, e);
    });
    struct Run { uint64_t s, e; Pfn pfn; };
    std::vector<Run> pages;
    uint64_t changed = 0;
    for (auto [s, e] : changing) {
        changed += e - s;
        page_cache_.for_each(s, e, [&](uint64_t ps, uint64_t pe, Pfn p) { pages.push_back({ps, pe, p}); });
    }
    const std::optional<uint8_t> fill = kvm.arch().none_policy_fill();
    for (const Run& r : pages) {
        const uint64_t n = r.e - r.s;
        // To shared: the private state of these pages is torn down (SNP: RMP shared).
        if (!to_private) kvm.arch().gmem_invalidate(kvm, r.pfn, r.pfn + n, inv.ctx());
        for (uint64_t i = 0; i < n; ++i) {
            const Pfn p = r.pfn + i;
            switch (policy) {
            case ContentPolicy::zero:
                proc_.mem().discard(p);
                inv.ctx().charge("zero_4k", proc_.costs().zero_4k);
                ++st.policy_pages_zeroed;
                break;
            case ContentPolicy::preserve:
                ++st.policy_pages_preserved;
                break;
            case ContentPolicy::none:
                if (fill) {
                    proc_.mem().fill(pfn_to_hpa(p), *fill, kPageSize);
                    inv.ctx().charge("fill_4k", proc_.costs().fill_4k);
                    ++st.policy_pages_filled;
                }
                break;
            }
        }
    }
    (to_private ? st.pages_to_private : st.pages_to_shared) += changed;

#ifdef HVSIM_CHECKED
    // Holes convert as a whole (one check per piece); allocated pages one by one.
    std::vector<std::pair<uint64_t, GmemPageState>> before;
    for (const Run& r : pages)
        for (uint64_t i = r.s; i < r.e; ++i) before.emplace_back(i, page_state(i));
    for (auto [s, e] : changing)
        if (page_cache_.count(s, e) < e - s)
            kvm_assert_transition(to_private ? GmemPageState::hole_shared : GmemPageState::hole_private,
                                  to_private ? GmemPageState::hole_private : GmemPageState::hole_shared,
                                  "set_attributes2 (hole)");
#endif
    // One maple-tree range store.
    attributes_.assign(start, end, a.attributes);
#ifdef HVSIM_CHECKED
    for (auto [i, b] : before) kvm_assert_transition(b, page_state(i), "set_attributes2");
#endif
    inv.ctx().charge("attr_update", proc_.costs().attr_update);
    invalidate_end(inv, start, end);
    // As after a per-VM change, the x86 MMU recomputes hugepage "mixed" state of the
    // bound gfns (kvm_arch_post_set_memory_attributes).
    bindings_.for_each(start, end, [&](uint64_t s, uint64_t e, kvm_memory_slot* slot) {
        kvm.mmu().kvm_arch_post_set_memory_attributes(*slot, slot->base_gfn + (s - slot->gmem.pgoff),
                                                      slot->base_gfn + (e - slot->gmem.pgoff));
    });
    ++st.attr_set_calls;
    return 0;
}

}  // namespace hvsim::kvm
