// Yes/no switches read from the environment (REGENERATE, PINMARK_FORCE): a value that is
// neither yes nor no is an error, never a guess, since a misspelt "REGENERATE=false" that
// regenerates would rewrite goldens nobody asked to rewrite.
#pragma once

namespace pinmark {

// false when `name` is unset or empty, or "0", "false", "no", "off"; true for "1", "true",
// "yes", "on" (any letter case). Throws std::invalid_argument naming the variable, its value
// and what it takes for anything else.
bool env_flag(const char* name);

}  // namespace pinmark
