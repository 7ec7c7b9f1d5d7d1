#include "sim/host_tuning.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <unistd.h>
#if defined(__GLIBC__)
#include <gnu/libc-version.h>
#endif

namespace hvsim {

namespace {
bool glibc_has_hugetlb_tunable() {
#if defined(__GLIBC__)
    int major = 0, minor = 0;
    return std::sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor) == 2 &&
           (major > 2 || (major == 2 && minor >= 35));
#else
    return false;
#endif
}
}  // namespace

bool host_heap_thp() {
#if defined(__linux__) && !defined(HVSIM_ASAN)
    const char* t = std::getenv("GLIBC_TUNABLES");
    return t && std::strstr(t, "glibc.malloc.hugetlb=1") && glibc_has_hugetlb_tunable();
#else
    return false;
#endif
}

void reexec_with_host_thp(char* argv[]) {
    const char* o = std::getenv("HVSIM_HOST_THP");
    if (o && std::strcmp(o, "0") != 0 && std::strcmp(o, "1") != 0) {
        const char* name = argv[0] ? std::strrchr(argv[0], '/') : nullptr;
        std::fprintf(stderr, "%s: HVSIM_HOST_THP: expected 0 or 1, got \"%s\"\n",
                     name ? name + 1 : (argv[0] ? argv[0] : "hvsim"), o);
        std::exit(2);
    }
#if defined(__linux__) && defined(__GLIBC__) && !defined(HVSIM_ASAN)
    if (o && std::strcmp(o, "0") == 0) return;
    // A marker of our own, besides the tunable: a secure-mode process has GLIBC_TUNABLES
    // removed from its environment, and must not re-execute forever.
    if (std::getenv("HVSIM_HOST_THP_SET")) return;
    const char* t = std::getenv("GLIBC_TUNABLES");
    const std::string tunables = t ? t : "";
    if (tunables.find("glibc.malloc.hugetlb") != std::string::npos) return;
    if (const char* p = std::getenv("LD_PRELOAD"); p && std::strstr(p, "vgpreload")) return;
    if (!glibc_has_hugetlb_tunable()) return;
    const std::string v = tunables.empty() ? "glibc.malloc.hugetlb=1" : tunables + ":glibc.malloc.hugetlb=1";
    if (setenv("GLIBC_TUNABLES", v.c_str(), 1) != 0 || setenv("HVSIM_HOST_THP_SET", "1", 1) != 0) return;
    execv("/proc/self/exe", argv);
    // exec failed: go on as we are (the tunable then only reaches child processes).
#else
    (void)argv;
#endif
}

}  // namespace hvsim
