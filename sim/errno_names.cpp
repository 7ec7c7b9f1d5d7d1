#include "sim/errno_names.hpp"

#include <cerrno>
#include <string_view>
#include <utility>

namespace hvsim {

namespace {
// EHWPOISON is Linux-specific; keep the table to what KVM and the file calls return.
constexpr std::pair<int, std::string_view> kNames[] = {
    {EPERM, "EPERM"},   {ENOENT, "ENOENT"},   {EINTR, "EINTR"},       {EIO, "EIO"},
    {ENXIO, "ENXIO"},   {E2BIG, "E2BIG"},     {EBADF, "EBADF"},       {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"}, {EACCES, "EACCES"},   {EFAULT, "EFAULT"},     {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"}, {ENODEV, "ENODEV"},   {EINVAL, "EINVAL"},     {ENOTTY, "ENOTTY"},
    {ENOSPC, "ENOSPC"}, {ESPIPE, "ESPIPE"},   {ENOSYS, "ENOSYS"},     {EOPNOTSUPP, "EOPNOTSUPP"},
    {EHWPOISON, "EHWPOISON"}, {EFBIG, "EFBIG"},   {EISDIR, "EISDIR"},   {ETXTBSY, "ETXTBSY"}, {EOVERFLOW, "EOVERFLOW"},
};
}  // namespace

std::string errno_name(int err) {
    if (err == 0) return "ok";
    for (auto& [n, name] : kNames)
        if (n == err) return std::string(name);
    return "errno " + std::to_string(err);
}

std::optional<int> errno_from_name(const std::string& name) {
    if (name == "ok") return 0;
    for (auto& [n, nm] : kNames)
        if (nm == name) return n;
    return std::nullopt;
}

}  // namespace hvsim
