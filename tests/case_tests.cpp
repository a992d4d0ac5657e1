// Every case of every file under cases/ as its own GoogleTest test, registered when the
// program starts from the files on disk: suite = the file's path without ".md", test = the
// case's slug. ctest names each test by the case's name, cases/FILE.md::slug, as `pinmark list`
// prints it (tests/case_tests_discovery.cmake). `ctest -R slug`, `--gtest_filter=*slug*`, sharding and JUnit XML all work per
// case, and a new file is picked up without touching the build.
//
// With REGENERATE=1 a case whose output moved rewrites its own part of its golden (under a
// file lock, so `REGENERATE=1 ctest -j` gives the same files as a serial run). Without it, a
// case that differs puts its new text in the file's pending golden (FILE.md.pending, merged
// under the same lock, as `pinmark run` writes it) and a case that matches takes its own back
// out, so `pinmark accept` takes what a failing ctest run found.
//
// ctest runs each case as `case_tests --gtest_filter=suite.slug`, with names listed when ctest
// started (tests/case_tests_discovery.cmake). A name that no longer matches a case (deleted,
// renamed, its file gone or invalid) fails with the reason instead of running zero tests and
// passing, and a filter that selects nothing at all exits 1.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "driver/allocator.h"
#include "driver/case_discovery.h"
#include "driver/case_file.h"
#include "driver/env_flag.h"
#include "driver/file_run.h"
#include "driver/golden_io.h"
#include "driver/pending.h"
#include "driver/render.h"
#include "driver/unified_diff.h"
#include "driver/verdict.h"

namespace pinmark {
namespace {


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
    for (const std::string& why : case_failures(outcome.result))
      ADD_FAILURE_AT(path_.c_str(), c.line) << "case '" << slug_ << "': " << why;
    bool regenerate = false, force = false;
    try {
      regenerate = env_flag("REGENERATE");
      force = env_flag("PINMARK_FORCE");
    } catch (const std::invalid_argument& e) {
      FAIL() << e.what();
    }
    // A case that matches takes its change out of the file's pending golden, if it has one.
    if (!regenerate && (c.text == outcome.actual || run.matches(outcome)) &&
        std::filesystem::exists(pending_path(path_))) {
      try {
        update_pending_case(path_, slug_, c.text, c.text);
      } catch (const std::exception& e) {
        std::cerr << "pinmark: " << e.what() << "\n";
      }
    }
    if (c.text == outcome.actual) return;
    if (regenerate) {
      if (auto refusal = regeneration_refusal(force, "set PINMARK_FORCE=1")) {
        FAIL() << *refusal;
      }
      const RewriteOutcome rewritten = rewrite_cases(path_, {{slug_, CaseRewrite(c.text, outcome.actual)}});
      if (!rewritten.skipped.empty()) FAIL() << path_ << ": case '" << slug_ << "' was edited while it ran, so it was not rewritten";
      std::cout << "regenerated " << path_ << "::" << slug_ << "\n";
      return;
    }
    // What is left to record (a device that reproduced a row) is no difference.
    if (run.matches(outcome)) return;
    // What regeneration would write, beside the golden, for `pinmark accept` (as pinmark run).
    std::string pending;
    try {
      if (update_pending_case(path_, slug_, c.text, outcome.actual))
        pending = "; " + pending_path(path_) + " holds it: `pinmark accept` takes it";
    } catch (const std::exception& e) {
      pending = "; no pending golden: " + std::string(e.what());
    }
    std::string problems;
    for (const CaseProblem& p : outcome.result.problems)
      problems += path_ + ":" + std::to_string(p.file_line ? p.file_line : c.line) + ": " +
                  problem_line(p) + "\n";
    ADD_FAILURE_AT(path_.c_str(), c.line)
        << "case '" << slug_ << "' differs from its golden (REGENERATE=1 accepts the new output"
        << pending << ")\n"
        << problems
        << unified_diff(c.text, outcome.actual, path_ + " (golden)", path_ + " (actual)",
                        DiffStyle{false, c.line});
  }

 private:
  std::string path_, slug_;
};

// Fails with a problem found before any case ran: an invalid file, or a test name that the
// filter asks for and the files no longer hold.
class ProblemTest : public testing::Test {
 public:
  explicit ProblemTest(std::string message) : message_(std::move(message)) {}
  void TestBody() override { FAIL() << message_; }

 private:
  std::string message_;
};

std::string cases_root() {
  if (const char* dir = std::getenv("PINMARK_CASES_DIR")) return dir;
  return PINMARK_DEFAULT_CASES_DIR;
}

// The root as the reader knows it: the shipped suite is "cases", wherever the checkout is.
std::string cases_root_shown() {
  if (const char* dir = std::getenv("PINMARK_CASES_DIR")) return dir;
  return "cases";
}

// What registration found, per suite: the file's slugs, or that the file is invalid.
struct SuiteOnDisk {
  std::set<std::string> slugs;
  bool invalid = false;
};
using SuitesOnDisk = std::map<std::string, SuiteOnDisk>;

SuitesOnDisk register_case_tests() {
  SuitesOnDisk suites;
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
      suites[suite].invalid = true;
      testing::RegisterTest(suite.c_str(), "invalid_file", nullptr, nullptr, path.c_str(),
                            file.problems.front().line,
                            [message]() -> testing::Test* { return new ProblemTest(message); });
      continue;
    }
    for (const Case& c : file.cases) {
      suites[suite].slugs.insert(c.slug);
      testing::RegisterTest(suite.c_str(), c.slug.c_str(), nullptr, nullptr, path.c_str(), c.line,
                            [path, slug = c.slug]() -> testing::Test* {
                              return new CaseTest(path, slug);
                            });
    }
  }
  return suites;
}

// The positive patterns of a --gtest_filter that name one test exactly (no * or ?), split
// into suite and test at the last '.' (slugs hold no '.'; a file's path may).
std::vector<std::pair<std::string, std::string>> exact_names(const std::string& filter) {
  std::vector<std::pair<std::string, std::string>> names;
  const std::string positive = filter.substr(0, filter.find('-'));
  size_t start = 0;
  while (start <= positive.size()) {
    size_t end = positive.find(':', start);
    if (end == std::string::npos) end = positive.size();
    const std::string pattern = positive.substr(start, end - start);
    const size_t dot = pattern.rfind('.');
    if (pattern.find_first_of("*?") == std::string::npos && dot != std::string::npos &&
        dot > 0 && dot + 1 < pattern.size())
      names.emplace_back(pattern.substr(0, dot), pattern.substr(dot + 1));
    start = end + 1;
  }
  return names;
}

// Registers a failing test under each exactly named test that the files no longer hold, so
// that `ctest` with a stale name fails and says why.
void register_gone_cases(const SuitesOnDisk& suites, const std::string& filter) {
  for (const auto& [suite, slug] : exact_names(filter)) {
    const auto found = suites.find(suite);
    if (found != suites.end() && (found->second.slugs.count(slug) ||
                                  (found->second.invalid && slug == "invalid_file")))
      continue;
    const std::string file = cases_root_shown() + "/" + suite + ".md";
    std::string message = "case '" + slug + "' is no longer in " + file;
    if (found == suites.end())
      message += ": the file is gone (deleted or renamed)";
    else if (found->second.invalid)
      message += ": the file is invalid, see " + suite + ".invalid_file";
    else
      message += " (deleted or renamed)";
    message += "; `ctest -N` lists the cases as they are now";
    testing::RegisterTest(suite.c_str(), slug.c_str(), nullptr, nullptr, file.c_str(), 0,
                          [message]() -> testing::Test* { return new ProblemTest(message); });
  }
}

bool sharded() {
  const char* shards = std::getenv("GTEST_TOTAL_SHARDS");
  return shards && std::string(shards) != "1";
}

}  // namespace
}  // namespace pinmark

int main(int argc, char** argv) {
  pinmark::keep_freed_memory();
  testing::InitGoogleTest(&argc, argv);
  const std::string filter = GTEST_FLAG_GET(filter);
  try {
    pinmark::register_gone_cases(pinmark::register_case_tests(), filter);
  } catch (const std::exception& e) {
    std::cerr << "pinmark: " << e.what() << "\n";
    return 2;
  }
  const int status = RUN_ALL_TESTS();
  // Zero tests run is not a pass: the filter asked for cases that are not there. A shard may
  // be empty when there are more shards than cases.
  if (status == 0 && !GTEST_FLAG_GET(list_tests) && !pinmark::sharded() &&
      testing::UnitTest::GetInstance()->test_to_run_count() == 0) {
    std::cerr << "pinmark: --gtest_filter=" << filter << " matches no case under "
              << pinmark::cases_root_shown()
              << " (its GoogleTest names are FOLDER/FILE.slug, the file's path under it without .md;"
                 " `ctest -N` lists each case as FILE::slug, the name pinmark list prints)\n";
    return 1;
  }
  return status;
}
