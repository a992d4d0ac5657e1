// A progress line on the terminal for a run that takes a while: "[12/105] cases/models/llama.md",
// rewritten in place on stderr and erased at the end, so the output that stays is the same as
// without it.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

namespace pinmark {

// Whether a run shows a progress line: only when stderr is a terminal whose TERM is set and not
// "dumb", and never under CI (CI set, not "0", "false" or "no"), whose logs keep every byte.
// A null pointer is an unset variable.
bool show_progress(const char* term, const char* ci, bool stderr_is_terminal);

// The columns of the terminal on stderr, or 80 when it cannot be told.
int terminal_columns();

class Progress {
 public:
  // `enabled` from show_progress; nothing is drawn before `delay_s` seconds have passed since
  // construction, so a quick run prints no progress at all. `seconds` is the clock (tests
  // pass their own); `columns` caps the line so that it never wraps.
  Progress(std::ostream& err, bool enabled, int columns = 80, double delay_s = 1.0,
           std::function<double()> seconds = {});
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Shows "[done/total] what", replacing the line shown before.
  void show(size_t done, size_t total, const std::string& what);
  // Erases the line, if one is shown; call before printing anything else to the terminal.
  void clear();

 private:
  std::ostream& err_;
  bool enabled_;
  int columns_;
  double delay_s_, start_s_;
  std::function<double()> seconds_;
  bool shown_ = false;
};

}  // namespace pinmark
