#include "driver/plugin.h"

#include <algorithm>
#include <exception>
#include <map>
#include <mutex>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "driver/command_line.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/rounding_backend.h"

namespace pinmark {

ForwardingBackend::ForwardingBackend(std::unique_ptr<Backend<float>> inner)
    : inner_(std::move(inner)) {}
ForwardingBackend::~ForwardingBackend() = default;

CpuForwardingBackend::CpuForwardingBackend() : ForwardingBackend(make_cpu_backend<float>()) {}

void ForwardingBackend::embed(const float* table, const int* tokens, int n, int dim,
                                 float* out) {
  inner_->embed(table, tokens, n, dim, out);
}
void ForwardingBackend::matmul(const float* x, const float* w, int n, int k, int m, float* y) {
  inner_->matmul(x, w, n, k, m, y);
}
void ForwardingBackend::rmsnorm(const float* x, const float* w, int n, int dim, double eps,
                                   float* y) {
  inner_->rmsnorm(x, w, n, dim, eps, y);
}
void ForwardingBackend::rope(float* x, const int* positions, int n, int heads, int head_dim,
                                double theta) {
  inner_->rope(x, positions, n, heads, head_dim, theta);
}
void ForwardingBackend::attention_scores(const float* q, const float* k, const int* positions,
                                            int n, int kv_len, int heads, int kv_heads,
                                            int head_dim, double scale, float* scores) {
  inner_->attention_scores(q, k, positions, n, kv_len, heads, kv_heads, head_dim, scale, scores);
}
void ForwardingBackend::softmax(float* x, int rows, int len) { inner_->softmax(x, rows, len); }
bool ForwardingBackend::attention(const float* q, const float* k, const float* v,
                                  const int* positions, const float* sinks,
                                  const AttentionParams& params, float* out) {
  return inner_->attention(q, k, v, positions, sinks, params, out);
}

bool ForwardingBackend::gated_mlp(const float* x, const float* gate, const float* up,
                                  const float* down, int n, int hidden, int inter,
                                  GatedActivation act, float* out) {
  return inner_->gated_mlp(x, gate, up, down, n, hidden, inter, act, out);
}

void ForwardingBackend::hold_matrix(const float* w, int k, int m, MatrixRole role) {
  inner_->hold_matrix(w, k, m, role);
}

void ForwardingBackend::release_matrix(const float* w) { inner_->release_matrix(w); }

void ForwardingBackend::attention_values(const float* probs, const float* v, int n,
                                            int kv_len, int heads, int kv_heads, int head_dim,
                                            float* out) {
  inner_->attention_values(probs, v, n, kv_len, heads, kv_heads, head_dim, out);
}
void ForwardingBackend::swiglu(const float* gate, const float* up, int64_t n, float* out) {
  inner_->swiglu(gate, up, n, out);
}

void ForwardingBackend::clamped_swiglu(const float* gate, const float* up, int64_t n,
                                          double alpha, double limit, float* out) {
  inner_->clamped_swiglu(gate, up, n, alpha, limit, out);
}
void ForwardingBackend::causal_conv1d_silu(const float* x, const float* w, int n, int channels,
                                           int kernel, float* out) {
  inner_->causal_conv1d_silu(x, w, n, channels, kernel, out);
}
void ForwardingBackend::gated_delta_rule(const float* qkv, const float* a, const float* b,
                                         const float* A_log, const float* dt_bias,
                                         const GatedDeltaParams& params, float* state,
                                         float* out) {
  inner_->gated_delta_rule(qkv, a, b, A_log, dt_bias, params, state, out);
}
void ForwardingBackend::rmsnorm_gated(const float* x, const float* w, const float* gate, int n,
                                      int dim, double eps, float* y) {
  inner_->rmsnorm_gated(x, w, gate, n, dim, eps, y);
}
void ForwardingBackend::sigmoid_gate(const float* x, const float* gate, int64_t n, float* out) {
  inner_->sigmoid_gate(x, gate, n, out);
}
void ForwardingBackend::add(float* y, const float* x, int64_t n) { inner_->add(y, x, n); }
void ForwardingBackend::matmul_bias(const float* x, const float* w, const float* b, int n,
                                       int k, int m, float* y) {
  inner_->matmul_bias(x, w, b, n, k, m, y);
}
void ForwardingBackend::rmsnorm_plus_one(const float* x, const float* w, int n, int dim,
                                            double eps, float* y) {
  inner_->rmsnorm_plus_one(x, w, n, dim, eps, y);
}
void ForwardingBackend::layernorm(const float* x, const float* w, const float* b, int n,
                                     int dim, double eps, float* y) {
  inner_->layernorm(x, w, b, n, dim, eps, y);
}
void ForwardingBackend::rope_freqs(float* x, const int* positions, int n, int heads,
                                      int head_dim, const double* inv_freq,
                                      double attention_scaling) {
  inner_->rope_freqs(x, positions, n, heads, head_dim, inv_freq, attention_scaling);
}
void ForwardingBackend::score_mod(float* scores, const int* positions, int n, int kv_len,
                                     int heads, double softcap, int window) {
  inner_->score_mod(scores, positions, n, kv_len, heads, softcap, window);
}
void ForwardingBackend::softcap(float* x, int64_t n, double cap) { inner_->softcap(x, n, cap); }
void ForwardingBackend::scale(float* x, int64_t n, double scale) { inner_->scale(x, n, scale); }
void ForwardingBackend::gelu(const float* x, int64_t n, bool tanh, float* out) {
  inner_->gelu(x, n, tanh, out);
}
void ForwardingBackend::geglu(const float* gate, const float* up, int64_t n, bool tanh,
                                 float* out) {
  inner_->geglu(gate, up, n, tanh, out);
}
void ForwardingBackend::moe_route(const float* logits, int n, int experts, int top_k,
                                     float* probs, int* ids, float* weights) {
  inner_->moe_route(logits, n, experts, top_k, probs, ids, weights);
}
void ForwardingBackend::moe_combine(float* y, const float* x, const int* rows,
                                       const float* weights, int m, int dim) {
  inner_->moe_combine(y, x, rows, weights, m, dim);
}

namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, PluginFactory> factories;  // by target name
};

Registry& registry() {
  static Registry r;
  return r;
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-' || c == '.';
}

const char* const kExample = "e.g. 'mykernels fp32'";

std::optional<PluginFactory> find_factory(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.factories.find(name);
  if (it == r.factories.end()) return std::nullopt;
  return it->second;
}

}  // namespace

// "a plug-in target", "an engine target".
static std::string article(const std::string& kind) {
  return (kind.find_first_of("aeiou") == 0 ? "an " : "a ") + kind;
}

std::string target_name_problem(const std::string& name, const std::string& kind,
                                bool tf32_allowed) {
  const size_t space = name.find(' ');
  const std::string backend = name.substr(0, space);
  const std::string precision = space == std::string::npos ? "" : name.substr(space + 1);
  if (backend.empty() || precision.empty() || precision.find(' ') != std::string::npos ||
      !std::all_of(backend.begin(), backend.end(), name_char))
    return article(kind) + " is '<name> <precision>', " + kExample +
           ", the name of letters, digits, '_', '-' or '.', not '" + name + "'";
  if (backend == "cpu" || backend == "cuda" || backend == "cuda-tp2")
    return "'" + name + "': '" + backend + "' is a built-in backend; " + article(kind) +
           " needs a name of its own, " + kExample;
  const std::string known = tf32_allowed ? "fp32, tf32, bf16, fp16" : "fp32, bf16, fp16";
  if (precision != "fp32" && precision != "bf16" && precision != "fp16" &&
      !(tf32_allowed && precision == "tf32"))
    return "unknown precision '" + precision + "' in " + kind + " '" + name + "' (known: " +
           known + ")";
  return "";
}

void register_target(const std::string& name, PluginFactory factory) {
  const std::string problem = target_name_problem(name, "plug-in target", false);
  if (!problem.empty()) throw std::invalid_argument(problem);
  if (!factory)
    throw std::invalid_argument("plug-in target '" + name + "' has no factory");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!r.factories.emplace(name, std::move(factory)).second)
    throw std::invalid_argument("plug-in target '" + name + "' is registered twice");
}

std::vector<std::string> registered_targets() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [name, factory] : r.factories) names.push_back(name);
  return names;
}

void clear_registered_targets() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.factories.clear();
}

std::optional<Target> parse_case_target(const std::string& text, std::string& why) {
  std::istringstream in(text);
  Target t;
  std::string extra;
  in >> t.backend >> t.precision >> extra;
  if (!t.backend.empty() && !t.precision.empty() && extra.empty() && find_factory(t.name()))
    return t;
  std::optional<Target> builtin = parse_target(text, why);
  // An unknown name, in an executable with plug-in targets: say which ones it has.
  const std::vector<std::string> names = registered_targets();
  if (!builtin && !names.empty() && why.rfind("unknown backend", 0) == 0) {
    std::string known;
    for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
    why += "; plug-in targets registered in this executable: " + known;
  }
  return builtin;
}

std::unique_ptr<Backend<float>> make_backend(const Target& target) {
  std::optional<PluginFactory> factory = find_factory(target.name());
  if (!factory) return make_target_backend(target);
  std::unique_ptr<Backend<float>> backend;
  try {
    backend = (*factory)();
  } catch (const std::exception& e) {
    throw std::runtime_error("the factory of plug-in target '" + target.name() +
                             "' failed: " + e.what());
  }
  if (!backend)
    throw std::runtime_error("the factory of plug-in target '" + target.name() +
                             "' returned no backend");
  const DType storage = storage_type(target);
  if (storage == DType::f32) return backend;
  return make_rounding_backend(std::move(backend), storage);
}

int run_with_plugins(const std::function<void()>& registrations,
                     const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                     std::ostream& err) {
  try {
    registrations();
  } catch (const std::exception& e) {
    err << "pinmark: registering plug-in targets failed: " << e.what() << "\n";
    return 2;
  }
  return run_command_line(args, in, out, err);
}

}  // namespace pinmark
