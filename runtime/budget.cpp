#include "runtime/budget.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>

namespace pinmark {
namespace {

// Every run of a target: once, twice more for repeats, once on one thread, once per sequence
// alone (counted as one run over all sequences).
constexpr double kRunsPerModelTarget = 5;
constexpr double kRunsPerKernelTarget = 3;
// Bytes per element of a kernel's tensors: the fp64 draw, the stored copy and the fp64 output.
constexpr double kKernelBytesPerElement = 32;
// Operations per element of an elementwise kernel (exp, rsqrt, sin and cos cost several).
constexpr double kElementwiseWork = 10;
// What a layer costs whatever its sizes: making a run's weights for it (drawing, rounding and
// packing each of its matrices) and each forward call through it (a dozen ops' allocations and
// taps), in the units of the rest of the estimate. Measured on 2 cores: a model 512 wide and 4
// layers deep, costed at 1.5e10, ran in 2.4 s; one 16 wide, where these costs are all there is,
// took about 190 and 110 us a layer for each run that happened. These constants put that model
// at 1000 layers deep (3.8 s) at 2.1e10. Without them it was costed at 1.8e8, and at 100,000
// layers ran for minutes.
constexpr double kLayerSetupWork = 4e5;
constexpr double kLayerCallWork = 2.5e5;

double physical_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 8.0 * (1ull << 30);  // unknown: assume a small machine
  return static_cast<double>(pages) * static_cast<double>(page);
}

double parse_budget(const char* name, const std::string& text, bool suffixes) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  std::string rest = end ? std::string(end) : std::string();
  if (suffixes && rest.size() == 1) {
    const std::string units = "KMGT";
    const size_t power = units.find(static_cast<char>(std::toupper(rest[0])));
    if (power != std::string::npos) {
      value *= std::pow(1024.0, static_cast<double>(power + 1));
      rest.clear();
    }
  }
  if (text.empty() || !rest.empty() || !(value > 0) || std::isinf(value))
    throw std::runtime_error(std::string(name) + " must be a positive number" +
                             (suffixes ? " of bytes (e.g. 8G)" : " of multiply-adds (e.g. 5e10)") +
                             ", got '" + text + "'");
  return value;
}

struct ModelShape {
  double vocab, hidden, inter, expert_inter, layers, heads, kv_heads, head_dim, experts, experts_per_tok,
      positions, kv_layers;
  // MLA (DeepSeek): ranks and head widths, and DeepSeek-V3.2's indexer; 0 for other families.
  double q_rank, kv_rank, nope, rope, v_dim, index_heads, index_dim;
  // Gemma 3n: AltUp's streams, LAuReL's rank, the per-layer inputs' width and vocabulary.
  double streams, laurel_rank, per_layer, per_layer_vocab;
  // DeepSeek-V4: hyper-connection streams and the grouped output's rank (its q rank and
  // indexer above), costed on every layer as if each were a CSA layer, an upper bound.
  double hc, o_rank, o_groups;
  bool tied, gpt2, dense_layers_too;
};

ModelShape shape_of(const ModelConfig& c) {
  ModelShape s{};
  s.vocab = c.vocab_size;
  s.hidden = c.hidden_size;
  s.layers = c.num_hidden_layers;
  s.heads = c.num_attention_heads;
  s.kv_heads = c.num_key_value_heads > 0 ? c.num_key_value_heads : s.heads;
  s.head_dim = c.head_dim > 0 ? c.head_dim : (s.heads > 0 ? std::floor(s.hidden / s.heads) : 0);
  s.heads = widest_query_heads(c);  // pinmark.query_heads: the widest layer bounds the cost
  s.gpt2 = c.model_type == "gpt2";
  s.inter = c.intermediate_size > 0 ? c.intermediate_size : (s.gpt2 ? 4 * s.hidden : 0);
  s.dense_layers_too = c.model_type == "qwen3_moe" || c.model_type == "qwen3_next";
  s.expert_inter = c.moe_intermediate_size > 0 ? c.moe_intermediate_size : s.inter;
  s.experts = c.num_local_experts;
  s.experts_per_tok = c.num_experts_per_tok;
  s.positions = s.gpt2 ? c.max_position_embeddings : 0;
  s.kv_layers = std::max(0.0, s.layers - std::max(0, c.num_kv_shared_layers));
  s.tied = c.tie_word_embeddings;
  if (c.kv_lora_rank > 0) {
    s.q_rank = std::max(0, c.q_lora_rank);
    s.kv_rank = c.kv_lora_rank;
    s.nope = std::max(0, c.qk_nope_head_dim);
    s.rope = std::max(0, c.qk_rope_head_dim);
    s.v_dim = std::max(0, c.v_head_dim);
    s.index_heads = std::max(0, c.index_n_heads);
    s.index_dim = std::max(0, c.index_head_dim);
  }
  if (is_deepseek_v4(c)) {
    s.q_rank = std::max(0, c.q_lora_rank);
    s.index_heads = std::max(0, c.index_n_heads);
    s.index_dim = std::max(0, c.index_head_dim);
    s.hc = std::max(0, c.hc_mult);
    s.o_rank = std::max(0, c.o_lora_rank);
    s.o_groups = std::max(0, c.o_groups);
    s.kv_heads = 1;
    s.inter = s.expert_inter;  // the shared expert, costed as a dense MLP beside the experts
    s.dense_layers_too = true;
  }
  if (is_gemma3n(c)) {
    s.streams = std::max(0, c.altup_num_inputs);
    s.laurel_rank = std::max(0, c.laurel_rank);
    s.per_layer = std::max(0, c.hidden_size_per_layer_input);
    s.per_layer_vocab = std::max(0, c.vocab_size_per_layer_input);
  }
  return s;
}

// `calls`: the forward calls of one run, one per sequence's prompt and one per decode step.
Footprint model_cost(const ModelShape& s, const std::vector<double>& lengths, double calls,
                     int targets) {
  double attn_proj = s.hidden * s.head_dim * (2 * s.heads + 2 * s.kv_heads);
  // Per cached key and layer: attention's dot products (and MLA's expansion of keys and values
  // from the latent, redone for every cached key on every call, and the indexer's scores).
  double per_key = s.heads * s.head_dim;
  double cache_row = 2 * s.kv_heads * s.head_dim;
  if (s.kv_rank > 0) {
    const double qk = s.nope + s.rope;
    attn_proj = (s.q_rank > 0 ? s.hidden * s.q_rank + s.q_rank * s.heads * qk
                              : s.hidden * s.heads * qk) +
                s.hidden * (s.kv_rank + s.rope) + s.kv_rank * s.heads * (s.nope + s.v_dim) +
                s.heads * s.v_dim * s.hidden + s.index_heads * s.index_dim * s.q_rank +
                s.index_dim * s.hidden + s.index_heads * s.hidden;
    per_key = s.heads * (qk + s.v_dim) + s.kv_rank * s.heads * (s.nope + s.v_dim) +
              s.index_heads * s.index_dim;
    cache_row = s.kv_rank + s.rope + s.index_dim;
  }
  if (s.hc > 0) {
    // Queries through the rank, one key-and-value head, the grouped output projection, the
    // compressor (2 head_dim of kv and of gate) and the indexer (its compressor, queries and
    // weights); per cached key the scores and the values, and the indexer's score.
    attn_proj = s.hidden * s.q_rank + s.q_rank * s.heads * s.head_dim + s.hidden * s.head_dim +
                s.heads * s.head_dim * s.o_rank + s.o_groups * s.o_rank * s.hidden +
                4 * s.hidden * s.head_dim + 4 * s.hidden * s.index_dim +
                s.q_rank * s.index_heads * s.index_dim + s.hidden * s.index_heads;
    per_key = 2 * s.heads * s.head_dim + s.index_heads * s.index_dim;
    cache_row = s.head_dim + s.index_dim;
  }
  // Two hyper-connections per layer: their maps of all streams, and the mixing of the streams.
  const double hc_layer = s.hc > 0 ? 2 * ((2 + s.hc) * s.hc * s.hc * s.hidden + 3 * s.hc * s.hc * s.hidden) : 0;
  const double mlp_matrices = s.gpt2 ? 2 : 3;
  // Qwen3-MoE mixes sparse and dense layers: it is costed as if every layer had both, an
  // upper bound.
  const double dense_params = mlp_matrices * s.hidden * s.inter;
  const double extra_dense = s.dense_layers_too ? dense_params : 0;
  const double mlp_params =
      s.experts > 0 ? s.experts * mlp_matrices * s.hidden * s.expert_inter + s.hidden * s.experts +
                          extra_dense
                    : dense_params;
  const double mlp_work =
      s.experts > 0 ? s.experts_per_tok * mlp_matrices * s.hidden * s.expert_inter +
                          s.hidden * s.experts + extra_dense
                    : mlp_params;
  // Gemma 3n per layer: AltUp's router and coefficients, its mix of the streams (work only),
  // LAuReL and the per-layer input's gate and projection; per model: the per-layer embedding
  // (weights only) and projection, and the streams' projections in and out.
  const double n3 = s.streams;
  const double gemma3n_layer_params = n3 * s.hidden + n3 * n3 * n3 + n3 * n3 + 2 * s.hidden * s.laurel_rank +
                                      2 * s.hidden * s.per_layer + 3 * s.hidden;
  const double gemma3n_layer_work = gemma3n_layer_params + 2 * n3 * n3 * s.hidden;
  const double gemma3n_model_work = s.layers * s.per_layer * s.hidden +
                                    2 * std::max(0.0, n3 - 1) * s.hidden * s.hidden;
  const double gemma3n_params = s.layers * gemma3n_layer_params + gemma3n_model_work +
                                s.per_layer_vocab * s.layers * s.per_layer;
  const double params = s.layers * (attn_proj + mlp_params + 4 * s.hidden + hc_layer) +
                        s.vocab * s.hidden * (s.tied ? 1 : 2) + s.positions * s.hidden +
                        gemma3n_params;

  double tokens = 0, squares = 0, longest = 0;
  for (double n : lengths) {
    tokens += n;
    squares += n * n;
    longest = std::max(longest, n);
  }
  const double runs = 1 + kRunsPerModelTarget * targets;
  Footprint f;
  // Linear layers and the LM head per token; attention over the cache grows with position.
  f.work = runs * (tokens * (s.layers * (attn_proj + mlp_work + gemma3n_layer_work + hc_layer) +
                             gemma3n_model_work + s.vocab * s.hidden) +
                   s.layers * per_key * squares +
                   s.layers * (kLayerSetupWork + calls * kLayerCallWork));
  // Synthetic weights, the oracle's model, a checkpoint's copy, and one target's rounded
  // weights and float model at a time.
  const double weights = params * (8 + 8 + 8 + (targets > 0 ? 12 : 0));
  const double kv_cache = s.kv_layers * cache_row * longest * 8;
  // Logits of the oracle and of a target's runs are kept, every row of them.
  const double logits = 4 * tokens * s.vocab * 8;
  // Every tap of every call is recorded, by the oracle and by a target: per token the layer's
  // vectors, and the attention scores over the cache.
  const double per_token =
      s.layers * (12 * s.hidden + 3 * s.inter + 2 * s.heads * s.head_dim + 2 * n3 * s.hidden +
                  s.per_layer) +
      s.vocab + s.hidden;
  const double taps = 2 * 8 * (tokens * per_token + s.layers * s.heads * squares / 2);
  f.bytes = weights + kv_cache + logits + taps;
  return f;
}

double kernel_dim(const KernelSpec& spec, const std::string& name) {
  return std::max(0.0, kernel_param(spec, name));
}

Footprint kernel_cost(const KernelSpec& spec, int targets) {
  auto p = [&](const char* name) { return kernel_dim(spec, name); };
  double elements = 0, work = 0;
  if (spec.op == "matmul") {
    elements = p("n") * p("k") + p("m") * p("k") + p("n") * p("m");
    work = p("n") * p("k") * p("m");
  } else if (spec.op == "rmsnorm") {
    elements = 2 * p("rows") * p("dim");
    work = kElementwiseWork * p("rows") * p("dim");
  } else if (spec.op == "rope") {
    elements = p("tokens") * p("heads") * p("head_dim") + p("tokens");
    work = kElementwiseWork * elements;
  } else if (spec.op == "softmax") {
    elements = p("rows") * p("len");
    work = kElementwiseWork * elements;
  } else if (spec.op == "attention") {
    const double kv_len = p("past") + p("tokens");
    elements = 2 * p("tokens") * p("heads") * p("head_dim") +
               2 * kv_len * p("kv_heads") * p("head_dim") + p("heads") * p("tokens") * kv_len;
    work = 2 * p("heads") * p("tokens") * kv_len * p("head_dim") +
           kElementwiseWork * p("heads") * p("tokens") * kv_len;
  } else if (spec.op == "swiglu") {
    elements = 3 * p("n");
    work = kElementwiseWork * p("n");
  }
  return {elements * kKernelBytesPerElement, work * (1 + kRunsPerKernelTarget * targets)};
}

// The key that drives a cost: the candidate that, set to 1, leaves the smallest cost.
std::string driving_key(const std::vector<std::pair<std::string, std::function<double()>>>& shrunk) {
  std::string best;
  double best_cost = INFINITY;
  for (const auto& [key, cost] : shrunk) {
    const double c = cost();
    if (c < best_cost) {
      best_cost = c;
      best = key;
    }
  }
  return best;
}

std::optional<BudgetRefusal> refuse(const Footprint& need, const Budget& budget,
                                    const std::function<std::string(bool work)>& key_for) {
  if (need.work > budget.work) {
    const std::string key = key_for(true);
    return BudgetRefusal{
        key,
        "the case needs about " + count_text(need.work) + " multiply-adds, past the work budget of " +
            count_text(budget.work) + " (PINMARK_WORK_BUDGET sets it); " + key +
            " drives it",
        budget.work_from_environment};
  }
  if (need.bytes > budget.bytes) {
    const std::string key = key_for(false);
    return BudgetRefusal{key,
                         "the case needs about " + bytes_text(need.bytes) +
                             ", past the memory budget of " + bytes_text(budget.bytes) +
                             (budget.bytes_from_environment
                                  ? " (PINMARK_MEMORY_BUDGET)"
                                  : " (half of this machine's memory; PINMARK_MEMORY_BUDGET sets it)") +
                             "; " + key + " drives it",
                         true};
  }
  return std::nullopt;
}

}  // namespace

std::string bytes_text(double bytes) {
  const char* units[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
  int u = 0;
  while (bytes >= 1000 && u < 6) {
    bytes /= 1000;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2g %s", bytes, units[u]);
  return buf;
}

std::string count_text(double count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2g", count);
  return buf;
}

Budget budget_from_environment() {
  Budget b;
  b.bytes = physical_memory() / 2;
  if (const char* v = std::getenv("PINMARK_MEMORY_BUDGET")) {
    b.bytes = parse_budget("PINMARK_MEMORY_BUDGET", v, true);
    b.bytes_from_environment = true;
  }
  if (const char* v = std::getenv("PINMARK_WORK_BUDGET")) {
    b.work = parse_budget("PINMARK_WORK_BUDGET", v, false);
    b.work_from_environment = true;
  }
  return b;
}

Footprint model_footprint(const ModelConfig& config, const std::vector<int64_t>& prompt_lengths,
                          int64_t decode, int targets) {
  std::vector<double> lengths;
  for (int64_t n : prompt_lengths) lengths.push_back(static_cast<double>(n) + static_cast<double>(decode));
  // An upper bound: the run of each sequence alone calls the model once per prompt and step.
  const double calls = static_cast<double>(prompt_lengths.size()) * (1 + static_cast<double>(decode));
  return model_cost(shape_of(config), lengths, calls, targets);
}

Footprint kernel_footprint(const KernelSpec& spec, int targets) { return kernel_cost(spec, targets); }

std::optional<BudgetRefusal> check_model_budget(const ModelConfig& config,
                                                const std::vector<int64_t>& prompt_lengths,
                                                int64_t decode, int targets,
                                                const Budget& budget) {
  const Footprint need = model_footprint(config, prompt_lengths, decode, targets);
  auto key_for = [&](bool work) {
    auto measure = [&](const Footprint& f) { return work ? f.work : f.bytes; };
    std::vector<std::pair<std::string, std::function<double()>>> candidates;
    auto size_key = [&](const char* name, int ModelConfig::*field) {
      candidates.emplace_back(config_key_name(config, name), [&, field] {
        ModelConfig c = config;
        if (c.*field > 1) c.*field = 1;
        return measure(model_footprint(c, prompt_lengths, decode, targets));
      });
    };
    size_key("num_hidden_layers", &ModelConfig::num_hidden_layers);
    size_key("vocab_size", &ModelConfig::vocab_size);
    size_key("hidden_size", &ModelConfig::hidden_size);
    size_key("intermediate_size", &ModelConfig::intermediate_size);
    size_key("num_attention_heads", &ModelConfig::num_attention_heads);
    size_key("num_key_value_heads", &ModelConfig::num_key_value_heads);
    size_key("head_dim", &ModelConfig::head_dim);
    size_key("max_position_embeddings", &ModelConfig::max_position_embeddings);
    if (config.num_local_experts > 0) size_key("num_local_experts", &ModelConfig::num_local_experts);
    if (config.moe_intermediate_size > 0)
      size_key("moe_intermediate_size", &ModelConfig::moe_intermediate_size);
    if (config.kv_lora_rank > 0) {
      size_key("kv_lora_rank", &ModelConfig::kv_lora_rank);
      size_key("q_lora_rank", &ModelConfig::q_lora_rank);
      size_key("qk_nope_head_dim", &ModelConfig::qk_nope_head_dim);
      size_key("v_head_dim", &ModelConfig::v_head_dim);
      size_key("index_n_heads", &ModelConfig::index_n_heads);
      size_key("index_head_dim", &ModelConfig::index_head_dim);
    }
    if (is_deepseek_v4(config)) {
      size_key("q_lora_rank", &ModelConfig::q_lora_rank);
      size_key("o_lora_rank", &ModelConfig::o_lora_rank);
      size_key("hc_mult", &ModelConfig::hc_mult);
      size_key("index_n_heads", &ModelConfig::index_n_heads);
      size_key("index_head_dim", &ModelConfig::index_head_dim);
    }
    if (is_gemma3n(config)) {
      size_key("altup_num_inputs", &ModelConfig::altup_num_inputs);
      size_key("laurel_rank", &ModelConfig::laurel_rank);
      size_key("hidden_size_per_layer_input", &ModelConfig::hidden_size_per_layer_input);
      size_key("vocab_size_per_layer_input", &ModelConfig::vocab_size_per_layer_input);
    }
    candidates.emplace_back("decode", [&] {
      return measure(model_footprint(config, prompt_lengths, 0, targets));
    });
    candidates.emplace_back("prompts", [&] {
      return measure(model_footprint(config, {1}, decode, targets));
    });
    return driving_key(candidates);
  };
  return refuse(need, budget, key_for);
}

std::optional<BudgetRefusal> check_kernel_budget(const KernelSpec& spec, int targets,
                                                 const Budget& budget) {
  const Footprint need = kernel_footprint(spec, targets);
  auto key_for = [&](bool work) {
    std::vector<std::pair<std::string, std::function<double()>>> candidates;
    for (const auto& [name, value] : spec.params) {
      if (name == "eps" || name == "theta" || name == "scale" || name == "start") continue;
      candidates.emplace_back(name, [&, name = name] {
        KernelSpec s = spec;
        s.params[name] = std::min(s.params[name], name == "past" ? 0.0 : 1.0);
        const Footprint f = kernel_footprint(s, targets);
        return work ? f.work : f.bytes;
      });
    }
    return driving_key(candidates);
  };
  return refuse(need, budget, key_for);
}

}  // namespace pinmark
