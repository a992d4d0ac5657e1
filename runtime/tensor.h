// A dense row-major tensor: a shape and its values. Deliberately plain.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pinmark {

using Shape = std::vector<int64_t>;

inline int64_t element_count(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const Shape& shape);  // "[2, 4, 64]"

template <class T>
struct Tensor {
  Shape shape;
  std::vector<T> data;

  Tensor() = default;
  explicit Tensor(Shape s) : shape(std::move(s)), data(static_cast<size_t>(element_count(shape))) {}
  Tensor(Shape s, std::vector<T> values) : shape(std::move(s)), data(std::move(values)) {}
};

// Values converted to fp64, for comparison and printing.
template <class T>
std::vector<double> to_double(const std::vector<T>& values) {
  return std::vector<double>(values.begin(), values.end());
}

}  // namespace pinmark
