// Plug-in targets (driver/plugin.h): registering a target under a name, selecting it in a
// case's Targets, its row in Numerics with the first divergence, and pinmark::main's entry.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "driver/file_run.h"
#include "driver/plugin.h"
#include "driver/render.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::contains;
using test::describe;
using test::Result;

// pinmark's own kernels for everything: rows equal to cpu's, bit for bit.
std::unique_ptr<Backend<float>> forwarding() { return std::make_unique<CpuForwardingBackend>(); }

// RMSNorm over the mean instead of the mean of squares: wrong from the first norm on.
class MeanNorm : public CpuForwardingBackend {
 public:
  void rmsnorm(const float* x, const float* w, int n, int dim, double eps, float* y) override {
    for (int r = 0; r < n; ++r) {
      double mean = 0;
      for (int d = 0; d < dim; ++d) mean += x[r * dim + d];
      mean /= dim;
      const float inv = static_cast<float>(1 / std::sqrt(std::fabs(mean) + eps));
      for (int d = 0; d < dim; ++d) y[r * dim + d] = x[r * dim + d] * inv * w[d];
    }
  }
};

// Counts the calls it forwards, to show which kernels a case reached.
class Counting : public CpuForwardingBackend {
 public:
  explicit Counting(int* calls) : calls_(calls) {}
  void matmul(const float* x, const float* w, int n, int k, int m, float* y) override {
    ++*calls_;
    cpu().matmul(x, w, n, k, m, y);
  }

 private:
  int* calls_;
};

const std::string kModelCaseUpToTargets =
    "# T\n\n## M\n\n### Config\n\n```json\n"
    "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 32,\n"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"pinmark\": {\"seed\": 11}}\n"
    "```\n\n### Inputs\n\n```json\n{\"prompts\": [[1, 5, 9, 3]], \"decode\": 2, \"dumps\": []}\n"
    "```\n\n### Targets\n\n```json\n";

std::string model_case(const std::string& targets) {
  return kModelCaseUpToTargets + "{\"targets\": " + targets + ", \"pin_bits\": true}\n```\n";
}

std::string kernel_case(const std::string& targets) {
  return "# T\n\n## K\n\n### Kernel\n\n```json\n"
         "{\"op\": \"matmul\", \"n\": 3, \"k\": 9, \"m\": 4, \"seed\": 2}\n```\n\n"
         "### Targets\n\n```json\n{\"targets\": " +
         targets + ", \"pin_bits\": true}\n```\n";
}

CaseResult run(const std::string& text) {
  const CaseFile file = parse_case_file(text);
  return run_case(read_case_spec(file.cases.at(0)), make_backend);
}

std::vector<std::string> problems_of(const CaseResult& r) {
  std::vector<std::string> out;
  for (const CaseProblem& p : r.problems) out.push_back(problem_line(p));
  return out;
}

const TargetRow& row(const CaseResult& r, const std::string& label) {
  for (const TargetRow& row : r.numerics)
    if (row.label == label) return row;
  throw std::runtime_error("no row " + label);
}

std::string registration_error(const std::string& name, PluginFactory factory = forwarding) {
  try {
    register_target(name, std::move(factory));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(registered)";
}

class Plugin : public ::testing::Test {
 protected:
  void SetUp() override { clear_registered_targets(); }
  void TearDown() override { clear_registered_targets(); }
};

TEST_F(Plugin, RegistrationRejectsBadNames) {
  EXPECT_EQ(registration_error("mykernels"),
            "a plug-in target is '<name> <precision>', e.g. 'mykernels fp32', the name of "
            "letters, digits, '_', '-' or '.', not 'mykernels'");
  EXPECT_EQ(registration_error("my kernels fp32"),
            "a plug-in target is '<name> <precision>', e.g. 'mykernels fp32', the name of "
            "letters, digits, '_', '-' or '.', not 'my kernels fp32'");
  EXPECT_EQ(registration_error("my/kernels fp32"),
            "a plug-in target is '<name> <precision>', e.g. 'mykernels fp32', the name of "
            "letters, digits, '_', '-' or '.', not 'my/kernels fp32'");
  EXPECT_EQ(registration_error("cpu fp32"),
            "'cpu fp32': 'cpu' is a built-in backend; a plug-in target needs a name of its own, "
            "e.g. 'mykernels fp32'");
  EXPECT_EQ(registration_error("cuda bf16"),
            "'cuda bf16': 'cuda' is a built-in backend; a plug-in target needs a name of its "
            "own, e.g. 'mykernels fp32'");
  EXPECT_EQ(registration_error("cuda-tp2 bf16"),
            "'cuda-tp2 bf16': 'cuda-tp2' is a built-in backend; a plug-in target needs a name "
            "of its own, e.g. 'mykernels fp32'");
  EXPECT_EQ(registration_error("mykernels tf32"),
            "unknown precision 'tf32' in plug-in target 'mykernels tf32' (known: fp32, bf16, "
            "fp16)");
  EXPECT_EQ(registration_error("mykernels fp32", nullptr),
            "plug-in target 'mykernels fp32' has no factory");
  EXPECT_TRUE(registered_targets().empty());
}

TEST_F(Plugin, RegistrationRejectsANameTwice) {
  EXPECT_EQ(registration_error("mykernels fp32"), "(registered)");
  EXPECT_EQ(registration_error("mykernels fp32"),
            "plug-in target 'mykernels fp32' is registered twice");
  EXPECT_EQ(registration_error("mykernels bf16"), "(registered)");
  EXPECT_EQ(registered_targets(), (std::vector<std::string>{"mykernels bf16", "mykernels fp32"}));
}

TEST_F(Plugin, AnUnregisteredNameIsAnErrorThatSaysWhatIsRegistered) {
  // With nothing registered, the message is the built-in one.
  CaseResult r = run(kernel_case(R"(["mykernels fp32"])"));
  EXPECT_EQ(problems_of(r),
            std::vector<std::string>{
                "Targets, line 1: unknown backend 'mykernels' in target 'mykernels fp32' (known: "
                "cpu, cuda, cuda-tp2)"});
  register_target("other fp32", forwarding);
  r = run(kernel_case(R"(["mykernels fp32"])"));
  EXPECT_EQ(problems_of(r),
            std::vector<std::string>{
                "Targets, line 1: unknown backend 'mykernels' in target 'mykernels fp32' (known: "
                "cpu, cuda, cuda-tp2); plug-in targets registered in this executable: other fp32"});
  // A registered name with another precision is not registered.
  register_target("mykernels bf16", forwarding);
  r = run(kernel_case(R"(["mykernels fp32"])"));
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_TRUE(contains(problems_of(r)[0], "registered in this executable: mykernels bf16, other "
                                          "fp32"))
      << problems_of(r)[0];
}

TEST_F(Plugin, ForwardingKernelsGiveTheCpuRowsBitForBit) {
  register_target("mine fp32", forwarding);
  register_target("mine bf16", forwarding);
  const CaseResult k = run(kernel_case(R"(["cpu fp32", "mine fp32", "cpu bf16", "mine bf16"])"));
  ASSERT_TRUE(k.problems.empty()) << problems_of(k)[0];
  EXPECT_TRUE(row(k, "mine fp32").ran && row(k, "mine fp32").ok);
  EXPECT_EQ(row(k, "mine fp32").bits, row(k, "cpu fp32").bits);
  // bf16: the rounding layer stores each op's output in bf16, as for cpu bf16.
  EXPECT_EQ(row(k, "mine bf16").bits, row(k, "cpu bf16").bits);
  EXPECT_NE(row(k, "mine bf16").bits, row(k, "mine fp32").bits);

  const CaseResult m = run(model_case(R"(["cpu bf16", "mine bf16"])"));
  ASSERT_TRUE(m.problems.empty()) << problems_of(m)[0];
  EXPECT_EQ(row(m, "mine bf16").bits, row(m, "cpu bf16").bits);
  EXPECT_EQ(row(m, "mine bf16").rel_l2, row(m, "cpu bf16").rel_l2);
  EXPECT_TRUE(row(m, "mine bf16").ok);
}

TEST_F(Plugin, TheRowRendersUnderItsName) {
  register_target("mine fp32", forwarding);
  const CaseFile file = parse_case_file(kernel_case(R"(["mine fp32"])"));
  const std::string out = render_case(file.cases.at(0), run(kernel_case(R"(["mine fp32"])")));
  EXPECT_TRUE(contains(out, "| mine fp32 | ≤ ")) << out;
  EXPECT_TRUE(contains(out, "| ok | — |")) << out;
}

TEST_F(Plugin, OverriddenKernelsAreTheOnesThatRun) {
  int calls = 0;
  register_target("counting fp32", [&calls] { return std::make_unique<Counting>(&calls); });
  const CaseResult k = run(kernel_case(R"(["counting fp32"])"));
  ASSERT_TRUE(k.problems.empty());
  EXPECT_GT(calls, 0);
}

TEST_F(Plugin, AWrongKernelFailsAtItsFirstTap) {
  register_target("meannorm fp32", [] { return std::make_unique<MeanNorm>(); });
  const CaseResult m = run(model_case(R"(["cpu fp32", "meannorm fp32"])"));
  ASSERT_TRUE(m.problems.empty()) << problems_of(m)[0];
  EXPECT_TRUE(row(m, "cpu fp32").ok);
  const TargetRow& wrong = row(m, "meannorm fp32");
  EXPECT_TRUE(wrong.ran);
  EXPECT_FALSE(wrong.ok);
  EXPECT_EQ(wrong.first_divergence, "layers.0.attn_norm");
}

TEST_F(Plugin, AFactoryWithoutABackendFailsTheCase) {
  register_target("empty fp32", [] { return std::unique_ptr<Backend<float>>(); });
  EXPECT_EQ(problems_of(run(kernel_case(R"(["empty fp32"])"))),
            std::vector<std::string>{
                "the runtime: the factory of plug-in target 'empty fp32' returned no backend"});
  register_target("throwing fp32",
                  []() -> std::unique_ptr<Backend<float>> { throw std::runtime_error("no GPU"); });
  EXPECT_EQ(problems_of(run(kernel_case(R"(["throwing fp32"])"))),
            std::vector<std::string>{
                "the runtime: the factory of plug-in target 'throwing fp32' failed: no GPU"});
}

class PluginMain : public Plugin {
 protected:
  Result pinmark(const std::function<void()>& registrations, std::vector<std::string> args) {
    std::istringstream in;
    std::ostringstream out, err;
    Result r;
    r.status = run_with_plugins(registrations, args, in, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
  }
  test::TempDir dir_;
  // The command line reads these; the tests must not depend on the environment they run in
  // (CI sets CI, which refuses --regenerate).
  test::ScopedEnv ci_{"CI", nullptr};
  test::ScopedEnv regenerate_{"REGENERATE", nullptr};
  test::ScopedEnv force_{"PINMARK_FORCE", nullptr};
};

TEST_F(PluginMain, RunsTheCommandLineWithTheRegisteredTargets) {
  const std::string path = dir_.file("mine.md");
  test::write_file(path, kernel_case(R"(["cpu fp32", "mine fp32"])"));
  const auto registrations = [] { register_target("mine fp32", forwarding); };
  Result r = pinmark(registrations, {"run", path, "--regenerate", "--color=never"});
  ASSERT_EQ(r.status, 0) << describe(r);
  const std::string golden = test::read_file(path);
  EXPECT_TRUE(contains(golden, "| mine fp32 | ≤ ")) << golden;
  clear_registered_targets();
  r = pinmark(registrations, {"run", path, "-q", "--color=never"});
  EXPECT_EQ(r.status, 0) << describe(r);
  // Without the registration the file is invalid: the plug-in's name is unknown.
  clear_registered_targets();
  r = pinmark([] {}, {"run", path, "-q", "--color=never"});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.out + r.err, "unknown backend 'mine'")) << describe(r);
}

TEST_F(PluginMain, AFailedRegistrationRunsNothing) {
  const std::string path = dir_.file("mine.md");
  test::write_file(path, kernel_case(R"(["cpu fp32"])"));
  const Result r =
      pinmark([] { register_target("cpu fp32", forwarding); }, {"run", path, "--regenerate"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err,
            "pinmark: registering plug-in targets failed: 'cpu fp32': 'cpu' is a built-in "
            "backend; a plug-in target needs a name of its own, e.g. 'mykernels fp32'\n");
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(test::read_file(path), kernel_case(R"(["cpu fp32"])"));  // not regenerated
}

}  // namespace
}  // namespace pinmark
