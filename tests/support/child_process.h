// A child process for test fixtures: started with its standard output and error going to files,
// stopped (and reaped) for sure, also from the destructor.
//
// Helpers here throw std::runtime_error when they cannot do what they say: a test reports the
// exception as its failure, and the destructors still stop the process.
#pragma once

#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace slipway::testing {

namespace fs = std::filesystem;

struct ChildOptions {
  std::vector<std::string> argv;  // argv[0] is a path (no $PATH search)
  // Added to this process's environment (an empty value removes the variable).
  std::map<std::string, std::string> env;
  fs::path stdout_path;  // truncated; empty: /dev/null
  fs::path stderr_path;  // truncated; empty: /dev/null
  // A file descriptor of this process that the child gets as descriptor 3 (e.g. a listening
  // socket HAProxy takes with `bind fd@3`); -1: none. Every other descriptor is close-on-exec
  // in this code base, so the child inherits only 0, 1, 2 and this one.
  int pass_fd = -1;
};

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();  // stop(): SIGTERM, then SIGKILL
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;

  // Forks and execs; stdin is /dev/null. The child gets PR_SET_PDEATHSIG(SIGKILL), so a test
  // process that crashes leaves nothing behind (it fires when the *thread* that started the child
  // exits: start children from the test's main thread). Throws when a process is running already
  // or fork fails; an exec that fails shows as exit code 127.
  void start(const ChildOptions& o);

  pid_t pid() const { return pid_; }
  // Whether it has not exited yet (reaps it when it has).
  bool running();
  // The exit code once it exited normally; nullopt while it runs or when a signal ended it.
  std::optional<int> exit_code() const { return exit_code_; }
  // "exited with code N", "killed by signal N", "running".
  std::string describe() const;

  // Sends `signal` (no-op once it exited).
  void signal(int signal);
  // Waits up to `timeout` for it to exit; returns whether it did.
  bool wait_exit(std::chrono::milliseconds timeout);
  // Sends `signal`, waits up to `grace`, then SIGKILL and waits for it. Idempotent. Returns
  // describe() afterwards.
  std::string stop(int signal = SIGTERM,
                   std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  void reap(int options);

  pid_t pid_ = 0;  // 0: never started, or reaped
  std::optional<int> exit_code_;
  int term_signal_ = 0;
};

// This process's environment ("NAME=VALUE" strings) with `env` added, or, for an empty value,
// removed.
std::vector<std::string> environment_with(const std::map<std::string, std::string>& env);

// Polls `pred` every `every` until it holds or `timeout` passes; returns whether it held.
bool poll_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every = std::chrono::milliseconds(50));

// The whole content of a small file ("" when it cannot be read).
std::string read_text(const fs::path& p);

// The last `lines` lines of a file, for failure messages.
std::string tail_of(const fs::path& p, size_t lines = 30);

}  // namespace slipway::testing
