#include "runtime/model.h"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "mirroring_backend.h"
#include "resident_backend.h"
#include "model_fixture.h"
#include "reference_model.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/generate.h"
#include "runtime/random.h"
#include "test_util.h"

namespace pinmark {
namespace {

using test::expect_close;
using test::small_llama;

const std::vector<int> kPrompt = {1, 5, 9, 3, 31, 0, 17};

template <class T>
std::vector<double> logits_of(const ModelConfig& config, const Weights& weights,
                              const std::vector<int>& tokens) {
  auto backend = make_cpu_backend<T>();
  Model<T> model(config, weights, *backend);
  KVCache<T> cache(config, static_cast<int>(tokens.size()));
  return to_double(model.forward(tokens, cache).data);
}

// kPrompt fed through `cache` `chunk` tokens at a time: every call's logits, in order.
template <class T>
std::vector<T> forward_in_chunks(Model<T>& model, KVCache<T>& cache, int chunk) {
  std::vector<T> pieces;
  for (size_t s = 0; s < kPrompt.size(); s += chunk) {
    const size_t e = std::min(kPrompt.size(), s + chunk);
    const Tensor<T> part =
        model.forward(std::vector<int>(kPrompt.begin() + s, kPrompt.begin() + e), cache);
    EXPECT_EQ(part.shape, (Shape{static_cast<int64_t>(e - s), model.config().vocab_size}));
    pieces.insert(pieces.end(), part.data.begin(), part.data.end());
  }
  return pieces;
}

TEST(Model, Fp64MatchesTheReferenceForwardPass) {
  for (bool tied : {false, true}) {
    const ModelConfig c = small_llama(tied);
    const Weights w = synthetic_weights(c);
    expect_close(logits_of<double>(c, w, kPrompt), ref::llama_logits(c, w, kPrompt), 1e-12,
                 tied ? "tied" : "untied");
  }
}

TEST(Model, MatchesTheReferenceWithExplicitHeadDimAndMultiQuery) {
  ModelConfig c = small_llama();
  c.head_dim = 10;
  c.num_key_value_heads = 1;
  c.rope_theta = 500000.0;
  const Weights w = synthetic_weights(c);
  expect_close(logits_of<double>(c, w, kPrompt), ref::llama_logits(c, w, kPrompt), 1e-12);
}

TEST(Model, Fp32IsCloseToFp64) {
  const ModelConfig c = small_llama();
  const Weights w = synthetic_weights(c);
  const std::vector<double> fp64 = logits_of<double>(c, w, kPrompt);
  const std::vector<double> fp32 = logits_of<float>(c, w, kPrompt);
  const double err = test::relative_l2(fp32, fp64);
  EXPECT_LT(err, 1e-4);
  EXPECT_GT(err, 0.0) << "fp32 logits identical to fp64: not fp32 arithmetic";
}

// Feeding the prompt through the cache in pieces computes the same function.
TEST(Model, ChunkedPrefillMatchesPrefillAll) {
  const ModelConfig c = small_llama();
  const Weights w = synthetic_weights(c);
  auto backend = make_cpu_backend<double>();
  Model<double> model(c, w, *backend);
  KVCache<double> all_cache(c, 7);
  const std::vector<double> all = model.forward(kPrompt, all_cache).data;
  EXPECT_EQ(all_cache.length(), 7);

  for (int chunk : {1, 3}) {
    KVCache<double> cache(c, 7);
    const std::vector<double> pieces = forward_in_chunks(model, cache, chunk);
    EXPECT_EQ(cache.length(), 7);
    expect_close(pieces, all, 1e-12, "chunk " + std::to_string(chunk));
  }
}

TEST(Model, TapsEveryIntermediateInOrderWithItsShape) {
  const ModelConfig c = small_llama();
  const Weights w = synthetic_weights(c);
  auto backend = make_cpu_backend<double>();
  Model<double> model(c, w, *backend);
  KVCache<double> cache(c, 10);
  model.forward({4, 2}, cache);  // two cached positions, then three new tokens
  std::vector<std::pair<std::string, Shape>> seen;
  Tensor<double> scores;
  model.forward(
      {7, 8, 9}, cache, [&](const std::string& name, const Shape& shape, const double* d) {
        seen.emplace_back(name, shape);
        if (name == "layers.1.scores")
          scores = Tensor<double>(shape, std::vector<double>(d, d + element_count(shape)));
      });

  std::vector<std::pair<std::string, Shape>> expected = {{"embed", {3, 24}}};
  for (const char* l : {"layers.0.", "layers.1."}) {
    const std::string p = l;
    expected.push_back({p + "attn_norm", {3, 24}});
    expected.push_back({p + "q", {3, 4, 6}});
    expected.push_back({p + "k", {3, 2, 6}});
    expected.push_back({p + "v", {3, 2, 6}});
    expected.push_back({p + "scores", {4, 3, 5}});
    expected.push_back({p + "attn_out", {3, 24}});
    expected.push_back({p + "mlp_out", {3, 24}});
  }
  expected.push_back({"final_norm", {3, 24}});
  expected.push_back({"logits", {3, 32}});
  EXPECT_EQ(seen, expected);

  // The scores tap holds probabilities: causal zeros, rows summing to one.
  for (int h = 0; h < 4; ++h)
    for (int i = 0; i < 3; ++i) {
      double total = 0;
      for (int j = 0; j < 5; ++j) {
        const double p = scores.data[(h * 3 + i) * 5 + j];
        if (j > 2 + i) {
          EXPECT_EQ(p, 0.0);
        }
        total += p;
      }
      EXPECT_NEAR(total, 1.0, 1e-14);
    }
}

TEST(Model, TiedModelNeedsNoLmHeadAndUntiedDoes) {
  const Weights tied_weights = synthetic_weights(small_llama(true));
  auto backend = make_cpu_backend<double>();
  EXPECT_NO_THROW(Model<double>(small_llama(true), tied_weights, *backend));
  try {
    Model<double> model(small_llama(false), tied_weights, *backend);
    FAIL() << "untied model built without lm_head.weight";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "missing tensor 'lm_head.weight'");
  }
  // The head really is the embedding table when tied, and a different matrix when not.
  const std::vector<double> tied = logits_of<double>(small_llama(true), tied_weights, kPrompt);
  const std::vector<double> untied =
      logits_of<double>(small_llama(false), synthetic_weights(small_llama(false)), kPrompt);
  EXPECT_NE(tied, untied);
}

TEST(Model, RejectsWeightsOfTheWrongShape) {
  const ModelConfig c = small_llama();
  Weights w = synthetic_weights(c);
  w["model.layers.1.mlp.down_proj.weight"].shape = {40, 24};
  auto backend = make_cpu_backend<float>();
  try {
    Model<float> model(c, w, *backend);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(),
                 "tensor 'model.layers.1.mlp.down_proj.weight' has shape [40, 24], expected "
                 "[24, 40]");
  }
}

TEST(Model, RejectsAnInvalidConfig) {
  ModelConfig c = small_llama();
  const Weights w = synthetic_weights(c);
  c.num_key_value_heads = 3;
  auto backend = make_cpu_backend<double>();
  try {
    Model<double> model(c, w, *backend);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "num_attention_heads (4) is not divisible by num_key_value_heads (3)");
  }
}

std::string forward_error(const std::vector<int>& tokens, int capacity, int cached = 0) {
  const ModelConfig c = small_llama();
  auto backend = make_cpu_backend<double>();
  Model<double> model(c, synthetic_weights(c), *backend);
  KVCache<double> cache(c, capacity);
  if (cached > 0) model.forward(std::vector<int>(cached, 1), cache);
  try {
    model.forward(tokens, cache);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Model, InputErrors) {
  EXPECT_EQ(forward_error({1, 40, 2}, 8), "token id 40 is outside the vocabulary (vocab_size 32)");
  EXPECT_EQ(forward_error({32}, 8), "token id 32 is outside the vocabulary (vocab_size 32)");
  EXPECT_EQ(forward_error({-1}, 8), "token id -1 is outside the vocabulary (vocab_size 32)");
  EXPECT_EQ(forward_error({}, 8), "empty prompt");
  EXPECT_EQ(forward_error({1, 2, 3}, 4, 2),
            "KV cache overflow: 2 cached + 3 new tokens exceed its capacity of 4");
  EXPECT_EQ(forward_error({1, 2}, 4, 2), "no error");
}

// A backend that forwards to the CPU reference but nudges the output of one chosen op. If
// the model computed anything itself, or skipped an op, nudging it would leave the logits alone.
class NudgingBackend : public Backend<double> {
 public:
  explicit NudgingBackend(std::string op) : op_(std::move(op)) {}

  void embed(const double* t, const int* tok, int n, int dim, double* out) override {
    cpu_->embed(t, tok, n, dim, out);
    nudge("embed", out, int64_t{n} * dim);
  }
  void matmul(const double* x, const double* w, int n, int k, int m, double* y) override {
    if (!held_.count(w)) ++unannounced_;
    cpu_->matmul(x, w, n, k, m, y);
    nudge("matmul", y, int64_t{n} * m);
  }
  void hold_matrix(const double* w, int k, int m, MatrixRole role) override {
    EXPECT_TRUE(held_.insert(w).second) << "a weight announced twice";
    if (role == MatrixRole::output_projection) ++output_projections_;
    cpu_->hold_matrix(w, k, m, role);
  }
  void release_matrix(const double* w) override {
    EXPECT_EQ(held_.erase(w), 1u) << "a weight released that was not held";
    cpu_->release_matrix(w);
  }
  // Weights held now, and matmul or matmul_bias calls whose matrix was not announced.
  size_t holding() const { return held_.size(); }
  int unannounced() const { return unannounced_; }
  int output_projections() const { return output_projections_; }
  void rmsnorm(const double* x, const double* w, int n, int dim, double eps, double* y) override {
    cpu_->rmsnorm(x, w, n, dim, eps, y);
    nudge("rmsnorm", y, int64_t{n} * dim);
  }
  void rope(double* x, const int* pos, int n, int heads, int hd, double theta) override {
    cpu_->rope(x, pos, n, heads, hd, theta);
    nudge("rope", x, int64_t{n} * heads * hd);
  }
  void attention_scores(const double* q, const double* k, const int* pos, int n, int kv_len,
                        int heads, int kv_heads, int hd, double scale, double* s) override {
    cpu_->attention_scores(q, k, pos, n, kv_len, heads, kv_heads, hd, scale, s);
    nudge("attention_scores", s, int64_t{heads} * n * kv_len);
  }
  void softmax(double* x, int rows, int len) override {
    cpu_->softmax(x, rows, len);
    nudge("softmax", x, int64_t{rows} * len);
  }
  void attention_values(const double* p, const double* v, int n, int kv_len, int heads,
                        int kv_heads, int hd, double* out) override {
    cpu_->attention_values(p, v, n, kv_len, heads, kv_heads, hd, out);
    nudge("attention_values", out, int64_t{n} * heads * hd);
  }
  void swiglu(const double* g, const double* u, int64_t n, double* out) override {
    cpu_->swiglu(g, u, n, out);
    nudge("swiglu", out, n);
  }
  void clamped_swiglu(const double* g, const double* u, int64_t n, double alpha, double limit,
                      double* out) override {
    cpu_->clamped_swiglu(g, u, n, alpha, limit, out);
    nudge("clamped_swiglu", out, n);
  }
  void add(double* y, const double* x, int64_t n) override {
    cpu_->add(y, x, n);
    nudge("add", y, n);
  }
  void causal_conv1d_silu(const double* x, const double* w, int n, int channels, int kernel,
                          double* out) override {
    cpu_->causal_conv1d_silu(x, w, n, channels, kernel, out);
    nudge("causal_conv1d_silu", out, int64_t{n} * channels);
  }
  void gated_delta_rule(const double* qkv, const double* a, const double* b, const double* A_log,
                        const double* dt_bias, const GatedDeltaParams& p, double* state,
                        double* out) override {
    cpu_->gated_delta_rule(qkv, a, b, A_log, dt_bias, p, state, out);
    nudge("gated_delta_rule", out, int64_t{p.n} * p.v_heads * p.v_dim);
  }
  void rmsnorm_gated(const double* x, const double* w, const double* g, int n, int dim,
                     double eps, double* y) override {
    cpu_->rmsnorm_gated(x, w, g, n, dim, eps, y);
    nudge("rmsnorm_gated", y, int64_t{n} * dim);
  }
  void sigmoid_gate(const double* x, const double* g, int64_t n, double* out) override {
    cpu_->sigmoid_gate(x, g, n, out);
    nudge("sigmoid_gate", out, n);
  }
  void indexer_scores(const double* q, const double* k, const double* w, const int* positions,
                      int n, int kv_len, int heads, int head_dim, double scale,
                      double weight_scale, double* out) override {
    cpu_->indexer_scores(q, k, w, positions, n, kv_len, heads, head_dim, scale, weight_scale, out);
    nudge("indexer_scores", out, int64_t{n} * kv_len);
  }
  void mix_streams(const double* x, const double* coefs, int n, int in_streams, int out_streams,
                   int dim, double* y) override {
    cpu_->mix_streams(x, coefs, n, in_streams, out_streams, dim, y);
    nudge("mix_streams", y, int64_t{out_streams} * n * dim);
  }
  void softmax_pool(const double* kv, const double* gate, int n, int slots, int dim,
                    double* out) override {
    cpu_->softmax_pool(kv, gate, n, slots, dim, out);
    nudge("softmax_pool", out, int64_t{n} * dim);
  }
  void scale_columns(const double* x, const double* w, int n, int dim, double* y) override {
    cpu_->scale_columns(x, w, n, dim, y);
    nudge("scale_columns", y, int64_t{n} * dim);
  }
  void rescale_rms(const double* x, const double* ref, int n, int dim, double floor,
                   double* y) override {
    cpu_->rescale_rms(x, ref, n, dim, floor, y);
    nudge("rescale_rms", y, int64_t{n} * dim);
  }
  void gaussian_topk(double* x, int n, int dim, double std_multiplier) override {
    cpu_->gaussian_topk(x, n, dim, std_multiplier);
    nudge("gaussian_topk", x, int64_t{n} * dim);
  }
  void matmul_bias(const double* x, const double* w, const double* b, int n, int k, int m,
                   double* y) override {
    if (!held_.count(w)) ++unannounced_;
    cpu_->matmul_bias(x, w, b, n, k, m, y);
    nudge("matmul_bias", y, int64_t{n} * m);
  }
  void rmsnorm_plus_one(const double* x, const double* w, int n, int dim, double eps,
                        double* y) override {
    cpu_->rmsnorm_plus_one(x, w, n, dim, eps, y);
    nudge("rmsnorm_plus_one", y, int64_t{n} * dim);
  }
  void layernorm(const double* x, const double* w, const double* b, int n, int dim, double eps,
                 double* y) override {
    cpu_->layernorm(x, w, b, n, dim, eps, y);
    nudge("layernorm", y, int64_t{n} * dim);
  }
  void rope_freqs(double* x, const int* pos, int n, int heads, int hd,
                  const double* inv_freq, double attention_scaling) override {
    cpu_->rope_freqs(x, pos, n, heads, hd, inv_freq, attention_scaling);
    nudge("rope_freqs", x, int64_t{n} * heads * hd);
  }
  void score_mod(double* s, const int* pos, int n, int kv_len, int heads, double cap,
                 int window) override {
    cpu_->score_mod(s, pos, n, kv_len, heads, cap, window);
    nudge("score_mod", s, int64_t{heads} * n * kv_len);
  }
  void softcap(double* x, int64_t n, double cap) override {
    cpu_->softcap(x, n, cap);
    nudge("softcap", x, n);
  }
  void scale(double* x, int64_t n, double s) override {
    cpu_->scale(x, n, s);
    nudge("scale", x, n);
  }
  void gelu(const double* x, int64_t n, bool tanh, double* out) override {
    cpu_->gelu(x, n, tanh, out);
    nudge("gelu", out, n);
  }
  void geglu(const double* g, const double* u, int64_t n, bool tanh, double* out) override {
    cpu_->geglu(g, u, n, tanh, out);
    nudge("geglu", out, n);
  }
  void moe_route(const double* logits, int n, int experts, int top_k, double* probs, int* ids,
                 double* weights) override {
    cpu_->moe_route(logits, n, experts, top_k, probs, ids, weights);
    nudge("moe_route", weights, int64_t{n} * top_k);
  }
  void moe_combine(double* y, const double* x, const int* rows, const double* weights, int m,
                   int dim) override {
    cpu_->moe_combine(y, x, rows, weights, m, dim);
    nudge("moe_combine", y, int64_t{rows[m - 1] + 1} * dim);
  }

 private:
  // The last element: the last query's last key is never masked, so a nudged score counts.
  void nudge(const char* op, double* out, int64_t count) {
    if (op_ == op) out[count - 1] += 1e-3;
  }
  std::string op_;
  std::set<const double*> held_;
  int unannounced_ = 0;
  int output_projections_ = 0;
  std::unique_ptr<Backend<double>> cpu_ = make_cpu_backend<double>();
};

TEST(Model, EveryKernelGoesThroughTheBackend) {
  const ModelConfig c = small_llama();
  const Weights w = synthetic_weights(c);
  const std::vector<double> clean = logits_of<double>(c, w, kPrompt);
  for (const char* op : {"none", "embed", "matmul", "rmsnorm", "rope", "attention_scores",
                         "softmax", "attention_values", "swiglu", "add"}) {
    NudgingBackend backend(op);
    Model<double> model(c, w, backend);
    KVCache<double> cache(c, 7);
    const std::vector<double> logits = model.forward(kPrompt, cache).data;
    if (std::string(op) == "none") {
      EXPECT_EQ(logits, clean);
    } else {
      EXPECT_NE(logits, clean) << "nudging " << op << " did not change the logits";
    }
  }
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

// The family ops go through the backend too: nudging each changes the logits of a model that
// uses it.
// A two-layer model of family `type`, small enough for every test here: GQA (two KV heads) but
// for GPT-2, four experts for Mixtral.
ModelConfig small_family(const std::string& type, uint64_t seed) {
  ModelConfig c = family_defaults(type);
  c.vocab_size = 32;
  c.hidden_size = 24;
  c.intermediate_size = 40;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = type == "gpt2" ? 0 : 2;
  c.head_dim = 0;
  c.max_position_embeddings = type == "gpt2" ? 16 : 0;
  c.num_local_experts = type == "mixtral" ? 4 : 0;
  c.seed = seed;
  return c;
}

TEST(Model, EveryFamilyKernelGoesThroughTheBackend) {
  auto config = [](const std::string& type) {
    ModelConfig c = small_family(type, 5);
    c.sliding_window = type == "gemma2" || type == "mistral" ? 3 : 0;
    return c;
  };
  ModelConfig scaled = config("llama");
  scaled.rope_type = "linear";
  scaled.rope_factor = 2;
  const std::vector<std::pair<std::string, ModelConfig>> uses = {
      {"matmul_bias", config("qwen2")},  {"rmsnorm_plus_one", config("gemma")},
      {"layernorm", config("gpt2")},     {"rope_freqs", scaled},
      {"score_mod", config("mistral")},  {"softcap", config("gemma2")},
      {"scale", config("gemma")},        {"gelu", config("gpt2")},
      {"geglu", config("gemma2")},       {"moe_route", config("mixtral")},
      {"moe_combine", config("mixtral")}};
  for (const auto& [op, c] : uses) {
    const Weights w = synthetic_weights(c);
    NudgingBackend clean("none"), nudged(op);
    Model<double> a(c, w, clean), b(c, w, nudged);
    KVCache<double> ca(c, 7), cb(c, 7);
    EXPECT_NE(a.forward(kPrompt, ca).data, b.forward(kPrompt, cb).data)
        << "nudging " << op << " did not change the logits";
  }
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

// The model announces every weight it multiplies by before the first product
// (Backend::hold_matrix) and releases each when it is destroyed; the CPU backend's panels of
// the held weights give the logits, bit for bit, of a backend that keeps nothing.
TEST(Model, AnnouncesItsWeightsAndReleasesThemWhenItDies) {
  for (const std::string type : {"llama", "qwen2", "gpt2", "mixtral", "gemma2"}) {
    const ModelConfig c = small_family(type, 7);
    const Weights w = synthetic_weights(c);
    NudgingBackend backend("none");
    std::vector<double> held_logits;
    {
      Model<double> model(c, w, backend);
      KVCache<double> cache(c, 8);
      held_logits = model.forward(kPrompt, cache).data;
      model.forward({4}, cache);
      EXPECT_EQ(backend.unannounced(), 0) << type;
      EXPECT_GT(backend.holding(), 0u) << type;
      // o_proj and down_proj of each layer, or of each expert the prompt reached.
      if (type != "mixtral")
        EXPECT_EQ(backend.output_projections(), 2 * c.num_hidden_layers) << type;
      else
        EXPECT_GT(backend.output_projections(), 2 * c.num_hidden_layers) << type;
    }
    EXPECT_EQ(backend.holding(), 0u) << type << ": weights still held after the model died";
    // Each product by w itself, as a kernel case passes its matrices.
    struct Unheld final : NudgingBackend {
      Unheld() : NudgingBackend("none") {}
      void hold_matrix(const double*, int, int, MatrixRole) override {}
      void release_matrix(const double*) override {}
    };
    Unheld plain;
    Model<double> model(c, w, plain);
    KVCache<double> cache(c, 8);
    EXPECT_EQ(model.forward(kPrompt, cache).data, held_logits) << type;
  }
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

// pinmark.query_heads checked without the model's own attention code: a layer with fewer query
// heads computes what the uniform model computes when the missing heads are padded in with
// o_proj columns of zero (their outputs then add exact zeros to every sum). Real head j of a
// layer with g = heads / kv_heads heads per KV head sits at (j / g) * G + j % g of the padded
// layer with G per KV head, so that it reads the same KV head.
TEST(Model, QueryHeadsPerLayerAreTheUniformModelWithZeroPaddedHeads) {
  for (const std::string type : {"llama", "qwen3", "gpt_oss"}) {
    ModelConfig uneven = family_defaults(type);
    uneven.vocab_size = 40;
    uneven.hidden_size = 32;
    uneven.intermediate_size = 48;
    uneven.num_hidden_layers = 3;
    uneven.num_attention_heads = 8;
    uneven.num_key_value_heads = 2;
    uneven.head_dim = 8;
    uneven.num_local_experts = type == "gpt_oss" ? 4 : 0;
    uneven.num_experts_per_tok = type == "gpt_oss" ? 2 : 0;
    uneven.seed = 17;
    uneven.query_heads = {2, 8, 4};
    ASSERT_TRUE(validate(uneven).empty()) << type;
    ModelConfig uniform = uneven;
    uniform.query_heads.clear();
    const Weights small = synthetic_weights(uneven);
    Weights padded = synthetic_weights(uniform);
    const int hd = uneven.head_dim, hidden = uneven.hidden_size, wide = 8, kv = 2;
    for (int l = 0; l < uneven.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
      const int heads = uneven.query_heads[l], g = heads / kv, G = wide / kv;
      Tensor<double>& q = padded.at(p + "q_proj.weight");
      Tensor<double>& o = padded.at(p + "o_proj.weight");
      std::fill(o.data.begin(), o.data.end(), 0.0);
      for (int j = 0; j < heads; ++j) {
        const int at = (j / g) * G + j % g;
        for (int r = 0; r < hd * hidden; ++r)
          q.data[at * hd * hidden + r] = small.at(p + "q_proj.weight").data[j * hd * hidden + r];
        for (int row = 0; row < hidden; ++row)
          for (int d = 0; d < hd; ++d)
            o.data[row * wide * hd + at * hd + d] =
                small.at(p + "o_proj.weight").data[row * heads * hd + j * hd + d];
        if (type == "gpt_oss") {
          padded.at(p + "sinks").data[at] = small.at(p + "sinks").data[j];
          for (int d = 0; d < hd; ++d)
            padded.at(p + "q_proj.bias").data[at * hd + d] =
                small.at(p + "q_proj.bias").data[j * hd + d];
        }
      }
    }
    for (const auto& [name, t] : small)
      if (name.find("q_proj") == std::string::npos && name.find("o_proj.weight") == std::string::npos &&
          name.find("sinks") == std::string::npos)
        padded.at(name) = t;
    const std::vector<int> prompt = {3, 14, 15, 9, 26, 5, 35};
    EXPECT_EQ(logits_of<double>(uneven, small, prompt), logits_of<double>(uniform, padded, prompt))
        << type;
  }
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

// Qwen3-Next: three Gated DeltaNet layers, one gated attention layer, MoE with a shared expert.
ModelConfig small_qwen3_next() {
  ModelConfig c;
  c.model_type = "qwen3_next";
  c.vocab_size = 32;
  c.hidden_size = 24;
  c.intermediate_size = 40;
  c.num_hidden_layers = 4;
  c.layer_types = {"linear_attention", "linear_attention", "full_attention", "linear_attention"};
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.partial_rotary_factor = 0.5;
  c.linear_conv_kernel_dim = 3;
  c.linear_key_head_dim = 6;
  c.linear_value_head_dim = 5;
  c.linear_num_key_heads = 2;
  c.linear_num_value_heads = 4;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 8;
  c.shared_expert_intermediate_size = 12;
  c.seed = 11;
  return c;
}

TEST(Model, Qwen3NextKernelsGoThroughTheBackend) {
  const ModelConfig c = small_qwen3_next();
  const Weights w = synthetic_weights(c);
  for (const char* op :
       {"causal_conv1d_silu", "gated_delta_rule", "rmsnorm_gated", "sigmoid_gate",
        "rmsnorm_plus_one"}) {
    NudgingBackend clean("none"), nudged(op);
    Model<double> a(c, w, clean), b(c, w, nudged);
    KVCache<double> ca(c, 7), cb(c, 7);
    EXPECT_NE(a.forward(kPrompt, ca).data, b.forward(kPrompt, cb).data)
        << "nudging " << op << " did not change the logits";
  }
}

// The convolution's inputs and the recurrent state carried in the cache resume the recurrence
// exactly where it stopped: a prompt fed in pieces gives the bits of the prompt fed at once.
template <class T>
void expect_chunks_bit_identical() {
  const ModelConfig c = small_qwen3_next();
  const Weights w = synthetic_weights(c);
  auto backend = make_cpu_backend<T>();
  Model<T> model(c, w, *backend);
  KVCache<T> all_cache(c, 7);
  const std::vector<T> all = model.forward(kPrompt, all_cache).data;
  for (int chunk : {1, 2, 3}) {
    KVCache<T> cache(c, 7);
    const std::vector<T> pieces = forward_in_chunks(model, cache, chunk);
    EXPECT_EQ(pieces, all) << "chunk " << chunk;
    for (int l : {0, 1, 3})
      EXPECT_TRUE(std::equal(cache.recurrent_state(l),
                             cache.recurrent_state(l) + 4 * 6 * 5, all_cache.recurrent_state(l)))
          << "layer " << l << "'s state, chunk " << chunk;
  }
}

TEST(Model, Qwen3NextChunkedPrefillIsBitIdentical) {
  expect_chunks_bit_identical<double>();
  expect_chunks_bit_identical<float>();
}

// The gated delta rule against the paper's matrix form (Yang et al. 2025, as written
// there, S [dv, dk]): S_t = S_{t-1} (alpha_t (I - beta_t k_t k_t^T)) + beta_t v_t k_t^T,
// o_t = S_t q_t, with the normalised q and k. A different order of operations, so the two
// agree to rounding, not bit for bit.
TEST(Model, GatedDeltaRuleIsThePapersMatrixRecurrence) {
  const int n = 6, kh = 2, vh = 4, dk = 5, dv = 3, group = vh / kh;
  const int row = 2 * kh * dk + vh * dv;
  std::vector<double> qkv = random_tensor(3, "qkv", n * row, 1.0);
  std::vector<double> a = random_tensor(3, "a", n * vh, 2.0);
  std::vector<double> b = random_tensor(3, "b", n * vh, 2.0);
  std::vector<double> A_log = random_tensor(3, "A_log", vh, 0.5, -1.0);
  std::vector<double> dt_bias = random_tensor(3, "dt_bias", vh, 0.5);
  a[1] = 30;  // above softplus's threshold
  GatedDeltaParams p{n, kh, vh, dk, dv};
  std::vector<double> state(vh * dk * dv, 0.0), out(n * vh * dv);
  make_cpu_backend<double>()->gated_delta_rule(qkv.data(), a.data(), b.data(), A_log.data(),
                                               dt_bias.data(), p, state.data(), out.data());
  for (int h = 0; h < vh; ++h) {
    std::vector<double> S(dv * dk, 0.0);  // [dv, dk]
    for (int t = 0; t < n; ++t) {
      const double* q = qkv.data() + t * row + (h / group) * dk;
      const double* k = q + kh * dk;
      const double* v = qkv.data() + t * row + 2 * kh * dk + h * dv;
      std::vector<double> qn(dk), kn(dk);
      double qq = 0, kk = 0;
      for (int i = 0; i < dk; ++i) qq += q[i] * q[i], kk += k[i] * k[i];
      for (int i = 0; i < dk; ++i) {
        qn[i] = q[i] / std::sqrt(qq + 1e-6) / std::sqrt(double(dk));
        kn[i] = k[i] / std::sqrt(kk + 1e-6);
      }
      const double x = a[t * vh + h] + dt_bias[h];
      const double alpha = std::exp(-std::exp(A_log[h]) * (x > 20 ? x : std::log(1 + std::exp(x))));
      const double beta = 1 / (1 + std::exp(-b[t * vh + h]));
      std::vector<double> next(dv * dk, 0.0);
      for (int r = 0; r < dv; ++r)
        for (int j = 0; j < dk; ++j) {
          double s = 0;  // (S (I - beta k k^T))[r, j]
          for (int i = 0; i < dk; ++i)
            s += S[r * dk + i] * ((i == j ? 1.0 : 0.0) - beta * kn[i] * kn[j]);
          next[r * dk + j] = alpha * s + beta * v[r] * kn[j];
        }
      S = next;
      for (int r = 0; r < dv; ++r) {
        double o = 0;
        for (int j = 0; j < dk; ++j) o += S[r * dk + j] * qn[j];
        EXPECT_NEAR(out[(t * vh + h) * dv + r], o, 1e-13 * (1 + std::abs(o)))
            << "token " << t << ", head " << h << ", column " << r;
      }
    }
    for (int r = 0; r < dv; ++r)
      for (int j = 0; j < dk; ++j)
        EXPECT_NEAR(state[(h * dk + j) * dv + r], S[r * dk + j], 1e-13);
  }
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

// Gemma 3n: 4 AltUp streams (stream 2 active), LAuReL, per-layer inputs, sparse first layers,
// per-layer MLP widths, a window of 3, and the last two layers sharing keys and values.
ModelConfig small_gemma3n() {
  ModelConfig c = family_defaults("gemma3n_text");
  c.vocab_size = 32;
  c.vocab_size_per_layer_input = 32;
  c.hidden_size = 24;
  c.hidden_size_per_layer_input = 6;
  c.layer_intermediate_sizes = {40, 32, 40, 24};
  c.intermediate_size = 40;
  c.num_hidden_layers = 4;
  c.layer_types = {"sliding_attention", "full_attention", "sliding_attention", "full_attention"};
  c.sliding_window = 3;
  c.num_kv_shared_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 6;
  c.altup_active_idx = 2;
  c.laurel_rank = 3;
  c.activation_sparsity_pattern = {0.95, 0.6, 0.0, 0.0};
  c.seed = 12;
  return c;
}

TEST(Model, Gemma3nKernelsGoThroughTheBackend) {
  const ModelConfig c = small_gemma3n();
  const Weights w = synthetic_weights(c);
  for (const char* op : {"mix_streams", "rescale_rms", "gaussian_topk", "scale_columns", "softcap",
                         "embed", "geglu"}) {
    NudgingBackend clean("none"), nudged(op);
    Model<double> a(c, w, clean), b(c, w, nudged);
    KVCache<double> ca(c, 7), cb(c, 7);
    EXPECT_NE(a.forward(kPrompt, ca).data, b.forward(kPrompt, cb).data)
        << "nudging " << op << " did not change the logits";
  }
}

// Each part of Gemma 3n reaches the logits: zeroing the weights of one changes them.
TEST(Model, Gemma3nUsesEveryPart) {
  const ModelConfig c = small_gemma3n();
  const Weights w = synthetic_weights(c);
  const std::vector<double> base = logits_of<double>(c, w, kPrompt);
  for (const char* name :
       {"model.embed_tokens_per_layer.weight", "model.per_layer_model_projection.weight",
        "model.altup_projections.0.weight", "model.altup_unembed_projections.2.weight",
        "model.layers.1.altup.prediction_coefs.weight", "model.layers.1.altup.correction_coefs.weight",
        "model.layers.0.altup.correct_output_scale", "model.layers.2.laurel.linear_right.weight",
        "model.layers.3.per_layer_projection.weight"}) {
    Weights changed = w;
    for (double& v : changed.at(name).data) v = 0;
    EXPECT_NE(logits_of<double>(c, changed, kPrompt), base) << name;
  }
}

// Through the cache, a token at a time: the same bits as the whole prompt, with the shared
// layers reading their sources' cached keys and values and the sliding layers their window.
TEST(Model, Gemma3nDecodeEqualsPrefill) {
  const ModelConfig c = small_gemma3n();
  const Weights w = synthetic_weights(c);
  auto backend = make_cpu_backend<double>();
  Model<double> model(c, w, *backend);
  KVCache<double> whole(c, 7), stepped(c, 7);
  const std::vector<double> all = model.forward(kPrompt, whole).data;
  std::vector<double> rows;
  for (int t : kPrompt) {
    const std::vector<double> row = model.forward({t}, stepped).data;
    rows.insert(rows.end(), row.begin(), row.end());
  }
  EXPECT_EQ(rows, all);
  EXPECT_EQ(stepped.stored_layers(), 2);
}

// DeepSeek-V4: a sliding, a CSA, an HCA and a CSA layer with a window of 3, CSA entries every
// 2 tokens (the indexer keeping 2), HCA every 3, 3 hyper-connection streams, hash routing in
// layer 0, clamps at 0.5 (which the synthetic activations cross).
ModelConfig small_deepseek_v4() {
  ModelConfig c = family_defaults("deepseek_v4");
  c.vocab_size = 32;
  c.hidden_size = 24;
  c.moe_intermediate_size = 20;
  c.intermediate_size = 20;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.head_dim = 8;
  c.q_lora_rank = 12;
  c.partial_rotary_factor = 0.5;
  c.o_groups = 2;
  c.o_lora_rank = 6;
  c.sliding_window = 3;
  c.layer_types = {"sliding_attention", "compressed_sparse_attention",
                   "heavily_compressed_attention", "compressed_sparse_attention"};
  c.csa_compress_rate = 2;
  c.hca_compress_rate = 3;
  c.index_n_heads = 4;
  c.index_head_dim = 6;
  c.index_topk = 2;
  c.hc_mult = 3;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  c.mlp_layer_types = {"hash_moe", "moe", "moe", "moe"};
  c.swiglu_limit = 0.5;
  c.rope_type = "yarn";
  c.rope_factor = 4;
  c.rope_original_max_position_embeddings = 8;
  c.rope_attention_factor = 1.0;
  c.max_position_embeddings = 64;
  c.seed = 41;
  return c;
}

// 11 tokens: past the window, 5 CSA entries (the indexer keeps 2 of them), 3 HCA entries.
const std::vector<int> kV4Prompt = {1, 5, 9, 3, 31, 0, 17, 4, 22, 8, 13};

TEST(Model, DeepseekV4KernelsGoThroughTheBackend) {
  const ModelConfig c = small_deepseek_v4();
  const Weights w = synthetic_weights(c);
  // (indexer_scores only ranks the entries: a nudge smaller than the gap between two changes
  // nothing; DeepseekV4UsesEveryPart zeroes the indexer's weights instead.)
  for (const char* op : {"softmax_pool", "mix_streams", "rope_freqs",
                         "attention_scores", "attention_values", "swiglu", "rmsnorm",
                         "moe_combine", "scale", "add"}) {
    NudgingBackend clean("none"), nudged(op);
    Model<double> a(c, w, clean), b(c, w, nudged);
    KVCache<double> ca(c, 11), cb(c, 11);
    EXPECT_NE(a.forward(kV4Prompt, ca).data, b.forward(kV4Prompt, cb).data)
        << "nudging " << op << " did not change the logits";
  }
}

// Each part reaches the logits: zeroing (or, for the hash table, changing) one changes them.
TEST(Model, DeepseekV4UsesEveryPart) {
  const ModelConfig c = small_deepseek_v4();
  const Weights w = synthetic_weights(c);
  const std::vector<double> base = logits_of<double>(c, w, kV4Prompt);
  for (const char* name :
       {"model.layers.0.hc_attn_fn", "model.layers.2.hc_ffn_base", "model.hc_head.hc_fn",
        "model.layers.1.attn.attn_sink", "model.layers.1.attn.compressor.ape",
        "model.layers.1.attn.indexer.compressor.wkv.weight",
        "model.layers.3.attn.indexer.weights_proj.weight",
        "model.layers.2.attn.compressor.wgate.weight", "model.layers.0.attn.wo_a.weight",
        "model.layers.2.ffn.gate.bias", "model.layers.3.ffn.shared_experts.w3.weight"}) {
    Weights changed = w;
    for (double& v : changed.at(name).data) v = 0;
    EXPECT_NE(logits_of<double>(c, changed, kV4Prompt), base) << name;
  }
  Weights rerouted = w;
  std::vector<double>& table = rerouted.at("model.layers.0.ffn.gate.tid2eid").data;
  for (double& e : table) e = 3 - e;  // every token to the other experts
  EXPECT_NE(logits_of<double>(c, rerouted, kV4Prompt), base) << "tid2eid";
}

// Through the cache, a token at a time and in chunks of 3: the same bits as the whole prompt
// (the compressors' windows close across calls, CSA pooling the previous call's rows).
TEST(Model, DeepseekV4DecodeAndChunksEqualPrefill) {
  const ModelConfig c = small_deepseek_v4();
  const Weights w = synthetic_weights(c);
  auto backend = make_cpu_backend<double>();
  Model<double> model(c, w, *backend);
  KVCache<double> whole(c, 11), stepped(c, 11), chunked(c, 11);
  const std::vector<double> all = model.forward(kV4Prompt, whole).data;
  std::vector<double> rows;
  for (int t : kV4Prompt) {
    const std::vector<double> row = model.forward({t}, stepped).data;
    rows.insert(rows.end(), row.begin(), row.end());
  }
  EXPECT_EQ(rows, all);
  std::vector<double> pieces;
  for (size_t s = 0; s < kV4Prompt.size(); s += 3) {
    const std::vector<int> part(kV4Prompt.begin() + s,
                                kV4Prompt.begin() + std::min(kV4Prompt.size(), s + 3));
    const std::vector<double> got = model.forward(part, chunked).data;
    pieces.insert(pieces.end(), got.begin(), got.end());
  }
  EXPECT_EQ(pieces, all);
}

// The hash table must give each token distinct experts that exist.
TEST(Model, DeepseekV4RefusesABadHashTable) {
  const ModelConfig c = small_deepseek_v4();
  Weights w = synthetic_weights(c);
  std::vector<double>& table = w.at("model.layers.0.ffn.gate.tid2eid").data;
  auto backend = make_cpu_backend<double>();
  table[5 * 2 + 1] = table[5 * 2];
  try {
    Model<double> model(c, w, *backend);
    FAIL() << "a repeated expert was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "tensor 'model.layers.0.ffn.gate.tid2eid': token 5 lists expert " +
                                         std::to_string(static_cast<int>(table[10])) +
                                         " twice (transformers would run it twice)");
  }
  table[5 * 2 + 1] = 4;
  try {
    Model<double> model(c, w, *backend);
    FAIL() << "expert 4 of 4 was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "tensor 'model.layers.0.ffn.gate.tid2eid': token 5 is routed to "
                           "expert 4, not one of the 4 experts (n_routed_experts)");
  }
}

// The KV cache holds the window's keys (which are the values), the compressed entries, and the
// compressors' rows of the last window or two, which do not grow.
TEST(Model, DeepseekV4CacheHoldsKeysEntriesAndFixedRows) {
  const ModelConfig c = small_deepseek_v4();
  KVCache<double> cache(c, 60);
  // 4 layers of 8 key values per token; CSA entries of 8 and index entries of 6 per 2 tokens
  // (30 entries in 60 positions), HCA entries of 8 per 3 tokens (20 entries).
  const int64_t per_token = (4 * 8 * 60 + 2 * 30 * (8 + 6) + 20 * 8) / 60;
  EXPECT_EQ(cache.values_per_token(), per_token);
  // CSA: 4 rows of 2 * 16 (compressor) and 2 * 12 (indexer); HCA: 3 rows of 2 * 8.
  EXPECT_EQ(cache.state_values(), 2 * (4 * 32 + 4 * 24) + 3 * 16);
}

TEST(Model, Gemma3nRefusesATokenWithoutAPerLayerEmbedding) {
  ModelConfig c = small_gemma3n();
  c.vocab_size_per_layer_input = 20;
  const Weights w = synthetic_weights(c);
  auto backend = make_cpu_backend<double>();
  Model<double> model(c, w, *backend);
  KVCache<double> cache(c, 4);
  try {
    model.forward({3, 25}, cache);
    FAIL() << "token 25 ran";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(),
                 "token id 25 has no per-layer embedding (vocab_size_per_layer_input 20); "
                 "Gemma3nForCausalLM cannot run it");
  }
}

// A token the model itself produced may have no per-layer embedding either (released Gemma 3n
// models have 256 more ids than per-layer rows): the error says it came from a decode step.
TEST(Model, Gemma3nNamesTheDecodeStepOfAGeneratedTokenWithoutAPerLayerEmbedding) {
  ModelConfig c = small_gemma3n();
  c.vocab_size_per_layer_input = 20;
  const Weights w = synthetic_weights(c);
  auto backend = make_cpu_backend<double>();
  Model<double> model(c, w, *backend);
  GenerateOptions options;
  options.decode = 3;
  options.forced_tokens = {{7, 25}};  // fed at decode steps 1 and 2, as a target is fed
  try {
    generate(model, {{3, 5}}, options);
    FAIL() << "token 25 ran";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(),
                 "sequence 0: decode step 2 (token 25, chosen at step 1): token id 25 has no "
                 "per-layer embedding (vocab_size_per_layer_input 20); Gemma3nForCausalLM cannot "
                 "run it");
  }
}

// The arrays a model announces (Backend::cache_written) are those of the cache it attends over,
// and no others: released when that cache dies, when the next one takes over, or when the
// model dies first. A moved cache keeps them.
TEST(Model, ReleasesACachesArraysWhenTheCacheDiesOrTheNextTakesOver) {
  const ModelConfig c = small_llama();
  const Weights w = synthetic_weights(c);
  auto arrays_of = [&](KVCache<double>& cache) {
    std::set<const double*> out;
    for (int l = 0; l < c.num_hidden_layers; ++l) out.insert({cache.keys(l), cache.values(l)});
    return out;
  };
  test::MirroringBackend mirroring;
  KVCache<double> outlives_the_model(c, 16);
  {
    Model<double> model(c, w, mirroring);
    {
      KVCache<double> first(c, 16);
      model.forward(kPrompt, first);
      EXPECT_EQ(mirroring.arrays(), arrays_of(first));
      KVCache<double> second(c, 16);
      model.forward(kPrompt, second);
      EXPECT_EQ(mirroring.arrays(), arrays_of(second)) << "the first cache's arrays kept";
      KVCache<double> moved = std::move(second);
      model.forward({4}, moved);
      EXPECT_EQ(mirroring.arrays(), arrays_of(moved));
    }
    EXPECT_TRUE(mirroring.arrays().empty()) << "arrays of a dead cache still announced";
    model.forward(kPrompt, outlives_the_model);
    EXPECT_EQ(mirroring.arrays(), arrays_of(outlives_the_model));
  }
  EXPECT_TRUE(mirroring.arrays().empty()) << "arrays still announced after the model died";
  EXPECT_EQ(mirroring.reads_past_mirrors(), 0);
  EXPECT_EQ(mirroring.reads_unannounced(), 0);
}

// A model that turns back to a cache it attended over before: its arrays were released when the
// model turned away (their later positions now read from the host, past the mirror's gap), and
// are released again when that cache dies.
TEST(Model, ReleasesTheArraysOfACacheItTurnsBackTo) {
  const ModelConfig c = small_llama();
  const Weights w = synthetic_weights(c);
  test::MirroringBackend mirroring;
  Model<double> model(c, w, mirroring);
  auto plain = make_cpu_backend<double>();
  Model<double> reference(c, w, *plain);
  {
    KVCache<double> first(c, 16), second(c, 16), first_ref(c, 16);
    model.forward(kPrompt, first);
    reference.forward(kPrompt, first_ref);
    model.forward(kPrompt, second);
    EXPECT_EQ(model.forward({4}, first).data, reference.forward({4}, first_ref).data);
    EXPECT_EQ(model.forward({9}, first).data, reference.forward({9}, first_ref).data);
    EXPECT_GT(mirroring.reads_past_mirrors(), 0) << "a released array read from its mirror";
  }
  EXPECT_TRUE(mirroring.arrays().empty()) << "arrays of a dead cache still announced";
}

// The families whose layers differ most: Gemma 3n (layers sharing another layer's keys and
// values), Qwen3-Next (attention between Gated DeltaNet layers) and DeepSeek-V4 (attention over
// copies of the cache and its compressed entries), attended over mirrors: the same bits.
TEST(Model, AttentionOverMirroredCacheArraysGivesTheSameBits) {
  GenerateOptions options;
  options.decode = 3;
  options.prefill_chunk = 4;
  for (const ModelConfig& c : {small_gemma3n(), small_qwen3_next(), small_deepseek_v4()}) {
    const test::MirroredRun run = test::generate_over_mirrors(
        c, synthetic_weights(c), {kV4Prompt, {7, 2, 30}}, options, c.model_type);
    EXPECT_EQ(run.reads_past_mirrors, 0) << c.model_type;
    if (c.model_type != "deepseek_v4") {
      EXPECT_GT(run.reads_from_mirrors, 0) << c.model_type;
      EXPECT_EQ(run.reads_unannounced, 0) << c.model_type;
    }
    EXPECT_EQ(run.arrays_after_generate, 0u) << c.model_type;
    EXPECT_EQ(run.arrays_after_model, 0u) << c.model_type;
  }
}

// The families whose layers read activations on the host in their own code hold none
// (Backend::hold_activations), and give the plain backend's bits through a backend that would
// hide held arrays from the host.
TEST(Model, FamiliesThatReadActivationsOnTheHostHoldNone) {
  GenerateOptions options;
  options.decode = 3;
  options.prefill_chunk = 4;
  for (const ModelConfig& c : {small_gemma3n(), small_qwen3_next(), small_deepseek_v4()}) {
    auto plain = make_cpu_backend<double>();
    test::ResidentBackend<double> resident(make_cpu_backend<double>());
    EXPECT_EQ(test::generate_with_activations_held<double>(c, *plain, resident, resident,
                                                           {kV4Prompt, {7, 2, 30}}, options,
                                                           c.model_type),
              0)
        << c.model_type;
  }
}

}  // namespace
}  // namespace pinmark
