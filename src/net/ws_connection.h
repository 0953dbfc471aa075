// A WebSocket connection with a send queue (Beast allows one write in flight at a time), for both
// ends: the server's agent and watch sessions, and the agent's connection to the server. Include it
// only from the .cpp files that speak WebSocket (it brings in Beast).
#pragma once

#include <deque>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "common/error.h"

namespace slipway::net {

using WsStream = boost::beast::websocket::stream<boost::beast::tcp_stream>;

class WsConnection : public std::enable_shared_from_this<WsConnection> {
 public:
  // is_server selects Beast's suggested timeouts for that role.
  WsConnection(WsStream ws, std::string remote, bool is_server = true);

  // Queues a text message; when more than max_queued_bytes wait, the peer is too slow and the
  // connection is closed.
  void send(std::string msg);
  // The next text message; an error when the connection closed or the message is too large.
  boost::asio::awaitable<Result<std::string>> read();
  // Sends a close frame after what is queued, then closes.
  void close(std::string reason);
  bool is_open() const { return open_; }
  const std::string& remote() const { return remote_; }

  static constexpr size_t kMaxQueuedBytes = 16 << 20;

 private:
  boost::asio::awaitable<void> write_loop();

  WsStream ws_;
  boost::beast::flat_buffer read_buf_;
  std::string remote_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool open_ = true;
  bool close_after_ = false;
  std::string close_reason_;
};

}  // namespace slipway::net
