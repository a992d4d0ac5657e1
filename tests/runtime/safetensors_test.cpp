// The safetensors reader against files written here byte by byte, with expected values
// decoded by formulas written here rather than by runtime/dtype.h.
#include "runtime/safetensors.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/half_floats.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

// --- A minimal writer, independent of the reader ---------------------------------------------

template <class U>
void append_le(std::string& out, U value) {
  for (size_t i = 0; i < sizeof(U); ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

struct Spec {
  std::string name;
  std::string dtype;
  Shape shape;
  std::string bytes;
};

std::string shape_json(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// Header JSON and data for tensors laid out back to back, in the given order.
std::pair<std::string, std::string> layout(const std::vector<Spec>& specs,
                                           const std::string& metadata_json = "") {
  std::string header = "{", data;
  if (!metadata_json.empty()) header += "\"__metadata__\":" + metadata_json;
  for (const Spec& s : specs) {
    if (header.size() > 1) header += ",";
    header += "\"" + s.name + "\":{\"dtype\":\"" + s.dtype + "\",\"shape\":" + shape_json(s.shape) +
              ",\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + s.bytes.size()) + "]}";
    data += s.bytes;
  }
  return {header + "}", data};
}

void write_raw(const std::string& path, const std::string& header, const std::string& data,
               std::optional<uint64_t> declared_length = std::nullopt) {
  std::string out;
  append_le<uint64_t>(out, declared_length.value_or(header.size()));
  out += header;
  out += data;
  std::ofstream f(path, std::ios::binary);
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

void write_file(const std::string& path, const std::vector<Spec>& specs) {
  auto [header, data] = layout(specs);
  write_raw(path, header, data);
}

template <class U>
std::string bytes_of(const std::vector<U>& values) {
  std::string out;
  for (U v : values) append_le<U>(out, v);
  return out;
}

// --- Independent decoders ---------------------------------------------------------------------

using test::bf16_value;
using test::fp16_value;

// Bit for bit, so that -0 differs from +0; any NaN matches any NaN.
void expect_same(const std::vector<double>& actual, const std::vector<double>& expected,
                 const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(actual[i])) << what << " element " << i << ": got " << actual[i];
    } else {
      EXPECT_EQ(std::bit_cast<uint64_t>(actual[i]), std::bit_cast<uint64_t>(expected[i]))
          << what << " element " << i << ": got " << actual[i] << ", expected " << expected[i];
    }
  }
}

using test::expect_error;

template <class U>
std::vector<U> random_bits(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<U> v(n);
  for (U& x : v) x = static_cast<U>(rng());
  return v;
}

// --- Values ------------------------------------------------------------------------------------

TEST(Safetensors, EveryDtypeConvertsExactly) {
  TempDir dir;
  const auto f64 = random_bits<uint64_t>(3 * 5, 1);
  const auto f32 = random_bits<uint32_t>(4 * 7, 2);
  const auto f16 = random_bits<uint16_t>(2 * 3 * 4, 3);
  const auto b16 = random_bits<uint16_t>(5 * 9, 4);
  // BF16 first with an odd element count, so that every later tensor starts at an offset that
  // is not a multiple of its element size.
  const std::vector<Spec> specs = {
      {"model.b16", "BF16", {5, 9}, bytes_of(b16)},
      {"model.f64", "F64", {3, 5}, bytes_of(f64)},
      {"model.f32", "F32", {4, 7}, bytes_of(f32)},
      {"model.f16", "F16", {2, 3, 4}, bytes_of(f16)},
  };
  auto [header, data] = layout(specs, "{\"format\":\"pt\",\"note\":\"x\"}");
  header.append(7, ' ');  // writers pad the header with spaces
  const std::string path = dir.file("model.safetensors");
  write_raw(path, header, data);

  const SafetensorsFile file(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.names(),
            (std::vector<std::string>{"model.b16", "model.f16", "model.f32", "model.f64"}));
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x"}}));
  EXPECT_EQ(file.dtype("model.f16"), "F16");
  EXPECT_EQ(file.storage_dtype("model.b16"), DType::bf16);
  EXPECT_EQ(file.storage_dtype("model.f64"), DType::f64);

  std::vector<double> expected;
  for (uint64_t b : f64) expected.push_back(std::bit_cast<double>(b));
  Tensor<double> t = file.read("model.f64");
  EXPECT_EQ(t.shape, (Shape{3, 5}));
  expect_same(t.data, expected, "F64");

  expected.clear();
  for (uint32_t b : f32) expected.push_back(static_cast<double>(std::bit_cast<float>(b)));
  t = file.read("model.f32");
  EXPECT_EQ(t.shape, (Shape{4, 7}));
  expect_same(t.data, expected, "F32");

  expected.clear();
  for (uint16_t b : f16) expected.push_back(fp16_value(b));
  t = file.read("model.f16");
  EXPECT_EQ(t.shape, (Shape{2, 3, 4}));
  expect_same(t.data, expected, "F16");

  expected.clear();
  for (uint16_t b : b16) expected.push_back(bf16_value(b));
  t = file.read("model.b16");
  EXPECT_EQ(t.shape, (Shape{5, 9}));
  expect_same(t.data, expected, "BF16");
}

TEST(Safetensors, HalfPrecisionSpecialValues) {
  TempDir dir;
  // Values written out by hand: the smallest and largest subnormals, the largest finite
  // value, signed zeros and infinities, and one NaN.
  const std::vector<uint16_t> f16 = {0x0001, 0x03FF, 0x8001, 0x0400, 0x7BFF, 0xFBFF, 0x8000,
                                     0x0000, 0x7C00, 0xFC00, 0x3C00, 0x3555, 0x7E00};
  const std::vector<double> f16_expected = {
      5.9604644775390625e-08, 6.0975551605224609375e-05, -5.9604644775390625e-08,
      6.103515625e-05,        65504.0,                   -65504.0,
      -0.0,                   0.0,                       INFINITY,
      -INFINITY,              1.0,                       0.333251953125,
      NAN};
  const std::vector<uint16_t> b16 = {0x0001, 0x007F, 0x8001, 0x0080, 0x7F7F, 0x8000,
                                     0x7F80, 0xFF80, 0x3F80, 0xC040, 0x7FC0};
  const std::vector<double> b16_expected = {
      std::ldexp(1.0, -133), std::ldexp(127.0, -133), -std::ldexp(1.0, -133),
      std::ldexp(1.0, -126), 3.3895313892515355e+38,  -0.0,
      INFINITY,              -INFINITY,               1.0,
      -3.0,                  NAN};
  const std::vector<uint64_t> f64 = {std::bit_cast<uint64_t>(-0.0), 1, 0x7FEFFFFFFFFFFFFFull,
                                     std::bit_cast<uint64_t>(0.1)};
  const std::string path = dir.file("s.safetensors");
  write_file(path, {{"h", "F16", {13}, bytes_of(f16)},
                    {"b", "BF16", {11}, bytes_of(b16)},
                    {"d", "F64", {2, 2}, bytes_of(f64)}});
  const SafetensorsFile file(path);
  expect_same(file.read("h").data, f16_expected, "F16");
  expect_same(file.read("b").data, b16_expected, "BF16");
  expect_same(file.read("d").data, {-0.0, 4.9406564584124654e-324, 1.7976931348623157e+308, 0.1},
              "F64");
  EXPECT_TRUE(std::signbit(file.read("h").data[6]));
  EXPECT_TRUE(std::signbit(file.read("b").data[5]));
}

TEST(Safetensors, ScalarsAndEmptyTensors) {
  TempDir dir;
  const std::string path = dir.file("s.safetensors");
  write_file(path, {{"empty", "F32", {0, 4}, ""},
                    {"scalar", "F32", {}, bytes_of<uint32_t>({std::bit_cast<uint32_t>(-2.5f)})},
                    {"also_empty", "BF16", {3, 0}, ""}});
  const SafetensorsFile file(path);
  EXPECT_EQ(file.shape("empty"), (Shape{0, 4}));
  EXPECT_TRUE(file.read("empty").data.empty());
  EXPECT_TRUE(file.read("also_empty").data.empty());
  const Tensor<double> s = file.read("scalar");
  EXPECT_EQ(s.shape, Shape{});
  expect_same(s.data, {-2.5}, "scalar");
}

TEST(Safetensors, MovedFileStillReads) {
  TempDir dir;
  const auto bits = random_bits<uint32_t>(6, 9);
  const std::string path = dir.file("s.safetensors");
  write_file(path, {{"w", "F32", {2, 3}, bytes_of(bits)}});
  std::vector<double> expected;
  for (uint32_t b : bits) expected.push_back(std::bit_cast<float>(b));

  SafetensorsFile a(path);
  SafetensorsFile b(std::move(a));
  expect_same(b.read("w").data, expected, "move-constructed");
  SafetensorsFile c(path);
  c = std::move(b);
  expect_same(c.read("w").data, expected, "move-assigned");
  std::vector<SafetensorsFile> many;
  for (int i = 0; i < 20; ++i) many.emplace_back(path);  // reallocation moves them
  expect_same(many.front().read("w").data, expected, "after reallocation");
}

// --- Errors ------------------------------------------------------------------------------------

class SafetensorsError : public ::testing::Test {
 protected:
  TempDir dir_;
  const std::string path_ = dir_.file("bad.safetensors");
  const std::string good_ = bytes_of(random_bits<uint32_t>(8, 5));  // 32 bytes, F32 [2, 4]

  void open_fails(const std::vector<std::string>& parts) {
    std::vector<std::string> with_path = parts;
    with_path.push_back(path_);
    expect_error([&] { SafetensorsFile f(path_); }, with_path);
  }
};

TEST_F(SafetensorsError, MissingFile) { open_fails({"cannot open", "No such file"}); }

TEST_F(SafetensorsError, EmptyFile) {
  std::ofstream(path_, std::ios::binary).flush();
  open_fails({"0 bytes long", "too short"});
}

TEST_F(SafetensorsError, FileShorterThanTheHeaderLength) {
  std::ofstream(path_, std::ios::binary).write("\x05\x00\x00", 3);
  open_fails({"3 bytes long", "too short"});
}

TEST_F(SafetensorsError, HeaderLengthLargerThanTheFile) {
  auto [header, data] = layout({{"w", "F32", {2, 4}, good_}});
  write_raw(path_, header, data, header.size() + data.size() + 1);
  open_fails({"header length is " + std::to_string(header.size() + data.size() + 1),
              "only " + std::to_string(header.size() + data.size()) + " bytes follow"});
}

TEST_F(SafetensorsError, HeaderLengthNearTwoToThe64) {
  auto [header, data] = layout({{"w", "F32", {2, 4}, good_}});
  write_raw(path_, header, data, ~uint64_t{0} - 4);
  open_fails({"header length is " + std::to_string(~uint64_t{0} - 4)});
}

TEST_F(SafetensorsError, HeaderNotJson) {
  write_raw(path_, "{\"w\": {\"dtype\": \"F32\", ", good_);
  open_fails({"not valid JSON"});
}

TEST_F(SafetensorsError, HeaderNotAnObject) {
  write_raw(path_, "[1, 2, 3]", good_);
  open_fails({"not an object"});
}

TEST_F(SafetensorsError, EntryMissingAField) {
  for (const std::string missing : {"dtype", "shape", "data_offsets"}) {
    std::string entry;
    if (missing != "dtype") entry += "\"dtype\":\"F32\",";
    if (missing != "shape") entry += "\"shape\":[2,4],";
    if (missing != "data_offsets") entry += "\"data_offsets\":[0,32],";
    entry.pop_back();
    write_raw(path_, "{\"layer.w\":{" + entry + "}}", good_);
    SCOPED_TRACE(missing);
    open_fails({"tensor 'layer.w' has no " + missing});
  }
}

TEST_F(SafetensorsError, NegativeDimension) {
  write_raw(path_, R"({"w":{"dtype":"F32","shape":[-2,4],"data_offsets":[0,32]}})", good_);
  open_fails({"tensor 'w'", "[-2,4]", "non-negative"});
}

TEST_F(SafetensorsError, OffsetsNotAPair) {
  write_raw(path_, R"({"w":{"dtype":"F32","shape":[2,4],"data_offsets":[0]}})", good_);
  open_fails({"tensor 'w'", "not a pair"});
}

TEST_F(SafetensorsError, ReversedOffsets) {
  write_raw(path_, R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[32,0]}})", good_);
  open_fails({"tensor 'w' has data_offsets [32, 0] that end before they begin"});
}

TEST_F(SafetensorsError, OffsetsOutsideTheFile) {
  write_raw(path_, R"({"w":{"dtype":"F32","shape":[2,4],"data_offsets":[4096,4128]}})", good_);
  open_fails({"tensor 'w' has data_offsets [4096, 4128], past the end of the data (32 bytes"});
}

TEST_F(SafetensorsError, TruncatedFile) {
  write_file(path_, {{"a", "F32", {2, 4}, good_}, {"b", "BF16", {3}, bytes_of<uint16_t>({1, 2, 3})}});
  { SafetensorsFile whole(path_); }  // the untruncated file is fine
  fs::resize_file(path_, fs::file_size(path_) - 3);
  open_fails({"tensor 'b' has data_offsets [32, 38], past the end of the data (35 bytes",
              "truncated"});
}

TEST_F(SafetensorsError, LengthDoesNotMatchShape) {
  write_raw(path_, R"({"w":{"dtype":"F32","shape":[3,4],"data_offsets":[0,32]}})", good_);
  open_fails({"tensor 'w' has 32 bytes, but shape [3, 4] of F32 needs 48"});
}

TEST_F(SafetensorsError, LengthOfAnUnreadDtypeIsStillChecked) {
  write_raw(path_, R"({"ids":{"dtype":"I64","shape":[3],"data_offsets":[0,32]}})", good_);
  open_fails({"tensor 'ids' has 32 bytes, but shape [3] of I64 needs 24"});
}

TEST_F(SafetensorsError, ShapeWhoseByteCountOverflows) {
  write_raw(path_,
            R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", good_);
  open_fails({"tensor 'w'", "needs 2^64 or more"});
}

TEST_F(SafetensorsError, OverlappingTensors) {
  write_raw(path_,
            R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
            R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
            good_);
  open_fails({"tensors 'a' [0, 16] and 'b' [8, 24] overlap"});
}

TEST_F(SafetensorsError, UnsupportedDtypeIsRefusedWhenRead) {
  write_file(path_, {{"q", "I8", {2, 4}, std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8)},
                     {"w", "F32", {2, 4}, good_}});
  const SafetensorsFile file(path_);
  EXPECT_EQ(file.dtype("q"), "I8");
  EXPECT_EQ(file.storage_dtype("q"), std::nullopt);
  EXPECT_EQ(file.read("w").data.size(), 8u);  // the other tensors stay readable
  expect_error([&] { file.read("q"); },
               {path_, "tensor 'q' has dtype I8, which pinmark does not read (it reads F64, F32, "
                       "F16, BF16, and I64 and I32 as integers)"});
}

// Integer buffers (DeepSeek-V4's tid2eid) read as exact integers, negative ones too.
TEST_F(SafetensorsError, IntegerTensorsReadExactly) {
  std::string i64, i32;
  for (int64_t v : {int64_t{3}, int64_t{-2}, int64_t{1} << 40})
    for (int b = 0; b < 8; ++b) i64.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * b)) & 0xff));
  for (int32_t v : {7, -9})
    for (int b = 0; b < 4; ++b) i32.push_back(static_cast<char>((static_cast<uint32_t>(v) >> (8 * b)) & 0xff));
  write_file(path_, {{"a", "I64", {3}, i64}, {"b", "I32", {2}, i32}});
  const SafetensorsFile file(path_);
  EXPECT_EQ(file.read("a").data, (std::vector<double>{3, -2, 1099511627776.0}));
  EXPECT_EQ(file.read("b").data, (std::vector<double>{7, -9}));
}

TEST_F(SafetensorsError, IntegerBeyondTwoToTheFiftyThreeIsRefused) {
  std::string i64;
  const uint64_t big = (uint64_t{1} << 53) + 1;
  for (int b = 0; b < 8; ++b) i64.push_back(static_cast<char>((big >> (8 * b)) & 0xff));
  write_file(path_, {{"a", "I64", {1}, i64}});
  const SafetensorsFile file(path_);
  expect_error([&] { file.read("a"); },
               {path_, "tensor 'a' holds 9007199254740993, an integer beyond the 2^53"});
}

TEST_F(SafetensorsError, UnknownDtypeIsRefusedWhenRead) {
  write_raw(path_, R"({"w":{"dtype":"F4","shape":[7],"data_offsets":[0,4]}})", good_);
  const SafetensorsFile file(path_);
  expect_error([&] { file.read("w"); }, {path_, "tensor 'w' has dtype F4, which pinmark does not read"});
}

TEST_F(SafetensorsError, UnknownTensorName) {
  write_file(path_, {{"w", "F32", {2, 4}, good_}});
  const SafetensorsFile file(path_);
  expect_error([&] { file.read("v"); }, {path_, "has no tensor 'v'"});
  expect_error([&] { file.shape("v"); }, {path_, "has no tensor 'v'"});
}

TEST_F(SafetensorsError, MetadataMustBeStrings) {
  auto [header, data] = layout({{"w", "F32", {2, 4}, good_}}, R"({"step": 3})");
  write_raw(path_, header, data);
  open_fails({"__metadata__ entry 'step' is not a string"});
}

}  // namespace
}  // namespace pinmark
