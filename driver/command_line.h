// The `pinmark` command: run case files, show what moved, regenerate goldens.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace pinmark {

// Exit status: 0 when every case matches its golden (or was regenerated), 1 when a case
// differs or a file is invalid, 2 for a usage or I/O error.
// `pinmark review` reads its answers from `in`; the form without `in` answers nothing (quit).
int run_command_line(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int run_command_line(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                     std::ostream& err);

}  // namespace pinmark
