#include "driver/golden_io.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
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

std::vector<std::string> leftover_temp_files(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path file(path);
  const fs::path folder = file.has_parent_path() ? file.parent_path() : fs::path(".");
  const std::string name = file.filename().string();
  // mkstemps replaces the six X with letters and digits.
  auto made_for_this_file = [&](const std::string& entry) {
    if (entry.size() != name.size() + 11 || entry.rfind(name + ".", 0) != 0 ||
        entry.compare(entry.size() - 4, 4, ".tmp") != 0)
      return false;
    for (size_t i = name.size() + 1; i < name.size() + 7; ++i)
      if (!std::isalnum(static_cast<unsigned char>(entry[i]))) return false;
    return true;
  };
  std::vector<std::string> leftovers;
  std::error_code error;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error))
    if (made_for_this_file(it->path().filename().string()))
      leftovers.push_back((folder / it->path().filename()).string());
  if (error)
    throw std::runtime_error("cannot read the folder of " + path + ": " + error.message());
  return leftovers;
}

void write_file_atomically(const std::string& link_or_file, const std::string& text) {
  // Through a symbolic link to the file it names: renaming over the link would replace it.
  std::string path = link_or_file;
  struct stat link {};
  if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
    std::error_code error;
    path = std::filesystem::canonical(link_or_file, error).string();
    if (error)
      throw std::runtime_error("cannot follow the link " + link_or_file + ": " + error.message());
  }
  struct stat original {};
  const bool exists = ::stat(path.c_str(), &original) == 0;
  if (exists && !S_ISREG(original.st_mode))
    throw std::runtime_error("cannot replace " + path + ": it is not a regular file");
  // Renaming a new file over one of several names would leave the others with the old text.
  if (exists && original.st_nlink > 1)
    throw std::runtime_error("cannot replace " + path + ": it has " +
                             std::to_string(original.st_nlink) +
                             " hard links, and replacing it would split them (the other names "
                             "would keep the old text); make it a single file or a symbolic "
                             "link");
  for (const std::string& leftover : leftover_temp_files(path)) ::unlink(leftover.c_str());
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
  // mkstemps creates the file 0600; a new file gets the mode open() would give it (0666 less
  // the umask), a replaced one keeps its own.
  if (exists) {
    ::fchmod(fd, original.st_mode & 07777);
  } else {
    const mode_t mask = ::umask(0);
    ::umask(mask);
    ::fchmod(fd, 0666 & ~mask);
  }
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
