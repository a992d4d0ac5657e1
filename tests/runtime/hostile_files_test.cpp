// Files and text a case points pinmark at that must be refused before they are read: special
// files, a checkpoint's index that is a folder or sits in a folder that cannot be searched,
// JSON deeper than the limit or with numbers past a double, and what a case costs.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "runtime/budget.h"
#include "runtime/checkpoint.h"
#include "runtime/json_limits.h"
#include "runtime/regular_file.h"
#include "runtime/safetensors.h"
#include "tests/support/temp_dir.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

// The message of the std::runtime_error that `f` throws; fails the test when it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

void write(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

TEST(RegularFile, AFifoIsRefusedWithoutBlocking) {
  TempDir tmp;
  ASSERT_EQ(::mkfifo(tmp.file("pipe").c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { read_regular_file(tmp.file("pipe"), "model.safetensors"); }),
            "model.safetensors: is a FIFO, not a regular file");
  EXPECT_EQ(file_kind(tmp.file("pipe")), "a FIFO");
}

TEST(RegularFile, ALinkToDevZeroIsRefused) {
  TempDir tmp;
  fs::create_symlink("/dev/zero", tmp.file("zero"));
  EXPECT_EQ(error_of([&] { open_regular_file(tmp.file("zero"), "reference.json"); }),
            "reference.json: is a character device, not a regular file");
}

TEST(RegularFile, AFolderAndAMissingFileAreNamed) {
  TempDir tmp;
  EXPECT_EQ(error_of([&] { read_regular_file(tmp.path(), "x.json"); }),
            "x.json: is a directory, not a regular file");
  EXPECT_EQ(error_of([&] { read_regular_file(tmp.file("none"), "none.json"); }),
            "none.json: cannot open: No such file or directory");
}

TEST(RegularFile, ALinkToARegularFileIsFollowedAndALargeFileRefused) {
  TempDir tmp;
  write(tmp.file("real"), "0123456789");
  fs::create_symlink(tmp.file("real"), tmp.file("link"));
  EXPECT_EQ(read_regular_file(tmp.file("link"), "link"), "0123456789");
  EXPECT_EQ(error_of([&] { read_regular_file(tmp.file("link"), "link", 4); }),
            "link: is 10 bytes, more than the 4 pinmark reads");
}

TEST(SafetensorsSpecialFiles, AFifoOrDevZeroIsRefusedNamingTheFile) {
  TempDir tmp;
  ASSERT_EQ(::mkfifo(tmp.file("pipe.safetensors").c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { SafetensorsFile(tmp.file("pipe.safetensors"), "ckpt/model.safetensors"); }),
            "ckpt/model.safetensors: is a FIFO, not a regular file");
  fs::create_symlink("/dev/zero", tmp.file("zero.safetensors"));
  EXPECT_EQ(error_of([&] { SafetensorsFile(tmp.file("zero.safetensors"), "z.safetensors"); }),
            "z.safetensors: is a character device, not a regular file");
}

TEST(SafetensorsSpecialFiles, ADeepHeaderIsRefused) {
  TempDir tmp;
  const std::string header = std::string(1000, '[') + std::string(1000, ']');
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xFF));
  write(tmp.file("deep.safetensors"), bytes + header);
  const std::string message = error_of([&] { SafetensorsFile(tmp.file("deep.safetensors")); });
  EXPECT_NE(message.find("the header is not valid JSON: JSON nested deeper than 64 levels"),
            std::string::npos) << message;
}

// A checkpoint folder inside a repository, so that messages name it relative to the root.
struct Repo {
  TempDir tmp;
  fs::path dir;
  Repo() {
    fs::create_directories(fs::path(tmp.path()) / ".git");
    dir = fs::path(tmp.path()) / "cases" / "ckpt";
    fs::create_directories(dir);
  }
};

TEST(CheckpointSpecialFiles, AnIndexThatIsAFolderIsNamedRepositoryRelative) {
  Repo repo;
  fs::create_directories(repo.dir / "model.safetensors.index.json");
  const std::string message = error_of([&] { Checkpoint c(repo.dir.string()); });
  EXPECT_EQ(message, "cases/ckpt/model.safetensors.index.json: is a directory, not a regular file");
}

TEST(CheckpointSpecialFiles, AFifoAsTheIndexOrTheModelIsRefusedAtOnce) {
  Repo repo;
  ASSERT_EQ(::mkfifo((repo.dir / "model.safetensors.index.json").c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { Checkpoint c(repo.dir.string(), "ckpt"); }),
            "ckpt/model.safetensors.index.json: is a FIFO, not a regular file");
  fs::create_symlink("/dev/zero", repo.dir / "model.safetensors");
  EXPECT_EQ(error_of([&] { Checkpoint c(repo.dir.string(), "ckpt"); }),
            "ckpt/model.safetensors: is a character device, not a regular file");
}

TEST(CheckpointSpecialFiles, AMistypedOrDeepIndexNamesTheFile) {
  Repo repo;
  write(repo.dir / "model.safetensors.index.json", R"({"weight_map": {"a": 7}})");
  EXPECT_EQ(error_of([&] { Checkpoint c(repo.dir.string(), "ckpt"); }),
            "ckpt/model.safetensors.index.json: tensor 'a' maps to 7, not a shard file name");
  write(repo.dir / "model.safetensors.index.json", R"({"weight_map": {"a": 1e999}})");
  EXPECT_NE(error_of([&] { Checkpoint c(repo.dir.string(), "ckpt"); })
                .find("ckpt/model.safetensors.index.json: not valid JSON: the number 1e999"),
            std::string::npos);
}

TEST(CheckpointSpecialFiles, AFolderThatCannotBeSearchedIsNamed) {
  if (::geteuid() == 0) GTEST_SKIP() << "root searches every folder";
  Repo repo;
  const fs::path locked = repo.dir / "locked";
  fs::create_directories(locked);
  ::chmod(locked.c_str(), 0);
  const std::string message = error_of([&] { Checkpoint c(locked.string(), "locked"); });
  ::chmod(locked.c_str(), 0700);
  EXPECT_EQ(message, "locked/model.safetensors: cannot look for it: Permission denied");
}

TEST(JsonLimits, DepthIsCountedOutsideStringsOnly) {
  EXPECT_FALSE(check_json_text(std::string(64, '[') + std::string(64, ']')));
  const auto deep = check_json_text(std::string(65, '[') + std::string(65, ']'));
  ASSERT_TRUE(deep);
  EXPECT_EQ(deep->offset, 64u);
  EXPECT_FALSE(check_json_text(R"({"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"["})"));
}

TEST(JsonLimits, NumbersPastADoubleAreFoundWithTheirOffset) {
  const auto big = check_json_text(R"({"a": 1, "b": 1e999})");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->offset, 14u);
  EXPECT_EQ(big->message, "the number 1e999 is past the range of a double (about 1.8e308)");
  EXPECT_TRUE(check_json_text("[-1e400]"));
  EXPECT_FALSE(check_json_text("[1e308, -1e-999, 12345678901234567890]"));
  EXPECT_FALSE(check_json_text(R"(["1e999"])"));
}

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.intermediate_size = 40;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 4;
  return c;
}

TEST(Budget, ASmallModelFitsAndTheCostGrowsWithLayersAndDecode) {
  const Footprint small = model_footprint(small_config(), {3}, 2, 2);
  EXPECT_GT(small.bytes, 0);
  EXPECT_LT(small.work, kDefaultWorkBudget);
  ModelConfig deep = small_config();
  deep.num_hidden_layers = 10;
  EXPECT_GT(model_footprint(deep, {3}, 2, 2).work, 9 * small.work / 2);
  // 41 times the tokens and 67 times the calls, the layer's making of weights aside.
  EXPECT_GT(model_footprint(small_config(), {3}, 200, 2).work, 30 * small.work);
}

TEST(Budget, ARefusalNamesTheKeyThatDrivesTheCost) {
  Budget budget;
  budget.bytes = 1e12;
  ModelConfig c = small_config();
  c.vocab_size = 2000000000;
  auto refusal = check_model_budget(c, {1}, 0, 2, budget);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->key, "vocab_size");
  EXPECT_FALSE(refusal->machine_dependent);
  c = small_config();
  c.model_type = "gpt2";
  c.num_hidden_layers = 1000000;
  refusal = check_model_budget(c, {1}, 0, 2, budget);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->key, "n_layer");
  budget.bytes = 1000;
  refusal = check_model_budget(small_config(), {1}, 0, 2, budget);
  ASSERT_TRUE(refusal);
  EXPECT_TRUE(refusal->machine_dependent);
  EXPECT_NE(refusal->message.find("past the memory budget of 1 KB"), std::string::npos) << refusal->message;
}

// A layer costs time whatever its width: a 16-wide model 10,000 layers deep with a 2-token
// prompt does a few million multiply-adds a run, yet took 31 s on a 2-core machine. It is
// refused by its depth; a few dozen such layers still fit.
TEST(Budget, DeepNarrowModelsAreChargedForEachLayersFixedCost) {
  Budget budget;
  budget.bytes = 1e12;
  ModelConfig c = small_config();
  c.num_hidden_layers = 10000;
  auto refusal = check_model_budget(c, {2}, 0, 2, budget);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->key, "num_hidden_layers");
  EXPECT_NE(refusal->message.find("past the work budget"), std::string::npos) << refusal->message;
  c.num_hidden_layers = 32;
  EXPECT_FALSE(check_model_budget(c, {2}, 8, 2, budget));
  // Each decode step is a call through every layer.
  c.num_hidden_layers = 1000;
  EXPECT_FALSE(check_model_budget(c, {2}, 0, 1, budget));
  refusal = check_model_budget(c, {2}, 100, 1, budget);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->key, "num_hidden_layers");
}

// MLA's and DeepSeek Sparse Attention's own widths are charged: a config whose size sits in
// the latent rank or the indexer is refused by that key, not left to run out of memory.
TEST(Budget, MlaAndTheIndexerAreChargedByTheirOwnKeys) {
  Budget budget;
  budget.bytes = 1e12;
  ModelConfig c = family_defaults("deepseek_v32");
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.moe_intermediate_size = 16;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.q_lora_rank = 16;
  c.kv_lora_rank = 8;
  c.qk_nope_head_dim = 8;
  c.qk_rope_head_dim = 4;
  c.v_head_dim = 6;
  c.num_local_experts = 8;
  c.index_topk = 4;
  c.index_head_dim = 8;
  c.index_n_heads = 4;
  ASSERT_FALSE(check_model_budget(c, {12}, 4, 2, budget));
  ModelConfig wide = c;
  wide.index_n_heads = 1 << 20;
  wide.index_head_dim = 1 << 10;
  auto refusal = check_model_budget(wide, {12}, 4, 2, budget);
  ASSERT_TRUE(refusal);
  EXPECT_TRUE(refusal->key == "index_n_heads" || refusal->key == "index_head_dim") << refusal->key;
  wide = c;
  wide.kv_lora_rank = 1 << 30;
  refusal = check_model_budget(wide, {12}, 4, 2, budget);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->key, "kv_lora_rank");
}

TEST(Budget, KernelsAreChargedByTheirShapes) {
  KernelSpec k{"attention", {{"tokens", 100000}, {"heads", 8}, {"kv_heads", 8}, {"head_dim", 64}}, 0};
  const auto refusal = check_kernel_budget(k, 2, Budget{1e12});
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->key, "tokens");
  KernelSpec ok{"swiglu", {{"n", 1000}}, 0};
  EXPECT_FALSE(check_kernel_budget(ok, 2, Budget{1e12}));
}

TEST(Budget, EnvironmentValuesAreParsedOrRefused) {
  ::setenv("PINMARK_MEMORY_BUDGET", "2G", 1);
  ::setenv("PINMARK_WORK_BUDGET", "5e10", 1);
  const Budget b = budget_from_environment();
  EXPECT_EQ(b.bytes, 2.0 * 1024 * 1024 * 1024);
  EXPECT_EQ(b.work, 5e10);
  EXPECT_TRUE(b.bytes_from_environment && b.work_from_environment);
  ::setenv("PINMARK_MEMORY_BUDGET", "-3", 1);
  EXPECT_EQ(error_of([] { budget_from_environment(); }),
            "PINMARK_MEMORY_BUDGET must be a positive number of bytes (e.g. 8G), got '-3'");
  ::unsetenv("PINMARK_MEMORY_BUDGET");
  ::unsetenv("PINMARK_WORK_BUDGET");
  EXPECT_GT(budget_from_environment().bytes, 0);
}

}  // namespace
}  // namespace pinmark
