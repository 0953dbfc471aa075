// What a deploy plan is (`slipway deploy -f deploy.yaml`): stages run in order, each a deploy of
// its own (an app, a version, a selector, a strategy), optionally held after it for a while
// (`wait`) or until someone approves (`approve`, `slipway promote pN`). A stage that does not
// succeed stops the plan, and the stages already done are rolled back, the last one first. The
// records the PlanManager keeps, stores and shows.
//
// (Not to be confused with engine::Plan of strategy.h, the waves of one deploy.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/json.h"
#include "engine/deploy.h"

namespace slipway::engine {

using PlanId = int64_t;

// running: a stage is being deployed; waiting: held after a stage (a wait or an approval);
// rolling_back: a stage failed (or the plan was aborted) and the stages done are being rolled
// back; then rolled_back, or failed when a rollback failed (or the server stopped meanwhile).
enum class PlanState { running, waiting, rolling_back, succeeded, failed, rolled_back };

// Per stage:
//   pending -> running -> succeeded | failed
//   pending -> skipped                          (the plan stopped before it)
//   succeeded -> rolling_back -> rolled_back | rollback_failed
enum class StageState {
  pending,
  running,
  succeeded,
  failed,
  skipped,
  rolling_back,
  rolled_back,
  rollback_failed
};

std::string_view plan_state_name(PlanState s);
std::optional<PlanState> plan_state_from_name(std::string_view s);
std::string_view stage_state_name(StageState s);
std::optional<StageState> stage_state_from_name(std::string_view s);
bool is_terminal(PlanState s);

// What holds a plan after a stage.
enum class StageGate { none, wait, approve };

struct PlanStage {
  std::string name;
  std::string app;
  std::string version;   // resolved when the plan was created
  std::string selector;  // the stage's terms beyond env, canonical text ("" = the whole env)
  int64_t wait_ms = 0;   // after it succeeded: hold this long before the next stage
  bool approve = false;  // after it succeeded: hold until `slipway promote pN`
  // The body of the deploy request that starts it (POST /api/v1/deploys), as validated.
  json::object request;
  StageState state = StageState::pending;
  DeployId deploy = 0;              // its deploy, once started
  std::vector<DeployId> rollbacks;  // the rollback deploys that took it back
  std::string reason;               // why it failed, or what its rollback left as it was
  TimeMs started_at = 0;
  TimeMs finished_at = 0;

  StageGate gate() const {
    return approve ? StageGate::approve : wait_ms > 0 ? StageGate::wait : StageGate::none;
  }
};

struct DeployPlan {
  PlanId id = 0;
  std::string env;
  std::string actor;  // who started it
  std::string aborted_by;
  PlanState state = PlanState::running;
  int current = 0;       // the stage running, held after, or last reached
  std::string waiting;   // what a waiting plan waits for, in words ("" otherwise)
  std::string gate;      // "", "wait" or "approve" (while waiting)
  TimeMs resume_at = 0;  // a wait: when the next stage starts
  std::string reason;    // why it failed
  json::object spec;     // the plan as it was given (validated)
  std::vector<PlanStage> stages;
  std::vector<DeployId> rollbacks;  // every rollback deploy, in the order they ran
  std::vector<Transition> log;      // who changed its course, and when
  TimeMs created_at = 0;
  TimeMs finished_at = 0;

  Millis duration(TimeMs now) const;
};

// "p12".
std::string plan_ref(PlanId id);
// "p12" or "12" -> 12; invalid_argument otherwise (the error names the text).
Result<PlanId> parse_plan_ref(std::string_view text);

// JSON of the API: {"id", "kind": "plan", "env", "state", ...}; times as text (like deploys).
json::value to_json(const DeployPlan& p);
json::value to_json(const PlanStage& s);
Result<DeployPlan> plan_from_json(const json::value& v);
Result<PlanStage> stage_from_json(const json::value& v);

}  // namespace slipway::engine
