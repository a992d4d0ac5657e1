#include "driver/case_discovery.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "driver/case_runner.h"

namespace pinmark {

namespace fs = std::filesystem;

std::vector<std::string> find_case_files(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    std::error_code error;
    if (fs::is_directory(path, error)) {
      for (const auto& entry : fs::recursive_directory_iterator(path)) {
        if (entry.is_regular_file() && entry.path().extension() == ".md")
          files.push_back(entry.path().lexically_normal().string());
      }
    } else if (fs::is_regular_file(path, error)) {
      files.push_back(fs::path(path).lexically_normal().string());
    } else {
      throw std::runtime_error("no such file or directory: " + path);
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

std::string relative_to(const std::string& path, const std::string& root) {
  const fs::path relative = fs::path(path).lexically_proximate(root);
  const std::string text = relative.generic_string();
  if (text.empty() || text.rfind("..", 0) == 0) return path;
  return text;
}

std::string case_name(const std::string& path, const std::string& slug) {
  return path + "::" + slug;
}

namespace {

// GLOB with the spaces around each "::" taken out.
std::string without_spaces_around_separator(const std::string& glob) {
  std::string out;
  size_t start = 0;
  for (;;) {
    const size_t sep = glob.find("::", start);
    if (sep == std::string::npos) break;
    std::string before = glob.substr(start, sep - start);
    while (!before.empty() && before.back() == ' ') before.pop_back();
    out += before + "::";
    start = sep + 2;
    while (start < glob.size() && glob[start] == ' ') ++start;
  }
  return out + glob.substr(start);
}

}  // namespace

bool filter_selects(const std::string& glob, const std::string& path, const std::string& slug) {
  const std::string pattern = without_spaces_around_separator(glob);
  if (glob_match(pattern, slug) || glob_match(pattern, case_name(path, slug))) return true;
  if (pattern.find("::") == std::string::npos) return false;
  std::error_code error;
  const fs::path absolute = fs::absolute(path, error).lexically_normal();
  if (error) return false;
  const fs::path current = fs::current_path(error);
  if (!error && glob_match(pattern, case_name(relative_to(absolute.string(), current.string()), slug)))
    return true;
  return glob_match(pattern, case_name(absolute.string(), slug));
}

std::string no_case_matches(const std::string& glob, size_t files, const std::string& example) {
  std::string message = "no case matches '" + glob + "' in " + std::to_string(files) + " file" +
                        (files == 1 ? "" : "s") +
                        ": a case is named FILE::slug, as `pinmark list` prints it and ctest "
                        "names its test";
  if (!example.empty()) message += " (" + example + ")";
  message += ", or by its slug alone; '*' matches any text and '?' one character";
  return message;
}

}  // namespace pinmark
