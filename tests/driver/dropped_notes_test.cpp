// A note typed inside an output section is named before regeneration drops it; what pinmark
// itself wrote there (tables, lists, code blocks, its own sentences, also with new numbers) is
// not.
#include "driver/dropped_notes.h"

#include <gtest/gtest.h>

namespace pinmark {
namespace {

// One case as pinmark renders it, the parts that differ between two renders given: the numbers
// (in a generated sentence, a table row and a fingerprint) and what follows the table.
std::string a_case(const std::string& number, const std::string& after_table) {
  return "## A case\n"
         "\n"
         "Prose of the case, kept by regeneration.\n"
         "\n"
         "### Config\n"
         "\n"
         "A sentence in an input section, kept too.\n"
         "\n"
         "### Numerics\n"
         "\n"
         "Each target against the fp64 oracle over every logit, errors " +
         number +
         ".\n"
         "\n"
         "| target | rel L2 |\n"
         "| --- | ---: |\n"
         "| cpu fp32 | " +
         number +
         " |\n"
         "\n" +
         after_table + "- `cpu fp32`: fingerprint `" + number + "`\n";
}

// With its first line at file line 10, the note is at line 26.
const std::string kOld = a_case("1e-05",
                                "My own note: this row moved after the kernel change.\n"
                                "\n"
                                "```text\n"
                                "A line inside a code block.\n"
                                "```\n"
                                "\n");
const std::string kNew = a_case("2e-05", "");

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
