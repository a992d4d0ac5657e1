#include "driver/case_file.h"

#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm-extension_api.h>
#include <cmark-gfm.h>

#include <algorithm>
#include <map>
#include <memory>

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

// Only top-level blocks count: a heading inside a list or a quote is prose.
ParsedBlocks parse_blocks(const std::string& text) {
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
      CodeBlock block;
      block.info = cmark_node_get_fence_info(node);
      block.literal = cmark_node_get_literal(node);
      block.first_line = cmark_node_get_start_line(node) + 1;
      blocks.code_blocks.push_back(std::move(block));
    }
  }
  return blocks;
}

// The file as lines, each with its own line ending, so slices rejoin to the original bytes.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    end = end == std::string::npos ? text.size() : end + 1;
    lines.push_back(text.substr(start, end - start));
    start = end;
  }
  return lines;
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
  ParsedBlocks blocks = parse_blocks(text);
  if (!lines.empty() && lines[0].size() >= 2 && lines[0].compare(lines[0].size() - 2, 2, "\r\n") == 0)
    file.newline = "\r\n";

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
  return file;
}

}  // namespace pinmark
