#include "driver/command_line.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>

#include "driver/case_discovery.h"
#include "driver/case_runner.h"
#include "driver/file_run.h"
#include "driver/render.h"
#include "driver/unified_diff.h"

namespace pinmark {
namespace {

constexpr const char* kUsage =
    "usage: pinmark run [PATH...] [--filter GLOB] [--regenerate [--force]] [--color WHEN] [-q]\n"
    "       pinmark list [PATH...] [--filter GLOB]\n"
    "\n"
    "Runs the cases of each Markdown file (folders are searched for *.md; default: cases) and\n"
    "compares each file with the golden on disk.\n"
    "\n"
    "  --filter GLOB   run only cases whose slug, or FILE::slug, matches GLOB ('*' and '?')\n"
    "  --regenerate    rewrite the goldens with what the cases produce now (also REGENERATE=1);\n"
    "                  refused when CI is set, unless --force is given\n"
    "  --color WHEN    colour the diffs: auto (default, when writing to a terminal), always, never\n"
    "  -q, --quiet     print only failures and the summary\n"
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
};

bool env_flag(const char* name) {
  const char* value = std::getenv(name);
  return value && *value && std::string(value) != "0";
}

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
  if (o.command != "run" && o.command != "list") {
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
  if (env_flag("REGENERATE")) o.regenerate = true;
  o.color = color == "always" || (color == "auto" && ::isatty(STDOUT_FILENO) && !env_flag("NO_COLOR"));
  return o;
}

struct Tally {
  int passed = 0, failed = 0, errors_pinned = 0, regenerated_files = 0;
  int no_target_ran = 0;  // cases whose targets all need hardware this machine lacks
  int carried_rows = 0;   // target rows this machine cannot run (kept from the golden)
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
      out << red << "INVALID " << reset << path << ":" << p.line << ": " << p.message << "\n";
    out << "  " << path << " was not run" << (o.regenerate ? " and not rewritten" : "") << "\n";
    ++tally.failed;
    return;
  }

  std::map<std::string, std::string> changed;
  for (const CaseOutcome& outcome : run.outcomes) {
    const Case& c = run.case_of(outcome);
    const bool matches = run.matches(outcome);
    const std::vector<std::string> failing = failing_targets(outcome.result);
    const bool has_errors = !outcome.result.problems.empty();
    if (matches && has_errors) ++tally.errors_pinned;
    bool any_ran = outcome.result.numerics.empty();
    for (const TargetRow& row : outcome.result.numerics) {
      any_ran |= row.ran;
      tally.carried_rows += !row.ran;
    }
    if (!has_errors && !any_ran) ++tally.no_target_ran;
    if (!matches) changed[c.slug] = outcome.actual;
    if ((matches || o.regenerate) && failing.empty()) {
      ++tally.passed;
      if (!o.quiet || !matches)
        out << green << (matches ? "PASS    " : "UPDATED ") << reset << path << " :: " << c.slug
            << (has_errors ? "  (renders Errors)" : "") << "\n";
      continue;
    }
    ++tally.failed;
    out << red << "FAIL    " << reset << path << " :: " << c.slug << "\n";
    for (const std::string& target : failing)
      out << "  " << path << ":" << c.line << ": target " << target
          << " is outside its tolerance (verdict FAIL in Numerics)\n";
    for (const CaseProblem& p : outcome.result.problems)
      out << "  " << path << ":" << (p.file_line ? p.file_line : c.line) << ": " << problem_line(p)
          << "\n";
    if (!matches && !o.regenerate) {
      DiffStyle style{o.color, c.line};
      out << unified_diff(c.text, outcome.actual, path + " (golden)", path + " (actual)", style);
    }
  }
  if (o.regenerate && !changed.empty()) {
    if (rewrite_cases(path, changed)) ++tally.regenerated_files;
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
    if (o.command == "list") {
      for (const std::string& path : files) {
        FileRun run = run_file(path, [](const Case&) { return false; });
        for (const FileProblem& p : run.parsed.problems)
          err << path << ":" << p.line << ": " << p.message << "\n";
        for (const Case& c : run.parsed.cases)
          if (glob_match(o.filter, c.slug) || glob_match(o.filter, path + "::" + c.slug))
            out << path << " :: " << c.slug << "\n";
      }
      return 0;
    }
    Tally tally;
    for (const std::string& path : files) run_one_file(path, o, tally, out);
    out << "\n";
    if (tally.errors_pinned)
      out << tally.errors_pinned << " of the passing cases pin an Errors section\n";
    if (tally.carried_rows)
      out << tally.carried_rows << " target rows cannot run on this machine; goldens keep their rows\n";
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
