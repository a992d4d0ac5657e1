// A stand-in target that proves the fuzzing build and ci/fuzz.sh end to end until the real
// targets land: any title slugifies to [a-z0-9] words joined by single '_', and slugifying a
// slug gives it back (a case's test name is stable under renaming to its own slug).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "driver/case_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string title(reinterpret_cast<const char*>(data), size);
  const std::string slug = pinmark::slugify(title);
  for (size_t i = 0; i < slug.size(); ++i) {
    const char c = slug[i];
    const bool word = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    const bool separator = c == '_' && i > 0 && i + 1 < slug.size() && slug[i - 1] != '_';
    if (!word && !separator) std::abort();
  }
  if (pinmark::slugify(slug) != slug) std::abort();
  return 0;
}
