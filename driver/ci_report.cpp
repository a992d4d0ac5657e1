#include "driver/ci_report.h"

#include <algorithm>
#include <sstream>

#include "driver/case_discovery.h"
#include "driver/fence.h"

namespace pinmark {
namespace {

const char* const kReplacement = "\xEF\xBF\xBD";  // U+FFFD

int count(const RunReport& r, CaseReport::Status s) {
  int n = 0;
  for (const CaseReport& c : r.cases) n += c.status == s;
  return n;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

// A job summary is capped in size (1 MiB on GitHub): long diffs are cut.
constexpr size_t kSummaryDiffLines = 80;

std::string capped(const std::string& text, size_t lines) {
  size_t at = 0;
  for (size_t n = 0; n < lines; ++n) {
    at = text.find('\n', at);
    if (at == std::string::npos) return text;
    ++at;
  }
  if (at >= text.size()) return text;
  size_t rest = 0;
  for (size_t i = at; i < text.size(); ++i) rest += text[i] == '\n';
  if (text.back() != '\n') ++rest;
  return text.substr(0, at) + "... " + std::to_string(rest) + " more lines (the JUnit report has them all)\n";
}

std::string name_of(const CaseReport& c) { return c.slug.empty() ? "(file)" : c.slug; }

}  // namespace

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const unsigned char b = static_cast<unsigned char>(text[i]);
    if (b >= 0x80) {
      const size_t n = fence_detail::utf8_sequence_length(text, i);
      if (n == 0) {
        out += kReplacement;
        ++i;
        continue;
      }
      // U+FFFE and U+FFFF are not XML characters.
      if (n == 3 && b == 0xEF && static_cast<unsigned char>(text[i + 1]) == 0xBF &&
          static_cast<unsigned char>(text[i + 2]) >= 0xBE)
        out += kReplacement;
      else
        out.append(text.substr(i, n));
      i += n;
      continue;
    }
    switch (b) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      case '\n': out += "&#10;"; break;
      case '\r': out += "&#13;"; break;
      case '\t': out += "&#9;"; break;
      default:
        if (b < 0x20) out += kReplacement;
        else out += static_cast<char>(b);
    }
    ++i;
  }
  return out;
}

std::string junit_xml(const RunReport& report) {
  std::ostringstream x;
  const int failures = count(report, CaseReport::Status::kFailed);
  const int errors = count(report, CaseReport::Status::kError);
  const std::string counts = " tests=\"" + std::to_string(report.cases.size()) + "\" failures=\"" +
                             std::to_string(failures) + "\" errors=\"" + std::to_string(errors) + "\"";
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x << "<testsuites name=\"pinmark\"" << counts << ">\n";
  x << "  <testsuite name=\"pinmark\"" << counts << " skipped=\"0\">\n";
  for (const CaseReport& c : report.cases) {
    x << "    <testcase classname=\"" << xml_escape(c.file) << "\" name=\"" << xml_escape(name_of(c))
      << "\"";
    if (c.status == CaseReport::Status::kPassed) {
      x << "/>\n";
      continue;
    }
    const char* element = c.status == CaseReport::Status::kFailed ? "failure" : "error";
    std::string message = c.failures.empty() ? "differs from its golden" : joined(c.failures);
    if (!message.empty() && message.back() == '\n') message.pop_back();
    x << ">\n      <" << element << " message=\"" << xml_escape(message) << "\" type=\""
      << (c.status == CaseReport::Status::kFailed ? "pinmark.failure" : "pinmark.error") << "\">"
      << xml_escape(joined(c.failures) + (c.diff.empty() ? "" : "\n" + c.diff)) << "</" << element
      << ">\n    </testcase>\n";
  }
  x << "  </testsuite>\n</testsuites>\n";
  return x.str();
}

std::string markdown_summary(const RunReport& report) {
  const int passed = count(report, CaseReport::Status::kPassed);
  const int failed = count(report, CaseReport::Status::kFailed);
  const int errors = count(report, CaseReport::Status::kError);
  std::ostringstream md;
  md << "## pinmark: " << (failed + errors ? "❌ " : "✅ ") << passed << " passed, " << failed
     << " failed";
  if (errors) md << ", " << errors << " file" << (errors == 1 ? "" : "s") << " not run";
  md << "\n\n";
  md << "| Rows | Count |\n|---|---:|\n";
  md << "| carried over from the goldens (hardware this machine lacks) | " << report.carried_rows
     << " |\n";
  md << "| stale (measured for other inputs or other code) | " << report.stale_rows << " |\n";
  md << "| not measured on any machine | " << report.unmeasured_rows << " |\n\n";
  if (failed + errors) {
    md << "### Failed\n\n";
    for (const CaseReport& c : report.cases) {
      if (c.status == CaseReport::Status::kPassed) continue;
      md << "- " << inline_code(c.slug.empty() ? c.file : case_name(c.file, c.slug)) << "\n";
      const size_t shown = std::min<size_t>(c.failures.size(), 3);
      for (size_t i = 0; i < shown; ++i) md << "  - " << inline_code(c.failures[i]) << "\n";
      if (c.failures.size() > shown)
        md << "  - and " << c.failures.size() - shown << " more\n";
      if (!c.chart.empty())
        md << "\n  ![error against layer, per target](" << c.chart << ")\n";
      if (!c.diff.empty()) {
        md << "\n  <details><summary>diff</summary>\n\n";
        std::string block = fenced_block(capped(c.diff, kSummaryDiffLines), "diff");
        // Indented under the list item.
        std::string indented = "  ";
        for (char ch : block) {
          indented += ch;
          if (ch == '\n') indented += "  ";
        }
        md << indented << "\n\n  </details>\n";
      }
      md << "\n";
    }
  }
  if (!report.pending.empty()) {
    md << "### Pending goldens\n\nAccept them with `pinmark accept` after downloading them beside "
          "their goldens:\n\n";
    for (const std::string& p : report.pending) md << "- " << inline_code(p) << "\n";
    md << "\n";
  }
  if (!report.rewritten.empty()) {
    md << "### Regenerated\n\n";
    for (const std::string& p : report.rewritten) md << "- " << inline_code(p) << "\n";
    md << "\n";
  }
  return md.str();
}

}  // namespace pinmark
