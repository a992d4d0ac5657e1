// External engines as targets: `pinmark-engines.json`, found by walking up from a case file's
// folder, names each engine's command and the targets it computes. Engines are configured once
// per repository, never in code; docs/engines.md is the exchange they speak.
//
//   {"engines": {
//     "transformers": {
//       "command": ["python3", "../tools/engines/transformers_engine.py"],
//       "cases": ["models/*.md"],      (files whose default targets gain this engine's)
//       "timeout_s": 600,              (per request; optional)
//       "targets": {"transformers-sdpa bf16": {"device": "cuda", "attn_implementation": "sdpa"}}
//     }}}
//
// A target is "<name> <precision>" as a plug-in target is (driver/plugin.h); its options are
// passed to the engine untouched.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/target.h"

namespace pinmark {

inline constexpr const char* kEngineConfigName = "pinmark-engines.json";

struct EngineTarget {
  Target target;
  nlohmann::json options;  // an object
};

struct EngineSpec {
  std::string name;
  std::vector<std::string> command;  // argv; run in the configuration file's folder
  std::vector<std::string> cases;    // globs over case files, relative to that folder
  std::vector<std::string> code;     // files and folders of the engine's own code, relative to it
  std::string code_digest;           // of their paths and contents; empty when `code` is
  double timeout_s = 600;            // seconds one request may take
  std::vector<EngineTarget> targets;
};

struct EngineConfig {
  std::string path;    // the file
  std::string folder;  // its folder: engines run there, and `cases` globs are relative to it
  std::vector<EngineSpec> engines;
};

// Parses the text of a configuration file `path`. Throws std::runtime_error starting with
// `path` and naming the key at fault: not JSON, not the shape above, an unknown key, an empty
// command, a malformed target name, a precision other than fp32/bf16/fp16/tf32, a built-in or
// registered plug-in backend's name, a target named by two engines, a `code` path that is
// neither a file nor a folder or cannot be read.
EngineConfig parse_engine_config(const std::string& text, const std::string& path);

// The configuration that governs `case_file`: the nearest pinmark-engines.json in its folder
// or a folder above; nullptr when there is none. Read once per file per process. Throws as
// parse_engine_config does, and std::runtime_error naming the file when it cannot be read.
std::shared_ptr<const EngineConfig> engine_config_for(const std::string& case_file);

// The engine that computes `target_name` and that target, or {nullptr, nullptr}.
std::pair<const EngineSpec*, const EngineTarget*> find_engine_target(const EngineConfig& config,
                                                                     const std::string& target_name);

// Whether `case_file` is among `engine`'s cases (its path relative to config.folder matches
// one of the globs; '*' does not cross '/').
bool engine_applies_to(const EngineConfig& config, const EngineSpec& engine,
                       const std::string& case_file);

}  // namespace pinmark
