// Writing a safetensors file: an 8-byte little-endian header length N, N bytes of JSON naming
// each tensor's dtype, shape and byte range, then the tensors' bytes, row-major and
// little-endian. The header is padded with spaces to a multiple of 8 bytes, as the reference
// implementation pads it, so that every tensor starts aligned. runtime/safetensors.h reads it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace pinmark {

class SafetensorsWriter {
 public:
  struct Entry {
    std::string name;
    std::string dtype;  // "F64", "F32", "I64"
    Shape shape;
  };

  // Each throws std::invalid_argument when `name` was added before, is empty or is
  // "__metadata__", or when the values do not fill the shape.
  void add_f64(const std::string& name, const Shape& shape, const std::vector<double>& values);
  void add_f32(const std::string& name, const Shape& shape, const std::vector<float>& values);
  void add_i64(const std::string& name, const Shape& shape, const std::vector<int64_t>& values);

  // A `__metadata__` string (transformers expects {"format": "pt"} in a model's weights).
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  // The tensors in the order they were added.
  const std::vector<Entry>& entries() const { return entries_; }

  // The whole file.
  std::string bytes() const;

  // Writes bytes() to `path`. Throws std::runtime_error naming the path and the reason.
  void write(const std::string& path) const;

 private:
  void add(const std::string& name, const std::string& dtype, const Shape& shape, size_t count,
           const unsigned char* data, size_t element_size);

  std::vector<Entry> entries_;
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;  // byte range of each entry in data_
  std::string data_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace pinmark
