#include "runtime/json_limits.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace pinmark {
namespace {

bool number_char(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

}  // namespace

std::optional<JsonTextProblem> check_json_text(std::string_view text, int max_depth) {
  int depth = 0;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') {
      // Skip the string, escapes included; an unterminated one is the parser's to report.
      for (++i; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;
      ++i;
      continue;
    }
    if (c == '[' || c == '{') {
      if (++depth > max_depth)
        return JsonTextProblem{i, "JSON nested deeper than " + std::to_string(max_depth) +
                                      " levels; pinmark reads at most " +
                                      std::to_string(max_depth)};
    } else if (c == ']' || c == '}') {
      --depth;
    } else if ((c >= '0' && c <= '9') || c == '-') {
      size_t end = i;
      while (end < text.size() && number_char(text[end])) ++end;
      const std::string token(text.substr(i, end - i));
      errno = 0;
      const double value = std::strtod(token.c_str(), nullptr);
      if (errno == ERANGE && std::isinf(value))
        return JsonTextProblem{i, "the number " + (token.size() > 40 ? token.substr(0, 40) + "..." : token) +
                                      " is past the range of a double (about 1.8e308)"};
      i = end;
      continue;
    }
    ++i;
  }
  return std::nullopt;
}

}  // namespace pinmark
