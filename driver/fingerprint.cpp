#include "driver/fingerprint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

namespace pinmark {

void Fnv1a::add(const void* data, size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    h_ ^= bytes[i];
    h_ *= 1099511628211ull;
  }
}

std::string Fnv1a::hex(int digits) const {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", h_);
  return std::string(text, std::clamp(digits, 1, 16));
}

namespace {

constexpr int kFingerprintDigits = 12;

// The block's JSON in a canonical form; the literal itself when it is not JSON.
std::string canonical_block(const CodeBlock& block, bool drop_target_list) {
  try {
    nlohmann::json value = nlohmann::json::parse(block.literal);
    if (drop_target_list && value.is_object()) value.erase("targets");
    return value.dump();
  } catch (const std::exception&) {
    return block.literal;
  }
}

// Every regular file below `folder` but reference.json, in path order, name and bytes.
void add_checkpoint(Fnv1a& hash, const std::string& folder) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  std::error_code error;
  for (fs::recursive_directory_iterator it(folder, error), end; !error && it != end;
       it.increment(error)) {
    if (it->is_regular_file() && it->path().filename() != "reference.json")
      files.push_back(it->path());
  }
  if (error) throw std::runtime_error("cannot list checkpoint folder " + folder + ": " + error.message());
  std::sort(files.begin(), files.end());
  std::vector<char> buffer(1 << 20);
  for (const fs::path& file : files) {
    hash.add(file.lexically_relative(folder).generic_string());
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + file.string() + " to fingerprint it");
    while (in.read(buffer.data(), buffer.size()) || in.gcount() > 0)
      hash.add(buffer.data(), static_cast<size_t>(in.gcount()));
  }
}

}  // namespace

std::string code_fingerprint() { return PINMARK_CODE_FINGERPRINT; }

std::string row_fingerprint(const Case& c, const std::string& checkpoint) {
  Fnv1a inputs;
  for (const Section& s : c.sections) {
    if (s.name != "Config" && s.name != "Inputs" && s.name != "Kernel" && s.name != "Targets")
      continue;
    inputs.add(s.name + "\n");
    for (const CodeBlock& block : s.blocks) inputs.add(canonical_block(block, s.name == "Targets") + "\n");
  }
  if (!checkpoint.empty()) add_checkpoint(inputs, checkpoint);
  return "inputs " + inputs.hex(kFingerprintDigits) + ", code " +
         code_fingerprint().substr(0, kFingerprintDigits);
}

}  // namespace pinmark
