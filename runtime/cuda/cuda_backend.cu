// Every kernel here gives each output element to one thread, or each row to one block that
// reduces in a tree of fixed shape (kBlock threads, strided partial sums, then halving), so
// that the order of every sum depends only on the op's sizes, never on scheduling or on how
// many rows arrive together: the same inputs give the same bits run after run. No atomics.
//
// Built with --fmad=false: nvcc otherwise contracts a*b+c into one FMA, rounding once where the
// CPU reference (built with -ffp-contract=off) rounds twice. Without contraction the fp32
// element-wise and sequential-sum kernels round exactly like the CPU's fp32 path, and what
// the fp32 rows measure is the GPU's own choices (cuBLAS's reduction order, the device's
// expf/tanhf/erff), not compiler contraction that changes with the source's shape.
#include "runtime/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_info.h"

namespace pinmark {

namespace {

constexpr int kBlock = 256;
// Enough blocks to fill a large GPU; element-wise kernels stride over the rest.
constexpr int64_t kMaxGrid = 65535;
// A fixed cuBLAS workspace: cuBLAS picks its algorithm (and with it the reduction order) partly
// by the workspace it is given, so it must not vary between calls.
constexpr size_t kCublasWorkspace = size_t{32} << 20;

int grid_for(int64_t count) {
  return static_cast<int>(std::min<int64_t>((count + kBlock - 1) / kBlock, kMaxGrid));
}

// ---------------------------------------------------------------------------------------------
// Kernels

// Tree reduction over the block's kBlock values: the pairing depends on kBlock alone.
template <class Op>
__device__ float block_reduce(float value, float* shared, Op op) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int stride = kBlock / 2; stride > 0; stride >>= 1) {
    if (static_cast<int>(threadIdx.x) < stride)
      shared[threadIdx.x] = op(shared[threadIdx.x], shared[threadIdx.x + stride]);
    __syncthreads();
  }
  const float result = shared[0];
  __syncthreads();  // before the next reduction overwrites the shared array
  return result;
}

struct Sum {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Max {
  __device__ float operator()(float a, float b) const { return a > b ? a : b; }
};

#define PINMARK_GRID_STRIDE(i, count)                                                   \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (count); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void embed_kernel(const float* table, const int* tokens, int n, int dim, float* out) {
  PINMARK_GRID_STRIDE(idx, int64_t{n} * dim) {
    const int64_t i = idx / dim, d = idx % dim;
    out[idx] = table[static_cast<int64_t>(tokens[i]) * dim + d];
  }
}

__global__ void to_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* out) {
  PINMARK_GRID_STRIDE(i, n) out[i] = __float2bfloat16_rn(x[i]);
}

__global__ void to_half_kernel(const float* x, int64_t n, __half* out) {
  PINMARK_GRID_STRIDE(i, n) out[i] = __float2half_rn(x[i]);
}

__global__ void add_bias_kernel(float* y, const float* b, int n, int m) {
  PINMARK_GRID_STRIDE(idx, int64_t{n} * m) y[idx] = y[idx] + b[idx % m];
}

// One block per row; kPlusOne for Gemma's weight stored as an offset from one.
template <bool kPlusOne>
__global__ void rmsnorm_kernel(const float* x, const float* w, int dim, float eps, float* y) {
  __shared__ float shared[kBlock];
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * dim;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * dim;
  float ss = 0.0f;
  for (int d = threadIdx.x; d < dim; d += kBlock) ss += xr[d] * xr[d];
  ss = block_reduce(ss, shared, Sum{});
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  for (int d = threadIdx.x; d < dim; d += kBlock)
    yr[d] = (xr[d] * inv) * (kPlusOne ? 1.0f + w[d] : w[d]);
}

__global__ void layernorm_kernel(const float* x, const float* w, const float* b, int dim,
                                 float eps, float* y) {
  __shared__ float shared[kBlock];
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * dim;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * dim;
  float sum = 0.0f;
  for (int d = threadIdx.x; d < dim; d += kBlock) sum += xr[d];
  const float mean = block_reduce(sum, shared, Sum{}) / static_cast<float>(dim);
  float ss = 0.0f;
  for (int d = threadIdx.x; d < dim; d += kBlock) ss += (xr[d] - mean) * (xr[d] - mean);
  ss = block_reduce(ss, shared, Sum{});
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  for (int d = threadIdx.x; d < dim; d += kBlock) yr[d] = ((xr[d] - mean) * inv) * w[d] + b[d];
}

// cos_sin[i, j] = (cos, sin) of position i's angle for pair j, computed on the host in fp64.
__global__ void rope_kernel(float* x, const float2* cos_sin, int n, int heads, int head_dim) {
  const int half = head_dim / 2;
  PINMARK_GRID_STRIDE(idx, int64_t{n} * heads * half) {
    const int64_t j = idx % half, h = idx / half % heads, i = idx / half / heads;
    const float2 cs = cos_sin[i * half + j];
    float* v = x + (i * heads + h) * head_dim;
    const float x1 = v[j], x2 = v[j + half];
    v[j] = x1 * cs.x - x2 * cs.y;
    v[j + half] = x2 * cs.x + x1 * cs.y;
  }
}

__global__ void attention_scores_kernel(const float* q, const float* k, const int* positions,
                                        int n, int kv_len, int heads, int kv_heads, int head_dim,
                                        float scale, float* scores) {
  const int group = heads / kv_heads;
  PINMARK_GRID_STRIDE(idx, int64_t{heads} * n * kv_len) {
    const int64_t j = idx % kv_len, i = idx / kv_len % n, h = idx / kv_len / n;
    if (j > positions[i]) {
      scores[idx] = -INFINITY;
      continue;
    }
    const float* qv = q + (i * heads + h) * head_dim;
    const float* kv = k + (j * kv_heads + h / group) * head_dim;
    float dot = 0.0f;
    for (int d = 0; d < head_dim; ++d) dot += qv[d] * kv[d];
    scores[idx] = dot * scale;
  }
}

__global__ void score_mod_kernel(float* scores, const int* positions, int n, int kv_len,
                                 int heads, float cap, bool use_cap, int window) {
  PINMARK_GRID_STRIDE(idx, int64_t{heads} * n * kv_len) {
    const int64_t j = idx % kv_len, i = idx / kv_len % n;
    const float s = scores[idx];
    if (s == -INFINITY) continue;
    if (window > 0 && positions[i] - j >= window) {
      scores[idx] = -INFINITY;
      continue;
    }
    if (use_cap) scores[idx] = tanhf(s / cap) * cap;
  }
}

// One block per row.
__global__ void softmax_kernel(float* x, int len) {
  __shared__ float shared[kBlock];
  float* row = x + static_cast<int64_t>(blockIdx.x) * len;
  float max = -INFINITY;
  for (int j = threadIdx.x; j < len; j += kBlock) max = fmaxf(max, row[j]);
  max = block_reduce(max, shared, Max{});
  if (max == -INFINITY) {
    // Fully masked: zeros rather than 0/0 NaNs, as on the CPU.
    for (int j = threadIdx.x; j < len; j += kBlock) row[j] = 0.0f;
    return;
  }
  float sum = 0.0f;
  for (int j = threadIdx.x; j < len; j += kBlock) {
    const float e = row[j] == -INFINITY ? 0.0f : expf(row[j] - max);
    row[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, shared, Sum{});
  for (int j = threadIdx.x; j < len; j += kBlock) row[j] = row[j] / sum;
}

__global__ void attention_values_kernel(const float* probs, const float* v, int n, int kv_len,
                                        int heads, int kv_heads, int head_dim, float* out) {
  const int group = heads / kv_heads;
  PINMARK_GRID_STRIDE(idx, int64_t{n} * heads * head_dim) {
    const int64_t d = idx % head_dim, h = idx / head_dim % heads, i = idx / head_dim / heads;
    const float* p = probs + (h * n + i) * kv_len;
    const float* vc = v + (h / group) * head_dim + d;
    const int64_t v_stride = int64_t{kv_heads} * head_dim;
    float sum = 0.0f;
    for (int j = 0; j < kv_len; ++j) sum += p[j] * vc[j * v_stride];
    out[idx] = sum;
  }
}

__global__ void swiglu_kernel(const float* gate, const float* up, int64_t n, float* out) {
  PINMARK_GRID_STRIDE(i, n) {
    const float g = gate[i];
    out[i] = (g / (1.0f + expf(-g))) * up[i];
  }
}

__global__ void clamped_swiglu_kernel(const float* gate, const float* up, int64_t n, float alpha,
                                      float limit, float* out) {
  PINMARK_GRID_STRIDE(i, n) {
    // Comparisons, not fminf/fmaxf, which would turn a NaN into the limit.
    const float g = limit < gate[i] ? limit : gate[i];
    const float u = up[i] < -limit ? -limit : (limit < up[i] ? limit : up[i]);
    out[i] = (u + 1.0f) * (g / (1.0f + expf(-(alpha * g))));
  }
}

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  PINMARK_GRID_STRIDE(i, n) y[i] = y[i] + x[i];
}

__global__ void softcap_kernel(float* x, int64_t n, float cap) {
  PINMARK_GRID_STRIDE(i, n) x[i] = tanhf(x[i] / cap) * cap;
}

__global__ void scale_kernel(float* x, int64_t n, float s) {
  PINMARK_GRID_STRIDE(i, n) x[i] = x[i] * s;
}

// Written term for term like the CPU reference, so that the rounding steps are the same.
__device__ float gelu_of(float x, bool tanh_approximation) {
  if (tanh_approximation) {
    const float k = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
  }
  return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
}

__global__ void gelu_kernel(const float* x, int64_t n, bool tanh_approximation, float* out) {
  PINMARK_GRID_STRIDE(i, n) out[i] = gelu_of(x[i], tanh_approximation);
}

__global__ void geglu_kernel(const float* gate, const float* up, int64_t n,
                             bool tanh_approximation, float* out) {
  PINMARK_GRID_STRIDE(i, n) out[i] = gelu_of(gate[i], tanh_approximation) * up[i];
}

// One thread per row: expert counts are small, and a sequential scan makes the tie rule (the
// lowest index among equal probabilities) the CPU's exactly.
__global__ void moe_route_kernel(const float* logits, int n, int experts, int top_k,
                                 float* probs, int* ids, float* weights) {
  PINMARK_GRID_STRIDE(r, n) {
    const float* lr = logits + r * experts;
    float* pr = probs + r * experts;
    int* ir = ids + r * top_k;
    float* wr = weights + r * top_k;
    float max = lr[0];
    for (int e = 1; e < experts; ++e)
      if (lr[e] > max) max = lr[e];
    float sum = 0.0f;
    for (int e = 0; e < experts; ++e) {
      pr[e] = expf(lr[e] - max);
      sum += pr[e];
    }
    for (int e = 0; e < experts; ++e) pr[e] = pr[e] / sum;
    float selected = 0.0f;
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

// rows holds no index twice, so no two threads write one element.
__global__ void moe_combine_kernel(float* y, const float* x, const int* rows,
                                   const float* weights, int m, int dim) {
  PINMARK_GRID_STRIDE(idx, int64_t{m} * dim) {
    const int64_t r = idx / dim, d = idx % dim;
    float* dst = y + static_cast<int64_t>(rows[r]) * dim + d;
    *dst = *dst + x[idx] * weights[r];
  }
}

// ---------------------------------------------------------------------------------------------
// Host side

// Device buffers by slot, each kept across calls and grown only when a call needs more, so a
// forward pass reuses a fixed set of allocations instead of allocating per op.
class DeviceArena {
 public:
  DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena() {
    for (Slot& s : slots_)
      if (s.data != nullptr) (void)cudaFree(s.data);
  }

  template <class T>
  T* get(int slot, size_t count) {
    if (static_cast<size_t>(slot) >= slots_.size()) slots_.resize(slot + 1);
    Slot& s = slots_[slot];
    const size_t bytes = std::max<size_t>(count * sizeof(T), 1);
    if (bytes > s.bytes) {
      if (s.data != nullptr) PINMARK_CUDA_CHECK(cudaFree(s.data));
      s.data = nullptr;
      s.bytes = 0;
      PINMARK_CUDA_CHECK(cudaMalloc(&s.data, bytes));
      s.bytes = bytes;
    }
    return static_cast<T*>(s.data);
  }

 private:
  struct Slot {
    void* data = nullptr;
    size_t bytes = 0;
  };
  std::vector<Slot> slots_;
};

class CudaBackend final : public Backend<float> {
 public:
  explicit CudaBackend(CudaPrecision precision) : precision_(precision) {
    if (!cuda_device_available()) throw std::runtime_error("no CUDA device is available");
    PINMARK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    PINMARK_CUDA_CHECK(cublasCreate(&cublas_));
    PINMARK_CUDA_CHECK(cublasSetStream(cublas_, stream_));
    PINMARK_CUDA_CHECK(cudaMalloc(&cublas_workspace_, kCublasWorkspace));
    PINMARK_CUDA_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspace));
    // Accumulate in fp32 throughout: no reduced-precision (fp16 or bf16) partial sums.
    PINMARK_CUDA_CHECK(cublasSetMathMode(
        cublas_, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                           CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    // Split-k through atomics would make the sums' order vary run to run.
    PINMARK_CUDA_CHECK(cublasSetAtomicsMode(cublas_, CUBLAS_ATOMICS_NOT_ALLOWED));
  }

  ~CudaBackend() override {
    // Errors are dropped here: a destructor cannot report them, and a failed call before
    // this one has already thrown.
    for (auto& entry : held_) (void)cudaFree(entry.second.data);
    if (cublas_ != nullptr) (void)cublasDestroy(cublas_);
    if (cublas_workspace_ != nullptr) (void)cudaFree(cublas_workspace_);
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  }

  void embed(const float* table, const int* tokens, int n, int dim, float* out) override {
    if (n <= 0 || dim <= 0) return;
    // The table's size is not passed: copy the rows up to the largest token used.
    int rows = 0;
    for (int i = 0; i < n; ++i) {
      if (tokens[i] < 0) throw std::runtime_error("embed: negative token id");
      rows = std::max(rows, tokens[i] + 1);
    }
    const float* d_table = upload(0, table, int64_t{rows} * dim);
    const int* d_tokens = upload(1, tokens, n);
    float* d_out = arena_.get<float>(2, int64_t{n} * dim);
    embed_kernel<<<grid_for(int64_t{n} * dim), kBlock, 0, stream_>>>(d_table, d_tokens, n, dim,
                                                                      d_out);
    PINMARK_CUDA_CHECK_LAUNCH(embed_kernel);
    download(out, d_out, int64_t{n} * dim);
  }

  // A held weight is uploaded once, in the type cuBLAS reads (fp32, or converted on the
  // device to bf16 or fp16 by the kernel gemm() would run on it each call): the product is
  // the same, without copying the weight for every op.
  void hold_matrix(const float* w, int k, int m) override {
    if (k <= 0 || m <= 0) return;
    release_matrix(w);
    const int64_t count = int64_t{m} * k;
    const size_t element = precision_ == CudaPrecision::bf16   ? sizeof(__nv_bfloat16)
                           : precision_ == CudaPrecision::fp16 ? sizeof(__half)
                                                               : sizeof(float);
    HeldMatrix& held = held_[w];
    held.k = k;
    held.m = m;
    PINMARK_CUDA_CHECK(cudaMalloc(&held.data, count * element));
    if (element == sizeof(float)) {
      PINMARK_CUDA_CHECK(cudaMemcpyAsync(held.data, w, count * sizeof(float),
                                         cudaMemcpyHostToDevice, stream_));
    } else {
      const float* d_w = upload(1, w, count);
      if (precision_ == CudaPrecision::bf16) {
        to_bf16_kernel<<<grid_for(count), kBlock, 0, stream_>>>(
            d_w, count, static_cast<__nv_bfloat16*>(held.data));
        PINMARK_CUDA_CHECK_LAUNCH(to_bf16_kernel);
      } else {
        to_half_kernel<<<grid_for(count), kBlock, 0, stream_>>>(d_w, count,
                                                               static_cast<__half*>(held.data));
        PINMARK_CUDA_CHECK_LAUNCH(to_half_kernel);
      }
    }
    PINMARK_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void release_matrix(const float* w) override {
    const auto it = held_.find(w);
    if (it == held_.end()) return;
    void* data = it->second.data;
    held_.erase(it);
    // Called from the model's destructor, which cannot report an error: a failing device
    // has reported itself in the op that met it.
    (void)cudaFree(data);
  }

  void matmul(const float* x, const float* w, int n, int k, int m, float* y) override {
    if (n <= 0 || m <= 0) return;
    float* d_y = arena_.get<float>(2, int64_t{n} * m);
    gemm(x, w, n, k, m, d_y);
    download(y, d_y, int64_t{n} * m);
  }

  void matmul_bias(const float* x, const float* w, const float* b, int n, int k, int m,
                   float* y) override {
    if (n <= 0 || m <= 0) return;
    float* d_y = arena_.get<float>(2, int64_t{n} * m);
    gemm(x, w, n, k, m, d_y);
    const float* d_b = upload(3, b, m);
    // A separate pass rather than a cuBLAS epilogue: the bias is added to the finished fp32 dot
    // product, one rounding, which is what the interface asks for either way.
    add_bias_kernel<<<grid_for(int64_t{n} * m), kBlock, 0, stream_>>>(d_y, d_b, n, m);
    PINMARK_CUDA_CHECK_LAUNCH(add_bias_kernel);
    download(y, d_y, int64_t{n} * m);
  }

  void rmsnorm(const float* x, const float* w, int n, int dim, double eps, float* y) override {
    norm<false>(x, w, n, dim, eps, y);
  }

  void rmsnorm_plus_one(const float* x, const float* w, int n, int dim, double eps,
                        float* y) override {
    norm<true>(x, w, n, dim, eps, y);
  }

  void layernorm(const float* x, const float* w, const float* b, int n, int dim, double eps,
                 float* y) override {
    if (n <= 0 || dim <= 0) return;
    const float* d_x = upload(0, x, int64_t{n} * dim);
    const float* d_w = upload(1, w, dim);
    const float* d_b = upload(3, b, dim);
    float* d_y = arena_.get<float>(2, int64_t{n} * dim);
    layernorm_kernel<<<n, kBlock, 0, stream_>>>(d_x, d_w, d_b, dim, static_cast<float>(eps), d_y);
    PINMARK_CUDA_CHECK_LAUNCH(layernorm_kernel);
    download(y, d_y, int64_t{n} * dim);
  }

  void rope(float* x, const int* positions, int n, int heads, int head_dim,
            double theta) override {
    const int half = head_dim / 2;
    std::vector<double> inv_freq(half);
    for (int j = 0; j < half; ++j)
      inv_freq[j] =
          1.0 / std::pow(theta, static_cast<double>(2 * j) / static_cast<double>(head_dim));
    rope_freqs(x, positions, n, heads, head_dim, inv_freq.data(), 1.0);
  }

  void rope_freqs(float* x, const int* positions, int n, int heads, int head_dim,
                  const double* inv_freq, double attention_scaling) override {
    const int half = head_dim / 2;
    if (n <= 0 || heads <= 0 || half <= 0) return;
    // Angles, cosines and sines in fp64 on the host, as the CPU reference takes them: the
    // angle grows with the position, and an fp32 angle's rounding would swamp the error
    // being measured. Only the rotation itself runs on the device.
    std::vector<float2> cos_sin(static_cast<size_t>(n) * half);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < half; ++j) {
        const double angle = static_cast<double>(positions[i]) * inv_freq[j];
        cos_sin[static_cast<size_t>(i) * half + j] =
            make_float2(static_cast<float>(std::cos(angle) * attention_scaling),
                        static_cast<float>(std::sin(angle) * attention_scaling));
      }
    const int64_t count = int64_t{n} * heads * head_dim;
    float* d_x = upload(0, x, count);
    const float2* d_cs = upload(1, cos_sin.data(), static_cast<int64_t>(cos_sin.size()));
    rope_kernel<<<grid_for(int64_t{n} * heads * half), kBlock, 0, stream_>>>(d_x, d_cs, n, heads,
                                                                              head_dim);
    PINMARK_CUDA_CHECK_LAUNCH(rope_kernel);
    download(x, d_x, count);
  }

  void attention_scores(const float* q, const float* k, const int* positions, int n, int kv_len,
                        int heads, int kv_heads, int head_dim, double scale,
                        float* scores) override {
    if (n <= 0 || kv_len <= 0 || heads <= 0) return;
    check_heads(heads, kv_heads);
    const float* d_q = upload(0, q, int64_t{n} * heads * head_dim);
    const float* d_k = upload(1, k, int64_t{kv_len} * kv_heads * head_dim);
    const int* d_pos = upload(3, positions, n);
    const int64_t count = int64_t{heads} * n * kv_len;
    float* d_s = arena_.get<float>(2, count);
    attention_scores_kernel<<<grid_for(count), kBlock, 0, stream_>>>(
        d_q, d_k, d_pos, n, kv_len, heads, kv_heads, head_dim, static_cast<float>(scale), d_s);
    PINMARK_CUDA_CHECK_LAUNCH(attention_scores_kernel);
    download(scores, d_s, count);
  }

  void score_mod(float* scores, const int* positions, int n, int kv_len, int heads,
                 double softcap, int window) override {
    if (n <= 0 || kv_len <= 0 || heads <= 0) return;
    const int64_t count = int64_t{heads} * n * kv_len;
    float* d_s = upload(0, scores, count);
    const int* d_pos = upload(1, positions, n);
    score_mod_kernel<<<grid_for(count), kBlock, 0, stream_>>>(
        d_s, d_pos, n, kv_len, heads, static_cast<float>(softcap), softcap > 0, window);
    PINMARK_CUDA_CHECK_LAUNCH(score_mod_kernel);
    download(scores, d_s, count);
  }

  void softmax(float* x, int rows, int len) override {
    if (rows <= 0 || len <= 0) return;
    const int64_t count = int64_t{rows} * len;
    float* d_x = upload(0, x, count);
    softmax_kernel<<<rows, kBlock, 0, stream_>>>(d_x, len);
    PINMARK_CUDA_CHECK_LAUNCH(softmax_kernel);
    download(x, d_x, count);
  }

  void attention_values(const float* probs, const float* v, int n, int kv_len, int heads,
                        int kv_heads, int head_dim, float* out) override {
    if (n <= 0 || heads <= 0 || head_dim <= 0) return;
    check_heads(heads, kv_heads);
    const float* d_p = upload(0, probs, int64_t{heads} * n * kv_len);
    const float* d_v = upload(1, v, int64_t{kv_len} * kv_heads * head_dim);
    const int64_t count = int64_t{n} * heads * head_dim;
    float* d_o = arena_.get<float>(2, count);
    attention_values_kernel<<<grid_for(count), kBlock, 0, stream_>>>(d_p, d_v, n, kv_len, heads,
                                                                     kv_heads, head_dim, d_o);
    PINMARK_CUDA_CHECK_LAUNCH(attention_values_kernel);
    download(out, d_o, count);
  }

  void swiglu(const float* gate, const float* up, int64_t n, float* out) override {
    if (n <= 0) return;
    const float* d_g = upload(0, gate, n);
    const float* d_u = upload(1, up, n);
    float* d_o = arena_.get<float>(2, n);
    swiglu_kernel<<<grid_for(n), kBlock, 0, stream_>>>(d_g, d_u, n, d_o);
    PINMARK_CUDA_CHECK_LAUNCH(swiglu_kernel);
    download(out, d_o, n);
  }

  void clamped_swiglu(const float* gate, const float* up, int64_t n, double alpha, double limit,
                      float* out) override {
    if (n <= 0) return;
    const float* d_g = upload(0, gate, n);
    const float* d_u = upload(1, up, n);
    float* d_o = arena_.get<float>(2, n);
    clamped_swiglu_kernel<<<grid_for(n), kBlock, 0, stream_>>>(
        d_g, d_u, n, static_cast<float>(alpha), static_cast<float>(limit), d_o);
    PINMARK_CUDA_CHECK_LAUNCH(clamped_swiglu_kernel);
    download(out, d_o, n);
  }

  void add(float* y, const float* x, int64_t n) override {
    if (n <= 0) return;
    float* d_y = upload(0, y, n);
    const float* d_x = upload(1, x, n);
    add_kernel<<<grid_for(n), kBlock, 0, stream_>>>(d_y, d_x, n);
    PINMARK_CUDA_CHECK_LAUNCH(add_kernel);
    download(y, d_y, n);
  }

  void softcap(float* x, int64_t n, double cap) override {
    if (n <= 0) return;
    float* d_x = upload(0, x, n);
    softcap_kernel<<<grid_for(n), kBlock, 0, stream_>>>(d_x, n, static_cast<float>(cap));
    PINMARK_CUDA_CHECK_LAUNCH(softcap_kernel);
    download(x, d_x, n);
  }

  void scale(float* x, int64_t n, double scale) override {
    if (n <= 0) return;
    float* d_x = upload(0, x, n);
    scale_kernel<<<grid_for(n), kBlock, 0, stream_>>>(d_x, n, static_cast<float>(scale));
    PINMARK_CUDA_CHECK_LAUNCH(scale_kernel);
    download(x, d_x, n);
  }

  void gelu(const float* x, int64_t n, bool tanh, float* out) override {
    if (n <= 0) return;
    const float* d_x = upload(0, x, n);
    float* d_o = arena_.get<float>(2, n);
    gelu_kernel<<<grid_for(n), kBlock, 0, stream_>>>(d_x, n, tanh, d_o);
    PINMARK_CUDA_CHECK_LAUNCH(gelu_kernel);
    download(out, d_o, n);
  }

  void geglu(const float* gate, const float* up, int64_t n, bool tanh, float* out) override {
    if (n <= 0) return;
    const float* d_g = upload(0, gate, n);
    const float* d_u = upload(1, up, n);
    float* d_o = arena_.get<float>(2, n);
    geglu_kernel<<<grid_for(n), kBlock, 0, stream_>>>(d_g, d_u, n, tanh, d_o);
    PINMARK_CUDA_CHECK_LAUNCH(geglu_kernel);
    download(out, d_o, n);
  }

  void moe_route(const float* logits, int n, int experts, int top_k, float* probs, int* ids,
                 float* weights) override {
    if (n <= 0 || experts <= 0) return;
    if (top_k < 1 || top_k > experts)
      throw std::runtime_error("moe_route: top_k " + std::to_string(top_k) + " for " +
                               std::to_string(experts) + " experts");
    const float* d_l = upload(0, logits, int64_t{n} * experts);
    float* d_p = arena_.get<float>(1, int64_t{n} * experts);
    int* d_ids = arena_.get<int>(2, int64_t{n} * top_k);
    float* d_w = arena_.get<float>(3, int64_t{n} * top_k);
    moe_route_kernel<<<grid_for(n), kBlock, 0, stream_>>>(d_l, n, experts, top_k, d_p, d_ids,
                                                          d_w);
    PINMARK_CUDA_CHECK_LAUNCH(moe_route_kernel);
    copy_back(probs, d_p, int64_t{n} * experts);
    copy_back(ids, d_ids, int64_t{n} * top_k);
    download(weights, d_w, int64_t{n} * top_k);
  }

  void moe_combine(float* y, const float* x, const int* rows, const float* weights, int m,
                   int dim) override {
    if (m <= 0 || dim <= 0) return;
    // y's row count is not passed: copy the rows up to the largest one touched.
    int y_rows = 0;
    for (int r = 0; r < m; ++r) {
      if (rows[r] < 0) throw std::runtime_error("moe_combine: negative row index");
      y_rows = std::max(y_rows, rows[r] + 1);
    }
    float* d_y = upload(0, y, int64_t{y_rows} * dim);
    const float* d_x = upload(1, x, int64_t{m} * dim);
    const int* d_rows = upload(2, rows, m);
    const float* d_w = upload(3, weights, m);
    moe_combine_kernel<<<grid_for(int64_t{m} * dim), kBlock, 0, stream_>>>(d_y, d_x, d_rows, d_w,
                                                                            m, dim);
    PINMARK_CUDA_CHECK_LAUNCH(moe_combine_kernel);
    download(y, d_y, int64_t{y_rows} * dim);
  }

 private:
  template <class T>
  T* upload(int slot, const T* host, int64_t count) {
    T* device = arena_.get<T>(slot, count);
    if (count > 0)
      PINMARK_CUDA_CHECK(
          cudaMemcpyAsync(device, host, count * sizeof(T), cudaMemcpyHostToDevice, stream_));
    return device;
  }

  template <class T>
  void copy_back(T* host, const T* device, int64_t count) {
    if (count > 0)
      PINMARK_CUDA_CHECK(
          cudaMemcpyAsync(host, device, count * sizeof(T), cudaMemcpyDeviceToHost, stream_));
  }

  // The op's last copy: waits for the stream, so a fault in any of its kernels is reported
  // by the op that caused it.
  template <class T>
  void download(T* host, const T* device, int64_t count) {
    copy_back(host, device, count);
    PINMARK_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  static void check_heads(int heads, int kv_heads) {
    if (kv_heads <= 0 || heads % kv_heads != 0)
      throw std::runtime_error("attention: " + std::to_string(heads) +
                               " heads are not a multiple of " + std::to_string(kv_heads) +
                               " kv heads");
  }

  template <bool kPlusOne>
  void norm(const float* x, const float* w, int n, int dim, double eps, float* y) {
    if (n <= 0 || dim <= 0) return;
    const float* d_x = upload(0, x, int64_t{n} * dim);
    const float* d_w = upload(1, w, dim);
    float* d_y = arena_.get<float>(2, int64_t{n} * dim);
    rmsnorm_kernel<kPlusOne>
        <<<n, kBlock, 0, stream_>>>(d_x, d_w, dim, static_cast<float>(eps), d_y);
    PINMARK_CUDA_CHECK_LAUNCH(rmsnorm_kernel);
    download(y, d_y, int64_t{n} * dim);
  }

  // d_y[n, m] = x[n, k] w[m, k]^T. cuBLAS is column-major: row-major y[n, m] is column-major
  // y^T[m, n] = w[m, k] x^T[k, n], where the row-major w[m, k] read column-major is w^T (so
  // transposed back with OP_T) and row-major x[n, k] read column-major is x^T already.
  // Uses slots 0, 1 (operands as given) and 4, 5 (operands converted to 16 bits).
  void gemm(const float* x, const float* w, int n, int k, int m, float* d_y) {
    const float* d_x = upload(0, x, int64_t{n} * k);
    const auto held = held_.find(w);
    const bool is_held = held != held_.end() && held->second.k == k && held->second.m == m;
    const float* d_w = is_held ? nullptr : upload(1, w, int64_t{m} * k);
    const float alpha = 1.0f, beta = 0.0f;
    const void* a = is_held ? held->second.data : d_w;
    const void* b = d_x;
    cudaDataType_t type = CUDA_R_32F;
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F_PEDANTIC;
    switch (precision_) {
      case CudaPrecision::fp32:
        break;
      case CudaPrecision::tf32:
        compute = CUBLAS_COMPUTE_32F_FAST_TF32;
        break;
      case CudaPrecision::bf16: {
        // Exact for the values the rounding backend passes in, which are bf16 already.
        auto* x16 = arena_.get<__nv_bfloat16>(4, int64_t{n} * k);
        to_bf16_kernel<<<grid_for(int64_t{n} * k), kBlock, 0, stream_>>>(d_x, int64_t{n} * k, x16);
        PINMARK_CUDA_CHECK_LAUNCH(to_bf16_kernel);
        if (!is_held) {
          auto* w16 = arena_.get<__nv_bfloat16>(5, int64_t{m} * k);
          to_bf16_kernel<<<grid_for(int64_t{m} * k), kBlock, 0, stream_>>>(d_w, int64_t{m} * k,
                                                                            w16);
          PINMARK_CUDA_CHECK_LAUNCH(to_bf16_kernel);
          a = w16;
        }
        b = x16;
        type = CUDA_R_16BF;
        compute = CUBLAS_COMPUTE_32F;
        break;
      }
      case CudaPrecision::fp16: {
        auto* x16 = arena_.get<__half>(4, int64_t{n} * k);
        to_half_kernel<<<grid_for(int64_t{n} * k), kBlock, 0, stream_>>>(d_x, int64_t{n} * k, x16);
        PINMARK_CUDA_CHECK_LAUNCH(to_half_kernel);
        if (!is_held) {
          auto* w16 = arena_.get<__half>(5, int64_t{m} * k);
          to_half_kernel<<<grid_for(int64_t{m} * k), kBlock, 0, stream_>>>(d_w, int64_t{m} * k,
                                                                           w16);
          PINMARK_CUDA_CHECK_LAUNCH(to_half_kernel);
          a = w16;
        }
        b = x16;
        type = CUDA_R_16F;
        compute = CUBLAS_COMPUTE_32F;
        break;
      }
    }
    PINMARK_CUDA_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, a, type,
                                    k, b, type, k, &beta, d_y, CUDA_R_32F, m, compute,
                                    CUBLAS_GEMM_DEFAULT));
  }

  // A weight the model announced (hold_matrix), on the device in the type gemm() reads.
  struct HeldMatrix {
    int k = 0, m = 0;
    void* data = nullptr;
  };

  CudaPrecision precision_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  DeviceArena arena_;
  std::unordered_map<const float*, HeldMatrix> held_;
};

}  // namespace

std::string cuda_math_mode(CudaPrecision precision) {
  switch (precision) {
    case CudaPrecision::fp32:
      return "cuBLAS GemmEx fp32 operands, CUBLAS_COMPUTE_32F_PEDANTIC";
    case CudaPrecision::tf32:
      return "cuBLAS GemmEx fp32 operands, CUBLAS_COMPUTE_32F_FAST_TF32";
    case CudaPrecision::bf16:
      return "cuBLAS GemmEx bf16 operands, CUBLAS_COMPUTE_32F, no reduced-precision reduction";
    case CudaPrecision::fp16:
      return "cuBLAS GemmEx fp16 operands, CUBLAS_COMPUTE_32F, no reduced-precision reduction";
  }
  return "";
}

std::unique_ptr<Backend<float>> make_cuda_backend(CudaPrecision precision) {
  return std::make_unique<CudaBackend>(precision);
}

}  // namespace pinmark
