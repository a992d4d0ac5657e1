// A hardware x precision target ("cpu bf16", "cuda fp16"): which backend computes, and in what
// storage type. The driver asks for targets by name; this is where names become backends.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/dtype.h"

namespace pinmark {

struct Target {
  // "cpu", "cuda", or "cuda-tp2": tensor parallel over two GPUs (make_cuda_tp_backend)
  std::string backend;
  std::string precision;  // "fp32", "bf16", "fp16", and for cuda "tf32"
  std::string name() const { return backend + " " + precision; }
};

// "cpu bf16" -> Target; nullopt with `why` set for anything else.
std::optional<Target> parse_target(const std::string& text, std::string& why);

// The targets a case runs when it does not say: cpu fp32 and cpu bf16, and cuda fp32, tf32,
// bf16 and fp16, whose rows come from a GPU machine and are carried over elsewhere.
std::vector<Target> default_targets();

// The storage type of a target's tensors (tf32 stores fp32).
DType storage_type(const Target& target);

// The relative rounding a target's results carry per rounding point: the storage type's unit
// roundoff, except tf32, which stores fp32 but rounds matrix-product operands to 10 mantissa
// bits (2^-11).
double target_unit_roundoff(const Target& target);

// A backend for the target, or nullptr when this machine cannot run it (no GPU, or pinmark
// built without CUDA). Its rows are then carried over from the golden unchanged.
std::unique_ptr<Backend<float>> make_target_backend(const Target& target);

// The class of device a target's numbers depend on, the key its golden rows are stored under:
// "sm90" for a cuda target on a compute capability 9.0 GPU; "" for cpu targets, and for cuda
// targets on a machine that cannot run them.
std::string target_device_class(const Target& target);

// The device that produces a target's numbers, for the Numerics table: for cuda the device, its
// compute capability, the CUDA runtime, driver and cuBLAS versions; "" for cpu targets and for
// cuda targets this machine cannot run.
std::string target_provenance(const Target& target);

// How a target's matrix products are computed ("cuBLAS GemmEx bf16 operands, ..."), for the
// Numerics table; "" for cpu targets and for cuda targets this machine cannot run.
std::string target_math_mode(const Target& target);

}  // namespace pinmark
