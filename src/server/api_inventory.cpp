// Inventory routes: nodes, the status matrix, server statistics.
#include <fmt/format.h>

#include "common/names.h"
#include "server/agent_gateway.h"
#include "server/context.h"
#include "server/convergence.h"

namespace slipway::server {

namespace {

// A node with its quarantine, and with what it should run: per app `desired` (the version, "" when
// nothing is desired) and `drift` (it runs something else), and the same for the node as a whole
// (`desired`: app -> version, also for apps it does not run; `drift`: any app drifts).
json::value node_json(const inventory::Node& n, const std::string& only_app,
                      const engine::DesiredState& desired_state) {
  json::array roles;
  for (const auto& r : n.roles)
    roles.emplace_back(r);
  json::object tags;
  for (const auto& [k, v] : n.tags)
    tags[k] = v;
  const auto desired = desired_state.for_node(n);
  json::object desired_json;
  bool drift = false;
  for (const auto& [app, d] : desired) {
    if (!only_app.empty() && app != only_app) continue;
    desired_json[app] = d.version;
    auto it = n.apps.find(app);
    drift = drift || it == n.apps.end() || it->second.version != d.version;
  }
  json::object apps;
  for (const auto& [name, a] : n.apps) {
    if (!only_app.empty() && name != only_app) continue;
    const auto want = desired.find(name);
    const std::string want_version = want == desired.end() ? "" : want->second.version;
    json::array releases;
    for (const auto& r : a.releases)
      releases.emplace_back(r);
    apps[name] = json::object{{"version", a.version},
                              {"healthy", a.healthy && n.state == inventory::NodeState::alive},
                              {"running", a.running},
                              {"port", a.port},
                              {"releases", std::move(releases)},
                              {"last_healthy", a.last_healthy},
                              {"updated_at", format_time(a.updated_at)},
                              {"desired", want_version},
                              {"drift", !want_version.empty() && want_version != a.version}};
  }
  const auto& q = n.quarantine;
  return json::object{{"name", n.name},
                      {"env", n.env},
                      {"roles", std::move(roles)},
                      {"zone", n.zone},
                      {"tags", std::move(tags)},
                      {"address", n.address},
                      {"agent_version", n.agent_version},
                      {"state", inventory::node_state_name(n.state)},
                      {"first_seen", format_time(n.first_seen)},
                      {"last_seen", format_time(n.last_seen)},
                      {"apps", std::move(apps)},
                      {"desired", std::move(desired_json)},
                      {"drift", drift},
                      {"pending", false},
                      {"quarantined", q.has_value()},
                      {"quarantine_reason", q ? q->reason : ""},
                      {"quarantined_at", q ? json::value(format_time(q->since)) : nullptr}};
}

// A node waiting for approval: as a node, with state "pending", nothing desired and whether its
// agent is connected.
json::value pending_json(const AgentGateway::PendingNode& p) {
  json::object o = node_json(AgentGateway::as_node(p), "", engine::DesiredState{}).as_object();
  o["state"] = "pending";
  o["pending"] = true;
  o["connected"] = p.connected;
  o["join_token"] = p.enrollment.join_token;
  return o;
}

Result<inventory::Selector> selector_from_query(const Request& req) {
  inventory::Selector sel;
  if (auto s = req.query.find("selector"); s != req.query.end() && !s->second.empty()) {
    auto parsed = inventory::Selector::parse(s->second);
    if (!parsed) return parsed.error();
    sel = std::move(*parsed);
  }
  const std::pair<const char*, NameKind> keys[] = {
      {"env", NameKind::env}, {"role", NameKind::role}, {"zone", NameKind::zone}};
  for (const auto& [key, kind] : keys) {
    auto it = req.query.find(key);
    if (it == req.query.end() || it->second.empty()) continue;
    if (auto st = validate_name(kind, it->second); !st) return st.error();
    sel.add(inventory::eq_term(key, it->second));
  }
  return sel;
}

}  // namespace

void register_inventory_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;

  // Nodes; lost ones too unless ?state=alive.
  ctx.router.add("GET", "/api/v1/nodes", Access::viewer, "node.list",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto sel = selector_from_query(req);
                   if (!sel) co_return Response::error(sel.error());
                   const std::string state = req.query_or("state");
                   if (!state.empty() && state != "alive" && state != "lost" &&
                       state != "revoked" && state != "pending") {
                     co_return Response::error(err(
                         Errc::invalid_argument, "state must be alive, lost, revoked or pending"));
                   }
                   if (auto st = authorize(req, req.query_or("env"), ""); !st)
                     co_return Response::error(st.error());
                   json::array nodes;
                   for (const auto* n : c->inventory.select(*sel, true)) {
                     if (!state.empty() && inventory::node_state_name(n->state) != state) continue;
                     if (!in_scope(req.principal, n->env, "")) continue;
                     nodes.push_back(node_json(*n, "", c->convergence->desired()));
                   }
                   for (const auto& [name, p] : c->gateway->pending()) {
                     if (!state.empty() && state != "pending") break;
                     if (!sel->matches(AgentGateway::as_node(p))) continue;
                     if (!in_scope(req.principal, p.enrollment.env, "")) continue;
                     nodes.push_back(pending_json(p));
                   }
                   co_return Response::json(200, json::object{{"nodes", std::move(nodes)}});
                 });

  ctx.router.add(
      "GET", "/api/v1/nodes/{name}", Access::viewer, "node.show",
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string name = req.param("name");
        if (auto st = validate_name(NameKind::node, name); !st)
          co_return Response::error(st.error());
        const auto* n = c->inventory.find(name);
        if (auto p = c->gateway->pending().find(name); !n && p != c->gateway->pending().end()) {
          if (auto st = authorize(req, p->second.enrollment.env, ""); !st)
            co_return Response::error(st.error());
          co_return Response::json(200, pending_json(p->second));
        }
        if (!n)
          co_return Response::error(err(Errc::not_found, fmt::format("no node named {}", name)));
        if (auto st = authorize(req, n->env, ""); !st) co_return Response::error(st.error());
        co_return Response::json(200, node_json(*n, "", c->convergence->desired()));
      });

  // Lifts a node's quarantine; it converges again at once.
  ctx.router.add("POST", "/api/v1/nodes/{name}/release", Access::deployer, "node.release",
                 [c](Request& req) -> asio::awaitable<Response> {
                   const std::string name = req.param("name");
                   if (auto st = validate_name(NameKind::node, name); !st)
                     co_return Response::error(st.error());
                   if (auto st = expect_empty_body(req, "release request"); !st)
                     co_return Response::error(st.error());
                   // Every app of the node converges again: an app-scoped token may not.
                   if (const auto* known = c->inventory.find(name)) {
                     if (auto st = authorize(req, known->env, kAll); !st)
                       co_return Response::error(st.error());
                   }
                   if (auto st = c->convergence->release(name, req.actor); !st)
                     co_return Response::error(st.error());
                   const auto* n = c->inventory.find(name);
                   co_return Response::json(200, node_json(*n, "", c->convergence->desired()));
                 });

  // Cuts a node's agent off for good: its credential is revoked, its connection closed, and its
  // name can never connect again (the machine comes back under a new name).
  ctx.router.add("POST", "/api/v1/nodes/{name}/revoke", Access::admin, "node.revoke",
                 [c](Request& req) -> asio::awaitable<Response> {
                   const std::string name = req.param("name");
                   if (auto st = validate_name(NameKind::node, name); !st)
                     co_return Response::error(st.error());
                   if (auto st = expect_empty_body(req, "revoke request"); !st)
                     co_return Response::error(st.error());
                   if (const auto* known = c->inventory.find(name)) {
                     if (auto st = authorize(req, known->env, kAll); !st)
                       co_return Response::error(st.error());
                   }
                   auto job = [name, by = req.actor, at = now_ms()](store::Store& s) {
                     return s.revoke_node(name, by, at);
                   };
                   if (auto st = co_await c->db_call(job); !st)
                     co_return Response::error(st.error());
                   c->enrollment.forget_node(name);  // its credential authenticates nothing now
                   c->gateway->revoke(name);
                   const auto* n = c->inventory.find(name);
                   json::value body =
                       n ? node_json(*n, "", c->convergence->desired())
                         : json::value(json::object{{"name", name}, {"state", "revoked"}});
                   co_return Response::json(200, body);
                 });

  // The "what is deployed where" matrix: every node with its apps (optionally one app).
  ctx.router.add(
      "GET", "/api/v1/status", Access::viewer, "status.show",
      [c](Request& req) -> asio::awaitable<Response> {
        auto sel = selector_from_query(req);
        if (!sel) co_return Response::error(sel.error());
        const std::string app = req.query_or("app");
        if (!app.empty()) {
          if (auto st = validate_name(NameKind::app, app); !st)
            co_return Response::error(st.error());
        }
        if (auto st = authorize(req, req.query_or("env"), app); !st)
          co_return Response::error(st.error());
        json::array nodes;
        for (const auto* n : c->inventory.select(*sel, true)) {
          if (!in_scope(req.principal, n->env, "")) continue;
          if (!app.empty() && !n->apps.contains(app) && n->state != inventory::NodeState::alive)
            continue;
          nodes.push_back(node_json(*n, app, c->convergence->desired()));
        }
        json::array running;
        for (const auto* d : c->engine->running()) {
          if (!app.empty() && d->app != app) continue;
          if (!in_scope(req.principal, d->env, d->app)) continue;
          running.push_back(engine::to_json(*d, false));
        }
        co_return Response::json(
            200, json::object{{"nodes", std::move(nodes)}, {"running", std::move(running)}});
      });

  ctx.router.add(
      "GET", "/api/v1/stats", Access::viewer, "stats.show",
      [c](Request&) -> asio::awaitable<Response> {
        // The database queue (store/db_executor.h), read without waiting for the database.
        const auto q = c->db->stats();
        co_return Response::json(
            200,
            json::object{{"version", SLIPWAY_VERSION},
                         {"nodes", static_cast<int64_t>(c->inventory.size())},
                         {"nodes_alive", static_cast<int64_t>(c->inventory.alive_count())},
                         {"agents_connected", static_cast<int64_t>(c->gateway->connected())},
                         {"deploys_running", static_cast<int64_t>(c->engine->running().size())},
                         {"runs_running", static_cast<int64_t>(c->runs->running())},
                         {"plans_running", static_cast<int64_t>(c->plans->running().size())},
                         {"artifact_downloads", c->stats.artifact_downloads.load()},
                         {"bytes_served", c->stats.bytes_served.load()},
                         {"http_requests", c->stats.http_requests.load()},
                         {"ignored_agent_reports", c->engine->ignored_reports()},
                         {"ignored_exec_results", c->gateway->ignored_exec_results()},
                         {"db_queue", static_cast<int64_t>(q.depth)},
                         {"db_queue_peak", static_cast<int64_t>(q.peak)},
                         {"db_queue_limit", static_cast<int64_t>(q.high_water)},
                         {"db_waiting", static_cast<int64_t>(q.waiting)},
                         {"db_waits", q.waits},
                         {"agents_paused", static_cast<int64_t>(c->gateway->paused())},
                         {"nodes_unsaved", static_cast<int64_t>(c->node_writes->pending())},
                         {"node_writes_coalesced", c->node_writes->replaced()}});
      });
}

}  // namespace slipway::server
