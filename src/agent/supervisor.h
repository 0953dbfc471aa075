// Supervises the long-running process of each app (manifest `start:`): spawns it in its own
// process group with its output appended to a log file, restarts it with backoff (1 s doubling to
// 30 s) when it dies, and stops it with SIGTERM then SIGKILL. The children get PR_SET_PDEATHSIG so
// that they do not outlive an agent that is killed; a pid file per app lets a restarted agent kill
// a leftover process before it starts a new one. A simple command (no shell operators) is run as
// `exec COMMAND`, so that the supervised pid is the app itself rather than a shell around it.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <sys/types.h>

#include "agent/process.h"
#include "common/duration.h"
#include "common/error.h"

namespace slipway::agent {

struct ProcessStatus {
  bool running = false;
  pid_t pid = 0;
  int restarts = 0;        // since the last start()
  int last_exit_code = 0;  // of the last exit, -1 when signalled
  std::string last_exit;   // "exit code 1", "killed by signal 9", "" when it never exited
};

class Supervisor {
 public:
  Supervisor();
  ~Supervisor();  // stops every process
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts (or replaces: stops the old one first) the process of `app`.
  Status start(const std::string& app, const ProcessSpec& spec, const fs::path& log_file,
               const fs::path& pid_file);
  // Stops it and forgets it; a no-op when not supervised.
  Status stop(const std::string& app, Millis timeout);
  ProcessStatus status(const std::string& app) const;
  void stop_all(Millis timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slipway::agent
