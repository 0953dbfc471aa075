// The audit log's one writer (context.h: set_actor, run_audited, audit_refusal). The listener
// calls these for every request; the store keys and chains the rows (store.h).
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "common/clock.h"
#include "server/context.h"

namespace slipway::server {

namespace {

constexpr size_t kMaxClaimedUser = 127;

std::string bounded(std::string s, size_t max) {
  if (s.size() > max) {
    s.resize(max);
    s += "...";
  }
  return s;
}

bool audited(const Request& req) {
  return req.method != "GET" && req.method != "HEAD";
}

// X-Slipway-User when it is one short line of printable text (UTF-8 allowed), else "".
std::string claimed_user_of(const Request& req) {
  const auto it = req.headers.find("x-slipway-user");
  if (it == req.headers.end() || it->second.empty() || it->second.size() > kMaxClaimedUser)
    return {};
  for (const unsigned char c : it->second) {
    if (c < 0x20 || c == 0x7f) return {};
  }
  return it->second;
}

// The row of a request as far as it is known before its outcome.
store::AuditRecord entry_of(const Request& req, const Route& route) {
  store::AuditRecord a;
  a.at = now_ms();
  a.actor = req.actor;
  a.token = req.principal.name;
  a.claimed_user = req.claimed_user;
  a.remote = req.remote;
  a.method = req.method;
  a.path = bounded(req.path, 512);
  a.action = route.action;
  std::string target;
  for (const auto& p : req.params) {
    if (!target.empty()) target += ' ';
    target += fmt::format("{}={}", p.first, p.second);
  }
  if (!req.audit_target.empty()) target += (target.empty() ? "" : "; ") + req.audit_target;
  a.target = bounded(std::move(target), 1024);
  return a;
}

void with_outcome(store::AuditRecord& a, const Response& res) {
  a.at = now_ms();
  a.status = res.status;
  a.error_code = res.error_code;
  a.error = bounded(res.error_message, 512);
}

// Appends on the database thread without waiting: for rows written after the fact.
void post_row(ServerContext& ctx, store::AuditRecord a) {
  ctx.db->post([a = std::move(a)](store::Store& s) {
    if (auto id = s.append_audit(a); !id) {
      spdlog::error("cannot append to the audit log ({} {}, outcome {}): {}", a.method, a.path,
                    a.status, id.error().message);
    }
  });
}

asio::awaitable<Response> call_handler(const Route& route, Request& req) {
  try {
    co_return co_await route.handler(req);
  } catch (const std::exception& e) {
    spdlog::error("{} {}: {}", req.method, req.path, e.what());
    co_return Response::error(err(Errc::internal, e.what()));
  }
}

}  // namespace

void set_actor(Request& req) {
  req.actor = req.principal.name;
  req.claimed_user = claimed_user_of(req);
}

asio::awaitable<Response> run_audited(ServerContext& ctx, Request& req, const Route& route) {
  if (!audited(req)) co_return co_await call_handler(route, req);
  // Committed before the handler runs: the database thread would commit it after its batch.
  auto job = [a = entry_of(req, route)](store::Store& s) -> Result<int64_t> {
    auto id = s.append_audit(a);
    if (!id) return id;
    if (auto st = s.commit_now(); !st) return st.error();
    return id;
  };
  auto entry = co_await ctx.db_call(job);
  if (!entry) {
    spdlog::error("refused {} {} by {}: the audit log cannot be written: {}", req.method, req.path,
                  req.actor, entry.error().message);
    co_return Response::error(
        err(Errc::unavailable,
            fmt::format("the audit log cannot be written ({}): the request was refused and nothing "
                        "was done (an action that cannot be audited is not taken); try again once "
                        "the server's database is writable",
                        entry.error().message)));
  }
  Response res = co_await call_handler(route, req);
  store::AuditRecord outcome = entry_of(req, route);
  outcome.outcome_of = *entry;
  with_outcome(outcome, res);
  post_row(ctx, std::move(outcome));
  co_return res;
}

void audit_refusal(ServerContext& ctx, const Request& req, const Route& route,
                   const Response& res) {
  if (!audited(req)) return;
  store::AuditRecord a = entry_of(req, route);
  with_outcome(a, res);
  post_row(ctx, std::move(a));
}

Status open_audit_log(store::Store& s, const std::filesystem::path& data_dir) {
  const auto path = data_dir / "audit.key";
  auto existing = SecretKey::load(path, "audit key");
  if (!existing) return existing.error();
  if (*existing) {
    s.set_audit_key(**existing);
    return {};
  }
  // The rows in the log now are from before the key. The file is written only once that is
  // recorded: a stop in between leaves no key, and the next start does it again (no row was
  // keyed yet). Its existence, not anything in the database, says the legacy record is genuine.
  const SecretKey key = SecretKey::random();
  s.set_audit_key(key);
  if (auto st = s.adopt_legacy_audit(); !st) return st;
  if (auto st = s.commit_now(); !st) return st;
  const auto tmp = data_dir / "audit.key.tmp";
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    return err(Errc::io, fmt::format("cannot remove {}: {}", tmp.string(), std::strerror(errno)));
  }
  if (auto st = key.write_file(tmp, "audit key"); !st) return st;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return err(Errc::io, fmt::format("cannot rename {} to {}: {}", tmp.string(), path.string(),
                                     std::strerror(errno)));
  }
  if (auto st = sync_dir(data_dir); !st) return st;
  spdlog::info(
      "made the audit key {}: the audit log's rows are chained with an HMAC under it from "
      "now on (keep it with secrets.key, apart from the database and its backups)",
      path.string());
  return {};
}

store::AuditRecord enrollment_audit_entry(const store::NodeCredential& c, const Principal& who,
                                          const std::string& remote) {
  store::AuditRecord a;
  a.at = now_ms();
  a.actor = who.name;
  a.token = who.name;
  a.remote = remote;
  // Not a read: the enrollment happens on the WebSocket the GET upgraded.
  a.method = "WEBSOCKET";
  a.path = "/api/v1/agent/ws";
  a.action = "node.enroll";
  a.target =
      bounded(fmt::format("node={} env={} roles={} join_token={}{}", c.node, c.env,
                          fmt::join(c.roles, ","), c.join_token, c.pending ? " pending" : ""),
              1024);
  return a;
}

void record_enrollment_outcome(ServerContext& ctx, store::AuditRecord entry, int64_t entry_id,
                               int status, const std::string& error) {
  entry.outcome_of = entry_id;
  entry.at = now_ms();
  entry.status = status;
  entry.error = bounded(error, 512);
  post_row(ctx, std::move(entry));
}

}  // namespace slipway::server
