// Every case of every file under cases/ as its own GoogleTest test, registered when the
// program starts from the files on disk: suite = the file's path without ".md", test = the
// case's slug. `ctest -R slug`, `--gtest_filter=*slug*`, sharding and JUnit XML all work per
// case, and a new file is picked up without touching the build.
//
// With REGENERATE=1 a case whose output moved rewrites its own part of its golden (under a
// file lock, so `REGENERATE=1 ctest -j` gives the same files as a serial run).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "driver/case_discovery.h"
#include "driver/case_file.h"
#include "driver/file_run.h"
#include "driver/golden_io.h"
#include "driver/render.h"
#include "driver/unified_diff.h"

namespace pinmark {
namespace {

bool regenerating() {
  const char* value = std::getenv("REGENERATE");
  return value && *value && std::string(value) != "0";
}

class CaseTest : public testing::Test {
 public:
  CaseTest(std::string path, std::string slug) : path_(std::move(path)), slug_(std::move(slug)) {}

  void TestBody() override {
    FileRun run = run_file(path_, [&](const Case& c) { return c.slug == slug_; });
    ASSERT_TRUE(run.parsed.problems.empty())
        << path_ << ":" << run.parsed.problems.front().line << ": "
        << run.parsed.problems.front().message;
    ASSERT_EQ(run.outcomes.size(), 1u) << path_ << ": case '" << slug_ << "' is gone from the file";
    const CaseOutcome& outcome = run.outcomes.front();
    const Case& c = run.case_of(outcome);
    for (const std::string& target : failing_targets(outcome.result))
      ADD_FAILURE_AT(path_.c_str(), c.line)
          << "case '" << slug_ << "': target " << target
          << " is outside its tolerance (verdict FAIL in Numerics)";
    if (run.matches(outcome)) return;
    if (regenerating()) {
      if (auto refusal = regeneration_refusal(std::getenv("PINMARK_FORCE") != nullptr)) {
        FAIL() << *refusal;
      }
      rewrite_cases(path_, {{slug_, outcome.actual}});
      std::cout << "regenerated " << path_ << " :: " << slug_ << "\n";
      return;
    }
    std::string problems;
    for (const CaseProblem& p : outcome.result.problems)
      problems += path_ + ":" + std::to_string(p.file_line ? p.file_line : c.line) + ": " +
                  problem_line(p) + "\n";
    ADD_FAILURE_AT(path_.c_str(), c.line)
        << "case '" << slug_ << "' differs from its golden (REGENERATE=1 accepts the new output)\n"
        << problems
        << unified_diff(c.text, outcome.actual, path_ + " (golden)", path_ + " (actual)",
                        DiffStyle{false, c.line});
  }

 private:
  std::string path_, slug_;
};

class InvalidFileTest : public testing::Test {
 public:
  explicit InvalidFileTest(std::string message) : message_(std::move(message)) {}
  void TestBody() override { FAIL() << message_; }

 private:
  std::string message_;
};

std::string cases_root() {
  if (const char* dir = std::getenv("PINMARK_CASES_DIR")) return dir;
  return PINMARK_DEFAULT_CASES_DIR;
}

void register_case_tests() {
  const std::string root = cases_root();
  for (const std::string& path : find_case_files({root})) {
    std::string suite = relative_to(path, root);
    if (suite.size() > 3 && suite.substr(suite.size() - 3) == ".md") suite.resize(suite.size() - 3);
    CaseFile file;
    try {
      file = parse_case_file(read_text_file(path));
    } catch (const std::exception& e) {
      file.problems.push_back({0, e.what()});
    }
    if (!file.problems.empty()) {
      std::string message;
      for (const FileProblem& p : file.problems)
        message += path + ":" + std::to_string(p.line) + ": " + p.message + "\n";
      message += "the file is not run, and regeneration leaves it untouched";
      testing::RegisterTest(suite.c_str(), "invalid_file", nullptr, nullptr, path.c_str(),
                            file.problems.front().line,
                            [message]() -> testing::Test* { return new InvalidFileTest(message); });
      continue;
    }
    for (const Case& c : file.cases) {
      testing::RegisterTest(suite.c_str(), c.slug.c_str(), nullptr, nullptr, path.c_str(), c.line,
                            [path, slug = c.slug]() -> testing::Test* {
                              return new CaseTest(path, slug);
                            });
    }
  }
}

}  // namespace
}  // namespace pinmark

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  try {
    pinmark::register_case_tests();
  } catch (const std::exception& e) {
    std::cerr << "pinmark: " << e.what() << "\n";
    return 2;
  }
  return RUN_ALL_TESTS();
}
