// Rows a machine cannot measure (GPU targets on a machine without one) are carried over from
// the golden: still judged, marked stale when the case or the code changed since they were
// measured, and a device that reproduces a row is added to its provenance without making a
// difference the golden check would see.
#include <gtest/gtest.h>

#include <string>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/file_run.h"
#include "driver/fingerprint.h"
#include "driver/golden_rows.h"
#include "driver/render.h"
#include "driver/verdict.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::contains;

const char* kHeader =
    "\n### Numerics\n\nEach target against the fp64 oracle over every logit (or the kernel's "
    "output), errors rounded up to 1, 2 or 5 x 10^k; see docs/numerics.md.\n\n"
    "| target | rel L2 | max abs | reproducible | tolerance | verdict | first divergence |\n"
    "| --- | ---: | ---: | --- | ---: | --- | --- |\n";

std::string kernel_case(int seed, const std::string& numerics) {
  return "# T\n\n## K\n\n### Kernel\n\n```json\n"
         "{\"op\": \"matmul\", \"n\": 3, \"k\": 9, \"m\": 4, \"seed\": " + std::to_string(seed) +
         "}\n```\n\n### Targets\n\n```json\n{\"targets\": [\"cpu fp32\", \"cuda bf16\"]}\n```\n" +
         kHeader + numerics;
}

// A machine that can run only the cpu targets.
std::unique_ptr<Backend<float>> cpu_only(const Target& t) {
  return t.backend == "cpu" ? make_target_backend(t) : nullptr;
}

// The fingerprint a case has now: what a fresh row of it records.
std::string fingerprint_of(const std::string& text) {
  const CaseFile file = parse_case_file(text);
  return row_fingerprint(file.cases.at(0), "");
}

struct Outcome {
  std::string text;
  CaseFile file;
  CaseOutcome outcome;
};

Outcome run(const std::string& text) {
  Outcome r{text, parse_case_file(text), {}};
  r.outcome = run_one_case(r.file.cases.at(0), "", "\n", cpu_only);
  return r;
}

const std::string kSm90 = "| cuda sm90 bf16 | ≤ 5e-03 | ≤ 1e-02 | yes | 2.2e-02 | ok | — |";
const std::string kDevice = "NVIDIA H100 80GB HBM3, compute capability 9.0, CUDA runtime 13.0";

std::string entry(const std::string& fingerprint) {
  return "\nGPU rows record what they measured (a fingerprint of the case's inputs and of the "
         "code that computed them) and every device that produced their numbers:\n\n"
         "- `cuda sm90 bf16`: fingerprint `" + fingerprint +
         "`; matmul: cuBLAS; produced on:\n  - " + kDevice + "\n";
}

TEST(CarriedRows, AFreshRowIsCarriedOverVerbatimWithItsProvenance) {
  const std::string fp = fingerprint_of(kernel_case(2, ""));
  const Outcome r = run(kernel_case(2, kSm90 + "\n" + entry(fp)));
  EXPECT_TRUE(contains(r.outcome.actual, kSm90 + "\n")) << r.outcome.actual;
  EXPECT_TRUE(contains(r.outcome.actual, "- `cuda sm90 bf16`: fingerprint `" + fp +
                                             "`; matmul: cuBLAS; produced on:\n  - " + kDevice))
      << r.outcome.actual;
  EXPECT_FALSE(contains(r.outcome.actual, "stale")) << r.outcome.actual;
  EXPECT_TRUE(case_failures(r.outcome.result, /*require_fresh=*/true).empty());
}

TEST(CarriedRows, ChangingTheInputsMakesARowStaleAndRequireFreshFailsIt) {
  const std::string fp = fingerprint_of(kernel_case(2, ""));
  const Outcome r = run(kernel_case(3, kSm90 + "\n" + entry(fp)));  // another seed
  EXPECT_TRUE(contains(r.outcome.actual, "| yes | 2.2e-02 | ok (stale) | — |")) << r.outcome.actual;
  EXPECT_TRUE(contains(r.outcome.actual,
                       "- `cuda sm90 bf16` (stale: the case's inputs changed since it was "
                       "measured): fingerprint `" + fp + "`"))
      << r.outcome.actual;
  EXPECT_TRUE(case_failures(r.outcome.result).empty());
  const auto strict = case_failures(r.outcome.result, true);
  ASSERT_EQ(strict.size(), 1u);
  EXPECT_EQ(strict[0], "row cuda sm90 bf16 is stale (the case's inputs changed since it was measured)");
}

TEST(CarriedRows, ChangingTheCodeMakesARowStale) {
  const std::string fp = fingerprint_of(kernel_case(2, ""));
  const std::string old_code = fp.substr(0, fp.find("code ") + 5) + "000000000000";
  const Outcome r = run(kernel_case(2, kSm90 + "\n" + entry(old_code)));
  EXPECT_TRUE(contains(r.outcome.actual, "(stale: the code changed since it was measured)"))
      << r.outcome.actual;
}

// A model case's fingerprint with this Config block.
std::string config_fingerprint(const std::string& config) {
  return fingerprint_of("# T\n\n## M\n\n### Config\n\n```json\n" + config +
                        "\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[1, 2]]}\n```\n");
}

// A key pinmark reads for nothing changes no number, so adding, changing or dropping one keeps
// the rows measured without it; a key it reads makes them stale.
TEST(CarriedRows, KeysPinmarkDoesNotReadDoNotMakeARowStale) {
  const std::string base =
      R"("model_type": "deepseek_v32", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, )"
      R"("num_hidden_layers": 2, "num_attention_heads": 4)";
  const std::string fp = config_fingerprint("{" + base + "}");
  EXPECT_EQ(config_fingerprint("{" + base + R"(, "rope_interleave": false, "bos_token_id": 0})"), fp);
  EXPECT_EQ(config_fingerprint("{" + base + R"(, "transformers_version": "5.17.0"})"), fp);
  EXPECT_NE(config_fingerprint("{" + base + R"(, "index_topk": 8})"), fp);
  EXPECT_NE(config_fingerprint("{" + base + R"(, "rms_norm_eps": 1e-5})"), fp);
}

TEST(CarriedRows, ProseAndLayoutOfTheInputsDoNotMakeARowStale) {
  const std::string fp = fingerprint_of(kernel_case(2, ""));
  std::string text = kernel_case(2, kSm90 + "\n" + entry(fp));
  text.replace(text.find("\"n\": 3, "), 8, "\n  \"n\":   3,\n  ");
  text.replace(text.find("## K\n"), 5, "## K\n\nWhy this case exists.\n");
  const Outcome r = run(text);
  EXPECT_FALSE(contains(r.outcome.actual, "stale")) << r.outcome.actual;
}

TEST(CarriedRows, ARowFromBeforeFingerprintsIsStale) {
  const Outcome r = run(kernel_case(2, kSm90 + "\n\nGPU rows were produced by:\n\n- `cuda sm90 bf16`: " +
                                       kDevice + ", matmul: cuBLAS GemmEx bf16\n"));
  EXPECT_TRUE(contains(r.outcome.actual, "ok (stale)")) << r.outcome.actual;
  EXPECT_TRUE(contains(r.outcome.actual,
                       "(stale: measured before rows recorded what they measured): fingerprint "
                       "`none`; matmul: cuBLAS GemmEx bf16; produced on:\n  - " + kDevice))
      << r.outcome.actual;
}

TEST(CarriedRows, ACarriedFailStillFailsTheCase) {
  const std::string fp = fingerprint_of(kernel_case(2, ""));
  const std::string failing = "| cuda sm90 bf16 | ≤ 5e-01 | ≤ 1e+00 | yes | 2.2e-02 | FAIL | `matmul` |";
  const Outcome r = run(kernel_case(2, failing + "\n" + entry(fp)));
  EXPECT_TRUE(contains(r.outcome.actual, failing)) << r.outcome.actual;
  const auto failures = case_failures(r.outcome.result);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0],
            "row cuda sm90 bf16, carried over from the golden (this machine cannot run it), "
            "records verdict FAIL");
}

TEST(CarriedRows, ACarriedRowWithNanErrorsFailsWhateverItsVerdictSays) {
  const std::string fp = fingerprint_of(kernel_case(2, ""));
  const Outcome r = run(kernel_case(2, "| cuda sm90 bf16 | nan | nan | yes | 2.2e-02 | ok | — |\n" + entry(fp)));
  const auto failures = case_failures(r.outcome.result);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_TRUE(contains(failures[0], "records errors that are not finite (nan, nan)")) << failures[0];
}

TEST(CarriedRows, ACarriedOkRowPastItsToleranceFails) {
  const std::string fp = fingerprint_of(kernel_case(2, ""));
  // "≤ 5e-01" stands for a rel L2 in (2e-01, 5e-01]: wholly past 2.2e-02.
  const Outcome past = run(kernel_case(2, "| cuda sm90 bf16 | ≤ 5e-01 | ≤ 1e+00 | yes | 2.2e-02 | ok | — |\n" + entry(fp)));
  const auto failures = case_failures(past.outcome.result);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_TRUE(contains(failures[0], "records rel L2 ≤ 5e-01, past its tolerance 2.2e-02")) << failures[0];
  // A bucket that reaches below the tolerance may hold a value within it: the verdict stands.
  const Outcome within = run(kernel_case(2, "| cuda sm90 bf16 | ≤ 5e-02 | ≤ 1e-01 | yes | 2.2e-02 | ok | — |\n" + entry(fp)));
  EXPECT_TRUE(case_failures(within.outcome.result).empty());
  const Outcome unknown = run(kernel_case(2, "| cuda sm90 bf16 | ≤ 5e-03 | ≤ 1e-02 | yes | 2.2e-02 | oK | — |\n" + entry(fp)));
  ASSERT_EQ(case_failures(unknown.outcome.result).size(), 1u);
  EXPECT_TRUE(contains(case_failures(unknown.outcome.result)[0], "records an unknown verdict 'oK'"));
}

TEST(CarriedRows, ACarriedIllConditionedRowIsJudgedByItsConditioningBound) {
  // Softmax over scores of scale 16: in bf16 the tolerance is 2.5e-01, the bound 3.5e-01.
  const std::string ill =
      "# T\n\n## K\n\n### Kernel\n\n```json\n"
      "{\"op\": \"softmax\", \"rows\": 2, \"len\": 16, \"scale\": 16, \"seed\": 1}\n```\n\n"
      "### Targets\n\n```json\n{\"targets\": [\"cuda bf16\"]}\n```\n" + std::string(kHeader);
  const std::string fp = fingerprint_of(ill);
  const std::string row = "| cuda sm90 bf16 | ≤ 5e-01 | ≤ 1e+00 | yes | 2.5e-01 | ill-conditioned | — |";
  const Outcome within = run(ill + row + "\n" + entry(fp));
  EXPECT_TRUE(case_failures(within.outcome.result).empty()) << within.outcome.actual;
  EXPECT_TRUE(contains(within.outcome.actual, row)) << within.outcome.actual;
  // "≤ 2e+00" stands for (1, 2]: past the bound.
  const Outcome past = run(ill + "| cuda sm90 bf16 | ≤ 2e+00 | ≤ 1e+00 | yes | 2.5e-01 | ill-conditioned | — |\n" + entry(fp));
  ASSERT_EQ(case_failures(past.outcome.result).size(), 1u);
  EXPECT_TRUE(contains(case_failures(past.outcome.result)[0], "past its tolerance 3.5e-01"));
  // A matmul in bf16 is well within its tolerance: no row of it is ill-conditioned.
  const std::string mm = fingerprint_of(kernel_case(2, ""));
  const Outcome wrong = run(kernel_case(2, "| cuda sm90 bf16 | ≤ 5e-03 | ≤ 1e-02 | yes | 2.2e-02 | ill-conditioned | — |\n" + entry(mm)));
  ASSERT_EQ(case_failures(wrong.outcome.result).size(), 1u);
  EXPECT_TRUE(contains(case_failures(wrong.outcome.result)[0],
                       "records verdict ill-conditioned, but the case is not ill-conditioned for it now"));
}

TEST(CarriedRows, TheShippedFailingInputWithACarriedFailRowFails) {
  const std::string text = test::read_file(std::string(PINMARK_SOURCE_DIR) +
                                           "/tests/driver/fixtures/carried_gpu_fail_row.md");
  const CaseFile file = parse_case_file(text);
  ASSERT_FALSE(file.cases.empty());
  const CaseOutcome o = run_one_case(file.cases[0], "", "\n", cpu_only);
  const auto failures = case_failures(o.result);
  ASSERT_FALSE(failures.empty());
  EXPECT_TRUE(contains(failures[0], "row cuda sm90 fp32, carried over from the golden")) << failures[0];
}

TEST(CarriedRows, RowsOfOtherDeviceClassesStayBesideAMeasuredOne) {
  const std::string fp = fingerprint_of(kernel_case(2, ""));
  const std::string sm80 = "| cuda sm80 bf16 | ≤ 1e-02 | ≤ 1e-02 | yes | 2.2e-02 | ok | — |";
  const Outcome r = run(kernel_case(2, kSm90 + "\n" + sm80 + "\n"));
  const std::string& out = r.outcome.actual;
  ASSERT_TRUE(contains(out, "| cuda sm90 bf16 |")) << out;
  EXPECT_LT(out.find("| cpu fp32 |"), out.find("| cuda sm90 bf16 |"));
  EXPECT_LT(out.find("| cuda sm90 bf16 |"), out.find("| cuda sm80 bf16 |"));
}

// Two machines, each measuring its own device class of one target, render the golden's order:
// a row's place does not depend on which machine measured it.
TEST(CarriedRows, ARowKeepsItsPlaceWhicheverDeviceClassIsMeasuredHere) {
  const std::string fp = fingerprint_of(kernel_case(2, ""));
  auto row_text = [](const std::string& label) {
    return "| " + label + " | ≤ 1e-02 | ≤ 1e-02 | yes | 2.2e-02 | ok | — |\n";
  };
  // The golden's labels, and the labels a machine measuring `here` renders.
  auto render = [&](const std::vector<std::string>& golden, const std::string& here) {
    std::string numerics;
    for (const std::string& label : golden) numerics += row_text(label);
    const CaseFile file = parse_case_file(kernel_case(2, numerics));
    CaseResult result;
    TargetRow row;
    row.target = Target{"cuda", "bf16"};
    row.label = here;
    row.ran = true;
    row.rel_l2 = 4e-3;
    row.tolerance = 2.2e-2;
    row.ok = true;
    result.numerics.push_back(row);
    carry_golden_rows(file.cases.at(0), fp, result);
    std::vector<std::string> labels;
    for (const TargetRow& r : result.numerics) labels.push_back(r.label);
    return labels;
  };
  const std::vector<std::string> sm80_first = {"cuda sm80 bf16", "cuda sm90 bf16"};
  const std::vector<std::string> sm90_first = {"cuda sm90 bf16", "cuda sm80 bf16"};
  for (const auto& golden : {sm80_first, sm90_first}) {
    EXPECT_EQ(render(golden, "cuda sm80 bf16"), golden);
    EXPECT_EQ(render(golden, "cuda sm90 bf16"), golden);
  }
  // A device class the golden lacks goes first.
  EXPECT_EQ(render({"cuda sm80 bf16"}, "cuda sm100 bf16"),
            (std::vector<std::string>{"cuda sm100 bf16", "cuda sm80 bf16"}));
}

// A measured GPU row, as a machine with a GPU renders it: the device joins the row's list only
// when the row's numbers and fingerprint equal the golden's, and only in what regeneration
// writes, never in what the golden is checked against.
TEST(CarriedRows, ADeviceThatReproducesARowIsRecordedWithoutMakingADifference) {
  const std::string fp = fingerprint_of(kernel_case(2, ""));
  const std::string golden_row = "| cuda sm90 bf16 | ≤ 5e-03 | ≤ 1e-02 | yes | 2.2e-02 | ok | — |";
  // The golden as a machine without a GPU regenerated it: the row carried over.
  const Outcome first = run(kernel_case(2, golden_row + "\n" + entry(fp)));
  const Outcome r = run("# T\n\n" + first.outcome.actual + "\n");
  ASSERT_EQ(r.file.cases.at(0).text, first.outcome.actual);
  CaseResult result = r.outcome.result;
  for (TargetRow& row : result.numerics) {
    if (row.label != "cuda sm90 bf16") continue;
    row = TargetRow{};
    row.target = Target{"cuda", "bf16"};
    row.label = "cuda sm90 bf16";
    row.ran = true;
    row.rel_l2 = 4e-3;
    row.max_abs = 9e-3;
    row.tolerance = 2.2e-2;
    row.ok = true;
    row.device = "NVIDIA H200, compute capability 9.0, CUDA runtime 13.0";
    row.math_mode = "cuBLAS";
    row.fingerprint = fp;
  }
  const Case& c = r.file.cases.at(0);
  const std::string checked = render_case(c, result, "\n", /*record_device=*/false);
  const std::string written = render_case(c, result, "\n", /*record_device=*/true);
  EXPECT_EQ(checked, c.text);
  EXPECT_TRUE(contains(written, "  - " + kDevice + "\n  - NVIDIA H200, compute capability 9.0")) << written;

  // Other numbers: the row is this device's alone, and the golden check sees the difference.
  for (TargetRow& row : result.numerics)
    if (row.ran && row.label == "cuda sm90 bf16") row.rel_l2 = 2e-2;
  const std::string moved = render_case(c, result, "\n", false);
  EXPECT_NE(moved, c.text);
  EXPECT_TRUE(contains(moved, "| cuda sm90 bf16 | ≤ 2e-02 |")) << moved;
  EXPECT_FALSE(contains(moved, kDevice)) << moved;
  EXPECT_TRUE(contains(moved, "produced on:\n  - NVIDIA H200")) << moved;
}

TEST(GoldenRows, ReadsRowsVerdictsAndProvenance) {
  const std::string text =
      kernel_case(2, kSm90 + "\n| cuda sm90 fp16 | ≤ 5e-03 | ≤ 1e-02 | yes | 2.2e-02 | FAIL (stale) | — |\n" +
                         entry("inputs a, code b") + "  - Another GPU\n");
  const CaseFile file = parse_case_file(text);
  const auto rows = read_golden_rows(file.cases.at(0));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].label, "cuda sm90 bf16");
  EXPECT_EQ(rows[0].verdict, "ok");
  EXPECT_EQ(rows[0].fingerprint, "inputs a, code b");
  EXPECT_EQ(rows[0].math_mode, "cuBLAS");
  EXPECT_EQ(rows[0].devices, (std::vector<std::string>{kDevice, "Another GPU"}));
  EXPECT_EQ(rows[1].verdict, "FAIL");
  EXPECT_TRUE(rows[1].marked_stale);
  EXPECT_TRUE(rows[1].devices.empty());
  EXPECT_TRUE(is_row_of("cuda sm90 bf16", Target{"cuda", "bf16"}));
  EXPECT_TRUE(is_row_of("cuda bf16", Target{"cuda", "bf16"}));
  EXPECT_FALSE(is_row_of("cuda sm90 fp16", Target{"cuda", "bf16"}));
  EXPECT_FALSE(is_row_of("cpu bf16", Target{"cuda", "bf16"}));
}

}  // namespace
}  // namespace pinmark
