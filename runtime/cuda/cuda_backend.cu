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
#include <cuda_pipeline.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_info.h"
#include "runtime/cuda/nccl_api.h"

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

// round_in_place (runtime/dtype.cpp) on the device, the same integer and IEEE operations: the
// bits match the host's for every input, NaN payloads included.
__device__ __forceinline__ float round_bf16_value(float x) {
  const uint32_t b = __float_as_uint(x);
  const uint32_t rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
  const uint32_t nan = (b & 0xFFFF0000u) | 0x00400000u;
  return __uint_as_float((b & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
}

__device__ __forceinline__ float round_fp16_value(float x) {
  const uint32_t b = __float_as_uint(x), sign = b & 0x80000000u, a = b & 0x7FFFFFFFu;
  // Subnormals: (a + 0.5) - 0.5 rounds a to a multiple of 2^-24, ties to even.
  const uint32_t sub = __float_as_uint(__fsub_rn(__fadd_rn(__uint_as_float(a), 0.5f), 0.5f));
  const uint32_t normal = (a + 0xFFFu + ((a >> 13) & 1u)) & 0xFFFFE000u;
  uint32_t r = a < 0x38800000u ? sub : normal;
  r = a >= 0x477FF000u ? 0x7F800000u : r;
  r = a > 0x7F800000u ? 0x7FC00000u : r;
  return __uint_as_float(sign | r);
}

// How a kernel stores its results: as computed, or already rounded to the 16-bit type the
// rounding layer would round them to next (Backend::round_next), which then has nothing to do.
enum class Rounding : int { none, bf16, fp16 };

__device__ __forceinline__ float stored(float x, Rounding rounding) {
  return rounding == Rounding::bf16   ? round_bf16_value(x)
         : rounding == Rounding::fp16 ? round_fp16_value(x)
                                      : x;
}

__global__ void embed_kernel(const float* table, const int* tokens, int n, int dim,
                             Rounding rounding, float* out) {
  PINMARK_GRID_STRIDE(idx, int64_t{n} * dim) {
    const int64_t i = idx / dim, d = idx % dim;
    out[idx] = stored(table[static_cast<int64_t>(tokens[i]) * dim + d], rounding);
  }
}

__global__ void to_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* out) {
  PINMARK_GRID_STRIDE(i, n) out[i] = __float2bfloat16_rn(x[i]);
}

__global__ void to_half_kernel(const float* x, int64_t n, __half* out) {
  PINMARK_GRID_STRIDE(i, n) out[i] = __float2half_rn(x[i]);
}

// x[count] on `stream`, each value rounded to the nearest (ties to even) of a 16-bit type into
// out: bf16 for the bf16 precision, fp16 otherwise.
void to_16bit(CudaPrecision precision, const float* x, int64_t count, void* out,
              cudaStream_t stream) {
  if (count <= 0) return;
  if (precision == CudaPrecision::bf16) {
    to_bf16_kernel<<<grid_for(count), kBlock, 0, stream>>>(x, count,
                                                           static_cast<__nv_bfloat16*>(out));
    PINMARK_CUDA_CHECK_LAUNCH(to_bf16_kernel);
  } else {
    to_half_kernel<<<grid_for(count), kBlock, 0, stream>>>(x, count, static_cast<__half*>(out));
    PINMARK_CUDA_CHECK_LAUNCH(to_half_kernel);
  }
}

__global__ void round_kernel(float* x, int64_t n, Rounding rounding) {
  PINMARK_GRID_STRIDE(i, n) x[i] = stored(x[i], rounding);
}

__global__ void from_bf16_kernel(const __nv_bfloat16* x, int64_t n, float* out) {
  PINMARK_GRID_STRIDE(i, n) out[i] = __bfloat162float(x[i]);
}

__global__ void from_half_kernel(const __half* x, int64_t n, float* out) {
  PINMARK_GRID_STRIDE(i, n) out[i] = __half2float(x[i]);
}

__global__ void add_bias_kernel(float* y, const float* b, int n, int m, Rounding rounding) {
  PINMARK_GRID_STRIDE(idx, int64_t{n} * m) y[idx] = stored(y[idx] + b[idx % m], rounding);
}

// 1 / sqrt(mean(xr^2) + eps) of one row, by the whole block: shared by the RMSNorm kernels so
// that they reduce alike.
__device__ float inverse_rms(const float* xr, int dim, float eps, float* shared) {
  float ss = 0.0f;
  for (int d = threadIdx.x; d < dim; d += kBlock) ss += xr[d] * xr[d];
  ss = block_reduce(ss, shared, Sum{});
  return 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
}

// One block per row; kPlusOne for Gemma's weight stored as an offset from one.
template <bool kPlusOne>
__global__ void rmsnorm_kernel(const float* x, const float* w, int dim, float eps,
                               Rounding rounding, float* y) {
  __shared__ float shared[kBlock];
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * dim;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * dim;
  const float inv = inverse_rms(xr, dim, eps, shared);
  for (int d = threadIdx.x; d < dim; d += kBlock)
    yr[d] = stored((xr[d] * inv) * (kPlusOne ? 1.0f + w[d] : w[d]), rounding);
}

// One block per row. The normalized row is formed as rmsnorm_kernel forms it, then gated.
__global__ void rmsnorm_gated_kernel(const float* x, const float* w, const float* gate, int dim,
                                     float eps, Rounding rounding, float* y) {
  __shared__ float shared[kBlock];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * dim;
  const float inv = inverse_rms(x + row, dim, eps, shared);
  for (int d = threadIdx.x; d < dim; d += kBlock) {
    const float g = gate[row + d];
    y[row + d] = stored(((x[row + d] * inv) * w[d]) * (g / (1.0f + expf(-g))), rounding);
  }
}

__global__ void layernorm_kernel(const float* x, const float* w, const float* b, int dim,
                                 float eps, Rounding rounding, float* y) {
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
  for (int d = threadIdx.x; d < dim; d += kBlock)
    yr[d] = stored(((xr[d] - mean) * inv) * w[d] + b[d], rounding);
}

// cos_sin[i, j] = (cos, sin) of position i's angle for pair j, computed on the host in fp64.
__global__ void rope_kernel(float* x, const float2* cos_sin, int n, int heads, int head_dim,
                            Rounding rounding) {
  const int half = head_dim / 2;
  PINMARK_GRID_STRIDE(idx, int64_t{n} * heads * half) {
    const int64_t j = idx % half, h = idx / half % heads, i = idx / half / heads;
    const float2 cs = cos_sin[i * half + j];
    float* v = x + (i * heads + h) * head_dim;
    const float x1 = v[j], x2 = v[j + half];
    v[j] = stored(x1 * cs.x - x2 * cs.y, rounding);
    v[j + half] = stored(x2 * cs.x + x1 * cs.y, rounding);
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

// attention_scores, a block per query row, KV head and tile of kScoresKeys keys: the tile's keys
// and the query's heads that read them are staged in shared memory (the keys' rows an odd number
// of floats apart, so that the lanes of a warp, one key each, read different banks), and
// each score is one thread's plain loop over head_dim, the bits of attention_scores_kernel's.
// Every query head reads its KV head's keys from global memory there, a group of them each
// once; here a tile is read once for the group, in whole rows. Used where the tile and the
// queries fit in kScoresShared bytes.
constexpr int kScoresKeys = 32;
constexpr size_t kScoresShared = 48 * 1024;

__host__ __device__ int scores_key_stride(int head_dim) {
  return head_dim % 2 == 0 ? head_dim + 1 : head_dim;
}

size_t scores_shared_bytes(int group, int head_dim) {
  return (static_cast<size_t>(kScoresKeys) * scores_key_stride(head_dim) +
          static_cast<size_t>(group) * head_dim) *
         sizeof(float);
}

__global__ void attention_scores_tiled_kernel(const float* q, const float* k, const int* positions,
                                              int n, int kv_len, int heads, int kv_heads,
                                              int head_dim, float scale, float* scores) {
  extern __shared__ float staged[];
  const int group = heads / kv_heads;
  const int stride = scores_key_stride(head_dim);
  float* k_tile = staged;                            // [kScoresKeys][stride]
  float* q_rows = staged + kScoresKeys * stride;     // [group][head_dim]
  const int tiles = (kv_len + kScoresKeys - 1) / kScoresKeys;
  const int64_t block = blockIdx.x;
  const int tile = static_cast<int>(block % tiles);
  const int g = static_cast<int>(block / tiles % kv_heads);
  const int64_t i = block / tiles / kv_heads;
  const int j0 = tile * kScoresKeys;
  const int keys = min(kScoresKeys, kv_len - j0);
  for (int e = threadIdx.x; e < keys * head_dim; e += blockDim.x) {
    const int key = e / head_dim, d = e % head_dim;
    k_tile[key * stride + d] = k[(int64_t{j0 + key} * kv_heads + g) * head_dim + d];
  }
  for (int e = threadIdx.x; e < group * head_dim; e += blockDim.x)
    q_rows[e] = q[(i * heads + int64_t{g} * group) * head_dim + e];
  __syncthreads();
  const int key = threadIdx.x % kScoresKeys;
  if (key >= keys) return;
  const int j = j0 + key;
  const bool masked = j > positions[i];
  for (int h = threadIdx.x / kScoresKeys; h < group; h += blockDim.x / kScoresKeys) {
    float* out = scores + ((int64_t{g} * group + h) * n + i) * kv_len + j;
    if (masked) {
      *out = -INFINITY;
      continue;
    }
    const float* qv = q_rows + h * head_dim;
    const float* kv = k_tile + key * stride;
    float dot = 0.0f;
    for (int d = 0; d < head_dim; ++d) dot += qv[d] * kv[d];
    *out = dot * scale;
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
__global__ void softmax_kernel(float* x, int len, Rounding rounding) {
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
  for (int j = threadIdx.x; j < len; j += kBlock) row[j] = stored(row[j] / sum, rounding);
}

// attention_values, a block per query row, KV head, up to kValuesHeads of the heads that read
// it, and kValuesDims of their dimensions: a warp per head, a lane per dimension. The keys'
// values and probabilities arrive in tiles of kValuesKeys, staged in shared memory
// kValuesStages - 1 tiles ahead by asynchronous copies from all the block's threads, so that
// the loads of a long context overlap the sums. Each output is still one lane's plain loop
// over the keys in order: an fp32 multiply, then an add (--fmad=false, and spelled out), the
// bits of the loop with one thread an output. Before the tiles, that loop read its own values
// from global memory, and a decode step's few outputs left it waiting on memory once every few
// keys: 104 us a layer at 1024 keys on an H200 (docs/performance.md).
constexpr int kValuesKeys = 64;
constexpr int kValuesHeads = 8;
constexpr int kValuesDims = 32;
constexpr int kValuesStages = 4;

// kQuads: the values are copied 16 bytes at a time (head_dim a multiple of 4, v aligned to 16
// bytes), which takes a quarter of the copy instructions; otherwise 4 bytes at a time.
template <bool kQuads>
__global__ void attention_values_kernel(const float* probs, const float* v, int n, int kv_len,
                                        int heads, int kv_heads, int head_dim, int head_blocks,
                                        Rounding rounding, float* out) {
  __shared__ __align__(16) float v_tile[kValuesStages][kValuesKeys][kValuesDims];
  __shared__ __align__(16) float p_tile[kValuesStages][kValuesHeads][kValuesKeys];
  const int group = heads / kv_heads;
  const int64_t row = blockIdx.x;
  const int head_block = static_cast<int>(row % head_blocks);
  const int g = static_cast<int>(row / head_blocks % kv_heads);
  const int64_t i = row / head_blocks / kv_heads;
  const int h0 = g * group + head_block * kValuesHeads;
  const int head_count = min(kValuesHeads, group - head_block * kValuesHeads);
  const int d0 = blockIdx.y * kValuesDims;
  const int dim_count = min(kValuesDims, head_dim - d0);
  const int tiles = (kv_len + kValuesKeys - 1) / kValuesKeys;
  const int64_t v_stride = int64_t{kv_heads} * head_dim;

  // Tile t into stage t % kValuesStages; a group of copies is committed for every t, empty past
  // the last tile, so that the number of groups in flight is the same at every wait.
  const auto issue = [&](int t) {
    if (t < tiles) {
      const int stage = t % kValuesStages, j0 = t * kValuesKeys;
      const int keys = min(kValuesKeys, kv_len - j0);
      constexpr int kWidth = kQuads ? 4 : 1;  // values a copy
      for (int e = threadIdx.x; e < keys * (kValuesDims / kWidth); e += blockDim.x) {
        const int key = e / (kValuesDims / kWidth), d = e % (kValuesDims / kWidth) * kWidth;
        if (d < dim_count)
          __pipeline_memcpy_async(&v_tile[stage][key][d],
                                  v + (j0 + key) * v_stride + int64_t{g} * head_dim + d0 + d,
                                  kWidth * sizeof(float));
      }
      for (int e = threadIdx.x; e < head_count * kValuesKeys; e += blockDim.x) {
        const int h = e / kValuesKeys, key = e % kValuesKeys;
        if (key < keys)
          __pipeline_memcpy_async(&p_tile[stage][h][key],
                                  probs + ((h0 + h) * int64_t{n} + i) * kv_len + j0 + key,
                                  sizeof(float));
      }
    }
    __pipeline_commit();
  };

  const int h = threadIdx.x / kValuesDims, d = threadIdx.x % kValuesDims;
  const bool sums = h < head_count && d < dim_count;
  for (int t = 0; t < kValuesStages - 1; ++t) issue(t);
  float sum = 0.0f;
  for (int t = 0; t < tiles; ++t) {
    __pipeline_wait_prior(kValuesStages - 2);  // tile t has arrived, from this thread's copies
    __syncthreads();  // and from every thread's; the stage tile t - 1 used is free again
    issue(t + kValuesStages - 1);
    if (!sums) continue;
    const int stage = t % kValuesStages;
    const int keys = min(kValuesKeys, kv_len - t * kValuesKeys);
    if (keys < kValuesKeys) {
      for (int key = 0; key < keys; ++key)
        sum = __fadd_rn(sum, __fmul_rn(p_tile[stage][h][key], v_tile[stage][key][d]));
      continue;
    }
    // A whole tile: 16 keys' operands read from shared memory before their terms are added
    // (the probabilities four at a time), so that the adds wait on each other, not on loads.
#pragma unroll
    for (int k0 = 0; k0 < kValuesKeys; k0 += 16) {
      float p[16], x[16];
#pragma unroll
      for (int u = 0; u < 16; u += 4) {
        const float4 p4 = *reinterpret_cast<const float4*>(&p_tile[stage][h][k0 + u]);
        p[u] = p4.x, p[u + 1] = p4.y, p[u + 2] = p4.z, p[u + 3] = p4.w;
      }
#pragma unroll
      for (int u = 0; u < 16; ++u) x[u] = v_tile[stage][k0 + u][d];
#pragma unroll
      for (int u = 0; u < 16; ++u) sum = __fadd_rn(sum, __fmul_rn(p[u], x[u]));
    }
  }
  if (sums) out[(i * heads + h0 + h) * head_dim + d0 + d] = stored(sum, rounding);
}

__global__ void swiglu_kernel(const float* gate, const float* up, int64_t n, Rounding rounding,
                              float* out) {
  PINMARK_GRID_STRIDE(i, n) {
    const float g = gate[i];
    out[i] = stored((g / (1.0f + expf(-g))) * up[i], rounding);
  }
}

__global__ void clamped_swiglu_kernel(const float* gate, const float* up, int64_t n, float alpha,
                                      float limit, Rounding rounding, float* out) {
  PINMARK_GRID_STRIDE(i, n) {
    // Comparisons, not fminf/fmaxf, which would turn a NaN into the limit.
    const float g = limit < gate[i] ? limit : gate[i];
    const float u = up[i] < -limit ? -limit : (limit < up[i] ? limit : up[i]);
    out[i] = stored((u + 1.0f) * (g / (1.0f + expf(-(alpha * g)))), rounding);
  }
}

__global__ void add_kernel(float* y, const float* x, int64_t n, Rounding rounding) {
  PINMARK_GRID_STRIDE(i, n) y[i] = stored(y[i] + x[i], rounding);
}

__global__ void softcap_kernel(float* x, int64_t n, float cap, Rounding rounding) {
  PINMARK_GRID_STRIDE(i, n) x[i] = stored(tanhf(x[i] / cap) * cap, rounding);
}

__global__ void scale_kernel(float* x, int64_t n, float s, Rounding rounding) {
  PINMARK_GRID_STRIDE(i, n) x[i] = stored(x[i] * s, rounding);
}

// Written term for term like the CPU reference, so that the rounding steps are the same.
__device__ float gelu_of(float x, bool tanh_approximation) {
  if (tanh_approximation) {
    const float k = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
  }
  return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
}

__global__ void gelu_kernel(const float* x, int64_t n, bool tanh_approximation,
                            Rounding rounding, float* out) {
  PINMARK_GRID_STRIDE(i, n) out[i] = stored(gelu_of(x[i], tanh_approximation), rounding);
}

__global__ void geglu_kernel(const float* gate, const float* up, int64_t n,
                             bool tanh_approximation, Rounding rounding, float* out) {
  PINMARK_GRID_STRIDE(i, n) out[i] = stored(gelu_of(gate[i], tanh_approximation) * up[i], rounding);
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

__global__ void sigmoid_gate_kernel(const float* x, const float* gate, int64_t n,
                                    Rounding rounding, float* out) {
  PINMARK_GRID_STRIDE(i, n) out[i] = stored(x[i] * (1.0f / (1.0f + expf(-gate[i]))), rounding);
}

// One thread per (query, key): the heads and each head's dot product summed in order, as the CPU
// reference sums them. relu keeps a NaN (it is not below 0).
__global__ void indexer_scores_kernel(const float* q, const float* k, const float* weights,
                                      const int* positions, int n, int kv_len, int heads,
                                      int head_dim, float scale, float weight_scale, float* out) {
  PINMARK_GRID_STRIDE(idx, int64_t{n} * kv_len) {
    const int64_t i = idx / kv_len, j = idx % kv_len;
    if (j > positions[i]) {
      out[idx] = -INFINITY;
      continue;
    }
    const float* key = k + j * head_dim;
    float sum = 0.0f;
    for (int h = 0; h < heads; ++h) {
      const float* query = q + (i * heads + h) * head_dim;
      float dot = 0.0f;
      for (int d = 0; d < head_dim; ++d) dot += query[d] * key[d];
      const float score = dot * scale;
      sum += weights[i * heads + h] * weight_scale * (score < 0.0f ? 0.0f : score);
    }
    out[idx] = sum;
  }
}

// One thread per output value: the input streams summed in order, as the CPU reference sums them.
__global__ void mix_streams_kernel(const float* x, const float* coefs, int n, int in_streams,
                                   int out_streams, int dim, float* y) {
  const int64_t plane = int64_t{n} * dim;
  PINMARK_GRID_STRIDE(idx, out_streams * plane) {
    const int64_t o = idx / plane, t = (idx % plane) / dim, d = idx % dim;
    const float* c = coefs + (t * out_streams + o) * in_streams;
    float sum = 0.0f;
    for (int i = 0; i < in_streams; ++i) sum += c[i] * x[i * plane + t * dim + d];
    y[idx] = sum;
  }
}

__global__ void scale_columns_kernel(const float* x, const float* w, int n, int dim,
                                     Rounding rounding, float* y) {
  PINMARK_GRID_STRIDE(idx, int64_t{n} * dim) y[idx] = stored(x[idx] * w[idx % dim], rounding);
}

// One thread per (window, channel): the channel's softmax over the slots, then the weighted sum
// over the slots in order, as the CPU reference computes it.
__global__ void softmax_pool_kernel(const float* kv, const float* gate, int n, int slots, int dim,
                                    float* out) {
  PINMARK_GRID_STRIDE(idx, int64_t{n} * dim) {
    const int64_t w = idx / dim, d = idx % dim;
    const float* g = gate + w * slots * dim + d;
    const float* v = kv + w * slots * dim + d;
    float max = -INFINITY;
    for (int s = 0; s < slots; ++s) max = fmaxf(max, g[int64_t{s} * dim]);
    float sum = 0.0f;
    for (int s = 0; s < slots; ++s) {
      const float x = g[int64_t{s} * dim];
      if (x != -INFINITY) sum += expf(x - max);
    }
    float pooled = 0.0f;
    for (int s = 0; s < slots; ++s) {
      const float x = g[int64_t{s} * dim];
      const float weight = x == -INFINITY ? 0.0f : expf(x - max) / sum;
      pooled += weight * v[int64_t{s} * dim];
    }
    out[idx] = pooled;
  }
}

// One thread per row for the sums (in order, as the CPU reference sums them), then one per value.
__global__ void rms_ratio_kernel(const float* x, const float* ref, int n, int dim, float floor,
                                 float* target, float* own) {
  PINMARK_GRID_STRIDE(r, n) {
    float sa = 0.0f, sb = 0.0f;
    for (int d = 0; d < dim; ++d) {
      const float a = x[r * dim + d], b = ref[r * dim + d];
      sa += a * a;
      sb += b * b;
    }
    target[r] = sqrtf(sb / static_cast<float>(dim));
    own[r] = sqrtf(fmaxf(sa / static_cast<float>(dim), floor));
  }
}

__global__ void rescale_rows_kernel(const float* x, const float* target, const float* own, int n,
                                    int dim, float* y) {
  PINMARK_GRID_STRIDE(idx, int64_t{n} * dim) {
    const int64_t r = idx / dim;
    y[idx] = x[idx] * target[r] / own[r];
  }
}

__global__ void gaussian_cutoff_kernel(const float* x, int n, int dim, float multiplier,
                                       float* cutoff) {
  PINMARK_GRID_STRIDE(r, n) {
    const float* row = x + r * dim;
    float sum = 0.0f;
    for (int d = 0; d < dim; ++d) sum += row[d];
    const float mean = sum / static_cast<float>(dim);
    float squares = 0.0f;
    for (int d = 0; d < dim; ++d) squares += (row[d] - mean) * (row[d] - mean);
    cutoff[r] = mean + sqrtf(squares / static_cast<float>(dim)) * multiplier;
  }
}

// relu(x - cutoff), a NaN staying NaN.
__global__ void shifted_relu_kernel(float* x, const float* cutoff, int n, int dim) {
  PINMARK_GRID_STRIDE(idx, int64_t{n} * dim) {
    const float v = x[idx] - cutoff[idx / dim];
    x[idx] = v > 0.0f ? v : (v == v ? 0.0f : v);
  }
}

// One thread per (row, channel): the taps summed in order, as the CPU reference sums them.
__global__ void causal_conv1d_silu_kernel(const float* x, const float* w, int n, int channels,
                                          int kernel, float* out) {
  PINMARK_GRID_STRIDE(idx, int64_t{n} * channels) {
    const int64_t i = idx / channels, c = idx % channels;
    float s = 0.0f;
    for (int j = 0; j < kernel; ++j) s += w[c * kernel + j] * x[(i + j) * channels + c];
    out[idx] = s / (1.0f + expf(-s));
  }
}

// One block per value head, the tokens in order. Thread j owns column j of the head's state
// S[k_dim, v_dim] (in global memory), so every sum over k_dim runs in index order on one
// thread, with the CPU reference's operations: no reduction tree, no atomics. Thread 0 forms
// the token's scalars (the norms are sequential sums too); dynamic shared memory holds the
// normalized query and key, 2 * k_dim floats.
__global__ void gated_delta_rule_kernel(const float* qkv, const float* a, const float* b,
                                        const float* A_log, const float* dt_bias, int n,
                                        int k_heads, int v_heads, int k_dim, int v_dim,
                                        float scale, float* state, float* out) {
  extern __shared__ float normalized[];
  float* qn = normalized;
  float* kn = normalized + k_dim;
  __shared__ float q_inv, k_inv, decay, beta;
  const int h = blockIdx.x;
  const int64_t key_dim = int64_t{k_heads} * k_dim;
  const int64_t row = 2 * key_dim + int64_t{v_heads} * v_dim;
  const int group = v_heads / k_heads;
  float* S = state + static_cast<int64_t>(h) * k_dim * v_dim;
  for (int t = 0; t < n; ++t) {
    const float* q = qkv + t * row + static_cast<int64_t>(h / group) * k_dim;
    const float* k = q + key_dim;
    const float* v = qkv + t * row + 2 * key_dim + static_cast<int64_t>(h) * v_dim;
    if (threadIdx.x == 0) {
      float qq = 0.0f, kk = 0.0f;
      for (int i = 0; i < k_dim; ++i) qq += q[i] * q[i];
      for (int i = 0; i < k_dim; ++i) kk += k[i] * k[i];
      q_inv = 1.0f / sqrtf(qq + 1e-6f);
      k_inv = 1.0f / sqrtf(kk + 1e-6f);
      const float x = a[static_cast<int64_t>(t) * v_heads + h] + dt_bias[h];
      // torch's softplus threshold: above 20 it returns x itself.
      const float softplus = x > 20.0f ? x : log1pf(expf(x));
      decay = expf(-expf(A_log[h]) * softplus);
      beta = 1.0f / (1.0f + expf(-b[static_cast<int64_t>(t) * v_heads + h]));
    }
    __syncthreads();
    for (int i = threadIdx.x; i < k_dim; i += blockDim.x) {
      qn[i] = q[i] * q_inv * scale;
      kn[i] = k[i] * k_inv;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < v_dim; j += blockDim.x) {
      float memory = 0.0f;
      for (int i = 0; i < k_dim; ++i) {
        float& s = S[static_cast<int64_t>(i) * v_dim + j];
        s = s * decay;
        memory += s * kn[i];
      }
      const float delta = (v[j] - memory) * beta;
      float sum = 0.0f;
      for (int i = 0; i < k_dim; ++i) {
        float& s = S[static_cast<int64_t>(i) * v_dim + j];
        s = s + kn[i] * delta;
        sum += s * qn[i];
      }
      out[(static_cast<int64_t>(t) * v_heads + h) * v_dim + j] = sum;
    }
    __syncthreads();  // before the next token overwrites the shared values
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

// A page-locked host buffer, handed out front to back in pieces that start on 256-byte
// boundaries, for copies that must not wait for the stream (a copy from pageable memory waits).
// When a piece no longer fits, its owner waits for the copies through the earlier ones and
// starts again from the front (reset). Without page-locked memory it hands out nothing.
class StagingRing {
 public:
  explicit StagingRing(size_t bytes) {
    if (bytes == 0) return;
    if (cudaHostAlloc(&data_, bytes, cudaHostAllocDefault) != cudaSuccess) {
      (void)cudaGetLastError();
      data_ = nullptr;
      return;
    }
    size_ = bytes;
  }
  StagingRing(const StagingRing&) = delete;
  StagingRing& operator=(const StagingRing&) = delete;
  // Its owner has waited for the copies through it first.
  ~StagingRing() {
    if (data_ != nullptr) (void)cudaFreeHost(data_);
  }

  bool available() const { return data_ != nullptr; }
  size_t size() const { return size_; }
  // Room for `bytes` after the pieces handed out since the last reset, or null.
  char* take(size_t bytes) {
    const size_t at = (used_ + 255) & ~size_t{255};
    if (data_ == nullptr || at + bytes > size_) return nullptr;
    used_ = at + bytes;
    return static_cast<char*>(data_) + at;
  }
  void reset() { used_ = 0; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  size_t used_ = 0;
};

// One GPU's resources: a stream, a cuBLAS handle that accumulates in fp32 without atomics and
// with a fixed workspace, and buffers. A backend runs its ops on the first; a tensor-parallel
// backend has one per rank and runs matrix products on all of them.
class Device {
 public:
  explicit Device(int ordinal) : ordinal_(ordinal), stage_(kStageBytes) {
    select();
    PINMARK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    PINMARK_CUDA_CHECK(cublasCreate(&cublas));
    PINMARK_CUDA_CHECK(cublasSetStream(cublas, stream));
    PINMARK_CUDA_CHECK(cudaMalloc(&workspace_, kCublasWorkspace));
    PINMARK_CUDA_CHECK(cublasSetWorkspace(cublas, workspace_, kCublasWorkspace));
    // Accumulate in fp32 throughout: no reduced-precision (fp16 or bf16) partial sums.
    PINMARK_CUDA_CHECK(cublasSetMathMode(
        cublas, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                          CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    // Split-k through atomics would make the sums' order vary run to run.
    PINMARK_CUDA_CHECK(cublasSetAtomicsMode(cublas, CUBLAS_ATOMICS_NOT_ALLOWED));
  }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device() {
    // Errors are dropped here: a destructor cannot report them, and a failed call before
    // this one has already thrown.
    (void)cudaSetDevice(ordinal_);
    if (cublas != nullptr) (void)cublasDestroy(cublas);
    if (workspace_ != nullptr) (void)cudaFree(workspace_);
    // The staging ring goes after this: no copy through it is left in flight.
    if (stream != nullptr) (void)cudaStreamSynchronize(stream);
    if (stream != nullptr) (void)cudaStreamDestroy(stream);
  }

  // Makes this the current device: allocations, kernels and cuBLAS calls go to the current one.
  void select() const { PINMARK_CUDA_CHECK(cudaSetDevice(ordinal_)); }

  // Copies `bytes` from host memory to dst on this stream, in order with its kernels. A copy
  // from pageable memory first waits for the stream, which would stall every op that uploads a
  // norm weight or the positions; a small copy goes through a page-locked ring instead and
  // returns at once. The ring is reused only after the stream has drained.
  void copy_to_device(void* dst, const void* src, size_t bytes) {
    if (bytes == 0) return;
    if (stage_.available() && bytes <= kStageBytes / 4) {
      char* staged = stage_.take(bytes);
      if (staged == nullptr) {
        PINMARK_CUDA_CHECK(cudaStreamSynchronize(stream));
        stage_.reset();
        staged = stage_.take(bytes);
      }
      std::memcpy(staged, src, bytes);
      PINMARK_CUDA_CHECK(cudaMemcpyAsync(dst, staged, bytes, cudaMemcpyHostToDevice, stream));
      return;
    }
    PINMARK_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
  }

  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  DeviceArena arena;

 private:
  static constexpr size_t kStageBytes = size_t{8} << 20;
  int ordinal_;
  void* workspace_ = nullptr;
  // Without page-locked memory every copy goes from the host's own (copy_to_device).
  StagingRing stage_;
};

class CudaBackend final : public Backend<float> {
 public:
  // ranks 1: every op on device 0. ranks 2: tensor parallelism, the held matrices' products
  // split over devices 0 and 1 by their role (MatrixRole) and output projections' partial sums
  // added by an NCCL all-reduce; every other op on device 0.
  // A tensor-parallel backend holds no activations, so its write_cache takes the default path
  // and needs no download ring.
  CudaBackend(CudaPrecision precision, int ranks)
      : precision_(precision),
        main_(first_device()),
        download_stage_(ranks == 1 ? kDownloadStageBytes : 0) {
    if (ranks == 1) return;
#ifdef PINMARK_HAVE_NCCL_HEADERS
    if (ranks != 2)
      throw std::runtime_error("tensor parallelism over " + std::to_string(ranks) +
                               " GPUs: only 2 are supported");
    const std::string why = cuda_tp_unavailable(ranks);
    if (!why.empty()) throw std::runtime_error(why);
    std::string unused;
    nccl_ = nccl_api(unused);
    peer_ = std::make_unique<Device>(1);
    // NVLink SHARP (multicast) reductions stay off unless asked for: they reduce in the
    // switch. A sum of two partials is the same in every other algorithm and protocol (one
    // addition, and addition commutes), so nothing else needs pinning.
    ::setenv("NCCL_NVLS_ENABLE", "0", 0);
    const int devices[2] = {0, 1};
    nccl_check(*nccl_, nccl_->comm_init_all(comms_, 2, devices), "ncclCommInitAll");
    main_.select();
#else
    throw std::runtime_error("pinmark's CUDA module was built without NCCL's headers (nccl.h): "
                             "no tensor parallelism");
#endif
  }

  ~CudaBackend() override {
    // Staged cache writes are dropped: every cache was released (and so brought up to date)
    // before its memory went, or the device failed. None is in flight when the ring goes.
    (void)cudaStreamSynchronize(main_.stream);
    for (auto& entry : held_) free_held(entry.second);
    for (auto& entry : mirrors_) (void)cudaFree(entry.second.data);
    for (auto& entry : resident_) (void)cudaFree(entry.second.data);
    for (auto& entry : spare_) (void)cudaFree(entry.second);
#ifdef PINMARK_HAVE_NCCL_HEADERS
    if (peer_)
      for (ncclComm_t comm : comms_)
        if (comm != nullptr) (void)nccl_->comm_destroy(comm);
#endif
  }

  void embed(const float* table, const int* tokens, int n, int dim, float* out) override {
    if (n <= 0 || dim <= 0) return;
    // The table's size is not passed. What crosses is the smaller of the rows up to the
    // largest token and the tokens' own rows (a decode step needs one); the device gathers
    // from either as it would from the whole table.
    int rows = 0;
    for (int i = 0; i < n; ++i) {
      if (tokens[i] < 0) throw std::runtime_error("embed: negative token id");
      rows = std::max(rows, tokens[i] + 1);
    }
    std::vector<float> used;
    std::vector<int> index;
    if (n < rows) {
      used.resize(int64_t{n} * dim);
      index.resize(n);
      for (int i = 0; i < n; ++i) {
        std::copy(table + int64_t{tokens[i]} * dim, table + (int64_t{tokens[i]} + 1) * dim,
                  used.begin() + int64_t{i} * dim);
        index[i] = i;
      }
    }
    const float* d_table = used.empty() ? upload(0, table, int64_t{rows} * dim)
                                        : upload(0, used.data(), int64_t{n} * dim);
    const int* d_tokens = upload(1, index.empty() ? tokens : index.data(), n);
    float* d_out = output(2, out, int64_t{n} * dim, {});
    const Rounding rounding = take_rounding(out, int64_t{n} * dim);
    embed_kernel<<<grid_for(int64_t{n} * dim), kBlock, 0, main_.stream>>>(d_table, d_tokens, n, dim,
                                                                      rounding, d_out);
    PINMARK_CUDA_CHECK_LAUNCH(embed_kernel);
    download(out, d_out, int64_t{n} * dim);
  }

  // A held weight is uploaded once, in the type cuBLAS reads (fp32, or converted on the
  // device to bf16 or fp16 by the kernel gemm() would run on it each call): the product is
  // the same, without copying the weight for every op. With two ranks each device holds its
  // share: rows [0, split) and [split, m) of an input projection, columns [0, split) and
  // [split, k) of an output projection.
  void hold_matrix(const float* w, int k, int m, MatrixRole role) override {
    if (k <= 0 || m <= 0) return;
    release_matrix(w);
    HeldMatrix& held = held_[w];
    held.k = k;
    held.m = m;
    held.role = role;
    // A matrix with one row (a one-expert router) or, as an output projection, one column has
    // no halves: it stays whole on device 0.
    const int parts = role == MatrixRole::input_projection ? m : k;
    if (!peer_ || parts < 2) {
      held.data = upload_weight(main_, w, int64_t{m} * k);
      main_.select();
      return;
    }
    if (role == MatrixRole::input_projection) {
      held.split = (m + 1) / 2;
      held.data = upload_weight(main_, w, int64_t{held.split} * k);
      held.peer_data = upload_weight(*peer_, w + int64_t{held.split} * k,
                                     int64_t{m - held.split} * k);
    } else {
      held.split = (k + 1) / 2;
      held.data = upload_weight(main_, columns(w, m, k, 0, held.split).data(),
                                int64_t{m} * held.split);
      held.peer_data = upload_weight(*peer_, columns(w, m, k, held.split, k).data(),
                                     int64_t{m} * (k - held.split));
    }
    main_.select();
  }

  void release_matrix(const float* w) override {
    const auto it = held_.find(w);
    if (it == held_.end()) return;
    HeldMatrix held = it->second;
    held_.erase(it);
    free_held(held);
  }

  // An announced KV cache array is mirrored on device 0, in fp32 as the attention kernels
  // read it: each write is uploaded once, and attention reads the mirror, so a decode step
  // uploads one position's keys and values rather than the whole cache.
  void cache_written(const float* cache, int64_t capacity, int64_t first,
                     int64_t count) override {
    flush_cache_writes();
    if (count <= 0) return;
    CacheMirror* mirror = mirror_for(cache, capacity, first, count);
    if (mirror == nullptr) return;
    // Invalidated first: if the copy fails, nothing of the mirror past `first` is trusted.
    mirror->valid = first;
    // The host array may change once this returns, and may: copy_to_device has taken the
    // values by then (into its page-locked ring, or, from pageable memory, CUDA's own staging).
    main_.copy_to_device(mirror->data + first, cache + first, count * sizeof(float));
    mirror->valid = first + count;
  }

  // Keys and values still on the device go from there into the cache's mirror, and to the
  // host's cache through a page-locked buffer whose values reach it at the backend's next
  // to_host, cache_written or release_cache (flush_cache_writes): a decode step does not wait
  // at every layer to bring k and v up first.
  void write_cache(float* cache, int64_t capacity, int64_t first, const float* src,
                   int64_t count) override {
    Resident* r = count > 0 ? resident(src, count) : nullptr;
    // A src the host holds current goes from there, as the default copies it.
    CacheMirror* mirror =
        r != nullptr && r->device_valid && !r->host_valid && download_stage_.available()
            ? mirror_for(cache, capacity, first, count)
            : nullptr;
    if (mirror == nullptr) return Backend<float>::write_cache(cache, capacity, first, src, count);
    const float* d_src = r->data + (src - r->host);
    const size_t bytes = count * sizeof(float);
    // Invalidated first, and valid again only once both copies are on their way: if one fails,
    // neither the mirror nor the host claims the new values.
    mirror->valid = first;
    pending_cache_writes_.reserve(pending_cache_writes_.size() + 1);
    PINMARK_CUDA_CHECK(cudaMemcpyAsync(mirror->data + first, d_src, bytes,
                                       cudaMemcpyDeviceToDevice, main_.stream));
    if (bytes > download_stage_.size()) {
      flush_cache_writes();
      PINMARK_CUDA_CHECK(cudaMemcpyAsync(cache + first, d_src, bytes, cudaMemcpyDeviceToHost,
                                         main_.stream));
      PINMARK_CUDA_CHECK(cudaStreamSynchronize(main_.stream));
    } else {
      char* staged = download_stage_.take(bytes);
      if (staged == nullptr) {
        flush_cache_writes();
        staged = download_stage_.take(bytes);
      }
      PINMARK_CUDA_CHECK(
          cudaMemcpyAsync(staged, d_src, bytes, cudaMemcpyDeviceToHost, main_.stream));
      pending_cache_writes_.push_back({cache + first, staged, bytes});
    }
    mirror->valid = first + count;
  }

  void release_cache(const float* cache) override {
    // Errors are dropped: this is called from destructors, and a failing device has
    // reported itself in the op that met it.
    try {
      flush_cache_writes();
    } catch (const std::exception&) {
    }
    const auto it = mirrors_.find(cache);
    if (it == mirrors_.end()) return;
    (void)cudaFree(it->second.data);
    mirrors_.erase(it);
  }

  // A held activation array lives on device 0 as well: ops read it there and write their
  // results there (upload() and download() below), and it crosses only when the model reads or
  // writes it on the host. Not with two ranks: their products move activations between
  // devices through the host.
  void hold_activations(const float* a, int64_t count) override {
    if (peer_ || count <= 0) return;
    release_activations(a);
    main_.select();
    int64_t capacity = 0;
    float* data = take_spare(count, capacity);
    if (data == nullptr) {
      // Room to grow: a decode step's scores are a few values longer than the last step's.
      capacity = count + count / 4 + 256;
      if (cudaMalloc(&data, buffer_bytes(capacity)) != cudaSuccess) {
        // Without the room the array stays on the host, as an unannounced one.
        (void)cudaGetLastError();
        return;
      }
    }
    try {
      Resident r{a, data, count, capacity};
      r.narrow = narrow_part(data, capacity);
      resident_[a] = r;
    } catch (...) {
      (void)cudaFree(data);
      throw;
    }
  }

  void release_activations(const float* a) override {
    const auto it = resident_.find(a);
    if (it == resident_.end()) return;
    give_spare(it->second.data, it->second.capacity);
    resident_.erase(it);
  }

  void to_host(const float* a, int64_t first, int64_t count) override {
    flush_cache_writes();
    Resident* r = resident(a + first, count);
    if (r == nullptr || r->host_valid || count <= 0) return;
    PINMARK_CUDA_CHECK(cudaMemcpyAsync(const_cast<float*>(a) + first, r->data + (a + first - r->host),
                                       count * sizeof(float), cudaMemcpyDeviceToHost,
                                       main_.stream));
    PINMARK_CUDA_CHECK(cudaStreamSynchronize(main_.stream));
    if (first == 0 && count == r->count) r->host_valid = true;
  }

  void from_host(const float* a, int64_t first, int64_t count) override {
    Resident* r = resident(a + first, count);
    if (r == nullptr || !r->device_valid || count <= 0) return;
    main_.copy_to_device(r->data + (a + first - r->host), a + first, count * sizeof(float));
    r->narrow_valid = false;
  }

  // Kept until the next op takes it (take_rounding).
  void round_next(const float* values, int64_t n, DType storage) override {
    next_rounding_ = {values, n, rounding_of(storage)};
    rounded_ = {};
  }

  void round_stored(float* values, int64_t n, DType storage) override {
    const Announced done = rounded_;
    rounded_ = {};
    next_rounding_ = {};
    // The op before rounded these values as its kernel stored them.
    if (done.rounding != Rounding::none && done.rounding == rounding_of(storage) &&
        done.values == values && done.count == n)
      return;
    Resident* r = resident(values, n);
    if (r == nullptr || !r->device_valid || n <= 0 || rounding_of(storage) == Rounding::none)
      return Backend<float>::round_stored(values, n, storage);
    float* d = r->data + (values - r->host);
    round_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(d, n, rounding_of(storage));
    PINMARK_CUDA_CHECK_LAUNCH(round_kernel);
    device_written(*r);
  }

  void matmul(const float* x, const float* w, int n, int k, int m, float* y) override {
    if (n <= 0 || m <= 0) return;
    if (const HeldMatrix* split = split_held(w, k, m)) return split_product(x, *split, nullptr, n, y);
    float* d_y = output(2, y, int64_t{n} * m, {{x, int64_t{n} * k}});
    gemm(x, w, n, k, m, d_y);
    download(y, d_y, int64_t{n} * m);
  }

  void matmul_bias(const float* x, const float* w, const float* b, int n, int k, int m,
                   float* y) override {
    if (n <= 0 || m <= 0) return;
    if (const HeldMatrix* split = split_held(w, k, m)) return split_product(x, *split, b, n, y);
    float* d_y = output(2, y, int64_t{n} * m, {{x, int64_t{n} * k}, {b, m}});
    gemm(x, w, n, k, m, d_y);
    const float* d_b = upload(3, b, m);
    const Rounding rounding = take_rounding(y, int64_t{n} * m);
    // A separate pass rather than a cuBLAS epilogue: the bias is added to the finished fp32 dot
    // product, one rounding, which is what the interface asks for either way.
    add_bias_kernel<<<grid_for(int64_t{n} * m), kBlock, 0, main_.stream>>>(d_y, d_b, n, m,
                                                                           rounding);
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
    float* d_y = main_.arena.get<float>(2, int64_t{n} * dim);
    const Rounding rounding = take_rounding(y, int64_t{n} * dim);
    layernorm_kernel<<<n, kBlock, 0, main_.stream>>>(d_x, d_w, d_b, dim, static_cast<float>(eps),
                                                     rounding, d_y);
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
    // An odd head_dim leaves each head's last value as it was: rounded by round_stored, then.
    const Rounding rounding = head_dim % 2 == 0 ? take_rounding(x, count) : Rounding::none;
    rope_kernel<<<grid_for(int64_t{n} * heads * half), kBlock, 0, main_.stream>>>(
        d_x, d_cs, n, heads, head_dim, rounding);
    PINMARK_CUDA_CHECK_LAUNCH(rope_kernel);
    download(x, d_x, count);
  }

  void attention_scores(const float* q, const float* k, const int* positions, int n, int kv_len,
                        int heads, int kv_heads, int head_dim, double scale,
                        float* scores) override {
    if (n <= 0 || kv_len <= 0 || heads <= 0) return;
    check_heads(heads, kv_heads);
    const float* d_q = upload(0, q, int64_t{n} * heads * head_dim);
    const float* d_k = cached_or_upload(1, k, int64_t{kv_len} * kv_heads * head_dim);
    const int* d_pos = upload(3, positions, n);
    const int64_t count = int64_t{heads} * n * kv_len;
    float* d_s = output(2, scores, count,
                        {{q, int64_t{n} * heads * head_dim}, {k, int64_t{kv_len} * kv_heads * head_dim}});
    const int group = heads / kv_heads;
    const size_t shared = scores_shared_bytes(group, head_dim);
    const int64_t blocks =
        int64_t{n} * kv_heads * ((int64_t{kv_len} + kScoresKeys - 1) / kScoresKeys);
    if (shared <= kScoresShared && blocks <= std::numeric_limits<int>::max()) {
      attention_scores_tiled_kernel<<<static_cast<unsigned>(blocks), kBlock, shared,
                                      main_.stream>>>(d_q, d_k, d_pos, n, kv_len, heads, kv_heads,
                                                      head_dim, static_cast<float>(scale), d_s);
      PINMARK_CUDA_CHECK_LAUNCH(attention_scores_tiled_kernel);
    } else {
      attention_scores_kernel<<<grid_for(count), kBlock, 0, main_.stream>>>(
          d_q, d_k, d_pos, n, kv_len, heads, kv_heads, head_dim, static_cast<float>(scale), d_s);
      PINMARK_CUDA_CHECK_LAUNCH(attention_scores_kernel);
    }
    download(scores, d_s, count);
  }

  void score_mod(float* scores, const int* positions, int n, int kv_len, int heads,
                 double softcap, int window) override {
    if (n <= 0 || kv_len <= 0 || heads <= 0) return;
    const int64_t count = int64_t{heads} * n * kv_len;
    float* d_s = upload(0, scores, count);
    const int* d_pos = upload(1, positions, n);
    score_mod_kernel<<<grid_for(count), kBlock, 0, main_.stream>>>(
        d_s, d_pos, n, kv_len, heads, static_cast<float>(softcap), softcap > 0, window);
    PINMARK_CUDA_CHECK_LAUNCH(score_mod_kernel);
    download(scores, d_s, count);
  }

  void softmax(float* x, int rows, int len) override {
    if (rows <= 0 || len <= 0) return;
    const int64_t count = int64_t{rows} * len;
    float* d_x = upload(0, x, count);
    const Rounding rounding = take_rounding(x, count);
    softmax_kernel<<<rows, kBlock, 0, main_.stream>>>(d_x, len, rounding);
    PINMARK_CUDA_CHECK_LAUNCH(softmax_kernel);
    download(x, d_x, count);
  }

  void attention_values(const float* probs, const float* v, int n, int kv_len, int heads,
                        int kv_heads, int head_dim, float* out) override {
    if (n <= 0 || heads <= 0 || head_dim <= 0) return;
    check_heads(heads, kv_heads);
    const float* d_p = upload(0, probs, int64_t{heads} * n * kv_len);
    const float* d_v = cached_or_upload(1, v, int64_t{kv_len} * kv_heads * head_dim);
    const int64_t count = int64_t{n} * heads * head_dim;
    float* d_o = output(2, out, count,
                        {{probs, int64_t{heads} * n * kv_len}, {v, int64_t{kv_len} * kv_heads * head_dim}});
    const int group = heads / kv_heads;
    const int head_blocks = (group + kValuesHeads - 1) / kValuesHeads;
    const int64_t rows = int64_t{n} * kv_heads * head_blocks;
    if (rows > std::numeric_limits<int>::max())
      throw std::runtime_error("attention_values: " + std::to_string(rows) +
                               " blocks of queries and heads, more than a CUDA grid holds");
    const dim3 grid(static_cast<unsigned>(rows), (head_dim + kValuesDims - 1) / kValuesDims);
    // Eight warps a block whatever the group: those past its heads only copy.
    const int threads = kValuesHeads * kValuesDims;
    const Rounding rounding = take_rounding(out, count);
    if (head_dim % 4 == 0 && reinterpret_cast<uintptr_t>(d_v) % 16 == 0)
      attention_values_kernel<true><<<grid, threads, 0, main_.stream>>>(
          d_p, d_v, n, kv_len, heads, kv_heads, head_dim, head_blocks, rounding, d_o);
    else
      attention_values_kernel<false><<<grid, threads, 0, main_.stream>>>(
          d_p, d_v, n, kv_len, heads, kv_heads, head_dim, head_blocks, rounding, d_o);
    PINMARK_CUDA_CHECK_LAUNCH(attention_values_kernel);
    download(out, d_o, count);
  }

  void swiglu(const float* gate, const float* up, int64_t n, float* out) override {
    if (n <= 0) return;
    const float* d_g = upload(0, gate, n);
    const float* d_u = upload(1, up, n);
    float* d_o = output(2, out, n, {{gate, n}, {up, n}});
    const Rounding rounding = take_rounding(out, n);
    swiglu_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(d_g, d_u, n, rounding, d_o);
    PINMARK_CUDA_CHECK_LAUNCH(swiglu_kernel);
    download(out, d_o, n);
  }

  void clamped_swiglu(const float* gate, const float* up, int64_t n, double alpha, double limit,
                      float* out) override {
    if (n <= 0) return;
    const float* d_g = upload(0, gate, n);
    const float* d_u = upload(1, up, n);
    float* d_o = main_.arena.get<float>(2, n);
    const Rounding rounding = take_rounding(out, n);
    clamped_swiglu_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(
        d_g, d_u, n, static_cast<float>(alpha), static_cast<float>(limit), rounding, d_o);
    PINMARK_CUDA_CHECK_LAUNCH(clamped_swiglu_kernel);
    download(out, d_o, n);
  }

  void add(float* y, const float* x, int64_t n) override {
    if (n <= 0) return;
    float* d_y = upload(0, y, n);
    const float* d_x = upload(1, x, n);
    const Rounding rounding = take_rounding(y, n);
    add_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(d_y, d_x, n, rounding);
    PINMARK_CUDA_CHECK_LAUNCH(add_kernel);
    download(y, d_y, n);
  }

  void softcap(float* x, int64_t n, double cap) override {
    if (n <= 0) return;
    float* d_x = upload(0, x, n);
    const Rounding rounding = take_rounding(x, n);
    softcap_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(d_x, n, static_cast<float>(cap),
                                                             rounding);
    PINMARK_CUDA_CHECK_LAUNCH(softcap_kernel);
    download(x, d_x, n);
  }

  void scale(float* x, int64_t n, double scale) override {
    if (n <= 0) return;
    float* d_x = upload(0, x, n);
    const Rounding rounding = take_rounding(x, n);
    scale_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(d_x, n, static_cast<float>(scale),
                                                           rounding);
    PINMARK_CUDA_CHECK_LAUNCH(scale_kernel);
    download(x, d_x, n);
  }

  void gelu(const float* x, int64_t n, bool tanh, float* out) override {
    if (n <= 0) return;
    const float* d_x = upload(0, x, n);
    float* d_o = output(2, out, n, {{x, n}});
    const Rounding rounding = take_rounding(out, n);
    gelu_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(d_x, n, tanh, rounding, d_o);
    PINMARK_CUDA_CHECK_LAUNCH(gelu_kernel);
    download(out, d_o, n);
  }

  void geglu(const float* gate, const float* up, int64_t n, bool tanh, float* out) override {
    if (n <= 0) return;
    const float* d_g = upload(0, gate, n);
    const float* d_u = upload(1, up, n);
    float* d_o = output(2, out, n, {{gate, n}, {up, n}});
    const Rounding rounding = take_rounding(out, n);
    geglu_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(d_g, d_u, n, tanh, rounding, d_o);
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
    float* d_p = main_.arena.get<float>(1, int64_t{n} * experts);
    int* d_ids = main_.arena.get<int>(2, int64_t{n} * top_k);
    float* d_w = main_.arena.get<float>(3, int64_t{n} * top_k);
    moe_route_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(d_l, n, experts, top_k, d_p, d_ids,
                                                          d_w);
    PINMARK_CUDA_CHECK_LAUNCH(moe_route_kernel);
    deliver(probs, d_p, int64_t{n} * experts);
    deliver(ids, d_ids, int64_t{n} * top_k);
    download(weights, d_w, int64_t{n} * top_k);
  }

  void causal_conv1d_silu(const float* x, const float* w, int n, int channels, int kernel,
                          float* out) override {
    if (n <= 0 || channels <= 0) return;
    const float* d_x = upload(0, x, (int64_t{n} + kernel - 1) * channels);
    const float* d_w = upload(1, w, int64_t{channels} * kernel);
    const int64_t count = int64_t{n} * channels;
    float* d_o = main_.arena.get<float>(2, count);
    causal_conv1d_silu_kernel<<<grid_for(count), kBlock, 0, main_.stream>>>(d_x, d_w, n, channels,
                                                                           kernel, d_o);
    PINMARK_CUDA_CHECK_LAUNCH(causal_conv1d_silu_kernel);
    download(out, d_o, count);
  }

  // The state goes up and comes back in fp32 whatever the precision: the rounding backend
  // rounds `out` alone.
  void gated_delta_rule(const float* qkv, const float* a, const float* b, const float* A_log,
                        const float* dt_bias, const GatedDeltaParams& p, float* state,
                        float* out) override {
    if (p.n <= 0 || p.v_heads <= 0 || p.v_dim <= 0) return;
    if (p.k_heads <= 0 || p.v_heads % p.k_heads != 0)
      throw std::runtime_error("gated_delta_rule: " + std::to_string(p.v_heads) +
                               " value heads are not a multiple of " +
                               std::to_string(p.k_heads) + " key heads");
    const int64_t row = 2 * int64_t{p.k_heads} * p.k_dim + int64_t{p.v_heads} * p.v_dim;
    const int64_t state_count = int64_t{p.v_heads} * p.k_dim * p.v_dim;
    const int64_t out_count = int64_t{p.n} * p.v_heads * p.v_dim;
    const float* d_qkv = upload(0, qkv, int64_t{p.n} * row);
    const float* d_a = upload(1, a, int64_t{p.n} * p.v_heads);
    const float* d_b = upload(3, b, int64_t{p.n} * p.v_heads);
    const float* d_A = upload(4, A_log, p.v_heads);
    const float* d_dt = upload(5, dt_bias, p.v_heads);
    float* d_state = upload(6, state, state_count);
    float* d_o = main_.arena.get<float>(2, out_count);
    // Formed in fp32 as the CPU reference forms it.
    const float scale = 1.0f / std::sqrt(static_cast<float>(p.k_dim));
    const size_t shared = 2 * static_cast<size_t>(std::max(p.k_dim, 0)) * sizeof(float);
    gated_delta_rule_kernel<<<p.v_heads, kBlock, shared, main_.stream>>>(
        d_qkv, d_a, d_b, d_A, d_dt, p.n, p.k_heads, p.v_heads, p.k_dim, p.v_dim, scale, d_state,
        d_o);
    PINMARK_CUDA_CHECK_LAUNCH(gated_delta_rule_kernel);
    deliver(state, d_state, state_count);
    download(out, d_o, out_count);
  }

  void rmsnorm_gated(const float* x, const float* w, const float* gate, int n, int dim,
                     double eps, float* y) override {
    if (n <= 0 || dim <= 0) return;
    const float* d_x = upload(0, x, int64_t{n} * dim);
    const float* d_w = upload(1, w, dim);
    const float* d_g = upload(3, gate, int64_t{n} * dim);
    float* d_y = main_.arena.get<float>(2, int64_t{n} * dim);
    const Rounding rounding = take_rounding(y, int64_t{n} * dim);
    rmsnorm_gated_kernel<<<n, kBlock, 0, main_.stream>>>(d_x, d_w, d_g, dim,
                                                         static_cast<float>(eps), rounding, d_y);
    PINMARK_CUDA_CHECK_LAUNCH(rmsnorm_gated_kernel);
    download(y, d_y, int64_t{n} * dim);
  }

  void sigmoid_gate(const float* x, const float* gate, int64_t n, float* out) override {
    if (n <= 0) return;
    const float* d_x = upload(0, x, n);
    const float* d_g = upload(1, gate, n);
    float* d_o = main_.arena.get<float>(2, n);
    const Rounding rounding = take_rounding(out, n);
    sigmoid_gate_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(d_x, d_g, n, rounding, d_o);
    PINMARK_CUDA_CHECK_LAUNCH(sigmoid_gate_kernel);
    download(out, d_o, n);
  }

  void mix_streams(const float* x, const float* coefs, int n, int in_streams, int out_streams,
                   int dim, float* y) override {
    const int64_t plane = int64_t{n} * dim;
    if (plane <= 0 || in_streams <= 0 || out_streams <= 0) return;
    const float* d_x = upload(0, x, in_streams * plane);
    const float* d_c = upload(1, coefs, int64_t{n} * out_streams * in_streams);
    float* d_y = main_.arena.get<float>(2, out_streams * plane);
    mix_streams_kernel<<<grid_for(out_streams * plane), kBlock, 0, main_.stream>>>(
        d_x, d_c, n, in_streams, out_streams, dim, d_y);
    PINMARK_CUDA_CHECK_LAUNCH(mix_streams_kernel);
    download(y, d_y, out_streams * plane);
  }

  void scale_columns(const float* x, const float* w, int n, int dim, float* y) override {
    const int64_t size = int64_t{n} * dim;
    if (size <= 0) return;
    const float* d_x = upload(0, x, size);
    const float* d_w = upload(1, w, dim);
    float* d_y = main_.arena.get<float>(2, size);
    const Rounding rounding = take_rounding(y, size);
    scale_columns_kernel<<<grid_for(size), kBlock, 0, main_.stream>>>(d_x, d_w, n, dim, rounding,
                                                                      d_y);
    PINMARK_CUDA_CHECK_LAUNCH(scale_columns_kernel);
    download(y, d_y, size);
  }

  void softmax_pool(const float* kv, const float* gate, int n, int slots, int dim,
                    float* out) override {
    const int64_t size = int64_t{n} * dim;
    if (size <= 0 || slots <= 0) return;
    const float* d_kv = upload(0, kv, size * slots);
    const float* d_g = upload(1, gate, size * slots);
    float* d_out = main_.arena.get<float>(2, size);
    softmax_pool_kernel<<<grid_for(size), kBlock, 0, main_.stream>>>(d_kv, d_g, n, slots, dim,
                                                                      d_out);
    PINMARK_CUDA_CHECK_LAUNCH(softmax_pool_kernel);
    download(out, d_out, size);
  }

  void rescale_rms(const float* x, const float* ref, int n, int dim, double floor,
                   float* y) override {
    const int64_t size = int64_t{n} * dim;
    if (size <= 0) return;
    const float* d_x = upload(0, x, size);
    const float* d_r = upload(1, ref, size);
    float* d_target = main_.arena.get<float>(3, n);
    float* d_own = main_.arena.get<float>(4, n);
    float* d_y = main_.arena.get<float>(2, size);
    rms_ratio_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(
        d_x, d_r, n, dim, static_cast<float>(floor), d_target, d_own);
    PINMARK_CUDA_CHECK_LAUNCH(rms_ratio_kernel);
    rescale_rows_kernel<<<grid_for(size), kBlock, 0, main_.stream>>>(d_x, d_target, d_own, n, dim,
                                                                     d_y);
    PINMARK_CUDA_CHECK_LAUNCH(rescale_rows_kernel);
    download(y, d_y, size);
  }

  void gaussian_topk(float* x, int n, int dim, double std_multiplier) override {
    const int64_t size = int64_t{n} * dim;
    if (size <= 0) return;
    float* d_x = upload(0, x, size);
    float* d_cut = main_.arena.get<float>(1, n);
    gaussian_cutoff_kernel<<<grid_for(n), kBlock, 0, main_.stream>>>(
        d_x, n, dim, static_cast<float>(std_multiplier), d_cut);
    PINMARK_CUDA_CHECK_LAUNCH(gaussian_cutoff_kernel);
    shifted_relu_kernel<<<grid_for(size), kBlock, 0, main_.stream>>>(d_x, d_cut, n, dim);
    PINMARK_CUDA_CHECK_LAUNCH(shifted_relu_kernel);
    download(x, d_x, size);
  }

  void indexer_scores(const float* q, const float* k, const float* weights, const int* positions,
                      int n, int kv_len, int heads, int head_dim, double scale, double weight_scale,
                      float* out) override {
    if (n <= 0 || kv_len <= 0) return;
    const float* d_q = upload(0, q, int64_t{n} * heads * head_dim);
    const float* d_k = upload(1, k, int64_t{kv_len} * head_dim);
    const float* d_w = upload(3, weights, int64_t{n} * heads);
    const int* d_p = upload(4, positions, n);
    float* d_o = main_.arena.get<float>(2, int64_t{n} * kv_len);
    indexer_scores_kernel<<<grid_for(int64_t{n} * kv_len), kBlock, 0, main_.stream>>>(
        d_q, d_k, d_w, d_p, n, kv_len, heads, head_dim, static_cast<float>(scale),
        static_cast<float>(weight_scale), d_o);
    PINMARK_CUDA_CHECK_LAUNCH(indexer_scores_kernel);
    download(out, d_o, int64_t{n} * kv_len);
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
    moe_combine_kernel<<<grid_for(int64_t{m} * dim), kBlock, 0, main_.stream>>>(d_y, d_x, d_rows, d_w,
                                                                            m, dim);
    PINMARK_CUDA_CHECK_LAUNCH(moe_combine_kernel);
    download(y, d_y, int64_t{y_rows} * dim);
  }

 private:
  template <class T>
  static T* upload_to(Device& device, int slot, const T* host, int64_t count) {
    T* data = device.arena.get<T>(slot, count);
    if (count > 0) device.copy_to_device(data, host, count * sizeof(T));
    return data;
  }

  // The device's copy of host[count]: a held activation's own (made current first), or an
  // upload into `slot`. An op that writes through the pointer returned hands it to download().
  template <class T>
  T* upload(int slot, const T* host, int64_t count) {
    if constexpr (std::is_same_v<T, float>) {
      if (Resident* r = resident(host, count)) {
        device_current(*r);
        return r->data + (host - r->host);
      }
    }
    return upload_to(main_, slot, host, count);
  }

  // The device's copy of host[count]: the mirror of an announced cache array that holds all
  // of it, or an upload into `slot` (of the host's values, brought up to date first).
  const float* cached_or_upload(int slot, const float* host, int64_t count) {
    const auto it = mirrors_.find(host);
    if (it != mirrors_.end() && it->second.valid >= count) return it->second.data;
    flush_cache_writes();
    return upload(slot, host, count);
  }

  // The mirror of `cache`, with room for a write of [first, first + count): allocated once at
  // the announced capacity (more only if a write goes past it). nullptr where a write past the
  // announced values would leave a gap the mirror cannot fill (it keeps serving what it holds,
  // and attention reads the rest from the host), or where the device has no room (the array is
  // then not mirrored: attention reads it from the host, as before it was announced).
  struct CacheMirror;
  CacheMirror* mirror_for(const float* cache, int64_t capacity, int64_t first, int64_t count) {
    CacheMirror& mirror = mirrors_[cache];
    if (first > mirror.valid) return nullptr;
    const int64_t end = first + count;
    main_.select();
    if (end > mirror.capacity) {
      const int64_t room = std::max(capacity, end);
      float* data = nullptr;
      if (cudaMalloc(&data, room * sizeof(float)) != cudaSuccess) {
        (void)cudaGetLastError();
        release_cache(cache);
        return nullptr;
      }
      // On the op stream, after the writes queued there, and done before the old one goes.
      cudaError_t copied = first > 0 ? cudaMemcpyAsync(data, mirror.data, first * sizeof(float),
                                                       cudaMemcpyDeviceToDevice, main_.stream)
                                     : cudaSuccess;
      if (copied == cudaSuccess) copied = cudaStreamSynchronize(main_.stream);
      (void)cudaFree(mirror.data);
      mirror.data = data;
      mirror.capacity = room;
      if (copied != cudaSuccess) {
        release_cache(cache);
        PINMARK_CUDA_CHECK(copied);
      }
    }
    return &mirror;
  }

  // The host's cache values of write_cache's staged copies, put in place once the stream has
  // drained; the buffer is then free again.
  // If the stream fails, the staged values are dropped, not kept to land later in arrays that
  // may be gone by then.
  void flush_cache_writes() {
    if (pending_cache_writes_.empty()) {
      // A piece taken for a copy that then failed to start is free again too.
      download_stage_.reset();
      return;
    }
    const cudaError_t drained = cudaStreamSynchronize(main_.stream);
    if (drained == cudaSuccess)
      for (const PendingCacheWrite& w : pending_cache_writes_)
        std::memcpy(w.host, w.staged, w.bytes);
    pending_cache_writes_.clear();
    download_stage_.reset();
    PINMARK_CUDA_CHECK(drained);
  }

  template <class T>
  static void copy_back(Device& device, T* host, const T* data, int64_t count) {
    if (count > 0)
      PINMARK_CUDA_CHECK(
          cudaMemcpyAsync(host, data, count * sizeof(T), cudaMemcpyDeviceToHost, device.stream));
  }

  // An op's result data[count] on its way to host[count]: into a held activation's device
  // copy (whose host copy is then stale), or copied to the host.
  template <class T>
  void deliver(T* host, const T* data, int64_t count) {
    if (count <= 0) return;
    if constexpr (std::is_same_v<T, float>) {
      if (Resident* r = resident(host, count)) {
        float* d = r->data + (host - r->host);
        // The rest of the array is the host's: it goes up first.
        if (count < r->count) device_current(*r);
        if (d != data)
          PINMARK_CUDA_CHECK(cudaMemcpyAsync(d, data, count * sizeof(float),
                                             cudaMemcpyDeviceToDevice, main_.stream));
        device_written(*r);
        return;
      }
    }
    copy_back(main_, host, data, count);
    copies_to_host_ = true;
  }

  // The op's last result. When anything went to the host, waits for the stream, so a fault in
  // any of its kernels is reported by the op that caused it; an op whose results all stay on
  // the device returns at once, and a fault is reported by the next op that waits.
  template <class T>
  void download(T* host, const T* data, int64_t count) {
    deliver(host, data, count);
    if (!copies_to_host_) return;
    PINMARK_CUDA_CHECK(cudaStreamSynchronize(main_.stream));
    copies_to_host_ = false;
  }

  // The held activation array that holds host[0, count), or null. A range that starts in one
  // and runs past it breaks the contract (Backend::hold_activations).
  struct Resident;
  Resident* resident(const float* host, int64_t count) {
    if (resident_.empty()) return nullptr;
    auto it = resident_.upper_bound(host);
    if (it == resident_.begin()) return nullptr;
    --it;
    Resident& r = it->second;
    if (host >= r.host + r.count) return nullptr;
    if (count > r.host + r.count - host)
      throw std::logic_error("a range of " + std::to_string(count) +
                             " values runs past the end of a held activation array of " +
                             std::to_string(r.count));
    return &r;
  }

  // Where an op writes its result for host[count]: straight into a held array's device copy
  // (made current first when the op writes only part of it), unless the result would overlap
  // one of the op's `inputs` there, which the kernel may still be reading; otherwise into
  // `slot`. download() then delivers it.
  float* output(int slot, float* host, int64_t count,
                std::initializer_list<std::pair<const float*, int64_t>> inputs) {
    Resident* r = resident(host, count);
    const auto at = [](const float* p) { return reinterpret_cast<uintptr_t>(p); };
    bool overlaps = false;
    for (const auto& [in, n] : inputs)
      overlaps = overlaps || (in != nullptr && at(in) < at(host + count) && at(host) < at(in + n));
    if (r == nullptr || overlaps) return main_.arena.get<float>(slot, count);
    if (count < r->count) device_current(*r);
    return r->data + (host - r->host);
  }

  // Makes r's device copy current, its host copy uploaded, before an op reads it or writes
  // part of it.
  void device_current(Resident& r) {
    if (r.device_valid) return;
    main_.copy_to_device(r.data, r.host, r.count * sizeof(float));
    r.device_valid = true;
    r.narrow_valid = false;
  }

  // After a write to r's device copy: the host's copy and the 16-bit one are stale.
  static void device_written(Resident& r) {
    r.device_valid = true;
    r.host_valid = false;
    r.narrow_valid = false;
  }

  // x[n * k] in the 16-bit type the products of bf16 and fp16 read, for gemm_on(): a held
  // array's 16-bit copy (converted from its device copy once after each write, so that q, k
  // and v, or gate and up, read one conversion of their shared input), or null for gemm_on()
  // to convert into a buffer of its own.
  const void* narrow_operand(const float* x, int64_t count) {
    Resident* r = narrow_products() ? resident(x, count) : nullptr;
    if (r == nullptr || r->narrow == nullptr) return nullptr;
    // cuBLAS may choose its kernel, and with it the order of the sums, by the operands'
    // alignment: only a copy aligned as the buffer gemm_on() converts into would be is used.
    const char* at = static_cast<const char*>(r->narrow) + (x - r->host) * 2;
    if (reinterpret_cast<uintptr_t>(at) % 256 != 0) return nullptr;
    if (!r->narrow_valid) {
      device_current(*r);
      to_16bit(precision_, r->data, r->count, r->narrow, main_.stream);
      r->narrow_valid = true;
    }
    return at;
  }

  static Rounding rounding_of(DType storage) {
    return storage == DType::bf16 ? Rounding::bf16
           : storage == DType::f16 ? Rounding::fp16
                                   : Rounding::none;
  }

  // How the op about to write host[count] stores it: rounded, when that is the result the
  // rounding layer announced (round_next), whose round_stored call then finds it done; as
  // computed otherwise. An op that asks must write all count values through stored().
  Rounding take_rounding(const float* host, int64_t count) {
    const Announced next = next_rounding_;
    next_rounding_ = {};
    rounded_ = {};
    if (next.values != host || next.count != count) return Rounding::none;
    rounded_ = next;
    return next.rounding;
  }

  // The device buffer of a held activation array of `capacity` values: fp32, and for bf16
  // and fp16 their 16-bit copy after it, from a 256-byte boundary as cudaMalloc's buffers start
  // (narrow_operand).
  bool narrow_products() const {
    return precision_ == CudaPrecision::bf16 || precision_ == CudaPrecision::fp16;
  }
  static size_t fp32_bytes(int64_t capacity) {
    return (static_cast<size_t>(capacity) * sizeof(float) + 255) & ~size_t{255};
  }
  size_t buffer_bytes(int64_t capacity) const {
    return fp32_bytes(capacity) + (narrow_products() ? static_cast<size_t>(capacity) * 2 : 0);
  }
  void* narrow_part(float* data, int64_t capacity) const {
    return narrow_products() ? reinterpret_cast<char*>(data) + fp32_bytes(capacity) : nullptr;
  }

  // Device buffers of released activation arrays, kept for the next forward pass's (a decode
  // step holds the same sizes again), up to kSpareBytes.
  static constexpr int64_t kSpareBytes = int64_t{512} << 20;
  // A spare buffer of at least `count` values, its size in `capacity`; or null.
  float* take_spare(int64_t count, int64_t& capacity) {
    const auto it = spare_.lower_bound(count);
    // Not a buffer many times the size: that would keep the large ones from being freed.
    if (it == spare_.end() || it->first > 2 * count + 65536) return nullptr;
    float* data = it->second;
    capacity = it->first;
    spare_bytes_ -= static_cast<int64_t>(buffer_bytes(capacity));
    spare_.erase(it);
    return data;
  }
  // Never throws: called from release_activations.
  void give_spare(float* data, int64_t capacity) {
    try {
      spare_.emplace(capacity, data);
    } catch (...) {
      (void)cudaFree(data);
      return;
    }
    spare_bytes_ += static_cast<int64_t>(buffer_bytes(capacity));
    while (spare_bytes_ > kSpareBytes && !spare_.empty()) {
      const auto largest = std::prev(spare_.end());
      spare_bytes_ -= static_cast<int64_t>(buffer_bytes(largest->first));
      (void)cudaFree(largest->second);  // errors dropped: called from destructors
      spare_.erase(largest);
    }
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
    float* d_y = output(2, y, int64_t{n} * dim, {{x, int64_t{n} * dim}, {w, dim}});
    const Rounding rounding = take_rounding(y, int64_t{n} * dim);
    rmsnorm_kernel<kPlusOne>
        <<<n, kBlock, 0, main_.stream>>>(d_x, d_w, dim, static_cast<float>(eps), rounding, d_y);
    PINMARK_CUDA_CHECK_LAUNCH(rmsnorm_kernel);
    download(y, d_y, int64_t{n} * dim);
  }

  // d_y[n, m] = x[n, k] w[m, k]^T on device 0, the weight held there whole or copied now.
  void gemm(const float* x, const float* w, int n, int k, int m, float* d_y) {
    const float* d_x = upload(0, x, int64_t{n} * k);
    const auto held = held_.find(w);
    const bool whole = held != held_.end() && held->second.split == 0 &&
                       held->second.k == k && held->second.m == m;
    gemm_on(main_, precision_, d_x, narrow_operand(x, int64_t{n} * k),
            whole ? held->second.data : nullptr, whole ? nullptr : upload(1, w, int64_t{m} * k), n,
            k, m, d_y);
  }

  // d_y[n, m] = x[n, k] w[m, k]^T on `device`, x there already (d_x). The weight is `held`, in
  // the type cuBLAS reads, or d_w in fp32, converted here for the 16-bit precisions. cuBLAS is
  // column-major: row-major y[n, m] is column-major y^T[m, n] = w[m, k] x^T[k, n], where the
  // row-major w[m, k] read column-major is w^T (so transposed back with OP_T) and row-major
  // x[n, k] read column-major is x^T already. For bf16 and fp16, x16 is x in that type already
  // (narrow_operand), or null. Uses slots 4 and 5 (operands in 16 bits).
  static void gemm_on(Device& device, CudaPrecision precision, const float* d_x, const void* x16,
                      const void* held, const float* d_w, int n, int k, int m, float* d_y) {
    const float alpha = 1.0f, beta = 0.0f;
    const void* a = held ? held : d_w;
    const void* b = d_x;
    cudaDataType_t type = CUDA_R_32F;
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F_PEDANTIC;
    switch (precision) {
      case CudaPrecision::fp32:
        break;
      case CudaPrecision::tf32:
        compute = CUBLAS_COMPUTE_32F_FAST_TF32;
        break;
      case CudaPrecision::bf16:
      case CudaPrecision::fp16: {
        // Exact for the values the rounding backend passes in, which are of that type already.
        if (!x16) {
          void* converted = device.arena.get<uint16_t>(4, int64_t{n} * k);
          to_16bit(precision, d_x, int64_t{n} * k, converted, device.stream);
          x16 = converted;
        }
        if (!held) {
          void* w16 = device.arena.get<uint16_t>(5, int64_t{m} * k);
          to_16bit(precision, d_w, int64_t{m} * k, w16, device.stream);
          a = w16;
        }
        b = x16;
        type = precision == CudaPrecision::bf16 ? CUDA_R_16BF : CUDA_R_16F;
        compute = CUBLAS_COMPUTE_32F;
        break;
      }
    }
    PINMARK_CUDA_CHECK(cublasGemmEx(device.cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, a,
                                    type, k, b, type, k, &beta, d_y, CUDA_R_32F, m, compute,
                                    CUBLAS_GEMM_DEFAULT));
  }

  // A weight the model announced (hold_matrix), on the device in the type gemm_on() reads:
  // whole on device 0 (split 0), or split between the ranks at `split` (rows of an input
  // projection, columns of an output projection).
  struct HeldMatrix {
    int k = 0, m = 0;
    MatrixRole role = MatrixRole::input_projection;
    int split = 0;
    void* data = nullptr;       // device 0
    void* peer_data = nullptr;  // device 1
  };

  // count fp32 values from the host, on `device` in the type gemm_on() reads.
  void* upload_weight(Device& device, const float* host, int64_t count) {
    device.select();
    const size_t element = precision_ == CudaPrecision::bf16   ? sizeof(__nv_bfloat16)
                           : precision_ == CudaPrecision::fp16 ? sizeof(__half)
                                                               : sizeof(float);
    void* data = nullptr;
    PINMARK_CUDA_CHECK(cudaMalloc(&data, std::max<size_t>(count * element, 1)));
    if (element == sizeof(float)) {
      PINMARK_CUDA_CHECK(cudaMemcpyAsync(data, host, count * sizeof(float),
                                         cudaMemcpyHostToDevice, device.stream));
    } else {
      to_16bit(precision_, upload_to(device, 1, host, count), count, data, device.stream);
    }
    PINMARK_CUDA_CHECK(cudaStreamSynchronize(device.stream));
    return data;
  }

  static void free_held(const HeldMatrix& held) {
    // Called from destructors too, which cannot report an error: a failing device has
    // reported itself in the op that met it.
    (void)cudaFree(held.data);
    (void)cudaFree(held.peer_data);
  }

  // w[:, first .. last) of w[rows, cols], contiguous.
  static std::vector<float> columns(const float* w, int rows, int cols, int first, int last) {
    std::vector<float> out(static_cast<size_t>(rows) * (last - first));
    for (int r = 0; r < rows; ++r)
      std::copy(w + int64_t{r} * cols + first, w + int64_t{r} * cols + last,
                out.begin() + int64_t{r} * (last - first));
    return out;
  }

  const HeldMatrix* split_held(const float* w, int k, int m) const {
    const auto it = held_.find(w);
    if (it == held_.end() || it->second.split == 0 || it->second.k != k || it->second.m != m)
      return nullptr;
    return &it->second;
  }

  // y[n, m] = x w^T (+ b) with w split over the two ranks. An input projection: each rank
  // computes its rows' outputs whole, gathered into y (no number changes hands). An output
  // projection: each rank the partial sums over its columns, which an NCCL all-reduce adds;
  // for bf16 and fp16 the partials are rounded to the storage type first and summed in it, as
  // a tensor-parallel engine reduces its 16-bit activations. The bias joins the finished sum.
  void split_product(const float* x, const HeldMatrix& held, const float* b, int n, float* y) {
    const int k = held.k, m = held.m, split = held.split;
    std::vector<float> mine, theirs;
    if (held.role == MatrixRole::input_projection) {
      mine.resize(int64_t{n} * split);
      theirs.resize(int64_t{n} * (m - split));
      product_on(main_, x, k, held.data, n, split, mine.data());
      product_on(*peer_, x, k, held.peer_data, n, m - split, theirs.data());
      wait_both();
      for (int i = 0; i < n; ++i) {
        std::copy(mine.begin() + int64_t{i} * split, mine.begin() + int64_t{i + 1} * split,
                  y + int64_t{i} * m);
        std::copy(theirs.begin() + int64_t{i} * (m - split),
                  theirs.begin() + int64_t{i + 1} * (m - split), y + int64_t{i} * m + split);
      }
    } else {
#ifdef PINMARK_HAVE_NCCL_HEADERS
      const std::vector<float> x_mine = columns(x, n, k, 0, split);
      const std::vector<float> x_theirs = columns(x, n, k, split, k);
      const int64_t count = int64_t{n} * m;
      main_.select();
      float* d_mine = main_.arena.get<float>(2, count);
      gemm_on(main_, precision_, upload_to(main_, 0, x_mine.data(), int64_t{n} * split), nullptr,
              held.data, nullptr, n, split, m, d_mine);
      peer_->select();
      float* d_theirs = peer_->arena.get<float>(2, count);
      gemm_on(*peer_, precision_, upload_to(*peer_, 0, x_theirs.data(), int64_t{n} * (k - split)),
              nullptr, held.peer_data, nullptr, n, k - split, m, d_theirs);
      all_reduce(d_mine, d_theirs, count);
      main_.select();
      download(y, d_mine, count);
      wait_both();
#endif
    }
    if (b)
      for (int i = 0; i < n; ++i)
        for (int c = 0; c < m; ++c) y[int64_t{i} * m + c] = y[int64_t{i} * m + c] + b[c];
  }

  // Starts out[n, m] = x[n, k] w^T on `device` (w held there) and its copy back to the host;
  // wait_both() waits for it.
  void product_on(Device& device, const float* x, int k, const void* w, int n, int m,
                  float* out) {
    device.select();
    float* d_y = device.arena.get<float>(2, int64_t{n} * m);
    gemm_on(device, precision_, upload_to(device, 0, x, int64_t{n} * k), nullptr, w, nullptr, n,
            k, m, d_y);
    copy_back(device, out, d_y, int64_t{n} * m);
  }

  void wait_both() {
    peer_->select();
    PINMARK_CUDA_CHECK(cudaStreamSynchronize(peer_->stream));
    main_.select();
    PINMARK_CUDA_CHECK(cudaStreamSynchronize(main_.stream));
  }

#ifdef PINMARK_HAVE_NCCL_HEADERS
  // mine (device 0) and theirs (device 1), count fp32 values each, both become their sum.
  void all_reduce(float* mine, float* theirs, int64_t count) {
    const bool narrow = precision_ == CudaPrecision::bf16 || precision_ == CudaPrecision::fp16;
    void* buffers[2] = {mine, theirs};
    Device* devices[2] = {&main_, peer_.get()};
    if (narrow) {
      for (int r = 0; r < 2; ++r) {
        devices[r]->select();
        void* h = devices[r]->arena.get<uint16_t>(6, count);
        to_16bit(precision_, static_cast<float*>(buffers[r]), count, h, devices[r]->stream);
        buffers[r] = h;
      }
    }
    const ncclDataType_t type = precision_ == CudaPrecision::bf16   ? ncclBfloat16
                                : precision_ == CudaPrecision::fp16 ? ncclFloat16
                                                                    : ncclFloat32;
    nccl_check(*nccl_, nccl_->group_start(), "ncclGroupStart");
    for (int r = 0; r < 2; ++r)
      nccl_check(*nccl_,
                 nccl_->all_reduce(buffers[r], buffers[r], static_cast<size_t>(count), type, ncclSum,
                                   comms_[r], devices[r]->stream),
                 "ncclAllReduce");
    nccl_check(*nccl_, nccl_->group_end(), "ncclGroupEnd");
    if (narrow) {
      main_.select();
      if (precision_ == CudaPrecision::bf16)
        from_bf16_kernel<<<grid_for(count), kBlock, 0, main_.stream>>>(
            static_cast<const __nv_bfloat16*>(buffers[0]), count, mine);
      else
        from_half_kernel<<<grid_for(count), kBlock, 0, main_.stream>>>(
            static_cast<const __half*>(buffers[0]), count, mine);
      PINMARK_CUDA_CHECK_LAUNCH(from_bf16_kernel or from_half_kernel);
    }
  }
#endif

  // Device 0 unless CUDA says there is none: the error a caller sees first.
  static int first_device() {
    if (!cuda_device_available()) throw std::runtime_error("no CUDA device is available");
    return 0;
  }

  CudaPrecision precision_;
  Device main_;
  std::unique_ptr<Device> peer_;  // rank 1 of a tensor-parallel backend
#ifdef PINMARK_HAVE_NCCL_HEADERS
  const NcclApi* nccl_ = nullptr;
  ncclComm_t comms_[2] = {nullptr, nullptr};
#endif
  std::unordered_map<const float*, HeldMatrix> held_;
  // An announced cache array (cache_written) on device 0: values [0, valid) are the host's.
  struct CacheMirror {
    float* data = nullptr;
    int64_t capacity = 0;
    int64_t valid = 0;
  };
  std::unordered_map<const float*, CacheMirror> mirrors_;
  // write_cache's copies to the host, staged in a page-locked buffer until flush_cache_writes.
  struct PendingCacheWrite {
    float* host;
    const char* staged;
    size_t bytes;
  };
  static constexpr size_t kDownloadStageBytes = size_t{8} << 20;
  StagingRing download_stage_;  // unavailable: write_cache takes Backend's default path
  std::vector<PendingCacheWrite> pending_cache_writes_;
  // A held activation array (hold_activations) on device 0; at least one copy is current.
  struct Resident {
    const float* host = nullptr;
    float* data = nullptr;
    int64_t count = 0;
    int64_t capacity = 0;  // of data, in values
    bool device_valid = false;
    bool host_valid = true;
    // bf16 and fp16: the values in the products' 16-bit type too, in the same allocation as
    // data, after its capacity (narrow_operand); null for fp32 and tf32.
    void* narrow = nullptr;
    bool narrow_valid = false;
  };
  // An op's result that the rounding layer announced (round_next), or took (rounded_).
  struct Announced {
    const float* values = nullptr;
    int64_t count = 0;
    Rounding rounding = Rounding::none;
  };
  Announced next_rounding_;
  Announced rounded_;
  std::map<const float*, Resident> resident_;  // by host address, for ranges inside one
  std::multimap<int64_t, float*> spare_;       // by size in values
  int64_t spare_bytes_ = 0;
  bool copies_to_host_ = false;  // since the last wait
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
  return std::make_unique<CudaBackend>(precision, 1);
}

std::string cuda_tp_math_mode(CudaPrecision precision, int ranks) {
  const char* reduced = precision == CudaPrecision::bf16   ? "bf16"
                        : precision == CudaPrecision::fp16 ? "fp16"
                                                           : "fp32";
  return cuda_math_mode(precision) + "; tensor parallel over " + std::to_string(ranks) +
         " GPUs: o_proj and down_proj split along their inputs, the partial sums (rounded to " +
         reduced + ") added by an NCCL all-reduce in " + reduced +
         "; the other projections split by output rows";
}

std::string cuda_tp_unavailable(int ranks) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    count = 0;
  }
  if (count < ranks)
    return "tensor parallelism over " + std::to_string(ranks) + " GPUs needs " +
           std::to_string(ranks) + " CUDA devices; this machine has " + std::to_string(count);
#ifdef PINMARK_HAVE_NCCL_HEADERS
  std::string why;
  if (!nccl_api(why)) return why;
  return "";
#else
  return "pinmark's CUDA module was built without NCCL's headers (nccl.h)";
#endif
}

std::string cuda_tp_provenance(int ranks) {
  int current = 0;
  PINMARK_CUDA_CHECK(cudaGetDevice(&current));
  std::vector<std::string> devices;
  for (int d = 0; d < ranks; ++d) {
    PINMARK_CUDA_CHECK(cudaSetDevice(d));
    devices.push_back(cuda_provenance());
  }
  PINMARK_CUDA_CHECK(cudaSetDevice(current));
  std::string out;
  if (std::all_of(devices.begin(), devices.end(),
                  [&](const std::string& d) { return d == devices[0]; })) {
    out = std::to_string(ranks) + " x " + devices[0];
  } else {
    for (int d = 0; d < ranks; ++d) out += (d ? "; GPU " : "GPU ") + std::to_string(d) + ": " + devices[d];
  }
#ifdef PINMARK_HAVE_NCCL_HEADERS
  std::string why;
  if (const NcclApi* nccl = nccl_api(why)) out += ", NCCL " + nccl->version;
#endif
  return out;
}

std::unique_ptr<Backend<float>> make_cuda_tp_backend(CudaPrecision precision, int ranks) {
  return std::make_unique<CudaBackend>(precision, ranks);
}

}  // namespace pinmark
