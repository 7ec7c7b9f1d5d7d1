// Where hvsim writes: output folders named after a scenario, and the checks made before a
// run so an unwritable destination is reported up front (exit 2), not after the simulation.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace hvsim {

// A scenario name as one safe path component: letters, digits and "._+-=@,"; every other
// byte (a '/', '\\', a control character, NUL, a space) becomes '_'; a leading '.' becomes
// '_' (so "." and ".." and hidden names cannot occur); at most 120 bytes; never empty.
// "../../x" -> "_._.._x", "/etc/passwd" -> "_etc_passwd".
std::string safe_file_name(std::string_view name);

// Makes sure `dir` exists (creating it) and a file can be created in it. Returns "" or a
// one-line reason ("DIR: cannot create directories: Permission denied").
std::string prepare_output_dir(const std::filesystem::path& dir);

// The same for a file to be written later: its folder ("" for a bare name means the current
// directory) must exist or be creatable, and be writable.
std::string prepare_output_file(const std::filesystem::path& file);

// Writes atomically (a temporary beside it, then rename): a reader never sees a half-written
// file. Creates the folder. Throws std::runtime_error naming the file.
void write_file(const std::filesystem::path& path, const std::string& text);

}  // namespace hvsim
