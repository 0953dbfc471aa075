// Token management (/api/v1/tokens), the audit log (/api/v1/audit) and the route table
// (/api/v1/routes): admin only.
#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/crypto.h"
#include "common/duration.h"
#include "common/names.h"
#include "server/context.h"

namespace slipway::server {

namespace {

// The token a create request describes (everything but the secret, hash and id).
Result<store::TokenRecord> parse_create(const std::string& body, const std::string& actor,
                                        TimeMs now) {
  auto v = parse_json(body, "request body");
  if (!v) return v.error();
  JsonReader r(*v, "token request");
  store::TokenRecord t;
  t.role = r.str("role");
  t.name = r.str_or("name", "");
  auto envs = name_list(r, "envs", NameKind::env);
  auto apps = name_list(r, "apps", NameKind::app);
  const std::string ttl = r.str_or("ttl", "");
  if (auto st = r.finish(); !st) return st.error();
  if (!envs) return envs.error();
  if (!apps) return apps.error();
  auto role = parse_role(t.role);
  if (!role) return role.error();
  if (*role == Role::admin && (!envs->empty() || !apps->empty())) {
    return err(Errc::invalid_argument,
               "an admin token cannot be scoped (it could create unscoped tokens): give "
               "--env/--app to deployer and viewer tokens only");
  }
  if (*role == Role::publisher && !envs->empty()) {
    return err(Errc::invalid_argument,
               "a publisher token cannot be scoped to environments: what it pushes is deployable "
               "in every one of them (--app limits which apps it may push)");
  }
  if (t.name.empty()) t.name = fmt::format("{}-{}", t.role, random_hex(4));
  if (auto st = validate_name(NameKind::token, t.name); !st) return st.error();
  auto expires = expiry_from_ttl(ttl, now);
  if (!expires) return expires.error();
  t.expires_at = *expires;
  t.envs = std::move(*envs);
  t.apps = std::move(*apps);
  t.created_by = actor;
  t.created_at = now;
  return t;
}

// One entry: a request with its outcome (status 0: none was recorded, the server stopped first).
json::object audit_to_json(const store::AuditRecord& a) {
  return json::object{{"id", a.id},
                      {"at", format_time(a.at)},
                      {"actor", a.actor},
                      {"token", a.token},
                      {"claimed_user", a.claimed_user},
                      {"remote", a.remote},
                      {"method", a.method},
                      {"path", a.path},
                      {"action", a.action},
                      {"target", a.target},
                      {"status", a.status},
                      {"error_code", a.error_code},
                      {"error", a.error},
                      {"hash", a.hash}};
}

json::object verdict_to_json(const store::AuditVerdict& v) {
  return json::object{
      {"intact", v.intact()},
      {"rows", v.rows},
      {"legacy_rows", v.legacy_rows},
      {"first_bad", v.intact() ? json::value(nullptr)
                               : json::value(json::object{{"id", v.bad_row}, {"reason", v.why}})}};
}

// ?since= as RFC 3339 (0 when absent).
Result<TimeMs> parse_since(const Request& req) {
  const std::string since = req.query_or("since");
  if (since.empty()) return TimeMs{0};
  const TimeMs t = parse_rfc3339(since);
  if (t < 0) {
    return err(Errc::invalid_argument,
               fmt::format("since '{}' is not an RFC 3339 time (2026-12-24T18:00:00Z)",
                           since.substr(0, 40)));
  }
  return t;
}

Result<int> parse_limit(const Request& req) {
  const std::string text = req.query_or("limit");
  if (text.empty()) return 100;
  int n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p != text.data() + text.size() || n < 1 || n > 10'000) {
    return err(Errc::invalid_argument,
               fmt::format("limit '{}' must be a number from 1 to 10000", text.substr(0, 32)));
  }
  return n;
}

}  // namespace

void register_token_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;

  ctx.router.add("POST", "/api/v1/tokens", Access::admin, "token.create",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto t = parse_create(req.body, req.actor, now_ms());
                   if (!t) co_return Response::error(t.error());
                   const std::string secret = new_token_secret();
                   t->hash = token_hash(secret);
                   req.audit_target = fmt::format("name={} role={}", t->name, t->role);
                   auto job = [rec = *t](store::Store& s) { return s.insert_token(rec); };
                   auto id = co_await c->db_call(job);
                   if (!id) co_return Response::error(id.error());
                   t->id = *id;
                   c->tokens.put(*t);
                   spdlog::info("token '{}' ({}) created by {}", t->name, t->role, req.actor);
                   json::object body = token_to_json(*t);
                   body["token"] = secret;  // the only time it is shown
                   co_return Response::json(201, body);
                 });

  ctx.router.add("GET", "/api/v1/tokens", Access::admin, "token.list",
                 [c](Request&) -> asio::awaitable<Response> {
                   auto job = [](store::Store& s) { return s.list_tokens(); };
                   auto list = co_await c->db_call(job);
                   if (!list) co_return Response::error(list.error());
                   json::array out;
                   for (auto& t : *list) {
                     // The cache knows when each was last used (saved now and then).
                     if (const auto* cached = c->tokens.find_id(t.id))
                       t.last_used = std::max(t.last_used, cached->last_used);
                     out.push_back(token_to_json(t));
                   }
                   co_return Response::json(200, json::object{{"tokens", std::move(out)}});
                 });

  ctx.router.add("DELETE", "/api/v1/tokens/{ref}", Access::admin, "token.revoke",
                 [c](Request& req) -> asio::awaitable<Response> {
                   const std::string ref = req.param("ref");
                   const store::TokenRecord* t = c->tokens.find_name(ref);
                   if (!t) {
                     int64_t id = 0;
                     auto [p, ec] = std::from_chars(ref.data(), ref.data() + ref.size(), id);
                     if (ec == std::errc() && p == ref.data() + ref.size())
                       t = c->tokens.find_id(id);
                   }
                   if (!t) {
                     co_return Response::error(err(
                         Errc::not_found, fmt::format("there is no token named or numbered '{}'",
                                                      ref.substr(0, 64))));
                   }
                   if (t->revoked_at != 0) {
                     co_return Response::error(err(
                         Errc::conflict, fmt::format("token '{}' was revoked already", t->name)));
                   }
                   store::TokenRecord rec = *t;
                   rec.revoked_at = now_ms();
                   rec.revoked_by = req.actor;
                   // Refused from now on, before the database has it.
                   c->tokens.put(rec);
                   auto job = [id = rec.id, by = rec.revoked_by, at = rec.revoked_at](
                                  store::Store& s) { return s.revoke_token(id, by, at); };
                   auto done = co_await c->db_call(job);
                   if (!done) co_return Response::error(done.error());
                   spdlog::info("token '{}' revoked by {}", rec.name, req.actor);
                   co_return Response::json(200, token_to_json(rec));
                 });

  ctx.router.add("GET", "/api/v1/audit", Access::admin, "audit.list",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto since = parse_since(req);
                   if (!since) co_return Response::error(since.error());
                   auto limit = parse_limit(req);
                   if (!limit) co_return Response::error(limit.error());
                   auto job = [s0 = *since, n = *limit](store::Store& s) {
                     return s.list_audit(s0, n);
                   };
                   auto list = co_await c->db_call(job);
                   if (!list) co_return Response::error(list.error());
                   json::array out;
                   for (const auto& a : *list)
                     out.push_back(audit_to_json(a));
                   co_return Response::json(200, json::object{{"entries", std::move(out)}});
                 });

  // Checks the whole chain on the database thread (one pass over every row).
  ctx.router.add("GET", "/api/v1/audit/verify", Access::admin, "audit.verify",
                 [c](Request&) -> asio::awaitable<Response> {
                   auto job = [](store::Store& s) { return s.verify_audit(); };
                   auto v = co_await c->db_call(job);
                   if (!v) co_return Response::error(v.error());
                   if (!v->intact()) {
                     spdlog::warn("audit log check: row {} is bad: {}", v->bad_row, v->why);
                   }
                   co_return Response::json(200, verdict_to_json(*v));
                 });

  // Who the caller is: what the console signs in with, and what it shows buttons for (the
  // routes still check every request).
  ctx.router.add("GET", "/api/v1/whoami", Access::viewer, "whoami",
                 [](Request& req) -> asio::awaitable<Response> {
                   const Principal& p = req.principal;
                   json::array envs(p.envs.begin(), p.envs.end());
                   json::array apps(p.apps.begin(), p.apps.end());
                   co_return Response::json(200, json::object{{"kind", "token"},
                                                              {"name", p.name},
                                                              {"role", role_name(p.role)},
                                                              {"envs", std::move(envs)},
                                                              {"apps", std::move(apps)},
                                                              {"root", p.token_id == 0}});
                 });

  ctx.router.add("GET", "/api/v1/routes", Access::admin, "routes.list",
                 [c](Request&) -> asio::awaitable<Response> {
                   json::array out;
                   for (const auto& r : c->router.routes()) {
                     out.push_back(json::object{{"method", r.method},
                                                {"pattern", r.pattern},
                                                {"access", access_name(r.access)},
                                                {"action", r.action}});
                   }
                   co_return Response::json(200, json::object{{"routes", std::move(out)}});
                 });
}

}  // namespace slipway::server
