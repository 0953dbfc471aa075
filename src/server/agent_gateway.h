// The agents' side of the server: one WebSocket per agent (GET /api/v1/agent/ws). It registers
// nodes in the inventory, forwards their step reports and results to the deploy engine, delivers
// the engine's commands (engine::NodeTransport) and ad-hoc commands (engine::ExecTransport),
// routes exec results by the prefix of their action to the handler registered for it, and
// notices agents that go silent.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "engine/interfaces.h"
#include "inventory/node.h"
#include "server/access.h"
#include "store/store.h"

namespace slipway::net {
class WsConnection;
}

namespace slipway::server {

using net::WsConnection;

class ServerContext;

class AgentGateway final : public engine::NodeTransport, public engine::ExecTransport {
 public:
  explicit AgentGateway(ServerContext& ctx);

  // Serves one agent connection until it closes. `who` authenticated its upgrade: a join token
  // (which may only enroll a new node, within its scope), a node's credential (which may only
  // speak for that node), or an admin token.
  boost::asio::awaitable<void> serve(std::shared_ptr<WsConnection> conn, Principal who);

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

  // A node enrolled through a join token with approval, waiting for `slipway nodes approve`: it
  // is not in the inventory, so nothing (deploy, convergence, run, drain) can pick it, and the
  // gateway sends it nothing. Its connection is kept, so that approval takes effect at once.
  struct PendingNode {
    store::NodeCredential enrollment;
    std::optional<protocol::Hello> hello;  // of its current (or last) connection
    std::string remote;
    bool connected = false;
    TimeMs last_seen = 0;
  };
  // Pending nodes enrolled before this process started.
  void load_pending(const std::vector<store::NodeCredential>& nodes);
  const std::map<std::string, PendingNode>& pending() const { return pending_; }
  // As an inventory node (state lost; what it said in its hello), for listings and selectors.
  static inventory::Node as_node(const PendingNode& p);
  // The node is approved (recorded by the caller): a connected agent registers now and
  // converges; one not connected registers at its next hello.
  void approved(const std::string& node);
  // The node's enrollment now binds it to c.env and c.roles (recorded by the caller: slipway
  // nodes move). Its agent, if connected, is disconnected with `why`; the inventory's record (or
  // the pending one) takes the new environment and roles.
  void moved(const store::NodeCredential& c, const std::string& why);

 private:
  void on_lost(const std::string& node, const std::string& why);
  // False when the node has no open connection.
  bool send(const std::string& node, const protocol::ServerMessage& m);
  // Tells the engine and the exec handlers that whatever the node was doing has failed.
  void commands_lost(const std::string& node);
  void on_exec_result(const std::string& node, const protocol::ExecResult& r);
  // What admit decided: the credential to send in the welcome ("" for a node enrolled before),
  // and whether the node waits for approval.
  struct Admission {
    std::string credential;
    bool pending = false;
    store::NodeCredential enrollment;
  };
  // Checks the hello against the node's enrollment (its credential; the environment and roles it
  // may claim), or enrolls a new name within the scope of the join token that opened the
  // connection. An error (the reason to close with) when the agent is refused.
  boost::asio::awaitable<Result<Admission>> admit(const protocol::Hello& hello,
                                                  const Principal& who, const std::string& remote);
  boost::asio::awaitable<Result<Admission>> enroll(const protocol::Hello& hello,
                                                   const Principal& who, const std::string& remote);
  // A node enrolled before schema 11 and not seen since is bound to what its hello claims, unless
  // that is a protected environment.
  boost::asio::awaitable<Status> bind_legacy(store::NodeCredential& c,
                                             const protocol::Hello& hello);
  // Puts the node of an admitted hello in the inventory (alive) and saves it.
  void register_hello(const protocol::Hello& hello, const std::string& remote);
  // Returns once the database queue has room; meanwhile the node's connection is not read (its
  // messages wait in the socket, TCP pushes back on the agent) and the node counts as alive.
  boost::asio::awaitable<void> wait_for_database(const std::string& node);

  ServerContext& ctx_;
  std::map<std::string, std::shared_ptr<WsConnection>> sessions_;
  std::vector<std::pair<std::string, engine::ExecResultHandler*>> exec_handlers_;
  std::set<std::string> revoked_;
  std::multiset<std::string> paused_;  // nodes whose reading waits for the database (a node's
                                       // old and new connection may both wait)
  std::map<std::string, PendingNode> pending_;
  uint64_t ignored_exec_results_ = 0;
};

}  // namespace slipway::server
