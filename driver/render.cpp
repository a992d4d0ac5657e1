#include "driver/render.h"

#include <algorithm>
#include <cmath>

#include "driver/fence.h"
#include "driver/format.h"
#include "driver/golden_rows.h"
#include "driver/hf_config.h"
#include "driver/json_block.h"

namespace pinmark {
namespace {

// Vocabularies up to this size print whole logit rows; larger ones print the top entries.
constexpr int kFullRowVocab = 64;
constexpr int kTopK = 8;
constexpr int kValuesPerLine = 8;
constexpr int kDumpLeadingValues = 4;

// The fence outgrows any backtick run in the body, so rendered text cannot close it.
std::string fenced(const std::string& body) { return fenced_block(body, "text"); }

struct Digest {
  double mean = 0, rms = 0, min = 0, max = 0;
};

Digest digest(const std::vector<double>& v) {
  Digest d;
  if (v.empty()) return d;
  double sum = 0, sum2 = 0;
  d.min = d.max = v[0];
  for (double x : v) {
    sum += x;
    sum2 += x * x;
    d.min = std::min(d.min, x);
    d.max = std::max(d.max, x);
  }
  d.mean = sum / v.size();
  d.rms = std::sqrt(sum2 / v.size());
  return d;
}

std::string digest_line(const std::vector<double>& v) {
  Digest d = digest(v);
  return "mean " + format_value(d.mean) + "  rms " + format_value(d.rms) + "  min " +
         format_value(d.min) + "  max " + format_value(d.max);
}

std::string logits_row(const std::vector<double>& row) {
  std::string out;
  if (static_cast<int>(row.size()) <= kFullRowVocab) {
    for (size_t i = 0; i < row.size(); i += kValuesPerLine) {
      char index[32];
      std::snprintf(index, sizeof index, "[%2zu]", i);
      out += index;
      for (size_t j = i; j < std::min(row.size(), i + kValuesPerLine); ++j) {
        std::string value = format_value(row[j]);
        out += std::string(value.size() < 12 ? 12 - value.size() : 1, ' ') + value;
      }
      out += '\n';
    }
    return out;
  }
  std::vector<int> order(row.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
  out += "top " + std::to_string(kTopK) + ":";
  for (int i = 0; i < kTopK; ++i)
    out += " " + std::to_string(order[i]) + "=" + format_value(row[order[i]]);
  out += "\nall " + std::to_string(row.size()) + ": " + digest_line(row) + "\n";
  return out;
}

std::string render_logits(const CaseResult& r) {
  std::string body;
  for (size_t s = 0; s < r.oracle.size(); ++s) {
    const size_t last = r.prompts[s].size() - 1;
    body += "sequence " + std::to_string(s) + ", position " + std::to_string(last) + ":\n";
    body += logits_row(r.oracle[s].logits[last]);
  }
  std::string intro = "The fp64 oracle's logits at the last prompt position of each sequence.";
  if (r.kv_layers_stored < r.layers)
    intro += " The KV cache stores keys and values for " + std::to_string(r.kv_layers_stored) +
             " of the " + std::to_string(r.layers) + " layers; the others reuse them.";
  if (r.kv_cache_latent > 0)
    intro += " The KV cache holds " + std::to_string(r.kv_cache_latent) +
             " values per token over all layers (the latent and the rotated key" +
             (r.kv_cache_index_keys ? std::string(", and the indexer's key") : std::string()) +
             "); keys and "
             "values expanded per head would take " + std::to_string(r.kv_cache_expanded) + ".";
  return "### Logits\n\n" + intro + "\n\n" + fenced(body);
}

// The keys as inline code, each as JSON spells it (escapes kept), so that a key holding a
// newline or a fence cannot start a heading or a block of its own.
std::string key_list(const std::vector<std::string>& keys) {
  std::string list;
  for (const std::string& key : keys) {
    const std::string quoted =
        nlohmann::json(key).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    list += (list.empty() ? "" : ", ") + inline_code(quoted.substr(1, quoted.size() - 2));
  }
  return list;
}

// One line under Logits naming the config keys that pinmark reads for nothing, because
// transformers' modeling code for that model_type does not read them either: a reader sees
// what did not matter. For a checkpoint case they are the keys of its config.json. Empty when
// there are none.
std::string render_unread_config_keys(const Case& c, const CaseResult& r) {
  if (!r.checkpoint_label.empty()) {
    const std::string list = key_list(r.checkpoint_unread_keys);
    if (list.empty()) return "";
    return "Keys of " + inline_code(r.checkpoint_label + "/config.json") +
           " that change none of these numbers, ignored: " + list + ".";
  }
  for (const Section& s : c.sections) {
    if (s.name != "Config") continue;
    std::vector<CaseProblem> ignored_problems;
    const std::optional<JsonBlock> block = read_json_block(s, ignored_problems);
    if (!block) return "";
    const std::string list = key_list(unread_config_keys(block->value));
    if (list.empty()) return "";
    return "Config keys that change none of these numbers, ignored: " + list + ".";
  }
  return "";
}

std::string render_tokens(const CaseResult& r) {
  std::string body;
  for (size_t s = 0; s < r.oracle.size(); ++s) {
    body += "sequence " + std::to_string(s) + ":";
    for (int t : r.prompts[s]) body += " " + std::to_string(t);
    body += " |";
    for (int t : r.oracle[s].generated) body += " " + std::to_string(t);
    body += '\n';
  }
  return "### Tokens\n\nEach prompt, then `|`, then its greedy continuation.\n\n" + fenced(body);
}

std::string table_row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const std::string& c : cells) out += " " + c + " |";
  return out + "\n";
}

std::string render_dumps(const std::vector<TapRecord>& taps) {
  std::string out = table_row({"tap", "shape", "mean", "rms", "min", "max", "first values"});
  out += table_row({"---", "---", "---:", "---:", "---:", "---:", "---"});
  for (const TapRecord& tap : taps) {
    Digest d = digest(tap.values);
    std::vector<double> leading(
        tap.values.begin(),
        tap.values.begin() + std::min<size_t>(kDumpLeadingValues, tap.values.size()));
    out += table_row({"`" + tap.name + "`", shape_string(tap.shape), format_value(d.mean),
                      format_value(d.rms), format_value(d.min), format_value(d.max),
                      format_values(leading)});
  }
  out.pop_back();
  return "### Dumps\n\n" + out;
}

// A measured error: "≤ 2e-07", rounded up to its bucket; NaN and infinity print as such.
std::string error_cell(double value) {
  return std::isfinite(value) ? "≤ " + format_bucket(value) : format_value(value);
}

std::vector<std::string> measured_cells(const TargetRow& row, bool model, bool pin_bits) {
  std::vector<std::string> cells = {row.label, error_cell(row.rel_l2), error_cell(row.max_abs)};
  if (model) {
    cells.push_back(error_cell(row.kl));
    std::string top1 = std::to_string(row.top1_agree) + "/" + std::to_string(row.top1_total);
    if (row.near_ties) top1 += " (" + std::to_string(row.near_ties) + " near-tie)";
    cells.push_back(top1);
  }
  std::string reproducible = "yes";
  if (!row.nondeterministic.empty()) {
    reproducible = "NO:";
    for (const std::string& what : row.nondeterministic) reproducible += " " + what;
  }
  cells.push_back(reproducible);
  cells.push_back(format_tolerance(row.tolerance));
  cells.push_back(row.ill_conditioned ? kIllConditioned : row.ok ? "ok" : "FAIL");
  cells.push_back(row.first_divergence.empty() ? "—" : "`" + row.first_divergence + "`");
  if (pin_bits) cells.push_back("`" + row.bits + "`");
  return cells;
}

std::vector<std::string> unmeasured_cells(const TargetRow& row, bool model, bool pin_bits,
                                          const char* verdict = kNotMeasured) {
  std::vector<std::string> cells = {row.label, "—", "—"};
  if (model) cells.insert(cells.end(), {"—", "—"});
  cells.insert(cells.end(), {"—", format_tolerance(row.tolerance), verdict, "—"});
  if (pin_bits) cells.push_back("—");
  return cells;
}

// The devices a measured row's numbers were produced on: the golden's list when the golden
// holds the same row measured from the same fingerprint (with this device added when
// `record_device`), otherwise this device alone.
std::vector<std::string> measured_devices(const TargetRow& row,
                                          const std::vector<std::string>& cells,
                                          const std::vector<GoldenRow>& golden,
                                          bool record_device) {
  const GoldenRow* g = find_golden_row(golden, row.label);
  if (!g || g->cells != cells || g->fingerprint != row.fingerprint) return {row.device};
  std::vector<std::string> devices = g->devices;
  if (record_device && std::find(devices.begin(), devices.end(), row.device) == devices.end())
    devices.push_back(row.device);
  return devices;
}

std::string provenance_entry(const TargetRow& row, const std::vector<std::string>& devices) {
  std::string out = "- `" + row.label + "`";
  if (!row.stale.empty()) out += " (stale: " + row.stale + ")";
  out += ": fingerprint `" + (row.fingerprint.empty() ? std::string(kNoFingerprint) : row.fingerprint) +
         "`";
  // pinmark's cuda rows name how their matrix products ran; an engine says how it computed.
  if (!row.math_mode.empty())
    out += (row.target.backend == "cuda" || row.target.backend == "cuda-tp2" ? "; matmul: "
                                                                             : "; computed as: ") +
           row.math_mode;
  if (!row.unsupported.empty()) out += "; unsupported: " + row.unsupported;
  out += "; produced on:\n";
  for (const std::string& device : devices) out += "  - " + one_line(device) + "\n";
  return out;
}

std::string render_numerics(const Case& c, const CaseResult& r, bool record_device) {
  // Kernel cases have no next-token prediction, so no KL or top-1 column.
  const bool model = r.kind == CaseSpec::Kind::model;
  std::vector<std::string> header = {"target", "rel L2", "max abs"};
  std::vector<std::string> align = {"---", "---:", "---:"};
  if (model) {
    header.insert(header.end(), {"KL", "top-1"});
    align.insert(align.end(), {"---:", "---:"});
  }
  header.insert(header.end(), {"reproducible", "tolerance", "verdict", "first divergence"});
  align.insert(align.end(), {"---", "---:", "---", "---"});
  if (r.pin_bits) {
    header.push_back("bits");
    align.push_back("---");
  }
  const std::vector<GoldenRow> golden = read_golden_rows(c);
  std::string rows, provenance;
  for (const TargetRow& row : r.numerics) {
    if (row.carried) {
      rows += table_row(row.cells);
      if (!row.devices.empty() || !row.fingerprint.empty())
        provenance += provenance_entry(row, row.devices);
    } else if (!row.ran) {
      rows += table_row(unmeasured_cells(row, model, r.pin_bits));
    } else {
      const std::vector<std::string> cells =
          row.unsupported.empty() ? measured_cells(row, model, r.pin_bits)
                                  : unmeasured_cells(row, model, r.pin_bits, kUnsupported);
      rows += table_row(cells);
      if (!row.device.empty())
        provenance += provenance_entry(row, measured_devices(row, cells, golden, record_device));
    }
  }
  if (rows.empty()) return "";
  std::string out = "### Numerics\n\nEach target against the fp64 oracle over every logit (or the "
                    "kernel's output), errors rounded up to 1, 2 or 5 x 10^k; see "
                    "docs/numerics.md.\n\n" +
                    table_row(header) + table_row(align) + rows;
  if (!provenance.empty())
    out += "\nGPU and engine rows record what they measured (a fingerprint of the case's inputs "
           "and of the code that computed them) and every device that produced their numbers:\n\n" +
           provenance;
  out.pop_back();
  return out;
}

std::string render_reference(const ReferenceCheck& check, const std::string& label) {
  // The label and what reference.json says of itself are the user's text: as code spans, so
  // nothing in them can add Markdown structure.
  std::string out = "### Reference\n\nThe fp64 oracle against Hugging Face's logits for " +
                    inline_code(label) + " (`reference.json`: " + inline_code(check.generator) +
                    ", computed in " + inline_code(check.computation) +
                    "), every prompt position; bound " + format_tolerance(check.bound) + ", " +
                    check.bound_reason + ".\n\n";
  out += table_row({"sequence", "positions", "rel L2", "max abs", "greedy", "verdict"});
  out += table_row({"---", "---:", "---:", "---:", "---", "---"});
  for (const ReferenceRow& row : check.rows) {
    if (!row.found) {
      out += table_row({std::to_string(row.sequence), "—", "—", "—", "—",
                        "no reference for this prompt"});
      continue;
    }
    out += table_row({std::to_string(row.sequence), std::to_string(row.positions),
                      error_cell(row.rel_l2), error_cell(row.max_abs),
                      row.greedy, row.ok ? "ok" : "FAIL"});
  }
  out.pop_back();
  return out;
}

std::string render_errors(const std::vector<CaseProblem>& problems) {
  std::string body;
  // One message, one line: a message quoting a key cannot start a heading or a new entry.
  for (const CaseProblem& p : problems) body += one_line(problem_line(p)) + "\n";
  return "### Errors\n\n" + fenced(body);
}

}  // namespace

std::string problem_line(const CaseProblem& problem) {
  return problem.where.empty() ? problem.message : problem.where + ": " + problem.message;
}

std::string render_case(const Case& c, const CaseResult& result, const std::string& newline,
                        bool record_device) {
  std::vector<std::string> pieces = {c.head};
  for (const Section& s : c.sections)
    if (!is_output_section(s.name)) pieces.push_back(s.text);
  const size_t verbatim = pieces.size();
  if (!result.problems.empty()) {
    pieces.push_back(render_errors(result.problems));
  } else if (result.kind == CaseSpec::Kind::model) {
    pieces.push_back(render_logits(result));
    if (std::string note = render_unread_config_keys(c, result); !note.empty()) pieces.push_back(note);
    if (!result.oracle.empty() && !result.oracle[0].generated.empty())
      pieces.push_back(render_tokens(result));
    if (!result.dumps.empty()) pieces.push_back(render_dumps(result.dumps));
  } else if (result.kind == CaseSpec::Kind::kernel) {
    TapRecord output{0, 0, "output", result.kernel_output.shape, result.kernel_output.data};
    pieces.push_back(render_dumps({output}));
  }
  if (result.problems.empty()) {
    std::string numerics = render_numerics(c, result, record_device);
    if (!numerics.empty()) pieces.push_back(numerics);
    if (result.reference) pieces.push_back(render_reference(*result.reference, result.checkpoint_label));
  }
  if (newline != "\n") {
    for (size_t i = verbatim; i < pieces.size(); ++i) {
      std::string converted;
      for (char ch : pieces[i]) ch == '\n' ? converted += newline : converted += ch;
      pieces[i] = std::move(converted);
    }
  }
  std::string out;
  for (size_t i = 0; i < pieces.size(); ++i) out += (i ? newline + newline : "") + pieces[i];
  return out;
}

std::string assemble_file(const std::string& preamble, const std::vector<std::string>& cases,
                          const std::string& newline) {
  std::string out = preamble;
  for (const std::string& c : cases) out += (out.empty() ? "" : newline + newline) + c;
  return out + newline;
}

}  // namespace pinmark
