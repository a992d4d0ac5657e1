// Plug-in targets: your own kernels, run by pinmark against its fp64 oracle and pinned in the
// same goldens as its built-in targets (docs/plugins.md).
//
// A plug-in target is a name, "<name> <precision>" (e.g. "mykernels fp32"), and a factory that
// returns a Backend<float> (runtime/backend.h: every op, its shapes and its contract). Derive
// from CpuForwardingBackend to override only the ops you have; pinmark's CPU fp32 kernels run
// the rest. Cases select the target by its name in `Targets`, and its row lands in `Numerics`
// like any other, taps and first divergence included.
//
// Registrations are made before the command line runs. With the pinmark::main library (whose
// main() runs the normal `pinmark` command line), define pinmark::register_plugins() in your
// executable and call register_target() from it:
//
//   #include "driver/plugin.h"
//   class MyKernels : public pinmark::CpuForwardingBackend {
//     void rmsnorm(const float* x, const float* w, int n, int dim, double eps,
//                  float* y) override { ... }
//   };
//   void pinmark::register_plugins() {
//     pinmark::register_target("mykernels fp32", [] { return std::make_unique<MyKernels>(); });
//   }
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/storing_backend.h"
#include "runtime/target.h"

namespace pinmark {

// A Backend<float> that hands every op to another backend, `inner`, unchanged. Derive from it
// to replace some ops and keep the rest (pinmark's own tests of broken kernels do); call
// inner() to reach the other backend from yours. pinmark's own backends have no fused
// attention or gated MLP: those calls return false, and the model runs them op by op through
// the ops you see (yours where you override them). hold_matrix and release_matrix are handed
// on too, so that the inner matmul may keep the weights in its own layout: override them (and
// keep your own copies) when your matmul wants the announced weights itself; so are
// cache_written and release_cache. The activations' calls (hold_activations, to_host,
// from_host, write_cache) are not: every op, yours and the inner backend's, receives its
// operands and leaves its result on the host, and the model's cache writes are copied there
// and handed on as cache_written.
class ForwardingBackend : public StoringBackend<float> {
 public:
  explicit ForwardingBackend(std::unique_ptr<Backend<float>> inner)
      : StoringBackend<float>(std::move(inner)) {}

 protected:
  void store(float*, int64_t, int) override {}
};

// A ForwardingBackend over pinmark's CPU fp32 backend (the kernels of the built-in "cpu fp32"
// target, bit for bit). Override the ops you implement; call cpu() to reach pinmark's kernels
// from yours (for a fallback on shapes you do not handle).
class CpuForwardingBackend : public ForwardingBackend {
 public:
  CpuForwardingBackend();

 protected:
  Backend<float>& cpu() { return inner(); }
};

// Makes a fresh backend for one run of one case (pinmark calls it once per target row). It
// must not return nullptr.
using PluginFactory = std::function<std::unique_ptr<Backend<float>>()>;

// Registers a plug-in target. `name` is "<name> <precision>", one space between: the name is
// letters, digits, '_', '-' or '.', and not a built-in backend ("cpu", "cuda", "cuda-tp2"); the precision is
// fp32, bf16 or fp16, the type every tensor is stored in between ops. For bf16 and fp16,
// pinmark rounds the weights to that type and rounds each op's output to it (the layer the
// built-in "cpu bf16" uses), so your kernels see and return floats that are values of the
// storage type. Throws std::invalid_argument, naming the target, for a malformed name, a
// built-in or already registered one, or an empty factory.
void register_target(const std::string& name, PluginFactory factory);

// Why `name` is not a well-formed target of a `kind` outside pinmark's own ("plug-in target",
// "engine target"): "<name> <precision>", the name of letters, digits, '_', '-' or '.' and not
// "cpu" or "cuda", the precision fp32, bf16 or fp16 (or tf32 when `tf32_allowed`). "" when it is.
std::string target_name_problem(const std::string& name, const std::string& kind,
                                bool tf32_allowed);

// The registered names, sorted.
std::vector<std::string> registered_targets();

// Forgets every registration (for tests).
void clear_registered_targets();

// A name in a case's `Targets`: a registered plug-in target, or a built-in one
// (parse_target); nullopt with `why` set otherwise, which for an unknown backend lists the
// registered plug-in targets when there are any.
std::optional<Target> parse_case_target(const std::string& text, std::string& why);

// The backend of a target: a plug-in target's factory (wrapped in the rounding layer for bf16
// and fp16), or make_target_backend for a built-in one. Throws std::runtime_error when a
// plug-in factory throws or returns nullptr; the case then fails with that message in Errors.
std::unique_ptr<Backend<float>> make_backend(const Target& target);

// Defined by YOUR executable when it links pinmark::main: registers your targets. main() calls
// it before running the command line; an exception from it is printed and exits with status 2.
void register_plugins();

// What pinmark::main's main() runs: `registrations` (register_plugins), then the pinmark
// command line (run_command_line) with the targets registered. An exception from
// `registrations` is printed to `err` as "pinmark: registering plug-in targets failed: ..." and
// returns 2, running nothing.
int run_with_plugins(const std::function<void()>& registrations,
                     const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                     std::ostream& err);

}  // namespace pinmark
