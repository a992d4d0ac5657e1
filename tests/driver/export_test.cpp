// `pinmark export`: a case's inputs and the fp64 oracle's outputs, read back with pinmark's own
// safetensors reader and checked against an independent run of Model<double> on the exported
// weights; the index against the files; and each refusal's message.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_spec.h"
#include "driver/command_line.h"
#include "driver/fingerprint.h"
#include "driver/safetensors_writer.h"
#include "runtime/checkpoint.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/generate.h"
#include "runtime/kernel_case.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "runtime/weights.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::contains;
using test::describe;
using test::read_file;
using test::Result;
using test::write_file;

// Two sequences and three decode steps; Dumps shows one tap, the export must still hold all.
constexpr const char* kTwoSequencesCase =
    "# T\n\n## Small llama\n\n### Config\n\n```json\n"
    "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 40, "
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
    "\"bos_token_id\": 1, \"pinmark\": {\"seed\": 3}}\n```\n\n"
    "### Inputs\n\n```json\n{\"prompts\": [[1, 5, 9, 3], [2, 7]], \"decode\": 3, "
    "\"dumps\": [\"layers.0.q\"]}\n```\n";

constexpr const char* kKernelCases =
    "# K\n\n## Matmul\n\n### Kernel\n\n```json\n"
    "{\"op\": \"matmul\", \"n\": 3, \"k\": 17, \"m\": 5, \"seed\": 4}\n```\n\n"
    "## Rope\n\n### Kernel\n\n```json\n"
    "{\"op\": \"rope\", \"tokens\": 3, \"heads\": 2, \"head_dim\": 8, \"theta\": 10000, "
    "\"start\": 5, \"seed\": 2}\n```\n";

constexpr const char* kErrorsCase =
    "# E\n\n## Misspelt\n\n### Config\n\n```json\n"
    "{\"vocab_size\": 32, \"hiden_size\": 16, \"intermediate_size\": 40, "
    "\"num_hidden_layers\": 1, \"num_attention_heads\": 4}\n```\n\n"
    "### Inputs\n\n```json\n{\"prompts\": [[1, 2]]}\n```\n";

Result run(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  Result r;
  r.status = run_command_line(args, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// An I64 tensor's values, read from the header by hand (pinmark's reader converts floats only).
std::vector<int64_t> read_i64(const std::string& path, const std::string& name) {
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  const json header = json::parse(bytes.substr(8, n));
  const json& e = header.at(name);
  EXPECT_EQ(e.at("dtype"), "I64");
  const uint64_t begin = e.at("data_offsets")[0], end = e.at("data_offsets")[1];
  std::vector<int64_t> values((end - begin) / 8);
  std::memcpy(values.data(), bytes.data() + 8 + n + begin, end - begin);
  return values;
}

CaseSpec spec_of(const std::string& path, size_t index = 0) {
  const CaseFile file = parse_case_file(read_file(path));
  return read_case_spec(file.cases.at(index), path);
}

class Export : public testing::Test {
 protected:
  test::TempDir dir_;
  std::string file(const std::string& name, const std::string& text) {
    write_file(dir_.file(name), text);
    return dir_.file(name);
  }
};

TEST_F(Export, ModelLogitsAndTapsEqualAnIndependentFp64RunOnTheExportedWeights) {
  const std::string path = file("llama.md", kTwoSequencesCase);
  const std::string out = dir_.file("out");
  const Result r = run({"export", path + "::small_llama", "--out", out});
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "EXPORTED " + path + "::small_llama")) << r.out;

  const CaseSpec spec = spec_of(path);
  const SafetensorsFile weights_file(out + "/model.safetensors");
  Weights weights;
  for (const std::string& name : weights_file.names()) {
    EXPECT_EQ(weights_file.dtype(name), "F64") << name;
    weights.emplace(name, weights_file.read(name));
  }
  // The weights are the oracle's own, bit for bit, and load as a Hugging Face checkpoint.
  const Weights synthetic = synthetic_weights(spec.model);
  ASSERT_EQ(weights.size(), synthetic.size());
  for (const auto& [name, tensor] : synthetic) {
    EXPECT_EQ(weights.at(name).shape, tensor.shape) << name;
    EXPECT_EQ(weights.at(name).data, tensor.data) << name;
  }
  std::vector<std::pair<std::string, Shape>> wanted;
  for (const auto& [name, tensor] : synthetic) wanted.emplace_back(name, tensor.shape);
  EXPECT_NO_THROW(Checkpoint(out, "out").load_model("llama", false, wanted));

  const SafetensorsFile oracle(out + "/oracle.safetensors");
  auto backend = make_cpu_backend<double>();
  Model<double> model(spec.model, weights, *backend);
  for (size_t s = 0; s < spec.inputs.prompts.size(); ++s) {
    const std::string prefix = "sequence." + std::to_string(s) + ".";
    const std::vector<int>& prompt = spec.inputs.prompts[s];
    EXPECT_EQ(read_i64(out + "/inputs.safetensors", prefix + "tokens"),
              std::vector<int64_t>(prompt.begin(), prompt.end()));
    std::vector<int64_t> positions(prompt.size());
    for (size_t p = 0; p < prompt.size(); ++p) positions[p] = static_cast<int64_t>(p);
    EXPECT_EQ(read_i64(out + "/inputs.safetensors", prefix + "positions"), positions);

    KVCache<double> cache(spec.model, static_cast<int>(prompt.size()) + spec.inputs.decode);
    std::vector<std::string> tap_names;
    std::vector<Tensor<double>> tap_values;
    const Tensor<double> logits =
        model.forward(prompt, cache, [&](const std::string& name, const Shape& shape, const double* d) {
          tap_names.push_back(name);
          tap_values.emplace_back(shape, std::vector<double>(d, d + element_count(shape)));
        });
    const Tensor<double> exported = oracle.read(prefix + "logits");
    EXPECT_EQ(oracle.dtype(prefix + "logits"), "F64");
    EXPECT_EQ(exported.shape, (Shape{static_cast<int64_t>(prompt.size()), 32}));
    EXPECT_EQ(exported.data, logits.data) << "sequence " << s;

    // Every tap, not only the one Dumps shows, in fp64 and equal.
    size_t taps = 0;
    for (const std::string& name : oracle.names())
      taps += name.rfind(prefix + "taps.", 0) == 0;
    EXPECT_EQ(taps, tap_names.size());
    EXPECT_GT(tap_names.size(), 10u);
    for (size_t t = 0; t < tap_names.size(); ++t) {
      const std::string name = prefix + "taps." + tap_names[t];
      ASSERT_TRUE(oracle.contains(name)) << name;
      const Tensor<double> tap = oracle.read(name);
      EXPECT_EQ(tap.shape, tap_values[t].shape) << name;
      EXPECT_EQ(tap.data, tap_values[t].data) << name;
    }

    // Greedy decoding: the first token is the argmax of the last prompt position.
    const std::vector<int64_t> generated = read_i64(out + "/oracle.safetensors", prefix + "generated");
    ASSERT_EQ(generated.size(), 3u);
    std::vector<double> last(logits.data.end() - 32, logits.data.end());
    EXPECT_EQ(generated[0], argmax(last));
    EXPECT_EQ(oracle.shape(prefix + "decode_logits"), (Shape{2, 32}));
  }
}

TEST_F(Export, IndexListsEveryFileAndTensorWithItsProvenance) {
  const std::string path = file("llama.md", kTwoSequencesCase);
  const std::string out = dir_.file("out");
  ASSERT_EQ(run({"export", path + "::small_llama", "--out", out}).status, 0);
  const json index = json::parse(read_file(out + "/index.json"));
  EXPECT_EQ(index["case"]["name"], path + "::small_llama");
  EXPECT_EQ(index["case"]["file"], path);
  EXPECT_EQ(index["provenance"]["code_fingerprint"], code_fingerprint());
  EXPECT_FALSE(index["provenance"]["pinmark_version"].get<std::string>().empty());
  EXPECT_TRUE(contains(index["provenance"]["row_fingerprint"].get<std::string>(), "inputs "));
  EXPECT_EQ(index["model"]["weights"], "model.safetensors");

  std::set<std::string> listed, on_disk;
  for (const json& f : index["files"]) {
    listed.insert(f["file"]);
    if (!f.contains("tensors")) continue;
    const SafetensorsFile st(out + "/" + f["file"].get<std::string>());
    std::set<std::string> names;
    for (const json& t : f["tensors"]) {
      const std::string name = t["name"];
      names.insert(name);
      ASSERT_TRUE(st.contains(name)) << name;
      EXPECT_EQ(t["dtype"], st.dtype(name)) << name;
      EXPECT_EQ(t["shape"].get<Shape>(), st.shape(name)) << name;
    }
    const std::vector<std::string> all = st.names();
    EXPECT_EQ(names, std::set<std::string>(all.begin(), all.end())) << f["file"];
  }
  for (const auto& entry : fs::directory_iterator(out)) on_disk.insert(entry.path().filename().string());
  EXPECT_EQ(listed, on_disk);
  EXPECT_EQ(on_disk, (std::set<std::string>{"config.json", "index.json", "inputs.safetensors",
                                             "model.safetensors", "oracle.safetensors"}));
  // Written beside the folder and renamed: nothing else is left there.
  std::set<std::string> beside;
  for (const auto& entry : fs::directory_iterator(dir_.path())) beside.insert(entry.path().filename().string());
  EXPECT_EQ(beside, (std::set<std::string>{"llama.md", "out"}));

  // config.json: the Config block's Hugging Face keys, without pinmark's.
  const json config = json::parse(read_file(out + "/config.json"));
  EXPECT_EQ(config["model_type"], "llama");
  EXPECT_EQ(config["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(config["vocab_size"], 32);
  EXPECT_EQ(config["bos_token_id"], 1);
  EXPECT_FALSE(config.contains("pinmark"));
}

// Per-layer query heads have no transformers key: config.json keeps them under "pinmark", the
// seed dropped, and the weights have each layer's shapes.
TEST_F(Export, QueryHeadsPerLayerStayUnderPinmarkInTheConfig) {
  std::string text = kTwoSequencesCase;
  const std::string seed = "\"pinmark\": {\"seed\": 3}";
  text.replace(text.find(seed), seed.size(), "\"pinmark\": {\"seed\": 3, \"query_heads\": [2, 4]}");
  const std::string out = dir_.file("out");
  ASSERT_EQ(run({"export", file("llama.md", text) + "::small_llama", "--out", out}).status, 0);
  const json config = json::parse(read_file(out + "/config.json"));
  EXPECT_EQ(config["pinmark"], json({{"query_heads", {2, 4}}}));
  const SafetensorsFile weights(out + "/model.safetensors");
  EXPECT_EQ(weights.shape("model.layers.0.self_attn.q_proj.weight"), (Shape{8, 16}));
  EXPECT_EQ(weights.shape("model.layers.1.self_attn.o_proj.weight"), (Shape{16, 16}));
}

TEST_F(Export, KernelCaseInputsAndOutputReproduceTheOp) {
  const std::string path = file("kernels.md", kKernelCases);
  const std::string out = dir_.file("matmul");
  ASSERT_EQ(run({"export", path + " :: matmul", "--out", out}).status, 0);
  const SafetensorsFile inputs(out + "/inputs.safetensors");
  const SafetensorsFile oracle(out + "/oracle.safetensors");
  EXPECT_EQ(inputs.names(), (std::vector<std::string>{"w", "x"}));
  const Tensor<double> x = inputs.read("x"), w = inputs.read("w"), y = oracle.read("output");
  ASSERT_EQ(x.shape, (Shape{3, 17}));
  ASSERT_EQ(w.shape, (Shape{5, 17}));
  ASSERT_EQ(y.shape, (Shape{3, 5}));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) {
      double sum = 0;
      for (int k = 0; k < 17; ++k) sum += x.data[i * 17 + k] * w.data[j * 17 + k];
      EXPECT_NEAR(y.data[i * 5 + j], sum, 1e-12 * (1 + std::abs(sum)));
    }
  auto backend = make_cpu_backend<double>();
  EXPECT_EQ(y.data, run_kernel(spec_of(path, 0).kernel, *backend).data);
  const json index = json::parse(read_file(out + "/index.json"));
  EXPECT_EQ(index["kernel"]["op"], "matmul");
  EXPECT_EQ(index["kernel"]["params"]["k"], 17);

  const std::string rope = dir_.file("rope");
  ASSERT_EQ(run({"export", path + "::rope", "--out", rope}).status, 0);
  EXPECT_EQ(read_i64(rope + "/inputs.safetensors", "positions"), (std::vector<int64_t>{5, 6, 7}));
  EXPECT_EQ(SafetensorsFile(rope + "/inputs.safetensors").shape("x"), (Shape{3, 2, 8}));
}

TEST_F(Export, AFileExportsEachCaseIntoAFolderNamedBySlug) {
  const std::string path = file("kernels.md", kKernelCases);
  const std::string out = dir_.file("all");
  const Result r = run({"export", path, "--out", out});
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(fs::exists(out + "/matmul/oracle.safetensors"));
  EXPECT_TRUE(fs::exists(out + "/rope/oracle.safetensors"));
  const json index = json::parse(read_file(out + "/index.json"));
  ASSERT_EQ(index["cases"].size(), 2u);
  EXPECT_EQ(index["cases"][1]["name"], path + "::rope");
  EXPECT_EQ(index["cases"][1]["folder"], "rope");
}

TEST_F(Export, CheckpointCaseNamesItsFolderAndCopiesItsConfig) {
  fs::create_directories(dir_.file(".git"));
  fs::copy(fs::path(PINMARK_SOURCE_DIR) / "cases/models/checkpoints/gpt2", dir_.file("gpt2"));
  const std::string path =
      file("gpt2.md", "# T\n\n## C\n\n### Config\n\n```json\n{\"pinmark\": {\"checkpoint\": "
                      "\"gpt2\"}}\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[1, 5, 9]]}\n```\n");
  const std::string out = dir_.file("out");
  const Result r = run({"export", path + "::c", "--out", out});
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
  EXPECT_EQ(read_file(out + "/config.json"), read_file(dir_.file("gpt2/config.json")));
  const json index = json::parse(read_file(out + "/index.json"));
  EXPECT_EQ(index["model"]["checkpoint"]["as_the_case_names_it"], "gpt2");
  EXPECT_FALSE(index["model"].contains("weights"));
  EXPECT_EQ(SafetensorsFile(out + "/oracle.safetensors").shape("sequence.0.logits")[0], 3);
}

TEST_F(Export, AnUnknownCaseSaysHowCasesAreNamed) {
  const std::string path = file("llama.md", kTwoSequencesCase);
  Result r = run({"export", path + "::no_such_case", "--out", dir_.file("out")});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "no case '" + path + "::no_such_case'")) << r.err;
  EXPECT_TRUE(contains(r.err, "FILE::slug, as `pinmark list` prints it")) << r.err;
  EXPECT_TRUE(contains(r.err, "that file's cases: small_llama")) << r.err;
  r = run({"export", "small_llama", "--out", dir_.file("out")});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "no case 'small_llama': export takes a case's name")) << r.err;
  EXPECT_FALSE(fs::exists(dir_.file("out")));
}

TEST_F(Export, ACaseThatRendersErrorsIsRefusedByName) {
  const std::string path = file("errors.md", kErrorsCase);
  const Result r = run({"export", path + "::misspelt", "--out", dir_.file("out")});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, path + "::misspelt renders an Errors section (Config, line 1:"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "hiden_size")) << r.err;
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_.path()), fs::directory_iterator()), 1)
      << "only errors.md: no folder, no temporary left";
}

constexpr const char* kRuntimeErrorCase =
    "# G\n\n## Past the positions\n\n### Config\n\n```json\n"
    "{\"model_type\": \"gpt2\", \"vocab_size\": 48, \"n_embd\": 32, \"n_layer\": 1, "
    "\"n_head\": 4, \"n_positions\": 8, \"pinmark\": {\"seed\": 631}}\n```\n\n"
    "### Inputs\n\n```json\n{\"prompts\": [[5, 22, 39, 11, 46, 3]], \"decode\": 4}\n```\n";

TEST_F(Export, ACaseTheRuntimeRefusesIsRefusedByName) {
  const std::string path = file("gpt2.md", kRuntimeErrorCase);
  const Result r = run({"export", path + "::past_the_positions", "--out", dir_.file("out")});
  EXPECT_EQ(r.status, 1) << describe(r);
  // The token fed at decode step 3 is the model's own choice: the message names the step.
  EXPECT_TRUE(contains(r.err, "pinmark: export: " + path +
                                  "::past_the_positions renders an Errors section (the runtime: "
                                  "sequence 0: decode step 3 (token "))
      << describe(r);
  EXPECT_TRUE(contains(r.err, ", chosen at step 2): position 8 is beyond the learned position "
                              "embeddings (n_positions 8)): it has no oracle to export"))
      << r.err;
  EXPECT_FALSE(fs::exists(dir_.file("out")));
}

TEST_F(Export, AFileSkipsItsCasesThatRenderErrorsAndNamesThem) {
  const std::string path = file("mixed.md", std::string(kKernelCases) + "\n" +
                                                std::string(kErrorsCase).substr(5));
  const std::string out = dir_.file("out");
  Result r = run({"export", path, "--out", out});
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "SKIPPED  " + path + "::misspelt renders an Errors section")) << r.out;
  EXPECT_FALSE(fs::exists(out + "/misspelt"));
  const json index = json::parse(read_file(out + "/index.json"));
  EXPECT_EQ(index["cases"].size(), 2u);
  ASSERT_EQ(index["skipped"].size(), 1u);
  EXPECT_EQ(index["skipped"][0]["name"], path + "::misspelt");

  // A file with nothing to export is refused.
  const std::string only_errors = file("errors.md", kErrorsCase);
  r = run({"export", only_errors, "--out", dir_.file("none")});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "no case of " + only_errors + " can be exported: " + only_errors +
                                  "::misspelt renders an Errors section"))
      << r.err;
  EXPECT_FALSE(fs::exists(dir_.file("none")));
}

TEST_F(Export, AnInvalidFileIsRefused) {
  const std::string path = file("bad.md", "# T\n\n## A\n\n## A\n");
  const Result r = run({"export", path, "--out", dir_.file("out")});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "pinmark: export: " + path + ":5: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "(the file is invalid: none of its cases runs)")) << r.err;
}

TEST_F(Export, ANonEmptyOutIsRefusedUnlessForced) {
  const std::string path = file("kernels.md", kKernelCases);
  const std::string out = dir_.file("out");
  fs::create_directories(out);
  write_file(out + "/mine.txt", "keep");
  Result r = run({"export", path + "::matmul", "--out", out});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "--out " + out + " exists and is not empty: pass --force")) << r.err;
  EXPECT_EQ(read_file(out + "/mine.txt"), "keep");

  r = run({"export", path + "::matmul", "--out", out, "--force"});
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_FALSE(fs::exists(out + "/mine.txt"));
  EXPECT_TRUE(fs::exists(out + "/oracle.safetensors"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_.path()), fs::directory_iterator()), 2)
      << "kernels.md and out: the old folder is gone";

  // An empty folder is simply filled.
  fs::create_directories(dir_.file("empty"));
  EXPECT_EQ(run({"export", path + "::rope", "--out", dir_.file("empty")}).status, 0);
}

TEST_F(Export, WriteFailuresAreReported) {
  const std::string path = file("kernels.md", kKernelCases);
  write_file(dir_.file("a_file"), "x");
  Result r = run({"export", path + "::matmul", "--out", dir_.file("a_file")});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "exists and is not a folder")) << r.err;
  r = run({"export", path + "::matmul", "--out", dir_.file("a_file/sub/out")});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "pinmark: export: cannot create " + dir_.file("a_file/sub"))) << r.err;
}

TEST_F(Export, UsageAndHelp) {
  Result r = run({"export", "x.md::y"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "export takes one CASE and --out DIR")) << r.err;
  r = run({"export", "a.md::b", "c.md::d", "--out", "o"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "not 2 cases")) << r.err;
  r = run({"export", "--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(contains(r.out, "usage: pinmark export CASE --out DIR [--force]")) << r.out;
  r = run({"--help"});
  EXPECT_TRUE(contains(r.out, "pinmark export CASE --out DIR")) << r.out;
  r = run({"list", "--out", "o"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "unknown option '--out' for list")) << r.err;
}

// tools/check_export.py reads the export with Python's standard library alone (what CI has).
TEST_F(Export, ThePythonStandardLibraryCheckerAcceptsTheExportAndCatchesAWrongIndex) {
  if (std::system("python3 -c 'import json, struct' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no python3 here";
  const std::string path = file("llama.md", kTwoSequencesCase);
  const std::string out = dir_.file("out");
  ASSERT_EQ(run({"export", path + "::small_llama", "--out", out}).status, 0);
  const std::string check = "python3 " + std::string(PINMARK_SOURCE_DIR) + "/tools/check_export.py " +
                            out + " >" + dir_.file("log") + " 2>&1";
  EXPECT_EQ(std::system(check.c_str()), 0) << read_file(dir_.file("log"));
  EXPECT_TRUE(contains(read_file(dir_.file("log")), "OK " + out + ": ")) << read_file(dir_.file("log"));

  json index = json::parse(read_file(out + "/index.json"));
  for (json& f : index["files"])
    if (f["file"] == "oracle.safetensors")
      for (json& t : f["tensors"])
        if (t["name"] == "sequence.1.logits") t["shape"] = {3, 32};
  write_file(out + "/index.json", index.dump());
  EXPECT_NE(std::system(check.c_str()), 0);
  EXPECT_TRUE(contains(read_file(dir_.file("log")),
                       "FAIL " + out + "/oracle.safetensors: sequence.1.logits is F64 [2, 32], "
                       "index.json says F64 [3, 32]"))
      << read_file(dir_.file("log"));
}

TEST(SafetensorsWriter, RoundTripsThroughTheReaderAndRefusesDuplicates) {
  test::TempDir dir;
  SafetensorsWriter w;
  w.add_f64("a", {2, 2}, {1, -2.5, 1e-300, 3});
  w.add_f32("b", {3}, {0.1f, 2, -4});
  w.add_i64("c", {2}, {-1, 1LL << 40});
  w.add_f64("empty", {0, 4}, {});
  w.set_metadata("format", "pt");
  w.write(dir.file("t.safetensors"));
  const SafetensorsFile f(dir.file("t.safetensors"));
  EXPECT_EQ(f.read("a").data, (std::vector<double>{1, -2.5, 1e-300, 3}));
  EXPECT_EQ(f.read("b").data, (std::vector<double>{0.1f, 2, -4}));
  EXPECT_EQ(f.shape("empty"), (Shape{0, 4}));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(read_i64(dir.file("t.safetensors"), "c"), (std::vector<int64_t>{-1, 1LL << 40}));
  // The data starts 8-aligned.
  const std::string bytes = read_file(dir.file("t.safetensors"));
  EXPECT_EQ(bytes[0] % 8, 0);
  try {
    w.add_f64("a", {1}, {1});
    FAIL() << "a duplicate was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "tensor 'a' added twice");
  }
  try {
    w.add_f64("d", {3}, {1});
    FAIL() << "a short tensor was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "tensor 'd' has 1 values, its shape [3] needs 3");
  }
  try {
    w.write(dir.file("no/such/folder/t.safetensors"));
    FAIL() << "a write into a missing folder succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "cannot write " + dir.file("no/such/folder/t.safetensors")));
  }
}

}  // namespace
}  // namespace pinmark
