// Per-environment config and secrets of each app (engine/config.h for the grammar):
//   GET    /api/v1/envs/{env}/apps/{app}/config            every key; secret values masked
//   PATCH  /api/v1/envs/{env}/apps/{app}/config            {"set": {K: V}, "unset": [K]} plain keys
//   GET    /api/v1/envs/{env}/apps/{app}/secrets           the names of the secrets
//   PUT    /api/v1/envs/{env}/apps/{app}/secrets/{key}     {"value": V}
//   DELETE /api/v1/envs/{env}/apps/{app}/secrets/{key}
// Secret values are sealed here (ServerContext::secret_key, on the database thread) before they
// reach the database and no route ever returns one. Every change makes a new version of the (env,
// app) config.
#include <algorithm>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/names.h"
#include "common/strings.h"
#include "server/context.h"

namespace slipway::server {

namespace {

constexpr std::string_view kMask = "********";

// The (env, app) of a request, validated.
struct Scope {
  std::string env;
  std::string app;
};

Result<Scope> scope_of(const Request& req) {
  Scope s{req.param("env"), req.param("app")};
  if (auto st = validate_name(NameKind::env, s.env); !st) return st.error();
  if (auto st = validate_name(NameKind::app, s.app); !st) return st.error();
  return s;
}

std::string names_of(const std::vector<engine::ConfigChange>& changes) {
  std::vector<std::string> out;
  for (const auto& c : changes)
    out.push_back(
        fmt::format("{} {}{}", config_change_name(c.kind), c.key, c.secret ? " (secret)" : ""));
  return out.empty() ? "nothing changed" : join(out, ", ");
}

json::value change_body(const Scope& s, const engine::ConfigVersion& cv) {
  return json::object{{"env", s.env},
                      {"app", s.app},
                      {"version", cv.version},
                      {"changes", engine::to_json(cv.changes)}};
}

// Applies `edits`; the value of a secret set is given in clear and sealed on the database thread,
// where the key is replaced by a rotation: a value is never sealed with a key the database no
// longer uses.
asio::awaitable<Response> apply(ServerContext& ctx, const Request& req, const Scope& scope,
                                std::vector<store::ConfigEdit> edits) {
  auto job = [c = &ctx, env = scope.env, app = scope.app, edits = std::move(edits),
              actor = req.actor](store::Store& s) mutable {
    for (auto& e : edits) {
      if (!e.secret || !e.value) continue;
      std::string sealed = c->secret_key->seal(*e.value, config_secret_place(env, app, e.key));
      std::fill(e.value->begin(), e.value->end(), '\0');
      e.value = std::move(sealed);
    }
    return s.change_config(env, app, edits, actor, now_ms());
  };
  auto cv = co_await ctx.db_call(job);
  if (!cv) co_return Response::error(cv.error());
  // Names only: values (secret or not) are never logged.
  spdlog::info("config of {} in {} changed by {}: version {} ({})", scope.app, scope.env, req.actor,
               cv->version, names_of(cv->changes));
  co_return Response::json(200, change_body(scope, *cv));
}

asio::awaitable<Response> get_config(ServerContext& ctx, const Request& req, bool secrets_only) {
  auto scope = scope_of(req);
  if (!scope) co_return Response::error(scope.error());
  auto job = [env = scope->env, app = scope->app](store::Store& s) {
    return s.get_config(env, app);
  };
  auto cfg = co_await ctx.db_call(job);
  if (!cfg) co_return Response::error(cfg.error());
  json::array entries;
  for (const auto& e : cfg->entries) {
    if (secrets_only && !e.secret) continue;
    json::object o{{"key", e.key}, {"secret", e.secret}};
    if (!secrets_only) o["value"] = e.secret ? std::string(kMask) : e.value;
    o["updated_by"] = e.updated_by;
    o["updated_at"] = format_time(e.updated_at);
    entries.push_back(std::move(o));
  }
  co_return Response::json(200, json::object{{"env", scope->env},
                                             {"app", scope->app},
                                             {"version", cfg->version},
                                             {secrets_only ? "secrets" : "config", entries}});
}

asio::awaitable<Response> get_all(ServerContext& ctx, const Request& req) {
  co_return co_await get_config(ctx, req, false);
}

asio::awaitable<Response> get_secrets(ServerContext& ctx, const Request& req) {
  co_return co_await get_config(ctx, req, true);
}

asio::awaitable<Response> patch_config(ServerContext& ctx, const Request& req) {
  auto scope = scope_of(req);
  if (!scope) co_return Response::error(scope.error());
  auto v = parse_json(req.body, "request body");
  if (!v) co_return Response::error(v.error());
  JsonReader r(*v, "config change");
  const json::object* set = r.opt_object("set");
  const std::vector<std::string> unset = r.str_list("unset");
  if (auto st = r.finish(); !st) co_return Response::error(st.error());
  std::vector<store::ConfigEdit> edits;
  std::set<std::string> seen;
  if (set) {
    for (const auto& [k, val] : *set) {
      const std::string key(k);
      if (auto st = engine::validate_config_key(key); !st) co_return Response::error(st.error());
      if (!val.is_string()) {
        co_return Response::error(err(Errc::invalid_argument,
                                      fmt::format("config change: set.{} must be a string", key)));
      }
      const std::string value(val.get_string());
      if (auto st = engine::validate_config_value(key, value); !st)
        co_return Response::error(st.error());
      seen.insert(key);
      edits.push_back(store::ConfigEdit{key, false, value});
    }
  }
  for (const auto& key : unset) {
    if (auto st = engine::validate_config_key(key); !st) co_return Response::error(st.error());
    if (!seen.insert(key).second) {
      co_return Response::error(
          err(Errc::invalid_argument, fmt::format("config change: {} is named twice", key)));
    }
    edits.push_back(store::ConfigEdit{key, false, std::nullopt});
  }
  if (edits.empty()) {
    co_return Response::error(
        err(Errc::invalid_argument, "config change: nothing to set or unset"));
  }
  if (edits.size() > engine::kMaxConfigEntries) {
    co_return Response::error(
        err(Errc::too_large,
            fmt::format("config change: at most {} keys at once", engine::kMaxConfigEntries)));
  }
  co_return co_await apply(ctx, req, *scope, std::move(edits));
}

asio::awaitable<Response> put_secret(ServerContext& ctx, const Request& req) {
  auto scope = scope_of(req);
  if (!scope) co_return Response::error(scope.error());
  const std::string key = req.param("key");
  if (auto st = engine::validate_config_key(key); !st) co_return Response::error(st.error());
  auto v = parse_json(req.body, "request body");
  if (!v) co_return Response::error(v.error());
  JsonReader r(*v, "secret");
  std::string value = r.str("value");
  if (auto st = r.finish(); !st) co_return Response::error(st.error());
  if (value.empty()) {
    co_return Response::error(err(Errc::invalid_argument, "the value of a secret cannot be empty"));
  }
  if (auto st = engine::validate_config_value(key, value); !st)
    co_return Response::error(st.error());
  std::vector<store::ConfigEdit> edits{store::ConfigEdit{key, true, value}};
  std::fill(value.begin(), value.end(), '\0');
  co_return co_await apply(ctx, req, *scope, std::move(edits));
}

asio::awaitable<Response> delete_secret(ServerContext& ctx, const Request& req) {
  auto scope = scope_of(req);
  if (!scope) co_return Response::error(scope.error());
  const std::string key = req.param("key");
  if (auto st = engine::validate_config_key(key); !st) co_return Response::error(st.error());
  std::vector<store::ConfigEdit> edits{store::ConfigEdit{key, true, std::nullopt}};
  co_return co_await apply(ctx, req, *scope, std::move(edits));
}

}  // namespace

std::string config_secret_place(const std::string& env, const std::string& app,
                                const std::string& key) {
  return env + "/" + app + "/" + key;
}

Result<ResolvedConfig> resolve_config(store::Store& s, const SecretKey& key, const std::string& env,
                                      const std::string& app) {
  auto cfg = s.get_config(env, app);
  if (!cfg) return cfg.error();
  ResolvedConfig out;
  out.version = cfg->version;
  for (const auto& e : cfg->entries) {
    if (!e.secret) {
      out.vars[e.key] = e.value;
      continue;
    }
    auto plain = key.open(e.value, config_secret_place(env, app, e.key));
    if (!plain) {
      return err(Errc::failed_precondition,
                 fmt::format("the secret {} of {} in {} cannot be opened ({}); set it again with "
                             "`slipway secret set`",
                             e.key, app, env, plain.error().message));
    }
    out.vars[e.key] = std::move(*plain);
  }
  return out;
}

Result<json::value> deploy_config_diff(store::Store& s, const engine::Deploy& d) {
  store::DeployFilter f;
  f.app = d.app;
  f.env = d.env;
  f.before_id = d.id;
  f.limit = 1;
  f.with_nodes = false;
  auto prev = s.list_deploys(f);
  if (!prev) return prev.error();
  if (prev->empty()) return json::value(nullptr);
  const engine::Deploy& p = prev->front();
  const int64_t lo = std::min(p.config_version, d.config_version);
  const int64_t hi = std::max(p.config_version, d.config_version);
  auto versions = s.config_versions(d.env, d.app, lo, hi);
  if (!versions) return versions.error();
  auto changes = engine::net_config_changes(*versions);
  if (p.config_version > d.config_version) {
    // This deploy used an older config than the one before it: the changes run backwards.
    for (auto& c : changes) {
      if (c.kind == engine::ConfigChangeKind::added) {
        c.kind = engine::ConfigChangeKind::removed;
      } else if (c.kind == engine::ConfigChangeKind::removed) {
        c.kind = engine::ConfigChangeKind::added;
      }
    }
  }
  return json::value(json::object{{"previous_deploy", p.id},
                                  {"from_version", p.config_version},
                                  {"to_version", d.config_version},
                                  {"changes", engine::to_json(changes)}});
}

void register_config_routes(ServerContext& ctx) {
  using Handler = asio::awaitable<Response> (*)(ServerContext&, const Request&);
  const std::string base = "/api/v1/envs/{env}/apps/{app}";
  // Reading names and plain values is a viewer's; changing them a deployer's; both within the
  // token's scope. No route returns a secret's value.
  for (auto [method, path, access, action, fn] : {
           std::tuple<const char*, const char*, Access, const char*, Handler>{
               "GET", "/config", Access::viewer, "config.show", get_all},
           {"PATCH", "/config", Access::deployer, "config.set", patch_config},
           {"GET", "/secrets", Access::viewer, "secret.list", get_secrets},
           {"PUT", "/secrets/{key}", Access::deployer, "secret.set", put_secret},
           {"DELETE", "/secrets/{key}", Access::deployer, "secret.unset", delete_secret},
       }) {
    ctx.router.add(method, base + path, access, action,
                   [c = &ctx, fn = fn](Request& req) -> asio::awaitable<Response> {
                     if (auto st = authorize(req, req.param("env"), req.param("app")); !st)
                       co_return Response::error(st.error());
                     co_return co_await fn(*c, req);
                   });
  }
}

}  // namespace slipway::server
