// Every loop below that is parallel runs over independent output elements; each element is
// summed by one thread in index order, with no parallel reduction. That makes the result a
// pure function of the inputs: the same bits for any thread count and any batch composition.
// Sums are accumulated in T, so the fp32 instance carries genuine fp32 rounding error.
#include "runtime/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <vector>

namespace pinmark {

namespace {

// Below this many multiply-adds a loop runs on one thread: starting a parallel region costs
// more than it saves on the small shapes of most cases, and idle spinning threads slow down
// test processes running side by side.
constexpr int64_t kParallelWork = int64_t{1} << 16;

// The blocks of CpuBackend::product: kCols outputs side by side (a multiple of any vector
// width) and kDepth terms of the sum per transposed block of w; accumulate_rows takes four
// rows of x at a time.
constexpr int kCols = 32, kDepth = 128;

// For each of R rows r of x (R = 1 .. 4), x[r] at x + r * ldx:
//   acc[r, c] = acc[r, c] + x[r, p] * pack[p, c]   for p < depth in order, each lane c < kCols.
// The lanes are independent sums, so holding them in vector registers leaves each sum's order
// (and bits) as the scalar loop has it; the R rows share each load of `pack`. Compiled for
// AVX-512, AVX2 and the baseline, chosen when the program starts; without contraction all
// three compute the same IEEE operations.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PINMARK_LANE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PINMARK_LANE_CLONES
#endif
#define PINMARK_ACCUMULATE_ROWS(T, R)                                                          \
  PINMARK_LANE_CLONES void accumulate_rows_##R(T* acc, const T* x, int64_t ldx, const T* pack, \
                                               int depth) {                                    \
    typedef T V __attribute__((vector_size(64), aligned(alignof(T))));                         \
    constexpr int L = 64 / sizeof(T), N = kCols / L;                                           \
    V a[R][N];                                                                                  \
    for (int r = 0; r < R; ++r)                                                                 \
      for (int v = 0; v < N; ++v) std::memcpy(&a[r][v], acc + r * kCols + v * L, sizeof(V));  \
    for (int p = 0; p < depth; ++p) {                                                           \
      const V* w = reinterpret_cast<const V*>(pack + static_cast<int64_t>(p) * kCols);          \
      for (int r = 0; r < R; ++r) {                                                             \
        const V xb = V{} + x[r * ldx + p];                                                      \
        for (int v = 0; v < N; ++v) a[r][v] = a[r][v] + xb * w[v];                              \
      }                                                                                         \
    }                                                                                           \
    for (int r = 0; r < R; ++r)                                                                 \
      for (int v = 0; v < N; ++v) std::memcpy(acc + r * kCols + v * L, &a[r][v], sizeof(V));  \
  }
PINMARK_ACCUMULATE_ROWS(float, 1)
PINMARK_ACCUMULATE_ROWS(float, 2)
PINMARK_ACCUMULATE_ROWS(float, 3)
PINMARK_ACCUMULATE_ROWS(float, 4)
PINMARK_ACCUMULATE_ROWS(double, 1)
PINMARK_ACCUMULATE_ROWS(double, 2)
PINMARK_ACCUMULATE_ROWS(double, 3)
PINMARK_ACCUMULATE_ROWS(double, 4)
#undef PINMARK_ACCUMULATE_ROWS

template <class T>
void accumulate_rows(T* acc, const T* x, int64_t ldx, int rows, const T* pack, int depth) {
  switch (rows) {
    case 1: return accumulate_rows_1(acc, x, ldx, pack, depth);
    case 2: return accumulate_rows_2(acc, x, ldx, pack, depth);
    case 3: return accumulate_rows_3(acc, x, ldx, pack, depth);
    default: return accumulate_rows_4(acc, x, ldx, pack, depth);
  }
}

// pack[p, c] = w[c, p] for c < width, p < depth (w's rows `ldw` apart); lanes past `width` are
// left as they are. Whole 8 x 8 tiles are transposed in vector registers (the three stages of
// interleaves a SIMD transpose takes), the edges element by element; each row is prefetched
// 128 values ahead, since for one row of x (decode) this copy is what waits on memory. Only
// copies: no rounding.
#define PINMARK_PACK_BLOCK(T)                                                                     \
  PINMARK_LANE_CLONES void pack_block(T* pack, const T* w, int64_t ldw, int width, int depth) {   \
    typedef T V __attribute__((vector_size(8 * sizeof(T)), aligned(alignof(T))));                 \
    int c0 = 0;                                                                                   \
    for (; c0 + 8 <= width; c0 += 8) {                                                            \
      int p0 = 0;                                                                                 \
      for (; p0 + 8 <= depth; p0 += 8) {                                                          \
        V r[8], t[8], u[8];                                                                       \
        for (int c = 0; c < 8; ++c) {                                                             \
          __builtin_prefetch(w + (c0 + c) * ldw + p0 + 128);                                      \
          std::memcpy(&r[c], w + (c0 + c) * ldw + p0, sizeof(V));                                 \
        }                                                                                         \
        for (int c = 0; c < 8; c += 2) {                                                          \
          t[c] = __builtin_shufflevector(r[c], r[c + 1], 0, 8, 1, 9, 4, 12, 5, 13);               \
          t[c + 1] = __builtin_shufflevector(r[c], r[c + 1], 2, 10, 3, 11, 6, 14, 7, 15);         \
        }                                                                                         \
        for (int h = 0; h < 8; h += 4)                                                            \
          for (int q = 0; q < 2; ++q) {                                                           \
            const V& even = t[h + q];                                                            \
            const V& odd = t[h + q + 2];                                                         \
            u[h + 2 * q] = __builtin_shufflevector(even, odd, 0, 1, 8, 9, 4, 5, 12, 13);          \
            u[h + 2 * q + 1] = __builtin_shufflevector(even, odd, 2, 3, 10, 11, 6, 7, 14, 15);    \
          }                                                                                       \
        for (int j = 0; j < 4; ++j) {                                                             \
          const V low = __builtin_shufflevector(u[j], u[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);        \
          const V high = __builtin_shufflevector(u[j], u[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);     \
          std::memcpy(pack + static_cast<int64_t>(p0 + j) * kCols + c0, &low, sizeof(V));         \
          std::memcpy(pack + static_cast<int64_t>(p0 + j + 4) * kCols + c0, &high, sizeof(V));    \
        }                                                                                         \
      }                                                                                           \
      for (; p0 < depth; ++p0)                                                                    \
        for (int c = 0; c < 8; ++c)                                                               \
          pack[static_cast<int64_t>(p0) * kCols + c0 + c] = w[(c0 + c) * ldw + p0];               \
    }                                                                                             \
    for (; c0 < width; ++c0)                                                                      \
      for (int p = 0; p < depth; ++p)                                                             \
        pack[static_cast<int64_t>(p) * kCols + c0] = w[c0 * ldw + p];                             \
  }
PINMARK_PACK_BLOCK(float)
PINMARK_PACK_BLOCK(double)
#undef PINMARK_PACK_BLOCK

template <class T>
class CpuBackend final : public Backend<T> {
 public:
  void embed(const T* table, const int* tokens, int n, int dim, T* out) override {
#pragma omp parallel for if (int64_t{n} * dim >= kParallelWork)
    for (int i = 0; i < n; ++i) {
      const T* row = table + static_cast<int64_t>(tokens[i]) * dim;
      T* dst = out + static_cast<int64_t>(i) * dim;
      for (int d = 0; d < dim; ++d) dst[d] = row[d];
    }
  }

  void matmul(const T* x, const T* w, int n, int k, int m, T* y) override {
    product(x, w, panels_of(w, k, m), nullptr, n, k, m, y);
  }

  void hold_matrix(const T* w, int k, int m, MatrixRole) override {
    if (k <= 0 || m <= 0) return;
    Held& held = held_[w];
    held.k = k;
    held.m = m;
    const int blocks = (m + kCols - 1) / kCols;
    held.panels.assign(static_cast<size_t>(blocks) * k * kCols, T(0));
#pragma omp parallel for schedule(static) if (int64_t{m} * k >= kParallelWork)
    for (int jb = 0; jb < blocks; ++jb) {
      const int j0 = jb * kCols;
      pack_block(held.panels.data() + static_cast<int64_t>(jb) * k * kCols,
                 w + static_cast<int64_t>(j0) * k, k, std::min(kCols, m - j0), k);
    }
  }

  void release_matrix(const T* w) override { held_.erase(w); }

  void rmsnorm(const T* x, const T* w, int n, int dim, double eps, T* y) override {
    rms_normalize(x, n, dim, eps, y, [w](int d) { return w[d]; });
  }

  void rope(T* x, const int* positions, int n, int heads, int head_dim, double theta) override {
    const int half = head_dim / 2;
#pragma omp parallel for collapse(2) if (int64_t{n} * heads * head_dim >= kParallelWork)
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < half; ++j) {
        // Frequencies and angles in fp64 whatever T is: the angle pos * inv_freq grows with
        // the position, and its rounding would otherwise swamp the error being measured.
        const double inv_freq =
            1.0 / std::pow(theta, static_cast<double>(2 * j) / static_cast<double>(head_dim));
        const double angle = static_cast<double>(positions[i]) * inv_freq;
        const T c = static_cast<T>(std::cos(angle));
        const T s = static_cast<T>(std::sin(angle));
        for (int h = 0; h < heads; ++h) {
          T* v = x + (static_cast<int64_t>(i) * heads + h) * head_dim;
          const T x1 = v[j], x2 = v[j + half];
          v[j] = x1 * c - x2 * s;
          v[j + half] = x2 * c + x1 * s;
        }
      }
    }
  }

  // Each score is the product's dot (summed over head_dim in order), times the scale: the
  // keys of a head are the rows of w, computed kCols keys side by side.
  void attention_scores(const T* q, const T* k, const int* positions, int n, int kv_len, int heads,
                        int kv_heads, int head_dim, double scale, T* scores) override {
    const int group = heads / kv_heads;
    const T s = static_cast<T>(scale);
    const T neg_inf = -std::numeric_limits<T>::infinity();
    const int blocks = (kv_len + kCols - 1) / kCols;
#pragma omp parallel for collapse(2) if (int64_t{heads} * n * kv_len * head_dim >= kParallelWork)
    for (int h = 0; h < heads; ++h) {
      for (int jb = 0; jb < blocks; ++jb) {
        const int j0 = jb * kCols, width = std::min(kCols, kv_len - j0);
        T* block = scores + static_cast<int64_t>(h) * n * kv_len + j0;
        product_block(q + static_cast<int64_t>(h) * head_dim, int64_t{heads} * head_dim,
                      k + (static_cast<int64_t>(j0) * kv_heads + h / group) * head_dim,
                      int64_t{kv_heads} * head_dim, nullptr, nullptr, n, head_dim, width, block,
                      kv_len);
        for (int i = 0; i < n; ++i) {
          T* row = block + static_cast<int64_t>(i) * kv_len;
          for (int c = 0; c < width; ++c) row[c] = j0 + c > positions[i] ? neg_inf : row[c] * s;
        }
      }
    }
  }

  void softmax(T* x, int rows, int len) override {
    const T neg_inf = -std::numeric_limits<T>::infinity();
#pragma omp parallel for if (int64_t{rows} * len >= kParallelWork)
    for (int r = 0; r < rows; ++r) {
      T* row = x + static_cast<int64_t>(r) * len;
      T max = neg_inf;
      for (int j = 0; j < len; ++j)
        if (row[j] > max) max = row[j];
      if (max == neg_inf) {
        // Fully masked: there is no distribution to normalize; zeros instead of 0/0 NaNs.
        for (int j = 0; j < len; ++j) row[j] = 0;
        continue;
      }
      T sum = 0;
      for (int j = 0; j < len; ++j) {
        row[j] = row[j] == neg_inf ? T(0) : std::exp(row[j] - max);
        sum += row[j];
      }
      for (int j = 0; j < len; ++j) row[j] = row[j] / sum;
    }
  }

  // Each output is summed over the keys in order; the loop over head_dim runs innermost, so
  // the head_dim independent sums advance side by side (vectorised, their bits unchanged).
  void attention_values(const T* probs, const T* v, int n, int kv_len, int heads, int kv_heads,
                        int head_dim, T* out) override {
    const int group = heads / kv_heads;
#pragma omp parallel for collapse(2) if (int64_t{n} * heads * head_dim * kv_len >= kParallelWork)
    for (int i = 0; i < n; ++i) {
      for (int h = 0; h < heads; ++h) {
        thread_local std::vector<T> sums;
        sums.assign(head_dim, T(0));
        T* __restrict o = sums.data();
        const int kvh = h / group;
        const T* p = probs + (static_cast<int64_t>(h) * n + i) * kv_len;
        for (int j = 0; j < kv_len; ++j) {
          const T pj = p[j];
          const T* __restrict vj = v + (static_cast<int64_t>(j) * kv_heads + kvh) * head_dim;
          for (int d = 0; d < head_dim; ++d) o[d] += pj * vj[d];
        }
        std::copy(o, o + head_dim, out + (static_cast<int64_t>(i) * heads + h) * head_dim);
      }
    }
  }

  void swiglu(const T* gate, const T* up, int64_t n, T* out) override {
#pragma omp parallel for if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) {
      const T g = gate[i];
      out[i] = (g / (T(1) + std::exp(-g))) * up[i];
    }
  }

  void clamped_swiglu(const T* gate, const T* up, int64_t n, double alpha, double limit,
                      T* out) override {
    const T a = static_cast<T>(alpha), lim = static_cast<T>(limit);
#pragma omp parallel for if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) {
      // Written with comparisons that leave a NaN in place, as torch.clamp does.
      const T g = lim < gate[i] ? lim : gate[i];
      const T u = up[i] < -lim ? -lim : (lim < up[i] ? lim : up[i]);
      out[i] = (u + T(1)) * (g / (T(1) + std::exp(-(a * g))));
    }
  }

  void causal_conv1d_silu(const T* x, const T* w, int n, int channels, int kernel,
                          T* out) override {
#pragma omp parallel for if (int64_t{n} * channels * kernel >= kParallelWork)
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < channels; ++c) {
        T s = 0;
        for (int j = 0; j < kernel; ++j)
          s += w[static_cast<int64_t>(c) * kernel + j] * x[static_cast<int64_t>(i + j) * channels + c];
        out[static_cast<int64_t>(i) * channels + c] = s / (T(1) + std::exp(-s));
      }
  }

  void gated_delta_rule(const T* qkv, const T* a, const T* b, const T* A_log, const T* dt_bias,
                        const GatedDeltaParams& p, T* state, T* out) override {
    const int64_t key_dim = int64_t{p.k_heads} * p.k_dim;
    const int64_t row = 2 * key_dim + int64_t{p.v_heads} * p.v_dim;
    const int group = p.v_heads / p.k_heads;
    const T scale = T(1) / std::sqrt(static_cast<T>(p.k_dim));
    // Heads are independent: each runs its tokens in order on one thread.
#pragma omp parallel for if (int64_t{p.n} * p.v_heads * p.k_dim * p.v_dim >= kParallelWork)
    for (int h = 0; h < p.v_heads; ++h) {
      std::vector<T> qn(p.k_dim), kn(p.k_dim), delta(p.v_dim);
      T* S = state + static_cast<int64_t>(h) * p.k_dim * p.v_dim;
      for (int t = 0; t < p.n; ++t) {
        const T* q = qkv + t * row + static_cast<int64_t>(h / group) * p.k_dim;
        const T* k = q + key_dim;
        const T* v = qkv + t * row + 2 * key_dim + static_cast<int64_t>(h) * p.v_dim;
        T qq = 0, kk = 0;
        for (int i = 0; i < p.k_dim; ++i) qq += q[i] * q[i];
        for (int i = 0; i < p.k_dim; ++i) kk += k[i] * k[i];
        // transformers' l2norm multiplies by rsqrt(sum + eps), then scales the query.
        const T q_inv = T(1) / std::sqrt(qq + static_cast<T>(1e-6));
        const T k_inv = T(1) / std::sqrt(kk + static_cast<T>(1e-6));
        for (int i = 0; i < p.k_dim; ++i) qn[i] = q[i] * q_inv * scale;
        for (int i = 0; i < p.k_dim; ++i) kn[i] = k[i] * k_inv;
        const T x = a[static_cast<int64_t>(t) * p.v_heads + h] + dt_bias[h];
        const T softplus = x > T(20) ? x : std::log1p(std::exp(x));
        const T decay = std::exp(-std::exp(A_log[h]) * softplus);
        const T beta = T(1) / (T(1) + std::exp(-b[static_cast<int64_t>(t) * p.v_heads + h]));
        for (int64_t e = 0; e < int64_t{p.k_dim} * p.v_dim; ++e) S[e] = S[e] * decay;
        for (int j = 0; j < p.v_dim; ++j) {
          T memory = 0;
          for (int i = 0; i < p.k_dim; ++i) memory += S[static_cast<int64_t>(i) * p.v_dim + j] * kn[i];
          delta[j] = (v[j] - memory) * beta;
        }
        for (int i = 0; i < p.k_dim; ++i)
          for (int j = 0; j < p.v_dim; ++j)
            S[static_cast<int64_t>(i) * p.v_dim + j] += kn[i] * delta[j];
        T* o = out + (static_cast<int64_t>(t) * p.v_heads + h) * p.v_dim;
        for (int j = 0; j < p.v_dim; ++j) {
          T sum = 0;
          for (int i = 0; i < p.k_dim; ++i) sum += S[static_cast<int64_t>(i) * p.v_dim + j] * qn[i];
          o[j] = sum;
        }
      }
    }
  }

  void rmsnorm_gated(const T* x, const T* w, const T* gate, int n, int dim, double eps,
                     T* y) override {
    rms_normalize(x, n, dim, eps, y, [w](int d) { return w[d]; });
    for (int64_t i = 0; i < int64_t{n} * dim; ++i) {
      const T g = gate[i];
      y[i] = y[i] * (g / (T(1) + std::exp(-g)));
    }
  }

  void sigmoid_gate(const T* x, const T* gate, int64_t n, T* out) override {
#pragma omp parallel for if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * (T(1) / (T(1) + std::exp(-gate[i])));
  }

  void mix_streams(const T* x, const T* coefs, int n, int in_streams, int out_streams, int dim,
                   T* y) override {
    const int64_t plane = int64_t{n} * dim;
#pragma omp parallel for collapse(2) if (plane * out_streams * in_streams >= kParallelWork)
    for (int o = 0; o < out_streams; ++o) {
      for (int t = 0; t < n; ++t) {
        const T* c = coefs + (int64_t{t} * out_streams + o) * in_streams;
        T* out = y + o * plane + int64_t{t} * dim;
        for (int d = 0; d < dim; ++d) {
          T sum = 0;
          for (int i = 0; i < in_streams; ++i) sum += c[i] * x[i * plane + int64_t{t} * dim + d];
          out[d] = sum;
        }
      }
    }
  }

  void scale_columns(const T* x, const T* w, int n, int dim, T* y) override {
#pragma omp parallel for if (int64_t{n} * dim >= kParallelWork)
    for (int r = 0; r < n; ++r)
      for (int d = 0; d < dim; ++d) y[int64_t{r} * dim + d] = x[int64_t{r} * dim + d] * w[d];
  }

  void rescale_rms(const T* x, const T* ref, int n, int dim, double floor, T* y) override {
    const T lowest = static_cast<T>(floor);
#pragma omp parallel for if (int64_t{n} * dim >= kParallelWork)
    for (int r = 0; r < n; ++r) {
      const T* a = x + int64_t{r} * dim;
      const T* b = ref + int64_t{r} * dim;
      T sa = 0, sb = 0;
      for (int d = 0; d < dim; ++d) {
        sa += a[d] * a[d];
        sb += b[d] * b[d];
      }
      const T target = std::sqrt(sb / static_cast<T>(dim));
      const T own = std::sqrt(std::max(sa / static_cast<T>(dim), lowest));
      for (int d = 0; d < dim; ++d) y[int64_t{r} * dim + d] = a[d] * target / own;
    }
  }

  void gaussian_topk(T* x, int n, int dim, double std_multiplier) override {
    const T m = static_cast<T>(std_multiplier);
#pragma omp parallel for if (int64_t{n} * dim >= kParallelWork)
    for (int r = 0; r < n; ++r) {
      T* row = x + int64_t{r} * dim;
      T sum = 0;
      for (int d = 0; d < dim; ++d) sum += row[d];
      const T mean = sum / static_cast<T>(dim);
      T squares = 0;
      for (int d = 0; d < dim; ++d) squares += (row[d] - mean) * (row[d] - mean);
      const T cutoff = mean + std::sqrt(squares / static_cast<T>(dim)) * m;
      for (int d = 0; d < dim; ++d) {
        const T v = row[d] - cutoff;
        row[d] = v > T(0) ? v : (v == v ? T(0) : v);  // relu, a NaN staying NaN
      }
    }
  }

  // Each channel's weights normalised first (softmax), then the weighted sum over the slots
  // in order, as torch computes (kv * gate.softmax(dim=slots)).sum(dim=slots).
  void softmax_pool(const T* kv, const T* gate, int n, int slots, int dim, T* out) override {
    const T neg_inf = -std::numeric_limits<T>::infinity();
#pragma omp parallel for if (int64_t{n} * slots * dim >= kParallelWork)
    for (int w = 0; w < n; ++w) {
      const T* g = gate + int64_t{w} * slots * dim;
      const T* v = kv + int64_t{w} * slots * dim;
      for (int d = 0; d < dim; ++d) {
        T max = neg_inf;
        for (int s = 0; s < slots; ++s)
          if (g[int64_t{s} * dim + d] > max) max = g[int64_t{s} * dim + d];
        T sum = 0;
        for (int s = 0; s < slots; ++s) {
          const T x = g[int64_t{s} * dim + d];
          if (x != neg_inf) sum += std::exp(x - max);
        }
        T pooled = 0;
        for (int s = 0; s < slots; ++s) {
          const T x = g[int64_t{s} * dim + d];
          const T weight = x == neg_inf ? T(0) : std::exp(x - max) / sum;
          pooled += weight * v[int64_t{s} * dim + d];
        }
        out[int64_t{w} * dim + d] = pooled;
      }
    }
  }

  void indexer_scores(const T* q, const T* k, const T* weights, const int* positions, int n,
                      int kv_len, int heads, int head_dim, double scale, double weight_scale,
                      T* out) override {
    const T s = static_cast<T>(scale), ws = static_cast<T>(weight_scale);
    const T neg_inf = -std::numeric_limits<T>::infinity();
#pragma omp parallel for collapse(2) if (int64_t{n} * kv_len * heads * head_dim >= kParallelWork)
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < kv_len; ++j) {
        T& o = out[static_cast<int64_t>(i) * kv_len + j];
        if (j > positions[i]) {
          o = neg_inf;
          continue;
        }
        const T* key = k + static_cast<int64_t>(j) * head_dim;
        T sum = 0;
        for (int h = 0; h < heads; ++h) {
          const T* query = q + (static_cast<int64_t>(i) * heads + h) * head_dim;
          T dot = 0;
          for (int d = 0; d < head_dim; ++d) dot += query[d] * key[d];
          const T score = dot * s;
          sum += weights[static_cast<int64_t>(i) * heads + h] * ws * (score < T(0) ? T(0) : score);
        }
        o = sum;
      }
    }
  }

  // y = x w^T (+ b when given). Each element is summed in index order, one multiply and one
  // add per term (no fused multiply-add: the build sets -ffp-contract=off), by one thread: the
  // same bits as the plain triple loop, for any thread count. Speed comes from computing kCols
  // outputs side by side, one vector lane each, so the lanes never combine: a block of kCols
  // rows of w is transposed into `pack` kDepth terms at a time (cache blocking), and every row
  // of x in turn runs its kDepth terms against it. Threads take blocks of outputs. For a held
  // matrix (hold_matrix) the blocks were transposed once, into `panels`, and are read from
  // there: a decode step's matrix-vector products then stream the weights once, as the
  // matrix-vector loops of the single-file C runtimes do.
  static void product(const T* x, const T* w, const T* panels, const T* b, int n, int k, int m,
                      T* y) {
    const int blocks = (m + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (int64_t{n} * m * k >= kParallelWork)
    for (int jb = 0; jb < blocks; ++jb) {
      const int j0 = jb * kCols;
      product_block(x, k, w + static_cast<int64_t>(j0) * k, k,
                    panels ? panels + static_cast<int64_t>(jb) * k * kCols : nullptr,
                    b ? b + j0 : nullptr, n, k,
                    std::min(kCols, m - j0), y + j0, m);
    }
  }

  // One block of outputs: y[i, c] = x[i, :] . w[c, :] (+ b[c]) for rows i < n and columns
  // c < width (<= kCols), x's rows ldx apart, w's ldw apart, y's ldy apart. `panel`, when not
  // null, is the block already transposed, [k, kCols]; otherwise w is transposed here.
  static void product_block(const T* x, int64_t ldx, const T* w, int64_t ldw, const T* panel,
                            const T* b, int n, int k, int width, T* y, int64_t ldy) {
    thread_local std::vector<T> pack, acc;
    // Lanes past the last output compute on zeros, never stored.
    if (!panel && (pack.size() != static_cast<size_t>(kDepth) * kCols || width < kCols))
      pack.assign(int64_t{kDepth} * kCols, T(0));
    acc.assign(int64_t{n} * kCols, T(0));
    for (int p0 = 0; p0 < k; p0 += kDepth) {
      const int depth = std::min(kDepth, k - p0);
      // (No offset from a null panel: pointer arithmetic on null is undefined.)
      const T* terms = pack.data();
      if (panel)
        terms = panel + static_cast<int64_t>(p0) * kCols;
      else
        pack_block(pack.data(), w + p0, ldw, width, depth);
      for (int i = 0; i < n; i += 4)
        accumulate_rows(acc.data() + int64_t{i} * kCols, x + i * ldx + p0, ldx,
                        std::min(4, n - i), terms, depth);
    }
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < width; ++c) {
        const T sum = acc[int64_t{i} * kCols + c];
        y[i * ldy + c] = b ? sum + b[c] : sum;
      }
  }

  // The panels of a held matrix w[m, k], or null when w is not held with this shape.
  const T* panels_of(const T* w, int k, int m) const {
    const auto it = held_.find(w);
    if (it == held_.end() || it->second.k != k || it->second.m != m) return nullptr;
    return it->second.panels.data();
  }

  struct Held {
    int k = 0, m = 0;
    std::vector<T> panels;  // [m / kCols rounded up, k, kCols], lanes past m zero
  };
  std::unordered_map<const T*, Held> held_;

  // Both RMSNorm variants: normalise each row, then scale element d by weight(d), in Hugging
  // Face's order (normalise first, then scale).
  template <class Weight>
  static void rms_normalize(const T* x, int n, int dim, double eps, T* y, Weight weight) {
#pragma omp parallel for if (int64_t{n} * dim >= kParallelWork)
    for (int r = 0; r < n; ++r) {
      const T* xr = x + static_cast<int64_t>(r) * dim;
      T* yr = y + static_cast<int64_t>(r) * dim;
      T ss = 0;
      for (int d = 0; d < dim; ++d) ss += xr[d] * xr[d];
      const T inv = T(1) / std::sqrt(ss / static_cast<T>(dim) + static_cast<T>(eps));
      for (int d = 0; d < dim; ++d) yr[d] = (xr[d] * inv) * weight(d);
    }
  }

  void add(T* y, const T* x, int64_t n) override {
#pragma omp parallel for if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  }

  void matmul_bias(const T* x, const T* w, const T* b, int n, int k, int m, T* y) override {
    product(x, w, panels_of(w, k, m), b, n, k, m, y);
  }

  void rmsnorm_plus_one(const T* x, const T* w, int n, int dim, double eps, T* y) override {
    rms_normalize(x, n, dim, eps, y, [w](int d) { return T(1) + w[d]; });
  }

  void layernorm(const T* x, const T* w, const T* b, int n, int dim, double eps, T* y) override {
#pragma omp parallel for if (int64_t{n} * dim >= kParallelWork)
    for (int r = 0; r < n; ++r) {
      const T* xr = x + static_cast<int64_t>(r) * dim;
      T* yr = y + static_cast<int64_t>(r) * dim;
      T sum = 0;
      for (int d = 0; d < dim; ++d) sum += xr[d];
      const T mean = sum / static_cast<T>(dim);
      T ss = 0;
      for (int d = 0; d < dim; ++d) ss += (xr[d] - mean) * (xr[d] - mean);
      const T inv = T(1) / std::sqrt(ss / static_cast<T>(dim) + static_cast<T>(eps));
      for (int d = 0; d < dim; ++d) yr[d] = ((xr[d] - mean) * inv) * w[d] + b[d];
    }
  }

  void rope_freqs(T* x, const int* positions, int n, int heads, int head_dim,
                  const double* inv_freq, double attention_scaling) override {
    const int half = head_dim / 2;
#pragma omp parallel for collapse(2) if (int64_t{n} * heads * head_dim >= kParallelWork)
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < half; ++j) {
        const double angle = static_cast<double>(positions[i]) * inv_freq[j];
        const T c = static_cast<T>(std::cos(angle) * attention_scaling);
        const T s = static_cast<T>(std::sin(angle) * attention_scaling);
        for (int h = 0; h < heads; ++h) {
          T* v = x + (static_cast<int64_t>(i) * heads + h) * head_dim;
          const T x1 = v[j], x2 = v[j + half];
          v[j] = x1 * c - x2 * s;
          v[j + half] = x2 * c + x1 * s;
        }
      }
    }
  }

  void score_mod(T* scores, const int* positions, int n, int kv_len, int heads, double softcap,
                 int window) override {
    const T neg_inf = -std::numeric_limits<T>::infinity();
    const T cap = static_cast<T>(softcap);
#pragma omp parallel for collapse(2) if (int64_t{heads} * n * kv_len >= kParallelWork)
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < n; ++i) {
        T* row = scores + (static_cast<int64_t>(h) * n + i) * kv_len;
        for (int j = 0; j < kv_len; ++j) {
          if (row[j] == neg_inf) continue;
          if (window > 0 && positions[i] - j >= window) {
            row[j] = neg_inf;
            continue;
          }
          if (softcap > 0) row[j] = std::tanh(row[j] / cap) * cap;
        }
      }
    }
  }

  void softcap(T* x, int64_t n, double cap) override {
    const T c = static_cast<T>(cap);
#pragma omp parallel for if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i] / c) * c;
  }

  void scale(T* x, int64_t n, double scale) override {
    const T s = static_cast<T>(scale);
#pragma omp parallel for if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) x[i] = x[i] * s;
  }

  void gelu(const T* x, int64_t n, bool tanh, T* out) override {
#pragma omp parallel for if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) out[i] = gelu_of(x[i], tanh);
  }

  void geglu(const T* gate, const T* up, int64_t n, bool tanh, T* out) override {
#pragma omp parallel for if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) out[i] = gelu_of(gate[i], tanh) * up[i];
  }

  void moe_route(const T* logits, int n, int experts, int top_k, T* probs, int* ids,
                 T* weights) override {
#pragma omp parallel for if (int64_t{n} * experts * top_k >= kParallelWork)
    for (int r = 0; r < n; ++r) {
      const T* lr = logits + static_cast<int64_t>(r) * experts;
      T* pr = probs + static_cast<int64_t>(r) * experts;
      int* ir = ids + static_cast<int64_t>(r) * top_k;
      T* wr = weights + static_cast<int64_t>(r) * top_k;
      T max = lr[0];
      for (int e = 1; e < experts; ++e)
        if (lr[e] > max) max = lr[e];
      T sum = 0;
      for (int e = 0; e < experts; ++e) {
        pr[e] = std::exp(lr[e] - max);
        sum += pr[e];
      }
      for (int e = 0; e < experts; ++e) pr[e] = pr[e] / sum;
      // Selection by repeated strict-greater scans: each pass takes the largest probability
      // not yet taken, the lowest index among equals.
      T selected = 0;
      for (int s = 0; s < top_k; ++s) {
        int best = -1;
        for (int e = 0; e < experts; ++e) {
          bool taken = false;
          for (int t = 0; t < s; ++t) taken = taken || ir[t] == e;
          if (!taken && (best < 0 || pr[e] > pr[best])) best = e;
        }
        ir[s] = best;
        wr[s] = pr[best];
        selected += pr[best];
      }
      for (int s = 0; s < top_k; ++s) wr[s] = wr[s] / selected;
    }
  }

  void moe_combine(T* y, const T* x, const int* rows, const T* weights, int m, int dim) override {
#pragma omp parallel for if (int64_t{m} * dim >= kParallelWork)
    for (int r = 0; r < m; ++r) {
      T* yr = y + static_cast<int64_t>(rows[r]) * dim;
      const T* xr = x + static_cast<int64_t>(r) * dim;
      for (int d = 0; d < dim; ++d) yr[d] += xr[d] * weights[r];
    }
  }

 private:
  static T gelu_of(T x, bool tanh) {
    if (tanh) {
      const T k = static_cast<T>(0.7978845608028654);  // sqrt(2 / pi)
      return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
    }
    return T(0.5) * x * (T(1) + std::erf(x * static_cast<T>(0.7071067811865476)));
  }
};

}  // namespace

template <class T>
std::unique_ptr<Backend<T>> make_cpu_backend() {
  return std::make_unique<CpuBackend<T>>();
}

template std::unique_ptr<Backend<double>> make_cpu_backend<double>();
template std::unique_ptr<Backend<float>> make_cpu_backend<float>();

}  // namespace pinmark
