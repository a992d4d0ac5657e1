#include "runtime/target.h"

#include <cmath>
#include <sstream>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/rounding_backend.h"

#ifdef PINMARK_HAVE_CUDA
#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/device_info.h"
#endif

namespace pinmark {

std::optional<Target> parse_target(const std::string& text, std::string& why) {
  std::istringstream in(text);
  Target t;
  std::string extra;
  in >> t.backend >> t.precision >> extra;
  if (t.backend.empty() || t.precision.empty() || !extra.empty()) {
    why = "a target is '<backend> <precision>', e.g. 'cpu bf16', not '" + text + "'";
    return std::nullopt;
  }
  if (t.backend != "cpu" && t.backend != "cuda" && t.backend != "cuda-tp2") {
    why = "unknown backend '" + t.backend + "' in target '" + text +
          "' (known: cpu, cuda, cuda-tp2)";
    return std::nullopt;
  }
  const bool known = t.precision == "fp32" || t.precision == "bf16" || t.precision == "fp16" ||
                     (t.precision == "tf32" && t.backend != "cpu");
  if (!known) {
    why = t.precision == "fp64"
              ? "'" + text + "' is the oracle, which always runs; it is not a target"
              : "unknown precision '" + t.precision + "' for backend " + t.backend +
                    (t.backend == "cpu" ? " (known: fp32, bf16, fp16)"
                                        : " (known: fp32, tf32, bf16, fp16)");
    return std::nullopt;
  }
  return t;
}

std::vector<Target> default_targets() {
  return {{"cpu", "fp32"},   {"cpu", "bf16"},   {"cuda", "fp32"},
          {"cuda", "tf32"}, {"cuda", "bf16"}, {"cuda", "fp16"}};
}

double target_unit_roundoff(const Target& target) {
  if (target.precision == "tf32") return std::ldexp(1.0, -11);
  return unit_roundoff(storage_type(target));
}

DType storage_type(const Target& target) {
  if (target.precision == "bf16") return DType::bf16;
  if (target.precision == "fp16") return DType::f16;
  return DType::f32;
}

namespace {

#ifdef PINMARK_HAVE_CUDA
CudaPrecision cuda_precision(const Target& target) {
  if (target.precision == "tf32") return CudaPrecision::tf32;
  if (target.precision == "bf16") return CudaPrecision::bf16;
  if (target.precision == "fp16") return CudaPrecision::fp16;
  return CudaPrecision::fp32;
}
#endif

// Ranks of a GPU target: 1 for cuda, 2 for cuda-tp2; 0 for cpu.
[[maybe_unused]] int gpu_ranks(const Target& target) {
  if (target.backend == "cuda") return 1;
  if (target.backend == "cuda-tp2") return 2;
  return 0;
}

// Whether this build and this machine can run a GPU target.
[[maybe_unused]] bool cuda_runnable(const Target& target) {
#ifdef PINMARK_HAVE_CUDA
  const int ranks = gpu_ranks(target);
  if (ranks == 0 || !cuda_device_available()) return false;
  return ranks == 1 || cuda_tp_unavailable(ranks).empty();
#else
  (void)target;
  return false;
#endif
}

}  // namespace

std::unique_ptr<Backend<float>> make_target_backend(const Target& target) {
  const DType storage = storage_type(target);
  if (target.backend == "cpu") {
    if (storage == DType::f32) return make_cpu_backend<float>();
    return make_rounding_backend(make_cpu_backend<float>(), storage);
  }
#ifdef PINMARK_HAVE_CUDA
  if (cuda_runnable(target)) {
    // The device computes in fp32 (matmul operands in the narrow type on the tensor cores);
    // the rounding layer stores each op's output in the target's type, as for cpu bf16.
    const int ranks = gpu_ranks(target);
    auto backend = ranks == 1 ? make_cuda_backend(cuda_precision(target))
                              : make_cuda_tp_backend(cuda_precision(target), ranks);
    if (storage == DType::f32) return backend;
    return make_rounding_backend(std::move(backend), storage);
  }
#endif
  return nullptr;
}

std::string target_device_class(const Target& target) {
#ifdef PINMARK_HAVE_CUDA
  if (cuda_runnable(target)) return cuda_device_class();
#endif
  (void)target;
  return "";
}

std::string target_provenance(const Target& target) {
#ifdef PINMARK_HAVE_CUDA
  if (cuda_runnable(target))
    return gpu_ranks(target) == 1 ? cuda_provenance() : cuda_tp_provenance(gpu_ranks(target));
#endif
  (void)target;
  return "";
}

std::string target_math_mode(const Target& target) {
#ifdef PINMARK_HAVE_CUDA
  if (cuda_runnable(target))
    return gpu_ranks(target) == 1 ? cuda_math_mode(cuda_precision(target))
                                  : cuda_tp_math_mode(cuda_precision(target), gpu_ranks(target));
#endif
  (void)target;
  return "";
}

}  // namespace pinmark
