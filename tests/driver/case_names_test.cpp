// One name for a case everywhere: what `pinmark list` prints selects that case when pasted
// into --filter, and a selection that matches nothing is an error that says how names are
// spelled. (ctest's names are checked in tests/case_discovery_test.cpp.)
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "driver/case_discovery.h"
#include "driver/command_line.h"
#include "tests/driver/test_support.h"
#include "tests/support/temp_dir.h"

namespace pinmark {
namespace {

std::string swiglu_case(const std::string& title, int seed) {
  return "## " + title + "\n\n### Kernel\n\n```json\n{\"op\": \"swiglu\", \"n\": 4, \"seed\": " +
         std::to_string(seed) + "}\n```\n\n";
}

struct Ran {
  int status;
  std::string out, err;
};

Ran pinmark(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int status = run_command_line(args, out, err);
  return {status, out.str(), err.str()};
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) result.push_back(line);
  return result;
}

class CaseNames : public testing::Test {
 protected:
  void SetUp() override {
    a_ = dir_.file("a.md");
    b_ = dir_.file("sub/b.md");
    std::filesystem::create_directories(dir_.file("sub"));
    test::write_file(a_, "# A\n\n" + swiglu_case("First one", 1) + swiglu_case("Second", 2));
    test::write_file(b_, "# B\n\n" + swiglu_case("First one", 3));
  }
  test::TempDir dir_;
  std::string a_, b_;
};

TEST(CaseName, IsFileThenSlug) {
  EXPECT_EQ(case_name("cases/models/llama.md", "gqa"), "cases/models/llama.md::gqa");
}

TEST(CaseName, FilterTakesSlugNameAndGlobs) {
  EXPECT_TRUE(filter_selects("gqa", "cases/m.md", "gqa"));
  EXPECT_TRUE(filter_selects("cases/m.md::gqa", "cases/m.md", "gqa"));
  EXPECT_TRUE(filter_selects("cases/m.md :: gqa", "cases/m.md", "gqa"));
  EXPECT_TRUE(filter_selects("*m.md::*", "cases/m.md", "gqa"));
  EXPECT_TRUE(filter_selects("g?a", "cases/m.md", "gqa"));
  EXPECT_FALSE(filter_selects("cases/n.md::gqa", "cases/m.md", "gqa"));
  EXPECT_FALSE(filter_selects("cases/m.md::gq", "cases/m.md", "gqa"));
  EXPECT_FALSE(filter_selects("m.md::gqa", "cases/m.md", "gqa"));
}

TEST(CaseName, FilterTakesTheFileAbsoluteOrRelativeToTheCurrentFolder) {
  const std::string absolute = (std::filesystem::current_path() / "cases/m.md").string();
  EXPECT_TRUE(filter_selects(absolute + "::gqa", "cases/m.md", "gqa"));
  EXPECT_TRUE(filter_selects("cases/m.md::gqa", absolute, "gqa"));
  EXPECT_FALSE(filter_selects("cases/m.md::mha", absolute, "gqa"));
}

TEST_F(CaseNames, EveryListedNameSelectsExactlyItsCase) {
  const Ran listed = pinmark({"list", dir_.path()});
  ASSERT_EQ(listed.status, 0) << listed.err;
  const std::vector<std::string> names = lines(listed.out);
  ASSERT_EQ(names, (std::vector<std::string>{a_ + "::first_one", a_ + "::second", b_ + "::first_one"}));
  for (const std::string& name : names) {
    const Ran again = pinmark({"list", "--filter", name, dir_.path()});
    EXPECT_EQ(again.out, name + "\n") << name;
    // Run reports each case under the same name.
    const Ran ran = pinmark({"run", "--no-pending", "--filter", name, dir_.path()});
    EXPECT_EQ(ran.status, 1) << ran.out << ran.err;  // no golden output yet
    EXPECT_NE(ran.out.find("FAIL    " + name + "\n"), std::string::npos) << ran.out;
    EXPECT_NE(ran.out.find("0 passed, 1 failed"), std::string::npos) << ran.out;
  }
}

TEST_F(CaseNames, ListMatchingNothingIsAnErrorThatSaysHowNamesAreSpelled) {
  const Ran r = pinmark({"list", "--filter", "a.md::first_one", dir_.path()});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "pinmark: no case matches 'a.md::first_one' in 2 files: a case is named "
                   "FILE::slug, as `pinmark list` prints it and ctest names its test (" +
                       a_ + "::first_one), or by its slug alone; '*' matches any text and '?' "
                       "one character\n");
}

TEST_F(CaseNames, RunMatchingNothingIsAnErrorThatSaysHowNamesAreSpelled) {
  const Ran r = pinmark({"run", "--filter", "llama.gqa", a_});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("pinmark: no case matches 'llama.gqa' in 1 file: a case is named "
                       "FILE::slug"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("(" + a_ + "::first_one)"), std::string::npos) << r.err;
}

TEST_F(CaseNames, AnEmptyFolderMatchesNothing) {
  std::filesystem::create_directories(dir_.file("empty"));
  const Ran empty = pinmark({"list", dir_.file("empty")});
  EXPECT_EQ(empty.status, 1);
  EXPECT_EQ(empty.err, "pinmark: no case matches '*' in 0 files: a case is named FILE::slug, as "
                       "`pinmark list` prints it and ctest names its test, or by its slug alone; "
                       "'*' matches any text and '?' one character\n");
}

}  // namespace
}  // namespace pinmark
