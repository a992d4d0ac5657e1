#include "driver/export.h"
#include "driver/hf_config.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <ostream>
#include <stdexcept>

#include "driver/case_discovery.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "driver/fingerprint.h"
#include "driver/golden_io.h"
#include "driver/safetensors_writer.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/generate.h"
#include "runtime/kernel_case.h"
#include "runtime/model.h"
#include "runtime/weights.h"

namespace pinmark {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kFormat = "pinmark-export 1";

// A usage error (exit 2) and a case that cannot be exported (exit 1); anything else thrown is
// an I/O error (exit 2).
class Usage : public std::runtime_error {
  using std::runtime_error::runtime_error;
};
class Refusal : public std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A file that could not be written (exit 2), told apart from the runtime's own errors, which
// make the case render an Errors section.
class WriteError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

void write_safetensors(const SafetensorsWriter& writer, const std::string& path) {
  try {
    writer.write(path);
  } catch (const std::exception& e) {
    throw WriteError(e.what());
  }
}

// The fp64 CPU backend, recording the inputs of the kernel a kernel case runs (the first call
// of each op) under the names runtime/kernel_case.h draws them by, before the op can change
// them in place.
class RecordingBackend : public Backend<double> {
 public:
  explicit RecordingBackend(std::string op) : op_(std::move(op)), cpu_(make_cpu_backend<double>()) {}

  SafetensorsWriter inputs;

  void embed(const double* t, const int* tokens, int n, int dim, double* out) override {
    cpu_->embed(t, tokens, n, dim, out);
  }
  void matmul(const double* x, const double* w, int n, int k, int m, double* y) override {
    record("x", {n, k}, x);
    record("w", {m, k}, w);
    cpu_->matmul(x, w, n, k, m, y);
  }
  void rmsnorm(const double* x, const double* w, int n, int dim, double eps, double* y) override {
    record("x", {n, dim}, x);
    record("w", {dim}, w);
    cpu_->rmsnorm(x, w, n, dim, eps, y);
  }
  void rope(double* x, const int* positions, int n, int heads, int head_dim, double theta) override {
    record("x", {n, heads, head_dim}, x);
    record_positions(positions, n);
    cpu_->rope(x, positions, n, heads, head_dim, theta);
  }
  void attention_scores(const double* q, const double* k, const int* positions, int n, int kv_len,
                        int heads, int kv_heads, int head_dim, double scale, double* scores) override {
    record("q", {n, heads, head_dim}, q);
    record("k", {kv_len, kv_heads, head_dim}, k);
    record_positions(positions, n);
    cpu_->attention_scores(q, k, positions, n, kv_len, heads, kv_heads, head_dim, scale, scores);
  }
  void softmax(double* x, int rows, int len) override {
    if (op_ == "softmax") record("x", {rows, len}, x);  // attention's are its own scores
    cpu_->softmax(x, rows, len);
  }
  void attention_values(const double* probs, const double* v, int n, int kv_len, int heads,
                        int kv_heads, int head_dim, double* out) override {
    record("v", {kv_len, kv_heads, head_dim}, v);
    cpu_->attention_values(probs, v, n, kv_len, heads, kv_heads, head_dim, out);
  }
  void swiglu(const double* gate, const double* up, int64_t n, double* out) override {
    record("gate", {n}, gate);
    record("up", {n}, up);
    cpu_->swiglu(gate, up, n, out);
  }
  void clamped_swiglu(const double* g, const double* u, int64_t n, double a, double l,
                      double* out) override {
    cpu_->clamped_swiglu(g, u, n, a, l, out);
  }
  void add(double* y, const double* x, int64_t n) override { cpu_->add(y, x, n); }
  void causal_conv1d_silu(const double* x, const double* w, int n, int channels, int kernel,
                          double* out) override {
    cpu_->causal_conv1d_silu(x, w, n, channels, kernel, out);
  }
  void gated_delta_rule(const double* qkv, const double* a, const double* b, const double* A_log,
                        const double* dt_bias, const GatedDeltaParams& p, double* state,
                        double* out) override {
    cpu_->gated_delta_rule(qkv, a, b, A_log, dt_bias, p, state, out);
  }
  void rmsnorm_gated(const double* x, const double* w, const double* g, int n, int dim,
                     double eps, double* y) override {
    cpu_->rmsnorm_gated(x, w, g, n, dim, eps, y);
  }
  void sigmoid_gate(const double* x, const double* g, int64_t n, double* out) override {
    cpu_->sigmoid_gate(x, g, n, out);
  }
  void indexer_scores(const double* q, const double* k, const double* w, const int* positions,
                      int n, int kv_len, int heads, int head_dim, double scale,
                      double weight_scale, double* out) override {
    cpu_->indexer_scores(q, k, w, positions, n, kv_len, heads, head_dim, scale, weight_scale, out);
  }
  void mix_streams(const double* x, const double* coefs, int n, int in_streams, int out_streams,
                   int dim, double* y) override {
    cpu_->mix_streams(x, coefs, n, in_streams, out_streams, dim, y);
  }
  void softmax_pool(const double* kv, const double* gate, int n, int slots, int dim,
                    double* out) override {
    cpu_->softmax_pool(kv, gate, n, slots, dim, out);
  }
  void scale_columns(const double* x, const double* w, int n, int dim, double* y) override {
    cpu_->scale_columns(x, w, n, dim, y);
  }
  void rescale_rms(const double* x, const double* ref, int n, int dim, double floor,
                   double* y) override {
    cpu_->rescale_rms(x, ref, n, dim, floor, y);
  }
  void gaussian_topk(double* x, int n, int dim, double std_multiplier) override {
    cpu_->gaussian_topk(x, n, dim, std_multiplier);
  }
  void matmul_bias(const double* x, const double* w, const double* b, int n, int k, int m,
                   double* y) override {
    cpu_->matmul_bias(x, w, b, n, k, m, y);
  }
  void rmsnorm_plus_one(const double* x, const double* w, int n, int dim, double eps,
                        double* y) override {
    cpu_->rmsnorm_plus_one(x, w, n, dim, eps, y);
  }
  void layernorm(const double* x, const double* w, const double* b, int n, int dim, double eps,
                 double* y) override {
    cpu_->layernorm(x, w, b, n, dim, eps, y);
  }
  void rope_freqs(double* x, const int* positions, int n, int heads, int head_dim,
                  const double* inv_freq, double scaling) override {
    cpu_->rope_freqs(x, positions, n, heads, head_dim, inv_freq, scaling);
  }
  void score_mod(double* s, const int* positions, int n, int kv_len, int heads, double softcap,
                 int window) override {
    cpu_->score_mod(s, positions, n, kv_len, heads, softcap, window);
  }
  void softcap(double* x, int64_t n, double cap) override { cpu_->softcap(x, n, cap); }
  void scale(double* x, int64_t n, double s) override { cpu_->scale(x, n, s); }
  void gelu(const double* x, int64_t n, bool tanh, double* out) override {
    cpu_->gelu(x, n, tanh, out);
  }
  void geglu(const double* g, const double* u, int64_t n, bool tanh, double* out) override {
    cpu_->geglu(g, u, n, tanh, out);
  }
  void moe_route(const double* logits, int n, int experts, int top_k, double* probs, int* ids,
                 double* weights) override {
    cpu_->moe_route(logits, n, experts, top_k, probs, ids, weights);
  }
  void moe_combine(double* y, const double* x, const int* rows, const double* weights, int m,
                   int dim) override {
    cpu_->moe_combine(y, x, rows, weights, m, dim);
  }

 private:
  bool seen(const std::string& name) const {
    for (const auto& e : inputs.entries())
      if (e.name == name) return true;
    return false;
  }
  void record(const std::string& name, const Shape& shape, const double* data) {
    if (!seen(name)) inputs.add_f64(name, shape, std::vector<double>(data, data + element_count(shape)));
  }
  void record_positions(const int* positions, int n) {
    if (!seen("positions")) inputs.add_i64("positions", {n}, std::vector<int64_t>(positions, positions + n));
  }

  std::string op_;
  std::unique_ptr<Backend<double>> cpu_;
};

const Section* section_named(const Case& c, const std::string& name) {
  for (const Section& s : c.sections)
    if (s.name == name) return &s;
  return nullptr;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out << text;
  if (out) out.flush();
  if (!out) throw WriteError("cannot write " + path + ": " + std::strerror(errno));
}

// The config.json of a synthetic case: the Config block's keys in their order, without
// pinmark's own, with model_type and architectures filled in when the block leaves them out
// and pinmark.kv_shared_layers under Gemma 3n's name, num_kv_shared_layers (pinmark.query_heads
// stays under "pinmark").
std::string synthetic_config_json(const Case& c, const CaseSpec& spec) {
  const Section* config = section_named(c, "Config");
  nlohmann::ordered_json value = nlohmann::ordered_json::parse(config->blocks.at(0).literal);
  value.erase("pinmark");
  if (!value.contains("model_type")) value["model_type"] = spec.model.model_type;
  const std::string architecture = causal_lm_class(spec.model.model_type);
  if (!value.contains("architectures") && !architecture.empty())
    value["architectures"] = {architecture};
  if (spec.model.num_kv_shared_layers > 0)
    value["num_kv_shared_layers"] = spec.model.num_kv_shared_layers;
  // No family of transformers has per-layer query heads: the key stays pinmark's, so that an
  // engine reading the folder sees why q_proj and o_proj differ from layer to layer.
  if (!spec.model.query_heads.empty()) value["pinmark"] = {{"query_heads", spec.model.query_heads}};
  return value.dump(2) + "\n";
}

// What a tensor is, for index.json.
json tensor_entries(const SafetensorsWriter& writer,
                    const std::map<std::string, json>& about = {}) {
  json list = json::array();
  for (const auto& e : writer.entries()) {
    json entry = {{"name", e.name}, {"dtype", e.dtype}, {"shape", e.shape}};
    auto it = about.find(e.name);
    if (it != about.end())
      for (const auto& [k, v] : it->second.items()) entry[k] = v;
    list.push_back(entry);
  }
  return list;
}

json file_entry(const std::string& file, const std::string& what) {
  return {{"file", file}, {"what", what}};
}

std::vector<int64_t> to_i64(const std::vector<int>& v) { return {v.begin(), v.end()}; }

void export_model(const Case& c, const CaseSpec& spec, const std::string& dir, json& index) {
  const std::string name = index["case"]["name"];
  // As the case runs it.
  const std::shared_ptr<const WeightSource> weights = case_weights(spec);
  const auto& prompts = spec.inputs.prompts;
  std::unique_ptr<Backend<double>> backend = make_cpu_backend<double>();
  Model<double> model(spec.model, *weights, *backend);
  GenerateOptions options;
  options.decode = spec.inputs.decode;
  options.prefill_chunk = spec.inputs.prefill_chunk;
  SafetensorsWriter oracle;
  std::map<std::string, json> about;
  // Each sequence's taps of its first call, in the order the forward pass made them.
  std::vector<std::vector<std::tuple<std::string, Shape, std::vector<double>>>> taps(prompts.size());
  const BatchTapFn<double> tap = [&](int sequence, int call, const std::string& tap_name,
                                     const Shape& shape, const double* data) {
    if (call == 0)
      taps[sequence].emplace_back(tap_name, shape,
                                  std::vector<double>(data, data + element_count(shape)));
  };
  const std::vector<SequenceOutput> outputs = generate(model, prompts, options, tap);

  SafetensorsWriter inputs;
  const int vocab = spec.model.vocab_size;
  for (size_t s = 0; s < prompts.size(); ++s) {
    const std::string prefix = "sequence." + std::to_string(s) + ".";
    const int64_t len = static_cast<int64_t>(prompts[s].size());
    inputs.add_i64(prefix + "tokens", {len}, to_i64(prompts[s]));
    std::vector<int64_t> positions(len);
    for (int64_t p = 0; p < len; ++p) positions[p] = p;
    inputs.add_i64(prefix + "positions", {len}, positions);

    const auto& rows = outputs[s].logits;
    std::vector<double> prompt_logits, decode_logits;
    for (size_t r = 0; r < rows.size(); ++r) {
      for (double v : rows[r])
        if (!std::isfinite(v))
          throw Refusal(name + ": the fp64 oracle's logits hold NaN or infinity: there is "
                               "nothing to check an engine against");
      std::vector<double>& into = static_cast<int64_t>(r) < len ? prompt_logits : decode_logits;
      into.insert(into.end(), rows[r].begin(), rows[r].end());
    }
    oracle.add_f64(prefix + "logits", {len, vocab}, prompt_logits);
    about[prefix + "logits"] = {{"sequence", s}, {"what", "logits at each prompt position"}};
    if (!decode_logits.empty()) {
      const int64_t steps = static_cast<int64_t>(decode_logits.size()) / vocab;
      oracle.add_f64(prefix + "decode_logits", {steps, vocab}, decode_logits);
      about[prefix + "decode_logits"] = {
          {"sequence", s},
          {"what", "logits after feeding each generated token but the last, in order"}};
    }
    oracle.add_i64(prefix + "generated", {static_cast<int64_t>(outputs[s].generated.size())},
                   to_i64(outputs[s].generated));
    about[prefix + "generated"] = {{"sequence", s},
                                   {"what", "greedy continuation, lowest id wins a tie"}};
    for (auto& [tap_name, shape, values] : taps[s]) {
      oracle.add_f64(prefix + "taps." + tap_name, shape, values);
      about[prefix + "taps." + tap_name] = {{"sequence", s}, {"tap", tap_name}};
    }
  }
  std::map<std::string, json> input_about;
  for (size_t s = 0; s < prompts.size(); ++s) {
    const std::string prefix = "sequence." + std::to_string(s) + ".";
    input_about[prefix + "tokens"] = {{"sequence", s}, {"what", "prompt token ids"}};
    input_about[prefix + "positions"] = {{"sequence", s}, {"what", "position of each prompt token"}};
  }
  write_safetensors(inputs, dir + "/inputs.safetensors");
  write_safetensors(oracle, dir + "/oracle.safetensors");

  json files = json::array();
  json f = file_entry("inputs.safetensors", "the prompts, one sequence each, each through its own KV cache");
  f["tensors"] = tensor_entries(inputs, input_about);
  files.push_back(f);
  f = file_entry("oracle.safetensors",
                 "the fp64 oracle: logits, greedy tokens, and every tap of each sequence's first "
                 "forward call (the whole prompt, or its first prefill_chunk tokens)");
  f["tensors"] = tensor_entries(oracle, about);
  files.push_back(f);

  json model_entry = {{"model_type", spec.model.model_type},
                      {"decode", spec.inputs.decode},
                      {"prefill_chunk", spec.inputs.prefill_chunk},
                      {"sequences", prompts.size()}};
  if (spec.checkpoint.empty()) {
    SafetensorsWriter model_file;
    model_file.set_metadata("format", "pt");
    for (const auto& [n, shape] : weight_shapes(spec.model)) {
      const Tensor<double> tensor = weights->read(n);
      // DeepSeek-V4's hash routing table is an integer buffer, stored as int64 (as
      // save_pretrained writes it).
      if (n.ends_with(".tid2eid"))
        model_file.add_i64(n, tensor.shape,
                           std::vector<int64_t>(tensor.data.begin(), tensor.data.end()));
      else
        model_file.add_f64(n, tensor.shape, tensor.data);
    }
    write_safetensors(model_file, dir + "/model.safetensors");
    write_text(dir + "/config.json", synthetic_config_json(c, spec));
    f = file_entry("model.safetensors",
                   "the synthetic weights in fp64 (the oracle's own), under Hugging Face names "
                   "and layouts, as save_pretrained writes them");
    f["tensors"] = tensor_entries(model_file);
    files.push_back(f);
    model_entry["weights"] = "model.safetensors";
  } else {
    write_text(dir + "/config.json", read_text_file(spec.checkpoint + "/config.json"));
    std::error_code error;
    const fs::path current = fs::current_path(error);
    model_entry["checkpoint"] = {
        {"as_the_case_names_it", spec.checkpoint_label},
        {"path", error ? spec.checkpoint : relative_to(spec.checkpoint, current.string())}};
  }
  files.push_back(file_entry("config.json", spec.checkpoint.empty()
                                                ? "the Hugging Face config of the case's Config block"
                                                : "the checkpoint's config.json"));
  index["model"] = model_entry;
  index["files"] = files;
}

void export_kernel(const CaseSpec& spec, const std::string& dir, json& index) {
  const std::string name = index["case"]["name"];
  RecordingBackend backend(spec.kernel.op);
  const Tensor<double> output = run_kernel(spec.kernel, backend);
  for (double v : output.data)
    if (!std::isfinite(v))
      throw Refusal(name + ": the fp64 oracle's kernel output holds NaN or infinity: there is "
                           "nothing to check a kernel against");
  SafetensorsWriter oracle;
  oracle.add_f64("output", output.shape, output.data);
  write_safetensors(backend.inputs, dir + "/inputs.safetensors");
  write_safetensors(oracle, dir + "/oracle.safetensors");
  json params = json::object();
  for (const std::string& p : kernel_ops().at(spec.kernel.op))
    params[p] = kernel_param(spec.kernel, p);
  index["kernel"] = {{"op", spec.kernel.op}, {"params", params}, {"seed", spec.kernel.seed}};
  json files = json::array();
  json f = file_entry("inputs.safetensors", "the kernel's inputs in fp64, as the oracle reads them");
  f["tensors"] = tensor_entries(backend.inputs);
  files.push_back(f);
  f = file_entry("oracle.safetensors", "the fp64 oracle's output");
  f["tensors"] = tensor_entries(oracle);
  files.push_back(f);
  index["files"] = files;
}

// Every case of `path`, parsed; throws naming the first problem of an invalid file.
CaseFile parse_file(const std::string& path) {
  CaseFile file = parse_case_file(read_text_file(path));
  if (!file.problems.empty())
    throw Refusal(path + ":" + std::to_string(file.problems[0].line) + ": " +
                  file.problems[0].message + " (the file is invalid: none of its cases runs)");
  return file;
}

// A folder made beside `out` (OUT.partial-XXXXXX), so that the rename onto `out` stays on one
// file system.
std::string make_temp_folder(const std::string& out) {
  std::string pattern = out + ".partial-XXXXXX";
  if (!::mkdtemp(pattern.data()))
    throw WriteError("cannot create a folder beside " + out + ": " + std::strerror(errno));
  // mkdtemp makes it private; the export is an ordinary folder.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::chmod(pattern.c_str(), 0777 & ~mask);
  return pattern;
}

std::string unknown_case(const std::string& target, const std::string& example,
                         const std::vector<std::string>& slugs) {
  std::string message = "no case '" + target +
                        "': export takes a case's name, FILE::slug, as `pinmark list` prints it";
  if (!example.empty()) message += " (" + example + ")";
  message += ", or a case file (every case of it, each in a folder named by its slug)";
  if (!slugs.empty()) {
    message += "; that file's cases:";
    for (const std::string& s : slugs) message += " " + s;
  }
  return message;
}

}  // namespace

json export_case(const std::string& path, const Case& c, const std::string& dir,
                 const std::string& version) {
  const std::string name = case_name(path, c.slug);
  const CaseSpec spec = read_case_spec(c, path);
  if (!spec.problems.empty()) {
    const CaseProblem& p = spec.problems.front();
    throw Refusal(name + " renders an Errors section (" +
                  (p.where.empty() ? p.message : p.where + ": " + p.message) +
                  "): it has no oracle to export");
  }
  json index;
  index["format"] = kFormat;
  index["case"] = {{"name", name}, {"file", path}, {"slug", c.slug}, {"title", c.title},
                   {"kind", spec.kind == CaseSpec::Kind::model ? "model" : "kernel"}};
  index["provenance"] = {{"pinmark_version", version},
                         {"code_fingerprint", code_fingerprint()},
                         {"row_fingerprint", row_fingerprint(c, spec.checkpoint)}};
  try {
    if (spec.kind == CaseSpec::Kind::model)
      export_model(c, spec, dir, index);
    else
      export_kernel(spec, dir, index);
  } catch (const Refusal&) {
    throw;
  } catch (const WriteError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Refusal(name + ": out of memory while computing the oracle");
  } catch (const std::exception& e) {
    // What `pinmark run` renders as the case's Errors (a token past the positions, a
    // checkpoint tensor missing, ...).
    throw Refusal(name + " renders an Errors section (the runtime: " + e.what() +
                  "): it has no oracle to export");
  }
  index["files"].push_back(file_entry("index.json", "this index"));
  write_text(dir + "/index.json", index.dump(2) + "\n");
  return index;
}

int export_command(const ExportOptions& o, std::ostream& out, std::ostream& err) {
  std::string temp;
  try {
    // Which cases: a file, or FILE::slug (spelt as --filter takes it).
    std::string file = o.target;
    bool whole_file = true;
    std::error_code error;
    if (!fs::is_regular_file(o.target, error)) {
      const size_t sep = o.target.find("::");
      if (sep == std::string::npos) throw Usage(unknown_case(o.target, "", {}));
      file = o.target.substr(0, sep);
      while (!file.empty() && file.back() == ' ') file.pop_back();
      whole_file = false;
      if (!fs::is_regular_file(file, error)) throw Usage(unknown_case(o.target, "", {}));
    }
    file = fs::path(file).lexically_normal().string();
    const CaseFile parsed = parse_file(file);
    std::vector<const Case*> selected;
    std::vector<std::string> slugs;
    for (const Case& c : parsed.cases) {
      slugs.push_back(c.slug);
      if (whole_file || filter_selects(o.target, file, c.slug)) selected.push_back(&c);
    }
    if (selected.empty())
      throw Usage(unknown_case(o.target,
                               parsed.cases.empty() ? "" : case_name(file, parsed.cases[0].slug),
                               slugs));

    // Where: refuse a folder with something in it unless forced; never a file.
    if (fs::exists(o.out, error) && !fs::is_directory(o.out, error))
      throw Usage("--out " + o.out + " exists and is not a folder");
    if (fs::is_directory(o.out, error) && !fs::is_empty(o.out, error) && !o.force)
      throw Usage("--out " + o.out + " exists and is not empty: pass --force to replace it");
    std::string folder_of_out = fs::path(o.out).lexically_normal().string();
    while (folder_of_out.size() > 1 && folder_of_out.back() == '/') folder_of_out.pop_back();
    const fs::path parent = fs::path(folder_of_out).parent_path();
    if (!parent.empty() && !fs::create_directories(parent, error) && error)
      throw std::runtime_error("cannot create " + parent.string() + ": " + error.message());
    temp = make_temp_folder(folder_of_out);

    // One case goes into the folder itself; several (a file, or a glob) each into its own, and
    // a case among them that cannot be exported is skipped and named.
    const bool one = !whole_file && selected.size() == 1;
    json top = {{"format", kFormat}, {"file", file}, {"cases", json::array()},
                {"skipped", json::array()}};
    std::vector<const Case*> exported;
    std::vector<std::string> skipped;
    for (const Case* c : selected) {
      const std::string dir = one ? temp : temp + "/" + c->slug;
      if (!one && !fs::create_directory(dir, error))
        throw WriteError("cannot create " + dir + ": " + error.message());
      try {
        export_case(file, *c, dir, o.version);
      } catch (const Refusal& e) {
        if (one) throw;
        fs::remove_all(dir, error);
        skipped.push_back(e.what());
        top["skipped"].push_back({{"name", case_name(file, c->slug)}, {"why", e.what()}});
        continue;
      }
      exported.push_back(c);
      top["cases"].push_back({{"name", case_name(file, c->slug)}, {"folder", c->slug}});
    }
    if (exported.empty())
      throw Refusal("no case of " + o.target + " can be exported: " + skipped.front() +
                    (skipped.size() > 1 ? " (and " + std::to_string(skipped.size() - 1) + " more)" : ""));
    if (!one) write_text(temp + "/index.json", top.dump(2) + "\n");

    // Into place: an empty folder is replaced by the rename itself; a full one (with --force)
    // is moved aside first and removed once the new one is in place.
    std::string aside;
    if (fs::exists(folder_of_out, error) && !fs::is_empty(folder_of_out, error)) {
      aside = make_temp_folder(folder_of_out);
      if (::rename(folder_of_out.c_str(), aside.c_str()) != 0)
        throw std::runtime_error("cannot move " + folder_of_out + " aside: " + std::strerror(errno));
    }
    if (::rename(temp.c_str(), folder_of_out.c_str()) != 0) {
      const int e = errno;
      if (!aside.empty()) ::rename(aside.c_str(), folder_of_out.c_str());
      throw std::runtime_error("cannot rename " + temp + " to " + folder_of_out + ": " +
                               std::strerror(e));
    }
    temp.clear();
    if (!aside.empty()) fs::remove_all(aside, error);
    for (const std::string& why : skipped) out << "SKIPPED  " << why << "\n";
    for (const Case* c : exported)
      out << "EXPORTED " << case_name(file, c->slug) << " -> "
          << (one ? folder_of_out : folder_of_out + "/" + c->slug) << "\n";
    return 0;
  } catch (const Usage& e) {
    std::error_code ignored;
    if (!temp.empty()) fs::remove_all(temp, ignored);
    err << "pinmark: export: " << e.what() << "\n";
    return 2;
  } catch (const Refusal& e) {
    std::error_code ignored;
    if (!temp.empty()) fs::remove_all(temp, ignored);
    err << "pinmark: export: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::error_code ignored;
    if (!temp.empty()) fs::remove_all(temp, ignored);
    err << "pinmark: export: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace pinmark
