// Freeze routes: set, list and lift freeze windows; and the gate a deploy passes (freeze_gate).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/names.h"
#include "common/strings.h"
#include "engine/freeze.h"
#include "server/context.h"

namespace slipway::server {

namespace {

using engine::Freeze;

Status validate_scope(const std::string& env, const std::string& app) {
  if (auto st = validate_name(NameKind::env, env); !st) return st;
  if (!app.empty()) return validate_name(NameKind::app, app);
  return {};
}

// POST /api/v1/freezes {env, app?, until, reason}.
Result<Freeze> parse_freeze(const std::string& body, TimeMs now) {
  auto v = parse_json(body, "request body");
  if (!v) return v.error();
  JsonReader r(*v, "freeze request");
  Freeze f;
  f.env = r.str("env");
  f.app = r.str_or("app", "");
  const std::string until = r.str("until");
  f.reason = r.str("reason");
  if (auto st = r.finish(); !st) return st.error();
  if (auto st = validate_scope(f.env, f.app); !st) return st.error();
  f.until = parse_rfc3339(until);
  if (f.until < 0) {
    return err(Errc::invalid_argument,
               "until must be an RFC 3339 time, such as 2026-12-24T18:00:00Z or "
               "2026-12-24T19:00:00+01:00");
  }
  // Parsed already: what parse_until can still refuse is a time that is not in the future.
  if (auto t = engine::parse_until(until, now); !t) return t.error();
  if (auto st = engine::validate_freeze_reason(f.reason); !st) return st.error();
  return f;
}

// POST /api/v1/freezes/lift: {"id"} or {"env", "app"?}. By id, env and app are those of the
// freeze the scope check found (authorized_freeze), and the lift checks the freeze again.
struct LiftRequest {
  engine::FreezeId id = 0;  // 0: by scope
  std::string env;
  std::string app;
};

Result<LiftRequest> parse_lift(const std::string& body) {
  auto v = parse_json(body, "request body");
  if (!v) return v.error();
  JsonReader r(*v, "lift request");
  LiftRequest l;
  const auto id = r.opt_i64("id");
  const auto env = r.opt_str("env");
  l.app = r.str_or("app", "");
  if (auto st = r.finish(); !st) return st.error();
  if (id.has_value() == env.has_value()) {
    return err(Errc::invalid_argument, "give either the freeze's id or its env (and app)");
  }
  if (id) {
    if (*id <= 0) return err(Errc::invalid_argument, "a freeze id is a positive number");
    if (!l.app.empty()) return err(Errc::invalid_argument, "give app with env, not with id");
    l.id = *id;
    return l;
  }
  l.env = *env;
  if (auto st = validate_scope(l.env, l.app); !st) return st.error();
  return l;
}

Result<engine::FreezeId> parse_freeze_id(const std::string& s) {
  return parse_path_id(s, "freeze");
}

json::value freezes_json(const std::vector<Freeze>& list, TimeMs now) {
  json::array out;
  for (const auto& f : list)
    out.push_back(engine::to_json(f, now));
  return out;
}

// Lifts the freezes a lift request names, on the database thread: by id (not_found when there is
// no such freeze, failed_precondition when it no longer applies), or every active freeze of
// exactly that scope (not_found when there is none, naming the active ones of the environment).
Result<std::vector<Freeze>> lift(store::Store& s, const LiftRequest& l, const std::string& by,
                                 TimeMs now) {
  std::vector<Freeze> targets;
  if (l.id) {
    auto f = s.get_freeze(l.id);
    if (!f) return f.error();
    if (!*f) return err(Errc::not_found, fmt::format("there is no freeze #{}", l.id));
    const Freeze& fz = **f;
    if (fz.env != l.env || fz.app != l.app) {  // never: a freeze's scope does not change
      return err(Errc::conflict, fmt::format("freeze #{} is not the freeze checked", l.id));
    }
    if (fz.lifted_at) {
      return err(Errc::failed_precondition,
                 fmt::format("freeze #{} was lifted already, by {} at {} UTC", fz.id, fz.lifted_by,
                             format_time_short(fz.lifted_at)));
    }
    if (!fz.active(now)) {
      return err(Errc::failed_precondition, fmt::format("freeze #{} ended already, at {} UTC",
                                                        fz.id, format_time_short(fz.until)));
    }
    targets.push_back(fz);
  } else {
    auto active = s.list_freezes(now, false);
    if (!active) return active.error();
    std::vector<std::string> others;
    for (const auto& f : *active) {
      if (f.env != l.env) continue;
      if (f.app == l.app) {
        targets.push_back(f);
      } else {
        others.push_back(fmt::format("#{} of {}", f.id, f.scope()));
      }
    }
    if (targets.empty()) {
      const std::string scope = l.app.empty() ? l.env + " (all apps)" : l.app + " in " + l.env;
      return err(Errc::not_found,
                 fmt::format("there is no active freeze of {}{}", scope,
                             others.empty() ? std::string()
                                            : fmt::format(" (active in {}: {}; lift one by id)",
                                                          l.env, join(others, ", "))));
    }
  }
  for (auto& f : targets) {
    if (auto st = s.lift_freeze(f.id, by, now); !st) return st.error();
    f.lifted_by = by;
    f.lifted_at = now;
  }
  return targets;
}

// The scope a freeze covers: its app, or every app of its environment.
std::string_view freeze_app(const std::string& app) {
  return app.empty() ? kAll : std::string_view(app);
}

// The freeze `id`, if the request's token may see it (or with `acting`, lift it: a freeze of a
// whole environment concerns every app of it): not_found when there is none (for every caller),
// forbidden outside the token's scope.
asio::awaitable<Result<Freeze>> authorized_freeze(ServerContext& ctx, Request& req,
                                                  engine::FreezeId id, bool acting) {
  auto job = [id](store::Store& s) { return s.get_freeze(id); };
  auto f = co_await ctx.db_call(job);
  if (!f) co_return Result<Freeze>(f.error());
  if (!*f)
    co_return Result<Freeze>(err(Errc::not_found, fmt::format("there is no freeze #{}", id)));
  if (auto st = authorize_object(req, fmt::format("freeze #{}", id), (*f)->env,
                                 acting ? freeze_app((*f)->app) : std::string_view((*f)->app));
      !st) {
    co_return Result<Freeze>(st.error());
  }
  co_return std::move(**f);
}

// A lift by id of the freeze the scope check found.
asio::awaitable<Status> authorize_lift(ServerContext& ctx, Request& req, LiftRequest& l) {
  auto f = co_await authorized_freeze(ctx, req, l.id, true);
  if (!f) co_return f.error();
  l.env = f->env;
  l.app = f->app;
  co_return Status{};
}

}  // namespace

asio::awaitable<Result<std::string>> freeze_gate(ServerContext& ctx, const std::string& app,
                                                 const std::string& env, bool force) {
  const TimeMs now = now_ms();
  auto job = [now](store::Store& s) { return s.list_freezes(now, false); };
  auto active = co_await ctx.db_call(job);
  if (!active) co_return Result<std::string>(active.error());
  const auto blocking = engine::freezes_blocking(*active, app, env, now);
  if (blocking.empty()) co_return std::string();
  if (!force) co_return Result<std::string>(engine::frozen_error(app, env, blocking));
  std::string record = engine::forced_record(blocking);
  spdlog::warn("a deploy of {} to {} is forced through {}", app, env, record);
  co_return record;
}

void register_freeze_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;

  ctx.router.add("POST", "/api/v1/freezes", Access::deployer, "freeze.create",
                 [c](Request& req) -> asio::awaitable<Response> {
                   const TimeMs now = now_ms();
                   auto f = parse_freeze(req.body, now);
                   if (!f) co_return Response::error(f.error());
                   if (auto st = authorize(req, f->env, freeze_app(f->app)); !st)
                     co_return Response::error(st.error());
                   f->created_by = req.actor;
                   f->created_at = now;
                   auto job = [fz = *f](store::Store& s) { return s.insert_freeze(fz); };
                   auto id = co_await c->db_call(job);
                   if (!id) co_return Response::error(id.error());
                   f->id = *id;
                   spdlog::info("{} set {}", req.actor, f->describe());
                   co_return Response::json(201, engine::to_json(*f, now));
                 });

  // Active freezes (?all=1: every freeze ever set, newest first); ?env= only that environment,
  // ?app= only those that cover that app (its own and those of a whole environment).
  ctx.router.add("GET", "/api/v1/freezes", Access::viewer, "freeze.list",
                 [c](Request& req) -> asio::awaitable<Response> {
                   const std::string env = req.query_or("env");
                   const std::string app = req.query_or("app");
                   const std::string all_arg = req.query_or("all");
                   if (!env.empty()) {
                     if (auto st = validate_name(NameKind::env, env); !st)
                       co_return Response::error(st.error());
                   }
                   if (!app.empty()) {
                     if (auto st = validate_name(NameKind::app, app); !st)
                       co_return Response::error(st.error());
                   }
                   if (!all_arg.empty() && all_arg != "0" && all_arg != "1" && all_arg != "true" &&
                       all_arg != "false") {
                     co_return Response::error(err(Errc::invalid_argument, "all must be 1 or 0"));
                   }
                   if (auto st = authorize(req, env, app); !st)
                     co_return Response::error(st.error());
                   const bool all = all_arg == "1" || all_arg == "true";
                   const TimeMs now = now_ms();
                   auto job = [now, all](store::Store& s) { return s.list_freezes(now, all); };
                   auto list = co_await c->db_call(job);
                   if (!list) co_return Response::error(list.error());
                   std::vector<Freeze> out;
                   for (auto& f : *list) {
                     if (!env.empty() && f.env != env) continue;
                     if (!app.empty() && !f.app.empty() && f.app != app) continue;
                     // A freeze of a whole environment concerns every app of it.
                     if (!in_scope(req.principal, f.env, f.app)) continue;
                     out.push_back(std::move(f));
                   }
                   co_return Response::json(200, json::object{{"freezes", freezes_json(out, now)}});
                 });

  ctx.router.add("GET", "/api/v1/freezes/{id}", Access::viewer, "freeze.show",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto id = parse_freeze_id(req.param("id"));
                   if (!id) co_return Response::error(id.error());
                   auto f = co_await authorized_freeze(*c, req, *id, false);
                   if (!f) co_return Response::error(f.error());
                   co_return Response::json(200, engine::to_json(*f, now_ms()));
                 });

  // Lifting: by id (DELETE, or POST .../lift {"id"}), or by scope (POST .../lift {"env", "app"?}).
  ctx.router.add(
      "POST", "/api/v1/freezes/lift", Access::deployer, "freeze.lift",
      [c](Request& req) -> asio::awaitable<Response> {
        auto l = parse_lift(req.body);
        if (!l) co_return Response::error(l.error());
        Status scoped;
        if (l->id) {
          scoped = co_await authorize_lift(*c, req, *l);
        } else {
          scoped = authorize(req, l->env, freeze_app(l->app));
        }
        if (!scoped) co_return Response::error(scoped.error());
        const TimeMs now = now_ms();
        auto job = [l = *l, by = req.actor, now](store::Store& s) { return lift(s, l, by, now); };
        auto lifted = co_await c->db_call(job);
        if (!lifted) co_return Response::error(lifted.error());
        for (const auto& f : *lifted)
          spdlog::info("{} lifted {}", req.actor, f.describe());
        co_return Response::json(200, json::object{{"lifted", freezes_json(*lifted, now)}});
      });

  ctx.router.add("DELETE", "/api/v1/freezes/{id}", Access::deployer, "freeze.delete",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto id = parse_freeze_id(req.param("id"));
                   if (!id) co_return Response::error(id.error());
                   LiftRequest l;
                   l.id = *id;
                   if (auto st = co_await authorize_lift(*c, req, l); !st)
                     co_return Response::error(st.error());
                   const TimeMs now = now_ms();
                   auto job = [l, by = req.actor, now](store::Store& s) {
                     return lift(s, l, by, now);
                   };
                   auto lifted = co_await c->db_call(job);
                   if (!lifted) co_return Response::error(lifted.error());
                   spdlog::info("{} lifted {}", req.actor, lifted->front().describe());
                   co_return Response::json(200, engine::to_json(lifted->front(), now));
                 });
}

}  // namespace slipway::server
