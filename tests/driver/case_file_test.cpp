// parse_case_file and slugify: how a Markdown file splits into title, prose, cases and sections,
// and which whole-file problems are reported.
#include "driver/case_file.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::contains;
using test::line_of;

const char* const kTwoCases = R"md(# Attention heads

Prose about the whole file.

## GQA, 4 heads

Why this case exists.

### Config

```json
{"vocab_size": 32}
```

### Inputs

```json
{"prompts": [[1, 2]]}
```

## Second case

### Kernel

```json
{"op": "softmax", "rows": 2, "len": 3}
```
)md";

TEST(CaseFile, SplitsTitleProseCasesAndSections) {
  const std::string text = kTwoCases;
  CaseFile file = parse_case_file(text);
  EXPECT_TRUE(file.problems.empty());
  EXPECT_EQ(file.preamble, "# Attention heads\n\nProse about the whole file.");
  ASSERT_EQ(file.cases.size(), 2u);

  const Case& first = file.cases[0];
  EXPECT_EQ(first.title, "GQA, 4 heads");
  EXPECT_EQ(first.slug, "gqa_4_heads");
  EXPECT_EQ(first.line, 5);
  EXPECT_EQ(first.head, "## GQA, 4 heads\n\nWhy this case exists.");
  ASSERT_EQ(first.sections.size(), 2u);
  EXPECT_EQ(first.sections[0].name, "Config");
  EXPECT_EQ(first.sections[0].line, 9);
  EXPECT_EQ(first.sections[0].text, "### Config\n\n```json\n{\"vocab_size\": 32}\n```");
  ASSERT_EQ(first.sections[0].blocks.size(), 1u);
  EXPECT_EQ(first.sections[0].blocks[0].info, "json");
  EXPECT_EQ(first.sections[0].blocks[0].literal, "{\"vocab_size\": 32}\n");
  EXPECT_EQ(first.sections[0].blocks[0].first_line, 12);
  EXPECT_EQ(first.sections[1].name, "Inputs");
  EXPECT_EQ(first.sections[1].line, 15);
  ASSERT_EQ(first.sections[1].blocks.size(), 1u);
  EXPECT_EQ(first.sections[1].blocks[0].first_line, 18);

  // The whole case runs from its heading to the line before the next case.
  const size_t begin = text.find("## GQA");
  const size_t end = text.find("\n\n## Second case");
  EXPECT_EQ(first.text, text.substr(begin, end - begin));

  const Case& second = file.cases[1];
  EXPECT_EQ(second.slug, "second_case");
  EXPECT_EQ(second.line, 21);
  EXPECT_EQ(second.head, "## Second case");
  ASSERT_EQ(second.sections.size(), 1u);
  EXPECT_EQ(second.sections[0].name, "Kernel");
  EXPECT_EQ(second.text,
            "## Second case\n\n### Kernel\n\n```json\n{\"op\": \"softmax\", \"rows\": 2, "
            "\"len\": 3}\n```");
}

TEST(CaseFile, KeepsProseAndInputSectionsByteForByte) {
  // Trailing spaces (a hard line break), tabs, several blank lines, a table, odd heading
  // spacing and an indented fence: all must come back exactly as typed.
  const std::string preamble =
      "#   Odd   spacing   \n\nLine with a hard break  \nnext\tline\n\n\n\n| a | b |\n|---|--:|\n"
      "| 1 |  2 |";
  const std::string case_text =
      "##  Case   one  \n\n  indented prose\n\n| key | value |\n| --- | --- |\n| `x` | *y* |\n\n"
      "###   Config   \n\n  ```json\n  {\"a\":   1}\n  ```\n\ntext after the block   ";
  const std::string text = preamble + "\n\n" + case_text + "\n";
  CaseFile file = parse_case_file(text);
  ASSERT_TRUE(file.problems.empty()) << file.problems.front().message;
  EXPECT_EQ(file.preamble, preamble);
  ASSERT_EQ(file.cases.size(), 1u);
  EXPECT_EQ(file.cases[0].title, "Case   one");
  EXPECT_EQ(file.cases[0].slug, "case_one");
  EXPECT_EQ(file.cases[0].text, case_text);
  ASSERT_EQ(file.cases[0].sections.size(), 1u);
  EXPECT_EQ(file.cases[0].sections[0].name, "Config");
  EXPECT_EQ(file.cases[0].sections[0].text,
            case_text.substr(case_text.find("###   Config")));
}

TEST(CaseFile, KeepsCrlfLineEndings) {
  const std::string text =
      "# Title\r\n\r\nProse\r\nmore prose\r\n\r\n## A case\r\n\r\nCase prose\r\n\r\n"
      "### Kernel\r\n\r\n```json\r\n{\"op\": \"swiglu\", \"n\": 4}\r\n```\r\n";
  CaseFile file = parse_case_file(text);
  ASSERT_TRUE(file.problems.empty()) << file.problems.front().message;
  EXPECT_EQ(file.preamble, "# Title\r\n\r\nProse\r\nmore prose");
  ASSERT_EQ(file.cases.size(), 1u);
  EXPECT_EQ(file.cases[0].title, "A case");
  EXPECT_EQ(file.cases[0].slug, "a_case");
  EXPECT_EQ(file.cases[0].line, 6);
  EXPECT_EQ(file.cases[0].head, "## A case\r\n\r\nCase prose");
  EXPECT_EQ(file.cases[0].text,
            "## A case\r\n\r\nCase prose\r\n\r\n### Kernel\r\n\r\n```json\r\n{\"op\": \"swiglu\", "
            "\"n\": 4}\r\n```");
  ASSERT_EQ(file.cases[0].sections.size(), 1u);
  EXPECT_EQ(file.cases[0].sections[0].name, "Kernel");
  EXPECT_EQ(file.cases[0].sections[0].line, 10);
  ASSERT_EQ(file.cases[0].sections[0].blocks.size(), 1u);
  EXPECT_EQ(file.cases[0].sections[0].blocks[0].info, "json");
  EXPECT_EQ(file.cases[0].sections[0].blocks[0].first_line, 13);
}

TEST(CaseFile, HeadingsInsideFencedCodeAreNotHeadings) {
  const std::string text =
      "# Title\n\n## Real case\n\n```markdown\n# not a title\n## not a case\n### not a section\n"
      "```\n\n~~~\n## nor this\n~~~\n\n### Kernel\n\n```json\n{}\n```\n";
  CaseFile file = parse_case_file(text);
  EXPECT_TRUE(file.problems.empty());
  ASSERT_EQ(file.cases.size(), 1u);
  EXPECT_EQ(file.cases[0].slug, "real_case");
  EXPECT_TRUE(contains(file.cases[0].head, "## not a case\n### not a section"));
  EXPECT_TRUE(contains(file.cases[0].head, "## nor this"));
  ASSERT_EQ(file.cases[0].sections.size(), 1u);
  EXPECT_EQ(file.cases[0].sections[0].name, "Kernel");
  // The code blocks of the prose do not belong to the section.
  ASSERT_EQ(file.cases[0].sections[0].blocks.size(), 1u);
  EXPECT_EQ(file.cases[0].sections[0].blocks[0].literal, "{}\n");
}

TEST(CaseFile, UnderstandsSetextHeadings) {
  const std::string text =
      "The title\n=========\n\nFile prose.\n\nA setext case\n-------------\n\nCase prose.\n\n"
      "### Config\n\n```json\n{}\n```\n";
  CaseFile file = parse_case_file(text);
  EXPECT_TRUE(file.problems.empty());
  EXPECT_EQ(file.preamble, "The title\n=========\n\nFile prose.");
  ASSERT_EQ(file.cases.size(), 1u);
  EXPECT_EQ(file.cases[0].title, "A setext case");
  EXPECT_EQ(file.cases[0].line, 6);
  EXPECT_EQ(file.cases[0].head, "A setext case\n-------------\n\nCase prose.");
  ASSERT_EQ(file.cases[0].sections.size(), 1u);
  EXPECT_EQ(file.cases[0].sections[0].name, "Config");
  ASSERT_EQ(file.cases[0].sections[0].blocks.size(), 1u);
  EXPECT_EQ(file.cases[0].sections[0].blocks[0].first_line, 14);
}

TEST(CaseFile, FourthLevelHeadingsStayInTheirSectionText) {
  const std::string text =
      "# T\n\n## Case\n\n#### A note in the prose\n\nprose\n\n### Config\n\n#### Detail\n\n"
      "```json\n{}\n```\n\n##### Deeper\n\nmore\n\n### Inputs\n\n```json\n{}\n```\n";
  CaseFile file = parse_case_file(text);
  EXPECT_TRUE(file.problems.empty());
  ASSERT_EQ(file.cases.size(), 1u);
  const Case& c = file.cases[0];
  EXPECT_EQ(c.head, "## Case\n\n#### A note in the prose\n\nprose");
  ASSERT_EQ(c.sections.size(), 2u);
  EXPECT_EQ(c.sections[0].name, "Config");
  EXPECT_EQ(c.sections[0].text,
            "### Config\n\n#### Detail\n\n```json\n{}\n```\n\n##### Deeper\n\nmore");
  EXPECT_EQ(c.sections[0].blocks.size(), 1u);
  EXPECT_EQ(c.sections[1].name, "Inputs");
}

TEST(CaseFile, HeadingOnlyCase) {
  CaseFile file = parse_case_file("# T\n\n## Lonely\n");
  EXPECT_TRUE(file.problems.empty());
  ASSERT_EQ(file.cases.size(), 1u);
  EXPECT_EQ(file.cases[0].title, "Lonely");
  EXPECT_EQ(file.cases[0].line, 3);
  EXPECT_EQ(file.cases[0].head, "## Lonely");
  EXPECT_EQ(file.cases[0].text, "## Lonely");
  EXPECT_TRUE(file.cases[0].sections.empty());
}

TEST(CaseFile, FileWithoutCases) {
  CaseFile file = parse_case_file("# Only a title\n\nand prose\n");
  EXPECT_TRUE(file.problems.empty());
  EXPECT_TRUE(file.cases.empty());
  EXPECT_EQ(file.preamble, "# Only a title\n\nand prose");
}

TEST(Slugify, LowerCasesAndJoinsWordsWithOneUnderscore) {
  EXPECT_EQ(slugify("GQA, 4 heads"), "gqa_4_heads");
  EXPECT_EQ(slugify("MQA"), "mqa");
  EXPECT_EQ(slugify("a  --  b"), "a_b");
  EXPECT_EQ(slugify("a_b"), "a_b");
  EXPECT_EQ(slugify("a__b"), "a_b");
  EXPECT_EQ(slugify("Llama2 7B"), "llama2_7b");
}

TEST(Slugify, DropsLeadingAndTrailingPunctuation) {
  EXPECT_EQ(slugify("  (rope) "), "rope");
  EXPECT_EQ(slugify("--Hello, World!--"), "hello_world");
  EXPECT_EQ(slugify("...42..."), "42");
  EXPECT_EQ(slugify("?!"), "");
  EXPECT_EQ(slugify(""), "");
}

TEST(Slugify, NonAsciiCharactersAreSeparators) {
  EXPECT_EQ(slugify("Attention \xe2\x80\x94 MQA"), "attention_mqa");  // an em dash
  EXPECT_EQ(slugify("na\xc3\xafve"), "na_ve");                       // "naïve"
  EXPECT_EQ(slugify("caf\xc3\xa9"), "caf");                          // "café"
  EXPECT_EQ(slugify("\xc3\x9c" "ber"), "ber");                       // "Über"
  EXPECT_EQ(slugify("\xe6\x97\xa5\xe6\x9c\xac"), "");                // "日本"
}

TEST(CaseFileProblems, NoTitle) {
  const std::string text = "Some prose first.\n\n## A case\n";
  CaseFile file = parse_case_file(text);
  ASSERT_EQ(file.problems.size(), 1u);
  EXPECT_EQ(file.problems[0].line, line_of(text, "## A case"));
  EXPECT_TRUE(contains(file.problems[0].message, "no '#' title")) << file.problems[0].message;
}

TEST(CaseFileProblems, NoHeadingsAtAll) {
  CaseFile file = parse_case_file("just prose\n");
  ASSERT_EQ(file.problems.size(), 1u);
  EXPECT_EQ(file.problems[0].line, 1);
  EXPECT_TRUE(contains(file.problems[0].message, "no '#' title")) << file.problems[0].message;
}

TEST(CaseFileProblems, TextBeforeTheTitle) {
  // docs/case-format.md lists "text before the title" among the problems of a whole file.
  const std::string text = "Stray text.\n\n# Title\n\n## A case\n";
  CaseFile file = parse_case_file(text);
  ASSERT_EQ(file.problems.size(), 1u) << "text before the '#' title is not reported";
  EXPECT_EQ(file.problems[0].line, 1);
}

TEST(CaseFileProblems, SecondTitleBeforeTheCases) {
  const std::string text = "# First\n\nprose\n\n# Second\n\n## A case\n";
  CaseFile file = parse_case_file(text);
  ASSERT_EQ(file.problems.size(), 1u);
  EXPECT_EQ(file.problems[0].line, 5);
  EXPECT_TRUE(contains(file.problems[0].message, "second '#' title")) << file.problems[0].message;
  EXPECT_TRUE(contains(file.problems[0].message, "line 1")) << file.problems[0].message;
}

TEST(CaseFileProblems, SecondTitleAmongTheCases) {
  const std::string text = "# First\n\n## A case\n\n# Second\n\n## B case\n";
  CaseFile file = parse_case_file(text);
  ASSERT_EQ(file.problems.size(), 1u);
  EXPECT_EQ(file.problems[0].line, 5);
  EXPECT_TRUE(contains(file.problems[0].message, "second '#' title")) << file.problems[0].message;
  EXPECT_TRUE(contains(file.problems[0].message, "line 1")) << file.problems[0].message;
}

TEST(CaseFileProblems, TwoCasesWithTheSameSlug) {
  const std::string text =
      "# T\n\n## Other\n\n## GQA, 4 heads\n\nprose\n\n## Something else\n\n## gqa 4 HEADS!\n";
  CaseFile file = parse_case_file(text);
  ASSERT_EQ(file.problems.size(), 1u);
  EXPECT_EQ(file.problems[0].line, line_of(text, "## gqa 4 HEADS!"));
  const std::string& message = file.problems[0].message;
  EXPECT_TRUE(contains(message, "'gqa_4_heads'")) << message;
  EXPECT_TRUE(contains(message, "line " + std::to_string(line_of(text, "## GQA, 4 heads"))))
      << message;
}

TEST(CaseFileProblems, CaseTitleWithoutLettersOrDigits) {
  const std::string text = "# T\n\n## -- !\n";
  CaseFile file = parse_case_file(text);
  ASSERT_EQ(file.problems.size(), 1u);
  EXPECT_EQ(file.problems[0].line, 3);
  EXPECT_TRUE(contains(file.problems[0].message, "'-- !'")) << file.problems[0].message;
}

TEST(CaseFileProblems, OutputSectionBeforeTheFirstCase) {
  const std::string text = "# T\n\nprose\n\n### Logits\n\n```text\n1 2 3\n```\n\n## A case\n";
  CaseFile file = parse_case_file(text);
  ASSERT_EQ(file.problems.size(), 1u);
  EXPECT_EQ(file.problems[0].line, 5);
  EXPECT_TRUE(contains(file.problems[0].message, "'Logits'")) << file.problems[0].message;
  EXPECT_TRUE(contains(file.problems[0].message, "before the first case"))
      << file.problems[0].message;
}

TEST(CaseFileProblems, SeveralProblemsAreAllReported) {
  const std::string text = "# T\n\n### Errors\n\n# Again\n\n## X\n\n## x\n";
  CaseFile file = parse_case_file(text);
  ASSERT_EQ(file.problems.size(), 3u);
  EXPECT_EQ(file.problems[0].line, 3);
  EXPECT_EQ(file.problems[1].line, 5);
  EXPECT_EQ(file.problems[2].line, 9);
}

TEST(SectionNames, InputAndOutputSections) {
  EXPECT_EQ(output_section_names(),
            (std::vector<std::string>{"Logits", "Tokens", "Dumps", "Numerics", "Reference", "Errors"}));
  for (const char* name : {"Logits", "Tokens", "Dumps", "Numerics", "Reference", "Errors"})
    EXPECT_TRUE(is_output_section(name)) << name;
  for (const char* name : {"Config", "Inputs", "Kernel", "Targets", "logits", "Notes"})
    EXPECT_FALSE(is_output_section(name)) << name;
}

TEST(CaseFile, LinesEndWhereTheMarkdownParserEndsThem) {
  // A lone CR ends a line for cmark-gfm; counted the same way, the problem names line 3 and the
  // case heading after it is at line 4 (not 3, as a splitter at LF alone would say).
  const CaseFile file = parse_case_file("# T\n\nprose\r## A\n");
  ASSERT_EQ(file.problems.size(), 1u);
  EXPECT_EQ(file.problems[0].line, 3);
  EXPECT_EQ(file.problems[0].message,
            "line 3 ends in a lone CR; pinmark reads files whose lines end in LF or in CRLF");
  ASSERT_EQ(file.cases.size(), 1u);
  EXPECT_EQ(file.cases[0].line, 4);
}

TEST(CaseFile, MixedLineEndingsNameTheFirstLineThatDiffers) {
  const CaseFile lf_then_crlf = parse_case_file("# T\n\n## A\r\n\r\n## B\n");
  ASSERT_EQ(lf_then_crlf.problems.size(), 1u);
  EXPECT_EQ(lf_then_crlf.problems[0].line, 3);
  EXPECT_EQ(lf_then_crlf.problems[0].message,
            "line 3 ends in CRLF but line 1 in LF; every line of a file must end the same way");
  EXPECT_TRUE(lf_then_crlf.gaps.empty());
  // A last line without an ending is not a different ending.
  EXPECT_TRUE(parse_case_file("# T\r\n\r\n## A").problems.empty());
}

TEST(CaseFile, GapsKeepEveryByteBetweenPieces) {
  const std::string text = "# T  \n \n\n## A\n\ntext\n\t\n\n\n## B\nlast";
  const CaseFile file = parse_case_file(text);
  ASSERT_TRUE(file.problems.empty()) << file.problems.front().message;
  EXPECT_EQ(file.gaps, (std::vector<std::string>{"\n \n\n", "\n\t\n\n\n", ""}));
  EXPECT_EQ(assemble_case_file(file, {file.cases[0].text, file.cases[1].text}), text);
  // A new text beside a gap without a blank line gets one; the gaps elsewhere stay.
  const CaseFile tight = parse_case_file("# T\n## A\ntext\n## B\n");
  EXPECT_EQ(assemble_case_file(tight, {"## A\n\nnew", tight.cases[1].text}),
            "# T\n\n## A\n\nnew\n\n## B\n");
  EXPECT_EQ(assemble_case_file(tight, {tight.cases[0].text, tight.cases[1].text}),
            "# T\n## A\ntext\n## B\n");
  EXPECT_THROW(assemble_case_file(tight, {"## A"}), std::invalid_argument);
}

}  // namespace
}  // namespace pinmark
