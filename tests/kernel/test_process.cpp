#include <catch2/catch.hpp>


#include "kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;
using namespace hvsim::uapi;

TEST_CASE("process: deterministic fd numbers and wrong-fd answers", "[process]") {
    Env e;
    REQUIRE(e.proc->dev_kvm_fd() == 3);
    REQUIRE(e.vmfd == 4);
    REQUIRE(e.gmem(4096) == 5);
    REQUIRE(e.gmem(4096) == 6);
    REQUIRE(e.proc->memfd_create() == 7);
    REQUIRE(e.proc->invalid_fd() == 8);
    REQUIRE(e.proc->close(5, e.ctx) == 0);
    REQUIRE(e.proc->close(5, e.ctx) == -EBADF);
    REQUIRE(e.proc->invalid_fd() == 5);
    REQUIRE(e.gmem(4096) == 5);                          // lowest free number
    // VM ioctls on other files.
    REQUIRE(e.proc->ioctl_set_user_memory_region2(e.proc->dev_kvm_fd(), {}, e.ctx) == -EINVAL);
    REQUIRE(e.proc->ioctl_set_user_memory_region2(6, {}, e.ctx) == -ENOTTY);
    REQUIRE(e.proc->ioctl_set_user_memory_region2(7, {}, e.ctx) == -ENOTTY);
    REQUIRE(e.proc->ioctl_set_user_memory_region2(8, {}, e.ctx) == -EBADF);
    REQUIRE(e.proc->ioctl_set_user_memory_region2(-1, {}, e.ctx) == -EBADF);
    REQUIRE(e.proc->ioctl_check_extension(6, uapi::KVM_CAP_GUEST_MEMFD, e.ctx) == -ENOTTY);
    REQUIRE(e.proc->fallocate(7, uapi::falloc::KEEP_SIZE, 0, 4096, e.ctx) == 0);   // memfd: fine
}

TEST_CASE("process: anonymous memory is allocated on first write and reads zero before", "[process]") {
    Env e;
    const Hva a(0x7f0000001000ull);
    HostAccessResult r = e.proc->host_read(a, 64, e.ctx);
    REQUIRE(r.err == 0);
    REQUIRE(r.bytes == std::vector<uint8_t>(64, 0));
    REQUIRE(e.proc->nr_anon_pages() == 0);               // the zero page, no allocation
    REQUIRE(e.proc->host_write(a + 4000, 200, 0x42, e.ctx).err == 0);   // crosses a page
    REQUIRE(e.proc->nr_anon_pages() == 2);
    r = e.proc->host_read(a + 3999, 202, e.ctx);
    REQUIRE(r.bytes.front() == 0);
    REQUIRE(r.bytes[1] == 0x42);
    REQUIRE(r.bytes[200] == 0x42);
    REQUIRE(r.bytes.back() == 0);
    const GupResult g = e.proc->get_user_pages(a + 5000, true, e.ctx);
    REQUIRE(g.err == 0);
    REQUIRE(e.proc->anon_page(a + 4096) == g.pfn);
    REQUIRE(e.mem.page_if_present(g.pfn)[104] == 0);
    REQUIRE(e.mem.page_if_present(g.pfn)[0] == 0x42);
    // Non-user addresses fault (SIGSEGV, not SIGBUS).
    r = e.proc->host_write(Hva(kTaskSizeMax), 1, 1, e.ctx);
    REQUIRE(r.err == -EFAULT);
    REQUIRE_FALSE(r.sigbus);
    REQUIRE(e.proc->get_user_pages(Hva(1ull << 60), false, e.ctx).err == -EFAULT);
}

TEST_CASE("process: MAP_FIXED of a guest_memfd over guest RAM, QEMU style", "[process]") {
    Env e;
    const int g = e.gmem(16 * 4096, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    const Hva ram(0x7f0000000000ull);
    REQUIRE(e.proc->host_write(ram, 4096, 0x77, e.ctx).err == 0);
    REQUIRE(e.proc->nr_anon_pages() == 1);
    auto m = e.proc->mmap(g, 4 * 4096, 8 * 4096, true, e.ctx, ram);
    REQUIRE(m.err == 0);
    REQUIRE(m.addr == ram);
    REQUIRE(e.proc->nr_anon_pages() == 0);               // replaced
    REQUIRE(e.proc->host_write(ram + 4096, 4096, 0x12, e.ctx).err == 0);
    REQUIRE(e.file(g).filemap_lookup(5).has_value());    // file page 4 + 1
    const GupResult gp = e.proc->get_user_pages(ram + 4096, false, e.ctx);
    REQUIRE(gp.pfn == *e.file(g).filemap_lookup(5));
    // Partial munmap keeps the rest of the mapping and its file offset.
    REQUIRE(e.proc->munmap(ram, 4096, e.ctx) == 0);
    REQUIRE(e.proc->nr_mappings() == 1);
    REQUIRE(e.proc->host_read(ram + 4096, 1, e.ctx).bytes[0] == 0x12);
    REQUIRE(e.proc->host_read(ram, 1, e.ctx).bytes[0] == 0);   // anonymous again
    REQUIRE(e.proc->mmap(g, 1, 4096, true, e.ctx).err == -EINVAL);
    REQUIRE(e.proc->mmap(g, 0, 0, true, e.ctx).err == -EINVAL);
    REQUIRE(e.proc->mmap(99, 0, 4096, true, e.ctx).err == -EBADF);
    const auto a1 = e.proc->mmap(g, 0, 4096, true, e.ctx);
    const auto a2 = e.proc->mmap(g, 0, 4096, true, e.ctx);
    REQUIRE(a1.addr == Hva(VmmProcess::kMmapBase));
    REQUIRE(a2.addr == Hva(VmmProcess::kMmapBase + 4096));
}

TEST_CASE("process: exit gives every page back", "[process]") {
    Env e(VmType::sev);
    const int g = e.gmem(16 * 4096, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    REQUIRE(e.proc->host_write_gmem(g, 0, 16 * 4096, 1, e.ctx).err == 0);
    REQUIRE(e.proc->host_write(Hva(0x7f0000000000ull), 8 * 4096, 1, e.ctx).err == 0);
    REQUIRE(e.proc->ioctl_memory_encrypt_reg_region(e.vmfd, {0x7f0000000000ull, 4 * 4096}, e.ctx) == 0);
    REQUIRE(e.proc->pin_gmem(g, 0, 4096, e.ctx) == 1);
    REQUIRE(e.alloc.used_pages() == 24);
    e.kvm.reset();
    e.proc->exit_mm(e.ctx);
    REQUIRE(e.alloc.used_pages() == 0);
    REQUIRE(e.mem.pages_resident() == 0);
}

TEST_CASE("process: a host read streams: 1 GiB read keeps a bounded prefix and a summary", "[process][scale]") {
    Env e;
    const Hva a(0x100000000ull);
    REQUIRE(e.proc->host_write(a + (512ull << 20), 4096, 0x7, e.ctx).err == 0);
    const HostAccessResult r = e.proc->host_read(a, 1ull << 30, e.ctx);
    REQUIRE(r.err == 0);
    CHECK(r.bytes_read == (1ull << 30));
    CHECK(r.bytes.size() == HostAccessResult::kHostReadKeep);
    CHECK(r.first_byte == std::optional<uint8_t>(0));
    CHECK(r.bytes_mixed);
    const HostAccessResult z = e.proc->host_read(a, 256ull << 20, e.ctx);
    CHECK(z.first_byte == std::optional<uint8_t>(0));
    CHECK_FALSE(z.bytes_mixed);
}

TEST_CASE("process: mmap refuses a length beyond the address space and an offset that wraps", "[process]") {
    Env e;
    const int g = e.gmem(2u << 20, uapi::GUEST_MEMFD_FLAG_MMAP);
    REQUIRE(g >= 0);
    CHECK(e.proc->mmap(g, 0xffffffffffff0000ull, 0x20000, true, e.ctx).err == -EOVERFLOW);
    CHECK(e.proc->mmap(g, 0, 0xfffffffffffff000ull, true, e.ctx).err == -ENOMEM);
    CHECK(e.proc->mmap(g, 0, 4096, true, e.ctx).err == 0);
}

TEST_CASE("process: opening n files costs n steps (alloc_fd's next_fd hint)", "[process][scale]") {
    Env e;
    // 30,000 guest_memfds: a scan from fd 3 for every open took seconds; linear is milliseconds.
    // No timing assertion (the machines are shared): a quadratic scan shows as this test's time.
    int last = -1;
    for (int i = 0; i < 30000; ++i) last = e.gmem(4096);
    CHECK(last == 5 + 29999);
    // Numbers are still the lowest free ones after a close.
    REQUIRE(e.proc->close(100, e.ctx) == 0);
    REQUIRE(e.proc->close(50, e.ctx) == 0);
    CHECK(e.proc->invalid_fd() == 50);
    CHECK(e.gmem(4096) == 50);
    CHECK(e.gmem(4096) == 100);
    CHECK(e.gmem(4096) == last + 1);
}

// An access through the pointer mmap() returned goes through that mapping only: past the
// file's end SIGBUS (kvm_gmem_fault_user_mapping()), where nothing is mapped any more SIGSEGV
// (no VMA), never the anonymous memory that unmapped addresses stand for elsewhere.
TEST_CASE("process: accesses through an explicit mapping: SIGBUS past EOF, SIGSEGV after munmap", "[process]") {
    Env e;
    const int g = e.gmem(2 * 4096, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    REQUIRE(g >= 0);
    const auto m = e.proc->mmap(g, 0, 4 * 4096, true, e.ctx);   // twice the file
    REQUIRE(m.err == 0);
    REQUIRE(e.proc->mapped(m.addr, 4 * 4096));
    REQUIRE_FALSE(e.proc->mapped(m.addr, 5 * 4096));
    // memset over the whole mapping: the file's two pages are written, the third faults.
    HostAccessResult r = e.proc->host_write_mapped(m.addr, 4 * 4096, 0xaa, e.ctx);
    CHECK(r.sigbus);
    CHECK_FALSE(r.sigsegv);
    CHECK(r.fault_hva == m.addr + 2 * 4096);
    r = e.proc->host_read_mapped(m.addr, 2 * 4096, e.ctx);
    CHECK(r.err == 0);
    CHECK(r.first_byte == 0xaa);
    CHECK_FALSE(r.bytes_mixed);
    // munmap the second page: the first still reads, the second is SIGSEGV, and a read over
    // both stops there.
    REQUIRE(e.proc->munmap(m.addr + 4096, 4096, e.ctx) == 0);
    CHECK(e.proc->host_read_mapped(m.addr, 4096, e.ctx).err == 0);
    r = e.proc->host_read_mapped(m.addr + 4096, 1, e.ctx);
    CHECK(r.sigsegv);
    CHECK_FALSE(r.sigbus);
    CHECK(r.err == -EFAULT);
    r = e.proc->host_read_mapped(m.addr, 2 * 4096, e.ctx);
    CHECK(r.sigsegv);
    CHECK(r.bytes_read == 4096);
    // The old, implicit path treats the same address as anonymous memory: no fault.
    CHECK(e.proc->host_read(m.addr + 4096, 1, e.ctx).err == 0);
    // The file keeps its data; a new mapping sees it.
    const auto m2 = e.proc->mmap(g, 4096, 4096, true, e.ctx);
    REQUIRE(m2.err == 0);
    r = e.proc->host_read_mapped(m2.addr, 4096, e.ctx);
    CHECK(r.first_byte == 0xaa);
    // munmap arguments (__vm_munmap()): unaligned, empty, beyond TASK_SIZE.
    CHECK(e.proc->munmap(m.addr + 1, 4096, e.ctx) == -EINVAL);
    CHECK(e.proc->munmap(m.addr, 0, e.ctx) == -EINVAL);
    CHECK(e.proc->munmap(Hva(kTaskSizeMax), 4096, e.ctx) == -EINVAL);
    CHECK(e.proc->munmap(m.addr, 4096, e.ctx) == 0);   // unmapping nothing succeeds
}

TEST_CASE("process: munmap frees anonymous pages by runs as page-by-page unmapping does", "[process]") {
    const uint64_t base = 0x7f0000000000ull, span = 8 * MiB;
    for (const bool thp : {false, true}) {
        INFO("thp " << thp);
        Env bulk(VmType::sev), paged(VmType::sev);
        for (Env* e : {&bulk, &paged}) {
            VmmProcess& p = *e->proc;
            p.set_thp(thp);
            // Pfns out of hva order (three stretches written in the order 0, 2, 1), a hole,
            // pinned pages (they outlive the unmap as orphans), and with THP two huge pages.
            REQUIRE(p.host_write(Hva(base), 100 * 4096, 1, e->ctx).err == 0);
            REQUIRE(p.host_write(Hva(base + 200 * 4096), 100 * 4096, 1, e->ctx).err == 0);
            REQUIRE(p.host_write(Hva(base + 100 * 4096), 90 * 4096, 1, e->ctx).err == 0);
            REQUIRE(p.pin_user_pages(Hva(base + 50 * 4096), 10 * 4096, e->ctx) == 10);
            REQUIRE(p.host_write(Hva(base + 4 * MiB), 4 * MiB, 2, e->ctx).err == 0);
        }
        REQUIRE(bulk.alloc.free_lists() == paged.alloc.free_lists());
        const Cycles b0 = bulk.ctx.total, p0 = paged.ctx.total;
        REQUIRE(bulk.proc->munmap(Hva(base), span, bulk.ctx) == 0);
        for (uint64_t off = span; off > 0; off -= 4096) REQUIRE(paged.proc->munmap(Hva(base + off - 4096), 4096, paged.ctx) == 0);
        CHECK(bulk.alloc.free_lists() == paged.alloc.free_lists());
        CHECK(bulk.alloc.used_pages() == paged.alloc.used_pages());
        CHECK(bulk.proc->nr_anon_pages() == 0);
        CHECK(bulk.proc->stats().anon_pages_freed == paged.proc->stats().anon_pages_freed);
        // The same page_free cycles (munmap's own charge is per call, hence counted apart).
        CHECK(bulk.ctx.total - b0 - bulk.costs.mmap == paged.ctx.total - p0 - (span / 4096) * paged.costs.mmap);
        // The orphans go when their pins do.
        CHECK(bulk.proc->unpin_user_pages(Hva(base), span, bulk.ctx) == 10);
        CHECK(paged.proc->unpin_user_pages(Hva(base), span, paged.ctx) == 10);
        CHECK(bulk.alloc.free_lists() == paged.alloc.free_lists());
    }
}

TEST_CASE("process: exit frees by runs and leaves the free lists page-by-page unmapping leaves", "[process]") {
    Env bulk(VmType::sev), paged(VmType::sev);
    const uint64_t base = 0x7f0000000000ull;
    for (Env* e : {&bulk, &paged}) {
        // Something that outlives the process (a page held by the test) keeps the free lists
        // from collapsing back to whole 1 GiB blocks, so a difference would show.
        REQUIRE(e->proc->host_write(Hva(base + 300 * 4096), 50 * 4096, 1, e->ctx).err == 0);
        REQUIRE(e->proc->host_write(Hva(base), 300 * 4096, 1, e->ctx).err == 0);
        (void)e->alloc.alloc(0);
        REQUIRE(e->proc->host_write(Hva(base + 400 * 4096), 7 * 4096, 1, e->ctx).err == 0);
        e->kvm.reset();
    }
    for (uint64_t pg = 0; pg < 407; ++pg) REQUIRE(paged.proc->munmap(Hva(base + pg * 4096), 4096, paged.ctx) == 0);
    bulk.proc->exit_mm(bulk.ctx);
    paged.proc->exit_mm(paged.ctx);
    CHECK(bulk.alloc.used_pages() == 1);
    CHECK(bulk.alloc.free_lists() == paged.alloc.free_lists());
    CHECK(bulk.proc->stats().anon_pages_freed == 357);
}

TEST_CASE("process: zero-page mappings are kept as runs: read faults, copy-on-write, munmap", "[process]") {
    Env e;
    const uint64_t base = 0x7f0000000000ull;
    VmmProcess& p = *e.proc;
    std::optional<Pfn> zero;
    for (uint64_t i = 0; i < 1000; ++i) {
        const GupResult g = p.get_user_pages(Hva(base + i * 4096), false, e.ctx);
        REQUIRE(g.err == 0);
        REQUIRE_FALSE(g.writable);
        if (!zero) zero = g.pfn;
        REQUIRE(g.pfn == *zero);
    }
    CHECK(p.nr_zero_mapped_pages() == 1000);
    CHECK(p.nr_zero_page_runs() == 1);
    CHECK(p.stats().host_faults == 1000);
    REQUIRE(p.get_user_pages(Hva(base + 7 * 4096), false, e.ctx).err == 0);   // mapped already: no fault
    CHECK(p.stats().host_faults == 1000);
    // A write replaces one zero-page PTE (copy-on-write): the run splits around it.
    REQUIRE(p.host_write(Hva(base + 500 * 4096), 8, 1, e.ctx).err == 0);
    CHECK(p.nr_zero_mapped_pages() == 999);
    CHECK(p.nr_zero_page_runs() == 2);
    CHECK(p.nr_anon_pages() == 1);
    // munmap takes the zero-page PTEs of its range, and only those.
    REQUIRE(p.munmap(Hva(base + 100 * 4096), 100 * 4096, e.ctx) == 0);
    CHECK(p.nr_zero_mapped_pages() == 899);
    CHECK(p.nr_zero_page_runs() == 3);
    // A bulk pin faults in fresh pages up to the first zero-page PTE, then page by page.
    REQUIRE(p.pin_user_pages(Hva(base - 16 * 4096), 20 * 4096, e.ctx) == 20);
    CHECK(p.nr_zero_mapped_pages() == 895);
    REQUIRE(p.munmap(Hva(base - 16 * 4096), 2000 * 4096, e.ctx) == 0);
    CHECK(p.nr_zero_mapped_pages() == 0);
    CHECK(p.nr_zero_page_runs() == 0);
}

TEST_CASE("process: guest_memfd host PTEs are kept as runs: faults, munmap split, punch hole", "[process]") {
    Env e;
    const int g = e.gmem(64 * 4096, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    VmmProcess& p = *e.proc;
    auto m = p.mmap(g, 0, 64 * 4096, true, e.ctx);
    REQUIRE(m.err == 0);
    REQUIRE(p.host_write(m.addr, 64 * 4096, 3, e.ctx).err == 0);
    CHECK(p.nr_mapping_ptes() == 64);
    const uint64_t faults = p.stats().host_faults;
    REQUIRE(p.host_read(m.addr, 64 * 4096, e.ctx).bytes_read == 64 * 4096);   // mapped: no new fault
    CHECK(p.stats().host_faults == faults);
    // munmap of the middle: two mappings, each keeping its PTEs, the middle's cost charged per page.
    const Cycles c0 = e.ctx.total;
    REQUIRE(p.munmap(m.addr + 16 * 4096, 16 * 4096, e.ctx) == 0);
    CHECK(e.ctx.total - c0 == e.costs.mmap + 16 * e.costs.host_unmap_page);
    CHECK(p.nr_mappings() == 2);
    CHECK(p.nr_mapping_ptes() == 48);
    REQUIRE(p.host_read(m.addr + 40 * 4096, 4096, e.ctx).first_byte == 3);
    CHECK(p.stats().host_faults == faults);   // the right part kept its PTEs at their file pages
    // A punch hole drops the PTEs of its pages in every mapping.
    REQUIRE(p.fallocate(g, uapi::falloc::PUNCH_HOLE | uapi::falloc::KEEP_SIZE, 8 * 4096, 32 * 4096, e.ctx) == 0);
    CHECK(p.nr_mapping_ptes() == 48 - 8 - 8);
    REQUIRE(p.munmap(m.addr, 64 * 4096, e.ctx) == 0);
    CHECK(p.nr_mapping_ptes() == 0);
}
