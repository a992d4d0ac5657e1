// Runs one case: the fp64 oracle, then each target against it, tap by tap.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "driver/case_spec.h"
#include "driver/hf_reference.h"
#include "runtime/backend.h"
#include "runtime/generate.h"
#include "runtime/target.h"
#include "runtime/tensor.h"
#include "runtime/weight_source.h"

namespace pinmark {

// A named intermediate tensor of one forward call, in fp64.
struct TapRecord {
  int sequence = 0;
  int call = 0;
  std::string name;
  Shape shape;
  std::vector<double> values;
};

// How a model's router turns its `router` tap (the probabilities) into the experts it chooses,
// where that is more than the top k: DeepSeek-V3 adds each layer's e_score_correction_bias to
// the probabilities and chooses within the `groups_kept` best of `groups` groups (a group
// scored by its two best corrected scores). Judging a target's experts needs the same scores.
struct RouterChoice {
  std::map<int, std::vector<double>> correction;  // by layer; empty for a plain top-k router
  int groups = 1;
  int groups_kept = 1;
};

// One row of the Numerics table: measured here, carried over from the golden (a target this
// machine cannot run, or another device class of one it can), or a target the case asks for
// that no machine has measured yet.
struct TargetRow {
  Target target;
  std::string label;  // the row's name: "cpu bf16", or "cuda sm90 bf16" keyed by device class
  bool ran = false;      // measured on this machine
  bool carried = false;  // copied from the golden; neither: not measured anywhere
  double rel_l2 = 0;
  double max_abs = 0;
  double kl = 0;        // mean over positions (model cases)
  int top1_agree = 0;   // positions whose argmax matches the oracle's
  int top1_total = 0;
  int near_ties = 0;    // disagreements within the tolerance's error (numerics.h, near_tie)
  double tolerance = 0;
  // Past the tolerance but within this bound, the row is ill-conditioned rather than FAIL
  // (numerics.h, conditioning_bound); 0 when the case sets the tolerance itself.
  double conditioning_bound = 0;
  bool ill_conditioned = false;  // judged so: ok is true, the verdict says ill-conditioned
  // The measured estimate of each position's row of logits (flatten_logits' order; empty when
  // not measured): a position that magnifies rounding more than the average gets the wider
  // near-tie bound its own estimate gives (docs/numerics.md, "One error model").
  std::vector<double> position_spread;
  std::vector<std::string> nondeterministic;  // "runs", "threads", "batch": what changed bits
  std::string first_divergence;               // the first tap past tolerance, empty when none
  std::string bits;                           // digest of the output bits, when pinned
  bool ok = false;

  // Provenance of GPU rows (empty for cpu rows, which every machine measures afresh).
  std::string device;                // measured: the device this machine ran it on
  std::string math_mode;             // how its matrix products were computed
  std::string fingerprint;           // what it measured (driver/fingerprint.h)
  std::vector<std::string> devices;  // carried: every device recorded as producing its numbers
  // An engine's target that its engine does not run for this case: why, as the engine says.
  std::string unsupported;

  // Carried rows only.
  std::vector<std::string> cells;  // the golden's cells, label first
  std::string stale;  // why the row no longer describes the case ("" while it does)
  std::string carried_failure;  // why the recorded row fails here ("" when it passes)
  // An engine's row carried from a golden for which no pinmark-engines.json names the engine
  // (a case file copied out of its repository): the code part of its fingerprint cannot be
  // checked, only the inputs part (add_unknown_engine_rows in driver/golden_rows.h).
  bool engine_unknown = false;
};

struct CaseResult {
  CaseSpec::Kind kind = CaseSpec::Kind::invalid;
  std::vector<CaseProblem> problems;  // non-empty: only Errors is rendered
  // Problems that depend on the machine or that no golden may accept (out of memory, NaN from
  // the oracle): the case fails on every run and its golden is left as it is.
  std::vector<std::string> unpinnable;
  bool pin_bits = false;

  // Model cases.
  std::vector<std::vector<int>> prompts;
  std::vector<SequenceOutput> oracle;
  std::vector<TapRecord> oracle_taps;  // every tap of every call, in the order they happened
  RouterChoice router_choice;          // for judging the targets' experts
  std::vector<TapRecord> dumps;  // the selected taps of the oracle's first call of sequence 0
  int layers = 0;                // decoder layers, and how many of them store keys and values
  int kv_layers_stored = 0;
  // MLA: values the KV cache holds per token over all layers (the latent and the rotated key),
  // and what keys and values expanded per head would take; 0 otherwise.
  int64_t kv_cache_latent = 0, kv_cache_expanded = 0;
  bool kv_cache_index_keys = false;  // DeepSeek-V3.2: the latent's share includes indexer keys

  // Kernel cases.
  Tensor<double> kernel_output;

  std::vector<TargetRow> numerics;  // one per target of the case, in its order

  // Checkpoint cases whose checkpoint carries Hugging Face's own logits.
  std::optional<ReferenceCheck> reference;
  std::string checkpoint_label;
  std::vector<std::string> checkpoint_unread_keys;  // CaseSpec's, for the rendered case
};

// Builds a target's backend; nullptr when it cannot run here. Tests substitute their own
// (deliberately broken) backends through this.
using BackendFactory = std::function<std::unique_ptr<Backend<float>>(const Target&)>;

CaseResult run_case(const CaseSpec& spec, const BackendFactory& backends = make_target_backend);

// The weights a model case runs on: its synthetic weights, or its checkpoint's tensors under
// the names and shapes of the synthetic set (weight_shapes), matched as transformers matches
// them and read as a model asks for each (CheckpointWeights). The checkpoint must hold exactly
// those, so a tensor pinmark would silently ignore (a bias, a norm) is an error rather than a
// wrong reference. Throws std::runtime_error naming the tensor and the file.
std::shared_ptr<const WeightSource> case_weights(const CaseSpec& spec);

// Judges a model case's target against the oracle and fills `row`: rel L2 and max abs over every
// logit, KL and top-1 per position (a flip between near-tied logits is no failure), the expert
// choices of every MoE layer, the first tap past its share of the tolerance, the bits when the
// case pins them, and the verdict. `outputs` holds a row of logits for each of the oracle's;
// `taps` may hold only some of the oracle's taps (an engine reports what it can), matched by
// sequence, call and name. A row that fails only by its numbers, within
// row.conditioning_bound when judged by it, is ill-conditioned (numerics.h). row.tolerance,
// row.conditioning_bound and row.nondeterministic must be set before.
void judge_model_row(const CaseSpec& spec, const std::vector<SequenceOutput>& oracle,
                     const std::vector<TapRecord>& oracle_taps,
                     const RouterChoice& router_choice,
                     const std::vector<SequenceOutput>& outputs,
                     const std::vector<TapRecord>& taps, TargetRow& row);

// Every logit of every sequence, in order, in one vector: what the Numerics metrics compare.
std::vector<double> flatten_logits(const std::vector<SequenceOutput>& outputs);

// Bitwise equality, so that a NaN produced the same way twice counts as the same.
bool same_bits(const std::vector<double>& a, const std::vector<double>& b);

// The N of a tap named "layers.N.<what>" (the layer it belongs to), or -1 for any other name.
int tap_layer(const std::string& name);

// Whether a tap reports a discrete choice, not values (model.h, RouteFn): an MoE router's
// experts ("layers.N.experts") or the keys DeepSeek Sparse Attention selects
// ("layers.N.index_topk"). A target is fed the oracle's choice and judged on it like top-1.
bool is_choice_tap(const std::string& name);

// Glob match with '*' and '?', for tap selection.
bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace pinmark
