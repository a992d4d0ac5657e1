// Running the cases of one file and, when asked, writing the results back as its golden.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_runner.h"

namespace pinmark {

struct CaseOutcome {
  size_t index = 0;    // into FileRun::parsed.cases
  std::string actual;  // the case as the driver renders it now
  CaseResult result;
};

struct FileRun {
  std::string path;
  std::string original;  // the golden's bytes
  CaseFile parsed;
  std::vector<CaseOutcome> outcomes;  // the selected cases, in file order

  const Case& case_of(const CaseOutcome& o) const { return parsed.cases[o.index]; }
  // The golden agrees with what the case renders now.
  bool matches(const CaseOutcome& o) const { return case_of(o).text == o.actual; }
  // It agrees, and no target failed its tolerance.
  bool passed(const CaseOutcome& o) const {
    return matches(o) && failing_targets(o.result).empty();
  }
  // The whole file with the selected cases rendered and the others kept as they are.
  std::string rendered() const;
};

// Reads and parses `path` and runs every case `selected` accepts (none if the file has
// problems). Throws std::runtime_error when the file cannot be read.
FileRun run_file(const std::string& path, const std::function<bool(const Case&)>& selected);

// Rewrites the cases of `path` named in `texts` (slug -> new text). Under a lock, it re-reads
// the file, so cases that other processes rewrote meanwhile keep their new text. Writes
// nothing and returns false when nothing changed. Throws when the file on disk no longer
// parses or lost one of the cases.
bool rewrite_cases(const std::string& path, const std::map<std::string, std::string>& texts);

// Why regeneration must not happen here, or nullopt when it may: with CI set in the
// environment, a golden is regenerated only when forced.
std::optional<std::string> regeneration_refusal(bool force);

}  // namespace pinmark
