// `pinmark docs`: the goldens compiled into documentation for people and language models.
// One page per case file under docs/behavior/ (its title and prose verbatim, each case's title
// and prose, its setup in a sentence and its key numbers summarised, linked back to the case),
// and an llms.txt index at the repository root. Built from the files on disk alone (nothing is
// run), so the pages are a pure function of the goldens and can be checked like one.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace pinmark {

// A generated file: its path relative to the repository root, and its text.
struct DocsFile {
  std::string path;
  std::string text;
};

// The pages for every case file under `root`/cases, then `root`/llms.txt. Throws
// std::runtime_error naming the file for a case file that cannot be read or is invalid as a
// whole (no title, two cases of one slug, ...).
std::vector<DocsFile> compile_docs(const std::string& root);

// GitHub's anchor for a heading: lower-case, punctuation but '-' and '_' dropped, spaces to '-'.
std::string github_anchor(const std::string& heading);

// Writes the generated files under `root` (atomically, only those that changed) and removes
// pages under docs/behavior/ that no case file generates; with `check`, writes nothing and
// names each file that differs from what would be generated. Exit status: 0 when the files
// were current (or were written), 1 with `check` when one is stale, 2 when the cases cannot be
// read or a file cannot be written.
int docs_command(const std::string& root, bool check, std::ostream& out, std::ostream& err);

}  // namespace pinmark
