// Cases that name a checkpoint: where it may live, how its config.json's problems are named,
// that every tensor is used, and how a disagreement with Hugging Face's reference fails.
// Each test copies a shipped checkpoint into a fresh folder marked as a repository.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "driver/render.h"
#include "driver/verdict.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::read_file;
using test::write_file;

class CheckpointCase : public testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(fs::path(repo_.path()) / ".git");
    fs::create_directories(fs::path(repo_.path()) / "cases");
    fs::copy(fs::path(PINMARK_SOURCE_DIR) / "cases/models/checkpoints/gpt2",
             fs::path(repo_.path()) / "cases/gpt2");
  }

  // The case file `cases/case.md` with this Config block, run and rendered.
  std::string run(const std::string& config_json,
                  const std::string& prompts = "[[1, 5, 9, 3, 7, 2, 11, 4]]") {
    const std::string path = repo_.path() + "/cases/case.md";
    write_file(path, "# T\n\n## C\n\n### Config\n\n```json\n" + config_json +
                         "\n```\n\n### Inputs\n\n```json\n{\"prompts\": " + prompts +
                         ", \"decode\": 4, \"dumps\": []}\n```\n");
    CaseFile file = parse_case_file(read_file(path));
    const Case& c = file.cases.at(0);
    result_ = run_case(read_case_spec(c, path));
    return render_case(c, result_);
  }

  std::string checkpoint_file(const std::string& name) const {
    return repo_.path() + "/cases/gpt2/" + name;
  }

  test::TempDir repo_;
  CaseResult result_;
};

TEST_F(CheckpointCase, AgreesWithTheReferenceAndPasses) {
  const std::string out = run(R"({"pinmark": {"checkpoint": "gpt2"}})");
  ASSERT_TRUE(contains(out, "### Reference")) << out;
  EXPECT_TRUE(contains(out, "| 0 | 8 |")) << out;
  EXPECT_TRUE(contains(out, "| same | ok |")) << out;
  EXPECT_TRUE(case_failures(result_).empty()) << out;
}

TEST_F(CheckpointCase, APromptTheReferenceLacksIsMarked) {
  const std::string out = run(R"({"pinmark": {"checkpoint": "gpt2"}})", "[[2, 2]]");
  EXPECT_TRUE(contains(out, "no reference for this prompt")) << out;
  EXPECT_TRUE(case_failures(result_).empty()) << out;
}

TEST_F(CheckpointCase, ADisagreementWithTheReferenceFailsTheCase) {
  // Move the first logit of the reference by 1e-6, far past the 1e-9 bound.
  std::string reference = read_file(checkpoint_file("reference.json"));
  const size_t first = reference.find("\"logits\": [[[") + 13;
  const size_t end = reference.find(',', first);
  const double value = std::stod(reference.substr(first, end - first));
  reference.replace(first, end - first, std::to_string(value + 1e-6));
  write_file(checkpoint_file("reference.json"), reference);
  const std::string out = run(R"({"pinmark": {"checkpoint": "gpt2"}})");
  EXPECT_TRUE(contains(out, "| FAIL |")) << out;
  ASSERT_EQ(case_failures(result_).size(), 1u) << out;
  EXPECT_EQ(case_failures(result_)[0],
            "Reference: sequence 0 disagrees with Hugging Face's logits beyond the bound");
}

TEST_F(CheckpointCase, AMalformedReferenceIsAnError) {
  write_file(checkpoint_file("reference.json"), "{\"prompts\": [[1]]}");
  const std::string out = run(R"({"pinmark": {"checkpoint": "gpt2"}})");
  EXPECT_TRUE(contains(out, "### Errors")) << out;
  EXPECT_TRUE(contains(out, "reference.json: expected an object with 'prompts' and 'logits'"))
      << out;
}

TEST_F(CheckpointCase, OutsideTheRepositoryIsRefused) {
  const std::string out = run(R"({"pinmark": {"checkpoint": "../../gpt2"}})");
  EXPECT_TRUE(contains(out, "Config, line 1: checkpoint '../../gpt2' is outside the repository"))
      << out;
}

TEST_F(CheckpointCase, KeysBesideACheckpointAreRefused) {
  const std::string out = run(R"({"vocab_size": 8, "pinmark": {"checkpoint": "gpt2", "seed": 3}})");
  EXPECT_TRUE(contains(out, "'vocab_size' beside a checkpoint")) << out;
  EXPECT_TRUE(contains(out, "pinmark.seed does not apply to a checkpoint")) << out;
}

TEST_F(CheckpointCase, AFolderWithoutConfigJsonIsNamed) {
  fs::remove(checkpoint_file("config.json"));
  const std::string out = run(R"({"pinmark": {"checkpoint": "gpt2"}})");
  EXPECT_TRUE(contains(out, "checkpoint 'gpt2' has no config.json")) << out;
}

TEST_F(CheckpointCase, ProblemsInConfigJsonNameThatFileAndLine) {
  std::string config = read_file(checkpoint_file("config.json"));
  config.replace(config.find("\"n_head\""), 8, "\"n_heads\"");
  write_file(checkpoint_file("config.json"), config);
  const std::string out = run(R"({"pinmark": {"checkpoint": "gpt2"}})");
  const int line = test::line_of(config, "\"n_heads\"");
  EXPECT_TRUE(contains(out, "gpt2/config.json, line " + std::to_string(line) +
                                ": unknown config key 'n_heads' for model_type \"gpt2\" (did you mean 'n_head'?)"))
      << out;
}

TEST_F(CheckpointCase, ATensorThePinmarkModelWouldNotUseIsAnError) {
  // One layer fewer in config.json: the checkpoint's second layer would be silently ignored.
  std::string config = read_file(checkpoint_file("config.json"));
  const size_t at = config.find("\"n_layer\": 2");
  ASSERT_NE(at, std::string::npos) << config;
  config.replace(at, 12, "\"n_layer\": 1");
  write_file(checkpoint_file("config.json"), config);
  const std::string out = run(R"({"pinmark": {"checkpoint": "gpt2"}})");
  EXPECT_TRUE(contains(out, "checkpoint gpt2 has tensor 'transformer.h.1.")) << out;
  EXPECT_TRUE(contains(out, "which pinmark's gpt2 model does not use")) << out;
}

}  // namespace
}  // namespace pinmark
