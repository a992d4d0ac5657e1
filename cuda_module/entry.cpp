// The module's side of cuda_module.h: the entry point that hands the loader the real functions
// of runtime/cuda/. Linked into libpinmark_cuda.so with a version script (exports.map) that
// exports this symbol alone, so the module's own references never bind to the loader's
// functions of the same names in the executable.
#include "cuda_module/cuda_module.h"

#include "runtime/cuda/device_info.h"

namespace {

const PinmarkCudaModuleV1 module_table = {
    PINMARK_CUDA_MODULE_ABI,
    __VERSION__,
    &pinmark::cuda_device_available,
    &pinmark::cuda_device_class,
    &pinmark::cuda_provenance,
    &pinmark::cuda_math_mode,
    &pinmark::make_cuda_backend,
    &pinmark::cuda_tp_unavailable,
    &pinmark::cuda_tp_provenance,
    &pinmark::cuda_tp_math_mode,
    &pinmark::make_cuda_tp_backend,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const PinmarkCudaModuleV1*
pinmark_cuda_module_v1() {
  return &module_table;
}
