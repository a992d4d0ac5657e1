// The progress line: when it is shown at all, what it looks like, and that it leaves nothing
// behind.
#include "driver/progress.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace pinmark {
namespace {

TEST(ShowProgress, OnlyOnATerminalOutsideCi) {
  EXPECT_TRUE(show_progress("xterm-256color", nullptr, true));
  EXPECT_TRUE(show_progress("xterm", "", true));
  EXPECT_TRUE(show_progress("xterm", "false", true));
  EXPECT_TRUE(show_progress("xterm", "0", true));
  EXPECT_FALSE(show_progress("xterm", nullptr, false));  // stderr redirected
  EXPECT_FALSE(show_progress("dumb", nullptr, true));
  EXPECT_FALSE(show_progress(nullptr, nullptr, true));
  EXPECT_FALSE(show_progress("", nullptr, true));
  EXPECT_FALSE(show_progress("xterm", "true", true));  // a CI log, even with a terminal
  EXPECT_FALSE(show_progress("xterm", "1", true));
}

struct Clock {
  double now = 100;
  std::function<double()> function() {
    return [this] { return now; };
  }
};

TEST(Progress, NothingDuringTheFirstSecond) {
  std::ostringstream err;
  Clock clock;
  {
    Progress progress(err, true, 80, 1.0, clock.function());
    clock.now = 100.5;
    progress.show(1, 3, "cases/a.md");
    progress.clear();
  }
  EXPECT_EQ(err.str(), "");
}

TEST(Progress, OverwrittenInPlaceAndClearedAtTheEnd) {
  std::ostringstream err;
  Clock clock;
  {
    Progress progress(err, true, 80, 1.0, clock.function());
    clock.now = 101.5;
    progress.show(12, 105, "cases/models/llama.md");
    progress.show(13, 105, "cases/models/qwen.md");
  }
  EXPECT_EQ(err.str(),
            "\r[12/105] cases/models/llama.md\033[K\r[13/105] cases/models/qwen.md\033[K\r\033[K");
}

TEST(Progress, ClearTwiceErasesOnce) {
  std::ostringstream err;
  Clock clock;
  Progress progress(err, true, 80, 0.0, clock.function());
  progress.show(1, 2, "a.md");
  progress.clear();
  progress.clear();
  EXPECT_EQ(err.str(), "\r[1/2] a.md\033[K\r\033[K");
}

TEST(Progress, DisabledPrintsNothing) {
  std::ostringstream err;
  Clock clock;
  {
    Progress progress(err, false, 80, 0.0, clock.function());
    clock.now = 200;
    progress.show(1, 2, "a.md");
  }
  EXPECT_EQ(err.str(), "");
}

TEST(Progress, ALongLineIsCutToTheTerminalAndControlCharactersAreHidden) {
  std::ostringstream err;
  Clock clock;
  Progress progress(err, true, 12, 0.0, clock.function());
  progress.show(1, 2, "cases/\x1b[2Jvery_long_name.md");
  // 11 columns: one short of the width, so the cursor never wraps.
  EXPECT_EQ(err.str(), "\r[1/2] cases\033[K");
  err.str("");
  progress.show(2, 2, "é\x1b");
  EXPECT_EQ(err.str(), "\r[2/2] é?\033[K");
}

}  // namespace
}  // namespace pinmark
