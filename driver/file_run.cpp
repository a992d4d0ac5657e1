#include "driver/file_run.h"

#include <cstdlib>
#include <stdexcept>

#include "driver/golden_io.h"
#include "driver/render.h"

namespace pinmark {

std::string FileRun::rendered() const {
  std::vector<std::string> texts;
  for (const Case& c : parsed.cases) texts.push_back(c.text);
  for (const CaseOutcome& o : outcomes) texts[o.index] = o.actual;
  return assemble_file(parsed.preamble, texts, parsed.newline);
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
    CaseOutcome outcome;
    outcome.index = i;
    outcome.result = run_case(read_case_spec(c, path));
    outcome.actual = render_case(c, outcome.result, run.parsed.newline);
    run.outcomes.push_back(std::move(outcome));
  }
  return run;
}

bool rewrite_cases(const std::string& path, const std::map<std::string, std::string>& texts) {
  FileLock lock(path);
  const std::string current = read_text_file(path);
  CaseFile file = parse_case_file(current);
  if (!file.problems.empty())
    throw std::runtime_error(path + ":" + std::to_string(file.problems.front().line) + ": " +
                             file.problems.front().message + " (the file was not rewritten)");
  std::vector<std::string> cases;
  size_t replaced = 0;
  for (const Case& c : file.cases) {
    auto it = texts.find(c.slug);
    cases.push_back(it == texts.end() ? c.text : it->second);
    replaced += it != texts.end();
  }
  if (replaced != texts.size())
    throw std::runtime_error(path + ": a case changed while it ran (the file was not rewritten)");
  const std::string updated = assemble_file(file.preamble, cases, file.newline);
  if (updated == current) return false;
  write_file_atomically(path, updated);
  return true;
}

std::optional<std::string> regeneration_refusal(bool force) {
  const char* ci = std::getenv("CI");
  if (force || !ci || !*ci) return std::nullopt;
  return "refusing to regenerate goldens: CI is set in the environment, and a CI run must "
         "check goldens, not rewrite them (pass --force to override)";
}

}  // namespace pinmark
