#include "engine/plan.h"

#include <array>
#include <charconv>

#include <fmt/format.h>

#include "common/strings.h"
#include "engine/record_util.h"

namespace slipway::engine {

using detail::from_name;
using detail::time_field;

namespace {
constexpr std::array<std::string_view, 6> kPlanStates{"running",   "waiting", "rolling_back",
                                                      "succeeded", "failed",  "rolled_back"};
constexpr std::array<std::string_view, 8> kStageStates{
    "pending", "running",      "succeeded",   "failed",
    "skipped", "rolling_back", "rolled_back", "rollback_failed"};

json::value time_or_null(TimeMs t) {
  return t ? json::value(format_time(t)) : json::value(nullptr);
}

json::array ids_json(const std::vector<DeployId>& ids) {
  json::array out;
  for (const auto id : ids)
    out.emplace_back(id);
  return out;
}

std::vector<DeployId> ids_from(const json::array* a) {
  std::vector<DeployId> out;
  if (!a) return out;
  for (const auto& v : *a) {
    if (v.is_int64()) out.push_back(v.get_int64());
  }
  return out;
}
}  // namespace

std::string_view plan_state_name(PlanState s) {
  return kPlanStates.at(static_cast<size_t>(s));
}
std::optional<PlanState> plan_state_from_name(std::string_view s) {
  return from_name<PlanState>(kPlanStates, s);
}
std::string_view stage_state_name(StageState s) {
  return kStageStates.at(static_cast<size_t>(s));
}
std::optional<StageState> stage_state_from_name(std::string_view s) {
  return from_name<StageState>(kStageStates, s);
}
bool is_terminal(PlanState s) {
  return s == PlanState::succeeded || s == PlanState::failed || s == PlanState::rolled_back;
}

Millis DeployPlan::duration(TimeMs now) const {
  return Millis((finished_at > 0 ? finished_at : now) - created_at);
}

std::string plan_ref(PlanId id) {
  return fmt::format("p{}", id);
}

Result<PlanId> parse_plan_ref(std::string_view text) {
  std::string_view digits = text;
  if (!digits.empty() && (digits.front() == 'p' || digits.front() == 'P')) digits.remove_prefix(1);
  PlanId id = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || id <= 0) {
    return err(Errc::invalid_argument,
               fmt::format("'{}' is not a plan id (p12, or 12)", excerpt(text, 32)));
  }
  return id;
}

json::value to_json(const PlanStage& s) {
  return json::object{{"name", s.name},
                      {"app", s.app},
                      {"version", s.version},
                      {"selector", s.selector},
                      {"wait_ms", s.wait_ms},
                      {"approve", s.approve},
                      {"state", stage_state_name(s.state)},
                      {"deploy", s.deploy ? json::value(s.deploy) : json::value(nullptr)},
                      {"rollbacks", ids_json(s.rollbacks)},
                      {"reason", s.reason},
                      {"started_at", time_or_null(s.started_at)},
                      {"finished_at", time_or_null(s.finished_at)},
                      {"request", s.request}};
}

json::value to_json(const DeployPlan& p) {
  json::array stages;
  for (const auto& s : p.stages)
    stages.push_back(to_json(s));
  json::array log;
  for (const auto& t : p.log)
    log.push_back(to_json(t));
  return json::object{{"id", p.id},
                      {"ref", plan_ref(p.id)},
                      {"kind", "plan"},
                      {"env", p.env},
                      {"state", plan_state_name(p.state)},
                      {"actor", p.actor},
                      {"aborted_by", p.aborted_by},
                      {"reason", p.reason},
                      {"current_stage", p.current},
                      {"stage_count", static_cast<int64_t>(p.stages.size())},
                      {"waiting", p.waiting},
                      {"gate", p.gate},
                      {"resume_at", time_or_null(p.resume_at)},
                      {"started_at", format_time(p.created_at)},
                      {"finished_at", time_or_null(p.finished_at)},
                      {"duration_ms", p.duration(p.finished_at ? p.finished_at : now_ms()).count()},
                      {"stages", std::move(stages)},
                      {"rollbacks", ids_json(p.rollbacks)},
                      {"log", std::move(log)},
                      {"spec", p.spec}};
}

Result<PlanStage> stage_from_json(const json::value& v) {
  JsonReader r(v, "plan stage");
  PlanStage s;
  s.name = r.str("name");
  s.app = r.str_or("app", "");
  s.version = r.str_or("version", "");
  s.selector = r.str_or("selector", "");
  s.wait_ms = r.i64_or("wait_ms", 0);
  s.approve = r.boolean_or("approve", false);
  const auto state = stage_state_from_name(r.str_or("state", "pending"));
  s.deploy = r.i64_or("deploy", 0);
  s.rollbacks = ids_from(r.opt_array("rollbacks"));
  s.reason = r.str_or("reason", "");
  s.started_at = time_field(r, "started_at");
  s.finished_at = time_field(r, "finished_at");
  if (const auto* req = r.opt_object("request")) s.request = *req;
  if (auto st = r.finish(true); !st) return st.error();
  if (!state) return err(Errc::invalid_argument, "plan stage: unknown state");
  s.state = *state;
  return s;
}

Result<DeployPlan> plan_from_json(const json::value& v) {
  JsonReader r(v, "plan");
  DeployPlan p;
  p.id = r.i64("id");
  p.env = r.str("env");
  const auto state = plan_state_from_name(r.str("state"));
  p.actor = r.str_or("actor", "");
  p.aborted_by = r.str_or("aborted_by", "");
  p.reason = r.str_or("reason", "");
  p.current = static_cast<int>(r.i64_or("current_stage", 0));
  p.waiting = r.str_or("waiting", "");
  p.gate = r.str_or("gate", "");
  p.resume_at = time_field(r, "resume_at");
  p.created_at = time_field(r, "started_at");
  p.finished_at = time_field(r, "finished_at");
  p.rollbacks = ids_from(r.opt_array("rollbacks"));
  if (const auto* spec = r.opt_object("spec")) p.spec = *spec;
  const auto* stages = r.opt_array("stages");
  const auto* log = r.opt_array("log");
  if (auto st = r.finish(true); !st) return st.error();
  if (!state) return err(Errc::invalid_argument, "plan: unknown state");
  p.state = *state;
  if (stages) {
    for (const auto& sv : *stages) {
      auto s = stage_from_json(sv);
      if (!s) return s.error();
      p.stages.push_back(std::move(*s));
    }
  }
  if (log) {
    for (const auto& tv : *log) {
      auto t = transition_from_json(tv);
      if (!t) return t.error();
      p.log.push_back(std::move(*t));
    }
  }
  return p;
}

}  // namespace slipway::engine
