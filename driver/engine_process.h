// An engine's process (docs/engines.md): started once, lazily, in its configuration's folder,
// with a socket for stdin and stdout (so that a dead engine is a write error, never a SIGPIPE)
// and stderr in a temporary file whose tail goes into every failure message. On Linux the
// engine is killed when pinmark dies, however it dies.
#pragma once

#include <sys/types.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pinmark {

// The command as one line, for messages: its words joined by spaces.
std::string command_text(const std::vector<std::string>& command);

// "$TMPDIR/STEM-XXXXXX" (/tmp without TMPDIR), for mkstemp and mkdtemp.
std::string temp_name_template(const std::string& stem);

class EngineProcess {
 public:
  // Starts `command` in `folder` with PINMARK_ENGINE_PROTOCOL=1 in its environment. Throws
  // std::runtime_error when the process cannot be started (the message names the command).
  EngineProcess(const std::vector<std::string>& command, const std::string& folder);
  // Closes the engine's stdin and waits a moment for it to exit, then kills it.
  ~EngineProcess();
  EngineProcess(const EngineProcess&) = delete;
  EngineProcess& operator=(const EngineProcess&) = delete;

  // Sends `request` as one line and returns the first reply line that is a JSON object holding
  // "done", "error" or "unavailable" (other lines are ignored). Throws std::runtime_error when
  // the engine exits first (with its exit status; status 77 reads as {"unavailable": ...}
  // instead), closes its stdout, or takes longer than `timeout_s` (it is killed then).
  nlohmann::json request(const nlohmann::json& request, double timeout_s);

  // The last `bytes` of what the engine wrote to stderr since the last request was sent, ""
  // when nothing.
  std::string stderr_tail(size_t bytes = 2000) const;

  // The engine has exited or was killed: no further request can be sent.
  bool finished() const { return pid_ <= 0; }

 private:
  // Reaps the process if it exited; returns its status description ("" while it runs).
  std::string reap(bool wait);
  // Waits up to `grace_s` for the process to exit, then kills it; returns how it ended.
  std::string finish(double grace_s);

  pid_t pid_ = -1;
  int socket_ = -1;
  std::string stderr_path_;
  std::string pending_;  // bytes read past the last complete line
  size_t request_stderr_from_ = 0;  // the stderr file's size when the last request was sent
  std::string exit_;     // how it ended
};

}  // namespace pinmark
