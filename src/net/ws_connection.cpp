#include "net/ws_connection.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <spdlog/spdlog.h>

namespace slipway::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

WsConnection::WsConnection(WsStream ws, std::string remote, bool is_server)
    : ws_(std::move(ws)), remote_(std::move(remote)) {
  ws_.read_message_max(1 << 20);
  ws_.set_option(websocket::stream_base::timeout::suggested(is_server ? beast::role_type::server
                                                                      : beast::role_type::client));
  ws_.text(true);
}

void WsConnection::send(std::string msg) {
  if (!open_ || close_after_) return;
  queued_bytes_ += msg.size();
  queue_.push_back(std::move(msg));
  if (queued_bytes_ > kMaxQueuedBytes) {
    spdlog::warn("closing WebSocket to {}: it does not read fast enough", remote_);
    open_ = false;
    queue_.clear();
    beast::get_lowest_layer(ws_).close();
    return;
  }
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(
        ws_.get_executor(), [self = shared_from_this()] { return self->write_loop(); },
        asio::detached);
  }
}

asio::awaitable<void> WsConnection::write_loop() {
  while (open_ && !queue_.empty()) {
    std::string msg = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= msg.size();
    auto [ec, n] = co_await ws_.async_write(asio::buffer(msg), asio::as_tuple(asio::use_awaitable));
    if (ec) {
      open_ = false;
      break;
    }
  }
  writing_ = false;
  if (open_ && close_after_) {
    open_ = false;
    websocket::close_reason cr(websocket::close_code::normal);
    cr.reason = close_reason_.substr(0, 120);
    auto [ec] = co_await ws_.async_close(cr, asio::as_tuple(asio::use_awaitable));
    (void)ec;
  }
}

asio::awaitable<Result<std::string>> WsConnection::read() {
  // One buffer for the life of the connection: it keeps its capacity, so reading a message
  // allocates only the string it returns.
  auto& buf = read_buf_;
  buf.clear();
  auto [ec, n] = co_await ws_.async_read(buf, asio::as_tuple(asio::use_awaitable));
  if (ec) {
    open_ = false;
    if (ec == websocket::error::closed) co_return err(Errc::unavailable, "closed by the peer");
    co_return err(Errc::unavailable, ec.message());
  }
  if (!ws_.got_text()) co_return err(Errc::invalid_argument, "binary messages are not accepted");
  co_return beast::buffers_to_string(buf.data());
}

void WsConnection::close(std::string reason) {
  if (!open_ || close_after_) return;
  close_after_ = true;
  close_reason_ = std::move(reason);
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(
        ws_.get_executor(), [self = shared_from_this()] { return self->write_loop(); },
        asio::detached);
  }
}

}  // namespace slipway::net
