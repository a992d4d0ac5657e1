// One safetensors file, mapped read-only. The format is an 8-byte little-endian header length
// N, N bytes of JSON naming each tensor's dtype, shape and byte range (relative to the byte
// after the header), then the tensors' bytes, row-major and little-endian.
//
// The file is treated as untrusted: every number in the header is checked against the file
// and against the other tensors when it is opened, so that a truncated download or a broken
// writer is reported by name instead of read out of bounds. A tensor's bytes are converted
// straight from the mapping when it is read; nothing is copied wholesale.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/tensor.h"

namespace pinmark {

class SafetensorsFile {
 public:
  // Maps `path` and checks its header. Throws std::runtime_error naming the file (and the
  // tensor, where one is at fault) when the file is missing, not a regular file after following
  // links (a FIFO, a directory, /dev/zero), shorter than its header, or its header is not a
  // valid description of the bytes that follow. Messages name the file by `label` (e.g. a
  // repository-relative path) when it is given, by `path` otherwise.
  explicit SafetensorsFile(std::string path, std::string label = "");
  ~SafetensorsFile();

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // The name messages give the file.
  const std::string& label() const { return label_; }

  // Tensor names, sorted.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }

  // The safetensors dtype name as the header spells it ("F32", "BF16", "I64", ...). A tensor of
  // a dtype pinmark does not read is no error until it is read: checkpoints carry integer
  // buffers a model never asks for.
  const std::string& dtype(const std::string& name) const;
  const Shape& shape(const std::string& name) const;

  // The pinmark dtype the tensor is stored in, or nullopt for one read() refuses.
  std::optional<DType> storage_dtype(const std::string& name) const;

  // The `__metadata__` strings, empty when the header has none.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor's values in fp64. F64, F32, F16 and BF16 convert exactly, as do I64 and I32
  // integers up to 2^53 in magnitude (a larger one throws); any other dtype throws, naming the
  // tensor and its dtype.
  Tensor<double> read(const std::string& name) const;
  // read()'s values converted to T (double or float) into out[element_count(shape(name))],
  // without an fp64 copy of the tensor in between; throws as read() does.
  template <class T>
  void read_into(const std::string& name, T* out) const;

  // Throws as read() does for a dtype pinmark does not read; no value is read.
  void check_readable(const std::string& name) const;

  // The tensor's stored bytes in the mapping, little-endian, as many as its dtype and shape
  // take (checked when the file was opened); valid while this object lives. No alignment is
  // promised: safetensors lets a tensor start at any byte.
  const unsigned char* bytes(const std::string& name) const { return data_ + entry(name).begin; }

 private:
  struct Entry {
    std::string dtype;
    Shape shape;
    uint64_t begin = 0;  // from the start of the data, i.e. the byte after the header
    uint64_t end = 0;
  };

  const Entry& entry(const std::string& name) const;
  [[noreturn]] void fail(const std::string& what) const;
  void parse_header(uint64_t header_length);
  void unmap() noexcept;

  std::string path_;
  std::string label_;
  const unsigned char* map_ = nullptr;
  size_t size_ = 0;
  const unsigned char* data_ = nullptr;  // the byte after the header
  uint64_t data_size_ = 0;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace pinmark
