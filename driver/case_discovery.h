// Finding case files: every *.md under the given files and folders, in a stable order.
#pragma once

#include <string>
#include <vector>

namespace pinmark {

// Sorted, without duplicates. Throws std::runtime_error for a path that does not exist.
std::vector<std::string> find_case_files(const std::vector<std::string>& paths);

// `path` relative to `root` when it lies inside it, otherwise `path` unchanged.
std::string relative_to(const std::string& path, const std::string& root);

// A case's one name: FILE::slug, FILE the case file's path as given on the command line
// (cases/models/llama.md::gqa_four_query_heads). `pinmark list` prints it, `pinmark run`
// reports under it, `--filter` takes it, and ctest names the case's test with it.
std::string case_name(const std::string& path, const std::string& slug);

// Whether a --filter GLOB ('*' any text, '?' one character) selects a case: GLOB matched
// against the slug alone or against the case's name. Spaces around "::" in GLOB are ignored,
// and FILE also matches as the path relative to the current folder and as an absolute path, so
// a name pasted from ctest (cases/...) selects the case whichever way the folder was given.
bool filter_selects(const std::string& glob, const std::string& path, const std::string& slug);

// The message for a filter that selects no case of `files` case files: what was tried and how
// names are spelled, with `example` (a case's name, or empty) as a model.
std::string no_case_matches(const std::string& glob, size_t files, const std::string& example);

}  // namespace pinmark
