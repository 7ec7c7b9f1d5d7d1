// Helpers of the command line: safe output names, output checks made before a run, the
// progress line.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "sim/engine.hpp"
#include "sim/paths.hpp"

using namespace hvsim;
namespace fs = std::filesystem;

TEST_CASE("a scenario name becomes one safe path component", "[cli][paths]") {
    CHECK(safe_file_name("quickstart") == "quickstart");
    CHECK(safe_file_name("snp-convert_2m.v1") == "snp-convert_2m.v1");
    CHECK(safe_file_name("../../x") == "_._.._x");
    CHECK(safe_file_name("..") == "_.");
    CHECK(safe_file_name(".") == "_");
    CHECK(safe_file_name("/etc/passwd") == "_etc_passwd");
    CHECK(safe_file_name("a\\b") == "a_b");
    CHECK(safe_file_name(std::string("a\0b", 3)) == "a_b");
    CHECK(safe_file_name("two words\n") == "two_words_");
    CHECK(safe_file_name("") == "scenario");
    CHECK(safe_file_name(std::string(500, 'a')).size() == 120);
    // Whatever the name, joining it to a folder stays inside that folder.
    for (const char* n : {"../..", "/", "a/../../b", "~root", "..\\..", "\t"}) {
        const fs::path p = (fs::path("/base") / safe_file_name(n)).lexically_normal();
        CHECK(p.parent_path() == fs::path("/base"));
    }
}

TEST_CASE("output folders and files are checked before a run", "[cli][paths]") {
    const fs::path tmp = fs::temp_directory_path() / ("hvsim-paths-" + std::to_string(getpid()));
    fs::remove_all(tmp);
    CHECK(prepare_output_dir(tmp / "a" / "b") == "");
    CHECK(fs::is_directory(tmp / "a" / "b"));
    CHECK(fs::is_empty(tmp / "a" / "b"));   // the write probe is removed
    // A bare file name means the current directory.
    CHECK(prepare_output_file("report.xml") == "");
    CHECK(prepare_output_file(tmp / "c" / "report.xml") == "");
    // A file where a folder should be.
    std::ofstream(tmp / "file") << "x";
    CHECK_THAT(prepare_output_dir(tmp / "file" / "sub"), Catch::Contains("cannot create the output directory"));
    CHECK_THAT(prepare_output_file(tmp / "a"), Catch::Contains("is a directory"));
    if (geteuid() != 0) {   // root writes anywhere
        fs::create_directories(tmp / "ro");
        chmod((tmp / "ro").c_str(), 0500);
        CHECK_THAT(prepare_output_dir(tmp / "ro"), Catch::Contains("cannot write there"));
        chmod((tmp / "ro").c_str(), 0700);
    }
    CHECK_THAT(prepare_output_dir("/proc/hvsim-out"), Catch::Contains("/proc/hvsim-out: cannot"));
    fs::remove_all(tmp);
}

TEST_CASE("the progress line shows a total and an estimate of the time left", "[cli][progress]") {
    CHECK(format_progress_line("q", 2, 4, 250, 1000, 3.0) == "q: step 2/4, 250/1000 guest accesses (25%), 3.0 s, ETA 9 s");
    // Nothing done yet: no estimate.
    CHECK(format_progress_line("q", 1, 4, 0, 1000, 2.0) == "q: step 1/4, 0/1000 guest accesses (0%), 2.0 s");
    // No access steps at all.
    CHECK(format_progress_line("q", 1, 1, 0, 0, 2.0) == "q: step 1/1, 0/0 guest accesses, 2.0 s");
    // The published count runs ahead in blocks: never past the total.
    CHECK(format_progress_line("q", 4, 4, 5000, 1000, 4.0) == "q: step 4/4, 1000/1000 guest accesses (100%), 4.0 s, ETA 0 s");
}

// The step table of the summary: its op and result columns widen to the longest entry, so
// the cycles column stays aligned (an SNP step's GHCB_ERR_INVALID_INPUT is 22 characters,
// a host step's op can pass the 26 of the default width).
TEST_CASE("the summary's step table widens its op and result columns to the longest entry", "[cli][summary]") {
    nlohmann::json r = {{"scenario", "t"},  {"platform", "p"}, {"seed", 1},          {"params", nlohmann::json::object()},
                        {"metrics", nlohmann::json::object()}, {"fault_paths", nlohmann::json::array()},
                        {"conversions", {{"failed", 0}}}};
    const std::string long_op(40, 'o'), long_res = "GHCB_ERR_INVALID_INPUT";
    r["steps"] = {{{"index", 0}, {"op", "access"}, {"result", "ok"}, {"cycles", 1234567}, {"name", "first"}},
                  {{"index", 1}, {"op", long_op}, {"result", long_res}, {"cycles", 7}, {"name", "second"}}};
    const std::string s = format_summary(r);
    std::vector<std::string> rows;
    for (const char* name : {"first", "second"}) {
        const size_t end = s.find(std::string("  ") + name + "\n");
        REQUIRE(end != std::string::npos);
        rows.push_back(s.substr(s.rfind('\n', end) + 1, end - s.rfind('\n', end) - 1));
    }
    // Both rows end their cycles column at the same offset, past the widened columns.
    REQUIRE(rows[0].size() == rows[1].size());
    CHECK(rows[1].find(long_op) != std::string::npos);
    CHECK(rows[1].find(long_res) != std::string::npos);
    CHECK(rows[0].size() > 2 + 5 + 1 + long_op.size() + 1 + long_res.size() + 1);
    CHECK(rows[0].substr(rows[0].size() - 9) == "1,234,567");
    CHECK(rows[1].back() == '7');
}
