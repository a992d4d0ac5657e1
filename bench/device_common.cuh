// Device helpers shared by the bench's forward (device_llama.cuh) and its
// decode kernels (decode_kernels.cuh): warp and block reductions in a fixed
// order, 16-byte bf16 packs, and programmatic dependent launch.
//
// Included by one translation unit per program, hence the unnamed namespace.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <utility>

#include "runtime/cuda/cuda_check.h"

namespace {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Every thread of the block gets the result; `scratch` holds one float per
// warp.
template <bool kMax>
__device__ float block_reduce(float v, float *scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = kMax ? -INFINITY : 0.0f;
  for (int w = 0; w < warps; ++w) r = kMax ? fmaxf(r, scratch[w]) : r + scratch[w];
  return r;
}

// Eight bf16 in one 16-byte access.
union Pack8 {
  uint4 u;
  __nv_bfloat162 h[4];
};

// Programmatic dependent launch (Hopper's griddepcontrol; CUDA programming
// guide, "Programmatic Dependent Launch and Synchronization"). A kernel started
// by launch_dependent() may begin while the kernel before it in the stream
// still runs, so that the gap between two kernels of a decode step is spent
// loading weights. Such a kernel calls wait_for_previous() before it reads
// anything an earlier kernel writes and before it writes anything an earlier
// kernel reads; only what no kernel of the forward writes (the weights) may be
// read before. The wait returns once the previous grid has finished and its
// writes are visible, so the order of the stream holds transitively. Under an
// ordinary launch, or before sm_90, both calls do nothing.
__device__ __forceinline__ void wait_for_previous() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
// The same, after `after` is known: a value computed from loads issued before the wait keeps
// the compiler from moving those loads after it.
__device__ __forceinline__ void wait_for_previous(uint32_t after) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::"r"(after) : "memory");
#else
  (void)after;
#endif
}
// Lets the next kernel's blocks be scheduled before this grid ends. Called only after
// wait_for_previous(), so that a kernel started early finds every kernel before its predecessor
// finished (what the decode attention relies on to read earlier cache rows before its wait).
__device__ __forceinline__ void start_next() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Launches `kernel` by programmatic dependent launch; with cluster > 0, in thread block
// clusters of `cluster` blocks along x (grid.x a multiple of it).
template <class... Params, class... Args>
void launch_dependent_in(int cluster, void (*kernel)(Params...), dim3 grid, dim3 block,
                         size_t shared_bytes, cudaStream_t stream, Args &&...args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute[2];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  attribute[1].id = cudaLaunchAttributeClusterDimension;
  attribute[1].val.clusterDim.x = static_cast<unsigned>(cluster);
  attribute[1].val.clusterDim.y = 1;
  attribute[1].val.clusterDim.z = 1;
  config.attrs = attribute;
  config.numAttrs = cluster > 0 ? 2 : 1;
  PINMARK_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

template <class... Params, class... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                      cudaStream_t stream, Args &&...args) {
  launch_dependent_in(0, kernel, grid, block, shared_bytes, stream, std::forward<Args>(args)...);
}

}  // namespace
