// DeepSeek-V4's forward pass (transformers 5.17's DeepseekV4ForCausalLM; DeepSeek-AI 2026,
// "DeepSeek-V4"): manifold-constrained hyper-connections around every sublayer, attention over
// one shared key-and-value head with a sliding window plus compressed entries (CSA with a
// lightning indexer, HCA), the grouped output projection, and the MoE with hash routing in its
// first layers. Like model.cpp, bookkeeping only: every number comes from the backend, with the
// rounding points of the PyTorch code; the small control computations (the hyper-connection
// weights and their Sinkhorn projection, the routing) run here in the arithmetic type, as
// transformers runs them in fp32.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "runtime/model.h"
#include "runtime/rope.h"

namespace pinmark {

template <class T>
void Model<T>::load_deepseek_v4(const WeightSource& weights) {
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size, vocab = c.vocab_size, heads = c.num_attention_heads;
  const int64_t hd = c.head_dim, n = c.hc_mult, mixes = (2 + n) * n;
  const int64_t groups = c.o_groups, rank = c.o_lora_rank, inter = c.moe_intermediate_size;
  const int64_t experts = c.num_local_experts, top_k = c.num_experts_per_tok;
  // Sliding layers rotate with plain RoPE of their own base, the others (and the compressors
  // and the indexer) with rope_theta and its scaling, over the last rotary_dim values.
  ModelConfig main = c;
  main.rope_type = "default";
  main.rope_theta = c.rope_local_base_freq;
  main_inv_freq_ = rope_inv_freq(main);
  const RopeFrequencies compress = rope_frequencies(c, 0);
  compress_inv_freq_ = compress.inv_freq;
  compress_attention_scaling_ = compress.attention_scaling;
  ones_ = std::vector<T>(static_cast<size_t>(std::max(n * hidden, hd)), T(1));

  // DeepSeek's own names, as its checkpoints store them (weights.cpp lists the mapping).
  auto hyper = [&](const std::string& p, WeightArray<T>& fn, WeightArray<T>& base,
                   WeightArray<T>& scale) {
    fn = load_as<T>(weights, p + "fn", {mixes, n * hidden});
    base = load_as<T>(weights, p + "base", {mixes});
    scale = load_as<T>(weights, p + "scale", {3});
  };
  auto mlp = [&](const std::string& p) {
    Expert x;
    x.gate = load_as<T>(weights, p + "w1.weight", {inter, hidden});
    x.up = load_as<T>(weights, p + "w3.weight", {inter, hidden});
    x.down = load_as<T>(weights, p + "w2.weight", {hidden, inter});
    return x;
  };
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string a = p + "attn.";
    Layer l;
    l.attn_norm = load_as<T>(weights, p + "attn_norm.weight", {hidden});
    l.mlp_norm = load_as<T>(weights, p + "ffn_norm.weight", {hidden});
    hyper(p + "hc_attn_", l.attn_hc_fn, l.attn_hc_base, l.attn_hc_scale);
    hyper(p + "hc_ffn_", l.ffn_hc_fn, l.ffn_hc_base, l.ffn_hc_scale);
    l.q_a = load_as<T>(weights, a + "wq_a.weight", {c.q_lora_rank, hidden});
    l.q_a_norm = load_as<T>(weights, a + "q_norm.weight", {c.q_lora_rank});
    l.q_b = load_as<T>(weights, a + "wq_b.weight", {heads * hd, c.q_lora_rank});
    l.kv_proj = load_as<T>(weights, a + "wkv.weight", {hd, hidden});
    l.kv_norm = load_as<T>(weights, a + "norm.weight", {hd});
    l.o_a = load_as<T>(weights, a + "wo_a.weight", {groups * rank, heads * hd / groups});
    l.o_b = load_as<T>(weights, a + "wo_b.weight", {hidden, groups * rank});
    l.sinks = load_as<T>(weights, a + "attn_sink", {heads});
    const int rate = compress_rate(c, i);
    if (rate > 0) {
      const bool csa = c.layer_types[i] == "compressed_sparse_attention";
      const std::string x = a + "compressor.";
      const int64_t width = (csa ? 2 : 1) * hd;
      l.compressor_kv = load_as<T>(weights, x + "wkv.weight", {width, hidden});
      l.compressor_gate = load_as<T>(weights, x + "wgate.weight", {width, hidden});
      l.compressor_bias = load_as<T>(weights, x + "ape", {rate, width});
      l.compressor_norm = load_as<T>(weights, x + "norm.weight", {hd});
      if (csa) {
        const std::string y = a + "indexer.";
        const int64_t id = c.index_head_dim;
        l.index_kv = load_as<T>(weights, y + "compressor.wkv.weight", {2 * id, hidden});
        l.index_gate = load_as<T>(weights, y + "compressor.wgate.weight", {2 * id, hidden});
        l.index_bias = load_as<T>(weights, y + "compressor.ape", {rate, 2 * id});
        l.index_norm = load_as<T>(weights, y + "compressor.norm.weight", {id});
        l.index_wq_b =
            load_as<T>(weights, y + "wq_b.weight", {int64_t{c.index_n_heads} * id, c.q_lora_rank});
        l.index_weights_proj =
            load_as<T>(weights, y + "weights_proj.weight", {c.index_n_heads, hidden});
      }
    }
    const std::string f = p + "ffn.";
    l.router = load_as<T>(weights, f + "gate.weight", {experts, hidden});
    if (i < static_cast<int>(c.mlp_layer_types.size()) && c.mlp_layer_types[i] == "hash_moe") {
      const std::string name = f + "gate.tid2eid";
      const Tensor<double>& table = require(weights, name, {vocab, top_k});
      // Each token's experts must exist and differ: transformers would run an expert listed
      // twice twice; pinmark refuses the table.
      for (int64_t t = 0; t < vocab; ++t) {
        for (int64_t s = 0; s < top_k; ++s) {
          const double e = table.data[t * top_k + s];
          if (!(e >= 0 && e < static_cast<double>(experts)) || e != std::floor(e)) {
            std::ostringstream shown;
            shown << e;
            throw std::runtime_error("tensor '" + name + "': token " + std::to_string(t) +
                                     " is routed to expert " + shown.str() + ", not one of the " +
                                     std::to_string(experts) + " experts (n_routed_experts)");
          }
          for (int64_t r = 0; r < s; ++r)
            if (table.data[t * top_k + r] == e)
              throw std::runtime_error("tensor '" + name + "': token " + std::to_string(t) +
                                       " lists expert " + std::to_string(static_cast<int64_t>(e)) +
                                       " twice (transformers would run it twice)");
          l.tid2eid.push_back(static_cast<int>(e));
        }
      }
    } else {
      l.score_correction = load_as<T>(weights, f + "gate.bias", {experts});
    }
    for (int64_t e = 0; e < experts; ++e)
      l.experts.push_back(mlp(f + "experts." + std::to_string(e) + "."));
    l.shared = mlp(f + "shared_experts.");
    layers_.push_back(std::move(l));
  }
  hc_head_fn_ = load_as<T>(weights, "model.hc_head.hc_fn", {n, n * hidden});
  hc_head_base_ = load_as<T>(weights, "model.hc_head.hc_base", {n});
  hc_head_scale_ = load_as<T>(weights, "model.hc_head.hc_scale", {1});
  final_norm_ = load_as<T>(weights, "model.norm.weight", {hidden});
  if (!c.tie_word_embeddings) lm_head_ = load_as<T>(weights, "head.weight", {vocab, hidden});
}

// Pairs adjacent values (2i, 2i + 1) of the rotated part, as V4's apply_rotary_pos_emb does,
// by gathering the even values before the odd ones into a head the backend rotates in the
// half-split layout (value j pairs with j + width / 2: the same pairs, the same products),
// then scattering them back.
template <class T>
void Model<T>::rotate_interleaved(T* x, const int* positions, int n, int rows_per_token, int stride,
                                  int width, bool compressed, bool inverse) {
  if (n <= 0) return;
  const int64_t rows = int64_t{n} * rows_per_token;
  const int half = width / 2, offset = stride - width;
  std::vector<T> part(static_cast<size_t>(rows * width));
  for (int64_t r = 0; r < rows; ++r)
    for (int j = 0; j < half; ++j) {
      part[r * width + j] = x[r * stride + offset + 2 * j];
      part[r * width + half + j] = x[r * stride + offset + 2 * j + 1];
    }
  // The conjugate rotation: cos(-a) = cos(a), sin(-a) = -sin(a), exactly.
  std::vector<int> at(positions, positions + n);
  if (inverse)
    for (int& p : at) p = -p;
  const std::vector<double>& freqs = compressed ? compress_inv_freq_ : main_inv_freq_;
  backend_.rope_freqs(part.data(), at.data(), n, rows_per_token, width, freqs.data(),
                      compressed ? compress_attention_scaling_ : 1.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int j = 0; j < half; ++j) {
      x[r * stride + offset + 2 * j] = part[r * width + j];
      x[r * stride + offset + 2 * j + 1] = part[r * width + half + j];
    }
}

template <class T>
void Model<T>::hyper_connection(std::span<const T> fn, std::span<const T> base,
                                std::span<const T> scale, const std::vector<T>& streams, int n,
                                T* collapsed, std::vector<T>* post, std::vector<T>* comb) {
  const ModelConfig& c = config_;
  const int N = c.hc_mult, hidden = c.hidden_size, width = N * hidden;
  const int outputs = static_cast<int>(fn.size() / width);
  const int64_t plane = int64_t{n} * hidden;
  // Each token's streams side by side [n, N * hidden], normalised without a weight.
  std::vector<T> flat(int64_t{n} * width), normed(flat.size()), mixes(int64_t{n} * outputs);
  for (int i = 0; i < N; ++i)
    for (int t = 0; t < n; ++t)
      std::copy(streams.begin() + i * plane + int64_t{t} * hidden,
                streams.begin() + i * plane + int64_t{t + 1} * hidden,
                flat.begin() + int64_t{t} * width + int64_t{i} * hidden);
  backend_.rmsnorm(flat.data(), ones_.data(), n, width, c.rms_norm_eps, normed.data());
  backend_.matmul(normed.data(), held(fn, width, outputs), n, width, outputs, mixes.data());

  const T eps = static_cast<T>(c.hc_eps);
  auto sigmoid = [](T x) { return T(1) / (T(1) + std::exp(-x)); };
  std::vector<T> pre(int64_t{n} * N);
  if (post) post->assign(int64_t{n} * N, T(0));
  if (comb) comb->assign(int64_t{n} * N * N, T(0));
  for (int t = 0; t < n; ++t) {
    const T* m = mixes.data() + int64_t{t} * outputs;
    for (int i = 0; i < N; ++i) pre[int64_t{t} * N + i] = sigmoid(m[i] * scale[0] + base[i]) + eps;
    if (!post) continue;
    for (int i = 0; i < N; ++i)
      (*post)[int64_t{t} * N + i] = T(2) * sigmoid(m[N + i] * scale[1] + base[N + i]);
    // comb: a softmax over each row, plus eps, then Sinkhorn-Knopp: columns normalised, then
    // hc_sinkhorn_iters - 1 times rows and columns, each denominator plus eps.
    T* k = comb->data() + int64_t{t} * N * N;
    for (int j = 0; j < N; ++j) {
      T* row = k + j * N;
      T max = -std::numeric_limits<T>::infinity();
      for (int o = 0; o < N; ++o) {
        row[o] = m[2 * N + j * N + o] * scale[2] + base[2 * N + j * N + o];
        max = std::max(max, row[o]);
      }
      T sum = 0;
      for (int o = 0; o < N; ++o) {
        row[o] = std::exp(row[o] - max);
        sum += row[o];
      }
      for (int o = 0; o < N; ++o) row[o] = row[o] / sum + eps;
    }
    auto columns = [&] {
      for (int o = 0; o < N; ++o) {
        T sum = 0;
        for (int j = 0; j < N; ++j) sum += k[j * N + o];
        for (int j = 0; j < N; ++j) k[j * N + o] /= sum + eps;
      }
    };
    auto rows = [&] {
      for (int j = 0; j < N; ++j) {
        T sum = 0;
        for (int o = 0; o < N; ++o) sum += k[j * N + o];
        for (int o = 0; o < N; ++o) k[j * N + o] /= sum + eps;
      }
    };
    columns();
    for (int it = 1; it < c.hc_sinkhorn_iters; ++it) {
      rows();
      columns();
    }
  }
  // The streams collapsed with pre (kept in fp32 by transformers, one rounding of the sum).
  backend_.mix_streams(streams.data(), pre.data(), n, N, 1, hidden, collapsed);
  // transformers casts post and comb to the model's dtype before it mixes with them.
  if (post) backend_.scale(post->data(), static_cast<int64_t>(post->size()), 1.0);
  if (comb) backend_.scale(comb->data(), static_cast<int64_t>(comb->size()), 1.0);
}

template <class T>
int Model<T>::compress(const Layer& L, int layer, bool index, const T* h, int n, int p0,
                       KVCache<T>& cache) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, rate = compress_rate(c, layer);
  const bool csa = c.layer_types[layer] == "compressed_sparse_attention";
  const int dim = index ? c.index_head_dim : c.head_dim;
  const int windows = csa ? 2 : 1, width = windows * dim, ring = windows * rate;
  const WeightArray<T>& wkv = index ? L.index_kv : L.compressor_kv;
  const WeightArray<T>& wgate = index ? L.index_gate : L.compressor_gate;
  const WeightArray<T>& bias = index ? L.index_bias : L.compressor_bias;
  const WeightArray<T>& norm_w = index ? L.index_norm : L.compressor_norm;
  T* rows = index ? cache.index_rows(layer) : cache.compressor_rows(layer);
  T* entries = index ? cache.index_compressed(layer) : cache.compressed(layer);

  std::vector<T> kv(int64_t{n} * width), gate(kv.size());
  backend_.matmul(h, held(wkv, hidden, width), n, hidden, width, kv.data());
  backend_.matmul(h, held(wgate, hidden, width), n, hidden, width, gate.data());
  // Each entry pools `slots` rows per channel: HCA the rate rows of its window; CSA the first
  // half (Ca) of the previous window's rows, then the second half (Cb) of its own. Window 0
  // has no previous one: those slots weigh nothing (zero kv, -infinity gate). A window's
  // slots are gathered as it closes, before later tokens of the call reuse its ring rows.
  const int slots = windows * rate;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  std::vector<int> done;  // the windows the new tokens complete
  std::vector<T> skv, sgate, sbias;
  for (int t = 0; t < n; ++t) {
    const int p = p0 + t;
    T* row = rows + int64_t{p % ring} * 2 * width;
    std::copy(kv.begin() + int64_t{t} * width, kv.begin() + int64_t{t + 1} * width, row);
    std::copy(gate.begin() + int64_t{t} * width, gate.begin() + int64_t{t + 1} * width,
              row + width);
    if ((p + 1) % rate != 0) continue;
    const int w = (p + 1) / rate - 1;
    done.push_back(w);
    for (int s = 0; s < slots; ++s) {
      const bool previous = csa && s < rate;
      const int in_window = previous ? s : s - (csa ? rate : 0);
      const int64_t at = int64_t{previous ? w - 1 : w} * rate + in_window;
      const int half = csa && !previous ? dim : 0;  // Cb: the second half of the row
      if (at < 0) {
        skv.insert(skv.end(), dim, T(0));
        sgate.insert(sgate.end(), dim, neg_inf);
        sbias.insert(sbias.end(), dim, T(0));
        continue;
      }
      const T* source = rows + (at % ring) * 2 * width;
      skv.insert(skv.end(), source + half, source + half + dim);
      sgate.insert(sgate.end(), source + width + half, source + width + half + dim);
      const T* b = bias.data() + int64_t{in_window} * width + half;
      sbias.insert(sbias.end(), b, b + dim);
    }
  }
  if (!done.empty()) {
    const int W = static_cast<int>(done.size());
    backend_.add(sgate.data(), sbias.data(), static_cast<int64_t>(sgate.size()));
    std::vector<T> pooled(int64_t{W} * dim), normed(pooled.size());
    backend_.softmax_pool(skv.data(), sgate.data(), W, slots, dim, pooled.data());
    backend_.rmsnorm(pooled.data(), norm_w.data(), W, dim, c.rms_norm_eps, normed.data());
    // Each entry rotated at its window's first position.
    std::vector<int> at(W);
    for (int k = 0; k < W; ++k) at[k] = done[k] * rate;
    rotate_interleaved(normed.data(), at.data(), W, 1, dim, rotary_dim(c), true, false);
    for (int k = 0; k < W; ++k)
      std::copy(normed.begin() + int64_t{k} * dim, normed.begin() + int64_t{k + 1} * dim,
                entries + int64_t{done[k]} * dim);
  }
  return (p0 + n) / rate;
}

template <class T>
void Model<T>::v4_attention(const Layer& L, const std::string& p, int layer, const T* h, int n,
                            const int* positions, int p0, KVCache<T>& cache, const TapFn<T>& tap,
                            const RouteFn& route, T* out) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, heads = c.num_attention_heads, hd = c.head_dim;
  const int qr = c.q_lora_rank, rd = rotary_dim(c), kv_len = p0 + n;
  const int rate = compress_rate(c, layer);
  const bool compressed = rate > 0, csa = c.layer_types[layer] == "compressed_sparse_attention";
  auto emit = [&](const std::string& name, const Shape& shape, const T* data) {
    if (tap) tap(name, shape, data);
  };

  std::vector<T> qa(int64_t{n} * qr), q_resid(qa.size());
  backend_.matmul(h, held(L.q_a, hidden, qr), n, hidden, qr, qa.data());
  backend_.rmsnorm(qa.data(), L.q_a_norm.data(), n, qr, c.rms_norm_eps, q_resid.data());
  std::vector<T> q_raw(int64_t{n} * heads * hd), q(q_raw.size());
  backend_.matmul(q_resid.data(), held(L.q_b, qr, heads * hd), n, qr, heads * hd, q_raw.data());
  // Each head normalised without a weight (q_b_norm).
  backend_.rmsnorm(q_raw.data(), ones_.data(), n * heads, hd, c.rms_norm_eps, q.data());
  rotate_interleaved(q.data(), positions, n, heads, hd, rd, compressed, false);
  std::vector<T> kv_raw(int64_t{n} * hd), kv(kv_raw.size());
  backend_.matmul(h, held(L.kv_proj, hidden, hd), n, hidden, hd, kv_raw.data());
  backend_.rmsnorm(kv_raw.data(), L.kv_norm.data(), n, hd, c.rms_norm_eps, kv.data());
  rotate_interleaved(kv.data(), positions, n, 1, hd, rd, compressed, false);
  emit(p + "q", {n, heads, hd}, q.data());
  emit(p + "kv", {n, 1, hd}, kv.data());
  std::copy(kv.begin(), kv.end(), cache.keys(layer) + int64_t{p0} * hd);

  // The keys (which are the values): the window's, then the compressed entries.
  int entries = 0;
  std::vector<char> selected;  // CSA: [n, entries], the entries each query attends over
  if (compressed) {
    entries = compress(L, layer, false, h, n, p0, cache);
    emit(p + "compressed", {entries, hd}, cache.compressed(layer));
  }
  // A query at position t sees entry w when its window ended at or before t.
  auto visible = [&](int i) { return (positions[i] + 1) / rate; };
  if (csa) {
    const int ih = c.index_n_heads, id = c.index_head_dim;
    compress(L, layer, true, h, n, p0, cache);
    std::vector<T> iq(int64_t{n} * ih * id), iw(int64_t{n} * ih);
    backend_.matmul(q_resid.data(), held(L.index_wq_b, qr, ih * id), n, qr, ih * id, iq.data());
    rotate_interleaved(iq.data(), positions, n, ih, id, rd, true, false);
    backend_.matmul(h, held(L.index_weights_proj, hidden, ih), n, hidden, ih, iw.data());
    // indexer_scores masks entry j for query i when j > limit[i].
    std::vector<int> limit(n);
    for (int i = 0; i < n; ++i) limit[i] = visible(i) - 1;
    std::vector<T> scores(int64_t{n} * entries);
    if (entries > 0)
      backend_.indexer_scores(iq.data(), cache.index_compressed(layer), iw.data(), limit.data(), n,
                              entries, ih, id, 1.0 / std::sqrt(static_cast<double>(id)),
                              1.0 / std::sqrt(static_cast<double>(ih)), scores.data());
    const int top_k = std::min(c.index_topk, entries);
    std::vector<int> ids(int64_t{n} * top_k, -1);
    for (int i = 0; i < n; ++i) {
      const T* row = scores.data() + int64_t{i} * entries;
      std::vector<int> order;
      for (int j = 0; j < std::min(visible(i), entries); ++j) order.push_back(j);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
      for (int s = 0; s < top_k && s < static_cast<int>(order.size()); ++s)
        ids[int64_t{i} * top_k + s] = order[s];
    }
    tap_index_choice(tap, p, n, entries, scores, ids, top_k);
    if (route && top_k > 0) route(p + "index_topk", n, top_k, ids.data());
    selected.assign(int64_t{n} * entries, 0);
    for (int i = 0; i < n; ++i)
      for (int s = 0; s < top_k; ++s) {
        const int j = ids[int64_t{i} * top_k + s];
        if (j < -1 || j >= std::min(visible(i), entries))
          throw std::runtime_error("forced compressed entry out of range");
        if (j >= 0) selected[int64_t{i} * entries + j] = 1;
      }
  }
  const int keys = kv_len + entries;
  std::vector<T> all(int64_t{keys} * hd);
  std::copy(cache.keys(layer), cache.keys(layer) + int64_t{kv_len} * hd, all.begin());
  if (entries > 0)
    std::copy(cache.compressed(layer), cache.compressed(layer) + int64_t{entries} * hd,
              all.begin() + int64_t{kv_len} * hd);

  // Scores of every key, then the masks: the window's causal sliding mask, and an entry's
  // visibility (and for CSA the indexer's choice).
  const std::vector<int> unmasked(n, keys - 1);
  const int64_t wide = int64_t{keys} + 1;
  std::vector<T> scores(int64_t{heads} * n * keys);
  backend_.attention_scores(q.data(), all.data(), unmasked.data(), n, keys, heads, 1, hd,
                            1.0 / std::sqrt(static_cast<double>(hd)), scores.data());
  const T neg_inf = -std::numeric_limits<T>::infinity();
  std::vector<T> with_sink(int64_t{heads} * n * wide);
  for (int hh = 0; hh < heads; ++hh)
    for (int i = 0; i < n; ++i) {
      const int64_t row = int64_t{hh} * n + i;
      for (int j = 0; j < keys; ++j) {
        bool masked;
        if (j < kv_len) {
          masked = j > positions[i] || positions[i] - j >= c.sliding_window;
        } else {
          const int w = j - kv_len;
          masked = w >= visible(i) || (csa && !selected[int64_t{i} * entries + w]);
        }
        with_sink[row * wide + j] = masked ? neg_inf : scores[row * keys + j];
      }
      // The head's sink logit joins the softmax, then is dropped (as gpt-oss's).
      with_sink[row * wide + keys] = L.sinks[hh];
    }
  backend_.softmax(with_sink.data(), heads * n, static_cast<int>(wide));
  for (int64_t row = 0; row < int64_t{heads} * n; ++row)
    std::copy(with_sink.begin() + row * wide, with_sink.begin() + row * wide + keys,
              scores.begin() + row * keys);
  emit(p + "scores", {heads, n, keys}, scores.data());
  std::vector<T> att(int64_t{n} * heads * hd);
  backend_.attention_values(scores.data(), all.data(), n, keys, heads, 1, hd, att.data());
  // The values carried their keys' rotation: the output's rotary part is rotated back by the
  // query's position.
  rotate_interleaved(att.data(), positions, n, heads, hd, rd, compressed, true);

  // The grouped output projection: each group of heads to o_lora_rank values, then one Linear.
  const int groups = c.o_groups, rank = c.o_lora_rank;
  const int64_t per_group = int64_t{heads} * hd / groups;
  std::vector<T> part(int64_t{n} * per_group), y(int64_t{n} * rank),
      grouped(int64_t{n} * groups * rank);
  for (int g = 0; g < groups; ++g) {
    for (int i = 0; i < n; ++i)
      std::copy(att.begin() + int64_t{i} * heads * hd + g * per_group,
                att.begin() + int64_t{i} * heads * hd + (g + 1) * per_group,
                part.begin() + int64_t{i} * per_group);
    backend_.matmul(part.data(), L.o_a.data() + int64_t{g} * rank * per_group, n,
                    static_cast<int>(per_group), rank, y.data());
    for (int i = 0; i < n; ++i)
      std::copy(y.begin() + int64_t{i} * rank, y.begin() + int64_t{i + 1} * rank,
                grouped.begin() + (int64_t{i} * groups + g) * rank);
  }
  backend_.matmul(grouped.data(), held(L.o_b, groups * rank, hidden), n, groups * rank, hidden,
                  out);
}

template <class T>
void Model<T>::clamped_mlp(const Expert& E, const T* x, int m, int inter, T* out) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size;
  const int64_t size = int64_t{m} * inter;
  std::vector<T> gate(size), up(size), act(size);
  backend_.matmul(x, held(E.gate, hidden, inter), m, hidden, inter, gate.data());
  backend_.matmul(x, held(E.up, hidden, inter), m, hidden, inter, up.data());
  // Clamping moves no value but to the limit; a NaN stays NaN (as torch.clamp keeps it).
  const T limit = static_cast<T>(c.swiglu_limit);
  for (int64_t i = 0; i < size; ++i) {
    if (gate[i] > limit) gate[i] = limit;
    if (up[i] > limit) up[i] = limit;
    if (up[i] < -limit) up[i] = -limit;
  }
  backend_.swiglu(gate.data(), up.data(), size, act.data());
  backend_.matmul(act.data(), held(E.down, inter, hidden), m, inter, hidden, out);
}

template <class T>
Tensor<T> Model<T>::forward_deepseek_v4(const std::vector<int>& tokens, KVCache<T>& cache,
                                        const TapFn<T>& tap, const RouteFn& route) {
  const ModelConfig& c = config_;
  const int n = static_cast<int>(tokens.size()), p0 = cache.length();
  const int hidden = c.hidden_size, vocab = c.vocab_size, N = c.hc_mult;
  const int64_t nh = int64_t{n} * hidden;
  auto emit = [&](const std::string& name, const Shape& shape, const T* data) {
    if (tap) tap(name, shape, data);
  };
  std::vector<int> positions(n);
  for (int i = 0; i < n; ++i) positions[i] = p0 + i;

  std::vector<T> x(nh), h(nh), collapsed(nh), out(nh);
  backend_.embed(embed_.data(), tokens.data(), n, hidden, x.data());
  emit("embed", {n, hidden}, x.data());
  // hc_mult copies of the embedding.
  std::vector<T> streams(N * nh), mixed(N * nh), expanded(N * nh);
  for (int i = 0; i < N; ++i) std::copy(x.begin(), x.end(), streams.begin() + i * nh);
  std::vector<T> post, comb, comb_t(int64_t{n} * N * N);

  // streams = post * out + comb^T streams: the sublayer's output expanded, the streams mixed.
  auto update = [&](const T* sublayer_out) {
    for (int t = 0; t < n; ++t)
      for (int j = 0; j < N; ++j)
        for (int k = 0; k < N; ++k)
          comb_t[(int64_t{t} * N + k) * N + j] = comb[(int64_t{t} * N + j) * N + k];
    backend_.mix_streams(streams.data(), comb_t.data(), n, N, N, hidden, mixed.data());
    backend_.mix_streams(sublayer_out, post.data(), n, 1, N, hidden, expanded.data());
    backend_.add(expanded.data(), mixed.data(), N * nh);
    streams.swap(expanded);
  };
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const Layer& L = layers_[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    hyper_connection(L.attn_hc_fn, L.attn_hc_base, L.attn_hc_scale, streams, n, collapsed.data(),
                     &post, &comb);
    emit(p + "attn_comb", {n, N, N}, comb.data());
    backend_.rmsnorm(collapsed.data(), L.attn_norm.data(), n, hidden, c.rms_norm_eps, h.data());
    emit(p + "attn_norm", {n, hidden}, h.data());
    v4_attention(L, p, l, h.data(), n, positions.data(), p0, cache, tap, route, out.data());
    emit(p + "attn_out", {n, hidden}, out.data());
    update(out.data());

    hyper_connection(L.ffn_hc_fn, L.ffn_hc_base, L.ffn_hc_scale, streams, n, collapsed.data(),
                     &post, &comb);
    emit(p + "mlp_comb", {n, N, N}, comb.data());
    backend_.rmsnorm(collapsed.data(), L.mlp_norm.data(), n, hidden, c.rms_norm_eps, h.data());
    experts(L, h.data(), n, p, out.data(), tap, route, tokens.data());
    emit(p + "mlp_out", {n, hidden}, out.data());
    update(out.data());
    emit(p + "streams", {N, n, hidden}, streams.data());
  }
  cache.advance(n);
  hyper_connection(hc_head_fn_, hc_head_base_, hc_head_scale_, streams, n, collapsed.data(),
                   nullptr, nullptr);
  emit("hc_head", {n, hidden}, collapsed.data());
  backend_.rmsnorm(collapsed.data(), final_norm_.data(), n, hidden, c.rms_norm_eps, h.data());
  emit("final_norm", {n, hidden}, h.data());
  Tensor<T> logits({n, vocab});
  const WeightArray<T>& head = c.tie_word_embeddings ? embed_ : lm_head_;
  backend_.matmul(h.data(), held(head, hidden, vocab), n, hidden, vocab, logits.data.data());
  emit("logits", logits.shape, logits.data.data());
  return logits;
}

#define PINMARK_DEEPSEEK_V4(T)                                                                    \
  template void Model<T>::load_deepseek_v4(const WeightSource&);                                       \
  template void Model<T>::rotate_interleaved(T*, const int*, int, int, int, int, bool, bool);     \
  template void Model<T>::hyper_connection(std::span<const T>, std::span<const T>,                \
                                           std::span<const T>, const std::vector<T>&, int, T*,    \
                                           std::vector<T>*, std::vector<T>*);                     \
  template int Model<T>::compress(const Layer&, int, bool, const T*, int, int, KVCache<T>&);      \
  template void Model<T>::v4_attention(const Layer&, const std::string&, int, const T*, int,      \
                                       const int*, int, KVCache<T>&, const TapFn<T>&,             \
                                       const RouteFn&, T*);                                       \
  template void Model<T>::clamped_mlp(const Expert&, const T*, int, int, T*);                     \
  template Tensor<T> Model<T>::forward_deepseek_v4(const std::vector<int>&, KVCache<T>&,          \
                                                   const TapFn<T>&, const RouteFn&);
PINMARK_DEEPSEEK_V4(double)
PINMARK_DEEPSEEK_V4(float)
#undef PINMARK_DEEPSEEK_V4

}  // namespace pinmark
