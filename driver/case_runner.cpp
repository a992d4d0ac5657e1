#include "driver/case_runner.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <tuple>
#include <stdexcept>

#include "driver/fingerprint.h"
#include "driver/numerics.h"
#include "runtime/checkpoint.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/kernel_case.h"
#include "runtime/model.h"
#include "runtime/perturbing_backend.h"
#include "runtime/weight_source.h"
#include "runtime/weights.h"

namespace pinmark {
namespace {

struct ModelRun {
  std::vector<SequenceOutput> outputs;
  std::vector<TapRecord> taps;  // every tap of every call, in the order they happened
};

// The oracle's discrete choices (model.h, RouteFn) of every forward call, by (sequence, call,
// the tap that reports the choice): what a target is fed.
using RoutingTable = std::map<std::tuple<int, int, std::string>, std::vector<int>>;

// An MoE router's experts.
bool is_experts_tap(const std::string& name) { return name.ends_with(".experts"); }

RoutingTable routing_of(const ModelRun& oracle) {
  RoutingTable table;
  for (const TapRecord& tap : oracle.taps)
    if (is_choice_tap(tap.name))
      table[{tap.sequence, tap.call, tap.name}] =
          std::vector<int>(tap.values.begin(), tap.values.end());
  return table;
}

// `routing`, when given, feeds the oracle's experts; `first_sequence` is the oracle's index of
// prompts[0] (a sequence run alone is sequence 0 of its own run).
template <class T>
ModelRun run_model(const CaseSpec& spec, const WeightSource& weights, Backend<T>& backend,
                   const std::vector<std::vector<int>>& prompts,
                   const std::vector<std::vector<int>>& forced, bool record_taps,
                   const RoutingTable* routing = nullptr, int first_sequence = 0) {
  Model<T> model(spec.model, weights, backend);
  GenerateOptions options;
  options.decode = spec.inputs.decode;
  options.prefill_chunk = spec.inputs.prefill_chunk;
  options.forced_tokens = forced;
  if (routing && !routing->empty())
    options.forced_routing = [routing, first_sequence](int sequence, int call,
                                                       const std::string& layer, int tokens,
                                                       int top_k, int* ids) {
      auto it = routing->find({first_sequence + sequence, call, layer});
      if (it != routing->end() && it->second.size() == static_cast<size_t>(tokens) * top_k)
        std::copy(it->second.begin(), it->second.end(), ids);
    };
  ModelRun run;
  BatchTapFn<T> tap;
  if (record_taps)
    tap = [&](int sequence, int call, const std::string& name, const Shape& shape, const T* data) {
      run.taps.push_back({sequence, call, name, shape,
                          std::vector<double>(data, data + element_count(shape))});
    };
  run.outputs = generate(model, prompts, options, tap);
  return run;
}

std::string tap_label(const TapRecord& tap) {
  std::string label = tap.name;
  if (tap.call > 0) label = "call " + std::to_string(tap.call) + ": " + label;
  if (tap.sequence > 0) label = "sequence " + std::to_string(tap.sequence) + ", " + label;
  return label;
}

// FNV-1a over the fp32 bits of the values (targets compute in fp32, so the conversion from
// the fp64 copy is exact).
std::string bits_digest(const std::vector<double>& values) {
  Fnv1a hash;
  for (double v : values) {
    const float f = static_cast<float>(v);
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    const unsigned char bytes[4] = {static_cast<unsigned char>(bits), static_cast<unsigned char>(bits >> 8),
                                    static_cast<unsigned char>(bits >> 16),
                                    static_cast<unsigned char>(bits >> 24)};
    hash.add(bytes, sizeof bytes);
  }
  return hash.hex();
}

// Runs `run` with the default thread count, again, and with one thread; notes which repeat
// changed a bit.
void note(std::vector<std::string>& list, const std::string& what) {
  if (std::find(list.begin(), list.end(), what) == list.end()) list.push_back(what);
}

template <class Run>
std::vector<double> run_checking_repeats(const Run& run, std::vector<std::string>& changed) {
  std::vector<double> first = run();
  if (!same_bits(run(), first)) note(changed, "runs");
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<double> single = run();
  omp_set_num_threads(threads);
  if (!same_bits(single, first)) note(changed, "threads");
  return first;
}

// Rounding points per decoder layer on the longest path: norm, q/k/v, rope, softmax, values,
// o_proj, residual, norm, gate/up, swiglu, down, residual (docs/numerics.md).
constexpr int kRoundingPointsPerLayer = 12;

Workload model_workload(const ModelConfig& c, const ModelInputs& inputs) {
  // The layers, then the embedding, the final norm and the LM head.
  Workload w;
  w.depth = kRoundingPointsPerLayer * c.num_hidden_layers + 3;
  int longest = 0;
  for (const auto& p : inputs.prompts) longest = std::max<int>(longest, p.size() + inputs.decode);
  w.reduction = std::max({c.hidden_size, c.intermediate_size, widest_query_heads(c) * c.head_dim,
                          longest});
  return w;
}

Workload kernel_workload(const KernelSpec& k) {
  auto p = [&](const char* name) { return static_cast<int>(kernel_param(k, name)); };
  Workload w;
  w.depth = 2;  // the inputs' rounding and the output's
  if (k.op == "matmul") w.reduction = p("k");
  if (k.op == "rmsnorm") w.reduction = p("dim");
  if (k.op == "softmax") {
    w.reduction = p("len");
    w.amplification = std::max(1.0, kernel_param(k, "scale"));
  }
  if (k.op == "attention") {
    w.depth = 4;  // scores, softmax, values
    w.reduction = std::max(p("head_dim"), p("past") + p("tokens"));
  }
  return w;
}

// Rounding points from the embedding up to and including a tap: an early tap has been through
// less rounding than the logits, so it is held to a tighter bound (the bound scales with
// sqrt(depth)). Taps this table does not know are held to the logits' bound.
int tap_depth(const std::string& name, int layers) {
  static const std::map<std::string, int> within_layer = {
      {"attn_norm", 1}, {"q", 3}, {"k", 3}, {"v", 2},          {"scores", 3},
      {"attn_out", 6},  {"router", 9}, {"experts", 9}, {"expert_weights", 9}, {"mlp_out", 11}};
  if (name == "embed") return 1;
  if (name == "final_norm") return kRoundingPointsPerLayer * layers + 2;
  if (const int layer = tap_layer(name); layer >= 0) {
    auto it = within_layer.find(name.substr(name.find('.', 7) + 1));
    if (it != within_layer.end()) return 1 + kRoundingPointsPerLayer * layer + it->second;
  }
  return kRoundingPointsPerLayer * layers + 3;
}

// Each group's score (the sum of its two best scores) and the groups a router keeps: the
// `kept` best, ties to the lower index, as DeepseekV3TopkRouter ranks them. One group when
// `groups` does not divide the scores.
struct Groups {
  int64_t size = 0;             // experts per group
  std::vector<double> score;    // by group
  std::vector<bool> kept;       // by group
  double weakest_kept = INFINITY;
};

Groups groups_of(const std::vector<double>& scores, int groups, int kept) {
  Groups g;
  const int64_t count = static_cast<int64_t>(scores.size());
  g.size = groups > 1 && count % groups == 0 ? count / groups : count;
  for (int64_t first = 0; first < count; first += g.size) {
    std::vector<double> members(scores.begin() + first, scores.begin() + first + g.size);
    std::sort(members.begin(), members.end(), std::greater<double>());
    g.score.push_back(members[0] + (members.size() > 1 ? members[1] : 0.0));
  }
  std::vector<size_t> order(g.score.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return g.score[a] > g.score[b]; });
  g.kept.assign(g.score.size(), g.score.size() == 1);
  for (size_t s = 0; s < order.size() && s < static_cast<size_t>(std::max(kept, 1)); ++s) {
    g.kept[order[s]] = true;
    g.weakest_kept = std::min(g.weakest_kept, g.score[order[s]]);
  }
  return g;
}

// The top_k experts by score within the kept groups, ties to the lower index: what a router
// with these scores chooses.
std::vector<double> chosen_by(const std::vector<double>& scores, const Groups& g, int64_t top_k) {
  std::vector<int64_t> order;
  for (int64_t e = 0; e < static_cast<int64_t>(scores.size()); ++e)
    if (g.kept[e / g.size]) order.push_back(e);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  order.resize(std::min<size_t>(order.size(), static_cast<size_t>(top_k)));
  return std::vector<double>(order.begin(), order.end());
}

// Whether a target's expert choices agree with the oracle's, token by token, up to near-ties:
// an expert chosen in place of one of the oracle's is a near-tie when the scores the router
// chooses by (its probabilities, plus `correction` when given) of the two are within twice the
// error `bound` allows each (numerics.h, near_tie). With groups, an expert from a group the
// oracle did not keep is a near-tie when the scores of its group and of the oracle's weakest
// kept group (each the sum of two scores, so moving by twice a score's error) are within four
// times it. And a target that reports its own router probabilities, within `bound` of the
// oracle's for that token, and chose exactly what they choose, chose rightly from scores that
// rounding moved: a near-tie whatever the gaps (a pair of scores may move by more than the
// row's rms error). Counts such near-ties in `near_ties`.
bool routing_within(const TapRecord& oracle_router, const TapRecord& oracle_experts,
                    const TapRecord& target_experts, const TapRecord* target_router,
                    double bound, const std::vector<double>* correction, int groups,
                    int groups_kept, int& near_ties) {
  if (oracle_experts.values.size() != target_experts.values.size() ||
      oracle_router.shape.size() != 2 || oracle_experts.shape.size() != 2)
    return false;
  const int64_t tokens = oracle_experts.shape[0], top_k = oracle_experts.shape[1];
  const int64_t count = oracle_router.shape[1];
  for (int64_t r = 0; r < tokens; ++r) {
    auto first = [&](const TapRecord& t) { return t.values.begin() + r * top_k; };
    const std::vector<double> ours(first(oracle_experts), first(oracle_experts) + top_k);
    const std::vector<double> theirs(first(target_experts), first(target_experts) + top_k);
    if (std::is_permutation(ours.begin(), ours.end(), theirs.begin())) continue;
    auto scores_of = [&](const TapRecord& router) {
      std::vector<double> s(router.values.begin() + r * count,
                            router.values.begin() + (r + 1) * count);
      if (correction && correction->size() == s.size())
        for (int64_t e = 0; e < count; ++e) s[e] += (*correction)[e];
      return s;
    };
    const std::vector<double> scores = scores_of(oracle_router);
    const Groups g_oracle = groups_of(scores, groups, groups_kept);
    if (target_router && target_router->values.size() == oracle_router.values.size()) {
      const std::vector<double> own = scores_of(*target_router);
      const std::vector<double> probs(oracle_router.values.begin() + r * count,
                                      oracle_router.values.begin() + (r + 1) * count);
      const std::vector<double> own_probs(target_router->values.begin() + r * count,
                                          target_router->values.begin() + (r + 1) * count);
      const std::vector<double> own_choice = chosen_by(own, groups_of(own, groups, groups_kept), top_k);
      if (within(compare(probs, own_probs), bound) &&
          std::is_permutation(own_choice.begin(), own_choice.end(), theirs.begin())) {
        ++near_ties;
        continue;
      }
    }
    double sum2 = 0;
    for (double s : scores) sum2 += s * s;
    const double rms = std::sqrt(sum2 / static_cast<double>(count));
    for (double id : theirs) {
      if (std::find(ours.begin(), ours.end(), id) != ours.end()) continue;
      if (!(id >= 0 && id < count)) return false;
      const int64_t g = static_cast<int64_t>(id) / g_oracle.size;
      if (!g_oracle.kept[g]) {
        if (!(g_oracle.weakest_kept - g_oracle.score[g] <= 4 * bound * rms)) return false;
        continue;
      }
      // The oracle's weakest chosen expert against the one the target took instead.
      size_t weakest = static_cast<size_t>(ours[0]);
      for (double o : ours)
        if (scores[static_cast<size_t>(o)] < scores[weakest]) weakest = static_cast<size_t>(o);
      if (!near_tie(scores, weakest, static_cast<size_t>(id), bound)) return false;
    }
    ++near_ties;
  }
  return true;
}

// A row that ran here is keyed by the device class it ran on, since another GPU generation
// may round differently and keeps its own row.
void mark_ran(TargetRow& row) {
  row.ran = true;
  const std::string device_class = target_device_class(row.target);
  row.label = device_class.empty() ? row.target.name()
                                   : row.target.backend + " " + device_class + " " +
                                         row.target.precision;
  row.device = target_provenance(row.target);
  row.math_mode = target_math_mode(row.target);
}

// The row's tolerance and the bound of its ill-conditioned verdict: the case's own tolerance
// (and no such verdict) when it sets one, else numerics.h's defaults.
void set_tolerance(const TargetPlan& plan, const Target& target, const Workload& work,
                   TargetRow& row) {
  auto it = plan.tolerance.find(target.name());
  if (it != plan.tolerance.end()) {
    row.tolerance = it->second;
    return;
  }
  row.tolerance = default_tolerance(target_unit_roundoff(target), work);
  row.conditioning_bound = conditioning_bound(target_unit_roundoff(target), work);
}

// A row that failed by its numbers alone and passes when judged by its conditioning bound is
// ill-conditioned: shown with its numbers, neither ok nor FAIL. `judge(bound, cap, row)` fills
// the row as judged by `bound`, no measured bound past `cap`: kMaxTolerance, then none.
template <class Judge>
void judge_conditioned(TargetRow& row, const Judge& judge) {
  const TargetRow before = row;
  judge(row.tolerance, kMaxTolerance, row);
  if (row.ok || !row.nondeterministic.empty()) return;
  TargetRow loose = before;
  judge(std::max(row.tolerance, row.conditioning_bound), INFINITY, loose);
  if (loose.ok) row.ok = row.ill_conditioned = true;
}

// How far the oracle's logits move under kPerturbedRuns runs of the fp64 oracle with every
// result perturbed by a rounding of unit roundoff `u` (perturbing_backend.h), on the weights as
// a target of storage type `storage` holds them, fed the oracle's tokens and experts: the
// largest rel L2 over all logits, and over each position's row of logits.
constexpr int kPerturbedRuns = 5;

struct Spread {
  double logits = 0;
  std::vector<double> rows;  // one per row of flatten_logits' order
};

Spread perturbed_spread(const CaseSpec& spec, const WeightSource& weights, DType storage, double u,
                        const std::vector<std::vector<int>>& forced, const RoutingTable& routing,
                        const std::vector<SequenceOutput>& oracle) {
  const RoundedWeights stored(weights, storage);
  const std::vector<double> oracle_logits = flatten_logits(oracle);
  Spread worst;
  for (int seed = 1; seed <= kPerturbedRuns; ++seed) {
    auto backend = make_perturbing_backend(make_cpu_backend<double>(), u, seed);
    const ModelRun run =
        run_model(spec, stored, *backend, spec.inputs.prompts, forced, false, &routing);
    auto worse = [](double& so_far, const ErrorMetrics& m) {
      so_far = m.finite ? std::max(so_far, m.rel_l2) : INFINITY;
    };
    worse(worst.logits, compare(oracle_logits, flatten_logits(run.outputs)));
    size_t row = 0;
    for (size_t s = 0; s < oracle.size(); ++s)
      for (size_t p = 0; p < oracle[s].logits.size(); ++p, ++row) {
        if (worst.rows.size() <= row) worst.rows.push_back(0);
        worse(worst.rows[row], compare(oracle[s].logits[p], run.outputs[s].logits[p]));
      }
  }
  return worst;
}

void run_model_case(const CaseSpec& spec, const BackendFactory& backends, CaseResult& result) {
  const std::shared_ptr<const WeightSource> source = case_weights(spec);
  const WeightSource& weights = *source;
  const auto& prompts = spec.inputs.prompts;
  std::unique_ptr<Backend<double>> oracle_backend = make_cpu_backend<double>();
  ModelRun oracle = run_model(spec, weights, *oracle_backend, prompts, {}, true);
  result.prompts = prompts;
  result.layers = spec.model.num_hidden_layers;
  if (is_deepseek(spec.model) || is_deepseek_v4(spec.model)) {
    const ModelConfig c = with_defaults(spec.model);
    result.router_choice.groups = c.n_group;
    result.router_choice.groups_kept = c.topk_group;
    // DeepSeek-V4's checkpoints name the correction bias ffn.gate.bias.
    const std::string bias = is_deepseek_v4(c) ? ".ffn.gate.bias" : ".mlp.gate.e_score_correction_bias";
    for (int l = 0; l < c.num_hidden_layers; ++l) {
      const std::string name = "model.layers." + std::to_string(l) + bias;
      if (weights.contains(name)) result.router_choice.correction[l] = weights.read(name).data;
    }
  }
  const std::vector<int> sources = kv_source_layers(spec.model);
  for (int l = 0; l < result.layers; ++l) result.kv_layers_stored += sources[l] == l;
  // MLA caches a latent instead of keys and values: the case says how much it holds.
  if (spec.model.kv_lora_rank > 0) {
    const ModelConfig c = with_defaults(spec.model);
    result.kv_cache_latent = KVCache<double>(c, 1).values_per_token();
    result.kv_cache_expanded = int64_t{result.kv_layers_stored} * c.num_attention_heads *
                               (c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim);
    result.kv_cache_index_keys = c.index_n_heads > 0;
  }
  if (!all_finite(flatten_logits(oracle.outputs))) {
    result.unpinnable.push_back(
        "the fp64 oracle's logits hold NaN or infinity: nothing can be judged against them");
    return;
  }
  std::set<std::string> matched;
  for (const TapRecord& tap : oracle.taps) {
    if (tap.sequence != 0 || tap.call != 0) continue;
    for (const std::string& pattern : spec.inputs.dump_patterns) {
      if (glob_match(pattern, tap.name)) {
        result.dumps.push_back(tap);
        matched.insert(pattern);
        break;
      }
    }
  }
  // A pattern that matches no tap (a misspelt name, a layer the model lacks, a tap its family
  // does not have) would leave the Dumps table silently short: it is an error, naming the taps
  // there are.
  for (const std::string& pattern : spec.inputs.dump_patterns) {
    if (matched.count(pattern)) continue;
    bool any = false;  // a later pattern may take every tap this one matches
    for (const TapRecord& tap : oracle.taps)
      any = any || (tap.sequence == 0 && tap.call == 0 && glob_match(pattern, tap.name));
    if (any) continue;
    // A pattern for one layer is answered with that layer's taps (layers differ: sliding,
    // compressed, sharing another's keys and values), or the layers there are.
    int layer = -1;
    if (pattern.starts_with("layers.")) {
      const size_t dot = pattern.find('.', 7);
      const std::string digits = pattern.substr(7, dot == std::string::npos ? dot : dot - 7);
      if (!digits.empty() && digits.size() < 9 &&
          std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        layer = std::stoi(digits);
    }
    std::set<std::string> kinds;
    for (const TapRecord& tap : oracle.taps) {
      if (tap.sequence != 0 || tap.call != 0) continue;
      const int at = tap_layer(tap.name);
      if (layer >= 0 && at != layer) continue;
      if (layer >= 0) kinds.insert(tap.name);
      else kinds.insert(at < 0 ? tap.name : "layers.N." + tap.name.substr(tap.name.find('.', 7) + 1));
    }
    std::string list;
    for (const std::string& k : kinds) list += (list.empty() ? "" : ", ") + k;
    CaseProblem p = spec.inputs.dumps_at;
    if (layer >= result.layers)
      p.message = "dumps pattern '" + pattern + "' matches no tap: the model has layers 0 to " +
                  std::to_string(result.layers - 1);
    else if (layer >= 0)
      p.message = "dumps pattern '" + pattern + "' matches no tap of layer " +
                  std::to_string(layer) + " (its taps: " + list + ")";
    else
      p.message = "dumps pattern '" + pattern + "' matches no tap of this model (its taps: " +
                  list + ")";
    result.problems.push_back(p);
  }
  if (!spec.checkpoint.empty())
    result.reference = check_against_reference(spec.checkpoint, spec.checkpoint_label, prompts,
                                               oracle.outputs, model_workload(spec.model, spec.inputs),
                                               spec.targets.reference_tolerance);
  std::vector<std::vector<int>> forced;
  for (const SequenceOutput& s : oracle.outputs) forced.push_back(s.generated);
  const RoutingTable routing = routing_of(oracle);

  const Workload modelled = model_workload(spec.model, spec.inputs);
  std::map<std::pair<DType, double>, Spread> spreads;  // by storage type and unit roundoff
  for (const Target& target : spec.targets.targets) {
    TargetRow row;
    row.target = target;
    row.label = target.name();
    Workload work = modelled;
    if (!spec.targets.tolerance.count(target.name())) {
      const std::pair<DType, double> key{storage_type(target), target_unit_roundoff(target)};
      if (!spreads.count(key))
        spreads[key] = perturbed_spread(spec, weights, key.first, key.second, forced, routing,
                                        oracle.outputs);
      work.measured = spreads[key].logits;
      row.position_spread = spreads[key].rows;
    }
    set_tolerance(spec.targets, target, work, row);
    // An engine's target runs outside the runtime (driver/engine_run.h), or not at all here.
    std::unique_ptr<Backend<float>> backend =
        engine_target_of(spec.targets, target) ? nullptr : backends(target);
    if (!backend) {
      result.numerics.push_back(row);
      continue;
    }
    mark_ran(row);
    const DType storage = storage_type(target);
    const RoundedWeights stored(weights, storage);

    ModelRun run = run_model(spec, stored, *backend, prompts, forced, true, &routing);
    const std::vector<double> logits = flatten_logits(run.outputs);
    // Repeats and thread counts must not move a bit, and neither may the company a sequence
    // keeps: each sequence alone must give what it gave in the batch.
    auto rerun = [&] {
      return flatten_logits(
          run_model(spec, stored, *backend, prompts, forced, false, &routing).outputs);
    };
    if (!same_bits(run_checking_repeats(rerun, row.nondeterministic), logits))
      note(row.nondeterministic, "runs");
    std::vector<double> alone;
    for (size_t s = 0; s < prompts.size(); ++s) {
      std::vector<double> one = flatten_logits(
          run_model(spec, stored, *backend, {prompts[s]}, {forced[s]}, false, &routing,
                    static_cast<int>(s))
              .outputs);
      alone.insert(alone.end(), one.begin(), one.end());
    }
    if (!same_bits(alone, logits)) row.nondeterministic.push_back("batch");

    judge_model_row(spec, oracle.outputs, oracle.taps, result.router_choice, run.outputs, run.taps,
                    row);
    result.numerics.push_back(row);
  }
  result.oracle = std::move(oracle.outputs);
  result.oracle_taps = std::move(oracle.taps);
}

void run_kernel_case(const CaseSpec& spec, const BackendFactory& backends, CaseResult& result) {
  auto oracle_backend = make_cpu_backend<double>();
  result.kernel_output = run_kernel(spec.kernel, *oracle_backend);
  if (!all_finite(result.kernel_output.data)) {
    result.unpinnable.push_back(
        "the fp64 oracle's kernel output holds NaN or infinity: nothing can be judged against it");
    return;
  }
  const Workload work = kernel_workload(spec.kernel);
  for (const Target& target : spec.targets.targets) {
    TargetRow row;
    row.target = target;
    row.label = target.name();
    set_tolerance(spec.targets, target, work, row);
    std::unique_ptr<Backend<float>> backend = backends(target);
    if (!backend) {
      result.numerics.push_back(row);
      continue;
    }
    mark_ran(row);
    const DType storage = storage_type(target);
    auto run = [&] { return run_kernel(spec.kernel, *backend, storage).data; };
    const std::vector<double> output = run_checking_repeats(run, row.nondeterministic);
    const ErrorMetrics m = compare(result.kernel_output.data, output);
    row.rel_l2 = m.rel_l2;
    row.max_abs = m.max_abs;
    judge_conditioned(row, [&](double bound, double, TargetRow& judged) {
      judged.ok = within(m, bound) && judged.nondeterministic.empty();
      if (!within(m, bound)) judged.first_divergence = spec.kernel.op;
    });
    if (spec.targets.pin_bits) row.bits = bits_digest(output);
    result.numerics.push_back(row);
  }
}

}  // namespace

int tap_layer(const std::string& name) {
  if (name.rfind("layers.", 0) != 0) return -1;
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos || dot == 7) return -1;
  int layer = 0;
  for (size_t i = 7; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9' || layer > 1000000) return -1;
    layer = layer * 10 + (name[i] - '0');
  }
  return layer;
}

bool glob_match(const std::string& pattern, const std::string& text) {
  size_t p = 0, t = 0, star = std::string::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

namespace {

// The correction bias of the layer of an experts tap, or null.
const std::vector<double>* correction_of(const RouterChoice& choice, const std::string& tap) {
  auto it = choice.correction.find(tap_layer(tap));
  return it == choice.correction.end() ? nullptr : &it->second;
}

void judge_model_row_by(const CaseSpec& spec, const std::vector<SequenceOutput>& oracle,
                        const std::vector<TapRecord>& oracle_taps,
                        const RouterChoice& router_choice,
                        const std::vector<SequenceOutput>& outputs,
                        const std::vector<TapRecord>& taps, double tolerance, double cap,
                        TargetRow& row) {
  const Workload work = model_workload(spec.model, spec.inputs);
  const std::vector<double> logits = flatten_logits(outputs);
  ErrorMetrics m = compare(flatten_logits(oracle), logits);
  row.rel_l2 = m.rel_l2;
  row.max_abs = m.max_abs;
  bool top1_ok = true;
  std::string first_flip;
  size_t position = 0;
  for (size_t s = 0; s < oracle.size(); ++s) {
    for (size_t p = 0; p < oracle[s].logits.size(); ++p, ++position) {
      const auto& expected = oracle[s].logits[p];
      const auto& actual = outputs[s].logits[p];
      // A position whose measured estimate is past the average's gets its own bound.
      double bound = tolerance;
      if (position < row.position_spread.size())
        bound = std::max(bound, std::min(kToleranceMultiple * row.position_spread[position], cap));
      ++row.top1_total;
      row.kl += kl_divergence(expected, actual);
      if (argmax(expected) == argmax(actual)) {
        ++row.top1_agree;
      } else if (near_tie(expected, argmax(expected), argmax(actual), bound)) {
        ++row.near_ties;
      } else if (top1_ok) {
        top1_ok = false;
        first_flip = "top-1 of sequence " + std::to_string(s) + ", position " + std::to_string(p);
      }
    }
  }
  if (row.top1_total) row.kl /= row.top1_total;
  // The target's taps by what they are; a target may report only some (an engine).
  std::map<std::tuple<int, int, std::string>, const TapRecord*> reported;
  for (const TapRecord& tap : taps) reported[{tap.sequence, tap.call, tap.name}] = &tap;
  auto reported_as = [&](const TapRecord& tap) -> const TapRecord* {
    auto it = reported.find({tap.sequence, tap.call, tap.name});
    return it == reported.end() ? nullptr : it->second;
  };
  // Expert ids and selected keys are a decision, not a value: judged like top-1, against the
  // scores they were chosen by (the tap before them: the router's probabilities, the indexer's
  // scores). The target was fed the oracle's choice after it, so a wrong choice shows here and
  // nowhere downstream: it fails the row by itself.
  std::vector<bool> routing_diverged(oracle_taps.size(), false);
  bool routing_ok = true;
  for (size_t i = 1; i < oracle_taps.size(); ++i) {
    const TapRecord* ours = reported_as(oracle_taps[i]);
    if (!ours || !is_choice_tap(oracle_taps[i].name) ||
        ours->values.size() != oracle_taps[i].values.size())
      continue;
    const double depth = tap_depth(oracle_taps[i].name, spec.model.num_hidden_layers);
    const double bound = tolerance * std::sqrt(std::min(1.0, depth / work.depth));
    // The indexer's top-k has no groups and no correction.
    const bool router = is_experts_tap(oracle_taps[i].name);
    routing_diverged[i] =
        !routing_within(oracle_taps[i - 1], oracle_taps[i], *ours, reported_as(oracle_taps[i - 1]),
                        bound,
                        router ? correction_of(router_choice, oracle_taps[i].name) : nullptr,
                        router ? router_choice.groups : 1, router ? router_choice.groups_kept : 1,
                        row.near_ties);
    routing_ok = routing_ok && !routing_diverged[i];
  }
  for (size_t i = 0; i < oracle_taps.size(); ++i) {
    const TapRecord* ours = reported_as(oracle_taps[i]);
    if (!ours) continue;
    const double depth = tap_depth(oracle_taps[i].name, spec.model.num_hidden_layers);
    const double bound = tolerance * std::sqrt(std::min(1.0, depth / work.depth));
    const bool diverged = ours->values.size() != oracle_taps[i].values.size() ||
                          (is_choice_tap(oracle_taps[i].name)
                               ? routing_diverged[i]
                               : !within(compare(oracle_taps[i].values, ours->values), bound));
    if (diverged) {
      row.first_divergence = tap_label(oracle_taps[i]);
      break;
    }
  }
  if (row.first_divergence.empty() && !top1_ok) row.first_divergence = first_flip;
  if (spec.targets.pin_bits) row.bits = bits_digest(logits);
  row.ok = within(m, tolerance) && top1_ok && routing_ok && row.nondeterministic.empty();
}

}  // namespace

// Each choice tap follows the tap of the scores it chose by.
bool is_choice_tap(const std::string& name) {
  return is_experts_tap(name) || name.ends_with(".index_topk");
}

void judge_model_row(const CaseSpec& spec, const std::vector<SequenceOutput>& oracle,
                     const std::vector<TapRecord>& oracle_taps,
                     const RouterChoice& router_choice,
                     const std::vector<SequenceOutput>& outputs,
                     const std::vector<TapRecord>& taps, TargetRow& row) {
  judge_conditioned(row, [&](double bound, double cap, TargetRow& judged) {
    judge_model_row_by(spec, oracle, oracle_taps, router_choice, outputs, taps, bound, cap,
                       judged);
  });
}

CaseResult run_case(const CaseSpec& spec, const BackendFactory& backends) {
  CaseResult result;
  result.kind = spec.kind;
  for (const CaseProblem& p : spec.problems) {
    if (p.machine_dependent)
      result.unpinnable.push_back(p.where.empty() ? p.message : p.where + ": " + p.message);
    else
      result.problems.push_back(p);
  }
  result.pin_bits = spec.targets.pin_bits;
  result.checkpoint_label = spec.checkpoint_label;
  result.checkpoint_unread_keys = spec.checkpoint_unread_keys;
  if (!result.problems.empty() || !result.unpinnable.empty()) return result;
  try {
    if (spec.kind == CaseSpec::Kind::model) run_model_case(spec, backends, result);
    if (spec.kind == CaseSpec::Kind::kernel) run_kernel_case(spec, backends, result);
  } catch (const std::bad_alloc&) {
    // How much memory there is depends on the machine: never pin it in a golden.
    result.unpinnable.push_back("out of memory while running the case");
  } catch (const std::exception& e) {
    result.problems.push_back({"the runtime", 0, e.what()});
  }
  return result;
}

std::vector<double> flatten_logits(const std::vector<SequenceOutput>& outputs) {
  std::vector<double> all;
  for (const SequenceOutput& s : outputs)
    for (const auto& row : s.logits) all.insert(all.end(), row.begin(), row.end());
  return all;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

std::shared_ptr<const WeightSource> case_weights(const CaseSpec& spec) {
  if (spec.checkpoint.empty()) return owned_weights(synthetic_weights(spec.model));
  return std::make_shared<CheckpointWeights>(
      std::make_shared<const Checkpoint>(spec.checkpoint, spec.checkpoint_label),
      spec.model.model_type, spec.model.tie_word_embeddings, weight_shapes(spec.model));
}

}  // namespace pinmark
