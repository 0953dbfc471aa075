// Accepts TCP connections and serves HTTP/1.1 on them: the route table's handlers for ordinary
// requests, streamed request bodies to a file for uploads, sendfile(2) for artifact downloads, and
// the upgrade to WebSocket for agents and watchers. Every read and write has a deadline.
#pragma once

#include <memory>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/error.h"

namespace slipway::server {

class ServerContext;

// Binds HOST:PORT (port 0 picks a free one); returns the bound endpoint's URL via ctx.url.
Result<std::shared_ptr<boost::asio::ip::tcp::acceptor>> bind_listener(ServerContext& ctx,
                                                                      const std::string& listen);
boost::asio::awaitable<void> accept_loop(ServerContext& ctx,
                                         std::shared_ptr<boost::asio::ip::tcp::acceptor> acceptor);

}  // namespace slipway::server
