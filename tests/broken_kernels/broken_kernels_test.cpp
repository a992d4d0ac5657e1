// The shipped cases are only worth their goldens if a real kernel bug makes them fail, and
// fail pointing at the right place. Each row below runs one shipped case with one target's
// backend replaced by a deliberately broken one (supplied through run_case's backend
// factory, exactly where a CUDA backend would plug in) and checks that the broken target's
// verdict is FAIL with the expected first divergence, while the case's other targets, which
// keep the healthy backends, stay ok. The control runs the same cases with the healthy
// backends only, so a failure above cannot come from the case itself.
//
// The expected divergences follow the model's tap order (runtime/model.cpp): embed, then per
// layer attn_norm, q, k, v (q and k after RoPE), scores (after softmax), attn_out, mlp_out,
// then final_norm and logits. A bug in a kernel shows up at the first tap downstream of it
// whose inputs it can reach.
#include <gtest/gtest.h>

#include <cctype>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "driver/golden_io.h"
#include "runtime/rounding_backend.h"
#include "runtime/target.h"
#include "tests/broken_kernels/broken_backends.h"

namespace pinmark {
namespace {

using MakeBroken = std::function<std::unique_ptr<Backend<float>>()>;

template <class B>
MakeBroken with_bug() {
  return [] { return std::make_unique<B>(); };
}

struct BrokenKernelRow {
  std::string name;        // test name
  std::string file;        // under cases/
  std::string slug;        // the case within the file
  std::string target;      // the target whose backend is broken
  MakeBroken make_broken;  // the fp32 backend with the bug
  std::string divergence;  // the first divergence the broken target must report

  friend std::ostream& operator<<(std::ostream& os, const BrokenKernelRow& row) {
    return os << row.file << " :: " << row.slug << " (" << row.target << ")";
  }
};

std::string cases_dir() { return PINMARK_DEFAULT_CASES_DIR; }

std::string where(const std::string& file, const std::string& slug) {
  return "cases/" + file + " :: " + slug;
}

// The case's spec, or a message saying why it could not be had.
bool load_spec(const std::string& file, const std::string& slug, CaseSpec& spec,
               std::string& why) {
  const std::string path = cases_dir() + "/" + file;
  CaseFile parsed;
  try {
    parsed = parse_case_file(read_text_file(path));
  } catch (const std::exception& e) {
    why = path + ": " + e.what();
    return false;
  }
  if (!parsed.problems.empty()) {
    why = path + ":" + std::to_string(parsed.problems.front().line) + ": " +
          parsed.problems.front().message;
    return false;
  }
  std::string slugs;
  for (const Case& c : parsed.cases) {
    if (c.slug == slug) {
      spec = read_case_spec(c, path);
      if (!spec.problems.empty()) {
        why = where(file, slug) + ": " + spec.problems.front().where + ": " +
              spec.problems.front().message;
        return false;
      }
      return true;
    }
    slugs += "\n  " + c.slug;
  }
  why = path + " has no case '" + slug + "'; its cases are:" + slugs;
  return false;
}

bool runs_target(const CaseSpec& spec, const std::string& target) {
  for (const Target& t : spec.targets.targets)
    if (t.name() == target) return true;
  return false;
}

// The healthy backends, except that `target` gets the broken one, wrapped for bf16 and fp16
// storage the way make_target_backend wraps the reference.
BackendFactory breaking(const std::string& target, const MakeBroken& make_broken) {
  return [target, make_broken](const Target& t) -> std::unique_ptr<Backend<float>> {
    if (t.name() != target) return make_target_backend(t);
    const DType storage = storage_type(t);
    if (storage == DType::f32) return make_broken();
    return make_rounding_backend(make_broken(), storage);
  };
}

// The result as a reader of the failure needs it: problems, then one line per target row.
std::string describe(const CaseResult& result) {
  std::ostringstream out;
  for (const CaseProblem& p : result.problems) out << "\n  problem in " << p.where << ": " << p.message;
  for (const TargetRow& row : result.numerics) {
    out << "\n  " << row.target.name() << ": " << (row.ran ? "" : "not run, ")
        << (row.ok ? "ok" : "FAIL") << ", rel L2 " << row.rel_l2 << " (tolerance "
        << row.tolerance << "), first divergence '" << row.first_divergence << "'";
    for (const std::string& what : row.nondeterministic) out << ", bits changed across " << what;
  }
  return out.str();
}

const std::vector<BrokenKernelRow>& caught_rows() {
  using namespace broken;
  static const std::vector<BrokenKernelRow> rows = {
      // RoPE with adjacent pairs. Position 0 is the identity in either layout, so only
      // tokens 1 onwards differ; q is the first tap after the rotation.
      {"rope_interleaved_model", "models/llama.md", "rope_theta_10000", "cpu fp32",
       with_bug<InterleavedRope>(), "layers.0.q"},
      {"rope_interleaved_model_bf16", "models/llama.md", "rope_theta_10000", "cpu bf16",
       with_bug<InterleavedRope>(), "layers.0.q"},
      {"rope_interleaved_kernel_head_dim_6", "kernels/rope.md",
       "positions_zero_to_two_head_dim_6", "cpu fp32", with_bug<InterleavedRope>(), "rope"},
      {"rope_interleaved_kernel_start_4093", "kernels/rope.md",
       "positions_4093_to_4096_head_dim_10", "cpu fp32", with_bug<InterleavedRope>(), "rope"},
      {"rope_interleaved_kernel_theta_500000", "kernels/rope.md",
       "llama_3_s_theta_at_the_end_of_a_128k_context", "cpu fp32", with_bug<InterleavedRope>(),
       "rope"},

      // Causal mask letting query i see key i + 1. q, k and v are untouched; the scores tap
      // is the first to change, and only in a call of more than one token (the last query
      // of a call has no key after it).
      {"mask_off_by_one_model", "attention/causal_mask.md", "six_tokens_the_mask_in_the_scores",
       "cpu fp32", with_bug<MaskOffByOne>(), "layers.0.scores"},
      {"mask_off_by_one_model_bf16", "attention/causal_mask.md",
       "six_tokens_the_mask_in_the_scores", "cpu bf16", with_bug<MaskOffByOne>(),
       "layers.0.scores"},
      {"mask_off_by_one_prefill", "decoding/prefill_vs_decode.md", "the_whole_prompt_at_once",
       "cpu fp32", with_bug<MaskOffByOne>(), "layers.0.scores"},
      // Sequence 0 of this batch is a single token, whose one query has no key after it, and
      // its decode steps are single tokens too; the first call with a hidden key is sequence
      // 1's four-token prefill.
      {"mask_off_by_one_ragged_batch", "decoding/batch.md", "ragged_batch_of_lengths_1_4_and_7",
       "cpu fp32", with_bug<MaskOffByOne>(), "sequence 1, layers.0.scores"},
      {"mask_off_by_one_kernel_prefill", "kernels/attention.md",
       "prefill_of_five_tokens_two_heads_head_dim_6", "cpu fp32", with_bug<MaskOffByOne>(),
       "attention"},
      {"mask_off_by_one_kernel_chunk", "kernels/attention.md",
       "chunk_of_three_after_four_cached_keys_gqa_6_over_2", "cpu fp32", with_bug<MaskOffByOne>(),
       "attention"},

      // exp() of raw scores in fp16: inputs up to 16 overflow 65504, the row turns to NaN.
      {"softmax_fp16_without_max", "kernels/softmax.md", "scores_of_up_to_16_in_fp16",
       "cpu fp16", with_bug<Fp16SoftmaxWithoutMax>(), "softmax"},

      // eps dropped from RMSNorm. With eps = 1 next to a mean square of about 1/3 the
      // normaliser moves by about 15%.
      {"rmsnorm_without_eps_kernel", "kernels/rmsnorm.md", "a_large_eps_shows_where_it_goes",
       "cpu fp32", with_bug<RmsNormWithoutEps>(), "rmsnorm"},
      // Llama 2's eps = 1e-5 against a mean square of about 1/3 moves the normaliser by about
      // eps / (2 * 1/3) = 1.5e-5, several times fp32's tolerance for this kernel.
      {"rmsnorm_without_eps_kernel_llama_2_eps", "kernels/rmsnorm.md",
       "two_rows_of_forty_llama_2_s_eps", "cpu fp32", with_bug<RmsNormWithoutEps>(), "rmsnorm"},
      // In a model the same 1.5e-5 shows at the first norm: an early tap has been through two
      // rounding points, not the logits' 27, and is held to a bound tighter by sqrt(2/27).
      {"rmsnorm_without_eps_model", "models/llama.md", "a_config_json_pasted_from_the_hub_shrunk",
       "cpu fp32", with_bug<RmsNormWithoutEps>(), "layers.0.attn_norm"},

      // KV head h % kv_heads. Query heads 1 and 2 of four over two read the wrong keys; q, k
      // and v are untouched, so the scores are the first tap to change.
      {"gqa_round_robin_model", "attention/heads.md", "gqa_four_query_heads_over_two_kv_heads",
       "cpu fp32", with_bug<GqaRoundRobin>(), "layers.0.scores"},
      {"gqa_round_robin_model_head_dim_10", "attention/heads.md",
       "gqa_with_head_dim_set_apart_from_hidden_size", "cpu fp32", with_bug<GqaRoundRobin>(),
       "layers.0.scores"},
      {"gqa_round_robin_model_6_over_2", "models/llama.md",
       "a_config_json_pasted_from_the_hub_shrunk", "cpu fp32", with_bug<GqaRoundRobin>(),
       "layers.0.scores"},
      // One token per call: the first call has a single key, whose probability is 1 whichever
      // KV head it came from, so the scores tap is unchanged and the wrong values surface in
      // attn_out.
      {"gqa_round_robin_one_token_per_call", "decoding/prefill_vs_decode.md",
       "one_token_at_a_time", "cpu fp32", with_bug<GqaRoundRobin>(), "layers.0.attn_out"},
      {"gqa_round_robin_kernel_decode", "kernels/attention.md",
       "decode_step_over_nine_cached_keys_gqa_4_over_2", "cpu fp32", with_bug<GqaRoundRobin>(),
       "attention"},

      // The least likely experts instead of the most likely: the router's probabilities are
      // right, the choice is not, and feeding the target the oracle's experts afterwards does
      // not hide it.
      {"moe_least_likely_experts", "models/mixtral.md",
       "four_experts_top_2_the_routing_of_layer_0", "cpu fp32", with_bug<MoeRouteLeastLikely>(),
       "layers.0.experts"},
      {"moe_least_likely_experts_bf16", "models/mixtral.md",
       "four_experts_top_2_the_routing_of_layer_0", "cpu bf16", with_bug<MoeRouteLeastLikely>(),
       "layers.0.experts"},
      // The same in Qwen3-MoE, whose weights are not renormalised: the choice is still the
      // first tap to differ.
      {"moe_least_likely_experts_qwen3_moe", "models/qwen3_moe.md",
       "without_renormalisation_a_dense_layer_between_sparse_ones", "cpu fp32",
       with_bug<MoeRouteLeastLikely>(), "layers.0.experts"},

      // DeepSeek-V3.2: the indexer's scores without relu. The scores tap is the first to move;
      // the target is then fed the oracle's keys, so nothing downstream hides or repeats it.
      {"indexer_without_relu", "models/deepseek_v32.md", "sparse_attention_four_keys_per_query",
       "cpu fp32", with_bug<IndexerWithoutRelu>(), "layers.0.index_scores"},

      // Gemma 3n: the sparsity cutoff from the sample standard deviation. The first sparse
      // layer's gate is the first tap to move.
      {"gaussian_topk_sample_std", "models/gemma3n.md",
       "four_layers_altup_over_4_streams_sparse_first_layers_the_last_two_sharing_keys_and_values",
       "cpu fp32", with_bug<GaussianTopkSampleStd>(), "layers.0.sparse_gate"},

      // gpt-oss: a Llama SwiGLU in place of its clamped one. Routing is untouched; the first
      // expert output is the first tap to move.
      {"gpt_oss_activation_as_swiglu", "models/gpt_oss.md", "two_layers_sliding_then_full",
       "cpu fp32", with_bug<SwigluForClampedSwiglu>(), "layers.0.mlp_out"},
      {"gpt_oss_activation_as_swiglu_bf16", "models/gpt_oss.md", "two_layers_sliding_then_full",
       "cpu bf16", with_bug<SwigluForClampedSwiglu>(), "layers.0.mlp_out"},
      // gpt-oss: the sink left out of the softmax. Every row of the first layer's scores sums
      // to 1 instead of less.
      {"gpt_oss_sink_dropped", "models/gpt_oss.md", "two_layers_sliding_then_full", "cpu fp32",
       with_bug<SoftmaxDroppingTheSink>(), "layers.0.scores"},

      // Gemma 3: a plain RMSNorm for the (1 + w) one. The weights are offsets near 0, so the
      // first norm's output collapses towards 0.
      {"gemma3_plain_rmsnorm", "models/gemma3.md", "a_shrunk_gemma_3_270m", "cpu fp32",
       with_bug<PlainRmsnormForPlusOne>(), "layers.0.attn_norm"},

      // Phi-3 with half of each head rotated: adjacent pairs within the rotated half.
      {"rope_interleaved_phi3_partial", "models/phi3.md", "half_the_head_rotated_a_window_of_4",
       "cpu fp32", with_bug<InterleavedRope>(), "layers.0.q"},

      // OLMo 2, GQA 4 over 2, normed q and k: round-robin KV heads still show in the scores.
      {"gqa_round_robin_olmo2", "models/olmo2.md", "a_shrunk_olmo_2_1124_7b", "cpu fp32",
       with_bug<GqaRoundRobin>(), "layers.0.scores"},

      // Qwen3-Next: a convolution that drops its cached inputs is right in the first call of a
      // sequence and wrong from the next one on: the first decode step here, the second chunk
      // of a chunked prefill there.
      {"qwen3_next_conv_dropping_its_state_decode", "models/qwen3_next.md",
       "three_gated_deltanet_layers_and_a_gated_attention_layer_moe_with_a_shared_expert",
       "cpu fp32", with_bug<ConvDroppingItsState>(), "call 1: layers.0.conv"},
      {"qwen3_next_conv_dropping_its_state_chunks", "models/qwen3_next.md",
       "the_same_prompt_in_chunks_of_3", "cpu fp32", with_bug<ConvDroppingItsState>(),
       "call 1: layers.0.conv"},
      // The delta rule without its decay: the conv before it is untouched, the rule's output
      // is the first tap to move (from the second token, the first whose state is not zero).
      {"qwen3_next_delta_rule_without_decay", "models/qwen3_next.md",
       "three_gated_deltanet_layers_and_a_gated_attention_layer_moe_with_a_shared_expert",
       "cpu fp32", with_bug<DeltaRuleWithoutDecay>(), "layers.0.delta_rule"},
      {"qwen3_next_delta_rule_without_decay_bf16", "models/qwen3_next.md",
       "three_gated_deltanet_layers_and_a_gated_attention_layer_moe_with_a_shared_expert",
       "cpu bf16", with_bug<DeltaRuleWithoutDecay>(), "layers.0.delta_rule"},
      // The gated norm without silu(z).
      {"qwen3_next_gated_norm_without_gate", "models/qwen3_next.md",
       "three_gated_deltanet_layers_and_a_gated_attention_layer_moe_with_a_shared_expert",
       "cpu fp32", with_bug<GatedNormWithoutGate>(), "layers.0.gated_norm"},
  };
  return rows;
}

class BrokenKernelIsCaught : public testing::TestWithParam<BrokenKernelRow> {};

TEST_P(BrokenKernelIsCaught, FailsAtTheFirstDivergence) {
  const BrokenKernelRow& row = GetParam();
  const std::string at = where(row.file, row.slug);
  CaseSpec spec;
  std::string why;
  ASSERT_TRUE(load_spec(row.file, row.slug, spec, why)) << why;
  ASSERT_TRUE(runs_target(spec, row.target))
      << at << " does not list target '" << row.target << "', so the bug would never run";

  const CaseResult result = run_case(spec, breaking(row.target, row.make_broken));
  ASSERT_TRUE(result.problems.empty()) << at << " did not run:" << describe(result);
  for (const TargetRow& r : result.numerics) {
    SCOPED_TRACE(at + ", target " + r.target.name() + describe(result));
    // Targets this machine cannot run (a GPU elsewhere) have no row to judge here.
    if (r.target.name() != row.target && !r.ran) continue;
    ASSERT_TRUE(r.ran);
    if (r.target.name() == row.target) {
      EXPECT_FALSE(r.ok) << "the broken " << row.name << " kernel passed";
      EXPECT_EQ(r.first_divergence, row.divergence) << "the bug was located in the wrong place";
    } else {
      EXPECT_TRUE(r.ok) << "a target with the healthy backend failed";
      EXPECT_EQ(r.first_divergence, "");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ShippedCases, BrokenKernelIsCaught, testing::ValuesIn(caught_rows()),
                         [](const testing::TestParamInfo<BrokenKernelRow>& info) {
                           return info.param.name;
                         });

// The same cases with every target on the healthy backend: all pass, with no divergence.
struct ControlRow {
  std::string file, slug;
  friend std::ostream& operator<<(std::ostream& os, const ControlRow& row) {
    return os << row.file << " :: " << row.slug;
  }
};

std::vector<ControlRow> control_rows() {
  std::vector<ControlRow> rows;
  std::set<std::pair<std::string, std::string>> seen;
  for (const BrokenKernelRow& row : caught_rows())
    if (seen.insert({row.file, row.slug}).second) rows.push_back({row.file, row.slug});
  return rows;
}

class HealthyKernels : public testing::TestWithParam<ControlRow> {};

TEST_P(HealthyKernels, PassTheSameCases) {
  const ControlRow& row = GetParam();
  const std::string at = where(row.file, row.slug);
  CaseSpec spec;
  std::string why;
  ASSERT_TRUE(load_spec(row.file, row.slug, spec, why)) << why;
  const CaseResult result = run_case(spec, make_target_backend);
  ASSERT_TRUE(result.problems.empty()) << at << " did not run:" << describe(result);
  ASSERT_FALSE(result.numerics.empty()) << at;
  for (const TargetRow& r : result.numerics) {
    if (!r.ran) continue;  // a target this machine cannot run
    EXPECT_TRUE(r.ok && r.first_divergence.empty())
        << at << ", target " << r.target.name() << " fails with the healthy backend:"
        << describe(result);
  }
}

INSTANTIATE_TEST_SUITE_P(ShippedCases, HealthyKernels, testing::ValuesIn(control_rows()),
                         [](const testing::TestParamInfo<ControlRow>& info) {
                           std::string name = info.param.file + "_" + info.param.slug;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

// Bugs that a case cannot see by construction. Pinned so that the rows above are known to be
// the ones doing the catching, and so that a case meant to catch a bug is never replaced by
// one of these.
struct InvisibleRow {
  std::string name, file, slug;
  MakeBroken make_broken;
  std::string why;
  friend std::ostream& operator<<(std::ostream& os, const InvisibleRow& row) {
    return os << row.file << " :: " << row.slug;
  }
};

const std::vector<InvisibleRow>& invisible_rows() {
  using namespace broken;
  static const std::vector<InvisibleRow> rows = {
      {"gqa_round_robin_mha", "attention/heads.md", "mha_four_query_heads_over_four_kv_heads",
       with_bug<GqaRoundRobin>(), "with as many KV heads as query heads, h % kv_heads == h"},
      {"gqa_round_robin_mqa", "attention/heads.md", "mqa_four_query_heads_over_one_kv_head",
       with_bug<GqaRoundRobin>(), "with one KV head, both mappings give 0"},
      {"mask_off_by_one_one_token_per_call", "decoding/prefill_vs_decode.md",
       "one_token_at_a_time", with_bug<MaskOffByOne>(),
       "a single query is the last position in the cache, with no key after it"},
      {"mask_off_by_one_kernel_decode", "kernels/attention.md",
       "decode_step_over_nine_cached_keys_gqa_4_over_2", with_bug<MaskOffByOne>(),
       "a single query is the last position in the cache, with no key after it"},
  };
  return rows;
}

class BrokenKernelIsInvisible : public testing::TestWithParam<InvisibleRow> {};

TEST_P(BrokenKernelIsInvisible, PassesEveryTarget) {
  const InvisibleRow& row = GetParam();
  const std::string at = where(row.file, row.slug);
  CaseSpec spec;
  std::string why;
  ASSERT_TRUE(load_spec(row.file, row.slug, spec, why)) << why;
  ASSERT_FALSE(spec.targets.targets.empty()) << at;
  const std::string target = spec.targets.targets.front().name();
  const CaseResult result = run_case(spec, breaking(target, row.make_broken));
  ASSERT_TRUE(result.problems.empty()) << at << " did not run:" << describe(result);
  for (const TargetRow& r : result.numerics)
    EXPECT_TRUE(!r.ran || (r.ok && r.first_divergence.empty()))
        << at << ", target " << r.target.name() << ": expected to pass because " << row.why
        << describe(result);
}

INSTANTIATE_TEST_SUITE_P(ShippedCases, BrokenKernelIsInvisible,
                         testing::ValuesIn(invisible_rows()),
                         [](const testing::TestParamInfo<InvisibleRow>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace pinmark
