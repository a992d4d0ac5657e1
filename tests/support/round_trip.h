// The round-trip property of regeneration, shared by the GoogleTest property test and the
// libFuzzer target: on any input, a file pinmark refuses is never written; a file it accepts
// keeps its title, prose and input sections byte for byte, reads back as the same cases, and a
// second regeneration gives the same bytes as the first.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/fence.h"
#include "driver/file_run.h"
#include "driver/render.h"

namespace pinmark::test {

// A result that needs no run: an Errors section quoting the case's title and prose, the
// text most likely to break the fence it is printed in.
inline CaseResult stub_result(const Case& c) {
  CaseResult result;
  CaseProblem problem;
  problem.where = "Config, line 1";
  problem.message = "unknown config key '" + c.title + "' near " + c.head;
  result.problems.push_back(problem);
  return result;
}

// One regeneration of `text` with stub results for every case, as regenerate_text writes it.
// Throws std::runtime_error when pinmark refuses the file.
inline std::string regenerate_with_stubs(const std::string& text) {
  const CaseFile file = parse_case_file(text);
  std::map<std::string, CaseRewrite> rewrites;
  for (const Case& c : file.cases)
    rewrites.emplace(c.slug, CaseRewrite(c.text, render_case(c, stub_result(c), file.newline)));
  std::vector<std::string> skipped;
  return regenerate_text("input.md", text, rewrites, skipped);
}

inline std::vector<std::pair<std::string, std::string>> input_sections_of(const Case& c) {
  std::vector<std::pair<std::string, std::string>> sections;
  for (const Section& s : c.sections)
    if (!is_output_section(s.name)) sections.emplace_back(s.name, s.text);
  return sections;
}

enum class RoundTrip { refused_invalid, refused_on_read_back, held };

// Checks the property on `text`; returns how it held, or throws std::logic_error saying how it
// broke.
inline RoundTrip check_round_trip(const std::string& text) {
  const CaseFile first = parse_case_file(text);
  if (!first.problems.empty()) return RoundTrip::refused_invalid;
  std::vector<std::string> unchanged;
  for (const Case& c : first.cases) unchanged.push_back(c.text);
  if (assemble_case_file(first, unchanged) != text)
    throw std::logic_error("the file assembled from its own pieces differs from it");

  std::string once;
  try {
    once = regenerate_with_stubs(text);
  } catch (const std::runtime_error&) {
    return RoundTrip::refused_on_read_back;  // refused, so nothing was written
  }
  if (valid_utf8(once) != once) throw std::logic_error("a regenerated file is not valid UTF-8");
  const CaseFile second = parse_case_file(once);
  if (!second.problems.empty())
    throw std::logic_error("the regenerated file is invalid: " + second.problems.front().message);
  if (second.preamble != first.preamble) throw std::logic_error("the preamble changed");
  if (second.cases.size() != first.cases.size()) throw std::logic_error("the number of cases changed");
  for (size_t i = 0; i < first.cases.size(); ++i) {
    if (second.cases[i].head != first.cases[i].head)
      throw std::logic_error("the heading or prose of case " + std::to_string(i) + " changed");
    if (input_sections_of(second.cases[i]) != input_sections_of(first.cases[i]))
      throw std::logic_error("an input section of case " + std::to_string(i) + " changed");
  }
  std::string twice;
  try {
    twice = regenerate_with_stubs(once);
  } catch (const std::runtime_error& e) {
    throw std::logic_error(std::string("the regenerated file is refused: ") + e.what());
  }
  if (twice != once) throw std::logic_error("a second regeneration changed the file");
  return RoundTrip::held;
}

}  // namespace pinmark::test
