// What a Numerics row measured, as a short fingerprint, so that a row carried over from another
// machine can be checked against the case as it stands now: a row whose fingerprint no longer
// matches describes inputs or code that no longer exist, and is marked stale.
#pragma once

#include <string>

#include "driver/case_file.h"

namespace pinmark {

// "inputs 1a2b3c4d5e6f, code 0a1b2c3d4e5f".
//   inputs: the case's Config, Inputs and Kernel blocks (as parsed JSON, so layout and key
//           order do not count; a block that does not parse counts byte for byte), its Targets
//           block without the list of targets (tolerance overrides and bit pinning change a
//           row; adding a target does not), and the bytes of every file of the checkpoint
//           folder `checkpoint` except reference.json (empty: synthetic weights). The Config
//           block and a checkpoint's config.json count without the keys pinmark reads for
//           nothing (unread_config_keys): adding or changing one changes no number.
//   code:   code_fingerprint().
// Throws std::runtime_error naming the file when a checkpoint file cannot be read.
std::string row_fingerprint(const Case& c, const std::string& checkpoint);

// A digest of the sources that compute a target's numbers (runtime/, and the driver's
// case_runner.cpp and numerics), taken when pinmark was configured (driver/CMakeLists.txt).
std::string code_fingerprint();

// 64-bit FNV-1a, for fingerprints and bit digests.
class Fnv1a {
 public:
  void add(const void* data, size_t size);
  void add(const std::string& text) { add(text.data(), text.size()); }
  // The first `digits` hex digits of the digest.
  std::string hex(int digits = 16) const;

 private:
  unsigned long long h_ = 14695981039346656037ull;
};

}  // namespace pinmark
