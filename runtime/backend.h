// The kernels a forward pass is made of. The model calls nothing else, so a backend (the CPU
// reference, CUDA, or a deliberately broken one in a test) decides every number.
//
// T is the arithmetic type: double for the fp64 oracle, float for fp32. All arrays are
// contiguous row-major; shapes are given in the comments as [dims].
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "runtime/dtype.h"

namespace pinmark {

// What one attention call computes besides its tensors (Backend::attention).
struct AttentionParams {
  int n = 0;          // queries
  int kv_len = 0;     // keys and values, positions 0 .. kv_len - 1
  int heads = 0;      // query heads; head h reads kv head h / (heads / kv_heads)
  int kv_heads = 0;
  int head_dim = 0;   // of q, k and v
  double scale = 1;   // of q . k
  double softcap = 0;  // > 0: every unmasked score s becomes softcap * tanh(s / softcap) (Gemma 2)
  int window = 0;      // > 0: key j is masked for query i when positions[i] - j >= window
};

// Shapes of one Backend::gated_delta_rule call (Qwen3-Next's Gated DeltaNet layers).
struct GatedDeltaParams {
  int n = 0;        // tokens
  int k_heads = 0;  // query and key heads
  int v_heads = 0;  // value heads, a multiple of k_heads: value head h reads key head
                    // h / (v_heads / k_heads)
  int k_dim = 0;    // values per query or key head
  int v_dim = 0;    // values per value head
};

// The activation of a gated MLP (Backend::gated_mlp): hidden_act "silu" (SwiGLU), "gelu"
// (GeGLU with the exact erf form) or the tanh approximation ("gelu_pytorch_tanh" and the like).
enum class GatedActivation { silu, gelu, gelu_tanh };

// Where a weight sits in its layer, for a backend that splits layers over devices (tensor
// parallelism as Megatron-LM does it, Shoeybi et al. 2019): an input projection (q, k, v, the
// MLP's gate and up, a router, MLA's projections, the LM head) may be split by its output rows,
// each device computing whole dot products for its share; an output projection (o_proj and
// every down_proj) by its input columns, each device computing a partial sum of every output,
// the partial sums then added across devices (an all-reduce). Only the second moves numbers.
enum class MatrixRole { input_projection, output_projection };

template <class T>
class Backend {
 public:
  virtual ~Backend() = default;

  // out[n, dim] = table[tokens[i], :]
  virtual void embed(const T* table, const int* tokens, int n, int dim, T* out) = 0;

  // y[n, m] = x[n, k] * w[m, k]^T  (w in the Hugging Face Linear layout [out, in])
  virtual void matmul(const T* x, const T* w, int n, int k, int m, T* y) = 0;

  // y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w   for rows r < n, row length dim
  virtual void rmsnorm(const T* x, const T* w, int n, int dim, double eps, T* y) = 0;

  // Rotary embedding in place on x[n, heads, head_dim], Hugging Face "half split" layout:
  // element j pairs with j + head_dim/2, angle = positions[i] * theta^(-2j/head_dim).
  virtual void rope(T* x, const int* positions, int n, int heads, int head_dim, double theta) = 0;

  // scores[h, i, j] = scale * q[i, h, :] . k[j, h / (heads / kv_heads), :] for key j <=
  // positions[i]; keys after the query's position (causal mask) get -infinity.
  // q[n, heads, head_dim], k[kv_len, kv_heads, head_dim], scores[heads, n, kv_len].
  virtual void attention_scores(const T* q, const T* k, const int* positions, int n, int kv_len,
                                int heads, int kv_heads, int head_dim, double scale,
                                T* scores) = 0;

  // Row-wise softmax in place over x[rows, len]; -infinity entries become 0.
  virtual void softmax(T* x, int rows, int len) = 0;

  // out[i, h, :] = sum_j probs[h, i, j] * v[j, h / (heads / kv_heads), :]
  // probs[heads, n, kv_len], v[kv_len, kv_heads, head_dim], out[n, heads, head_dim].
  virtual void attention_values(const T* probs, const T* v, int n, int kv_len, int heads,
                                int kv_heads, int head_dim, T* out) = 0;

  // out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x))
  virtual void swiglu(const T* gate, const T* up, int64_t n, T* out) = 0;

  // gpt-oss's gated activation (GptOssExperts._apply_gate in transformers 5.17, which fixes
  // alpha 1.702 and limit 7): with g = min(gate[i], limit) and u = clamp(up[i], -limit, limit),
  // out[i] = (u + 1) * g * sigmoid(alpha * g). A NaN stays NaN (no clamp swallows it).
  virtual void clamped_swiglu(const T* gate, const T* up, int64_t n, double alpha, double limit,
                              T* out) = 0;

  // y[i] += x[i]
  virtual void add(T* y, const T* x, int64_t n) = 0;

  // The ops below serve the families beyond Llama; a Llama forward pass calls none of them.

  // y[n, m] = x[n, k] * w[m, k]^T + b[m]: a Linear with bias, the bias added to the finished
  // dot product (one rounding, as a GEMM with a bias epilogue stores it).
  virtual void matmul_bias(const T* x, const T* w, const T* b, int n, int k, int m, T* y) = 0;

  // Gemma's RMSNorm: y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * (1 + w), the weight
  // stored as an offset from one and added to it in the arithmetic type.
  virtual void rmsnorm_plus_one(const T* x, const T* w, int n, int dim, double eps, T* y) = 0;

  // LayerNorm with bias: y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * w + b, with the biased
  // (divide by dim) variance, as torch.nn.LayerNorm computes it.
  virtual void layernorm(const T* x, const T* w, const T* b, int n, int dim, double eps,
                         T* y) = 0;

  // Rotary embedding like rope(), with the inverse frequencies given: inv_freq[head_dim / 2],
  // angle = positions[i] * inv_freq[j]. The frequencies are fp64 whatever T is. cos and sin are
  // multiplied by attention_scaling (yarn's and longrope's attention factor; 1 otherwise) in
  // fp64 before they are rounded to T, as transformers multiplies its cos and sin tables.
  virtual void rope_freqs(T* x, const int* positions, int n, int heads, int head_dim,
                          const double* inv_freq, double attention_scaling) = 0;

  // Applied to attention scores [heads, n, kv_len] after attention_scores(), before softmax;
  // -infinity (masked) entries stay masked. When softcap > 0 every other score s becomes
  // softcap * tanh(s / softcap). When window > 0, key j is also masked for query i when
  // positions[i] - j >= window (a query sees itself and the window - 1 keys before it).
  virtual void score_mod(T* scores, const int* positions, int n, int kv_len, int heads,
                         double softcap, int window) = 0;

  // x[i] = cap * tanh(x[i] / cap), in place (final logit softcapping).
  virtual void softcap(T* x, int64_t n, double cap) = 0;

  // x[i] *= scale, the scale first converted to the storage type (Gemma's embedding
  // normalizer sqrt(hidden_size), which Hugging Face casts to the model's dtype).
  virtual void scale(T* x, int64_t n, double scale) = 0;

  // out[i] = gelu(x[i]); tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
  // otherwise the exact 0.5 x (1 + erf(x / sqrt(2))).
  virtual void gelu(const T* x, int64_t n, bool tanh, T* out) = 0;

  // out[i] = gelu(gate[i]) * up[i], gelu as above (a GeGLU MLP).
  virtual void geglu(const T* gate, const T* up, int64_t n, bool tanh, T* out) = 0;

  // Top-k routing of a mixture of experts. For each row r < n of logits[n, experts]:
  // probs[r, :] = softmax(logits[r, :]); ids[r, :top_k] the top_k experts by probability,
  // largest first, the lowest index first among equal probabilities; weights[r, :top_k] their
  // probabilities divided by the sum of the selected ones.
  virtual void moe_route(const T* logits, int n, int experts, int top_k, T* probs, int* ids,
                         T* weights) = 0;

  // y[rows[r], :] += x[r, :] * weights[r] for r < m: one expert's output added into the rows
  // of the tokens routed to it. rows holds no index twice.
  virtual void moe_combine(T* y, const T* x, const int* rows, const T* weights, int m,
                           int dim) = 0;

  // The ops below serve Qwen3-Next: its Gated DeltaNet layers (Yang, Kautz and Hatamizadeh
  // 2025, "Gated Delta Networks: Improving Mamba2 with Delta Rule") and its gated attention.

  // Depthwise causal convolution followed by SiLU, as the causal-conv1d kernels compute it with
  // activation "silu": for rows i < n and channels c < channels,
  //   out[i, c] = silu(sum_{j < kernel} w[c, j] * x[i + j, c]),   silu(s) = s / (1 + exp(-s)),
  // the sum over j in order. x[n + kernel - 1, channels] holds the kernel - 1 inputs before the
  // first row (the layer's convolution state: zeros at the start of a sequence) and then the
  // n new ones; w[channels, kernel] is nn.Conv1d's weight [channels, 1, kernel].
  virtual void causal_conv1d_silu(const T* x, const T* w, int n, int channels, int kernel,
                                  T* out) = 0;

  // The gated delta rule, token by token, as transformers' torch_recurrent_gated_delta_rule
  // computes it (Gated DeltaNet's rule). qkv[n, 2 * k_heads * k_dim + v_heads * v_dim] holds
  // each token's queries, keys and values in that order (the convolution's output); a and b
  // [n, v_heads]; A_log and dt_bias [v_heads]; state[v_heads, k_dim, v_dim], read and updated
  // in place (zeros at the start of a sequence); out[n, v_heads, v_dim]. For each token t in
  // order and value head h, with q and k the query and key of key head h / (v_heads / k_heads):
  //   q' = q / sqrt(sum q^2 + 1e-6) / sqrt(k_dim),   k' = k / sqrt(sum k^2 + 1e-6)
  //   g = -exp(A_log[h]) * softplus(a[t, h] + dt_bias[h])   (softplus(x) = x above 20)
  //   beta = sigmoid(b[t, h])
  //   S = exp(g) * S;   delta = beta * (v - S^T k');   S = S + k' delta^T;   out[t, h] = S^T q'
  // with S = state[h] [k_dim, v_dim] and every S^T x summed over k_dim in order. The state
  // keeps the arithmetic type (fp32 under a 16-bit storage type, as fused kernels keep it).
  virtual void gated_delta_rule(const T* qkv, const T* a, const T* b, const T* A_log,
                                const T* dt_bias, const GatedDeltaParams& params, T* state,
                                T* out) = 0;

  // Gated RMSNorm (Qwen3NextRMSNormGated, FLA's FusedRMSNormGated): for rows r < n,
  //   y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w * silu(gate[r, :]),
  // x, gate and y [n, dim], w [dim].
  virtual void rmsnorm_gated(const T* x, const T* w, const T* gate, int n, int dim, double eps,
                             T* y) = 0;

  // out[i] = x[i] * sigmoid(gate[i]), sigmoid(s) = 1 / (1 + exp(-s)): Qwen3-Next's gate on the
  // attention output and on the shared expert.
  virtual void sigmoid_gate(const T* x, const T* gate, int64_t n, T* out) = 0;

  // DeepSeek Sparse Attention's lightning indexer (DeepSeek-V3.2, DeepSeek-AI 2025, "DeepSeek-
  // V3.2-Exp: Boosting Long-Context Efficiency with DeepSeek Sparse Attention", eq. 1) as
  // transformers 5.17's DeepseekV32Indexer computes it: for queries i < n and keys j < kv_len,
  //   out[i, j] = sum_h (weights[i, h] * weight_scale) * relu(scale * q[i, h, :] . k[j, :]),
  // summed over h in order, for j <= positions[i]; later keys (the causal mask) get -infinity.
  // One key head serves every indexer head. q[n, heads, head_dim], k[kv_len, head_dim],
  // weights[n, heads], positions[n], out[n, kv_len]. The scores select keys; they are not
  // stored to memory in a narrower type (a 16-bit target keeps them in fp32).
  virtual void indexer_scores(const T* q, const T* k, const T* weights, const int* positions,
                              int n, int kv_len, int heads, int head_dim, double scale,
                              double weight_scale, T* out) = 0;

  // The ops below serve Gemma 3n (transformers 5.17's Gemma3nTextModel).

  // Mixes streams token by token: for tokens t < n, outputs o < out_streams and d < dim,
  //   y[o, t, d] = sum_i coefs[t, o * in_streams + i] * x[i, t, d],
  // summed over i in order. x[in_streams, n, dim], coefs[n, out_streams * in_streams],
  // y[out_streams, n, dim]. AltUp's prediction (Baykal et al., NeurIPS 2023, "Alternating
  // Updates for Efficient Transformers", eq. 2: in = out = altup_num_inputs, the coefficients
  // the router's prediction_coefs output) and its correction (eq. 3: one input, the
  // innovation, and per-stream coefficients).
  virtual void mix_streams(const T* x, const T* coefs, int n, int in_streams, int out_streams,
                           int dim, T* y) = 0;

  // y[r, d] = x[r, d] * w[d] for rows r < n: x and y [n, dim], w [dim]. AltUp's
  // correct_output_scale on the corrected active stream.
  virtual void scale_columns(const T* x, const T* w, int n, int dim, T* y) = 0;

  // Rescales each row of x to the root mean square of the same row of ref: for rows r < n,
  //   y[r, :] = x[r, :] * sqrt(mean(ref[r, :]^2)) / sqrt(max(mean(x[r, :]^2), floor)),
  // multiplied first, then divided, as Gemma3nTextModel rescales the AltUp streams it projects
  // from the embedding and back (floor 1e-5). x, ref and y [n, dim].
  virtual void rescale_rms(const T* x, const T* ref, int n, int dim, double floor, T* y) = 0;

  // Gemma 3n's activation sparsity (Gemma3nTextMLP._gaussian_topk), in place on x[n, dim]: for
  // each row, with mu its mean and sigma its population standard deviation (divided by dim),
  //   x[r, d] = max(0, x[r, d] - (mu + sigma * std_multiplier)),
  // std_multiplier = Phi^-1(target sparsity), the standard normal quantile, converted to the
  // storage type first as transformers converts it to the activations' dtype. Keeps the
  // values a normal distribution would put above that quantile, shifted down to it.
  virtual void gaussian_topk(T* x, int n, int dim, double std_multiplier) = 0;

  // The op below serves DeepSeek-V4 (transformers 5.17's DeepseekV4Model).

  // The softmax-gated pooling of DeepSeek-V4's KV compressors (DeepSeek-AI 2026, "DeepSeek-V4",
  // sec. 2.3.1-2.3.2; DeepseekV4CSACompressor and DeepseekV4HCACompressor): for windows w < n
  // and channels d < dim,
  //   out[w, d] = sum_s softmax_s(gate[w, :, d]) * kv[w, s, d],
  // the softmax over the slots s < slots of one channel (a -infinity gate weighs 0; every
  // channel has a finite one), the weights normalised before the products, the sum over s in
  // order. kv and gate [n, slots, dim], out [n, dim].
  virtual void softmax_pool(const T* kv, const T* gate, int n, int slots, int dim, T* out) = 0;

  // Attention as one fused kernel computes it (FlashAttention, Dao et al. 2022), for a backend
  // that has one; returns false, computing nothing, for one that does not, and the model then
  // runs attention_scores, score_mod, softmax and attention_values instead (whose taps it then
  // records; a fused call has no `scores` tap). What it must compute is exactly that sequence:
  //   s[h, i, j] = scale * q[i, h, :] . k[j, g(h), :], g(h) = h / (heads / kv_heads),
  //   masked (-infinity) for j > positions[i], and for positions[i] - j >= window when window > 0;
  //   s = softcap * tanh(s / softcap) for unmasked s when softcap > 0;
  //   p[h, i, :] = softmax over j of s[h, i, :], with sinks[h] as one more logit in the
  //   denominator when sinks is not null (gpt-oss's attention sinks, then dropped);
  //   out[i, h, :] = sum_j p[h, i, j] * v[j, g(h), :].
  // q[n, heads, head_dim], k and v [kv_len, kv_heads, head_dim], positions[n], sinks[heads] or
  // null, out[n, heads, head_dim].
  virtual bool attention(const T* q, const T* k, const T* v, const int* positions,
                         const T* sinks, const AttentionParams& params, T* out) {
    (void)q, (void)k, (void)v, (void)positions, (void)sinks, (void)params, (void)out;
    return false;
  }

  // A gated MLP as one fused kernel computes it, for a backend that has one; returns false,
  // computing nothing, for one that does not, and the model then runs matmul, swiglu (or
  // geglu) and matmul instead. What it must compute is exactly that sequence:
  //   out[r, :] = (act(x[r, :] . gate^T) * (x[r, :] . up^T)) . down^T
  // act as in swiglu / geglu above. x[n, hidden], gate and up [inter, hidden], down
  // [hidden, inter] (Hugging Face's Linear layout), out[n, hidden]. Used for the dense MLP of
  // the gated families and for each expert and the shared experts of a mixture of experts
  // (the routing stays op by op); not for MLPs with biases (GPT-2, gpt-oss).
  virtual bool gated_mlp(const T* x, const T* gate, const T* up, const T* down, int n,
                         int hidden, int inter, GatedActivation act, T* out) {
    (void)x, (void)gate, (void)up, (void)down, (void)n, (void)hidden, (void)inter, (void)act,
        (void)out;
    return false;
  }

  // Weights, announced. The model calls hold_matrix(w, k, m, role) once for each weight w[m, k]
  // it passes whole to matmul or matmul_bias, before the first such call, and release_matrix(w)
  // before w's memory goes; in between, w's contents do not change. A backend may keep its own
  // copy of a held matrix (transposed into its kernels' layout, uploaded to a device, split
  // over devices by its role) and use it whenever matmul or matmul_bias receives that pointer
  // with that k and m. Every other operand (activations, a slice of a weight, the matrices of
  // a kernel case) arrives unannounced. The default keeps nothing. A backend serves one
  // thread's calls at a time.
  virtual void hold_matrix(const T* w, int k, int m, MatrixRole role) {
    (void)w, (void)k, (void)m, (void)role;
  }
  virtual void release_matrix(const T* w) { (void)w; }

  // The KV cache, announced. The model calls cache_written(c, capacity, first, count) after it
  // writes values [first, first + count) of a cache array c[capacity] that an attention op
  // reads whole (one layer's keys or values, or MLA's cached latent rows, passed as k or v to
  // attention_scores, attention_values or attention), and release_cache(c) when the model
  // turns to another cache, when the cache that holds c dies (before c's memory can be
  // another array's) or when the model goes. Between the two, c changes only by announced
  // writes. A write may start at or before the end of the previous one (a forward call that
  // failed is redone from where it started); after a release, c's writes may resume past 0.
  // A backend may mirror c (on a device) and, when an attention op receives c, read the
  // mirror instead, if the op reads no value past first + count of c's latest write and
  // every value before that was announced since c was last released. Any other pointer an op receives arrives unannounced (temporaries, a
  // kernel case's arrays, caches of the families whose attention reads copies). The default
  // keeps nothing. release_cache must not throw: it is called from destructors.
  virtual void cache_written(const T* cache, int64_t capacity, int64_t first, int64_t count) {
    (void)cache, (void)capacity, (void)first, (void)count;
  }
  virtual void release_cache(const T* cache) { (void)cache; }

  // The model's writes to such a cache array: copies src[0, count), values of an array of the
  // forward pass (held or not, see below), into cache[first, first + count), and announces the
  // write as cache_written does. The default brings src to the host (to_host), copies there and
  // calls cache_written. A backend that holds src on a device may copy it there, into its mirror
  // of the cache, and bring the host's values up to date later: before its next call to
  // to_host, cache_written or release_cache returns (not write_cache: a layer's keys and
  // values may both be on their way). So the host's cache is current whenever the model has
  // asked for an activation, as it does for the logits at the end of every forward pass; and a
  // write the model makes on the host itself, announced by cache_written, follows one of those
  // calls (write_cache's default makes one: to_host).
  virtual void write_cache(T* cache, int64_t capacity, int64_t first, const T* src,
                           int64_t count) {
    to_host(src, 0, count);
    std::copy(src, src + count, cache + first);
    cache_written(cache, capacity, first, count);
  }

  // Activations, announced. The model calls hold_activations(a, count) for an array a[count]
  // of its forward pass (a layer's input, q, the scores, the logits), and release_activations(a)
  // before a's memory goes. In between, a changes only through this backend's ops and through
  // the model's own writes, which it announces: after writing values [first, first + count) of
  // a on the host it calls from_host(a, first, count), before the next call to this backend;
  // before reading values on the host it calls to_host(a, first, count), and they are current
  // until the next call to this backend. So a backend may keep a held array on a device between
  // ops, read and write it there, and leave the host's copy stale. A pointer into a held array
  // reaches an op only with a range inside it. to_host and from_host ignore an array that is
  // not held. A backend serves one thread's calls at a time; release_activations must not
  // throw: it is called from destructors. The defaults keep nothing on a device.
  virtual void hold_activations(const T* a, int64_t count) { (void)a, (void)count; }
  virtual void release_activations(const T* a) { (void)a; }
  virtual void to_host(const T* a, int64_t first, int64_t count) {
    (void)a, (void)first, (void)count;
  }
  virtual void from_host(const T* a, int64_t first, int64_t count) {
    (void)a, (void)first, (void)count;
  }

  // values[i] rounded to the nearest value of `storage` (docs/numerics.md): how an op's output
  // is stored in a 16-bit target (make_rounding_backend). A backend that keeps values on a
  // device rounds them there, with the same bits as round_to() (runtime/dtype.h). A double is
  // rounded through float.
  //
  // The rounding layer announces each such call: round_next(values, n, storage) comes just
  // before the op whose result values[n] is, and round_stored(values, n, storage) just after
  // it, with no call between them but that op's. A backend may round the result as its kernel
  // stores it, with round_stored's bits, and then take that round_stored call as done; the op
  // must then have written every one of the n values. An op that rounds nothing leaves the
  // round_stored call to round. The default ignores the notice. (So a 16-bit target stores each
  // result once, not once and then again rounded.)
  virtual void round_next(const T* values, int64_t n, DType storage) {
    (void)values, (void)n, (void)storage;
  }
  virtual void round_stored(T* values, int64_t n, DType storage) {
    if constexpr (std::is_same_v<T, float>) {
      round_in_place(storage, values, n);
    } else {
      for (int64_t i = 0; i < n; ++i)
        values[i] = static_cast<T>(round_to(storage, static_cast<float>(values[i])));
    }
  }
};

}  // namespace pinmark
