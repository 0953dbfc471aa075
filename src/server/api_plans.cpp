// Deploy plan routes (slipway deploy -f deploy.yaml): start a plan of ordered stages, list and show
// plans, promote one waiting for approval, abort one; and the PlanDriver through which the
// PlanManager starts each stage's deploy and each rollback as any deploy starts (launch_deploy).
#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "artifacts/version.h"
#include "common/names.h"
#include "server/context.h"
#include "server/deploys.h"
#include "server/targets.h"

namespace slipway::server {

namespace {

constexpr size_t kMaxStages = 20;

class PlanDriverImpl final : public engine::PlanDriver {
 public:
  explicit PlanDriverImpl(ServerContext& ctx) : ctx_(ctx) {}

  void start_stage(engine::PlanId plan, const engine::PlanStage& stage,
                   const std::string& actor) override {
    launch(plan,
           parse_deploy_params(stage.request, engine::DeployKind::deploy, "stage " + stage.name),
           actor);
  }

  void start_rollback(engine::PlanId plan, const engine::StageRollback& r,
                      const std::string& actor) override {
    DeployParams p;
    p.kind = engine::DeployKind::rollback;
    p.app = r.app;
    p.version = r.to;
    p.env = r.env;
    p.only_nodes = r.nodes;
    if (auto b = engine::BatchSize::parse(r.batch)) p.batch = *b;
    if (!r.selector.empty()) {
      auto sel = inventory::Selector::parse(r.selector);
      if (!sel) {
        launch(plan, sel.error(), actor);
        return;
      }
      p.extra = std::move(*sel);
    }
    launch(plan, std::move(p), actor);
  }

  void abort_deploy(engine::DeployId id, const std::string& actor) override {
    asio::post(ctx_.ioc, [this, id, actor] {
      if (auto st = ctx_.engine->abort(id, actor, true); !st) {
        spdlog::info("plan: abort of deploy #{}: {}", id, st.error().message);
      }
    });
  }

  void save_plan(const engine::DeployPlan& p) override {
    ctx_.db->post([p](store::Store& s) {
      if (auto st = s.save_plan(p); !st) {
        spdlog::error("cannot record plan {}: {}", engine::plan_ref(p.id), st.error().message);
      }
    });
  }

 private:
  void launch(engine::PlanId plan, Result<DeployParams> params, const std::string& actor) {
    asio::co_spawn(ctx_.ioc, run(plan, std::move(params), actor), asio::detached);
  }

  asio::awaitable<void> run(engine::PlanId plan, Result<DeployParams> params, std::string actor) {
    // Never inside the manager's own call.
    co_await asio::post(ctx_.ioc.get_executor(), asio::use_awaitable);
    if (!params) {
      ctx_.plans->on_started(plan, params.error());
      co_return;
    }
    auto started = co_await launch_deploy(ctx_, std::move(*params), std::move(actor));
    if (!started) {
      ctx_.plans->on_started(plan, started.error());
      co_return;
    }
    const engine::DeployId id = started->id;
    ctx_.plans->on_started(plan, id);
    // A deploy can end inside Engine::start (every node failed at once): its deploy.finished came
    // before the plan knew the id, so it is handed over now.
    if (const auto* d = ctx_.engine->find(id); d && engine::is_terminal(d->state)) {
      ctx_.plans->on_deploy_finished(*d);
    }
  }

  ServerContext& ctx_;
};

// A plan request, checked: the stages with their deploy requests (app, version and env filled
// in from the plan's defaults) and what was parsed of each.
struct ParsedPlan {
  std::string env;
  bool force = false;
  json::object spec;
  std::vector<engine::PlanStage> stages;
  std::vector<DeployParams> params;
};

Error stage_error(const std::string& context, const std::string& what) {
  return err(Errc::invalid_argument, fmt::format("{}: {}", context, what));
}

// One stage: its own keys (name, wait, approve) and a deploy request of the rest.
Result<engine::PlanStage> parse_stage(const json::value& v, size_t index, const ParsedPlan& plan,
                                      const std::optional<std::string>& app,
                                      const std::optional<std::string>& version,
                                      DeployParams& params) {
  std::string context = fmt::format("stage {}", index + 1);
  if (!v.is_object()) return stage_error(context, "must be an object (name:, role:, ...)");
  json::object request = v.as_object();
  engine::PlanStage s;
  const auto* name = request.if_contains("name");
  if (!name) return stage_error(context, "field 'name' is required");
  if (!name->is_string()) return stage_error(context, "field 'name' must be a string");
  s.name = std::string(name->get_string());
  if (auto st = validate_name(NameKind::stage, s.name); !st)
    return stage_error(context, st.error().message);
  context = fmt::format("stage {} ({})", index + 1, s.name);
  if (const auto* a = request.if_contains("approve")) {
    if (!a->is_bool()) return stage_error(context, "field 'approve' must be true or false");
    s.approve = a->get_bool();
  }
  if (const auto* w = request.if_contains("wait")) {
    const json::value field = json::object{{"wait", *w}};
    JsonReader r(field, context);
    auto d = duration_field(r, "wait");
    if (auto st = r.finish(); !st) return st.error();
    if (!d) return stage_error(context, d.error().message);
    s.wait_ms = d->count();
  }
  if (s.approve && s.wait_ms > 0) {
    return stage_error(context,
                       "give either wait (hold for a while) or approve (hold until `slipway "
                       "promote`), not both");
  }
  if (request.contains("env")) {
    return stage_error(context, "env is given once, for the whole plan");
  }
  for (const char* key : {"name", "wait", "approve"})
    request.erase(key);
  if (!request.contains("app")) {
    if (!app) {
      return stage_error(context, "names no app: give app: for the stage or for the whole plan");
    }
    request["app"] = *app;
  }
  if (!request.contains("version") && version) request["version"] = *version;
  request["env"] = plan.env;
  if (plan.force && !request.contains("force")) request["force"] = true;
  auto p = parse_deploy_params(request, engine::DeployKind::deploy, context);
  if (!p) return p.error();
  s.app = p->app;
  s.version = p->version;
  s.selector = p->extra.to_string();
  s.request = std::move(request);
  params = std::move(*p);
  return s;
}

Result<ParsedPlan> parse_plan(const std::string& body) {
  auto v = parse_json(body, "request body");
  if (!v) return v.error();
  JsonReader r(*v, "plan");
  ParsedPlan plan;
  const auto app = r.opt_str("app");
  const auto version = r.opt_str("version");
  plan.env = r.str("env");
  plan.force = r.boolean_or("force", false);
  const json::array* stages = r.opt_array("stages");
  if (auto st = r.finish(); !st) return st.error();
  if (auto st = validate_name(NameKind::env, plan.env); !st) return st.error();
  if (app) {
    if (auto st = validate_name(NameKind::app, *app); !st) return st.error();
  }
  if (version) {
    if (auto st = validate_name(NameKind::version, *version); !st) return st.error();
  }
  if (!stages || stages->empty()) {
    return err(Errc::invalid_argument, "plan: give its stages (stages: a list of at least one)");
  }
  if (stages->size() > kMaxStages) {
    return err(Errc::invalid_argument,
               fmt::format("plan: at most {} stages ({} given)", kMaxStages, stages->size()));
  }
  plan.spec = v->as_object();
  std::set<std::string> names;
  for (size_t i = 0; i < stages->size(); ++i) {
    DeployParams params;
    auto s = parse_stage((*stages)[i], i, plan, app, version, params);
    if (!s) return s.error();
    if (!names.insert(s->name).second) {
      return err(Errc::invalid_argument,
                 fmt::format("stage {}: the name {} is taken by an earlier stage", i + 1, s->name));
    }
    plan.stages.push_back(std::move(*s));
    plan.params.push_back(std::move(params));
  }
  const auto& last = plan.stages.back();
  if (last.gate() != engine::StageGate::none) {
    return err(Errc::invalid_argument,
               fmt::format("stage {} ({}) is the last one: wait and approve hold the plan before "
                           "the next stage, and none follows",
                           plan.stages.size(), last.name));
  }
  return plan;
}

// app -> its versions in version order (empty when none were pushed).
using AppVersions = std::map<std::string, std::vector<std::string>>;

Result<AppVersions> load_versions(store::Store& s, const std::set<std::string>& apps) {
  AppVersions out;
  for (const auto& app : apps) {
    auto list = s.list_artifacts(app);
    if (!list) return list.error();
    auto& versions = out[app];
    for (const auto& a : *list)
      versions.push_back(a.version);
    artifacts::sort_versions(versions);
  }
  return out;
}

// Fixes the version of every stage now (the newest when none is given), so that a version
// pushed while the plan runs does not change what its later stages deploy.
Status resolve_versions(ParsedPlan& plan, const AppVersions& known) {
  for (size_t i = 0; i < plan.stages.size(); ++i) {
    auto& s = plan.stages[i];
    const auto& versions = known.at(s.app);
    const std::string where = fmt::format("stage {} ({})", i + 1, s.name);
    if (versions.empty()) {
      return err(Errc::not_found,
                 fmt::format("{}: no versions of {} have been pushed", where, s.app));
    }
    if (s.version.empty()) {
      s.version = versions.back();
      s.request["version"] = s.version;
    } else if (std::find(versions.begin(), versions.end(), s.version) == versions.end()) {
      return err(Errc::not_found,
                 fmt::format("{}: {} {} is not in the repository", where, s.app, s.version));
    }
  }
  return {};
}

asio::awaitable<Response> start_plan(ServerContext& ctx, Request& req) {
  auto plan = parse_plan(req.body);
  if (!plan) co_return Response::error(plan.error());
  std::set<std::string> apps;
  for (const auto& s : plan->stages)
    apps.insert(s.app);
  for (const auto& app : apps) {  // every stage in the token's scope
    if (auto st = authorize(req, plan->env, app); !st) co_return Response::error(st.error());
  }
  auto job = [apps](store::Store& s) { return load_versions(s, apps); };
  auto known = co_await ctx.db_call(job);
  if (!known) co_return Response::error(known.error());
  if (auto st = resolve_versions(*plan, *known); !st) co_return Response::error(st.error());
  // A freeze that applies now refuses the plan before anything changes (each stage checks again
  // when it starts).
  for (const auto& app : apps) {
    auto gate = co_await freeze_gate(ctx, app, plan->env, plan->force);
    if (!gate) co_return Response::error(gate.error());
  }
  engine::PlanRequest pr;
  pr.env = plan->env;
  pr.actor = req.actor;
  pr.spec = std::move(plan->spec);
  pr.stages = std::move(plan->stages);
  auto id = ctx.plans->start(std::move(pr));
  if (!id) co_return Response::error(id.error());
  const auto* p = ctx.plans->find(*id);
  spdlog::info("plan {} started by {}: {} stage(s) in {}", engine::plan_ref(*id), req.actor,
               p ? p->stages.size() : 0, plan->env);
  co_return Response::json(201, p ? engine::to_json(*p) : json::value(json::object{{"id", *id}}));
}

// The plan from memory while it runs, else from the database; nullopt when there is none.
asio::awaitable<Result<std::optional<engine::DeployPlan>>> load_plan(ServerContext& ctx,
                                                                     engine::PlanId id) {
  if (const auto* live = ctx.plans->find(id)) co_return std::optional<engine::DeployPlan>(*live);
  auto job = [id](store::Store& s) { return s.get_plan(id); };
  co_return co_await ctx.db_call(job);
}

// Whether every stage of the plan is in the principal's scope.
bool plan_in_scope(const Principal& who, const engine::DeployPlan& p) {
  return std::all_of(p.stages.begin(), p.stages.end(),
                     [&](const engine::PlanStage& s) { return in_scope(who, p.env, s.app); });
}

// The scope check of plan `p` (every stage's app in its environment).
Status authorize_plan(Request& req, const engine::DeployPlan& p) {
  for (const auto& s : p.stages) {
    if (auto st = authorize_object(req, "plan " + engine::plan_ref(p.id), p.env, s.app); !st)
      return st;
  }
  return {};
}

// A control (promote, abort) on plan `id`. Only a running plan can be acted on, and the plan
// manager holds those on this thread: the lookup, the scope check and `act` run with no
// suspension point between them, so they concern one and the same plan (ids are sequential: a
// check that found nothing must never let the action reach a plan started in the meantime). A
// plan that is not running is looked up in the database only to answer: 404 when there is none
// (for every caller), 403 outside the token's scope, failed_precondition (it is over) otherwise.
asio::awaitable<Response> control_plan(ServerContext& ctx, Request& req, engine::PlanId id,
                                       const std::function<Status()>& act, int status) {
  if (const auto* live = ctx.plans->find(id)) {
    if (auto st = authorize_plan(req, *live); !st) co_return Response::error(st.error());
    if (auto st = act(); !st) co_return Response::error(st.error());
    const auto* p = ctx.plans->find(id);
    co_return Response::json(status,
                             p ? engine::to_json(*p) : json::value(json::object{{"id", id}}));
  }
  auto job = [id](store::Store& s) { return s.get_plan(id); };
  auto p = co_await ctx.db_call(job);
  if (!p) co_return Response::error(p.error());
  if (!*p) {
    co_return Response::error(
        err(Errc::not_found, fmt::format("there is no plan {}", engine::plan_ref(id))));
  }
  if (auto st = authorize_plan(req, **p); !st) co_return Response::error(st.error());
  co_return Response::error(
      err(Errc::failed_precondition, fmt::format("plan {} is over ({}{})", engine::plan_ref(id),
                                                 engine::plan_state_name((*p)->state),
                                                 (*p)->reason.empty() ? "" : ": " + (*p)->reason)));
}

// Promote on a plan whose running stage's deploy waits after its canaries promotes that deploy.
Status promote_stage_deploy(ServerContext& ctx, engine::PlanId id, const std::string& actor) {
  const auto* p = ctx.plans->find(id);
  if (!p || p->state != engine::PlanState::running) {
    return err(Errc::failed_precondition, "not running");
  }
  const auto& s = p->stages[static_cast<size_t>(p->current)];
  const auto* d = s.deploy ? ctx.engine->find(s.deploy) : nullptr;
  if (!d || d->canary_gate.empty() || d->waiting.empty()) {
    return err(Errc::failed_precondition, "no deploy waits");
  }
  return ctx.engine->promote(s.deploy, actor);
}

}  // namespace

std::unique_ptr<engine::PlanDriver> make_plan_driver(ServerContext& ctx) {
  return std::make_unique<PlanDriverImpl>(ctx);
}

void register_plan_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;

  ctx.router.add("POST", "/api/v1/plans", Access::deployer, "plan.create",
                 [c](Request& req) { return start_plan(*c, req); });

  ctx.router.add("GET", "/api/v1/plans", Access::viewer, "plan.list",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto q = parse_env_paging(req, "plan");
                   if (!q) co_return Response::error(q.error());
                   if (auto st = authorize(req, q->env, ""); !st)
                     co_return Response::error(st.error());
                   const store::PlanFilter f{q->env, q->paging.limit, q->paging.before};
                   auto job = [f](store::Store& s) { return s.list_plans(f); };
                   auto list = co_await c->db_call(job);
                   if (!list) co_return Response::error(list.error());
                   json::array out;
                   for (const auto& p : *list) {
                     if (!plan_in_scope(req.principal, p)) continue;
                     const auto* live = c->plans->find(p.id);  // the live copy is the newer one
                     out.push_back(engine::to_json(live ? *live : p));
                   }
                   co_return Response::json(200, json::object{{"plans", std::move(out)}});
                 });

  ctx.router.add(
      "GET", "/api/v1/plans/{id}", Access::viewer, "plan.show",
      [c](Request& req) -> asio::awaitable<Response> {
        auto id = engine::parse_plan_ref(req.param("id"));
        if (!id) co_return Response::error(id.error());
        auto p = co_await load_plan(*c, *id);
        if (!p) co_return Response::error(p.error());
        if (!*p) {
          co_return Response::error(
              err(Errc::not_found, fmt::format("there is no plan {}", engine::plan_ref(*id))));
        }
        if (auto st = authorize_plan(req, **p); !st) co_return Response::error(st.error());
        co_return Response::json(200, engine::to_json(**p));
      });

  ctx.router.add("POST", "/api/v1/plans/{id}/promote", Access::deployer, "plan.promote",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto id = engine::parse_plan_ref(req.param("id"));
                   if (!id) co_return Response::error(id.error());
                   if (auto st = expect_empty_body(req, "request"); !st)
                     co_return Response::error(st.error());
                   const std::function<Status()> act = [&]() -> Status {
                     auto st = c->plans->promote(*id, req.actor);
                     if (st || promote_stage_deploy(*c, *id, req.actor)) return {};
                     return st;
                   };
                   co_return co_await control_plan(*c, req, *id, act, 200);
                 });

  ctx.router.add("POST", "/api/v1/plans/{id}/abort", Access::deployer, "plan.abort",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto id = engine::parse_plan_ref(req.param("id"));
                   if (!id) co_return Response::error(id.error());
                   if (auto st = expect_empty_body(req, "request"); !st)
                     co_return Response::error(st.error());
                   const std::function<Status()> act = [&] {
                     return c->plans->abort(*id, req.actor);
                   };
                   co_return co_await control_plan(*c, req, *id, act, 202);
                 });
}

}  // namespace slipway::server
