#include "engine/plans.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/duration.h"

namespace slipway::engine {

namespace {

std::string names_of(const std::vector<std::string>& names, size_t max = 8) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < max; ++i)
    out += (i ? ", " : "") + names[i];
  if (names.size() > max) out += fmt::format(" and {} more", names.size() - max);
  return out;
}

std::string deploy_outcome(const Deploy& d) {
  std::string out = fmt::format("deploy #{} {}", d.id, deploy_state_name(d.state));
  if (!d.reason.empty()) out += ": " + d.reason;
  return out;
}

}  // namespace

PlanManager::PlanManager(const Clock& clock, PlanDriver& driver) : clock_(clock), driver_(driver) {}
PlanManager::~PlanManager() = default;

PlanManager::Live* PlanManager::live(PlanId id) {
  auto it = plans_.find(id);
  return it == plans_.end() ? nullptr : it->second.get();
}

const DeployPlan* PlanManager::find(PlanId id) const {
  auto it = plans_.find(id);
  return it == plans_.end() ? nullptr : &it->second->p;
}

std::vector<const DeployPlan*> PlanManager::running() const {
  std::vector<const DeployPlan*> out;
  for (const auto& [id, l] : plans_)
    out.push_back(&l->p);
  return out;
}

void PlanManager::record(Live& l, const std::string& actor, std::string action,
                         std::string detail) {
  l.p.log.push_back(Transition{clock_.now(), actor, std::move(action), std::move(detail)});
}

void PlanManager::save(Live& l) {
  driver_.save_plan(l.p);
}

Result<PlanId> PlanManager::start(PlanRequest req) {
  if (req.stages.empty()) return err(Errc::invalid_argument, "a plan needs at least one stage");
  auto l = std::make_unique<Live>();
  DeployPlan& p = l->p;
  p.id = next_id_++;
  p.env = std::move(req.env);
  p.actor = std::move(req.actor);
  p.spec = std::move(req.spec);
  p.stages = std::move(req.stages);
  for (auto& s : p.stages) {
    s.state = StageState::pending;
    s.deploy = 0;
    s.rollbacks.clear();
  }
  p.created_at = clock_.now();
  l->undo.resize(p.stages.size());
  l->cannot_undo.resize(p.stages.size());
  std::string names;
  for (const auto& s : p.stages)
    names += (names.empty() ? "" : ", ") + s.name;
  record(*l, p.actor, "started", fmt::format("{} stage(s): {}", p.stages.size(), names));
  const PlanId id = p.id;
  Live& ref = *l;
  plans_.emplace(id, std::move(l));
  begin_stage(ref, 0);
  return id;
}

void PlanManager::begin_stage(Live& l, size_t index) {
  DeployPlan& p = l.p;
  p.current = static_cast<int>(index);
  p.state = PlanState::running;
  p.waiting.clear();
  p.gate.clear();
  p.resume_at = 0;
  PlanStage& s = p.stages[index];
  s.state = StageState::running;
  s.started_at = clock_.now();
  l.starting = true;
  save(l);
  driver_.start_stage(p.id, s, p.actor);
}

void PlanManager::on_started(PlanId plan, const Result<DeployId>& deploy) {
  Live* l = live(plan);
  if (!l || !l->starting) return;
  l->starting = false;
  DeployPlan& p = l->p;
  if (l->rolling) {
    PlanStage& s = p.stages[l->rolling->stage];
    if (!deploy) {
      s.state = StageState::rollback_failed;
      s.finished_at = clock_.now();
      s.reason = "its rollback could not start: " + deploy.error().message;
      l->clean = false;
      p.reason += fmt::format("; the rollback of stage {} could not start: {}", s.name,
                              deploy.error().message);
      l->rolling.reset();
      l->queue.clear();
      finish(*l, PlanState::failed);
      return;
    }
    s.rollbacks.push_back(*deploy);
    p.rollbacks.push_back(*deploy);
    owners_[*deploy] = plan;
    save(*l);
    return;
  }
  PlanStage& s = p.stages[static_cast<size_t>(p.current)];
  if (!deploy) {
    s.state = StageState::failed;
    s.finished_at = clock_.now();
    s.reason = "could not start: " + deploy.error().message;
    fail(*l, fmt::format("stage {} could not start: {}", s.name, deploy.error().message));
    return;
  }
  s.deploy = *deploy;
  owners_[*deploy] = plan;
  save(*l);
  if (l->stopping) driver_.abort_deploy(*deploy, p.aborted_by);
}

void PlanManager::on_deploy_finished(const Deploy& d) {
  auto owner = owners_.find(d.id);
  if (owner == owners_.end()) return;
  const PlanId plan = owner->second;
  owners_.erase(owner);
  Live* l = live(plan);
  if (!l) return;
  if (l->rolling) {
    rollback_done(*l, d);
    return;
  }
  PlanStage& s = l->p.stages[static_cast<size_t>(l->p.current)];
  if (s.deploy != d.id || s.state != StageState::running) return;
  stage_done(*l, d);
}

std::vector<PlanManager::RollbackStep> PlanManager::rollbacks_of(size_t index, const Deploy& d,
                                                                 std::string& note) {
  // The nodes the stage changed, by the version each ran before.
  std::map<std::string, std::vector<std::string>> by_version;
  std::vector<std::string> no_version;
  for (const auto& n : d.nodes) {
    if (n.status != NodeStatus::healthy || n.from_version == d.version) continue;
    if (n.from_version.empty()) {
      no_version.push_back(n.node);
    } else {
      by_version[n.from_version].push_back(n.node);
    }
  }
  std::vector<RollbackStep> out;
  for (auto& [version, nodes] : by_version) {
    RollbackStep step;
    step.stage = index;
    step.rollback =
        StageRollback{d.app, d.env, version, d.selector, d.batch.to_string(), std::move(nodes)};
    step.last_of_stage = false;
    out.push_back(std::move(step));
  }
  if (!out.empty()) out.back().last_of_stage = true;
  if (!no_version.empty()) {
    note = fmt::format("{} ran no earlier version of {}: left on {}", names_of(no_version), d.app,
                       d.version);
  }
  return out;
}

void PlanManager::stage_done(Live& l, const Deploy& d) {
  DeployPlan& p = l.p;
  const auto index = static_cast<size_t>(p.current);
  PlanStage& s = p.stages[index];
  s.finished_at = clock_.now();
  if (d.state != DeployState::succeeded) {
    s.state = StageState::failed;
    s.reason = deploy_outcome(d);
    if (d.state != DeployState::rolled_back) l.clean = false;  // its own way back failed
    fail(l, l.stopping ? fmt::format("aborted by {} during stage {}", p.aborted_by, s.name)
                       : fmt::format("stage {} failed: {}", s.name, s.reason));
    return;
  }
  s.state = StageState::succeeded;
  l.undo[index] = rollbacks_of(index, d, l.cannot_undo[index]);
  if (l.stopping) {
    fail(l, fmt::format("aborted by {} during stage {}", p.aborted_by, s.name));
    return;
  }
  after_stage(l);
}

void PlanManager::after_stage(Live& l) {
  DeployPlan& p = l.p;
  const auto index = static_cast<size_t>(p.current);
  const PlanStage& s = p.stages[index];
  if (index + 1 >= p.stages.size()) {
    finish(l, PlanState::succeeded);
    return;
  }
  const PlanStage& next = p.stages[index + 1];
  switch (s.gate()) {
    case StageGate::none:
      begin_stage(l, index + 1);
      return;
    case StageGate::approve:
      p.state = PlanState::waiting;
      p.gate = "approve";
      p.waiting =
          fmt::format("approval before stage {}: slipway promote {}", next.name, plan_ref(p.id));
      break;
    case StageGate::wait:
      p.state = PlanState::waiting;
      p.gate = "wait";
      p.resume_at = clock_.now() + s.wait_ms;
      p.waiting = fmt::format("{} before stage {} (or slipway promote {})",
                              format_duration(Millis(s.wait_ms)), next.name, plan_ref(p.id));
      break;
  }
  save(l);
}

Status PlanManager::promote(PlanId id, const std::string& actor) {
  Live* l = live(id);
  if (!l) {
    return err(Errc::failed_precondition, fmt::format("plan {} is not running", plan_ref(id)));
  }
  DeployPlan& p = l->p;
  if (p.state != PlanState::waiting) {
    return err(
        Errc::failed_precondition,
        fmt::format("plan {} is not waiting for approval (it is {}, at stage {})", plan_ref(id),
                    plan_state_name(p.state), p.stages[static_cast<size_t>(p.current)].name));
  }
  const auto next = static_cast<size_t>(p.current) + 1;
  record(*l, actor, p.gate == "approve" ? "approved" : "promoted",
         fmt::format("stage {} goes on", p.stages[next].name));
  begin_stage(*l, next);
  return {};
}

Status PlanManager::abort(PlanId id, const std::string& actor) {
  Live* l = live(id);
  if (!l) {
    return err(Errc::failed_precondition, fmt::format("plan {} is not running", plan_ref(id)));
  }
  DeployPlan& p = l->p;
  if (p.state == PlanState::rolling_back || l->stopping) {
    return err(
        Errc::failed_precondition,
        fmt::format("plan {} is stopping already (rolling back the stages done)", plan_ref(id)));
  }
  p.aborted_by = actor;
  const PlanStage& s = p.stages[static_cast<size_t>(p.current)];
  record(*l, actor, "aborted", fmt::format("at stage {}", s.name));
  if (p.state == PlanState::waiting) {
    fail(*l, fmt::format("aborted by {} while waiting after stage {}", actor, s.name));
    return {};
  }
  l->stopping = true;
  save(*l);
  // While it starts, on_started aborts it.
  if (!l->starting && s.deploy) driver_.abort_deploy(s.deploy, actor);
  return {};
}

void PlanManager::tick() {
  const TimeMs now = clock_.now();
  std::vector<PlanId> due;
  for (const auto& [id, l] : plans_) {
    if (l->p.state == PlanState::waiting && l->p.gate == "wait" && now >= l->p.resume_at)
      due.push_back(id);
  }
  for (const auto id : due) {
    Live* l = live(id);
    if (!l) continue;
    const auto next = static_cast<size_t>(l->p.current) + 1;
    record(*l, "slipway", "promoted",
           fmt::format("the wait is over: stage {} goes on", l->p.stages[next].name));
    begin_stage(*l, next);
  }
}

void PlanManager::fail(Live& l, const std::string& reason) {
  DeployPlan& p = l.p;
  p.reason = reason;
  p.waiting.clear();
  p.gate.clear();
  p.resume_at = 0;
  for (auto& s : p.stages) {
    if (s.state == StageState::pending) s.state = StageState::skipped;
  }
  record(l, "slipway", "failed", reason);
  // The stages done, the last one first.
  for (size_t i = p.stages.size(); i-- > 0;) {
    if (p.stages[i].state != StageState::succeeded) continue;
    if (!l.cannot_undo[i].empty()) p.stages[i].reason = l.cannot_undo[i];
    if (l.undo[i].empty()) {
      // Nothing it changed can be sent back (no node had an earlier version, or none changed).
      p.stages[i].state = StageState::rolled_back;
      continue;
    }
    for (auto& step : l.undo[i])
      l.queue.push_back(std::move(step));
    l.undo[i].clear();
  }
  if (l.queue.empty()) {
    finish(l, l.clean ? PlanState::rolled_back : PlanState::failed);
    return;
  }
  p.state = PlanState::rolling_back;
  next_rollback(l);
}

void PlanManager::next_rollback(Live& l) {
  DeployPlan& p = l.p;
  if (l.queue.empty()) {
    l.rolling.reset();
    finish(l, l.clean ? PlanState::rolled_back : PlanState::failed);
    return;
  }
  l.rolling = std::move(l.queue.front());
  l.queue.pop_front();
  PlanStage& s = p.stages[l.rolling->stage];
  s.state = StageState::rolling_back;
  l.starting = true;
  save(l);
  driver_.start_rollback(p.id, l.rolling->rollback, p.actor);
}

void PlanManager::rollback_done(Live& l, const Deploy& d) {
  DeployPlan& p = l.p;
  PlanStage& s = p.stages[l.rolling->stage];
  if (d.state == DeployState::succeeded) {
    if (l.rolling->last_of_stage) {
      s.state = StageState::rolled_back;
      s.finished_at = clock_.now();
    }
    next_rollback(l);
    return;
  }
  s.state = StageState::rollback_failed;
  s.finished_at = clock_.now();
  s.reason = "its rollback failed: " + deploy_outcome(d);
  l.clean = false;
  std::vector<std::string> left;
  for (const auto& step : l.queue) {
    const auto& name = p.stages[step.stage].name;
    if (std::find(left.begin(), left.end(), name) == left.end()) left.push_back(name);
  }
  p.reason += fmt::format("; the rollback of stage {} failed ({})", s.name, deploy_outcome(d));
  if (!left.empty()) {
    p.reason += fmt::format("; stage(s) {} were left as they are", names_of(left));
  }
  l.queue.clear();
  l.rolling.reset();
  finish(l, PlanState::failed);
}

void PlanManager::finish(Live& l, PlanState state) {
  DeployPlan& p = l.p;
  p.state = state;
  p.finished_at = clock_.now();
  p.waiting.clear();
  p.gate.clear();
  p.resume_at = 0;
  // The end, in short (the reason is the plan's own).
  std::vector<std::string> back;
  for (const auto& s : p.stages) {
    if (s.state == StageState::rolled_back) back.push_back(s.name);
  }
  std::string detail = p.reason;
  if (state == PlanState::succeeded) {
    detail = fmt::format("{} stage(s) succeeded", p.stages.size());
  } else if (state == PlanState::rolled_back) {
    detail = back.empty() ? "no stage done to roll back"
                          : fmt::format("rolled back: {}", names_of(back));
  }
  record(l, "slipway", std::string(plan_state_name(state)), detail);
  save(l);
  const PlanId id = p.id;
  std::erase_if(owners_, [id](const auto& o) { return o.second == id; });
  plans_.erase(id);
}

}  // namespace slipway::engine
