// The simulated struct kvm: one VM of one type, its memslots, memory attributes, MMU
// invalidation state and legacy SEV regions (virt/kvm/kvm_main.c, arch/x86/kvm/x86.c,
// arch/x86/kvm/svm/sev.c). Entry points are named after the KVM functions they model
// and return 0 / a value / an fd, or -errno; none throws for user input.
//
// Ownership mirrors Linux: the VM fd and every guest_memfd file hold a reference
// (shared_ptr) on the Kvm, so closing the VM fd keeps the VM alive while guest_memfds
// are open. The Kvm points back at the VMM process that created it (kvm->mm).
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "kernel/costs.hpp"
#include "kernel/kvm_arch_ops.hpp"
#include "kernel/kvm_config.hpp"
#include "kernel/kvm_host.hpp"
#include "kernel/memslot.hpp"
#include "kernel/mmu_lock.hpp"
#include "kernel/range_map.hpp"
#include "kernel/stats.hpp"
#include "kernel/uapi.hpp"
#include "models/common/counting_context.hpp"
#include "models/mem/cache.hpp"

namespace hvsim::kvm {

class VmmProcess;
class GuestMemfd;
class Kvm;

// [PROPOSED] capability numbers of the in-place conversion series. Upstream has not
// fixed them (245/248/249 seen in different revisions); hvsim uses these two.
inline constexpr int KVM_CAP_MEMORY_ATTRIBUTES2 = 248;
inline constexpr int KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES = 249;
// KVM_EXIT_HYPERCALL_VALID_MASK (x86.h): only KVM_HC_MAP_GPA_RANGE may exit.
inline constexpr uint64_t KVM_EXIT_HYPERCALL_VALID_MASK = 1ull << uapi::KVM_HC_MAP_GPA_RANGE;
// x86-64 TASK_SIZE_MAX with 4-level paging; access_ok() accepts [addr, addr+size) below it.
inline constexpr uint64_t kTaskSizeMax = (1ull << 47) - kPageSize;
inline constexpr uint64_t kInvalidGfn = ~0ull;   // INVALID_GPA as mmu_invalidate_range_*

// A KvmMmuOps that maps nothing (a VM whose MMU is not attached, or a VM being torn down).
class NullMmuOps final : public KvmMmuOps {
public:
    bool kvm_unmap_gfn_range(const kvm_gfn_range&, ExecContext&) override { return false; }
    void kvm_flush_remote_tlbs(ExecContext&) override {}
    void kvm_arch_flush_shadow_memslot(const kvm_memory_slot&, ExecContext&) override {}
    void kvm_arch_post_set_memory_attributes(const kvm_memory_slot&, Gfn, Gfn) override {}
    void kvm_arch_create_memslot(const kvm_memory_slot&) override {}
    void kvm_arch_free_memslot(const kvm_memory_slot&) override {}
    uint64_t sptes_zapped_total() const override { return 0; }
};

// One kvm_mmu_invalidate_begin() .. kvm_mmu_invalidate_end() bracket as a caller runs it
// (guest_memfd invalidation, attribute change, memslot zap), recorded into
// KvmStats::invalidations at end(). Charge everything in between through ctx().
class MmuInvalidation {
public:
    MmuInvalidation(Kvm& kvm, InvalidateCause cause, AttrFilter filter, ExecContext& outer);
    ~MmuInvalidation();   // drops mmu_lock if a caller returned between begin() and flush_and_unlock()
    MmuInvalidation(const MmuInvalidation&) = delete;
    MmuInvalidation& operator=(const MmuInvalidation&) = delete;
    ExecContext& ctx() { return ctx_; }
    // Take mmu_lock and kvm_mmu_invalidate_begin() (done once, on the first range).
    void begin();
    bool begun() const { return begun_; }
    // kvm_mmu_invalidate_range_add() only.
    void range_add(Gfn start, Gfn end);
    // kvm_mmu_unmap_gfn_range(): range_add + kvm_unmap_gfn_range() with this filter.
    void unmap(const kvm_memory_slot& slot, Gfn start, Gfn end);
    // kvm_pre_set_memory_attributes(): range_add + kvm_arch_pre_set_memory_attributes()
    // (which may widen the protected range to the huge-page frames around it).
    void pre_set_attributes(const kvm_memory_slot& slot, Gfn start, Gfn end);
    // kvm_flush_remote_tlbs() if any unmap asked for it, drop mmu_lock (ctx.sync()).
    void flush_and_unlock();
    // Take mmu_lock, kvm_mmu_invalidate_end(), drop it, and record the invalidation.
    void end();

private:
    kvm_gfn_range gfn_range(const kvm_memory_slot& slot, Gfn start, Gfn end) const;
    void record_zap(const kvm_memory_slot& slot, Gfn start, Gfn end, uint64_t zapped_before);

    Kvm& kvm_;
    CountingContext ctx_;
    InvalidationRecord rec_;
    uint64_t zapped_before_ = 0;
    bool begun_ = false, flush_ = false, any_range_ = false;
    bool locked_ = false, lock_timed_ = false;   // the write mmu_lock taken in begin()
};

class Kvm : public std::enable_shared_from_this<Kvm> {
    struct Private {};

public:
    // kvm_dev_ioctl_create_vm() -> kvm_create_vm() -> kvm_arch_init_vm(): EINVAL for a type
    // this configuration does not offer. Usually reached through VmmProcess::ioctl_create_vm.
    static int create(uint64_t type, VmmProcess& proc, ExecContext& ctx, std::shared_ptr<Kvm>& out);
    Kvm(Private, VmType type, VmmProcess& proc);
    ~Kvm();
    Kvm(const Kvm&) = delete;
    Kvm& operator=(const Kvm&) = delete;

    VmType type() const { return type_; }
    KvmArchOps& arch() const { return *arch_; }
    // Install a backend with working hooks (SNP RMP, TDX SEPT, pKVM stage-2).
    void set_arch_ops(KvmArchOps& ops) { arch_ = &ops; }
    // The arch MMU generic code calls through; must outlive its use (nullptr = none).
    void set_mmu_ops(KvmMmuOps* ops) { mmu_ = ops ? ops : &null_mmu_; }
    KvmMmuOps& mmu() const { return *mmu_; }
    VmmProcess& process() const { return proc_; }
    const KvmConfig& config() const;
    const KvmCosts& costs() const;
    KvmStats& stats() { return stats_; }
    const KvmStats& stats() const { return stats_; }

    bool has_private_mem() const { return arch_->has_private_mem(); }
    // kvm->arch.pre_fault_allowed: SNP/TDX backends set it at launch finish / finalize.
    bool pre_fault_allowed = true;
    // kvm->arch.gfn_direct_bits (kvm_gfn_direct_bits()): gfn bits that name KVM's direct
    // (shared) root; 0 on every VM without a shared GPA bit. Set from the arch ops'
    // shared_gpa_bit() at creation and again by the TDP MMU for its root level.
    uint64_t gfn_direct_bits = 0;
    void kvm_set_shared_gpa_bit_for(unsigned tdp_levels) {
        const unsigned b = arch_->shared_gpa_bit(tdp_levels);
        gfn_direct_bits = b ? 1ull << (b - kPageShift) : 0;
    }
    // kvm_is_gfn_alias(): the gfn has a direct bit set (a TDX shared alias).
    bool kvm_is_gfn_alias(Gfn g) const { return g.raw() & gfn_direct_bits; }
    // The gfn memslots and guest_memfd know (kvm_mmu_do_page_fault(): "memslots don't
    // understand the concept of a shared bit").
    Gfn kvm_gfn_strip_direct_bits(Gfn g) const { return Gfn(g.raw() & ~gfn_direct_bits); }

    // ---- capabilities (kvm_vm_ioctl_check_extension_generic + x86) ----
    // System scope (/dev/kvm, kvm == NULL).
    static int64_t kvm_dev_check_extension(const KvmConfig& cfg, int64_t cap);
    int64_t kvm_vm_ioctl_check_extension(int64_t cap) const;
    // KVM_CAP_VM_TYPES: BIT(type) of every x86 type the configuration offers.
    static uint32_t supported_vm_types(const KvmConfig& cfg);

    // ---- memslots (kernel/kvm.cpp) ----
    int kvm_vm_ioctl_set_memory_region(const uapi::kvm_userspace_memory_region& mem, ExecContext& ctx);
    int kvm_vm_ioctl_set_memory_region2(const uapi::kvm_userspace_memory_region2& mem, ExecContext& ctx);
    // KVM_GET_DIRTY_LOG (kvm_get_dirty_log_protect()): copies the slot's bitmap into
    // `bitmap` (one bit per page), clears it and write-protects what was dirty.
    int kvm_vm_ioctl_get_dirty_log(const uapi::kvm_dirty_log& log, std::vector<uint64_t>& bitmap, ExecContext& ctx);
    // KVM_CLEAR_DIRTY_LOG (kvm_clear_dirty_log_protect()): clears the bits of `bitmap`
    // (bit i = page first_page + i) and write-protects those pages.
    int kvm_vm_ioctl_clear_dirty_log(const uapi::kvm_clear_dirty_log& log, const std::vector<uint64_t>& bitmap,
                                     ExecContext& ctx);
    // mark_page_dirty_in_slot(): the page was (or may now be) written by the guest.
    static void mark_page_dirty_in_slot(const kvm_memory_slot& slot, Gfn gfn);
    unsigned kvm_arch_nr_memslot_as_ids() const { return arch_->nr_memslot_as_ids(config()); }
    const KvmMemslots& memslots(unsigned as_id) const { return memslots_[as_id]; }
    const kvm_memory_slot* id_to_memslot(unsigned as_id, uint16_t id) const;
    const kvm_memory_slot* gfn_to_memslot(unsigned as_id, Gfn gfn) const;
    uint64_t nr_memslot_pages() const { return nr_memslot_pages_; }
    bool kvm_arch_has_readonly_mem() const { return arch_->has_readonly_mem(config()); }

    // ---- guest_memfd (kernel/guest_memfd.cpp) ----
    // kvm_gmem_get_supported_flags().
    uint64_t kvm_gmem_get_supported_flags() const;
    // KVM_CREATE_GUEST_MEMFD: a new fd in the VMM's table, or -errno.
    int kvm_gmem_create(const uapi::kvm_create_guest_memfd& args, ExecContext& ctx);

    // ---- memory attributes (kernel/memory_attributes.cpp) ----
    // kvm_supported_mem_attributes(): PRIVATE for private-memory VMs.
    uint64_t kvm_supported_mem_attributes() const;
    // KVM_SET_MEMORY_ATTRIBUTES (per-VM store; ENOTTY unless generic attributes and
    // kvm.vm_memory_attributes).
    int kvm_vm_ioctl_set_mem_attributes(const uapi::kvm_memory_attributes& attrs, ExecContext& ctx);
    // Queries for the fault path, in either store (vm_memory_attributes true or false).
    uint64_t kvm_get_memory_attributes(Gfn gfn) const;
    bool kvm_mem_is_private(Gfn gfn) const {
        return (kvm_get_memory_attributes(gfn) & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE) != 0;
    }
    bool kvm_range_has_memory_attributes(Gfn start, Gfn end, uint64_t mask, uint64_t attrs) const;
    // The per-VM store (vm_memory_attributes == true), for tests and results.
    const RangeMap<uint64_t>& mem_attr_array() const { return mem_attr_array_; }
    // Pages whose attributes say private, in whichever store the profile uses, by ranges
    // (for results and trace counters).
    uint64_t nr_private_pages() const;

    // ---- kvm->mmu_lock (kernel/mmu_lock.hpp) ----
    MmuLock& mmu_lock() { return mmu_lock_; }
    const MmuLock& mmu_lock() const { return mmu_lock_; }

    // ---- MMU invalidation state (include/linux/kvm_host.h, kvm_main.c; §5.3) ----
    uint64_t mmu_invalidate_seq = 0;
    int64_t mmu_invalidate_in_progress = 0;
    Gfn mmu_invalidate_range_start{kInvalidGfn};
    Gfn mmu_invalidate_range_end{kInvalidGfn};
    void kvm_mmu_invalidate_begin();
    void kvm_mmu_invalidate_range_add(Gfn start, Gfn end);
    void kvm_mmu_invalidate_end();
    // Under mmu_lock: retry if an invalidation covering gfn is running or one finished
    // since seq was sampled.
    bool mmu_invalidate_retry_gfn(uint64_t seq, Gfn gfn) const;
    // The lockless pre-check (tolerates a stale range; never retries on INVALID).
    bool mmu_invalidate_retry_gfn_unsafe(uint64_t seq, Gfn gfn) const;

    // ---- MMU notifier (kvm_main.c kvm_mmu_notifier_invalidate_range_start/end) ----
    // The VMM's mapping of [start, end) changes (copy-on-write, munmap): zap the gfns of
    // every memslot whose userspace range overlaps it, shared mappings only.
    void kvm_mmu_notifier_invalidate_range(Hva start, Hva end, ExecContext& ctx);

    // ---- kvm->srcu: memslot readers (kvm_main.c, kvm_host.h) ----
    // A fault holds the read side while it uses a memslot it looked up (Linux: vcpu_run's
    // kvm_vcpu_srcu_read_lock around exit handling, srcu_read_lock in
    // kvm_vcpu_pre_fault_memory). kvm_set_memslot() waits for every reader that may have
    // seen the old slot before it zaps or frees it (kvm_swap_active_memslots ->
    // synchronize_srcu_expedited). Readers that begin during the wait are not waited for.
    int srcu_read_lock();
    void srcu_read_unlock(int idx);
    void synchronize_srcu(ExecContext& ctx);
    uint64_t srcu_readers() const { return srcu_count_[0] + srcu_count_[1]; }

    // ---- legacy SEV (kernel/sev.cpp; svm/sev.c) ----
    int kvm_vm_ioctl_memory_encrypt_reg_region(const uapi::kvm_enc_region& r, ExecContext& ctx);
    int kvm_vm_ioctl_memory_encrypt_unreg_region(const uapi::kvm_enc_region& r, ExecContext& ctx);
    uint64_t sev_pages_locked() const { return sev_pages_locked_; }
    size_t sev_nr_regions() const { return sev_regions_.size(); }
    // SEV/SEV-ES: the pages the registered regions pinned (the guest's encrypted memory).
    const EncryptedPages& sev_encrypted_pages() const { return sev_enc_; }

    // The VMM process exits: stop calling into the MMU and give back SEV pins while the
    // process still exists (used by ~VmmProcess).
    void detach_mmu() { mmu_ = &null_mmu_; }
    void on_process_exit() {
        detach_mmu();
        sev_unpin_all();
    }

private:
    friend class MmuInvalidation;
    friend class GuestMemfd;

    int kvm_set_memory_region(const uapi::kvm_userspace_memory_region2& mem, ExecContext& ctx);
    int kvm_set_memslot(kvm_memory_slot* old, std::unique_ptr<kvm_memory_slot> new_slot,
                        kvm_mr_change change, ExecContext& ctx);
    int kvm_arch_prepare_memory_region(const kvm_memory_slot* new_slot, kvm_mr_change change) const;
    int kvm_vm_set_mem_attributes(Gfn start, Gfn end, uint64_t attrs, ExecContext& ctx);
    void sev_unpin_all();

    VmType type_;
    KvmArchOps* arch_;
    KvmMmuOps* mmu_;
    NullMmuOps null_mmu_;
    VmmProcess& proc_;
    KvmStats stats_;
    MmuLock mmu_lock_;

    KvmMemslots memslots_[2];        // KVM_MAX_NR_ADDRESS_SPACES
    uint64_t nr_memslot_pages_ = 0;
    RangeMap<uint64_t> mem_attr_array_;   // gfn -> attributes; absent = 0

    // srcu_struct's two per-index reader counts; a grace period flips the index.
    int srcu_idx_ = 0;
    uint64_t srcu_count_[2] = {0, 0};

    struct EncRegion { uint64_t uaddr, size, npages; };
    std::vector<EncRegion> sev_regions_;
    uint64_t sev_pages_locked_ = 0;
    // pfn -> registered regions pinning it (a page stays pinned, so its pfn is fixed).
    // Runs of pfns with one count each: registering 64 GiB of contiguous pages is a node.
    struct SevEncPages final : EncryptedPages {
        RangeMap<uint32_t> pfns;
        bool encrypted(Pfn p) const override { return pfns.contains(p.raw()); }
    };
    SevEncPages sev_enc_;
    void sev_track_pfns(uint64_t first_page, uint64_t npages, bool add);
};

}  // namespace hvsim::kvm
