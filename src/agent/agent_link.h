// The agent's connection to the server: one WebSocket (GET /api/v1/agent/ws) that connects,
// says hello, waits for the welcome, sends heartbeats, hands the server's commands to a handler
// and reconnects with exponential backoff and jitter when it is lost. The real agent (agent.cpp)
// and the fleet simulator of the benchmarks (bench/fleet) both speak through it, so the
// simulator exercises the very code path of a real agent.
//
// Runs on the io_context it is given (one thread); many links may share one io_context.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/duration.h"
#include "common/error.h"
#include "net/tls.h"
#include "protocol/agent_protocol.h"

namespace slipway::agent {

struct LinkOptions {
  std::string server;  // http://HOST:PORT or https://HOST:PORT
  // The join token as given: SECRET, or SECRET:sha256:HEX (see net/tls.h); only SECRET is sent,
  // and only until the node has its own credential (see LinkHandler::hello).
  std::string token;
  // What an https:// server's certificate is checked against. Empty: the join token's CA
  // fingerprint when it has one, else the system's store.
  net::TlsClientConfig tls{};
  // Where to keep the CA certificate found through the fingerprint on the first TLS connection
  // (mode 0644); empty: not kept.
  std::string save_ca{};
  Millis first_backoff{500};
  Millis max_backoff{30'000};
  Millis connect_timeout{10'000};
  // Connection problems are logged at warning level, or at debug level when quiet (a simulator
  // of thousands of agents).
  bool quiet = false;
};

// What the link asks of its owner. Called on the link's io_context thread.
class LinkHandler {
 public:
  virtual ~LinkHandler() = default;
  // The hello of a new connection, asked before its WebSocket upgrade: once the hello carries
  // the node's credential, the upgrade authenticates with it rather than with the join token.
  virtual protocol::Hello hello() = 0;
  // The server welcomed this connection.
  virtual void on_welcome(const protocol::Welcome& w) { (void)w; }
  // A command from the server (install, deactivate or ping).
  virtual void on_command(const protocol::ServerMessage& m) = 0;
  // The apps to report, asked before every heartbeat; the link sends them only when they
  // differ from what it last sent on this connection.
  virtual std::vector<protocol::AppState> heartbeat_apps() = 0;
  // The connection is gone (the link reconnects by itself unless stopped).
  virtual void on_disconnected() {}
};

class AgentLink {
 public:
  AgentLink(boost::asio::io_context& ioc, LinkOptions opts, LinkHandler& handler);
  ~AgentLink();
  AgentLink(const AgentLink&) = delete;
  AgentLink& operator=(const AgentLink&) = delete;

  // Checks the server URL and starts connecting; invalid_argument for a bad URL.
  Status start();
  // Closes the connection and stops reconnecting. Call on the io_context thread (or after it
  // stopped running).
  void stop();
  // Sends a message on the current connection once it is welcomed; dropped when there is none.
  // Safe from any thread.
  void send(std::string msg);
  // How many connections the server has welcomed so far (a command belongs to one of them).
  uint64_t session() const;
  bool welcomed() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace slipway::agent
