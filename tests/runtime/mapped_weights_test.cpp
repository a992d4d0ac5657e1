// A model built from a checkpoint as it reads it (CheckpointWeights): tensors stored in the
// model's own type are read in place from the file's mapping, everything else is converted, and
// either way the model computes the same bits as from the checkpoint read whole into fp64.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/checkpoint.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/model.h"
#include "runtime/storing_backend.h"
#include "runtime/weight_source.h"
#include "runtime/weights.h"
#include "tests/runtime/model_fixture.h"
#include "tests/support/safetensors_writer.h"
#include "tests/support/temp_dir.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;

// The CPU backend, recording the address of every weight the model hands it (hold_matrix).
template <class T>
class HeldRecorder final : public StoringBackend<T> {
 public:
  HeldRecorder() : StoringBackend<T>(make_cpu_backend<T>()) {}
  void hold_matrix(const T* w, int k, int m, MatrixRole role) override {
    held.insert(w);
    StoringBackend<T>::hold_matrix(w, k, m, role);
  }
  std::set<const T*> held;

 private:
  void store(T*, int64_t, int) override {}
};

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  using Bits = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::bit_cast<Bits>(a[i]) != std::bit_cast<Bits>(b[i])) return false;
  return true;
}

// Synthetic weights written as a checkpoint of `dtype`, each value first rounded to it.
class MappedWeightsTest : public ::testing::Test {
 protected:
  test::TempDir tmp_;
  const ModelConfig config_ = test::small_llama(false);
  const std::vector<int> prompt_ = {3, 17, 5, 30, 1};

  std::string write(const std::string& dtype, size_t misalign = 0) {
    const fs::path dir = fs::path(tmp_.path()) / (dtype + std::to_string(misalign));
    fs::create_directory(dir);
    const DType storage = dtype == "F64" ? DType::f64 : dtype == "BF16" ? DType::bf16 : DType::f32;
    // (I8: the values truncated, for a checkpoint that must be refused.)
    std::vector<test::StoredTensor> tensors;
    for (const auto& [name, t] : rounded_weights(synthetic_weights(config_), storage))
      tensors.push_back({name, t.shape, t.data});
    test::write_safetensors_as((dir / "model.safetensors").string(), tensors, dtype, misalign);
    return dir.string();
  }

  std::shared_ptr<const Checkpoint> open(const std::string& dir) {
    return std::make_shared<const Checkpoint>(dir, "ckpt");
  }

  std::shared_ptr<const CheckpointWeights> source(const std::shared_ptr<const Checkpoint>& c) {
    return std::make_shared<const CheckpointWeights>(
        c, config_.model_type, config_.tie_word_embeddings, weight_shapes(config_));
  }

  // Every tensor's values in the mapping, where they can be read in place as `type`.
  std::set<const void*> in_place(const Checkpoint& c, DType type) {
    std::set<const void*> out;
    for (const std::string& name : c.names())
      if (const void* p = c.in_place(name, type)) out.insert(p);
    return out;
  }

  template <class T>
  std::vector<T> logits(Model<T>& model) {
    KVCache<T> cache(config_, 16);
    return model.forward(prompt_, cache).data;
  }

  // The same checkpoint read whole into fp64, the model's weights then its own copies.
  template <class T>
  std::vector<T> logits_read_whole(const Checkpoint& c) {
    const Weights w =
        c.load_model(config_.model_type, config_.tie_word_embeddings, weight_shapes(config_));
    HeldRecorder<T> backend;
    Model<T> model(config_, w, backend);
    return logits(model);
  }
};

TEST_F(MappedWeightsTest, AnFp32ModelReadsF32TensorsInPlace) {
  const auto checkpoint = open(write("F32"));
  const std::set<const void*> mapped = in_place(*checkpoint, DType::f32);
  ASSERT_EQ(mapped.size(), checkpoint->names().size());  // the writer aligns every tensor
  HeldRecorder<float> backend;
  Model<float> model(config_, *source(checkpoint), backend);
  EXPECT_TRUE(same_bits(logits(model), logits_read_whole<float>(*checkpoint)));
  // Announced as each is first used: 2 layers x 7 projections + the LM head, each the
  // checkpoint's own bytes.
  ASSERT_EQ(backend.held.size(), 15u);
  for (const float* w : backend.held) EXPECT_TRUE(mapped.count(w)) << "a weight was copied";
}

TEST_F(MappedWeightsTest, AnFp64ModelReadsF64TensorsInPlace) {
  const auto checkpoint = open(write("F64"));
  const std::set<const void*> mapped = in_place(*checkpoint, DType::f64);
  HeldRecorder<double> backend;
  Model<double> model(config_, *source(checkpoint), backend);
  EXPECT_TRUE(same_bits(logits(model), logits_read_whole<double>(*checkpoint)));
  ASSERT_EQ(backend.held.size(), 15u);
  for (const double* w : backend.held) EXPECT_TRUE(mapped.count(w)) << "a weight was copied";
  // An fp32 model of the same file converts: F64 is not its type.
  EXPECT_TRUE(in_place(*checkpoint, DType::f32).empty());
}

// Another type than the model's is converted into the model's own arrays, same bits.
TEST_F(MappedWeightsTest, OtherTypesAreConverted) {
  for (const std::string dtype : {"BF16", "F32"}) {
    const auto checkpoint = open(write(dtype));
    EXPECT_TRUE(in_place(*checkpoint, DType::f64).empty()) << dtype;
    HeldRecorder<double> backend;
    Model<double> model(config_, *source(checkpoint), backend);
    EXPECT_TRUE(same_bits(logits(model), logits_read_whole<double>(*checkpoint))) << dtype;
    ASSERT_EQ(backend.held.size(), 15u);
  }
  // An fp32 model of an F64 file: each value rounded once to fp32, as from the fp64 tensor.
  const auto checkpoint = open(write("F64"));
  HeldRecorder<float> backend;
  Model<float> model(config_, *source(checkpoint), backend);
  EXPECT_TRUE(same_bits(logits(model), logits_read_whole<float>(*checkpoint)));
}

// safetensors lets a tensor start at any byte: one that is not aligned for its type is copied,
// never read through a misaligned pointer.
TEST_F(MappedWeightsTest, ATensorThatIsNotAlignedIsCopied) {
  const auto checkpoint = open(write("F32", 1));
  EXPECT_TRUE(in_place(*checkpoint, DType::f32).empty());
  HeldRecorder<float> backend;
  Model<float> model(config_, *source(checkpoint), backend);
  EXPECT_TRUE(same_bits(logits(model), logits_read_whole<float>(*checkpoint)));
  ASSERT_EQ(backend.held.size(), 15u);
}

// The model's arrays keep the mapping: with every other owner of the checkpoint gone, its
// weights are still there to read.
TEST_F(MappedWeightsTest, TheModelKeepsTheMappingAlive) {
  const std::string dir = write("F32");
  const std::vector<float> expected = logits_read_whole<float>(*open(dir));
  HeldRecorder<float> backend;
  std::unique_ptr<Model<float>> model;
  {
    const auto checkpoint = open(dir);
    model = std::make_unique<Model<float>>(config_, *source(checkpoint), backend);
  }
  EXPECT_TRUE(same_bits(logits(*model), expected));
}

// Rounding can only pass in-place values on where it leaves them as they are.
TEST_F(MappedWeightsTest, RoundedWeightsPassOnOnlyWhatRoundingKeeps) {
  const auto weights = source(open(write("F32")));
  const std::string name = "model.layers.0.self_attn.q_proj.weight";
  ASSERT_NE(weights->in_place(name, DType::f32).data, nullptr);
  EXPECT_NE(RoundedWeights(*weights, DType::f64).in_place(name, DType::f32).data, nullptr);
  EXPECT_NE(RoundedWeights(*weights, DType::f32).in_place(name, DType::f32).data, nullptr);
  EXPECT_EQ(RoundedWeights(*weights, DType::f32).in_place(name, DType::f64).data, nullptr);
  EXPECT_EQ(RoundedWeights(*weights, DType::bf16).in_place(name, DType::f32).data, nullptr);
  EXPECT_EQ(RoundedWeights(*weights, DType::f16).in_place(name, DType::f32).data, nullptr);
}

// The checks of load_model, made when the source is built: a config that does not fit fails
// there, naming the tensor, before any model reads a value.
TEST_F(MappedWeightsTest, ACheckpointThatDoesNotFitFailsWhenOpened) {
  const auto checkpoint = open(write("F32"));
  ModelConfig wider = config_;
  wider.intermediate_size = 48;
  try {
    CheckpointWeights(checkpoint, wider.model_type, false, weight_shapes(wider));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "tensor 'model.layers.0.mlp.down_proj.weight' in ckpt/model.safetensors has shape "
              "[24, 40], expected [24, 48] (from config.json)");
  }
  // A dtype pinmark does not read is found there too, in name order, before any value is read.
  try {
    source(open(write("I8")));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "ckpt/model.safetensors: tensor 'lm_head.weight' has dtype I8, which pinmark "
              "does not read (it reads F64, F32, F16, BF16, and I64 and I32 as integers)");
  }
  const auto weights = source(checkpoint);
  EXPECT_FALSE(weights->contains("lm_head.bias"));
  try {
    weights->read("lm_head.bias");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "missing tensor 'lm_head.bias'");
  }
}

}  // namespace
}  // namespace pinmark
