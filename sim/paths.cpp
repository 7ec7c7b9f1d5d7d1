#include "sim/paths.hpp"

#include <fstream>
#include <stdexcept>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

namespace hvsim {

std::string safe_file_name(std::string_view name) {
    std::string r;
    for (char c : name.substr(0, 120)) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        std::string_view("._+-=@,").find(c) != std::string_view::npos;
        r += ok ? c : '_';
    }
    if (r.empty()) return "scenario";
    if (r[0] == '.') r[0] = '_';
    return r;
}

std::string prepare_output_dir(const std::filesystem::path& dir) {
    const std::filesystem::path d = dir.empty() ? std::filesystem::path(".") : dir;
    std::error_code ec;
    std::filesystem::create_directories(d, ec);
    if (ec) return fmt::format("{}: cannot create the output directory: {}", d.string(), ec.message());
    if (!std::filesystem::is_directory(d, ec)) return fmt::format("{}: not a directory", d.string());
    // Creating a file is the only honest test (access(2) ignores read-only mounts and ACLs).
    const std::string probe = (d / fmt::format(".hvsim-write-test-{}", getpid())).string();
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return fmt::format("{}: cannot write there: {}", d.string(), std::strerror(errno));
    ::close(fd);
    ::unlink(probe.c_str());
    return "";
}

std::string prepare_output_file(const std::filesystem::path& file) {
    if (file.empty()) return "an empty output file name";
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec)) return fmt::format("{}: is a directory, expected a file name", file.string());
    if (std::string e = prepare_output_dir(file.parent_path()); !e.empty()) return file.string() + ": " + e;
    return "";
}

void write_file(const std::filesystem::path& path, const std::string& text) {
    // A bare file name ("report.xml") has no parent to create.
    if (!path.parent_path().empty()) std::filesystem::create_directories(path.parent_path());
    const std::filesystem::path tmp = path.string() + ".tmp";
    {
        std::ofstream f(tmp);
        if (!f) throw std::runtime_error(tmp.string() + ": cannot write");
        f << text;
        if (!f) throw std::runtime_error(tmp.string() + ": write failed");
    }
    std::filesystem::rename(tmp, path);
}

}  // namespace hvsim
