// The agents' side of the server: one WebSocket per agent (GET /api/v1/agent/ws). It registers
// nodes in the inventory, forwards their step reports and results to the deploy engine, delivers
// the engine's commands (engine::NodeTransport) and ad-hoc commands (engine::ExecTransport),
// routes exec results by the prefix of their action to the handler registered for it, and
// notices agents that go silent.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "engine/interfaces.h"

namespace slipway::net {
class WsConnection;
}

namespace slipway::server {

using net::WsConnection;

class ServerContext;

class AgentGateway final : public engine::NodeTransport, public engine::ExecTransport {
 public:
  explicit AgentGateway(ServerContext& ctx);

  // Serves one agent connection until it closes.
  boost::asio::awaitable<void> serve(std::shared_ptr<WsConnection> conn);

  bool send_install(const std::string& node, const protocol::InstallCommand& cmd) override;
  bool send_deactivate(const std::string& node, const protocol::DeactivateCommand& cmd) override;
  bool send_exec(const std::string& node, const protocol::ExecCommand& cmd) override;

  // Exec results whose action starts with `prefix` go to `handler`, which also hears of every
  // node that is lost. The ad-hoc runs use "x" (engine::RunManager::kActionPrefix); another
  // user of exec (load-balancer drain) registers its own prefix. Prefixes must not be prefixes
  // of each other. Register before agents connect; the handler must outlive the gateway's use.
  void add_exec_handler(std::string prefix, engine::ExecResultHandler& handler);
  // Exec results no handler accepted (unknown action, or from a node that was not asked).
  uint64_t ignored_exec_results() const { return ignored_exec_results_; }

  // Marks agents lost that sent nothing for lost_after; call about once a second.
  void check_liveness();
  size_t connected() const { return sessions_.size(); }
  // Agent connections not read from now, until the database queue has room (back-pressure).
  size_t paused() const { return paused_.size(); }
  void close_all();

  // Cuts a node off for good (slipway nodes revoke): closes its connection, and its name is
  // refused from now on. The caller has recorded the revocation in the store.
  void revoke(const std::string& node);
  // Names revoked before this process started.
  void load_revoked(const std::vector<std::string>& nodes);

 private:
  void on_lost(const std::string& node, const std::string& why);
  // False when the node has no open connection.
  bool send(const std::string& node, const protocol::ServerMessage& m);
  // Tells the engine and the exec handlers that whatever the node was doing has failed.
  void commands_lost(const std::string& node);
  void on_exec_result(const std::string& node, const protocol::ExecResult& r);
  // Checks the hello's credential against the node's enrollment, or enrolls a new name.
  // Returns the credential to send in the welcome (a new enrollment) or "" (an enrolled node);
  // an error (the reason to close with) when the agent is refused.
  boost::asio::awaitable<Result<std::string>> admit(const protocol::Hello& hello);
  // Returns once the database queue has room; meanwhile the node's connection is not read (its
  // messages wait in the socket, TCP pushes back on the agent) and the node counts as alive.
  boost::asio::awaitable<void> wait_for_database(const std::string& node);

  ServerContext& ctx_;
  std::map<std::string, std::shared_ptr<WsConnection>> sessions_;
  std::vector<std::pair<std::string, engine::ExecResultHandler*>> exec_handlers_;
  std::set<std::string> revoked_;
  std::multiset<std::string> paused_;  // nodes whose reading waits for the database (a node's
                                       // old and new connection may both wait)
  uint64_t ignored_exec_results_ = 0;
};

}  // namespace slipway::server
