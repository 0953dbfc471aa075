// The load balancer of an environment: drain and undrain commands for every app deployed there
// whose manifest names none (a load balancer shared by many apps). Kept in the meta table under
// "lb/ENV" as JSON {"drain": LB_COMMAND|null, "undrain": LB_COMMAND|null, "updated_by",
// "updated_at"}, LB_COMMAND = {"command", "on", "timeout_ms"}.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/duration.h"
#include "common/names.h"
#include "inventory/selector.h"
#include "server/context.h"

namespace slipway::server {

namespace {

constexpr size_t kMaxCommand = 4096;

std::string meta_key(const std::string& env) {
  return "lb/" + env;
}

json::value command_json(const std::optional<artifacts::LbCommand>& c) {
  if (!c) return nullptr;
  return json::object{{"command", c->command}, {"on", c->on}, {"timeout_ms", c->timeout.count()}};
}

// {"command", "on"?, "timeout"?: "30s"} (from the API) or {"command", "on", "timeout_ms"} (stored).
Result<artifacts::LbCommand> parse_command(const json::value& v, const std::string& what) {
  JsonReader r(v, what);
  artifacts::LbCommand c;
  c.command = r.str("command");
  c.on = r.str_or("on", "");
  const auto timeout = r.opt_str("timeout");
  const auto timeout_ms = r.opt_i64("timeout_ms");
  if (auto st = r.finish(); !st) return st.error();
  if (c.command.empty() || c.command.size() > kMaxCommand ||
      c.command.find('\0') != std::string::npos) {
    return err(Errc::invalid_argument,
               fmt::format("{}.command must be 1 to {} bytes, without NUL", what, kMaxCommand));
  }
  if (!c.on.empty()) {
    auto sel = inventory::Selector::parse(c.on);
    if (!sel)
      return err(Errc::invalid_argument, fmt::format("{}.on: {}", what, sel.error().message));
  }
  if (timeout) {
    auto d = parse_duration(*timeout);
    if (!d || d->count() <= 0 || *d > Millis(3'600'000)) {
      return err(Errc::invalid_argument,
                 fmt::format("{}.timeout must be a duration above 0 and at most 1h", what));
    }
    c.timeout = *d;
  } else if (timeout_ms) {
    c.timeout = Millis(*timeout_ms);
  }
  return c;
}

asio::awaitable<Response> get_lb(ServerContext& ctx, const std::string& env) {
  auto job = [key = meta_key(env)](store::Store& s) { return s.get_meta(key); };
  auto got = co_await ctx.db_call(job);
  if (!got) co_return Response::error(got.error());
  auto lb = env_lb(got->value_or(""));
  if (!lb) co_return Response::error(lb.error());
  json::object o{{"env", env},
                 {"drain", command_json(lb->drain)},
                 {"undrain", command_json(lb->undrain)},
                 {"updated_by", lb->updated_by}};
  co_return Response::json(200, o);
}

}  // namespace

Result<EnvLb> env_lb(const std::string& stored) {
  EnvLb lb;
  if (stored.empty()) return lb;
  auto v = parse_json(stored, "stored load balancer");
  if (!v) return v.error();
  JsonReader r(*v, "stored load balancer");
  const json::value* drain = r.opt_value("drain");
  const json::value* undrain = r.opt_value("undrain");
  lb.updated_by = r.str_or("updated_by", "");
  r.allow("updated_at");
  if (auto st = r.finish(); !st) return st.error();
  for (auto [from, to] : {std::pair{drain, &lb.drain}, std::pair{undrain, &lb.undrain}}) {
    if (!from || from->is_null()) continue;
    auto c = parse_command(*from, "stored command");
    if (!c) return c.error();
    *to = std::move(*c);
  }
  return lb;
}

void register_lb_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;
  ctx.router.add("GET", "/api/v1/envs/{env}/lb", Access::viewer, "lb.show",
                 [c](Request& req) -> asio::awaitable<Response> {
                   const std::string env = req.param("env");
                   if (auto st = validate_name(NameKind::env, env); !st)
                     co_return Response::error(st.error());
                   if (auto st = authorize(req, env, ""); !st)
                     co_return Response::error(st.error());
                   co_return co_await get_lb(*c, env);
                 });

  ctx.router.add(
      "PUT", "/api/v1/envs/{env}/lb", Access::deployer, "lb.set",
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string env = req.param("env");
        if (auto st = validate_name(NameKind::env, env); !st) co_return Response::error(st.error());
        // The commands run for every app of the environment: an app-scoped token may not.
        if (auto st = authorize(req, env, kAll); !st) co_return Response::error(st.error());
        auto v = parse_json(req.body, "request body");
        if (!v) co_return Response::error(v.error());
        JsonReader r(*v, "load balancer");
        const json::value* drain = r.opt_value("drain");
        const json::value* undrain = r.opt_value("undrain");
        if (auto st = r.finish(); !st) co_return Response::error(st.error());
        EnvLb lb;
        for (auto [from, to, name] :
             {std::tuple{drain, &lb.drain, "drain"}, std::tuple{undrain, &lb.undrain, "undrain"}}) {
          if (!from || from->is_null()) continue;
          auto cmd = parse_command(*from, name);
          if (!cmd) co_return Response::error(cmd.error());
          *to = std::move(*cmd);
        }
        if (!lb.drain && !lb.undrain) {
          co_return Response::error(
              err(Errc::invalid_argument, "give drain, undrain or both (DELETE removes them)"));
        }
        const std::string text = to_json(json::object{{"drain", command_json(lb.drain)},
                                                      {"undrain", command_json(lb.undrain)},
                                                      {"updated_by", req.actor},
                                                      {"updated_at", now_ms()}});
        auto job = [key = meta_key(env), text](store::Store& s) { return s.set_meta(key, text); };
        if (auto st = co_await c->db_call(job); !st) co_return Response::error(st.error());
        spdlog::info("load balancer commands of {} set by {}", env, req.actor);
        co_return co_await get_lb(*c, env);
      });

  ctx.router.add("DELETE", "/api/v1/envs/{env}/lb", Access::deployer, "lb.clear",
                 [c](Request& req) -> asio::awaitable<Response> {
                   const std::string env = req.param("env");
                   if (auto st = validate_name(NameKind::env, env); !st)
                     co_return Response::error(st.error());
                   if (auto st = authorize(req, env, kAll); !st)
                     co_return Response::error(st.error());
                   auto job = [key = meta_key(env)](store::Store& s) {
                     return s.set_meta(key, "");
                   };
                   if (auto st = co_await c->db_call(job); !st)
                     co_return Response::error(st.error());
                   spdlog::info("load balancer commands of {} removed by {}", env, req.actor);
                   co_return co_await get_lb(*c, env);
                 });
}

}  // namespace slipway::server
