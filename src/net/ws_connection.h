// A WebSocket connection with a send queue (Beast allows one write in flight at a time), for both
// ends: the server's agent and watch sessions, and the agent's connection to the server; over
// plain TCP or TLS. Include it only from the .cpp files that speak WebSocket (it brings in Beast).
#pragma once

#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "common/error.h"

namespace slipway::net {

using WsStream = boost::beast::websocket::stream<boost::beast::tcp_stream>;
using WssStream =
    boost::beast::websocket::stream<boost::beast::ssl_stream<boost::beast::tcp_stream>>;

class WsConnection : public std::enable_shared_from_this<WsConnection> {
 public:
  virtual ~WsConnection() = default;
  // Queues a text message; when more than max_queued_bytes wait, the peer is too slow and the
  // connection is closed.
  virtual void send(std::string msg) = 0;
  // The next text message; an error when the connection closed or the message is too large.
  virtual boost::asio::awaitable<Result<std::string>> read() = 0;
  // Sends a close frame after what is queued, then closes.
  virtual void close(std::string reason) = 0;
  bool is_open() const { return open_; }
  const std::string& remote() const { return remote_; }

  static constexpr size_t kMaxQueuedBytes = 16 << 20;
  // The largest message either end reads (the agent and the server alike).
  static constexpr size_t kMaxMessageBytes = 1 << 20;

 protected:
  explicit WsConnection(std::string remote) : remote_(std::move(remote)) {}
  std::string remote_;
  bool open_ = true;
};

// is_server selects Beast's suggested timeouts for that role.
std::shared_ptr<WsConnection> make_ws_connection(WsStream ws, std::string remote,
                                                 bool is_server = true);
std::shared_ptr<WsConnection> make_ws_connection(WssStream ws, std::string remote,
                                                 bool is_server = true);

}  // namespace slipway::net
