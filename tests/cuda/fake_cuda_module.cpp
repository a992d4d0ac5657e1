// Stand-ins for libpinmark_cuda.so, for cuda_module_test.cpp, built three ways:
//   PINMARK_FAKE_MODULE=0: a shared library without the entry point;
//   PINMARK_FAKE_MODULE=1: a module of another interface version;
//   PINMARK_FAKE_MODULE=2: a module of this build with a pretend device "sm00" and no backend.
// Those of kind 1 and up are CUDA drivers too (cuInit, cuDeviceGetCount): kind 1 counts no
// device, kind 2 one, and kind 3's cuInit fails with CUDA_ERROR_NO_DEVICE (100).
#include <stdexcept>

#include "cuda_module/cuda_module.h"

#if PINMARK_FAKE_MODULE == 0

extern "C" __attribute__((visibility("default"))) int pinmark_not_a_module() { return 0; }

#else

extern "C" __attribute__((visibility("default"))) int cuInit(unsigned int) {
  return PINMARK_FAKE_MODULE == 3 ? 100 : 0;
}

extern "C" __attribute__((visibility("default"))) int cuDeviceGetCount(int* count) {
  *count = PINMARK_FAKE_MODULE == 2 ? 1 : 0;
  return 0;
}

namespace {

bool available() { return true; }
std::string device_class() { return "sm00"; }
std::string provenance() { return "pretend device, from the fake module"; }
std::string math_mode(pinmark::CudaPrecision precision) {
  return "pretend math mode " + std::to_string(static_cast<int>(precision));
}
std::unique_ptr<pinmark::Backend<float>> make_backend(pinmark::CudaPrecision) {
  throw std::runtime_error("the fake module makes no backend");
}
std::string tp_unavailable(int) { return "the fake module has no tensor parallelism"; }
std::string tp_provenance(int) { return provenance(); }
std::string tp_math_mode(pinmark::CudaPrecision precision, int) { return math_mode(precision); }
std::unique_ptr<pinmark::Backend<float>> make_tp_backend(pinmark::CudaPrecision precision, int) {
  return make_backend(precision);
}

const PinmarkCudaModuleV1 table = {
    PINMARK_FAKE_MODULE == 1 ? PINMARK_CUDA_MODULE_ABI + 100 : PINMARK_CUDA_MODULE_ABI,
    __VERSION__,
    &available,
    &device_class,
    &provenance,
    &math_mode,
    &make_backend,
    &tp_unavailable,
    &tp_provenance,
    &tp_math_mode,
    &make_tp_backend,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const PinmarkCudaModuleV1*
pinmark_cuda_module_v1() {
  return &table;
}

#endif
