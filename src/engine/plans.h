// The state machine of deploy plans (`slipway deploy -f deploy.yaml`, plan.h): stages in order,
// each a normal deploy; after a stage, a wait or an approval may hold the plan; a stage that does
// not end `succeeded` (or does not start) stops it, and then the stages already done are rolled
// back in reverse order, one rollback deploy after another.
//
// Rolling a stage back: its nodes that the stage changed (healthy on the new version) go back to
// the version each ran before (the stage deploy's from_version), with a rollback deploy of the
// stage's app on the stage's selector restricted to those nodes. Nodes that ran different
// versions before get one rollback deploy per version, one after another. A node that ran no
// version of the app before cannot be sent back by a rollback (there is nothing to go back to): it
// is left as it is, and the stage's reason says so. The first rollback that does not succeed
// stops the rolling back (what comes before it in the plan stays as it is: going back further on
// top of a stage that could not be taken back could break it more), and the plan ends `failed`;
// otherwise `rolled_back` (`failed` also when the failing stage's own deploy could not go back).
//
// Like the deploy engine it does no I/O: deploys start through a PlanDriver, which answers with
// on_started; the end of every deploy comes through on_deploy_finished (the server forwards
// deploy.finished events). Finished plans leave memory (the store keeps them).
// Thread-safety: none (the server's I/O thread).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "engine/deploy.h"
#include "engine/plan.h"

namespace slipway::engine {

// A rollback deploy of one stage: `app` in `env` back to `to`, on exactly `nodes` (among those
// the stage's `selector` matches).
struct StageRollback {
  std::string app;
  std::string env;
  std::string to;
  std::string selector;
  std::string batch;  // the stage deploy's batch size
  std::vector<std::string> nodes;
};

// What the PlanManager needs from the server. No call may call back into the manager from inside
// itself (queue the work and return): the manager is in the middle of a change.
class PlanDriver {
 public:
  virtual ~PlanDriver() = default;
  // Starts the stage's deploy (its `request`); answer with PlanManager::on_started.
  virtual void start_stage(PlanId plan, const PlanStage& stage, const std::string& actor) = 0;
  // Starts a rollback deploy; answer with PlanManager::on_started.
  virtual void start_rollback(PlanId plan, const StageRollback& r, const std::string& actor) = 0;
  // Aborts a running deploy, rolling back what it changed; its end comes as on_deploy_finished.
  virtual void abort_deploy(DeployId id, const std::string& actor) = 0;
  // Persists the plan (insert or update); must not block.
  virtual void save_plan(const DeployPlan& p) = 0;
};

struct PlanRequest {
  std::string env;
  std::string actor;
  json::object spec;  // as given, for the record
  // name, app, version, selector, wait_ms, approve and request of each stage.
  std::vector<PlanStage> stages;
};

class PlanManager {
 public:
  PlanManager(const Clock& clock, PlanDriver& driver);
  ~PlanManager();
  PlanManager(const PlanManager&) = delete;
  PlanManager& operator=(const PlanManager&) = delete;

  // The first id to hand out (one more than the highest in the store).
  void set_next_id(PlanId id) { next_id_ = id; }

  // Starts a plan: its first stage at once. invalid_argument without stages.
  Result<PlanId> start(PlanRequest req);
  // The driver's answer to start_stage or start_rollback: the deploy's id, or why it could not
  // start. A deploy that ended while it was starting is reported with on_deploy_finished after
  // this.
  void on_started(PlanId plan, const Result<DeployId>& deploy);
  // A deploy ended (any deploy: those of no plan are ignored).
  void on_deploy_finished(const Deploy& d);
  // Lets a plan waiting after a stage go on (an approval, or a wait cut short).
  // failed_precondition when it is not waiting, not_found when no such plan runs.
  Status promote(PlanId id, const std::string& actor);
  // Stops a plan: its running stage is aborted (and rolls back), then every stage done is rolled
  // back. failed_precondition when it is over or rolling back already.
  Status abort(PlanId id, const std::string& actor);
  // Ends the waits that are over; call it about once a second.
  void tick();

  const DeployPlan* find(PlanId id) const;
  std::vector<const DeployPlan*> running() const;

 private:
  struct RollbackStep {
    size_t stage = 0;
    StageRollback rollback;
    bool last_of_stage = true;
  };
  struct Live {
    DeployPlan p;
    bool starting = false;  // a start_stage or start_rollback awaits its answer
    bool stopping = false;  // aborted while a stage runs or starts
    bool clean = true;      // false once something could not be taken back
    std::deque<RollbackStep> queue;
    std::optional<RollbackStep> rolling;  // the rollback in flight
    // Per stage that succeeded: how to take it back, and the nodes that cannot be.
    std::vector<std::vector<RollbackStep>> undo;
    std::vector<std::string> cannot_undo;
  };

  Live* live(PlanId id);
  void record(Live& l, const std::string& actor, std::string action, std::string detail);
  void save(Live& l);
  void begin_stage(Live& l, size_t index);
  void after_stage(Live& l);
  void stage_done(Live& l, const Deploy& d);
  void fail(Live& l, const std::string& reason);
  void next_rollback(Live& l);
  void rollback_done(Live& l, const Deploy& d);
  void finish(Live& l, PlanState state);
  static std::vector<RollbackStep> rollbacks_of(size_t index, const Deploy& d, std::string& note);

  const Clock& clock_;
  PlanDriver& driver_;
  PlanId next_id_ = 1;
  std::map<PlanId, std::unique_ptr<Live>> plans_;
  std::map<DeployId, PlanId> owners_;  // deploys (stages and rollbacks) of running plans
};

}  // namespace slipway::engine
