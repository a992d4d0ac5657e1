#include "driver/safetensors_writer.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace pinmark {

namespace {

// Little-endian bytes of `value`, whatever the host is.
template <class U>
void append_le(std::string& out, U value) {
  for (size_t i = 0; i < sizeof(U); ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

}  // namespace

void SafetensorsWriter::add(const std::string& name, const std::string& dtype, const Shape& shape,
                            size_t count, const unsigned char* data, size_t element_size) {
  if (name.empty() || name == "__metadata__")
    throw std::invalid_argument("a safetensors tensor may not be named '" + name + "'");
  for (const Entry& e : entries_)
    if (e.name == name) throw std::invalid_argument("tensor '" + name + "' added twice");
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("tensor '" + name + "' has a negative dimension");
  if (static_cast<int64_t>(count) != element_count(shape))
    throw std::invalid_argument("tensor '" + name + "' has " + std::to_string(count) +
                                " values, its shape " + shape_string(shape) + " needs " +
                                std::to_string(element_count(shape)));
  const uint64_t begin = data_.size();
  data_.append(reinterpret_cast<const char*>(data), count * element_size);
  entries_.push_back({name, dtype, shape});
  ranges_.emplace_back(begin, data_.size());
}

void SafetensorsWriter::add_f64(const std::string& name, const Shape& shape,
                                const std::vector<double>& values) {
  std::string bytes;
  bytes.reserve(values.size() * 8);
  for (double v : values) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    append_le(bytes, bits);
  }
  add(name, "F64", shape, values.size(), reinterpret_cast<const unsigned char*>(bytes.data()), 8);
}

void SafetensorsWriter::add_f32(const std::string& name, const Shape& shape,
                                const std::vector<float>& values) {
  std::string bytes;
  bytes.reserve(values.size() * 4);
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    append_le(bytes, bits);
  }
  add(name, "F32", shape, values.size(), reinterpret_cast<const unsigned char*>(bytes.data()), 4);
}

void SafetensorsWriter::add_i64(const std::string& name, const Shape& shape,
                                const std::vector<int64_t>& values) {
  std::string bytes;
  bytes.reserve(values.size() * 8);
  for (int64_t v : values) append_le(bytes, static_cast<uint64_t>(v));
  add(name, "I64", shape, values.size(), reinterpret_cast<const unsigned char*>(bytes.data()), 8);
}

std::string SafetensorsWriter::bytes() const {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  for (size_t i = 0; i < entries_.size(); ++i)
    header[entries_[i].name] = {{"dtype", entries_[i].dtype},
                                {"shape", entries_[i].shape},
                                {"data_offsets", {ranges_[i].first, ranges_[i].second}}};
  std::string text = header.dump();
  while (text.size() % 8) text += ' ';
  std::string out;
  out.reserve(8 + text.size() + data_.size());
  append_le(out, static_cast<uint64_t>(text.size()));
  out += text;
  out += data_;
  return out;
}

void SafetensorsWriter::write(const std::string& path) const {
  const std::string content = bytes();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (out) out.flush();
  if (!out) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
}

}  // namespace pinmark
