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

}  // namespace

AgentGateway::AgentGateway(ServerContext& ctx) : ctx_(ctx) {}

asio::awaitable<Result<std::string>> AgentGateway::admit(const protocol::Hello& hello) {
  const std::string name = hello.name;
  if (revoked_.contains(name)) {
    co_return err(Errc::forbidden, fmt::format("node {} is revoked", name));
  }
  auto lookup = [name](store::Store& s) { return s.get_node_credential(name); };
  auto rec = co_await ctx_.db_call(lookup);
  if (!rec) co_return err(Errc::internal, "cannot check the node's credential");
  if (*rec && (*rec)->revoked_at != 0) {
    revoked_.insert(name);
    co_return err(Errc::forbidden, fmt::format("node {} is revoked", name));
  }
  if (*rec) {
    if (hello.credential.empty() ||
        !constant_time_equal(sha256_hex(hello.credential), (*rec)->hash)) {
      co_return err(Errc::unauthenticated,
                    fmt::format("node {} is enrolled with another credential", name));
    }
    co_return std::string();
  }
  // A new name: the first agent to say hello with it enrolls it. (An agent that presents a
  // credential the server has no record of, as after the database was lost, enrolls again.)
  std::string issued = protocol::new_node_credential();
  auto enroll = [name, hash = sha256_hex(issued), at = now_ms()](store::Store& s) {
    return s.enroll_node(name, hash, at);
  };
  auto enrolled = co_await ctx_.db_call(enroll);
  if (!enrolled) co_return err(Errc::internal, "cannot record the node's credential");
  if (!*enrolled) {
    co_return err(Errc::unauthenticated,
                  fmt::format("node {} is enrolled with another credential", name));
  }
  co_return issued;
}

void AgentGateway::revoke(const std::string& node) {
  revoked_.insert(node);
  ctx_.inventory.mark_revoked(node);
  if (auto it = sessions_.find(node); it != sessions_.end()) {
    auto conn = it->second;
    sessions_.erase(it);
    conn->close(fmt::format("node {} is revoked", node));
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

asio::awaitable<void> AgentGateway::serve(std::shared_ptr<WsConnection> conn) {
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
  auto admitted = co_await admit(hello);
  // Revoked while the database answered: refused all the same.
  if (admitted && revoked_.contains(name)) {
    admitted = err(Errc::forbidden, fmt::format("node {} is revoked", name));
  }
  if (!admitted) {
    spdlog::warn("agent from {} refused as node {}: {}", conn->remote(), name,
                 admitted.error().message);
    conn->close(admitted.error().message);
    co_return;
  }
  if (!admitted->empty()) spdlog::info("node {} enrolled from {}", name, conn->remote());
  const TimeMs now = now_ms();

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

  inventory::Node node;
  node.name = name;
  node.env = hello.env;
  node.roles = hello.roles;
  node.zone = hello.zone;
  node.tags = hello.tags;
  node.address = hello.address.empty() ? conn->remote() : hello.address;
  node.agent_version = hello.agent_version;
  node.apps = to_node_apps(hello.apps);
  for (auto& [app, a] : node.apps)
    a.updated_at = now;
  ctx_.inventory.register_node(std::move(node), now);
  ctx_.save_node(name);
  sessions_[name] = conn;
  spdlog::info("node {} connected from {} (env {}, roles {}, zone {})", name, conn->remote(),
               hello.env, fmt::join(hello.roles, ","), hello.zone.empty() ? "-" : hello.zone);

  protocol::Welcome w;
  w.node = name;
  w.heartbeat_ms = ctx_.opts.heartbeat.count();
  w.server_version = SLIPWAY_VERSION;
  w.credential = std::move(*admitted);
  conn->send(protocol::encode(protocol::ServerMessage{w}));
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
    on_lost(name, "connection closed");
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
