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
