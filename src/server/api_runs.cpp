// Ad-hoc run routes: start a command on the nodes a selector picks, show one run, list them.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/duration.h"
#include "common/names.h"
#include "server/context.h"
#include "server/targets.h"

namespace slipway::server {

namespace {

constexpr Millis kDefaultTimeout{60'000};

struct RunParams {
  std::string env;
  inventory::Selector extra;  // beyond env
  engine::RunRequest request;
};

Result<RunParams> parse_params(const std::string& body) {
  auto v = parse_json(body, "request body");
  if (!v) return v.error();
  JsonReader r(*v, "run request");
  RunParams p;
  p.env = r.str("env");
  const auto targeting = TargetFields::read(r);
  const auto timeout = r.opt_str("timeout");
  p.request.argv = r.str_list("argv");
  if (auto st = r.finish(); !st) return st.error();
  if (auto st = validate_name(NameKind::env, p.env); !st) return st.error();
  if (auto st = protocol::validate_exec_argv(p.request.argv); !st) return st.error();
  auto checked = targeting.check();
  if (!checked) return checked.error();
  p.extra = std::move(checked->extra);
  if (checked->batch) p.request.batch = *checked->batch;
  p.request.timeout = kDefaultTimeout;
  if (timeout) {
    auto d = parse_duration(*timeout);
    if (!d) return err(Errc::invalid_argument, "timeout: " + d.error().message);
    if (d->count() < 1 || d->count() > protocol::kExecMaxTimeoutMs) {
      return err(Errc::invalid_argument, "timeout must be 1ms to 24h");
    }
    p.request.timeout = *d;
  }
  p.request.env = p.env;
  p.request.selector = p.extra.to_string();
  return p;
}

// The run from memory while it runs, else from the database; nullopt when there is none.
asio::awaitable<Result<std::optional<engine::Run>>> load_run(ServerContext& ctx, engine::RunId id) {
  if (const auto* live = ctx.runs->find(id)) {
    co_return std::optional<engine::Run>(*live);
  }
  auto job = [id](store::Store& s) { return s.get_run(id); };
  co_return co_await ctx.db_call(job);
}

asio::awaitable<Response> start_run(ServerContext& ctx, Request& req) {
  auto p = parse_params(req.body);
  if (!p) co_return Response::error(p.error());
  // A command runs on the nodes whatever apps they host: an app-scoped token may not start one.
  if (auto st = authorize(req, p->env, kAll); !st) co_return Response::error(st.error());

  inventory::Selector sel = p->extra;
  sel.add(inventory::eq_term("env", p->env));
  // Lost nodes that match are targets too: they fail at once, "not connected", so that a command
  // meant for every node of a selection never silently skips one.
  // Quarantined nodes are left out (and named in the answer).
  std::vector<engine::RunTarget> targets;
  std::vector<std::string> quarantined;
  for (const auto* n : ctx.inventory.select(sel, true)) {
    if (n->quarantined()) {
      quarantined.push_back(n->name);
    } else {
      targets.push_back(engine::RunTarget{n->name, n->zone});
    }
  }
  if (targets.empty()) {
    size_t in_env = 0;
    for (const auto* n : ctx.inventory.all())
      in_env += n->env == p->env ? 1 : 0;
    co_return Response::error(err(
        Errc::failed_precondition,
        fmt::format(
            "no node matches env={}{}{} ({} node(s) known in {}{}): nothing to run on", p->env,
            p->extra.empty() ? "" : " ", p->extra.to_string(), in_env, p->env,
            quarantined.empty() ? "" : ", matching but quarantined: " + node_list(quarantined))));
  }
  p->request.actor = req.actor;
  p->request.claimed_user = req.claimed_user;
  const size_t count = targets.size();
  const std::string command = engine::command_line(p->request.argv);
  auto id = ctx.runs->start(std::move(p->request), std::move(targets));
  if (!id) co_return Response::error(id.error());
  spdlog::info("run r{} started by {} on {} node(s) of {}: {}", *id, req.actor, count, p->env,
               command);
  // A run whose nodes all failed at once (none connected) is over already: read it back.
  auto run = co_await load_run(ctx, *id);
  if (!run) co_return Response::error(run.error());
  json::value body = *run ? engine::to_json(**run, true) : json::value(json::object{{"id", *id}});
  if (body.is_object()) add_left_out(body.as_object(), "quarantined_nodes_left_out", quarantined);
  co_return Response::json(201, body);
}

}  // namespace

void register_run_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;

  ctx.router.add("POST", "/api/v1/runs", Access::deployer, "run.create",
                 [c](Request& req) { return start_run(*c, req); });

  ctx.router.add("GET", "/api/v1/runs", Access::viewer, "run.list",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto q = parse_env_paging(req, "run");
                   if (!q) co_return Response::error(q.error());
                   if (auto st = authorize(req, q->env, ""); !st)
                     co_return Response::error(st.error());
                   const store::RunFilter f{q->env, q->paging.limit, q->paging.before};
                   auto job = [f](store::Store& s) { return s.list_runs(f); };
                   auto list = co_await c->db_call(job);
                   if (!list) co_return Response::error(list.error());
                   json::array out;
                   for (const auto& r : *list) {
                     if (!in_scope(req.principal, r.env, "")) continue;
                     const auto* live = c->runs->find(r.id);  // the live copy is the newer one
                     out.push_back(engine::to_json(live ? *live : r, false));
                   }
                   co_return Response::json(200, json::object{{"runs", std::move(out)}});
                 });

  ctx.router.add(
      "GET", "/api/v1/runs/{id}", Access::viewer, "run.show",
      [c](Request& req) -> asio::awaitable<Response> {
        auto id = parse_id(req.param("id"), "run");
        if (!id) co_return Response::error(id.error());
        int64_t since = 0;
        if (auto s = req.query_or("since"); !s.empty() && s != "0") {
          auto n = parse_id(s, "node sequence");
          if (!n) co_return Response::error(n.error());
          since = *n;
        }
        auto run = co_await load_run(*c, *id);
        if (!run) co_return Response::error(run.error());
        if (!*run)
          co_return Response::error(err(Errc::not_found, fmt::format("there is no run r{}", *id)));
        if (auto st = authorize_object(req, fmt::format("run r{}", *id), (*run)->env, ""); !st)
          co_return Response::error(st.error());
        co_return Response::json(200, engine::to_json(**run, true, since));
      });
}

}  // namespace slipway::server
