// What a deploy is: the records the deploy engine keeps, stores and shows.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/duration.h"
#include "common/error.h"
#include "common/json.h"

namespace slipway::engine {

using DeployId = int64_t;

// paused: by hand (`slipway pause`) or waiting for `slipway promote`; nodes in flight finish, no
// new node starts.
enum class DeployState { running, succeeded, failed, rolled_back, paused };
// converge: the server brings one lagging node to its desired release by itself (desired.h).
enum class DeployKind { deploy, rollback, converge };
enum class Phase { forward, revert };

// Per node of a deploy.
//   pending -> running -> healthy | failed          (forward phase)
//   pending -> skipped                               (the deploy stopped before reaching it)
//   healthy|failed -> reverting -> reverted | revert_failed   (revert phase)
enum class NodeStatus {
  pending,
  running,
  healthy,
  failed,
  skipped,
  reverting,
  reverted,
  revert_failed
};
inline constexpr size_t kNodeStatusCount = 8;

std::string_view deploy_state_name(DeployState s);
std::optional<DeployState> deploy_state_from_name(std::string_view s);
std::string_view deploy_kind_name(DeployKind k);
std::optional<DeployKind> deploy_kind_from_name(std::string_view s);
std::string_view node_status_name(NodeStatus s);
std::optional<NodeStatus> node_status_from_name(std::string_view s);
bool is_terminal(DeployState s);

// "2" (nodes) or "25%" (of the targeted nodes, rounded down, at least 1).
struct BatchSize {
  int value = 25;
  bool percent = true;
  static Result<BatchSize> parse(std::string_view text);
  int resolve(int total) const;
  std::string to_string() const;
};

struct ArtifactRef {
  std::string version;
  std::string sha256;
  uint64_t size = 0;
};

struct NodeProgress {
  std::string node;
  std::string zone;
  int batch = 0;             // 0-based wave number
  std::string from_version;  // what the node ran before this deploy ("" = nothing)
  NodeStatus status = NodeStatus::pending;
  std::string step;    // the last step reported
  std::string action;  // the command in flight
  TimeMs started_at = 0;
  TimeMs finished_at = 0;
  std::string reason;       // why it failed
  std::string reverted_to;  // the agent went back by itself to this version
  std::string version_now;  // what the node reported as current in its last result
  bool downloaded = false;
  bool canary = false;  // one of the canary strategy's first nodes
};

// A change of a deploy's course, with who made it: started, paused, resumed, promoted, aborted,
// deadline, finished.
struct Transition {
  TimeMs at = 0;
  std::string actor;
  std::string action;
  std::string detail;
};

struct Deploy {
  DeployId id = 0;
  DeployKind kind = DeployKind::deploy;
  std::string app;
  std::string version;
  std::string env;
  std::string selector;  // extra terms beyond env (canonical text), "" = the whole env
  std::string strategy = "rolling";
  BatchSize batch;
  int max_failures = 0;
  std::string canary;       // canary strategy: N, N% or tag:K=V
  std::string canary_gate;  // "", "promote" (wait for `promote`) or "wait" (canary_wait_ms)
  int64_t canary_wait_ms = 0;
  std::string zones;                 // zones strategy: the order followed, comma-separated
  std::string max_unavailable;       // "" = no limit beyond the batch
  int64_t healthy_deadline_ms = 0;   // a node must be healthy within this of its command
  int64_t progress_deadline_ms = 0;  // 0 = none; fails when no node became healthy within it
  std::string waiting;               // what a paused or gated deploy waits for ("" = nothing)
  TimeMs promote_at = 0;             // canary wait: when it promotes itself
  DeployState state = DeployState::running;
  Phase phase = Phase::forward;
  std::string reason;  // why it failed or was rolled back
  std::string actor;   // who started it: the token's name
  // The user the client named (X-Slipway-User): shown as "ACTOR (claims USER)", never trusted.
  std::string claimed_user;
  std::string aborted_by;
  // The freezes this deploy was forced through (`deploy --force`), as described when it started;
  // "" = none applied.
  std::string forced_freeze;
  // The version of the (env, app) config the deploy sent (engine/config.h; 0 = none set).
  int64_t config_version = 0;
  TimeMs created_at = 0;
  TimeMs finished_at = 0;
  int batches = 0;  // number of waves
  int current_batch = 0;
  std::vector<NodeProgress> nodes;
  std::vector<Transition> log;
  // Nodes per status, kept up to date by set_status so that counting is O(1) on every event of
  // a 10,000-node deploy. Whoever fills or changes `nodes` directly calls recount() afterwards.
  std::array<int, kNodeStatusCount> tally{};

  void set_status(NodeProgress& n, NodeStatus s);
  void recount();
  int count(NodeStatus s) const { return tally[static_cast<size_t>(s)]; }
  int failures() const;  // failed + revert_failed
  Millis duration(TimeMs now) const;
};

// A step of a node as recorded in the history.
struct StepRecord {
  DeployId deploy = 0;
  std::string node;
  std::string step;
  std::string status;  // started, ok, failed, skipped
  std::string output;
  TimeMs started_at = 0;
  int64_t duration_ms = 0;
};

// A progress event for watchers (CLI, console).
struct DeployEvent {
  DeployId deploy = 0;
  int64_t seq = 0;
  TimeMs at = 0;
  std::string kind;  // deploy.started, batch.started, node.step, node.finished,
                     // deploy.paused, deploy.resumed, deploy.waiting, deploy.promoted,
                     // deploy.aborting, revert.started, deploy.finished
  std::string node;
  std::string step;
  std::string status;  // step status, node status or deploy state
  std::string message;
  int64_t duration_ms = 0;  // of a finished step or node
};

json::value to_json(const Deploy& d, bool with_nodes = true);
// The strategy options of a deploy (canary, zones, max_unavailable, deadlines, waiting), as in
// its JSON; read_strategy_options takes them back (absent ones get their defaults).
json::object strategy_options_json(const Deploy& d);
void read_strategy_options(JsonReader& r, Deploy& d);
Result<Deploy> deploy_from_json(const json::value& v);
json::value to_json(const Transition& t);
Result<Transition> transition_from_json(const json::value& v);
json::value to_json(const StepRecord& s);
Result<StepRecord> step_from_json(const json::value& v);
json::value to_json(const DeployEvent& e);
Result<DeployEvent> event_from_json(const json::value& v);

}  // namespace slipway::engine
