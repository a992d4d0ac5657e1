// Running the cases of one file and, when asked, writing the results back as its golden.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/verdict.h"

namespace pinmark {

struct CaseOutcome {
  size_t index = 0;    // into FileRun::parsed.cases
  std::string actual;    // the case as the driver renders it now: what regeneration writes
  std::string expected;  // the same, except that a device that reproduced a GPU row is not
                         // added to it: what the golden must equal
  CaseResult result;
};

struct FileRun {
  std::string path;
  std::string original;  // the golden's bytes
  CaseFile parsed;
  std::vector<CaseOutcome> outcomes;  // the selected cases, in file order

  const Case& case_of(const CaseOutcome& o) const { return parsed.cases[o.index]; }
  // The golden agrees with what the case renders now.
  bool matches(const CaseOutcome& o) const {
    return case_of(o).text == o.expected || case_of(o).text == o.actual;
  }
  // It agrees, and no target failed its tolerance.
  bool passed(const CaseOutcome& o) const {
    return matches(o) && case_failures(o.result).empty();
  }
  // The whole file with the selected cases rendered and the others kept as they are.
  std::string rendered() const;
};

// Runs one case of the file `path` (which locates its checkpoint) on `backends`: the oracle and
// its targets, then the golden's rows carried over for what this machine cannot run, rendered
// with `newline`. A result with `unpinnable` problems renders as the case's own text.
CaseOutcome run_one_case(const Case& c, const std::string& path, const std::string& newline = "\n",
                         const BackendFactory& backends = make_target_backend);

// Reads and parses `path` and runs every case `selected` accepts (none if the file has
// problems). Throws std::runtime_error when the file cannot be read.
FileRun run_file(const std::string& path, const std::function<bool(const Case&)>& selected);

// What regeneration puts in place of one case: the text the run started from, and the text
// rendered from its results. Built with both, so a new text is never mistaken for an old one.
struct CaseRewrite {
  CaseRewrite(std::string from_text, std::string to_text)
      : from(std::move(from_text)), to(std::move(to_text)) {}
  std::string from;  // the case's text when the run read the file
  std::string to;    // the case as rendered now
};

struct RewriteOutcome {
  bool written = false;  // the file on disk changed
  // Cases whose text on disk is no longer the text their run started from (someone edited them
  // while they ran): kept as they are now, their results dropped.
  std::vector<std::string> skipped;
};

// The text of a file after regeneration, from its current bytes: each case named in
// `rewrites` (by slug) whose current text is still `from` gets `to`; a case edited since is
// kept and its slug added to `skipped`; the rest of the file is kept byte for byte. The result
// is parsed again and must read back as the same file (same preamble, the same cases with
// exactly these texts, the same prose and input sections); `path` only names the file in
// messages. Throws std::runtime_error, naming `path`, the line and "not rewritten", when
// `current` has a problem, a named case is gone, or the result would not read back so.
std::string regenerate_text(const std::string& path, const std::string& current,
                            const std::map<std::string, CaseRewrite>& rewrites,
                            std::vector<std::string>& skipped);

// Regenerates the cases of `path` named in `rewrites`. Under a lock, it re-reads the file, so
// cases that other processes rewrote meanwhile keep their new text, and a case edited since
// its run started is not overwritten but reported in `skipped`. Writes only when the bytes
// change (write_file_atomically: leftovers removed, links written through). Throws
// std::runtime_error as regenerate_text does, and when the file cannot be read, locked or
// written.
RewriteOutcome rewrite_cases(const std::string& path,
                             const std::map<std::string, CaseRewrite>& rewrites);

// The older form, slug -> new text: it cannot tell a case edited during the run from one that
// was not, so it overwrites such edits. Returns whether the file changed; throws as above.
bool rewrite_cases(const std::string& path, const std::map<std::string, std::string>& texts);

// Why regeneration must not happen here, or nullopt when it may: with CI set in the
// environment, a golden is regenerated only when forced.
std::optional<std::string> regeneration_refusal(bool force,
                                                const std::string& override_hint = "pass --force");

}  // namespace pinmark
