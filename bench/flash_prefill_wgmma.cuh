// Prefill attention on Hopper's warpgroup tensor instructions (wgmma, PTX ISA "Asynchronous
// Warpgroup Level Matrix Multiply-Accumulate"; sm_90a only). Included by device_llama.cuh after
// the helpers and constants of flash_attention_prefill, which this kernel follows step for
// step: the same tiles (64 queries a block, one warpgroup; key tiles of 64), the same online
// softmax on the same register layout (a wgmma accumulator's warp holds 16 rows as an mma.sync
// m16n8 tile does), the same rounding of P to bf16 and the same final division, so the same
// bits. What differs is where the products run: S = Q K^T is 4 wgmma m64n64k16 reading Q and K
// from shared memory, O += P V 4 more with P in registers and V in shared memory, Q, K and V
// in the 128-byte swizzled layout the instruction's descriptors describe, so no ldmatrix is
// issued.
#pragma once

// PINMARK_BENCH_SM90A: the bench is built for sm_90a (CMake sets it), so the kernel exists.
#ifndef PINMARK_BENCH_SM90A
#define PINMARK_BENCH_SM90A 0
#endif
constexpr bool kFlashWgmmaBuilt = PINMARK_BENCH_SM90A != 0;
// Whether this device compilation has wgmma: only sm_90a's does, so in a build for several
// architectures (e.g. 90a and 100a) every other one compiles the kernel as a trap, never launched.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PINMARK_WGMMA_ARCH 1
#else
#define PINMARK_WGMMA_ARCH 0
#endif

// The shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format") of a tile whose rows
// are 128 bytes (64 bf16) in the 128-byte swizzle, the tile 1024-byte aligned: start address,
// the leading byte offset (unused for these shapes: 16 bytes), the stride byte offset (the 8-row
// groups, 1024 bytes apart), layout type 1 (128-byte swizzle). All offsets in 16-byte units.
__device__ __forceinline__ uint64_t swizzled_tile_descriptor(uint32_t smem_address) {
  return uint64_t{(smem_address & 0x3FFFF) >> 4} | (uint64_t{1} << 16) |
         (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}
// Byte offset of 16-byte chunk c of row r in such a tile: the chunk index XOR the row's low 3
// bits (the 128-byte swizzle), so the 8 rows a tensor-core phase reads hit distinct banks.
__device__ __forceinline__ uint32_t swizzled_offset(int r, int c) {
  return static_cast<uint32_t>(r * 128 + ((c ^ (r & 7)) << 4));
}

// The 32 fp32 accumulators of a m64n64 wgmma (a thread's part of the 64 x 64 tile, as the 8
// mma.sync m16n8 tiles d[j][e] its warp's 16 rows make): the operand list in the instruction's
// text, and the asm operands that bind them, %0 ... %31.
#define PINMARK_WGMMA_D32                                  \
  "{%0, %1, %2, %3, %4, %5, %6, %7, "                      \
  "%8, %9, %10, %11, %12, %13, %14, %15, "                 \
  "%16, %17, %18, %19, %20, %21, %22, %23, "               \
  "%24, %25, %26, %27, %28, %29, %30, %31}"
#define PINMARK_WGMMA_D32_OPERANDS(d) \
  "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), \
  "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), \
  "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), \
  "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), \
  "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), \
  "+f"(d[7][2]), "+f"(d[7][3])
using WgmmaTile = float[kFlashK / 8][4];
static_assert(kFlashK == 64 && kFlashD == 64, "the wgmma tiles are m64n64: 64 keys, 64 dims");

__device__ __forceinline__ void wgmma_fence() {
#if PINMARK_WGMMA_ARCH
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if PINMARK_WGMMA_ARCH
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_wait_all() {
#if PINMARK_WGMMA_ARCH
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
}
// Keeps the compiler from moving reads or writes of an accumulator across a wgmma's issue or
// wait (the asm statements of those do not name the registers the hardware writes later).
__device__ __forceinline__ void wgmma_hold(WgmmaTile& d) {
#pragma unroll
  for (int i = 0; i < 32; ++i) asm volatile("" : "+f"(d[i / 4][i % 4])::"memory");
}
// Writes through the generic proxy (cp.async, st.shared) made visible to the tensor cores'
// asynchronous proxy, before a barrier after which wgmma reads them.
__device__ __forceinline__ void fence_proxy_async_shared() {
#if PINMARK_WGMMA_ARCH
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// d (+)= a b for the warpgroup: a 64 x 16 bf16 in registers (each warp its 16 rows, as an
// mma.sync A fragment), b 16 x 64 bf16 in shared memory by descriptor, K-major (kTransB 0: the
// tile's rows are b's columns) or MN-major (1: the rows are b's rows), d 64 x 64 fp32; accumulate
// 0 overwrites d.
template <int kTransB>
__device__ __forceinline__ void wgmma_m64n64k16(WgmmaTile& d, const uint32_t (&a)[4],
                                                uint64_t b, int accumulate) {
#if PINMARK_WGMMA_ARCH
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      PINMARK_WGMMA_D32 ", "
      "{%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
      : PINMARK_WGMMA_D32_OPERANDS(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate), "n"(kTransB));
#else
  __trap();
#endif
}

// d (+)= a b with a too read from shared memory by descriptor (K-major).
__device__ __forceinline__ void wgmma_m64n64k16_ss(WgmmaTile& d, uint64_t a, uint64_t b,
                                                   int accumulate) {
#if PINMARK_WGMMA_ARCH
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      PINMARK_WGMMA_D32 ", "
      "%32, %33, p, 1, 1, 0, 0;\n}\n"
      : PINMARK_WGMMA_D32_OPERANDS(d)
      : "l"(a), "l"(b), "r"(accumulate));
#else
  __trap();
#endif
}

// Dynamic shared memory of flash_attention_prefill_wgmma: room to align to 1024 bytes, two
// slots of a K and a V tile (8 KB each), then the query tile, all swizzled.
constexpr uint32_t kFlashTileBytes = sizeof(bf16) * kFlashK * kFlashD;
constexpr size_t kFlashWgmmaShared = 1024 + 5 * kFlashTileBytes;

// Shapes, grid and results as flash_attention_prefill<1>: one block of 128 threads per
// (64 queries, head), the longest query tiles first; kFlashWgmmaShared bytes of dynamic shared
// memory. K and V of the next tile load (cp.async) while this one is used.
__global__ void __launch_bounds__(kFlashThreads)
    flash_attention_prefill_wgmma(const bf16* q, const bf16* k_cache, const bf16* v_cache, int n,
                                  int p0, int heads, int kv_heads, float scale_log2, bf16* out) {
#if PINMARK_WGMMA_ARCH
  wait_for_previous();
  extern __shared__ __align__(16) unsigned char flash_shared[];
  const uint32_t raw = smem_addr(flash_shared);
  const uint32_t tiles = (raw + 1023) & ~1023u;  // slot b: K at + 16 KB b, V 8 KB after it
  unsigned char* const tiles_ptr = flash_shared + (tiles - raw);
  const uint32_t q_tile = tiles + 4 * kFlashTileBytes;
  const int tiles_q = (n + 63) / 64;
  const int h = blockIdx.x % heads;
  const int qt = tiles_q - 1 - blockIdx.x / heads;
  const int g = h / (heads / kv_heads);
  const int q0 = qt * 64;
  const int kv_len = p0 + n;
  const int t = threadIdx.x, warp = t >> 5, lane = t & 31;
  const int last_key = p0 + min(q0 + 63, n - 1);
  const int tiles_k = last_key / kFlashK + 1;

  auto load_kv = [&](int tile, int slot) {
    for (int c = t; c < kFlashK * kFlashD / 8; c += kFlashThreads) {
      const int row = c >> 3, chunk = c & 7, key = tile * kFlashK + row;
      const bool in = key < kv_len;
      const int64_t off = in ? (int64_t{key} * kv_heads + g) * kFlashD + chunk * 8 : 0;
      const uint32_t at = 2 * slot * kFlashTileBytes + swizzled_offset(row, chunk);
      cp_async16(tiles_ptr + at, k_cache + off, in ? 16 : 0);
      cp_async16(tiles_ptr + at + kFlashTileBytes, v_cache + off, in ? 16 : 0);
    }
  };
  load_kv(0, 0);
  cp_async_commit();
  for (int c = t; c < 64 * kFlashD / 8; c += kFlashThreads) {
    const int row = c >> 3, chunk = c & 7, i = q0 + row;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (i < n)
      v = *reinterpret_cast<const uint4*>(q + (int64_t{i} * heads + h) * kFlashD + chunk * 8);
    *reinterpret_cast<uint4*>(tiles_ptr + (q_tile - tiles) + swizzled_offset(row, chunk)) = v;
  }

  const int r0 = lane >> 2, c0 = (lane & 3) * 2;
  const int pos0 = p0 + q0 + warp * 16 + r0, pos1 = pos0 + 8;
  // o[j][e] and s[j][e]: element e of the mma.sync tile j (columns 8 j ...).
  WgmmaTile o;
#pragma unroll
  for (int i = 0; i < 32; ++i) o[i / 4][i % 4] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  for (int kt = 0; kt < tiles_k; ++kt) {
    const int slot = kt & 1;
    if (kt + 1 < tiles_k) load_kv(kt + 1, slot ^ 1);
    cp_async_commit();  // an empty group on the last tile keeps the count waited for the same
    cp_async_wait<1>();
    fence_proxy_async_shared();  // this thread's cp.async and Q stores, for the tensor cores
    __syncthreads();

    const uint32_t k_tile = tiles + 2 * slot * kFlashTileBytes, v_tile = k_tile + kFlashTileBytes;
    WgmmaTile s;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kFlashD / 16; ++kk)  // 16 dims a step: 32 bytes along the rows
      wgmma_m64n64k16_ss(s, swizzled_tile_descriptor(q_tile + 32 * kk),
                         swizzled_tile_descriptor(k_tile + 32 * kk), kk);
    wgmma_commit();
    wgmma_wait_all();
    wgmma_hold(s);

    uint32_t pa[kFlashK / 16][4];
    const int k0 = kt * kFlashK;
    softmax_tile(s, k0, k0 + kFlashK - 1 > p0 + q0, pos0, pos1, c0, scale_log2, m0, m1, l0, l1,
                 o, pa);
    wgmma_hold(o);
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < kFlashK / 16; ++j)  // 16 keys a step: 16 rows of 128 bytes
      wgmma_m64n64k16<1>(o, pa[j], swizzled_tile_descriptor(v_tile + 2048 * j), 1);
    wgmma_commit();
    wgmma_wait_all();
    wgmma_hold(o);
    __syncthreads();  // the next iteration's loads overwrite this tile's slot
  }
  cp_async_wait<0>();

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
  const int i0 = q0 + warp * 16 + r0, i1 = i0 + 8;
  const int64_t ld = int64_t{heads} * kFlashD;
#pragma unroll
  for (int dt = 0; dt < kFlashD / 8; ++dt) {
    const int col = h * kFlashD + dt * 8 + c0;
    if (i0 < n)
      *reinterpret_cast<__nv_bfloat162*>(out + i0 * ld + col) =
          __floats2bfloat162_rn(o[dt][0] * inv0, o[dt][1] * inv0);
    if (i1 < n)
      *reinterpret_cast<__nv_bfloat162*>(out + i1 * ld + col) =
          __floats2bfloat162_rn(o[dt][2] * inv1, o[dt][3] * inv1);
  }
#else
  __trap();
#endif
}
