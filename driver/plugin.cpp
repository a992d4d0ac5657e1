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

CpuForwardingBackend::CpuForwardingBackend() : ForwardingBackend(make_cpu_backend<float>()) {}

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
