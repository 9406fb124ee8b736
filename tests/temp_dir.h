// A fresh directory under the system temp dir for one test, removed with its contents at the
// end of the scope.
#pragma once

#include <cstddef>
#include <filesystem>
#include <iterator>
#include <random>
#include <string>

namespace mw::test {

struct TempDir {
    std::filesystem::path path;

    TempDir() {
        std::random_device random;
        path = std::filesystem::temp_directory_path() /
               ("mw-test-" + std::to_string(random()) + std::to_string(random()));
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string file(const std::string& name) const { return (path / name).string(); }
    // Entries in the directory (a leftover temporary file shows up here).
    std::size_t entries() const {
        return std::size_t(std::distance(std::filesystem::directory_iterator(path),
                                         std::filesystem::directory_iterator()));
    }
};

} // namespace mw::test
