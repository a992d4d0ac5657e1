// An F32 safetensors file written by the tests themselves, without the reader's help, so a
// fixture checkpoint can be made in a TempDir with exactly the names a test needs.
#pragma once

#include <bit>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace pinmark::test {

struct StoredTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<double> values;  // rounded to float32 when written
};

// `dtype` "F32", "F64", "BF16" (each value must then be exact in bf16: its float's low 16 bits
// zero) or "I8" (each value truncated to an int8: a dtype pinmark refuses to read). `misalign` spaces are added after the header's padding to a multiple of 8, so that
// with an odd count no tensor starts at an address aligned for its type (the format allows it).
inline void write_safetensors_as(const std::string& path, const std::vector<StoredTensor>& tensors,
                                 const std::string& dtype, size_t misalign = 0) {
  std::string header = "{", data;
  auto put = [&data](uint64_t bits, int bytes) {
    for (int i = 0; i < bytes; ++i) data.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
  };
  for (const StoredTensor& t : tensors) {
    if (header.size() > 1) header += ",";
    const size_t begin = data.size();
    for (double v : t.values) {
      const uint32_t bits = std::bit_cast<uint32_t>(static_cast<float>(v));
      if (dtype == "F64") {
        put(std::bit_cast<uint64_t>(v), 8);
      } else if (dtype == "I8") {
        put(static_cast<uint64_t>(static_cast<int8_t>(v)), 1);
      } else if (dtype == "BF16") {
        if (bits & 0xFFFF) throw std::invalid_argument(t.name + " holds a value bf16 cannot");
        put(bits >> 16, 2);
      } else {
        put(bits, 4);
      }
    }
    std::string shape = "[";
    for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "\"" + t.name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
              "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(data.size()) +
              "]}";
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  header += std::string(misalign, ' ');
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xFF));
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << out << header << data;
  if (!file) throw std::runtime_error("cannot write " + path);
}

inline void write_f32_safetensors(const std::string& path, const std::vector<StoredTensor>& tensors) {
  write_safetensors_as(path, tensors, "F32");
}

}  // namespace pinmark::test
