// Deploy routes: start a deploy or a rollback, list and show them, abort, watch live.
#include <algorithm>
#include <charconv>
#include <functional>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "artifacts/manifest.h"
#include "artifacts/version.h"
#include "common/duration.h"
#include "common/names.h"
#include "server/context.h"
#include "server/deploys.h"
#include "server/targets.h"

namespace slipway::server {

Result<Millis> duration_field(JsonReader& r, std::string_view key) {
  auto text = r.opt_str(key);
  if (!text) return Millis(0);
  auto d = parse_duration(*text);
  if (!d) {
    return err(Errc::invalid_argument, fmt::format("{}: {}", key, d.error().message));
  }
  if (d->count() <= 0 || *d > Millis(30LL * 24 * 3600 * 1000)) {
    return err(Errc::invalid_argument,
               fmt::format("{} must be longer than 0 and at most 30 days", key));
  }
  return *d;
}

namespace {

// The strategy part of a deploy or rollback request.
Status parse_strategy_params(JsonReader& r, DeployParams& p) {
  const auto strategy = r.opt_str("strategy");
  const auto canary = r.opt_str("canary");
  const bool pause = r.boolean_or("pause", false);
  auto canary_wait = duration_field(r, "canary_wait");
  const auto zones = r.str_list("zones");
  const auto max_unavailable = r.opt_str("max_unavailable");
  auto healthy = duration_field(r, "healthy_deadline");
  auto progress = duration_field(r, "progress_deadline");
  if (strategy) {
    auto s = engine::parse_strategy(*strategy);
    if (!s) return s.error();
    p.strategy = *s;
  }
  for (auto* d : {&canary_wait, &healthy, &progress}) {
    if (!*d) return d->error();
  }
  p.canary_wait = *canary_wait;
  p.healthy_deadline = *healthy;
  p.progress_deadline = *progress;
  const bool is_canary = p.strategy == engine::Strategy::canary;
  if (!is_canary && (canary || pause || p.canary_wait.count() > 0)) {
    return err(Errc::invalid_argument,
               "canary, pause and canary_wait go with the canary strategy (strategy: canary)");
  }
  if (is_canary) {
    auto c = engine::CanarySpec::parse(canary ? *canary : "1");
    if (!c) return c.error();
    p.canary = *c;
    if (pause && p.canary_wait.count() > 0) {
      return err(Errc::invalid_argument,
                 "give either pause (wait for `slipway promote`) or canary_wait, not both");
    }
    p.canary_gate = pause                       ? engine::Gate::promote
                    : p.canary_wait.count() > 0 ? engine::Gate::wait
                                                : engine::Gate::none;
  }
  if (!zones.empty() && p.strategy != engine::Strategy::zones) {
    return err(Errc::invalid_argument, "zones (an order) goes with the zones strategy");
  }
  if (zones.size() > 100) return err(Errc::invalid_argument, "at most 100 zones");
  for (const auto& z : zones) {
    if (auto st = validate_name(NameKind::zone, z); !st) return st.error();
    if (std::count(zones.begin(), zones.end(), z) > 1)
      return err(Errc::invalid_argument, fmt::format("zone {} is listed twice", z));
  }
  p.zones = zones;
  if (max_unavailable) {
    auto m = engine::BatchSize::parse(*max_unavailable);
    if (!m) {
      return err(Errc::invalid_argument,
                 fmt::format("max_unavailable '{}' is not valid: give a number of nodes (1) or a "
                             "percentage of them (25%)",
                             max_unavailable->substr(0, 32)));
    }
    p.max_unavailable = *m;
  }
  if (p.healthy_deadline.count() > 0 && p.progress_deadline.count() > 0 &&
      p.progress_deadline < p.healthy_deadline) {
    return err(Errc::invalid_argument,
               "the progress deadline must be at least as long as the healthy deadline");
  }
  return {};
}

}  // namespace

Result<DeployParams> parse_deploy_params(const json::value& body, engine::DeployKind kind,
                                         const std::string& context) {
  JsonReader r(body, context);
  DeployParams p;
  p.kind = kind;
  p.app = r.str("app");
  p.version = r.str_or(kind == engine::DeployKind::deploy ? "version" : "to", "");
  p.env = r.str("env");
  const auto targeting = TargetFields::read(r);
  p.max_failures = static_cast<int>(r.i64_or("max_failures", 0));
  auto strategy_status = parse_strategy_params(r, p);
  if (kind == engine::DeployKind::deploy) p.force = r.boolean_or("force", false);
  if (auto st = r.finish(); !st) return st.error();
  if (!strategy_status) return strategy_status.error();
  if (auto st = validate_name(NameKind::app, p.app); !st) return st.error();
  if (auto st = validate_name(NameKind::env, p.env); !st) return st.error();
  if (!p.version.empty()) {
    if (auto st = validate_name(NameKind::version, p.version); !st) return st.error();
  }
  auto checked = targeting.check();
  if (!checked) return checked.error();
  p.extra = std::move(checked->extra);
  p.batch = checked->batch;
  if (p.max_failures < 0 || p.max_failures > 1'000'000) {
    return err(Errc::invalid_argument, "max_failures must be 0 or more");
  }
  return p;
}

namespace {

engine::ArtifactRef ref_of(const store::ArtifactRecord& a) {
  return engine::ArtifactRef{a.version, a.sha256, a.size};
}

// Everything a deploy needs from the database, read in one go on the database thread.
struct DeployInputs {
  std::optional<store::ArtifactRecord> artifact;
  std::vector<std::string> known_versions;
  std::map<std::string, engine::ArtifactRef> all;  // every version of the app
  std::map<std::string, std::string> manifests;    // version -> manifest (JSON text)
  std::string env_lb;                              // the environment's load balancer (stored)
  std::optional<engine::Deploy> last;              // the newest deploy of app/env
  std::string rollback_to;                         // previous successful release
  std::string current;                             // newest successful release
  ResolvedConfig config;                           // the (env, app) config now (secrets in clear)
};

Result<DeployInputs> load_inputs(store::Store& s, const SecretKey& key, const DeployParams& p) {
  DeployInputs in;
  // Deploys and rollbacks alike send the config as it is now (a rollback takes the release back,
  // not the config: `slipway config` changes are undone with `slipway config`).
  auto config = resolve_config(s, key, p.env, p.app);
  if (!config) return config.error();
  in.config = std::move(*config);
  auto lb = s.get_meta("lb/" + p.env);
  if (!lb) return lb.error();
  in.env_lb = lb->value_or("");
  auto list = s.list_artifacts(p.app);
  if (!list) return list.error();
  for (const auto& a : *list) {
    in.all[a.version] = ref_of(a);
    in.manifests[a.version] = a.manifest_json;
    in.known_versions.push_back(a.version);
  }
  artifacts::sort_versions(in.known_versions);
  store::DeployFilter f;
  f.app = p.app;
  f.env = p.env;
  f.limit = 1;
  f.with_nodes = false;  // only versions and the batch size matter here
  auto last = s.list_deploys(f);
  if (!last) return last.error();
  if (!last->empty()) in.last = last->front();
  f.state = engine::DeployState::succeeded;
  f.limit = 200;
  auto ok = s.list_deploys(f);
  if (!ok) return ok.error();
  if (!ok->empty()) {
    in.current = ok->front().version;
    for (const auto& d : *ok) {
      if (d.version != in.current) {
        in.rollback_to = d.version;
        break;
      }
    }
  }
  return in;
}

// The drain and undrain commands of the release's manifest, with the nodes they run on.
// The manifest's own win; the environment's apply where it names none.
Status lb_hooks(ServerContext& ctx, const std::string& manifest_json,
                const std::string& env_lb_text, const std::string& env, engine::DeployRequest& dr) {
  artifacts::Manifest manifest;
  auto* m = &manifest;
  if (!manifest_json.empty()) {
    auto v = parse_json(manifest_json, "stored manifest");
    if (!v) return v.error();
    auto parsed = artifacts::manifest_from_json(*v);
    if (!parsed) return parsed.error();
    manifest = std::move(*parsed);
  }
  auto lb = server::env_lb(env_lb_text);
  if (!lb) return lb.error();
  if (!m->drain) m->drain = lb->drain;
  if (!m->undrain) m->undrain = lb->undrain;
  for (auto [name, from, to] : {std::tuple{"drain", &m->drain, &dr.drain},
                                std::tuple{"undrain", &m->undrain, &dr.undrain}}) {
    if (!*from) continue;
    engine::LbHook h{(*from)->command, (*from)->on, {}, (*from)->timeout};
    if (!h.on.empty()) {
      auto sel = inventory::Selector::parse(h.on);
      if (!sel) {
        return err(Errc::invalid_argument,
                   fmt::format("{}.on of the manifest: {}", name, sel.error().message));
      }
      sel->add(inventory::eq_term("env", env));
      for (const auto* n : ctx.inventory.select(*sel, false))
        h.on_nodes.push_back(n->name);
      if (h.on_nodes.empty()) {
        return err(Errc::failed_precondition,
                   fmt::format("the manifest's {} runs on '{}', which matches no alive node in {}",
                               name, h.on, env));
      }
    }
    *to = std::move(h);
  }
  if (dr.drain || dr.undrain) {
    for (const auto* n : ctx.inventory.all()) {
      if (n->env == env) dr.addresses[n->name] = n->address;
    }
  }
  return {};
}

}  // namespace

namespace {

// A deploy made ready for the engine: its request and targets, and the matching nodes left out.
struct PreparedDeploy {
  engine::DeployRequest dr;
  std::vector<engine::Target> targets;
  std::vector<std::string> lost;
  std::vector<std::string> quarantined;
};

// Everything launch_deploy does before the engine starts the deploy, but the freeze check:
// picks the version, the targets and the load-balancer hooks.
asio::awaitable<Result<PreparedDeploy>> prepare_deploy(ServerContext& ctx, const DeployParams& p,
                                                       std::string actor,
                                                       std::string forced_freeze) {
  using R = Result<PreparedDeploy>;
  const engine::DeployKind kind = p.kind;
  auto job0 = [params = p, key = &*ctx.secret_key](store::Store& s) {
    return load_inputs(s, *key, params);
  };
  auto in = co_await ctx.db_call(job0);
  if (!in) co_return R(in.error());

  // Which version.
  std::string version = p.version;
  if (in->all.empty()) {
    co_return R(err(Errc::not_found, fmt::format("no versions of {} have been pushed", p.app)));
  }
  if (version.empty()) {
    if (kind == engine::DeployKind::deploy) {
      version = in->known_versions.back();
    } else if (in->rollback_to.empty()) {
      co_return R(err(
          Errc::failed_precondition,
          fmt::format("there is no earlier successful release of {} in {} to roll back to{}; give "
                      "one with --to VERSION",
                      p.app, p.env,
                      in->current.empty() ? "" : " (the current one is " + in->current + ")")));
    } else {
      version = in->rollback_to;
    }
  }
  auto art = in->all.find(version);
  if (art == in->all.end()) {
    co_return R(
        err(Errc::not_found,
            fmt::format("{} {} is not in the repository (known versions: {})", p.app, version,
                        node_list(std::vector<std::string>(in->known_versions.rbegin(),
                                                           in->known_versions.rend()),
                                  6))));
  }

  // Which nodes.
  inventory::Selector sel = p.extra;
  sel.add(inventory::eq_term("env", p.env));
  std::vector<engine::Target> targets;
  std::vector<std::string> lost;
  std::vector<std::string> quarantined;
  size_t in_env = 0;
  for (const auto* n : ctx.inventory.select(sel, true)) {
    if (!p.only_nodes.empty() &&
        std::find(p.only_nodes.begin(), p.only_nodes.end(), n->name) == p.only_nodes.end()) {
      continue;
    }
    const auto app = n->apps.find(p.app);
    const std::string current = app == n->apps.end() ? "" : app->second.version;
    if (kind == engine::DeployKind::rollback && app == n->apps.end()) continue;
    if (n->state != inventory::NodeState::alive) {
      lost.push_back(n->name);
      continue;
    }
    if (n->quarantined()) {
      quarantined.push_back(n->name);
      continue;
    }
    engine::Target t{n->name, n->zone, current};
    t.in_service = app != n->apps.end() && app->second.healthy;
    if (p.strategy == engine::Strategy::canary && p.canary.by_tag) {
      auto tag = n->tags.find(p.canary.key);
      t.canary = tag != n->tags.end() && tag->second == p.canary.value;
    }
    targets.push_back(std::move(t));
  }
  for (const auto* n : ctx.inventory.all())
    in_env += n->env == p.env ? 1 : 0;
  if (targets.empty()) {
    std::string why = fmt::format("no alive node matches env={}{}{}", p.env,
                                  p.extra.empty() ? "" : " ", p.extra.to_string());
    if (kind == engine::DeployKind::rollback) why += fmt::format(" and runs {}", p.app);
    why += fmt::format(" ({} node(s) known in {}", in_env, p.env);
    if (!lost.empty()) why += fmt::format(", matching but lost: {}", node_list(lost));
    if (!quarantined.empty()) {
      why += fmt::format(", matching but quarantined: {}", node_list(quarantined));
    }
    why += "): nothing to deploy to";
    co_return R(err(Errc::failed_precondition, why));
  }

  if (p.strategy == engine::Strategy::canary) {
    if (p.canary.by_tag) {
      if (std::none_of(targets.begin(), targets.end(), [](const auto& t) { return t.canary; })) {
        co_return R(err(Errc::failed_precondition,
                        fmt::format("no targeted node has the tag {}: there would be no canary",
                                    p.canary.key + "=" + p.canary.value)));
      }
    } else {
      // The first nodes by name.
      std::sort(targets.begin(), targets.end(),
                [](const auto& a, const auto& b) { return a.node < b.node; });
      const int n = p.canary.count.resolve(static_cast<int>(targets.size()));
      for (int i = 0; i < n; ++i)
        targets[static_cast<size_t>(i)].canary = true;
    }
  }

  engine::DeployRequest dr;
  dr.kind = kind;
  dr.strategy = p.strategy;
  dr.canary = p.strategy == engine::Strategy::canary ? p.canary.to_string() : "";
  dr.canary_gate = p.canary_gate;
  dr.canary_wait = p.canary_wait;
  dr.zone_order = p.zones;
  dr.max_unavailable = p.max_unavailable;
  dr.healthy_deadline = p.healthy_deadline;
  dr.progress_deadline = p.progress_deadline;
  dr.app = p.app;
  dr.env = p.env;
  dr.selector = p.extra.to_string();
  dr.artifact = art->second;
  for (const auto& t : targets) {
    if (t.from_version.empty()) continue;
    if (auto it = in->all.find(t.from_version); it != in->all.end())
      dr.previous[t.from_version] = it->second;
  }
  // A rollback obeys the batch size of the deploy it undoes unless told otherwise.
  // With only max_unavailable, that limit alone paces the rollout (a sliding window).
  dr.batch = p.batch                                              ? *p.batch
             : p.max_unavailable                                  ? engine::BatchSize{100, true}
             : (kind == engine::DeployKind::rollback && in->last) ? in->last->batch
                                                                  : engine::BatchSize{};
  dr.max_failures = p.max_failures;
  dr.actor = actor;
  dr.claimed_user = p.claimed_user;
  dr.forced_freeze = forced_freeze;
  if (auto hooks = lb_hooks(ctx, in->manifests[version], in->env_lb, p.env, dr); !hooks)
    co_return R(hooks.error());
  dr.keep_releases = ctx.opts.keep_releases;
  dr.env_vars = std::move(in->config.vars);
  dr.config_version = in->config.version;
  co_return PreparedDeploy{std::move(dr), std::move(targets), std::move(lost),
                           std::move(quarantined)};
}

}  // namespace

asio::awaitable<Result<StartedDeploy>> launch_deploy(ServerContext& ctx, DeployParams p,
                                                     std::string actor) {
  // A freeze refuses deploys, never rollbacks: taking a bad change back must stay possible.
  std::string forced_freeze;
  if (p.kind == engine::DeployKind::deploy) {
    auto gate = co_await freeze_gate(ctx, p.app, p.env, p.force);
    if (!gate) co_return Result<StartedDeploy>(gate.error());
    forced_freeze = std::move(*gate);
  }
  auto prepared = co_await prepare_deploy(ctx, p, std::move(actor), std::move(forced_freeze));
  if (!prepared) co_return Result<StartedDeploy>(prepared.error());
  auto id = ctx.engine->start(std::move(prepared->dr), std::move(prepared->targets));
  if (!id) co_return Result<StartedDeploy>(id.error());
  co_return StartedDeploy{*id, std::move(prepared->lost), std::move(prepared->quarantined)};
}

namespace {

asio::awaitable<Response> start_deploy(ServerContext& ctx, Request& req, engine::DeployKind kind) {
  auto v = parse_json(req.body, "request body");
  if (!v) co_return Response::error(v.error());
  auto p = parse_deploy_params(
      *v, kind, kind == engine::DeployKind::deploy ? "deploy request" : "rollback request");
  if (!p) co_return Response::error(p.error());
  if (auto st = authorize(req, p->env, p->app); !st) co_return Response::error(st.error());
  const std::string app = p->app;
  const std::string env = p->env;
  p->claimed_user = req.claimed_user;
  auto started = co_await launch_deploy(ctx, std::move(*p), req.actor);
  if (!started) co_return Response::error(started.error());
  const engine::DeployId id = started->id;
  const auto& lost = started->lost;
  const auto& quarantined = started->quarantined;
  const engine::Deploy* d = ctx.engine->find(id);
  spdlog::info(
      "deploy #{} started by {}: {} {} to {} ({} nodes{}{})", id, req.actor, app,
      d ? d->version : "", env, d ? d->nodes.size() : 0,
      lost.empty() ? "" : fmt::format("; {} matching node(s) lost and left out", lost.size()),
      quarantined.empty() ? ""
                          : fmt::format("; quarantined and left out: {}", node_list(quarantined)));
  json::value body = d ? engine::to_json(*d, true) : json::value(json::object{{"id", id}});
  if (body.is_object()) {
    add_left_out(body.as_object(), "lost_nodes_left_out", lost);
    add_left_out(body.as_object(), "quarantined_nodes_left_out", quarantined);
  }
  co_return Response::json(201, body);
}

// What a deploy or rollback request would do, without doing it: the version, the nodes in their
// batches, the nodes left out, and why it would be refused (a freeze, no node, a deploy running)
// as "blocked" (200). A request that is wrong in itself (a field, an unknown version) is an
// error, as it would be for the real request.
asio::awaitable<Response> preview_deploy(ServerContext& ctx, Request& req,
                                         engine::DeployKind kind) {
  auto v = parse_json(req.body, "request body");
  if (!v) co_return Response::error(v.error());
  auto p = parse_deploy_params(
      *v, kind, kind == engine::DeployKind::deploy ? "deploy request" : "rollback request");
  if (!p) co_return Response::error(p.error());
  if (auto st = authorize(req, p->env, p->app); !st) co_return Response::error(st.error());
  std::string blocked;
  std::string forced_freeze;
  if (kind == engine::DeployKind::deploy) {
    auto gate = co_await freeze_gate(ctx, p->app, p->env, p->force);
    if (gate) {
      forced_freeze = std::move(*gate);
    } else {
      blocked = gate.error().message;
    }
  }
  const auto blocking = [](const Error& e) {
    return e.code == Errc::failed_precondition || e.code == Errc::conflict;
  };
  json::object out{{"kind", kind == engine::DeployKind::deploy ? "deploy" : "rollback"},
                   {"app", p->app},
                   {"env", p->env},
                   {"selector", p->extra.to_string()}};
  auto prepared = co_await prepare_deploy(ctx, *p, req.actor, forced_freeze);
  json::array nodes;
  if (!prepared) {
    if (!blocking(prepared.error())) co_return Response::error(prepared.error());
    if (blocked.empty()) blocked = prepared.error().message;
    out["version"] = p->version.empty() ? json::value(nullptr) : json::value(p->version);
    out["count"] = 0;
    out["batches"] = 0;
  } else {
    out["version"] = prepared->dr.artifact.version;
    add_left_out(out, "lost_nodes_left_out", prepared->lost);
    add_left_out(out, "quarantined_nodes_left_out", prepared->quarantined);
    auto preview = ctx.engine->preview(std::move(prepared->dr), std::move(prepared->targets));
    if (!preview && !blocking(preview.error())) co_return Response::error(preview.error());
    if (!preview) {
      if (blocked.empty()) blocked = preview.error().message;
      out["count"] = 0;
      out["batches"] = 0;
    } else {
      const engine::Deploy& d = preview->deploy;
      for (const auto& n : d.nodes) {
        json::array roles;
        if (const auto* node = ctx.inventory.find(n.node)) {
          for (const auto& r : node->roles)
            roles.emplace_back(r);
        }
        nodes.push_back(json::object{{"name", n.node},
                                     {"zone", n.zone},
                                     {"roles", std::move(roles)},
                                     {"batch", n.batch},
                                     {"canary", n.canary},
                                     {"from_version", n.from_version}});
      }
      out["count"] = d.nodes.size();
      out["batches"] = d.batches;
      out["strategy"] = d.strategy;
      out["how"] = preview->how;
      out["forced_freeze"] = d.forced_freeze;
    }
  }
  out["nodes"] = std::move(nodes);
  out["blocked"] = blocked.empty() ? json::value(nullptr) : json::value(blocked);
  co_return Response::json(200, out);
}

std::string deploy_ref(engine::DeployId id) {
  return fmt::format("deploy #{}", id);
}

// A control (pause, resume, promote, abort) on deploy `id`. Only a running deploy can be acted on,
// and the engine holds those on this thread: the lookup, the scope check and `act` run with no
// suspension point between them, so they concern one and the same deploy (ids are sequential: a
// check that found nothing must never let the action reach a deploy that an admin starts in the
// meantime). A deploy that is not running is looked up in the database only to answer: 404 when
// there is none (for every caller), 403 outside the token's scope, failed_precondition otherwise.
// `act` returns the engine's answer (a named std::function at the call site: no temporary in a
// co_await expression, see db_call); `status` is the success status.
asio::awaitable<Response> control_deploy(ServerContext& ctx, Request& req, engine::DeployId id,
                                         const std::function<Status()>& act, int status) {
  if (const auto* live = ctx.engine->find(id)) {
    if (auto st = authorize_object(req, deploy_ref(id), live->env, live->app); !st)
      co_return Response::error(st.error());
    if (auto st = act(); !st) co_return Response::error(st.error());
    const auto* d = ctx.engine->find(id);
    co_return Response::json(
        status, d ? engine::to_json(*d, false) : json::value(json::object{{"id", id}}));
  }
  auto job = [id](store::Store& s) { return s.get_deploy(id); };
  auto d = co_await ctx.db_call(job);
  if (!d) co_return Response::error(d.error());
  if (!*d) co_return Response::error(err(Errc::not_found, "there is no " + deploy_ref(id)));
  if (auto st = authorize_object(req, deploy_ref(id), (*d)->env, (*d)->app); !st)
    co_return Response::error(st.error());
  co_return Response::error(
      err(Errc::failed_precondition, fmt::format("{} is not running ({})", deploy_ref(id),
                                                 engine::deploy_state_name((*d)->state))));
}

}  // namespace

asio::awaitable<Status> authorize_deploy(ServerContext& ctx, Request& req, engine::DeployId id) {
  if (const auto* live = ctx.engine->find(id)) {
    co_return authorize_object(req, deploy_ref(id), live->env, live->app);
  }
  auto job = [id](store::Store& s) { return s.get_deploy(id); };
  auto d = co_await ctx.db_call(job);
  if (!d) co_return d.error();
  if (!*d) co_return err(Errc::not_found, "there is no " + deploy_ref(id));
  co_return authorize_object(req, deploy_ref(id), (*d)->env, (*d)->app);
}

void register_deploy_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;

  ctx.router.add("POST", "/api/v1/deploys", Access::deployer, "deploy.create",
                 [c](Request& req) { return start_deploy(*c, req, engine::DeployKind::deploy); });
  ctx.router.add("POST", "/api/v1/rollbacks", Access::deployer, "rollback.create",
                 [c](Request& req) { return start_deploy(*c, req, engine::DeployKind::rollback); });

  // A preview changes nothing, but it is a deployer's question (it names the nodes a deploy
  // would take out of service), asked with the request itself.
  ctx.router.add("POST", "/api/v1/deploys/preview", Access::deployer, "deploy.preview",
                 [c](Request& req) { return preview_deploy(*c, req, engine::DeployKind::deploy); });
  ctx.router.add(
      "POST", "/api/v1/rollbacks/preview", Access::deployer, "rollback.preview",
      [c](Request& req) { return preview_deploy(*c, req, engine::DeployKind::rollback); });

  ctx.router.add("GET", "/api/v1/deploys", Access::viewer, "deploy.list",
                 [c](Request& req) -> asio::awaitable<Response> {
                   store::DeployFilter f;
                   f.app = req.query_or("app");
                   f.env = req.query_or("env");
                   if (!f.app.empty()) {
                     if (auto st = validate_name(NameKind::app, f.app); !st)
                       co_return Response::error(st.error());
                   }
                   if (!f.env.empty()) {
                     if (auto st = validate_name(NameKind::env, f.env); !st)
                       co_return Response::error(st.error());
                   }
                   f.node = req.query_or("node");
                   if (!f.node.empty()) {
                     if (auto st = validate_name(NameKind::node, f.node); !st)
                       co_return Response::error(st.error());
                   }
                   if (auto s = req.query_or("state"); !s.empty()) {
                     f.state = engine::deploy_state_from_name(s);
                     if (!f.state)
                       co_return Response::error(
                           err(Errc::invalid_argument, "unknown state " + s.substr(0, 32)));
                   }
                   if (!f.app.empty() || !f.env.empty()) {
                     if (auto st = authorize(req, f.env, f.app); !st)
                       co_return Response::error(st.error());
                   }
                   auto paging = parse_paging(req, "deploy");
                   if (!paging) co_return Response::error(paging.error());
                   f.limit = paging->limit;
                   f.before_id = paging->before;
                   auto job1 = [f](store::Store& s) { return s.list_deploys(f); };
                   auto list = co_await c->db_call(job1);
                   if (!list) co_return Response::error(list.error());
                   json::array out;
                   for (auto& d : *list) {
                     if (!in_scope(req.principal, d.env, d.app)) continue;
                     // The engine's copy is the live one.
                     if (const auto* live = c->engine->find(d.id)) {
                       out.push_back(engine::to_json(*live, false));
                     } else {
                       out.push_back(engine::to_json(d, false));
                     }
                   }
                   co_return Response::json(200, json::object{{"deploys", std::move(out)}});
                 });

  ctx.router.add(
      "GET", "/api/v1/deploys/{id}", Access::viewer, "deploy.show",
      [c](Request& req) -> asio::awaitable<Response> {
        auto id = parse_id(req.param("id"), "deploy");
        if (!id) co_return Response::error(id.error());
        json::value body;
        engine::Deploy head;  // what the config diff needs
        // The scope check goes with the copy it was made on (live, or stored).
        if (const auto* live = c->engine->find(*id)) {
          if (auto st = authorize_object(req, deploy_ref(*id), live->env, live->app); !st)
            co_return Response::error(st.error());
          body = engine::to_json(*live, true);
          head.id = live->id;
          head.app = live->app;
          head.env = live->env;
          head.config_version = live->config_version;
        } else {
          auto job2 = [id = *id](store::Store& s) { return s.get_deploy(id); };
          auto d = co_await c->db_call(job2);
          if (!d) co_return Response::error(d.error());
          if (!*d)
            co_return Response::error(err(Errc::not_found, "there is no " + deploy_ref(*id)));
          if (auto st = authorize_object(req, deploy_ref(*id), (*d)->env, (*d)->app); !st)
            co_return Response::error(st.error());
          body = engine::to_json(**d, true);
          head = std::move(**d);
        }
        // What changed in config since the previous deploy of the app there (names).
        auto job4 = [head](store::Store& s) { return deploy_config_diff(s, head); };
        auto diff = co_await c->db_call(job4);
        if (!diff) co_return Response::error(diff.error());
        body.as_object()["config_changes"] = std::move(*diff);
        if (req.query_or("steps") == "1" || req.query_or("steps") == "true") {
          auto job3 = [id = *id](store::Store& s) { return s.list_steps(id); };
          auto steps = co_await c->db_call(job3);
          if (!steps) co_return Response::error(steps.error());
          json::array arr;
          for (const auto& s : *steps)
            arr.push_back(engine::to_json(s));
          body.as_object()["steps"] = std::move(arr);
        }
        co_return Response::json(200, body);
      });

  ctx.router.add("POST", "/api/v1/deploys/{id}/abort", Access::deployer, "deploy.abort",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto id = parse_id(req.param("id"), "deploy");
                   if (!id) co_return Response::error(id.error());
                   bool rollback = true;
                   if (!req.body.empty()) {
                     auto v = parse_json(req.body, "request body");
                     if (!v) co_return Response::error(v.error());
                     JsonReader r(*v, "abort request");
                     rollback = r.boolean_or("rollback", true);
                     if (auto st = r.finish(); !st) co_return Response::error(st.error());
                   }
                   const std::function<Status()> act = [&] {
                     return c->engine->abort(*id, req.actor, rollback);
                   };
                   co_return co_await control_deploy(*c, req, *id, act, 202);
                 });

  // pause, resume, promote: the same shape.
  using Control = Status (engine::Engine::*)(engine::DeployId, const std::string&);
  for (const auto& control :
       {std::pair<const char*, Control>{"pause", &engine::Engine::pause},
        std::pair<const char*, Control>{"resume", &engine::Engine::resume},
        std::pair<const char*, Control>{"promote", &engine::Engine::promote}}) {
    const Control fn = control.second;
    ctx.router.add("POST", fmt::format("/api/v1/deploys/{{id}}/{}", control.first),
                   Access::deployer, fmt::format("deploy.{}", control.first),
                   [c, fn](Request& req) -> asio::awaitable<Response> {
                     auto id = parse_id(req.param("id"), "deploy");
                     if (!id) co_return Response::error(id.error());
                     if (auto st = expect_empty_body(req, "request"); !st)
                       co_return Response::error(st.error());
                     const std::function<Status()> act = [&] {
                       return ((*c->engine).*fn)(*id, req.actor);
                     };
                     co_return co_await control_deploy(*c, req, *id, act, 200);
                   });
  }

  ctx.router.add(
      "GET", "/api/v1/deploys/{id}/watch", Access::viewer, "deploy.watch",
      // Called before the upgrade: the scope check (the listener serves the watch itself). It
      // answers 404 for an id with no deploy, so the deploy the watch then serves is the one
      // checked (ids are never reused, a deploy's env and app never change).
      [c](Request& req) -> asio::awaitable<Response> {
        auto id = parse_id(req.param("id"), "deploy");
        if (!id) co_return Response::error(id.error());
        if (auto st = co_await authorize_deploy(*c, req, *id); !st)
          co_return Response::error(st.error());
        co_return Response{};
      },
      RouteKind::websocket);

  ctx.router.add(
      "GET", "/api/v1/agent/ws", Access::agent, "agent.connect",
      [](Request&) -> asio::awaitable<Response> { co_return Response{}; }, RouteKind::websocket);
}

}  // namespace slipway::server
