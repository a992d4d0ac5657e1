// A Hugging Face checkpoint directory: either one model.safetensors, or shards listed by
// model.safetensors.index.json ({"metadata": {...}, "weight_map": {"tensor": "shard file"}}).
// The single file wins when both are present, as in transformers.
//
// Every shard is opened (mapped and its header checked) once, when the checkpoint is opened;
// tensors are converted from the mappings on demand. The index may only name plain file names:
// a shard path that leaves the directory ("../x", "/abs/x", "sub/../../x") is an error, so a
// downloaded index can never make pinmark read a file outside the checkpoint.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "runtime/safetensors.h"
#include "runtime/tensor.h"
#include "runtime/weight_source.h"
#include "runtime/weights.h"

namespace pinmark {

class Checkpoint {
 public:
  // Throws std::runtime_error when the directory holds neither file or cannot be read, a
  // file is not a regular file after following links (a FIFO, a directory, /dev/zero), the
  // index is malformed or names a shard that is missing or outside the directory, a shard
  // fails its header check, or the index puts a tensor in a shard that does not hold it.
  // Messages name the directory and its files by `label` (the folder as a case wrote it);
  // without one, by the path relative to the repository (the nearest folder above holding
  // .git) that holds the directory, so that no message carries the checkout's absolute path.
  explicit Checkpoint(std::string directory, std::string label = "");

  const std::string& directory() const { return directory_; }
  const std::string& label() const { return label_; }

  // Every tensor name in the checkpoint, sorted: with the names a model reads, what is left
  // over is what it ignores.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return shard_of_.count(name) > 0; }

  // The file that holds `name`, as a path under directory().
  std::string file_of(const std::string& name) const;

  // The tensor `name`, which must have shape `expected` (the shape the model's config.json
  // implies). Throws naming the tensor, its file and both shapes on a mismatch, or naming the
  // tensor, the directory and the closest name the checkpoint has when it is missing.
  Tensor<double> read(const std::string& name, const Shape& expected) const;

  // read()'s values as T (double or float) into out[element_count(expected)], without an fp64
  // copy in between.
  template <class T>
  void read_into(const std::string& name, const Shape& expected, T* out) const;

  // read() for each (name, expected shape).
  Weights load(const std::vector<std::pair<std::string, Shape>>& wanted) const;

  // The tensors a `model_type` model reads, given by the names and shapes the model uses
  // (`wanted`: "transformer.wte.weight", "lm_head.weight", ...), matched to this checkpoint's
  // names as transformers' from_pretrained matches them (see CheckpointNaming): a checkpoint
  // with no name under the base-model prefix is read with that prefix added to every name;
  // the family's buffers are skipped; with `tie_word_embeddings`, a stored "lm_head.weight"
  // equal to the embedding is accepted. Throws, naming the tensor as the checkpoint stores it,
  // when the checkpoint holds a tensor the model does not use, when a wanted tensor is missing
  // or has another shape (as read()), when a tied head differs from the embedding, and when
  // an untied model's head is wanted from a checkpoint of the base model alone.
  Weights load_model(const std::string& model_type, bool tie_word_embeddings,
                     const std::vector<std::pair<std::string, Shape>>& wanted) const;

  // load_model's matching and its checks of names, shapes and dtypes (a tied head is read to
  // compare it with the embedding), without reading the other tensors: each wanted name -> the
  // name the checkpoint stores it under. An integer buffer past 2^53 is found when it is read.
  std::map<std::string, std::string> model_names(
      const std::string& model_type, bool tie_word_embeddings,
      const std::vector<std::pair<std::string, Shape>>& wanted) const;

  // The stored values of tensor `name` (as the checkpoint names it) in the mapping of its
  // file, when they are stored as `type` (F64 for fp64, F32 for fp32; no other type) at an
  // address aligned for it on a little-endian host; null otherwise. Valid while this lives.
  const void* in_place(const std::string& name, DType type) const;

 private:
  Tensor<double> read(const std::string& name, const Shape& expected,
                      const std::set<std::string>& wanted) const;
  // The index into shards_ of the file holding `name` after checking its shape; throws as
  // read() does.
  size_t check_shape(const std::string& name, const Shape& expected,
                     const std::set<std::string>& wanted) const;
  [[noreturn]] void missing(const std::string& name, const std::set<std::string>& wanted) const;

  std::string directory_;
  std::string label_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> shard_of_;  // tensor name -> index into shards_
};

// A checkpoint's tensors as a `model_type` model reads them: Checkpoint::load_model's matching
// and checks (Checkpoint::model_names, made when this is built, so a checkpoint that does not
// fit the config fails here), but each tensor converted only when the model asks for it,
// straight from the mapping into the model's array, and a tensor stored in the model's own type
// (F32 for an fp32 model, F64 for fp64) read in place, the model's arrays then keeping the
// mapping alive: this source makes no fp64 copy of the checkpoint. The files stay mapped while
// a model reads from them: one truncated or rewritten meanwhile is undefined (a SIGBUS or
// changed values), as for every reader of mapped weights.
class CheckpointWeights final : public WeightSource {
 public:
  // Throws as Checkpoint::load_model does.
  CheckpointWeights(std::shared_ptr<const Checkpoint> checkpoint, const std::string& model_type,
                    bool tie_word_embeddings,
                    const std::vector<std::pair<std::string, Shape>>& wanted);
  bool contains(const std::string& name) const override { return stored_.count(name) > 0; }
  Shape shape(const std::string& name) const override;
  Tensor<double> read(const std::string& name) const override;
  InPlaceValues in_place(const std::string& name, DType type) const override;
  void read_into(const std::string& name, double* out) const override;
  void read_into(const std::string& name, float* out) const override;

 private:
  const std::string& stored(const std::string& name) const;
  template <class T>
  void convert(const std::string& name, T* out) const;

  std::shared_ptr<const Checkpoint> checkpoint_;
  std::map<std::string, std::string> stored_;  // the model's name -> the checkpoint's
  std::map<std::string, Shape> shapes_;        // by the model's name
};

// How transformers matches a checkpoint's tensor names to one family's *ForCausalLM model.
struct CheckpointNaming {
  // The base model's attribute, transformers' base_model_prefix ("transformer" for gpt2,
  // "model" for the others). A checkpoint saved from the base model alone (as the Hub stores
  // openai-community/gpt2: "wte.weight", "h.0.attn.c_attn.weight") has no name under it.
  std::string base_model_prefix;
  // The input embedding, by the model's name: a tied output head is this tensor.
  std::string embedding;
  // Buffers, not parameters, that older checkpoints saved and transformers drops on load (the
  // model rebuilds them): names relative to the base model, '#' standing for a layer number.
  std::vector<std::string> buffers;
};

// The naming of `model_type`'s checkpoints; llama's for a family without its own.
CheckpointNaming checkpoint_naming(const std::string& model_type);

// Checkpoint(directory).load(wanted).
Weights load_checkpoint(const std::string& directory,
                        const std::vector<std::pair<std::string, Shape>>& wanted);

// Checkpoint(directory).names().
std::vector<std::string> checkpoint_tensor_names(const std::string& directory);

}  // namespace pinmark
