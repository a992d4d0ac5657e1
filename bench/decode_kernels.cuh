// The decode step's kernels (one token, batch 1): matrix-vector products that stream each weight
// once, each fused with what surrounds it in the forward, and a split attention that merges its
// own splits, so that a step is 5 kernels a layer instead of 9. Each is started by programmatic
// dependent launch (device_common.cuh) and reads what no earlier kernel of the step writes (the
// weights, the cache rows of earlier positions) before it waits for its predecessor.
//
// decode_gemv computes x . w^T for w [m, k] in Hugging Face's Linear layout, optionally
// RMS-normalising x first, and hands each warp's dot products to an epilogue (the Out type):
//   ToRows       y[r] = dot (+ y[r]): the o and down projections with their residual add, and
//                the LM head;
//   ToRopeCache  the fused q/k/v projection: rotary embedding of q and k at the step's position,
//                q to its buffer, k and v into the cache row;
//   ToSwiglu     the fused gate/up projection: act[r] = silu(gate[r]) * up[r].
// Rounding is the unfused forward's: every product is summed in fp32 and rounded to bf16 before
// the next op reads it (rope, SwiGLU and the residual add each read the rounded values, and the
// residual add rounds once, as the GEMM with beta = 1 does). Every sum has a fixed order that
// depends on neither the grid nor the device's size, so the bits are the same on every run; it
// is not cuBLAS's order, so the decode step's logits differ from the prefill path's in the last
// bf16 bits.
#pragma once

#include <cuda_bf16.h>
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "bench/device_common.cuh"
#include "runtime/cuda/cuda_check.h"

namespace {

__device__ __forceinline__ float dot8(uint4 a, uint4 b, float acc) {
  Pack8 p, q;
  p.u = a;
  q.u = b;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 f = __bfloat1622float2(p.h[k]), g = __bfloat1622float2(q.h[k]);
    acc = fmaf(f.x, g.x, acc);
    acc = fmaf(f.y, g.y, acc);
  }
  return acc;
}

// A 16-byte weight load, cache-streaming (evict first: a decode step reads each weight once,
// and the cache's rows and the activations are what L2 should keep). volatile keeps it where
// it is written, before the wait for the previous kernel.
__device__ __forceinline__ uint4 load_weight(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.cs.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ float round_bf16(float v) {
  return __bfloat162float(__float2bfloat16_rn(v));
}

// Rotary embedding of the pair (x1, x2) = elements j and j + hd/2 of a head, both already
// rounded to bf16, by the angle whose cosine and sine are c and s; each result rounded to bf16.
// One function for the five-kernel step and the persistent one (decode_persistent.cuh), so
// that both compile the same arithmetic.
__device__ __forceinline__ void rope_pair(float x1, float x2, float c, float s, bf16* lo,
                                          bf16* hi) {
  *lo = __float2bfloat16_rn(x1 * c - x2 * s);
  *hi = __float2bfloat16_rn(x2 * c + x1 * s);
}

// SwiGLU of a gate and an up value, each already rounded to bf16.
__device__ __forceinline__ bf16 swiglu_value(float g, float u) {
  return __float2bfloat16_rn(g / (1.0f + __expf(-g)) * u);
}

// RMSNorm's pieces (y = x / sqrt(mean(x^2) + eps) * w in fp32, rounded to bf16): a chunk of 8
// added to a running sum of squares, the inverse root of the finished sum, a chunk normalised.
__device__ __forceinline__ float add_squares8(uint4 x, float ss) {
  Pack8 p;
  p.u = x;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = __bfloat1622float2(p.h[j]);
    ss += f.x * f.x + f.y * f.y;
  }
  return ss;
}
__device__ __forceinline__ float rms_inverse(float sum, int k, float eps) {
  return 1.0f / sqrtf(sum / static_cast<float>(k) + eps);
}
__device__ __forceinline__ uint4 normalise8(uint4 x, uint4 w, float inv) {
  Pack8 p, q, o;
  p.u = x;
  q.u = w;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 a = __bfloat1622float2(p.h[j]), b = __bfloat1622float2(q.h[j]);
    o.h[j] = __floats2bfloat162_rn((a.x * inv) * b.x, (a.y * inv) * b.y);
  }
  return o.u;
}

// The tokens of one decode step: token b (b < count) is sequence b's, at position pos[b]; its
// cache rows lie seq_stride values after sequence b - 1's. Passed by value, so a captured graph
// keeps them.
constexpr int kMaxBatch = 8;
struct DecodeRows {
  int count = 1;
  int pos[kMaxBatch] = {};
  int64_t seq_stride = 0;
};

// Timing only: when a kernel of a decode step ran, in %globaltimer nanoseconds (PTX ISA, "Special
// Registers"). at[0] holds 2^64 - 1 minus the first block's start (so that every field is a
// maximum or a sum and zeroes reset them all), at[1] the last block's start, at[2] the last
// return from the wait for the previous kernel, at[3] the last block's end (thread 0's). A kernel
// that marks phases after its wait (the cluster attention) adds, for phase k < kPhases, the
// latest end of it in any block at[4 + k] (%globaltimer) and the sum over blocks of its length
// in SM clock cycles (clock64, from the block's previous mark) at[4 + kPhases + k]: a phase
// lasts a few hundred nanoseconds, which a sum of cycles counts exactly. Null: nothing is
// recorded.
struct KernelTrace {
  unsigned long long* at = nullptr;
  static constexpr int kStart = 0, kWaited = 2, kEnd = 3, kPhases = 6, kFields = 4 + 2 * kPhases;
  __device__ __forceinline__ void mark(int what) const {
    if (at == nullptr || threadIdx.x != 0) return;
    const unsigned long long now = clock_now();
    if (what == kStart) {
      atomicMax(&at[0], ~now);
      atomicMax(&at[1], now);
    } else {
      atomicMax(&at[what], now);
    }
  }
  // Phase k of this block ended; `last` is the clock64 value of the block's previous mark (start
  // it with clock64() after the wait).
  __device__ __forceinline__ void phase(int k, long long& last) const {
    if (at == nullptr || threadIdx.x != 0) return;
    const long long cycles = clock64();
    atomicMax(&at[4 + k], clock_now());
    atomicAdd(&at[4 + kPhases + k], static_cast<unsigned long long>(cycles - last));
    last = cycles;
  }
  static __device__ __forceinline__ unsigned long long clock_now() {
    unsigned long long now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    return now;
  }
};

// y[b, r] = dot (+ y[b, r] when add_into): R consecutive rows per slot, m rows in all.
template <int R>
struct ToRows {
  static constexpr int kRows = R;
  bf16* y;
  int m;
  bool add_into;
  __device__ int64_t row(int slot, int i) const { return min(slot * R + i, m - 1); }
  __device__ void store(int slot, int b, const float (&dot)[R]) const {
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const int r = slot * R + i;
      bf16* out = y + int64_t{b} * m + r;
      if (r < m) *out = __float2bfloat16_rn(add_into ? dot[i] + __bfloat162float(*out) : dot[i]);
    }
  }
};

// The fused q/k/v product [(heads + 2 kv_heads) hd, hidden]: slot s computes elements j and
// j + hd/2 of head s / (hd/2), j = s % (hd/2), the pair that rotary embedding rotates together
// (Hugging Face's half-split layout). For token b, q and k heads are rotated by the angle of its
// position (cos/sin tables [positions, hd/2], fp64 angles stored as fp32); q goes to
// q_out [b, heads, hd], k and v to the token's cache rows [kv_heads, hd] of the layer whose
// sequence-0 caches start at k_cache and v_cache.
struct ToRopeCache {
  static constexpr int kRows = 2;
  int heads, kv_heads, hd;
  DecodeRows rows;
  const float *cos_t, *sin_t;
  bf16 *q_out, *k_cache, *v_cache;
  __device__ int64_t row(int slot, int i) const {
    const int half = hd / 2;
    return int64_t{slot / half} * hd + slot % half + i * half;
  }
  __device__ void store(int slot, int b, const float (&dot)[2]) const {
    const int half = hd / 2, head = slot / half, j = slot % half, pos = rows.pos[b];
    const int64_t cache_row = b * rows.seq_stride + int64_t{pos} * kv_heads * hd;
    const float x1 = round_bf16(dot[0]), x2 = round_bf16(dot[1]);
    if (head >= heads + kv_heads) {
      bf16* v = v_cache + cache_row + int64_t{head - heads - kv_heads} * hd;
      v[j] = __float2bfloat16_rn(x1);
      v[j + half] = __float2bfloat16_rn(x2);
      return;
    }
    const float c = cos_t[int64_t{pos} * half + j], s = sin_t[int64_t{pos} * half + j];
    bf16* dst = head < heads ? q_out + (int64_t{b} * heads + head) * hd
                             : k_cache + cache_row + int64_t{head - heads} * hd;
    rope_pair(x1, x2, c, s, &dst[j], &dst[j + half]);
  }
};

// The fused gate/up product [2 inter, hidden], gate rows first: slot s computes gate row s and
// up row inter + s and stores act[b, s] = silu(gate) * up.
struct ToSwiglu {
  static constexpr int kRows = 2;
  bf16* act;
  int inter;
  __device__ int64_t row(int slot, int i) const { return slot + int64_t{i} * inter; }
  __device__ void store(int slot, int b, const float (&dot)[2]) const {
    const float g = round_bf16(dot[0]), u = round_bf16(dot[1]);
    act[int64_t{b} * inter + slot] = swiglu_value(g, u);
  }
};

// Stages the kBatch rows of x[kBatch, k] in xs[kBatch, k / 8] as the products read them: as they
// are, or each RMS-normalised with weight norm_w (y = x / sqrt(mean(x^2) + eps) * w in fp32,
// rounded to bf16, as rmsnorm_rows computes it), norm_w then staged in ws[k / 8] on the way so
// that x and w are loaded together. Each row's sums are the same whatever kBatch is. Ends with a
// barrier.
template <int kBatch>
__device__ void stage_input(const bf16* x, const bf16* norm_w, float eps, int k, uint4* xs,
                            uint4* ws, float* scratch) {
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  const int vecs = k / 8;
  if (norm_w == nullptr) {
    for (int c = threadIdx.x; c < kBatch * vecs; c += blockDim.x) xs[c] = xv[c];
    __syncthreads();
    return;
  }
  const uint4* wv = reinterpret_cast<const uint4*>(norm_w);
  float ss[kBatch];
#pragma unroll
  for (int b = 0; b < kBatch; ++b) ss[b] = 0.0f;
  for (int c = threadIdx.x; c < vecs; c += blockDim.x) {
    ws[c] = wv[c];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const uint4 xc = xv[b * vecs + c];
      xs[b * vecs + c] = xc;
      ss[b] = add_squares8(xc, ss[b]);
    }
  }
  float inv[kBatch];
#pragma unroll
  for (int b = 0; b < kBatch; ++b) {
    // Its barriers also publish xs and ws.
    inv[b] = rms_inverse(block_reduce<false>(ss[b], scratch), k, eps);
  }
  for (int c = threadIdx.x; c < vecs; c += blockDim.x) {
    const uint4 wc = ws[c];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) xs[b * vecs + c] = normalise8(xs[b * vecs + c], wc, inv[b]);
  }
  __syncthreads();
}

// x[kBatch, k] (each row normalised first when norm_w is not null) against `slots` slots of
// Out::kRows rows of w [m, k], k a multiple of 8. A block of kWarps warps takes kWarps / kParts
// slots, kParts warps to a slot, each warp a share of k: warp part p, lane l adds the 8-element
// chunks p * 32 + l + 32 kParts j, j = 0, 1, ... of its rows in order; the lanes are added by a
// butterfly, then the parts in order 0, 1, ... Every token of the batch is summed in that same
// order, so a token's bits do not depend on the batch it is in (batch invariance). A lane
// loads kUnroll chunks of each row at once: a decode step's speed is the bytes in flight, so the
// configurations below choose kUnroll and kParts to load a slot's rows in one round where the
// registers allow.
template <int kWarps, int kParts, int kUnroll, int kBatch, class Out>
__global__ void __launch_bounds__(kWarps * 32)
    decode_gemv(const bf16* x, const bf16* norm_w, float eps, const bf16* w, int k, int slots,
                Out out, KernelTrace trace) {
  static_assert(kWarps % kParts == 0, "a block's warps split into whole slots");
  constexpr int R = Out::kRows, U = kUnroll, kSlots = kWarps / kParts, kStride = 32 * kParts;
  extern __shared__ uint4 xs[];
  __shared__ float scratch[32];
  __shared__ float partial[kWarps][kBatch][R];
  trace.mark(KernelTrace::kStart);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int part = warp % kParts;
  const int slot = blockIdx.x * kSlots + warp / kParts;
  const int live = min(slot, slots - 1);  // a warp past the last slot stores nothing
  const int vecs = k / 8, first = part * 32 + lane;
  const uint4* rows[R];
#pragma unroll
  for (int i = 0; i < R; ++i) rows[i] = reinterpret_cast<const uint4*>(w + out.row(live, i) * k);
  uint4 wv[R][U];
  auto load = [&](int base) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = base + u * kStride;
#pragma unroll
      for (int i = 0; i < R; ++i)
        wv[i][u] = c < vecs ? load_weight(rows[i] + c) : make_uint4(0, 0, 0, 0);
    }
  };
  load(first);  // weights: no kernel writes them, so they are loaded before the wait
  // The wait takes the loaded words as an input: without it the compiler issues the loads after
  // the wait, next to their first use, and nothing overlaps the previous kernel.
  uint32_t loaded = 0;
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int u = 0; u < U; ++u) loaded ^= wv[i][u].x ^ wv[i][u].y ^ wv[i][u].z ^ wv[i][u].w;
  wait_for_previous(loaded);
  trace.mark(KernelTrace::kWaited);
  start_next();
  stage_input<kBatch>(x, norm_w, eps, k, xs, xs + kBatch * vecs, scratch);
  float acc[kBatch][R];
#pragma unroll
  for (int b = 0; b < kBatch; ++b)
#pragma unroll
    for (int i = 0; i < R; ++i) acc[b][i] = 0.0f;
  for (int base = first;;) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = base + u * kStride;
      if (c < vecs) {
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
          const uint4 xc = xs[b * vecs + c];
#pragma unroll
          for (int i = 0; i < R; ++i) acc[b][i] = dot8(wv[i][u], xc, acc[b][i]);
        }
      }
    }
    base += U * kStride;
    if (base >= vecs) break;
    load(base);
  }
#pragma unroll
  for (int b = 0; b < kBatch; ++b)
#pragma unroll
    for (int i = 0; i < R; ++i) acc[b][i] = warp_sum(acc[b][i]);
  if (kParts == 1) {
    if (lane == 0 && slot < slots)
#pragma unroll
      for (int b = 0; b < kBatch; ++b) out.store(slot, b, acc[b]);
    trace.mark(KernelTrace::kEnd);
    return;
  }
  if (lane == 0) {
#pragma unroll
    for (int b = 0; b < kBatch; ++b)
#pragma unroll
      for (int i = 0; i < R; ++i) partial[warp][b][i] = acc[b][i];
  }
  __syncthreads();
  if (part == 0 && lane == 0 && slot < slots) {
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
#pragma unroll
      for (int i = 0; i < R; ++i) {
        acc[b][i] = partial[warp][b][i];
        for (int p = 1; p < kParts; ++p) acc[b][i] += partial[warp + p][b][i];
      }
      out.store(slot, b, acc[b]);
    }
  }
  trace.mark(KernelTrace::kEnd);
}

// Launches decode_gemv over `slots` slots for the kBatch rows of x; a block past 48 KB of
// staged rows asks for the shared memory first.
template <int kWarps, int kParts, int kUnroll, int kBatch, class Out>
void launch_decode_gemv_for(cudaStream_t stream, const bf16* x, const bf16* norm_w, float eps,
                            const bf16* w, int k, int slots, const Out& out,
                            const KernelTrace& trace) {
  constexpr int kSlots = kWarps / kParts;
  const size_t shared = static_cast<size_t>((norm_w ? kBatch + 1 : kBatch) * k) * sizeof(bf16);
  auto kernel = decode_gemv<kWarps, kParts, kUnroll, kBatch, Out>;
  static size_t allowed = 48 << 10;  // what a kernel may take without asking
  if (shared > allowed) {
    PINMARK_CUDA_CHECK(cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
    allowed = shared;
  }
  launch_dependent(kernel, dim3((slots + kSlots - 1) / kSlots), dim3(kWarps * 32), shared, stream,
                   x, norm_w, eps, w, k, slots, out, trace);
}

// The same for `batch` rows, 1, 2, 4 or 8 (each a kernel of its own); std::runtime_error for
// another count.
template <int kWarps, int kParts, int kUnroll, class Out>
void launch_decode_gemv(int batch, cudaStream_t stream, const bf16* x, const bf16* norm_w,
                        float eps, const bf16* w, int k, int slots, const Out& out,
                        const KernelTrace& trace = {}) {
  switch (batch) {
    case 1:
      return launch_decode_gemv_for<kWarps, kParts, kUnroll, 1>(stream, x, norm_w, eps, w, k,
                                                                slots, out, trace);
    case 2:
      return launch_decode_gemv_for<kWarps, kParts, kUnroll, 2>(stream, x, norm_w, eps, w, k,
                                                                slots, out, trace);
    case 4:
      return launch_decode_gemv_for<kWarps, kParts, kUnroll, 4>(stream, x, norm_w, eps, w, k,
                                                                slots, out, trace);
    case 8:
      return launch_decode_gemv_for<kWarps, kParts, kUnroll, 8>(stream, x, norm_w, eps, w, k,
                                                                slots, out, trace);
  }
  throw std::runtime_error("a decode step takes 1, 2, 4 or 8 tokens, not " +
                           std::to_string(batch));
}

// Decode attention, split along the keys (flash-decoding, Dao et al. 2023): block (g, s, b)
// takes token b's KV head g and keys [s C, s C + C) for the `group` = heads / kv_heads query
// heads that read it, so each key and value is loaded once for all of them. The cache rows before
// the token's own (its position) were written by earlier steps and are loaded before the wait;
// its own row after it. For each head h the block writes its max score m, its sum of
// exponentials l and its unnormalised output to part[b, h, s, :] = [out[HD], m, l, 2 unused]
// (rows of 16-byte multiples); the last block of the token's KV head g to finish (counted by
// done[b, g], which it resets) merges the S splits of its heads into out[b, h, :]: each split
// rescaled to the largest max, added in split order, divided once. Which block is last changes
// nothing in the arithmetic, nor does the batch. q [tokens, heads, HD]; one layer's cache of
// sequence 0 [positions, kv_heads, HD], sequence b's rows.seq_stride values further; scores
// and sums in fp32.
//
// 32 keys a block: at 2049 keys, 65 splits of each of 8 KV heads measured 4% faster on the whole
// decode step than 33 splits of 64 (NVIDIA H200, Llama-3.2-1B dimensions).
constexpr int kSplitKeys = 32, kSplitThreads = 128, kMaxGroup = 8;

__device__ __forceinline__ void copy16_async(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(
                   static_cast<uint32_t>(__cvta_generic_to_shared(dst))),
               "l"(src)
               : "memory");
}

// out[h, :] for the `group` heads of part[group, S, HD + 4], by one block of kSplitThreads: warp
// h's lanes take the splits' maxima and sums (splits lane, lane + 32, ...), then thread t adds
// dims 8 (t % V) ... + 7 of head (t / V) % group over splits t / (V group), + ways, ..., each
// split rescaled by exp(m_s - m) (computed again where it is used, so that no array of splits
// bounds the cache); the `ways` partial sums are added in order and divided once.
template <int HD>
__device__ void merge_splits(const float* part, int group, int S, bf16* out) {
  constexpr int T = kSplitThreads, V = HD / 8;
  __shared__ float top[kMaxGroup], den[kMaxGroup];
  __shared__ float sums[T / V][HD];
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
  for (int h = warp; h < group; h += T / 32) {
    const float* base = part + int64_t{h} * S * (HD + 4);
    float m = -INFINITY;
    for (int r = lane; r < S; r += 32) m = fmaxf(m, __ldcg(base + r * (HD + 4) + HD));
    m = warp_max(m);
    float l = 0.0f;
    for (int r = lane; r < S; r += 32) {
      const float wgt = __expf(__ldcg(base + r * (HD + 4) + HD) - m);
      l = fmaf(wgt, __ldcg(base + r * (HD + 4) + HD + 1), l);
    }
    l = warp_sum(l);
    if (lane == 0) {
      top[h] = m;
      den[h] = l;
    }
  }
  __syncthreads();
  const int ways = T / (V * group), dv = t % V, h = (t / V) % group, way = t / (V * group);
  float acc[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) acc[e] = 0.0f;
  if (way < ways) {
    const float* base = part + int64_t{h} * S * (HD + 4);
    const float m = top[h];
#pragma unroll 4
    for (int r = way; r < S; r += ways) {
      const float* row = base + r * (HD + 4);
      const float4 a = __ldcg(reinterpret_cast<const float4*>(row + dv * 8));
      const float4 b = __ldcg(reinterpret_cast<const float4*>(row + dv * 8 + 4));
      const float wgt = __expf(__ldcg(row + HD) - m);
      acc[0] = fmaf(wgt, a.x, acc[0]);
      acc[1] = fmaf(wgt, a.y, acc[1]);
      acc[2] = fmaf(wgt, a.z, acc[2]);
      acc[3] = fmaf(wgt, a.w, acc[3]);
      acc[4] = fmaf(wgt, b.x, acc[4]);
      acc[5] = fmaf(wgt, b.y, acc[5]);
      acc[6] = fmaf(wgt, b.z, acc[6]);
      acc[7] = fmaf(wgt, b.w, acc[7]);
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) sums[t / V][dv * 8 + e] = acc[e];
  }
  __syncthreads();
  for (int i = t; i < group * HD; i += T) {
    const int hh = i / HD, d = i % HD;
    float num = 0.0f;
    for (int w = 0; w < ways; ++w) num += sums[w * group + hh][d];
    out[int64_t{hh} * HD + d] = __float2bfloat16_rn(num / den[hh]);
  }
}

// The scores of one key against G query rows at once: its 8 V bf16 values (key[c], 8 a chunk;
// registers or shared memory) against rows q + h q_stride in fp32 (16-byte aligned), each summed
// in dimension order. The key is converted once and the G sums interleaved, so that they do not
// wait on each other.
template <int V, int G, class Key>
__device__ __forceinline__ void key_dots(const Key& key, const float* q, int q_stride,
                                         float (&dot)[G]) {
#pragma unroll
  for (int h = 0; h < G; ++h) dot[h] = 0.0f;
#pragma unroll
  for (int c = 0; c < V; ++c) {
    Pack8 p;
    p.u = key[c];
    float k[8];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 f = __bfloat1622float2(p.h[e]);
      k[2 * e] = f.x;
      k[2 * e + 1] = f.y;
    }
#pragma unroll
    for (int h = 0; h < G; ++h) {
      const float4* qh = reinterpret_cast<const float4*>(q + h * q_stride);
      const float4 qa = qh[2 * c], qb = qh[2 * c + 1];
      const float qv[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
#pragma unroll
      for (int e = 0; e < 8; ++e) dot[h] = fmaf(k[e], qv[e], dot[h]);
    }
  }
}

// One key's score against one query row q: key_dots for one head.
template <int V, class Key>
__device__ __forceinline__ float key_dot(const Key& key, const float* q) {
  float dot[1];
  key_dots<V, 1>(key, q, 0, dot);
  return dot[0];
}

// A barrier over the threads that run an attention phase: the whole block here; the consumer
// warps in the persistent step (decode_persistent.cuh), whose loading warp runs on alone.
struct BlockSync {
  __device__ void operator()() const { __syncthreads(); }
};

// One exchange of weigh_values's reduction, then the next: lanes l and l ^ o each hold sums
// [0, n) of the same outputs; the lane with bit o clear keeps [0, n / 2) plus its partner's, the
// other [n / 2, n) plus its partner's, moved to [0, n / 2); `first` counts where the kept sums
// start in the original order. Until o reaches the warp's width.
template <int N, int n, int o>
__device__ __forceinline__ void halve_sums(float (&acc)[N], int lane, int& first) {
  if constexpr (o < 32) {
    const bool upper = (lane & o) != 0;
#pragma unroll
    for (int i = 0; i < n / 2; ++i) {
      const float send = upper ? acc[i] : acc[i + n / 2];
      const float keep = upper ? acc[i + n / 2] : acc[i];
      acc[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
    }
    if (upper) first += n / 2;
    halve_sums<N, n / 2, 2 * o>(acc, lane, first);
  }
}

// The values of one block's keys, weighted: thread t of T adds dims 8 (t % V) ... + 7 of keys
// t / V, t / V + T / V, ... < count (V = HD / 8) in order, each value times ps[h][key] for every
// head h < group at once (each value read once). The partial sums of the 32 / V key groups of a
// warp (a0, a1, ... by lane / V) are then added as a butterfly over the lanes adds them,
// ((a0 + a1) + (a2 + a3)), but each exchange halves what a lane holds: at lane offset o the lane
// with bit o clear keeps the lower half of its sums and adds its partner's, the other the upper
// half, so that a warp's reduction issues 8 G - 8 G / (32 / V) exchanges instead of 8 G log2(32 /
// V) (the bits are the same: each sum is the same two operands). The warp's sums go to
// red[warp][h][dim]; after a barrier, the warps' sums of each output are added in warp order and
// handed to done(h, dim, sum), output i = h HD + dim to threads i, i + T, ... The caller's barrier
// publishes what done writes; `sync` is the barrier over the T threads. G: the heads a thread
// accumulates, `group` itself where the caller knows it at compile time (then `group` is read as
// the constant G, so its loops have no per-head branches), else kMaxGroup with group <= G at run
// time.
template <int HD, int T, int C, int G = kMaxGroup, class Values, class Done,
          class Sync = BlockSync>
__device__ __forceinline__ void weigh_values(const Values& vs, const float (&ps)[kMaxGroup][C],
                                             int count, int group,
                                             float (&red)[T / 32][kMaxGroup][HD], Done done,
                                             Sync sync = {}) {
  constexpr int V = HD / 8, KG = T / V, N = 8 * G, L = 32 / V;
  static_assert(G <= kMaxGroup && 32 % V == 0 && (L & (L - 1)) == 0 && N % L == 0,
                "values tiling");
  if constexpr (G < kMaxGroup) group = G;
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5, dv = t % V, kg = t / V;
  float acc[N];  // acc[8 h + e]: dim 8 dv + e of head h
#pragma unroll
  for (int c = 0; c < N; ++c) acc[c] = 0.0f;
  for (int j = kg; j < count; j += KG) {
    Pack8 p;
    p.u = reinterpret_cast<const uint4*>(&vs[j][0])[dv];
    float v[8];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 f = __bfloat1622float2(p.h[e]);
      v[2 * e] = f.x;
      v[2 * e + 1] = f.y;
    }
#pragma unroll
    for (int h = 0; h < G; ++h) {
      if (h < group) {
        const float pj = ps[h][j];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[8 * h + e] = fmaf(pj, v[e], acc[8 * h + e]);
      }
    }
  }
  // The halving exchanges: after them this lane holds sums [first, first + N / L) of acc's order.
  int first = 0;
  halve_sums<N, N, V>(acc, lane, first);
#pragma unroll
  for (int i = 0; i < N / L; ++i) {
    const int c = first + i;
    if (c / 8 < group) red[warp][c / 8][dv * 8 + c % 8] = acc[i];
  }
  sync();
  for (int i = t; i < group * HD; i += T) {
    const int h = i / HD, d = i % HD;
    float sum = 0.0f;
    for (int w = 0; w < T / 32; ++w) sum += red[w][h][d];
    done(h, d, sum);
  }
}

template <int HD>
__global__ void __launch_bounds__(kSplitThreads)
    decode_attention_split(const bf16* q, const bf16* k_cache, const bf16* v_cache,
                           DecodeRows rows, int kv_heads, int group, float scale, float* part,
                           int* done, bf16* out, KernelTrace trace) {
  constexpr int C = kSplitKeys, T = kSplitThreads, V = HD / 8;
  static_assert(HD % 8 == 0 && 32 % V == 0 && T % C == 0 && C * V % T == 0,
                "decode attention tiling");
  // K rows padded by 16 bytes, so that the lanes reading 32 different rows hit distinct banks.
  __shared__ __align__(16) bf16 ks[C][HD + 8];
  __shared__ __align__(16) bf16 vs[C][HD];
  __shared__ __align__(16) float qs[kMaxGroup][HD];
  __shared__ float ps[kMaxGroup][C];
  __shared__ float red[T / 32][kMaxGroup][HD];
  __shared__ float ml[kMaxGroup][2];
  __shared__ bool last;
  trace.mark(KernelTrace::kStart);
  const int g = blockIdx.x, s = blockIdx.y, S = gridDim.y, b = blockIdx.z, t = threadIdx.x;
  const int lane = t & 31, warp = t >> 5, heads = kv_heads * group;
  // Token b: its sequence's cache, query, partial results, counters and output.
  const int kv_len = rows.pos[b] + 1;
  k_cache += b * rows.seq_stride;
  v_cache += b * rows.seq_stride;
  q += int64_t{b} * heads * HD;
  part += int64_t{b} * heads * S * (HD + 4);
  done += b * kv_heads;
  out += int64_t{b} * heads * HD;
  // A split past this token's keys (a shorter sequence in the batch) has count <= 0: it adds
  // max -infinity and sum 0, which the merge weighs by exp(-infinity) = 0.
  const int j0 = s * C, count = min(kv_len - j0, C);
  auto row_of = [&](const bf16* cache, int j) {
    return cache + (int64_t{j0 + j} * kv_heads + g) * HD;
  };
  for (int i = t; i < C * V; i += T) {
    const int j = i / V, c = i % V;
    if (j < count && j0 + j != kv_len - 1) {
      copy16_async(&ks[j][c * 8], row_of(k_cache, j) + c * 8);
      copy16_async(&vs[j][c * 8], row_of(v_cache, j) + c * 8);
    }
  }
  asm volatile("cp.async.commit_group;\n" ::: "memory");
  wait_for_previous();
  trace.mark(KernelTrace::kWaited);
  start_next();
  const int own = kv_len - 1 - j0;  // the step's own row, when in this split
  if (own >= 0 && own < count && t < V) {
    reinterpret_cast<uint4*>(&ks[own][0])[t] =
        reinterpret_cast<const uint4*>(row_of(k_cache, own))[t];
    reinterpret_cast<uint4*>(&vs[own][0])[t] =
        reinterpret_cast<const uint4*>(row_of(v_cache, own))[t];
  }
  for (int i = t; i < group * HD; i += T)
    qs[i / HD][i % HD] = __bfloat162float(q[int64_t{g} * group * HD + i]);
  asm volatile("cp.async.wait_all;\n" ::: "memory");
  __syncthreads();

  // Thread t scores key j = t % C for heads t / C, t / C + T / C, ...: its key is read once.
  {
    const int j = t % C;
    uint4 kr[V];
#pragma unroll
    for (int c = 0; c < V; ++c)
      kr[c] = j < count ? reinterpret_cast<const uint4*>(&ks[j][0])[c] : make_uint4(0, 0, 0, 0);
    for (int h = t / C; h < group; h += T / C) {
      const float dot = key_dot<V>(kr, &qs[h][0]);
      ps[h][j] = j < count ? dot * scale : -INFINITY;
    }
  }
  __syncthreads();
  for (int h = warp; h < group; h += T / 32) {
    float m = -INFINITY;
    for (int j = lane; j < C; j += 32) m = fmaxf(m, ps[h][j]);
    m = warp_max(m);
    float l = 0.0f;
    for (int j = lane; j < C; j += 32) {
      const float e = j < count ? __expf(ps[h][j] - m) : 0.0f;
      ps[h][j] = e;
      l += e;
    }
    l = warp_sum(l);
    if (lane == 0) {
      ml[h][0] = m;
      ml[h][1] = l;
    }
  }
  __syncthreads();

  weigh_values<HD, T>(vs, ps, count, group, red, [&](int h, int d, float sum) {
    float* dst = part + (int64_t{g * group + h} * S + s) * (HD + 4);
    dst[d] = sum;
    if (d == 0) {
      dst[HD] = ml[h][0];
      dst[HD + 1] = ml[h][1];
    }
  });

  // The last block of this KV head merges (threadFenceReduction's pattern: the block's writes,
  // a barrier, then one thread's fence before it counts; the last block's fence after).
  __syncthreads();
  if (t == 0) {
    __threadfence();
    last = atomicAdd(&done[g], 1) == S - 1;
    if (last) {
      done[g] = 0;
      __threadfence();
    }
  }
  __syncthreads();
  if (!last) {
    trace.mark(KernelTrace::kEnd);
    return;
  }
  merge_splits<HD>(part + int64_t{g} * group * S * (HD + 4), group, S,
                   out + int64_t{g} * group * HD);
  trace.mark(KernelTrace::kEnd);
}


// Keys a block of the cluster attention holds in shared memory at once. 192 rather than 256: with
// the values' sums kept in the K tile a block of 256 threads then takes 64.7 KB instead of 98.5
// (head dimension 64), and the 1B decode step measured 1% faster (docs/performance.md, "Why the
// attention's blocks start late"). A block's keys past one tile are rescaled at tile edges, so
// the tile size is part of the bits from 16 x 192 = 3072 keys on.
constexpr int kClusterKeys = 192;

// Whether the values' partial sums of T threads fit in the K tile, which the scores have finished
// with when the values start: then they are kept there.
template <int HD, int T>
constexpr bool kRedInKeys =
    sizeof(float) * (T / 32) * kMaxGroup * HD <= sizeof(bf16) * kClusterKeys * (HD + 8);

// One block's working set in the cluster attention: the query rows (padded by 16 bytes: the lanes
// of a warp read the rows of 4 to 8 heads at once), a tile's scores, the values' partial sums
// (where the K tile cannot hold them).
template <int HD, int T>
struct AttentionScratch {
  __align__(16) float qs[kMaxGroup][HD + 4];
  float ps[kMaxGroup][kClusterKeys];
  float red[kRedInKeys<HD, T> ? 1 : T / 32][kMaxGroup][HD];
};
// What a block hands to the merge: its unnormalised output, running max and sum per head.
template <int HD>
struct AttentionPartial {
  float acc_out[kMaxGroup][HD];
  float run_m[kMaxGroup], run_l[kMaxGroup], rescale[kMaxGroup];
};

// Keys [begin, end) of one KV head for its `group` query heads (w.qs, fp32), by T threads
// (threadIdx.x < T), in tiles of kClusterKeys with the online softmax (Milakov and Gimelshein
// 2018) across tiles; `part` starts at output 0, max -infinity, sum 0 and ends with this range's.
// load_tile(j0, count, false) starts the copies of a later tile into ks and vs (the first is
// already under way); `sync` is the barrier over the T threads; phase(k) marks, for timing, the
// end of each tile's load (0), scores (1) and softmax (2); G as for weigh_values. One function
// for the cluster kernel and the persistent step, so that both compile the same arithmetic.
struct NoPhase {
  __device__ void operator()(int) const {}
};
template <int HD, int T, int G = kMaxGroup, class LoadTile, class Sync, class Phase = NoPhase>
__device__ __forceinline__ void attend_keys(int begin, int end, int group, float scale,
                                            bf16 (*ks)[HD + 8], bf16 (*vs)[HD],
                                            AttentionScratch<HD, T>& w, AttentionPartial<HD>& part,
                                            LoadTile load_tile, Sync sync, Phase phase = {}) {
  constexpr int C = kClusterKeys, V = HD / 8;
  if constexpr (G < kMaxGroup) group = G;
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
  auto& ps = w.ps;
  auto& run_m = part.run_m;
  auto& run_l = part.run_l;
  auto& rescale = part.rescale;
  auto& acc_out = part.acc_out;
  for (int j0 = begin; j0 < end; j0 += C) {
    const int count = min(end - j0, C);
    if (j0 != begin) {
      sync();  // the previous tile is consumed
      load_tile(j0, count, false);
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    sync();
    phase(0);

    if constexpr (G < kMaxGroup) {
      // Scores, the group known: thread t takes key j = t, t + T, ... for all G heads, its row
      // read and converted once and the G sums interleaved, each in dimension order.
      for (int j = t; j < count; j += T) {
        float dot[G];
        key_dots<V, G>(reinterpret_cast<const uint4*>(&ks[j][0]), &w.qs[0][0], HD + 4, dot);
#pragma unroll
        for (int h = 0; h < G; ++h) ps[h][j] = dot[h] * scale;
      }
    } else {
      // Scores: one (key, head) pair a thread, key j = i / group and head h = i % group for
      // i = t, t + T, ... (the threads of a key read its row together), each sum in dimension
      // order.
      for (int i = t; i < count * group; i += T) {
        const int j = i / group, h = i % group;
        const float dot = key_dot<V>(reinterpret_cast<const uint4*>(&ks[j][0]), &w.qs[h][0]);
        ps[h][j] = dot * scale;  // only keys < count are read after
      }
    }
    sync();
    phase(1);
    // Warp h: the tile's max, the running max and sum rescaled, the exponentials.
    for (int h = warp; h < group; h += T / 32) {
      float m = -INFINITY;
      for (int j = lane; j < count; j += 32) m = fmaxf(m, ps[h][j]);
      m = fmaxf(warp_max(m), run_m[h]);
      float l = 0.0f;
      for (int j = lane; j < count; j += 32) {
        const float e = __expf(ps[h][j] - m);
        ps[h][j] = e;
        l += e;
      }
      l = warp_sum(l);
      __syncwarp();
      if (lane == 0) {
        const float s = __expf(run_m[h] - m);  // 0 on the first tile (run_m = -infinity)
        rescale[h] = s;
        run_l[h] = run_l[h] * s + l;
        run_m[h] = m;
      }
    }
    sync();
    phase(2);
    using Red = float[T / 32][kMaxGroup][HD];
    Red& red = *reinterpret_cast<Red*>(kRedInKeys<HD, T> ? static_cast<void*>(&ks[0][0])
                                                          : static_cast<void*>(&w.red[0][0][0]));
    weigh_values<HD, T, C, G>(
        vs, ps, count, group, red,
        [&](int h, int d, float sum) { acc_out[h][d] = fmaf(acc_out[h][d], rescale[h], sum); },
        sync);
  }
}

// Outputs [r n / CL, (r + 1) n / CL) of the n = group HD of one KV head's heads, r = rank < CL,
// merged from the CL blocks' partials (partial_of(p): rank p's, read in rank order, each rescaled
// by exp(m_p - max)) and divided once; out[h HD + d] for the head's group heads. T threads.
template <int HD, int CL, int T, class PartialOf>
__device__ void merge_partials(int r, int group, PartialOf partial_of, bf16* out) {
  const int t = threadIdx.x;
  const int n = group * HD, lo = r * n / CL, hi = (r + 1) * n / CL;
  for (int i = lo + t; i < hi; i += T) {
    const int h = i / HD, d = i % HD;
    // All 3 CL remote loads issued before any is used (CL is a constant: the loops unroll).
    float pm[CL], po[CL], pl[CL];
#pragma unroll
    for (int p = 0; p < CL; ++p) {
      pm[p] = partial_of(p)->run_m[h];
      po[p] = partial_of(p)->acc_out[h][d];
      pl[p] = partial_of(p)->run_l[h];
    }
    float m = -INFINITY;
#pragma unroll
    for (int p = 0; p < CL; ++p) m = fmaxf(m, pm[p]);
    float num = 0.0f, den = 0.0f;
#pragma unroll
    for (int p = 0; p < CL; ++p) {
      const float w = __expf(pm[p] - m);
      num = fmaf(w, po[p], num);
      den = fmaf(w, pl[p], den);
    }
    out[int64_t{h} * HD + d] = __float2bfloat16_rn(num / den);
  }
}

template <int HD>
constexpr size_t cluster_attention_shared() {
  return sizeof(bf16) * kClusterKeys * ((HD + 8) + HD);
}

// Decode attention with the merge inside a thread block cluster (Hopper's distributed shared
// memory; CUDA programming guide, "Thread Block Clusters"): the CL blocks of a cluster share
// token b's KV head g, block r taking keys [r P, r P + P), P = ceil(kv_len / CL), in tiles of
// kClusterKeys with the online softmax (Milakov and Gimelshein 2018) across tiles. Each block
// keeps its max m, sum l and unnormalised output in shared memory; after a cluster barrier
// block r merges outputs [r n / CL, (r + 1) n / CL) of the n = group HD, reading the CL
// blocks' values in rank order, each rescaled by exp(m_r - max), and divides once. No global
// round trip, fence or counter: the split attention's last-block merge is its serial tail.
// The partition depends on kv_len only, so a token's bits are the same alone and in a batch.
// Shapes and the cache's layout as for decode_attention_split; grid (kv_heads CL, 1, tokens),
// cluster (CL, 1, 1), T threads, cluster_attention_shared() bytes of dynamic shared memory.
// `trigger` says where its blocks let the next kernel start (0: right after the wait, as every
// decode kernel does; 1: after the weighted values; 2: after the merge: timing only). Traced,
// it marks attend_keys's phases, then the values' end (3), the first cluster barrier (4) and
// the merge (5).
// At most 112 registers a thread: a block of 256 threads then leaves a multiprocessor the
// registers of three blocks of the q/k/v kernel, beside which it starts.
template <int HD, int CL, int T>
__global__ void __maxnreg__(112)
    decode_attention_cluster(const bf16* q, const bf16* k_cache, const bf16* v_cache,
                             DecodeRows rows, int kv_heads, int group, float scale, bf16* out,
                             KernelTrace trace, int trigger) {
  constexpr int C = kClusterKeys, V = HD / 8;
  static_assert(HD % 8 == 0 && 32 % V == 0 && T % 32 == 0 && T >= kMaxGroup * 32,
                "cluster attention tiling");
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  extern __shared__ __align__(16) unsigned char dynamic_shared[];
  // K rows padded by 16 bytes, so that the lanes reading 32 different rows hit distinct banks.
  auto ks = reinterpret_cast<bf16(*)[HD + 8]>(dynamic_shared);
  auto vs = reinterpret_cast<bf16(*)[HD]>(dynamic_shared + sizeof(bf16) * C * (HD + 8));
  __shared__ AttentionScratch<HD, T> scratch;
  __shared__ AttentionPartial<HD> partial;
  trace.mark(KernelTrace::kStart);
  const int r = static_cast<int>(cluster.block_rank());
  const int g = blockIdx.x / CL, b = blockIdx.z, t = threadIdx.x;
  const int heads = kv_heads * group;
  const int kv_len = rows.pos[b] + 1, own_row = kv_len - 1;
  k_cache += b * rows.seq_stride;
  v_cache += b * rows.seq_stride;
  q += int64_t{b} * heads * HD;
  out += int64_t{b} * heads * HD;
  const int per = (kv_len + CL - 1) / CL;
  const int begin = min(r * per, kv_len), end = min(begin + per, kv_len);
  auto row_of = [&](const bf16* cache, int j) { return cache + (int64_t{j} * kv_heads + g) * HD; };
  // Tile [j0, j0 + count) into shared memory; rows other than the token's own are loaded before
  // the wait for the kernel that writes the own row (first tile only).
  auto load_tile = [&](int j0, int count, bool before_wait) {
    for (int i = t; i < count * V; i += T) {
      const int j = i / V, c = i % V;
      if (!before_wait || j0 + j != own_row) {
        copy16_async(&ks[j][c * 8], row_of(k_cache, j0 + j) + c * 8);
        copy16_async(&vs[j][c * 8], row_of(v_cache, j0 + j) + c * 8);
      }
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
  };
  load_tile(begin, min(end - begin, C), true);
  for (int i = t; i < group * HD; i += T) partial.acc_out[i / HD][i % HD] = 0.0f;
  if (t < kMaxGroup) {
    partial.run_m[t] = -INFINITY;
    partial.run_l[t] = 0.0f;
  }
  wait_for_previous();
  trace.mark(KernelTrace::kWaited);
  long long last_mark = clock64();
  if (trigger == 0) start_next();
  if (begin <= own_row && own_row < min(end, begin + C) && t < V)
    copy16_async(&ks[own_row - begin][t * 8], row_of(k_cache, own_row) + t * 8);
  else if (begin <= own_row && own_row < min(end, begin + C) && t >= V && t < 2 * V)
    copy16_async(&vs[own_row - begin][(t - V) * 8], row_of(v_cache, own_row) + (t - V) * 8);
  asm volatile("cp.async.commit_group;\n" ::: "memory");
  for (int i = t; i < group * HD; i += T)
    scratch.qs[i / HD][i % HD] = __bfloat162float(q[int64_t{g} * group * HD + i]);

  auto phase = [&](int k) { trace.phase(k, last_mark); };
  // A group of 4 (Llama 3's, Mistral's, the bench's models') compiled as a constant: its scores'
  // and values' loops then have no per-head branches or divisions. Same arithmetic, same bits.
  if (group == 4)
    attend_keys<HD, T, 4>(begin, end, group, scale, ks, vs, scratch, partial, load_tile,
                          BlockSync{}, phase);
  else
    attend_keys<HD, T>(begin, end, group, scale, ks, vs, scratch, partial, load_tile,
                       BlockSync{}, phase);
  phase(3);
  if (trigger == 1) start_next();

  // Every block's m, l and output are in its shared memory: block r merges its slice.
  cluster.sync();
  phase(4);
  merge_partials<HD, CL, T>(
      r, group, [&](int p) { return cluster.map_shared_rank(&partial, p); },
      out + int64_t{g} * group * HD);
  phase(5);
  if (trigger == 2) start_next();
  cluster.sync();  // no block leaves while another reads its shared memory
  trace.mark(KernelTrace::kEnd);
}

// Whether clusters of `cluster` blocks of decode_attention_cluster<HD> can run on this device,
// after giving the kernel the shared memory it asks for (and, past 8, the non-portable cluster
// sizes). Never throws: false where the device has no clusters.
template <int HD, int CL, int T>
bool cluster_attention_fits_for() {
  const int cluster = CL;
  auto kernel = decode_attention_cluster<HD, CL, T>;
  const size_t shared = cluster_attention_shared<HD>();
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(shared)) != cudaSuccess ||
      (cluster > 8 && cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed,
                                           1) != cudaSuccess)) {
    (void)cudaGetLastError();
    return false;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(cluster));
  config.blockDim = dim3(T);
  config.dynamicSmemBytes = shared;
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim.x = static_cast<unsigned>(cluster);
  attribute.val.clusterDim.y = 1;
  attribute.val.clusterDim.z = 1;
  config.attrs = &attribute;
  config.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return clusters > 0;
}

// The cluster attention's shapes this file instantiates: blocks per cluster, threads per block.
constexpr int kClusterShapes[][2] = {{8, 256}, {16, 256}, {16, 512}};

template <int HD>
bool cluster_attention_fits(int cluster, int threads) {
  if (cluster == 8 && threads == 256) return cluster_attention_fits_for<HD, 8, 256>();
  if (cluster == 16 && threads == 256) return cluster_attention_fits_for<HD, 16, 256>();
  if (cluster == 16 && threads == 512) return cluster_attention_fits_for<HD, 16, 512>();
  return false;
}

// Launches decode_attention_cluster<HD, cluster, threads> for `tokens` tokens; a shape not in
// kClusterShapes throws std::runtime_error.
template <int HD>
void launch_cluster_attention(int cluster, int threads, int tokens, cudaStream_t stream,
                              const bf16* q, const bf16* k_cache, const bf16* v_cache,
                              const DecodeRows& rows, int kv_heads, int group, float scale,
                              bf16* out, const KernelTrace& trace = {}, int trigger = 0) {
  const dim3 grid(kv_heads * cluster, 1, tokens), block(threads);
  const size_t shared = cluster_attention_shared<HD>();
  if (cluster == 8 && threads == 256)
    return launch_dependent_in(8, decode_attention_cluster<HD, 8, 256>, grid, block, shared,
                               stream, q, k_cache, v_cache, rows, kv_heads, group, scale, out,
                               trace, trigger);
  if (cluster == 16 && threads == 256)
    return launch_dependent_in(16, decode_attention_cluster<HD, 16, 256>, grid, block, shared,
                               stream, q, k_cache, v_cache, rows, kv_heads, group, scale, out,
                               trace, trigger);
  if (cluster == 16 && threads == 512)
    return launch_dependent_in(16, decode_attention_cluster<HD, 16, 512>, grid, block, shared,
                               stream, q, k_cache, v_cache, rows, kv_heads, group, scale, out,
                               trace, trigger);
  throw std::runtime_error("the decode attention has no cluster kernel of " +
                           std::to_string(cluster) + " blocks of " + std::to_string(threads) +
                           " threads");
}

}  // namespace
