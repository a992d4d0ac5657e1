// A case file split into the pieces the driver works with. Headings and code blocks are found
// by cmark-gfm; the text of every piece is sliced from the original bytes, so prose and input
// sections are reproduced exactly.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pinmark {

// A fenced code block inside a section.
struct CodeBlock {
  std::string info;     // the fence's info string ("json")
  std::string literal;  // the content between the fences
  int first_line = 0;   // file line of the first content line (1-based)
};

// A `###` section of a case: its heading, then everything up to the next heading.
struct Section {
  std::string name;       // heading text ("Config")
  int line = 0;           // file line of the heading
  std::string text;       // heading and body verbatim, trailing blank lines dropped
  std::vector<CodeBlock> blocks;
};

// A `##` case.
struct Case {
  std::string title;  // heading text
  std::string slug;   // test id, unique within the file
  int line = 0;       // file line of the heading
  std::string head;   // heading and prose verbatim, trailing blank lines dropped
  std::string text;   // the whole case verbatim (head and sections), trailing blank lines dropped
  std::vector<Section> sections;
};

// A problem with the file as a whole: the driver runs none of its cases.
struct FileProblem {
  int line = 0;
  std::string message;
};

struct CaseFile {
  std::string newline = "\n";  // the file's line ending ("\r\n" when its first line has one)
  std::string preamble;  // title and prose before the first case, verbatim
  std::vector<Case> cases;
  // The bytes between pieces, verbatim: gaps[0] follows the preamble, gaps[i] follows case
  // i - 1 (line endings and blank lines, with any spaces on them); the last is the file's tail.
  // Empty when the file has problems.
  std::vector<std::string> gaps;
  std::vector<FileProblem> problems;  // empty when the file is usable
};

// Splits Markdown text into title, cases and sections. Lines end where cmark-gfm ends them:
// at LF, CRLF or a lone CR. Reports in `problems` (never throws): no title, text before it, two
// titles, an output section before the first case, a case title without letters or digits, two
// cases of one slug, lines that do not all end the same way or end in a lone CR, bytes that are
// not UTF-8 or NUL, and a code fence or HTML block (`<!--`, `<?`, `<script`, ...) that is never
// closed, so that it would swallow everything after it.
CaseFile parse_case_file(const std::string& text);

// The file again from a parse of it and one text per case (`case_texts[i]` replacing
// `file.cases[i].text`): the preamble and gaps verbatim, so
// `assemble_case_file(f, texts of f.cases) == text` for every file without problems. A gap
// beside a replaced case that holds no blank line gets one, so the pieces stay apart.
// Requires `case_texts.size() == file.cases.size()` (throws std::invalid_argument otherwise).
std::string assemble_case_file(const CaseFile& file, const std::vector<std::string>& case_texts);

// "GQA, 4 heads" -> "gqa_4_heads": lower-case, runs of anything but [a-z0-9] become one '_'.
std::string slugify(const std::string& title);

// True for the sections the driver writes.
bool is_output_section(const std::string& name);

// The output sections, in the order they are rendered.
const std::vector<std::string>& output_section_names();

// The sections people write.
const std::vector<std::string>& input_section_names();

}  // namespace pinmark
