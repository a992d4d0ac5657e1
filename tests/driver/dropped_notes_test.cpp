// A note typed inside an output section is named before regeneration drops it; what pinmark
// itself wrote there (tables, lists, code blocks, its own sentences, also with new numbers) is
// not.
#include "driver/dropped_notes.h"

#include <gtest/gtest.h>

namespace pinmark {
namespace {

const std::string kOld =
    "## A case\n"  // file line 10
    "\n"
    "Prose of the case, kept by regeneration.\n"
    "\n"
    "### Config\n"
    "\n"
    "A sentence in an input section, kept too.\n"
    "\n"
    "### Numerics\n"
    "\n"
    "Each target against the fp64 oracle over every logit, errors 1e-05.\n"  // line 20
    "\n"
    "| target | rel L2 |\n"
    "| --- | ---: |\n"
    "| cpu fp32 | 1e-07 |\n"
    "\n"
    "My own note: this row moved after the kernel change.\n"  // line 26
    "\n"
    "- `cpu fp32`: fingerprint `a`\n"
    "\n"
    "```text\n"
    "A line inside a code block.\n"
    "```\n";

const std::string kNew =
    "## A case\n"
    "\n"
    "Prose of the case, kept by regeneration.\n"
    "\n"
    "### Config\n"
    "\n"
    "A sentence in an input section, kept too.\n"
    "\n"
    "### Numerics\n"
    "\n"
    "Each target against the fp64 oracle over every logit, errors 2e-05.\n"
    "\n"
    "| target | rel L2 |\n"
    "| --- | ---: |\n"
    "| cpu fp32 | 2e-07 |\n"
    "\n"
    "- `cpu fp32`: fingerprint `b`\n";

TEST(DroppedNotes, NamesAPersonsLineInAnOutputSectionWithItsFileLine) {
  const std::vector<DroppedNote> dropped = dropped_notes(kOld, 10, kNew);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].line, 26);
  EXPECT_EQ(dropped[0].text, "My own note: this row moved after the kernel change.");
}

TEST(DroppedNotes, NothingWhenTheNoteIsKeptOrTheSectionIsAllGenerated) {
  EXPECT_TRUE(dropped_notes(kOld, 10, kOld).empty());
  EXPECT_TRUE(dropped_notes(kNew, 10, kOld).empty());
}

TEST(DroppedNotes, ACrlfFileIsReadAsItsLines) {
  std::string crlf;
  for (char ch : kOld) crlf += ch == '\n' ? std::string("\r\n") : std::string(1, ch);
  const std::vector<DroppedNote> dropped = dropped_notes(crlf, 1, kNew);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].line, 17);
  EXPECT_EQ(dropped[0].text, "My own note: this row moved after the kernel change.");
}

}  // namespace
}  // namespace pinmark
