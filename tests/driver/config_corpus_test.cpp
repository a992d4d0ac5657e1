// The corpus of published config.json files in tests/configs (SOURCES.md says where each comes
// from), each read through pinmark's own config reader as a pasted Config block with its sizes
// shrunk: every file of a family pinmark implements loads and runs, except the few whose keys
// ask for something pinmark does not compute, and every other family is refused by its
// model_type. Keys transformers' modeling code does not read are accepted and named in the
// rendered case.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "driver/hf_config.h"
#include "driver/render.h"
#include "driver/verdict.h"
#include "runtime/model_config.h"
#include "tests/driver/spec_support.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::problems_of;

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using test::contains;
using test::TempDir;

const fs::path kCorpus = fs::path(PINMARK_SOURCE_DIR) / "tests" / "configs";

// The published files pinmark refuses although their model_type is one it implements, with
// the part of the message that names what it lacks.
const std::map<std::string, std::string> kRefusedSupported = {
    {"FlorianJc__Meta-Llama-3.1-8B-Instruct-vllm-fp8.json",
     "quantization_config (quant_method \"fp8\") is not supported: transformers loads these "
     "weights quantized"},
    // DeepSeek-V3 ships fp8 block-quantized weights.
    {"deepseek-ai__DeepSeek-V3.json",
     "quantization_config (quant_method \"fp8\") is not supported: transformers loads these "
     "weights quantized"},
    // gpt-oss ships its experts quantized (MXFP4 on the Hub; this snapshot names GPTQ).
    {"openai__gpt-oss-20b.json",
     "quantization_config (quant_method \"gptq\") is not supported: transformers loads these "
     "weights quantized"},
};

struct CorpusFile {
  std::string name;
  ordered_json config;
};

std::vector<CorpusFile> corpus() {
  std::vector<CorpusFile> files;
  for (const fs::directory_entry& e : fs::directory_iterator(kCorpus))
    if (e.path().extension() == ".json")
      files.push_back({e.path().filename().string(),
                       ordered_json::parse(test::read_file(e.path().string()))});
  std::sort(files.begin(), files.end(),
            [](const CorpusFile& a, const CorpusFile& b) { return a.name < b.name; });
  return files;
}

bool supported(const ordered_json& config) {
  const std::vector<std::string>& known = known_model_types();
  const std::string type = config.value("model_type", "llama");
  return std::find(known.begin(), known.end(), type) != known.end();
}

void shrink_if_present(ordered_json& c, const std::string& key, int value) {
  if (c.contains(key) && !c[key].is_null()) c[key] = value;
}

// The published config with small sizes, every other key as published. The key-value head
// count keeps its kind: MHA stays MHA, MQA stays MQA, GQA becomes 2 of 4.
ordered_json shrunk(ordered_json c) {
  if (c.value("model_type", "") == "gpt2") {
    shrink_if_present(c, "n_embd", 32);
    shrink_if_present(c, "n_head", 4);
    shrink_if_present(c, "n_layer", 2);
    shrink_if_present(c, "n_inner", 64);
    shrink_if_present(c, "n_positions", 64);
    shrink_if_present(c, "n_ctx", 64);
    shrink_if_present(c, "vocab_size", 64);
    return c;
  }
  const int heads = c.value("num_attention_heads", 1);
  const int kv = c.contains("num_key_value_heads") && c["num_key_value_heads"].is_number_integer()
                     ? c["num_key_value_heads"].get<int>()
                     : heads;
  shrink_if_present(c, "num_key_value_heads", kv == heads ? 4 : kv == 1 ? 1 : 2);
  shrink_if_present(c, "num_attention_heads", 4);
  shrink_if_present(c, "hidden_size", 32);
  shrink_if_present(c, "head_dim", 8);
  shrink_if_present(c, "intermediate_size", 64);
  shrink_if_present(c, "moe_intermediate_size", 16);
  shrink_if_present(c, "num_hidden_layers", 2);
  shrink_if_present(c, "vocab_size", 64);
  shrink_if_present(c, "num_local_experts", 4);
  shrink_if_present(c, "query_pre_attn_scalar", 8);
  // Gemma 3n: the per-layer inputs' table and width, LAuReL, and one of the two layers kept
  // sharing the other's keys and values.
  shrink_if_present(c, "vocab_size_per_layer_input", 64);
  shrink_if_present(c, "hidden_size_per_layer_input", 8);
  shrink_if_present(c, "laurel_rank", 4);
  if (c.contains("num_kv_shared_layers") && c["num_kv_shared_layers"].is_number_integer() &&
      c["num_kv_shared_layers"].get<int>() > 0)
    c["num_kv_shared_layers"] = 1;
  for (const char* key : {"layer_types", "activation_sparsity_pattern"})
    if (c.contains(key) && c[key].is_array() && c[key].size() > 2)
      c[key] = ordered_json::array({c[key][0], c[key][1]});
  return c;
}

std::string case_of(const ordered_json& config) {
  return "# Corpus\n\n## The published config\n\n### Config\n\n```json\n" + config.dump(2) +
         "\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[1, 5, 9]], \"decode\": 1}\n```\n";
}

TEST(ConfigCorpus, HoldsAtLeastFortyPublishedConfigsEachWithItsSource) {
  const std::vector<CorpusFile> files = corpus();
  EXPECT_GE(files.size(), 40u);
  const std::string sources = test::read_file((kCorpus / "SOURCES.md").string());
  for (const CorpusFile& f : files)
    EXPECT_TRUE(contains(sources, "| `" + f.name + "` |")) << f.name << " has no row in SOURCES.md";
}

TEST(ConfigCorpus, SupportedFamiliesLoadAndRunTheOthersAreRefusedByModelType) {
  int loaded = 0, refused = 0;
  std::map<std::string, int> by_type;
  for (const CorpusFile& f : corpus()) {
    SCOPED_TRACE(f.name);
    const std::string markdown = case_of(shrunk(f.config));
    const CaseFile file = parse_case_file(markdown);
    ASSERT_TRUE(file.problems.empty());
    const Case& c = file.cases.at(0);
    const CaseSpec spec = read_case_spec(c);
    const std::string type = f.config.value("model_type", "llama");
    // A multimodal config whose language model pinmark implements: refused with the advice to
    // paste its text_config, which then loads.
    if (!supported(f.config) && f.config.contains("text_config") &&
        supported(f.config["text_config"])) {
      ASSERT_EQ(spec.problems.size(), 1u) << problems_of(spec);
      EXPECT_TRUE(contains(spec.problems[0].message, "is a multimodal config; pinmark computes "
                                                     "its language model: paste its text_config"))
          << spec.problems[0].message;
      const ordered_json& text = f.config["text_config"];
      const CaseFile text_file = parse_case_file(case_of(shrunk(text)));
      const CaseSpec text_spec = read_case_spec(text_file.cases.at(0));
      ASSERT_TRUE(text_spec.problems.empty()) << problems_of(text_spec);
      const CaseResult result = run_case(text_spec);
      const std::string out = render_case(text_file.cases.at(0), result);
      EXPECT_FALSE(contains(out, "### Errors")) << out;
      EXPECT_TRUE(case_failures(result).empty()) << out;
      ++loaded;
      ++by_type[text.value("model_type", "")];
      continue;
    }
    if (!supported(f.config)) {
      ASSERT_EQ(spec.problems.size(), 1u) << problems_of(spec);
      EXPECT_TRUE(contains(spec.problems[0].message, "model_type \"" + type + "\" is not supported"))
          << spec.problems[0].message;
      EXPECT_EQ(spec.problems[0].where,
                "Config, line " + std::to_string(test::line_of(shrunk(f.config).dump(2),
                                                               "\"model_type\"")))
          << "the message names the line of model_type";
      std::cout << "refused " << f.name << ": " << problem_line(spec.problems[0]) << "\n";
      ++refused;
      continue;
    }
    if (auto it = kRefusedSupported.find(f.name); it != kRefusedSupported.end()) {
      ASSERT_EQ(spec.problems.size(), 1u) << problems_of(spec);
      EXPECT_TRUE(contains(spec.problems[0].message, it->second)) << spec.problems[0].message;
      std::cout << "refused " << f.name << ": " << problem_line(spec.problems[0]) << "\n";
      ++refused;
      continue;
    }
    ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
    const CaseResult result = run_case(spec);
    const std::string out = render_case(c, result);
    EXPECT_FALSE(contains(out, "### Errors")) << out;
    EXPECT_TRUE(case_failures(result).empty()) << out;
    // Each key pinmark reads for nothing is named in the rendered case.
    for (const std::string& key : unread_config_keys(nlohmann::json::parse(f.config.dump())))
      EXPECT_TRUE(contains(out, "`" + key + "`")) << key << "\n" << out;
    ++loaded;
    ++by_type[type];
  }
  std::cout << "config corpus: " << loaded + refused << " configs, " << loaded << " load, "
            << refused << " refused\n";
  for (const auto& [type, n] : by_type) std::cout << "  loaded " << type << ": " << n << "\n";
  // Every supported family has at least one published config that loads.
  // Every gpt-oss, DeepSeek-V3, V3.2 and V4 release is quantized (MXFP4, fp8, fp4 experts),
  // which pinmark refuses with its own message above; their unquantized key sets are the ones
  // cases/models/gpt_oss.md, deepseek_v3.md, deepseek_v32.md and deepseek_v4.md paste (V3.2's
  // and V4's as transformers 5.17 writes them, in checkpoints/).
  // No Qwen3-Next config.json as the Hub publishes it is in the corpus yet: the family's keys
  // are checked by tests/runtime/model_config_test.cpp and cases/models/qwen3_next.md.
  for (const std::string& type : known_model_types()) {
    if (type != "gpt_oss" && type != "deepseek_v3" && type != "deepseek_v32" &&
        type != "deepseek_v4" && type != "qwen3_next") {
      EXPECT_GE(by_type[type], 1) << type;
    }
  }
  EXPECT_EQ(loaded, 42);
  EXPECT_EQ(refused, 4);
  EXPECT_EQ(loaded + refused, static_cast<int>(corpus().size()));
}

// The keys that made SmolLM2-135M and Qwen2.5-0.5B fail before are keys their modeling code
// never reads: accepted and named as ignored.
TEST(ConfigCorpus, KeysTransformersDoesNotReadAreListedNotRefused) {
  const auto unread = [](const std::string& name) {
    return unread_config_keys(
        nlohmann::json::parse(test::read_file((kCorpus / name).string())));
  };
  const std::vector<std::string> smol = unread("HuggingFaceTB__SmolLM2-135M-Instruct.json");
  for (const char* key : {"is_llama_config", "rope_interleaved", "transformers.js_config",
                          "_name_or_path", "bos_token_id", "torch_dtype"})
    EXPECT_NE(std::find(smol.begin(), smol.end(), key), smol.end()) << key;
  // Keys pinmark reads are not in the list.
  for (const char* key : {"hidden_size", "rope_theta", "tie_word_embeddings", "model_type"})
    EXPECT_EQ(std::find(smol.begin(), smol.end(), key), smol.end()) << key;
  const std::vector<std::string> qwen = unread("Qwen__Qwen2.5-0.5B.json");
  EXPECT_NE(std::find(qwen.begin(), qwen.end(), "use_mrope"), qwen.end());
  // A family pinmark does not implement has no list: its model_type is the problem.
  EXPECT_TRUE(unread("amd__AMD-OLMo-1B-SFT.json").empty());
}

// gemma-2b publishes "hidden_act": "gelu". transformers' GemmaMLP builds ACT2FN[hidden_act],
// the exact erf GELU, and never reads hidden_activation: pinmark computes the same.
TEST(ConfigCorpus, GemmaTwoBHiddenActGeluIsTheExactGelu) {
  for (const char* name : {"google__gemma-2b.json", "google__gemma-2b-hidden-activation.json",
                           "google__gemma-2b-hidden-activation-null.json"}) {
    SCOPED_TRACE(name);
    const ordered_json config =
        shrunk(ordered_json::parse(test::read_file((kCorpus / name).string())));
    const CaseSpec spec = read_case_spec(parse_case_file(case_of(config)).cases.at(0));
    ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
    EXPECT_EQ(spec.model.hidden_act, "gelu");
  }
}

// Qwen2Config slides a layer only where `sliding_window is not None`: with
// "use_sliding_window": true and "sliding_window": null every layer is full attention.
TEST(ConfigCorpus, QwenSlidingWindowOnWithANullWindowIsFullAttention) {
  ordered_json config = shrunk(
      ordered_json::parse(test::read_file((kCorpus / "Qwen__Qwen2.5-0.5B.json").string())));
  config["use_sliding_window"] = true;
  config["max_window_layers"] = 0;
  ASSERT_TRUE(config["sliding_window"].is_null());
  const CaseSpec spec = read_case_spec(parse_case_file(case_of(config)).cases.at(0));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_EQ(spec.model.sliding_window, 0);
  for (const std::string& t : spec.model.layer_types) EXPECT_EQ(t, "full_attention");
  // With a window, layers from max_window_layers on slide, as before.
  config["sliding_window"] = 4;
  const CaseSpec sliding = read_case_spec(parse_case_file(case_of(config)).cases.at(0));
  ASSERT_TRUE(sliding.problems.empty()) << problems_of(sliding);
  EXPECT_EQ(sliding.model.sliding_window, 4);
  ASSERT_EQ(sliding.model.layer_types.size(), 2u);
  EXPECT_EQ(sliding.model.layer_types[1], "sliding_attention");
}

// A misspelt key pinmark reads is still refused: its value would otherwise be lost.
TEST(ConfigCorpus, AKeyALetterFromAReadKeyIsRefusedAsAMisspelling) {
  ordered_json config = shrunk(
      ordered_json::parse(test::read_file((kCorpus / "Qwen__Qwen3-0.6B.json").string())));
  config["rms_norm_epz"] = 1e-5;
  const CaseSpec spec = read_case_spec(parse_case_file(case_of(config)).cases.at(0));
  ASSERT_EQ(spec.problems.size(), 1u) << problems_of(spec);
  EXPECT_EQ(spec.problems[0].message,
            "unknown config key 'rms_norm_epz' for model_type \"qwen3\" (did you mean "
            "'rms_norm_eps'?)");
}

// The refusal of a config.json inside a checkpoint names that file and the key's line in it,
// and says what to do.
TEST(ConfigCorpus, ARefusalInACheckpointNamesItsConfigJsonAndLine) {
  TempDir tmp;
  fs::create_directories(fs::path(tmp.path()) / ".git");
  const fs::path dir = fs::path(tmp.path()) / "ckpt";
  fs::create_directories(dir);
  const std::string text =
      test::read_file((kCorpus / "FlorianJc__Meta-Llama-3.1-8B-Instruct-vllm-fp8.json").string());
  test::write_file((dir / "config.json").string(), text);
  const std::string case_file = tmp.file("case.md");
  const std::string markdown =
      "# T\n\n## C\n\n### Config\n\n```json\n{\"pinmark\": {\"checkpoint\": \"ckpt\"}}\n```\n\n"
      "### Inputs\n\n```json\n{\"prompts\": [[1]]}\n```\n";
  const CaseSpec spec = read_case_spec(parse_case_file(markdown).cases.at(0), case_file);
  ASSERT_EQ(spec.problems.size(), 1u) << problems_of(spec);
  EXPECT_EQ(spec.problems[0].where,
            "ckpt/config.json, line " + std::to_string(test::line_of(text, "\"quantization_config\"")));
  EXPECT_TRUE(contains(spec.problems[0].message,
                       "use the unquantized checkpoint's config.json, which has no "
                       "quantization_config"))
      << spec.problems[0].message;
}

// The note names keys as the block spells them: a key holding a newline and a fence cannot
// open a heading or a block in the golden.
TEST(ConfigCorpus, TheIgnoredKeysNoteEscapesHostileKeys) {
  ordered_json config = shrunk(
      ordered_json::parse(test::read_file((kCorpus / "Qwen__Qwen3-0.6B.json").string())));
  config["note\n```\n\n## Injected"] = 1;
  const CaseFile file = parse_case_file(case_of(config));
  const CaseSpec spec = read_case_spec(file.cases.at(0));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  const std::string out = render_case(file.cases.at(0), run_case(spec));
  EXPECT_TRUE(contains(out, "note\\n```\\n\\n## Injected")) << out;
  EXPECT_FALSE(contains(out, "\n## Injected")) << out;
  EXPECT_EQ(parse_case_file(out).cases.size(), 1u);
}

}  // namespace
}  // namespace pinmark
