// Whether pinmark colours what it prints.
#pragma once

#include <string>

namespace pinmark {

// `--color always` and `--color never` decide. With `auto` (the default): no colour when
// NO_COLOR is set to anything non-empty (no-color.org); else colour when FORCE_COLOR is set to
// anything non-empty other than "0" or "false" (force-color.org, as CI systems set it); else
// colour when `is_terminal` and TERM is not "dumb". A null pointer is an unset variable.
bool use_color(const std::string& when, const char* no_color, const char* force_color,
               const char* term, bool is_terminal);

}  // namespace pinmark
