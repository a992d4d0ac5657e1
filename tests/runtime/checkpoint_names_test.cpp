// Checkpoint::load_model: a checkpoint's tensor names matched to the model's as transformers'
// from_pretrained matches them: with or without the base-model prefix, the family's saved
// buffers skipped, a tied head stored beside the embedding accepted only when equal.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "runtime/checkpoint.h"
#include "tests/support/safetensors_writer.h"
#include "tests/support/temp_dir.h"

namespace pinmark {
namespace {

using test::StoredTensor;

std::vector<double> counting(size_t n, double from) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = from + 0.25 * static_cast<double>(i);
  return v;
}

const std::vector<std::pair<std::string, Shape>> kGpt2Wanted = {
    {"transformer.wte.weight", {4, 2}}, {"transformer.h.0.attn.c_attn.weight", {2, 6}}};

// Tensors named as the Hub's openai-community/gpt2 names them, with `prefix` before each.
std::vector<StoredTensor> gpt2_tensors(const std::string& prefix) {
  return {{prefix + "wte.weight", {4, 2}, counting(8, 1)},
          {prefix + "h.0.attn.c_attn.weight", {2, 6}, counting(12, -1)}};
}

class CheckpointNames : public testing::Test {
 protected:
  void write(const std::vector<StoredTensor>& tensors) {
    test::write_f32_safetensors(dir_.file("model.safetensors"), tensors);
  }
  Checkpoint checkpoint() const { return Checkpoint(dir_.path(), "ck"); }

  void expect_error(const std::function<void()>& f, const std::string& message) {
    try {
      f();
      ADD_FAILURE() << "no error; expected: " << message;
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), message);
    }
  }

  test::TempDir dir_;
};

TEST_F(CheckpointNames, HubNamesWithoutThePrefixLoadUnderTheModelsNames) {
  write(gpt2_tensors(""));
  const Weights w = checkpoint().load_model("gpt2", true, kGpt2Wanted);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w.at("transformer.wte.weight").data, counting(8, 1));
  EXPECT_EQ(w.at("transformer.h.0.attn.c_attn.weight").data, counting(12, -1));
}

TEST_F(CheckpointNames, PrefixedNamesLoadAsTheyAre) {
  write(gpt2_tensors("transformer."));
  const Weights w = checkpoint().load_model("gpt2", true, kGpt2Wanted);
  EXPECT_EQ(w.at("transformer.wte.weight").data, counting(8, 1));
}

TEST_F(CheckpointNames, OtherFamiliesUseTheModelPrefix) {
  write({{"embed_tokens.weight", {4, 2}, counting(8, 0)}});
  const Weights w = checkpoint().load_model("llama", true, {{"model.embed_tokens.weight", {4, 2}}});
  EXPECT_EQ(w.at("model.embed_tokens.weight").data, counting(8, 0));
}

TEST_F(CheckpointNames, Gpt2CausalMaskBuffersAreSkippedWithOrWithoutThePrefix) {
  for (const std::string prefix : {"", "transformer."}) {
    std::vector<StoredTensor> tensors = gpt2_tensors(prefix);
    tensors.push_back({prefix + "h.0.attn.bias", {1, 1, 2, 2}, {1, 0, 1, 1}});
    tensors.push_back({prefix + "h.0.attn.masked_bias", {}, {-1e4}});
    write(tensors);
    EXPECT_EQ(checkpoint().load_model("gpt2", true, kGpt2Wanted).size(), 2u) << prefix;
  }
}

TEST_F(CheckpointNames, RotaryInverseFrequencyBuffersAreSkippedWithOrWithoutThePrefix) {
  for (const std::string prefix : {"", "model."}) {
    write({{prefix + "embed_tokens.weight", {4, 2}, counting(8, 0)},
           {prefix + "layers.0.self_attn.rotary_emb.inv_freq", {2}, {1, 0.01}},
           {prefix + "layers.1.self_attn.rotary_emb.inv_freq", {2}, {1, 0.01}},
           {prefix + "rotary_emb.inv_freq", {2}, {1, 0.01}}});
    const Weights w =
        checkpoint().load_model("qwen2", true, {{"model.embed_tokens.weight", {4, 2}}});
    EXPECT_EQ(w.size(), 1u) << prefix;
  }
}

TEST_F(CheckpointNames, AnInverseFrequencyOutsideTheRotaryModuleIsStillUnused) {
  write({{"model.embed_tokens.weight", {4, 2}, counting(8, 0)},
         {"model.layers.0.self_attn.inv_freq", {2}, {1, 0.01}}});
  expect_error(
      [&] { checkpoint().load_model("llama", true, {{"model.embed_tokens.weight", {4, 2}}}); },
      "checkpoint ck has tensor 'model.layers.0.self_attn.inv_freq', which pinmark's llama "
      "model does not use");
}

TEST_F(CheckpointNames, ABufferNameOfAnotherFamilyIsStillUnused) {
  std::vector<StoredTensor> tensors = {{"model.embed_tokens.weight", {4, 2}, counting(8, 0)},
                                       {"model.h.0.attn.bias", {2}, {0, 0}}};
  write(tensors);
  expect_error([&] { checkpoint().load_model("llama", true, {{"model.embed_tokens.weight", {4, 2}}}); },
               "checkpoint ck has tensor 'model.h.0.attn.bias', which pinmark's llama model "
               "does not use");
}

TEST_F(CheckpointNames, AnUnusedTensorIsNamedAsTheCheckpointStoresIt) {
  std::vector<StoredTensor> tensors = gpt2_tensors("");
  tensors.push_back({"h.1.ln_1.weight", {2}, {1, 1}});
  write(tensors);
  expect_error([&] { checkpoint().load_model("gpt2", true, kGpt2Wanted); },
               "checkpoint ck has tensor 'h.1.ln_1.weight', which pinmark's gpt2 model does "
               "not use");
}

TEST_F(CheckpointNames, AMissingTensorIsNamedAsTheCheckpointWouldStoreIt) {
  write({gpt2_tensors("")[0]});
  expect_error([&] { checkpoint().load_model("gpt2", true, kGpt2Wanted); },
               "tensor 'h.0.attn.c_attn.weight' is not in the checkpoint ck");
}

TEST_F(CheckpointNames, ATiedHeadEqualToTheEmbeddingIsAccepted) {
  std::vector<StoredTensor> tensors = gpt2_tensors("transformer.");
  tensors.push_back({"lm_head.weight", {4, 2}, counting(8, 1)});
  write(tensors);
  const Weights w = checkpoint().load_model("gpt2", true, kGpt2Wanted);
  EXPECT_EQ(w.size(), 2u);
  EXPECT_FALSE(w.count("lm_head.weight"));
}

TEST_F(CheckpointNames, ATiedHeadThatDiffersFromTheEmbeddingIsAnError) {
  std::vector<double> head = counting(8, 1);
  head[5] += 0.5;
  std::vector<StoredTensor> tensors = gpt2_tensors("");
  tensors.push_back({"lm_head.weight", {4, 2}, head});
  write(tensors);
  expect_error([&] { checkpoint().load_model("gpt2", true, kGpt2Wanted); },
               "checkpoint ck stores 'lm_head.weight' apart from the embedding 'wte.weight' and "
               "they differ (first at element 5), but config.json ties them "
               "(tie_word_embeddings true), so transformers uses the embedding as the head: set "
               "tie_word_embeddings to false to use 'lm_head.weight', or remove it from the "
               "checkpoint");
}

TEST_F(CheckpointNames, ATiedHeadOfAnotherShapeIsAnError) {
  std::vector<StoredTensor> tensors = gpt2_tensors("transformer.");
  tensors.push_back({"lm_head.weight", {2, 4}, counting(8, 1)});
  write(tensors);
  expect_error([&] { checkpoint().load_model("gpt2", true, kGpt2Wanted); },
               "tensor 'lm_head.weight' in ck/model.safetensors has shape [2, 4], expected "
               "[4, 2] (from config.json)");
}

TEST_F(CheckpointNames, AnUntiedHeadIsReadFromTheWholeModelsCheckpoint) {
  std::vector<StoredTensor> tensors = gpt2_tensors("transformer.");
  tensors.push_back({"lm_head.weight", {4, 2}, counting(8, 7)});
  write(tensors);
  std::vector<std::pair<std::string, Shape>> wanted = kGpt2Wanted;
  wanted.push_back({"lm_head.weight", {4, 2}});
  const Weights w = checkpoint().load_model("gpt2", false, wanted);
  EXPECT_EQ(w.at("lm_head.weight").data, counting(8, 7));
}

TEST_F(CheckpointNames, AnUntiedHeadIsNotReadFromABaseModelCheckpoint) {
  // transformers adds the prefix to every name of such a checkpoint, its head's too.
  std::vector<StoredTensor> tensors = gpt2_tensors("");
  tensors.push_back({"lm_head.weight", {4, 2}, counting(8, 7)});
  write(tensors);
  std::vector<std::pair<std::string, Shape>> wanted = kGpt2Wanted;
  wanted.push_back({"lm_head.weight", {4, 2}});
  expect_error([&] { checkpoint().load_model("gpt2", false, wanted); },
               "checkpoint ck has no tensor under 'transformer.', so transformers reads it as "
               "the base model alone and does not load 'lm_head.weight' from it; pinmark's gpt2 "
               "model needs that tensor unless config.json sets tie_word_embeddings");
}

TEST(CheckpointNaming, NamesEachFamilysPrefixAndEmbedding) {
  EXPECT_EQ(checkpoint_naming("gpt2").base_model_prefix, "transformer");
  EXPECT_EQ(checkpoint_naming("gpt2").embedding, "transformer.wte.weight");
  for (const std::string type : {"llama", "mistral", "qwen2", "gemma2", "mixtral"}) {
    EXPECT_EQ(checkpoint_naming(type).base_model_prefix, "model") << type;
    EXPECT_EQ(checkpoint_naming(type).embedding, "model.embed_tokens.weight") << type;
  }
}

}  // namespace
}  // namespace pinmark
