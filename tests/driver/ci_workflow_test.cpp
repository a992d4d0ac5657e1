// Pending goldens (accept, reject, review), the CI reports (--junit, --summary) and the parts of
// the command line that respect people (--help per command, --version, colour, REWROTE).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "driver/ci_report.h"
#include "driver/cli_color.h"
#include "driver/command_line.h"
#include "driver/file_run.h"
#include "driver/pending.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::read_file;
using test::TempDir;
using test::write_file;

std::string kernel_case(const std::string& title, int seed) {
  return "## " + title + "\n\n### Kernel\n\n```json\n{\"op\": \"softmax\", \"rows\": 2, \"len\": 4, "
                         "\"seed\": " +
         std::to_string(seed) + "}\n```\n";
}

using test::describe;
using test::Result;
using test::ScopedEnv;

// A tiny well-formedness check of XML as junit_xml writes it: elements nest and close, attribute
// values are quoted, every '&' starts a known or numeric reference, no '<' in text or
// attributes, no control character but tab and line breaks. Returns "" or what is wrong.
std::string xml_problem(const std::string& x) {
  std::vector<std::string> open;
  size_t i = 0;
  auto reference_ok = [&](size_t at) {
    const size_t end = x.find(';', at);
    if (end == std::string::npos || end - at > 8) return false;
    const std::string name = x.substr(at + 1, end - at - 1);
    if (name == "amp" || name == "lt" || name == "gt" || name == "quot" || name == "apos") return true;
    if (name.size() < 2 || name[0] != '#') return false;
    for (size_t k = 1; k < name.size(); ++k)
      if (!std::isdigit(static_cast<unsigned char>(name[k]))) return false;
    return true;
  };
  if (x.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", 0) != 0) return "no XML declaration";
  i = x.find('\n') + 1;
  bool root_seen = false;
  while (i < x.size()) {
    const unsigned char c = static_cast<unsigned char>(x[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return "control character at " + std::to_string(i);
    if (c == '&') {
      if (!reference_ok(i)) return "bad reference at " + std::to_string(i);
      ++i;
      continue;
    }
    if (c == '>') return "stray '>' at " + std::to_string(i);
    if (c != '<') {
      if (open.empty() && !std::isspace(c)) return "text outside the root at " + std::to_string(i);
      ++i;
      continue;
    }
    const bool closing = i + 1 < x.size() && x[i + 1] == '/';
    size_t k = i + (closing ? 2 : 1);
    const size_t name_start = k;
    while (k < x.size() && (std::isalnum(static_cast<unsigned char>(x[k])) || x[k] == '_')) ++k;
    const std::string name = x.substr(name_start, k - name_start);
    if (name.empty()) return "element without a name at " + std::to_string(i);
    if (closing) {
      if (open.empty() || open.back() != name || k >= x.size() || x[k] != '>')
        return "</" + name + "> closes nothing open at " + std::to_string(i);
      open.pop_back();
      i = k + 1;
      continue;
    }
    if (open.empty() && root_seen) return "a second root at " + std::to_string(i);
    root_seen = true;
    // Attributes: name="value" separated by spaces.
    for (;;) {
      while (k < x.size() && x[k] == ' ') ++k;
      if (k >= x.size()) return "unterminated tag <" + name;
      if (x[k] == '>' || (x[k] == '/' && k + 1 < x.size() && x[k + 1] == '>')) break;
      const size_t attr = k;
      while (k < x.size() && std::isalpha(static_cast<unsigned char>(x[k]))) ++k;
      if (k == attr || k + 1 >= x.size() || x[k] != '=' || x[k + 1] != '"')
        return "bad attribute in <" + name + "> at " + std::to_string(k);
      k += 2;
      for (; k < x.size() && x[k] != '"'; ++k) {
        const unsigned char v = static_cast<unsigned char>(x[k]);
        if (v == '<' || (v < 0x20)) return "raw '<' or control character in an attribute at " + std::to_string(k);
        if (v == '&' && !reference_ok(k)) return "bad reference in an attribute at " + std::to_string(k);
      }
      if (k >= x.size()) return "unterminated attribute in <" + name;
      ++k;
    }
    if (x[k] == '/') {
      i = k + 2;
    } else {
      open.push_back(name);
      i = k + 1;
    }
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  if (!root_seen) return "no root element";
  return "";
}

class CiWorkflow : public ::testing::Test {
 protected:
  Result pinmark(std::vector<std::string> args, const std::string& answers = "") {
    if (!args.empty() && (args[0] == "run" || args[0] == "review")) args.push_back("--color=never");
    std::istringstream in(answers);
    std::ostringstream out, err;
    Result r;
    r.status = run_command_line(args, in, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  // A file whose one case has no golden output yet, so it fails.
  std::string fresh_file(const std::string& name = "k.md", int seed = 1) {
    const std::string path = dir_.file(name);
    write_file(path, "# Kernels\n\n" + kernel_case("Softmax", seed));
    return path;
  }

  // What --regenerate makes of `path`, computed on a copy.
  std::string regenerated(const std::string& path) {
    const std::string copy = dir_.file("copy-of-" + fs::path(path).filename().string());
    fs::copy_file(path, copy, fs::copy_options::overwrite_existing);
    EXPECT_EQ(pinmark({"run", "--regenerate", "--no-pending", copy}).status, 0);
    std::string text = read_file(copy);
    fs::remove(copy);
    return text;
  }

  TempDir dir_;
  ScopedEnv ci_{"CI", nullptr};
  ScopedEnv regenerate_{"REGENERATE", nullptr};
};

// Pending goldens.

TEST_F(CiWorkflow, FailingRunWritesWhatRegenerationWouldBesideTheGolden) {
  const std::string path = fresh_file();
  const std::string golden = read_file(path);
  const std::string expected = regenerated(path);
  Result r = pinmark({"run", path});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.out, "PENDING " + path + ".pending")) << describe(r);
  EXPECT_TRUE(contains(r.out, "1 pending golden written")) << describe(r);
  EXPECT_EQ(read_file(path), golden);
  ASSERT_TRUE(fs::exists(path + ".pending"));
  const Pending p = read_pending(path + ".pending");
  EXPECT_EQ(p.golden, path);
  EXPECT_EQ(p.text, expected);
  EXPECT_TRUE(pending_is_current(p, golden));
  EXPECT_TRUE(fs::is_empty(dir_.path()) == false);
  // No temporary file is left behind.
  for (const auto& entry : fs::directory_iterator(dir_.path()))
    EXPECT_FALSE(contains(entry.path().string(), ".tmp")) << entry.path();
}

TEST_F(CiWorkflow, PendingGoldensAreWrittenUnderCi) {
  ScopedEnv ci("CI", "true");
  const std::string path = fresh_file();
  Result r = pinmark({"run", path});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(fs::exists(path + ".pending")) << describe(r);
}

TEST_F(CiWorkflow, NoPendingWritesNone) {
  const std::string path = fresh_file();
  Result r = pinmark({"run", "--no-pending", path});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_FALSE(fs::exists(path + ".pending"));
  EXPECT_FALSE(contains(r.out, "PENDING")) << describe(r);
}

TEST_F(CiWorkflow, PassingRunRemovesAStalePending) {
  const std::string path = fresh_file();
  ASSERT_EQ(pinmark({"run", "--regenerate", path}).status, 0);
  write_file(path + ".pending", "left from an earlier run\n");
  Result r = pinmark({"run", path});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_FALSE(fs::exists(path + ".pending"));
  EXPECT_TRUE(contains(r.out, "REMOVED " + path + ".pending (stale)")) << describe(r);
}

TEST_F(CiWorkflow, AFilteredRunThatPassesKeepsThePendingOfTheOtherCases) {
  const std::string path = dir_.file("two.md");
  write_file(path, "# Kernels\n\n" + kernel_case("First", 1) + "\n" + kernel_case("Second", 2));
  ASSERT_EQ(pinmark({"run", "--regenerate", path}).status, 0);
  // Move one digit of the second case's Dumps.
  std::string golden = read_file(path);
  const size_t second = golden.find("## Second");
  const size_t row = golden.find("| `output` | [2, 4] | ", second);
  ASSERT_NE(row, std::string::npos) << golden;
  const size_t digit = golden.find_first_of("0123456789", row + 22);
  golden[digit] = golden[digit] == '9' ? '8' : golden[digit] + 1;
  write_file(path, golden);
  ASSERT_EQ(pinmark({"run", path}).status, 1);
  ASSERT_TRUE(fs::exists(path + ".pending"));
  Result r = pinmark({"run", "--filter", "first", path});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(fs::exists(path + ".pending")) << describe(r);
}

TEST_F(CiWorkflow, AcceptTakesEveryPendingAndTheSuitePasses) {
  const std::string a = fresh_file("a.md", 1);
  fs::create_directories(dir_.file("sub"));
  const std::string b = fresh_file("sub/b.md", 2);
  ASSERT_EQ(pinmark({"run", dir_.path()}).status, 1);
  const std::string pending_a = read_pending(a + ".pending").text;
  Result r = pinmark({"accept", dir_.path()});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "ACCEPTED " + a + ".pending\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, "ACCEPTED " + b + ".pending\n")) << describe(r);
  EXPECT_EQ(read_file(a), pending_a);
  EXPECT_FALSE(fs::exists(a + ".pending"));
  EXPECT_FALSE(fs::exists(b + ".pending"));
  Result again = pinmark({"run", dir_.path()});
  EXPECT_EQ(again.status, 0) << describe(again);
  EXPECT_TRUE(contains(again.out, "2 passed, 0 failed")) << describe(again);
}

TEST_F(CiWorkflow, AcceptOneFileByItsGoldenName) {
  const std::string a = fresh_file("a.md", 1);
  const std::string b = fresh_file("b.md", 2);
  ASSERT_EQ(pinmark({"run", dir_.path()}).status, 1);
  Result r = pinmark({"accept", a});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_FALSE(fs::exists(a + ".pending"));
  EXPECT_TRUE(fs::exists(b + ".pending"));
}

TEST_F(CiWorkflow, AcceptRefusesAPendingWhoseGoldenChanged) {
  const std::string path = fresh_file();
  ASSERT_EQ(pinmark({"run", path}).status, 1);
  const std::string edited = read_file(path) + "\nA sentence added since.\n";
  write_file(path, edited);
  const std::string pending = read_file(path + ".pending");
  Result r = pinmark({"accept", path});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "cannot accept " + path + ".pending: " + path +
                                  " changed since it was written")) << describe(r);
  EXPECT_TRUE(contains(r.err, "pinmark reject")) << describe(r);
  EXPECT_EQ(read_file(path), edited);
  EXPECT_EQ(read_file(path + ".pending"), pending);
}

TEST_F(CiWorkflow, AcceptRefusesAPendingWhoseGoldenIsGone) {
  const std::string path = fresh_file();
  ASSERT_EQ(pinmark({"run", path}).status, 1);
  fs::remove(path);
  Result r = pinmark({"accept", dir_.path()});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "its golden " + path + " is gone")) << describe(r);
  EXPECT_TRUE(fs::exists(path + ".pending"));
}

TEST_F(CiWorkflow, AcceptRefusesAFileThatIsNotAPendingGolden) {
  const std::string path = fresh_file();
  write_file(path + ".pending", "# Kernels\n\nwritten by hand\n");
  Result r = pinmark({"accept", dir_.path()});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, path + ".pending is not a pending golden written by pinmark"))
      << describe(r);
  EXPECT_EQ(read_file(path), "# Kernels\n\n" + kernel_case("Softmax", 1));
}

TEST_F(CiWorkflow, NothingPendingIsAnError) {
  fresh_file();
  for (const char* command : {"accept", "reject", "review"}) {
    Result r = pinmark({command, dir_.path()});
    EXPECT_EQ(r.status, 1) << command << "\n" << describe(r);
    EXPECT_TRUE(contains(r.err, "no pending golden (*.md.pending) in " + dir_.path())) << describe(r);
  }
}

TEST_F(CiWorkflow, AcceptOfAPathThatDoesNotExist) {
  const std::string missing = dir_.file("nowhere");
  Result r = pinmark({"accept", missing});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "no such file or folder: " + missing)) << describe(r);
}

TEST_F(CiWorkflow, RejectDeletesThePendingsAndKeepsTheGoldens) {
  const std::string path = fresh_file();
  const std::string golden = read_file(path);
  ASSERT_EQ(pinmark({"run", path}).status, 1);
  Result r = pinmark({"reject", dir_.path()});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "REJECTED " + path + ".pending\n")) << describe(r);
  EXPECT_FALSE(fs::exists(path + ".pending"));
  EXPECT_EQ(read_file(path), golden);
}

TEST_F(CiWorkflow, ReviewShowsEachDiffAndDoesWhatIsAnswered) {
  const std::string a = fresh_file("a.md", 1);
  const std::string b = fresh_file("b.md", 2);
  const std::string c = fresh_file("c.md", 3);
  const std::string golden_b = read_file(b);
  ASSERT_EQ(pinmark({"run", dir_.path()}).status, 1);
  const std::string pending_a = read_pending(a + ".pending").text;
  Result r = pinmark({"review", dir_.path()}, "maybe\na\nr\ns\n");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "[1/3] " + a + "\n--- " + a + " (golden)\n+++ " + a +
                                  ".pending (pending)\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, "+### Numerics")) << describe(r);
  EXPECT_TRUE(contains(r.out, "'maybe' is not one of a, r, s, q")) << describe(r);
  EXPECT_TRUE(contains(r.out, "1 accepted, 1 rejected, 1 left pending")) << describe(r);
  EXPECT_EQ(read_file(a), pending_a);
  EXPECT_FALSE(fs::exists(a + ".pending"));
  EXPECT_EQ(read_file(b), golden_b);
  EXPECT_FALSE(fs::exists(b + ".pending"));
  EXPECT_TRUE(fs::exists(c + ".pending"));
}

TEST_F(CiWorkflow, ReviewStopsAtQuitOrTheEndOfItsInput) {
  fresh_file("a.md", 1);
  fresh_file("b.md", 2);
  ASSERT_EQ(pinmark({"run", dir_.path()}).status, 1);
  Result quit = pinmark({"review", dir_.path()}, "q\n");
  EXPECT_EQ(quit.status, 0) << describe(quit);
  EXPECT_TRUE(contains(quit.out, "0 accepted, 0 rejected, 2 left pending")) << describe(quit);
  EXPECT_FALSE(contains(quit.out, "[2/2]")) << describe(quit);
  Result eof = pinmark({"review", dir_.path()}, "");
  EXPECT_TRUE(contains(eof.out, "0 accepted, 0 rejected, 2 left pending")) << describe(eof);
}

TEST_F(CiWorkflow, ReviewSaysWhenAGoldenChangedAndAcceptingIsRefused) {
  const std::string path = fresh_file();
  ASSERT_EQ(pinmark({"run", path}).status, 1);
  write_file(path, read_file(path) + "\nEdited.\n");
  Result r = pinmark({"review", path}, "a\n");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.out, path + " changed since this pending was written")) << describe(r);
  EXPECT_TRUE(contains(r.err, "changed since it was written")) << describe(r);
  EXPECT_TRUE(fs::exists(path + ".pending"));
}

TEST_F(CiWorkflow, RegenerationNamesANoteItDropsFromAnOutputSection) {
  const std::string path = fresh_file();
  ASSERT_EQ(pinmark({"run", "--regenerate", path}).status, 0);
  std::string text = read_file(path);
  const size_t numerics = text.find("### Numerics\n\n");
  ASSERT_NE(numerics, std::string::npos) << text;
  text.insert(numerics + std::string("### Numerics\n\n").size(), "A note of mine.\n\n");
  write_file(path, text);
  const int line = test::line_of(text, "A note of mine.");
  Result r = pinmark({"run", "--regenerate", path});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "DROPPED " + path + ":" + std::to_string(line) +
                                  ": `A note of mine.` is not in the regenerated output "
                                  "section"))
      << describe(r);
  EXPECT_FALSE(contains(read_file(path), "A note of mine."));  // as docs/case-format.md says
  Result again = pinmark({"run", "--regenerate", path});
  EXPECT_FALSE(contains(again.out, "DROPPED")) << describe(again);
}

// One case at a time, as under ctest.

TEST_F(CiWorkflow, CasesUpdateTheirOwnPartOfThePending) {
  const std::string path = dir_.file("two.md");
  write_file(path, "# Kernels\n\n" + kernel_case("First", 1) + "\n" + kernel_case("Second", 2));
  const std::string golden = read_file(path);
  const std::string all_new = regenerated(path);
  FileRun run = run_file(path, [](const Case&) { return true; });
  ASSERT_EQ(run.outcomes.size(), 2u);
  const std::string first = run.case_of(run.outcomes[0]).text, first_new = run.outcomes[0].actual;
  const std::string second = run.case_of(run.outcomes[1]).text, second_new = run.outcomes[1].actual;

  EXPECT_TRUE(update_pending_case(path, "first", first, first_new));
  Pending p = read_pending(path + ".pending");
  EXPECT_TRUE(contains(p.text, first_new));
  EXPECT_TRUE(contains(p.text, second));
  EXPECT_TRUE(update_pending_case(path, "second", second, second_new));
  EXPECT_EQ(read_pending(path + ".pending").text, all_new);
  EXPECT_EQ(read_file(path), golden);
  // The first case passes now: its change is taken back out.
  EXPECT_TRUE(update_pending_case(path, "first", first, first));
  p = read_pending(path + ".pending");
  EXPECT_TRUE(contains(p.text, first + "\n"));
  EXPECT_FALSE(contains(p.text, first_new));
  EXPECT_TRUE(contains(p.text, second_new));
  EXPECT_TRUE(update_pending_case(path, "second", second, second));
  EXPECT_FALSE(fs::exists(path + ".pending"));
}

TEST_F(CiWorkflow, ACaseEditedSinceItRanLeavesThePendingAlone) {
  const std::string path = fresh_file();
  FileRun run = run_file(path, [](const Case&) { return true; });
  ASSERT_EQ(run.outcomes.size(), 1u);
  write_file(path, read_file(path) + "\nEdited meanwhile.\n");
  EXPECT_FALSE(update_pending_case(path, "softmax", run.case_of(run.outcomes[0]).text,
                                   run.outcomes[0].actual));
  EXPECT_FALSE(fs::exists(path + ".pending"));
  EXPECT_FALSE(update_pending_case(path, "gone", "x", "y"));
}

TEST_F(CiWorkflow, APendingForAnOlderGoldenIsStartedAfresh) {
  const std::string path = fresh_file();
  write_pending(path, "an older golden", "# Kernels\n\nold pending\n");
  FileRun run = run_file(path, [](const Case&) { return true; });
  ASSERT_EQ(run.outcomes.size(), 1u);
  EXPECT_TRUE(update_pending_case(path, "softmax", run.case_of(run.outcomes[0]).text,
                                  run.outcomes[0].actual));
  const Pending p = read_pending(path + ".pending");
  EXPECT_TRUE(pending_is_current(p, read_file(path)));
  EXPECT_EQ(p.text, regenerated(path));
}

// Reports.

TEST(XmlEscape, EscapesMarkupAndReplacesWhatXmlForbids) {
  EXPECT_EQ(xml_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
  EXPECT_EQ(xml_escape("1\n2\t3\r"), "1&#10;2&#9;3&#13;");
  EXPECT_EQ(xml_escape(std::string("x\x1b[31my\x01", 8)), "x\xEF\xBF\xBD[31my\xEF\xBF\xBD");
  EXPECT_EQ(xml_escape("\xC3\xA9 \xE2\x89\xA4"), "\xC3\xA9 \xE2\x89\xA4");  // é ≤ kept
  EXPECT_EQ(xml_escape("\xFF\xC3"), "\xEF\xBF\xBD\xEF\xBF\xBD");          // invalid UTF-8
  EXPECT_EQ(xml_escape("\xEF\xBF\xBF"), "\xEF\xBF\xBD");                  // U+FFFF
}

RunReport hostile_report() {
  RunReport r;
  r.cases.push_back({"cases/a&b<c>.md", "ok_case", CaseReport::Status::kPassed, {}, "", ""});
  r.cases.push_back({"cases/a&b<c>.md", "moved", CaseReport::Status::kFailed,
                     {"cases/a&b<c>.md:3: cpu fp32: rel L2 2e-03 > 2.7e-06 \"tolerance\"",
                      std::string("cases/a&b<c>.md:3: control \x01 and ]]> here", 42)},
                     "--- golden\n+++ actual\n-| x | <1> |\n+| x | &2 |\n", ""});
  r.cases.push_back({"cases/bad.md", "", CaseReport::Status::kError, {"cases/bad.md:1: no title"}, "", ""});
  return r;
}

TEST(JUnit, IsWellFormedWithOneTestcasePerCase) {
  const std::string x = junit_xml(hostile_report());
  EXPECT_EQ(xml_problem(x), "") << x;
  EXPECT_TRUE(contains(x, "<testsuites name=\"pinmark\" tests=\"3\" failures=\"1\" errors=\"1\">")) << x;
  EXPECT_TRUE(contains(x, "<testcase classname=\"cases/a&amp;b&lt;c&gt;.md\" name=\"ok_case\"/>")) << x;
  EXPECT_TRUE(contains(x, "<failure message=\"cases/a&amp;b&lt;c&gt;.md:3: cpu fp32: rel L2 2e-03 "
                          "&gt; 2.7e-06 &quot;tolerance&quot;&#10;")) << x;
  EXPECT_TRUE(contains(x, "-| x | &lt;1&gt; |&#10;+| x | &amp;2 |")) << x;
  EXPECT_TRUE(contains(x, "<testcase classname=\"cases/bad.md\" name=\"(file)\">\n      <error "
                          "message=\"cases/bad.md:1: no title\"")) << x;
}

TEST(JUnit, TheCheckerRejectsBrokenXml) {
  // The checker the tests above rely on catches what an escaping bug would produce.
  const std::string head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  EXPECT_EQ(xml_problem(head + "<a x=\"1\"><b/></a>\n"), "");
  EXPECT_NE(xml_problem(head + "<a>1 < 2</a>"), "");
  EXPECT_NE(xml_problem(head + "<a>R&D</a>"), "");
  EXPECT_NE(xml_problem(head + "<a x=\"<\"></a>"), "");
  EXPECT_NE(xml_problem(head + "<a><b></a></b>"), "");
  EXPECT_NE(xml_problem(head + "<a>\x1b</a>"), "");
  EXPECT_NE(xml_problem(head + "<a></a><a></a>"), "");
}

TEST(JUnit, Python3ParsesIt) {
  if (std::system("python3 -c 'import xml.dom.minidom' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 with xml.dom.minidom is not installed";
  TempDir dir;
  const std::string path = dir.file("junit.xml");
  write_file(path, junit_xml(hostile_report()));
  const std::string command =
      "python3 -c 'import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); "
      "c = d.getElementsByTagName(\"testcase\"); "
      "assert len(c) == 3, len(c); "
      "assert c[0].getAttribute(\"classname\") == \"cases/a&b<c>.md\"; "
      "f = c[1].getElementsByTagName(\"failure\")[0]; "
      "assert \"+| x | &2 |\" in f.firstChild.data; "
      "assert f.getAttribute(\"message\").count(chr(10)) == 1' " + path;
  EXPECT_EQ(std::system(command.c_str()), 0) << read_file(path);
}

TEST(Summary, ListsCountsFailedCasesTheirRowsAndDiffs) {
  RunReport r = hostile_report();
  r.stale_rows = 2;
  r.unmeasured_rows = 5;
  r.carried_rows = 7;
  r.pending = {"cases/a&b<c>.md.pending"};
  const std::string md = markdown_summary(r);
  EXPECT_EQ(md.rfind("## pinmark: ❌ 1 passed, 1 failed, 1 file not run\n", 0), 0u) << md;
  EXPECT_TRUE(contains(md, "| stale (measured for other inputs or other code) | 2 |")) << md;
  EXPECT_TRUE(contains(md, "| not measured on any machine | 5 |")) << md;
  EXPECT_TRUE(contains(md, "- `cases/a&b<c>.md::moved`\n  - `cases/a&b<c>.md:3: cpu fp32")) << md;
  EXPECT_TRUE(contains(md, "<details><summary>diff</summary>\n\n  ```diff\n  --- golden\n")) << md;
  EXPECT_TRUE(contains(md, "- `cases/bad.md`\n  - `cases/bad.md:1: no title`")) << md;
  EXPECT_FALSE(contains(md, "ok_case")) << md;
  EXPECT_TRUE(contains(md, "### Pending goldens")) << md;
}

TEST(Summary, AllPassedHasNoFailedSection) {
  RunReport r;
  r.cases.push_back({"a.md", "x", CaseReport::Status::kPassed, {}, "", ""});
  const std::string md = markdown_summary(r);
  EXPECT_EQ(md.rfind("## pinmark: ✅ 1 passed, 0 failed\n", 0), 0u) << md;
  EXPECT_FALSE(contains(md, "### Failed")) << md;
}

TEST(Summary, ShowsTheFirstThreeRowsAndCutsLongDiffs) {
  RunReport r;
  std::string diff;
  for (int i = 0; i < 200; ++i) diff += "+line " + std::to_string(i) + "\n";
  r.cases.push_back({"a.md", "x", CaseReport::Status::kFailed,
                     {"a.md:1: one", "a.md:1: two", "a.md:1: three", "a.md:1: four", "a.md:1: five"},
                     diff, ""});
  const std::string md = markdown_summary(r);
  EXPECT_TRUE(contains(md, "`a.md:1: three`\n  - and 2 more\n")) << md;
  EXPECT_FALSE(contains(md, "four")) << md;
  EXPECT_TRUE(contains(md, "  +line 79\n  ... 120 more lines (the JUnit report has them all)\n")) << md;
  EXPECT_FALSE(contains(md, "+line 80")) << md;
}

TEST_F(CiWorkflow, RunWritesBothReports) {
  const std::string passing = fresh_file("a.md", 1);
  ASSERT_EQ(pinmark({"run", "--regenerate", passing}).status, 0);
  const std::string failing = fresh_file("b.md", 2);
  const std::string junit = dir_.file("reports/deep/junit.xml");
  const std::string summary = dir_.file("reports/summary.md");
  Result r = pinmark({"run", dir_.path(), "--junit", junit, "--summary=" + summary});
  EXPECT_EQ(r.status, 1) << describe(r);
  const std::string x = read_file(junit);
  EXPECT_EQ(xml_problem(x), "") << x;
  EXPECT_TRUE(contains(x, "tests=\"2\" failures=\"1\"")) << x;
  EXPECT_TRUE(contains(x, "<testcase classname=\"" + passing + "\" name=\"softmax\"/>")) << x;
  EXPECT_TRUE(contains(x, "<testcase classname=\"" + failing + "\" name=\"softmax\">")) << x;
  EXPECT_TRUE(contains(x, "message=\"" + failing + ":3: differs from its golden\"")) << x;
  EXPECT_TRUE(contains(x, "+### Numerics")) << x;
  const std::string md = read_file(summary);
  EXPECT_TRUE(contains(md, "## pinmark: ❌ 1 passed, 1 failed")) << md;
  EXPECT_TRUE(contains(md, "- `" + failing + "::softmax`")) << md;
  EXPECT_TRUE(contains(md, "- `" + failing + ".pending`")) << md;
}

TEST_F(CiWorkflow, AReportThatCannotBeWrittenIsAnIoError) {
  const std::string path = fresh_file();
  ASSERT_EQ(pinmark({"run", "--regenerate", path}).status, 0);
  const std::string blocked = path + "/junit.xml";  // under a regular file
  Result r = pinmark({"run", path, "--junit", blocked});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "pinmark: --junit: cannot create the folder of " + blocked)) << describe(r);
  Result s = pinmark({"run", path, "--summary", dir_.path()});  // a folder
  EXPECT_EQ(s.status, 2) << describe(s);
  EXPECT_TRUE(contains(s.err, "pinmark: --summary: cannot replace " + dir_.path())) << describe(s);
}

TEST_F(CiWorkflow, ReportOptionErrors) {
  std::istringstream in;
  std::ostringstream out, err;
  EXPECT_EQ(run_command_line({"run", dir_.path(), "--junit"}, in, out, err), 2);
  EXPECT_TRUE(contains(err.str(), "--junit needs a value")) << err.str();
  Result same = pinmark({"run", dir_.path(), "--junit", "r.xml", "--summary", "r.xml"});
  EXPECT_EQ(same.status, 2);
  EXPECT_TRUE(contains(same.err, "--junit and --summary name the same file 'r.xml'")) << describe(same);
}

// The command line.

TEST_F(CiWorkflow, EveryCommandHasHelp) {
  for (const std::string command : {"run", "list", "audit", "accept", "reject", "review"}) {
    for (const std::string flag : {"--help", "-h"}) {
      Result r = pinmark({command, dir_.file("nowhere"), flag});
      EXPECT_EQ(r.status, 0) << command << " " << flag << "\n" << describe(r);
      EXPECT_EQ(r.out.rfind("usage: pinmark " + command + " [PATH...]", 0), 0u) << describe(r);
      EXPECT_TRUE(r.err.empty()) << describe(r);
    }
  }
  Result top = pinmark({"--help"});
  EXPECT_TRUE(contains(top.out, "pinmark accept [PATH...]")) << describe(top);
  EXPECT_TRUE(contains(top.out, "pinmark --version")) << describe(top);
}

TEST_F(CiWorkflow, Version) {
  for (const std::string flag : {"--version", "-V"}) {
    Result r = pinmark({flag});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out.rfind("pinmark ", 0), 0u) << describe(r);
    EXPECT_FALSE(contains(r.out, "unknown")) << describe(r);
    EXPECT_TRUE(r.out.size() > 9 && std::isdigit(static_cast<unsigned char>(r.out[8]))) << r.out;
  }
}

TEST_F(CiWorkflow, AnOptionACommandDoesNotTakeIsAnError) {
  Result r = pinmark({"list", "--sweep", "3", dir_.path()});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "unknown option '--sweep' for list\n\nusage: pinmark list")) << describe(r);
  Result a = pinmark({"accept", "--regenerate"});
  EXPECT_EQ(a.status, 2) << describe(a);
  EXPECT_TRUE(contains(a.err, "unknown option '--regenerate' for accept")) << describe(a);
  Result j = pinmark({"audit", "--junit=x.xml"});
  EXPECT_TRUE(contains(j.err, "unknown option '--junit' for audit")) << describe(j);
}

TEST(Color, FlagsThenEnvironmentThenTerminal) {
  // --color always / never win over everything.
  EXPECT_TRUE(use_color("always", "1", nullptr, "dumb", false));
  EXPECT_FALSE(use_color("never", nullptr, "1", "xterm", true));
  // auto: a terminal that is not dumb.
  EXPECT_TRUE(use_color("auto", nullptr, nullptr, "xterm", true));
  EXPECT_TRUE(use_color("auto", nullptr, nullptr, nullptr, true));
  EXPECT_FALSE(use_color("auto", nullptr, nullptr, "xterm", false));
  EXPECT_FALSE(use_color("auto", nullptr, nullptr, "dumb", true));
  // NO_COLOR, when non-empty, turns it off; an empty one counts as unset.
  EXPECT_FALSE(use_color("auto", "1", nullptr, "xterm", true));
  EXPECT_TRUE(use_color("auto", "", nullptr, "xterm", true));
  EXPECT_FALSE(use_color("auto", "1", "1", "xterm", true));
  // FORCE_COLOR turns it on without a terminal, even a dumb one; 0 and false do not.
  EXPECT_TRUE(use_color("auto", nullptr, "1", nullptr, false));
  EXPECT_TRUE(use_color("auto", nullptr, "3", "dumb", false));
  EXPECT_FALSE(use_color("auto", nullptr, "0", nullptr, false));
  EXPECT_FALSE(use_color("auto", nullptr, "false", nullptr, false));
  EXPECT_FALSE(use_color("auto", nullptr, "", nullptr, false));
}

TEST_F(CiWorkflow, ForceColorColoursTheRun) {
  const std::string path = fresh_file();
  ScopedEnv no_color("NO_COLOR", nullptr);
  ScopedEnv force("FORCE_COLOR", "1");
  std::istringstream in;
  std::ostringstream out, err;
  EXPECT_EQ(run_command_line({"run", path, "--no-pending"}, in, out, err), 1);
  EXPECT_TRUE(contains(out.str(), "\033[31mFAIL    \033[0m" + path)) << out.str();
  ScopedEnv no("NO_COLOR", "1");
  std::ostringstream plain;
  EXPECT_EQ(run_command_line({"run", path, "--no-pending"}, in, plain, err), 1);
  EXPECT_FALSE(contains(plain.str(), "\033[")) << plain.str();
}

TEST_F(CiWorkflow, RegenerateNamesEachFileItRewrote) {
  const std::string a = fresh_file("a.md", 1);
  ASSERT_EQ(pinmark({"run", "--regenerate", a}).status, 0);
  const std::string b = fresh_file("b.md", 2);
  const std::string c = fresh_file("c.md", 3);
  Result r = pinmark({"run", "--regenerate", dir_.path()});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_FALSE(contains(r.out, "REWROTE " + a)) << describe(r);
  EXPECT_TRUE(contains(r.out, "REWROTE " + b + "\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, "REWROTE " + c + "\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, "regenerated 2 files\n")) << describe(r);
}

}  // namespace
}  // namespace pinmark
