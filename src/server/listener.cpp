#include "server/listener.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "net/tls.h"
#include "net/tls_context.h"
#include "net/ws_connection.h"
#include "server/agent_gateway.h"
#include "server/console.h"
#include "server/context.h"
#include "server/watchers.h"

namespace slipway::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using namespace std::chrono_literals;

namespace {

constexpr auto kIdleTimeout = 60s;        // waiting for the next request on a kept-alive connection
constexpr size_t kFileChunk = 64 * 1024;  // a file sent over TLS goes by chunks this large
constexpr auto kIoTimeout = 60s;          // any single read or write making no progress
constexpr size_t kMaxHeaderBytes = 16 * 1024;
constexpr size_t kMaxJsonBody = 1 << 20;

// The status line and headers of `r`, as every answer carries them.
template <class Body>
http::response<Body> beast_head(const Response& r, unsigned version, bool keep_alive) {
  http::response<Body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::server, "slipway/" SLIPWAY_VERSION);
  res.set(http::field::content_type, r.content_type);
  for (const auto& [k, v] : r.headers)
    res.set(k, v);
  res.keep_alive(keep_alive);
  return res;
}

http::response<http::string_body> to_beast(const Response& r, unsigned version, bool keep_alive,
                                           bool head) {
  auto res = beast_head<http::string_body>(r, version, keep_alive);
  if (head) {
    res.content_length(r.body.size());
  } else {
    res.body() = r.body;
    res.prepare_payload();
  }
  return res;
}

// Sends [offset, offset + length) of `path` with sendfile(2): the bytes go from the page cache to
// the socket without passing through this process.
asio::awaitable<bool> send_file_range(ServerContext& ctx, beast::tcp_stream& stream,
                                      const std::string& path, uint64_t offset, uint64_t length) {
  using namespace asio::experimental::awaitable_operators;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) co_return false;
  auto& sock = stream.socket();
  stream.expires_never();
  boost::system::error_code ec;
  sock.native_non_blocking(true, ec);
  asio::steady_timer timer(sock.get_executor());
  off_t off = static_cast<off_t>(offset);
  uint64_t remaining = length;
  bool ok = true;
  while (remaining > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(remaining, 8 << 20));
    const ssize_t n = ::sendfile(sock.native_handle(), fd, &off, chunk);
    if (n > 0) {
      remaining -= static_cast<uint64_t>(n);
      ctx.stats.bytes_served += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      timer.expires_after(kIoTimeout);
      auto r =
          co_await (sock.async_wait(tcp::socket::wait_write, asio::as_tuple(asio::use_awaitable)) ||
                    timer.async_wait(asio::as_tuple(asio::use_awaitable)));
      if (r.index() == 1 || std::get<0>(std::get<0>(r))) {
        ok = false;
        break;
      }
      continue;
    }
    ok = false;  // n == 0 (file shrank) or a socket error
    break;
  }
  ::close(fd);
  co_return ok;
}

// Over TLS the bytes must pass through OpenSSL: read and send by chunks.
asio::awaitable<bool> send_file_range(ServerContext& ctx, TlsStream& stream,
                                      const std::string& path, uint64_t offset, uint64_t length) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) co_return false;
  std::vector<char> chunk(kFileChunk);
  off_t off = static_cast<off_t>(offset);
  uint64_t remaining = length;
  bool ok = true;
  while (remaining > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, chunk.size()));
    const ssize_t n = ::pread(fd, chunk.data(), want, off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;  // the file shrank, or cannot be read
      break;
    }
    beast::get_lowest_layer(stream).expires_after(kIoTimeout);
    auto [ec, wn] =
        co_await asio::async_write(stream, asio::buffer(chunk.data(), static_cast<size_t>(n)),
                                   asio::as_tuple(asio::use_awaitable));
    if (ec) {
      ok = false;
      break;
    }
    off += n;
    remaining -= static_cast<uint64_t>(n);
    ctx.stats.bytes_served += static_cast<uint64_t>(n);
  }
  ::close(fd);
  co_return ok;
}

template <class Stream>
void expires_after(Stream& stream, std::chrono::steady_clock::duration d) {
  beast::get_lowest_layer(stream).expires_after(d);
}

template <class Stream>
asio::awaitable<void> write_response(Stream& stream, const Response& r, unsigned version,
                                     bool keep_alive, bool head, bool& ok) {
  auto res = to_beast(r, version, keep_alive, head);
  expires_after(stream, kIoTimeout);
  if (head) {
    http::response_serializer<http::string_body> sr(res);
    auto [ec, n] =
        co_await http::async_write_header(stream, sr, asio::as_tuple(asio::use_awaitable));
    ok = !ec;
  } else {
    auto [ec, n] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
    ok = !ec;
  }
}

// Sends a response: its body, or the file range it names (with sendfile where the stream is
// plain TCP). `download` counts it as an artifact download.
template <class Stream>
asio::awaitable<bool> send_response(ServerContext& ctx, Stream& stream, const Response& res,
                                    unsigned version, bool keep_alive, bool head, bool download) {
  bool ok = false;
  if (!res.file || res.status / 100 != 2) {
    co_await write_response(stream, res, version, keep_alive, head, ok);
    co_return ok;
  }
  const uint64_t length = res.file->length;
  auto fres = beast_head<http::empty_body>(res, version, keep_alive);
  fres.content_length(length);
  http::response_serializer<http::empty_body> sr(fres);
  expires_after(stream, kIoTimeout);
  auto [wec, wn] =
      co_await http::async_write_header(stream, sr, asio::as_tuple(asio::use_awaitable));
  ok = !wec;
  if (ok && !head && length > 0) {
    if (download) ++ctx.stats.artifact_downloads;
    ok = co_await send_file_range(ctx, stream, res.file->path, res.file->offset, length);
  }
  co_return ok;
}

// Reads and throws away what the peer still sends, for a little while, before the connection is
// closed: closing a socket with unread data resets the connection, and a client still sending a
// body the server refused (too large, no token) would lose the answer it was sent.
template <class Stream>
asio::awaitable<void> drain_before_close(Stream& stream, beast::flat_buffer& buf) {
  constexpr size_t kMaxDrain = 64 << 20;
  buf.clear();
  size_t total = 0;
  expires_after(stream, 5s);
  while (total < kMaxDrain) {
    auto [ec, n] = co_await stream.async_read_some(buf.prepare(64 * 1024),
                                                   asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    total += n;
  }
}

// Accepts the WebSocket upgrade of `hdr` on the stream; null when the handshake fails. A browser
// that offered the "slipway" subprotocol (with its token as another) gets it chosen: a browser
// fails the connection when none of what it offered is.
template <class Stream>
asio::awaitable<std::shared_ptr<net::WsConnection>> accept_ws(
    Stream& stream, const http::request<http::empty_body>& hdr, const std::string& remote) {
  websocket::stream<Stream> ws(std::move(stream));
  ws.read_message_max(net::WsConnection::kMaxMessageBytes);
  if (offers_ws_protocol(hdr[http::field::sec_websocket_protocol], "slipway")) {
    ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::sec_websocket_protocol, "slipway");
    }));
  }
  auto [aec] = co_await ws.async_accept(hdr, asio::as_tuple(asio::use_awaitable));
  if (aec) co_return nullptr;
  co_return net::make_ws_connection(std::move(ws), remote);
}

// Serves HTTP requests on a connection (plain or TLS) until it closes.
template <class Stream>
asio::awaitable<void> http_session(ServerContext& ctx, Stream& stream, const std::string& remote,
                                   bool over_limit) {
  beast::flat_buffer buf;
  bool unread_body = false;  // the loop ends with a request body not (wholly) read
  if (over_limit) {
    bool ok = false;
    Response r = Response::error(
        err(Errc::unavailable, fmt::format("too many connections from {} (at most {} at once)",
                                           remote, ctx.opts.max_connections_per_address)));
    r.status = 503;
    r.headers["Retry-After"] = "1";
    co_await write_response(stream, r, 11, false, false, ok);
    beast::error_code ignored;
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ignored);
    co_await drain_before_close(stream, buf);
    co_return;
  }
  bool first = true;
  for (;;) {
    http::request_parser<http::empty_body> hp;
    hp.header_limit(kMaxHeaderBytes);
    hp.body_limit(boost::none);
    // A kept-alive connection may wait idle for its next request; once a request starts (and
    // from the start on a new connection) its whole header must arrive within the header
    // timeout, so that a client trickling bytes cannot hold the connection.
    if (!first && buf.size() == 0) {
      expires_after(stream, kIdleTimeout);
      auto [iec, in] = co_await stream.async_read_some(buf.prepare(kMaxHeaderBytes),
                                                       asio::as_tuple(asio::use_awaitable));
      if (iec) break;
      buf.commit(in);
    }
    first = false;
    expires_after(stream, ctx.opts.header_timeout);
    auto [ec, n] =
        co_await http::async_read_header(stream, buf, hp, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == beast::error::timeout) {
        spdlog::debug("{}: the request header did not arrive in time; connection closed", remote);
      }
      if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
          ec != asio::error::connection_reset && ec != asio::error::eof) {
        // A malformed request: say so, then close.
        Response r = Response::error(
            err(Errc::invalid_argument, fmt::format("malformed HTTP request: {}", ec.message())));
        if (ec == http::error::header_limit) r.status = 431;
        bool ok = false;
        co_await write_response(stream, r, 11, false, false, ok);
        unread_body = true;
      }
      break;
    }
    ++ctx.stats.http_requests;
    auto& hdr = hp.get();
    // A request that changes something appends to the audit log, allowed or refused: while the
    // database queue is full, it waits here, and so does the client's connection.
    if (hdr.method() != http::verb::get && hdr.method() != http::verb::head &&
        !ctx.db->has_room()) {
      co_await ctx.db_room();
    }
    const unsigned version = hdr.version();
    bool keep_alive = hdr.keep_alive();
    Request req;
    req.method = std::string(hdr.method_string());
    req.remote = remote;
    for (const auto& f : hdr) {
      std::string name(f.name_string());
      for (auto& c : name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers[name] = std::string(f.value());
    }
    const bool has_body = hp.content_length().value_or(0) > 0 || hp.chunked();
    Response res;
    const Route* route = nullptr;
    const Route* refused = nullptr;  // matched, but the caller may not use it
    auto target = split_target(hdr.target());
    if (!target) {
      res = Response::error(target.error());
    } else {
      req.path = std::move(target->first);
      req.query = std::move(target->second);
      bool path_exists = false;
      route = ctx.router.match(req.method, req.path, req.params, path_exists);
      if (!route && !path_exists && (req.method == "GET" || req.method == "HEAD") &&
          !req.path.starts_with("/api/")) {
        // Not the API: the web console's files (public; the API checks every call it makes).
        res = serve_console(ctx.opts.console_dir, req.path);
      } else if (!route) {
        res =
            path_exists
                ? Response::error(err(Errc::invalid_argument,
                                      fmt::format("{} is not allowed on {}", req.method, req.path)))
                : Response::error(err(Errc::not_found,
                                      fmt::format("no such route: {} {}", req.method, req.path)));
        if (path_exists) res.status = 405;
      } else if (route->access != Access::public_) {
        // Role here; scope in the handler (authorize), which knows the resource.
        std::string authorization = req.headers["authorization"];
        if (authorization.empty() && route->kind == RouteKind::websocket) {
          authorization = bearer_from_ws_protocols(req.headers["sec-websocket-protocol"]);
        }
        auto who = ctx.authenticate(authorization);
        if (who) req.principal = std::move(*who);
        if (!who) {
          res = Response::error(who.error());
        } else if (req.principal.kind == Principal::Kind::none) {
          res = Response::error(err(Errc::unauthenticated,
                                    "a valid token is required (Authorization: Bearer TOKEN)"));
        } else if (!access_allowed(req.principal, route->access)) {
          res = Response::error(
              err(Errc::forbidden,
                  req.principal.kind == Principal::Kind::agent
                      ? std::string("an agent's join token or node credential may not use this "
                                    "route")
                      : fmt::format("token '{}' ({}) may not {} {}: it needs the {} role",
                                    req.principal.name, role_name(req.principal.role), req.method,
                                    req.path, access_name(route->access))));
        }
        if (res.status / 100 != 2) {
          refused = route;
          route = nullptr;
        }
      }
    }
    set_actor(req);
    if (refused) audit_refusal(ctx, req, *refused, res);
    if (!route) {
      // Do not read a body we refuse: answer and close.
      const bool ok = co_await send_response(ctx, stream, res, version, keep_alive && !has_body,
                                             req.method == "HEAD", false);
      unread_body = has_body;
      if (!ok || !keep_alive || has_body) break;
      continue;
    }
    // Beast compares a body limit with Content-Length only while it parses the header, which was
    // parsed without one: refuse an over-long body here, before reading a byte of it.
    const uint64_t body_limit =
        route->kind == RouteKind::upload ? ctx.opts.max_artifact_bytes : kMaxJsonBody;
    if (hp.content_length() && *hp.content_length() > body_limit) {
      bool ok = false;
      res = Response::error(err(
          Errc::too_large,
          fmt::format("the {} is larger than the limit of {} bytes",
                      route->kind == RouteKind::upload ? "artifact" : "request body", body_limit)));
      audit_refusal(ctx, req, *route, res);
      co_await write_response(stream, res, version, false, false, ok);
      unread_body = true;
      break;
    }

    if (route->kind == RouteKind::websocket) {
      // The handler of a WebSocket route checks what it may (scope) before the upgrade.
      if (auto pre = co_await route->handler(req); pre.status / 100 != 2) {
        bool ok = false;
        co_await write_response(stream, pre, version, false, false, ok);
        break;
      }
      if (!websocket::is_upgrade(hdr)) {
        bool ok = false;
        co_await write_response(
            stream,
            Response::error(err(Errc::invalid_argument, "this route needs a WebSocket upgrade")),
            version, false, false, ok);
        break;
      }
      beast::get_lowest_layer(stream).expires_never();
      auto conn = co_await accept_ws(stream, hdr, remote);
      if (!conn) co_return;
      if (req.path == "/api/v1/agent/ws") {
        co_await ctx.gateway->serve(conn, req.principal);
      } else {
        int64_t id = 0;
        try {
          id = std::stoll(req.param("id"));
        } catch (...) {
        }
        co_await ctx.watchers->serve(conn, id);
      }
      co_return;
    }

    if (route->kind == RouteKind::upload) {
      // The route's own check (a push's scope) before a byte of the body is read: a refused
      // upload is answered at once and nothing of it is stored.
      if (auto admitted = route->admit(req); !admitted) {
        bool ok = false;
        res = Response::error(admitted.error());
        audit_refusal(ctx, req, *route, res);
        co_await write_response(stream, res, version, false, false, ok);
        unread_body = has_body;
        break;
      }
      http::request_parser<http::file_body> fp(std::move(hp));
      fp.body_limit(ctx.opts.max_artifact_bytes);
      const auto tmp = ctx.blobs.temp_path();
      beast::error_code fec;
      fp.get().body().open(tmp.c_str(), beast::file_mode::write_new, fec);
      if (fec) {
        bool ok = false;
        co_await write_response(
            stream, Response::error(err(Errc::io, "cannot store the upload: " + fec.message())),
            version, false, false, ok);
        break;
      }
      bool failed = false;
      while (!fp.is_done()) {
        expires_after(stream, kIoTimeout);
        auto [rec, rn] =
            co_await http::async_read_some(stream, buf, fp, asio::as_tuple(asio::use_awaitable));
        if (rec) {
          failed = true;
          fp.get().body().close();
          std::error_code rm;
          std::filesystem::remove(tmp, rm);
          if (rec == http::error::body_limit) {
            bool ok = false;
            co_await write_response(
                stream,
                Response::error(err(Errc::too_large,
                                    fmt::format("the artifact is larger than the limit of {} bytes",
                                                ctx.opts.max_artifact_bytes))),
                version, false, false, ok);
            unread_body = true;
          }
          break;
        }
      }
      if (failed) break;
      fp.get().body().close();
      req.body_file = tmp.string();
      res = co_await run_audited(ctx, req, *route);
      std::error_code rm;
      std::filesystem::remove(tmp, rm);  // the handler moved it into the store if it kept it
    } else {
      http::request_parser<http::string_body> sp(std::move(hp));
      sp.body_limit(kMaxJsonBody);
      expires_after(stream, kIoTimeout);
      auto [rec, rn] =
          co_await http::async_read(stream, buf, sp, asio::as_tuple(asio::use_awaitable));
      if (rec) {
        if (rec == http::error::body_limit) {
          bool ok = false;
          co_await write_response(
              stream, Response::error(err(Errc::too_large, "the request body is too large")),
              version, false, false, ok);
          unread_body = true;
        }
        break;
      }
      req.body = std::move(sp.get().body());
      res = co_await run_audited(ctx, req, *route);
    }

    const bool ok =
        co_await send_response(ctx, stream, res, version, keep_alive, req.method == "HEAD",
                               route->kind == RouteKind::download);
    if (!ok || !keep_alive) break;
  }
  beast::error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ignored);
  if (unread_body) co_await drain_before_close(stream, buf);
}

// Counts a connection against its remote address while it lives.
class AddressSlot {
 public:
  AddressSlot(ServerContext& ctx, std::string remote) : ctx_(ctx), remote_(std::move(remote)) {
    count_ = ++ctx_.connections_by_address[remote_];
  }
  ~AddressSlot() {
    auto it = ctx_.connections_by_address.find(remote_);
    if (it != ctx_.connections_by_address.end() && --it->second <= 0)
      ctx_.connections_by_address.erase(it);
  }
  AddressSlot(const AddressSlot&) = delete;
  AddressSlot& operator=(const AddressSlot&) = delete;
  bool over(int limit) const { return limit > 0 && count_ > limit; }

 private:
  ServerContext& ctx_;
  std::string remote_;
  int count_ = 0;
};

asio::awaitable<void> connection(ServerContext& ctx, tcp::socket socket) {
  std::string remote;
  {
    boost::system::error_code ec;
    auto ep = socket.remote_endpoint(ec);
    if (!ec) remote = ep.address().to_string();
  }
  AddressSlot slot(ctx, remote);
  const bool over_limit = slot.over(ctx.opts.max_connections_per_address);
  if (over_limit) spdlog::warn("too many connections from {}: answered 503", remote);
  if (!ctx.tls) {
    beast::tcp_stream stream(std::move(socket));
    co_await http_session(ctx, stream, remote, over_limit);
    co_return;
  }
  TlsStream stream(std::move(socket), *ctx.tls);
  beast::get_lowest_layer(stream).expires_after(ctx.opts.tls_handshake_timeout);
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server,
                                               asio::as_tuple(asio::use_awaitable));
  if (hec) {
    spdlog::debug("TLS handshake with {} failed: {}", remote, hec.message());
    co_return;
  }
  co_await http_session(ctx, stream, remote, over_limit);
}

}  // namespace

Result<std::shared_ptr<tcp::acceptor>> bind_listener(ServerContext& ctx,
                                                     const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return err(Errc::invalid_argument, fmt::format("--listen '{}' must be HOST:PORT", listen));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const std::string port = listen.substr(colon + 1);
  boost::system::error_code ec;
  tcp::resolver resolver(ctx.ioc);
  auto results =
      resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return err(Errc::invalid_argument,
               fmt::format("--listen '{}': cannot resolve: {}", listen, ec.message()));
  }
  auto endpoint = results.begin()->endpoint();
  auto acceptor = std::make_shared<tcp::acceptor>(ctx.ioc);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return err(Errc::unavailable, fmt::format("cannot listen on {}: {}", listen, ec.message()));
  }
  auto local = acceptor->local_endpoint();
  const std::string addr = local.address().is_v6() ? "[" + local.address().to_string() + "]"
                                                   : local.address().to_string();
  ctx.url = fmt::format("{}://{}:{}", ctx.tls ? "https" : "http", addr, local.port());
  return acceptor;
}

asio::awaitable<void> accept_loop(ServerContext& ctx, std::shared_ptr<tcp::acceptor> acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor->async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      spdlog::warn("accept failed: {}", ec.message());
      if (ec == asio::error::no_descriptors) {
        asio::steady_timer t(ctx.ioc, 100ms);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(ctx.ioc, connection(ctx, std::move(socket)), asio::detached);
  }
}

}  // namespace slipway::server
