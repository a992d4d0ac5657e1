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
// the copies of the next stages' weights go on until the ring is full (and, when asked,
// prefetches into L2 run further ahead still: measured slower, so off by default). This is the
// design of the "megakernels" for small-batch decode (Hazy Research, "Look Ma, No Bubbles",
// 2025). It measured slower than the five kernels a layer (docs/performance.md says where the
// time goes), so DeviceModel runs it only when asked.
//
// Same bits as the five-kernel step, by construction: each row's sum has decode_gemv's order
// (lane l adds the 8-element chunks l, l + 32, ... of its part in order, a butterfly over the
// lanes, the parts added in order), each RMSNorm's sum of squares the order of the kernel it
// replaces (its block size taken as the thread count), and the attention runs
// decode_attention_cluster's functions on the same partition, 16 blocks of 256 threads a KV head,
// its 16 partial results merged in the same order (through global memory here, not a cluster's
// shared memory, so that every multiprocessor takes a block). So the step keeps the five-kernel
// step's batch invariance: a token's logits are the same bits here, alone, as in a batch of the
// five-kernel step (the bench checks both).
//
// Limits: one token (batch 1); head_dim 64; every product's k a multiple of 8 up to 8192 (a row
// of at most one ring slot); hidden at most 4096, and 128 rows a block; no tensor-parallel
// shard. All blocks must be resident at once (they wait on each other): a cooperative launch of
// one block a multiprocessor.
#pragma once

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
constexpr int kStepSplits = 16;                           // blocks per KV head's attention
constexpr int kStepSlotBytes = 16 << 10, kStepSlots = 7;  // the weight ring
constexpr int kStepStages = 5;                            // counted stages per layer
constexpr int kStepResidualRows = 128;                    // at most hidden / blocks, rounded up

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
  // [layer_count * kStepStages] blocks finished per stage, [layer_count * kv_heads] attention
  // splits finished per KV head, then the blocks that left; the last to leave zeroes them all for
  // the next step.
  unsigned* counters;
  AttentionPartial<64>* partials;  // [layer_count, kv_heads, kStepSplits]
  int prefetch_chunks;             // weight chunks prefetched into L2 ahead of the ring
  int rows_per_warp;               // 1 to 4: rows a computing warp sums at once
  // For timing the parts only (the results are then wrong): kLeaveOut* bits of what to skip.
  int leave_out = 0;
};
constexpr int kLeaveOutAttention = 1, kLeaveOutWaits = 2, kLeaveOutProducts = 4, kLeaveOutLoads = 8;

// Shared memory of a block, in one dynamic allocation.
constexpr int kStepKeysBytes = static_cast<int>(sizeof(bf16)) * kClusterKeys * (64 + 8 + 64);
// The staging area holds a product's input (k up to kStepMaxK) with the RMSNorm's weights
// behind it (hidden up to kStepMaxHidden), or the attention's scratch.
constexpr int kStepMaxK = 8192, kStepMaxHidden = 4096;
constexpr int kStepStagingBytes =
    std::max(static_cast<int>(sizeof(bf16)) * (kStepMaxK + kStepMaxHidden),
             static_cast<int>(sizeof(AttentionScratch<64, kStepComputeThreads>)));
struct StepShared {
  alignas(128) unsigned char ring[kStepSlots][kStepSlotBytes];
  alignas(128) unsigned char keys[kStepKeysBytes];        // the attention's K and V tile
  alignas(128) unsigned char staging[kStepStagingBytes];  // a product's input, or attention
  AttentionPartial<64> partial;
  alignas(16) bf16 own_kv[2][64];  // the step's own key (rotated) and value
  float reduce[kStepComputeThreads / 32];
  // The residual rows this block's o and down products add into (the same rows in both, every
  // layer), so that the sums' epilogue reads no global memory.
  bf16 residual[kStepResidualRows];
  uint64_t full[kStepSlots], empty[kStepSlots];
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
// Waits for the barrier's phase of parity `parity` to complete.
__device__ __forceinline__ void barrier_wait(uint64_t* b, uint32_t parity) {
  uint32_t done = 0;
  const uint64_t start = now_ns();
  for (int spins = 0; !done; ++spins) {
    if ((spins & 1023) == 1023) give_up_after(start, "an mbarrier");
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
// `bytes` (a multiple of 16) from global src into L2, ahead of its bulk_load.
__device__ __forceinline__ void prefetch_l2(const void* src, uint32_t bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(src), "r"(bytes) : "memory");
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
// Until `blocks` blocks counted themselves on the counter.
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

// The weight stages of a step in order, 4 a layer (q/k/v, o, gate/up, down) and the LM head:
// matrix, k, and this block's rows.
struct WeightStage {
  const bf16* w;
  int k;
  RowShare share;
};
__device__ WeightStage weight_stage(const StepParams& p, int stage, int block, int blocks) {
  const int H = p.hidden, Q = p.heads * 64, KV = p.kv_heads * 64, I = p.inter;
  if (stage == 4 * p.layer_count) return {p.embed, H, row_share(p.vocab, block, blocks)};
  const StepLayer& L = p.layers[stage / 4];
  switch (stage % 4) {
    case 0:
      return {L.wqkv, H, row_share(Q + 2 * KV, block, blocks)};
    case 1:
      return {L.wo, Q, row_share(H, block, blocks)};
    case 2:
      return {L.wgu, H, row_share(2 * I, block, blocks)};
    default:
      return {L.wdown, I, row_share(H, block, blocks)};
  }
}
// The block's weight chunks one after another, as multiply_rows takes them: rows_per_slot(k)
// rows of a stage at a time.
struct ChunkCursor {
  const StepParams* p;
  int block, blocks, stage = 0, row = 0;
  WeightStage ws;
  __device__ ChunkCursor(const StepParams& params, int b, int n) : p(&params), block(b), blocks(n) {
    ws = weight_stage(*p, 0, block, blocks);
    row = ws.share.begin;
    skip_empty();
  }
  __device__ bool done() const { return stage > 4 * p->layer_count; }
  __device__ const bf16* source() const { return ws.w + int64_t{row} * ws.k; }
  __device__ uint32_t bytes() const {
    return static_cast<uint32_t>(min(rows_per_slot(ws.k), ws.share.end - row)) * ws.k *
           sizeof(bf16);
  }
  __device__ void next() {
    row += rows_per_slot(ws.k);
    skip_empty();
  }
  __device__ void skip_empty() {
    while (!done() && row >= ws.share.end)
      if (++stage <= 4 * p->layer_count) {
        ws = weight_stage(*p, stage, block, blocks);
        row = ws.share.begin;
      }
  }
};

// The loading warp's lane 0: every chunk into the ring, each prefetched into L2 up to
// p.prefetch_chunks chunks before (so that while the ring is full, memory keeps reading).
__device__ void stream_weights(const StepParams& p, StepShared& s, int block, int blocks) {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  ChunkCursor load(p, block, blocks), ahead(p, block, blocks);
  int loaded = 0, prefetched = 0;
  for (; !load.done(); load.next(), ++loaded) {
    for (; !ahead.done() && prefetched <= loaded + p.prefetch_chunks; ahead.next(), ++prefetched)
      if (prefetched > loaded) prefetch_l2(ahead.source(), ahead.bytes());
    const int slot = loaded % kStepSlots, use = loaded / kStepSlots;
    if (use > 0) barrier_wait(&s.empty[slot], (use - 1) & 1);
    if (p.leave_out & kLeaveOutLoads) {
      barrier_arrive(&s.full[slot]);
      continue;
    }
    barrier_expect_bytes(&s.full[slot], load.bytes());
    bulk_load(s.ring[slot], load.source(), load.bytes(), &s.full[slot], policy);
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

// acc[i][p] = part p of row i's dot product with xs for R rows at once: lane l adds the chunks
// p 32 + l + 32 kParts j in order. No branch between the rows' and parts' chains, so that the
// compiler interleaves them (a warp issues in order: one chain alone stalls on each fma).
template <int R, int kParts>
__device__ __forceinline__ void dot_rows(const uint4* const (&rows)[R], const uint4* xs, int vecs,
                                         int lane, float (&acc)[R][kParts]) {
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int p = 0; p < kParts; ++p) acc[i][p] = 0.0f;
  int c0 = lane;
#pragma unroll 2
  for (; c0 + 32 * (kParts - 1) < vecs; c0 += 32 * kParts) {
#pragma unroll
    for (int p = 0; p < kParts; ++p) {
      const uint4 x = xs[c0 + 32 * p];
#pragma unroll
      for (int i = 0; i < R; ++i) acc[i][p] = dot8(rows[i][c0 + 32 * p], x, acc[i][p]);
    }
  }
  if (c0 < vecs) {  // the last round, where only the first parts are in range
#pragma unroll
    for (int p = 0; p < kParts; ++p) {
      const int c = c0 + 32 * p;
      if (c < vecs)
#pragma unroll
        for (int i = 0; i < R; ++i) acc[i][p] = dot8(rows[i][c], xs[c], acc[i][p]);
    }
  }
}

// Rows j0 ... j0 + R - 1 of a slot (wv) against xs, stored through store(r0 + j, dot).
template <int R, int kParts, class Store>
__device__ __forceinline__ void multiply_group(const uint4* wv, const uint4* xs, int vecs, int lane,
                                               int j0, int r0, Store& store) {
  const uint4* rows[R];
#pragma unroll
  for (int i = 0; i < R; ++i) rows[i] = wv + int64_t{j0 + i} * vecs;
  float acc[R][kParts];
  dot_rows<R, kParts>(rows, xs, vecs, lane, acc);
#pragma unroll
  for (int i = 0; i < R; ++i) {
    float dot = 0.0f;
#pragma unroll
    for (int p = 0; p < kParts; ++p) {
      const float sum = warp_sum(acc[i][p]);
      dot = p == 0 ? sum : dot + sum;
    }
    if (lane == 0) store(r0 + j0 + i, dot);
  }
}

// The block's rows of w [m, k] (share) against xs, lane l adding the chunks p 32 + l + 32 kParts j
// of part p in order, a butterfly, the parts in order (decode_gemv's order for kParts warps to a
// row); store(row, dot) by lane 0. Local rows are taken in groups of G = min(rows_per_warp, rows a
// slot), group i by warp i % 8, which computes the group's rows (and the parts of each) as
// independent chains, one x chunk read for all: the sums keep their order, the chains overlap.
template <int kParts, class Store>
__device__ void multiply_rows(Ring& ring, const uint4* xs, int k, RowShare share, Store store,
                              int rows_per_warp, int leave_out = 0) {
  const int per = rows_per_slot(k), vecs = k / 8, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int G = min(rows_per_warp, per);
  for (int r = share.begin; r < share.end; r += per, ++ring.chunk) {
    const int n = min(per, share.end - r), slot = ring.chunk % kStepSlots,
              use = ring.chunk / kStepSlots;
    barrier_wait(&ring.s->full[slot], use & 1);
    const uint4* wv = reinterpret_cast<const uint4*>(ring.s->ring[slot]);
    const int local = r - share.begin;
    for (int j = 0; j < n && !(leave_out & kLeaveOutProducts);) {
      const int li = local + j, count = min(G - li % G, n - j);  // the group's rows in this slot
      if (li / G % 8 == warp) {
        switch (count) {
          case 1:
            multiply_group<1, kParts>(wv, xs, vecs, lane, j, r, store);
            break;
          case 2:
            multiply_group<2, kParts>(wv, xs, vecs, lane, j, r, store);
            break;
          case 3:
            multiply_group<3, kParts>(wv, xs, vecs, lane, j, r, store);
            break;
          default:
            multiply_group<4, kParts>(wv, xs, vecs, lane, j, r, store);
            break;
        }
      }
      j += count;
    }
    __syncwarp();
    if (lane == 0) barrier_arrive(&ring.s->empty[slot]);
  }
}

// One layer's attention: task i (i = block, block + blocks, ...) is split i % kStepSplits of KV
// head i / kStepSplits, keys [split P, split P + P), P = ceil(kv_len / kStepSplits), as
// decode_attention_cluster's block of that rank takes them; q and the step's own key are rotated
// here from the q/k/v product, and the task holding the own row writes it to the cache for the
// steps after. Each task's partial result goes to p.partials; once the head's 16 are there, task
// `split` merges outputs [split n / 16, (split + 1) n / 16) of the head's n outputs, reading the
// partials in split order, as the cluster kernel's block of that rank does.
__device__ void attend_layer(const StepParams& p, int layer, int block, unsigned blocks,
                             StepShared& s) {
  constexpr int HD = 64, C = kClusterKeys, V = HD / 8, T = kStepComputeThreads;
  const int t = threadIdx.x, group = p.heads / p.kv_heads, kv_len = p.pos + 1, own = p.pos;
  const int per = (kv_len + kStepSplits - 1) / kStepSplits, half = HD / 2;
  auto ks = reinterpret_cast<bf16(*)[HD + 8]>(s.keys);
  auto vs = reinterpret_cast<bf16(*)[HD]>(s.keys + sizeof(bf16) * C * (HD + 8));
  auto& scratch = *reinterpret_cast<AttentionScratch<HD, T>*>(s.staging);
  const bf16* kc = p.k_cache + layer * p.cache_layer;
  const bf16* vc = p.v_cache + layer * p.cache_layer;
  unsigned* head_done = p.counters + p.layer_count * kStepStages + layer * p.kv_heads;
  for (int task = block; task < p.kv_heads * kStepSplits; task += blocks) {
    const int g = task / kStepSplits, split = task % kStepSplits;
    const int begin = min(split * per, kv_len), end = min(begin + per, kv_len);
    AttentionPartial<HD>* parts = p.partials + (int64_t{layer} * p.kv_heads + g) * kStepSplits;
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
    compute_sync();  // the previous task's tile and scratch are consumed
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
    if (begin <= own && own < end && t < 2 * V) {
      // Into the cache for later steps, and into the first tile when it is there.
      const uint4 v = reinterpret_cast<const uint4*>(s.own_kv[t / V])[t % V];
      reinterpret_cast<uint4*>(const_cast<bf16*>(row_of(t < V ? kc : vc, own)))[t % V] = v;
      if (own < begin + C)
        reinterpret_cast<uint4*>(t < V ? &ks[own - begin][0] : &vs[own - begin][0])[t % V] = v;
    }
    attend_keys<HD, T>(begin, end, group, p.scale, ks, vs, scratch, s.partial, load_tile,
                       ComputeSync{});
    compute_sync();
    // This split's partial out, counted; the head's 16 in, merged.
    for (int i = t; i < group * HD; i += T)
      parts[split].acc_out[i / HD][i % HD] = s.partial.acc_out[i / HD][i % HD];
    if (t < group) {
      parts[split].run_m[t] = s.partial.run_m[t];
      parts[split].run_l[t] = s.partial.run_l[t];
    }
    finish_stage(&head_done[g]);
    await_stage(&head_done[g], kStepSplits);
    merge_partials<HD, kStepSplits, T>(
        split, group, [&](int q) { return parts + q; }, p.att + int64_t{g} * group * HD);
  }
}

// Grid: one block a multiprocessor, every block resident at once (a cooperative launch);
// kStepThreads threads; sizeof(StepShared) bytes of dynamic shared memory. p.counters zero on
// entry, and again on exit.
__global__ void __launch_bounds__(kStepThreads, 1) decode_step_persistent(StepParams p) {
  extern __shared__ __align__(128) unsigned char step_shared[];
  StepShared& s = *reinterpret_cast<StepShared*>(step_shared);
  const unsigned blocks = gridDim.x;
  const int block = blockIdx.x;
  const int H = p.hidden, Q = p.heads * 64, KV = p.kv_heads * 64, I = p.inter;
  if (threadIdx.x == 0) {
    for (int i = 0; i < kStepSlots; ++i) {
      barrier_init(&s.full[i], 1);
      barrier_init(&s.empty[i], kStepComputeThreads / 32);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();  // the barriers initialised before any arrival
  if (threadIdx.x >= kStepComputeThreads) {
    if (threadIdx.x == kStepComputeThreads) stream_weights(p, s, block, blocks);
    return;
  }

  const bf16* embedded = p.embed + int64_t{*p.token} * H;
  const RowShare own_rows = row_share(H, block, blocks);
  for (int r = own_rows.begin + threadIdx.x; r < own_rows.end; r += kStepComputeThreads)
    s.residual[r - own_rows.begin] = embedded[r];
  // The store of the o and down products: residual added, kept here and written for the others.
  auto add_residual = [&](int r, float dot) {
    bf16& kept = s.residual[r - own_rows.begin];
    kept = __float2bfloat16_rn(dot + __bfloat162float(kept));
    p.x[r] = kept;
  };
  Ring ring{&s};
  uint4* xs = reinterpret_cast<uint4*>(s.staging);
  uint4* ws = xs + kStepMaxK / 8;
  for (int l = 0; l < p.layer_count; ++l) {
    const StepLayer& L = p.layers[l];
    unsigned* counter = p.counters + l * kStepStages;
    const bf16* residual = l == 0 ? embedded : p.x;  // the RMSNorm's input
    // q/k/v: normalised as decode_gemv<4, ...> (128 threads) does.
    if (l > 0) await_stage(counter - 1, blocks, p.leave_out);
    stage_normalised(residual, L.attn_norm, p.eps, H, 128, xs, ws, s.reduce);
    multiply_rows<1>(
        ring, xs, H, row_share(Q + 2 * KV, block, blocks),
        [&](int r, float dot) { p.qkv[r] = __float2bfloat16_rn(dot); }, p.rows_per_warp,
        p.leave_out);
    finish_stage(counter + 0);
    // Attention (waits for the q/k/v stage itself, after starting its cache copies).
    if (!(p.leave_out & kLeaveOutAttention)) attend_layer(p, l, block, blocks, s);
    finish_stage(counter + 1);
    // o, with the residual added (the embedding row in layer 0).
    await_stage(counter + 1, blocks, p.leave_out);
    stage_plain(p.att, Q, xs);
    multiply_rows<1>(ring, xs, Q, own_rows, add_residual, p.rows_per_warp, p.leave_out);
    finish_stage(counter + 2);
    // gate/up: normalised as decode_gemv<8, ...> (256 threads) does; rows stored, SwiGLU after.
    await_stage(counter + 2, blocks, p.leave_out);
    stage_normalised(p.x, L.mlp_norm, p.eps, H, 256, xs, ws, s.reduce);
    multiply_rows<1>(
        ring, xs, H, row_share(2 * I, block, blocks),
        [&](int r, float dot) { p.gu[r] = __float2bfloat16_rn(dot); }, p.rows_per_warp,
        p.leave_out);
    finish_stage(counter + 3);
    // down: 4 warps to a row in decode_gemv<8, 4, ...>, so 4 parts here.
    await_stage(counter + 3, blocks, p.leave_out);
    stage_swiglu(p.gu, I, xs);
    multiply_rows<4>(ring, xs, I, own_rows, add_residual, p.rows_per_warp, p.leave_out);
    finish_stage(counter + 4);
  }
  await_stage(p.counters + p.layer_count * kStepStages - 1, blocks, p.leave_out);
  stage_normalised(p.x, p.final_norm, p.eps, H, 256, xs, ws, s.reduce);
  multiply_rows<1>(
      ring, xs, H, row_share(p.vocab, block, blocks),
      [&](int r, float dot) { p.logits[r] = __float2bfloat16_rn(dot); }, p.rows_per_warp,
      p.leave_out);
  compute_sync();
  if (threadIdx.x == 0) {
    __threadfence();
    const int counters = p.layer_count * (kStepStages + p.kv_heads);
    unsigned* left = p.counters + counters;
    if (atomicAdd(left, 1u) == blocks - 1) {
      for (int i = 0; i < counters; ++i) p.counters[i] = 0;
      *left = 0;
      __threadfence();
    }
  }
}

// How many blocks decode_step_persistent runs as here (one a multiprocessor), after giving it its
// shared memory; 0 where it cannot run.
inline int persistent_step_blocks() {
  auto kernel = decode_step_persistent;
  const int shared = static_cast<int>(sizeof(StepShared));
  int device = 0, sms = 0, cooperative = 0, per_sm = 0;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared) !=
          cudaSuccess ||
      cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kStepThreads, shared) !=
          cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return cooperative && per_sm >= 1 ? sms : 0;
}

// Counters the step needs zeroed before its first launch (it zeroes them as it ends).
inline int persistent_step_counters(int layers, int kv_heads) {
  return layers * (kStepStages + kv_heads) + 1;
}

void launch_persistent_step(int blocks, cudaStream_t stream, const StepParams& p) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(blocks));
  config.blockDim = dim3(kStepThreads);
  config.dynamicSmemBytes = sizeof(StepShared);
  config.stream = stream;
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeCooperative;
  attribute.val.cooperative = 1;
  config.attrs = &attribute;
  config.numAttrs = 1;
  PINMARK_CUDA_CHECK(cudaLaunchKernelEx(&config, decode_step_persistent, p));
}

}  // namespace
