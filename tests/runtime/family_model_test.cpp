// Each family's forward pass in fp64 against the independent reference (reference_model.h)
// on synthetic weights; sliding windows through the cache; KV sharing; Mixtral's routing.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>
#include <stdexcept>

#include "mirroring_backend.h"
#include "reference_model.h"
#include "resident_backend.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/rounding_backend.h"
#include "test_util.h"

namespace pinmark {
namespace {

using test::expect_close;

const std::vector<int> kPrompt = {1, 5, 9, 3, 31, 0, 17, 4, 22};

ModelConfig base(const std::string& type) {
  ModelConfig c = family_defaults(type);
  c.vocab_size = 32;
  c.hidden_size = 24;
  c.intermediate_size = 40;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 0;
  c.rms_norm_eps = 1e-5;
  c.seed = 23;
  return c;
}

// One of every family, small, with the features that make it differ from Llama switched on
// hard enough to matter on a 9-token prompt.
std::vector<std::pair<std::string, ModelConfig>> families() {
  std::vector<std::pair<std::string, ModelConfig>> out;
  ModelConfig linear = base("llama");
  linear.rope_type = "linear";
  linear.rope_factor = 4;
  out.push_back({"llama linear rope", linear});
  ModelConfig llama3 = base("llama");
  llama3.rope_theta = 500000;
  llama3.head_dim = 16;
  llama3.rope_type = "llama3";
  llama3.rope_factor = 8;
  llama3.rope_low_freq_factor = 1;
  llama3.rope_high_freq_factor = 4;
  llama3.rope_original_max_position_embeddings = 32;
  out.push_back({"llama3 rope", llama3});
  ModelConfig mistral = base("mistral");
  mistral.sliding_window = 3;
  out.push_back({"mistral", mistral});
  out.push_back({"qwen2", base("qwen2")});
  ModelConfig qwen2_sliding = base("qwen2");
  qwen2_sliding.sliding_window = 4;
  qwen2_sliding.layer_types = {"full_attention", "sliding_attention", "sliding_attention"};
  out.push_back({"qwen2 sliding", qwen2_sliding});
  ModelConfig qwen3 = base("qwen3");
  qwen3.head_dim = 8;
  out.push_back({"qwen3", qwen3});
  ModelConfig qwen3_bias = qwen3;
  qwen3_bias.attention_bias = true;
  out.push_back({"qwen3 attention_bias", qwen3_bias});
  ModelConfig gemma = base("gemma");
  gemma.head_dim = 10;
  out.push_back({"gemma", gemma});
  ModelConfig gemma_exact = gemma;
  gemma_exact.hidden_act = "gelu";
  gemma_exact.tie_word_embeddings = false;
  out.push_back({"gemma exact gelu untied", gemma_exact});
  ModelConfig gemma2 = base("gemma2");
  gemma2.head_dim = 10;
  gemma2.query_pre_attn_scalar = 12;
  gemma2.sliding_window = 3;
  gemma2.attn_logit_softcapping = 1.5;
  gemma2.final_logit_softcapping = 2.0;
  out.push_back({"gemma2", gemma2});
  ModelConfig gpt2 = base("gpt2");
  gpt2.num_key_value_heads = 0;
  gpt2.intermediate_size = 0;
  gpt2.max_position_embeddings = 16;
  out.push_back({"gpt2", gpt2});
  ModelConfig gpt2_untied = gpt2;
  gpt2_untied.tie_word_embeddings = false;
  gpt2_untied.hidden_act = "gelu";
  gpt2_untied.intermediate_size = 30;
  out.push_back({"gpt2 untied exact gelu", gpt2_untied});
  ModelConfig mixtral = base("mixtral");
  mixtral.num_local_experts = 5;
  mixtral.num_experts_per_tok = 2;
  out.push_back({"mixtral", mixtral});
  ModelConfig deepseek = base("deepseek_v3");
  deepseek.q_lora_rank = 10;
  deepseek.kv_lora_rank = 6;
  deepseek.qk_nope_head_dim = 6;
  deepseek.qk_rope_head_dim = 4;
  deepseek.v_head_dim = 5;
  deepseek.num_key_value_heads = 4;
  deepseek.num_local_experts = 8;
  deepseek.num_experts_per_tok = 3;
  deepseek.n_group = 4;
  deepseek.topk_group = 2;
  deepseek.n_shared_experts = 2;
  deepseek.moe_intermediate_size = 7;
  deepseek.first_k_dense_replace = 1;
  out.push_back({"deepseek_v3 MLA, grouped sigmoid routing, shared experts", deepseek});
  ModelConfig deepseek_plain = deepseek;
  deepseek_plain.q_lora_rank = 0;
  deepseek_plain.rope_interleave = false;
  deepseek_plain.norm_topk_prob = false;
  deepseek_plain.n_group = 1;
  deepseek_plain.topk_group = 1;
  out.push_back({"deepseek_v3 q_proj, half-split rope, unnormalised", deepseek_plain});
  ModelConfig deepseek_absorbed = deepseek;
  deepseek_absorbed.mla_absorb = true;
  out.push_back({"deepseek_v3 MLA computed in the latent space", deepseek_absorbed});
  // From position 3 on each query attends over 3 of its keys, the indexer's choice.
  ModelConfig sparse = deepseek;
  sparse.model_type = "deepseek_v32";
  sparse.index_topk = 3;
  sparse.index_head_dim = 6;
  sparse.index_n_heads = 3;
  out.push_back({"deepseek_v32 sparse attention over 3 keys", sparse});
  ModelConfig sparse_absorbed = sparse;
  sparse_absorbed.mla_absorb = true;
  out.push_back({"deepseek_v32 sparse attention in the latent space", sparse_absorbed});
  ModelConfig gpt_oss = base("gpt_oss");
  gpt_oss.head_dim = 0;
  gpt_oss.num_local_experts = 4;
  gpt_oss.num_experts_per_tok = 2;
  gpt_oss.intermediate_size = 12;
  gpt_oss.sliding_window = 3;
  gpt_oss.layer_types = {"sliding_attention", "full_attention", "sliding_attention"};
  out.push_back({"gpt_oss sinks, biases, clamped experts", gpt_oss});
  ModelConfig gemma3 = base("gemma3_text");
  gemma3.head_dim = 8;
  gemma3.query_pre_attn_scalar = 10;
  gemma3.sliding_window = 3;
  gemma3.layer_types = {"sliding_attention", "full_attention", "sliding_attention"};
  gemma3.rope_type = "linear";
  gemma3.rope_factor = 8;
  out.push_back({"gemma3 local and global rope", gemma3});
  ModelConfig phi3 = base("phi3");
  phi3.head_dim = 12;
  phi3.partial_rotary_factor = 0.5;
  phi3.sliding_window = 4;
  out.push_back({"phi3 partial rotary, sliding", phi3});
  ModelConfig olmo2 = base("olmo2");
  out.push_back({"olmo2", olmo2});
  ModelConfig qwen3_moe = base("qwen3_moe");
  qwen3_moe.num_hidden_layers = 3;
  qwen3_moe.num_local_experts = 4;
  qwen3_moe.num_experts_per_tok = 2;
  qwen3_moe.moe_intermediate_size = 6;
  qwen3_moe.mlp_only_layers = {1};
  out.push_back({"qwen3_moe", qwen3_moe});
  ModelConfig qwen3_moe_norm = qwen3_moe;
  qwen3_moe_norm.norm_topk_prob = true;
  qwen3_moe_norm.decoder_sparse_step = 2;
  qwen3_moe_norm.mlp_only_layers = {};
  out.push_back({"qwen3_moe renormalised, every second layer sparse", qwen3_moe_norm});
  ModelConfig shared = base("gemma2");
  shared.num_hidden_layers = 5;
  shared.head_dim = 8;
  shared.sliding_window = 3;
  shared.num_kv_shared_layers = 2;
  out.push_back({"gemma2 kv shared", shared});
  ModelConfig shared_llama = base("llama");
  shared_llama.num_hidden_layers = 4;
  shared_llama.num_kv_shared_layers = 2;
  out.push_back({"llama kv shared", shared_llama});
  return out;
}

template <class T>
std::vector<double> logits_of(const ModelConfig& c, const Weights& w,
                              const std::vector<int>& tokens, const TapFn<T>& tap = {}) {
  auto backend = make_cpu_backend<T>();
  Model<T> model(c, w, *backend);
  KVCache<T> cache(c, static_cast<int>(tokens.size()));
  const Tensor<T> logits = model.forward(tokens, cache, tap);
  return std::vector<double>(logits.data.begin(), logits.data.end());
}

TEST(Families, Fp64MatchesTheReference) {
  for (const auto& [name, c] : families()) {
    ASSERT_TRUE(validate(c).empty()) << name << ": " << validate(c)[0].message;
    const Weights w = synthetic_weights(c);
    const std::vector<double> logits = logits_of<double>(c, w, kPrompt);
    expect_close(logits, ref::family_logits(c, w, kPrompt), 1e-12, name);
    EXPECT_LT(test::relative_l2(logits, ref::family_logits(c, w, kPrompt)), 1e-12) << name;
  }
}

// The reference itself must see each feature: switching it off moves the logits.
TEST(Families, EachFeatureChangesTheLogits) {
  auto differs = [](ModelConfig with, ModelConfig without, const char* what) {
    const Weights w = synthetic_weights(with);
    EXPECT_GT(test::relative_l2(ref::family_logits(with, w, kPrompt),
                                ref::family_logits(without, w, kPrompt)),
              1e-6)
        << what;
  };
  for (const auto& [name, c] : families()) {
    ModelConfig off = c;
    if (c.rope_type != "default") {
      off.rope_type = "default";
      differs(c, off, "rope scaling");
    }
    if (c.sliding_window > 0 && c.num_kv_shared_layers == 0) {
      off = c;
      off.sliding_window = 100;
      differs(c, off, "sliding window");
    }
    if (c.model_type == "qwen3_moe") {
      off = c;
      off.norm_topk_prob = !c.norm_topk_prob;
      differs(c, off, "norm_topk_prob");
    }
    if (c.rope_local_base_freq > 0) {
      off = c;
      off.rope_local_base_freq = 0;  // one rope table for every layer
      differs(c, off, "Gemma 3's local rope base");
    }
    if (c.partial_rotary_factor != 1.0) {
      off = c;
      off.partial_rotary_factor = 1.0;
      differs(c, off, "partial rotary");
    }
    if (c.index_n_heads > 0) {
      off = c;
      off.index_topk = 100;  // every key
      differs(c, off, "sparse attention's top-k");
    }
    if (c.attn_logit_softcapping > 0) {
      off = c;
      off.attn_logit_softcapping = 0;
      differs(c, off, "attention softcap");
      off = c;
      off.final_logit_softcapping = 0;
      differs(c, off, "final softcap");
    }
  }
}

TEST(Families, Fp32IsCloseToFp64) {
  for (const auto& [name, c] : families()) {
    const Weights w = synthetic_weights(c);
    const double err =
        test::relative_l2(logits_of<float>(c, w, kPrompt), logits_of<double>(c, w, kPrompt));
    EXPECT_LT(err, 1e-4) << name;
    EXPECT_GT(err, 0.0) << name;
  }
}

// Prefill of the whole prompt and one token at a time through the cache give the same logits,
// well past the sliding window and through shared KV layers.
TEST(Families, TokenByTokenDecodeMatchesPrefill) {
  for (const auto& [name, c] : families()) {
    const Weights w = synthetic_weights(c);
    auto backend = make_cpu_backend<double>();
    Model<double> model(c, w, *backend);
    KVCache<double> all(c, 9);
    const std::vector<double> prefill = model.forward(kPrompt, all).data;
    KVCache<double> cache(c, 9);
    std::vector<double> steps;
    for (int t : kPrompt) {
      const std::vector<double> row = model.forward({t}, cache).data;
      steps.insert(steps.end(), row.begin(), row.end());
    }
    expect_close(steps, prefill, 1e-12, name);
  }
}

// Two sequences' worth of work for the backends that keep state between calls: the prompt in
// chunks of 4, then 4 decode steps.
GenerateOptions chunked_decode() {
  GenerateOptions options;
  options.decode = 4;
  options.prefill_chunk = 4;
  return options;
}

// The model announces every write to the arrays attention reads whole, and releases them when
// their cache dies: a backend that attends over mirrors gives the plain backend's logits bit
// for bit, two sequences, the prompt in chunks and decode steps included. MLA reads copies it
// expands from its cached latents: its values always, its keys too outside the latent space.
TEST(Families, AttentionOverMirroredCacheArraysGivesTheSameBits) {
  const GenerateOptions options = chunked_decode();
  const std::vector<std::vector<int>> prompts = {kPrompt, {7, 2, 30}};
  for (const auto& [name, c] : families()) {
    const test::MirroredRun run =
        test::generate_over_mirrors(c, synthetic_weights(c), prompts, options, name);
    EXPECT_EQ(run.reads_past_mirrors, 0) << name;
    if (c.kv_lora_rank == 0 || c.mla_absorb) {
      EXPECT_GT(run.reads_from_mirrors, 0) << name;
    }
    if (c.kv_lora_rank == 0) {
      EXPECT_EQ(run.reads_unannounced, 0) << name;
    }
    EXPECT_EQ(run.arrays_after_generate, 0u)
        << name << ": arrays announced after their cache died";
    EXPECT_EQ(run.arrays_after_model, 0u) << name << ": arrays announced after the model died";
  }
}

// Activations kept away from the host between ops (Backend::hold_activations), as a device
// backend keeps them: the logits, the generated tokens and every tap are the plain backend's,
// bit for bit, in fp64 and through the bf16 rounding layer. The families with MLA (and, in
// model_test, Gated DeltaNet, AltUp and DeepSeek-V4) hold none; the rest, experts included,
// hold their arrays, so a host read or write the model does not announce fails here.
TEST(Families, ActivationsKeptOffTheHostGiveTheSameBits) {
  const GenerateOptions options = chunked_decode();
  const std::vector<std::vector<int>> prompts = {kPrompt, {7, 2, 30}};
  for (const auto& [name, c] : families()) {
    const bool plain_layers = c.kv_lora_rank == 0;
    {
      auto plain = make_cpu_backend<double>();
      test::ResidentBackend<double> resident(make_cpu_backend<double>());
      const int holds = test::generate_with_activations_held<double>(
          c, *plain, resident, resident, prompts, options, name + " fp64");
      EXPECT_EQ(holds > 0, plain_layers) << name << ": " << holds << " arrays held";
    }
    auto plain = make_rounding_backend(make_cpu_backend<float>(), DType::bf16);
    auto owned = std::make_unique<test::ResidentBackend<float>>(make_cpu_backend<float>());
    const test::ResidentBackend<float>& counts = *owned;
    auto rounding = make_rounding_backend(std::move(owned), DType::bf16);
    const int holds = test::generate_with_activations_held<float>(c, *plain, *rounding, counts,
                                                                  prompts, options, name + " bf16");
    EXPECT_EQ(holds > 0, plain_layers) << name << ": " << holds << " arrays held";
  }
}

// The shapes a checkpoint is checked against (weight_shapes) are the drawn set's, tensor for
// tensor, in every family's layout.
TEST(Families, WeightShapesNameTheSyntheticSet) {
  for (const auto& [name, c] : families()) {
    const Weights drawn = synthetic_weights(c);
    const auto shapes = weight_shapes(c);
    ASSERT_EQ(shapes.size(), drawn.size()) << name;
    for (const auto& [tensor, shape] : shapes) {
      ASSERT_TRUE(drawn.count(tensor)) << name << ": " << tensor;
      EXPECT_EQ(drawn.at(tensor).shape, shape) << name << ": " << tensor;
    }
  }
}

ModelConfig sparse_family() {
  for (const auto& [name, c] : families())
    if (c.model_type == "deepseek_v32" && !c.mla_absorb) return c;
  throw std::runtime_error("no deepseek_v32 family");
}

// With a top-k that covers the context, DeepSeek-V3.2 is DeepSeek-V3 bit for bit: the indexer
// only ever removes keys.
TEST(DeepseekSparseAttention, TopKCoveringTheContextIsDenseMla) {
  ModelConfig sparse = sparse_family();
  sparse.index_topk = static_cast<int>(kPrompt.size());
  ModelConfig dense = sparse;
  dense.model_type = "deepseek_v3";
  dense.index_topk = dense.index_head_dim = dense.index_n_heads = 0;
  const Weights w = synthetic_weights(sparse);
  EXPECT_EQ(logits_of<double>(sparse, w, kPrompt), logits_of<double>(dense, w, kPrompt));
}

// Each query attends over exactly the keys the indexer reports, min(index_topk, position + 1)
// of them, and the cache keeps one indexer key per position beside the latent.
TEST(DeepseekSparseAttention, QueriesAttendOverTheSelectedKeysOnly) {
  const ModelConfig c = sparse_family();
  const Weights w = synthetic_weights(c);
  const int n = static_cast<int>(kPrompt.size()), heads = c.num_attention_heads, k = c.index_topk;
  std::map<std::string, std::vector<double>> seen;
  logits_of<double>(c, w, kPrompt, [&](const std::string& name, const Shape& shape, const double* d) {
    seen[name] = std::vector<double>(d, d + element_count(shape));
  });
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    ASSERT_TRUE(seen.count(p + "index_topk")) << p;
    const std::vector<double>& ids = seen[p + "index_topk"];
    const std::vector<double>& probs = seen[p + "scores"];
    ASSERT_EQ(ids.size(), static_cast<size_t>(n * k));
    for (int i = 0; i < n; ++i) {
      std::set<int> chosen;
      for (int s = 0; s < k; ++s)
        if (ids[i * k + s] <= i) chosen.insert(static_cast<int>(ids[i * k + s]));
      EXPECT_EQ(chosen.size(), static_cast<size_t>(std::min(k, i + 1))) << p << i;
      for (int h = 0; h < heads; ++h)
        for (int j = 0; j < n; ++j)
          EXPECT_EQ(probs[(h * n + i) * n + j] > 0, chosen.count(j) == 1) << p << i << ", " << j;
    }
  }
  ModelConfig dense = c;
  dense.model_type = "deepseek_v3";
  dense.index_topk = dense.index_head_dim = dense.index_n_heads = 0;
  EXPECT_EQ(KVCache<double>(c, 4).values_per_token(),
            KVCache<double>(dense, 4).values_per_token() + c.num_hidden_layers * c.index_head_dim);
}

TEST(Families, SlidingWindowMasksKeysOutsideIt) {
  ModelConfig c = base("mistral");
  c.sliding_window = 3;
  const Weights w = synthetic_weights(c);
  std::vector<double> scores;
  logits_of<double>(c, w, kPrompt, [&](const std::string& name, const Shape& s, const double* d) {
    if (name == "layers.0.scores") scores.assign(d, d + element_count(s));
  });
  // Head 0, query at position 8: keys 6, 7, 8 only (8 - j < 3).
  for (int j = 0; j < 9; ++j)
    EXPECT_EQ(scores[8 * 9 + j] > 0, j >= 6) << "key " << j;
}

TEST(Families, GemmaTwoSlidesOnEvenLayersByDefault) {
  ModelConfig c = base("gemma2");
  EXPECT_TRUE(is_sliding_layer(c, 0));
  EXPECT_FALSE(is_sliding_layer(c, 1));
  EXPECT_TRUE(is_sliding_layer(c, 2));
  c.layer_types = {"full_attention", "full_attention", "sliding_attention"};
  EXPECT_FALSE(is_sliding_layer(c, 0));
  EXPECT_TRUE(is_sliding_layer(c, 2));
}

TEST(Families, GemmaTwoTapsItsSandwichNorms) {
  ModelConfig c = base("gemma2");
  std::vector<std::string> names;
  logits_of<double>(c, synthetic_weights(c), {1, 2},
                    [&](const std::string& name, const Shape&, const double*) {
                      if (name.rfind("layers.0.", 0) == 0) names.push_back(name.substr(9));
                    });
  EXPECT_EQ(names, (std::vector<std::string>{"attn_norm", "q", "k", "v", "scores", "attn_out",
                                             "post_attn_norm", "mlp_out", "post_mlp_norm"}));
}

// Gemma 3n's rule: the last N layers use the last earlier layer of their own attention type.
TEST(KvSharing, SourcesFollowTheAttentionType) {
  ModelConfig c = base("gemma2");
  c.num_hidden_layers = 7;
  c.num_kv_shared_layers = 3;  // layers 4, 5, 6 share; 4 and 6 slide, 5 is global
  EXPECT_EQ(kv_source_layers(c), (std::vector<int>{0, 1, 2, 3, 2, 3, 2}));
  c.num_kv_shared_layers = 0;
  EXPECT_EQ(kv_source_layers(c), (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(KvSharing, TheCacheStoresOnlyLayersThatComputeKeys) {
  ModelConfig c = base("llama");
  c.num_hidden_layers = 5;
  c.num_kv_shared_layers = 2;
  KVCache<double> shared(c, 4);
  EXPECT_EQ(shared.stored_layers(), 3);
  EXPECT_EQ(shared.keys(3), shared.keys(2));
  EXPECT_EQ(shared.keys(4), shared.keys(2));
  EXPECT_EQ(shared.values(4), shared.values(2));
  EXPECT_NE(shared.keys(1), shared.keys(2));
  c.num_kv_shared_layers = 0;
  EXPECT_EQ(KVCache<double>(c, 4).stored_layers(), 5);
  // Shared layers carry no k/v projections, as Gemma 3n's checkpoints.
  c.num_kv_shared_layers = 2;
  const Weights w = synthetic_weights(c);
  EXPECT_EQ(w.count("model.layers.3.self_attn.k_proj.weight"), 0u);
  EXPECT_EQ(w.count("model.layers.4.self_attn.v_proj.weight"), 0u);
  EXPECT_EQ(w.count("model.layers.2.self_attn.k_proj.weight"), 1u);
}

// The explicit computation of a shared layer's attention, from the model's own taps: its query
// against the source layer's keys, through the same kernels, gives its scores bit for bit.
TEST(KvSharing, SharedLayerAttendsOverTheSourceLayersKeysBitForBit) {
  ModelConfig c = base("llama");
  c.num_hidden_layers = 3;
  c.num_kv_shared_layers = 1;  // layer 2 uses layer 1's keys and values
  const Weights w = synthetic_weights(c);
  std::map<std::string, std::vector<double>> taps;
  logits_of<double>(c, w, kPrompt, [&](const std::string& name, const Shape& s, const double* d) {
    taps[name].assign(d, d + element_count(s));
  });
  EXPECT_EQ(taps.count("layers.2.k"), 0u);
  EXPECT_EQ(taps.count("layers.1.k"), 1u);
  // The explicit computation: layer 2's query against layer 1's keys, through the same kernels.
  auto backend = make_cpu_backend<double>();
  const int n = 9, heads = 4, kv_heads = 2, hd = 6;
  std::vector<int> positions(n);
  for (int i = 0; i < n; ++i) positions[i] = i;
  std::vector<double> scores(heads * n * n);
  backend->attention_scores(taps["layers.2.q"].data(), taps["layers.1.k"].data(),
                            positions.data(), n, n, heads, kv_heads, hd, 1 / std::sqrt(6.0),
                            scores.data());
  backend->softmax(scores.data(), heads * n, n);
  EXPECT_EQ(scores, taps["layers.2.scores"]);
}

// The explicit model, with one key/value array per layer indexed by the source layer, is the
// reference (Families.Fp64MatchesTheReference, two shared configs). Here: feeding the prompt
// in chunks through the shrunken cache gives the prefill's logits.
TEST(KvSharing, ChunkedPrefillThroughTheSharedCacheMatchesPrefill) {
  ModelConfig c = base("gemma2");
  c.num_hidden_layers = 5;
  c.num_kv_shared_layers = 2;
  const Weights w = synthetic_weights(c);
  auto backend = make_cpu_backend<double>();
  Model<double> model(c, w, *backend);
  KVCache<double> a(c, 9), b(c, 9);
  const std::vector<double> all = model.forward(kPrompt, a).data;
  std::vector<double> chunks = model.forward({1, 5, 9, 3}, b).data;
  const std::vector<double> rest = model.forward({31, 0, 17, 4, 22}, b).data;
  chunks.insert(chunks.end(), rest.begin(), rest.end());
  expect_close(chunks, all, 1e-13, "chunked");
}

// Mixtral: the model routes every token to the experts the reference picks, and the experts
// tap shows a changed choice.
TEST(Mixtral, RoutesLikeTheReferenceAndTapsTheChoice) {
  ModelConfig c = base("mixtral");
  c.num_local_experts = 5;
  c.num_experts_per_tok = 2;
  Weights w = synthetic_weights(c);
  auto experts_tap = [&](const Weights& weights) {
    std::vector<double> chosen;
    logits_of<double>(c, weights, kPrompt,
                      [&](const std::string& name, const Shape& s, const double* d) {
                        if (name == "layers.0.experts") chosen.assign(d, d + element_count(s));
                      });
    return chosen;
  };
  std::vector<std::vector<int>> expected;
  ref::family_logits(c, w, kPrompt, &expected);
  const std::vector<double> chosen = experts_tap(w);
  ASSERT_EQ(chosen.size(), 18u);
  for (int i = 0; i < 9; ++i)
    for (int s = 0; s < 2; ++s)
      EXPECT_EQ(chosen[i * 2 + s], expected[i][s]) << "token " << i << " slot " << s;

  // Make token 0's second choice lose: scale down its router row until another expert wins.
  const int second = static_cast<int>(chosen[1]);
  Tensor<double>& gate = w.at("model.layers.0.block_sparse_moe.gate.weight");
  for (int d = 0; d < c.hidden_size; ++d) gate.data[second * c.hidden_size + d] = -gate.data[second * c.hidden_size + d];
  const std::vector<double> flipped = experts_tap(w);
  EXPECT_NE(flipped[1], chosen[1]);
  EXPECT_NE(flipped[0], static_cast<double>(second));
}

TEST(Mixtral, FusedExpertTensorsGiveTheSameModel) {
  ModelConfig c = base("mixtral");
  c.num_local_experts = 3;
  const Weights legacy = synthetic_weights(c);
  Weights fused;
  const int64_t e = 3, inter = c.intermediate_size, hidden = c.hidden_size;
  for (const auto& [name, t] : legacy)
    if (name.find("block_sparse_moe") == std::string::npos) fused.emplace(name, t);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    fused.emplace(p + "mlp.gate.weight", legacy.at(p + "block_sparse_moe.gate.weight"));
    std::vector<double> gate_up, down;
    for (int x = 0; x < e; ++x) {
      const std::string q = p + "block_sparse_moe.experts." + std::to_string(x) + ".";
      for (const char* part : {"w1", "w3"}) {
        const auto& d = legacy.at(q + part + ".weight").data;
        gate_up.insert(gate_up.end(), d.begin(), d.end());
      }
      const auto& d = legacy.at(q + "w2.weight").data;
      down.insert(down.end(), d.begin(), d.end());
    }
    fused.emplace(p + "mlp.experts.gate_up_proj", Tensor<double>({e, 2 * inter, hidden}, gate_up));
    fused.emplace(p + "mlp.experts.down_proj", Tensor<double>({e, hidden, inter}, down));
  }
  EXPECT_EQ(logits_of<double>(c, fused, kPrompt), logits_of<double>(c, legacy, kPrompt));
}

TEST(Gpt2, PositionsBeyondTheLearnedTableAreAnError) {
  ModelConfig c = base("gpt2");
  c.num_key_value_heads = 0;
  c.max_position_embeddings = 4;
  const Weights w = synthetic_weights(c);
  auto backend = make_cpu_backend<double>();
  Model<double> model(c, w, *backend);
  KVCache<double> cache(c, 8);
  try {
    model.forward({1, 2, 3, 4, 5}, cache);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "position 4 is beyond the learned position embeddings (n_positions 4)");
  }
}

TEST(Gpt2, SyntheticWeightsUseTheHuggingFaceNamesAndConv1dLayout) {
  ModelConfig c = base("gpt2");
  c.num_key_value_heads = 0;
  c.intermediate_size = 0;
  c.max_position_embeddings = 16;
  const Weights w = synthetic_weights(c);
  EXPECT_EQ(w.at("transformer.h.0.attn.c_attn.weight").shape, (Shape{24, 72}));
  EXPECT_EQ(w.at("transformer.h.0.attn.c_attn.bias").shape, (Shape{72}));
  EXPECT_EQ(w.at("transformer.h.2.mlp.c_fc.weight").shape, (Shape{24, 96}));
  EXPECT_EQ(w.at("transformer.h.2.mlp.c_proj.weight").shape, (Shape{96, 24}));
  EXPECT_EQ(w.at("transformer.wpe.weight").shape, (Shape{16, 24}));
  EXPECT_EQ(w.count("transformer.ln_f.bias"), 1u);
  EXPECT_EQ(w.count("lm_head.weight"), 0u);
}

}  // namespace
}  // namespace pinmark
