#include "driver/fingerprint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "driver/hf_config.h"

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

// A config's keys that pinmark reads for nothing (bos_token_id, transformers_version, another
// family's keys) change no number, so they are not part of what a row measured.
void drop_unread_keys(nlohmann::json& config) {
  for (const std::string& key : unread_config_keys(config)) config.erase(key);
}

// The block's JSON in a canonical form; the literal itself when it is not JSON.
std::string canonical_block(const CodeBlock& block, const std::string& section) {
  try {
    nlohmann::json value = nlohmann::json::parse(block.literal);
    if (section == "Targets" && value.is_object()) value.erase("targets");
    if (section == "Config") drop_unread_keys(value);
    return value.dump();
  } catch (const std::exception&) {
    return block.literal;
  }
}

// A checkpoint's config.json as read (canonical, its unread keys dropped); its bytes when it
// is not JSON.
std::string canonical_checkpoint_config(const std::string& bytes) {
  try {
    nlohmann::json value = nlohmann::json::parse(bytes);
    drop_unread_keys(value);
    return value.dump();
  } catch (const std::exception&) {
    return bytes;
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
    const std::string name = file.lexically_relative(folder).generic_string();
    hash.add(name);
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + file.string() + " to fingerprint it");
    if (name == "config.json") {
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      hash.add(canonical_checkpoint_config(bytes));
      continue;
    }
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
    for (const CodeBlock& block : s.blocks) inputs.add(canonical_block(block, s.name) + "\n");
  }
  if (!checkpoint.empty()) add_checkpoint(inputs, checkpoint);
  return "inputs " + inputs.hex(kFingerprintDigits) + ", code " +
         code_fingerprint().substr(0, kFingerprintDigits);
}

}  // namespace pinmark
