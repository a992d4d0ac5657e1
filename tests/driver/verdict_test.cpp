// Verdicts that mean the same everywhere: the near-tie rule follows the tolerance, a model that
// magnifies rounding gets a measured tolerance and, past the largest one, an ill-conditioned
// verdict rather than a false FAIL, non-finite errors print as such, the Reference bound follows how the reference was computed, switches
// from the environment take only yes or no, and the audit finds what it exists to find.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "driver/audit.h"
#include "driver/case_file.h"
#include "driver/command_line.h"
#include "driver/env_flag.h"
#include "driver/file_run.h"
#include "driver/hf_reference.h"
#include "driver/numerics.h"
#include "driver/verdict.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/rounding_backend.h"
#include "runtime/storing_backend.h"
#include "tests/driver/test_support.h"
#include "tests/support/temp_dir.h"

namespace pinmark {
namespace {

using test::contains;
using test::ScopedEnv;
using test::TempDir;

std::string fixture(const std::string& name) {
  return test::read_file(std::string(PINMARK_SOURCE_DIR) + "/tests/driver/fixtures/" + name);
}

CaseOutcome run_first_case(const std::string& text) {
  const CaseFile file = parse_case_file(text);
  return run_one_case(file.cases.at(0), "");
}

TEST(Verdict, ARoundingLevelTop1FlipOfAHealthyBf16TargetIsANearTie) {
  const CaseOutcome o = run_first_case(fixture("bf16_top1_false_fail.md"));
  EXPECT_TRUE(case_failures(o.result).empty()) << o.actual;
  EXPECT_TRUE(contains(o.actual, "| cpu bf16 |")) << o.actual;
  EXPECT_TRUE(contains(o.actual, "6/7 (1 near-tie)")) << o.actual;
  EXPECT_TRUE(contains(o.actual, "| ok |")) << o.actual;
}

TEST(Verdict, AHealthyTargetPastTheLargestToleranceButWithinItsRoundingIsIllConditioned) {
  const CaseOutcome o = run_first_case(fixture("qwen3_next_ill_conditioned_bf16.md"));
  EXPECT_TRUE(case_failures(o.result).empty()) << o.actual;
  ASSERT_EQ(o.result.numerics.size(), 3u);
  const TargetRow &fp32 = o.result.numerics[0], &bf16 = o.result.numerics[1];
  EXPECT_TRUE(fp32.ok && !fp32.ill_conditioned);
  EXPECT_GT(bf16.rel_l2, kMaxTolerance);
  EXPECT_TRUE(bf16.ok && bf16.ill_conditioned);
  EXPECT_TRUE(contains(o.actual, "| 2.5e-01 | ill-conditioned |")) << o.actual;
}

TEST(Verdict, AFlipWhereOnePositionMagnifiesRoundingIsJudgedByThatPositionsEstimate) {
  const CaseOutcome o = run_first_case(fixture("qwen3_next_position_flip_bf16.md"));
  EXPECT_TRUE(case_failures(o.result).empty()) << o.actual;
  const TargetRow& bf16 = o.result.numerics.at(1);
  EXPECT_EQ(bf16.label, "cpu bf16");
  EXPECT_LT(bf16.top1_agree, bf16.top1_total);  // a flip, counted as a near-tie
  EXPECT_EQ(bf16.top1_agree + bf16.near_ties, bf16.top1_total);
  EXPECT_TRUE(bf16.ok && !bf16.ill_conditioned);
  // Position 1's own estimate is what excuses it: the whole output's is smaller.
  ASSERT_GT(bf16.position_spread.size(), 1u);
  EXPECT_GT(kToleranceMultiple * bf16.position_spread[1], bf16.tolerance);
}

TEST(Verdict, AnExpertFlipThatTheTargetsOwnRouterScoresExplainIsANearTie) {
  const CaseOutcome o = run_first_case(fixture("deepseek_v3_expert_flip_fp16.md"));
  EXPECT_TRUE(case_failures(o.result).empty()) << o.actual;
  for (const TargetRow& row : o.result.numerics)
    if (row.label == "cpu fp16") {
      EXPECT_TRUE(row.ok && !row.ill_conditioned) << o.actual;
      EXPECT_GE(row.near_ties, 1) << o.actual;
    }
}

TEST(Verdict, TheToleranceOfAModelThatMagnifiesRoundingIsMeasured) {
  // The fixture's model: 3 layers (depth 12 * 3 + 3 = 39), longest reduction 64 (4 heads of 16).
  // Its fp32 rows err by more than the depth and reduction model allows (docs/numerics.md), so
  // the tolerance is measured; it still holds the healthy target within it.
  const CaseOutcome o = run_first_case(fixture("qwen3_next_ill_conditioned_bf16.md"));
  const TargetRow& fp32 = o.result.numerics.at(0);
  const double modelled = default_tolerance(DType::f32, Workload{39, 64});
  EXPECT_GT(fp32.rel_l2, modelled / kToleranceMultiple);
  EXPECT_GT(fp32.tolerance, 2 * modelled);
  EXPECT_LT(fp32.rel_l2, fp32.tolerance);
}

// Multiplies every result by `factor`: a kernel that is wrong by a scale.
class Scaling final : public StoringBackend<float> {
 public:
  explicit Scaling(double factor)
      : StoringBackend<float>(make_cpu_backend<float>()), factor_(static_cast<float>(factor)) {}

 protected:
  void store(float* values, int64_t n, int) override {
    for (int64_t i = 0; i < n; ++i) values[i] *= factor_;
  }

 private:
  float factor_;
};

TEST(Verdict, PastTheConditioningBoundAnIllConditionedTargetFails) {
  // Softmax over scores of scale 16 in bf16: 4 x sqrt(2) x (16 x 2^-8 + 2^-24 x 4) = 0.354, past
  // the largest tolerance (0.25).
  const CaseFile file = parse_case_file(
      "# T\n\n## K\n\n### Kernel\n\n```json\n"
      "{\"op\": \"softmax\", \"rows\": 2, \"len\": 16, \"scale\": 16, \"seed\": 1}\n```\n\n"
      "### Targets\n\n```json\n{\"targets\": [\"cpu bf16\"]}\n```\n");
  auto scaled_by = [](double factor) {
    return [factor](const Target&) -> std::unique_ptr<Backend<float>> {
      return make_rounding_backend(std::make_unique<Scaling>(factor), DType::bf16);
    };
  };
  const CaseOutcome off = run_one_case(file.cases.at(0), "", "\n", scaled_by(1.3));
  const TargetRow& row = off.result.numerics.at(0);
  EXPECT_EQ(row.tolerance, kMaxTolerance);
  EXPECT_NEAR(row.conditioning_bound, 4 * std::sqrt(2.0) * (16 * std::ldexp(1.0, -8) + std::ldexp(1.0, -22)), 1e-12);
  EXPECT_GT(row.rel_l2, row.tolerance);
  EXPECT_TRUE(row.ill_conditioned) << off.actual;
  EXPECT_TRUE(case_failures(off.result).empty());
  const CaseOutcome far = run_one_case(file.cases.at(0), "", "\n", scaled_by(1.5));
  EXPECT_FALSE(far.result.numerics.at(0).ok) << far.actual;
  EXPECT_FALSE(far.result.numerics.at(0).ill_conditioned);
  EXPECT_TRUE(contains(far.actual, "| FAIL |")) << far.actual;
  EXPECT_EQ(case_failures(far.result).size(), 1u);
}

TEST(Verdict, NanErrorsPrintAsNanInEveryColumn) {
  const CaseOutcome o = run_first_case(fixture("fp16_nan_max_abs.md"));
  EXPECT_TRUE(contains(o.actual, "| cpu fp16 | nan | nan | yes |")) << o.actual;
  EXPECT_FALSE(contains(o.actual, "≤ 0 ")) << o.actual;
  EXPECT_FALSE(contains(o.actual, "≤ nan")) << o.actual;
  EXPECT_EQ(case_failures(o.result).size(), 1u);
}

TEST(Verdict, AProblemThatDependsOnTheMachineFailsEveryRunAndIsNeverPinned) {
  // A memory budget set in the environment: its refusal names this machine's number.
  ScopedEnv budget("PINMARK_MEMORY_BUDGET", "1K");
  const std::string text =
      "# T\n\n## K\n\n### Kernel\n\n```json\n{\"op\": \"matmul\", \"n\": 64, \"k\": 64, "
      "\"m\": 64, \"seed\": 1}\n```\n";
  const CaseFile file = parse_case_file(text);
  const CaseOutcome o = run_one_case(file.cases.at(0), "");
  ASSERT_FALSE(o.result.unpinnable.empty()) << o.actual;
  EXPECT_TRUE(contains(o.result.unpinnable[0], "budget")) << o.result.unpinnable[0];
  EXPECT_EQ(o.actual, file.cases.at(0).text);  // regeneration leaves it as it is
  EXPECT_FALSE(case_failures(o.result).empty());
}

TEST(ReferenceBound, FollowsHowTheReferenceWasComputed) {
  const Workload work{27, 64, 1};
  ReferenceCheck exact, islands, unstated, bf16, overridden;
  set_reference_bound(exact, "float64, float32 islands widened to float64", work, std::nullopt);
  set_reference_bound(islands, "float64", work, std::nullopt);
  set_reference_bound(unstated, "", work, std::nullopt);
  set_reference_bound(bf16, "bfloat16", work, std::nullopt);
  set_reference_bound(overridden, "float64", work, 3e-6);
  EXPECT_EQ(exact.bound, kReferenceBound);
  EXPECT_DOUBLE_EQ(islands.bound, default_tolerance(DType::f32, work));
  EXPECT_GT(islands.bound, 1e-6);  // stock transformers in float64 sits at 1e-7..1e-6
  EXPECT_LT(islands.bound, 1e-4);  // and a real bug stays far outside
  EXPECT_EQ(unstated.bound, islands.bound);
  EXPECT_EQ(unstated.computation, "not stated");
  EXPECT_DOUBLE_EQ(bf16.bound, default_tolerance(DType::bf16, work));
  EXPECT_EQ(overridden.bound, 3e-6);
  EXPECT_EQ(overridden.bound_reason, "set by the case");
}

TEST(ReferenceBound, AGreedyListShorterThanTheDecodeIsNotSame) {
  TempDir dir;
  std::ofstream(dir.path() + "/reference.json")
      << R"({"prompts": [[1]], "logits": [[[0.5, -0.5]]], "greedy": [[]]})";
  SequenceOutput oracle;
  oracle.logits = {{0.5, -0.5}};
  oracle.generated = {0, 1};
  const auto check = check_against_reference(dir.path(), "ckpt", {{1}}, std::vector<SequenceOutput>{oracle}, Workload{});
  ASSERT_TRUE(check);
  ASSERT_EQ(check->rows.size(), 1u);
  EXPECT_EQ(check->rows[0].greedy, "reference has 0 of 2 tokens");
  EXPECT_FALSE(check->rows[0].ok);
}

TEST(ReferenceBound, AReferenceThatIsNotARegularFileIsNamedAsTheCaseWroteIt) {
  TempDir dir;
  ASSERT_EQ(::mkdir((dir.path() + "/reference.json").c_str(), 0755), 0);
  try {
    check_against_reference(dir.path(), "ckpt", {{1}}, std::vector<SequenceOutput>(1), Workload{});
    FAIL() << "a folder named reference.json was read";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "ckpt/reference.json")) << e.what();
    EXPECT_TRUE(contains(e.what(), "directory")) << e.what();
    EXPECT_FALSE(contains(e.what(), dir.path())) << e.what();
  }
}


TEST(EnvFlag, TakesOnlyYesOrNo) {
  for (const char* yes : {"1", "true", "YES", "on"}) {
    ScopedEnv v("PINMARK_TEST_FLAG", yes);
    EXPECT_TRUE(env_flag("PINMARK_TEST_FLAG")) << yes;
  }
  for (const char* no : {"", "0", "false", "No", "off"}) {
    ScopedEnv v("PINMARK_TEST_FLAG", no);
    EXPECT_FALSE(env_flag("PINMARK_TEST_FLAG")) << no;
  }
  EXPECT_FALSE(env_flag("PINMARK_TEST_FLAG_UNSET"));
  ScopedEnv v("PINMARK_TEST_FLAG", "maybe");
  try {
    env_flag("PINMARK_TEST_FLAG");
    FAIL() << "'maybe' was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "PINMARK_TEST_FLAG='maybe' is neither yes nor no: it takes 1, true, yes, on or 0, "
              "false, no, off");
  }
}

int run_cli(const std::vector<std::string>& args, std::string& out, std::string& err) {
  std::ostringstream o, e;
  const int status = run_command_line(args, o, e);
  out = o.str();
  err = e.str();
  return status;
}

const char* kSwiglu =
    "# T\n\n## K\n\n### Kernel\n\n```json\n{\"op\": \"swiglu\", \"n\": 5, \"seed\": 1}\n```\n\n"
    "### Targets\n\n```json\n{\"targets\": [\"cpu fp32\"]}\n```\n";

TEST(CommandLineExit, AFilterThatMatchesNoCaseIsAnError) {
  TempDir dir;
  std::ofstream(dir.path() + "/a.md") << kSwiglu;
  std::string out, err;
  EXPECT_EQ(run_cli({"run", dir.path(), "--filter", "nothing_*"}, out, err), 1);
  EXPECT_TRUE(contains(err, "no case matches 'nothing_*' in 1 file")) << err;
}

TEST(CommandLineExit, ListingAnInvalidFileIsAnErrorAndListsNoneOfItsCases) {
  TempDir dir;
  std::ofstream(dir.path() + "/bad.md") << "# T\n\n## B\n\n```python\nprint(1)\n";
  std::string out, err;
  EXPECT_EQ(run_cli({"list", dir.path()}, out, err), 1);
  EXPECT_TRUE(contains(err, "bad.md:5: ")) << err;
  EXPECT_FALSE(contains(out, ":: b")) << out;
}

TEST(CommandLineExit, MessagesOnTheTerminalAreOneLineEach) {
  TempDir dir;
  std::ofstream(dir.path() + "/a.md")
      << "# T\n\n## K\n\n### Config\n\n```json\n{\"vocab_size\": 32, \"bad\\nkey\": 1}\n```\n";
  std::string out, err;
  EXPECT_EQ(run_cli({"run", dir.path(), "-q"}, out, err), 1);
  EXPECT_TRUE(contains(out, "bad\\nkey")) << out;  // the newline is shown as \n
  EXPECT_FALSE(contains(out, "bad\nkey")) << out;
}

TEST(CommandLineExit, RegenerateTakesOnlyYesOrNo) {
  TempDir dir;
  std::ofstream(dir.path() + "/a.md") << kSwiglu;
  ScopedEnv v("REGENERATE", "false-ish");
  std::string out, err;
  EXPECT_EQ(run_cli({"run", dir.path()}, out, err), 2);
  EXPECT_TRUE(contains(err, "REGENERATE='false-ish' is neither yes nor no")) << err;
  EXPECT_EQ(test::read_file(dir.path() + "/a.md"), kSwiglu);
}

TEST(CommandLineExit, AFileThatCannotBeRewrittenDoesNotStopTheOthers) {
  TempDir dir;
  std::ofstream(dir.path() + "/a.md") << kSwiglu;
  std::ofstream(dir.path() + "/b.md") << kSwiglu;
  std::ofstream(dir.path() + "/c.md") << kSwiglu;
  // A hard-linked golden is refused: replacing it would split the links.
  ASSERT_EQ(::link((dir.path() + "/b.md").c_str(), (dir.path() + "/b.link").c_str()), 0);
  std::string out, err;
  EXPECT_EQ(run_cli({"run", dir.path(), "--regenerate", "--force", "-q"}, out, err), 1);
  EXPECT_TRUE(contains(out, "ERROR   " + dir.path() + "/b.md: ")) << out << err;
  EXPECT_TRUE(contains(out, "regenerated 2 files")) << out;
  EXPECT_NE(test::read_file(dir.path() + "/a.md"), kSwiglu);
  EXPECT_NE(test::read_file(dir.path() + "/c.md"), kSwiglu);
  EXPECT_EQ(test::read_file(dir.path() + "/b.md"), kSwiglu);
}

TEST(Audit, FindsAToleranceThatAcceptsANullOutputAndPassesTheShippedKind) {
  TempDir dir;
  std::ofstream(dir.path() + "/loose.md")
      << "# T\n\n## K\n\n### Kernel\n\n```json\n{\"op\": \"swiglu\", \"n\": 5, \"seed\": 1}\n```\n\n"
         "### Targets\n\n```json\n{\"targets\": [\"cpu fp32\"], \"tolerance\": {\"cpu fp32\": 2}}\n```\n";
  std::ofstream(dir.path() + "/healthy.md") << kSwiglu;
  AuditResult loose, healthy;
  audit_null_outputs({dir.path() + "/loose.md"}, loose);
  audit_null_outputs({dir.path() + "/healthy.md"}, healthy);
  EXPECT_EQ(loose.null_checks, 3);  // zeros, a permutation, another seed
  ASSERT_FALSE(loose.accepted.empty());
  EXPECT_TRUE(contains(loose.accepted[0], "loose.md :: k: cpu fp32 (tolerance 2.000000) accepts all zeros"))
      << loose.accepted[0];
  EXPECT_EQ(healthy.null_checks, 3);
  EXPECT_TRUE(healthy.accepted.empty());
}

TEST(Audit, AnInvalidFileIsAFindingNamedByFileAndLine) {
  TempDir dir;
  std::ofstream(dir.path() + "/bad.md") << "# T\n\n## K\n\n```json\n{\n";  // fence never closed
  AuditResult result;
  audit_null_outputs({dir.path() + "/bad.md"}, result);
  ASSERT_EQ(result.invalid.size(), 1u);
  EXPECT_TRUE(contains(result.invalid[0], "bad.md:5: the code fence opened at line 5 is never closed"))
      << result.invalid[0];
  std::ostringstream printed;
  print_audit(result, printed);
  EXPECT_TRUE(contains(printed.str(), "INVALID  ")) << printed.str();
}

TEST(Audit, ANullOutputWithinAnIllConditionedRowsBoundIsListedNotAccepted) {
  TempDir dir;
  std::ofstream(dir.path() + "/ill.md") << fixture("qwen3_next_ill_conditioned_bf16.md");
  AuditResult result;
  audit_null_outputs({dir.path() + "/ill.md"}, result);
  EXPECT_TRUE(result.accepted.empty());
  ASSERT_FALSE(result.unjudged.empty());
  EXPECT_TRUE(contains(result.unjudged[0], "cpu bf16 is ill-conditioned up to")) << result.unjudged[0];
}

TEST(Audit, TheSweepRunsVariationsOfEveryTemplateAndTheHealthyRuntimePasses) {
  TempDir dir;
  std::ofstream(dir.path() + "/k.md") << kSwiglu;
  AuditResult result;
  audit_sweep({dir.path() + "/k.md"}, 20, 7, result);
  EXPECT_EQ(result.sweep_cases + result.sweep_skipped, 20);
  EXPECT_EQ(result.sweep_rows, 3 * result.sweep_cases);  // cpu fp32, bf16, fp16
  EXPECT_TRUE(result.false_failures.empty());
}

}  // namespace
}  // namespace pinmark
