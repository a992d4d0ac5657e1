#include "driver/engine_config.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>

#include "driver/case_runner.h"
#include "driver/fingerprint.h"
#include "driver/golden_io.h"
#include "driver/json_block.h"
#include "driver/plugin.h"

namespace pinmark {
namespace fs = std::filesystem;
// Ordered, so that an engine's targets keep the order the file gives them (their rows' order).
using nlohmann::ordered_json;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& where, const std::string& what) {
  throw std::runtime_error(path + (where.empty() ? "" : ": " + where) + ": " + what);
}

std::vector<std::string> string_list(const ordered_json& value, const std::string& path,
                                     const std::string& where, const std::string& example) {
  if (!value.is_array() || value.empty())
    fail(path, where, "must be a non-empty list of strings, e.g. " + example);
  std::vector<std::string> out;
  for (const ordered_json& item : value) {
    if (!item.is_string() || item.get<std::string>().empty())
      fail(path, where, "must be a non-empty list of non-empty strings, e.g. " + example +
                            "; got " + item.dump());
    out.push_back(item.get<std::string>());
  }
  return out;
}

EngineSpec read_engine(const std::string& name, const ordered_json& value, const std::string& path) {
  const std::string where = "engines." + name;
  if (!value.is_object())
    fail(path, where, "an engine is an object with command, cases and targets");
  EngineSpec engine;
  engine.name = name;
  for (const auto& [key, item] : value.items()) {
    const std::string at = where + "." + key;
    if (key == "command") {
      engine.command = string_list(
          item, path, at,
          "[\"python3\", \"../tools/engines/my_engine.py\"], run in this file's folder");
    } else if (key == "cases") {
      engine.cases = string_list(item, path, at, "[\"models/*.md\"]");
    } else if (key == "code") {
      engine.code = string_list(item, path, at, "[\"../tools/engines/my_engine.py\"]");
    } else if (key == "timeout_s") {
      if (!item.is_number() || !(item.get<double>() > 0) || item.get<double>() > 86400)
        fail(path, at, "must be a number of seconds in (0, 86400], got " + item.dump());
      engine.timeout_s = item.get<double>();
    } else if (key == "targets") {
      if (!item.is_object() || item.empty())
        fail(path, at,
             "must map each target name to its options, e.g. {\"myengine bf16\": {\"device\": "
             "\"cuda\"}}");
      for (const auto& [target_name, options] : item.items()) {
        const std::string problem = target_name_problem(target_name, "engine target", true);
        if (!problem.empty()) fail(path, at, problem);
        if (!options.is_object())
          fail(path, at + "." + target_name,
               "a target's options are an object passed to the engine, got " + options.dump());
        EngineTarget target;
        const size_t space = target_name.find(' ');
        target.target = {target_name.substr(0, space), target_name.substr(space + 1)};
        target.options = nlohmann::json::parse(options.dump());
        engine.targets.push_back(std::move(target));
      }
    } else {
      std::string message = "unknown key '" + key + "'";
      if (auto guess = did_you_mean(key, {"command", "cases", "code", "timeout_s", "targets"}))
        message += " (did you mean '" + *guess + "'?)";
      fail(path, where, message + "; an engine has command, cases, code, timeout_s and targets");
    }
  }
  if (engine.command.empty()) fail(path, where, "has no command");
  if (engine.targets.empty()) fail(path, where, "has no targets");
  return engine;
}

// The digest of an engine's `code`: each file's path relative to `folder` and its bytes, a
// folder's files taken recursively in path order, so that its rows go stale when the engine's
// own code changes (pinmark cannot see inside an engine otherwise).
std::string code_digest(const EngineSpec& engine, const std::string& folder,
                        const std::string& path) {
  if (engine.code.empty()) return "";
  const std::string where = "engines." + engine.name + ".code";
  Fnv1a hash;
  std::error_code error;
  // An absolute, normal path without a trailing separator, whether it exists or not.
  auto resolved = [&error](const fs::path& p) {
    fs::path q = fs::weakly_canonical(fs::absolute(p, error), error).lexically_normal();
    return q.has_filename() ? q : q.parent_path();
  };
  const fs::path home = resolved(folder);
  for (const std::string& entry : engine.code) {
    if (fs::path(entry).is_absolute())
      fail(path, where, "'" + entry + "' is absolute; paths are relative to " + folder);
    const fs::path full = fs::path(folder) / entry;
    // The case files' own folder (or one above it) would hash the goldens the engine's rows are
    // written into: every regeneration would make its own rows stale.
    const fs::path up = home.lexically_relative(resolved(full));
    if (!up.empty() && *up.begin() != "..")
      fail(path, where,
           "'" + entry + "' holds " + folder +
               ", the folder of the case files; name the engine's own files and folders");
    std::vector<fs::path> files;
    if (fs::is_regular_file(full, error)) {
      files.push_back(full);
    } else if (fs::is_directory(full, error)) {
      for (fs::recursive_directory_iterator it(full, error), end; !error && it != end;
           it.increment(error))
        if (it->is_regular_file(error)) files.push_back(it->path());
      if (error)
        fail(path, where, "cannot list '" + entry + "': " + error.message());
      if (files.empty()) fail(path, where, "'" + entry + "' is a folder with no files");
      std::sort(files.begin(), files.end());
    } else {
      fail(path, where,
           "'" + entry + "' is neither a file nor a folder (paths are relative to " + folder + ")");
    }
    for (const fs::path& file : files) {
      std::string bytes;
      try {
        bytes = read_text_file(file.string());
      } catch (const std::exception& e) {
        fail(path, where, e.what());
      }
      const std::string name = fs::relative(file, folder).generic_string();
      const uint64_t sizes[2] = {name.size(), bytes.size()};
      hash.add(sizes, sizeof sizes);
      hash.add(name);
      hash.add(bytes);
    }
  }
  return hash.hex(12);
}

// One glob segment per path segment, so that '*' stays within a folder.
bool path_glob_match(const std::string& pattern, const std::string& path) {
  auto split = [](const std::string& s) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t slash; (slash = s.find('/', start)) != std::string::npos; start = slash + 1)
      parts.push_back(s.substr(start, slash - start));
    parts.push_back(s.substr(start));
    return parts;
  };
  const std::vector<std::string> p = split(pattern), t = split(path);
  if (p.size() != t.size()) return false;
  for (size_t i = 0; i < p.size(); ++i)
    if (!glob_match(p[i], t[i])) return false;
  return true;
}

}  // namespace

EngineConfig parse_engine_config(const std::string& text, const std::string& path) {
  ordered_json value;
  try {
    value = ordered_json::parse(text);
  } catch (const ordered_json::exception& e) {
    fail(path, "", std::string("not valid JSON: ") + e.what());
  }
  if (!value.is_object() || !value.contains("engines"))
    fail(path, "", "must be an object {\"engines\": {NAME: {command, cases, targets}}}");
  for (const auto& [key, item] : value.items())
    if (key != "engines") fail(path, "", "unknown key '" + key + "'; the file holds \"engines\"");
  const ordered_json& engines = value["engines"];
  if (!engines.is_object())
    fail(path, "engines", "must map each engine's name to its command, cases and targets");
  EngineConfig config;
  config.path = path;
  config.folder = fs::path(path).parent_path().string();
  if (config.folder.empty()) config.folder = ".";
  for (const auto& [name, item] : engines.items()) {
    EngineSpec engine = read_engine(name, item, path);
    engine.code_digest = code_digest(engine, config.folder, path);
    for (const EngineTarget& t : engine.targets)
      if (auto [other, found] = find_engine_target(config, t.target.name()); other)
        fail(path, "engines." + name + ".targets",
             "target '" + t.target.name() + "' is named by engine '" + other->name + "' too");
    config.engines.push_back(std::move(engine));
  }
  return config;
}

std::shared_ptr<const EngineConfig> engine_config_for(const std::string& case_file) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const EngineConfig>> cache;
  std::error_code error;
  fs::path folder = fs::absolute(case_file, error).parent_path();
  if (error) return nullptr;
  for (;;) {
    const fs::path candidate = folder / kEngineConfigName;
    if (fs::exists(candidate, error)) {
      const std::string key = candidate.lexically_normal().string();
      std::lock_guard<std::mutex> lock(mutex);
      auto it = cache.find(key);
      if (it != cache.end()) return it->second;
      auto config = std::make_shared<const EngineConfig>(
          parse_engine_config(read_text_file(key), key));
      cache.emplace(key, config);
      return config;
    }
    if (!folder.has_parent_path() || folder.parent_path() == folder) return nullptr;
    folder = folder.parent_path();
  }
}

std::pair<const EngineSpec*, const EngineTarget*> find_engine_target(
    const EngineConfig& config, const std::string& target_name) {
  for (const EngineSpec& engine : config.engines)
    for (const EngineTarget& t : engine.targets)
      if (t.target.name() == target_name) return {&engine, &t};
  return {nullptr, nullptr};
}

bool engine_applies_to(const EngineConfig& config, const EngineSpec& engine,
                       const std::string& case_file) {
  std::error_code error;
  const fs::path file = fs::weakly_canonical(fs::absolute(case_file, error), error);
  const fs::path root = fs::weakly_canonical(fs::absolute(config.folder, error), error);
  const std::string relative = file.lexically_relative(root).generic_string();
  if (error || relative.empty() || relative.rfind("..", 0) == 0) return false;
  for (const std::string& glob : engine.cases)
    if (path_glob_match(glob, relative)) return true;
  return false;
}

}  // namespace pinmark
