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

inline void write_f32_safetensors(const std::string& path, const std::vector<StoredTensor>& tensors) {
  std::string header = "{", data;
  for (const StoredTensor& t : tensors) {
    if (header.size() > 1) header += ",";
    const size_t begin = data.size();
    for (double v : t.values) {
      const uint32_t bits = std::bit_cast<uint32_t>(static_cast<float>(v));
      for (int i = 0; i < 4; ++i) data.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
    }
    std::string shape = "[";
    for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "\"" + t.name + "\":{\"dtype\":\"F32\",\"shape\":" + shape + "],\"data_offsets\":[" +
              std::to_string(begin) + "," + std::to_string(data.size()) + "]}";
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xFF));
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << out << header << data;
  if (!file) throw std::runtime_error("cannot write " + path);
}

}  // namespace pinmark::test
