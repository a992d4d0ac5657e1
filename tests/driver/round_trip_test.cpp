// Regeneration on any input: a file pinmark refuses is never written, and one it accepts keeps
// every byte of its prose and inputs and is a fixed point after one pass. A property test over
// generated files (the same property as fuzz/case_file_round_trip_fuzzer.cpp), then each
// construct that could lose or change a valid file's bytes, then the failing inputs that showed
// it did.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/file_run.h"
#include "tests/driver/test_support.h"
#include "tests/support/round_trip.h"

namespace pinmark {
namespace {

using test::check_round_trip;
using test::contains;
using test::read_file;
using test::regenerate_with_stubs;
using test::RoundTrip;
using test::TempDir;
using test::write_file;

// A random case file from pieces that interact badly: headings of every kind, fences of every
// length, HTML blocks, containers, hostile bytes and every line ending. The engine's raw output
// is used (not std::*_distribution), so every standard library generates the same files.
std::string random_file(std::mt19937& rng) {
  static const std::vector<std::string> pieces = {
      "# Title", "# Second title", "## Case", "## Case `a`", "## Other case", "## ```",
      "### Config", "### Kernel", "### Inputs", "### Errors", "### Logits", "### Numerics",
      "### Unknown", "#### Deeper", "Setext case", "-----", "Setext title", "=====",
      "```json", "```", "````", "~~~", "```text", "{\"op\": \"swiglu\", \"n\": 4}",
      "<!--", "-->", "<!-- closed -->", "<?php", "<div>", "</div>", "> ## quoted heading",
      "- ## listed heading", "1. item", "    indented code", "prose", "prose with `ticks`",
      "trailing spaces   ", "\ttabbed", "", "", "", "   ", "| a | b |", "|---|---|",
      std::string("nul") + '\0' + "byte", "bad \xff byte", "\xEF\xBB\xBF# BOM title", "``` ```",
      "text\\", "<script>", "</script>", "[ref]: /x", "***", "* * *"};
  static const std::vector<std::string> endings = {"\n", "\r\n", "\r"};
  const std::string file_ending = endings[rng() % 2];
  const bool mixed = rng() % 8 == 0;
  std::string text = rng() % 10 ? "# Title" + file_ending + file_ending : "";
  const int lines = 1 + static_cast<int>(rng() % 40);
  for (int i = 0; i < lines; ++i) {
    text += pieces[rng() % pieces.size()];
    if (i + 1 < lines || rng() % 4) text += mixed && rng() % 6 == 0 ? endings[rng() % 3] : file_ending;
  }
  return text;
}

TEST(RoundTripProperty, HoldsOnGeneratedFiles) {
  std::mt19937 rng(20240611);
  int held = 0, refused = 0, refused_on_read_back = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string text = random_file(rng);
    try {
      switch (check_round_trip(text)) {
        case RoundTrip::held: ++held; break;
        case RoundTrip::refused_invalid: ++refused; break;
        case RoundTrip::refused_on_read_back: ++refused_on_read_back; break;
      }
    } catch (const std::logic_error& e) {
      FAIL() << e.what() << " on input " << i << ":\n" << testing::PrintToString(text);
    }
  }
  std::cout << held << " held, " << refused << " refused as invalid, " << refused_on_read_back
            << " refused when the rendered file would not read back\n";
  // The generator must reach the interesting part: files that are accepted and rewritten.
  EXPECT_GT(held, 1500);
  EXPECT_GT(refused, 1500);
}

// Each construct, in a file that is otherwise valid: it round-trips exactly.
class Construct : public testing::TestWithParam<std::string> {};

TEST_P(Construct, RoundTripsExactly) {
  const std::string text = GetParam();
  const CaseFile file = parse_case_file(text);
  ASSERT_TRUE(file.problems.empty()) << file.problems.front().message;
  ASSERT_EQ(check_round_trip(text), RoundTrip::held);
}

INSTANTIATE_TEST_SUITE_P(
    WholeClass, Construct,
    testing::Values(
        // Setext headings: a title, a case, and a case right after prose.
        "Title\n=====\n\nprose\n\nA case\n------\n\ncase prose\n",
        "# T\n\n## A\n\nprose\n\nB case\n------\n\nmore\n",
        // Headings inside a list or a quote are prose.
        "# T\n\n## A\n\n- ## not a case\n- item\n\n> ## not a case either\n> quoted\n",
        // Trailing whitespace on lines and on blank lines, several blank lines between pieces.
        "# T   \n\nprose  \n \t \n\n\n## A  \n\ntext\t\n   \n\n\n\n## B\n\n  \n",
        // No final newline, in LF and CRLF files.
        "# T\n\n## A\n\n### Kernel\n\n```json\n{}\n```",
        "# T\r\n\r\n## A\r\n\r\nlast line",
        // A byte order mark before the title.
        "\xEF\xBB\xBF# T\n\nprose\n\n## A\n\ntext\n",
        // Pieces with no blank line between them.
        "# T\nprose\n## A\ntext\n## B\n### Kernel\n```json\n{}\n```\n",
        // Closed HTML blocks and comments, and a fence longer than three.
        "# T\n\n<!-- a\ncomment -->\n\n## A\n\n<div>\n\n````\n```\n````\n"));

// The constructs pinmark cannot keep are refused with a message naming the line.
TEST(RoundTrip, RefusesWhatItCannotKeep) {
  struct Refused {
    std::string text;
    int line;
    std::string message;
  };
  const std::vector<Refused> cases = {
      {"# T\n\n## A\n\n```json\n{}\n", 5, "code fence opened at line 5 is never closed"},
      {"# T\n\n## A\n\n~~~~\n~~~\n", 5, "close it with a line of 4 '~'"},
      {"# T\n\n## A\n\n<!-- note\n\n## B\n", 5, "HTML block ('<!--') opened at line 5"},
      {"# T\n\n## A\n\n<script>\nx\n", 5, "never closed with '</script>'"},
      {"# T\r\n\r\n## A\n", 3, "line 3 ends in LF but line 1 in CRLF"},
      {"# T\n\n## A\rprose\n", 3, "line 3 ends in a lone CR"},
      {std::string("# T\n\n## A\n\nx") + '\0' + "y\n", 5, "line 5 holds a NUL byte"},
      {"# T\n\n## A\n\n\xC3(\n", 5, "line 5 is not valid UTF-8 (byte \\xC3)"},
  };
  for (const Refused& r : cases) {
    const CaseFile file = parse_case_file(r.text);
    ASSERT_FALSE(file.problems.empty()) << testing::PrintToString(r.text);
    EXPECT_EQ(file.problems.front().line, r.line) << testing::PrintToString(r.text);
    EXPECT_TRUE(contains(file.problems.front().message, r.message))
        << file.problems.front().message;
    EXPECT_THROW(regenerate_with_stubs(r.text), std::runtime_error);
  }
}

// What regeneration writes is parsed again: text that would not read back is refused, not
// written.
TEST(RoundTrip, RenderedTextThatWouldNotReadBackIsRefused) {
  const std::string text = "# T\n\n## A\n\nold\n";
  std::vector<std::string> skipped;
  try {
    regenerate_text("f.md", text, {{"a", CaseRewrite("## A\n\nold", "## A\n\n## Injected")}}, skipped);
    FAIL() << "a rendered case that adds a case was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "f.md:")) << e.what();
    EXPECT_TRUE(contains(e.what(), "would hold 2 cases instead of 1")) << e.what();
    EXPECT_TRUE(contains(e.what(), "not rewritten")) << e.what();
  }
  try {
    regenerate_text("f.md", text, {{"a", CaseRewrite("## A\n\nold", "## A\n\n```\nopen")}}, skipped);
    FAIL() << "a rendered case with an open fence was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "f.md:5: the regenerated file would be invalid: the code fence "
                                   "opened at line 5 is never closed"))
        << e.what();
  }
}

// /work/shared/failing/error_text_breaks_fence.md: a config key holding a newline, a fence and
// a heading is quoted in Errors; regenerating twice keeps one case and the same bytes.
TEST(RoundTrip, ErrorTextCannotBreakItsFence) {
  const std::string text =
      "# Error text inside the golden\n\n## A key with an escaped newline\n\n"
      "A config key that contains `\\n` escapes (for example pasted from a log line).\n\n"
      "### Config\n\n```json\n"
      "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 32, "
      "\"num_hidden_layers\": 1, \"num_attention_heads\": 2,\n"
      " \"note\\n```\\n\\n## Injected case\\n\\n```text\": 1}\n```\n\n"
      "### Inputs\n\n```json\n{\"prompts\": [[1, 2, 3]]}\n```\n";
  TempDir dir;
  const std::string path = dir.file("error_text_breaks_fence.md");
  write_file(path, text);
  std::string after_first;
  for (int pass = 0; pass < 2; ++pass) {
    FileRun run = run_file(path, [](const Case&) { return true; });
    ASSERT_TRUE(run.parsed.problems.empty()) << run.parsed.problems.front().message;
    ASSERT_EQ(run.outcomes.size(), 1u);
    std::map<std::string, CaseRewrite> rewrites;
    for (const CaseOutcome& o : run.outcomes)
      rewrites.emplace(run.case_of(o).slug, CaseRewrite(run.case_of(o).text, o.actual));
    rewrite_cases(path, rewrites);
    if (pass == 0) after_first = read_file(path);
  }
  const std::string golden = read_file(path);
  EXPECT_EQ(golden, after_first);
  const CaseFile file = parse_case_file(golden);
  ASSERT_TRUE(file.problems.empty()) << file.problems.front().message;
  ASSERT_EQ(file.cases.size(), 1u);
  // The key is accepted (transformers does not read it) and named, escaped, in the note
  // under Logits.
  EXPECT_TRUE(contains(golden, "### Logits\n\n")) << golden;
  EXPECT_TRUE(contains(golden, "note\\n```\\n\\n## Injected case")) << golden;
}

// The other failing inputs of the class: each is refused as a whole, naming its line, and a
// regeneration leaves it as it is.
TEST(RoundTrip, FailingInputsAreRefusedAndKept) {
  struct Input {
    std::string name, text;
    int line;
    std::string message;
  };
  const std::vector<Input> inputs = {
      {"stray_cr_loses_prose.md",
       "# T\n\n## A\n\nx\ry\n\n### Kernel\n\n```json\n{\"op\": \"swiglu\", \"n\": 4}\n```\n\n"
       "## B\n\nKeep this prose.\n\n### Kernel\n\n```json\n{\"op\": \"swiglu\", \"n\": 8}\n```\n",
       5, "line 5 ends in a lone CR"},
      {"stray_cr_minimal.bin", "#\r## B\n\x01", 1, "line 1 ends in a lone CR"},
      {"crlf_title_only.md",
       "# Title saved with a CRLF\r\n\n## Swiglu of three\n\n### Kernel\n\n```json\n"
       "{\"op\": \"swiglu\", \"n\": 3, \"seed\": 1}\n```\n",
       2, "line 2 ends in LF but line 1 in CRLF; every line of a file must end the same way"},
      {"nul_in_json.md",
       std::string("# T\n\n## A\n\n### Kernel\n\n```json\n{\"op\": \"swiglu\", \"n\": 4}") + '\0' +
           "\n```\n",
       8, "line 8 holds a NUL byte"},
      {"unclosed_fence.md", "# T\n\n## B\n\n```python\nprint(1)\n", 5,
       "the code fence opened at line 5 is never closed"},
  };
  TempDir dir;
  for (const Input& input : inputs) {
    const std::string path = dir.file(input.name);
    write_file(path, input.text);
    FileRun run = run_file(path, [](const Case&) { return true; });
    ASSERT_FALSE(run.parsed.problems.empty()) << input.name;
    EXPECT_EQ(run.parsed.problems.front().line, input.line) << input.name;
    EXPECT_TRUE(contains(run.parsed.problems.front().message, input.message))
        << input.name << ": " << run.parsed.problems.front().message;
    EXPECT_TRUE(run.outcomes.empty()) << input.name;
    try {
      rewrite_cases(path, std::map<std::string, CaseRewrite>{});
      FAIL() << input.name << " was accepted for rewriting";
    } catch (const std::runtime_error& e) {
      EXPECT_TRUE(contains(e.what(), path + ":" + std::to_string(input.line) + ": ")) << e.what();
      EXPECT_TRUE(contains(e.what(), "not rewritten")) << e.what();
    }
    EXPECT_EQ(read_file(path), input.text) << input.name;
  }
}

}  // namespace
}  // namespace pinmark
