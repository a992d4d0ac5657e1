// The subset of a Hugging Face config.json that the runtime understands, already parsed.
// Parsing JSON (and naming the line of a bad key) is the driver's job; the runtime only
// checks that the numbers describe a model it can build.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pinmark {

// The families, by Hugging Face model_type. The model's layer loop branches on the family for
// what is fixed by the architecture (Gemma's (1 + w) norms, GPT-2's LayerNorm and learned
// positions, Qwen2's q/k/v biases, Qwen3's q/k norms, Gemma 2's sandwich norms, Mixtral's
// experts) and reads the fields below for what a config chooses.
//   llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3_text, gpt2, mixtral, qwen3_moe, olmo2,
//   phi3, gpt_oss, deepseek_v3, deepseek_v32, qwen3_next, gemma3n_text, deepseek_v4
struct ModelConfig {
  std::string model_type = "llama";
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  // Gemma 3n's intermediate_size as a list: each layer's MLP width. Empty: intermediate_size in
  // every layer (which then holds the widest of these).
  std::vector<int> layer_intermediate_sizes;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // HF default: equal to num_attention_heads
  int head_dim = 0;             // HF default: hidden_size / num_attention_heads
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  uint64_t seed = 0;  // synthetic weights are keyed by (seed, HF tensor name)

  // rope_scaling / rope_parameters: "default", "linear" (factor), "llama3" (factor,
  // low/high_freq_factor, original_max_position_embeddings), "dynamic" (factor), "yarn"
  // (factor, original_max_position_embeddings, optional beta_fast, beta_slow, mscale,
  // mscale_all_dim, attention_factor, truncate) or "longrope" (short_factor, long_factor,
  // original_max_position_embeddings, optional factor and attention_factor).
  std::string rope_type = "default";
  double rope_factor = 1.0;
  double rope_low_freq_factor = 0.0;
  double rope_high_freq_factor = 0.0;
  int rope_original_max_position_embeddings = 0;
  bool rope_has_factor = true;         // longrope/yarn: false when "factor" is absent (or null)
  double rope_attention_factor = 0.0;  // yarn, longrope: 0 = derived as transformers does
  double rope_beta_fast = 32.0;        // yarn
  double rope_beta_slow = 1.0;         // yarn
  double rope_mscale = 0.0;            // yarn: 0 = absent
  double rope_mscale_all_dim = 0.0;    // yarn: 0 = absent
  bool rope_truncate = true;           // yarn
  std::vector<double> rope_short_factor, rope_long_factor;  // longrope: rotary_dim / 2 each
  // Phi-3: RoPE rotates the first int(head_dim * partial_rotary_factor) values of each head
  // (pairs j and j + rotary_dim / 2 among them) and passes the rest through; the frequencies
  // are those of a head of rotary_dim values. Other families rotate the whole head (1).
  double partial_rotary_factor = 1.0;
  // Gemma 3: sliding layers rotate with plain RoPE of this base (rope_local_base_freq, or the
  // sliding_attention entry of rope_parameters), full layers with rope_theta and the rope
  // scaling above. 0: every layer uses rope_theta and the scaling.
  double rope_local_base_freq = 0.0;

  // DeepSeek-V3's Multi-head Latent Attention (kv_lora_rank > 0): queries through a rank
  // q_lora_rank bottleneck (0: one q_proj), keys and values from one latent of kv_lora_rank
  // values per token plus a decoupled RoPE key of qk_rope_head_dim values shared by the heads;
  // each head's key is qk_nope_head_dim + qk_rope_head_dim values, its value v_head_dim. The
  // KV cache stores the latent and the rotated key. head_dim is qk_rope_head_dim (the rotary
  // width, as DeepseekV3Config sets it). rope_interleave: the rotary part pairs adjacent values.
  int q_lora_rank = 0;
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
  bool rope_interleave = false;
  // pinmark.mla_absorb: compute MLA in the latent space, as inference engines do (DeepSeek-V2,
  // section 2.1.2): kv_b's key half folded into each head's query, attention over the cached
  // latent itself (one shared "KV head" of kv_lora_rank + qk_rope_head_dim values), and its
  // value half applied after the weighted sum. The same function as the expansion, other
  // roundings; transformers computes the expansion.
  bool mla_absorb = false;
  // DeepSeek MoE: sigmoid router scores plus a per-expert correction bias choose the experts,
  // within the topk_group best of n_group groups (a group's score: its two best experts);
  // weights are the chosen sigmoid scores (renormalised when norm_topk_prob) times
  // routed_scaling_factor; n_shared_experts always-on experts of moe_intermediate_size each
  // (one MLP n_shared_experts times as wide); the first first_k_dense_replace layers dense.
  int n_shared_experts = 0;
  int n_group = 1;
  int topk_group = 1;
  double routed_scaling_factor = 1.0;
  int first_k_dense_replace = 0;
  // DeepSeek-V3.2 (deepseek_v32): which layers' MLP is the MoE, "dense" or "sparse" per layer;
  // empty: the first first_k_dense_replace dense, the rest sparse (DeepseekV32Config's default).
  std::vector<std::string> mlp_layer_types;
  // DeepSeek Sparse Attention (DeepSeek-V3.2, deepseek_v32): a lightning indexer of
  // index_n_heads heads of index_head_dim values scores every cached key for each query,
  //   I[i, j] = sum_h w[i, h] * relu(q_I[i, h] . k_I[j] / sqrt(index_head_dim)),
  // and MLA attends only over each query's index_topk best keys (every key when there are
  // fewer). The cache keeps each position's indexer key (index_head_dim values) beside the
  // latent. index_n_heads 0: dense MLA (deepseek_v3).
  int index_topk = 0;
  int index_head_dim = 0;
  int index_n_heads = 0;

  // Attention.
  bool attention_bias = false;  // q, k, v and o projections (Llama, Qwen3, Gemma); Qwen2's
                                // q/k/v biases are part of its family, not of this flag
  int sliding_window = 0;       // 0: none; otherwise a query sees itself and window - 1 keys back
  // Per layer "full_attention" or "sliding_attention"; empty means every layer is sliding when
  // sliding_window > 0 (Mistral, Mixtral) and full otherwise.
  std::vector<std::string> layer_types;
  double attn_logit_softcapping = 0.0;   // 0: none
  double final_logit_softcapping = 0.0;  // 0: none
  double query_pre_attn_scalar = 0.0;    // 0: scale by head_dim^-0.5

  // MLP activation, as Hugging Face's ACT2FN names it: "silu", "gelu_pytorch_tanh",
  // "gelu_new" (both the tanh approximation) or "gelu" (exact, erf).
  std::string hidden_act = "silu";

  // Mixture of experts (Mixtral's num_local_experts, Qwen3-MoE's num_experts): 0 experts means
  // a dense MLP.
  int num_local_experts = 0;
  int num_experts_per_tok = 0;
  // Qwen3-MoE: each expert's intermediate size (moe_intermediate_size; 0: intermediate_size),
  // whether the top-k routing probabilities are renormalised to sum to 1 (norm_topk_prob;
  // Mixtral always renormalises), and which layers are sparse: layer l is, unless it is listed
  // in mlp_only_layers or (l + 1) % decoder_sparse_step != 0 (see is_moe_layer). The dense
  // layers' MLP has intermediate_size.
  int moe_intermediate_size = 0;
  bool norm_topk_prob = true;
  int decoder_sparse_step = 1;
  std::vector<int> mlp_only_layers;

  // Qwen3-Next: layer_types entries "linear_attention" are Gated DeltaNet layers, the others
  // ("full_attention") gated attention. A Gated DeltaNet layer has linear_num_key_heads query
  // and key heads of linear_key_head_dim values, linear_num_value_heads value heads of
  // linear_value_head_dim, and a causal depthwise convolution of linear_conv_kernel_dim taps
  // over its queries, keys and values; its cache is that convolution's last
  // linear_conv_kernel_dim - 1 inputs and a [value heads, key dim, value dim] state, whatever
  // the sequence length. Its MoE layers add a shared expert of shared_expert_intermediate_size
  // scaled by sigmoid(shared_expert_gate).
  int linear_conv_kernel_dim = 0;
  int linear_key_head_dim = 0;
  int linear_value_head_dim = 0;
  int linear_num_key_heads = 0;
  int linear_num_value_heads = 0;
  int shared_expert_intermediate_size = 0;

  // Cross-layer KV sharing (Gemma 3n's num_kv_shared_layers): the last N layers compute no keys
  // or values of their own and attend over those of the last earlier layer of the same
  // attention type; the cache stores only the layers that compute them.
  int num_kv_shared_layers = 0;

  // Gemma 3n (gemma3n_text), after Gemma3nTextModel:
  // - AltUp (Baykal et al., NeurIPS 2023): the residual stream is altup_num_inputs streams;
  //   each layer predicts all of them from a learned mix (coefficients from a tanh router over
  //   stream altup_active_idx), runs attention and MLP on the active one only, and corrects
  //   every stream by the active one's innovation.
  // - LAuReL (Menghani et al., 2024): a rank-laurel_rank residual beside attention.
  // - Per-layer inputs: a second embedding table (vocab_size_per_layer_input rows of
  //   num_hidden_layers x hidden_size_per_layer_input) gates a per-layer projection added to
  //   the streams other than the first.
  // - Activation sparsity: in layer l, gate values below mean + std * Phi^-1(p_l) of their row
  //   are cut (activation_sparsity_pattern[l] = p_l; 0: dense).
  // altup_num_inputs 0: none of these (every other family).
  int altup_num_inputs = 0;
  int altup_active_idx = 0;
  bool altup_correct_scale = true;
  int laurel_rank = 0;
  int hidden_size_per_layer_input = 0;
  int vocab_size_per_layer_input = 0;
  // Per layer; empty: dense everywhere (the config reader fills Gemma3nTextConfig's default).
  std::vector<double> activation_sparsity_pattern;

  // DeepSeek-V4 (deepseek_v4), after transformers 5.17's DeepseekV4Model (DeepSeek-AI 2026,
  // "DeepSeek-V4"):
  // - Manifold-constrained hyper-connections (mHC; Xie et al. 2026): the residual is hc_mult
  //   streams; before each sublayer a learned map of the streams gives weights that collapse
  //   them into the sublayer's input ("pre"), expand its output back ("post"), and mix the
  //   streams ("comb", made doubly stochastic by hc_sinkhorn_iters Sinkhorn-Knopp steps, each
  //   division's denominator plus hc_eps).
  // - Attention: one shared key-and-value head (K = V) of head_dim values, queries through a
  //   q_lora_rank bottleneck, RoPE interleaved on the last rotary_dim values of each head, one
  //   learned sink logit per head, a sliding window on every layer, and the output's rotary part
  //   rotated back by its query's position. layer_types adds to the window: "sliding_attention"
  //   nothing; "compressed_sparse_attention" (CSA) one entry per csa_compress_rate tokens,
  //   pooled over overlapping windows, of which a lightning indexer (index_n_heads heads of
  //   index_head_dim values) picks index_topk per query; "heavily_compressed_attention" (HCA)
  //   one entry per hca_compress_rate tokens, pooled over disjoint windows, all visible.
  //   Sliding layers rotate with rope_local_base_freq (V4's "main" rope, rope_theta in its
  //   config.json); the others, their compressors and the indexer with rope_theta (its
  //   compress_rope_theta) and the rope scaling.
  // - Output projection in o_groups groups, each of num_attention_heads * head_dim / o_groups
  //   values to o_lora_rank, then one Linear to hidden_size.
  // - MoE in every layer: router scores scoring_func(logits) ("sqrtsoftplus" or "sigmoid"); "moe" layers (mlp_layer_types) pick the top num_experts_per_tok of scores plus
  //   the correction bias, "hash_moe" layers the experts a fixed table (tid2eid) gives the
  //   token; weights the chosen scores renormalised times routed_scaling_factor; one shared
  //   expert; expert and shared gates clamped at swiglu_limit from above, ups at +-swiglu_limit.
  // hc_mult 0: none of these (every other family).
  int hc_mult = 0;
  int hc_sinkhorn_iters = 20;
  double hc_eps = 1e-6;
  int csa_compress_rate = 4;
  int hca_compress_rate = 128;
  int o_groups = 0;
  int o_lora_rank = 0;
  std::string scoring_func = "sqrtsoftplus";
  double swiglu_limit = 10.0;

  // pinmark.query_heads: each layer's number of query heads, num_key_value_heads staying the
  // same in every layer, so that layers group their query heads over the KV heads unevenly
  // (OpenELM's layer-wise scaling, Mehta et al. 2024, sec. 2.2; models that give sliding and
  // global layers different head budgets). Empty: num_attention_heads in every layer.
  std::vector<int> query_heads;
};

// DeepSeek-V3 or V3.2: MLA and DeepSeek MoE (model_type deepseek_v3 or deepseek_v32).
bool is_deepseek(const ModelConfig& config);

// Layer `layer`'s query heads: query_heads[layer] when set, else num_attention_heads.
int query_heads(const ModelConfig& config, int layer);

// The most query heads of any layer.
int widest_query_heads(const ModelConfig& config);

// Gemma 3n: AltUp, LAuReL and per-layer inputs (model_type gemma3n_text).
bool is_gemma3n(const ModelConfig& config);

// DeepSeek-V4: hyper-connections, compressed attention, hash routing (model_type deepseek_v4).
bool is_deepseek_v4(const ModelConfig& config);

// DeepSeek-V4: layer `layer`'s compression rate (csa_compress_rate or hca_compress_rate), 0 for a
// sliding_attention layer.
int compress_rate(const ModelConfig& config, int layer);

// Layer `layer`'s MLP width: layer_intermediate_sizes[layer] when set, else intermediate_size.
int layer_intermediate_size(const ModelConfig& config, int layer);

// Whether layer `layer` is a Gated DeltaNet layer (Qwen3-Next's "linear_attention").
bool is_linear_attention_layer(const ModelConfig& config, int layer);

// Whether layer `layer` uses the sliding window (see ModelConfig::layer_types).
bool is_sliding_layer(const ModelConfig& config, int layer);

// Whether layer `layer`'s MLP is a sparse mixture of experts: every layer of a model with
// experts, except, for Qwen3-MoE, the layers in mlp_only_layers and those with (layer + 1) %
// decoder_sparse_step != 0 (transformers' Qwen3MoeDecoderLayer).
bool is_moe_layer(const ModelConfig& config, int layer);

// The intermediate size of one expert: moe_intermediate_size when set, else intermediate_size.
int expert_intermediate_size(const ModelConfig& config);

// The values of each head that RoPE rotates: int(head_dim * partial_rotary_factor), as
// transformers' rope functions compute it (head_dim after with_defaults).
int rotary_dim(const ModelConfig& config);

// For each layer, the layer whose keys and values it attends over: itself, or for the last
// num_kv_shared_layers layers, the last layer before them with the same attention type.
// -1 for a shared layer with no such layer (validate() reports it).
std::vector<int> kv_source_layers(const ModelConfig& config);

// A problem with a config, naming the HF key it is about.
struct ConfigProblem {
  std::string key;
  std::string message;
};

// Empty when the config describes a buildable model. Checks positivity of every size,
// hidden_size % num_attention_heads (when head_dim is derived), num_attention_heads %
// num_key_value_heads, and an even head_dim (rotary pairs).
std::vector<ConfigProblem> validate(const ModelConfig& config);

// The config.json key for a ModelConfig field name: GPT-2 spells its sizes differently
// ("hidden_size" -> "n_embd"); other families' keys are the field names.
std::string config_key_name(const ModelConfig& config, const std::string& field);

// Fills the HF defaults (num_key_value_heads, head_dim) for fields left at 0.
ModelConfig with_defaults(ModelConfig config);

// A config holding the Hugging Face defaults of `model_type`'s configuration class for every
// field a config.json may leave out (e.g. gemma2: head_dim 256, softcaps 50 and 30, sliding
// window 4096, tied embeddings). Sizes stay 0. An unknown model_type gives llama's.
ModelConfig family_defaults(const std::string& model_type);

// The model_types the runtime builds.
const std::vector<std::string>& known_model_types();

}  // namespace pinmark
