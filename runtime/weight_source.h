// Where a model's weights come from, tensor by tensor: an fp64 Weights map (synthetic weights,
// or a checkpoint read whole), or a checkpoint read as the model asks for each tensor
// (CheckpointWeights, runtime/checkpoint.h). A model converts each tensor to its type as it is
// built; where a checkpoint stores a tensor in that very type, it reads the values in place
// from the file's mapping instead of copying them.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/dtype.h"
#include "runtime/tensor.h"
#include "runtime/weight_array.h"
#include "runtime/weights.h"

namespace pinmark {

// A tensor's values stored as the model's type, in memory that `owner` keeps alive.
struct InPlaceValues {
  const void* data = nullptr;
  std::shared_ptr<const void> owner;
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;

  virtual bool contains(const std::string& name) const = 0;
  // The tensor's shape. Throws std::runtime_error "missing tensor 'name'" when there is none.
  virtual Shape shape(const std::string& name) const = 0;
  // The tensor's values in fp64. Throws as shape() does, or naming the tensor when its stored
  // values cannot be read (a dtype pinmark does not read, values that do not fill the shape).
  virtual Tensor<double> read(const std::string& name) const = 0;
  // The tensor's values where they are already held as `type` (little-endian, aligned for
  // it), so that a model of that type can use them without a copy; data null otherwise. The
  // values are those read() gives, converted to `type` exactly (a signalling NaN's payload,
  // which a conversion would quiet, kept as stored). The owner is never null.
  virtual InPlaceValues in_place(const std::string& /*name*/, DType /*type*/) const { return {}; }
  // The tensor's fp64 values where the source already holds them, valid while it lives, so
  // that a reader converts them without a copy; null otherwise (read() them then).
  virtual const Tensor<double>* held_fp64(const std::string& /*name*/) const { return nullptr; }
  // read()'s values as T into out[element_count(shape(name))]; a source that converts from
  // its own storage does so without an fp64 copy in between. Throws as read() does.
  virtual void read_into(const std::string& name, double* out) const;
  virtual void read_into(const std::string& name, float* out) const;
};

// The tensors of a Weights map, which must outlive the source.
class WeightMap final : public WeightSource {
 public:
  explicit WeightMap(const Weights& weights) : weights_(weights) {}
  bool contains(const std::string& name) const override { return weights_.count(name) > 0; }
  Shape shape(const std::string& name) const override;
  Tensor<double> read(const std::string& name) const override;
  const Tensor<double>* held_fp64(const std::string& name) const override;

 private:
  const Weights& weights_;
};

// A Weights map the source owns.
std::shared_ptr<const WeightSource> owned_weights(Weights weights);

// The tensors of `inner` (which must outlive it) with every value rounded to `storage` (through
// fp32), as rounded_weights() rounds a map: what a checkpoint stored in that type holds. Values
// held in place are passed on where the rounding cannot change them: for fp64 storage, and for
// fp32 storage to a model of fp32. Each other tensor is rounded once, when it is first asked
// for, and kept while this lives (a case builds a target's model several times from one).
class RoundedWeights final : public WeightSource {
 public:
  RoundedWeights(const WeightSource& inner, DType storage) : inner_(inner), storage_(storage) {}
  bool contains(const std::string& name) const override { return inner_.contains(name); }
  Shape shape(const std::string& name) const override { return inner_.shape(name); }
  Tensor<double> read(const std::string& name) const override { return *held_fp64(name); }
  InPlaceValues in_place(const std::string& name, DType type) const override;
  const Tensor<double>* held_fp64(const std::string& name) const override;

 private:
  const WeightSource& inner_;
  DType storage_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, Tensor<double>> rounded_;
};

// The tensor `name` in fp64 after checking its shape: throws std::runtime_error naming the
// tensor and both shapes when it differs, or "missing tensor 'name'".
Tensor<double> require(const WeightSource& weights, const std::string& name, const Shape& shape);

// The tensor `name` with the expected shape (require's checks) as T (double or float): read in
// place when the source holds it as T, converted into an owned copy otherwise.
template <class T>
WeightArray<T> load_as(const WeightSource& weights, const std::string& name, const Shape& shape);

}  // namespace pinmark
