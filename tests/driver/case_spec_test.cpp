// read_case_spec: what a case asks for, and every problem with its input sections, each naming
// the section and the line inside its code block.
#include "driver/case_spec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "driver/render.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::contains;
using test::line_of;

// A file with one case made of the given sections.
std::string one_case(const std::string& sections) { return "# T\n\n## The case\n\n" + sections; }

std::string config_section(const std::string& body) {
  return "### Config\n\n```json\n" + body + "```\n\n";
}

std::string inputs_section(const std::string& body) {
  return "### Inputs\n\n```json\n" + body + "```\n\n";
}

const std::string kConfig =
    "{\n"
    "  \"vocab_size\": 32,\n"
    "  \"hidden_size\": 16,\n"
    "  \"intermediate_size\": 24,\n"
    "  \"num_hidden_layers\": 1,\n"
    "  \"num_attention_heads\": 4\n"
    "}\n";

const std::string kInputs = "{\"prompts\": [[1, 2, 3]], \"decode\": 2}\n";

// `text` with the first `from` replaced by `to`.
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  if (at == std::string::npos) throw std::runtime_error("'" + from + "' not found");
  return text.replace(at, from.size(), to);
}

Case parse_only_case(const std::string& markdown) {
  CaseFile file = parse_case_file(markdown);
  EXPECT_TRUE(file.problems.empty()) << file.problems.front().message;
  return file.cases.at(0);
}

std::string all_problems(const CaseSpec& spec) {
  std::string out;
  for (const CaseProblem& p : spec.problems)
    out += problem_line(p) + "  [file line " + std::to_string(p.file_line) + "]\n";
  return out;
}

// The problem whose message contains `text`; fails the test when there is none.
const CaseProblem* find_problem(const CaseSpec& spec, const std::string& text) {
  for (const CaseProblem& p : spec.problems)
    if (contains(p.message, text)) return &p;
  ADD_FAILURE() << "no problem mentions \"" << text << "\"; problems:\n" << all_problems(spec);
  return nullptr;
}

// "Config, line N" where N counts from the first line inside the block that holds `needle`.
std::string where_in_block(const std::string& markdown, const std::string& section,
                           const std::string& needle) {
  const size_t heading = markdown.find("### " + section);
  const int fence = line_of(markdown, "```json", heading);
  const int line = line_of(markdown, needle, heading);
  return section + ", line " + std::to_string(line - fence);
}

TEST(CaseSpec, ReadsAValidModelCase) {
  CaseSpec spec =
      read_case_spec(parse_only_case(one_case(config_section(kConfig) + inputs_section(kInputs))));
  EXPECT_TRUE(spec.problems.empty()) << all_problems(spec);
  EXPECT_EQ(spec.kind, CaseSpec::Kind::model);
  EXPECT_EQ(spec.model.vocab_size, 32);
  EXPECT_EQ(spec.model.hidden_size, 16);
  EXPECT_EQ(spec.model.num_attention_heads, 4);
  EXPECT_EQ(spec.model.num_key_value_heads, 4);  // MHA by default
  EXPECT_EQ(spec.model.head_dim, 4);             // 16 / 4
  ASSERT_EQ(spec.inputs.prompts.size(), 1u);
  EXPECT_EQ(spec.inputs.prompts[0], (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(spec.inputs.decode, 2);
}

TEST(CaseSpec, ReadsAValidKernelCase) {
  CaseSpec spec = read_case_spec(parse_only_case(one_case(
      "### Kernel\n\n```json\n{\"op\": \"rmsnorm\", \"rows\": 3, \"dim\": 16, \"seed\": 4}\n```\n")));
  EXPECT_TRUE(spec.problems.empty()) << all_problems(spec);
  EXPECT_EQ(spec.kind, CaseSpec::Kind::kernel);
  EXPECT_EQ(spec.kernel.op, "rmsnorm");
  EXPECT_EQ(spec.kernel.seed, 4u);
  EXPECT_EQ(spec.kernel.params.at("dim"), 16);
}

TEST(CaseSpec, UnknownConfigKeySuggestsTheClosestKey) {
  const std::string md = one_case(
      config_section(replaced(kConfig, "\"hidden_size\"", "\"hiden_size\"")) +
      inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  EXPECT_EQ(spec.kind, CaseSpec::Kind::invalid);
  const CaseProblem* p = find_problem(spec, "unknown config key 'hiden_size'");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "did you mean 'hidden_size'?")) << p->message;
  EXPECT_EQ(p->where, where_in_block(md, "Config", "\"hiden_size\""));
  EXPECT_EQ(p->where, "Config, line 3");
  EXPECT_EQ(p->file_line, line_of(md, "\"hiden_size\""));
  // The real key is then missing.
  EXPECT_TRUE(find_problem(spec, "missing required key 'hidden_size'"));
}

TEST(CaseSpec, UnknownPinmarkKeyListsTheKnownOnes) {
  const std::string md = one_case(
      config_section(replaced(kConfig, "\"num_attention_heads\": 4",
                              "\"num_attention_heads\": 4,\n  \"pinmark\": {\"checkpont\": \"x\"}")) +
      inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  EXPECT_EQ(spec.kind, CaseSpec::Kind::invalid);
  const CaseProblem* p = find_problem(spec, "unknown pinmark key 'checkpont'");
  ASSERT_TRUE(p);
  // A misspelt key is found among what the section accepts, checkpoint included.
  for (const char* known : {"seed", "kv_shared_layers", "mla_absorb", "query_heads", "checkpoint"})
    EXPECT_TRUE(contains(p->message, known)) << p->message;
  EXPECT_EQ(p->file_line, line_of(md, "\"checkpont\""));
}

// transformers' modeling code never reads a key far from every key it reads, so it changes
// nothing there: the case runs, and the rendered case lists the key as ignored.
TEST(CaseSpec, UnknownKeyFarFromAnyKnownKeyIsAccepted) {
  const std::string md = one_case(
      config_section(replaced(kConfig, "{\n", "{\n  \"quantum_flux\": 3,\n")) +
      inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  EXPECT_TRUE(spec.problems.empty()) << all_problems(spec);
  EXPECT_EQ(spec.kind, CaseSpec::Kind::model);
}

TEST(CaseSpec, MissingRequiredKey) {
  const std::string md = one_case(
      config_section(replaced(kConfig, "  \"intermediate_size\": 24,\n", "")) +
      inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "missing required key 'intermediate_size'");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->where, "Config, line 1");
  EXPECT_EQ(spec.problems.size(), 1u) << all_problems(spec);
}

TEST(CaseSpec, WrongType) {
  const std::string md = one_case(
      config_section(replaced(kConfig, "\"num_hidden_layers\": 1", "\"num_hidden_layers\": \"two\"")) +
      inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "num_hidden_layers must be an integer");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "\"two\"")) << p->message;
  EXPECT_EQ(p->where, where_in_block(md, "Config", "\"num_hidden_layers\""));
  EXPECT_EQ(p->file_line, line_of(md, "\"num_hidden_layers\""));
}

TEST(CaseSpec, UnsupportedValue) {
  const std::string md = one_case(
      config_section(replaced(kConfig, "  \"num_attention_heads\": 4\n",
                              "  \"num_attention_heads\": 4,\n  \"hidden_act\": \"gelu\"\n")) +
      inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "hidden_act");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "\"gelu\" is not supported")) << p->message;
  EXPECT_TRUE(contains(p->message, "silu")) << p->message;
  EXPECT_EQ(p->where, "Config, line 7");
}

TEST(CaseSpec, IgnoredHuggingFaceKeysAreAccepted) {
  const std::string md = one_case(
      config_section(replaced(kConfig, "{\n",
                              "{\n  \"torch_dtype\": \"bfloat16\",\n  \"eos_token_id\": 2,\n"
                              "  \"hidden_act\": \"silu\",\n  \"rope_scaling\": null,\n")) +
      inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  EXPECT_TRUE(spec.problems.empty()) << all_problems(spec);
  EXPECT_EQ(spec.kind, CaseSpec::Kind::model);
}

TEST(CaseSpec, HiddenSizeNotDivisibleByHeads) {
  const std::string md = one_case(
      config_section(replaced(kConfig, "\"hidden_size\": 16", "\"hidden_size\": 18")) +
      inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "not divisible");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "hidden_size (18)")) << p->message;
  EXPECT_TRUE(contains(p->message, "num_attention_heads (4)")) << p->message;
  EXPECT_EQ(p->where, where_in_block(md, "Config", "\"hidden_size\""));
}

TEST(CaseSpec, HeadsNotDivisibleByKeyValueHeads) {
  const std::string md = one_case(
      config_section(replaced(kConfig, "  \"num_attention_heads\": 4\n",
                              "  \"num_attention_heads\": 4,\n  \"num_key_value_heads\": 3\n")) +
      inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "not divisible");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "num_attention_heads (4)")) << p->message;
  EXPECT_TRUE(contains(p->message, "num_key_value_heads (3)")) << p->message;
  EXPECT_EQ(p->where, where_in_block(md, "Config", "\"num_key_value_heads\""));
  EXPECT_EQ(p->file_line, line_of(md, "\"num_key_value_heads\""));
}

TEST(CaseSpec, InvalidJsonTrailingCommaNamesTheCommaLine) {
  // The parser stops at the closing brace (line 7 of the block); the comma to remove is on
  // line 6, and that is the line named.
  const std::string md = one_case(
      config_section(replaced(kConfig, "\"num_attention_heads\": 4\n", "\"num_attention_heads\": 4,\n")) +
      inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "invalid JSON");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->message.rfind("invalid JSON: ", 0), 0u) << p->message;
  EXPECT_FALSE(contains(p->message, "[json.exception")) << p->message;
  EXPECT_TRUE(contains(p->message, "trailing comma")) << p->message;
  EXPECT_EQ(p->where, "Config, line 6");
  EXPECT_EQ(p->file_line, line_of(md, "\"num_attention_heads\": 4,"));
  EXPECT_EQ(spec.problems.size(), 1u) << all_problems(spec);
}

TEST(CaseSpec, InvalidJsonNamesTheLineOfTheBadToken) {
  const std::string md = one_case(
      config_section(replaced(kConfig, "\"num_hidden_layers\": 1", "\"num_hidden_layers\": 1 2")) +
      inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "invalid JSON");
  ASSERT_TRUE(p);
  EXPECT_FALSE(contains(p->message, "trailing comma")) << p->message;
  EXPECT_EQ(p->where, "Config, line 5");
  EXPECT_EQ(p->file_line, line_of(md, "\"num_hidden_layers\": 1 2"));
}

TEST(CaseSpec, InvalidJsonOnItsFirstLine) {
  const std::string md = one_case(config_section("{vocab_size: 32}\n") + inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "invalid JSON");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->where, "Config, line 1");
  EXPECT_EQ(p->file_line, line_of(md, "{vocab_size"));
}

TEST(CaseSpec, InvalidJsonAtTheEndOfTheBlockNamesALineInsideIt) {
  // An unterminated object fails at the end of input: the line named must be one of the
  // block's three lines (the last), not the closing fence after it.
  const std::string md =
      one_case("### Kernel\n\n```json\n{\n  \"op\": \"swiglu\",\n  \"n\": 4\n```\n");
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "invalid JSON");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->where, "Kernel, line 3");
  EXPECT_EQ(p->file_line, line_of(md, "\"n\": 4"));
}

TEST(CaseSpec, TopLevelMustBeAnObject) {
  const std::string md = one_case(config_section(kConfig) + inputs_section("[[1, 2]]\n"));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "must hold a JSON object");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->where, "Inputs, line 1");
}

TEST(CaseSpec, BlockMustBeMarkedJson) {
  const std::string md = one_case("### Config\n\n```yaml\nvocab_size: 32\n```\n\n" +
                                  inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "marked 'yaml'");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "```json")) << p->message;
  EXPECT_EQ(p->where, "### Config");
  EXPECT_EQ(p->file_line, line_of(md, "```yaml"));
}

TEST(CaseSpec, SectionWithoutCodeBlock) {
  const std::string md = one_case("### Config\n\nJust words.\n\n" + inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "no ```json code block");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->where, "### Config");
  EXPECT_EQ(p->file_line, line_of(md, "### Config"));
}

TEST(CaseSpec, TwoJsonBlocks) {
  const std::string md = one_case("### Config\n\n```json\n" + kConfig + "```\n\nand\n\n```json\n{}\n```\n\n" +
                                  inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "2 code blocks");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->where, "### Config");
  EXPECT_EQ(p->file_line, line_of(md, "```json\n{}"));
}

TEST(CaseSpec, UnknownSectionSuggestsTheClosestName) {
  const std::string md = one_case("### Confg\n\n```json\n" + kConfig + "```\n\n" + inputs_section(kInputs));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "unknown section 'Confg'");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "did you mean 'Config'?")) << p->message;
  EXPECT_EQ(p->where, "### Confg");
  EXPECT_EQ(p->file_line, line_of(md, "### Confg"));
  EXPECT_TRUE(find_problem(spec, "missing section 'Config'"));
}

TEST(CaseSpec, ConfigWithoutInputs) {
  const std::string md = one_case(config_section(kConfig));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "missing section 'Inputs'");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->where, "## The case");
  EXPECT_EQ(p->file_line, line_of(md, "## The case"));
  EXPECT_EQ(spec.problems.size(), 1u) << all_problems(spec);
}

TEST(CaseSpec, HeadingOnlyCaseHasNoInput) {
  CaseSpec spec = read_case_spec(parse_only_case("# T\n\n## Lonely\n"));
  const CaseProblem* p = find_problem(spec, "no input");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->where, "## Lonely");
  EXPECT_EQ(p->file_line, 3);
  EXPECT_EQ(spec.kind, CaseSpec::Kind::invalid);
}

TEST(CaseSpec, KernelTogetherWithConfig) {
  const std::string md = one_case(config_section(kConfig) + inputs_section(kInputs) +
                                  "### Kernel\n\n```json\n{\"op\": \"swiglu\", \"n\": 4}\n```\n");
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "not both");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->where, "### Kernel");
  EXPECT_EQ(p->file_line, line_of(md, "### Kernel"));
}

TEST(CaseSpec, UnknownKernelOp) {
  const std::string md = one_case("### Kernel\n\n```json\n{\n  \"seed\": 1,\n  \"op\": \"conv2d\"\n}\n```\n");
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "unknown op 'conv2d'");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "matmul")) << p->message;
  EXPECT_EQ(p->where, "Kernel, line 3");
  EXPECT_EQ(p->file_line, line_of(md, "\"op\""));
}

TEST(CaseSpec, KernelMissingParameter) {
  const std::string md = one_case("### Kernel\n\n```json\n{\"op\": \"matmul\", \"n\": 2, \"k\": 3}\n```\n");
  CaseSpec spec = read_case_spec(parse_only_case(md));
  EXPECT_TRUE(find_problem(spec, "missing parameter 'm'"));
}

TEST(CaseSpec, TokenOutsideTheVocabulary) {
  const std::string md = one_case(config_section(kConfig) +
                                  inputs_section("{\n  \"prompts\": [[1, 2], [3, 4, 32]]\n}\n"));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "outside the vocabulary");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "sequence 1, token 2: id 32")) << p->message;
  EXPECT_TRUE(contains(p->message, "vocab_size 32")) << p->message;
  EXPECT_EQ(p->where, "Inputs, line 2");
  EXPECT_EQ(p->file_line, line_of(md, "\"prompts\""));
  EXPECT_EQ(spec.problems.size(), 1u) << all_problems(spec);
}

TEST(CaseSpec, NegativeTokenIsOutsideTheVocabulary) {
  const std::string md = one_case(config_section(kConfig) + inputs_section("{\"prompts\": [[-1]]}\n"));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "outside the vocabulary");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "sequence 0, token 0: id -1")) << p->message;
}

TEST(CaseSpec, EmptyPrompt) {
  const std::string md = one_case(config_section(kConfig) + inputs_section("{\"prompts\": [[1], []]}\n"));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "empty prompt");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "sequence 1")) << p->message;
  EXPECT_EQ(p->where, "Inputs, line 1");
}

TEST(CaseSpec, NegativeDecode) {
  const std::string md = one_case(config_section(kConfig) +
                                  inputs_section("{\n  \"prompts\": [[1]],\n  \"decode\": -1\n}\n"));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "decode must be a non-negative integer");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "-1")) << p->message;
  EXPECT_EQ(p->where, "Inputs, line 3");
}

TEST(CaseSpec, UnknownInputKey) {
  const std::string md = one_case(config_section(kConfig) + inputs_section("{\"prompt\": [[1]]}\n"));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  const CaseProblem* p = find_problem(spec, "unknown input key 'prompt'");
  ASSERT_TRUE(p);
  EXPECT_TRUE(contains(p->message, "did you mean 'prompts'?")) << p->message;
  EXPECT_TRUE(find_problem(spec, "missing required key 'prompts'"));
}

TEST(CaseSpec, ProblemsAreSortedByFileLine) {
  // Inputs comes first in the file, Config second; both have problems, and the Config block
  // has two, the second of which comes first in the block.
  const std::string config =
      "{\n"
      "  \"vocab_size\": 32,\n"
      "  \"hidden_size\": 16,\n"
      "  \"intermediate_size\": 24,\n"
      "  \"num_hidden_layers\": 1,\n"
      "  \"num_attention_heads\": 4,\n"
      "  \"rope_thetaa\": 1,\n"
      "  \"rms_norm_epz\": 2\n"
      "}\n";
  const std::string md = one_case(inputs_section("{\"prompts\": [[1]], \"decod\": 1}\n") +
                                  config_section(config));
  CaseSpec spec = read_case_spec(parse_only_case(md));
  ASSERT_EQ(spec.problems.size(), 3u) << all_problems(spec);
  EXPECT_TRUE(contains(spec.problems[0].message, "'decod'")) << all_problems(spec);
  EXPECT_TRUE(contains(spec.problems[1].message, "'rope_thetaa'")) << all_problems(spec);
  EXPECT_TRUE(contains(spec.problems[2].message, "'rms_norm_epz'")) << all_problems(spec);
  for (size_t i = 1; i < spec.problems.size(); ++i)
    EXPECT_LE(spec.problems[i - 1].file_line, spec.problems[i].file_line);
}

TEST(CaseSpec, FileLineIsTheAbsoluteLineInTheFile) {
  // The second case of a file: `where` counts inside the block, file_line counts in the file.
  const std::string first = "## First\n\n" + config_section(kConfig) + inputs_section(kInputs);
  const std::string second =
      "## Second\n\nprose\n\n" +
      config_section(replaced(kConfig, "\"num_hidden_layers\"", "\"num_hiden_layers\"")) +
      inputs_section(kInputs);
  const std::string md = "# T\n\n" + first + second;
  CaseFile file = parse_case_file(md);
  ASSERT_EQ(file.cases.size(), 2u);
  EXPECT_TRUE(read_case_spec(file.cases[0]).problems.empty());
  CaseSpec spec = read_case_spec(file.cases[1]);
  const CaseProblem* p = find_problem(spec, "unknown config key 'num_hiden_layers'");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->where, "Config, line 5");
  EXPECT_EQ(p->file_line, line_of(md, "\"num_hiden_layers\""));
  EXPECT_GT(p->file_line, line_of(md, "## Second"));
}

TEST(CaseSpec, OutputSectionsAreNotInputs) {
  const std::string md = one_case(config_section(kConfig) + inputs_section(kInputs) +
                                  "### Logits\n\nwhatever\n\n### Errors\n\nold errors\n");
  CaseSpec spec = read_case_spec(parse_only_case(md));
  EXPECT_TRUE(spec.problems.empty()) << all_problems(spec);
  EXPECT_EQ(spec.kind, CaseSpec::Kind::model);
}

TEST(ProblemLine, JoinsWhereAndMessage) {
  EXPECT_EQ(problem_line({"Config, line 3", 12, "unknown config key 'x'"}),
            "Config, line 3: unknown config key 'x'");
  EXPECT_EQ(problem_line({"", 0, "just a message"}), "just a message");
}

}  // namespace
}  // namespace pinmark
