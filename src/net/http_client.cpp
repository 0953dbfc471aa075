#include "net/http_client.h"

#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/tls_context.h"

namespace slipway::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

Result<Url> parse_url(std::string_view text) {
  auto r = boost::urls::parse_uri(text);
  if (!r) {
    return err(Errc::invalid_argument, fmt::format("'{}' is not a valid URL: {}",
                                                   text.substr(0, 200), r.error().message()));
  }
  Url u;
  // The scheme is case-insensitive.
  if (r->scheme_id() != boost::urls::scheme::http && r->scheme_id() != boost::urls::scheme::https) {
    return err(
        Errc::invalid_argument,
        fmt::format("'{}': only http:// and https:// URLs are supported", text.substr(0, 200)));
  }
  u.scheme = r->scheme_id() == boost::urls::scheme::https ? "https" : "http";
  u.host = std::string(r->encoded_host());
  if (u.host.size() > 2 && u.host.front() == '[' && u.host.back() == ']') {
    u.host = u.host.substr(1, u.host.size() - 2);
  }
  if (u.host.empty()) {
    return err(Errc::invalid_argument, fmt::format("'{}' has no host", text.substr(0, 200)));
  }
  u.port = u.scheme == "https" ? "443" : "80";
  if (r->has_port() && !r->port().empty()) {  // "http://host:/" is the default port
    // port_number() is 0 for anything that is not 1..65535.
    if (r->port_number() == 0 || r->port().size() > 5) {
      return err(
          Errc::invalid_argument,
          fmt::format("'{}': the port must be a number from 1 to 65535", text.substr(0, 200)));
    }
    u.port = std::to_string(r->port_number());
  }
  // With an authority the path is empty or absolute ("http://h:x/" is not host h, path "x/").
  if (!r->encoded_path().empty() && r->encoded_path().front() != '/') {
    return err(Errc::invalid_argument,
               fmt::format("'{}' is not a valid URL: bad port or path", text.substr(0, 200)));
  }
  // Path and query; a fragment is the client's business and is never sent.
  u.target = std::string(r->encoded_target());
  if (u.target.empty() || u.target.front() != '/') u.target = "/" + u.target;
  return u;
}

namespace {

Error net_error(const beast::error_code& ec, std::string_view what, const Url& u) {
  if (ec == beast::error::timeout || ec == asio::error::timed_out) {
    return err(Errc::timeout, fmt::format("{} {}:{} timed out", what, u.host, u.port));
  }
  return err(Errc::unavailable,
             fmt::format("{} {}:{} failed: {}", what, u.host, u.port, ec.message()));
}

// Runs `body` as a coroutine on a private io_context until it finishes.
template <class T, class F>
Result<T> run_sync(F&& body) {
  asio::io_context ioc;
  std::optional<Result<T>> out;
  asio::co_spawn(
      ioc, [&]() -> asio::awaitable<void> { out.emplace(co_await body(ioc)); },
      [&](const std::exception_ptr& e) {
        if (e && !out) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            out.emplace(err(Errc::internal, ex.what()));
          }
        }
      });
  ioc.run();
  if (!out) return err(Errc::internal, "HTTP exchange did not complete");
  return std::move(*out);
}

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// Connects to u (TLS for https) and runs `use(stream)` on the connection.
template <class T, class F>
asio::awaitable<Result<T>> with_connection(const Url& u, const HttpOptions& opts, F& use) {
  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  auto [rec, endpoints] =
      co_await resolver.async_resolve(u.host, u.port, asio::as_tuple(asio::use_awaitable));
  if (rec) co_return net_error(rec, "resolving", u);
  if (u.scheme != "https") {
    beast::tcp_stream stream(ex);
    stream.expires_after(opts.timeout);
    auto [cec, ep] = co_await stream.async_connect(endpoints, asio::as_tuple(asio::use_awaitable));
    if (cec) co_return net_error(cec, "connecting to", u);
    co_return co_await use(stream);
  }
  auto tls = make_client_tls(opts.tls);
  if (!tls) co_return tls.error();
  TlsStream stream(ex, (*tls)->ctx);
  auto& low = beast::get_lowest_layer(stream);
  low.expires_after(opts.timeout);
  auto [cec, ep] = co_await low.async_connect(endpoints, asio::as_tuple(asio::use_awaitable));
  if (cec) co_return net_error(cec, "connecting to", u);
  prepare_client_stream(stream, u.host);
  auto [hec] = co_await stream.async_handshake(boost::asio::ssl::stream_base::client,
                                               asio::as_tuple(asio::use_awaitable));
  if (hec) {
    co_return err(Errc::unavailable, fmt::format("{}:{}: {}", u.host, u.port,
                                                 describe_tls_failure(**tls, hec.message())));
  }
  co_return co_await use(stream);
}

void close_stream(beast::tcp_stream& s) {
  beast::error_code ignored;
  s.socket().shutdown(tcp::socket::shutdown_both, ignored);
}
void close_stream(TlsStream& s) {
  beast::error_code ignored;
  beast::get_lowest_layer(s).socket().shutdown(tcp::socket::shutdown_both, ignored);
}

template <class Body>
void set_common(http::request<Body>& req, std::string_view method, const Url& u,
                const Headers& headers) {
  req.method_string(method);
  req.target(u.target);
  req.version(11);
  // An IPv6 literal goes back into brackets: "[::1]:8080".
  const bool ipv6 = u.host.find(':') != std::string::npos;
  req.set(http::field::host, (ipv6 ? "[" + u.host + "]" : u.host) + ":" + u.port);
  req.set(http::field::user_agent, "slipway/" SLIPWAY_VERSION);
  for (const auto& [k, v] : headers)
    req.set(k, v);
}

template <class Req, class Stream>
asio::awaitable<Result<HttpResult>> exchange_on(Stream& stream, const Url& u, Req& req,
                                                const HttpOptions& opts) {
  beast::get_lowest_layer(stream).expires_after(opts.timeout);
  auto [wec, wn] = co_await http::async_write(stream, req, asio::as_tuple(asio::use_awaitable));
  if (wec) co_return net_error(wec, "sending to", u);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(opts.max_body);
  // The answer to HEAD has a Content-Length but no body (RFC 9110 section 9.3.2).
  if (req.method() == http::verb::head) parser.skip(true);
  auto [rec, rn] =
      co_await http::async_read(stream, buf, parser, asio::as_tuple(asio::use_awaitable));
  if (rec == http::error::body_limit) {
    co_return err(Errc::too_large, fmt::format("response from {}:{} is larger than {} bytes",
                                               u.host, u.port, opts.max_body));
  }
  if (rec) co_return net_error(rec, "reading from", u);
  HttpResult out;
  auto& res = parser.get();
  out.status = static_cast<int>(res.result_int());
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (auto& ch : name)
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    out.headers[name] = std::string(f.value());
  }
  out.body = std::move(res.body());
  close_stream(stream);
  co_return out;
}

template <class Req>
asio::awaitable<Result<HttpResult>> exchange(const Url& u, Req& req, const HttpOptions& opts) {
  auto use = [&](auto& stream) { return exchange_on(stream, u, req, opts); };
  co_return co_await with_connection<HttpResult>(u, opts, use);
}

}  // namespace

Result<HttpResult> http_request(std::string_view method, std::string_view url,
                                const Headers& headers, std::string_view body,
                                const HttpOptions& opts) {
  auto u = parse_url(url);
  if (!u) return u.error();
  return run_sync<HttpResult>([&](asio::io_context&) -> asio::awaitable<Result<HttpResult>> {
    http::request<http::string_body> req;
    set_common(req, method, *u, headers);
    req.body() = std::string(body);
    if (!body.empty() && req.find(http::field::content_type) == req.end()) {
      req.set(http::field::content_type, "application/json");
    }
    req.prepare_payload();
    co_return co_await exchange(*u, req, opts);
  });
}

Result<HttpResult> http_upload_file(std::string_view method, std::string_view url,
                                    const Headers& headers, const std::filesystem::path& file,
                                    const HttpOptions& opts) {
  auto u = parse_url(url);
  if (!u) return u.error();
  http::request<http::file_body> req;
  beast::error_code ec;
  req.body().open(file.c_str(), beast::file_mode::scan, ec);
  if (ec) {
    return err(Errc::invalid_argument,
               fmt::format("cannot open {}: {}", file.string(), ec.message()));
  }
  set_common(req, method, *u, headers);
  req.set(http::field::content_type, "application/octet-stream");
  req.prepare_payload();
  return run_sync<HttpResult>([&](asio::io_context&) -> asio::awaitable<Result<HttpResult>> {
    co_return co_await exchange(*u, req, opts);
  });
}

namespace {

template <class Stream>
asio::awaitable<Result<DownloadResult>> download_on(Stream& stream, const Url& u,
                                                    const Headers& headers,
                                                    const std::filesystem::path& dest,
                                                    uint64_t have, const HttpOptions& opts) {
  http::request<http::empty_body> req;
  set_common(req, "GET", u, headers);
  if (have > 0) req.set(http::field::range, fmt::format("bytes={}-", have));
  beast::get_lowest_layer(stream).expires_after(opts.timeout);
  auto [wec, wn] = co_await http::async_write(stream, req, asio::as_tuple(asio::use_awaitable));
  if (wec) co_return net_error(wec, "sending to", u);

  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  auto [hec, hn] =
      co_await http::async_read_header(stream, buf, parser, asio::as_tuple(asio::use_awaitable));
  if (hec) co_return net_error(hec, "reading from", u);
  DownloadResult out;
  out.status = static_cast<int>(parser.get().result_int());
  const bool ok = out.status == 200 || out.status == 206;
  out.resumed = out.status == 206;
  int fd = -1;
  if (ok) {
    const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (out.resumed ? O_APPEND : O_TRUNC);
    fd = ::open(dest.c_str(), flags, 0600);
    if (fd < 0) {
      co_return err(Errc::io,
                    fmt::format("cannot open {}: {}", dest.string(), std::strerror(errno)));
    }
  }
  std::vector<char> chunk(1 << 16);
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    beast::get_lowest_layer(stream).expires_after(opts.timeout);
    auto [rec, rn] =
        co_await http::async_read(stream, buf, parser, asio::as_tuple(asio::use_awaitable));
    if (rec == http::error::need_buffer) rec = {};
    const size_t got = chunk.size() - parser.get().body().size;
    if (got > 0) {
      if (ok) {
        size_t off = 0;
        while (off < got) {
          const ssize_t n = ::write(fd, chunk.data() + off, got - off);
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) {
            const int e = errno;
            ::close(fd);
            co_return err(Errc::io,
                          fmt::format("cannot write {}: {}", dest.string(), std::strerror(e)));
          }
          off += static_cast<size_t>(n);
        }
        out.bytes_received += got;
      } else if (out.error_body.size() < 64 * 1024) {
        out.error_body.append(chunk.data(), got);
      }
    }
    if (rec) {
      if (fd >= 0) ::close(fd);
      co_return net_error(rec, "downloading from", u);
    }
  }
  if (fd >= 0) {
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
      co_return err(Errc::io,
                    fmt::format("cannot flush {}: {}", dest.string(), std::strerror(errno)));
    }
    struct stat st {};
    if (::stat(dest.c_str(), &st) == 0) out.file_size = static_cast<uint64_t>(st.st_size);
  }
  close_stream(stream);
  co_return out;
}

}  // namespace

Result<DownloadResult> http_download(std::string_view url, const Headers& headers,
                                     const std::filesystem::path& dest, bool resume,
                                     const HttpOptions& opts) {
  auto u = parse_url(url);
  if (!u) return u.error();
  uint64_t have = 0;
  if (resume) {
    struct stat st {};
    if (::stat(dest.c_str(), &st) == 0 && S_ISREG(st.st_mode))
      have = static_cast<uint64_t>(st.st_size);
  }
  return run_sync<DownloadResult>(
      [&](asio::io_context&) -> asio::awaitable<Result<DownloadResult>> {
        auto use = [&](auto& stream) { return download_on(stream, *u, headers, dest, have, opts); };
        co_return co_await with_connection<DownloadResult>(*u, opts, use);
      });
}

}  // namespace slipway::net
