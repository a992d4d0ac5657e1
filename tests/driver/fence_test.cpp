// driver/fence.h: text the driver did not write, put into a golden so that it can neither close
// its fence nor add structure, and never carries invalid UTF-8.
#include "driver/fence.h"

#include <gtest/gtest.h>

#include <string>

#include "driver/case_file.h"

namespace pinmark {
namespace {

TEST(Fence, ValidUtf8KeepsValidTextAndEscapesTheRest) {
  EXPECT_EQ(valid_utf8("plain ≤ — ␍ 😀\nline two\r\n"), "plain ≤ — ␍ 😀\nline two\r\n");
  EXPECT_EQ(valid_utf8(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(valid_utf8("\xff"), "\\xFF");
  EXPECT_EQ(valid_utf8("\xC0\xAF"), "\\xC0\\xAF");           // overlong '/'
  EXPECT_EQ(valid_utf8("\xED\xA0\x80"), "\\xED\\xA0\\x80");  // a UTF-16 surrogate
  EXPECT_EQ(valid_utf8("\xF4\x90\x80\x80"), "\\xF4\\x90\\x80\\x80");  // past U+10FFFF
  EXPECT_EQ(valid_utf8("ok \xE2\x89"), "ok \\xE2\\x89");     // truncated at the end
}

TEST(Fence, OneLineEscapesLineBreaksAndControls) {
  EXPECT_EQ(one_line("key\n```\n\n## Injected"), "key\\n```\\n\\n## Injected");
  EXPECT_EQ(one_line("a\rb\tc\x01\x7f"), "a\\rb\\tc\\x01\\x7F");
  EXPECT_EQ(one_line("≤ 5e-07"), "≤ 5e-07");
}

TEST(Fence, FenceOutgrowsEveryBacktickRunInTheBody) {
  EXPECT_EQ(fenced_block("a\n"), "```text\na\n```");
  EXPECT_EQ(fenced_block(""), "```text\n```");
  EXPECT_EQ(fenced_block("no newline"), "```text\nno newline\n```");
  EXPECT_EQ(fenced_block("```\n## Injected\n"), "````text\n```\n## Injected\n````");
  EXPECT_EQ(fenced_block("x `````` y\n", "json"), "```````json\nx `````` y\n```````");
  EXPECT_EQ(fenced_block("a\n", "te`xt"), "```text\na\n```");
}

// The proof that matters: whatever the body, the block parses back as one code block holding
// exactly the body, and nothing after it is swallowed or added.
TEST(Fence, ABlockReadsBackAsItsBodyAlone) {
  for (const std::string body :
       {"```\n", "````\n## Case\n", "~~~\n", "<!--\n", "    ```\n", "``` ```\n", "`\n``\n```\n"}) {
    const std::string text =
        "# T\n\n## A\n\n### Errors\n\n" + fenced_block(body) + "\n\n## B\n\nprose\n";
    const CaseFile file = parse_case_file(text);
    ASSERT_TRUE(file.problems.empty()) << body << ": " << file.problems.front().message;
    ASSERT_EQ(file.cases.size(), 2u) << body;
    ASSERT_EQ(file.cases[0].sections.size(), 1u) << body;
    ASSERT_EQ(file.cases[0].sections[0].blocks.size(), 1u) << body;
    EXPECT_EQ(file.cases[0].sections[0].blocks[0].literal, body);
    EXPECT_EQ(file.cases[1].head, "## B\n\nprose");
  }
}

TEST(Fence, InlineCodeCannotEndEarly) {
  EXPECT_EQ(inline_code("layers.0.attn"), "`layers.0.attn`");
  EXPECT_EQ(inline_code("a`b"), "``a`b``");
  EXPECT_EQ(inline_code("`x"), "`` `x ``");
  EXPECT_EQ(inline_code("two\nlines"), "`two\\nlines`");
}

}  // namespace
}  // namespace pinmark
