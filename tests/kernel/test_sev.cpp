#include <catch2/catch.hpp>

#include "kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;
using namespace hvsim::uapi;

namespace {
int reg(Env& e, uint64_t addr, uint64_t size) { return e.proc->ioctl_memory_encrypt_reg_region(e.vmfd, {addr, size}, e.ctx); }
int unreg(Env& e, uint64_t addr, uint64_t size) { return e.proc->ioctl_memory_encrypt_unreg_region(e.vmfd, {addr, size}, e.ctx); }
}  // namespace

TEST_CASE("sev regions: ENOTTY on VMs that are not SEV guests", "[sev]") {
    for (VmType t : {VmType::default_vm, VmType::sw_protected, VmType::tdx, VmType::pkvm}) {
        INFO(vm_type_name(t));
        Env e(t);
        REQUIRE(reg(e, 0x7f0000000000ull, 4096) == -ENOTTY);
        REQUIRE(reg(e, 0x7f0000000000ull, 0) == -ENOTTY);   // size 0 included
        REQUIRE(unreg(e, 0x7f0000000000ull, 4096) == -ENOTTY);
    }
    Env snp(VmType::snp);   // sev_guest() is true for SNP: not refused
    REQUIRE(reg(snp, 0x7f0000000000ull, 4096) == 0);
}

TEST_CASE("sev regions: pinning, limits, exact-match unregister, overlaps", "[sev]") {
    KvmConfig c;
    c.memlock_limit = 16 * 4096;
    Env e(VmType::sev, c);
    const uint64_t base = 0x7f0000000000ull;
    REQUIRE(reg(e, base, 0) == -EINVAL);
    REQUIRE(reg(e, ~0ull - 100, 4096) == -EINVAL);   // wraps
    // Unaligned: [base+100, base+100+8192) spans 3 pages.
    const Cycles before = e.ctx.total;
    REQUIRE(reg(e, base + 100, 8192) == 0);
    REQUIRE(e.kvm->sev_pages_locked() == 3);
    REQUIRE(e.proc->nr_anon_pages() == 3);            // pinned up front: allocated now
    REQUIRE(e.proc->nr_pins() == 3);
    REQUIRE(e.ctx.total - before == e.costs.ioctl + 3 * (e.costs.host_fault + e.costs.page_alloc + e.costs.zero_4k) +
                                        3 * e.costs.pin_page + 3 * e.costs.clflush_4k);
    // Overlapping registration is accepted and pins again.
    REQUIRE(reg(e, base, 4096) == 0);
    REQUIRE(e.kvm->sev_pages_locked() == 4);
    REQUIRE(e.proc->nr_pins() == 4);
    // RLIMIT_MEMLOCK: 4 + 13 > 16 pages.
    REQUIRE(reg(e, base + 1 * MiB, 13 * 4096) == -ENOMEM);
    REQUIRE(reg(e, base + 1 * MiB, 12 * 4096) == 0);
    REQUIRE(e.kvm->stats().sev_pages_pinned_peak == 16);
    // Unregister needs the exact {addr, size}.
    REQUIRE(unreg(e, base + 100, 4096) == -EINVAL);
    REQUIRE(unreg(e, base, 8192) == -EINVAL);
    REQUIRE(unreg(e, base + 100, 8192) == 0);
    REQUIRE(e.kvm->sev_pages_locked() == 13);
    REQUIRE(e.proc->nr_pins() == 13);
    REQUIRE(unreg(e, base + 100, 8192) == -EINVAL);   // already gone
    REQUIRE(e.kvm->stats().sev_pages_pinned == 13);
    REQUIRE(e.kvm->stats().sev_pages_pinned_peak == 16);
    REQUIRE(e.kvm->stats().sev_regions == 2);
}

TEST_CASE("sev regions: a private guest_memfd page cannot be pinned, VM destroy unpins", "[sev]") {
    Env e(VmType::sev_es);
    const int g = e.gmem(4 * 4096, GUEST_MEMFD_FLAG_MMAP);   // no INIT_SHARED: host SIGBUS
    auto m = e.proc->mmap(g, 0, 4 * 4096, true, e.ctx);
    REQUIRE(m.err == 0);
    REQUIRE(reg(e, m.addr.raw(), 4096) == -ENOMEM);   // GUP fails -> partial pin -> ENOMEM
    REQUIRE(e.proc->nr_pins() == 0);
    REQUIRE(reg(e, 0x7f0000000000ull, 2 * 4096) == 0);
    REQUIRE(e.proc->nr_pins() == 2);
    e.kvm.reset();
    REQUIRE(e.proc->close(e.vmfd, e.ctx) == 0);
    REQUIRE(e.proc->nr_pins() == 2);                   // the guest_memfd still holds the VM
    REQUIRE(e.proc->munmap(m.addr, 4 * 4096, e.ctx) == 0);
    REQUIRE(e.proc->close(g, e.ctx) == 0);             // last reference: kvm_destroy_vm()
    REQUIRE(e.proc->nr_pins() == 0);
}

TEST_CASE("sev regions: the registered pages are the guest's encrypted memory (encrypted_pages)", "[sev][encrypt]") {
    for (VmType t : {VmType::sev, VmType::sev_es}) {
        INFO(vm_type_name(t));
        Env e(t);
        const EncryptedPages* enc = e.kvm->arch().encrypted_pages(*e.kvm);
        REQUIRE(enc);
        const uint64_t base = 0x7f0000000000ull;
        REQUIRE(reg(e, base, 2 * 4096) == 0);
        const auto p0 = e.proc->anon_page(Hva(base)), p1 = e.proc->anon_page(Hva(base + 4096));
        REQUIRE(p0);
        REQUIRE(p1);
        CHECK(enc->encrypted(*p0));
        CHECK(enc->encrypted(*p1));
        // A page of guest RAM the VMM did not register is not encrypted (shared with the VMM).
        REQUIRE(e.proc->host_write(Hva(base + 1 * MiB), 4096, 0x11, e.ctx).err == 0);
        const auto plain = e.proc->anon_page(Hva(base + 1 * MiB));
        REQUIRE(plain);
        CHECK_FALSE(enc->encrypted(*plain));
        // Two registrations of a page: it stays encrypted until both are gone.
        REQUIRE(reg(e, base, 4096) == 0);
        REQUIRE(unreg(e, base, 2 * 4096) == 0);
        CHECK(enc->encrypted(*p0));
        CHECK_FALSE(enc->encrypted(*p1));
        REQUIRE(unreg(e, base, 4096) == 0);
        CHECK_FALSE(enc->encrypted(*p0));
    }
}

TEST_CASE("encrypted_pages: no memory encryption for plain, sw_protected and pKVM VMs", "[encrypt]") {
    for (VmType t : {VmType::default_vm, VmType::sw_protected, VmType::pkvm}) {
        INFO(vm_type_name(t));
        Env e(t);
        CHECK(e.kvm->arch().encrypted_pages(*e.kvm) == nullptr);
    }
}

TEST_CASE("sev regions: a large registration pins as runs, with the pages one-by-one faults would get", "[sev][scale]") {
    const uint64_t base = 0x7f0000000000ull, size = 64 * MiB, pages = size >> kPageShift;
    KvmConfig c;
    c.memlock_limit = 0;
    Env bulk(VmType::sev, c), paged(VmType::sev, c);
    // The reference: every page written by the VMM first (a write fault each), then registered.
    for (uint64_t off = 0; off < size; off += 4096) REQUIRE(paged.proc->host_write(Hva(base + off), 8, 1, paged.ctx).err == 0);
    REQUIRE(reg(paged, base, size) == 0);
    const Cycles before = bulk.ctx.total;
    REQUIRE(reg(bulk, base, size) == 0);
    CHECK(bulk.ctx.total - before == bulk.costs.ioctl +
                                         pages * (bulk.costs.host_fault + bulk.costs.page_alloc + bulk.costs.zero_4k +
                                                  bulk.costs.pin_page + bulk.costs.clflush_4k));
    CHECK(bulk.proc->nr_pins() == pages);
    CHECK(bulk.proc->nr_pin_runs() == 1);
    CHECK(bulk.proc->nr_anon_pages() == pages);
    CHECK(bulk.proc->stats().host_faults == pages);
    for (uint64_t off = 0; off < size; off += 4096) {
        const auto a = bulk.proc->anon_page(Hva(base + off)), b = paged.proc->anon_page(Hva(base + off));
        REQUIRE(a);
        REQUIRE(a == b);
    }
    CHECK(bulk.alloc.free_pages() == paged.alloc.free_pages());
    CHECK(bulk.alloc.alloc(0) == paged.alloc.alloc(0));
    const EncryptedPages* enc = bulk.kvm->arch().encrypted_pages(*bulk.kvm);
    CHECK(enc->encrypted(*bulk.proc->anon_page(Hva(base + size - 4096))));
    REQUIRE(unreg(bulk, base, size) == 0);
    CHECK(bulk.proc->nr_pins() == 0);
    CHECK(bulk.proc->nr_pin_runs() == 0);
    CHECK_FALSE(enc->encrypted(*bulk.proc->anon_page(Hva(base))));
    CHECK(bulk.proc->stats().unpins == pages);
}

TEST_CASE("pins: unpinning a page drops its oldest pin, overlapping pins count per page", "[sev][pin]") {
    Env e(VmType::sev);
    const uint64_t base = 0x7f0000000000ull;
    VmmProcess& p = *e.proc;
    REQUIRE(p.pin_user_pages(Hva(base), 4 * 4096, e.ctx) == 4);            // pages 0..3
    REQUIRE(p.pin_user_pages(Hva(base + 2 * 4096), 4 * 4096, e.ctx) == 4);  // pages 2..5
    CHECK(p.nr_pins() == 8);
    CHECK(p.unpin_user_pages(Hva(base), 6 * 4096, e.ctx) == 6);   // one pin per page: 2 and 3 keep one
    CHECK(p.nr_pins() == 2);
    CHECK(p.unpin_user_pages(Hva(base + 4 * 4096), 2 * 4096, e.ctx) == 0);   // 4 and 5 have none left
    // Munmap frees the unpinned pages; the pinned ones live on until their last pin goes.
    const uint64_t used = e.alloc.used_pages();
    REQUIRE(p.munmap(Hva(base), 6 * 4096, e.ctx) == 0);
    CHECK(e.alloc.used_pages() == used - 4);
    CHECK(p.unpin_user_pages(Hva(base), 6 * 4096, e.ctx) == 2);
    CHECK(e.alloc.used_pages() == used - 6);
    CHECK(p.nr_pins() == 0);
}

TEST_CASE("pins: a bulk pin the allocator cannot back pins nothing and allocates nothing", "[sev][pin]") {
    Env e(VmType::sev);
    const uint64_t base = 0x7f0000000000ull;
    (void)e.alloc.alloc_bulk(e.alloc.free_pages() - 10);
    const uint64_t free_before = e.alloc.free_pages();
    CHECK(e.proc->pin_user_pages(Hva(base), 16 * 4096, e.ctx) == -ENOMEM);
    CHECK(e.proc->nr_pins() == 0);
    CHECK(e.proc->nr_pin_runs() == 0);
    CHECK(e.alloc.free_pages() == free_before - 10);   // the 10 pages faulted in stay mapped, unpinned
    CHECK(e.proc->nr_anon_pages() == 10);
}

TEST_CASE("sev regions: with THP a registration pins each huge page as one piece", "[sev][scale]") {
    const uint64_t base = 0x7f0000000000ull, size = 64 * MiB, pages = size >> kPageShift, regions = size >> 21;
    KvmConfig c;
    c.memlock_limit = 0;
    {
        Env e(VmType::sev, c);
        e.proc->set_thp(true);
        const Cycles before = e.ctx.total;
        REQUIRE(reg(e, base, size) == 0);
        CHECK(e.proc->stats().thp_allocated == regions);
        CHECK(e.ctx.total - before == e.costs.ioctl +
                                          regions * (e.costs.host_fault + e.costs.page_alloc + e.costs.zero_2m) +
                                          pages * (e.costs.pin_page + e.costs.clflush_4k));
        CHECK(e.proc->nr_pins() == pages);
        CHECK(e.proc->nr_pin_runs() == 1);
        REQUIRE(unreg(e, base, size) == 0);
        CHECK(e.proc->nr_pins() == 0);
        CHECK(e.proc->stats().unpins == pages);
    }
    {
        // A read first maps the huge zero page over region 0: the write then copies 4K pages
        // there (pinned one by one), the other regions get huge pages.
        Env e(VmType::sev, c);
        e.proc->set_thp(true);
        REQUIRE(e.proc->get_user_pages(Hva(base), false, e.ctx).err == 0);   // a read fault
        REQUIRE(reg(e, base, size) == 0);
        CHECK(e.proc->stats().thp_allocated == regions - 1);
        CHECK(e.proc->nr_pins() == pages);
        REQUIRE(unreg(e, base, size) == 0);
        CHECK(e.proc->nr_pins() == 0);
    }
}

TEST_CASE("sev regions: unregistering walks the pages as the per-page look-ups did (orphans, overlaps, re-faulted pages)", "[sev][pin]") {
    Env e(VmType::sev);
    const uint64_t base = 0x7f0000000000ull;
    VmmProcess& p = *e.proc;
    const EncryptedPages* enc = e.kvm->arch().encrypted_pages(*e.kvm);
    // Region A: 64 pages; region B overlaps its last 16 and 16 more.
    REQUIRE(reg(e, base, 64 * 4096) == 0);
    REQUIRE(reg(e, base + 48 * 4096, 32 * 4096) == 0);
    std::vector<Pfn> a_pfn;
    for (uint64_t i = 0; i < 80; ++i) a_pfn.push_back(*p.anon_page(Hva(base + i * 4096)));
    // Pages 10..19 unmapped while pinned (orphans, kept until their last pin goes); 10..14
    // written again: new pages at the same hvas, which A never pinned.
    REQUIRE(p.munmap(Hva(base + 10 * 4096), 10 * 4096, e.ctx) == 0);
    REQUIRE(p.host_write(Hva(base + 10 * 4096), 5 * 4096, 0x22, e.ctx).err == 0);
    const uint64_t used = e.alloc.used_pages();
    const uint64_t unpins = p.stats().unpins;
    REQUIRE(unreg(e, base, 64 * 4096) == 0);
    CHECK(p.stats().unpins == unpins + 64);
    CHECK(e.alloc.used_pages() == used - 10);   // the orphans' last pins: freed
    CHECK(p.nr_pins() == 32);
    for (uint64_t i = 0; i < 80; ++i) {
        INFO("page " << i);
        if (i >= 10 && i < 20) continue;   // freed (or replaced)
        CHECK(enc->encrypted(a_pfn[i]) == (i >= 48));   // still registered by B
    }
    // B keeps one pin on each of its pages; A's pins are gone.
    CHECK(p.unpin_user_pages(Hva(base + 48 * 4096), 32 * 4096, e.ctx) == 32);
    CHECK(p.unpin_user_pages(Hva(base), 64 * 4096, e.ctx) == 0);
}
