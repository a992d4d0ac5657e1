#include "driver/file_run.h"

#include <cstdlib>
#include <stdexcept>

#include "driver/engine_run.h"
#include "driver/fingerprint.h"
#include "driver/golden_io.h"
#include "driver/golden_rows.h"
#include "driver/plugin.h"
#include "driver/render.h"

namespace pinmark {

std::string FileRun::rendered() const {
  std::vector<std::string> texts;
  for (const Case& c : parsed.cases) texts.push_back(c.text);
  for (const CaseOutcome& o : outcomes) texts[o.index] = o.actual;
  return assemble_case_file(parsed, texts);
}

CaseOutcome run_one_case(const Case& c, const std::string& path, const std::string& newline,
                         const BackendFactory& backends) {
  CaseOutcome outcome;
  const CaseSpec spec = read_case_spec(c, path);
  outcome.result = run_case(spec, backends);
  run_engine_rows(c, path, spec, outcome.result);
  // A copy of a case file with no pinmark-engines.json beside it or above it knows no engine:
  // the engine rows its golden holds are carried as they are (and counted as such), rather
  // than dropped from the file.
  if (!spec.targets.engines && !spec.targets.engine_config_unreadable && !spec.targets.listed &&
      outcome.result.problems.empty())
    add_unknown_engine_rows(c, outcome.result);
  if (!outcome.result.unpinnable.empty()) {
    // Nothing a golden may accept: the case fails, and its text stays as it is.
    outcome.actual = outcome.expected = c.text;
    return outcome;
  }
  try {
    if (outcome.result.problems.empty()) {
      const std::string fingerprint = row_fingerprint(c, spec.checkpoint);
      // An engine's rows: the same inputs, the engine's own code part.
      const std::string inputs = fingerprint.substr(0, fingerprint.find(", code "));
      carry_golden_rows(c, fingerprint, outcome.result, [&](const Target& target) {
        const auto [engine, t] = spec.targets.engines
                                     ? find_engine_target(*spec.targets.engines, target.name())
                                     : std::pair<const EngineSpec*, const EngineTarget*>{};
        return engine ? inputs + ", code " + engine_code_fingerprint(*engine, *t) : fingerprint;
      });
    }
  } catch (const std::exception& e) {
    outcome.result.problems.push_back({"the runtime", 0, e.what()});
  }
  outcome.actual = render_case(c, outcome.result, newline);
  outcome.expected = render_case(c, outcome.result, newline, false);
  return outcome;
}

FileRun run_file(const std::string& path, const std::function<bool(const Case&)>& selected) {
  FileRun run;
  run.path = path;
  run.original = read_text_file(path);
  run.parsed = parse_case_file(run.original);
  if (!run.parsed.problems.empty()) return run;
  for (size_t i = 0; i < run.parsed.cases.size(); ++i) {
    const Case& c = run.parsed.cases[i];
    if (!selected(c)) continue;
    CaseOutcome outcome = run_one_case(c, path, run.parsed.newline, make_backend);
    outcome.index = i;
    run.outcomes.push_back(std::move(outcome));
  }
  return run;
}

namespace {

[[noreturn]] void refuse(const std::string& path, int line, const std::string& message) {
  throw std::runtime_error(path + ":" + std::to_string(line) + ": " + message +
                           " (the file was not rewritten)");
}

std::vector<std::pair<std::string, std::string>> input_sections(const Case& c) {
  std::vector<std::pair<std::string, std::string>> sections;
  for (const Section& s : c.sections)
    if (!is_output_section(s.name)) sections.emplace_back(s.name, s.text);
  return sections;
}

// Regeneration must be a fixed point: the file it writes has to read back as the same cases
// with the same prose and inputs, or a second run would render something else (or lose text).
void check_reads_back(const std::string& path, const CaseFile& before,
                      const std::vector<std::string>& texts, const std::string& updated) {
  const CaseFile after = parse_case_file(updated);
  if (!after.problems.empty())
    refuse(path, after.problems.front().line,
           "the regenerated file would be invalid: " + after.problems.front().message);
  if (after.preamble != before.preamble)
    refuse(path, 1, "the regenerated file would not keep the title and prose before the first case");
  if (after.cases.size() != before.cases.size())
    refuse(path, after.cases.empty() ? 1 : after.cases.back().line,
           "the regenerated file would hold " + std::to_string(after.cases.size()) +
               " cases instead of " + std::to_string(before.cases.size()));
  for (size_t i = 0; i < after.cases.size(); ++i) {
    const Case& c = after.cases[i];
    if (c.slug != before.cases[i].slug || c.text != texts[i] ||
        input_sections(c) != input_sections(before.cases[i]))
      refuse(path, c.line,
             "case '" + before.cases[i].slug +
                 "' would not read back as it was rendered (its rendered text adds or breaks "
                 "Markdown structure)");
  }
}

}  // namespace

std::string regenerate_text(const std::string& path, const std::string& current,
                            const std::map<std::string, CaseRewrite>& rewrites,
                            std::vector<std::string>& skipped) {
  const CaseFile file = parse_case_file(current);
  if (!file.problems.empty()) refuse(path, file.problems.front().line, file.problems.front().message);
  std::vector<std::string> texts;
  size_t found = 0;
  for (const Case& c : file.cases) {
    texts.push_back(c.text);
    auto it = rewrites.find(c.slug);
    if (it == rewrites.end()) continue;
    ++found;
    if (it->second.from == c.text)
      texts.back() = it->second.to;
    else
      skipped.push_back(c.slug);
  }
  if (found != rewrites.size()) {
    for (const auto& [slug, rewrite] : rewrites) {
      bool present = false;
      for (const Case& c : file.cases) present |= c.slug == slug;
      if (!present) refuse(path, 1, "case '" + slug + "' is gone from the file since it ran");
    }
  }
  const std::string updated = assemble_case_file(file, texts);
  if (updated != current) check_reads_back(path, file, texts, updated);
  return updated;
}

RewriteOutcome rewrite_cases(const std::string& path,
                             const std::map<std::string, CaseRewrite>& rewrites) {
  FileLock lock(path);
  const std::string current = read_text_file(path);
  RewriteOutcome outcome;
  const std::string updated = regenerate_text(path, current, rewrites, outcome.skipped);
  if (updated == current) return outcome;
  write_file_atomically(path, updated);
  outcome.written = true;
  return outcome;
}

bool rewrite_cases(const std::string& path, const std::map<std::string, std::string>& texts) {
  FileLock lock(path);
  const std::string current = read_text_file(path);
  // Whatever is on disk now counts as the text the run started from.
  std::map<std::string, CaseRewrite> rewrites;
  for (const Case& c : parse_case_file(current).cases)
    if (auto it = texts.find(c.slug); it != texts.end()) rewrites.emplace(c.slug, CaseRewrite(c.text, it->second));
  for (const auto& [slug, text] : texts) rewrites.emplace(slug, CaseRewrite("", text));
  std::vector<std::string> skipped;
  const std::string updated = regenerate_text(path, current, rewrites, skipped);
  if (updated == current) return false;
  write_file_atomically(path, updated);
  return true;
}

std::optional<std::string> regeneration_refusal(bool force, const std::string& override_hint) {
  const char* ci = std::getenv("CI");
  const std::string value = ci ? ci : "";
  if (force || value.empty() || value == "0" || value == "false" || value == "no") return std::nullopt;
  return "refusing to regenerate goldens: CI is set in the environment, and a CI run must "
         "check goldens, not rewrite them (" + override_hint + " to override)";
}

}  // namespace pinmark
