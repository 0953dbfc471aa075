// The agents' side of the server: one WebSocket per agent (GET /api/v1/agent/ws). It registers
// nodes in the inventory, forwards their step reports and results to the deploy engine, delivers
// the engine's commands (engine::NodeTransport), and notices agents that go silent.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "engine/interfaces.h"

namespace slipway::net {
class WsConnection;
}

namespace slipway::server {

using net::WsConnection;

class ServerContext;

class AgentGateway final : public engine::NodeTransport {
 public:
  explicit AgentGateway(ServerContext& ctx);

  // Serves one agent connection until it closes.
  boost::asio::awaitable<void> serve(std::shared_ptr<WsConnection> conn);

  bool send_install(const std::string& node, const protocol::InstallCommand& cmd) override;
  bool send_deactivate(const std::string& node, const protocol::DeactivateCommand& cmd) override;

  // Marks agents lost that sent nothing for lost_after; call about once a second.
  void check_liveness();
  size_t connected() const { return sessions_.size(); }
  void close_all();

 private:
  void on_lost(const std::string& node, const std::string& why);

  ServerContext& ctx_;
  std::map<std::string, std::shared_ptr<WsConnection>> sessions_;
};

}  // namespace slipway::server
