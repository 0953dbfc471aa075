// The audit log's one writer: the listener calls record_audit for every request to a route that
// changes something, after the handler answered (or the request was refused).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "server/context.h"

namespace slipway::server {

namespace {

std::string bounded(std::string s, size_t max) {
  if (s.size() > max) {
    s.resize(max);
    s += "...";
  }
  return s;
}

}  // namespace

void record_audit(ServerContext& ctx, const Request& req, const Route& route, const Response& res) {
  if (req.method == "GET" || req.method == "HEAD") return;
  store::AuditRecord a;
  a.at = now_ms();
  a.actor = bounded(req.actor.empty() ? req.principal.name : req.actor, 128);
  a.token = req.principal.name;
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
  a.status = res.status;
  a.error_code = res.error_code;
  a.error = bounded(res.error_message, 512);
  ctx.db->post([a = std::move(a)](store::Store& s) {
    if (auto id = s.append_audit(a); !id) {
      spdlog::error("cannot append to the audit log ({} {}): {}", a.method, a.path,
                    id.error().message);
    }
  });
}

void record_enrollment_audit(ServerContext& ctx, const store::NodeCredential& c,
                             const Principal& who, const std::string& remote) {
  store::AuditRecord a;
  a.at = c.enrolled_at;
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
  a.status = 201;
  ctx.db->post([a = std::move(a)](store::Store& s) {
    if (auto id = s.append_audit(a); !id) {
      spdlog::error("cannot append to the audit log (enrollment {}): {}", a.target,
                    id.error().message);
    }
  });
}

}  // namespace slipway::server
