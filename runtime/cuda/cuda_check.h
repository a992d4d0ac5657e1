// Checks for CUDA runtime and cuBLAS calls. A failure throws std::runtime_error naming the
// call, the library's own error text and the source position, so the driver reports it in the
// case's Errors section instead of the process dying on a GPU fault.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace pinmark::cuda_detail {

[[noreturn]] inline void throw_failure(const char* call, const std::string& error,
                                       const char* file, int line) {
  throw std::runtime_error(std::string(call) + " failed: " + error + " (" + file + ":" +
                           std::to_string(line) + ")");
}

inline void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  throw_failure(call, std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status),
                file, line);
}

inline void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw_failure(call,
                std::string(cublasGetStatusName(status)) + ": " + cublasGetStatusString(status),
                file, line);
}

}  // namespace pinmark::cuda_detail

#define PINMARK_CUDA_CHECK(call) ::pinmark::cuda_detail::check((call), #call, __FILE__, __LINE__)

// After a kernel launch: a bad launch configuration shows up here, a fault inside the kernel
// at the next synchronizing call (which is checked too).
#define PINMARK_CUDA_CHECK_LAUNCH(kernel) \
  ::pinmark::cuda_detail::check(cudaGetLastError(), "launch of " #kernel, __FILE__, __LINE__)
