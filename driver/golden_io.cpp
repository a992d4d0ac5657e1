#include "driver/golden_io.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pinmark {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error("cannot " + what + " " + path + ": " + std::strerror(errno));
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("read", path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail("read", path);
  return buffer.str();
}

void write_file_atomically(const std::string& path, const std::string& text) {
  struct stat original {};
  const bool exists = ::stat(path.c_str(), &original) == 0;
  std::string temp = path + ".XXXXXX.tmp";
  int fd = ::mkstemps(temp.data(), 4);
  if (fd < 0) fail("create a temporary file beside", path);
  size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      errno = saved;
      fail("write", temp);
    }
    written += static_cast<size_t>(n);
  }
  if (exists) ::fchmod(fd, original.st_mode & 07777);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int saved = errno;
    ::unlink(temp.c_str());
    errno = saved;
    fail("flush", temp);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(temp.c_str());
    errno = saved;
    fail("replace", path);
  }
}

FileLock::FileLock(const std::string& path) {
  for (;;) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail("open", path);
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) fail("lock", path);
    }
    struct stat locked {}, current {};
    if (::fstat(fd_, &locked) == 0 && ::stat(path.c_str(), &current) == 0 &&
        locked.st_ino == current.st_ino && locked.st_dev == current.st_dev)
      return;
    ::close(fd_);  // the file was replaced while we waited: lock the new one
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace pinmark
