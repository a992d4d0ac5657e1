#include "driver/engine_run.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>

#include "driver/case_discovery.h"
#include "driver/engine_process.h"
#include "driver/env_flag.h"
#include "driver/export.h"
#include "driver/fence.h"
#include "driver/fingerprint.h"
#include "driver/golden_io.h"
#include "runtime/safetensors.h"

namespace pinmark {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// One process per engine per configuration file, for the life of this process; an engine
// that said it cannot run here is not asked again.
struct EngineSlot {
  std::unique_ptr<EngineProcess> process;
  std::string unavailable;
};

EngineSlot& slot_of(const EngineConfig& config, const EngineSpec& engine) {
  static std::map<std::string, EngineSlot> slots;
  return slots[config.path + "\n" + engine.name];
}

std::string make_request_folder() {
  const std::string templ = temp_name_template("pinmark-engine");
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  if (!mkdtemp(name.data()))
    throw std::runtime_error("cannot create a request folder " + templ + ": " + std::strerror(errno));
  return name.data();
}

// A matrix the engine wrote: [rows, cols] of any float dtype.
std::vector<double> read_rows(const SafetensorsFile& file, const std::string& name, int64_t rows,
                              int64_t cols) {
  if (!file.contains(name))
    throw std::runtime_error(file.label() + " has no tensor '" + name + "' [" +
                             std::to_string(rows) + ", " + std::to_string(cols) + "]");
  const Shape want = {rows, cols};
  if (file.shape(name) != want)
    throw std::runtime_error(file.label() + ": '" + name + "' has shape " +
                             shape_string(file.shape(name)) + ", expected " + shape_string(want));
  return file.read(name).data;
}

std::vector<std::vector<double>> split_rows(const std::vector<double>& values, int64_t cols) {
  std::vector<std::vector<double>> rows;
  for (size_t at = 0; at < values.size(); at += static_cast<size_t>(cols))
    rows.emplace_back(values.begin() + static_cast<std::ptrdiff_t>(at),
                      values.begin() + static_cast<std::ptrdiff_t>(at + cols));
  return rows;
}

struct EngineOutputs {
  std::vector<SequenceOutput> outputs, repeat;
  std::vector<TapRecord> taps;
  std::map<std::string, std::string> metadata;
};

// Reads and checks one target's output file against what the oracle computed: every logit
// row, a repeat of each, and taps that exist in the oracle with the oracle's shapes; any other
// tensor is an error, so that a misspelt tap is never silently left out.
EngineOutputs read_outputs(const std::string& file_path, const std::string& label,
                           const CaseSpec& spec, const CaseResult& result) {
  const SafetensorsFile file(file_path, label);
  EngineOutputs got;
  got.metadata = file.metadata();
  std::map<std::string, bool> expected;
  const int64_t vocab = spec.model.vocab_size;
  for (const char* run : {"", "repeat."}) {
    std::vector<SequenceOutput>& into = *run ? got.repeat : got.outputs;
    for (size_t s = 0; s < result.oracle.size(); ++s) {
      const std::string prefix = std::string(run) + "sequence." + std::to_string(s) + ".";
      const int64_t prompt = static_cast<int64_t>(result.prompts[s].size());
      const int64_t steps = static_cast<int64_t>(result.oracle[s].logits.size()) - prompt;
      SequenceOutput out;
      out.logits = split_rows(read_rows(file, prefix + "logits", prompt, vocab), vocab);
      expected[prefix + "logits"] = true;
      if (steps > 0) {
        for (auto& row : split_rows(read_rows(file, prefix + "decode_logits", steps, vocab), vocab))
          out.logits.push_back(std::move(row));
        expected[prefix + "decode_logits"] = true;
      }
      into.push_back(std::move(out));
    }
  }
  for (const TapRecord& tap : result.oracle_taps) {
    if (tap.call != 0) continue;
    const std::string name = "sequence." + std::to_string(tap.sequence) + ".taps." + tap.name;
    if (!file.contains(name)) continue;
    expected[name] = true;
    if (file.shape(name) != tap.shape)
      throw std::runtime_error(label + ": tap '" + name + "' has shape " +
                               shape_string(file.shape(name)) + ", the oracle's is " +
                               shape_string(tap.shape));
    got.taps.push_back({tap.sequence, 0, tap.name, tap.shape, file.read(name).data});
  }
  for (const std::string& name : file.names())
    if (!expected.count(name))
      throw std::runtime_error(label + ": tensor '" + name +
                               "' is none of the outputs pinmark reads (sequence.S.logits, "
                               "sequence.S.decode_logits, their repeat., and sequence.S.taps.NAME "
                               "for a tap of the oracle's first forward call; docs/engines.md)");
  return got;
}

bool device_class_ok(const std::string& text) {
  for (char ch : text)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' && ch != '.')
      return false;
  return true;
}

std::string metadata_of(const EngineOutputs& got, const std::string& key) {
  auto it = got.metadata.find(key);
  return it == got.metadata.end() ? "" : one_line(it->second);
}

json request_json(const Case& c, const std::string& path, const CaseSpec& spec,
                  const CaseResult& result, const std::string& dir,
                  const std::vector<TargetRow*>& rows) {
  json request = {{"protocol", 1},
                  {"case", case_name(path, c.slug)},
                  {"model_type", spec.model.model_type},
                  {"config", dir + "/config.json"},
                  {"prefill_chunk", spec.inputs.prefill_chunk}};
  if (spec.checkpoint.empty())
    request["weights"] = dir + "/model.safetensors";
  else
    request["checkpoint"] = fs::absolute(spec.checkpoint).lexically_normal().string();
  json sequences = json::array();
  for (size_t s = 0; s < result.prompts.size(); ++s) {
    const std::vector<int>& generated = result.oracle[s].generated;
    std::vector<int> forced(generated.begin(),
                            generated.empty() ? generated.end() : generated.end() - 1);
    sequences.push_back({{"prompt", result.prompts[s]}, {"forced", forced}});
  }
  request["sequences"] = sequences;
  json targets = json::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    const EngineTarget* t = find_engine_target(*spec.targets.engines, rows[i]->target.name()).second;
    targets.push_back({{"name", t->target.name()},
                       {"precision", t->target.precision},
                       {"options", t->options},
                       {"output", dir + "/out/" + std::to_string(i) + ".safetensors"}});
  }
  request["targets"] = targets;
  return request;
}

}  // namespace

std::string engine_code_fingerprint(const EngineSpec& engine, const EngineTarget& target) {
  Fnv1a hash;
  hash.add(code_fingerprint());
  hash.add(json(engine.command).dump());
  hash.add(target.target.name());
  hash.add(target.options.dump());
  // Only when the configuration names the engine's code, so that adding the key is the one
  // change that moves an engine's rows.
  if (!engine.code_digest.empty()) hash.add(engine.code_digest);
  return hash.hex(12);
}

void run_engine_rows(const Case& c, const std::string& path, const CaseSpec& spec,
                     CaseResult& result) {
  if (result.kind != CaseSpec::Kind::model || !result.problems.empty() ||
      !result.unpinnable.empty() || !spec.targets.engines)
    return;
  bool off = false;
  try {
    off = env_flag("PINMARK_NO_ENGINES");
  } catch (const std::exception& e) {
    result.unpinnable.push_back(e.what());
    return;
  }
  if (off) return;  // every engine row carried from the golden
  const EngineConfig& config = *spec.targets.engines;
  for (const EngineSpec& engine : config.engines) {
    std::vector<TargetRow*> rows;
    for (TargetRow& row : result.numerics)
      if (find_engine_target(config, row.target.name()).first == &engine) rows.push_back(&row);
    if (rows.empty()) continue;
    const std::string who = "engine '" + engine.name + "' (" + command_text(engine.command) +
                            ", " + config.path + ")";
    EngineSlot& slot = slot_of(config, engine);
    if (!slot.unavailable.empty()) continue;
    std::string dir;
    try {
      if (!slot.process) slot.process = std::make_unique<EngineProcess>(engine.command, config.folder);
      dir = make_request_folder();
      export_case(path, c, dir, PINMARK_VERSION);
      fs::create_directory(dir + "/out");
      const json request = request_json(c, path, spec, result, dir, rows);
      write_file_atomically(dir + "/request.json", request.dump(2) + "\n");
      const json reply = slot.process->request({{"request", dir + "/request.json"}}, engine.timeout_s);
      if (reply.contains("unavailable")) {
        slot.unavailable = reply["unavailable"].is_string() ? reply["unavailable"].get<std::string>()
                                                            : reply["unavailable"].dump();
        std::cerr << "pinmark: " << who << " is not available here (" << one_line(slot.unavailable)
                  << "): its rows are carried from the goldens\n";
      } else if (reply.contains("error")) {
        throw std::runtime_error(reply["error"].is_string() ? reply["error"].get<std::string>()
                                                            : reply["error"].dump());
      } else {
        const json unsupported = reply.value("unsupported", json::object());
        for (size_t i = 0; i < rows.size(); ++i) {
          TargetRow& row = *rows[i];
          const std::string name = row.target.name();
          if (unsupported.is_object() && unsupported.contains(name)) {
            row.ran = true;
            row.unsupported = one_line(unsupported[name].is_string()
                                           ? unsupported[name].get<std::string>()
                                           : unsupported[name].dump());
            row.device = engine.name;
            row.ok = true;
            continue;
          }
          const std::string output = request["targets"][i]["output"];
          std::error_code missing;
          if (!fs::exists(output, missing))
            throw std::runtime_error("the engine replied done but wrote no output for '" + name +
                                     "' (" + output + ")");
          const EngineOutputs got =
              read_outputs(output, "the output of '" + name + "'", spec, result);
          const std::string device_class = metadata_of(got, "device_class");
          if (!device_class_ok(device_class))
            throw std::runtime_error("the output of '" + name + "': device_class '" + device_class +
                                     "' is not a word of letters, digits, '_', '-' or '.'");
          row.ran = true;
          row.label = row.target.backend + (device_class.empty() ? "" : " " + device_class) + " " +
                      row.target.precision;
          const std::string engine_version = metadata_of(got, "engine");
          const std::string device = metadata_of(got, "device");
          row.device = (engine_version.empty() ? engine.name : engine_version) +
                       (device.empty() ? "" : " on " + device);
          row.math_mode = metadata_of(got, "math_mode");
          if (got.outputs.size() != got.repeat.size() ||
              !same_bits(flatten_logits(got.outputs), flatten_logits(got.repeat))) row.nondeterministic.push_back("runs");
          judge_model_row(spec, result.oracle, result.oracle_taps, result.router_choice, got.outputs,
                          got.taps, row);
        }
      }
    } catch (const std::exception& e) {
      std::string message = who + ": " + e.what();
      if (slot.process) {
        const std::string tail = slot.process->stderr_tail();
        if (!tail.empty()) message += "; its stderr ended with:\n" + tail;
        if (slot.process->finished()) slot.process.reset();  // started again for the next case
      }
      result.unpinnable.push_back(message);
    }
    if (!dir.empty()) {
      std::error_code ignored;
      if (env_flag("PINMARK_KEEP_ENGINE_REQUESTS"))
        std::cerr << "pinmark: kept the request to " << who << " in " << dir << "\n";
      else
        fs::remove_all(dir, ignored);
    }
  }
}

}  // namespace pinmark
