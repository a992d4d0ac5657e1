// pinmark docs: the goldens compiled into docs/behavior/ and llms.txt, and --check, which keeps
// them current like a golden.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "driver/command_line.h"
#include "driver/docs_export.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::read_file;
using test::TempDir;
using test::write_file;

// A golden as pinmark writes one: a model case with its outputs, a kernel case, an Errors case.
const char* kModelFile = R"(# Tiny models

Prose about the whole file, kept verbatim: `x = x + attn(x)`.

More prose.

## GQA, two KV heads

Why this case exists.

### Config

```json
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 8,
 "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "rope_theta": 500000.0,
 "torch_dtype": "bfloat16", "pinmark": {"seed": 7}}
```

### Inputs

```json
{"prompts": [[1, 2, 3]], "decode": 2}
```

### Logits

The fp64 oracle's logits at the last prompt position of each sequence.

```text
sequence 0, position 2:
[ 0]    0.25   -0.5   0.875   2.0   0.375   0.8125   -1.25   3.5
```

### Tokens

Each prompt, then `|`, then its greedy continuation.

```text
sequence 0: 1 2 3 | 7 3
```

### Dumps

| tap | shape | mean | rms | min | max | first values |
| --- | --- | ---: | ---: | ---: | ---: | --- |
| `embed` | [3, 16] | 0 | 1 | -1 | 1 | 0 |
| `logits` | [3, 8] | 0 | 1 | -1 | 1 | 0 |

### Numerics

| target | rel L2 | max abs | KL | top-1 | reproducible | tolerance | verdict | first divergence |
| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |
| cpu fp32 | ≤ 5e-07 | ≤ 2e-06 | ≤ 1e-13 | 3/3 | yes | 1.5e-05 | ok | — |
| cpu bf16 | ≤ 2e-02 | ≤ 5e-02 | ≤ 5e-05 | 3/3 | yes | 8.1e-02 | ok | layers.1.q |

## Softmax kernel

### Kernel

```json
{"op": "softmax", "rows": 2, "len": 4, "seed": 3}
```

## Missing hidden_size

### Config

```json
{"vocab_size": 8}
```

### Inputs

```json
{"prompts": [[1]]}
```

### Errors

```text
Config, line 1: missing required key 'hidden_size'
```
)";

class DocsExport : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.file("cases/models"));
    fs::create_directories(dir_.file("docs"));
    write_file(dir_.file("cases/models/tiny.md"), kModelFile);
    write_file(dir_.file("README.md"), "# pinmark\n\nThe readme's first sentence. Another one.\n");
    write_file(dir_.file("docs/numerics.md"), "# The numerics policy\n\nHow tolerances come about.\n");
  }
  int docs(bool check) {
    out_.str("");
    err_.str("");
    return docs_command(dir_.path(), check, out_, err_);
  }
  TempDir dir_;
  std::ostringstream out_, err_;
};

TEST_F(DocsExport, OnePagePerCaseFileWithProseSetupAndSummarisedNumbers) {
  ASSERT_EQ(docs(false), 0) << err_.str();
  const std::string page = read_file(dir_.file("docs/behavior/models/tiny.md"));
  // Title and prose verbatim, each case's title and prose.
  EXPECT_EQ(page.rfind("# Tiny models\n", 0), 0u) << page;
  EXPECT_TRUE(contains(page, "Prose about the whole file, kept verbatim: `x = x + attn(x)`.\n\nMore prose.\n"));
  EXPECT_TRUE(contains(page, "\n## GQA, two KV heads\n\nWhy this case exists.\n"));
  // The config in a sentence, boilerplate keys left out.
  EXPECT_TRUE(contains(page, "`LlamaForCausalLM` (`llama`): 2 layers, hidden size 16, intermediate size 32, "
                             "4 query heads over 2 KV heads, vocabulary 8; also `rope_theta: 500000.0`; "
                             "synthetic weights, seed 7; 1 prompt of 3 tokens, 2 decode steps."))
      << page;
  EXPECT_FALSE(contains(page, "torch_dtype"));
  // Numbers summarised: the top logits, the greedy tokens, a verdict per target.
  EXPECT_TRUE(contains(page, "sequence 0, position 2: 7 (3.5), 3 (2.0), 2 (0.875)")) << page;
  EXPECT_TRUE(contains(page, "sequence 0 continues with 7 3"));
  EXPECT_TRUE(contains(page, "cpu fp32 ok (rel L2 ≤ 5e-07 against 1.5e-05, top-1 3/3)"));
  EXPECT_TRUE(contains(page, "cpu bf16 ok (rel L2 ≤ 2e-02 against 8.1e-02, top-1 3/3, first divergence layers.1.q)"));
  EXPECT_TRUE(contains(page, "2 tensors (`embed` to `logits`)"));
  EXPECT_FALSE(contains(page, "0.8125")) << "the logits are summarised, not dumped";
  EXPECT_FALSE(contains(page, "| `embed`")) << "the dumps are summarised, not dumped";
  // The kernel and the rejected config.
  EXPECT_TRUE(contains(page, "Kernel `softmax` with `len: 4`, `rows: 2`, `seed: 3`."));
  EXPECT_TRUE(contains(page, "**Rejected with:** `Config, line 1: missing required key 'hidden_size'`"));
  // Links back to the case file and heading.
  EXPECT_TRUE(contains(page, "[`cases/models/tiny.md` line 7, `gqa_two_kv_heads`](../../../cases/models/tiny.md#gqa-two-kv-heads)"))
      << page;
}

TEST_F(DocsExport, ACheckpointCaseIsSummarisedFromItsConfigJson) {
  fs::create_directories(dir_.file("cases/models/checkpoints/tiny"));
  write_file(dir_.file("cases/models/checkpoints/tiny/config.json"),
             R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "num_hidden_layers": 1,
                 "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 16, "torch_dtype": "float32"})");
  write_file(dir_.file("cases/models/ckpt.md"),
             "# Checkpoints\n\n## Tiny\n\n### Config\n\n```json\n"
             "{\"pinmark\": {\"checkpoint\": \"checkpoints/tiny\"}}\n```\n\n"
             "### Inputs\n\n```json\n{\"prompts\": [[1, 2], [3]]}\n```\n");
  ASSERT_EQ(docs(false), 0) << err_.str();
  const std::string page = read_file(dir_.file("docs/behavior/models/ckpt.md"));
  EXPECT_TRUE(contains(page, "- **Setup:** The checkpoint `checkpoints/tiny`, `Qwen3ForCausalLM` (`qwen3`): "
                             "1 layer, hidden size 8, 2 query heads, vocabulary 16; 2 prompts of 2, 1 tokens.\n"))
      << page;
}

TEST_F(DocsExport, LlmsTxtIndexesTheDocsAndThePages) {
  ASSERT_EQ(docs(false), 0) << err_.str();
  const std::string llms = read_file(dir_.file("llms.txt"));
  EXPECT_EQ(llms.rfind("# pinmark\n\n> ", 0), 0u) << llms;
  EXPECT_TRUE(contains(llms, "\n## Docs\n\n- [pinmark](README.md): The readme's first sentence.\n"
                             "- [The numerics policy](docs/numerics.md): How tolerances come about.\n"))
      << llms;
  EXPECT_TRUE(contains(llms, "\n## Behavior: models\n\n- [Tiny models](docs/behavior/models/tiny.md): "
                             "Prose about the whole file, kept verbatim: `x = x + attn(x)`.\n"))
      << llms;
}

TEST_F(DocsExport, CheckPassesOnCurrentFilesAndNamesEachStaleOne) {
  EXPECT_EQ(docs(true), 1);
  EXPECT_TRUE(contains(out_.str(), "STALE   docs/behavior/models/tiny.md: missing")) << out_.str();
  EXPECT_TRUE(contains(err_.str(), "2 of the generated files are stale: run pinmark docs")) << err_.str();
  EXPECT_FALSE(fs::exists(dir_.file("llms.txt"))) << "--check writes nothing";

  ASSERT_EQ(docs(false), 0) << err_.str();
  EXPECT_TRUE(contains(out_.str(), "WROTE   llms.txt"));
  EXPECT_EQ(docs(true), 0) << out_.str() << err_.str();
  EXPECT_TRUE(contains(out_.str(), "1 pages and llms.txt are current"));
  EXPECT_EQ(docs(false), 0);
  EXPECT_FALSE(contains(out_.str(), "WROTE")) << "nothing changed, nothing written";

  // The case file's prose changes: its page is stale, llms.txt (first sentence unchanged) is not.
  std::string text = kModelFile;
  text.replace(text.find("Why this case exists."), 21, "Why it exists now.");
  write_file(dir_.file("cases/models/tiny.md"), text);
  EXPECT_EQ(docs(true), 1);
  EXPECT_EQ(out_.str(), "STALE   docs/behavior/models/tiny.md: differs from what pinmark docs generates\n");
  EXPECT_TRUE(contains(err_.str(), "1 of the generated files is stale")) << err_.str();

  // A page no case file generates is stale too, and pinmark docs removes it.
  ASSERT_EQ(docs(false), 0);
  write_file(dir_.file("docs/behavior/models/gone.md"), "# Gone\n");
  EXPECT_EQ(docs(true), 1);
  EXPECT_TRUE(contains(out_.str(), "STALE   docs/behavior/models/gone.md: no case file generates it"));
  EXPECT_EQ(docs(false), 0);
  EXPECT_TRUE(contains(out_.str(), "REMOVED docs/behavior/models/gone.md"));
  EXPECT_FALSE(fs::exists(dir_.file("docs/behavior/models/gone.md")));
  EXPECT_EQ(docs(true), 0);
}

TEST_F(DocsExport, AnInvalidCaseFileIsNamedWithItsLineAndNothingIsWritten) {
  write_file(dir_.file("cases/models/bad.md"), "# Bad\n\n## One\n\ntext\n\n## One\n\ntext\n");
  EXPECT_EQ(docs(false), 2);
  EXPECT_TRUE(contains(err_.str(), "pinmark docs: cases/models/bad.md:7: ")) << err_.str();
  EXPECT_FALSE(fs::exists(dir_.file("llms.txt")));
}

TEST_F(DocsExport, NoCasesFolderIsAnError) {
  fs::remove_all(dir_.file("cases"));
  EXPECT_EQ(docs(true), 2);
  EXPECT_TRUE(contains(err_.str(), "no such file or directory: ")) << err_.str();
}

TEST_F(DocsExport, AFileThatCannotBeWrittenIsAnError) {
  fs::create_directories(dir_.file("llms.txt"));  // a folder where the index goes
  EXPECT_EQ(docs(false), 2);
  EXPECT_TRUE(contains(err_.str(), "pinmark docs: ")) << err_.str();
  EXPECT_TRUE(contains(err_.str(), "llms.txt")) << err_.str();
}

TEST(DocsAnchor, FollowsGitHub) {
  EXPECT_EQ(github_anchor("GQA, four query heads over two KV heads"), "gqa-four-query-heads-over-two-kv-heads");
  EXPECT_EQ(github_anchor("A config.json pasted from the Hub, shrunk"), "a-configjson-pasted-from-the-hub-shrunk");
  EXPECT_EQ(github_anchor("`rope_theta` = 1e6"), "rope_theta--1e6");
}

TEST(DocsCommandLine, HelpAndUsageErrors) {
  std::ostringstream out, err;
  EXPECT_EQ(run_command_line({"docs", "--help"}, out, err), 0);
  EXPECT_TRUE(contains(out.str(), "usage: pinmark docs [--check]")) << out.str();
  EXPECT_TRUE(contains(out.str(), "--check"));
  out.str("");
  EXPECT_EQ(run_command_line({"--help"}, out, err), 0);
  EXPECT_TRUE(contains(out.str(), "pinmark docs [--check]"));
  out.str("");
  err.str("");
  EXPECT_EQ(run_command_line({"docs", "cases"}, out, err), 2);
  EXPECT_TRUE(contains(err.str(), "pinmark: docs takes no paths (it reads cases/ of the current folder), not 'cases'"))
      << err.str();
  err.str("");
  EXPECT_EQ(run_command_line({"docs", "--filter", "x"}, out, err), 2);
  EXPECT_TRUE(contains(err.str(), "pinmark: unknown option '--filter' for docs")) << err.str();
  err.str("");
  EXPECT_EQ(run_command_line({"run", "--check"}, out, err), 2);
  EXPECT_TRUE(contains(err.str(), "pinmark: unknown option '--check' for run")) << err.str();
}

}  // namespace
}  // namespace pinmark
