// unified_diff: what a person sees when a golden moved.
#include "driver/unified_diff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>

namespace pinmark {
namespace {

// "line 1\n...line N\n", with line `changed_line` (1-based) replaced by `replacement`.
std::string numbered_lines(int n, int changed_line = 0, const std::string& replacement = "") {
  std::string out;
  for (int i = 1; i <= n; ++i)
    out += (i == changed_line ? replacement : "line " + std::to_string(i)) + "\n";
  return out;
}

TEST(UnifiedDiff, EqualTextsGiveNothing) {
  EXPECT_EQ(unified_diff("", "", "a", "b"), "");
  EXPECT_EQ(unified_diff("same\ntext\n", "same\ntext\n", "a", "b"), "");
  EXPECT_EQ(unified_diff("same", "same", "a", "b", DiffStyle{true, 40}), "");
}

TEST(UnifiedDiff, OneChangedLineInTheMiddle) {
  const std::string golden = numbered_lines(12);
  const std::string actual = numbered_lines(12, 5, "line five");
  EXPECT_EQ(unified_diff(golden, actual, "g.md (golden)", "g.md (actual)"),
            "--- g.md (golden)\n"
            "+++ g.md (actual)\n"
            "@@ -2,7 +2,7 @@\n"
            " line 2\n"
            " line 3\n"
            " line 4\n"
            "-line 5\n"
            "+line five\n"
            " line 6\n"
            " line 7\n"
            " line 8\n");
}

TEST(UnifiedDiff, HunkHeaderHonoursTheFirstLineOffset) {
  // The texts start at line 40 of their file: line 5 of the text is line 44 of the file.
  const std::string diff = unified_diff(numbered_lines(12), numbered_lines(12, 5, "changed"), "a",
                                        "b", DiffStyle{false, 40});
  EXPECT_NE(diff.find("\n@@ -41,7 +41,7 @@\n"), std::string::npos) << diff;
  EXPECT_NE(diff.find("\n-line 5\n+changed\n"), std::string::npos) << diff;
}

TEST(UnifiedDiff, ChangeOnTheFirstLine) {
  const std::string diff = unified_diff(numbered_lines(6), numbered_lines(6, 1, "first"), "a", "b");
  EXPECT_EQ(diff,
            "--- a\n+++ b\n@@ -1,4 +1,4 @@\n-line 1\n+first\n line 2\n line 3\n line 4\n");
}

TEST(UnifiedDiff, InsertedLineChangesTheCounts) {
  const std::string diff =
      unified_diff("a\nb\nc\n", "a\nb\nnew\nc\n", "a", "b", DiffStyle{false, 10});
  EXPECT_EQ(diff, "--- a\n+++ b\n@@ -10,3 +10,4 @@\n a\n b\n+new\n c\n");
}

TEST(UnifiedDiff, DeletedLineChangesTheCounts) {
  const std::string diff = unified_diff("a\nb\nc\n", "a\nc\n", "a", "b");
  EXPECT_EQ(diff, "--- a\n+++ b\n@@ -1,3 +1,2 @@\n a\n-b\n c\n");
}

TEST(UnifiedDiff, DistantChangesMakeSeparateHunks) {
  std::string actual = numbered_lines(20, 2, "two");
  actual.replace(actual.find("line 18"), 7, "eighteen");
  const std::string diff = unified_diff(numbered_lines(20), actual, "a", "b", DiffStyle{false, 100});
  EXPECT_NE(diff.find("@@ -100,5 +100,5 @@\n line 1\n-line 2\n+two\n line 3\n"), std::string::npos)
      << diff;
  EXPECT_NE(diff.find("@@ -114,6 +114,6 @@\n line 15\n line 16\n line 17\n-line 18\n+eighteen\n"),
            std::string::npos)
      << diff;
}

// Parses "@@ -a,b +c,d @@" into its four numbers.
bool parse_header(const std::string& line, int& a, int& b, int& c, int& d) {
  return std::sscanf(line.c_str(), "@@ -%d,%d +%d,%d @@", &a, &b, &c, &d) == 4;
}

TEST(UnifiedDiff, EveryHunkHeaderMatchesItsLines) {
  // For every position of one changed line in texts of every length up to 14: the header's
  // start names the first line the hunk shows, its counts are the lines shown on each side,
  // and at least three lines of context surround the change where the text has them.
  for (int n = 1; n <= 14; ++n) {
    for (int changed = 1; changed <= n; ++changed) {
      SCOPED_TRACE("n " + std::to_string(n) + ", changed line " + std::to_string(changed));
      const std::string diff =
          unified_diff(numbered_lines(n), numbered_lines(n, changed, "X"), "a", "b");
      std::istringstream lines(diff);
      std::string line;
      std::getline(lines, line);
      EXPECT_EQ(line, "--- a");
      std::getline(lines, line);
      EXPECT_EQ(line, "+++ b");
      std::getline(lines, line);
      int a = 0, b = 0, c = 0, d = 0;
      ASSERT_TRUE(parse_header(line, a, b, c, d)) << line;
      int old_lines = 0, new_lines = 0, first_old = 0;
      while (std::getline(lines, line)) {
        ASSERT_FALSE(line.empty());
        ASSERT_NE(line[0], '@') << "a second hunk:\n" << diff;
        if (line[0] != '+') {
          ++old_lines;
          if (!first_old) first_old = std::stoi(line.substr(6));
        }
        if (line[0] != '-') ++new_lines;
      }
      EXPECT_EQ(first_old, a) << diff;
      EXPECT_EQ(a, c) << diff;
      EXPECT_EQ(b, old_lines) << diff;
      EXPECT_EQ(d, new_lines) << diff;
      EXPECT_EQ(a, std::max(1, changed - 3)) << diff;
      EXPECT_GE(a + b - 1, std::min(n, changed + 3)) << diff;
    }
  }
}

TEST(UnifiedDiff, ColorWrapsChangedLinesInAnsiCodes) {
  const std::string diff = unified_diff("a\nold\nc\n", "a\nnew\nc\n", "g", "a", DiffStyle{true, 1});
  EXPECT_NE(diff.find("\033[31m-old\033[0m\n"), std::string::npos) << diff;
  EXPECT_NE(diff.find("\033[32m+new\033[0m\n"), std::string::npos) << diff;
  EXPECT_NE(diff.find("\033[36m@@ -1,3 +1,3 @@\033[0m\n"), std::string::npos) << diff;
  // Context lines are not coloured.
  EXPECT_NE(diff.find("\n a\n"), std::string::npos) << diff;
}

TEST(UnifiedDiff, NoColorMeansNoEscapeCodes) {
  const std::string diff = unified_diff("a\nold\nc\n", "a\nnew\nc\n", "g", "a", DiffStyle{false, 1});
  EXPECT_EQ(diff.find('\033'), std::string::npos) << diff;
  EXPECT_NE(diff.find("\n-old\n+new\n"), std::string::npos) << diff;
}

TEST(UnifiedDiff, TextsDifferingOnlyInTheFinalNewlineStillDiffer) {
  const std::string diff = unified_diff("a\nb", "a\nb\n", "g", "a");
  EXPECT_FALSE(diff.empty());
  EXPECT_EQ(diff.rfind("--- g\n+++ a\n", 0), 0u) << diff;
}

TEST(UnifiedDiff, ACarriageReturnIsVisible) {
  // Lines that differ only in a CR would print alike; the CR shows as U+240D.
  const std::string diff = unified_diff("# Title\nprose\n", "# Title\r\nprose\n", "g", "a");
  EXPECT_NE(diff.find("-# Title\n"), std::string::npos) << diff;
  EXPECT_NE(diff.find("+# Title\u240D\n"), std::string::npos) << diff;
  EXPECT_EQ(diff.find('\r'), std::string::npos) << diff;
  // A CR inside a line, and one in a context line, show as well.
  const std::string inner = unified_diff("a\rb\nold\n", "a\rb\nnew\n", "g", "a");
  EXPECT_NE(inner.find(" a\u240Db\n"), std::string::npos) << inner;
}

}  // namespace
}  // namespace pinmark
