#include "driver/command_line.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>

#include "driver/audit.h"
#include "driver/case_discovery.h"
#include "driver/case_runner.h"
#include "driver/env_flag.h"
#include "driver/fence.h"
#include "driver/file_run.h"
#include "driver/render.h"
#include "driver/unified_diff.h"
#include "driver/verdict.h"

namespace pinmark {
namespace {

constexpr const char* kUsage =
    "usage: pinmark run [PATH...] [--filter GLOB] [--regenerate [--force]] [--require-fresh]\n"
    "                   [--color WHEN] [-q]\n"
    "       pinmark list [PATH...] [--filter GLOB]\n"
    "       pinmark audit [PATH...] [--sweep N]\n"
    "\n"
    "Runs the cases of each Markdown file (folders are searched for *.md; default: cases) and\n"
    "compares each file with the golden on disk.\n"
    "\n"
    "  --filter GLOB   run only cases whose slug, or FILE::slug, matches GLOB ('*' and '?');\n"
    "                  a filter that matches no case is an error\n"
    "  --regenerate    rewrite the goldens with what the cases produce now (also REGENERATE=1);\n"
    "                  refused when CI is set, unless --force is given\n"
    "  --require-fresh fail every case with a row that is stale (measured for other inputs or\n"
    "                  other code) or that no machine has measured: for release gates\n"
    "  --color WHEN    colour the diffs: auto (default, when writing to a terminal), always, never\n"
    "  -q, --quiet     print only failures and the summary\n"
    "  --sweep N       audit: also run N random variations of the cases on the CPU targets\n"
    "                  (default 0); every row must pass\n"
    "\n"
    "`audit` checks that each case's tolerances reject outputs that carry no information (all\n"
    "zeros, another seed, another position, a permutation) and, with --sweep, that the healthy\n"
    "runtime never fails; it exits 1 on any such finding.\n"
    "\n"
    "Exit status: 0 when every case matches, 1 when a case differs or a file is invalid, 2 for a\n"
    "usage or I/O error.\n";

struct Options {
  std::string command;
  std::vector<std::string> paths;
  std::string filter = "*";
  bool regenerate = false;
  bool force = false;
  bool quiet = false;
  bool color = false;
  bool require_fresh = false;
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
  if (o.command != "run" && o.command != "list" && o.command != "audit") {
    err << "pinmark: unknown command '" << o.command << "'\n\n" << kUsage;
    return std::nullopt;
  }
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
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
  if (o.paths.empty()) o.paths.push_back("cases");
  try {
    if (env_flag("REGENERATE")) o.regenerate = true;
  } catch (const std::invalid_argument& e) {
    err << "pinmark: " << e.what() << "\n";
    return std::nullopt;
  }
  // NO_COLOR counts when set to anything at all (no-color.org).
  const char* no_color = std::getenv("NO_COLOR");
  o.color = color == "always" ||
            (color == "auto" && ::isatty(STDOUT_FILENO) && !(no_color && *no_color));
  return o;
}

struct Tally {
  int passed = 0, failed = 0, errors_pinned = 0, regenerated_files = 0;
  int selected = 0;       // cases the filter selected
  int no_target_ran = 0;  // cases whose targets all need hardware this machine lacks
  int carried_rows = 0;   // rows this machine cannot measure, carried over from the golden
  int stale_rows = 0;     // carried rows measured for other inputs or other code
  int unmeasured_rows = 0;  // targets no machine has measured
  int unreadable_files = 0;
};

// Runs one file; prints its cases and diff; regenerates it when asked.
void run_one_file(const std::string& path, const Options& o, Tally& tally, std::ostream& out) {
  auto selected = [&](const Case& c) {
    return glob_match(o.filter, c.slug) || glob_match(o.filter, path + "::" + c.slug);
  };
  FileRun run = run_file(path, selected);
  const char* red = o.color ? "\033[31m" : "";
  const char* green = o.color ? "\033[32m" : "";
  const char* reset = o.color ? "\033[0m" : "";

  if (!run.parsed.problems.empty()) {
    for (const FileProblem& p : run.parsed.problems)
      out << red << "INVALID " << reset << path << ":" << p.line << ": " << one_line(p.message) << "\n";
    out << "  " << path << " was not run" << (o.regenerate ? " and not rewritten" : "") << "\n";
    ++tally.failed;
    return;
  }

  std::map<std::string, CaseRewrite> changed;
  for (const CaseOutcome& outcome : run.outcomes) {
    const Case& c = run.case_of(outcome);
    const bool matches = run.matches(outcome);
    const std::vector<std::string> failing = case_failures(outcome.result, o.require_fresh);
    const bool has_errors = !outcome.result.problems.empty();
    ++tally.selected;
    if (matches && has_errors) ++tally.errors_pinned;
    bool any_ran = outcome.result.numerics.empty();
    for (const TargetRow& row : outcome.result.numerics) {
      any_ran |= row.ran;
      tally.carried_rows += row.carried;
      tally.stale_rows += row.carried && !row.stale.empty();
      tally.unmeasured_rows += !row.ran && !row.carried;
    }
    if (!has_errors && !any_ran) ++tally.no_target_ran;
    // A matching case may still have something to record (a device that reproduced a row).
    if (c.text != outcome.actual) changed.emplace(c.slug, CaseRewrite(c.text, outcome.actual));
    if ((matches || o.regenerate) && failing.empty()) {
      ++tally.passed;
      if (!o.quiet || !matches)
        out << green << (matches ? "PASS    " : "UPDATED ") << reset << path << " :: " << c.slug
            << (has_errors ? "  (renders Errors)" : "") << "\n";
      continue;
    }
    ++tally.failed;
    out << red << "FAIL    " << reset << path << " :: " << c.slug
        << (o.regenerate && c.text != outcome.actual ? "  (rewritten; the failure stands)" : "")
        << "\n";
    for (const std::string& why : failing) out << "  " << path << ":" << c.line << ": " << why << "\n";
    for (const CaseProblem& p : outcome.result.problems)
      out << "  " << path << ":" << (p.file_line ? p.file_line : c.line) << ": " << one_line(problem_line(p))
          << "\n";
    if (!matches && !o.regenerate) {
      DiffStyle style{o.color, c.line};
      out << unified_diff(c.text, outcome.actual, path + " (golden)", path + " (actual)", style);
    }
  }
  if (o.regenerate && !changed.empty()) {
    const RewriteOutcome rewritten = rewrite_cases(path, changed);
    if (rewritten.written) ++tally.regenerated_files;
    for (const std::string& slug : rewritten.skipped) {
      ++tally.failed;
      out << red << "SKIPPED " << reset << path << " :: " << slug
          << ": edited while it ran, so not rewritten (run it again)\n";
    }
  }
}

}  // namespace

int run_command_line(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::optional<Options> options = parse_options(args, err);
  if (!options) return 2;
  const Options& o = *options;
  if (o.command == "help") {
    out << kUsage;
    return 0;
  }
  if (o.command == "run" && o.regenerate) {
    if (auto refusal = regeneration_refusal(o.force)) {
      err << "pinmark: " << *refusal << "\n";
      return 2;
    }
  }
  try {
    std::vector<std::string> files = find_case_files(o.paths);
    if (o.command == "audit") {
      AuditResult audit;
      audit_null_outputs(files, audit);
      if (o.sweep) audit_sweep(files, o.sweep, 2026, audit);
      print_audit(audit, out);
      return audit.accepted.empty() && audit.false_failures.empty() ? 0 : 1;
    }
    if (o.command == "list") {
      int status = 0;
      for (const std::string& path : files) {
        FileRun run = run_file(path, [](const Case&) { return false; });
        // An invalid file's cases do not run: listing them as if they did would mislead.
        if (!run.parsed.problems.empty()) {
          for (const FileProblem& p : run.parsed.problems)
            err << path << ":" << p.line << ": " << one_line(p.message) << "\n";
          status = 1;
          continue;
        }
        for (const Case& c : run.parsed.cases)
          if (glob_match(o.filter, c.slug) || glob_match(o.filter, path + "::" + c.slug))
            out << path << " :: " << c.slug << "\n";
      }
      return status;
    }
    Tally tally;
    for (const std::string& path : files) {
      // One file that cannot be read or rewritten does not stop the others.
      try {
        run_one_file(path, o, tally, out);
      } catch (const std::exception& e) {
        out << (o.color ? "\033[31m" : "") << "ERROR   " << (o.color ? "\033[0m" : "") << path
            << ": " << e.what() << "\n";
        ++tally.unreadable_files;
        ++tally.failed;
      }
    }
    out << "\n";
    if (tally.selected == 0 && tally.failed == 0) {
      err << "pinmark: no case matches '" << o.filter << "' in " << files.size() << " file"
          << (files.size() == 1 ? "" : "s") << "\n";
      return 1;
    }
    if (tally.errors_pinned)
      out << tally.errors_pinned << " of the passing cases pin an Errors section\n";
    if (tally.carried_rows)
      out << tally.carried_rows << " rows need hardware this machine lacks: carried over from the "
          << "goldens and judged as recorded\n";
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
    out << tally.passed << " passed, " << tally.failed << " failed\n";
    return tally.failed ? 1 : 0;
  } catch (const std::exception& e) {
    err << "pinmark: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace pinmark
