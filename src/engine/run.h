// What an ad-hoc run is (`slipway run`): one command (an argv) on the nodes a selector picks, in
// batches; the records the RunManager keeps, stores and shows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/duration.h"
#include "common/error.h"
#include "common/json.h"
#include "engine/deploy.h"

namespace slipway::engine {

using RunId = int64_t;

enum class RunState { running, succeeded, failed };
// Per node: pending -> running -> ok | failed (a node that is not connected fails at once).
enum class RunNodeStatus { pending, running, ok, failed };

std::string_view run_state_name(RunState s);
std::optional<RunState> run_state_from_name(std::string_view s);
std::string_view run_node_status_name(RunNodeStatus s);
std::optional<RunNodeStatus> run_node_status_from_name(std::string_view s);

struct RunNode {
  std::string node;
  std::string zone;
  int batch = 0;  // 0-based wave number
  RunNodeStatus status = RunNodeStatus::pending;
  int exit_code = -1;  // -1: none (not finished, killed by a signal, timed out, no answer)
  int signal = 0;
  bool timed_out = false;
  std::string output;
  std::string reason;  // why it failed, in words ("exit code 1", "not connected", ...)
  TimeMs started_at = 0;
  int64_t duration_ms = 0;
  int64_t seq = 0;  // the order in which nodes finished (1, 2, ...); 0 while not finished
};

struct Run {
  RunId id = 0;
  std::string env;
  std::string selector;  // extra terms beyond env (canonical text), "" = the whole env
  std::vector<std::string> argv;
  BatchSize batch{100, true};
  Millis timeout{60'000};
  std::string actor;         // the token's name
  std::string claimed_user;  // the user the client named (X-Slipway-User), never trusted
  RunState state = RunState::running;
  TimeMs created_at = 0;
  TimeMs finished_at = 0;
  int batches = 0;
  int current_batch = 0;
  int64_t finished_nodes = 0;  // the last seq handed out
  std::vector<RunNode> nodes;

  int count(RunNodeStatus s) const;
  Millis duration(TimeMs now) const;
  // A copy without the nodes (and so without their output).
  Run header() const;
};

// The command as a person would type it in a POSIX shell (arguments quoted where needed), for
// display only: the agents never hand it to a shell.
std::string command_line(const std::vector<std::string>& argv);

// "exit 0", "exit 3", "timed out", "killed by signal 9", or the reason of a node that did not run.
std::string run_node_outcome(const RunNode& n);

// JSON of the API: times as text (like deploys). With `min_seq` > 0, only the nodes that finished
// after that one (seq > min_seq): what a client following the run has not seen yet.
json::value to_json(const Run& r, bool with_nodes = true, int64_t min_seq = 0);
Result<Run> run_from_json(const json::value& v);

}  // namespace slipway::engine
