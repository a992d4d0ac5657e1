#include "driver/case_file.h"

#include "driver/fence.h"

#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm-extension_api.h>
#include <cmark-gfm.h>

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>

namespace pinmark {
namespace {

struct Heading {
  int level = 0;
  int first_line = 0;
  int last_line = 0;  // a setext heading spans two lines
  std::string text;
};

struct ParsedBlocks {
  std::vector<Heading> headings;
  std::vector<CodeBlock> code_blocks;
  std::vector<FileProblem> unclosed;  // blocks that run to the end of the file
};

// Plain text of a heading's inline content.
void collect_text(cmark_node* node, std::string& out) {
  for (cmark_node* child = cmark_node_first_child(node); child; child = cmark_node_next(child)) {
    switch (cmark_node_get_type(child)) {
      case CMARK_NODE_TEXT:
      case CMARK_NODE_CODE:
        out += cmark_node_get_literal(child);
        break;
      case CMARK_NODE_SOFTBREAK:
      case CMARK_NODE_LINEBREAK:
        out += ' ';
        break;
      default:
        collect_text(child, out);
    }
  }
}

// Whether `line` closes a fence of `length` characters `fence`: up to three spaces, at least
// that many fence characters, then only spaces or tabs.
bool closes_fence(const std::string& line, char fence, int length) {
  size_t i = 0;
  while (i < line.size() && i < 3 && line[i] == ' ') ++i;
  size_t run = 0;
  while (i < line.size() && line[i] == fence) ++i, ++run;
  if (run < static_cast<size_t>(length)) return false;
  return line.find_first_not_of(" \t\r\n", i) == std::string::npos;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// For an HTML block that only ends at a marker (CommonMark's kinds 1 to 5), what opens it and
// the marker that ends it; nullopt for the kinds a blank line ends.
std::optional<std::pair<std::string, std::string>> html_block_end(const std::string& literal) {
  const std::string start = lower(literal.substr(literal.find_first_not_of(' ') == std::string::npos
                                                     ? 0
                                                     : literal.find_first_not_of(' ')));
  if (start.rfind("<!--", 0) == 0) return std::pair{std::string("<!--"), std::string("-->")};
  if (start.rfind("<?", 0) == 0) return std::pair{std::string("<?"), std::string("?>")};
  if (start.rfind("<![cdata[", 0) == 0) return std::pair{std::string("<![CDATA["), std::string("]]>")};
  if (start.size() > 2 && start.rfind("<!", 0) == 0 && std::isalpha(static_cast<unsigned char>(start[2])))
    return std::pair{std::string("<!"), std::string(">")};
  for (const char* tag : {"script", "pre", "style", "textarea"}) {
    const std::string open = std::string("<") + tag;
    if (start.rfind(open, 0) == 0 &&
        (start.size() == open.size() || std::string(" \t\r\n>").find(start[open.size()]) != std::string::npos))
      return std::pair{open, "</" + std::string(tag) + ">"};
  }
  return std::nullopt;
}

// Only top-level blocks count: a heading inside a list or a quote is prose.
ParsedBlocks parse_blocks(const std::string& text, const std::vector<std::string>& lines) {
  cmark_gfm_core_extensions_ensure_registered();
  std::unique_ptr<cmark_parser, decltype(&cmark_parser_free)> parser(
      cmark_parser_new(CMARK_OPT_DEFAULT), cmark_parser_free);
  if (cmark_syntax_extension* table = cmark_find_syntax_extension("table"))
    cmark_parser_attach_syntax_extension(parser.get(), table);
  cmark_parser_feed(parser.get(), text.data(), text.size());
  std::unique_ptr<cmark_node, decltype(&cmark_node_free)> document(
      cmark_parser_finish(parser.get()), cmark_node_free);

  ParsedBlocks blocks;
  for (cmark_node* node = cmark_node_first_child(document.get()); node;
       node = cmark_node_next(node)) {
    if (cmark_node_get_type(node) == CMARK_NODE_HEADING) {
      Heading heading;
      heading.level = cmark_node_get_heading_level(node);
      heading.first_line = cmark_node_get_start_line(node);
      heading.last_line = cmark_node_get_end_line(node);
      collect_text(node, heading.text);
      blocks.headings.push_back(std::move(heading));
    } else if (cmark_node_get_type(node) == CMARK_NODE_CODE_BLOCK) {
      int fence_length = 0, fence_offset = 0;
      char fence_char = 0;
      if (!cmark_node_get_fenced(node, &fence_length, &fence_offset, &fence_char)) continue;
      // Only the end of the file ends an unclosed fence at the top level: outputs rendered
      // after it would land inside it.
      const int open = cmark_node_get_start_line(node), end = cmark_node_get_end_line(node);
      if (end <= open || end > static_cast<int>(lines.size()) ||
          !closes_fence(lines[end - 1], fence_char, fence_length))
        blocks.unclosed.push_back(
            {open, "the code fence opened at line " + std::to_string(open) +
                       " is never closed, so it would swallow everything after it; close it "
                       "with a line of " + std::to_string(fence_length) + " '" +
                       std::string(1, fence_char) + "'"});
      CodeBlock block;
      block.info = cmark_node_get_fence_info(node);
      block.literal = cmark_node_get_literal(node);
      block.first_line = cmark_node_get_start_line(node) + 1;
      blocks.code_blocks.push_back(std::move(block));
    } else if (cmark_node_get_type(node) == CMARK_NODE_HTML_BLOCK) {
      const std::string literal = cmark_node_get_literal(node);
      const auto marker = html_block_end(literal);
      if (!marker) continue;
      const size_t opened = lower(literal).find(lower(marker->first));
      if (lower(literal).find(lower(marker->second), opened) != std::string::npos)
        continue;
      const int open = cmark_node_get_start_line(node);
      blocks.unclosed.push_back(
          {open, "the HTML block ('" + marker->first + "') opened at line " + std::to_string(open) +
                     " is never closed with '" + marker->second +
                     "', so it would swallow everything after it"});
    }
  }
  return blocks;
}

// The file as lines, each with its own line ending, so slices rejoin to the original bytes.
// A line ends at LF, CRLF or a lone CR, as cmark-gfm ends it, so line numbers agree with its.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find_first_of("\r\n", start);
    if (end == std::string::npos)
      end = text.size();
    else
      end += text.compare(end, 2, "\r\n") == 0 ? 2 : 1;
    lines.push_back(text.substr(start, end - start));
    start = end;
  }
  return lines;
}

// "\r\n", "\n", "\r", or "" for a last line without one.
std::string ending_of(const std::string& line) {
  if (line.size() >= 2 && line.compare(line.size() - 2, 2, "\r\n") == 0) return "\r\n";
  if (!line.empty() && (line.back() == '\n' || line.back() == '\r')) return line.substr(line.size() - 1);
  return "";
}

std::string ending_name(const std::string& ending) {
  return ending == "\r\n" ? "CRLF" : ending == "\n" ? "LF" : "a lone CR";
}

// One ending for every line, never a lone CR: a file is kept in its ending or refused, since a
// regenerated section could only guess which ending to use.
std::optional<FileProblem> line_ending_problem(const std::vector<std::string>& lines) {
  if (lines.empty()) return std::nullopt;
  const std::string first = ending_of(lines[0]);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string ending = ending_of(lines[i]);
    if (ending == "\r")
      return FileProblem{static_cast<int>(i + 1),
                         "line " + std::to_string(i + 1) +
                             " ends in a lone CR; pinmark reads files whose lines end in LF or "
                             "in CRLF"};
    if (!ending.empty() && ending != first)
      return FileProblem{static_cast<int>(i + 1),
                         "line " + std::to_string(i + 1) + " ends in " + ending_name(ending) +
                             " but line 1 in " + ending_name(first) +
                             "; every line of a file must end the same way"};
  }
  return std::nullopt;
}

// Goldens are UTF-8 text: a NUL or a byte outside a valid UTF-8 sequence is refused before a
// regeneration could copy it on.
std::optional<FileProblem> encoding_problem(const std::vector<std::string>& lines) {
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    for (size_t k = 0; k < line.size();) {
      const size_t length = fence_detail::utf8_sequence_length(line, k);
      const int number = static_cast<int>(i + 1);
      if (length == 0)
        return FileProblem{number, "line " + std::to_string(number) + " is not valid UTF-8 (byte " +
                                       fence_detail::hex_escape(static_cast<unsigned char>(line[k])) +
                                       "); a case file is UTF-8 text"};
      if (line[k] == '\0')
        return FileProblem{number, "line " + std::to_string(number) +
                                       " holds a NUL byte; a case file is UTF-8 text without NUL"};
      k += length;
    }
  }
  return std::nullopt;
}

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n") == std::string::npos;
}

// Lines [first, last] (1-based, inclusive), trailing blank lines dropped, without the final
// line ending: pieces are rejoined with one blank line between them.
std::string slice(const std::vector<std::string>& lines, int first, int last) {
  last = std::min<int>(last, static_cast<int>(lines.size()));
  while (last >= first && is_blank(lines[last - 1])) --last;
  std::string out;
  for (int i = first; i <= last; ++i) out += lines[i - 1];
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// How many line endings `text` holds (CRLF counts once).
int line_ends_in(const std::string& text) {
  int count = 0;
  for (size_t i = 0; i < text.size(); ++i)
    count += text[i] == '\n' || (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n'));
  return count;
}

// The bytes slicing left out: after the preamble, after each case, and the file's tail.
std::vector<std::string> gaps_between(const std::string& text, const std::vector<std::string>& lines,
                                      const CaseFile& file) {
  std::vector<size_t> offsets(lines.size() + 1, 0);  // offsets[i]: where line i + 1 starts
  for (size_t i = 0; i < lines.size(); ++i) offsets[i + 1] = offsets[i] + lines[i].size();
  std::vector<std::pair<int, size_t>> pieces = {{1, file.preamble.size()}};  // first line, bytes
  for (const Case& c : file.cases) pieces.push_back({c.line, c.text.size()});
  std::vector<std::string> gaps;
  for (size_t k = 0; k < pieces.size(); ++k) {
    const size_t end = offsets[pieces[k].first - 1] + pieces[k].second;
    const size_t next = k + 1 < pieces.size() ? offsets[pieces[k + 1].first - 1] : text.size();
    gaps.push_back(text.substr(end, next - end));
  }
  return gaps;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t");
  return s.substr(a, b - a + 1);
}

}  // namespace

std::string slugify(const std::string& title) {
  std::string slug;
  bool pending_separator = false;
  for (unsigned char c : title) {
    if (std::isalnum(c) && c < 128) {
      if (pending_separator && !slug.empty()) slug += '_';
      pending_separator = false;
      slug += static_cast<char>(std::tolower(c));
    } else {
      pending_separator = true;
    }
  }
  return slug;
}

const std::vector<std::string>& output_section_names() {
  static const std::vector<std::string> names = {"Logits", "Tokens",    "Dumps",
                                                 "Numerics", "Reference", "Errors"};
  return names;
}

const std::vector<std::string>& input_section_names() {
  static const std::vector<std::string> names = {"Config", "Inputs", "Kernel", "Targets"};
  return names;
}

bool is_output_section(const std::string& name) {
  const auto& names = output_section_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

CaseFile parse_case_file(const std::string& text) {
  CaseFile file;
  const std::vector<std::string> lines = split_lines(text);
  const int line_count = static_cast<int>(lines.size());
  ParsedBlocks blocks = parse_blocks(text, lines);
  if (!lines.empty() && ending_of(lines[0]) == "\r\n") file.newline = "\r\n";
  if (auto problem = line_ending_problem(lines)) file.problems.push_back(*problem);
  if (auto problem = encoding_problem(lines)) file.problems.push_back(*problem);
  for (const FileProblem& problem : blocks.unclosed) file.problems.push_back(problem);

  // Only headings of levels 1-3 structure the file; deeper ones belong to the text around them.
  std::vector<Heading> headings;
  for (Heading& h : blocks.headings)
    if (h.level <= 3) headings.push_back(std::move(h));
  for (Heading& h : headings) h.text = trim(h.text);

  auto next_start = [&](size_t i) {
    return i + 1 < headings.size() ? headings[i + 1].first_line - 1 : line_count;
  };

  size_t first_case = headings.size();
  int title_line = 0;
  for (size_t i = 0; i < headings.size(); ++i) {
    const Heading& h = headings[i];
    if (h.level == 2) {
      first_case = i;
      break;
    }
    if (h.level == 1) {
      if (title_line)
        file.problems.push_back({h.first_line, "a second '#' title (the first is at line " +
                                                   std::to_string(title_line) +
                                                   "); a file has one title"});
      else
        title_line = h.first_line;
    } else if (is_output_section(h.text)) {
      file.problems.push_back({h.first_line, "output section '" + h.text +
                                                 "' before the first case ('##' heading)"});
    }
  }
  if (!title_line) {
    file.problems.push_back({headings.empty() ? 1 : headings.front().first_line,
                             "the file has no '#' title before its first case"});
  } else {
    for (int i = 1; i < title_line; ++i) {
      if (!is_blank(lines[i - 1])) {
        file.problems.push_back({i, "text before the '#' title; a file starts with its title"});
        break;
      }
    }
  }
  const int preamble_end = first_case < headings.size() ? headings[first_case].first_line - 1
                                                        : line_count;
  file.preamble = slice(lines, 1, preamble_end);

  std::map<std::string, int> slug_lines;
  Case* current = nullptr;
  for (size_t i = first_case; i < headings.size(); ++i) {
    const Heading& h = headings[i];
    if (h.level == 1) {
      file.problems.push_back({h.first_line, "a second '#' title (the first is at line " +
                                                 std::to_string(title_line) +
                                                 "); a file has one title"});
      continue;
    }
    if (h.level == 2) {
      Case c;
      c.title = h.text;
      c.slug = slugify(h.text);
      c.line = h.first_line;
      c.head = slice(lines, h.first_line, next_start(i));
      if (c.slug.empty()) {
        file.problems.push_back({h.first_line, "case title '" + h.text +
                                                   "' has no letters or digits to name it by"});
      } else if (auto [it, fresh] = slug_lines.emplace(c.slug, h.first_line); !fresh) {
        file.problems.push_back(
            {h.first_line, "two cases named '" + c.slug + "' (the first is at line " +
                               std::to_string(it->second) + "); case names must be unique"});
      }
      file.cases.push_back(std::move(c));
      current = &file.cases.back();
      continue;
    }
    Section s;
    s.name = h.text;
    s.line = h.first_line;
    const int end = next_start(i);
    s.text = slice(lines, h.first_line, end);
    for (const CodeBlock& block : blocks.code_blocks)
      if (block.first_line > h.last_line && block.first_line <= end) s.blocks.push_back(block);
    current->sections.push_back(std::move(s));
  }

  for (size_t i = first_case, c = 0; i < headings.size(); ++i) {
    if (headings[i].level != 2) continue;
    size_t j = i + 1;
    while (j < headings.size() && headings[j].level != 2) ++j;
    const int end = j < headings.size() ? headings[j].first_line - 1 : line_count;
    file.cases[c++].text = slice(lines, headings[i].first_line, end);
  }
  if (file.problems.empty()) file.gaps = gaps_between(text, lines, file);
  return file;
}

std::string assemble_case_file(const CaseFile& file, const std::vector<std::string>& case_texts) {
  const size_t n = file.cases.size();
  if (case_texts.size() != n)
    throw std::invalid_argument("assemble_case_file: " + std::to_string(case_texts.size()) +
                                " texts for " + std::to_string(n) + " cases");
  const std::string blank_line = file.newline + file.newline;
  const bool have_gaps = file.gaps.size() == n + 1;
  auto replaced = [&](size_t i) { return i < n && case_texts[i] != file.cases[i].text; };
  std::string out = file.preamble;
  for (size_t k = 0; k <= n; ++k) {
    std::string gap = have_gaps ? file.gaps[k] : (k < n ? blank_line : file.newline);
    // A new text must not run into its neighbour: a paragraph followed directly by the next
    // case's setext heading would become one paragraph.
    const bool beside_new = replaced(k) || (k > 0 && replaced(k - 1));
    if (k < n && beside_new && line_ends_in(gap) < 2) gap = blank_line;
    out += gap;
    if (k < n) out += case_texts[k];
  }
  return out;
}

}  // namespace pinmark
