// The decode step of one token as one persistent kernel: the five kernels a layer of
// decode_kernels.cuh (q/k/v with RMSNorm and RoPE, the cluster attention, o with the residual,
// gate/up with RMSNorm and SwiGLU, down with the residual) and the LM head, each a stage that
// every block takes a share of, the stages ordered by counters in global memory instead of by
// kernel boundaries.
//
// Why: a kernel boundary drains the GPU. Programmatic dependent launch lets the next kernel load
// the weights its registers hold before the wait, but no more, so each of the step's 81 kernel
// boundaries left the memory idle for a few microseconds (docs/performance.md, "Decode"). Here
// one warp of each block streams the block's weights into a ring of shared-memory slots with the
// bulk copy engine (cp.async.bulk, completion counted on an mbarrier) for every stage in order,
// and never waits on another block: while the eight computing warps wait for a stage's inputs,
// the copies of the next stages' weights go on until the ring is full. This is the design of
// the "megakernels" for small-batch decode (Hazy Research, "Look Ma, No Bubbles", 2025).
//
// Same bits as the five-kernel step, by construction: each row's sum has decode_gemv's order
// (lane l adds the 8-element chunks l, l + 32, ... of its part in order, a butterfly over the
// lanes, the parts added in order), each RMSNorm's sum of squares the order of the kernel it
// replaces (its block size taken as the thread count), and the attention runs
// decode_attention_cluster's functions with the same clusters of 16 blocks of 256 threads. So the
// step keeps the five-kernel step's batch invariance: a token's logits are the same bits here,
// alone, as in a batch of the five-kernel step (the bench checks both).
//
// Limits: one token (batch 1); head_dim 64; every product's k a power of two from 1024 to 8192
// (a row of at most one ring slot); no tensor-parallel shard. All blocks must be resident at once
// (they wait on each other): the model checks that the device holds the grid as clusters.
#pragma once

#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "bench/decode_kernels.cuh"
#include "bench/device_common.cuh"

namespace {

constexpr int kStepComputeThreads = 256;                  // 8 warps multiply and attend
constexpr int kStepThreads = kStepComputeThreads + 32;    // one warp loads the weights
constexpr int kStepCluster = 16;                          // blocks per KV head's attention
constexpr int kStepSlotBytes = 16 << 10, kStepSlots = 7;  // the weight ring
constexpr int kStepStages = 5;                            // counted stages per layer

struct StepLayer {
  const bf16 *attn_norm, *mlp_norm, *wqkv, *wo, *wgu, *wdown;
};

// Everything one step reads and writes; passed by value, so a captured graph keeps it.
struct StepParams {
  const StepLayer* layers;  // [layer_count], on the device
  int layer_count, hidden, heads, kv_heads, inter, vocab;
  float eps, scale;
  const bf16 *embed, *final_norm;
  const int* token;         // the step's token, on the device
  int pos;                  // its position; the cache holds positions [0, pos)
  bf16 *k_cache, *v_cache;  // the sequence's caches; layer l's at + l * cache_layer
  int64_t cache_layer;
  const float *cos_t, *sin_t;  // [positions, 32]
  bf16 *x, *qkv, *att, *gu, *logits;
  // [layer_count * kStepStages] blocks finished per stage, then the blocks that left; the last
  // to leave zeroes them all for the next step.
  unsigned* counters;
  // For timing the parts only (the results are then wrong): kLeaveOut* bits of what to skip.
  int leave_out = 0;
};
constexpr int kLeaveOutAttention = 1, kLeaveOutWaits = 2, kLeaveOutProducts = 4;

// Shared memory of a block, in one dynamic allocation (the same offsets in every block: the
// attention merge reads other blocks' `partial` at its own address).
constexpr int kStepKeysBytes = static_cast<int>(sizeof(bf16)) * kClusterKeys * (64 + 8 + 64);
constexpr int kStepStagingBytes = 26752;  // max(inputs 16 KB + norm weights 4 KB, attention)
static_assert(sizeof(AttentionScratch<64, kStepComputeThreads>) <= kStepStagingBytes,
              "the attention's scratch fits the staging area");
struct StepShared {
  alignas(128) unsigned char ring[kStepSlots][kStepSlotBytes];
  alignas(128) unsigned char keys[kStepKeysBytes];        // the attention's K and V tile
  alignas(128) unsigned char staging[kStepStagingBytes];  // a product's input, or attention
  AttentionPartial<64> partial;
  alignas(16) bf16 own_kv[2][64];  // the step's own key (rotated) and value
  float reduce[kStepComputeThreads / 32];
  uint64_t full[kStepSlots], empty[kStepSlots];
  uint64_t partial_ready, partial_read;
};

// ---------------------------------------------------------------------------------------------
// PTX: mbarriers, the bulk copy, acquire loads (PTX ISA, "Parallel Synchronization and
// Communication Instructions: mbarrier", "Data Movement: cp.async.bulk").

// Whether a wait that began at `start` (ns, %globaltimer) has passed two seconds: then a block is
// not running (the grid did not fit) or a copy never came, and the kernel stops with an error
// rather than hang.
__device__ __forceinline__ uint64_t now_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
  return t;
}
__device__ __forceinline__ void give_up_after(uint64_t start, const char* what) {
  if (now_ns() - start > 2000000000ull) {
    printf("decode_step_persistent: block %d waited 2 s for %s\n", blockIdx.x, what);
    __trap();
  }
}

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void barrier_init(uint64_t* b, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(b)), "r"(count)
               : "memory");
}
__device__ __forceinline__ void barrier_arrive(uint64_t* b) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(b)) : "memory");
}
__device__ __forceinline__ void barrier_expect_bytes(uint64_t* b, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(b)),
               "r"(bytes)
               : "memory");
}
// Arrives on the barrier at b's offset in cluster block `rank`, releasing this thread's writes
// (and what a block barrier ordered before them) to the cluster.
__device__ __forceinline__ void barrier_arrive_at(uint64_t* b, unsigned rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n"
               : "=r"(remote)
               : "r"(shared_address(b)), "r"(rank));
  asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];\n" ::"r"(remote)
               : "memory");
}
// Waits for the barrier's phase of parity `parity` to complete; `cluster` acquires what the
// cluster's arrivals released.
template <bool kCluster = false>
__device__ __forceinline__ void barrier_wait(uint64_t* b, uint32_t parity) {
  uint32_t done = 0;
  const uint64_t start = now_ns();
  for (int spins = 0; !done; ++spins) {
    if ((spins & 1023) == 1023) give_up_after(start, "an mbarrier");
    if (kCluster)
      asm volatile(
          "{\n .reg .pred p;\n mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], "
          "%2;\n selp.u32 %0, 1, 0, p;\n}\n"
          : "=r"(done)
          : "r"(shared_address(b)), "r"(parity)
          : "memory");
    else
      asm volatile(
          "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 "
          "%0, 1, 0, p;\n}\n"
          : "=r"(done)
          : "r"(shared_address(b)), "r"(parity)
          : "memory");
  }
}
// `bytes` (a multiple of 16) from global src to shared dst, counted on barrier b; weights are read
// once a step, so they leave L2 first.
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* b,
                                          uint64_t policy) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], "
      "[%1], %2, [%3], %4;\n" ::"r"(shared_address(dst)),
      "l"(src), "r"(bytes), "r"(shared_address(b)), "l"(policy)
      : "memory");
}
__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}
// The barrier of the 8 computing warps (named barrier 1); the loading warp runs on alone.
__device__ __forceinline__ void compute_sync() {
  asm volatile("bar.sync 1, %0;\n" ::"n"(kStepComputeThreads) : "memory");
}
struct ComputeSync {
  __device__ void operator()() const { compute_sync(); }
};

// Block `block` of `blocks`' rows of an m-row product: a contiguous share.
struct RowShare {
  int begin, end;
};
__device__ __forceinline__ RowShare row_share(int m, int block, int blocks) {
  return {static_cast<int>(int64_t{m} * block / blocks),
          static_cast<int>(int64_t{m} * (block + 1) / blocks)};
}
__device__ __forceinline__ int rows_per_slot(int k) { return kStepSlotBytes / (2 * k); }

// After the writes of this block's share of a stage: counts the block as done.
__device__ __forceinline__ void finish_stage(unsigned* counter) {
  compute_sync();
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(counter, 1u);
  }
}
// Until every block finished the stage.
__device__ __forceinline__ void await_stage(const unsigned* counter, unsigned blocks,
                                            int leave_out = 0) {
  if (threadIdx.x == 0 && !(leave_out & kLeaveOutWaits)) {
    const uint64_t start = now_ns();
    for (int spins = 0; load_acquire(counter) < blocks; ++spins)
      if ((spins & 255) == 255) give_up_after(start, "a stage");
    __threadfence();
  }
  compute_sync();
}

// ---------------------------------------------------------------------------------------------
// The loading warp: the weights of every stage in the order the computing warps use them.

struct Ring {
  StepShared* s;
  int chunk = 0;  // slots handed over so far; slot chunk % kStepSlots, its use chunk / kStepSlots
};

__device__ void stream_rows(Ring& ring, const bf16* w, int k, RowShare share, uint64_t policy) {
  const int per = rows_per_slot(k);
  for (int r = share.begin; r < share.end; r += per, ++ring.chunk) {
    const int n = min(per, share.end - r), slot = ring.chunk % kStepSlots,
              use = ring.chunk / kStepSlots;
    if (use > 0) barrier_wait(&ring.s->empty[slot], (use - 1) & 1);
    const uint32_t bytes = static_cast<uint32_t>(n) * k * sizeof(bf16);
    barrier_expect_bytes(&ring.s->full[slot], bytes);
    bulk_load(ring.s->ring[slot], w + int64_t{r} * k, bytes, &ring.s->full[slot], policy);
  }
}

// ---------------------------------------------------------------------------------------------
// The computing warps.

// The input of a product into xs[k / 8]: a row as it is (from L2: other blocks wrote it).
__device__ void stage_plain(const bf16* x, int k, uint4* xs) {
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  for (int c = threadIdx.x; c < k / 8; c += kStepComputeThreads) xs[c] = __ldcg(xv + c);
  compute_sync();
}
// RMS-normalised with weight w, as stage_input computes it in a block of `threads` threads
// (thread t adds chunks t, t + threads, ...; the warps' sums added in warp order, the computing
// warps past threads adding zeros); norm weights through ws[k / 8].
__device__ void stage_normalised(const bf16* x, const bf16* w, float eps, int k, int threads,
                                 uint4* xs, uint4* ws, float* reduce) {
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  const uint4* wv = reinterpret_cast<const uint4*>(w);
  const int t = threadIdx.x, vecs = k / 8;
  float ss = 0.0f;
  if (t < threads) {
    for (int c = t; c < vecs; c += threads) {
      ws[c] = wv[c];
      const uint4 xc = __ldcg(xv + c);
      xs[c] = xc;
      ss = add_squares8(xc, ss);
    }
  }
  ss = warp_sum(ss);
  if ((t & 31) == 0) reduce[t >> 5] = ss;
  compute_sync();
  float sum = 0.0f;
  for (int i = 0; i < kStepComputeThreads / 32; ++i) sum += reduce[i];
  const float inv = rms_inverse(sum, k, eps);
  compute_sync();  // xs, ws and reduce read by every thread
  for (int c = t; c < vecs; c += kStepComputeThreads) xs[c] = normalise8(xs[c], ws[c], inv);
  compute_sync();
}
// SwiGLU of gate/up [2 inter] into xs[inter / 8], as ToSwiglu computes it.
__device__ void stage_swiglu(const bf16* gu, int inter, uint4* xs) {
  const uint4* g = reinterpret_cast<const uint4*>(gu);
  const uint4* u = reinterpret_cast<const uint4*>(gu + inter);
  for (int c = threadIdx.x; c < inter / 8; c += kStepComputeThreads) {
    Pack8 a, b, o;
    a.u = __ldcg(g + c);
    b.u = __ldcg(u + c);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 gf = __bfloat1622float2(a.h[j]), uf = __bfloat1622float2(b.h[j]);
      o.h[j].x = swiglu_value(gf.x, uf.x);
      o.h[j].y = swiglu_value(gf.y, uf.y);
    }
    xs[c] = o.u;
  }
  compute_sync();
}

// The block's rows of w [m, k] (share) against xs: local row i to warp i % 8, lane l adding the
// chunks p 32 + l + 32 kParts j of part p in order, a butterfly, the parts in order (decode_gemv's
// order for kParts warps to a row); store(row, dot) by lane 0.
template <int kParts, class Store>
__device__ void multiply_rows(Ring& ring, const uint4* xs, int k, RowShare share, Store store,
                              int leave_out = 0) {
  const int per = rows_per_slot(k), vecs = k / 8, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int r = share.begin; r < share.end; r += per, ++ring.chunk) {
    const int n = min(per, share.end - r), slot = ring.chunk % kStepSlots,
              use = ring.chunk / kStepSlots;
    barrier_wait(&ring.s->full[slot], use & 1);
    const uint4* wv = reinterpret_cast<const uint4*>(ring.s->ring[slot]);
    for (int j = (warp - (r - share.begin) % 8 + 8) % 8; j < n && !(leave_out & kLeaveOutProducts);
         j += 8) {
      const uint4* row = wv + int64_t{j} * vecs;
      float dot = 0.0f;
#pragma unroll
      for (int p = 0; p < kParts; ++p) {
        float acc = 0.0f;
#pragma unroll 8
        for (int c = p * 32 + lane; c < vecs; c += 32 * kParts) acc = dot8(row[c], xs[c], acc);
        acc = warp_sum(acc);
        dot = p == 0 ? acc : dot + acc;
      }
      if (lane == 0) store(r + j, dot);
    }
    __syncwarp();
    if (lane == 0) barrier_arrive(&ring.s->empty[slot]);
  }
}

// One layer's attention for the KV heads of this block's cluster: block `rank` of the cluster
// takes keys [rank P, rank P + P), P = ceil(kv_len / kStepCluster), as decode_attention_cluster
// does; q and the step's own key are rotated here from the q/k/v product, and the block holding
// the own row writes it to the cache for the steps after.
__device__ void attend_layer(const StepParams& p, int layer, int cluster_id, int clusters,
                             unsigned rank, unsigned blocks, StepShared& s, int& phase) {
  namespace cg = cooperative_groups;
  constexpr int HD = 64, C = kClusterKeys, V = HD / 8, T = kStepComputeThreads;
  const int t = threadIdx.x, group = p.heads / p.kv_heads, kv_len = p.pos + 1, own = p.pos;
  const int per = (kv_len + kStepCluster - 1) / kStepCluster;
  const int begin = min(static_cast<int>(rank) * per, kv_len), end = min(begin + per, kv_len);
  auto ks = reinterpret_cast<bf16(*)[HD + 8]>(s.keys);
  auto vs = reinterpret_cast<bf16(*)[HD]>(s.keys + sizeof(bf16) * C * (HD + 8));
  auto& scratch = *reinterpret_cast<AttentionScratch<HD, T>*>(s.staging);
  const bf16* kc = p.k_cache + layer * p.cache_layer;
  const bf16* vc = p.v_cache + layer * p.cache_layer;
  const int half = HD / 2;
  for (int g = cluster_id; g < p.kv_heads; g += clusters, ++phase) {
    auto row_of = [&](const bf16* cache, int j) {
      return cache + (int64_t{j} * p.kv_heads + g) * HD;
    };
    // Tile [j0, j0 + count): earlier positions copied from the cache, the own row from own_kv.
    auto load_tile = [&](int j0, int count, bool) {
      for (int i = t; i < C * V; i += T) {
        const int j = i / V, c = i % V;
        if (j >= count) continue;
        if (j0 + j == own) {
          reinterpret_cast<uint4*>(&ks[j][0])[c] = reinterpret_cast<const uint4*>(s.own_kv[0])[c];
          reinterpret_cast<uint4*>(&vs[j][0])[c] = reinterpret_cast<const uint4*>(s.own_kv[1])[c];
        } else {
          copy16_async(&ks[j][c * 8], row_of(kc, j0 + j) + c * 8);
          copy16_async(&vs[j][c * 8], row_of(vc, j0 + j) + c * 8);
        }
      }
      asm volatile("cp.async.commit_group;\n" ::: "memory");
    };
    // The cluster read this block's previous partial (and no block overwrites its tile early).
    if (phase > 0) barrier_wait<true>(&s.partial_read, (phase - 1) & 1);
    // The first tile's earlier rows before the wait for the q/k/v stage, as the kernel does.
    for (int i = t; i < C * V; i += T) {
      const int j = i / V, c = i % V;
      if (j < min(end - begin, C) && begin + j != own) {
        copy16_async(&ks[j][c * 8], row_of(kc, begin + j) + c * 8);
        copy16_async(&vs[j][c * 8], row_of(vc, begin + j) + c * 8);
      }
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
    await_stage(&p.counters[layer * kStepStages + 0], blocks);
    // q of the group's heads and the own key, rotated (ToRopeCache's arithmetic), and the value.
    const float* cs = p.cos_t + int64_t{p.pos} * half;
    const float* sn = p.sin_t + int64_t{p.pos} * half;
    for (int i = t; i < (group + 2) * half; i += T) {
      const int h = i / half, j = i % half;
      const int src = h < group    ? (g * group + h) * HD
                      : h == group ? (p.heads + g) * HD
                                   : (p.heads + p.kv_heads + g) * HD;
      const float x1 = __bfloat162float(__ldcg(p.qkv + src + j));
      const float x2 = __bfloat162float(__ldcg(p.qkv + src + j + half));
      if (h < group) {
        bf16 lo, hi;
        rope_pair(x1, x2, cs[j], sn[j], &lo, &hi);
        scratch.qs[h][j] = __bfloat162float(lo);
        scratch.qs[h][j + half] = __bfloat162float(hi);
      } else if (h == group) {
        rope_pair(x1, x2, cs[j], sn[j], &s.own_kv[0][j], &s.own_kv[0][j + half]);
      } else {
        s.own_kv[1][j] = __float2bfloat16_rn(x1);
        s.own_kv[1][j + half] = __float2bfloat16_rn(x2);
      }
    }
    for (int i = t; i < group * HD; i += T) s.partial.acc_out[i / HD][i % HD] = 0.0f;
    if (t < kMaxGroup) {
      s.partial.run_m[t] = -INFINITY;
      s.partial.run_l[t] = 0.0f;
    }
    compute_sync();
    const bool holds_own = begin <= own && own < end;
    if (holds_own && t < 2 * V) {
      // Into the cache for later steps, and into the first tile when it is there.
      const uint4 v = reinterpret_cast<const uint4*>(s.own_kv[t / V])[t % V];
      reinterpret_cast<uint4*>(const_cast<bf16*>(row_of(t < V ? kc : vc, own)))[t % V] = v;
      if (own < begin + C)
        reinterpret_cast<uint4*>(t < V ? &ks[own - begin][0] : &vs[own - begin][0])[t % V] = v;
    }
    attend_keys<HD, T>(begin, end, group, p.scale, ks, vs, scratch, s.partial, load_tile,
                       ComputeSync{});
    compute_sync();
    if (t == 0)
      for (unsigned q = 0; q < kStepCluster; ++q) barrier_arrive_at(&s.partial_ready, q);
    barrier_wait<true>(&s.partial_ready, phase & 1);
    cg::cluster_group cluster = cg::this_cluster();
    merge_partials<HD, kStepCluster, T>(
        static_cast<int>(rank), group,
        [&](int q) { return cluster.map_shared_rank(&s.partial, q); },
        p.att + int64_t{g} * group * HD);
    compute_sync();
    if (t == 0)
      for (unsigned q = 0; q < kStepCluster; ++q) barrier_arrive_at(&s.partial_read, q);
  }
}

// Grid: clusters of kStepCluster blocks, every block resident at once; kStepThreads threads;
// sizeof(StepShared) bytes of dynamic shared memory. p.counters zero on entry, and again on exit.
__global__ void __launch_bounds__(kStepThreads, 1) decode_step_persistent(StepParams p) {
  namespace cg = cooperative_groups;
  extern __shared__ __align__(128) unsigned char step_shared[];
  StepShared& s = *reinterpret_cast<StepShared*>(step_shared);
  cg::cluster_group cluster = cg::this_cluster();
  const unsigned rank = cluster.block_rank(), blocks = gridDim.x;
  const int block = blockIdx.x, cluster_id = block / kStepCluster,
            clusters = gridDim.x / kStepCluster;
  const int H = p.hidden, Q = p.heads * 64, KV = p.kv_heads * 64, I = p.inter;
  if (threadIdx.x == 0) {
    for (int i = 0; i < kStepSlots; ++i) {
      barrier_init(&s.full[i], 1);
      barrier_init(&s.empty[i], kStepComputeThreads / 32);
    }
    barrier_init(&s.partial_ready, kStepCluster);
    barrier_init(&s.partial_read, kStepCluster);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  cluster.sync();  // every barrier of the cluster initialised before any arrival
  const bf16* embedded = p.embed + int64_t{*p.token} * H;
  Ring ring{&s};

  if (threadIdx.x >= kStepComputeThreads) {
    if (threadIdx.x != kStepComputeThreads) return;
    uint64_t policy;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
    for (int l = 0; l < p.layer_count; ++l) {
      const StepLayer& L = p.layers[l];
      stream_rows(ring, L.wqkv, H, row_share(Q + 2 * KV, block, blocks), policy);
      stream_rows(ring, L.wo, Q, row_share(H, block, blocks), policy);
      stream_rows(ring, L.wgu, H, row_share(2 * I, block, blocks), policy);
      stream_rows(ring, L.wdown, I, row_share(H, block, blocks), policy);
    }
    stream_rows(ring, p.embed, H, row_share(p.vocab, block, blocks), policy);
    return;
  }

  uint4* xs = reinterpret_cast<uint4*>(s.staging);
  uint4* ws = xs + 8192 / 8;
  int phase = 0;
  for (int l = 0; l < p.layer_count; ++l) {
    const StepLayer& L = p.layers[l];
    unsigned* counter = p.counters + l * kStepStages;
    const bf16* residual = l == 0 ? embedded : p.x;
    // q/k/v: normalised as decode_gemv<4, ...> (128 threads) does.
    if (l > 0) await_stage(counter - 1, blocks, p.leave_out);
    stage_normalised(residual, L.attn_norm, p.eps, H, 128, xs, ws, s.reduce);
    multiply_rows<1>(
        ring, xs, H, row_share(Q + 2 * KV, block, blocks),
        [&](int r, float dot) { p.qkv[r] = __float2bfloat16_rn(dot); }, p.leave_out);
    finish_stage(counter + 0);
    // Attention (waits for the q/k/v stage itself, after starting its cache copies).
    if (cluster_id < p.kv_heads && !(p.leave_out & kLeaveOutAttention))
      attend_layer(p, l, cluster_id, clusters, rank, blocks, s, phase);
    finish_stage(counter + 1);
    // o, with the residual added (the embedding row in layer 0).
    await_stage(counter + 1, blocks, p.leave_out);
    stage_plain(p.att, Q, xs);
    multiply_rows<1>(
        ring, xs, Q, row_share(H, block, blocks),
        [&](int r, float dot) {
          p.x[r] = __float2bfloat16_rn(dot + __bfloat162float(__ldcg(residual + r)));
        },
        p.leave_out);
    finish_stage(counter + 2);
    // gate/up: normalised as decode_gemv<8, ...> (256 threads) does; rows stored, SwiGLU after.
    await_stage(counter + 2, blocks, p.leave_out);
    stage_normalised(p.x, L.mlp_norm, p.eps, H, 256, xs, ws, s.reduce);
    multiply_rows<1>(
        ring, xs, H, row_share(2 * I, block, blocks),
        [&](int r, float dot) { p.gu[r] = __float2bfloat16_rn(dot); }, p.leave_out);
    finish_stage(counter + 3);
    // down: 4 warps to a row in decode_gemv<8, 4, ...>, so 4 parts here.
    await_stage(counter + 3, blocks, p.leave_out);
    stage_swiglu(p.gu, I, xs);
    multiply_rows<4>(
        ring, xs, I, row_share(H, block, blocks),
        [&](int r, float dot) {
          p.x[r] = __float2bfloat16_rn(dot + __bfloat162float(__ldcg(p.x + r)));
        },
        p.leave_out);
    finish_stage(counter + 4);
  }
  await_stage(p.counters + p.layer_count * kStepStages - 1, blocks, p.leave_out);
  stage_normalised(p.x, p.final_norm, p.eps, H, 256, xs, ws, s.reduce);
  multiply_rows<1>(
      ring, xs, H, row_share(p.vocab, block, blocks),
      [&](int r, float dot) { p.logits[r] = __float2bfloat16_rn(dot); }, p.leave_out);
  compute_sync();
  if (threadIdx.x == 0) {
    // No block leaves while its cluster may still read its partial.
    if (phase > 0) barrier_wait<true>(&s.partial_read, (phase - 1) & 1);
    __threadfence();
    unsigned* left = p.counters + p.layer_count * kStepStages;
    if (atomicAdd(left, 1u) == blocks - 1) {
      for (int i = 0; i < p.layer_count * kStepStages; ++i) p.counters[i] = 0;
      *left = 0;
      __threadfence();
    }
  }
}

// How many blocks decode_step_persistent runs as here (whole clusters that the device holds at
// once, one a multiprocessor), after giving it its shared memory; 0 where it cannot run.
inline int persistent_step_blocks() {
  auto kernel = decode_step_persistent;
  const int shared = static_cast<int>(sizeof(StepShared));
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared) !=
          cudaSuccess ||
      cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) !=
          cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(kStepCluster);
  config.blockDim = dim3(kStepThreads);
  config.dynamicSmemBytes = shared;
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim.x = kStepCluster;
  attribute.val.clusterDim.y = 1;
  attribute.val.clusterDim.z = 1;
  config.attrs = &attribute;
  config.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return std::min(clusters, sms / kStepCluster) * kStepCluster;
}

void launch_persistent_step(int blocks, cudaStream_t stream, const StepParams& p) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(blocks));
  config.blockDim = dim3(kStepThreads);
  config.dynamicSmemBytes = sizeof(StepShared);
  config.stream = stream;
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim.x = kStepCluster;
  attribute.val.clusterDim.y = 1;
  attribute.val.clusterDim.z = 1;
  config.attrs = &attribute;
  config.numAttrs = 1;
  PINMARK_CUDA_CHECK(cudaLaunchKernelEx(&config, decode_step_persistent, p));
}

}  // namespace
