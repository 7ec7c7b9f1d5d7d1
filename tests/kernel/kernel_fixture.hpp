// Test fixture for the simulated KVM core: host memory, a VMM process, one VM, and a
// recording fake of the arch MMU that logs every call generic KVM makes into it, with
// the invalidation state it observed at that moment.
#pragma once

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernel/guest_memfd.hpp"
#include "kernel/kvm.hpp"
#include "kernel/process.hpp"
#include "kernel/uapi.hpp"

namespace hvsim::kvm::test {

inline constexpr uint64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB, TiB = 1024 * GiB;

struct RecordingMmu final : KvmMmuOps {
    struct Unmap {
        uint16_t slot_id;
        uint64_t start, end;
        AttrFilter filter;
        int64_t in_progress;         // kvm->mmu_invalidate_in_progress during the call
        uint64_t range_start, range_end;   // kvm's union at the time of the call
    };
    const Kvm* kvm = nullptr;
    std::vector<std::string> log;   // "unmap", "flush", "flush_slot", "create", "free", "post"
    std::vector<Unmap> unmaps;
    std::vector<std::pair<uint64_t, uint64_t>> post;   // post_set_memory_attributes ranges
    bool flush_on_unmap = true;
    uint64_t zaps_per_unmap = 1;
    uint64_t zapped = 0;

    bool kvm_unmap_gfn_range(const kvm_gfn_range& r, ExecContext&) override {
        log.push_back("unmap");
        unmaps.push_back({r.slot->id, r.start.raw(), r.end.raw(), r.attr_filter,
                          kvm ? kvm->mmu_invalidate_in_progress : -1,
                          kvm ? kvm->mmu_invalidate_range_start.raw() : 0,
                          kvm ? kvm->mmu_invalidate_range_end.raw() : 0});
        zapped += zaps_per_unmap;
        return flush_on_unmap;
    }
    void kvm_flush_remote_tlbs(ExecContext& ctx) override {
        log.push_back("flush");
        ctx.charge("tlb_flush_remote_ipi", 3000);
    }
    void kvm_arch_flush_shadow_memslot(const kvm_memory_slot& s, ExecContext&) override {
        log.push_back("flush_slot:" + std::to_string(s.id));
        zapped += 7;
    }
    void kvm_arch_post_set_memory_attributes(const kvm_memory_slot&, Gfn s, Gfn e) override {
        log.push_back("post");
        post.emplace_back(s.raw(), e.raw());
    }
    void kvm_arch_create_memslot(const kvm_memory_slot& s) override { log.push_back("create:" + std::to_string(s.id)); }
    void kvm_arch_free_memslot(const kvm_memory_slot& s) override { log.push_back("free:" + std::to_string(s.id)); }
    uint64_t sptes_zapped_total() const override { return zapped; }
    void clear() {
        log.clear();
        unmaps.clear();
        post.clear();
    }
};

// Per-VM attributes, Linux today: the default configuration (kvm.profile linux-6.18).
inline KvmConfig legacy_attrs() {
    KvmConfig c;
    c.vm_memory_attributes = true;
    c.memory_attributes2 = false;
    return c;
}

// The in-place conversion model (kvm.profile inplace): attributes in each guest_memfd,
// KVM_SET_MEMORY_ATTRIBUTES2. The kernel tests use it unless they ask for legacy_attrs().
inline KvmConfig inplace_attrs() {
    KvmConfig c;
    c.vm_memory_attributes = false;
    c.memory_attributes2 = true;
    return c;
}

struct Env {
    PhysMem mem;
    HostPageAllocator alloc{Hpa(0), 8 * GiB};
    KvmConfig cfg;
    KvmCosts costs;
    std::unique_ptr<VmmProcess> proc;
    CycleCounter ctx;
    RecordingMmu mmu;
    int vmfd = -1;
    std::shared_ptr<Kvm> kvm;

    explicit Env(VmType t = VmType::default_vm, KvmConfig c = inplace_attrs()) : cfg(c) {
        proc = std::make_unique<VmmProcess>(mem, alloc, cfg, costs);
        vmfd = proc->ioctl_create_vm(vm_type_uapi(t), ctx);
        if (vmfd >= 0) {
            kvm = proc->vm(vmfd);
            kvm->set_mmu_ops(&mmu);
            mmu.kvm = kvm.get();
        }
    }
    ~Env() { close(); }
    // The process's teardown (its files closed, the VM gone), for a fixture whose arch ops
    // or RMP are declared after the Env and must outlive that teardown.
    void close() {
        if (kvm) kvm->set_mmu_ops(nullptr);
        kvm.reset();
        proc.reset();
    }

    int gmem(uint64_t size, uint64_t flags = 0) {
        uapi::kvm_create_guest_memfd a{};
        a.size = size;
        a.flags = flags;
        return proc->ioctl_create_guest_memfd(vmfd, a, ctx);
    }
    int slot(uint32_t slot, uint64_t gpa, uint64_t size, uint32_t flags = 0, uint64_t uaddr = 0x7f0000000000ull,
             uint32_t gmem_fd = 0, uint64_t gmem_off = 0) {
        uapi::kvm_userspace_memory_region2 m{};
        m.slot = slot;
        m.flags = flags;
        m.guest_phys_addr = gpa;
        m.memory_size = size;
        m.userspace_addr = uaddr;
        m.guest_memfd = gmem_fd;
        m.guest_memfd_offset = gmem_off;
        return proc->ioctl_set_user_memory_region2(vmfd, m, ctx);
    }
    int gslot(uint32_t slot, uint64_t gpa, uint64_t size, int gfd, uint64_t off = 0) {
        return this->slot(slot, gpa, size, uapi::KVM_MEM_GUEST_MEMFD, 0x7f0000000000ull + gpa, uint32_t(gfd), off);
    }
    int fallocate(int fd, int mode, uint64_t off, uint64_t len) { return proc->fallocate(fd, mode, off, len, ctx); }
    int punch(int fd, uint64_t off, uint64_t len) {
        return fallocate(fd, uapi::falloc::KEEP_SIZE | uapi::falloc::PUNCH_HOLE, off, len);
    }
    int set_attrs(uint64_t gpa, uint64_t size, uint64_t attrs, uint64_t flags = 0) {
        uapi::kvm_memory_attributes a{gpa, size, attrs, flags};
        return proc->ioctl_set_memory_attributes(vmfd, a, ctx);
    }
    int set_attrs2(int fd, uint64_t off, uint64_t size, uint64_t attrs, uint64_t flags = 0,
                   uint64_t* error_offset = nullptr) {
        uapi::kvm_memory_attributes2 a{};
        a.offset = off;
        a.size = size;
        a.attributes = attrs;
        a.flags = flags;
        const int r = proc->ioctl_set_memory_attributes2(fd, a, ctx);
        if (error_offset) *error_offset = a.error_offset;
        return r;
    }
    GuestMemfd& file(int fd) { return *proc->gmem(fd); }
    const kvm_memory_slot* memslot(uint16_t id, unsigned as = 0) { return kvm->id_to_memslot(as, id); }
};

inline constexpr uint64_t PRIV = uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE;

}  // namespace hvsim::kvm::test
