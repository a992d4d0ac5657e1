#include "driver/cli_color.h"

namespace pinmark {

bool use_color(const std::string& when, const char* no_color, const char* force_color,
               const char* term, bool is_terminal) {
  if (when == "always") return true;
  if (when == "never") return false;
  if (no_color && *no_color) return false;
  if (force_color && *force_color) {
    const std::string f = force_color;
    if (f != "0" && f != "false") return true;
  }
  return is_terminal && !(term && std::string(term) == "dumb");
}

}  // namespace pinmark
