// Pending goldens: what a failing run would regenerate, written beside the golden as
// `NAME.md.pending` without touching it, to be accepted or rejected later (`pinmark accept`,
// `pinmark reject`, `pinmark review`), on this machine or after downloading them from CI.
#pragma once

#include <string>
#include <vector>

namespace pinmark {

// `golden` + ".pending".
std::string pending_path(const std::string& golden);

// The golden's digest as a pending file records it (FNV-1a, 16 hex digits).
std::string golden_digest(const std::string& golden_bytes);

// A pending file: a first line naming the digest of the golden it was computed from, then the
// whole file as regeneration would write it.
std::string pending_file_text(const std::string& golden_bytes, const std::string& new_text);

// Writes pending_file_text atomically beside `golden`. Throws std::runtime_error naming the
// path when it cannot be written.
void write_pending(const std::string& golden, const std::string& golden_bytes,
                   const std::string& new_text);

// Removes `golden`'s pending file if there is one; returns whether there was.
bool remove_pending(const std::string& golden);

struct Pending {
  std::string path;    // NAME.md.pending
  std::string golden;  // NAME.md
  std::string digest;  // of the golden it was computed from
  std::string text;    // what accepting it writes
};

// Reads a pending file. Throws std::runtime_error naming the path when it cannot be read or
// does not start with the line pending_file_text writes.
Pending read_pending(const std::string& path);

// Whether the golden on disk is still the one the pending was computed from.
bool pending_is_current(const Pending& pending, const std::string& golden_bytes);

// The pending files under the given files and folders, sorted: a folder is searched for
// *.md.pending; a file NAME.md stands for NAME.md.pending when that exists; a .pending file
// stands for itself. Throws std::runtime_error for a path that does not exist.
std::vector<std::string> find_pendings(const std::vector<std::string>& paths);

// The pending of one case, for runs of one case at a time (ctest runs each case in its own
// process, several at once). Under the golden's lock: starts from the golden's pending when it
// is current, else from the golden; puts `to` in place of case `slug` there (`from` when the
// case passes: its change is taken back out); writes the pending, or removes it when it would
// equal the golden. Does nothing and returns false when the golden's text of the case is no
// longer `from` (edited since the case ran) or the case is gone; true otherwise. Throws
// std::runtime_error naming the path when a file cannot be read, locked or written.
bool update_pending_case(const std::string& golden, const std::string& slug,
                         const std::string& from, const std::string& to);

// Puts a pending over its golden under the golden's lock, then removes the pending. Throws
// std::runtime_error, touching neither file, when the golden changed since the pending was
// written (or is gone), naming both and what to do.
void accept_pending(const std::string& pending_file);

}  // namespace pinmark
