#include "runtime/checkpoint.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cmath>
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

constexpr const char* kHead = "lm_head.weight";

std::string quoted_name(const std::string& name) { return "'" + name + "'"; }

// `name` against a pattern in which '#' stands for one or more digits.
bool matches(const std::string& name, const std::string& pattern) {
  size_t n = 0;
  for (size_t p = 0; p < pattern.size(); ++p) {
    if (pattern[p] != '#') {
      if (n >= name.size() || name[n] != pattern[p]) return false;
      ++n;
      continue;
    }
    const size_t start = n;
    while (n < name.size() && name[n] >= '0' && name[n] <= '9') ++n;
    if (n == start) return false;
  }
  return n == name.size();
}

bool matches_any(const std::string& name, const std::vector<std::string>& patterns) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return matches(name, p); });
}

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
      throw std::runtime_error(index_label + ": tensor " + quoted_name(name) +
                               " maps to " + file.dump() + ", not a shard file name");
    const std::string shard = file.get<std::string>();
    if (!is_plain_file_name(shard))
      throw std::runtime_error(index_label + ": tensor " + quoted_name(name) + " is in shard " +
                               quoted_name(shard) +
                               ", which is not a file name inside the checkpoint directory");
    auto it = shard_index.find(shard);
    if (it == shard_index.end()) {
      const std::string path = join(directory_, shard);
      const std::string shown = join(label_, shard);
      if (!present(path, shown))
        throw std::runtime_error(index_label + " puts tensor " + quoted_name(name) + " in shard " +
                                 quoted_name(shard) + ", but " + shown + " does not exist");
      shards_.emplace_back(path, shown);
      it = shard_index.emplace(shard, shards_.size() - 1).first;
    }
    if (!shards_[it->second].contains(name))
      throw std::runtime_error(index_label + " puts tensor " + quoted_name(name) + " in " +
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
  std::string message = "tensor " + quoted_name(name) + " is not in the checkpoint " + label_;
  if (const std::optional<std::string> close = closest_name(name, names(), wanted))
    message += " (did you mean " + quoted_name(*close) + "?)";
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
  return shards_[check_shape(name, expected, wanted)].read(name);
}

template <class T>
void Checkpoint::read_into(const std::string& name, const Shape& expected, T* out) const {
  shards_[check_shape(name, expected, {})].read_into(name, out);
}
template void Checkpoint::read_into<double>(const std::string&, const Shape&, double*) const;
template void Checkpoint::read_into<float>(const std::string&, const Shape&, float*) const;

size_t Checkpoint::check_shape(const std::string& name, const Shape& expected,
                               const std::set<std::string>& wanted) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end()) missing(name, wanted);
  const SafetensorsFile& file = shards_[it->second];
  // Checked before reading, so that a wrong config fails without converting a large tensor.
  if (file.shape(name) != expected)
    throw std::runtime_error("tensor " + quoted_name(name) + " in " + file.label() +
                             " has shape " + shape_string(file.shape(name)) + ", expected " +
                             shape_string(expected) + " (from config.json)");
  file.check_readable(name);
  return it->second;
}

Weights Checkpoint::load(const std::vector<std::pair<std::string, Shape>>& wanted) const {
  Weights weights;
  std::set<std::string> names;
  for (const auto& [name, shape] : wanted) names.insert(name);
  for (const auto& [name, shape] : wanted) weights.insert_or_assign(name, read(name, shape, names));
  return weights;
}

std::map<std::string, std::string> Checkpoint::model_names(
    const std::string& model_type, bool tie_word_embeddings,
    const std::vector<std::pair<std::string, Shape>>& wanted) const {
  const CheckpointNaming naming = checkpoint_naming(model_type);
  const std::string prefix = naming.base_model_prefix + ".";
  // transformers' rule: one name under the prefix and the checkpoint is the whole model's;
  // none and it is the base model's, every name of which is read with the prefix added.
  const bool whole_model = std::any_of(shard_of_.begin(), shard_of_.end(), [&](const auto& entry) {
    return entry.first.starts_with(prefix);
  });
  auto stored_name = [&](const std::string& model_name) {
    return !whole_model && model_name.starts_with(prefix) ? model_name.substr(prefix.size())
                                                          : model_name;
  };
  std::set<std::string> stored_wanted;
  for (const auto& [name, shape] : wanted) {
    if (!whole_model && !name.starts_with(prefix))
      throw std::runtime_error(
          "checkpoint " + label_ + " has no tensor under '" + prefix +
          "', so transformers reads it as the base model alone and does not load " +
          quoted_name(name) + " from it; pinmark's " + model_type + " model needs that tensor" +
          (name == kHead ? " unless config.json sets tie_word_embeddings" : ""));
    stored_wanted.insert(stored_name(name));
  }

  bool tied_head = false;
  for (const auto& [name, shard] : shard_of_) {
    if (stored_wanted.count(name)) continue;
    const std::string in_base_model =
        !whole_model ? name : name.starts_with(prefix) ? name.substr(prefix.size()) : "";
    if (!in_base_model.empty() && matches_any(in_base_model, naming.buffers)) continue;
    if (name == kHead && tie_word_embeddings) {
      tied_head = true;
      continue;
    }
    throw std::runtime_error("checkpoint " + label_ + " has tensor " + quoted_name(name) +
                             ", which pinmark's " + model_type + " model does not use");
  }

  // Every name, shape and dtype checked, in the order wanted, before any value is read, so that
  // a wrong config fails without converting a large tensor.
  std::map<std::string, std::string> names;
  for (const auto& [name, shape] : wanted) {
    const std::string stored = stored_name(name);
    check_shape(stored, shape, stored_wanted);
    names.insert_or_assign(name, stored);
  }
  if (!tied_head) return names;
  // transformers makes the head the embedding itself, so a stored copy is only redundant when
  // it holds the same numbers; any other head would be silently dropped.
  auto embedding = std::find_if(wanted.begin(), wanted.end(),
                                [&](const auto& w) { return w.first == naming.embedding; });
  if (embedding == wanted.end())
    throw std::runtime_error("checkpoint " + label_ + ": the " + model_type +
                             " model reads no " + quoted_name(naming.embedding));
  const Tensor<double> embed = read(stored_name(naming.embedding), embedding->second);
  const Tensor<double> head = read(kHead, embed.shape, stored_wanted);
  for (size_t i = 0; i < head.data.size(); ++i)
    if (!(head.data[i] == embed.data[i]) &&
        !(std::isnan(head.data[i]) && std::isnan(embed.data[i])))
      throw std::runtime_error(
          "checkpoint " + label_ + " stores " + quoted_name(kHead) + " apart from the embedding " +
          quoted_name(stored_name(naming.embedding)) + " and they differ (first at element " +
          std::to_string(i) + "), but config.json ties them (tie_word_embeddings true), so " +
          "transformers uses the embedding as the head: set tie_word_embeddings to false to "
          "use " + quoted_name(kHead) + ", or remove it from the checkpoint");
  return names;
}

Weights Checkpoint::load_model(const std::string& model_type, bool tie_word_embeddings,
                               const std::vector<std::pair<std::string, Shape>>& wanted) const {
  Weights weights;
  for (const auto& [name, stored] : model_names(model_type, tie_word_embeddings, wanted))
    weights.insert_or_assign(name, shards_[shard_of_.at(stored)].read(stored));
  return weights;
}

const void* Checkpoint::in_place(const std::string& name, DType type) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end()) return nullptr;
  const SafetensorsFile& file = shards_[it->second];
  if (type != DType::f64 && type != DType::f32) return nullptr;
  if (std::endian::native != std::endian::little || file.storage_dtype(name) != type)
    return nullptr;
  // safetensors aligns nothing: a tensor may start at any byte after the header.
  const unsigned char* bytes = file.bytes(name);
  const size_t alignment = type == DType::f64 ? alignof(double) : alignof(float);
  return reinterpret_cast<uintptr_t>(bytes) % alignment == 0 ? bytes : nullptr;
}

CheckpointWeights::CheckpointWeights(std::shared_ptr<const Checkpoint> checkpoint,
                                     const std::string& model_type, bool tie_word_embeddings,
                                     const std::vector<std::pair<std::string, Shape>>& wanted)
    : checkpoint_(std::move(checkpoint)),
      stored_(checkpoint_->model_names(model_type, tie_word_embeddings, wanted)) {
  for (const auto& [name, shape] : wanted) shapes_.insert_or_assign(name, shape);
}

const std::string& CheckpointWeights::stored(const std::string& name) const {
  auto it = stored_.find(name);
  if (it == stored_.end()) throw std::runtime_error("missing tensor '" + name + "'");
  return it->second;
}

Shape CheckpointWeights::shape(const std::string& name) const {
  stored(name);
  return shapes_.at(name);
}

Tensor<double> CheckpointWeights::read(const std::string& name) const {
  const std::string& in_checkpoint = stored(name);  // throws first for a name it lacks
  return checkpoint_->read(in_checkpoint, shapes_.at(name));
}

template <class T>
void CheckpointWeights::convert(const std::string& name, T* out) const {
  const std::string& in_checkpoint = stored(name);  // throws first for a name it lacks
  checkpoint_->read_into(in_checkpoint, shapes_.at(name), out);
}

void CheckpointWeights::read_into(const std::string& name, double* out) const {
  convert(name, out);
}

void CheckpointWeights::read_into(const std::string& name, float* out) const {
  convert(name, out);
}

InPlaceValues CheckpointWeights::in_place(const std::string& name, DType type) const {
  const void* data = checkpoint_->in_place(stored(name), type);
  if (!data) return {};
  return {data, checkpoint_};
}

CheckpointNaming checkpoint_naming(const std::string& model_type) {
  if (model_type == "gpt2")
    // GPT2Attention's causal mask and its fill value, saved by checkpoints written before
    // transformers made them non-persistent.
    return {"transformer", "transformer.wte.weight", {"h.#.attn.bias", "h.#.attn.masked_bias"}};
  // The rotary inverse frequencies: checkpoints converted before transformers made them
  // non-persistent store one per layer (the original Llama conversions) or one for the model;
  // they follow from the config, which is where pinmark and transformers take them from.
  return {"model",
          "model.embed_tokens.weight",
          {"layers.#.self_attn.rotary_emb.inv_freq", "rotary_emb.inv_freq"}};
}

Weights load_checkpoint(const std::string& directory,
                        const std::vector<std::pair<std::string, Shape>>& wanted) {
  return Checkpoint(directory).load(wanted);
}

std::vector<std::string> checkpoint_tensor_names(const std::string& directory) {
  return Checkpoint(directory).names();
}

}  // namespace pinmark
