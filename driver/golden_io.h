// Reading and rewriting golden files safely: a golden is replaced whole or not at all, and
// processes regenerating cases of one file at once (ctest -j) take turns.
#pragma once

#include <string>
#include <vector>

namespace pinmark {

// The file's bytes; throws std::runtime_error naming the path and the reason.
std::string read_text_file(const std::string& path);

// Writes to a temporary file in the same folder, flushes it, then renames it over `path`, so a
// reader sees the old file or the new one, never a part. Keeps the file's permissions.
// A symbolic link is written through: its target gets the new text and the link stays.
// Temporary files an earlier writer left beside the file (`NAME.XXXXXX.tmp`, from a kill
// between creating one and the rename) are removed first, so call this under the file's
// FileLock. Throws std::runtime_error naming the path and the reason when the file cannot be
// written, and, writing nothing, when it is not a regular file or has other hard links (a
// rename would split them and leave the other names with the old text).
void write_file_atomically(const std::string& path, const std::string& text);

// The temporary files a writer of `path` would have left in its folder (`NAME.XXXXXX.tmp`),
// as paths. Throws std::runtime_error when the folder cannot be read.
std::vector<std::string> leftover_temp_files(const std::string& path);

// An exclusive lock on an existing file, held while alive. If another process replaced the
// file (renamed a new one over it) while this one waited, the lock is taken on the new file.
class FileLock {
 public:
  explicit FileLock(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace pinmark
