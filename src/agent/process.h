// Running commands on the node: hooks, health-check commands, restart commands.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "common/duration.h"
#include "common/error.h"

namespace slipway::agent {

namespace fs = std::filesystem;

struct ProcessSpec {
  std::string command;  // run as /bin/sh -c COMMAND
  fs::path cwd;
  // Added to (and overriding) the agent's own environment.
  std::map<std::string, std::string> env;
};

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  int signal = 0;
  bool timed_out = false;
  std::string output;  // stdout and stderr interleaved, the last max_output bytes
  Millis duration{0};
  bool ok() const { return exit_code == 0 && !timed_out; }
  std::string describe() const;  // "exit code 3", "killed by signal 9", "timed out after 5.0s"
};

// Runs the command in its own process group, waits at most `timeout` (then SIGTERM to the group,
// SIGKILL 2 s later), and captures its output. An io error only when it could not be started.
Result<RunResult> run_command(const ProcessSpec& spec, Millis timeout,
                              size_t max_output = 64 * 1024);

}  // namespace slipway::agent
