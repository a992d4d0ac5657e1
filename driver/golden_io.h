// Reading and rewriting golden files safely: a golden is replaced whole or not at all, and
// processes regenerating cases of one file at once (ctest -j) take turns.
#pragma once

#include <string>

namespace pinmark {

// The file's bytes; throws std::runtime_error naming the path and the reason.
std::string read_text_file(const std::string& path);

// Writes to a temporary file in the same folder, flushes it, then renames it over `path`, so a
// reader sees the old file or the new one, never a part. Keeps the file's permissions.
void write_file_atomically(const std::string& path, const std::string& text);

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
