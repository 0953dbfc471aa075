#include "net/ws_connection.h"

#include <deque>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace slipway::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

namespace {

template <class Ws>
class WsConnectionImpl final : public WsConnection {
 public:
  WsConnectionImpl(Ws ws, std::string remote, bool is_server)
      : WsConnection(std::move(remote)), ws_(std::move(ws)) {
    ws_.read_message_max(kMaxMessageBytes);
    ws_.set_option(websocket::stream_base::timeout::suggested(
        is_server ? beast::role_type::server : beast::role_type::client));
    ws_.text(true);
  }

  void send(std::string msg) override {
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
    start_writing();
  }

  asio::awaitable<Result<std::string>> read() override {
    // One buffer for the life of the connection: it keeps its capacity, so reading a message
    // allocates only the string it returns.
    auto& buf = read_buf_;
    buf.clear();
    auto [ec, n] = co_await ws_.async_read(buf, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      open_ = false;
      if (ec == websocket::error::closed) {
        const std::string why(ws_.reason().reason.c_str());
        co_return err(Errc::unavailable, why.empty() ? std::string("closed by the peer")
                                                     : "closed by the peer: " + why);
      }
      if (ec == websocket::error::message_too_big) {
        co_return err(Errc::too_large,
                      fmt::format("a message larger than {} bytes", kMaxMessageBytes));
      }
      co_return err(Errc::unavailable, ec.message());
    }
    if (!ws_.got_text()) co_return err(Errc::invalid_argument, "binary messages are not accepted");
    co_return beast::buffers_to_string(buf.data());
  }

  void close(std::string reason) override {
    if (!open_ || close_after_) return;
    close_after_ = true;
    close_reason_ = std::move(reason);
    start_writing();
  }

 private:
  void start_writing() {
    if (writing_) return;
    writing_ = true;
    auto self = std::static_pointer_cast<WsConnectionImpl>(shared_from_this());
    asio::co_spawn(
        ws_.get_executor(), [self] { return self->write_loop(); }, asio::detached);
  }

  asio::awaitable<void> write_loop() {
    while (open_ && !queue_.empty()) {
      std::string msg = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= msg.size();
      auto [ec, n] =
          co_await ws_.async_write(asio::buffer(msg), asio::as_tuple(asio::use_awaitable));
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

  Ws ws_;
  beast::flat_buffer read_buf_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool close_after_ = false;
  std::string close_reason_;
};

}  // namespace

std::shared_ptr<WsConnection> make_ws_connection(WsStream ws, std::string remote, bool is_server) {
  return std::make_shared<WsConnectionImpl<WsStream>>(std::move(ws), std::move(remote), is_server);
}

std::shared_ptr<WsConnection> make_ws_connection(WssStream ws, std::string remote, bool is_server) {
  return std::make_shared<WsConnectionImpl<WssStream>>(std::move(ws), std::move(remote), is_server);
}

}  // namespace slipway::net
