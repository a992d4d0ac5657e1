// A plug-in's fused kernels. Attention (Backend::attention): one call per layer instead of
// scores, softmax and values. An implementation written from the header's formula, in fp64,
// passes on the shipped cases that exercise each of its parameters (causal mask, sliding window,
// Gemma 2's softcap, gpt-oss's sinks, decode through the cache); one that forgets the window or
// the sinks fails at the layer's attention output, the first tap a fused call produces. The
// gated MLP (Backend::gated_mlp) likewise: SwiGLU and GeGLU, dense, routed experts and shared
// experts; one that swaps gate and up fails at the layer's mlp_out.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "driver/plugin.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

// Backend::attention's formula, term by term, in fp64; `forget` drops one part of it.
class Fp64Attention : public CpuForwardingBackend {
 public:
  enum class Forget { nothing, window, sinks };
  explicit Fp64Attention(Forget forget = Forget::nothing) : forget_(forget) {}

  bool attention(const float* q, const float* k, const float* v, const int* positions,
                 const float* sinks, const AttentionParams& a, float* out) override {
    ++calls;
    const int group = a.heads / a.kv_heads;
    const int window = forget_ == Forget::window ? 0 : a.window;
    if (forget_ == Forget::sinks) sinks = nullptr;
    for (int i = 0; i < a.n; ++i)
      for (int h = 0; h < a.heads; ++h) {
        const int g = h / group;
        std::vector<double> s(a.kv_len, -std::numeric_limits<double>::infinity());
        double top = sinks ? sinks[h] : -std::numeric_limits<double>::infinity();
        for (int j = 0; j < a.kv_len; ++j) {
          if (j > positions[i] || (window > 0 && positions[i] - j >= window)) continue;
          double dot = 0;
          for (int d = 0; d < a.head_dim; ++d)
            dot += double{q[(i * a.heads + h) * a.head_dim + d]} *
                   k[(j * a.kv_heads + g) * a.head_dim + d];
          s[j] = dot * a.scale;
          if (a.softcap > 0) s[j] = a.softcap * std::tanh(s[j] / a.softcap);
          top = std::max(top, s[j]);
        }
        double sum = sinks ? std::exp(sinks[h] - top) : 0;
        for (int j = 0; j < a.kv_len; ++j) sum += std::exp(s[j] - top);
        for (int d = 0; d < a.head_dim; ++d) {
          double o = 0;
          for (int j = 0; j < a.kv_len; ++j)
            o += std::exp(s[j] - top) / sum * v[(j * a.kv_heads + g) * a.head_dim + d];
          out[(i * a.heads + h) * a.head_dim + d] = static_cast<float>(o);
        }
      }
    return true;
  }
  static inline int calls = 0;

 private:
  Forget forget_;
};

// Backend::gated_mlp's formula in fp64; `swap` feeds up to the activation instead of gate.
class Fp64Mlp : public CpuForwardingBackend {
 public:
  explicit Fp64Mlp(bool swap = false) : swap_(swap) {}
  bool gated_mlp(const float* x, const float* gate, const float* up, const float* down, int n,
                 int hidden, int inter, GatedActivation act, float* out) override {
    ++calls;
    if (swap_) std::swap(gate, up);
    std::vector<double> a(inter);
    for (int r = 0; r < n; ++r) {
      for (int j = 0; j < inter; ++j) {
        double g = 0, u = 0;
        for (int d = 0; d < hidden; ++d) {
          g += double{x[r * hidden + d]} * gate[j * hidden + d];
          u += double{x[r * hidden + d]} * up[j * hidden + d];
        }
        double f = 0;
        if (act == GatedActivation::silu) f = g / (1 + std::exp(-g));
        if (act == GatedActivation::gelu) f = 0.5 * g * (1 + std::erf(g / std::sqrt(2.0)));
        if (act == GatedActivation::gelu_tanh)
          f = 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)));
        a[j] = f * u;
      }
      for (int d = 0; d < hidden; ++d) {
        double o = 0;
        for (int j = 0; j < inter; ++j) o += a[j] * down[d * inter + j];
        out[r * hidden + d] = static_cast<float>(o);
      }
    }
    return true;
  }
  static inline int calls = 0;

 private:
  bool swap_;
};

// The shipped case of `file` titled `title`, with `targets` as its Targets.
CaseResult run_shipped(const std::string& file, const std::string& title,
                       const std::string& targets) {
  const std::string path = std::string(PINMARK_SOURCE_DIR) + "/cases/models/" + file;
  const CaseFile parsed = parse_case_file(test::read_file(path));
  for (const Case& c : parsed.cases) {
    if (c.title != title) continue;
    const CaseFile one = parse_case_file("# T\n\n" + c.text + "\n### Targets\n\n```json\n" +
                                         "{\"targets\": " + targets + "}\n```\n");
    return run_case(read_case_spec(one.cases.at(0), path), make_backend);
  }
  throw std::runtime_error("no case '" + title + "' in " + file);
}

const TargetRow& row(const CaseResult& r, const std::string& label) {
  for (const TargetRow& row : r.numerics)
    if (row.label == label) return row;
  throw std::runtime_error("no row " + label);
}

// The plug-in's rows `name` fp32 and bf16 pass, and computing one op in fp64 leaves the rest of
// the fp32 forward: the fp32 row within the error bucket of cpu fp32.
void expect_rows_pass(const CaseResult& r, const std::string& name) {
  ASSERT_TRUE(r.problems.empty()) << r.problems[0].message;
  for (const std::string& label : {name + " fp32", name + " bf16"}) {
    SCOPED_TRACE(label);
    EXPECT_TRUE(row(r, label).ok) << row(r, label).first_divergence;
  }
  EXPECT_LT(row(r, name + " fp32").rel_l2, 4 * row(r, "cpu fp32").rel_l2 + 1e-12);
}

// On the shipped case, target `good` passes and `bad` fails, first at `tap`.
void expect_fails_at(const std::string& file, const std::string& title, const std::string& good,
                     const std::string& bad, const std::string& tap) {
  const CaseResult r = run_shipped(file, title, "[\"" + good + "\", \"" + bad + "\"]");
  ASSERT_TRUE(r.problems.empty()) << r.problems[0].message;
  EXPECT_TRUE(row(r, good).ok);
  EXPECT_FALSE(row(r, bad).ok);
  EXPECT_EQ(row(r, bad).first_divergence, tap);
}

class FusedAttention : public ::testing::Test {
 protected:
  void SetUp() override {
    clear_registered_targets();
    register_target("fused fp32", [] { return std::make_unique<Fp64Attention>(); });
    register_target("fused bf16", [] { return std::make_unique<Fp64Attention>(); });
    register_target("nowindow fp32", [] {
      return std::make_unique<Fp64Attention>(Fp64Attention::Forget::window);
    });
    register_target("nosinks fp32", [] {
      return std::make_unique<Fp64Attention>(Fp64Attention::Forget::sinks);
    });
    register_target("mlp fp32", [] { return std::make_unique<Fp64Mlp>(); });
    register_target("mlp bf16", [] { return std::make_unique<Fp64Mlp>(); });
    register_target("swapped fp32", [] { return std::make_unique<Fp64Mlp>(true); });
    Fp64Attention::calls = 0;
    Fp64Mlp::calls = 0;
  }
  void TearDown() override { clear_registered_targets(); }
};

struct Shipped {
  const char* file;
  const char* title;
};

class FusedAttentionOn : public FusedAttention, public ::testing::WithParamInterface<Shipped> {};

TEST_P(FusedAttentionOn, TheFormulaPassesWhereTheOpByOpPathDoes) {
  const CaseResult r = run_shipped(GetParam().file, GetParam().title,
                                   R"(["cpu fp32", "fused fp32", "cpu bf16", "fused bf16"])");
  EXPECT_GT(Fp64Attention::calls, 0);
  expect_rows_pass(r, "fused");
  EXPECT_EQ(row(r, "fused fp32").first_divergence, "");
  EXPECT_EQ(row(r, "fused bf16").first_divergence, "");
}

INSTANTIATE_TEST_SUITE_P(
    EachParameter, FusedAttentionOn,
    ::testing::Values(Shipped{"mistral.md", "Sliding window 4 over a nine-token prompt"},
                      Shipped{"mistral.md", "Sliding window 4, one token at a time through the cache"},
                      Shipped{"gemma.md", "Gemma 2 with softcaps that bite"},
                      Shipped{"gpt_oss.md", "Two layers: sliding then full"}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

TEST_F(FusedAttention, ForgettingTheWindowFailsAtTheFirstSlidingLayersOutput) {
  expect_fails_at("mistral.md", "Sliding window 4 over a nine-token prompt", "fused fp32", "nowindow fp32", "layers.0.attn_out");
}

TEST_F(FusedAttention, ForgettingTheSinksFailsAtTheFirstLayersOutput) {
  expect_fails_at("gpt_oss.md", "Two layers: sliding then full", "fused fp32", "nosinks fp32", "layers.0.attn_out");
}

class FusedMlpOn : public FusedAttention, public ::testing::WithParamInterface<Shipped> {};

TEST_P(FusedMlpOn, TheFormulaPassesWhereTheOpByOpPathDoes) {
  const CaseResult r = run_shipped(GetParam().file, GetParam().title,
                                   R"(["cpu fp32", "mlp fp32", "cpu bf16", "mlp bf16"])");
  EXPECT_GT(Fp64Mlp::calls, 0);
  expect_rows_pass(r, "mlp");
}

INSTANTIATE_TEST_SUITE_P(
    EachUse, FusedMlpOn,
    ::testing::Values(Shipped{"mistral.md", "Sliding window 4 over a nine-token prompt"},
                      Shipped{"gemma.md", "Gemma, (1 + w) norms, scaled embeddings and GeGLU"},
                      Shipped{"mixtral.md", "Four experts, top-2, the routing of layer 0"},
                      Shipped{"deepseek_v3.md", "MLA and grouped routing"}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

TEST_F(FusedAttention, AnMlpThatSwapsGateAndUpFailsAtTheFirstMlpOut) {
  expect_fails_at("mistral.md", "Sliding window 4 over a nine-token prompt", "mlp fp32", "swapped fp32", "layers.0.mlp_out");
}

}  // namespace
}  // namespace pinmark
