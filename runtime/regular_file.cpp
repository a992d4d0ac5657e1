#include "runtime/regular_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pinmark {
namespace {

std::string kind_of(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

[[noreturn]] void fail(const std::string& label, const std::string& what) {
  throw std::runtime_error(label + ": " + what);
}

}  // namespace

std::string file_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return errno == ENOENT || errno == ENOTDIR ? "missing"
                                               : std::string("unreachable (") + std::strerror(errno) + ")";
  return kind_of(st.st_mode);
}

RegularFile open_regular_file(const std::string& path, const std::string& label) {
  // stat first, so that a FIFO is never opened; O_NONBLOCK too, in case the path is swapped
  // for one between the two calls.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(label, std::string("cannot open: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(label, "is " + kind_of(st.st_mode) + ", not a regular file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(label, std::string("cannot open: ") + std::strerror(errno));
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const std::string what = S_ISREG(st.st_mode) ? std::strerror(errno) : kind_of(st.st_mode);
    ::close(fd);
    fail(label, "is " + what + ", not a regular file");
  }
  return {fd, static_cast<uint64_t>(st.st_size)};
}

std::string read_regular_file(const std::string& path, const std::string& label,
                              uint64_t max_bytes) {
  const RegularFile file = open_regular_file(path, label);
  if (file.size > max_bytes) {
    ::close(file.fd);
    fail(label, "is " + std::to_string(file.size) + " bytes, more than the " +
                    std::to_string(max_bytes) + " pinmark reads");
  }
  std::string text(static_cast<size_t>(file.size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(file.fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(file.fd);
      fail(label, std::string("cannot read: ") + std::strerror(err));
    }
    if (n == 0) break;  // the file shrank while it was read
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  ::close(file.fd);
  return text;
}

}  // namespace pinmark
