#include "runtime/weight_source.h"

#include <algorithm>
#include <stdexcept>
#include <type_traits>

namespace pinmark {

namespace {

const Tensor<double>& found(const Weights& weights, const std::string& name) {
  auto it = weights.find(name);
  if (it == weights.end()) throw std::runtime_error("missing tensor '" + name + "'");
  return it->second;
}

bool filled(const Tensor<double>& t) {
  return t.data.size() == static_cast<size_t>(element_count(t.shape));
}

void check_shape(const WeightSource& weights, const std::string& name, const Shape& shape) {
  const Shape stored = weights.shape(name);
  if (stored != shape)
    throw std::runtime_error("tensor '" + name + "' has shape " + shape_string(stored) +
                             ", expected " + shape_string(shape));
}

class OwnedWeightMap final : public WeightSource {
 public:
  explicit OwnedWeightMap(Weights weights) : weights_(std::move(weights)), view_(weights_) {}
  bool contains(const std::string& name) const override { return view_.contains(name); }
  Shape shape(const std::string& name) const override { return view_.shape(name); }
  Tensor<double> read(const std::string& name) const override { return view_.read(name); }
  const Tensor<double>* held_fp64(const std::string& name) const override {
    return view_.held_fp64(name);
  }

 private:
  Weights weights_;
  WeightMap view_;
};

template <class T>
void convert_into(const WeightSource& weights, const std::string& name, T* out) {
  if (const Tensor<double>* t = weights.held_fp64(name)) {
    std::copy(t->data.begin(), t->data.end(), out);
    return;
  }
  const Tensor<double> t = weights.read(name);
  std::copy(t.data.begin(), t.data.end(), out);
}

}  // namespace

void WeightSource::read_into(const std::string& name, double* out) const {
  convert_into(*this, name, out);
}

void WeightSource::read_into(const std::string& name, float* out) const {
  convert_into(*this, name, out);
}

Shape WeightMap::shape(const std::string& name) const { return found(weights_, name).shape; }

Tensor<double> WeightMap::read(const std::string& name) const {
  const Tensor<double>& t = found(weights_, name);
  // A map filled by hand may disagree with itself; a model must never index past the values.
  if (!filled(t))
    throw std::runtime_error("tensor '" + name + "' has " + std::to_string(t.data.size()) +
                             " values, its shape " + shape_string(t.shape) + " needs " +
                             std::to_string(element_count(t.shape)));
  return t;
}

const Tensor<double>* WeightMap::held_fp64(const std::string& name) const {
  auto it = weights_.find(name);
  return it != weights_.end() && filled(it->second) ? &it->second : nullptr;
}

std::shared_ptr<const WeightSource> owned_weights(Weights weights) {
  return std::make_shared<OwnedWeightMap>(std::move(weights));
}

const Tensor<double>* RoundedWeights::held_fp64(const std::string& name) const {
  const std::lock_guard<std::mutex> lock(mutex_);
  auto it = rounded_.find(name);
  if (it != rounded_.end()) return &it->second;
  const Tensor<double>* held = inner_.held_fp64(name);
  Tensor<double> t = held ? *held : inner_.read(name);
  if (storage_ != DType::f64)
    for (double& v : t.data) v = round_to(storage_, static_cast<float>(v));
  return &rounded_.emplace(name, std::move(t)).first->second;
}

InPlaceValues RoundedWeights::in_place(const std::string& name, DType type) const {
  if (storage_ == DType::f64 || (storage_ == DType::f32 && type == DType::f32))
    return inner_.in_place(name, type);
  return {};
}

Tensor<double> require(const WeightSource& weights, const std::string& name, const Shape& shape) {
  check_shape(weights, name, shape);
  return weights.read(name);
}

template <class T>
WeightArray<T> load_as(const WeightSource& weights, const std::string& name, const Shape& shape) {
  static_assert(std::is_same_v<T, double> || std::is_same_v<T, float>);
  check_shape(weights, name, shape);
  const DType type = std::is_same_v<T, double> ? DType::f64 : DType::f32;
  InPlaceValues held = weights.in_place(name, type);
  if (held.data)
    return WeightArray<T>(static_cast<const T*>(held.data),
                          static_cast<size_t>(element_count(shape)), std::move(held.owner));
  std::vector<T> values(static_cast<size_t>(element_count(shape)));
  weights.read_into(name, values.data());
  return values;
}
template WeightArray<double> load_as<double>(const WeightSource&, const std::string&, const Shape&);
template WeightArray<float> load_as<float>(const WeightSource&, const std::string&, const Shape&);

}  // namespace pinmark
