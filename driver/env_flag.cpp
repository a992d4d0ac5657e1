#include "driver/env_flag.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace pinmark {

bool env_flag(const char* name) {
  const char* raw = std::getenv(name);
  if (!raw || !*raw) return false;
  std::string value = raw;
  std::transform(value.begin(), value.end(), value.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (value == "1" || value == "true" || value == "yes" || value == "on") return true;
  if (value == "0" || value == "false" || value == "no" || value == "off") return false;
  throw std::invalid_argument(std::string(name) + "='" + raw +
                              "' is neither yes nor no: it takes 1, true, yes, on or 0, false, "
                              "no, off");
}

}  // namespace pinmark
