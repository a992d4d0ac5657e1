// The Targets section and the Numerics table: which targets run, how their rows read, and how
// rows of targets this machine cannot run survive regeneration.
#include <gtest/gtest.h>

#include <string>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "driver/render.h"
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

TEST(Targets, ErrorsNameTheProblem) {
  EXPECT_EQ(problems_of(kernel_case(R"({"targets": ["tpu bf16"]})")),
            std::vector<std::string>{
                "Targets, line 1: unknown backend 'tpu' in target 'tpu bf16' (known: cpu, cuda)"});
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

TEST(Targets, RowOfATargetThatCannotRunHereIsCarriedOverVerbatim) {
  const std::string gpu_row =
      "| cuda sm90 bf16 | ≤ 5e-03 | ≤ 1e-02 | yes | 2.2e-02 | ok | — |";
  const std::string golden = kernel_case(R"({"targets": ["cpu fp32", "cuda bf16"]})",
                                         "\n### Numerics\n\n| target | x |\n| --- | --- |\n"
                                         "| cpu fp32 | stale |\n" + gpu_row + "\n");
  CaseFile file = parse_case_file(golden);
  const Case& c = file.cases.at(0);
  // A factory that can run only CPU targets, as on a machine without a GPU.
  CaseResult result = run_case(read_case_spec(c), [](const Target& t) {
    return t.backend == "cpu" ? make_target_backend(t) : nullptr;
  });
  const std::string out = render_case(c, result);
  EXPECT_TRUE(contains(out, gpu_row)) << out;
  EXPECT_FALSE(contains(out, "stale")) << out;
  EXPECT_LT(out.find("| cpu fp32 |"), out.find(gpu_row));
}

TEST(Targets, GpuRowsOfEveryDeviceClassAndTheirProvenanceAreCarriedOver) {
  const std::string sm90 = "| cuda sm90 bf16 | ≤ 5e-03 | ≤ 1e-02 | yes | 2.2e-02 | ok | — |";
  const std::string sm80 = "| cuda sm80 bf16 | ≤ 1e-02 | ≤ 1e-02 | yes | 2.2e-02 | ok | — |";
  const std::string provenance = "- `cuda sm90 bf16`: NVIDIA H100 80GB HBM3, compute capability 9.0";
  const std::string other_target = "- `cuda sm90 fp16`: NVIDIA H100 80GB HBM3, compute capability 9.0";
  const std::string golden = kernel_case(
      R"({"targets": ["cpu fp32", "cuda bf16"]})",
      "\n### Numerics\n\n| target | x |\n| --- | --- |\n" + sm90 + "\n" + sm80 +
          "\n\nGPU rows were produced by:\n\n" + provenance + "\n" + other_target + "\n");
  CaseFile file = parse_case_file(golden);
  const Case& c = file.cases.at(0);
  CaseResult result = run_case(read_case_spec(c), [](const Target& t) {
    return t.backend == "cpu" ? make_target_backend(t) : nullptr;
  });
  const std::string out = render_case(c, result);
  EXPECT_TRUE(contains(out, sm90 + "\n" + sm80)) << out;
  EXPECT_TRUE(contains(out, "GPU rows were produced by:\n\n" + provenance)) << out;
  EXPECT_FALSE(contains(out, other_target)) << out;  // cuda fp16 is not among the targets
}

TEST(Targets, RowOfATargetNoLongerListedIsDropped) {
  const std::string golden =
      kernel_case(R"({"targets": ["cpu fp32"]})",
                  "\n### Numerics\n\n| cuda sm90 bf16 | ≤ 5e-03 | ok |\n");
  const std::string out = rendered(golden);
  EXPECT_FALSE(contains(out, "cuda sm90")) << out;
}

TEST(Targets, ACaseWhoseTargetsCannotRunHereRendersNoTable) {
  const std::string out = rendered(kernel_case(R"({"targets": ["cuda fp16"]})"));
  EXPECT_FALSE(contains(out, "### Numerics")) << out;
  EXPECT_TRUE(contains(out, "### Dumps")) << out;
}

}  // namespace
}  // namespace pinmark
