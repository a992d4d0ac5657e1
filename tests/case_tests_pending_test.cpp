// case_tests writes pending goldens as `pinmark run` does: a failing case puts its new text in
// FILE.md.pending (the golden untouched, also under CI) and says so; once accepted, it passes.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/temp_dir.h"

namespace pinmark {
namespace {

struct Outcome {
  int status = -1;
  std::string output;
};

Outcome run_shell(const std::string& command) {
  Outcome o;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) o.output.append(buffer, n);
  const int raw = ::pclose(pipe);
  o.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  return o;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream b;
  b << in.rdbuf();
  return b.str();
}

std::string swiglu_case(const std::string& title, int seed) {
  return "## " + title + "\n\n### Kernel\n\n```json\n{\"op\": \"swiglu\", \"n\": 4, \"seed\": " +
         std::to_string(seed) + "}\n```\n\n";
}

TEST(CaseTestsPending, FailingCasesFillThePendingAndAcceptedItPasses) {
  test::TempDir dir;
  const std::string root = dir.file("cases");
  std::filesystem::create_directories(root);
  const std::string golden = root + "/foo.md";
  std::ofstream(golden, std::ios::binary) << "# Foo\n\n" + swiglu_case("a", 1) + swiglu_case("b", 2);
  const std::string before = slurp(golden);
  const std::string env = "CI=true REGENERATE= PINMARK_CASES_DIR='" + root + "' '" PINMARK_CASE_TESTS "' ";

  // Each case in its own process, as ctest runs them.
  const Outcome a = run_shell(env + "--gtest_filter=foo.a");
  EXPECT_NE(a.status, 0) << a.output;
  EXPECT_NE(a.output.find(golden + ".pending holds it: `pinmark accept` takes it"), std::string::npos)
      << a.output;
  const Outcome b = run_shell(env + "--gtest_filter=foo.b");
  EXPECT_NE(b.status, 0) << b.output;
  EXPECT_EQ(slurp(golden), before);
  const std::string pending = slurp(golden + ".pending");
  ASSERT_FALSE(pending.empty());
  // Both cases' new text: two Numerics sections after the first line (the golden's digest).
  const std::string body = pending.substr(pending.find('\n') + 1);
  const size_t first = body.find("### Numerics");
  ASSERT_NE(first, std::string::npos) << pending;
  EXPECT_NE(body.find("### Numerics", first + 1), std::string::npos) << pending;

  // What `pinmark accept` does: the body over the golden. Then both cases pass.
  std::ofstream(golden, std::ios::binary | std::ios::trunc) << body;
  const Outcome again = run_shell(env);
  EXPECT_EQ(again.status, 0) << again.output;
  // The pending was for the old golden: the passing cases remove it.
  EXPECT_FALSE(std::filesystem::exists(golden + ".pending"));
}

}  // namespace
}  // namespace pinmark
