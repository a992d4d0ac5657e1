// A linear pre-scan of JSON text for what the JSON library would handle badly: nesting so deep
// that building, printing or destroying the value recurses off the stack, and numbers past the
// range of a double, which the library reports without a position. The scan respects strings,
// so brackets and digits inside them count for nothing.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pinmark {

// Deeper than any config.json, safetensors header or reference.json a person writes.
inline constexpr int kMaxJsonDepth = 64;

struct JsonTextProblem {
  size_t offset = 0;    // byte offset into the text of the bracket or number at fault
  std::string message;  // e.g. "JSON nested deeper than 64 levels"
};

// The first problem in `text`, or nullopt. Reports nesting deeper than `max_depth`, and a
// number whose magnitude is past the largest double (1e999), naming the number.
std::optional<JsonTextProblem> check_json_text(std::string_view text,
                                               int max_depth = kMaxJsonDepth);

}  // namespace pinmark
