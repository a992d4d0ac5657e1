// Small helpers shared by the driver tests: a fresh temporary folder per test, whole-file reads
// and writes, and line numbers of text inside a string.
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "tests/support/temp_dir.h"

namespace pinmark::test {

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// 1-based line of the first occurrence of `needle` at or after `from`; throws when absent.
inline int line_of(const std::string& text, const std::string& needle, size_t from = 0) {
  const size_t at = text.find(needle, from);
  if (at == std::string::npos) throw std::runtime_error("'" + needle + "' not found");
  int line = 1;
  for (size_t i = 0; i < at; ++i) line += text[i] == '\n';
  return line;
}

inline bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

}  // namespace pinmark::test
