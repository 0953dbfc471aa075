// Everything an agent does on its node, with no network in it: install a release (fetch through
// an injected Fetcher, verify, unpack, hooks, switch, restart, health check, revert on failure),
// deactivate an app, bring apps back up when the agent starts, probe their health, report state.
//
// Install steps, in order, each reported to the StepSink as started then ok/failed/skipped:
//   download   (skipped when releases/VERSION is on disk with the same sha256: no bytes fetched)
//   verify     SHA-256 of the downloaded file against the command's
//   unpack     safe extraction into releases/VERSION
//   hook:after_install
//   hook:before_stop, stop   (the running release, if any)
//   switch     `current` -> releases/VERSION
//   hook:before_start, start (supervised process, or the manifest's restart command)
//   hook:after_start
//   health     until healthy for healthy_for, or timeout
//   prune      keep the last keep_releases
// When a step after `switch` fails, the node goes back by itself to the release that was current
// before (switch, start, health) — reported as step "revert" — and the result says reverted_to.
// When a step before `switch` fails, the running release was never touched.
//
// Thread-safety: install/deactivate for different apps may run on different threads at once;
// calls for one app are serialised (a second concurrent call for the same app fails at once with
// "busy").
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "protocol/agent_protocol.h"

namespace slipway::agent {

namespace fs = std::filesystem;

struct NodeIdentity {
  std::string name;
  std::string env;
  std::string address;  // SLIPWAY_ADDRESS; the app binds here
  fs::path root;        // the agent's root directory
};

// Fetches the artifact of `cmd` into `dest` (resuming from what is already there).
class Fetcher {
 public:
  virtual ~Fetcher() = default;
  virtual Status fetch(const protocol::InstallCommand& cmd, const fs::path& dest) = 0;
};

class StepSink {
 public:
  virtual ~StepSink() = default;
  virtual void step(const protocol::StepEvent& e) = 0;
};

class NodeRuntime {
 public:
  NodeRuntime(NodeIdentity id, Fetcher& fetcher);
  ~NodeRuntime();  // stops supervised processes
  NodeRuntime(const NodeRuntime&) = delete;
  NodeRuntime& operator=(const NodeRuntime&) = delete;

  Status open();  // creates ROOT/apps, ROOT/downloads

  // Blocking; run it on a worker thread. Never throws; failures are in the result.
  protocol::InstallResult install(const protocol::InstallCommand& cmd, StepSink& sink);
  protocol::InstallResult deactivate(const protocol::DeactivateCommand& cmd, StepSink& sink);

  // Runs an ad-hoc command (exec): cmd.argv with no shell, in the root directory, with cmd.env
  // plus SLIPWAY_NODE, SLIPWAY_ENV, SLIPWAY_ADDRESS and SLIPWAY_ROOT (which win) on top of the
  // few variables the agent passes on (child_environment), killed after cmd.timeout_ms or when
  // cancel() is called. A command that cannot be started ends with exit code 127 and the reason as
  // its output. Blocking; run it on a worker thread. Never throws. Any number may run at once.
  protocol::ExecResult exec(const protocol::ExecCommand& cmd) const;

  // Starts the supervised process of every app whose `current` release has a `start:` command
  // (the agent just started). Returns one line per app for the log.
  std::vector<std::string> resume_all();

  // Probes every active app once and updates its health; returns true when any app's health or
  // running state changed since the last call.
  bool probe_all();

  std::vector<protocol::AppState> app_states() const;

  // Makes the operations in flight give up soon (a health check waiting ends, no process is
  // started any more), so that an agent asked to stop does not wait out a deploy's health
  // timeout. Call it before waiting for them, then shutdown().
  void cancel();

  // Stops all supervised processes (agent shutdown).
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slipway::agent
