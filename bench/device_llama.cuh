// A device-resident bf16 Llama forward (weights, activations and the KV cache on the GPU): the
// kernels and the model that bench/llama_bench.cu times and bench/llama_bench_engine.cu runs as
// a pinmark engine, so that the forward the bench measures is the one the goldens pin. Weights
// are pinmark's synthetic ones (runtime/random.h), drawn on the device by the same
// counter-based generator, or loaded by their Hugging Face names (WeightLoader).
//
// Included by each of the two programs (one translation unit each), hence its own namespace.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bench/decode_kernels.cuh"
#include "bench/decode_persistent.cuh"
#include "bench/device_common.cuh"
#include "runtime/cuda/cuda_check.h"
#include "runtime/model_config.h"
#include "runtime/random.h"

namespace {

using pinmark::ModelConfig;

#define CHECK PINMARK_CUDA_CHECK
#define CHECK_LAUNCH PINMARK_CUDA_CHECK_LAUNCH

// ---------------------------------------------------------------------------------------------
// Model dimensions.

struct Dims {
  const char* name;
  int hidden, layers, heads, kv_heads, head_dim, inter, vocab;
  double theta, eps;
};

const Dims kLlama1B = {"Llama-3.2-1B dims", 2048, 16, 32, 8, 64, 8192, 128256, 500000.0, 1e-5};
const Dims kSmall = {"small (1024 x 8)", 1024, 8, 16, 4, 64, 4096, 32000, 500000.0, 1e-5};

constexpr uint64_t kSeed = 20240925;

ModelConfig to_config(const Dims& d, int max_positions) {
  ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = d.vocab;
  c.hidden_size = d.hidden;
  c.intermediate_size = d.inter;
  c.num_hidden_layers = d.layers;
  c.num_attention_heads = d.heads;
  c.num_key_value_heads = d.kv_heads;
  c.head_dim = d.head_dim;
  c.max_position_embeddings = max_positions;
  c.rms_norm_eps = d.eps;
  c.rope_theta = d.theta;
  c.tie_word_embeddings = true;
  c.seed = kSeed;
  return c;
}

int64_t q_dim(const Dims& d) { return int64_t{d.heads} * d.head_dim; }
int64_t kv_dim(const Dims& d) { return int64_t{d.kv_heads} * d.head_dim; }

// Parameters of one layer's matrix products (q, k, v, o, gate, up, down).
int64_t layer_matmul_params(const Dims& d) {
  return int64_t{d.hidden} * (q_dim(d) + 2 * kv_dim(d)) + q_dim(d) * d.hidden +
         3 * int64_t{d.hidden} * d.inter;
}
int64_t lm_head_params(const Dims& d) { return int64_t{d.vocab} * d.hidden; }
// Every stored parameter; the tied embedding counts once.
int64_t total_params(const Dims& d) {
  return d.layers * (layer_matmul_params(d) + 2 * int64_t{d.hidden}) + lm_head_params(d) +
         d.hidden;
}

// ---------------------------------------------------------------------------------------------
// Kernels.

// runtime/random.cpp's random_bits and random_uniform, bit for bit, so that element i of tensor
// "name" on the device is the value the CPU reference draws.
__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

__global__ void fill_synthetic(bf16* out, int64_t count, uint64_t seed, uint64_t name_hash,
                               double scale, double offset) {
  constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
  const uint64_t base = mix64(mix64(seed + kGolden) ^ (name_hash + kGolden));
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < count; i += stride) {
    const uint64_t bits = mix64(mix64(base ^ (static_cast<uint64_t>(i) + kGolden)) + kGolden);
    const int64_t k = static_cast<int64_t>(bits >> 11);
    const double u = static_cast<double>(k - (int64_t{1} << 52)) * 0x1p-52;
    // No contraction: the reference computes scale * u + offset as two roundings.
    const double v = __dadd_rn(__dmul_rn(scale, u), offset);
    out[i] = __float2bfloat16_rn(static_cast<float>(v));
  }
}

__global__ void embed_rows(const bf16* table, const int* tokens, int dim, bf16* out) {
  wait_for_previous();  // a no-op unless started by programmatic dependent launch
  const int row = blockIdx.x;
  const uint4* src = reinterpret_cast<const uint4*>(table + int64_t{tokens[row]} * dim);
  uint4* dst = reinterpret_cast<uint4*>(out + int64_t{row} * dim);
  for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) dst[i] = src[i];
}

// y = x / sqrt(mean(x^2) + eps) * w, one block per row, in fp32, stored in bf16.
__global__ void rmsnorm_rows(const bf16* x, const bf16* w, int dim, float eps, bf16* y) {
  wait_for_previous();  // a no-op unless started by programmatic dependent launch
  __shared__ float scratch[32];
  const uint4* xr = reinterpret_cast<const uint4*>(x + int64_t{blockIdx.x} * dim);
  const uint4* wr = reinterpret_cast<const uint4*>(w);
  uint4* yr = reinterpret_cast<uint4*>(y + int64_t{blockIdx.x} * dim);
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) {
    Pack8 p;
    p.u = xr[i];
    for (int k = 0; k < 4; ++k) {
      const float2 f = __bfloat1622float2(p.h[k]);
      ss += f.x * f.x + f.y * f.y;
    }
  }
  ss = block_reduce<false>(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) {
    Pack8 p, q, o;
    p.u = xr[i];
    q.u = wr[i];
    for (int k = 0; k < 4; ++k) {
      const float2 a = __bfloat1622float2(p.h[k]), b = __bfloat1622float2(q.h[k]);
      o.h[k] = __floats2bfloat162_rn((a.x * inv) * b.x, (a.y * inv) * b.y);
    }
    yr[i] = o.u;
  }
}

// qkv[n, q_dim + 2 kv_dim] from the fused projection: rotates q into q_out[n, heads, hd],
// rotates k and copies v into the layer's cache rows p0 ... p0 + n - 1. One thread per 8 rotary
// pairs (j ... j + 7, each with its partner j + hd/2) of one head of one token, in 16-byte
// accesses (hd a multiple of 16); cos/sin tables [positions, hd/2] hold the angles computed in
// fp64 on the host, as the reference computes them. One pair a thread in 2-byte accesses took
// 30.8 us a layer at Llama-3.2-1B dimensions and 2048 tokens on the H200; this takes 10.8 us,
// with the same bits.
__global__ void rope_and_cache(const bf16* qkv, int n, int p0, int heads, int kv_heads, int hd,
                               const float* cos_t, const float* sin_t, bf16* q_out,
                               bf16* k_cache, bf16* v_cache) {
  wait_for_previous();  // a no-op unless started by programmatic dependent launch
  const int half = hd / 2, chunks = half / 8, all = heads + 2 * kv_heads;
  const int64_t total = int64_t{n} * all * chunks;
  const int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int j = static_cast<int>(idx % chunks) * 8;
  const int head = static_cast<int>((idx / chunks) % all);
  const int i = static_cast<int>(idx / (int64_t{chunks} * all));
  const int pos = p0 + i;
  const bf16* src = qkv + int64_t{i} * all * hd + int64_t{head} * hd;
  Pack8 a, b;
  a.u = *reinterpret_cast<const uint4*>(src + j);
  b.u = *reinterpret_cast<const uint4*>(src + j + half);
  bf16* dst;
  if (head < heads + kv_heads) {
    const float4* cp = reinterpret_cast<const float4*>(cos_t + int64_t{pos} * half + j);
    const float4* sp = reinterpret_cast<const float4*>(sin_t + int64_t{pos} * half + j);
    const float4 c4[2] = {cp[0], cp[1]}, s4[2] = {sp[0], sp[1]};
    const float* c = &c4[0].x;
    const float* sn = &s4[0].x;
    dst = head < heads ? q_out + (int64_t{i} * heads + head) * hd
                       : k_cache + (int64_t{pos} * kv_heads + (head - heads)) * hd;
    Pack8 lo, hi;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 x1 = __bfloat1622float2(a.h[e]), x2 = __bfloat1622float2(b.h[e]);
      const int k = 2 * e;
      lo.h[e] = __floats2bfloat162_rn(x1.x * c[k] - x2.x * sn[k],
                                      x1.y * c[k + 1] - x2.y * sn[k + 1]);
      hi.h[e] = __floats2bfloat162_rn(x2.x * c[k] + x1.x * sn[k],
                                      x2.y * c[k + 1] + x1.y * sn[k + 1]);
    }
    a.u = lo.u;
    b.u = hi.u;
  } else {
    dst = v_cache + (int64_t{pos} * kv_heads + (head - heads - kv_heads)) * hd;
  }
  *reinterpret_cast<uint4*>(dst + j) = a.u;
  *reinterpret_cast<uint4*>(dst + j + half) = b.u;
}

// Row r of scores[heads * n, kv_len] belongs to query i = r % n at position p0 + i: keys after
// it are masked. Probabilities (masked ones as exact zeros, which the PV product then sums
// over) are stored in bf16, as the reference stores them.
__global__ void causal_softmax(const float* scores, int n, int kv_len, int p0, bf16* probs) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const int valid = p0 + static_cast<int>(r % n) + 1;
  const float* s = scores + r * kv_len;
  bf16* p = probs + r * kv_len;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < valid; j += blockDim.x) m = fmaxf(m, s[j]);
  m = block_reduce<true>(m, scratch);
  float l = 0.0f;
  for (int j = threadIdx.x; j < valid; j += blockDim.x) l += __expf(s[j] - m);
  l = block_reduce<false>(l, scratch);
  const float inv = 1.0f / l;
  for (int j = threadIdx.x; j < kv_len; j += blockDim.x)
    p[j] = __float2bfloat16_rn(j < valid ? __expf(s[j] - m) * inv : 0.0f);
}

// Pointer arrays for the batched attention GEMMs of every layer, written on the device so that
// a forward needs no host-to-device copy: per layer and head, K and V of its KV head, Q, the
// scores, the probabilities and the output slices.
__global__ void attention_pointers(const bf16* q, const bf16* k_cache, const bf16* v_cache,
                                   float* scores, bf16* probs, bf16* out, int layers, int heads,
                                   int kv_heads, int hd, int n, int kv_len, int64_t cache_layer,
                                   const void** ptrs) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= layers * heads) return;
  const int l = idx / heads, h = idx % heads, g = h / (heads / kv_heads);
  const int64_t count = int64_t{layers} * heads;
  ptrs[0 * count + idx] = k_cache + l * cache_layer + int64_t{g} * hd;
  ptrs[1 * count + idx] = v_cache + l * cache_layer + int64_t{g} * hd;
  ptrs[2 * count + idx] = q + int64_t{h} * hd;
  ptrs[3 * count + idx] = scores + int64_t{h} * n * kv_len;
  ptrs[4 * count + idx] = probs + int64_t{h} * n * kv_len;
  ptrs[5 * count + idx] = out + int64_t{h} * hd;
}

// Prefill attention through flash_attention_prefill; false selects the unfused cuBLAS path
// (materialised scores), which the attention check compares it with either way.
constexpr bool kFlashPrefill = true;

// Prefill attention, fused: per block 64 R queries of one head (16 R per warp, R tiles of 16
// rows), key tiles of 64 streamed through shared memory (double-buffered with cp.async), S = Q K^T
// and O += P V on the tensor cores (mma.sync m16n8k16, bf16 operands, fp32 accumulation), the
// softmax online in registers, so the scores never reach device memory. Query i sits at position
// p0 + i and sees keys 0 ... p0 + i: tiles wholly above the diagonal are never loaded, only tiles
// that cross it are masked. Q is q[n, heads, 64]; K and V are one layer's cache rows
// [pos, kv_heads, 64]; out[n, heads * 64] is what the o projection reads. The probabilities enter
// the PV product in bf16, as the unfused path stores them; the normalisation is applied once, in
// fp32, at the end. A row's sums do not depend on R (its key tiles and their order are the
// same; a tile wholly masked for a row leaves its max, sum and output as they were), so every R
// gives the same bits; a larger R reads each K and V fragment from shared memory once for R
// row tiles.
constexpr int kFlashK = 64, kFlashD = 64, kFlashThreads = 128, kFlashWarps = kFlashThreads / 32;
// Rows padded by 16 bytes: 144-byte rows put the 8 rows an ldmatrix phase reads in 8 distinct
// 4-bank groups, so the fragment loads are conflict-free.
constexpr int kFlashLd = kFlashD + 8;
// Queries a block of flash_attention_prefill<R> takes, and its dynamic shared memory: the query
// tile, then two buffers of K and two of V.
template <int R>
__host__ __device__ constexpr int flash_block_queries() {
  return kFlashWarps * 16 * R;
}
template <int R>
constexpr size_t flash_prefill_shared() {
  return sizeof(bf16) * (flash_block_queries<R>() + 4 * kFlashK) * kFlashLd;
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared; bytes = 0 writes zeros and reads nothing (rows past the keys).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}
// c += a b for one m16n8k16 tile: a row-major 16 x 16, b column-major 16 x 8, c fp32 16 x 8.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// 2^x by the special function unit alone (ex2.approx.ftz: about 2 ulp, results below 2^-126
// flushed to zero; exp2f adds the steps that keep those subnormal). 2^-inf = 0.
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// One key tile of the online softmax for a thread's rows r0 and r0 + 8 of a 16-row tile (at
// positions pos0, pos1), on the mma.sync m16n8 accumulator layout (s[j][e], o[j][e]: element e
// of the tile of columns 8 j ...), which a wgmma accumulator's warp shares: masks the keys past
// each row's position where the tile crosses the diagonal, raises the running max (m, log2
// units), rescales the running sum l and the output o by 2^(old - new max), turns the scores s
// into 2^(s scale - max), adds them to l and packs them, bf16, into the A fragments of P.
// The max is taken over the raw scores (the scale is positive), and the scale enters each
// exponent in one fused multiply-add, s * scale - max, as flash attention computes it.
__device__ __forceinline__ void softmax_tile(float (&s)[kFlashK / 8][4], int k0, bool diagonal,
                                             int pos0, int pos1, int c0, float scale_log2,
                                             float& m0, float& m1, float& l0, float& l1,
                                             float (&o)[kFlashD / 8][4],
                                             uint32_t (&pa)[kFlashK / 16][4]) {
  float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
  for (int nt = 0; nt < kFlashK / 8; ++nt) {
    if (diagonal) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = k0 + nt * 8 + c0 + (e & 1);
        if (key > (e < 2 ? pos0 : pos1)) s[nt][e] = -INFINITY;
      }
    }
    mx0 = fmaxf(mx0, fmaxf(s[nt][0], s[nt][1]));
    mx1 = fmaxf(mx1, fmaxf(s[nt][2], s[nt][3]));
  }
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
  // Key 0 is visible to every row and sits in the first tile, so the max is finite from then on
  // and no -inf - -inf arises.
  const float n0 = fmaxf(m0, mx0 * scale_log2), n1 = fmaxf(m1, mx1 * scale_log2);
  const float a0 = exp2_approx(m0 - n0), a1 = exp2_approx(m1 - n1);
  m0 = n0;
  m1 = n1;
  l0 *= a0;
  l1 *= a1;
#pragma unroll
  for (int dt = 0; dt < kFlashD / 8; ++dt) {
    o[dt][0] *= a0;
    o[dt][1] *= a0;
    o[dt][2] *= a1;
    o[dt][3] *= a1;
  }
#pragma unroll
  for (int nt = 0; nt < kFlashK / 8; ++nt) {
    float* e = s[nt];
    e[0] = exp2_approx(__fmaf_rn(e[0], scale_log2, -n0));
    e[1] = exp2_approx(__fmaf_rn(e[1], scale_log2, -n0));
    e[2] = exp2_approx(__fmaf_rn(e[2], scale_log2, -n1));
    e[3] = exp2_approx(__fmaf_rn(e[3], scale_log2, -n1));
    l0 += e[0] + e[1];
    l1 += e[2] + e[3];
  }
  // The S accumulator of keys 16 j ... 16 j + 15 is, packed to bf16, the A fragment of P.
#pragma unroll
  for (int j = 0; j < kFlashK / 16; ++j) {
    pa[j][0] = pack_bf16(s[2 * j][0], s[2 * j][1]);
    pa[j][1] = pack_bf16(s[2 * j][2], s[2 * j][3]);
    pa[j][2] = pack_bf16(s[2 * j + 1][0], s[2 * j + 1][1]);
    pa[j][3] = pack_bf16(s[2 * j + 1][2], s[2 * j + 1][3]);
  }
}

// Grid: one block per (query tile, head), the heads of a query tile adjacent (the 4 that share a
// KV head then read its tiles from L2), the longest query tiles (most keys) first so that the
// short ones fill the tail. flash_prefill_shared<R>() bytes of dynamic shared memory. Registers
// for 4 blocks a multiprocessor with one row tile a warp (128 a thread), 2 with two.
template <int R>
__global__ void __launch_bounds__(kFlashThreads, R == 1 ? 4 : 2)
    flash_attention_prefill(const bf16* q, const bf16* k_cache, const bf16* v_cache, int n, int p0,
                            int heads, int kv_heads, float scale_log2, bf16* out) {
  wait_for_previous();
  constexpr int kQ = flash_block_queries<R>();
  extern __shared__ __align__(16) unsigned char flash_shared[];
  auto* qs = reinterpret_cast<bf16(*)[kFlashLd]>(flash_shared);
  auto* ks = reinterpret_cast<bf16(*)[kFlashK][kFlashLd]>(flash_shared +
                                                           sizeof(bf16) * kQ * kFlashLd);
  auto* vs = ks + 2;
  const int tiles_q = (n + kQ - 1) / kQ;
  const int h = blockIdx.x % heads;
  const int qt = tiles_q - 1 - blockIdx.x / heads;
  const int g = h / (heads / kv_heads);
  const int q0 = qt * kQ;
  const int kv_len = p0 + n;
  const int t = threadIdx.x, warp = t >> 5, lane = t & 31;
  const int last_key = p0 + min(q0 + kQ - 1, n - 1);
  const int tiles_k = last_key / kFlashK + 1;
  // Key tiles starting past the warp's last position are wholly masked for its rows.
  const int warp_last = p0 + q0 + (warp + 1) * 16 * R - 1;

  auto load_kv = [&](int tile, int buf) {
    for (int c = t; c < kFlashK * kFlashD / 8; c += kFlashThreads) {
      const int row = c >> 3, col = (c & 7) * 8, key = tile * kFlashK + row;
      const bool in = key < kv_len;
      const int64_t off = in ? (int64_t{key} * kv_heads + g) * kFlashD + col : 0;
      cp_async16(&ks[buf][row][col], k_cache + off, in ? 16 : 0);
      cp_async16(&vs[buf][row][col], v_cache + off, in ? 16 : 0);
    }
  };
  load_kv(0, 0);
  cp_async_commit();

  for (int c = t; c < kQ * kFlashD / 8; c += kFlashThreads) {
    const int row = c >> 3, col = (c & 7) * 8, i = q0 + row;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (i < n) v = *reinterpret_cast<const uint4*>(q + (int64_t{i} * heads + h) * kFlashD + col);
    *reinterpret_cast<uint4*>(&qs[row][col]) = v;
  }
  __syncthreads();
  // This warp's R tiles of 16 query rows as A fragments, one per 16 dims.
  uint32_t qa[R][kFlashD / 16][4];
#pragma unroll
  for (int mt = 0; mt < R; ++mt)
#pragma unroll
    for (int kk = 0; kk < kFlashD / 16; ++kk)
      ldmatrix_x4(qa[mt][kk], &qs[(warp * R + mt) * 16 + (lane & 7) + ((lane >> 3) & 1) * 8]
                                 [kk * 16 + (lane >> 4) * 8]);

  // In row tile mt the thread holds rows r0 = lane / 4 and r0 + 8 of its 16, columns
  // 2 (lane % 4) + {0, 1} of each 8-wide tile.
  const int r0 = lane >> 2, c0 = (lane & 3) * 2;
  float o[R][kFlashD / 8][4];
  // Running max (log2 units) and this thread's part of the running sum, per row.
  float m[R][2], l[R][2];
#pragma unroll
  for (int mt = 0; mt < R; ++mt) {
#pragma unroll
    for (int dt = 0; dt < kFlashD / 8; ++dt)
      o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.0f;
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0f;
  }

  for (int kt = 0; kt < tiles_k; ++kt) {
    const int buf = kt & 1;
    if (kt + 1 < tiles_k) load_kv(kt + 1, buf ^ 1);
    cp_async_commit();  // an empty group on the last tile keeps the wait count uniform
    cp_async_wait<1>();
    __syncthreads();
    const int k0 = kt * kFlashK;
    if (k0 <= warp_last) {
      float s[R][kFlashK / 8][4];
#pragma unroll
      for (int nt = 0; nt < kFlashK / 8; ++nt) {
#pragma unroll
        for (int mt = 0; mt < R; ++mt)
          s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll
        for (int kp = 0; kp < kFlashD / 32; ++kp) {
          uint32_t kb[4];
          ldmatrix_x4(kb, &ks[buf][nt * 8 + (lane & 7)][kp * 32 + (lane >> 3) * 8]);
#pragma unroll
          for (int mt = 0; mt < R; ++mt) {
            mma_bf16(s[mt][nt], qa[mt][2 * kp], kb[0], kb[1]);
            mma_bf16(s[mt][nt], qa[mt][2 * kp + 1], kb[2], kb[3]);
          }
        }
      }
      const bool diagonal = k0 + kFlashK - 1 > p0 + q0;
      uint32_t pa[R][kFlashK / 16][4];
#pragma unroll
      for (int mt = 0; mt < R; ++mt) {
        const int pos0 = p0 + q0 + (warp * R + mt) * 16 + r0, pos1 = pos0 + 8;
        softmax_tile(s[mt], k0, diagonal, pos0, pos1, c0, scale_log2, m[mt][0], m[mt][1],
                     l[mt][0], l[mt][1], o[mt], pa[mt]);
      }
#pragma unroll
      for (int j = 0; j < kFlashK / 16; ++j) {
#pragma unroll
        for (int dp = 0; dp < kFlashD / 16; ++dp) {
          uint32_t vb[4];
          ldmatrix_x4_trans(
              vb, &vs[buf][j * 16 + (lane & 7) + ((lane >> 3) & 1) * 8][dp * 16 + (lane >> 4) * 8]);
#pragma unroll
          for (int mt = 0; mt < R; ++mt) {
            mma_bf16(o[mt][2 * dp], pa[mt][j], vb[0], vb[1]);
            mma_bf16(o[mt][2 * dp + 1], pa[mt][j], vb[2], vb[3]);
          }
        }
      }
    }
    __syncthreads();  // the next iteration's loads overwrite the other buffer of this one's
  }
  cp_async_wait<0>();

  const int64_t ld = int64_t{heads} * kFlashD;
#pragma unroll
  for (int mt = 0; mt < R; ++mt) {
    float l0 = l[mt][0], l1 = l[mt][1];
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
    const int i0 = q0 + (warp * R + mt) * 16 + r0, i1 = i0 + 8;
#pragma unroll
    for (int dt = 0; dt < kFlashD / 8; ++dt) {
      const int col = h * kFlashD + dt * 8 + c0;
      if (i0 < n)
        *reinterpret_cast<__nv_bfloat162*>(out + i0 * ld + col) =
            __floats2bfloat162_rn(o[mt][dt][0] * inv0, o[mt][dt][1] * inv0);
      if (i1 < n)
        *reinterpret_cast<__nv_bfloat162*>(out + i1 * ld + col) =
            __floats2bfloat162_rn(o[mt][dt][2] * inv1, o[mt][dt][3] * inv1);
    }
  }
}

// Gives flash_attention_prefill<R> the dynamic shared memory it asks for (past 48 KB a kernel
// must ask).
template <int R>
void size_flash_prefill() {
  CHECK(cudaFuncSetAttribute(flash_attention_prefill<R>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(flash_prefill_shared<R>())));
}

#include "flash_prefill_wgmma.cuh"

// The prefill attention's kernels, each the same tiles and softmax (flash_attention_prefill),
// so the same bits: mma.sync with 16 or 32 query rows a warp, or wgmma (sm_90a builds only).
enum class FlashKernel { kMma16, kMma32, kWgmma };
inline const char* flash_kernel_name(FlashKernel k) {
  switch (k) {
    case FlashKernel::kMma16: return "mma.sync, 16 rows a warp";
    case FlashKernel::kMma32: return "mma.sync, 32 rows a warp";
    case FlashKernel::kWgmma: return "wgmma";
  }
  return "?";
}
// The default: wgmma where built (the same bits, faster), else mma.sync.
constexpr FlashKernel kFlashKernel = kFlashWgmmaBuilt ? FlashKernel::kWgmma : FlashKernel::kMma16;

// act[n, inter] = silu(gate) * up from gu[n, 2 * inter] (gate columns first, then up).
__global__ void swiglu_rows(const bf16* gu, int n, int inter, bf16* act) {
  wait_for_previous();  // a no-op unless started by programmatic dependent launch
  const int64_t vecs = int64_t{n} * inter / 8;
  const int64_t v = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (v >= vecs) return;
  const int64_t row = v / (inter / 8), col = v % (inter / 8);
  const uint4* g = reinterpret_cast<const uint4*>(gu + row * 2 * inter);
  const uint4* u = reinterpret_cast<const uint4*>(gu + row * 2 * inter + inter);
  Pack8 a, b, o;
  a.u = g[col];
  b.u = u[col];
  for (int k = 0; k < 4; ++k) {
    const float2 x = __bfloat1622float2(a.h[k]), y = __bfloat1622float2(b.h[k]);
    o.h[k] = __floats2bfloat162_rn(x.x / (1.0f + __expf(-x.x)) * y.x,
                                   x.y / (1.0f + __expf(-x.y)) * y.y);
  }
  reinterpret_cast<uint4*>(act + row * inter)[col] = o.u;
}

int blocks_for(int64_t work, int threads) {
  return static_cast<int>((work + threads - 1) / threads);
}

// ---------------------------------------------------------------------------------------------
// Device model.

void fill(cudaStream_t stream, bf16* out, int64_t count, const std::string& name, double scale,
          double offset = 0.0) {
  fill_synthetic<<<2048, 256, 0, stream>>>(out, count, kSeed, pinmark::hash_name(name), scale,
                                           offset);
  CHECK_LAUNCH(fill_synthetic);
}

// cuBLAS's workspace for the forward: an allocation of its own, so that cuBLAS allocates nothing
// while a graph is captured, and the same size in every program that runs the forward (the
// bench, the engine whose rows the goldens pin, the two-GPU bench), because cuBLAS's heuristics
// choose a product's kernel by the room they are given. The caller frees the returned
// allocation once the handle is destroyed; std::runtime_error when it cannot be had.
constexpr size_t kBlasWorkspaceBytes = size_t{64} << 20;
void* attach_blas_workspace(cublasHandle_t blas) {
  void* workspace = nullptr;
  CHECK(cudaMalloc(&workspace, kBlasWorkspaceBytes));
  CHECK(cublasSetWorkspace(blas, workspace, kBlasWorkspaceBytes));
  return workspace;
}

// The prefill's own kernels (embedding gather, norms, RoPE, attention, SwiGLU) are started by
// programmatic dependent launch: each waits for its predecessor first thing, so what is won is
// the launch's latency, 1.7% of the 1B prefill (the bench's table). false: plain launches.
constexpr bool kPrefillPdl = true;

// y[n, m] = x[n, k] w[m, k]^T (+ y when beta is 1): bf16 operands and output, fp32 accumulation.
void gemm(cublasHandle_t blas, const bf16* x, const bf16* w, int n, int k, int m, bf16* y,
          float beta = 0.0f) {
  const float alpha = 1.0f;
  CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, w, CUDA_R_16BF, k, x,
                     CUDA_R_16BF, k, &beta, y, CUDA_R_16BF, m, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT));
}

// Times on CUDA events: the benches' measurements, and TunedGemm's choice of algorithm.
struct Timer {
  cudaStream_t stream;
  // Median milliseconds of `repeats` timed calls of fn, after `warmup` untimed ones.
  double median_ms(int warmup, int repeats, const std::function<void()>& fn) const {
    for (int i = 0; i < warmup; ++i) fn();
    CHECK(cudaStreamSynchronize(stream));
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    std::vector<double> ms;
    for (int i = 0; i < repeats; ++i) {
      CHECK(cudaEventRecord(a, stream));
      fn();
      CHECK(cudaEventRecord(b, stream));
      CHECK(cudaEventSynchronize(b));
      float t = 0.0f;
      CHECK(cudaEventElapsedTime(&t, a, b));
      ms.push_back(t);
    }
    CHECK(cudaEventDestroy(a));
    CHECK(cudaEventDestroy(b));
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }
  // Median milliseconds of one `step`, captured once as a CUDA graph on the timer's stream
  // and replayed 20 times per timed call (2 calls untimed, 9 timed).
  double graph_ms(const std::function<void()>& step) const {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    step();
    CHECK(cudaStreamEndCapture(stream, &graph));
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    const int replays = 20;
    const double ms = median_ms(2, 9, [&] {
                        for (int i = 0; i < replays; ++i) CHECK(cudaGraphLaunch(exec, stream));
                      }) /
                      replays;
    CHECK(cudaGraphExecDestroy(exec));
    CHECK(cudaGraphDestroy(graph));
    return ms;
  }
};

#include "tuned_gemm.cuh"

enum Part { kLayerGemm, kAttention, kLmHead, kOther, kParts };
const char* const kPartNames[kParts] = {"layer GEMMs", "attention", "LM head", "other ops"};

// Events between the ops of one forward, so that each op's time is charged to its part.
// Recording them costs a few microseconds each, so timings with it on are a breakdown only.
class Profiler {
 public:
  explicit Profiler(cudaStream_t stream) : stream_(stream) {}
  ~Profiler() {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }
  void mark(int part) {
    if (used_ == events_.size()) {
      events_.emplace_back();
      CHECK(cudaEventCreate(&events_.back()));
    }
    CHECK(cudaEventRecord(events_[used_++], stream_));
    parts_.push_back(part);
  }
  // Milliseconds per part since the last reset; waits for the device.
  std::vector<double> totals() {
    std::vector<double> ms(kParts, 0.0);
    if (used_ == 0) return ms;
    CHECK(cudaEventSynchronize(events_[used_ - 1]));
    for (size_t i = 0; i + 1 < used_; ++i) {
      float t = 0.0f;
      CHECK(cudaEventElapsedTime(&t, events_[i], events_[i + 1]));
      if (parts_[i] < kParts) ms[parts_[i]] += t;
    }
    return ms;
  }

 private:
  cudaStream_t stream_;
  std::vector<cudaEvent_t> events_;
  std::vector<int> parts_;
  size_t used_ = 0;
};

// Writes `count` bf16 values of the weight named `name` (Hugging Face's name) to `device`.
using WeightLoader = std::function<void(bf16* device, int64_t count, const std::string& name)>;

// For timing the five kernels a layer: which of them a decode step leaves out (its results are
// then wrong).
constexpr int kSkipQkv = 1, kSkipAttention = 2, kSkipO = 4, kSkipMlp = 8;

// One rank's part of a tensor-parallel forward (bench/llama_bench_tp.cu), Megatron's split:
// the model's Dims are the rank's share (heads, KV heads and MLP width divided by the ranks;
// its WeightLoader hands it the matching rows of q, k, v, gate and up and columns of o and
// down), and after o_proj and down_proj each rank's partial products are summed across ranks
// by `all_reduce` (x[count] in place, on the model's stream). Only rank 0 adds the residual
// into its partial, so the sum carries it once. The LM head computes the logits of vocabulary
// rows [vocab_first, vocab_first + vocab_count) of the tied embedding. The default is the
// whole model on one GPU.
struct Shard {
  bool adds_residual = true;
  int vocab_first = 0, vocab_count = 0;  // 0: the whole vocabulary
  std::function<void(bf16* x, int64_t count, cudaStream_t stream)> all_reduce;
};

class DeviceModel {
 public:
  // The weights are pinmark's synthetic ones for seed kSeed, or what `load` gives when set.
  // `sequences` KV caches of cache_capacity positions each (decode() runs up to kMaxBatch of
  // them as one batch; at most max_tokens).
  DeviceModel(const Dims& d, int max_tokens, int cache_capacity, cublasHandle_t blas,
              cudaStream_t stream, const WeightLoader& load = {}, const Shard& shard = {},
              int sequences = 1)
      : d_(d),
        max_tokens_(max_tokens),
        capacity_(cache_capacity),
        sequences_(sequences),
        blas_(blas),
        stream_(stream),
        products_(blas, stream),
        shard_(shard) {
    if (shard_.vocab_count == 0) shard_.vocab_count = d.vocab - shard_.vocab_first;
    if (sequences < 1 || sequences > max_tokens)
      throw std::runtime_error("a model holds 1 to max_tokens sequences");
    auto fill = [&load](cudaStream_t s, bf16* out, int64_t count, const std::string& name,
                        double scale, double offset = 0.0) {
      if (load)
        load(out, count, name);
      else
        ::fill(s, out, count, name, scale, offset);
    };
    if (d.head_dim != 64) throw std::runtime_error("the decode attention is built for head_dim 64");
    if (d.heads % d.kv_heads != 0 || d.heads / d.kv_heads > kMaxGroup)
      throw std::runtime_error("the decode attention takes up to " + std::to_string(kMaxGroup) +
                               " query heads per KV head");
    const int64_t H = d.hidden, Q = q_dim(d), KV = kv_dim(d), I = d.inter;
    // One arena for every weight, laid out per layer as the fused products read them.
    const int64_t per_layer = 2 * H + (Q + 2 * KV) * H + H * Q + 2 * I * H + H * I;
    const int64_t weights = int64_t{d.vocab} * H + H + d.layers * per_layer;
    arena_ = alloc<bf16>(weights);
    bf16* p = arena_;
    auto take = [&](int64_t count) {
      bf16* r = p;
      p += count;
      return r;
    };
    embed_ = take(int64_t{d.vocab} * H);
    fill(stream, embed_, int64_t{d.vocab} * H, "model.embed_tokens.weight", 1.0);
    final_norm_ = take(H);
    fill(stream, final_norm_, H, "model.norm.weight", 0.1, 1.0);
    auto lin = [](int64_t in) { return std::sqrt(3.0 / static_cast<double>(in)); };
    for (int l = 0; l < d.layers; ++l) {
      const std::string n = "model.layers." + std::to_string(l) + ".";
      Layer L;
      L.attn_norm = take(H);
      fill(stream, L.attn_norm, H, n + "input_layernorm.weight", 0.1, 1.0);
      L.mlp_norm = take(H);
      fill(stream, L.mlp_norm, H, n + "post_attention_layernorm.weight", 0.1, 1.0);
      // q, k and v projections as the rows of one [q + 2 kv, hidden] matrix: one GEMM.
      L.wqkv = take((Q + 2 * KV) * H);
      fill(stream, L.wqkv, Q * H, n + "self_attn.q_proj.weight", lin(H));
      fill(stream, L.wqkv + Q * H, KV * H, n + "self_attn.k_proj.weight", lin(H));
      fill(stream, L.wqkv + (Q + KV) * H, KV * H, n + "self_attn.v_proj.weight", lin(H));
      L.wo = take(H * Q);
      fill(stream, L.wo, H * Q, n + "self_attn.o_proj.weight", lin(Q));
      L.wgu = take(2 * I * H);
      fill(stream, L.wgu, I * H, n + "mlp.gate_proj.weight", lin(H));
      fill(stream, L.wgu + I * H, I * H, n + "mlp.up_proj.weight", lin(H));
      L.wdown = take(H * I);
      fill(stream, L.wdown, H * I, n + "mlp.down_proj.weight", lin(I));
      layers_.push_back(L);
    }

    // The persistent step (decode_persistent.cuh) where its limits allow: the weights' pointers
    // on the device, its stage counters zeroed once (it zeroes them again as it ends).
    std::vector<StepLayer> step_layers;
    for (const Layer& L : layers_)
      step_layers.push_back({L.attn_norm, L.mlp_norm, L.wqkv, L.wo, L.wgu, L.wdown});
    step_layers_ = alloc<StepLayer>(d.layers);
    CHECK(cudaMemcpy(step_layers_, step_layers.data(), d.layers * sizeof(StepLayer),
                     cudaMemcpyHostToDevice));
    const int counters = persistent_step_counters(d.layers, d.kv_heads);
    step_counters_ = alloc<unsigned>(counters);
    CHECK(cudaMemset(step_counters_, 0, counters * sizeof(unsigned)));
    step_partials_ = alloc<AttentionPartial<64>>(int64_t{d.layers} * d.kv_heads * kStepSplits);
    auto product_k_fits = [](int64_t k) { return k % 8 == 0 && k <= kStepMaxK; };
    const bool step_fits = product_k_fits(H) && product_k_fits(Q) && product_k_fits(I) &&
                           H <= kStepMaxHidden && !shard_.all_reduce && shard_.adds_residual &&
                           shard_.vocab_first == 0 && shard_.vocab_count == d.vocab;
    step_blocks_ = step_fits ? persistent_step_blocks() : 0;
    if (step_blocks_ > 0 && (H + step_blocks_ - 1) / step_blocks_ > kStepResidualRows)
      step_blocks_ = 0;

    const int64_t T = max_tokens;
    x_ = alloc<bf16>(T * H);
    h_ = alloc<bf16>(T * H);
    qkv_ = alloc<bf16>(T * (Q + 2 * KV));
    q_ = alloc<bf16>(T * Q);
    att_ = alloc<bf16>(T * Q);
    gu_ = alloc<bf16>(T * 2 * I);
    act_ = alloc<bf16>(T * I);
    logits_ = alloc<bf16>(T * shard_.vocab_count);
    tokens_ = alloc<int>(T);
    cache_layer_ = int64_t{capacity_} * KV;
    seq_stride_ = d.layers * cache_layer_;
    k_cache_ = alloc<bf16>(sequences * seq_stride_);
    v_cache_ = alloc<bf16>(sequences * seq_stride_);
    // The reference's scores hold every key, the masked ones too; so do these.
    scores_ = alloc<float>(int64_t{d.heads} * T * capacity_);
    probs_ = alloc<bf16>(int64_t{d.heads} * T * capacity_);
    ptrs_ = alloc<const void*>(6 * int64_t{d.layers} * d.heads);
    const int splits = (capacity_ + kSplitKeys - 1) / kSplitKeys;
    const int batch = std::min(sequences, kMaxBatch);
    part_ = alloc<float>(int64_t{batch} * d.heads * splits * (d.head_dim + 4));
    done_ = alloc<int>(batch * d.kv_heads);
    CHECK(cudaMemset(done_, 0, batch * d.kv_heads * sizeof(int)));
    // Clusters of 16 blocks; of 512 threads where one token's clusters take at most half the
    // SMs (the small model's 4 KV heads on the H200), so that each block has more warps to hide
    // its latencies; of 256 where they take more, which measured faster there (the 1B model's 8
    // KV heads, 128 blocks). The choice depends on the model, never on the batch: a sequence's
    // bits must not change with the batch.
    int device = 0, sms = 0;
    CHECK(cudaGetDevice(&device));
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    const int threads = 2 * 16 * d.kv_heads <= sms ? 512 : 256;
    size_flash_prefill<1>();
    size_flash_prefill<2>();
    if (kFlashWgmmaBuilt)
      CHECK(cudaFuncSetAttribute(flash_attention_prefill_wgmma,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(kFlashWgmmaShared)));
    for (const auto& [cluster, block] : {std::pair{16, threads}, {16, 256}, {8, 256}})
      if (attention_cluster_ == 0 && cluster_attention_fits<64>(cluster, block)) {
        attention_cluster_ = cluster;
        attention_threads_ = block;
      }

    // Rotary angles in fp64, as the reference computes them, stored as fp32 cos and sin.
    const int half = d.head_dim / 2;
    std::vector<float> c(static_cast<size_t>(capacity_) * half), s(c.size());
    for (int pos = 0; pos < capacity_; ++pos)
      for (int j = 0; j < half; ++j) {
        const double inv = 1.0 / std::pow(d.theta, static_cast<double>(2 * j) / d.head_dim);
        const double a = static_cast<double>(pos) * inv;
        c[static_cast<size_t>(pos) * half + j] = static_cast<float>(std::cos(a));
        s[static_cast<size_t>(pos) * half + j] = static_cast<float>(std::sin(a));
      }
    cos_ = alloc<float>(static_cast<int64_t>(c.size()));
    sin_ = alloc<float>(static_cast<int64_t>(s.size()));
    CHECK(cudaMemcpy(cos_, c.data(), c.size() * sizeof(float), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(sin_, s.data(), s.size() * sizeof(float), cudaMemcpyHostToDevice));
    CHECK(cudaStreamSynchronize(stream));
  }
  ~DeviceModel() {
    for (void* b : buffers_) cudaFree(b);
  }
  DeviceModel(const DeviceModel&) = delete;
  DeviceModel& operator=(const DeviceModel&) = delete;

  const Dims& dims() const { return d_; }
  int logit_columns() const { return shard_.vocab_count; }
  bf16* logits() const { return logits_; }
  cudaStream_t stream() const { return stream_; }

  // The fused and the unfused prefill attention on what q() and layer l's cache hold now, rows
  // [0, n) of q() taken as queries at positions p0 ... p0 + n - 1: ||flash - unfused|| /
  // ||unfused|| over the n x heads x head_dim outputs, NaN if the fused one left any unwritten.
  // Overwrites the attention output buffer.
  double compare_attention(int l, int n, int p0) {
    const Dims& d = d_;
    if (n < 2 || n > max_tokens_ || p0 + n > capacity_ || l < 0 || l >= d.layers)
      throw std::runtime_error("compare_attention: bad sizes");
    const int count = d.layers * d.heads;
    attention_pointers<<<blocks_for(count, 128), 128, 0, stream_>>>(
        q_, k_cache_ + seq_ * seq_stride_, v_cache_ + seq_ * seq_stride_, scores_, probs_, att_,
        d.layers, d.heads, d.kv_heads, d.head_dim, n, p0 + n, cache_layer_, ptrs_);
    CHECK_LAUNCH(attention_pointers);
    const size_t elems = static_cast<size_t>(n) * q_dim(d);
    attention_unfused(l, n, p0);
    const std::vector<float> ref = download_bf16(att_, elems);
    CHECK(cudaMemsetAsync(att_, 0xff, elems * sizeof(bf16), stream_));  // bf16 NaN
    attention_flash(l, n, p0);
    const std::vector<float> got = download_bf16(att_, elems);
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < elems; ++i) {
      if (!std::isfinite(got[i])) return NAN;
      const double e = static_cast<double>(got[i]) - ref[i];
      num += e * e;
      den += static_cast<double>(ref[i]) * ref[i];
    }
    return std::sqrt(num / den);
  }
  // Timing: the fused prefill attention alone on what q() and layer l's cache hold now, rows as
  // for compare_attention. Overwrites the attention output buffer.
  void prefill_attention(int l, int n, int p0) { attention_flash(l, n, p0); }
  // The fused prefill attention's output (n x heads x head_dim, as float) on what q() and layer
  // l's cache hold now, rows as for compare_attention, NaN where the kernel wrote nothing.
  // Overwrites the attention output buffer.
  std::vector<float> prefill_attention_output(int l, int n, int p0) {
    const size_t elems = static_cast<size_t>(n) * q_dim(d_);
    CHECK(cudaMemsetAsync(att_, 0xff, elems * sizeof(bf16), stream_));  // bf16 NaN
    attention_flash(l, n, p0);
    return download_bf16(att_, elems);
  }
  int* tokens() const { return tokens_; }

  // One decode step (decode_kernels.cuh) for the tokens in tokens()[0, B) of sequences first ...
  // first + B - 1, token b at positions[b], B = positions.size(), 1, 2, 4 or 8; their logits go to
  // logits() rows 0 ... B - 1. Per layer: the normalised q/k/v product with rotary embedding and
  // the cache write, the split attention (which merges its own splits), the o product with the
  // residual add, the normalised gate/up product with SwiGLU, the down product with the residual
  // add; then the normalised LM head. Every kernel but the embedding gather is started by
  // programmatic dependent launch. Every sum has the same order whatever B is, so a token's
  // logits are the same bits alone and in any batch.
  // The decode attention's kernel: clusters of `cluster` blocks of `threads` threads (a shape of
  // kClusterShapes the device runs), or cluster 0 for the split kernel; std::runtime_error for
  // another shape or one that cannot run here.
  // The prefill attention's kernel; std::runtime_error for wgmma where it was not built.
  FlashKernel flash_kernel() const { return flash_kernel_; }
  void set_flash_kernel(FlashKernel k) {
    if (k == FlashKernel::kWgmma && !kFlashWgmmaBuilt)
      throw std::runtime_error("the wgmma prefill attention needs an sm_90a build");
    flash_kernel_ = k;
  }
  // The prefill's own kernels (embedding gather, norms, RoPE, attention, SwiGLU) by programmatic
  // dependent launch (the default, kPrefillPdl) or plainly. Timing only: the bits do not change.
  bool prefill_pdl() const { return prefill_pdl_; }
  void set_prefill_pdl(bool on) { prefill_pdl_ = on; }
  // The forward's products (q/k/v, o, gate/up, down, LM head) by the tuned algorithm of their
  // shape (TunedGemm, the default) or by cublasGemmEx's pick; the same bits either way.
  bool tuned_products() const { return products_.on(); }
  void set_tuned_products(bool on) { products_.set_on(on); }
  std::vector<TunedGemm::Choice> product_choices() const { return products_.choices(); }
  // Timing: layer l's prefill MLP alone on what x_ holds now (adds to it).
  void prefill_mlp(int l, int n) { mlp(layers_[l], n, nullptr); }
  int attention_cluster() const { return attention_cluster_; }
  int attention_threads() const { return attention_threads_; }
  void set_attention(int cluster, int threads) {
    if (cluster != 0 && !cluster_attention_fits<64>(cluster, threads))
      throw std::runtime_error("the decode attention cannot run in clusters of " +
                               std::to_string(cluster) + " blocks of " + std::to_string(threads) +
                               " threads here");
    attention_cluster_ = cluster;
    attention_threads_ = threads;
  }
  // Timing: where the cluster attention lets the o product's blocks start (its `trigger`: 0
  // after its wait, the default; 1 after its weighted values; 2 after its merge). The same bits.
  void set_attention_trigger(int at) {
    if (at < 0 || at > 2) throw std::runtime_error("attention_trigger is 0, 1 or 2");
    attention_trigger_ = at;
  }

  // Timing only: with tracing on, each step of the five kernels a layer records when each of
  // its kernels ran (KernelTrace: kFields values per kernel; kernel 5 l + i is stage i of layer
  // l, q/k/v, attention, o, gate/up, down; kernel 5 layers the LM head), read by trace().
  void set_trace(bool on) {
    if (on && trace_ == nullptr)
      trace_ = alloc<unsigned long long>(KernelTrace::kFields * traced_kernels());
    tracing_ = on;
  }
  int traced_kernels() const { return 5 * d_.layers + 1; }
  // When a traced kernel ran, in %globaltimer nanoseconds (KernelTrace's fields decoded); for a
  // kernel that marks phases, each phase's latest end and the sum of its lengths over blocks in
  // SM clock cycles.
  struct KernelTimes {
    double first_start, last_start, waited, end;
    double phase_end[KernelTrace::kPhases], phase_sum[KernelTrace::kPhases];
  };
  std::vector<KernelTimes> trace() const {
    constexpr int F = KernelTrace::kFields, P = KernelTrace::kPhases;
    std::vector<unsigned long long> at(F * traced_kernels());
    CHECK(cudaStreamSynchronize(stream_));
    CHECK(cudaMemcpy(at.data(), trace_, sizeof(at[0]) * at.size(), cudaMemcpyDeviceToHost));
    std::vector<KernelTimes> times(traced_kernels());
    for (size_t k = 0; k < times.size(); ++k) {
      const unsigned long long* a = &at[F * k];
      times[k] = {static_cast<double>(~a[KernelTrace::kStart]), static_cast<double>(a[1]),
                  static_cast<double>(a[KernelTrace::kWaited]),
                  static_cast<double>(a[KernelTrace::kEnd]), {}, {}};
      for (int i = 0; i < P; ++i) {
        times[k].phase_end[i] = static_cast<double>(a[4 + i]);
        times[k].phase_sum[i] = static_cast<double>(a[4 + P + i]);
      }
    }
    return times;
  }

  // Blocks of the persistent decode step (0: it cannot run here, or for this model), and whether
  // decode() runs it for one token without a profiler: after set_persistent(true), never by
  // default (it measured slower than the five kernels a layer: docs/performance.md).
  int persistent_blocks() const { return step_blocks_; }
  bool persistent() const { return step_blocks_ > 0 && persistent_; }
  void set_persistent(bool on) { persistent_ = on; }
  // For timing the parts of a step: what it leaves out (kLeaveOut* bits for the persistent step,
  // kSkip* bits for the five kernels; 0 for a step).
  void set_leave_out(int bits) { leave_out_ = bits; }
  // Weight chunks (16 KB) each block of the persistent step prefetches into L2 ahead of its ring.
  int prefetch_chunks() const { return prefetch_chunks_; }
  void set_prefetch_chunks(int chunks) { prefetch_chunks_ = chunks; }
  // Rows (1 to 4) a computing warp of the persistent step sums at once, as independent chains.
  int rows_per_warp() const { return rows_per_warp_; }
  void set_rows_per_warp(int rows) {
    if (rows < 1 || rows > 4) throw std::runtime_error("rows_per_warp is 1 to 4");
    rows_per_warp_ = rows;
  }

  void decode(int first, const std::vector<int>& positions, Profiler* prof = nullptr) {
    const Dims& d = d_;
    const int B = static_cast<int>(positions.size());
    if (B < 1 || B > kMaxBatch || first < 0 || first + B > sequences_)
      throw std::runtime_error("decode: bad batch");
    DecodeRows rows;
    rows.count = B;
    rows.seq_stride = seq_stride_;
    for (int b = 0; b < B; ++b) {
      if (positions[b] < 0 || positions[b] >= capacity_)
        throw std::runtime_error("decode: position past the cache");
      rows.pos[b] = positions[b];
    }
    const int H = d.hidden, Q = static_cast<int>(q_dim(d)), I = d.inter, hd = d.head_dim;
    const float eps = static_cast<float>(d.eps);
    const bool residual = shard_.adds_residual;
    const int64_t base = first * seq_stride_;
    const int splits = (*std::max_element(positions.begin(), positions.end()) + kSplitKeys) /
                       kSplitKeys;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    auto mark = [&](int part) {
      if (prof) prof->mark(part);
    };
    if (B == 1 && prof == nullptr && persistent()) {
      StepParams p = {};
      p.layers = step_layers_;
      p.layer_count = d.layers;
      p.hidden = H;
      p.heads = d.heads;
      p.kv_heads = d.kv_heads;
      p.inter = I;
      p.vocab = d.vocab;
      p.eps = eps;
      p.scale = scale;
      p.embed = embed_;
      p.final_norm = final_norm_;
      p.token = tokens_;
      p.pos = positions[0];
      p.k_cache = k_cache_ + base;
      p.v_cache = v_cache_ + base;
      p.cache_layer = cache_layer_;
      p.cos_t = cos_;
      p.sin_t = sin_;
      p.x = x_;
      p.qkv = qkv_;
      p.att = att_;
      p.gu = gu_;
      p.logits = logits_;
      p.counters = step_counters_;
      p.leave_out = leave_out_;
      p.partials = step_partials_;
      p.prefetch_chunks = prefetch_chunks_;
      p.rows_per_warp = rows_per_warp_;
      launch_persistent_step(step_blocks_, stream_, p);
      return;
    }
    mark(kOther);
    embed_rows<<<B, 128, 0, stream_>>>(embed_, tokens_, H, x_);
    CHECK_LAUNCH(embed_rows);
    const int skip = prof == nullptr ? leave_out_ : 0;
    if (tracing_)
      CHECK(cudaMemsetAsync(
          trace_, 0, sizeof(unsigned long long) * KernelTrace::kFields * traced_kernels(),
          stream_));
    auto traced = [&](int kernel) {
      return KernelTrace{tracing_ ? trace_ + KernelTrace::kFields * kernel : nullptr};
    };
    for (int l = 0; l < d.layers; ++l) {
      const Layer& L = layers_[l];
      bf16* kc = k_cache_ + base + l * cache_layer_;
      bf16* vc = v_cache_ + base + l * cache_layer_;
      mark(kLayerGemm);
      if (!(skip & kSkipQkv))
        launch_decode_gemv<4, 1, 8>(B, stream_, x_, L.attn_norm, eps, L.wqkv, H,
                                    (d.heads + 2 * d.kv_heads) * hd / 2,
                                    ToRopeCache{d.heads, d.kv_heads, hd, rows, cos_, sin_, q_, kc,
                                                vc},
                                    traced(5 * l));
      mark(kAttention);
      if (!(skip & kSkipAttention) && attention_cluster_ > 0)
        launch_cluster_attention<64>(attention_cluster_, attention_threads_, B, stream_, q_, kc,
                                     vc, rows, d.kv_heads, d.heads / d.kv_heads, scale, att_,
                                     traced(5 * l + 1), attention_trigger_);
      else if (!(skip & kSkipAttention))
        launch_dependent(decode_attention_split<64>, dim3(d.kv_heads, splits, B),
                         dim3(kSplitThreads), 0, stream_, q_, kc, vc, rows, d.kv_heads,
                         d.heads / d.kv_heads, scale, part_, done_, att_, traced(5 * l + 1));
      mark(kLayerGemm);
      if (!(skip & kSkipO))
        launch_decode_gemv<4, 1, 8>(B, stream_, att_, nullptr, 0.0f, L.wo, Q, (H + 1) / 2,
                                    ToRows<2>{x_, H, residual}, traced(5 * l + 2));
      if (shard_.all_reduce) shard_.all_reduce(x_, int64_t{B} * H, stream_);
      if (!(skip & kSkipMlp)) {
        launch_decode_gemv<8, 1, 8>(B, stream_, x_, L.mlp_norm, eps, L.wgu, H, I,
                                    ToSwiglu{act_, I}, traced(5 * l + 3));
        launch_decode_gemv<8, 4, 8>(B, stream_, act_, nullptr, 0.0f, L.wdown, I, (H + 1) / 2,
                                    ToRows<2>{x_, H, residual}, traced(5 * l + 4));
      }
      if (shard_.all_reduce) shard_.all_reduce(x_, int64_t{B} * H, stream_);
    }
    mark(kLmHead);
    const int vocab = shard_.vocab_count;
    launch_decode_gemv<8, 1, 4>(B, stream_, x_, final_norm_, eps,
                                embed_ + int64_t{shard_.vocab_first} * H, H, (vocab + 3) / 4,
                                ToRows<4>{logits_, vocab, false}, traced(5 * d.layers));
    mark(kParts);
  }

  // Runs the tokens already in tokens()[0, n) of sequence `seq` at positions p0 ... p0 + n - 1,
  // writing their keys and values into its cache, and the logits of the last `logit_rows` of them
  // into logits().
  void forward(int n, int p0, int logit_rows, Profiler* prof = nullptr, int seq = 0) {
    if (n < 1 || n > max_tokens_ || p0 + n > capacity_ || logit_rows < 1 || logit_rows > n ||
        seq < 0 || seq >= sequences_)
      throw std::runtime_error("forward: bad sizes");
    if (n == 1) {
      decode(seq, {p0}, prof);
      return;
    }
    seq_ = seq;
    const Dims& d = d_;
    const int H = d.hidden, Q = static_cast<int>(q_dim(d)), KV = static_cast<int>(kv_dim(d));
    const int kv_len = p0 + n;
    const float eps = static_cast<float>(d.eps);
    const float residual = shard_.adds_residual ? 1.0f : 0.0f;
    auto mark = [&](int part) {
      if (prof) prof->mark(part);
    };

    mark(kOther);
    launch_prefill(embed_rows, n, 128, 0, embed_, tokens_, H, x_);
    if (n > 1 && !kFlashPrefill) {
      mark(kAttention);
      const int count = d.layers * d.heads;
      attention_pointers<<<blocks_for(count, 128), 128, 0, stream_>>>(
          q_, k_cache_ + seq_ * seq_stride_, v_cache_ + seq_ * seq_stride_, scores_, probs_, att_,
          d.layers, d.heads, d.kv_heads, d.head_dim, n, kv_len, cache_layer_, ptrs_);
      CHECK_LAUNCH(attention_pointers);
    }
    for (int l = 0; l < d.layers; ++l) {
      const Layer& L = layers_[l];
      bf16* kc = k_cache_ + seq_ * seq_stride_ + l * cache_layer_;
      bf16* vc = v_cache_ + seq_ * seq_stride_ + l * cache_layer_;
      mark(kOther);
      launch_prefill(rmsnorm_rows, n, 256, 0, x_, L.attn_norm, H, eps, h_);
      mark(kLayerGemm);
      products_.run(h_, L.wqkv, n, H, Q + 2 * KV, qkv_);
      mark(kOther);
      // A thread for each 8 rotated pairs.
      const int64_t chunks = int64_t{n} * (d.heads + 2 * d.kv_heads) * (d.head_dim / 16);
      launch_prefill(rope_and_cache, blocks_for(chunks, 256), 256, 0, qkv_, n, p0, d.heads,
                     d.kv_heads, d.head_dim, cos_, sin_, q_, kc, vc);
      mark(kAttention);
      attention(l, n, p0);
      mark(kLayerGemm);
      products_.run(att_, L.wo, n, Q, H, x_, residual);  // the residual add rides on beta = 1
      if (shard_.all_reduce) shard_.all_reduce(x_, int64_t{n} * H, stream_);
      mlp(L, n, prof);
    }
    mark(kOther);
    launch_prefill(rmsnorm_rows, logit_rows, 256, 0, x_ + int64_t{n - logit_rows} * H,
                   final_norm_, H, eps, h_);
    mark(kLmHead);
    products_.run(h_, embed_ + int64_t{shard_.vocab_first} * H, logit_rows, H,
                  shard_.vocab_count, logits_);
    mark(kParts);
  }

 private:
  struct Layer {
    bf16 *attn_norm, *mlp_norm, *wqkv, *wo, *wgu, *wdown;
  };

  // Launches one of the prefill's own kernels on the stream: by programmatic dependent launch
  // when prefill_pdl_ is set (the kernel waits for its predecessor first thing, so only the
  // launch's latency is hidden), else plainly.
  template <class... Params, class... Args>
  void launch_prefill(void (*kernel)(Params...), int grid, int block, size_t shared,
                      Args&&... args) {
    if (prefill_pdl_) {
      launch_dependent(kernel, dim3(grid), dim3(block), shared, stream_,
                       std::forward<Args>(args)...);
    } else {
      kernel<<<grid, block, shared, stream_>>>(std::forward<Args>(args)...);
      CHECK(cudaGetLastError());
    }
  }

  // A prefill layer's MLP on rows [0, n) of x_: the RMSNorm, the gate/up product, SwiGLU, the
  // down product with the residual add.
  void mlp(const Layer& L, int n, Profiler* prof) {
    const Dims& d = d_;
    const int H = d.hidden;
    auto mark = [&](int part) {
      if (prof) prof->mark(part);
    };
    mark(kOther);
    launch_prefill(rmsnorm_rows, n, 256, 0, x_, L.mlp_norm, H, static_cast<float>(d.eps), h_);
    mark(kLayerGemm);
    products_.run(h_, L.wgu, n, H, 2 * d.inter, gu_);
    mark(kOther);
    launch_prefill(swiglu_rows, blocks_for(int64_t{n} * d.inter / 8, 256), 256, 0, gu_, n,
                   d.inter, act_);
    mark(kLayerGemm);
    products_.run(act_, L.wdown, n, d.inter, H, x_, shard_.adds_residual ? 1.0f : 0.0f);
    if (shard_.all_reduce) shard_.all_reduce(x_, int64_t{n} * H, stream_);
  }

  std::vector<float> download_bf16(const bf16* src, size_t count) const {
    std::vector<uint16_t> raw(count);
    CHECK(cudaMemcpyAsync(raw.data(), src, count * sizeof(bf16), cudaMemcpyDeviceToHost,
                          stream_));
    CHECK(cudaStreamSynchronize(stream_));
    std::vector<float> out(count);
    for (size_t i = 0; i < count; ++i) {
      const uint32_t bits = static_cast<uint32_t>(raw[i]) << 16;
      std::memcpy(&out[i], &bits, sizeof(float));
    }
    return out;
  }

  template <class T>
  T* alloc(int64_t count) {
    void* p = nullptr;
    CHECK(cudaMalloc(&p, static_cast<size_t>(count) * sizeof(T)));
    buffers_.push_back(p);
    return static_cast<T*>(p);
  }

  // Prefill attention of sequence seq_.
  void attention(int l, int n, int p0) {
    if (kFlashPrefill)
      attention_flash(l, n, p0);
    else
      attention_unfused(l, n, p0);
  }

  void attention_flash(int l, int n, int p0) {
    const Dims& d = d_;
    const float scale_log2 = 1.4426950408889634f / std::sqrt(static_cast<float>(d.head_dim));
    const bf16* kc = k_cache_ + seq_ * seq_stride_ + l * cache_layer_;
    const bf16* vc = v_cache_ + seq_ * seq_stride_ + l * cache_layer_;
    if (flash_kernel_ == FlashKernel::kWgmma) {
      launch_prefill(flash_attention_prefill_wgmma, (n + 63) / 64 * d_.heads, kFlashThreads,
                     kFlashWgmmaShared, q_, kc, vc, n, p0, d_.heads, d_.kv_heads, scale_log2, att_);
    } else if (flash_kernel_ == FlashKernel::kMma32) {
      launch_flash<2>(n, p0, kc, vc, scale_log2);
    } else {
      launch_flash<1>(n, p0, kc, vc, scale_log2);
    }
  }
  template <int R>
  void launch_flash(int n, int p0, const bf16* kc, const bf16* vc, float scale_log2) {
    const int tiles_q = (n + flash_block_queries<R>() - 1) / flash_block_queries<R>();
    launch_prefill(flash_attention_prefill<R>, tiles_q * d_.heads, kFlashThreads,
                   flash_prefill_shared<R>(), q_, kc, vc, n, p0, d_.heads, d_.kv_heads, scale_log2,
                   att_);
  }

  // Prefill: scores = scale * Q K^T and out = P V as batched cuBLAS products over the heads,
  // each head's K and V those of its KV head, the causal softmax between them. Reads the pointer
  // arrays attention_pointers wrote for this n and kv_len.
  void attention_unfused(int l, int n, int p0) {
    const Dims& d = d_;
    const int kv_len = p0 + n, hd = d.head_dim;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const int64_t count = int64_t{d.layers} * d.heads, at = int64_t{l} * d.heads;
    const void* const* k = ptrs_ + 0 * count + at;
    const void* const* v = ptrs_ + 1 * count + at;
    const void* const* q = ptrs_ + 2 * count + at;
    void* const* s = const_cast<void* const*>(ptrs_ + 3 * count + at);
    const void* const* p = ptrs_ + 4 * count + at;
    void* const* o = const_cast<void* const*>(ptrs_ + 5 * count + at);
    const float zero = 0.0f, one = 1.0f;
    const int q_ld = d.heads * hd, kv_ld = d.kv_heads * hd;
    CHECK(cublasGemmBatchedEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, kv_len, n, hd, &scale, k,
                              CUDA_R_16BF, kv_ld, q, CUDA_R_16BF, q_ld, &zero, s, CUDA_R_32F,
                              kv_len, d.heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    causal_softmax<<<d.heads * n, 256, 0, stream_>>>(scores_, n, kv_len, p0, probs_);
    CHECK_LAUNCH(causal_softmax);
    CHECK(cublasGemmBatchedEx(blas_, CUBLAS_OP_N, CUBLAS_OP_N, hd, n, kv_len, &one, v,
                              CUDA_R_16BF, kv_ld, p, CUDA_R_16BF, kv_len, &zero, o, CUDA_R_16BF,
                              q_ld, d.heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  Dims d_;
  int max_tokens_, capacity_, sequences_;
  int seq_ = 0;  // the sequence a prefill forward() runs
  cublasHandle_t blas_;
  cudaStream_t stream_;
  TunedGemm products_;  // the forward's products, gemm()'s bits by the fastest such algorithm
  Shard shard_;
  std::vector<void*> buffers_;
  bf16 *arena_, *embed_, *final_norm_;
  std::vector<Layer> layers_;
  bf16 *x_, *h_, *qkv_, *q_, *att_, *gu_, *act_, *logits_;
  int* tokens_;
  int64_t cache_layer_, seq_stride_;  // values per layer of one sequence's cache; per sequence
  bf16 *k_cache_, *v_cache_;
  float *scores_, *cos_, *sin_, *part_;
  int* done_;  // per KV head, the decode attention's finished splits
  // Blocks per cluster of the decode attention (decode_attention_cluster), the largest of 16 and
  // 8 the device runs; 0: the split kernel (decode_attention_split).
  int attention_cluster_ = 0;
  int attention_threads_ = 256;
  FlashKernel flash_kernel_ = kFlashKernel;
  bool prefill_pdl_ = kPrefillPdl;
  StepLayer* step_layers_;
  unsigned* step_counters_;
  int step_blocks_ = 0;
  bool persistent_ = false;
  int leave_out_ = 0;
  int prefetch_chunks_ = 0;
  bool tracing_ = false;
  int attention_trigger_ = 0;
  unsigned long long* trace_ = nullptr;
  int rows_per_warp_ = 4;
  AttentionPartial<64>* step_partials_;
  bf16* probs_;
  const void** ptrs_;
};

void upload_tokens(DeviceModel& m, const std::vector<int>& t, cudaStream_t stream) {
  CHECK(cudaMemcpyAsync(m.tokens(), t.data(), t.size() * sizeof(int), cudaMemcpyHostToDevice,
                        stream));
  CHECK(cudaStreamSynchronize(stream));
}

// On the model's stream, after what it runs: a plain cudaMemcpy would not wait for a stream
// created non-blocking.
std::vector<float> download_logits(const DeviceModel& m, int rows) {
  std::vector<uint16_t> raw(static_cast<size_t>(rows) * m.logit_columns());
  CHECK(cudaMemcpyAsync(raw.data(), m.logits(), raw.size() * sizeof(uint16_t),
                        cudaMemcpyDeviceToHost, m.stream()));
  CHECK(cudaStreamSynchronize(m.stream()));
  std::vector<float> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    const uint32_t bits = static_cast<uint32_t>(raw[i]) << 16;
    std::memcpy(&out[i], &bits, sizeof(float));
  }
  return out;
}

}  // namespace
