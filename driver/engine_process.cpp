#include "driver/engine_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pinmark {

std::string command_text(const std::vector<std::string>& command) {
  std::string text;
  for (const std::string& word : command) text += (text.empty() ? "" : " ") + word;
  return text;
}

std::string temp_name_template(const std::string& stem) {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp && *tmp ? tmp : "/tmp") + "/" + stem + "-XXXXXX";
}

namespace {

std::string status_text(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}

// A reply line: a JSON object that holds one of the protocol's keys.
bool reply_line(const std::string& line, nlohmann::json& reply) {
  if (line.empty() || line[0] != '{') return false;
  try {
    reply = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return reply.is_object() &&
         (reply.contains("done") || reply.contains("error") || reply.contains("unavailable"));
}

}  // namespace

EngineProcess::EngineProcess(const std::vector<std::string>& command, const std::string& folder) {
  if (command.empty()) throw std::runtime_error("an engine needs a command");
  const std::string templ = temp_name_template("pinmark-engine-stderr");
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  const int err_fd = mkstemp(name.data());
  if (err_fd < 0)
    throw std::runtime_error("cannot create a file for the engine's stderr in " + templ + ": " +
                             std::strerror(errno));
  stderr_path_ = name.data();
  int sockets[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
    ::close(err_fd);
    throw std::runtime_error(std::string("cannot create a socket for the engine: ") +
                             std::strerror(errno));
  }
  // Prepared before fork: after it, the child may only call async-signal-safe functions.
  std::vector<char*> argv;
  for (const std::string& word : command) argv.push_back(const_cast<char*>(word.c_str()));
  argv.push_back(nullptr);
  int exec_error[2];
  if (pipe2(exec_error, O_CLOEXEC) != 0) {
    ::close(err_fd);
    ::close(sockets[0]);
    ::close(sockets[1]);
    throw std::runtime_error(std::string("cannot create a pipe: ") + std::strerror(errno));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
#ifdef __linux__
    // The engine never outlives pinmark: killed by a signal (Ctrl-C reaches only pinmark, the
    // engine being in a group of its own so that a timeout can kill all it started), pinmark
    // takes its engines with it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // pinmark died before the line above took effect
#endif
    dup2(sockets[1], 0);
    dup2(sockets[1], 1);
    dup2(err_fd, 2);
    int why = 0;
    if (chdir(folder.c_str()) != 0 || setenv("PINMARK_ENGINE_PROTOCOL", "1", 1) != 0) {
      why = errno;
    } else {
      execvp(argv[0], argv.data());
      why = errno;
    }
    // Tells the parent why, through a pipe that exec would have closed.
    [[maybe_unused]] ssize_t n = write(exec_error[1], &why, sizeof why);
    _exit(127);
  }
  ::close(sockets[1]);
  ::close(err_fd);
  ::close(exec_error[1]);
  if (pid < 0) {
    ::close(sockets[0]);
    ::close(exec_error[0]);
    throw std::runtime_error("cannot start " + command_text(command) + ": " + std::strerror(errno));
  }
  pid_ = pid;
  socket_ = sockets[0];
  int why = 0;
  const ssize_t n = read(exec_error[0], &why, sizeof why);
  ::close(exec_error[0]);
  if (n == static_cast<ssize_t>(sizeof why)) {
    reap(true);
    ::close(socket_);
    socket_ = -1;
    unlink(stderr_path_.c_str());
    throw std::runtime_error("cannot start '" + command_text(command) + "' in " + folder + ": " +
                             std::strerror(why));
  }
}

EngineProcess::~EngineProcess() {
  if (socket_ >= 0) {
    shutdown(socket_, SHUT_WR);  // EOF on the engine's stdin: it exits
    ::close(socket_);
  }
  finish(1);
  if (!stderr_path_.empty()) unlink(stderr_path_.c_str());
}

std::string EngineProcess::reap(bool wait) {
  if (pid_ <= 0) return exit_;
  int status = 0;
  const pid_t done = waitpid(pid_, &status, wait ? 0 : WNOHANG);
  if (done != pid_) return "";
  pid_ = -1;
  exit_ = status_text(status);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) exit_ = "unavailable";
  return exit_;
}

std::string EngineProcess::finish(double grace_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
  while (pid_ > 0 && reap(false).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (pid_ > 0) {
    kill(-pid_, SIGKILL);
    reap(true);
    exit_ = "closed its stdout and was killed";
  }
  return exit_;
}

std::string EngineProcess::stderr_tail(size_t bytes) const {
  std::ifstream in(stderr_path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(request_stderr_from_));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > bytes) text = "..." + text.substr(text.size() - bytes);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

nlohmann::json EngineProcess::request(const nlohmann::json& request, double timeout_s) {
  auto ended = [&](const std::string& how) -> nlohmann::json {
    if (how == "unavailable") {
      std::string tail = stderr_tail(400);
      tail = tail.substr(tail.find_last_of('\n') == std::string::npos ? 0 : tail.find_last_of('\n') + 1);
      return {{"unavailable", tail.empty() ? "the engine exited with status 77" : tail}};
    }
    throw std::runtime_error("the engine " + how + " before it replied");
  };
  {
    struct stat st {};
    if (::stat(stderr_path_.c_str(), &st) == 0) request_stderr_from_ = st.st_size;
  }
  if (pid_ <= 0) return ended(exit_);
  const std::string line = request.dump() + "\n";
  for (size_t sent = 0; sent < line.size();) {
    const ssize_t n = send(socket_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;  // the engine is gone; a reply it wrote first may still be unread
    sent += static_cast<size_t>(n);
  }
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration<double>(timeout_s);
  for (;;) {
    for (size_t newline; (newline = pending_.find('\n')) != std::string::npos;) {
      const std::string reply_text = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      nlohmann::json reply;
      if (reply_line(reply_text, reply)) return reply;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      kill(-pid_, SIGKILL);
      reap(true);
      std::ostringstream seconds;
      seconds << timeout_s;
      throw std::runtime_error("the engine gave no reply within " + seconds.str() +
                               " s (timeout_s) and was killed");
    }
    pollfd fd{socket_, POLLIN, 0};
    const int ready = poll(&fd, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno != EINTR) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    if (ready <= 0) continue;
    char buffer[65536];
    const ssize_t n = recv(socket_, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ended(finish(5));
    pending_.append(buffer, static_cast<size_t>(n));
  }
}

}  // namespace pinmark
