#include "runtime/target.h"

#include <sstream>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/rounding_backend.h"

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
  if (t.backend != "cpu" && t.backend != "cuda") {
    why = "unknown backend '" + t.backend + "' in target '" + text + "' (known: cpu, cuda)";
    return std::nullopt;
  }
  const bool known = t.precision == "fp32" || t.precision == "bf16" || t.precision == "fp16" ||
                     (t.precision == "tf32" && t.backend == "cuda");
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

std::vector<Target> default_targets() { return {{"cpu", "fp32"}, {"cpu", "bf16"}}; }

DType storage_type(const Target& target) {
  if (target.precision == "bf16") return DType::bf16;
  if (target.precision == "fp16") return DType::f16;
  return DType::f32;
}

std::unique_ptr<Backend<float>> make_target_backend(const Target& target) {
  if (target.backend != "cpu") return nullptr;
  const DType storage = storage_type(target);
  if (storage == DType::f32) return make_cpu_backend<float>();
  return make_rounding_backend(make_cpu_backend<float>(), storage);
}

}  // namespace pinmark
