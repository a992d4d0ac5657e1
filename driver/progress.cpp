#include "driver/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <ostream>

namespace pinmark {

bool show_progress(const char* term, const char* ci, bool stderr_is_terminal) {
  if (!stderr_is_terminal || !term || !*term || std::string(term) == "dumb") return false;
  const std::string ci_value = ci ? ci : "";
  return ci_value.empty() || ci_value == "0" || ci_value == "false" || ci_value == "no";
}

int terminal_columns() {
  winsize size{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The first `columns` characters of UTF-8 `text`.
std::string first_columns(const std::string& text, int columns) {
  int seen = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
    if (seen++ == columns) return text.substr(0, i);
  }
  return text;
}

}  // namespace

Progress::Progress(std::ostream& err, bool enabled, int columns, double delay_s,
                   std::function<double()> seconds)
    : err_(err),
      enabled_(enabled),
      columns_(columns),
      delay_s_(delay_s),
      seconds_(seconds ? std::move(seconds) : steady_seconds) {
  start_s_ = seconds_();
}

Progress::~Progress() { clear(); }

void Progress::show(size_t done, size_t total, const std::string& what) {
  if (!enabled_ || seconds_() - start_s_ < delay_s_) return;
  std::string line = "[" + std::to_string(done) + "/" + std::to_string(total) + "] ";
  // Control characters in a path would move the cursor: shown as '?'.
  for (char c : what) line += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
  // One column short of the width, so the cursor never wraps to a new line.
  err_ << "\r" << first_columns(line, columns_ > 1 ? columns_ - 1 : 1) << "\033[K" << std::flush;
  shown_ = true;
}

void Progress::clear() {
  if (!shown_) return;
  err_ << "\r\033[K" << std::flush;
  shown_ = false;
}

}  // namespace pinmark
