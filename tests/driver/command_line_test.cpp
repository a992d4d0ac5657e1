// The `pinmark` command line, run in-process on small case files in a fresh folder.
#include "driver/command_line.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::contains;
using test::line_of;
using test::read_file;
using test::TempDir;
using test::write_file;

const std::string kTinyConfig =
    "```json\n"
    "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 32,\n"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"pinmark\": {\"seed\": 11}}\n"
    "```\n";

std::string model_case(const std::string& title, const std::string& prompt) {
  return "## " + title + "\n\nA tiny model.\n\n### Config\n\n" + kTinyConfig +
         "\n### Inputs\n\n```json\n{\"prompts\": [" + prompt + "], \"dumps\": []}\n```\n";
}

std::string kernel_case(const std::string& title, int seed) {
  return "## " + title + "\n\n### Kernel\n\n```json\n{\"op\": \"softmax\", \"rows\": 2, \"len\": 4, "
                         "\"seed\": " +
         std::to_string(seed) + "}\n```\n";
}

using test::describe;
using test::Result;
using test::ScopedEnv;

class CommandLine : public ::testing::Test {
 protected:
  // Runs `pinmark` with colours off, so the output does not depend on the terminal.
  Result pinmark(std::vector<std::string> args) {
    if (!args.empty() && (args[0] == "run" || args[0] == "list")) args.push_back("--color=never");
    std::ostringstream out, err;
    Result r;
    r.status = run_command_line(args, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  std::string write_case_file(const std::string& name, const std::string& text) {
    const std::string path = dir_.file(name);
    write_file(path, text);
    return path;
  }

  TempDir dir_;
  // Tests start from a clean environment whatever the machine running them has set.
  ScopedEnv ci_{"CI", nullptr};
  ScopedEnv regenerate_{"REGENERATE", nullptr};
};

TEST_F(CommandLine, NoArgumentsIsAUsageError) {
  Result r = pinmark({});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "usage: pinmark run")) << describe(r);
  EXPECT_TRUE(r.out.empty()) << describe(r);
}

TEST_F(CommandLine, HelpPrintsUsage) {
  Result r = pinmark({"--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(contains(r.out, "usage: pinmark run")) << describe(r);
}

TEST_F(CommandLine, UnknownCommand) {
  Result r = pinmark({"frobnicate"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "unknown command 'frobnicate'")) << describe(r);
  EXPECT_TRUE(contains(r.err, "usage:")) << describe(r);
}

TEST_F(CommandLine, UnknownOption) {
  Result r = pinmark({"run", "--frobnicate", dir_.path()});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "unknown option '--frobnicate'")) << describe(r);
  EXPECT_TRUE(contains(r.err, "usage:")) << describe(r);
}

TEST_F(CommandLine, OptionWithoutItsValue) {
  std::ostringstream out, err;
  EXPECT_EQ(run_command_line({"run", dir_.path(), "--filter"}, out, err), 2);
  EXPECT_TRUE(contains(err.str(), "--filter needs a value")) << err.str();
}

TEST_F(CommandLine, BadColorValue) {
  Result r = pinmark({"run", "--color", "sometimes", dir_.path()});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "'sometimes'")) << describe(r);
}

TEST_F(CommandLine, NonexistentPath) {
  const std::string missing = dir_.file("nowhere/cases.md");
  Result r = pinmark({"run", missing});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, missing)) << describe(r);
}

TEST_F(CommandLine, FreshCaseFailsWithADiff) {
  const std::string path = write_case_file("k.md", "# Kernels\n\n" + kernel_case("Softmax", 1));
  const std::string before = read_file(path);
  Result r = pinmark({"run", path});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.out, "FAIL    " + path + "::softmax\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, "--- " + path + " (golden)\n+++ " + path + " (actual)\n"))
      << describe(r);
  EXPECT_TRUE(contains(r.out, "\n+### Numerics\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, "\n0 passed, 1 failed\n")) << describe(r);
  EXPECT_EQ(read_file(path), before);
}

TEST_F(CommandLine, RegenerateThenPass) {
  const std::string path = write_case_file("k.md", "# Kernels\n\n" + kernel_case("Softmax", 1));
  Result regenerated = pinmark({"run", "--regenerate", path});
  EXPECT_EQ(regenerated.status, 0) << describe(regenerated);
  EXPECT_TRUE(contains(regenerated.out, "UPDATED " + path + "::softmax")) << describe(regenerated);
  EXPECT_TRUE(contains(regenerated.out, "regenerated 1 file\n")) << describe(regenerated);
  const std::string golden = read_file(path);
  EXPECT_TRUE(contains(golden, "### Numerics")) << golden;
  EXPECT_TRUE(contains(golden, "### Dumps")) << golden;

  Result again = pinmark({"run", path});
  EXPECT_EQ(again.status, 0) << describe(again);
  EXPECT_TRUE(contains(again.out, "PASS    " + path + "::softmax")) << describe(again);
  EXPECT_TRUE(contains(again.out, "\n1 passed, 0 failed\n")) << describe(again);
  EXPECT_EQ(read_file(path), golden);

  // Regenerating an up-to-date golden rewrites nothing.
  Result idle = pinmark({"run", "--regenerate", path});
  EXPECT_EQ(idle.status, 0) << describe(idle);
  EXPECT_TRUE(contains(idle.out, "regenerated 0 files\n")) << describe(idle);
  EXPECT_EQ(read_file(path), golden);
}

// A case broken by an edit renders Errors; regenerating it would drop the rows its golden holds
// from other machines (a GPU's), which fixing the case would not bring back. Without --force
// the golden is kept and the case fails, naming the rows.
TEST_F(CommandLine, RegenerateKeepsRowsMeasuredElsewhereWhenACaseBreaks) {
  const std::string measured =
      "\n### Numerics\n\nEach target against the fp64 oracle.\n\n"
      "| target | rel L2 | max abs | reproducible | tolerance | verdict | first divergence |\n"
      "| --- | ---: | ---: | --- | ---: | --- | --- |\n"
      "| cuda sm90 bf16 | ≤ 5e-03 | ≤ 1e-02 | yes | 2.2e-02 | ok | — |\n"
      "\nGPU rows record what they measured:\n\n"
      "- `cuda sm90 bf16`: fingerprint `inputs 000000000000, code 000000000000`; matmul: cuBLAS; "
      "produced on:\n  - NVIDIA H100 80GB HBM3, compute capability 9.0, CUDA runtime 13.0\n";
  const std::string broken =
      "# Kernels\n\n## Softmax\n\n### Kernel\n\n```json\n{\"op\": \"softmax\", \"rows\": 0, "
      "\"len\": 4, \"seed\": 1}\n```\n\n### Targets\n\n```json\n{\"targets\": [\"cpu fp32\", "
      "\"cuda bf16\"]}\n```\n" + measured;
  const std::string path = write_case_file("k.md", broken);
  Result kept = pinmark({"run", "--regenerate", path});
  EXPECT_EQ(kept.status, 1) << describe(kept);
  EXPECT_TRUE(contains(kept.out, "not rewritten: it now renders Errors, and its golden's rows "
                                 "measured on other machines (cuda sm90 bf16) would be lost"))
      << describe(kept);
  EXPECT_TRUE(contains(kept.out, "rows")) << describe(kept);
  EXPECT_EQ(read_file(path), broken);

  Result forced = pinmark({"run", "--regenerate", "--force", path});
  EXPECT_EQ(forced.status, 0) << describe(forced);
  const std::string golden = read_file(path);
  EXPECT_TRUE(contains(golden, "### Errors")) << golden;
  EXPECT_FALSE(contains(golden, "cuda sm90 bf16")) << golden;
}

TEST_F(CommandLine, RegenerateFromTheEnvironment) {
  const std::string path = write_case_file("k.md", "# Kernels\n\n" + kernel_case("Softmax", 1));
  ScopedEnv regenerate("REGENERATE", "1");
  Result r = pinmark({"run", path});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(read_file(path), "### Numerics"));
}

TEST_F(CommandLine, OneChangedDigitFailsOnlyItsCase) {
  const std::string path = write_case_file(
      "m.md", "# Models\n\n" + model_case("First", "[1, 2, 3]") + "\n" + model_case("Second", "[4, 5]"));
  ASSERT_EQ(pinmark({"run", "--regenerate", path}).status, 0);
  const std::string golden = read_file(path);

  // The first row of the first case's Logits block, with one digit changed.
  const size_t logits = golden.find("### Logits");
  ASSERT_LT(logits, golden.find("## Second"));
  const size_t row = golden.find("\n[ 0]", logits) + 1;
  const size_t row_end = golden.find('\n', row);
  const std::string original_row = golden.substr(row, row_end - row);
  const size_t digit = original_row.find_first_of("0123456789", 4);
  ASSERT_NE(digit, std::string::npos) << original_row;
  std::string changed_row = original_row;
  changed_row[digit] = changed_row[digit] == '9' ? '1' : static_cast<char>(changed_row[digit] + 1);
  std::string edited = golden;
  edited.replace(row, original_row.size(), changed_row);
  write_file(path, edited);

  Result r = pinmark({"run", path});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.out, "FAIL    " + path + "::first\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, "PASS    " + path + "::second\n")) << describe(r);
  EXPECT_FALSE(contains(r.out, "FAIL    " + path + "::second")) << describe(r);
  // The whole number that moved is marked under each line of the pair, and nothing else.
  const size_t number = changed_row.rfind(' ', digit) + 1;
  const size_t number_end = changed_row.find(' ', digit);
  const std::string carets =
      "?" + std::string(number, ' ') + std::string(number_end - number, '^') + "\n";
  EXPECT_TRUE(contains(r.out, "\n-" + changed_row + "\n" + carets + "+" + original_row + "\n" +
                                  carets))
      << describe(r);
  // The hunk starts three lines of context above the changed line, numbered as in the file.
  const int changed_line = line_of(edited, changed_row);
  const std::string header = "@@ -" + std::to_string(changed_line - 3) + ",7 +" +
                             std::to_string(changed_line - 3) + ",7 @@";
  EXPECT_TRUE(contains(r.out, header)) << header << "\n" << describe(r);
  EXPECT_TRUE(contains(r.out, "\n1 passed, 1 failed\n")) << describe(r);
  EXPECT_EQ(read_file(path), edited);
}

TEST_F(CommandLine, CiRefusesToRegenerate) {
  const std::string path = write_case_file("k.md", "# Kernels\n\n" + kernel_case("Softmax", 1));
  const std::string before = read_file(path);
  ScopedEnv ci("CI", "true");
  Result r = pinmark({"run", "--regenerate", path});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "CI")) << describe(r);
  EXPECT_TRUE(contains(r.err, "--force")) << describe(r);
  EXPECT_EQ(read_file(path), before);

  ScopedEnv regenerate("REGENERATE", "1");
  Result from_env = pinmark({"run", path});
  EXPECT_EQ(from_env.status, 2) << describe(from_env);
  EXPECT_EQ(read_file(path), before);
}

TEST_F(CommandLine, CiWithForceRegenerates) {
  const std::string path = write_case_file("k.md", "# Kernels\n\n" + kernel_case("Softmax", 1));
  ScopedEnv ci("CI", "true");
  Result r = pinmark({"run", "--regenerate", "--force", path});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(read_file(path), "### Numerics"));
}

TEST_F(CommandLine, CiWithoutRegenerateJustChecks) {
  const std::string path = write_case_file("k.md", "# Kernels\n\n" + kernel_case("Softmax", 1));
  ASSERT_EQ(pinmark({"run", "--regenerate", path}).status, 0);
  ScopedEnv ci("CI", "true");
  Result r = pinmark({"run", path});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "1 passed, 0 failed")) << describe(r);
}

TEST_F(CommandLine, DuplicateCaseNameIsNotRegenerated) {
  const std::string text =
      "# Kernels\n\n" + kernel_case("Softmax", 1) + "\n" + kernel_case("softmax!", 2);
  const std::string path = write_case_file("dup.md", text);
  Result r = pinmark({"run", "--regenerate", path});
  EXPECT_EQ(r.status, 1) << describe(r);
  const int second = line_of(text, "## softmax!");
  EXPECT_TRUE(contains(r.out, path + ":" + std::to_string(second) + ": two cases named 'softmax'"))
      << describe(r);
  EXPECT_TRUE(contains(r.out, "not rewritten")) << describe(r);
  EXPECT_TRUE(contains(r.out, "0 passed, 1 failed")) << describe(r);
  EXPECT_EQ(read_file(path), text);
}

TEST_F(CommandLine, FilterRunsOnlyMatchingCases) {
  const std::string text = "# Kernels\n\n" + kernel_case("Alpha one", 1) + "\n" +
                           kernel_case("Beta two", 2) + "\n" + kernel_case("Alpha three", 3);
  const std::string path = write_case_file("k.md", text);
  Result r = pinmark({"run", "--regenerate", "--filter", "alpha_*", path});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "::alpha_one\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, "::alpha_three\n")) << describe(r);
  EXPECT_FALSE(contains(r.out, "beta_two")) << describe(r);
  EXPECT_TRUE(contains(r.out, "2 passed, 0 failed")) << describe(r);

  CaseFile before = parse_case_file(text);
  CaseFile after = parse_case_file(read_file(path));
  ASSERT_EQ(after.cases.size(), 3u);
  EXPECT_TRUE(contains(after.cases[0].text, "### Numerics"));
  EXPECT_EQ(after.cases[1].text, before.cases[1].text);
  EXPECT_TRUE(contains(after.cases[2].text, "### Numerics"));

  // A filter may name the file too.
  Result by_file = pinmark({"run", "--filter=*k.md::beta_two", path});
  EXPECT_EQ(by_file.status, 1) << describe(by_file);
  EXPECT_TRUE(contains(by_file.out, "FAIL    " + path + "::beta_two")) << describe(by_file);
  EXPECT_TRUE(contains(by_file.out, "0 passed, 1 failed")) << describe(by_file);
}

TEST_F(CommandLine, CaseWithProblemsNamesFileAndLine) {
  const std::string text =
      "# Models\n\n## Broken\n\n### Config\n\n```json\n{\"vocab_size\": 32,\n \"hiden_size\": 16,\n"
      " \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 4}\n```\n\n"
      "### Inputs\n\n```json\n{\"prompts\": [[1]]}\n```\n";
  const std::string path = write_case_file("broken.md", text);
  Result r = pinmark({"run", path});
  EXPECT_EQ(r.status, 1) << describe(r);
  const std::string expected = path + ":" + std::to_string(line_of(text, "\"hiden_size\"")) +
                               ": Config, line 2: unknown config key 'hiden_size'";
  EXPECT_TRUE(contains(r.out, expected)) << expected << "\n" << describe(r);

  // Pinned, the Errors section passes and is counted.
  ASSERT_EQ(pinmark({"run", "--regenerate", path}).status, 0);
  EXPECT_TRUE(contains(read_file(path), "### Errors"));
  Result pinned = pinmark({"run", path});
  EXPECT_EQ(pinned.status, 0) << describe(pinned);
  EXPECT_TRUE(contains(pinned.out, "(renders Errors)")) << describe(pinned);
  EXPECT_TRUE(contains(pinned.out, "1 of the passing cases pin an Errors section")) << describe(pinned);
}

// A case whose inputs are found wrong only after the oracle ran (a dumps pattern that matches no
// tap) renders Errors; its targets are no rows waiting for a machine.
TEST_F(CommandLine, ACaseThatRendersErrorsHasNoUnmeasuredRows) {
  const std::string path = write_case_file(
      "dumps.md", "# Models\n\n## Misspelt tap\n\n### Config\n\n" + kTinyConfig +
                      "\n### Inputs\n\n```json\n{\"prompts\": [[1, 2]], \"dumps\": "
                      "[\"layers.0.sores\"]}\n```\n");
  ASSERT_EQ(pinmark({"run", "--regenerate", path}).status, 0);
  Result r = pinmark({"run", path});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(read_file(path), "matches no tap")) << read_file(path);
  EXPECT_TRUE(contains(r.out, "(renders Errors)")) << describe(r);
  EXPECT_FALSE(contains(r.out, "have not been measured on any machine")) << describe(r);
}

TEST_F(CommandLine, QuietPrintsOnlyFailuresAndTheSummary) {
  const std::string path = write_case_file(
      "k.md", "# Kernels\n\n" + kernel_case("Settled", 1) + "\n" + kernel_case("Fresh", 2));
  ASSERT_EQ(pinmark({"run", "--regenerate", "--filter", "settled", path}).status, 0);
  Result r = pinmark({"run", "-q", path});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_FALSE(contains(r.out, "PASS")) << describe(r);
  EXPECT_TRUE(contains(r.out, "FAIL    " + path + "::fresh")) << describe(r);
  EXPECT_TRUE(contains(r.out, "1 passed, 1 failed")) << describe(r);
}

TEST_F(CommandLine, ColorAlwaysColoursTheOutput) {
  const std::string path = write_case_file("k.md", "# Kernels\n\n" + kernel_case("Softmax", 1));
  std::ostringstream out, err;
  EXPECT_EQ(run_command_line({"run", "--color", "always", path}, out, err), 1);
  EXPECT_TRUE(contains(out.str(), "\033[31mFAIL")) << out.str();
  EXPECT_TRUE(contains(out.str(), "\033[32m+### Numerics")) << out.str();
}

TEST_F(CommandLine, ListPrintsEveryCase) {
  const std::string a = write_case_file(
      "a.md", "# A\n\n" + kernel_case("First one", 1) + "\n" + kernel_case("Second one", 2));
  const std::string b = write_case_file("b.md", "# B\n\n" + kernel_case("Third", 3));
  write_file(dir_.file("notes.txt"), "not a case file\n");
  Result r = pinmark({"list", dir_.path()});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, a + "::first_one\n" + a + "::second_one\n" + b + "::third\n");

  Result filtered = pinmark({"list", "--filter", "*_one", dir_.path()});
  EXPECT_EQ(filtered.out, a + "::first_one\n" + a + "::second_one\n");
  // Listing runs nothing and writes nothing.
  EXPECT_FALSE(contains(read_file(a), "### Numerics"));
}

TEST_F(CommandLine, ListReportsAnInvalidFile) {
  const std::string path = write_case_file("dup.md", "# D\n\n## X\n\n## x\n");
  Result r = pinmark({"list", path});
  EXPECT_TRUE(contains(r.err, path + ":5: two cases named 'x'")) << describe(r);
}

TEST_F(CommandLine, FolderArgumentFindsMarkdownFilesRecursively) {
  std::filesystem::create_directories(dir_.file("nested/deeper"));
  const std::string deep =
      write_case_file("nested/deeper/k.md", "# K\n\n" + kernel_case("Deep", 4));
  Result r = pinmark({"run", "--regenerate", dir_.path()});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, deep + "::deep")) << describe(r);
  EXPECT_TRUE(contains(read_file(deep), "### Numerics"));
}

// A target outside its tolerance fails the case even once the golden records it: regeneration
// writes the FAIL row for review but never turns it into a pass.
TEST_F(CommandLine, AFailingVerdictFailsEvenAfterRegeneration) {
  const std::string path = write_case_file(
      "strict.md",
      "# Strict\n\n## Impossible bound\n\n### Kernel\n\n```json\n"
      "{\"op\": \"matmul\", \"n\": 2, \"k\": 9, \"m\": 3, \"seed\": 4}\n```\n\n"
      "### Targets\n\n```json\n{\"targets\": [\"cpu fp32\"], \"tolerance\": {\"cpu fp32\": 1e-15}}\n```\n");
  Result regenerated = pinmark({"run", "--regenerate", path});
  EXPECT_EQ(regenerated.status, 1) << describe(regenerated);
  EXPECT_TRUE(contains(read_file(path), "| FAIL |"));
  Result again = pinmark({"run", path});
  EXPECT_EQ(again.status, 1) << describe(again);
  EXPECT_TRUE(contains(again.out, "target cpu fp32 is outside its tolerance")) << describe(again);
  EXPECT_TRUE(contains(again.out, "0 passed, 1 failed")) << describe(again);
}

}  // namespace
}  // namespace pinmark
