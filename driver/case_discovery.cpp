#include "driver/case_discovery.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

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

}  // namespace pinmark
