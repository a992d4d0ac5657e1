// Finding case files: every *.md under the given files and folders, in a stable order.
#pragma once

#include <string>
#include <vector>

namespace pinmark {

// Sorted, without duplicates. Throws std::runtime_error for a path that does not exist.
std::vector<std::string> find_case_files(const std::vector<std::string>& paths);

// `path` relative to `root` when it lies inside it, otherwise `path` unchanged.
std::string relative_to(const std::string& path, const std::string& root);

}  // namespace pinmark
