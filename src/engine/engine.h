// The deploy engine: the state machine of every running deploy.
//
// A deploy updates its targeted nodes in waves (batches) planned by its strategy (strategy.h).
// Each node of a wave is sent an install command; the wave is done when every node of it has
// reported a result (or failed: disconnected, not connected, not healthy within the healthy
// deadline). Between groups of waves a gate may hold the deploy (canary: until `promote`, or for a
// while the canaries must stay healthy). When the failures exceed max_failures, the progress
// deadline passes, or the deploy is aborted, no further node starts and, once the nodes in flight
// have answered, every node the deploy changed is sent back to the version it ran before (in
// waves of the batch size): the deploy ends rolled_back (or failed, when going back failed
// somewhere). Agents revert a node whose new release fails its health check by themselves; the
// engine only reverts the nodes that are still on the new version.
//
// A paused deploy starts no new node (those in flight finish); deadlines do not run while it is
// paused or held by a gate. Every change of course (start, pause, resume, promote, abort, a
// deadline, the end) is kept in the deploy's log with who made it.
//
// Thread-safety: none. The server calls it from one thread (its I/O thread).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "engine/deploy.h"
#include "engine/exec_calls.h"
#include "engine/interfaces.h"
#include "engine/strategy.h"

namespace slipway::engine {

struct Target {
  std::string node;
  std::string zone;
  std::string from_version;  // the app's current version on the node, "" when none
  bool canary = false;       // canary strategy: one of the first nodes
  bool in_service = true;    // the app runs healthy there now (for max-unavailable)
};

// A load-balancer command around each node's update: drain before, undrain once healthy again.
// It runs `/bin/sh -c command` on the node itself, or (`on_nodes` not empty) on each of those
// nodes (the load balancer's), with SLIPWAY_TARGET_NODE and SLIPWAY_TARGET_ADDRESS naming the node
// being updated. Any failure fails the node.
struct LbHook {
  std::string command;
  std::string on;                     // the selector as given ("" = the node itself)
  std::vector<std::string> on_nodes;  // what `on` matched when the deploy started
  Millis timeout{30'000};
};

struct DeployRequest {
  DeployKind kind = DeployKind::deploy;
  std::string app;
  std::string env;
  std::string selector;  // canonical text of the terms beyond env
  ArtifactRef artifact;  // the version to deploy
  // The artifacts of the versions the targets run now, to send them back on failure. A node whose
  // version is missing here cannot be sent back (the agent needs the digest): it ends
  // revert_failed.
  std::map<std::string, ArtifactRef> previous;
  BatchSize batch;
  int max_failures = 0;
  Strategy strategy = Strategy::rolling;
  std::string canary;                   // canary: the spec as given (the targets carry the flag)
  Gate canary_gate = Gate::none;        // canary: what happens after the canaries
  Millis canary_wait{0};                // Gate::wait: how long the canaries must stay healthy
  std::vector<std::string> zone_order;  // zones: the order; empty = sorted
  std::optional<BatchSize> max_unavailable;
  Millis healthy_deadline{0};   // 0 = the engine's node_timeout
  Millis progress_deadline{0};  // 0 = none
  std::optional<LbHook> drain;
  std::optional<LbHook> undrain;
  std::map<std::string, std::string> addresses;  // node -> address, for the hooks
  std::string actor;                             // the token's name
  std::string claimed_user;                      // X-Slipway-User: a claim, never trusted
  std::string forced_freeze;  // the freezes a forced deploy goes through (Deploy::forced_freeze)
  // The (env, app) config with secrets in clear, passed to the agents with every install, and
  // its version (recorded on the deploy). Never logged.
  std::map<std::string, std::string> env_vars;
  int64_t config_version = 0;
  int keep_releases = 5;
};

struct EngineOptions {
  // The default healthy deadline: a node that is not healthy within this has failed.
  Millis node_timeout{15 * 60'000};
};

class Engine {
 public:
  // `exec` carries drain and undrain commands (without it, a deploy that has them is refused).
  Engine(const Clock& clock, NodeTransport& transport, DeployJournal& journal, EventSink& sink,
         EngineOptions opts = {}, ExecTransport* exec = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // The first id to hand out (one more than the highest in the store).
  void set_next_id(DeployId id) { next_id_ = id; }

  // Starts a deploy. Errors: failed_precondition when there are no targets, conflict when a deploy
  // of the same app to the same environment is running, invalid_argument on a bad request.
  Result<DeployId> start(DeployRequest req, std::vector<Target> targets);

  // What start() would do, without doing it: the deploy with its nodes in their batches (id 0),
  // and the rollout in words ("2 at a time (3 batches)"); the same errors as start().
  struct Preview {
    Deploy deploy;
    std::string how;
  };
  Result<Preview> preview(DeployRequest req, std::vector<Target> targets) const;

  // Reports from agents. A report is accepted only for a command in flight that was sent to that
  // node (and a result only for the app the command installs); anything else -- an unknown
  // action, one sent to another node, a result for another app, a second report for an action
  // that has finished -- is refused: logged (warn, with the node, the action and why), counted in
  // ignored_reports(), and changes nothing.
  void on_step(const std::string& node, const protocol::StepEvent& e);
  void on_result(const std::string& node, const protocol::InstallResult& r);
  // Why a report from `node` about `action` (a result names `app`; nullptr for steps) would be
  // refused; nullopt when it would be accepted. The gateway asks before it lets a result update
  // the inventory.
  std::optional<std::string> report_refusal(const std::string& node, const std::string& action,
                                            const std::string* app) const;
  // The node's connection is gone: whatever it was doing has failed.
  void on_node_lost(const std::string& node);
  // The node's app failed its health check while serving (a heartbeat said so): a node this deploy
  // made healthy on `version` fails, as if its install had.
  void on_app_unhealthy(const std::string& node, const std::string& app, const std::string& version,
                        const std::string& detail);
  // Checks deadlines and timed gates; call it about once a second.
  void tick();

  // Stops a running deploy and rolls back what it changed (unless rollback is false).
  Status abort(DeployId id, const std::string& actor, bool rollback = true);
  // Holds a running deploy: nodes in flight finish, no new node starts.
  Status pause(DeployId id, const std::string& actor);
  Status resume(DeployId id, const std::string& actor);
  // Lets a deploy held by a gate (after its canaries) go on.
  Status promote(DeployId id, const std::string& actor);

  const Deploy* find(DeployId id) const;
  const Deploy* running_for(const std::string& app, const std::string& env) const;
  std::vector<const Deploy*> running() const;
  uint64_t ignored_reports() const { return ignored_reports_; }
  // Where the results of drain and undrain commands go (actions start with kHookPrefix).
  static constexpr const char* kHookPrefix = "h";
  ExecResultHandler* exec_handler() { return exec_ ? &*exec_ : nullptr; }

  // Finished deploys are dropped from memory after this call (the store keeps them).
  void forget_finished();

 private:
  struct Run;
  struct ActionRef {
    DeployId deploy;
    size_t node_index;
  };

  Result<std::unique_ptr<Run>> prepare(DeployRequest req, std::vector<Target> targets) const;
  static std::string describe(const Run& run);
  Result<Run*> find_run(DeployId id);
  void start_wave(Run& run);
  bool may_take_out(const Run& run, size_t idx) const;
  void enter_gate(Run& run, size_t group);
  void pass_gate(Run& run, const std::string& actor, const std::string& detail);
  void stop(Run& run, const std::string& actor, const std::string& reason, bool rollback);
  void update_state(Run& run);
  void record(Run& run, const std::string& actor, std::string action, std::string detail);
  using HookDone = std::function<void(Run&, size_t, const std::string& failure)>;
  // Runs a drain or undrain hook for node idx; `done` gets "" or why it failed. When no command
  // could be sent, `done` runs at once (the caller goes on); otherwise later, then advance().
  void run_hook(Run& run, size_t idx, const LbHook& hook, const std::string& step, HookDone done);
  void send_node(Run& run, size_t idx, std::function<bool()> send);
  void dispatch_forward(Run& run, size_t idx);
  void dispatch_revert(Run& run, size_t idx);
  void finish_node(Run& run, size_t idx, bool ok, const std::string& reason);
  void advance(Run& run);
  void begin_revert(Run& run);
  void finish(Run& run, DeployState state, const std::string& reason);
  void emit(Run& run, std::string kind, const std::string& node, std::string step,
            std::string status, std::string message, int64_t duration_ms = 0);
  std::string new_action(Run& run, size_t idx);
  // The run and node index a report is about, or nullptr (logged and counted) when it is refused.
  Run* accept_report(const std::string& node, std::string_view kind, const std::string& action,
                     const std::string* app, size_t* idx);
  // The node's command is over: reports about it are refused from now on.
  void retire_action(NodeProgress& n);

  const Clock& clock_;
  NodeTransport& transport_;
  DeployJournal& journal_;
  EventSink& sink_;
  EngineOptions opts_;
  std::optional<ExecCalls> exec_;
  DeployId next_id_ = 1;
  uint64_t next_action_ = 1;
  uint64_t ignored_reports_ = 0;
  std::map<DeployId, std::unique_ptr<Run>> runs_;
  std::unordered_map<std::string, ActionRef> actions_;
  // Finished actions -> the node they were sent to (the last kRetiredActionsKept of them).
  static constexpr size_t kRetiredActionsKept = 4096;
  std::unordered_map<std::string, std::string> retired_;
  std::deque<std::string> retired_order_;
  std::unordered_map<std::string, std::vector<ActionRef>> node_actions_;
};

}  // namespace slipway::engine
