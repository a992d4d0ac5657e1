// A GPT-2 checkpoint as the Hub stores openai-community/gpt2 (no "transformer." prefix, and
// older files with the attention's causal-mask buffers) runs as the prefixed one does: the
// shipped checkpoint is rewritten under the Hub's names in a TempDir, and its case must give
// the same output and still agree with transformers' reference.json.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "driver/render.h"
#include "driver/verdict.h"
#include "runtime/safetensors.h"
#include "tests/driver/test_support.h"
#include "tests/support/safetensors_writer.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::StoredTensor;

const std::string kPrefix = "transformer.";

class HubNamedCheckpoint : public testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(fs::path(repo_.path()) / ".git");
    fs::create_directories(fs::path(repo_.path()) / "cases");
    fs::copy(fs::path(PINMARK_SOURCE_DIR) / "cases/models/checkpoints/gpt2",
             fs::path(repo_.path()) / "cases/gpt2");
    const SafetensorsFile shipped(repo_.path() + "/cases/gpt2/model.safetensors");
    for (const std::string& name : shipped.names()) {
      const Tensor<double> t = shipped.read(name);
      tensors_.push_back({name, t.shape, t.data});
    }
  }

  // Rewrites the copy's model.safetensors with these tensors (F32, as shipped).
  void store(const std::vector<StoredTensor>& tensors) {
    test::write_f32_safetensors(repo_.path() + "/cases/gpt2/model.safetensors", tensors);
  }

  // The shipped tensors under the Hub's names, without the prefix.
  std::vector<StoredTensor> hub_named() const {
    std::vector<StoredTensor> out = tensors_;
    for (StoredTensor& t : out)
      if (t.name.starts_with(kPrefix)) t.name = t.name.substr(kPrefix.size());
    return out;
  }

  std::string run() {
    const std::string path = repo_.path() + "/cases/case.md";
    test::write_file(path,
                     "# T\n\n## C\n\n### Config\n\n```json\n{\"pinmark\": {\"checkpoint\": \"gpt2\"}}"
                     "\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[1, 5, 9, 3, 7, 2, 11, 4]], "
                     "\"decode\": 4, \"dumps\": []}\n```\n\n### Targets\n\n```json\n"
                     "{\"targets\": [\"cpu fp32\"]}\n```\n");
    CaseFile file = parse_case_file(test::read_file(path));
    const Case& c = file.cases.at(0);
    result_ = run_case(read_case_spec(c, path));
    return render_case(c, result_);
  }

  test::TempDir repo_;
  std::vector<StoredTensor> tensors_;
  CaseResult result_;
};

TEST_F(HubNamedCheckpoint, RunsAsThePrefixedCheckpointDoes) {
  ASSERT_GT(tensors_.size(), 20u);
  const std::string prefixed = run();
  ASSERT_TRUE(contains(prefixed, "### Logits")) << prefixed;
  store(hub_named());
  const std::string hub = run();
  EXPECT_EQ(hub, prefixed);
  EXPECT_TRUE(contains(hub, "| same | ok |")) << hub;
  EXPECT_TRUE(case_failures(result_).empty()) << hub;
}

TEST_F(HubNamedCheckpoint, TheConfigJsonKeysThatChangeNothingAreListed) {
  const fs::path config = fs::path(repo_.path()) / "cases/gpt2/config.json";
  nlohmann::ordered_json json = nlohmann::ordered_json::parse(test::read_file(config.string()));
  json["summary_type"] = "cls_index";  // read by GPT2DoubleHeadsModel only
  json["n_embd"] = json["n_embd"];
  test::write_file(config.string(), json.dump(2));
  const std::string out = run();
  EXPECT_TRUE(contains(out, "Keys of `gpt2/config.json` that change none of these numbers, "
                            "ignored: "))
      << out;
  EXPECT_TRUE(contains(out, "`summary_type`")) << out;
  EXPECT_FALSE(contains(out, "`n_embd`")) << out;
  EXPECT_FALSE(contains(out, "Config keys that change none")) << out;
}

TEST_F(HubNamedCheckpoint, SavedCausalMaskBuffersAreIgnored) {
  const std::string expected = run();
  std::vector<StoredTensor> tensors = hub_named();
  for (int layer = 0; layer < 2; ++layer) {
    const std::string p = "h." + std::to_string(layer) + ".attn.";
    std::vector<double> mask(64 * 64);
    for (int i = 0; i < 64; ++i)
      for (int j = 0; j <= i; ++j) mask[i * 64 + j] = 1;
    tensors.push_back({p + "bias", {1, 1, 64, 64}, mask});
    tensors.push_back({p + "masked_bias", {}, {-1e4}});
  }
  store(tensors);
  EXPECT_EQ(run(), expected);
}

TEST_F(HubNamedCheckpoint, ATiedHeadCopyLoadsAndADifferentOneIsAnError) {
  const std::string expected = run();
  std::vector<StoredTensor> tensors = hub_named();
  StoredTensor head;
  for (const StoredTensor& t : tensors)
    if (t.name == "wte.weight") head = t;
  head.name = "lm_head.weight";
  tensors.push_back(head);
  store(tensors);
  EXPECT_EQ(run(), expected);

  tensors.back().values[3] += 1;
  store(tensors);
  const std::string out = run();
  EXPECT_TRUE(contains(out, "### Errors")) << out;
  EXPECT_TRUE(contains(out, "checkpoint gpt2 stores 'lm_head.weight' apart from the embedding "
                            "'wte.weight' and they differ (first at element 3)"))
      << out;
}

TEST_F(HubNamedCheckpoint, AnotherTensorIsStillRefusedByItsStoredName) {
  std::vector<StoredTensor> tensors = hub_named();
  tensors.push_back({"h.0.attn.c_attn.scale", {1}, {1}});
  store(tensors);
  const std::string out = run();
  EXPECT_TRUE(contains(out, "checkpoint gpt2 has tensor 'h.0.attn.c_attn.scale', which "
                            "pinmark's gpt2 model does not use"))
      << out;
}

}  // namespace
}  // namespace pinmark
