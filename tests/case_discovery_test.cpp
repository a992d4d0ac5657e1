// case_tests and its ctest discovery, run as a user runs them: a test name that no longer
// matches a case fails and says why, a filter that selects nothing fails, and `ctest` lists
// the cases on disk at each run without a cmake step.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/temp_dir.h"

namespace pinmark {
namespace {

struct Ran {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs `command` with /bin/sh; the paths it names come from mkdtemp and the build, so they
// need no quoting beyond the single quotes used below.
Ran run(const std::string& command) {
  Ran ran;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) ran.output.append(buffer, n);
  const int raw = ::pclose(pipe);
  ran.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  return ran;
}

void write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string kernel_case(const std::string& title, int seed) {
  return "## " + title + "\n\n### Kernel\n\n```json\n{\"op\": \"swiglu\", \"n\": 4, \"seed\": " +
         std::to_string(seed) + "}\n```\n\n";
}

class CaseTestsTest : public testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.file("cases");
    write(root_ + "/foo.md", "# Foo\n\n" + kernel_case("a", 1));
  }
  Ran case_tests(const std::string& arguments) {
    return run("PINMARK_CASES_DIR='" + root_ + "' '" PINMARK_CASE_TESTS "' " + arguments);
  }

  test::TempDir dir_;
  std::string root_;
};

TEST_F(CaseTestsTest, StaleCaseNameFailsAndSaysTheCaseIsGone) {
  const Ran ran = case_tests("--gtest_filter=foo.gone");
  EXPECT_NE(ran.status, 0) << ran.output;
  EXPECT_NE(ran.output.find("case 'gone' is no longer in " + root_ + "/foo.md (deleted or renamed)"),
            std::string::npos)
      << ran.output;
  EXPECT_NE(ran.output.find("[  FAILED  ] foo.gone"), std::string::npos) << ran.output;
}

TEST_F(CaseTestsTest, NameInADeletedFileFailsAndSaysTheFileIsGone) {
  const Ran ran = case_tests("--gtest_filter=sub/bar.x");
  EXPECT_NE(ran.status, 0) << ran.output;
  EXPECT_NE(ran.output.find("case 'x' is no longer in " + root_ +
                            "/sub/bar.md: the file is gone (deleted or renamed)"),
            std::string::npos)
      << ran.output;
}

TEST_F(CaseTestsTest, NameInAFileThatBecameInvalidPointsAtTheFileProblem) {
  write(root_ + "/broken.md", "no title here\n\n" + kernel_case("a", 1));
  const Ran ran = case_tests("--gtest_filter=broken.a");
  EXPECT_NE(ran.status, 0) << ran.output;
  EXPECT_NE(ran.output.find("case 'a' is no longer in " + root_ +
                            "/broken.md: the file is invalid, see broken.invalid_file"),
            std::string::npos)
      << ran.output;
}

TEST_F(CaseTestsTest, OnlyTheStaleNamesOfAFilterAreReported) {
  const Ran ran = case_tests("--gtest_list_tests --gtest_filter=foo.a:foo.gone:foo.*x*");
  EXPECT_EQ(ran.status, 0) << ran.output;
  EXPECT_EQ(ran.output, "foo.\n  a\n  gone\n");
}

TEST_F(CaseTestsTest, AFilterSelectingNothingFails) {
  const Ran ran = case_tests("--gtest_filter='*nomatch*'");
  EXPECT_EQ(ran.status, 1) << ran.output;
  EXPECT_NE(ran.output.find("pinmark: --gtest_filter=*nomatch* matches no case under " + root_),
            std::string::npos)
      << ran.output;
}

TEST_F(CaseTestsTest, AnExistingCaseRunsAsItself) {
  // No golden output yet, so the case fails as stale; what matters is that it ran.
  const Ran ran = case_tests("--gtest_filter=foo.a");
  EXPECT_NE(ran.output.find("[ RUN      ] foo.a"), std::string::npos) << ran.output;
  EXPECT_NE(ran.output.find("case 'a' differs from its golden"), std::string::npos) << ran.output;
  EXPECT_EQ(ran.output.find("no longer"), std::string::npos) << ran.output;
}

// A build folder with only the case tests in it, as tests/CMakeLists.txt sets it up.
class DiscoveryTest : public CaseTestsTest {
 protected:
  void SetUp() override {
    CaseTestsTest::SetUp();
    build_ = dir_.file("build");
    use_executable(PINMARK_CASE_TESTS);
  }
  void use_executable(const std::string& executable) {
    write(build_ + "/CTestTestfile.cmake",
          "set(PINMARK_CASE_TESTS \"" + executable + "\")\nset(PINMARK_CASE_TESTS_WORKDIR \"" +
              build_ + "\")\ninclude(\"" PINMARK_CASE_TESTS_DISCOVERY "\")\n");
  }
  Ran ctest(const std::string& arguments) {
    return run("cd '" + build_ + "' && PINMARK_CASES_DIR='" + root_ + "' '" PINMARK_CTEST "' " +
               arguments);
  }

  std::string build_;
};

TEST_F(DiscoveryTest, EveryCtestRunListsTheCasesOnDisk) {
  Ran listed = ctest("-N");
  EXPECT_NE(listed.output.find("Test #1: " + root_ + "/foo.md::a\n"), std::string::npos)
      << listed.output;
  EXPECT_NE(listed.output.find("Total Tests: 1\n"), std::string::npos) << listed.output;

  // A case added, a new file in a new folder, and a case renamed: no cmake in between.
  write(root_ + "/foo.md", "# Foo\n\n" + kernel_case("a2", 1) + kernel_case("b", 2));
  write(root_ + "/sub/bar.md", "# Bar\n\n" + kernel_case("c", 3));
  listed = ctest("-N");
  EXPECT_NE(listed.output.find("/foo.md::a2\n"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("/foo.md::b\n"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find(": " + root_ + "/sub/bar.md::c\n"), std::string::npos)
      << listed.output;
  EXPECT_EQ(listed.output.find("/foo.md::a\n"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("Total Tests: 3\n"), std::string::npos) << listed.output;

  listed = ctest("-N -R 'bar\\.md::c'");
  EXPECT_NE(listed.output.find("Total Tests: 1\n"), std::string::npos) << listed.output;
}

TEST_F(DiscoveryTest, ACaseRunsUnderCtestWithItsOwnFilter) {
  const Ran ran = ctest("-R 'foo\\.md::a$' --output-on-failure");
  EXPECT_NE(ran.status, 0) << ran.output;  // no golden output yet
  EXPECT_NE(ran.output.find("Google Test filter = foo.a\n"), std::string::npos) << ran.output;
  EXPECT_NE(ran.output.find("case 'a' differs from its golden"), std::string::npos) << ran.output;
}

// A case's ctest name is its one name, FILE::slug, exactly as `pinmark list ROOT` prints it
// (ROOT/foo.md::a) and `pinmark run --filter` takes it (tests/driver/case_names_test.cpp).
TEST_F(DiscoveryTest, CtestNamesACaseAsPinmarkListDoes) {
  const Ran listed = ctest("-N");
  EXPECT_NE(listed.output.find("Test #1: " + root_ + "/foo.md::a\n"), std::string::npos)
      << listed.output;
  // The shipped suite is shown as "cases", wherever the checkout is.
  const Ran shipped =
      run("cd '" + build_ + "' && env -u PINMARK_CASES_DIR '" PINMARK_CTEST "' -N -R 'attention'");
  EXPECT_NE(shipped.output.find(": cases/attention/"), std::string::npos) << shipped.output;
  EXPECT_EQ(shipped.output.find(": attention/"), std::string::npos) << shipped.output;
}

TEST_F(DiscoveryTest, AListingThatFailsIsAFailingTest) {
  std::filesystem::remove_all(root_);
  const Ran ran = ctest("--output-on-failure");
  EXPECT_NE(ran.status, 0) << ran.output;
  EXPECT_NE(ran.output.find("case_tests.discovery"), std::string::npos) << ran.output;
  EXPECT_NE(ran.output.find("pinmark: no such file or directory: " + root_), std::string::npos)
      << ran.output;
}

TEST_F(DiscoveryTest, AMissingExecutableIsAFailingTest) {
  use_executable(build_ + "/not-built/case_tests");
  const Ran ran = ctest("");
  EXPECT_NE(ran.status, 0) << ran.output;
  EXPECT_NE(ran.output.find("case_tests_NOT_BUILT"), std::string::npos) << ran.output;
}

}  // namespace
}  // namespace pinmark
