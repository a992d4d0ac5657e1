// The CUDA backend: every op as a CUDA kernel of our own, matrix products through cuBLAS.
// The Backend interface passes host arrays, so each call copies its inputs to the device and
// its outputs back; correctness and run-to-run determinism come first, speed later.
//
// This header holds no CUDA types, so plain C++ code (the target factory, tests) includes it.
#pragma once

#include <memory>
#include <string>

#include "runtime/backend.h"

namespace pinmark {

// How matrix products are computed. Every other op computes in fp32 whatever the precision:
// for bf16 and fp16 the rounding backend wrapped around this one stores each op's output in
// the narrow type, the way the emulated CPU targets do.
enum class CudaPrecision {
  fp32,  // fp32 operands, cuBLAS CUBLAS_COMPUTE_32F_PEDANTIC: true fp32 FMAs, no TF32
  tf32,  // fp32 operands rounded to TF32 on the tensor cores, fp32 accumulation
  bf16,  // operands converted to __nv_bfloat16, tensor cores, fp32 accumulation
  fp16,  // operands converted to __half, tensor cores, fp32 accumulation
};

// How matrix products are computed, for the provenance of a row: "cuBLAS GemmEx fp32 operands,
// CUBLAS_COMPUTE_32F_PEDANTIC" and so on.
std::string cuda_math_mode(CudaPrecision precision);

// Throws std::runtime_error when no device can be used (see cuda_device_available()).
std::unique_ptr<Backend<float>> make_cuda_backend(CudaPrecision precision);

// Tensor parallelism (Megatron-LM's split, Shoeybi et al. 2019) over devices 0 .. ranks - 1;
// ranks is 2. Ops run on device 0 as make_cuda_backend's do, except the products by held
// weights (Backend::hold_matrix): an input projection split by output rows (each device's
// outputs whole, gathered), an output projection (o_proj, down_proj) by input columns, each
// device's partial sums rounded to the storage type (bf16, fp16; fp32 otherwise) and added by
// an NCCL all-reduce in it, the bias after. NCCL is opened at run time (nccl_api.h). Throws
// std::runtime_error with cuda_tp_unavailable()'s reason when it cannot run.
std::unique_ptr<Backend<float>> make_cuda_tp_backend(CudaPrecision precision, int ranks);

// Why tensor parallelism over `ranks` GPUs cannot run here (too few devices, no NCCL); ""
// when it can.
std::string cuda_tp_unavailable(int ranks);

// cuda_math_mode() plus how the products are split and reduced.
std::string cuda_tp_math_mode(CudaPrecision precision, int ranks);

// "2 x <cuda_provenance()>, NCCL 2.28.9" (each device's line when they differ).
std::string cuda_tp_provenance(int ranks);

}  // namespace pinmark
