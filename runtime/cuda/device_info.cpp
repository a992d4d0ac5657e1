#include "runtime/cuda/device_info.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "runtime/cuda/cuda_check.h"

namespace pinmark {

namespace {

// 13000 -> "13.0", the way CUDA prints its versions.
std::string cuda_version_text(int version) {
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

cudaDeviceProp current_device_properties() {
  if (!cuda_device_available()) throw std::runtime_error("no CUDA device is available");
  int device = 0;
  PINMARK_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  PINMARK_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop;
}

}  // namespace

bool cuda_device_available() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    // Clear it, so that it is not reported later by an unrelated call.
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

std::string cuda_device_class() {
  const cudaDeviceProp prop = current_device_properties();
  return "sm" + std::to_string(prop.major) + std::to_string(prop.minor);
}

std::string cuda_provenance() {
  const cudaDeviceProp prop = current_device_properties();
  int runtime = 0, driver = 0;
  PINMARK_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  PINMARK_CUDA_CHECK(cudaDriverGetVersion(&driver));
  int major = 0, minor = 0, patch = 0;
  PINMARK_CUDA_CHECK(cublasGetProperty(MAJOR_VERSION, &major));
  PINMARK_CUDA_CHECK(cublasGetProperty(MINOR_VERSION, &minor));
  PINMARK_CUDA_CHECK(cublasGetProperty(PATCH_LEVEL, &patch));
  return std::string(prop.name) + ", compute capability " + std::to_string(prop.major) + "." +
         std::to_string(prop.minor) + ", CUDA runtime " + cuda_version_text(runtime) +
         ", driver " + cuda_version_text(driver) + ", cuBLAS " + std::to_string(major) + "." +
         std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace pinmark
