#include "server/agent_gateway.h"

#include <boost/asio/this_coro.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/crypto.h"
#include "net/ws_connection.h"
#include "server/context.h"
#include "server/convergence.h"
#include "server/notify_events.h"

namespace slipway::server {

namespace {

std::map<std::string, inventory::NodeApp> to_node_apps(
    const std::vector<protocol::AppState>& apps) {
  std::map<std::string, inventory::NodeApp> out;
  for (const auto& a : apps) {
    inventory::NodeApp n;
    n.version = a.version;
    n.healthy = a.healthy;
    n.running = a.running;
    n.port = a.port;
    n.releases = a.releases;
    n.last_healthy = a.last_healthy;
    out[a.app] = std::move(n);
  }
  return out;
}

// Tells the agent why (in full: a close reason holds 123 bytes at most) and closes.
void disconnect(WsConnection& conn, const std::string& why) {
  conn.send(protocol::encode(protocol::ServerMessage{
      protocol::Disconnect{why.substr(0, protocol::kMaxDisconnectReason)}}));
  conn.close(why);
}

}  // namespace

AgentGateway::AgentGateway(ServerContext& ctx) : ctx_(ctx) {}

asio::awaitable<Result<AgentGateway::Admission>> AgentGateway::admit(const protocol::Hello& hello,
                                                                     const Principal& who,
                                                                     const std::string& remote) {
  const std::string name = hello.name;
  if (revoked_.contains(name)) {
    co_return err(Errc::forbidden, fmt::format("node {} is revoked", name));
  }
  if (!who.node.empty() && who.node != name) {
    co_return err(
        Errc::forbidden,
        fmt::format("the credential this agent presented is node {}'s, not {}'s", who.node, name));
  }
  auto lookup = [name](store::Store& s) { return s.get_node_credential(name); };
  auto rec = co_await ctx_.db_call(lookup);
  if (!rec) co_return err(Errc::internal, "cannot check the node's credential");
  if (!*rec) co_return co_await enroll(hello, who, remote);
  store::NodeCredential c = std::move(**rec);
  if (c.revoked_at != 0) {
    revoked_.insert(name);
    co_return err(Errc::forbidden, fmt::format("node {} is revoked", name));
  }
  // (An agent that presents a credential the server has no record of, as after the database was
  // lost, enrolls again above.)
  if (hello.credential.empty() || !constant_time_equal(sha256_hex(hello.credential), c.hash)) {
    co_return err(Errc::unauthenticated,
                  fmt::format("node {} is enrolled with another credential", name));
  }
  if (auto st = check_claim(c, hello.env, hello.roles); !st) co_return st.error();
  if (c.env.empty()) {
    if (auto st = co_await bind_legacy(c, hello); !st) co_return st.error();
  }
  co_return Admission{"", c.pending, std::move(c)};
}

asio::awaitable<Status> AgentGateway::bind_legacy(store::NodeCredential& c,
                                                  const protocol::Hello& hello) {
  if (ctx_.enrollment.is_protected(hello.env)) {
    co_return err(Errc::forbidden,
                  fmt::format("node {} was enrolled before environments were bound to nodes, and "
                              "environment {} is protected: an admin binds it with `slipway "
                              "nodes move {} --env {}`",
                              c.node, hello.env, c.node, hello.env));
  }
  auto job = [name = c.node, env = hello.env, roles = hello.roles](store::Store& s) {
    return s.move_node(name, env, roles);
  };
  auto bound = co_await ctx_.db_call(job);
  if (!bound) co_return bound.error();
  c.env = hello.env;
  c.roles = hello.roles;
  ctx_.enrollment.put_node(c);
  spdlog::info("node {} (enrolled before environments were bound) is bound to {} (roles {})",
               c.node, c.env, fmt::join(c.roles, ","));
  co_return Status{};
}

asio::awaitable<Result<AgentGateway::Admission>> AgentGateway::enroll(const protocol::Hello& hello,
                                                                      const Principal& who,
                                                                      const std::string& remote) {
  const std::string name = hello.name;
  if (!who.node.empty()) {
    co_return err(Errc::unauthenticated, fmt::format("node {} is not enrolled", name));
  }
  // Which join token opened the connection: none for an admin token (an admin may enroll
  // anywhere), the default one, or one of `slipway join-token create` (as it is now: it may
  // have been revoked or used up since the upgrade).
  std::optional<store::JoinTokenRecord> token;
  const bool by_admin = who.join_token.empty();
  if (!by_admin && who.join_token != kDefaultJoinToken) {
    const auto* t = ctx_.enrollment.join_token_named(who.join_token);
    if (!t) co_return err(Errc::unauthenticated, "the join token is not valid");
    token = *t;
  }
  const TimeMs now = now_ms();
  if (!by_admin) {
    if (auto st = check_enrollment(token ? &*token : nullptr, hello.env, hello.roles,
                                   ctx_.enrollment.is_protected(hello.env), now);
        !st) {
      co_return st.error();
    }
  }
  std::string issued = protocol::new_node_credential();
  store::NodeCredential c;
  c.node = name;
  c.hash = sha256_hex(issued);
  c.enrolled_at = now;
  c.env = hello.env;
  c.roles = hello.roles;
  c.join_token = by_admin ? who.name : who.join_token;
  c.pending = token && token->approve;
  // Fail closed, as for the routes (context.h run_audited): the audit entry is committed before
  // the enrollment, and an enrollment that cannot be audited does not happen.
  store::AuditRecord entry = enrollment_audit_entry(c, who, remote);
  struct Outcome {
    Result<int64_t> entry;
    Result<bool> enrolled;
  };
  auto job = [c, entry, id = token ? token->id : 0](store::Store& s) {
    Outcome o{s.append_audit(entry), false};
    if (o.entry) {
      if (auto st = s.commit_now(); !st) o.entry = st.error();
    }
    if (o.entry) o.enrolled = s.enroll_node(c, id);
    return o;
  };
  auto done = co_await ctx_.db_call(job);
  if (!done.entry) {
    spdlog::error("refused the enrollment of node {}: the audit log cannot be written: {}", name,
                  done.entry.error().message);
    co_return err(Errc::unavailable, "the server cannot audit the enrollment now: try again later");
  }
  auto& enrolled = done.enrolled;
  if (!enrolled || !*enrolled) {
    const Error e = !enrolled
                        ? (enrolled.error().code == Errc::failed_precondition
                               ? enrolled.error()
                               : err(Errc::internal, "cannot record the node's credential"))
                        : err(Errc::unauthenticated,
                              fmt::format("node {} is enrolled with another credential", name));
    record_enrollment_outcome(ctx_, std::move(entry), *done.entry, http_status(e.code), e.message);
    co_return e;
  }
  ctx_.enrollment.put_node(c);
  if (token) ctx_.enrollment.count_use(token->id, now);
  record_enrollment_outcome(ctx_, std::move(entry), *done.entry, 201, "");
  co_return Admission{std::move(issued), c.pending, std::move(c)};
}

void AgentGateway::revoke(const std::string& node) {
  revoked_.insert(node);
  pending_.erase(node);
  ctx_.inventory.mark_revoked(node);
  if (auto it = sessions_.find(node); it != sessions_.end()) {
    auto conn = it->second;
    sessions_.erase(it);
    disconnect(*conn, fmt::format("node {} is revoked", node));
    commands_lost(node);
  }
  spdlog::warn("node {} revoked: its agent is cut off and the name cannot connect again", node);
}

void AgentGateway::load_revoked(const std::vector<std::string>& nodes) {
  for (const auto& n : nodes) {
    revoked_.insert(n);
    ctx_.inventory.mark_revoked(n);
  }
}

void AgentGateway::load_pending(const std::vector<store::NodeCredential>& nodes) {
  for (const auto& c : nodes) {
    if (c.pending && c.revoked_at == 0)
      pending_[c.node] = PendingNode{c, std::nullopt, "", false, 0};
  }
}

inventory::Node AgentGateway::as_node(const PendingNode& p) {
  inventory::Node n;
  n.name = p.enrollment.node;
  n.env = p.enrollment.env;
  n.roles = p.enrollment.roles;
  n.first_seen = p.enrollment.enrolled_at;
  n.last_seen = p.last_seen != 0 ? p.last_seen : p.enrollment.enrolled_at;
  if (p.hello) {
    n.zone = p.hello->zone;
    n.tags = p.hello->tags;
    n.address = p.hello->address.empty() ? p.remote : p.hello->address;
    n.agent_version = p.hello->agent_version;
  }
  return n;
}

void AgentGateway::approved(const std::string& node) {
  auto it = pending_.find(node);
  if (it == pending_.end()) return;
  PendingNode p = std::move(it->second);
  pending_.erase(it);
  if (p.connected && p.hello && sessions_.contains(node)) {
    register_hello(*p.hello, p.remote);
    spdlog::info("node {} approved: it is a node of {} now", node, p.enrollment.env);
    ctx_.convergence->check(node);
  }
}

void AgentGateway::moved(const store::NodeCredential& c, const std::string& why) {
  if (auto p = pending_.find(c.node); p != pending_.end()) p->second.enrollment = c;
  if (auto it = sessions_.find(c.node); it != sessions_.end()) {
    auto conn = it->second;
    sessions_.erase(it);
    disconnect(*conn, why);
    if (auto p = pending_.find(c.node); p != pending_.end()) {
      p->second.connected = false;
    } else {
      on_lost(c.node, "moved to " + c.env);
    }
  }
  if (const auto* known = ctx_.inventory.find(c.node)) {
    inventory::Node n = *known;
    const auto state = n.state;
    n.env = c.env;
    n.roles = c.roles;
    ctx_.inventory.register_node(std::move(n), known->last_seen);
    if (state == inventory::NodeState::revoked) {
      ctx_.inventory.mark_revoked(c.node);
    } else {
      ctx_.inventory.mark_lost(c.node, now_ms());
    }
    ctx_.save_node(c.node);
  }
}

void AgentGateway::register_hello(const protocol::Hello& hello, const std::string& remote) {
  const TimeMs now = now_ms();
  inventory::Node node;
  node.name = hello.name;
  node.env = hello.env;
  node.roles = hello.roles;
  node.zone = hello.zone;
  node.tags = hello.tags;
  node.address = hello.address.empty() ? remote : hello.address;
  node.agent_version = hello.agent_version;
  node.apps = to_node_apps(hello.apps);
  for (auto& [app, a] : node.apps)
    a.updated_at = now;
  ctx_.inventory.register_node(std::move(node), now);
  ctx_.save_node(hello.name);
}

asio::awaitable<void> AgentGateway::serve(std::shared_ptr<WsConnection> conn, Principal who) {
  // The first message must be hello.
  auto first = co_await conn->read();
  if (!first) co_return;
  auto msg = protocol::decode_agent_message(*first);
  if (!msg || !std::holds_alternative<protocol::Hello>(*msg)) {
    const std::string why = msg ? "the first message must be hello" : msg.error().message;
    spdlog::warn("agent from {} refused: {}", conn->remote(), why);
    conn->close(why);
    co_return;
  }
  auto hello = std::get<protocol::Hello>(std::move(*msg));
  const std::string name = hello.name;
  auto admitted = co_await admit(hello, who, conn->remote());
  // Revoked while the database answered: refused all the same.
  if (admitted && revoked_.contains(name)) {
    admitted = err(Errc::forbidden, fmt::format("node {} is revoked", name));
  }
  if (!admitted) {
    spdlog::warn("agent from {} refused as node {}: {}", conn->remote(), name,
                 admitted.error().message);
    disconnect(*conn, admitted.error().message);
    co_return;
  }
  if (!admitted->credential.empty()) {
    spdlog::info("node {} enrolled from {} into {} (roles {}) through join token {}{}", name,
                 conn->remote(), hello.env, fmt::join(hello.roles, ","),
                 admitted->enrollment.join_token, admitted->pending ? ", pending approval" : "");
  }

  if (auto it = sessions_.find(name); it != sessions_.end()) {
    // The same agent reconnecting before its old connection was noticed dead (it presented the
    // node's credential): the newest connection wins.
    spdlog::warn("node {} connected again from {}; closing its previous connection", name,
                 conn->remote());
    auto old = it->second;
    sessions_.erase(it);
    old->close("replaced by a new connection");
    commands_lost(name);
  }
  sessions_[name] = conn;
  if (admitted->pending) {
    pending_[name] = PendingNode{admitted->enrollment, hello, conn->remote(), true, now_ms()};
    spdlog::info(
        "node {} connected from {} and waits for approval (slipway nodes approve {}): it is sent "
        "nothing until then",
        name, conn->remote(), name);
  } else {
    register_hello(hello, conn->remote());
    spdlog::info("node {} connected from {} (env {}, roles {}, zone {})", name, conn->remote(),
                 hello.env, fmt::join(hello.roles, ","), hello.zone.empty() ? "-" : hello.zone);
  }

  protocol::Welcome w;
  w.node = name;
  w.heartbeat_ms = ctx_.opts.heartbeat.count();
  w.server_version = SLIPWAY_VERSION;
  w.credential = std::move(admitted->credential);
  w.pending = admitted->pending;
  conn->send(protocol::encode(protocol::ServerMessage{w}));
  if (!admitted->pending)
    ctx_.convergence->check(name);  // a new machine, or one that missed a deploy

  for (;;) {
    auto text = co_await conn->read();
    if (!text) break;
    auto m = protocol::decode_agent_message(*text);
    if (!m) {
      spdlog::warn("node {}: malformed message refused: {}", name, m.error().message);
      continue;
    }
    const TimeMs t = now_ms();
    // A connection that was replaced must not speak for the node any more.
    if (auto it = sessions_.find(name); it == sessions_.end() || it->second != conn) break;
    if (auto p = pending_.find(name); p != pending_.end()) {
      // Nothing was sent to it, so it has nothing to report: only heartbeats are expected.
      p->second.last_seen = t;
      continue;
    }
    ctx_.inventory.touch(name, t);
    if (auto* hb = std::get_if<protocol::Heartbeat>(&*m)) {
      if (hb->apps) {
        auto apps = to_node_apps(*hb->apps);
        std::vector<std::pair<std::string, std::string>> went_bad;  // app, version
        if (const auto* before = ctx_.inventory.find(name)) {
          for (const auto& [app, a] : apps) {
            auto old = before->apps.find(app);
            if (old != before->apps.end() && old->second.healthy && !a.healthy &&
                old->second.version == a.version && !a.version.empty())
              went_bad.emplace_back(app, a.version);
          }
        }
        ctx_.inventory.set_apps(name, apps, t);
        ctx_.save_node(name);
        for (const auto& [app, version] : went_bad) {
          spdlog::warn("node {}: {} {} is no longer healthy", name, app, version);
          ctx_.engine->on_app_unhealthy(name, app, version, "reported by the agent's health probe");
          ctx_.convergence->on_app_unhealthy(name, app, version);
        }
      }
    } else if (auto* step = std::get_if<protocol::StepEvent>(&*m)) {
      ctx_.engine->on_step(name, *step);
    } else if (auto* res = std::get_if<protocol::InstallResult>(&*m)) {
      // A result the engine refuses (forged or replayed) changes nothing, not even the node's
      // apps in the inventory; on_result logs and counts the refusal.
      if (!ctx_.engine->report_refusal(name, res->action, &res->app)) {
        if (!res->apps.empty()) ctx_.inventory.set_apps(name, to_node_apps(res->apps), t);
        ctx_.save_node(name);
      }
      ctx_.engine->on_result(name, *res);
    } else if (auto* exec = std::get_if<protocol::ExecResult>(&*m)) {
      on_exec_result(name, *exec);
    } else {
      spdlog::warn("node {}: unexpected message (hello twice?)", name);
    }
    if (!ctx_.db->has_room()) co_await wait_for_database(name);
  }

  if (auto it = sessions_.find(name); it != sessions_.end() && it->second == conn) {
    sessions_.erase(it);
    if (auto p = pending_.find(name); p != pending_.end()) {
      p->second.connected = false;
    } else {
      on_lost(name, "connection closed");
    }
  }
}

asio::awaitable<void> AgentGateway::wait_for_database(const std::string& node) {
  // The agent's next messages wait in its socket meanwhile, and TCP slows the agent down. Its
  // silence is ours: check_liveness does not count it.
  auto it = paused_.insert(node);
  co_await ctx_.db_room();
  paused_.erase(it);
}

void AgentGateway::on_lost(const std::string& node, const std::string& why) {
  spdlog::info("node {} lost: {}", node, why);
  ctx_.inventory.mark_lost(node, now_ms());
  ctx_.save_node(node);
  commands_lost(node);
  notify_node_lost(ctx_, node, why);
}

void AgentGateway::commands_lost(const std::string& node) {
  ctx_.engine->on_node_lost(node);
  for (auto& [prefix, handler] : exec_handlers_)
    handler->on_node_lost(node);
}

void AgentGateway::add_exec_handler(std::string prefix, engine::ExecResultHandler& handler) {
  exec_handlers_.emplace_back(std::move(prefix), &handler);
}

void AgentGateway::on_exec_result(const std::string& node, const protocol::ExecResult& r) {
  for (auto& [prefix, handler] : exec_handlers_) {
    if (r.action.starts_with(prefix)) {
      if (handler->on_exec_result(node, r)) return;
      break;
    }
  }
  ++ignored_exec_results_;
  spdlog::warn(
      "node {}: exec result for action {:?} refused: no command with this action is waiting "
      "for this node (unknown, sent to another node, or already answered)",
      node, std::string_view(r.action).substr(0, 64));
}

bool AgentGateway::send(const std::string& node, const protocol::ServerMessage& m) {
  if (pending_.contains(node)) return false;  // nothing until it is approved
  auto it = sessions_.find(node);
  if (it == sessions_.end() || !it->second->is_open()) return false;
  it->second->send(protocol::encode(m));
  return true;
}

bool AgentGateway::send_install(const std::string& node, const protocol::InstallCommand& cmd) {
  return send(node, cmd);
}

bool AgentGateway::send_deactivate(const std::string& node,
                                   const protocol::DeactivateCommand& cmd) {
  return send(node, cmd);
}

bool AgentGateway::send_exec(const std::string& node, const protocol::ExecCommand& cmd) {
  return send(node, cmd);
}

void AgentGateway::check_liveness() {
  const TimeMs now = now_ms();
  for (const auto& node : paused_) {
    if (sessions_.contains(node)) ctx_.inventory.touch(node, now);
  }
  for (const auto& name : ctx_.inventory.expire(now, ctx_.opts.lost_after)) {
    if (auto it = sessions_.find(name); it != sessions_.end()) {
      auto conn = it->second;
      sessions_.erase(it);
      conn->close("no heartbeat");
    }
    ctx_.save_node(name);
    spdlog::info("node {} lost: no heartbeat for {}", name, format_duration(ctx_.opts.lost_after));
    commands_lost(name);
    notify_node_lost(ctx_, name, "no heartbeat for " + format_duration(ctx_.opts.lost_after));
  }
}

void AgentGateway::close_all() {
  for (auto& [name, conn] : sessions_)
    conn->close("server shutting down");
  sessions_.clear();
}

}  // namespace slipway::server
