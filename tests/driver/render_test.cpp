// render_case and assemble_file: input sections and prose verbatim, output sections rendered
// from scratch in a fixed order, and a rendered file that renders to itself.
#include "driver/render.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::contains;

const std::string kTinyModelCase =
    "## Tiny model\n\n"
    "A model small enough to run in a moment.\n\n"
    "### Config\n\n"
    "```json\n"
    "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 24,\n"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,\n"
    " \"pinmark\": {\"seed\": 3}}\n"
    "```\n\n"
    "### Inputs\n\n"
    "```json\n"
    "{\"prompts\": [[1, 5, 9], [2, 7]], \"decode\": 2, \"dumps\": [\"layers.0.*\"]}\n"
    "```\n";

const std::string kKernelCase =
    "## Tiny kernel\n\n"
    "### Kernel\n\n"
    "```json\n"
    "{\"op\": \"rmsnorm\", \"rows\": 2, \"dim\": 8, \"seed\": 5}\n"
    "```\n";

// Every case of `text` run and rendered, the file assembled again.
std::string render_file(const std::string& text) {
  CaseFile file = parse_case_file(text);
  EXPECT_TRUE(file.problems.empty()) << file.problems.front().message;
  std::vector<std::string> cases;
  for (const Case& c : file.cases) cases.push_back(render_case(c, run_case(read_case_spec(c))));
  return assemble_file(file.preamble, cases);
}

// The only case of `text`, run and rendered.
std::string render_only_case(const std::string& text) {
  CaseFile file = parse_case_file(text);
  EXPECT_TRUE(file.problems.empty()) << file.problems.front().message;
  const Case& c = file.cases.at(0);
  return render_case(c, run_case(read_case_spec(c)));
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST(Render, RenderingIsIdempotent) {
  const std::string original = "# Render\n\nFile prose.\n\n" + kTinyModelCase + "\n" + kKernelCase;
  const std::string once = render_file(original);
  EXPECT_NE(once, original);
  EXPECT_TRUE(contains(once, "### Logits")) << once;
  EXPECT_TRUE(contains(once, "### Numerics")) << once;
  const std::string twice = render_file(once);
  EXPECT_EQ(twice, once);
  EXPECT_EQ(render_file(twice), once);
}

TEST(Render, ProseAndUnknownSectionsSurviveVerbatim) {
  const std::string preamble = "# Render\n\nFile   prose  \nwith\ttabs.\n\n| a | b |\n|---|---|\n| 1 | 2 |";
  const std::string head =
      "## Kept\n\nCase prose, odd   spacing  \n\n| key | value |\n| :-- | --: |\n| x   | 1   |";
  const std::string kernel = "### Kernel\n\n```json\n{\"op\": \"softmax\",   \"rows\": 2, \"len\": 5}\n```";
  const std::string unknown = "### Remarks\n\nA section the driver does not know,\n  kept  as typed.";
  const std::string original = preamble + "\n\n" + head + "\n\n" + kernel + "\n\n" + unknown + "\n";
  const std::string rendered = render_file(original);
  EXPECT_EQ(rendered.rfind(preamble + "\n\n" + head + "\n\n" + kernel + "\n\n" + unknown + "\n\n", 0),
            0u)
      << rendered;
  // The unknown section is itself an error the case now pins.
  EXPECT_TRUE(contains(rendered, "### Errors")) << rendered;
  EXPECT_TRUE(contains(rendered, "unknown section 'Remarks'")) << rendered;
}

TEST(Render, TextTypedInsideAnOutputSectionIsReplaced) {
  const std::string original = "# T\n\n" + kKernelCase +
                               "\n### Dumps\n\nI typed this by hand.\n\n### Numerics\n\nAnd this.\n";
  const std::string rendered = render_only_case(original);
  EXPECT_FALSE(contains(rendered, "I typed this")) << rendered;
  EXPECT_FALSE(contains(rendered, "And this.")) << rendered;
  EXPECT_EQ(count(rendered, "### Dumps"), 1u) << rendered;
  EXPECT_EQ(count(rendered, "### Numerics"), 1u) << rendered;
  EXPECT_EQ(count(rendered, "### Logits"), 0u) << rendered;
}

TEST(Render, OutputSectionsFollowTheInputSectionsInTheirFixedOrder) {
  // Output sections typed first and out of order; input sections after them, Inputs first.
  const std::string original =
      "# T\n\n## Ordered\n\nprose\n\n### Numerics\n\nold\n\n### Tokens\n\nold\n\n"
      "### Inputs\n\n```json\n{\"prompts\": [[3, 4]], \"decode\": 1}\n```\n\n"
      "### Logits\n\nold\n\n"
      "### Config\n\n```json\n{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 24, "
      "\"num_hidden_layers\": 1, \"num_attention_heads\": 4}\n```\n";
  const std::string rendered = render_only_case(original);
  std::vector<size_t> at;
  for (const char* heading : {"## Ordered", "### Inputs", "### Config", "### Logits", "### Tokens",
                              "### Dumps", "### Numerics"}) {
    at.push_back(rendered.find(std::string(heading) + "\n"));
    ASSERT_NE(at.back(), std::string::npos) << heading << " missing from:\n" << rendered;
    EXPECT_EQ(count(rendered, std::string(heading) + "\n"), 1u) << heading;
  }
  for (size_t i = 1; i < at.size(); ++i) EXPECT_LT(at[i - 1], at[i]) << rendered;
  EXPECT_FALSE(contains(rendered, "### Errors")) << rendered;
  EXPECT_FALSE(contains(rendered, "\nold\n")) << rendered;
}

TEST(Render, ErrorsCaseRendersOnlyErrors) {
  const std::string original =
      "# T\n\n## Broken\n\n### Config\n\n```json\n{\"vocab_size\": 32,\n \"hiden_size\": 16}\n```\n\n"
      "### Inputs\n\n```json\n{\"prompts\": [[1]]}\n```\n\n"
      "### Logits\n\nstale logits\n\n### Numerics\n\nstale numerics\n";
  const std::string rendered = render_only_case(original);
  EXPECT_TRUE(contains(rendered, "### Errors\n\n```text\n")) << rendered;
  EXPECT_TRUE(contains(rendered, "Config, line 2: unknown config key 'hiden_size'")) << rendered;
  for (const char* section : {"### Logits", "### Tokens", "### Dumps", "### Numerics"})
    EXPECT_FALSE(contains(rendered, section)) << section << " in:\n" << rendered;
  EXPECT_FALSE(contains(rendered, "stale")) << rendered;
  // An Errors section never names a file line: the block-relative line only.
  EXPECT_FALSE(contains(rendered, "line 8")) << rendered;
  EXPECT_EQ(rendered.back(), '`');
}

TEST(Render, RenderedCaseHasNoTrailingNewline) {
  const std::string rendered = render_only_case("# T\n\n" + kKernelCase);
  ASSERT_FALSE(rendered.empty());
  EXPECT_NE(rendered.back(), '\n');
}

TEST(Render, KernelCaseRendersDumpsAndNumericsWithoutTopOne) {
  const std::string rendered = render_only_case("# T\n\n" + kKernelCase);
  EXPECT_TRUE(contains(rendered, "### Dumps")) << rendered;
  EXPECT_TRUE(contains(rendered, "| `output` | [2, 8] |")) << rendered;
  EXPECT_TRUE(contains(rendered, "### Numerics")) << rendered;
  EXPECT_TRUE(contains(rendered, "| cpu fp32 |")) << rendered;
  EXPECT_FALSE(contains(rendered, "top-1")) << rendered;
  EXPECT_FALSE(contains(rendered, "### Logits")) << rendered;
}

TEST(Render, LogitsShowEveryValueOfTheOracleRowToSixDigits) {
  CaseFile file = parse_case_file("# T\n\n" + kTinyModelCase);
  ASSERT_TRUE(file.problems.empty());
  const Case& c = file.cases.at(0);
  CaseResult result = run_case(read_case_spec(c));
  ASSERT_TRUE(result.problems.empty());
  const std::string rendered = render_case(c, result);

  // The Logits block: "sequence S, position P:" then 32 values on lines "[ i]  v v v ...".
  const size_t begin = rendered.find("### Logits");
  const size_t end = rendered.find("### Tokens");
  ASSERT_NE(begin, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  std::istringstream block(rendered.substr(begin, end - begin));
  std::string line;
  int sequence = -1;
  std::vector<std::vector<double>> rows;
  while (std::getline(block, line)) {
    if (line.rfind("sequence ", 0) == 0) {
      ++sequence;
      const size_t prompt_length = result.prompts[sequence].size();
      EXPECT_EQ(line, "sequence " + std::to_string(sequence) + ", position " +
                          std::to_string(prompt_length - 1) + ":");
      rows.emplace_back();
    } else if (!line.empty() && line[0] == '[') {
      ASSERT_GE(sequence, 0);
      const size_t close = line.find(']');
      EXPECT_EQ(std::stoul(line.substr(1, close - 1)), rows.back().size()) << line;
      std::istringstream values(line.substr(close + 1));
      std::string token;
      while (values >> token) rows.back().push_back(std::strtod(token.c_str(), nullptr));
    }
  }
  ASSERT_EQ(rows.size(), 2u);
  for (size_t s = 0; s < rows.size(); ++s) {
    const std::vector<double>& oracle = result.oracle[s].logits[result.prompts[s].size() - 1];
    ASSERT_EQ(rows[s].size(), 32u);
    for (size_t i = 0; i < rows[s].size(); ++i)
      EXPECT_NEAR(rows[s][i], oracle[i], 5e-6 * std::fabs(oracle[i]) + 1e-300)
          << "sequence " << s << ", logit " << i;
  }
}

TEST(Render, TokensShowPromptAndContinuation) {
  CaseFile file = parse_case_file("# T\n\n" + kTinyModelCase);
  const Case& c = file.cases.at(0);
  CaseResult result = run_case(read_case_spec(c));
  ASSERT_TRUE(result.problems.empty());
  ASSERT_EQ(result.oracle.size(), 2u);
  ASSERT_EQ(result.oracle[0].generated.size(), 2u);
  const std::string rendered = render_case(c, result);
  std::string expected = "sequence 0: 1 5 9 |";
  for (int t : result.oracle[0].generated) expected += " " + std::to_string(t);
  EXPECT_TRUE(contains(rendered, expected + "\n")) << rendered;
  // Only taps matching "layers.0.*" are dumped.
  const size_t dumps = rendered.find("### Dumps");
  const size_t numerics = rendered.find("### Numerics");
  ASSERT_NE(dumps, std::string::npos);
  std::istringstream rows(rendered.substr(dumps, numerics - dumps));
  std::string line;
  int tap_rows = 0;
  while (std::getline(rows, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    ++tap_rows;
    EXPECT_EQ(line.rfind("| `layers.0.", 0), 0u) << line;
  }
  EXPECT_GT(tap_rows, 0);
}

TEST(AssembleFile, OneBlankLineBetweenPiecesAndOneFinalNewline) {
  EXPECT_EQ(assemble_file("# T\n\nprose", {"## A\n\ntext", "## B"}), "# T\n\nprose\n\n## A\n\ntext\n\n## B\n");
  EXPECT_EQ(assemble_file("# T", {}), "# T\n");
  EXPECT_EQ(assemble_file("# T", {"## A"}), "# T\n\n## A\n");
}

TEST(AssembleFile, ReassemblingAParsedFileGivesItBack) {
  const std::string text = "# T\n\nprose\n\n" + kTinyModelCase + "\n" + kKernelCase;
  CaseFile file = parse_case_file(text);
  std::vector<std::string> cases;
  for (const Case& c : file.cases) cases.push_back(c.text);
  EXPECT_EQ(assemble_file(file.preamble, cases), text);
}

}  // namespace
}  // namespace pinmark
