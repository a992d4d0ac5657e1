// What moved inside a changed line: tokens, the token diff, and how a diff shows it with and
// without colour.
#include "driver/diff_tokens.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "driver/unified_diff.h"

namespace pinmark {
namespace {

using Ranges = std::vector<std::pair<size_t, size_t>>;

TEST(LineTokens, NumbersKeepTheirSignAndExponent) {
  EXPECT_EQ(line_tokens("| cpu fp32 | -1.25e-05 | 3.0E+02 |"),
            (std::vector<std::string>{"|", " ", "cpu", " ", "fp32", " ", "|", " ", "-1.25e-05",
                                      " ", "|", " ", "3.0E+02", " ", "|"}));
  EXPECT_EQ(line_tokens("[1, -2, .5]"),
            (std::vector<std::string>{"[", "1", ",", " ", "-2", ",", " ", ".5", "]"}));
}

TEST(LineTokens, AMinusBetweenWordsIsNotASign) {
  EXPECT_EQ(line_tokens("a-1 x - 2"),
            (std::vector<std::string>{"a", "-", "1", " ", "x", " ", "-", " ", "2"}));
  // "e-" continues a number only after one: a word ending in e keeps its hyphen apart.
  EXPECT_EQ(line_tokens("pre-5"), (std::vector<std::string>{"pre", "-", "5"}));
}

TEST(LineTokens, JoinedTheyAreTheLine) {
  for (const std::string line : {"", "  ", "mean 0.125, rms 1e-3 — ≤ 2", "x\t-.5e+3|"}) {
    std::string joined;
    for (const std::string& t : line_tokens(line)) joined += t;
    EXPECT_EQ(joined, line);
  }
}

TEST(ChangedTokens, MarksOnlyTheNumberThatMoved) {
  const std::string golden = "| cpu fp32 | 1.2e-07 | 3.1e-06 | 0.9999 |";
  const std::string actual = "| cpu fp32 | 1.3e-07 | 3.1e-06 | 0.9999 |";
  const Marks m = changed_tokens(golden, actual);
  EXPECT_EQ(m.golden, (Ranges{{13, 20}}));
  EXPECT_EQ(m.actual, (Ranges{{13, 20}}));
  EXPECT_EQ(golden.substr(13, 7), "1.2e-07");
}

TEST(ChangedTokens, LinesOfDifferentLengthsAndSeveralMoves) {
  const Marks m = changed_tokens("values: 1, 22, 3, 4", "values: 1, 2, 3, 44");
  EXPECT_EQ(m.golden, (Ranges{{11, 13}, {18, 19}}));
  EXPECT_EQ(m.actual, (Ranges{{11, 12}, {17, 19}}));
  // Golden longer than actual, and the other way round: dtl swaps the sequences inside.
  // Which space goes with the "2" is the diff's choice; the "2" is marked either way.
  const Marks shorter = changed_tokens("a 1 b 2 c 3 d", "a 1 b c 3 d");
  ASSERT_EQ(shorter.golden.size(), 1u);
  EXPECT_EQ(shorter.golden[0].second - shorter.golden[0].first, 2u);
  EXPECT_TRUE(shorter.golden[0].first <= 6 && 6 < shorter.golden[0].second);
  EXPECT_TRUE(shorter.actual.empty());
  const Marks longer = changed_tokens("a 1 b c 3 d", "a 1 b 2 c 3 d");
  EXPECT_TRUE(longer.golden.empty());
  ASSERT_EQ(longer.actual.size(), 1u);
  EXPECT_TRUE(longer.actual[0].first <= 6 && 6 < longer.actual[0].second);
}

TEST(ChangedTokens, NothingMarkedForEqualOrUnrelatedLines) {
  EXPECT_TRUE(changed_tokens("same 1", "same 1").golden.empty());
  const Marks unrelated = changed_tokens("### Numerics", "| target | rel l2 |");
  EXPECT_TRUE(unrelated.golden.empty());
  EXPECT_TRUE(unrelated.actual.empty());
}

TEST(CaretLine, OneColumnPerCharacter) {
  EXPECT_EQ(caret_line("ab 12 cd", {{3, 5}}), "   ^^");
  // "≤" is three bytes but one column.
  EXPECT_EQ(caret_line("≤ 12 x 3", {{4, 6}, {9, 10}}), "  ^^   ^");
  EXPECT_EQ(caret_line("ab", {}), "");
}

TEST(ReverseMarked, EachRangeInReverseVideo) {
  EXPECT_EQ(reverse_marked("a 12 b 3", {{2, 4}, {7, 8}}),
            "a \033[7m12\033[27m b \033[7m3\033[27m");
}

const std::string kGolden = "# T\n\n| x | 0.25 | 1.5 |\nend\n";
const std::string kActual = "# T\n\n| x | 0.26 | 1.5 |\nend\n";

TEST(UnifiedDiffMarks, WithoutColourACaretLineFollowsEachLineOfThePair) {
  const std::string diff = unified_diff(kGolden, kActual, "g", "a", DiffStyle{false, 1, true});
  EXPECT_NE(diff.find("-| x | 0.25 | 1.5 |\n?      ^^^^\n+| x | 0.26 | 1.5 |\n?      ^^^^\n"),
            std::string::npos)
      << diff;
}

TEST(UnifiedDiffMarks, WithColourTheMovedNumberIsInReverseVideo) {
  const std::string diff = unified_diff(kGolden, kActual, "g", "a", DiffStyle{true, 1, true});
  EXPECT_NE(diff.find("\033[31m-| x | \033[7m0.25\033[27m | 1.5 |\033[0m\n"), std::string::npos)
      << diff;
  EXPECT_NE(diff.find("\033[32m+| x | \033[7m0.26\033[27m | 1.5 |\033[0m\n"), std::string::npos)
      << diff;
  EXPECT_EQ(diff.find("?"), std::string::npos) << diff;
}

TEST(UnifiedDiffMarks, OffByDefaultSoReportsKeepAPlainDiff) {
  const std::string diff = unified_diff(kGolden, kActual, "g", "a");
  EXPECT_NE(diff.find("-| x | 0.25 | 1.5 |\n+| x | 0.26 | 1.5 |\n"), std::string::npos) << diff;
  EXPECT_EQ(diff.find("?"), std::string::npos) << diff;
}

TEST(UnifiedDiffMarks, PairsByPositionAndLeavesTheRestUnmarked) {
  const std::string golden = "a 1\nb 2\nzzz\n";
  const std::string actual = "a 1\nb 3\nc 4\nzzz\n";
  const std::string diff = unified_diff(golden, actual, "g", "a", DiffStyle{false, 1, true});
  EXPECT_NE(diff.find("-b 2\n?  ^\n+b 3\n?  ^\n+c 4\n zzz"), std::string::npos) << diff;
}

}  // namespace
}  // namespace pinmark
