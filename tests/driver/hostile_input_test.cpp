// Hostile input gets a clear error and nothing else happens: integers past an int, numbers past
// a double, nesting past the depth limit, cases past the budget, special files where a
// checkpoint's files belong, and many unknown keys. Each test feeds the input and checks the
// message. The fixtures under fixtures/hostile/ are the smallest inputs found for each fault.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>

#include "driver/case_file.h"
#include "driver/case_spec.h"
#include "driver/render.h"
#include "tests/driver/spec_support.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::problems_of;
using test::spec_of;

namespace fs = std::filesystem;
using test::contains;
using test::TempDir;

std::string hostile_fixture(const std::string& name) {
  return test::read_file(std::string(PINMARK_SOURCE_DIR) + "/tests/driver/fixtures/hostile/" + name);
}

std::string model_case(const std::string& config, const std::string& inputs) {
  return "# T\n\n## A\n\n### Config\n\n```json\n" + config + "\n```\n\n### Inputs\n\n```json\n" +
         inputs + "\n```\n";
}

std::string kernel_only_case(const std::string& kernel) {
  return "# T\n\n## A\n\n### Kernel\n\n```json\n" + kernel + "\n```\n";
}

const std::string kConfig =
    R"({"vocab_size": 32, "hidden_size": 16, "intermediate_size": 40, "num_hidden_layers": 1, )"
    R"("num_attention_heads": 4})";

using test::ScopedEnv;

TEST(HostileInput, IntegersPastAnIntAreRefusedNotWrapped) {
  const CaseSpec spec = spec_of(hostile_fixture("int_wrap.md"));
  const std::string out = problems_of(spec);
  EXPECT_EQ(spec.kind, CaseSpec::Kind::invalid);
  EXPECT_TRUE(contains(out, "Config, line 1: vocab_size must be at most 2147483647, got 4294967328")) << out;
  EXPECT_TRUE(contains(out, "Inputs, line 1: decode must be at most 2147483647, got 4294967298")) << out;
  EXPECT_TRUE(contains(out, "id 4294967297 is outside the range of token ids")) << out;
}

TEST(HostileInput, PositionsPastAnIntAreRefused) {
  const std::string out = problems_of(spec_of(hostile_fixture("int_overflow_positions.md")));
  EXPECT_TRUE(contains(out, "Inputs, line 1: sequence 0: 3 prompt tokens + decode 2147483647 = "
                            "2147483650 positions, more than 2147483647")) << out;
}

TEST(HostileInput, AFloatOrANegativeNumberWhereASizeIsWantedNamesTheKey) {
  std::string out = problems_of(spec_of(model_case(
      R"({"vocab_size": 32.0, "hidden_size": -16, "intermediate_size": 40, "num_hidden_layers": 1, "num_attention_heads": 4})",
      R"({"prompts": [[1]], "decode": 1.5, "prefill_chunk": -1})")));
  EXPECT_TRUE(contains(out, "vocab_size must be an integer, got 32.0")) << out;
  EXPECT_TRUE(contains(out, "decode must be a non-negative integer, got 1.5")) << out;
  EXPECT_TRUE(contains(out, "prefill_chunk must be a non-negative integer, got -1")) << out;
  out = problems_of(spec_of(model_case(
      R"({"vocab_size": 32, "hidden_size": -16, "intermediate_size": 40, "num_hidden_layers": 1, "num_attention_heads": 4})",
      R"({"prompts": [[1]]})")));
  EXPECT_TRUE(contains(out, "hidden_size must be positive, got -16")) << out;
}

TEST(HostileInput, PinmarkKeysAreRangeChecked) {
  const std::string out = problems_of(spec_of(model_case(
      R"({"vocab_size": 32, "hidden_size": 16, "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4, "pinmark": {"kv_shared_layers": 4294967297}})",
      R"({"prompts": [[1]]})")));
  EXPECT_TRUE(contains(out, "pinmark.kv_shared_layers must be at most 2147483647, got 4294967297")) << out;
}

// pinmark.query_heads: a list of positive integers, one per layer, each a multiple of the KV
// heads; anything else names the key, and the case runs nothing.
TEST(HostileInput, QueryHeadsPerLayerAreChecked) {
  auto problems = [](const std::string& heads) {
    return problems_of(spec_of(model_case(
        R"({"vocab_size": 32, "hidden_size": 16, "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "pinmark": {"query_heads": )" +
            heads + "}}",
        R"({"prompts": [[1]]})")));
  };
  for (const char* bad : {"4", "[]", "[4, \"8\"]", "[4, 0]", "[4, -2]", "[4, 2.5]",
                          "[4, 4294967298]", "[[4], 4]", "null"}) {
    const std::string out = problems(bad);
    EXPECT_TRUE(contains(out, "pinmark.query_heads must be a list of positive integers, one per "
                              "layer, got")) << bad << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "one problem for " << bad << ": " << out;
  }
  std::string out = problems("[4, 6, 8]");
  EXPECT_TRUE(contains(out, "must give each of the 2 layers its query heads, got 3 values")) << out;
  out = problems("[4, 3]");
  EXPECT_TRUE(contains(out, "layer 1's 3 query heads are not a positive multiple of "
                            "num_key_value_heads (2)")) << out;
  EXPECT_EQ(problems("[2, 8]"), "") << "a valid list";
}

TEST(HostileInput, RopePositionsMustBeNonNegativeAndFitAnInt) {
  std::string out = problems_of(spec_of(kernel_only_case(
      R"({"op": "rope", "tokens": 2, "heads": 1, "head_dim": 4, "start": -3})")));
  EXPECT_TRUE(contains(out, "start must be an integer from 0 to 2147483647, got -3")) << out;
  out = problems_of(spec_of(kernel_only_case(
      R"({"op": "rope", "tokens": 2, "heads": 1, "head_dim": 4, "start": 2147483647})")));
  EXPECT_TRUE(contains(out, "start + tokens - 1 = 2147483648 is past the largest position")) << out;
  out = problems_of(spec_of(kernel_only_case(
      R"({"op": "attention", "tokens": 2, "past": 2147483647, "heads": 1, "kv_heads": 1, "head_dim": 4})")));
  EXPECT_TRUE(contains(out, "past + tokens - 1 = 2147483648 is past the largest position")) << out;
}

TEST(HostileInput, ANumberPastADoubleIsAnErrorOfItsCaseWithTheLine) {
  std::string out = problems_of(spec_of(hostile_fixture("number_overflow_1e999.md")));
  EXPECT_TRUE(contains(out, "Kernel, line 1: invalid JSON: the number 1e999 is past the range of a double")) << out;
  out = problems_of(spec_of(model_case("{\n  \"vocab_size\": 32,\n  \"rope_theta\": -1e999\n}",
                                       R"({"prompts": [[1]]})")));
  EXPECT_TRUE(contains(out, "Config, line 3: invalid JSON: the number -1e999")) << out;
}

TEST(HostileInput, DeepNestingIsAClearErrorNotACrash) {
  const std::string out = problems_of(spec_of(hostile_fixture("nested_json_depth.md")));
  EXPECT_TRUE(contains(out, "Kernel, line 1: invalid JSON: JSON nested deeper than 64 levels")) << out;
  // Brackets inside strings are not nesting.
  const CaseSpec ok = spec_of(model_case(kConfig, R"({"prompts": [[1]], "dumps": ["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]})"));
  EXPECT_EQ(ok.kind, CaseSpec::Kind::model) << problems_of(ok);
}

TEST(HostileInput, TooManyLayersAreRefusedByWorkNamingTheKey) {
  const CaseSpec spec = spec_of(hostile_fixture("layers_1e6.md"));
  const std::string out = problems_of(spec);
  EXPECT_TRUE(contains(out, "Config, line 1: the case needs about")) << out;
  EXPECT_TRUE(contains(out, "past the work budget of 2e+10")) << out;
  EXPECT_TRUE(contains(out, "num_hidden_layers drives it")) << out;
  // The work budget is the same on every machine: the refusal may be pinned.
  ASSERT_FALSE(spec.problems.empty());
  EXPECT_FALSE(spec.problems[0].machine_dependent);
}

TEST(HostileInput, ALongDecodeIsRefusedNamingDecode) {
  const std::string out = problems_of(spec_of(hostile_fixture("decode_100000.md")));
  EXPECT_TRUE(contains(out, "Inputs, line 1: the case needs about")) << out;
  EXPECT_TRUE(contains(out, "decode drives it")) << out;
}

TEST(HostileInput, AHugeKernelIsRefusedNamingItsSize) {
  const std::string out = problems_of(spec_of(kernel_only_case(R"({"op": "matmul", "n": 4, "k": 4, "m": 2000000000})")));
  EXPECT_TRUE(contains(out, "past the work budget")) << out;
  EXPECT_TRUE(contains(out, "; m drives it")) << out;
}

TEST(HostileInput, TheMemoryBudgetComesFromTheEnvironmentAndIsNotPinned) {
  ScopedEnv env("PINMARK_MEMORY_BUDGET", "1K");
  const CaseSpec spec = spec_of(model_case(kConfig, R"({"prompts": [[1, 2]]})"));
  const std::string out = problems_of(spec);
  EXPECT_TRUE(contains(out, "past the memory budget of 1 KB (PINMARK_MEMORY_BUDGET)")) << out;
  ASSERT_EQ(spec.problems.size(), 1u) << out;
  EXPECT_TRUE(spec.problems[0].machine_dependent);
}

TEST(HostileInput, AMalformedBudgetVariableIsAProblem) {
  ScopedEnv env("PINMARK_WORK_BUDGET", "lots");
  const std::string out = problems_of(spec_of(model_case(kConfig, R"({"prompts": [[1]]})")));
  EXPECT_TRUE(contains(out, "PINMARK_WORK_BUDGET must be a positive number of multiply-adds (e.g. 5e10), got 'lots'")) << out;
}

TEST(HostileInput, ASmallCaseFitsTheDefaultBudget) {
  const CaseSpec spec = spec_of(model_case(kConfig, R"({"prompts": [[1, 2, 3]], "decode": 4})"));
  EXPECT_EQ(spec.kind, CaseSpec::Kind::model) << problems_of(spec);
}

TEST(HostileInput, OutOfMemoryIsMarkedMachineDependent) {
  const CaseProblem p = out_of_memory_problem();
  EXPECT_TRUE(p.machine_dependent);
  EXPECT_TRUE(contains(p.message, "ran out of memory")) << p.message;
}

// 80,000 unknown keys took 85 s when each key's line was found by a search from the top of the
// block; with one index per block it is well under a second. Linear time, whatever the
// machine's speed (or a sanitizer's): four times the keys take about four times as long, not
// sixteen.
TEST(HostileInput, ManyUnknownKeysAreAcceptedInLinearTime) {
  auto seconds_for = [](int keys) {
    std::string config = "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 40, "
                         "\"num_hidden_layers\": 1, \"num_attention_heads\": 4";
    for (int i = 0; i < keys; ++i) config += ",\n\"unknown_key_" + std::to_string(i) + "\": 0";
    config += "}";
    const auto start = std::chrono::steady_clock::now();
    const CaseSpec spec = spec_of(model_case(config, R"({"prompts": [[1]]})"));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // Keys transformers does not read are accepted (and listed as ignored when rendered).
    EXPECT_TRUE(spec.problems.empty()) << spec.problems.front().message;
    return seconds;
  };
  const double small = seconds_for(10000), large = seconds_for(40000);
  EXPECT_LT(large, 8 * small + 0.05) << small << " s for 10,000 keys, " << large << " s for 40,000";
}

// A checkpoint in a fresh repository: config.json written by `write`.
struct CheckpointRepo {
  TempDir tmp;
  std::string case_file;
  fs::path dir;
  CheckpointRepo() {
    fs::create_directories(fs::path(tmp.path()) / ".git");
    dir = fs::path(tmp.path()) / "ckpt";
    fs::create_directories(dir);
    case_file = tmp.file("case.md");
  }
  CaseSpec read() const {
    return spec_of(model_case(R"({"pinmark": {"checkpoint": "ckpt"}})", R"({"prompts": [[1]]})"),
                   case_file);
  }
};

TEST(HostileInput, ANumberPastADoubleInConfigJsonNamesTheFileAndLine) {
  CheckpointRepo repo;
  test::write_file((repo.dir / "config.json").string(), "{\n  \"vocab_size\": 1e999\n}\n");
  const std::string out = problems_of(repo.read());
  EXPECT_TRUE(contains(out, "ckpt/config.json, line 2: invalid JSON: the number 1e999")) << out;
  EXPECT_FALSE(contains(out, repo.tmp.path())) << out;
}

TEST(HostileInput, AFifoAsConfigJsonIsRefusedAtOnce) {
  CheckpointRepo repo;
  ASSERT_EQ(::mkfifo((repo.dir / "config.json").c_str(), 0600), 0);
  const std::string out = problems_of(repo.read());
  EXPECT_TRUE(contains(out, "ckpt/config.json is a FIFO, not a regular file")) << out;
}

TEST(HostileInput, ALinkToDevZeroAsConfigJsonIsRefused) {
  CheckpointRepo repo;
  fs::create_symlink("/dev/zero", repo.dir / "config.json");
  const std::string out = problems_of(repo.read());
  EXPECT_TRUE(contains(out, "ckpt/config.json is a character device, not a regular file")) << out;
  EXPECT_FALSE(contains(out, repo.tmp.path())) << out;
}

}  // namespace
}  // namespace pinmark
