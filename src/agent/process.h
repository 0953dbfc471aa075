// Running commands on the node: hooks, health-check commands, restart commands.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "common/duration.h"
#include "common/error.h"

namespace slipway::agent {

namespace fs = std::filesystem;

struct ProcessSpec {
  std::string command;  // run as /bin/sh -c COMMAND (when argv is empty)
  // When not empty, run instead argv[0] with these arguments, with no shell in between (an
  // ad-hoc command: the user's words must reach the program as they are). argv[0] is looked up
  // in the PATH of the command's environment when it holds no '/', as execvp does.
  std::vector<std::string> argv;
  fs::path cwd;
  // The child's variables: on top of the few it inherits from the agent (child_environment).
  std::map<std::string, std::string> env;
  // When set and it turns true (the agent is stopping), run_command stops the command as on a
  // timeout.
  const std::atomic<bool>* cancel = nullptr;
};

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  int signal = 0;
  bool timed_out = false;
  bool cancelled = false;  // stopped because spec.cancel turned true
  std::string output;      // stdout and stderr interleaved, the last max_output bytes
  Millis duration{0};
  Millis timeout{0};  // the limit that applied (for describe())
  bool ok() const { return exit_code == 0 && !timed_out; }
  std::string describe() const;  // "exit code 3", "killed by signal 9", "timed out after 5.0s"
};

// Whether a variable of the agent's own environment reaches its children: PATH, HOME, USER,
// LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, TMPDIR and TERM (what programs need to find commands
// and files and to speak the node's language and time). Nothing else does: not SLIPWAY_TOKEN or
// SLIPWAY_JOIN_TOKEN, not the credentials the unit or shell that started the agent happened to
// hold. What an app needs beyond these comes from its manifest's `env` or its config.
bool inherited_by_children(std::string_view name);

// The PATH of a child when neither the agent's environment nor `vars` has one (systemd's).
inline constexpr const char* kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The environment of every process the agent starts (apps, hooks, health, stop, restart, drain and
// ad-hoc commands): the variables of `agent_env` (NAME=VALUE strings up to a null pointer, as
// `environ`) that inherited_by_children, then `vars` (the manifest's env, the app's config and
// secrets, the SLIPWAY_* variables the agent sets), which win; PATH is kDefaultPath when neither
// sets it. A pure function: the agent passes `environ`, tests a made-up one.
std::map<std::string, std::string> child_environment(
    const char* const* agent_env, const std::map<std::string, std::string>& vars);

// Runs the command in its own process group, waits at most `timeout` (then SIGTERM to the group,
// SIGKILL 2 s later), and captures its output. An io error only when it could not be started.
// A non-positive timeout means no limit.
Result<RunResult> run_command(const ProcessSpec& spec, Millis timeout,
                              size_t max_output = 64 * 1024);

// The building block shared by run_command and the Supervisor: starts `/bin/sh -c spec.command`
// (or spec.argv) as the leader of a new process group (so that the whole tree can be signalled at
// once), in spec.cwd (when not empty), with child_environment(environ, spec.env), standard input
// from /dev/null, standard output and error to `out_fd`, no other descriptor inherited, and default
// signal dispositions and mask. With `die_with_parent`, the child gets SIGTERM when the thread that
// called spawn_shell exits (PR_SET_PDEATHSIG), so call it from a thread that outlives the child
// (one that waits for it, or the supervisor's own thread). Returns once the shell has been exec'd;
// an io error (with the reason) when it could not be started, e.g. a missing working directory,
// or not_found when argv[0] is not found in the PATH. The caller must reap the pid.
Result<pid_t> spawn_shell(const ProcessSpec& spec, int out_fd, bool die_with_parent = false);

// True while some process of group `pgid` runs. Zombies do not count: where nothing reaps
// orphans (a container whose init does not), they would otherwise keep a dead group "alive".
bool process_group_alive(pid_t pgid);

// "exit code 3" or "killed by signal 9 (SIGKILL)", from a waitpid status.
std::string describe_wait_status(int status);

}  // namespace slipway::agent
