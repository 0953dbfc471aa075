// AgentLink against a WebSocket server written here with Beast: hello first, the welcome's
// heartbeat interval, heartbeats with apps only when they changed, commands handed over, and a
// reconnect with a fresh hello after the server drops the connection.
#include "agent/agent_link.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <gtest/gtest.h>

namespace slipway::agent {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using asio::ip::tcp;

class RecordingHandler final : public LinkHandler {
 public:
  protocol::Hello hello() override {
    protocol::Hello h;
    h.name = "node-1";
    h.env = "test";
    h.roles = {"api"};
    h.address = "127.0.0.1";
    h.agent_version = "t";
    return h;
  }
  void on_welcome(const protocol::Welcome& w) override { welcomes.push_back(w.heartbeat_ms); }
  void on_command(const protocol::ServerMessage& m) override {
    if (const auto* c = std::get_if<protocol::InstallCommand>(&m)) commands.push_back(c->action);
  }
  std::vector<protocol::AppState> heartbeat_apps() override {
    protocol::AppState s;
    s.app = "web";
    s.version = "1.0.0";
    return {s};
  }
  void on_disconnected() override { ++disconnects; }

  std::vector<int64_t> welcomes;
  std::vector<std::string> commands;
  int disconnects = 0;
};

// Everything the server side saw, per connection.
struct Seen {
  std::mutex mu;
  std::vector<std::vector<std::string>> connections;
};

// Connection 1: welcome (heartbeat 100 ms), read 3 heartbeats, send an install, read until a
// 4th message, then drop. Connection 2: welcome, read one heartbeat, then hold until closed.
asio::awaitable<void> serve(tcp::acceptor& acceptor, Seen& seen) {
  for (int conn = 0; conn < 2; ++conn) {
    auto [aec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (aec) co_return;
    websocket::stream<beast::tcp_stream> ws(std::move(socket));
    auto [hec] = co_await ws.async_accept(asio::as_tuple(asio::use_awaitable));
    if (hec) co_return;
    ws.text(true);
    {
      std::lock_guard lock(seen.mu);
      seen.connections.emplace_back();
    }
    auto read_one = [&]() -> asio::awaitable<bool> {
      beast::flat_buffer buf;
      auto [ec, n] = co_await ws.async_read(buf, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return false;
      std::lock_guard lock(seen.mu);
      seen.connections.back().push_back(beast::buffers_to_string(buf.data()));
      co_return true;
    };
    if (!co_await read_one()) co_return;  // hello
    protocol::Welcome w{"node-1", 100, "test"};
    std::string welcome = protocol::encode(protocol::ServerMessage{w});
    co_await ws.async_write(asio::buffer(welcome), asio::as_tuple(asio::use_awaitable));
    if (conn == 0) {
      for (int i = 0; i < 3; ++i)
        if (!co_await read_one()) co_return;
      protocol::InstallCommand cmd;
      cmd.action = "d1.a1";
      cmd.deploy = 1;
      cmd.app = "web";
      cmd.version = "1.0.0";
      cmd.sha256 = std::string(64, 'a');
      cmd.url = "/api/v1/blobs/x";
      std::string install = protocol::encode(protocol::ServerMessage{cmd});
      co_await ws.async_write(asio::buffer(install), asio::as_tuple(asio::use_awaitable));
      if (!co_await read_one()) co_return;
      beast::get_lowest_layer(ws).close();  // dropped, as by a crashed server
    } else {
      if (!co_await read_one()) co_return;
      while (co_await read_one()) {
      }
    }
  }
}

TEST(AgentLinkTest, HelloHeartbeatsCommandsAndReconnect) {
  asio::io_context ioc(1);
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto port = acceptor.local_endpoint().port();
  Seen seen;
  asio::co_spawn(ioc, serve(acceptor, seen), asio::detached);

  RecordingHandler handler;
  LinkOptions o;
  o.server = "http://127.0.0.1:" + std::to_string(port);
  o.token = "join";
  o.first_backoff = Millis(20);
  o.quiet = true;
  AgentLink link(ioc, o, handler);
  ASSERT_TRUE(link.start());

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto done = [&] {
    std::lock_guard lock(seen.mu);
    return seen.connections.size() == 2 && seen.connections[1].size() >= 2;
  };
  while (!done() && std::chrono::steady_clock::now() < deadline)
    ioc.run_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(done()) << "the link did not reconnect and heartbeat again";
  EXPECT_EQ(link.session(), 2u);
  EXPECT_TRUE(link.welcomed());
  link.stop();
  acceptor.close();
  ioc.run_for(std::chrono::milliseconds(100));

  std::lock_guard lock(seen.mu);
  const auto& first = seen.connections[0];
  ASSERT_GE(first.size(), 4u);
  auto hello = protocol::decode_agent_message(first[0]);
  ASSERT_TRUE(hello);
  ASSERT_TRUE(std::holds_alternative<protocol::Hello>(*hello));
  EXPECT_EQ(std::get<protocol::Hello>(*hello).name, "node-1");
  // The first heartbeat carries the apps; the next ones, unchanged, do not.
  std::vector<protocol::Heartbeat> beats;
  for (size_t i = 1; i < first.size(); ++i) {
    auto m = protocol::decode_agent_message(first[i]);
    ASSERT_TRUE(m) << first[i];
    ASSERT_TRUE(std::holds_alternative<protocol::Heartbeat>(*m)) << first[i];
    beats.push_back(std::get<protocol::Heartbeat>(*m));
  }
  ASSERT_TRUE(beats[0].apps.has_value());
  EXPECT_EQ(beats[0].apps->at(0).version, "1.0.0");
  EXPECT_FALSE(beats[1].apps.has_value());
  EXPECT_FALSE(beats[2].apps.has_value());
  // The reconnect starts with a hello again, and reports the apps again.
  auto hello2 = protocol::decode_agent_message(seen.connections[1][0]);
  ASSERT_TRUE(hello2 && std::holds_alternative<protocol::Hello>(*hello2));
  auto beat2 = protocol::decode_agent_message(seen.connections[1][1]);
  ASSERT_TRUE(beat2 && std::holds_alternative<protocol::Heartbeat>(*beat2));
  EXPECT_TRUE(std::get<protocol::Heartbeat>(*beat2).apps.has_value());

  EXPECT_EQ(handler.welcomes, (std::vector<int64_t>{100, 100}));
  EXPECT_EQ(handler.commands, std::vector<std::string>{"d1.a1"});
  EXPECT_EQ(handler.disconnects, 2);  // dropped by the server, then closed by stop()
}

TEST(AgentLinkTest, RefusesABadServerUrl) {
  asio::io_context ioc(1);
  RecordingHandler handler;
  LinkOptions o;
  o.server = "not a url";
  AgentLink link(ioc, o, handler);
  EXPECT_FALSE(link.start());
}

}  // namespace
}  // namespace slipway::agent
