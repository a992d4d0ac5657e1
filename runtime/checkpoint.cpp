#include "runtime/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "runtime/json_limits.h"
#include "runtime/regular_file.h"

namespace pinmark {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::string quoted(const std::string& name) { return "'" + name + "'"; }

std::string join(const std::string& directory, const std::string& file) {
  return (fs::path(directory) / file).string();
}

// A shard must be a bare file name. Checked on the text rather than by resolving the path:
// resolution would follow symlinks, and the Hugging Face cache makes every file in a snapshot
// a symlink into its blob store, which is legitimate.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// A name close enough to be the one meant: a dropped "model." prefix or a typo. The bound grows
// with the name so that long Hugging Face names tolerate a changed component. Names the model
// reads anyway are skipped: for a missing k_proj, the q_proj next to it is no suggestion.
std::optional<std::string> closest_name(const std::string& name,
                                        const std::vector<std::string>& candidates,
                                        const std::set<std::string>& skip) {
  const size_t bound = std::max<size_t>(3, name.size() / 5);
  std::optional<std::string> best;
  size_t best_distance = bound + 1;
  for (const std::string& c : candidates) {
    if (skip.count(c)) continue;
    const size_t d = edit_distance(name, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

// `path` with the folders above the repository it is in left out; unchanged outside one.
std::string repository_relative(const std::string& path) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec).lexically_normal();
  if (ec) return path;
  for (fs::path dir = absolute.parent_path(); !dir.empty(); dir = dir.parent_path()) {
    if (fs::exists(dir / ".git", ec)) return absolute.lexically_relative(dir).generic_string();
    if (dir == dir.parent_path()) break;
  }
  return path;
}

json read_index(const std::string& path, const std::string& label) {
  const std::string text = read_regular_file(path, label, uint64_t{256} << 20);
  if (auto bad = check_json_text(text))
    throw std::runtime_error(label + ": not valid JSON: " + bad->message);
  json index;
  try {
    index = json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(label + ": not valid JSON: " + e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw std::runtime_error(label + ": has no \"weight_map\" object mapping tensor names to shard files");
  return index;
}

// Whether `path` exists, after following links; a folder that cannot be searched is an error
// naming the file, not a missing file.
bool present(const std::string& path, const std::string& label) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    throw std::runtime_error(label + ": cannot look for it: " + ec.message());
  return fs::exists(status);
}

}  // namespace

Checkpoint::Checkpoint(std::string directory, std::string label)
    : directory_(std::move(directory)),
      label_(label.empty() ? repository_relative(directory_) : std::move(label)) {
  const std::string single = join(directory_, kSingleFile);
  const std::string index_path = join(directory_, kIndexFile);
  const std::string index_label = join(label_, kIndexFile);
  if (present(single, join(label_, kSingleFile))) {
    shards_.emplace_back(single, join(label_, kSingleFile));
    for (const std::string& name : shards_.back().names()) shard_of_[name] = 0;
    return;
  }
  if (!present(index_path, index_label))
    throw std::runtime_error("no " + std::string(kSingleFile) + " or " + kIndexFile + " in " +
                             label_ + ": not a safetensors checkpoint directory");

  const json index = read_index(index_path, index_label);
  std::map<std::string, size_t> shard_index;  // file name -> index into shards_
  for (const auto& [name, file] : index["weight_map"].items()) {
    if (!file.is_string())
      throw std::runtime_error(index_label + ": tensor " + quoted(name) +
                               " maps to " + file.dump() + ", not a shard file name");
    const std::string shard = file.get<std::string>();
    if (!is_plain_file_name(shard))
      throw std::runtime_error(index_label + ": tensor " + quoted(name) + " is in shard " +
                               quoted(shard) +
                               ", which is not a file name inside the checkpoint directory");
    auto it = shard_index.find(shard);
    if (it == shard_index.end()) {
      const std::string path = join(directory_, shard);
      const std::string shown = join(label_, shard);
      if (!present(path, shown))
        throw std::runtime_error(index_label + " puts tensor " + quoted(name) + " in shard " +
                                 quoted(shard) + ", but " + shown + " does not exist");
      shards_.emplace_back(path, shown);
      it = shard_index.emplace(shard, shards_.size() - 1).first;
    }
    if (!shards_[it->second].contains(name))
      throw std::runtime_error(index_label + " puts tensor " + quoted(name) + " in " +
                               shards_[it->second].label() + ", which has no such tensor");
    shard_of_[name] = it->second;
  }
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(shard_of_.size());
  for (const auto& [name, shard] : shard_of_) out.push_back(name);
  return out;
}

void Checkpoint::missing(const std::string& name, const std::set<std::string>& wanted) const {
  std::string message = "tensor " + quoted(name) + " is not in the checkpoint " + label_;
  if (const std::optional<std::string> close = closest_name(name, names(), wanted))
    message += " (did you mean " + quoted(*close) + "?)";
  throw std::runtime_error(message);
}

std::string Checkpoint::file_of(const std::string& name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end()) missing(name, {});
  return shards_[it->second].path();
}

Tensor<double> Checkpoint::read(const std::string& name, const Shape& expected) const {
  return read(name, expected, {});
}

Tensor<double> Checkpoint::read(const std::string& name, const Shape& expected,
                                const std::set<std::string>& wanted) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end()) missing(name, wanted);
  const SafetensorsFile& file = shards_[it->second];
  const std::string& path = file.label();
  // Checked before reading, so that a wrong config fails without converting a large tensor.
  if (file.shape(name) != expected)
    throw std::runtime_error("tensor " + quoted(name) + " in " + path + " has shape " +
                             shape_string(file.shape(name)) + ", expected " +
                             shape_string(expected) + " (from config.json)");
  return file.read(name);
}

Weights Checkpoint::load(const std::vector<std::pair<std::string, Shape>>& wanted) const {
  Weights weights;
  std::set<std::string> names;
  for (const auto& [name, shape] : wanted) names.insert(name);
  for (const auto& [name, shape] : wanted) weights.insert_or_assign(name, read(name, shape, names));
  return weights;
}

Weights load_checkpoint(const std::string& directory,
                        const std::vector<std::pair<std::string, Shape>>& wanted) {
  return Checkpoint(directory).load(wanted);
}

std::vector<std::string> checkpoint_tensor_names(const std::string& directory) {
  return Checkpoint(directory).names();
}

}  // namespace pinmark
