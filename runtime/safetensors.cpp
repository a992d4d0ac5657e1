#include "runtime/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

#include "runtime/json_limits.h"
#include "runtime/regular_file.h"

namespace pinmark {

namespace {

using nlohmann::json;

// Byte sizes of the safetensors dtypes, so that the length of a tensor pinmark will never read
// is still checked against its shape. Sub-byte types (F4, F6_*) are absent: their lengths are
// not whole bytes per element, and read() refuses them anyway.
std::optional<uint64_t> dtype_size(const std::string& dtype) {
  static const std::map<std::string, uint64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
      {"U16", 2},  {"I16", 2}, {"F16", 2}, {"BF16", 2},    {"U32", 4},     {"I32", 4},
      {"F32", 4},  {"U64", 8}, {"I64", 8}, {"F64", 8},     {"C64", 8},
  };
  auto it = sizes.find(dtype);
  if (it == sizes.end()) return std::nullopt;
  return it->second;
}

std::optional<DType> readable_dtype(const std::string& dtype) {
  if (dtype == "F64") return DType::f64;
  if (dtype == "F32") return DType::f32;
  if (dtype == "F16") return DType::f16;
  if (dtype == "BF16") return DType::bf16;
  return std::nullopt;
}

// Assembled byte by byte: the format is little-endian whatever the host is, and a tensor's
// offset need not be a multiple of its element size.
template <class U>
U load_le(const unsigned char* p) {
  U v = 0;
  for (size_t i = 0; i < sizeof(U); ++i) v |= static_cast<U>(static_cast<U>(p[i]) << (8 * i));
  return v;
}

std::string quoted(const std::string& name) { return "'" + name + "'"; }

}  // namespace

SafetensorsFile::SafetensorsFile(std::string path, std::string label)
    : path_(std::move(path)), label_(label.empty() ? path_ : std::move(label)) {
  const RegularFile file = open_regular_file(path_, label_);
  const int fd = file.fd;
  struct stat st {};
  st.st_size = static_cast<off_t>(file.size);
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    fail("the file is " + std::to_string(size_) +
         " bytes long, too short for the 8-byte header length that starts a safetensors file");
  }
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file's pages reachable on its own
  if (p == MAP_FAILED) {
    size_ = 0;
    fail(std::string("cannot map the file: ") + std::strerror(err));
  }
  map_ = static_cast<const unsigned char*>(p);
  try {
    parse_header(load_le<uint64_t>(map_));
  } catch (...) {
    unmap();  // the destructor does not run for an object whose constructor threw
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() { unmap(); }

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      label_(std::move(other.label_)),
      map_(std::exchange(other.map_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      data_(std::exchange(other.data_, nullptr)),
      data_size_(std::exchange(other.data_size_, 0)),
      entries_(std::move(other.entries_)),
      metadata_(std::move(other.metadata_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    label_ = std::move(other.label_);
    map_ = std::exchange(other.map_, nullptr);
    size_ = std::exchange(other.size_, 0);
    data_ = std::exchange(other.data_, nullptr);
    data_size_ = std::exchange(other.data_size_, 0);
    entries_ = std::move(other.entries_);
    metadata_ = std::move(other.metadata_);
  }
  return *this;
}

void SafetensorsFile::unmap() noexcept {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), size_);
  map_ = nullptr;
  data_ = nullptr;
  size_ = 0;
  data_size_ = 0;
}

void SafetensorsFile::fail(const std::string& what) const {
  throw std::runtime_error(label_ + ": " + what);
}

void SafetensorsFile::parse_header(uint64_t header_length) {
  const uint64_t after_length = size_ - 8;
  if (header_length > after_length)
    fail("the header length is " + std::to_string(header_length) + " bytes, but only " +
         std::to_string(after_length) +
         " bytes follow it (a truncated file, or not a safetensors file)");
  data_ = map_ + 8 + header_length;
  data_size_ = after_length - header_length;

  const char* text = reinterpret_cast<const char*>(map_ + 8);
  json header;
  if (auto bad = check_json_text(std::string_view(text, header_length)))
    fail("the header is not valid JSON: " + bad->message + " (at byte " +
         std::to_string(bad->offset) + " of the header)");
  try {
    header = json::parse(text, text + header_length);
  } catch (const json::exception& e) {
    fail(std::string("the header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail("the header is JSON but not an object of tensors");

  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail("__metadata__ is not an object of strings");
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string()) fail("__metadata__ entry " + quoted(key) + " is not a string");
        metadata_[key] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor " + quoted(name);
    if (!value.is_object()) fail(where + " is not described by an object");
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!value.contains(key)) fail(where + " has no " + key);

    Entry e;
    if (!value["dtype"].is_string()) fail(where + " has a dtype that is not a string");
    e.dtype = value["dtype"].get<std::string>();

    if (!value["shape"].is_array()) fail(where + " has a shape that is not an array");
    // Products are taken in uint64 with an overflow check, so a header cannot make a huge
    // shape wrap around to a small, plausible byte length.
    uint64_t elements = 1;
    bool overflow = false;
    for (const json& d : value["shape"]) {
      if (!d.is_number_unsigned() ||
          d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(where + " has shape " + value["shape"].dump() +
             ", whose dimensions are not all non-negative integers");
      e.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
      overflow = overflow || __builtin_mul_overflow(elements, d.get<uint64_t>(), &elements);
    }

    const json& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      fail(where + " has data_offsets " + offsets.dump() +
           ", not a pair of non-negative integers [begin, end]");
    e.begin = offsets[0].get<uint64_t>();
    e.end = offsets[1].get<uint64_t>();
    const std::string range = "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    if (e.begin > e.end) fail(where + " has data_offsets " + range + " that end before they begin");
    if (e.end > data_size_)
      fail(where + " has data_offsets " + range + ", past the end of the data (" +
           std::to_string(data_size_) + " bytes after the header): is the file truncated?");

    if (const std::optional<uint64_t> size = dtype_size(e.dtype)) {
      uint64_t bytes = 0;
      const bool too_big = overflow || __builtin_mul_overflow(elements, *size, &bytes);
      if (too_big || bytes != e.end - e.begin)
        fail(where + " has " + std::to_string(e.end - e.begin) + " bytes, but shape " +
             shape_string(e.shape) + " of " + e.dtype + " needs " +
             (too_big ? std::string("2^64 or more") : std::to_string(bytes)));
    }
    auto [it, inserted] = entries_.emplace(name, std::move(e));
    // An empty range shares no byte with anything, whatever offset it names.
    if (it->second.end > it->second.begin)
      ranges.push_back({it->second.begin, it->second.end, &it->first});
  }

  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      fail("tensors " + quoted(*ranges[i - 1].name) + " [" + std::to_string(ranges[i - 1].begin) +
           ", " + std::to_string(ranges[i - 1].end) + "] and " + quoted(*ranges[i].name) + " [" +
           std::to_string(ranges[i].begin) + ", " + std::to_string(ranges[i].end) +
           "] overlap");
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

const SafetensorsFile::Entry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail("has no tensor " + quoted(name));
  return it->second;
}

const std::string& SafetensorsFile::dtype(const std::string& name) const {
  return entry(name).dtype;
}

const Shape& SafetensorsFile::shape(const std::string& name) const { return entry(name).shape; }

std::optional<DType> SafetensorsFile::storage_dtype(const std::string& name) const {
  return readable_dtype(entry(name).dtype);
}

Tensor<double> SafetensorsFile::read(const std::string& name) const {
  Tensor<double> t(entry(name).shape);
  read_into(name, t.data.data());
  return t;
}

void SafetensorsFile::check_readable(const std::string& name) const {
  const std::string& dtype = entry(name).dtype;
  if (!readable_dtype(dtype) && dtype != "I64" && dtype != "I32")
    fail("tensor " + quoted(name) + " has dtype " + dtype +
         ", which pinmark does not read (it reads F64, F32, F16, BF16, and I64 and I32 as "
         "integers)");
}

template <class T>
void SafetensorsFile::read_into(const std::string& name, T* out) const {
  const Entry& e = entry(name);
  const std::optional<DType> dtype = readable_dtype(e.dtype);
  const size_t count = static_cast<size_t>(element_count(e.shape));
  const unsigned char* p = data_ + e.begin;
  // Integer buffers (DeepSeek-V4's hash routing table): exact in fp64 up to 2^53.
  if (!dtype && (e.dtype == "I64" || e.dtype == "I32")) {
    const bool wide = e.dtype == "I64";
    for (size_t i = 0; i < count; ++i) {
      const int64_t v = wide ? static_cast<int64_t>(load_le<uint64_t>(p + 8 * i))
                             : static_cast<int32_t>(load_le<uint32_t>(p + 4 * i));
      if (v > (int64_t{1} << 53) || v < -(int64_t{1} << 53))
        fail("tensor " + quoted(name) + " holds " + std::to_string(v) +
             ", an integer beyond the 2^53 that pinmark reads exactly");
      out[i] = static_cast<T>(static_cast<double>(v));
    }
    return;
  }
  check_readable(name);
  // The header check made the byte length equal count * element size. Each value goes through
  // fp64 (exact for all four types), so T = float rounds an F64 value once, as converting the
  // fp64 tensor would.
  const auto put = [out](size_t i, double v) { out[i] = static_cast<T>(v); };
  switch (*dtype) {
    case DType::f64:
      for (size_t i = 0; i < count; ++i)
        put(i, std::bit_cast<double>(load_le<uint64_t>(p + 8 * i)));
      break;
    case DType::f32:
      for (size_t i = 0; i < count; ++i) put(i, std::bit_cast<float>(load_le<uint32_t>(p + 4 * i)));
      break;
    case DType::f16:
      for (size_t i = 0; i < count; ++i) put(i, fp16_bits_to_float(load_le<uint16_t>(p + 2 * i)));
      break;
    case DType::bf16:
      for (size_t i = 0; i < count; ++i) put(i, bf16_bits_to_float(load_le<uint16_t>(p + 2 * i)));
      break;
  }
}
template void SafetensorsFile::read_into<double>(const std::string&, double*) const;
template void SafetensorsFile::read_into<float>(const std::string&, float*) const;

}  // namespace pinmark
