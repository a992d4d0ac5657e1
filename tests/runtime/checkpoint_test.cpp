// Checkpoint directories written here: one model.safetensors, or shards with an index.
#include "runtime/checkpoint.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/expect_error.h"
#include "tests/support/safetensors_writer.h"
#include "tests/support/temp_dir.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;

using test::StoredTensor;
using test::TempDir;

// A tensor of random F32 values (exact in fp64, so they compare as they are).
StoredTensor random_spec(const std::string& name, Shape shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  StoredTensor s{name, shape, {}};
  for (int64_t i = 0; i < element_count(shape); ++i) s.values.push_back(u(rng));
  return s;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

void write_safetensors(const fs::path& path, const std::vector<StoredTensor>& specs) {
  test::write_f32_safetensors(path.string(), specs);
}

void write_index(const fs::path& dir, const std::vector<std::pair<std::string, std::string>>& map) {
  std::string text = "{\"metadata\": {\"total_size\": 1234}, \"weight_map\": {";
  for (size_t i = 0; i < map.size(); ++i)
    text += (i ? ", " : "") + ("\"" + map[i].first + "\": \"" + map[i].second + "\"");
  write_text(dir / "model.safetensors.index.json", text + "}}");
}

using test::expect_error;

const std::string kQ = "model.layers.0.self_attn.q_proj.weight";
const std::string kK = "model.layers.0.self_attn.k_proj.weight";
const std::string kNorm = "model.norm.weight";
const std::string kEmbed = "model.embed_tokens.weight";

class CheckpointTest : public ::testing::Test {
 protected:
  TempDir tmp_;
  const fs::path dir_ = fs::path(tmp_.path()) / "ckpt";
  const StoredTensor q_ = random_spec(kQ, {16, 16}, 1);
  const StoredTensor k_ = random_spec(kK, {8, 16}, 2);
  const StoredTensor norm_ = random_spec(kNorm, {16}, 3);
  const StoredTensor embed_ = random_spec(kEmbed, {10, 16}, 4);

  void SetUp() override { fs::create_directory(dir_); }
  std::string dir() const { return dir_.string(); }

  // Shard 1: q, norm; shard 2: k, embed.
  void write_sharded() {
    write_safetensors(dir_ / "model-00001-of-00002.safetensors", {q_, norm_});
    write_safetensors(dir_ / "model-00002-of-00002.safetensors", {k_, embed_});
    write_index(dir_, {{kQ, "model-00001-of-00002.safetensors"},
                       {kNorm, "model-00001-of-00002.safetensors"},
                       {kK, "model-00002-of-00002.safetensors"},
                       {kEmbed, "model-00002-of-00002.safetensors"}});
  }
};

TEST_F(CheckpointTest, SingleFile) {
  write_safetensors(dir_ / "model.safetensors", {q_, k_, norm_, embed_});
  const Checkpoint ckpt(dir());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{kEmbed, kK, kQ, kNorm}));
  EXPECT_TRUE(ckpt.contains(kK));
  EXPECT_FALSE(ckpt.contains("lm_head.weight"));
  EXPECT_EQ(ckpt.file_of(kNorm), (dir_ / "model.safetensors").string());

  const Weights w = ckpt.load({{kQ, {16, 16}}, {kNorm, {16}}});
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w.at(kQ).shape, (Shape{16, 16}));
  EXPECT_EQ(w.at(kQ).data, q_.values);
  EXPECT_EQ(w.at(kNorm).data, norm_.values);

  const Weights again = load_checkpoint(dir(), {{kK, {8, 16}}});
  EXPECT_EQ(again.at(kK).data, k_.values);
  EXPECT_EQ(checkpoint_tensor_names(dir()), ckpt.names());
}

TEST_F(CheckpointTest, ShardedWithIndex) {
  write_sharded();
  const Checkpoint ckpt(dir());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{kEmbed, kK, kQ, kNorm}));
  EXPECT_EQ(ckpt.file_of(kQ), (dir_ / "model-00001-of-00002.safetensors").string());
  EXPECT_EQ(ckpt.file_of(kEmbed), (dir_ / "model-00002-of-00002.safetensors").string());

  const Weights w = ckpt.load({{kQ, {16, 16}}, {kK, {8, 16}}, {kNorm, {16}}, {kEmbed, {10, 16}}});
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w.at(kQ).data, q_.values);
  EXPECT_EQ(w.at(kK).data, k_.values);
  EXPECT_EQ(w.at(kNorm).data, norm_.values);
  EXPECT_EQ(w.at(kEmbed).data, embed_.values);
  EXPECT_EQ(w.at(kEmbed).shape, (Shape{10, 16}));
}

TEST_F(CheckpointTest, SingleFileWinsOverAnIndex) {
  write_sharded();
  const StoredTensor other = random_spec(kQ, {16, 16}, 99);
  write_safetensors(dir_ / "model.safetensors", {other});
  const Checkpoint ckpt(dir());
  EXPECT_EQ(ckpt.names(), std::vector<std::string>{kQ});
  EXPECT_EQ(ckpt.read(kQ, {16, 16}).data, other.values);
}

TEST_F(CheckpointTest, WrongShape) {
  write_safetensors(dir_ / "model.safetensors", {random_spec(kQ, {8, 16}, 5)});
  expect_error([&] { load_checkpoint(dir(), {{kQ, {16, 16}}}); },
               {"tensor '" + kQ + "' in " + (dir_ / "model.safetensors").string() +
                " has shape [8, 16], expected [16, 16] (from config.json)"});
}

TEST_F(CheckpointTest, WrongShapeInAShardNamesTheShard) {
  write_sharded();
  expect_error([&] { load_checkpoint(dir(), {{kEmbed, {16, 10}}}); },
               {"tensor '" + kEmbed + "' in " +
                (dir_ / "model-00002-of-00002.safetensors").string() +
                " has shape [10, 16], expected [16, 10]"});
}

TEST_F(CheckpointTest, MissingTensorWithACloseName) {
  // A checkpoint saved from the inner model, without the "model." prefix.
  write_safetensors(dir_ / "model.safetensors",
                    {random_spec("layers.0.mlp.up_proj.weight", {4, 4}, 6), norm_});
  expect_error([&] { load_checkpoint(dir(), {{"model.layers.0.mlp.up_proj.weight", {4, 4}}}); },
               {"tensor 'model.layers.0.mlp.up_proj.weight' is not in the checkpoint " + dir() +
                " (did you mean 'layers.0.mlp.up_proj.weight'?)"});
}

TEST_F(CheckpointTest, MissingTensorSuggestsNoTensorTheModelReads) {
  write_safetensors(dir_ / "model.safetensors", {q_, norm_});
  // k_proj is one letter from q_proj, but q_proj is wanted too, so it is not the one meant.
  expect_error([&] { load_checkpoint(dir(), {{kQ, {16, 16}}, {kK, {8, 16}}}); },
               {"tensor '" + kK + "' is not in the checkpoint " + dir()}, {"did you mean"});
  expect_error([&] { load_checkpoint(dir(), {{"lm_head.weight", {10, 16}}}); },
               {"tensor 'lm_head.weight' is not in the checkpoint " + dir()}, {"did you mean"});
  // Without the wanted list, the nearest name is offered.
  expect_error([&] { Checkpoint(dir()).read(kK, {8, 16}); }, {"(did you mean '" + kQ + "'?)"});
}

TEST_F(CheckpointTest, NotACheckpointDirectory) {
  expect_error([&] { Checkpoint c(dir()); },
               {"no model.safetensors or model.safetensors.index.json in " + dir()});
  expect_error([&] { Checkpoint c((dir_ / "absent").string()); },
               {"no model.safetensors", (dir_ / "absent").string()});
}

TEST_F(CheckpointTest, MissingShard) {
  write_sharded();
  fs::remove(dir_ / "model-00002-of-00002.safetensors");
  expect_error([&] { Checkpoint c(dir()); },
               {(dir_ / "model.safetensors.index.json").string(),
                "shard 'model-00002-of-00002.safetensors'",
                (dir_ / "model-00002-of-00002.safetensors").string() + " does not exist"});
}

TEST_F(CheckpointTest, IndexMayNotLeaveTheDirectory) {
  // The outside files exist and are valid, so only the path check can stop them.
  write_safetensors(fs::path(tmp_.path()) / "outside.safetensors", {q_});
  fs::create_directory(dir_ / "sub");
  const std::string absolute = (fs::path(tmp_.path()) / "outside.safetensors").string();
  for (const std::string& shard :
       {std::string("../outside.safetensors"), absolute, std::string("sub/../../outside.safetensors"),
        std::string(".."), std::string("")}) {
    SCOPED_TRACE(shard);
    write_index(dir_, {{kQ, shard}});
    expect_error([&] { Checkpoint c(dir()); },
                 {(dir_ / "model.safetensors.index.json").string(),
                  "tensor '" + kQ + "' is in shard '" + shard +
                      "', which is not a file name inside the checkpoint directory"});
  }
}

TEST_F(CheckpointTest, IndexNotJson) {
  write_text(dir_ / "model.safetensors.index.json", "{\"weight_map\": {");
  expect_error([&] { Checkpoint c(dir()); },
               {(dir_ / "model.safetensors.index.json").string(), "not valid JSON"});
}

TEST_F(CheckpointTest, IndexWithoutWeightMap) {
  write_text(dir_ / "model.safetensors.index.json", "{\"metadata\": {}}");
  expect_error([&] { Checkpoint c(dir()); },
               {(dir_ / "model.safetensors.index.json").string(), "no \"weight_map\""});
}

TEST_F(CheckpointTest, IndexPutsATensorInTheWrongShard) {
  write_sharded();
  write_index(dir_, {{kQ, "model-00002-of-00002.safetensors"}});
  expect_error([&] { Checkpoint c(dir()); },
               {"puts tensor '" + kQ + "' in " + (dir_ / "model-00002-of-00002.safetensors").string() +
                ", which has no such tensor"});
}

TEST_F(CheckpointTest, BrokenShardIsNamed) {
  write_sharded();
  const fs::path shard = dir_ / "model-00002-of-00002.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 4);
  expect_error([&] { Checkpoint c(dir()); },
               {shard.string(), "tensor '" + kEmbed + "'", "truncated"});
}

}  // namespace
}  // namespace pinmark
