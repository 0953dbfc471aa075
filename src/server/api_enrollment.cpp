// Enrollment routes (admin, except the environment listing): join tokens
// (/api/v1/join-tokens), environments and their protection (/api/v1/envs), and what an admin
// changes about an enrolled node: its environment and roles (move), its approval. See
// server/enrollment.h for the rules.
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/crypto.h"
#include "common/names.h"
#include "common/strings.h"
#include "net/tls.h"
#include "server/agent_gateway.h"
#include "server/context.h"

namespace slipway::server {

namespace {

constexpr int64_t kMaxUses = 1'000'000;

// The join token a create request describes (everything but the secret, hash and id).
Result<store::JoinTokenRecord> parse_join_token_request(const std::string& body,
                                                        const std::string& actor, TimeMs now) {
  auto v = parse_json(body, "request body");
  if (!v) return v.error();
  JsonReader r(*v, "join token request");
  store::JoinTokenRecord t;
  t.env = r.str("env");
  t.name = r.str_or("name", "");
  auto roles = name_list(r, "roles", NameKind::role);
  const std::string ttl = r.str_or("ttl", "");
  t.max_uses = r.i64_or("uses", 0);
  t.approve = r.boolean_or("approve", false);
  if (auto st = r.finish(); !st) return st.error();
  if (!roles) return roles.error();
  if (auto st = validate_name(NameKind::env, t.env); !st) return st.error();
  if (t.name.empty()) t.name = fmt::format("{}-{}", t.env.substr(0, 50), random_hex(4));
  if (auto st = validate_name(NameKind::token, t.name); !st) return st.error();
  if (t.name == kDefaultJoinToken) {
    return err(Errc::invalid_argument,
               fmt::format("'{}' names the server's own DATA_DIR/join.token: choose another name",
                           kDefaultJoinToken));
  }
  if (t.max_uses < 0 || t.max_uses > kMaxUses) {
    return err(Errc::invalid_argument,
               fmt::format("uses must be from 1 to {} (or absent: no limit)", kMaxUses));
  }
  auto expires = expiry_from_ttl(ttl, now);
  if (!expires) return expires.error();
  t.expires_at = *expires;
  t.roles = std::move(*roles);
  t.created_by = actor;
  t.created_at = now;
  return t;
}

// Every environment the server knows of: those with nodes (pending ones too), join tokens or
// settings. name -> {name, protected, nodes, pending, join_tokens (usable), changed_by,
// changed_at}.
std::map<std::string, json::object> environments(ServerContext& ctx) {
  std::map<std::string, json::object> out;
  auto entry = [&](const std::string& env) -> json::object& {
    auto [it, added] = out.try_emplace(env);
    if (added) {
      it->second = json::object{{"name", env},          {"protected", false}, {"nodes", 0},
                                {"pending", 0},         {"join_tokens", 0},   {"changed_by", ""},
                                {"changed_at", nullptr}};
    }
    return it->second;
  };
  for (const auto* n : ctx.inventory.all())
    entry(n->env)["nodes"] = entry(n->env)["nodes"].as_int64() + 1;
  for (const auto& [name, p] : ctx.gateway->pending()) {
    auto& e = entry(p.enrollment.env);
    e["pending"] = e["pending"].as_int64() + 1;
  }
  const TimeMs now = now_ms();
  for (const auto& t : ctx.enrollment.join_tokens()) {
    auto& e = entry(t.env);
    if (join_token_unusable(t, now).empty()) e["join_tokens"] = e["join_tokens"].as_int64() + 1;
  }
  for (const auto& [name, rec] : ctx.enrollment.envs()) {
    auto& e = entry(name);
    e["protected"] = rec.is_protected;
    e["changed_by"] = rec.changed_by;
    e["changed_at"] = format_time(rec.changed_at);
  }
  return out;
}

// A move request: the environment (required) and, when given, the roles.
struct MoveRequest {
  std::string env;
  std::optional<std::vector<std::string>> roles;
};

Result<MoveRequest> parse_move(const std::string& body) {
  auto v = parse_json(body, "request body");
  if (!v) return v.error();
  JsonReader r(*v, "move request");
  MoveRequest m;
  m.env = r.str("env");
  const bool has_roles = r.opt_value("roles") != nullptr;
  auto roles = name_list(r, "roles", NameKind::role);
  if (auto st = r.finish(); !st) return st.error();
  if (!roles) return roles.error();
  if (auto st = validate_name(NameKind::env, m.env); !st) return st.error();
  if (has_roles) m.roles = std::move(*roles);
  return m;
}

// A node's enrollment as the move and approve routes answer it.
json::object enrollment_json(const store::NodeCredential& c) {
  json::array roles;
  for (const auto& r : c.roles)
    roles.emplace_back(r);
  return json::object{{"name", c.node},
                      {"env", c.env},
                      {"roles", std::move(roles)},
                      {"join_token", c.join_token},
                      {"enrolled_at", format_time(c.enrolled_at)},
                      {"pending", c.pending},
                      {"approved_by", c.approved_by}};
}

Status check_node_name(const std::string& name) {
  return validate_name(NameKind::node, name);
}

}  // namespace

void register_enrollment_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;

  ctx.router.add("POST", "/api/v1/join-tokens", Access::admin, "join_token.create",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto t = parse_join_token_request(req.body, req.actor, now_ms());
                   if (!t) co_return Response::error(t.error());
                   const std::string secret = new_join_token_secret();
                   t->hash = sha256_hex(secret);
                   req.audit_target = fmt::format("name={} env={}", t->name, t->env);
                   auto job = [rec = *t](store::Store& s) { return s.insert_join_token(rec); };
                   auto id = co_await c->db_call(job);
                   if (!id) co_return Response::error(id.error());
                   t->id = *id;
                   c->enrollment.put_join_token(*t);
                   spdlog::info("join token '{}' for {} created by {}", t->name, t->env, req.actor);
                   json::object body = join_token_to_json(*t, now_ms());
                   // The only time it is shown; under TLS with the CA's fingerprint, so that the
                   // agent pins the server's CA on its first connection (as with
                   // DATA_DIR/join.token).
                   body["token"] = net::format_join_token(net::JoinToken{secret, c->ca_pin});
                   co_return Response::json(201, body);
                 });

  ctx.router.add("GET", "/api/v1/join-tokens", Access::admin, "join_token.list",
                 [c](Request&) -> asio::awaitable<Response> {
                   json::array out;
                   const TimeMs now = now_ms();
                   for (const auto& t : c->enrollment.join_tokens())
                     out.push_back(join_token_to_json(t, now));
                   co_return Response::json(200, json::object{{"join_tokens", std::move(out)}});
                 });

  ctx.router.add(
      "DELETE", "/api/v1/join-tokens/{name}", Access::admin, "join_token.revoke",
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string name = req.param("name");
        if (auto st = validate_name(NameKind::token, name); !st)
          co_return Response::error(st.error());
        const auto* found = c->enrollment.join_token_named(name);
        if (!found) {
          co_return Response::error(
              err(Errc::not_found, fmt::format("there is no join token named '{}'", name)));
        }
        if (found->revoked_at != 0) {
          co_return Response::error(
              err(Errc::conflict, fmt::format("join token '{}' was revoked already", name)));
        }
        store::JoinTokenRecord t = *found;
        t.revoked_at = now_ms();
        t.revoked_by = req.actor;
        c->enrollment.put_join_token(t);  // refused from now on, before the database has it
        auto job = [id = t.id, by = t.revoked_by, at = t.revoked_at](store::Store& s) {
          return s.revoke_join_token(id, by, at);
        };
        if (auto done = co_await c->db_call(job); !done) co_return Response::error(done.error());
        spdlog::info("join token '{}' revoked by {} (the nodes it enrolled stay enrolled)", name,
                     req.actor);
        co_return Response::json(200, join_token_to_json(t, now_ms()));
      });

  ctx.router.add("GET", "/api/v1/envs", Access::viewer, "env.list",
                 [c](Request& req) -> asio::awaitable<Response> {
                   json::array list;
                   for (auto& [env, o] : environments(*c)) {
                     if (in_scope(req.principal, env, "")) list.push_back(std::move(o));
                   }
                   co_return Response::json(200, json::object{{"envs", std::move(list)}});
                 });

  for (const bool protect : {true, false}) {
    ctx.router.add("POST", protect ? "/api/v1/envs/{env}/protect" : "/api/v1/envs/{env}/unprotect",
                   Access::admin, protect ? "env.protect" : "env.unprotect",
                   [c, protect](Request& req) -> asio::awaitable<Response> {
                     const std::string env = req.param("env");
                     if (auto st = validate_name(NameKind::env, env); !st)
                       co_return Response::error(st.error());
                     if (auto st = expect_empty_body(req, "protect request"); !st)
                       co_return Response::error(st.error());
                     if (auto st = authorize(req, env, kAll); !st)
                       co_return Response::error(st.error());
                     const store::EnvRecord rec{env, protect, req.actor, now_ms()};
                     auto job = [rec](store::Store& s) { return s.save_environment(rec); };
                     if (auto st = co_await c->db_call(job); !st)
                       co_return Response::error(st.error());
                     c->enrollment.put_env(rec);
                     spdlog::info("environment {} {} by {}", env,
                                  protect ? "protected" : "unprotected", req.actor);
                     co_return Response::json(200, environments(*c).at(env));
                   });
  }

  ctx.router.add(
      "POST", "/api/v1/nodes/{name}/move", Access::admin, "node.move",
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string name = req.param("name");
        if (auto st = check_node_name(name); !st) co_return Response::error(st.error());
        auto m = parse_move(req.body);
        if (!m) co_return Response::error(m.error());
        if (auto st = authorize(req, m->env, kAll); !st) co_return Response::error(st.error());
        auto job = [name, env = m->env, roles = m->roles](
                       store::Store& s) -> Result<std::optional<store::NodeCredential>> {
          auto moved = s.move_node(name, env, roles);
          if (!moved) return moved.error();
          if (!*moved) return std::optional<store::NodeCredential>();
          return s.get_node_credential(name);
        };
        auto moved = co_await c->db_call(job);
        if (!moved) co_return Response::error(moved.error());
        if (!*moved) {
          co_return Response::error(
              err(Errc::not_found, fmt::format("node {} is not enrolled (or is revoked)", name)));
        }
        const store::NodeCredential& rec = **moved;
        c->enrollment.put_node(rec);
        const std::string flags = fmt::format(
            "--env {}{}", rec.env, rec.roles.empty() ? "" : " --roles " + join(rec.roles, ","));
        c->gateway->moved(rec, fmt::format("node {} was moved to environment {} by {}: restart "
                                           "its agent with {}",
                                           name, rec.env, req.actor, flags));
        spdlog::info("node {} moved to {} (roles {}) by {}", name, rec.env, join(rec.roles, ","),
                     req.actor);
        json::object body = enrollment_json(rec);
        body["restart_with"] = flags;
        co_return Response::json(200, body);
      });

  ctx.router.add("POST", "/api/v1/nodes/{name}/approve", Access::admin, "node.approve",
                 [c](Request& req) -> asio::awaitable<Response> {
                   const std::string name = req.param("name");
                   if (auto st = check_node_name(name); !st) co_return Response::error(st.error());
                   if (auto st = expect_empty_body(req, "approve request"); !st)
                     co_return Response::error(st.error());
                   auto job = [name, by = req.actor, at = now_ms()](
                                  store::Store& s) -> Result<std::optional<store::NodeCredential>> {
                     auto approved = s.approve_node(name, by, at);
                     if (!approved) return approved.error();
                     auto rec = s.get_node_credential(name);
                     if (!rec) return rec.error();
                     if (!*approved) {
                       if (!*rec || (*rec)->revoked_at != 0)
                         return err(Errc::not_found, fmt::format("node {} is not enrolled", name));
                       return err(Errc::conflict,
                                  fmt::format("node {} is not pending approval", name));
                     }
                     return rec;
                   };
                   auto approved = co_await c->db_call(job);
                   if (!approved) co_return Response::error(approved.error());
                   const store::NodeCredential& rec = **approved;
                   req.audit_target = fmt::format("env={}", rec.env);
                   c->enrollment.put_node(rec);
                   c->gateway->approved(name);
                   spdlog::info("node {} approved by {}", name, req.actor);
                   co_return Response::json(200, enrollment_json(rec));
                 });
}

}  // namespace slipway::server
