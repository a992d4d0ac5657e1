// A decoder-only transformer in the layout of Hugging Face's *ForCausalLM for the families of
// ModelConfig: embedding, N x (norm, attention with a KV cache, residual, norm, MLP or mixture
// of experts, residual), final norm, LM head (tied or not).
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "runtime/backend.h"
#include "runtime/model_config.h"
#include "runtime/tensor.h"
#include "runtime/weight_array.h"
#include "runtime/weight_source.h"
#include "runtime/weights.h"

namespace pinmark {

// A named intermediate tensor seen during a forward pass, in the order the pass produces them.
// Every family:
//   "embed" (after position embeddings / Gemma's scaling), "layers.N.attn_norm",
//   "layers.N.q", "layers.N.k", "layers.N.v" (q and k after q/k norm and RoPE; a layer that
//   shares another layer's keys and values has no k and v), "layers.N.scores" (attention
//   probabilities after softmax), "layers.N.attn_out" (after the output projection),
//   "layers.N.mlp_out" (after down_proj, or the experts' weighted sum), "final_norm", "logits"
//   (after final logit softcapping where the family has it).
// Gemma 2 adds "layers.N.post_attn_norm" (post_attention_layernorm of attn_out, what joins the
// residual) and "layers.N.post_mlp_norm" (post_feedforward_layernorm of mlp_out).
// Mixtral adds, before mlp_out: "layers.N.router" [tokens, experts] (the router's softmax over
// all experts), "layers.N.experts" [tokens, top_k] (the chosen expert ids as numbers, largest
// probability first) and "layers.N.expert_weights" [tokens, top_k] (their renormalised weights).
// Gemma 3n adds "per_layer_inputs" [tokens, layers, P] and "altup_streams" [N, tokens, hidden]
// after embed; per layer "layers.N.predictions" [N, tokens, hidden] (AltUp's predicted
// streams; attn_norm normalises stream altup_active_idx of them), "layers.N.laurel"
// [tokens, hidden], "layers.N.streams" [N, tokens, hidden] (corrected, per-layer input added);
// and "altup_merged" [tokens, hidden] before final_norm.
// DeepSeek-V4 computes per layer: "layers.N.attn_comb" [tokens, N, N] (the hyper-connection's
// doubly stochastic stream mix before attention, row j the weights of input stream j into each
// output stream), "layers.N.attn_norm" (input_layernorm of the collapsed streams), "layers.N.q",
// "layers.N.kv" [tokens, 1, head_dim] (its one key-and-value head), on compressed layers
// "layers.N.compressed" [entries, head_dim] (every compressed entry so far), on CSA layers
// "layers.N.index_scores" [tokens, entries] (0 where masked) and "layers.N.index_topk"
// [tokens, min(index_topk, entries)] (-1 past the entries a query may see), "layers.N.scores"
// [heads, tokens, kv_len + entries], "layers.N.attn_out", "layers.N.mlp_comb", "layers.N.router",
// "layers.N.experts", "layers.N.expert_weights", "layers.N.shared_experts", "layers.N.mlp_out",
// "layers.N.streams" [N, tokens, hidden]; then "hc_head" [tokens, hidden] (the streams
// collapsed) before final_norm.
// DeepSeek-V3.2 adds, before scores: "layers.N.index_scores" [tokens, kv_len] (the indexer's
// score of every key, 0 for keys after the query's position) and "layers.N.index_topk"
// [tokens, min(index_topk, kv_len)] (the selected keys' positions as numbers, best first).
template <class T>
using TapFn = std::function<void(const std::string& name, const Shape& shape, const T* data)>;

// Called after each discrete choice a forward pass makes, with `choice` the name of the tap that
// reports it: an MoE router's experts ("layers.N.experts"), ids [tokens, top_k], largest
// probability first, or the keys DeepSeek Sparse Attention's indexer selects
// ("layers.N.index_topk"), ids [tokens, top_k], best first; it may overwrite them. A target is
// fed the oracle's experts this way, as decode feeds it the oracle's tokens, so that it is
// compared with the oracle expert for expert even where a rounding-level difference in the
// router would pick another one. The "experts" tap shows the router's own choice, and the
// weights of overwritten experts are renormalised from the router's probabilities.
using RouteFn = std::function<void(const std::string& choice, int tokens, int top_k, int* ids)>;

// A call made once, when the arrays of the cache that holds it die: a model attending over a
// cache releases the backend's mirrors of its arrays then (Backend::release_cache), before
// their memory can be some other array's. Moving it moves the call; assigning over one makes
// the call it held first.
class CacheWatch {
 public:
  CacheWatch() = default;
  explicit CacheWatch(std::function<void()> on_gone) : on_gone_(std::move(on_gone)) {}
  CacheWatch(const CacheWatch&) = delete;
  CacheWatch& operator=(const CacheWatch&) = delete;
  CacheWatch(CacheWatch&& other) noexcept : on_gone_(std::move(other.on_gone_)) {
    other.on_gone_ = nullptr;
  }
  CacheWatch& operator=(CacheWatch&& other) noexcept {
    if (this != &other) {
      fire();
      on_gone_ = std::move(other.on_gone_);
      other.on_gone_ = nullptr;
    }
    return *this;
  }
  ~CacheWatch() { fire(); }

 private:
  void fire() noexcept {
    std::function<void()> call = std::move(on_gone_);
    on_gone_ = nullptr;
    if (call) call();
  }
  std::function<void()> on_gone_;
};

template <class T>
class KVCache {
 public:
  KVCache(const ModelConfig& config, int capacity);
  // Not copyable: a backend may mirror the arrays (Backend::cache_written), known by id().
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;
  // Movable (the arrays and their watch go together), not assignable: assigning over a cache
  // would free its arrays before its watch's call.
  KVCache(KVCache&&) = default;
  KVCache& operator=(KVCache&&) = delete;
  // A number no other cache of this process has had: a new cache may take a dead one's
  // memory, so its arrays' addresses do not tell it apart.
  uint64_t id() const { return id_; }
  // Replaces the watch (making the old one's call): Model::forward sets one.
  void watch(CacheWatch w) { watch_ = std::move(w); }
  int length() const { return length_; }
  int capacity() const { return capacity_; }
  // The keys and values layer `layer` attends over: its own, or for a layer that shares them
  // (num_kv_shared_layers), those of its source layer.
  // [capacity, kv_heads, head_dim]; for MLA [capacity, kv_lora_rank + qk_rope_head_dim], the
  // latent then the rotated shared key, and no values (they are expanded from the latent).
  T* keys(int layer) { return k_[slot_[layer]].data(); }
  T* values(int layer) { return v_[slot_[layer]].data(); }  // [capacity, kv_heads, head_dim]
  // DeepSeek Sparse Attention's indexer keys [capacity, index_head_dim] (deepseek_v32).
  T* index_keys(int layer) { return index_k_[layer].data(); }
  // Values the cache holds per token, over all layers: its size, which MLA shrinks.
  int64_t values_per_token() const {
    int64_t total = 0;
    for (size_t s = 0; s < k_.size(); ++s) total += static_cast<int64_t>(k_[s].size() + v_[s].size());
    for (const std::vector<T>& keys : index_k_) total += static_cast<int64_t>(keys.size());
    for (const auto* entries : {&compressed_, &index_compressed_})
      for (const std::vector<T>& e : *entries) total += static_cast<int64_t>(e.size());
    return capacity_ > 0 ? total / capacity_ : 0;
  }
  // A Gated DeltaNet layer's cache (Qwen3-Next), empty for other layers: the last
  // linear_conv_kernel_dim - 1 inputs of its convolution [kernel - 1, channels] (zeros before
  // the first token) and its recurrent state [value heads, key head dim, value head dim].
  // Their size does not grow with the sequence.
  T* conv_state(int layer) { return conv_[layer].data(); }
  T* recurrent_state(int layer) { return state_[layer].data(); }
  // Values the fixed-size states hold over all layers.
  int64_t state_values() const {
    int64_t total = 0;
    for (size_t l = 0; l < conv_.size(); ++l) total += static_cast<int64_t>(conv_[l].size() + state_[l].size());
    for (const auto* rows : {&compressor_rows_, &index_rows_})
      for (const std::vector<T>& r : *rows) total += static_cast<int64_t>(r.size());
    return total;
  }
  // DeepSeek-V4's compressed layers, empty for the others: the compressor's projected rows
  // (c * head_dim values of kv, then as many of gate; c = 2 on CSA layers, whose entries pool
  // two windows, 1 on HCA layers) of the last c * rate positions, a ring indexed by position
  // modulo c * rate; and the compressed entries [capacity / rate, head_dim]. On CSA layers the
  // indexer's likewise, at index_head_dim.
  T* compressor_rows(int layer) { return compressor_rows_[layer].data(); }
  T* compressed(int layer) { return compressed_[layer].data(); }
  T* index_rows(int layer) { return index_rows_[layer].data(); }
  T* index_compressed(int layer) { return index_compressed_[layer].data(); }
  // How many layers' keys and values are stored: fewer than the layers when some share.
  int stored_layers() const { return static_cast<int>(k_.size()); }
  void advance(int n) { length_ += n; }

 private:
  uint64_t id_;
  int capacity_;
  int length_ = 0;
  std::vector<int> slot_;  // per layer, the index into k_ and v_
  std::vector<std::vector<T>> k_, v_;
  std::vector<std::vector<T>> conv_, state_, index_k_;  // per layer
  std::vector<std::vector<T>> compressor_rows_, compressed_, index_rows_, index_compressed_;
  // Last, so that when the cache dies its call comes before the arrays go.
  CacheWatch watch_;
};

template <class T>
class Model {
 public:
  // Reads each weight once, as T: in place where the source holds it as T (a checkpoint's F32
  // tensors for an fp32 model: WeightSource::in_place), into the model's own arrays otherwise.
  // The source need not outlive the model (a mapping read in place is kept by the arrays).
  // Throws std::runtime_error naming a missing tensor or a shape that disagrees with the config.
  Model(const ModelConfig& config, const WeightSource& weights, Backend<T>& backend);
  Model(const ModelConfig& config, const Weights& weights, Backend<T>& backend)
      : Model(config, WeightMap(weights), backend) {}
  // Releases the weights the backend holds (Backend::hold_matrix); the backend must outlive
  // the model. Not copyable: the backend knows the weights by their addresses. Two models built
  // from one checkpoint source share the addresses of the tensors read in place, so they must
  // not be alive on one backend at once (the first one gone would release the other's).
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }

  // Runs `tokens` at positions cache.length() ... and appends their keys and values to the
  // cache. Returns logits [tokens.size(), vocab_size]. Throws std::runtime_error when a token
  // is outside the vocabulary or the cache would overflow.
  Tensor<T> forward(const std::vector<int>& tokens, KVCache<T>& cache, const TapFn<T>& tap = {},
                    const RouteFn& route = {});

 private:
  struct Expert {
    WeightArray<T> gate, up, down;  // Mixtral's w1, w3, w2
    WeightArray<T> gate_bias, up_bias, down_bias;  // gpt-oss; empty for the others
  };
  static Expert make_expert(WeightArray<T> gate, WeightArray<T> up, WeightArray<T> down) {
    Expert e;
    e.gate = std::move(gate);
    e.up = std::move(up);
    e.down = std::move(down);
    return e;
  }
  // Every weight in the Linear layout [out, in]; an empty bias means none.
  struct Layer {
    WeightArray<T> attn_norm, attn_norm_bias;
    WeightArray<T> q, k, v, o, q_bias, k_bias, v_bias, o_bias;
    // Qwen3, Gemma 3 (each head), OLMo 2 (the whole projection)
    WeightArray<T> q_norm, k_norm;
    WeightArray<T> post_attn_norm, post_mlp_norm;  // Gemma 2 and 3, OLMo 2
    WeightArray<T> mlp_norm, mlp_norm_bias;
    Expert mlp;  // the dense MLP; GPT-2's: up = c_fc, down = c_proj, with biases, no gate
    WeightArray<T> router, router_bias;  // Mixtral, Qwen3-MoE; the bias gpt-oss's
    WeightArray<T> sinks;                // gpt-oss: one attention logit per head
    // DeepSeek-V3's MLA (q_a, q_a_norm, q_b, or q above without a q rank; kv_a with the rotary
    // key's rows last, kv_a_norm, kv_b) and MoE (score_correction, the shared experts).
    WeightArray<T> q_a, q_a_bias, q_a_norm, q_b, kv_a, kv_a_bias, kv_a_norm, kv_b;
    WeightArray<T> kv_b_key_t;  // pinmark.mla_absorb: per head, W_UK_h^T [rank, nope]
    // DeepSeek-V3.2's lightning indexer: wq_b [heads * dim, q_lora_rank], wk [dim, hidden], the
    // LayerNorm k_norm (weight and bias) and weights_proj [heads, hidden].
    WeightArray<T> index_wq_b, index_wk, index_k_norm, index_k_norm_bias, index_weights_proj;
    WeightArray<T> score_correction;
    // Qwen3-Next. Gated attention: attn_gate [heads * head_dim, hidden] (the gate rows of
    // q_proj, regrouped out of it; q holds the query rows) and its bias. Gated DeltaNet:
    // in_proj_qkvz and in_proj_ba regrouped from their per-key-head order into in_qkv (all
    // queries, all keys, all values, as the convolution reads them), in_z, in_b and in_a; the
    // conv weight [channels, kernel]; A_log, dt_bias, the gated norm and out_proj. MoE:
    // shared_gate [1, hidden] scales the shared expert.
    WeightArray<T> attn_gate, attn_gate_bias;
    WeightArray<T> in_qkv, in_z, in_b, in_a, conv, A_log, dt_bias, gated_norm, out_proj;
    WeightArray<T> shared_gate;
    Expert shared;
    std::vector<Expert> experts;
    // Gemma 3n: AltUp's correct_output_scale [hidden], correction_coefs [N, N],
    // prediction_coefs [N * N, N], modality_router [N, hidden] and router_norm; LAuReL's
    // linear_left [rank, hidden], linear_right [hidden, rank] and post_laurel_norm; the
    // per-layer input's gate [P, hidden], projection [hidden, P] and post norm.
    WeightArray<T> altup_scale, altup_correction, altup_prediction, altup_router, altup_router_norm;
    WeightArray<T> laurel_left, laurel_right, laurel_norm;
    WeightArray<T> per_layer_gate, per_layer_projection, per_layer_norm;
    // DeepSeek-V4: the hyper-connections before attention (attn_hc) and the MLP (ffn_hc), fn
    // [(2 + N) N, N * hidden], base [(2 + N) N], scale [3]; kv_proj [head_dim, hidden] and
    // kv_norm; the grouped output projection o_a [o_groups * o_lora_rank, heads * head_dim /
    // o_groups] and o_b [hidden, o_groups * o_lora_rank]; a compressed layer's compressor
    // kv_proj and gate_proj [c * head_dim, hidden], position_bias [rate, c * head_dim] and
    // kv_norm; a CSA layer's indexer likewise at index_head_dim (its q_b_proj in index_wq_b,
    // its weights_proj in index_weights_proj); a hash_moe layer's tid2eid [vocab, top_k].
    // q_a, q_a_norm, q_b, sinks, router, score_correction, experts and shared as above.
    WeightArray<T> attn_hc_fn, attn_hc_base, attn_hc_scale, ffn_hc_fn, ffn_hc_base, ffn_hc_scale;
    WeightArray<T> kv_proj, kv_norm, o_a, o_b;
    WeightArray<T> compressor_kv, compressor_gate, compressor_bias, compressor_norm;
    WeightArray<T> index_kv, index_gate, index_bias, index_norm;
    std::vector<int> tid2eid;
  };
  // gate_proj, up_proj and down_proj under `prefix` (a layer's "...mlp." or an expert's), a
  // gated MLP `width` wide: what every family but GPT-2, Mixtral's legacy names and gpt-oss
  // stores.
  static Expert gated_weights(const WeightSource& weights, const std::string& prefix, int64_t width,
                              int64_t hidden);
  // w.data(), announced to the backend (hold_matrix) the first time it is used: every whole
  // weight passed to matmul or matmul_bias goes through here.
  const T* held(std::span<const T> w, int k, int m);
  // Copies src[count] into the cache array `array` [capacity] at value `first` and announces
  // the write (Backend::cache_written): every write to an array that an attention op reads
  // whole goes through here.
  void write_cache(T* array, int64_t capacity, int64_t first, const T* src, int64_t count);
  // Called as each forward call starts. For a cache other than the last one, releases the
  // arrays announced for that one (Backend::release_cache) and watches the new one, so that
  // its arrays are released when it dies.
  void attend_to(KVCache<T>& cache);
  // Releases the arrays announced for cache `id`, if it is the one attended to.
  void forget_cache(uint64_t id);
  void norm(const T* x, std::span<const T> w, std::span<const T> b, int rows, int dim, T* y);
  void linear(const T* x, std::span<const T> w, std::span<const T> b, int n, int k, int m, T* y);
  void activation(const T* gate, const T* up, int64_t n, T* out);
  // out[m, hidden] = (act(x gate^T) * (x up^T)) down^T: the backend's fused kernel when it has
  // one, otherwise matmul, activation, matmul.
  void gated_mlp(const T* x, std::span<const T> gate, std::span<const T> up,
                 std::span<const T> down, int m, int hidden, int inter, T* out);
  void rotate(T* x, const int* positions, int n, int heads, bool sliding);
  void mla_attention(const Layer& L, const std::string& prefix, int layer, const T* h, int n,
                     const int* positions, int p0, KVCache<T>& cache, const TapFn<T>& tap,
                     const RouteFn& route, T* out);
  // DeepSeek Sparse Attention: the keys each of the n queries attends over, selected[n, kv_len]
  // (1: attended), from the indexer over h and q_resid (the query's low-rank residual,
  // [n, q_lora_rank]); caches the queries' indexer keys.
  std::vector<char> sparse_selection(const Layer& L, const std::string& prefix, int layer,
                                     const T* h, const T* q_resid, int n, const int* positions,
                                     int p0, KVCache<T>& cache, const TapFn<T>& tap,
                                     const RouteFn& route);
  void load_deepseek(const WeightSource& weights);
  // Gemma 3n (runtime/gemma3n.cpp): the model's AltUp projections and per-layer embedding, and
  // each layer's AltUp, LAuReL and per-layer input weights.
  void load_gemma3n(const WeightSource& weights);
  // The per-layer inputs [n, layers, P] of the tokens whose scaled embeddings are x [n, hidden].
  std::vector<T> per_layer_inputs(const std::vector<int>& tokens, const T* x, int n,
                                  const TapFn<T>& tap);
  // DeepSeek Sparse Attention's indexer choice as taps: scores [n, entries] (masked ones
  // shown as 0) as "<p>index_scores", the chosen ids [n, top_k] as "<p>index_topk".
  void tap_index_choice(const TapFn<T>& tap, const std::string& p, int n, int entries,
                        const std::vector<T>& scores, const std::vector<int>& ids, int top_k);
  // The AltUp streams [N, n, hidden] from the embeddings x: x itself, then x through each
  // altup_projection, rescaled to x's root mean square.
  std::vector<T> expand_streams(const T* x, int n, const TapFn<T>& tap);
  // Back from the streams to one hidden state x [n, hidden]: the mean of stream 0 and the
  // others through altup_unembed_projections, rescaled to stream 0's root mean square.
  void merge_streams(const std::vector<T>& streams, int n, const TapFn<T>& tap, T* x);
  // tanh(modality_router(router_norm(x) / hidden)) [n, N].
  std::vector<T> altup_modalities(const Layer& L, const T* x, int n);
  // AltUp's prediction of every stream [N, n, hidden] from the streams.
  std::vector<T> altup_predict(const Layer& L, const std::vector<T>& streams, int n);
  // normed + post_laurel_norm(linear_right(linear_left(normed))) [n, hidden].
  std::vector<T> laurel(const Layer& L, const T* normed, int n);
  // AltUp's correction of the predictions by the layer's output `activated` [n, hidden], then
  // the per-layer input added to every stream but the first; returns the new streams.
  std::vector<T> altup_correct(const Layer& L, int layer, const std::vector<T>& predictions,
                               const T* activated, const std::vector<T>& per_layer, int n);
  void load_qwen3_next(const WeightSource& weights);
  void gated_delta_net(const Layer& L, const std::string& prefix, int layer, const T* h, int n,
                       KVCache<T>& cache, const TapFn<T>& tap, T* out);
  void deepseek_route(const Layer& L, const T* logits, int n, T* probs, int* ids, T* weights);
  // RMSNorm of the queries or keys x in place over rows of w's length: one head's (Qwen3,
  // Gemma 3 with (1 + w), Qwen3-Next) or the whole projection's (OLMo 2), as w was stored.
  // The result goes to `scratch`, whose buffer x then takes (a held activation stays held).
  void qk_norm(std::vector<T>& x, std::vector<T>& scratch, std::span<const T> w);
  // Whether this forward pass announces its activations (Backend::hold_activations): for
  // the families whose layers use only the paths whose host reads and writes are announced
  // (forward()'s own and the experts'; not MLA, Gated DeltaNet, AltUp or DeepSeek-V4).
  bool holds_activations() const;
  void rotate_heads(T* x, const int* positions, int n, int heads, int head_dim);
  // RoPE on the first `width` values of each of the n * rows_per_token rows of x, `stride`
  // apart; the rest pass through (Phi-3's partial rotary, DeepSeek-V3.2's indexer heads).
  void rotate_prefix(T* x, const int* positions, int n, int rows_per_token, int stride,
                     int width);
  // tokens: the n tokens' ids, which DeepSeek-V4's hash layers route by.
  void experts(const Layer& L, const T* h, int n, const std::string& prefix, T* out,
               const TapFn<T>& tap, const RouteFn& route, const int* tokens = nullptr);

  // DeepSeek-V4 (runtime/deepseek_v4.cpp).
  void load_deepseek_v4(const WeightSource& weights);
  Tensor<T> forward_deepseek_v4(const std::vector<int>& tokens, KVCache<T>& cache,
                                const TapFn<T>& tap, const RouteFn& route);
  // A hyper-connection (DeepseekV4HyperConnection) over streams [N, n, hidden]: the input it
  // collapses them into, collapsed [n, hidden]; and unless post is null, its post [n, N] and
  // comb [n, N, N] (comb[t, j, k]: input stream j's weight in output stream k), both rounded
  // to the storage type as transformers casts them.
  void hyper_connection(std::span<const T> fn, std::span<const T> base,
                        std::span<const T> scale, const std::vector<T>& streams, int n,
                        T* collapsed, std::vector<T>* post, std::vector<T>* comb);
  void v4_attention(const Layer& L, const std::string& prefix, int layer, const T* h, int n,
                    const int* positions, int p0, KVCache<T>& cache, const TapFn<T>& tap,
                    const RouteFn& route, T* out);
  // One compressor of a compressed layer over the n new tokens' h [n, hidden]: stores their
  // projected rows and the entries their windows complete; returns how many entries there
  // are now. index: the CSA indexer's compressor, at index_head_dim.
  int compress(const Layer& L, int layer, bool index, const T* h, int n, int p0,
               KVCache<T>& cache);
  // The rotation of DeepSeek-V4: RoPE on the last `width` values of each of the n *
  // rows_per_token rows of x, `stride` apart, pairing adjacent values (interleaved); the
  // compressed layers' frequencies or the sliding layers'. inverse: by -position (the conjugate
  // rotation of the attention output).
  void rotate_interleaved(T* x, const int* positions, int n, int rows_per_token, int stride,
                          int width, bool compressed, bool inverse);
  // silu(min(x gate^T, limit)) * clamp(x up^T, -limit, limit), then down: DeepseekV4MLP and
  // each of DeepseekV4Experts, limit swiglu_limit. x [m, hidden], out [m, hidden].
  void clamped_mlp(const Expert& E, const T* x, int m, int inter, T* out);
  // DeepseekV4TopKRouter and DeepseekV4HashRouter: scores scoring_func(logits), then the
  // experts the table gives each token (hash_moe) or the top_k of scores plus the correction
  // bias, ties to the lower index; weights as deepseek_expert_weights gives them.
  void v4_route(const Layer& L, const T* logits, const int* tokens, int n, T* probs, int* ids,
                T* weights);

  ModelConfig config_;
  Backend<T>& backend_;
  WeightArray<T> embed_, positions_, final_norm_, final_norm_bias_;
  WeightArray<T> lm_head_;  // empty when tied
  // Gemma 3n: embed_tokens_per_layer [vocab_size_per_layer_input, layers * P],
  // per_layer_model_projection [layers * P, hidden], per_layer_projection_norm [P], the N - 1
  // altup_projections and altup_unembed_projections [hidden, hidden], and v_norm's unit weight.
  WeightArray<T> embed_per_layer_, per_layer_model_projection_, per_layer_projection_norm_;
  std::vector<WeightArray<T>> altup_projections_, altup_unembed_projections_;
  WeightArray<T> ones_;
  // DeepSeek-V4: the final hyper-connection's hc_fn [N, N * hidden], hc_base [N], hc_scale [1];
  // the rotary frequencies of the sliding layers ("main") and of the compressed ones.
  WeightArray<T> hc_head_fn_, hc_head_base_, hc_head_scale_;
  std::vector<double> main_inv_freq_, compress_inv_freq_;
  double compress_attention_scaling_ = 1.0;
  std::vector<double> inv_freq_;  // for rope_scaling; empty for plain RoPE
  double attention_scaling_ = 1.0;  // yarn's and longrope's factor on cos and sin
  std::vector<int> kv_source_;
  std::vector<Layer> layers_;
  std::unordered_set<const T*> held_;
  uint64_t cache_id_ = 0;                      // the cache of the last forward call
  std::unordered_set<const T*> cache_arrays_;  // its arrays announced to the backend
  // What a cache's watch reaches the model through: null once the model is gone.
  struct CacheWatcher {
    Model* model;
  };
  std::shared_ptr<CacheWatcher> watcher_ = std::make_shared<CacheWatcher>(CacheWatcher{this});
  std::unordered_set<const T*> output_projections_;  // o_proj and every down_proj
  bool holding_activations_ = false;                 // in this forward call
};

}  // namespace pinmark
