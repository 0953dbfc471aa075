// The state machine of ad-hoc runs (`slipway run`): one command on a set of nodes, in waves of
// the batch size (default: all at once); the next wave starts when every node of the previous one
// has answered. Every node runs, whatever the others did: a run is an inspection or a fix, not a
// rollout, so there is nothing to stop or roll back. A node fails when its command exits non-zero,
// is killed or times out, when it is not connected, when its connection is lost, or when it does
// not answer within the command's timeout plus a grace period (ExecCalls). The run succeeds when
// every node exited 0.
//
// Like the deploy engine it does no I/O: commands go out through an ExecTransport (via its own
// ExecCalls, action prefix "x"), records through a RunJournal. Finished runs are dropped from
// memory (the store keeps them). Thread-safety: none (the server's I/O thread).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "engine/exec_calls.h"
#include "engine/interfaces.h"
#include "engine/run.h"

namespace slipway::engine {

// Persists run records; calls must not block (the server queues them to its database thread).
class RunJournal {
 public:
  virtual ~RunJournal() = default;
  // The header and, with `with_nodes`, every node (insert or update).
  virtual void save_run(const Run& r, bool with_nodes) = 0;
  virtual void save_run_node(RunId id, const RunNode& n) = 0;
};

struct RunRequest {
  std::string env;
  std::string selector;  // canonical text of the terms beyond env
  std::vector<std::string> argv;
  BatchSize batch{100, true};
  Millis timeout{60'000};
  std::string actor;         // the token's name
  std::string claimed_user;  // the user the client named (X-Slipway-User), "" for none
};

struct RunTarget {
  std::string node;
  std::string zone;
};

class RunManager {
 public:
  static constexpr const char* kActionPrefix = "x";

  RunManager(const Clock& clock, ExecTransport& transport, RunJournal& journal,
             Millis grace = Millis(10'000));
  ~RunManager();
  RunManager(const RunManager&) = delete;
  RunManager& operator=(const RunManager&) = delete;

  void set_next_id(RunId id) { next_id_ = id; }

  // Starts a run on `targets` (sorted by name here). invalid_argument for a bad argv or timeout,
  // failed_precondition when there is no target.
  Result<RunId> start(RunRequest req, std::vector<RunTarget> targets);

  // Where the exec results of runs go (register it under kActionPrefix).
  ExecResultHandler& exec_handler() { return calls_; }
  // Fails overdue nodes; call it about once a second.
  void tick() { calls_.tick(); }

  const Run* find(RunId id) const;
  size_t running() const { return runs_.size(); }

 private:
  void dispatch_wave(Run& run);
  void on_outcome(RunId id, size_t idx, const ExecCalls::Outcome& o);
  void finish_node(Run& run, size_t idx);
  void advance(RunId id);

  const Clock& clock_;
  RunJournal& journal_;
  ExecCalls calls_;
  RunId next_id_ = 1;
  std::map<RunId, std::unique_ptr<Run>> runs_;
  std::map<RunId, int> open_in_wave_;  // nodes of the current wave still waited for
};

}  // namespace slipway::engine
