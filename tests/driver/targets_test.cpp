// The Targets section and the Numerics table: which targets run, how their rows read, and how
// rows of targets this machine cannot run survive regeneration.
#include <gtest/gtest.h>

#include <string>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "driver/file_run.h"
#include "driver/render.h"
#include "driver/verdict.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::contains;

std::string kernel_case(const std::string& targets_json, const std::string& extra = "") {
  return "# T\n\n## K\n\n### Kernel\n\n```json\n"
         "{\"op\": \"matmul\", \"n\": 3, \"k\": 9, \"m\": 4, \"seed\": 2}\n```\n\n"
         "### Targets\n\n```json\n" +
         targets_json + "\n```\n" + extra;
}

std::vector<std::string> problems_of(const std::string& text) {
  CaseFile file = parse_case_file(text);
  std::vector<std::string> out;
  for (const CaseProblem& p : read_case_spec(file.cases.at(0)).problems)
    out.push_back(problem_line(p));
  return out;
}

std::string rendered(const std::string& text) {
  CaseFile file = parse_case_file(text);
  const Case& c = file.cases.at(0);
  return render_case(c, run_case(read_case_spec(c)));
}

TEST(Targets, DefaultIsCpuFp32AndBf16) {
  const std::string text = "# T\n\n## K\n\n### Kernel\n\n```json\n"
                           "{\"op\": \"swiglu\", \"n\": 5, \"seed\": 1}\n```\n";
  const std::string out = rendered(text);
  EXPECT_TRUE(contains(out, "| cpu fp32 |")) << out;
  EXPECT_TRUE(contains(out, "| cpu bf16 |")) << out;
  EXPECT_FALSE(contains(out, "| cpu fp16 |")) << out;
}

TEST(Targets, RowsFollowTheListedOrder) {
  const std::string out = rendered(kernel_case(R"({"targets": ["cpu fp16", "cpu fp32"]})"));
  ASSERT_TRUE(contains(out, "| cpu fp16 |")) << out;
  EXPECT_LT(out.find("| cpu fp16 |"), out.find("| cpu fp32 |"));
  EXPECT_FALSE(contains(out, "| cpu bf16 |"));
}

// Tensor-parallel targets take cuda's precisions; on a machine that cannot run them (here:
// no two GPUs) their rows are carried or not measured, never an error.
TEST(Targets, CudaTp2IsABuiltInTarget) {
  const std::string out =
      rendered(kernel_case(R"({"targets": ["cpu fp32", "cuda-tp2 bf16", "cuda-tp2 tf32"]})"));
  EXPECT_TRUE(contains(out, "| cuda-tp2 bf16 |")) << out;
  EXPECT_TRUE(contains(out, "| cuda-tp2 tf32 |")) << out;
  EXPECT_FALSE(contains(out, "### Errors")) << out;
}

TEST(Targets, ErrorsNameTheProblem) {
  EXPECT_EQ(problems_of(kernel_case(R"({"targets": ["tpu bf16"]})")),
            std::vector<std::string>{
                "Targets, line 1: unknown backend 'tpu' in target 'tpu bf16' (known: cpu, cuda, cuda-tp2)"});
  EXPECT_EQ(problems_of(kernel_case(R"({"targets": ["cpu fp64"]})")),
            std::vector<std::string>{
                "Targets, line 1: 'cpu fp64' is the oracle, which always runs; it is not a target"});
  EXPECT_EQ(problems_of(kernel_case(R"({"targets": ["cpu tf32"]})")),
            std::vector<std::string>{"Targets, line 1: unknown precision 'tf32' for backend cpu "
                                     "(known: fp32, bf16, fp16)"});
  EXPECT_EQ(problems_of(kernel_case(R"({"targets": ["cpu"]})")),
            std::vector<std::string>{
                "Targets, line 1: a target is '<backend> <precision>', e.g. 'cpu bf16', not 'cpu'"});
  EXPECT_EQ(problems_of(kernel_case(R"({"targets": ["cpu fp32"], "tolerance": {"cpu bf16": 0.1}})")),
            std::vector<std::string>{"Targets, line 1: a tolerance for 'cpu bf16', which is not "
                                     "among the case's targets"});
  EXPECT_EQ(problems_of(kernel_case(R"({"targets": ["cpu fp32"], "tolerance": {"cpu fp32": -1}})")),
            std::vector<std::string>{"Targets, line 1: the tolerance of 'cpu fp32' must be a "
                                     "positive number, got -1"});
  EXPECT_EQ(problems_of(kernel_case(R"({"pin_bits": "yes"})")),
            std::vector<std::string>{"Targets, line 1: pin_bits must be true or false, got \"yes\""});
  EXPECT_EQ(problems_of(kernel_case(R"({"target": ["cpu fp32"]})")),
            std::vector<std::string>{
                "Targets, line 1: unknown Targets key 'target' (did you mean 'targets'?)"});
}

TEST(Targets, ToleranceOverrideDecidesTheVerdict) {
  // A bound far below what fp32 rounding costs on this product must fail it.
  const std::string out =
      rendered(kernel_case(R"({"targets": ["cpu fp32"], "tolerance": {"cpu fp32": 1e-12}})"));
  EXPECT_TRUE(contains(out, "| 1.0e-12 | FAIL | `matmul` |")) << out;
}

TEST(Targets, PinBitsAddsADigestThatFollowsTheData) {
  const std::string a = rendered(kernel_case(R"({"targets": ["cpu fp32"], "pin_bits": true})"));
  EXPECT_TRUE(contains(a, "| bits |")) << a;
  std::string other = kernel_case(R"({"targets": ["cpu fp32"], "pin_bits": true})");
  other.replace(other.find("\"seed\": 2"), 9, "\"seed\": 3");
  const std::string b = rendered(other);
  auto digest = [](const std::string& text) {
    const size_t end = text.rfind("` |");
    return text.substr(text.rfind('`', end - 1) + 1, end - text.rfind('`', end - 1) - 1);
  };
  EXPECT_EQ(digest(a).size(), 16u) << a;
  EXPECT_NE(digest(a), digest(b));
}

TEST(Targets, RowOfATargetNoLongerListedIsDropped) {
  const std::string golden =
      kernel_case(R"({"targets": ["cpu fp32"]})",
                  "\n### Numerics\n\n| cuda sm90 bf16 | ≤ 5e-03 | ok |\n");
  const std::string out = rendered(golden);
  EXPECT_FALSE(contains(out, "cuda sm90")) << out;
}

TEST(Targets, ATargetNoMachineHasMeasuredShowsAsNotMeasured) {
  CaseFile file = parse_case_file(kernel_case(R"({"targets": ["cuda fp16"]})"));
  const Case& c = file.cases.at(0);
  const CaseOutcome o = run_one_case(c, "", "\n", [](const Target&) { return nullptr; });
  EXPECT_TRUE(contains(o.actual, "| cuda fp16 | — | — | — | 2.8e-03 | not measured | — |")) << o.actual;
  EXPECT_TRUE(contains(o.actual, "### Dumps")) << o.actual;
  EXPECT_TRUE(case_failures(o.result).empty());
  ASSERT_EQ(case_failures(o.result, /*require_fresh=*/true).size(), 1u);
  EXPECT_EQ(case_failures(o.result, true)[0], "target cuda fp16 has not been measured on any machine");
}

}  // namespace
}  // namespace pinmark
