// guest_memfd (virt/kvm/guest_memfd.c): the inode (size, flags, page cache of order-0
// pages with real bytes in PhysMem, the in-place conversion attributes) and the file
// (one VM's view: its bindings pgoff -> memslot). Linux allows several files per inode
// in principle but creates exactly one; hvsim keeps both in one object.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "kernel/kvm_host.hpp"
#include "kernel/page_state_graph.hpp"
#include "kernel/range_map.hpp"
#include "kernel/uapi.hpp"

namespace hvsim::kvm {

// In checked builds every page-state change must be an edge of the state graph.
#ifdef HVSIM_CHECKED
#define HVSIM_GMEM_TRANSITION(from, to, where) ::hvsim::kvm::kvm_assert_transition((from), (to), (where))
#else
#define HVSIM_GMEM_TRANSITION(from, to, where) ((void)0)
#endif

class Kvm;
class VmmProcess;

class GuestMemfd {
public:
    GuestMemfd(std::shared_ptr<Kvm> kvm, uint64_t size, uint64_t flags, uint64_t ino);
    ~GuestMemfd();
    GuestMemfd(const GuestMemfd&) = delete;
    GuestMemfd& operator=(const GuestMemfd&) = delete;

    // ---- inode ----
    uint64_t size() const { return size_; }          // i_size, fixed at creation
    uint64_t npages() const { return size_ >> kPageShift; }
    uint64_t flags() const { return flags_; }
    uint64_t ino() const { return ino_; }
    bool supports_mmap() const { return flags_ & uapi::GUEST_MEMFD_FLAG_MMAP; }
    bool init_shared() const { return flags_ & uapi::GUEST_MEMFD_FLAG_INIT_SHARED; }

    // ---- file ----
    // The owning VM; nullptr once the file is released (the VM reference is dropped).
    Kvm* kvm() const { return kvm_.get(); }
    bool released() const { return released_; }
    // File references: the fd and every host mmap hold one. The last fput() runs
    // kvm_gmem_release() and evicts the inode (frees every unpinned page).
    void fget() { ++file_refs_; }
    void fput(ExecContext& ctx);

    // ---- file operations ----
    // kvm_gmem_fallocate(): KEEP_SIZE allocates, KEEP_SIZE|PUNCH_HOLE punches.
    int kvm_gmem_fallocate(int mode, uint64_t offset, uint64_t len, ExecContext& ctx);
    // kvm_gmem_mmap(): ENODEV without MMAP (checked first), EINVAL unless MAP_SHARED.
    int kvm_gmem_mmap(bool shared) const;
    // kvm_gmem_fault_user_mapping(): 0 and the page, or -EFAULT where the host would get
    // SIGBUS (beyond EOF, private page, or no INIT_SHARED with per-VM attributes).
    int kvm_gmem_fault_user_mapping(uint64_t index, Pfn& pfn, ExecContext& ctx);
    // filemap_invalidate_lock(): held exclusively across a conversion or a punch hole;
    // host faults take it shared (kvm_gmem_fault_user_mapping()), so they wait for it.
    class InvalidateLock {
    public:
        explicit InvalidateLock(GuestMemfd& f) : f_(f) { f_.invalidate_locked_ = true; }
        ~InvalidateLock() { f_.invalidate_locked_ = false; }
        InvalidateLock(const InvalidateLock&) = delete;
        InvalidateLock& operator=(const InvalidateLock&) = delete;

    private:
        GuestMemfd& f_;
    };
    bool invalidate_locked() const { return invalidate_locked_; }
    // [PROPOSED] KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd (kernel/memory_attributes.cpp).
    int kvm_gmem_set_attributes2(uapi::kvm_memory_attributes2& args, ExecContext& ctx);
    // In-place attributes of file page `index` (default PRIVATE unless INIT_SHARED).
    uint64_t kvm_gmem_get_attributes(uint64_t index) const;
    // [PROPOSED] A protected VM's MEM_SHARE / MEM_UNSHARE under the in-place conversion
    // series for pKVM: EL2 has already moved the page's ownership, so only the file's
    // shareability of `index` follows (no zap, no invalidation: the page stays where it
    // is, mapped by the guest; a shared page may be faulted by the VMM's mmap, a private
    // one is SIGBUS there).
    void kvm_gmem_set_shareability(uint64_t index, bool shared);

    // ---- bindings (kvm_gmem_bind / kvm_gmem_unbind, called from memslot changes) ----
    int bind(kvm_memory_slot& slot, uint64_t offset);
    void unbind(kvm_memory_slot& slot);
    kvm_memory_slot* binding(uint64_t index) const;

    // ---- page cache ----
    // kvm_gmem_get_folio(): the page at index, allocated (FGP_CREAT) if absent (-ENOMEM).
    int kvm_gmem_get_folio(uint64_t index, Pfn& pfn, ExecContext& ctx);
    // Clear the page and mark it uptodate unless it already is (first use).
    void kvm_gmem_mark_uptodate(uint64_t index, Pfn pfn, ExecContext& ctx);
    // kvm_gmem_mark_prepared() after a successful post_populate: the page holds the launch
    // image (not cleared), and a later fault or populate finds it prepared.
    void kvm_gmem_mark_populated(uint64_t index) { uptodate_.assign(index, index + 1, true); }
    bool uptodate(uint64_t index) const { return uptodate_.contains(index); }
    // [PROPOSED] huge folios (kvm.config.gmem_max_order > 0): the order of the folio holding
    // index (0 for an order-0 page or a hole) and its first index.
    unsigned folio_order(uint64_t index, uint64_t* head = nullptr) const;
    size_t nr_huge_folios() const { return huge_folios_.size(); }
    std::optional<Pfn> filemap_lookup(uint64_t index) const { return page_cache_.find(index); }
    uint64_t nr_pages_allocated() const { return nr_pages_; }

    // ---- references beyond the page cache's own ----
    // Host PTEs mapping the page (one per mapping that faulted it in).
    void host_map_get(uint64_t index);
    void host_map_put(uint64_t index);
    // Long-term pins (GUP FOLL_LONGTERM). unpin() finds the page by pfn even after a
    // punch hole or release dropped it from the page cache, and frees it then.
    void pin(uint64_t index);
    void unpin(uint64_t index, Pfn pfn, ExecContext& ctx);
    uint32_t pin_count(uint64_t index) const;
    uint32_t host_map_count(uint64_t index) const;

    // Where file page `index` is in the page-state graph (kernel/page_state_graph.hpp).
    GmemPageState page_state(uint64_t index) const;

    // The data structures, for tests and invariants.
    const RangeMap<Pfn>& page_cache() const { return page_cache_; }
    const RangeMap<kvm_memory_slot*>& bindings() const { return bindings_; }
    const RangeMap<uint64_t>& attributes() const { return attributes_; }
    size_t nr_orphaned_pins() const { return orphans_.size(); }

private:
    // kvm_gmem_invalidate_begin/end() over the bindings for file pages [start, end).
    // set_attributes: an attribute change (zaps through kvm_arch_pre_set_memory_attributes).
    void invalidate_begin(class MmuInvalidation& inv, uint64_t start, uint64_t end, bool set_attributes = false);
    void invalidate_end(class MmuInvalidation& inv, uint64_t start, uint64_t end);
    AttrFilter kvm_gmem_get_invalidate_filter() const;
    int kvm_gmem_punch_hole(uint64_t offset, uint64_t len, ExecContext& ctx);
    int kvm_gmem_allocate(uint64_t offset, uint64_t len, ExecContext& ctx);
    void kvm_gmem_release(ExecContext& ctx);
    // truncate_inode_pages_range(): drop [start, end) from the page cache, freeing pages
    // (arch gmem_invalidate first); pinned pages live on until unpinned.
    void truncate_range(uint64_t start, uint64_t end, ExecContext& ctx);
    void free_page(Pfn pfn, ExecContext& ctx);

    std::shared_ptr<Kvm> kvm_;
    Kvm* owner_;                      // the VM this file was created for (never dereferenced after release)
    VmmProcess& proc_;
    uint64_t size_, flags_, ino_;
    int file_refs_ = 0;
    bool released_ = false;
    bool invalidate_locked_ = false;             // filemap_invalidate_lock held (exclusive)

    RangeMap<Pfn> page_cache_;        // index -> pfn
    uint64_t nr_pages_ = 0;
    RangeMap<bool> uptodate_;         // indices cleared since allocation
    RangeMap<kvm_memory_slot*> bindings_;
    RangeMap<uint64_t> attributes_;   // in-place conversion store (every index present)
    std::map<uint64_t, uint32_t> host_mapped_;   // index -> host PTE references
    std::map<uint64_t, uint32_t> pins_;          // index -> long-term pins
    std::map<uint64_t, uint32_t> orphans_;       // pfn -> pins, page no longer in the cache
    std::map<uint64_t, unsigned> huge_folios_;   // first index -> order, folios of order > 0
    // The order a new folio at index gets: gmem_max_order when its naturally aligned
    // range lies inside the file and holds no page yet, else 0.
    unsigned new_folio_order(uint64_t index) const;
    // Truncating part of a huge folio splits it into order-0 pages (the huge-folio series
    // splits before freeing part of a folio).
    void split_huge_folios(uint64_t start, uint64_t end);
};

// kvm_gmem_bind()/kvm_gmem_unbind() as kvm_set_memory_region() calls them: fd is the
// memslot's guest_memfd field, resolved in the VM's process (EBADF / EINVAL).
int kvm_gmem_bind(Kvm& kvm, kvm_memory_slot& slot, uint32_t fd, uint64_t offset);
void kvm_gmem_unbind(kvm_memory_slot& slot);

// kvm_gmem_get_pfn(): the page backing gfn of a gmem slot for the fault path. -EFAULT if
// the file is closed or not the slot's, -EIO if the binding is not this slot, -ENOMEM.
// Clears the folio on first use and calls the arch gmem_prepare hook. max_order is the
// folio's order (0 upstream; up to kvm.config.gmem_max_order with huge folios), lowered to
// 0 when gfn and file index are not congruent modulo the folio.
int kvm_gmem_get_pfn(Kvm& kvm, const kvm_memory_slot& slot, Gfn gfn, Pfn& pfn, int& max_order,
                     ExecContext& ctx);

// kvm_gmem_populate() (virt/kvm/guest_memfd.c): the launch-time copy-in of SNP_LAUNCH_UPDATE
// and KVM_TDX_INIT_MEM_REGION. For each of npages pages from start_gfn (clamped to the end
// of the slot): take the folio without preparing it; a page already prepared (faulted in
// or populated before) is -EEXIST; a gfn that is not PRIVATE in the attributes is -EINVAL;
// then the arch post_populate hook with src[i] (the GUP'd source pages; empty = no source)
// and, on success, mark the page prepared. npages <= 0, no slot or a slot without
// guest_memfd: -EINVAL; a closed file: -EFAULT. Returns the pages done, or the error if
// the first page failed.
long kvm_gmem_populate(Kvm& kvm, Gfn start_gfn, const std::vector<Pfn>& src, long npages, ExecContext& ctx);

}  // namespace hvsim::kvm
