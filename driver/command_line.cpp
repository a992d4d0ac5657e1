#include "driver/command_line.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <sstream>
#include <iostream>
#include <map>
#include <optional>

#include "driver/audit.h"
#include "driver/case_discovery.h"
#include "driver/case_runner.h"
#include "driver/ci_report.h"
#include "driver/cli_color.h"
#include "driver/docs_export.h"
#include "driver/dropped_notes.h"
#include "driver/env_flag.h"
#include "driver/export.h"
#include "driver/fence.h"
#include "driver/file_run.h"
#include "driver/golden_io.h"
#include "driver/golden_rows.h"
#include "driver/layer_chart.h"
#include "driver/plugin.h"
#include "driver/pending.h"
#include "driver/progress.h"
#include "driver/render.h"
#include "driver/unified_diff.h"
#include "driver/verdict.h"

namespace pinmark {
namespace {

#ifndef PINMARK_VERSION
#define PINMARK_VERSION "unknown"
#endif

constexpr const char* kRunUsage =
    "usage: pinmark run [PATH...] [--filter GLOB] [--regenerate [--force]] [--require-fresh]\n"
    "                   [--junit FILE] [--summary FILE] [--no-pending] [--color WHEN] [-q]\n"
    "\n"
    "Runs the cases of each Markdown file (folders are searched for *.md; default: cases) and\n"
    "compares each file with the golden on disk. A file with a failing case gets what\n"
    "--regenerate would write beside it, as FILE.md.pending (the golden is not touched; also\n"
    "under CI, so a pipeline can upload them); a file whose cases all pass loses a stale one.\n"
    "A Numerics row's verdict is ok, FAIL, or ill-conditioned: rounding of the target's size\n"
    "alone moves the output past any informative bound, so the row is shown, not judged, and\n"
    "fails nothing (docs/numerics.md). A row carried from another machine that a change of the\n"
    "code or of the case has made stale renders with '(stale)', so the file differs from its\n"
    "golden until it is regenerated (best on a machine that runs that row).\n"
    "\n"
    "  --filter GLOB   run only the cases GLOB ('*' and '?') names: by slug, or by FILE::slug as\n"
    "                  pinmark list prints it and ctest names the test; a filter that matches no\n"
    "                  case is an error\n"
    "  --regenerate    rewrite the goldens with what the cases produce now (also REGENERATE=1),\n"
    "                  naming each file rewritten; refused when CI is set, unless --force is given;\n"
    "                  a case that now renders Errors where its golden holds rows measured on\n"
    "                  other machines is not rewritten (those rows would be lost), unless --force\n"
    "  --require-fresh fail every case with a row that is stale (measured for other inputs or\n"
    "                  other code) or that no machine has measured: for release gates\n"
    "  --junit FILE    write a JUnit XML report: one testcase per case, the failing rows and the\n"
    "                  diff in each failure\n"
    "  --summary FILE  write a Markdown summary (the shape of a GitHub job summary): counts,\n"
    "                  failed cases with their first failing rows, stale and unmeasured rows;\n"
    "                  beside it, an SVG chart of error against layer per failing model case\n"
    "  --no-pending    write no FILE.md.pending\n"
    "  --color WHEN    colour the output: auto (default), always, never. With auto: off when\n"
    "                  NO_COLOR is set, on when FORCE_COLOR is set (not 0), else on a terminal\n"
    "                  whose TERM is not dumb\n"
    "  -q, --quiet     print only failures and the summary\n"
    "\n"
    "In a changed line of a diff, what moved is marked (reverse video, or '^' under it on a\n"
    "'?' line). On a terminal, a run over a second shows its progress on stderr, erased at the\n"
    "end; not when TERM is dumb or CI is set.\n"
    "\n"
    "Exit status: 0 when every case matches, 1 when a case differs, a file is invalid or\n"
    "--filter selects no case, 2 for a usage or I/O error.\n";

constexpr const char* kListUsage =
    "usage: pinmark list [PATH...] [--filter GLOB]\n"
    "\n"
    "Prints the name of each case of the files (default: cases) that GLOB matches, one a line:\n"
    "FILE::slug, the name --filter takes and ctest gives the case's test.\n"
    "Exit status: 1 when a file is invalid or GLOB matches no case, 2 for a usage or I/O error.\n";

constexpr const char* kAuditUsage =
    "usage: pinmark audit [PATH...] [--sweep N]\n"
    "\n"
    "Checks that each case's tolerances reject outputs that carry no information (all zeros,\n"
    "another seed, another position, a permutation) and, with --sweep, that the healthy runtime\n"
    "never fails; exits 1 on any such finding, and on a file it cannot read as cases (INVALID,\n"
    "as pinmark run reports it). Ill-conditioned rows (neither ok nor FAIL: the\n"
    "case cannot judge that target, docs/numerics.md) are listed as UNJUDGED, not findings.\n"
    "\n"
    "  --sweep N       also run N random variations of the cases on the CPU targets (default 0);\n"
    "                  no row may FAIL; variations the runtime refuses as invalid inputs (shapes\n"
    "                  that do not divide) are counted and skipped\n";

constexpr const char* kAcceptUsage =
    "usage: pinmark accept [PATH...]\n"
    "\n"
    "Puts every pending golden (FILE.md.pending, written by a failing `pinmark run`) under the\n"
    "given files and folders (default: cases) over its golden, and removes it. A pending whose\n"
    "golden changed since it was written is refused and kept. Exit status: 0 when all were\n"
    "accepted, 1 when one was refused or there was none, 2 for a usage or I/O error.\n";

constexpr const char* kRejectUsage =
    "usage: pinmark reject [PATH...]\n"
    "\n"
    "Deletes every pending golden (FILE.md.pending) under the given files and folders (default:\n"
    "cases), naming each. Exit status: 1 when there was none, 2 for a usage or I/O error.\n";

constexpr const char* kReviewUsage =
    "usage: pinmark review [PATH...] [--color WHEN]\n"
    "\n"
    "Shows each pending golden under the given files and folders (default: cases) as a diff\n"
    "against its golden and asks: a(ccept), r(eject), s(kip) or q(uit). Exit status: 1 when\n"
    "there was none or an accept was refused, 2 for a usage or I/O error.\n";

constexpr const char* kDocsUsage =
    "usage: pinmark docs [--check]\n"
    "\n"
    "Compiles the case files under cases/ into docs/behavior/ (one page per case file: its prose,\n"
    "each case's setup and key numbers, linked back to the case) and the llms.txt index, in the\n"
    "current folder (the repository root). Writes only the files that changed.\n"
    "\n"
    "  --check         write nothing; name each generated file that is stale, and exit 1 if any\n"
    "\n"
    "Exit status: 0 when the files are current or were written, 1 with --check when one is\n"
    "stale, 2 for a usage or I/O error or an invalid case file.\n";

constexpr const char* kExportUsage =
    "usage: pinmark export CASE --out DIR [--force]\n"
    "\n"
    "Writes a case's inputs and the fp64 oracle's outputs into DIR, for a test suite elsewhere\n"
    "(pytest, GoogleTest) to check an engine against pinmark's oracle directly. CASE is a case's\n"
    "name, FILE::slug as `pinmark list` prints it, or a case file (then every case of it, each\n"
    "in a folder named by its slug, with an index.json listing them; a case of it that\n"
    "cannot be exported is skipped and named).\n"
    "\n"
    "A model case's folder: inputs.safetensors (sequence.S.tokens and .positions, I64),\n"
    "oracle.safetensors (sequence.S.logits at every prompt position, .decode_logits, F64;\n"
    ".generated, I64; .taps.NAME, every tap of the sequence's first forward call, F64),\n"
    "model.safetensors (synthetic weights in F64 under Hugging Face names; a checkpoint case\n"
    "names its folder instead), config.json (the Hugging Face config), and index.json (every\n"
    "file, tensor, dtype and shape; the pinmark version, code fingerprint, case and file).\n"
    "A kernel case's: inputs.safetensors (x, w, q, k, v, gate, up, positions as the op takes\n"
    "them), oracle.safetensors (output, F64) and index.json.\n"
    "\n"
    "  --out DIR       the folder to write; written beside it, then renamed into place\n"
    "  --force         replace DIR when it exists and is not empty\n"
    "\n"
    "Exit status: 0 when written, 1 when a case cannot be exported (an invalid file, a case\n"
    "that renders an Errors section, an oracle that is not finite), 2 for an unknown case, a\n"
    "non-empty DIR without --force, or a usage or I/O error.\n";

constexpr const char* kUsage =
    "usage: pinmark run [PATH...] [--filter GLOB] [--regenerate [--force]] [--require-fresh]\n"
    "                   [--junit FILE] [--summary FILE] [--no-pending] [--color WHEN] [-q]\n"
    "       pinmark list [PATH...] [--filter GLOB]\n"
    "       pinmark audit [PATH...] [--sweep N]\n"
    "       pinmark accept [PATH...]\n"
    "       pinmark reject [PATH...]\n"
    "       pinmark review [PATH...]\n"
    "       pinmark docs [--check]\n"
    "       pinmark export CASE --out DIR [--force]\n"
    "       pinmark --version\n"
    "\n"
    "`pinmark COMMAND --help` describes a command. Paths default to cases.\n"
    "\n"
    "Exit status: 0 when every case matches, 1 when a case differs or a file is invalid, 2 for a\n"
    "usage or I/O error.\n";

const char* usage_of(const std::string& command) {
  if (command == "run") return kRunUsage;
  if (command == "list") return kListUsage;
  if (command == "audit") return kAuditUsage;
  if (command == "accept") return kAcceptUsage;
  if (command == "reject") return kRejectUsage;
  if (command == "review") return kReviewUsage;
  if (command == "docs") return kDocsUsage;
  if (command == "export") return kExportUsage;
  return kUsage;
}

// The options each command takes, beyond paths and --help.
bool takes(const std::string& command, const std::string& option) {
  if (option == "--filter") return command == "run" || command == "list";
  if (option == "--sweep") return command == "audit";
  if (option == "--check") return command == "docs";
  if (option == "--out") return command == "export";
  if (option == "--force") return command == "run" || command == "export";
  if (option == "--color") return command == "run" || command == "list" || command == "review";
  if (option == "--regenerate" || option == "--force" || option == "--require-fresh" ||
      option == "--junit" || option == "--summary" || option == "--no-pending" || option == "-q" ||
      option == "--quiet")
    return command == "run";
  return false;
}

struct Options {
  std::string command;
  std::vector<std::string> paths;
  std::string filter = "*";
  bool regenerate = false;
  bool force = false;
  bool quiet = false;
  bool color = false;
  bool require_fresh = false;
  bool pending = true;
  bool check = false;
  std::string junit, summary;
  std::string export_out;
  int sweep = 0;
};

std::optional<Options> parse_options(const std::vector<std::string>& args, std::ostream& err) {
  Options o;
  std::string color = "auto";
  if (args.empty()) {
    err << kUsage;
    return std::nullopt;
  }
  o.command = args[0];
  if (o.command == "-h" || o.command == "--help" || o.command == "help") {
    o.command = "help";
    return o;
  }
  if (o.command == "--version" || o.command == "-V") {
    o.command = "version";
    return o;
  }
  if (o.command != "run" && o.command != "list" && o.command != "audit" &&
      o.command != "accept" && o.command != "reject" && o.command != "review" &&
      o.command != "docs" && o.command != "export") {
    err << "pinmark: unknown command '" << o.command << "'\n\n" << kUsage;
    return std::nullopt;
  }
  // --help anywhere describes the command, whatever else is on the line.
  for (size_t i = 1; i < args.size(); ++i)
    if (args[i] == "--help" || args[i] == "-h") {
      o.paths = {o.command};
      o.command = "help";
      return o;
    }
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    const std::string option = a.substr(0, a.find('='));
    if (!a.empty() && a[0] == '-' && a != "-" && !takes(o.command, option)) {
      err << "pinmark: unknown option '" << option << "' for " << o.command << "\n\n"
          << usage_of(o.command);
      return std::nullopt;
    }
    auto value = [&](const std::string& name) -> std::optional<std::string> {
      if (i + 1 >= args.size()) {
        err << "pinmark: " << name << " needs a value\n";
        return std::nullopt;
      }
      return args[++i];
    };
    if (a == "--filter") {
      auto v = value(a);
      if (!v) return std::nullopt;
      o.filter = *v;
    } else if (a.rfind("--filter=", 0) == 0) {
      o.filter = a.substr(9);
    } else if (a == "--junit" || a == "--summary") {
      auto v = value(a);
      if (!v) return std::nullopt;
      (a == "--junit" ? o.junit : o.summary) = *v;
    } else if (a.rfind("--junit=", 0) == 0) {
      o.junit = a.substr(8);
    } else if (a.rfind("--summary=", 0) == 0) {
      o.summary = a.substr(10);
    } else if (a == "--out") {
      auto v = value(a);
      if (!v) return std::nullopt;
      o.export_out = *v;
    } else if (a.rfind("--out=", 0) == 0) {
      o.export_out = a.substr(6);
    } else if (a == "--check") {
      o.check = true;
    } else if (a == "--no-pending") {
      o.pending = false;
    } else if (a == "--regenerate") {
      o.regenerate = true;
    } else if (a == "--force") {
      o.force = true;
    } else if (a == "--require-fresh") {
      o.require_fresh = true;
    } else if (a == "--sweep") {
      auto v = value(a);
      if (!v) return std::nullopt;
      try {
        size_t used = 0;
        o.sweep = std::stoi(*v, &used);
        if (used != v->size() || o.sweep < 0 || o.sweep > 1000000) throw std::out_of_range(*v);
      } catch (const std::exception&) {
        err << "pinmark: --sweep takes a count from 0 to 1000000, not '" << *v << "'\n";
        return std::nullopt;
      }
    } else if (a == "-q" || a == "--quiet") {
      o.quiet = true;
    } else if (a == "--color" || a.rfind("--color=", 0) == 0) {
      std::optional<std::string> v = a == "--color" ? value(a) : a.substr(8);
      if (!v) return std::nullopt;
      color = *v;
      if (color != "auto" && color != "always" && color != "never") {
        err << "pinmark: --color takes auto, always or never, not '" << color << "'\n";
        return std::nullopt;
      }
    } else if (!a.empty() && a[0] == '-') {
      err << "pinmark: unknown option '" << a << "'\n\n" << kUsage;
      return std::nullopt;
    } else {
      o.paths.push_back(a);
    }
  }
  if (o.command == "docs" && !o.paths.empty()) {
    err << "pinmark: docs takes no paths (it reads cases/ of the current folder), not '"
        << o.paths[0] << "'\n\n" << kDocsUsage;
    return std::nullopt;
  }
  if (o.command == "export") {
    if (o.paths.size() != 1 || o.export_out.empty()) {
      err << "pinmark: export takes one CASE and --out DIR"
          << (o.paths.size() > 1 ? ", not " + std::to_string(o.paths.size()) + " cases" : "")
          << "\n\n" << kExportUsage;
      return std::nullopt;
    }
    return o;
  }
  if (o.paths.empty()) o.paths.push_back("cases");
  try {
    if (env_flag("REGENERATE")) o.regenerate = true;
  } catch (const std::invalid_argument& e) {
    err << "pinmark: " << e.what() << "\n";
    return std::nullopt;
  }
  if ((!o.junit.empty() && o.junit == o.summary)) {
    err << "pinmark: --junit and --summary name the same file '" << o.junit << "'\n";
    return std::nullopt;
  }
  o.color = use_color(color, std::getenv("NO_COLOR"), std::getenv("FORCE_COLOR"),
                      std::getenv("TERM"), ::isatty(STDOUT_FILENO));
  return o;
}

struct Tally {
  int passed = 0, failed = 0, errors_pinned = 0, regenerated_files = 0;
  int selected = 0;       // cases the filter selected
  int no_target_ran = 0;  // cases whose targets all need hardware this machine lacks
  int carried_rows = 0;   // rows this machine cannot measure, carried over from the golden
  int engine_rows = 0;    // rows an engine measured here (driver/engine_run.h)
  int stale_rows = 0;     // carried rows measured for other inputs or other code
  int unknown_engine_rows = 0;  // carried rows of engines no pinmark-engines.json names
  int unmeasured_rows = 0;  // targets no machine has measured
  int unreadable_files = 0;
  std::string example;  // a case's name, to show how names are spelled
};

// Writes the chart of a failing model case's error against layer next to the summary file,
// and returns its name (relative to the summary's folder); empty, with a note in `out`, when
// none can be made.
std::string write_layer_chart(const std::string& summary, const std::string& path, const Case& c,
                              const CaseResult& result, std::ostream& out) {
  const std::string name = case_name(path, c.slug);
  try {
    const LayerChart chart =
        measure_layer_errors(read_case_spec(c, path), result.numerics, name, make_backend);
    if (chart.series.empty()) return "";
    std::string file;
    for (char ch : name) file += std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ? ch : '_';
    file += ".svg";
    const std::filesystem::path folder = std::filesystem::path(summary).parent_path();
    if (!folder.empty()) std::filesystem::create_directories(folder);
    write_file_atomically((folder / file).string(), layer_chart_svg(chart));
    return file;
  } catch (const std::exception& e) {
    out << "  " << name << ": no chart of error against layer: " << one_line(e.what()) << "\n";
    return "";
  }
}

// Runs one file; prints its cases and diff; regenerates it when asked, or writes its pending
// golden when a case fails; records each case in `report`.
void run_one_file(const std::string& path, const Options& o, Tally& tally, RunReport& report,
                  std::ostream& out) {
  auto selected = [&](const Case& c) { return filter_selects(o.filter, path, c.slug); };
  FileRun run = run_file(path, selected);
  if (tally.example.empty() && !run.parsed.cases.empty())
    tally.example = case_name(path, run.parsed.cases.front().slug);
  const char* red = o.color ? "\033[31m" : "";
  const char* green = o.color ? "\033[32m" : "";
  const char* yellow = o.color ? "\033[33m" : "";
  const char* reset = o.color ? "\033[0m" : "";

  if (!run.parsed.problems.empty()) {
    CaseReport file{path, "", CaseReport::Status::kError, {}, "", ""};
    for (const FileProblem& p : run.parsed.problems) {
      out << red << "INVALID " << reset << path << ":" << p.line << ": " << one_line(p.message) << "\n";
      file.failures.push_back(path + ":" + std::to_string(p.line) + ": " + one_line(p.message));
    }
    out << "  " << path << " was not run" << (o.regenerate ? " and not rewritten" : "") << "\n";
    ++tally.failed;
    report.cases.push_back(std::move(file));
    return;
  }

  std::map<std::string, CaseRewrite> changed;
  bool file_failed = false;
  for (const CaseOutcome& outcome : run.outcomes) {
    const Case& c = run.case_of(outcome);
    const bool matches = run.matches(outcome);
    const std::vector<std::string> failing = case_failures(outcome.result, o.require_fresh);
    const bool has_errors = !outcome.result.problems.empty();
    ++tally.selected;
    bool any_ran = outcome.result.numerics.empty();
    for (const TargetRow& row : outcome.result.numerics) {
      any_ran |= row.ran;
      tally.carried_rows += row.carried;
      tally.unknown_engine_rows += row.carried && row.engine_unknown;
      // Only an engine's rows carry a device without being pinmark's own cuda rows.
      tally.engine_rows += row.ran && !row.device.empty() && row.target.backend != "cuda" &&
                           row.target.backend != "cuda-tp2";
      tally.stale_rows += row.carried && !row.stale.empty();
      // A case that could not be judged (an engine that failed, NaN from the oracle) has rows
      // that are neither measured nor carried: they failed, which the case's failure says. A
      // case that renders Errors has no Numerics table: its rows wait for no machine.
      tally.unmeasured_rows +=
          !row.ran && !row.carried && outcome.result.unpinnable.empty() && !has_errors;
    }
    if (!has_errors && !any_ran) ++tally.no_target_ran;
    // Rows measured on other machines (a GPU, an engine) live only in the golden: a case that
    // now renders Errors would drop them, and fixing the case would not bring them back.
    std::string would_drop;
    if (o.regenerate && has_errors && !o.force) {
      int measured = 0;
      for (const GoldenRow& row : read_golden_rows(c))
        if (!row.devices.empty()) {
          would_drop += (measured++ ? ", " : "") + row.label;
        }
    }
    if (!would_drop.empty()) {
      ++tally.failed;
      file_failed = true;
      CaseReport kept{path, c.slug, CaseReport::Status::kFailed, {}, "", ""};
      kept.failures.push_back(path + ":" + std::to_string(c.line) +
                              ": not rewritten: it now renders Errors, and its golden's rows "
                              "measured on other machines (" + would_drop +
                              ") would be lost; fix the case, or pass --force to drop them");
      out << red << "FAIL    " << reset << case_name(path, c.slug) << "  (not rewritten)\n";
      for (const CaseProblem& p : outcome.result.problems)
        kept.failures.push_back(path + ":" + std::to_string(p.file_line ? p.file_line : c.line) +
                                ": " + one_line(problem_line(p)));
      for (const std::string& line : kept.failures) out << "  " << line << "\n";
      report.cases.push_back(std::move(kept));
      continue;
    }
    // A matching case may still have something to record (a device that reproduced a row).
    if (c.text != outcome.actual) changed.emplace(c.slug, CaseRewrite(c.text, outcome.actual));
    if (o.regenerate && c.text != outcome.actual)
      for (const DroppedNote& note : dropped_notes(c.text, c.line, outcome.actual))
        out << yellow << "DROPPED " << reset << path << ":" << note.line << ": "
            << inline_code(note.text)
            << " is not in the regenerated output section (sections pinmark writes are "
               "rewritten whole): if a person wrote it, it belongs in the case's prose\n";
    CaseReport record{path, c.slug, CaseReport::Status::kPassed, {}, "", ""};
    if ((matches || o.regenerate) && failing.empty()) {
      ++tally.passed;
      if (has_errors) ++tally.errors_pinned;
      report.cases.push_back(std::move(record));
      if (!o.quiet || !matches)
        out << green << (matches ? "PASS    " : "UPDATED ") << reset << case_name(path, c.slug)
            << (has_errors ? "  (renders Errors)" : "") << "\n";
      continue;
    }
    ++tally.failed;
    file_failed = true;
    record.status = CaseReport::Status::kFailed;
    out << red << "FAIL    " << reset << case_name(path, c.slug)
        << (o.regenerate && c.text != outcome.actual ? "  (rewritten; the failure stands)" : "")
        << "\n";
    for (const std::string& why : failing)
      record.failures.push_back(path + ":" + std::to_string(c.line) + ": " + why);
    for (const CaseProblem& p : outcome.result.problems)
      record.failures.push_back(path + ":" + std::to_string(p.file_line ? p.file_line : c.line) +
                                ": " + one_line(problem_line(p)));
    for (const std::string& line : record.failures) out << "  " << line << "\n";
    // The report says why even when the diff alone does.
    if (!matches && record.failures.empty())
      record.failures.push_back(path + ":" + std::to_string(c.line) + ": differs from its golden");
    if (!matches && !o.regenerate) {
      record.diff = unified_diff(c.text, outcome.actual, path + " (golden)", path + " (actual)",
                                 DiffStyle{false, c.line});
      // On the console, what moved inside each changed line is marked too.
      out << unified_diff(c.text, outcome.actual, path + " (golden)", path + " (actual)",
                          DiffStyle{o.color, c.line, true});
    }
    if (!o.summary.empty() && outcome.result.kind == CaseSpec::Kind::model &&
        !has_errors)
      record.chart = write_layer_chart(o.summary, path, c, outcome.result, out);
    report.cases.push_back(std::move(record));
  }
  if (o.regenerate && !changed.empty()) {
    const RewriteOutcome rewritten = rewrite_cases(path, changed);
    if (rewritten.written) {
      ++tally.regenerated_files;
      report.rewritten.push_back(path);
      out << yellow << "REWROTE " << reset << path << "\n";
    }
    for (const std::string& slug : rewritten.skipped) {
      ++tally.failed;
      out << red << "SKIPPED " << reset << case_name(path, slug)
          << ": edited while it ran, so not rewritten (run it again)\n";
    }
  }
  // After a run of every case of the file, its pending golden exists exactly when a case fails
  // and regeneration would change the file. A run of some of its cases only adds one.
  const bool whole_file = run.outcomes.size() == run.parsed.cases.size();
  if (!o.pending) return;
  std::string pending_text;
  if (!o.regenerate && file_failed && !changed.empty()) {
    try {
      std::vector<std::string> skipped;
      pending_text = regenerate_text(path, run.original, changed, skipped);
    } catch (const std::exception& e) {
      out << "  " << path << ": no pending golden: " << one_line(e.what()) << "\n";
      return;
    }
  }
  if (!pending_text.empty() && pending_text != run.original) {
    write_pending(path, run.original, pending_text);
    report.pending.push_back(pending_path(path));
    out << yellow << "PENDING " << reset << pending_path(path)
        << "  (pinmark accept takes it, pinmark review shows it)\n";
  } else if (whole_file && remove_pending(path)) {
    out << "REMOVED " << pending_path(path) << " (stale)\n";
  }
}

// Writes a report file, making its folder if need be; false, with a message, when it cannot be written.
bool write_report(const std::string& option, const std::string& path, const std::string& text,
                  std::ostream& err) {
  try {
    const std::filesystem::path folder = std::filesystem::path(path).parent_path();
    std::error_code error;
    if (!folder.empty() && !std::filesystem::create_directories(folder, error) && error)
      throw std::runtime_error("cannot create the folder of " + path + ": " + error.message());
    write_file_atomically(path, text);
    return true;
  } catch (const std::exception& e) {
    err << "pinmark: " << option << ": " << one_line(e.what()) << "\n";
    return false;
  }
}

int no_pending(const std::vector<std::string>& paths, std::ostream& err) {
  err << "pinmark: no pending golden (*.md.pending) in";
  for (const std::string& p : paths) err << " " << p;
  err << "\n";
  return 1;
}

// pinmark accept, reject and review.
int pending_command(const Options& o, std::istream& in, std::ostream& out, std::ostream& err) {
  const std::vector<std::string> pendings = find_pendings(o.paths);
  if (pendings.empty()) return no_pending(o.paths, err);
  int status = 0, accepted = 0, rejected = 0, skipped = 0;
  auto accept = [&](const std::string& p) {
    try {
      accept_pending(p);
      ++accepted;
      out << "ACCEPTED " << p << "\n";
    } catch (const std::runtime_error& e) {
      err << "pinmark: " << one_line(e.what()) << "\n";
      status = 1;
    }
  };
  auto reject = [&](const std::string& p) {
    if (::unlink(p.c_str()) != 0)
      throw std::runtime_error("cannot remove " + p + ": " + std::strerror(errno));
    ++rejected;
    out << "REJECTED " << p << "\n";
  };
  if (o.command == "accept") {
    for (const std::string& p : pendings) accept(p);
  } else if (o.command == "reject") {
    for (const std::string& p : pendings) reject(p);
  } else {
    for (size_t i = 0; i < pendings.size(); ++i) {
      const std::string& p = pendings[i];
      const Pending pending = read_pending(p);
      std::string golden;
      bool current = false;
      try {
        golden = read_text_file(pending.golden);
        current = pending_is_current(pending, golden);
      } catch (const std::runtime_error&) {
      }
      out << "\n[" << i + 1 << "/" << pendings.size() << "] " << pending.golden << "\n";
      if (current)
        out << unified_diff(golden, pending.text, pending.golden + " (golden)",
                            p + " (pending)", DiffStyle{o.color, 1, true});
      else
        out << "  " << pending.golden << " changed since this pending was written (or is gone): "
            << "accepting it is refused; reject it, or run the cases again\n";
      std::string answer;
      for (;;) {
        out << "accept, reject, skip or quit? [a/r/s/q] " << std::flush;
        if (!std::getline(in, answer)) answer = "q";
        if (answer == "a" || answer == "r" || answer == "s" || answer == "q") break;
        out << "  '" << one_line(answer) << "' is not one of a, r, s, q\n";
      }
      if (answer == "a") accept(p);
      if (answer == "r") reject(p);
      if (answer == "s") ++skipped;
      if (answer == "q") {
        skipped += static_cast<int>(pendings.size() - i);
        break;
      }
    }
    out << "\n" << accepted << " accepted, " << rejected << " rejected, " << skipped
        << " left pending\n";
  }
  return status;
}

}  // namespace

int run_command_line(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::istringstream no_answers;
  return run_command_line(args, no_answers, out, err);
}

int run_command_line(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                     std::ostream& err) {
  std::optional<Options> options = parse_options(args, err);
  if (!options) return 2;
  const Options& o = *options;
  if (o.command == "help") {
    out << usage_of(o.paths.empty() ? "" : o.paths[0]);
    return 0;
  }
  if (o.command == "version") {
    out << "pinmark " << PINMARK_VERSION << "\n";
    return 0;
  }
  if (o.command == "run" && o.regenerate) {
    if (auto refusal = regeneration_refusal(o.force)) {
      err << "pinmark: " << *refusal << "\n";
      return 2;
    }
  }
  if (o.command == "docs") return docs_command(".", o.check, out, err);
  if (o.command == "export")
    return export_command({o.paths[0], o.export_out, o.force, PINMARK_VERSION}, out, err);
  try {
    if (o.command == "accept" || o.command == "reject" || o.command == "review")
      return pending_command(o, in, out, err);
    std::vector<std::string> files = find_case_files(o.paths);
    if (o.command == "audit") {
      AuditResult audit;
      audit_null_outputs(files, audit);
      if (o.sweep) audit_sweep(files, o.sweep, 2026, audit);
      print_audit(audit, out);
      return audit.invalid.empty() && audit.accepted.empty() && audit.false_failures.empty() ? 0
                                                                                           : 1;
    }
    if (o.command == "list") {
      int status = 0;
      size_t listed = 0;
      std::string example;
      for (const std::string& path : files) {
        FileRun run = run_file(path, [](const Case&) { return false; });
        // An invalid file's cases do not run: listing them as if they did would mislead.
        if (!run.parsed.problems.empty()) {
          for (const FileProblem& p : run.parsed.problems)
            err << path << ":" << p.line << ": " << one_line(p.message) << "\n";
          status = 1;
          continue;
        }
        for (const Case& c : run.parsed.cases) {
          if (example.empty()) example = case_name(path, c.slug);
          if (!filter_selects(o.filter, path, c.slug)) continue;
          out << case_name(path, c.slug) << "\n";
          ++listed;
        }
      }
      if (listed == 0 && status == 0) {
        err << "pinmark: " << no_case_matches(o.filter, files.size(), example) << "\n";
        return 1;
      }
      return status;
    }
    Tally tally;
    RunReport report;
    // "[3/21] cases/models/llama.md" on the terminal while a long run goes, erased before
    // anything else is printed; only on the process's own stderr (driver/progress.h).
    Progress progress(err, &err == &std::cerr && show_progress(std::getenv("TERM"), std::getenv("CI"),
                                                             ::isatty(STDERR_FILENO)),
                      terminal_columns());
    for (size_t i = 0; i < files.size(); ++i) {
      const std::string& path = files[i];
      progress.show(i + 1, files.size(), path);
      std::ostringstream file_out;
      // One file that cannot be read or rewritten does not stop the others.
      try {
        run_one_file(path, o, tally, report, file_out);
      } catch (const std::exception& e) {
        file_out << (o.color ? "\033[31m" : "") << "ERROR   " << (o.color ? "\033[0m" : "")
                 << path << ": " << e.what() << "\n";
        report.cases.push_back({path, "", CaseReport::Status::kError, {path + ": " + one_line(e.what())}, "", ""});
        ++tally.unreadable_files;
        ++tally.failed;
      }
      if (!file_out.str().empty()) {
        progress.clear();
        out << file_out.str() << std::flush;
      }
    }
    progress.clear();
    report.carried_rows = tally.carried_rows;
    report.stale_rows = tally.stale_rows;
    report.unmeasured_rows = tally.unmeasured_rows;
    bool reports_written = true;
    if (!o.junit.empty()) reports_written &= write_report("--junit", o.junit, junit_xml(report), err);
    if (!o.summary.empty())
      reports_written &= write_report("--summary", o.summary, markdown_summary(report), err);
    out << "\n";
    if (tally.selected == 0 && tally.failed == 0) {
      err << "pinmark: " << no_case_matches(o.filter, files.size(), tally.example) << "\n";
      return 1;
    }
    if (tally.errors_pinned)
      out << tally.errors_pinned << " of the passing cases pin an Errors section\n";
    if (tally.engine_rows)
      out << tally.engine_rows << " rows measured here by the engines of pinmark-engines.json\n";
    if (tally.carried_rows)
      out << tally.carried_rows << " rows need hardware or an engine this machine lacks: carried "
          << "over from the goldens and judged as recorded\n";
    if (tally.unknown_engine_rows)
      out << tally.unknown_engine_rows << " of them are rows of engines that no "
          << "pinmark-engines.json beside the case files or above them names (a copy out of its "
          << "repository?): judged as recorded, their inputs checked, their engine code not\n";
    if (tally.stale_rows)
      out << tally.stale_rows << " of them are stale (measured for other inputs or other code): "
          << "regenerate on a machine that runs them" << (o.require_fresh ? "" : ", or run with --require-fresh to fail on them") << "\n";
    if (tally.unmeasured_rows)
      out << tally.unmeasured_rows << " target rows have not been measured on any machine\n";
    if (tally.no_target_ran)
      out << tally.no_target_ran << " cases ran no target here (only the oracle)\n";
    if (o.regenerate)
      out << "regenerated " << tally.regenerated_files << " file"
          << (tally.regenerated_files == 1 ? "" : "s") << "\n";
    if (!report.pending.empty())
      out << report.pending.size()
          << (report.pending.size() == 1 ? " pending golden written beside its golden"
                                         : " pending goldens written beside their goldens")
          << ": pinmark review, accept or reject\n";
    out << tally.passed << " passed, " << tally.failed << " failed\n";
    if (!reports_written) return 2;
    return tally.failed ? 1 : 0;
  } catch (const std::exception& e) {
    err << "pinmark: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace pinmark
