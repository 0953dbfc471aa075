#include "agent/agent_link.h"

#include <atomic>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <spdlog/spdlog.h>

#include "common/fs.h"
#include "net/http_client.h"
#include "net/tls_context.h"
#include "net/ws_connection.h"

namespace slipway::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using asio::ip::tcp;

struct AgentLink::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, LinkOptions o, LinkHandler& h)
      : ioc(io), opts(std::move(o)), handler(h), timer(io) {
    // A per-link seed: links created together still back off out of step.
    rng = reinterpret_cast<uintptr_t>(this) ^ static_cast<uint64_t>(now_ms());
  }

  asio::io_context& ioc;
  LinkOptions opts;
  LinkHandler& handler;
  net::Url url;
  std::string secret;                   // of the join token
  std::shared_ptr<net::ClientTls> tls;  // for https://
  asio::steady_timer timer;             // backoff and heartbeats (never both at once)
  std::shared_ptr<net::WsConnection> conn;
  std::atomic<bool> welcomed{false};
  std::atomic<uint64_t> sessions{0};
  bool stopping = false;
  // The server answered 401 to the node's credential (revoked, or a server that lost its
  // database): the next upgrade presents the join token instead, and the hello says why.
  bool credential_refused = false;
  int64_t heartbeat_ms = 5000;
  uint64_t rng;

  // splitmix64: 8 bytes of state per link, where a simulator holds thousands of links.
  uint64_t next_random() {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  template <class... Args>
  void problem(fmt::format_string<Args...> f, Args&&... args) {
    if (opts.quiet) {
      spdlog::debug(f, std::forward<Args>(args)...);
    } else {
      spdlog::warn(f, std::forward<Args>(args)...);
    }
  }

  asio::awaitable<void> connect_loop() {
    auto self = shared_from_this();
    Millis backoff = opts.first_backoff;
    while (!stopping) {
      const bool was_welcomed = co_await session();
      if (stopping) break;
      if (was_welcomed) backoff = opts.first_backoff;
      // Exponential backoff with jitter (50-100% of the step), so that a fleet does not
      // reconnect in lockstep after a server restart.
      const int64_t half = std::max<int64_t>(1, backoff.count() / 2);
      const Millis wait(half + static_cast<int64_t>(next_random() % static_cast<uint64_t>(half)));
      if (!opts.quiet) spdlog::info("reconnecting in {}", format_duration(wait));
      timer.expires_after(wait);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      backoff = std::min(backoff * 2, opts.max_backoff);
    }
  }

  // One connection; returns whether the server welcomed it.
  asio::awaitable<bool> session() {
    tcp::resolver resolver(ioc);
    auto [rec, endpoints] =
        co_await resolver.async_resolve(url.host, url.port, asio::as_tuple(asio::use_awaitable));
    if (rec) {
      problem("cannot resolve {}: {}", url.host, rec.message());
      co_return false;
    }
    if (url.scheme != "https") {
      net::WsStream ws(ioc);
      if (!co_await connect(ws, endpoints)) co_return false;
      co_return co_await upgrade(ws);
    }
    net::WssStream ws(ioc, tls->ctx);
    if (!co_await connect(ws, endpoints)) co_return false;
    net::prepare_client_stream(ws.next_layer(), url.host);
    beast::get_lowest_layer(ws).expires_after(opts.connect_timeout);
    tls->pin_mismatch = false;
    auto [tec] = co_await ws.next_layer().async_handshake(asio::ssl::stream_base::client,
                                                          asio::as_tuple(asio::use_awaitable));
    if (tec) {
      if (tls->pin_mismatch) {
        spdlog::error("refusing to connect to {}: {}", opts.server,
                      net::describe_tls_failure(*tls, tec.message()));
      } else {
        problem("TLS handshake with {} failed: {}", opts.server,
                net::describe_tls_failure(*tls, tec.message()));
      }
      co_return false;
    }
    keep_pinned_ca();
    co_return co_await upgrade(ws);
  }

  template <class Ws, class Endpoints>
  asio::awaitable<bool> connect(Ws& ws, const Endpoints& endpoints) {
    beast::get_lowest_layer(ws).expires_after(opts.connect_timeout);
    auto [cec, ep] = co_await beast::get_lowest_layer(ws).async_connect(
        endpoints, asio::as_tuple(asio::use_awaitable));
    if (cec) {
      problem("cannot connect to {}: {}", opts.server, cec.message());
      co_return false;
    }
    // Small messages (steps, results) must not wait for Nagle's algorithm.
    boost::system::error_code nec;
    beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true), nec);
    co_return true;
  }

  // The CA found through the join token's fingerprint is kept for the next starts.
  void keep_pinned_ca() {
    if (opts.save_ca.empty() || tls->pinned_ca_pem.empty()) return;
    std::error_code ec;
    if (std::filesystem::exists(opts.save_ca, ec)) return;
    if (auto st = write_file_atomic(opts.save_ca, tls->pinned_ca_pem, 0644); !st) {
      spdlog::warn("cannot keep the server's CA certificate: {}", st.error().message);
      return;
    }
    spdlog::info("trusting the server's CA {} (kept in {})", tls->pin, opts.save_ca);
  }

  // The upgrade authenticates with the node's credential once it has one (a join token only
  // enrolls: it may have expired, been used up or revoked since), with the join token before.
  template <class Ws>
  asio::awaitable<bool> upgrade(Ws& ws) {
    protocol::Hello hello = handler.hello();
    const bool by_credential = !hello.credential.empty() && !credential_refused;
    const std::string bearer = by_credential ? hello.credential : secret;
    ws.set_option(websocket::stream_base::decorator([bearer](websocket::request_type& req) {
      req.set(beast::http::field::authorization, "Bearer " + bearer);
      req.set(beast::http::field::user_agent, "slipway-agent/" SLIPWAY_VERSION);
    }));
    ws.read_message_max(net::WsConnection::kMaxMessageBytes);
    websocket::response_type res;
    beast::get_lowest_layer(ws).expires_after(opts.connect_timeout);
    auto [hec] = co_await ws.async_handshake(res, url.host + ":" + url.port, "/api/v1/agent/ws",
                                             asio::as_tuple(asio::use_awaitable));
    if (hec) {
      if (by_credential && res.result_int() == 401) {
        credential_refused = true;
        spdlog::error("the server refused this node's credential ({}): {}; trying the join token",
                      res.result_int(), res.body());
      } else if (res.result_int() == 401 || res.result_int() == 403) {
        spdlog::error("the server refused the join token ({}): {}", res.result_int(), res.body());
      } else {
        problem("WebSocket handshake with {} failed: {}", opts.server, hec.message());
      }
      co_return false;
    }
    beast::get_lowest_layer(ws).expires_never();
    auto c = net::make_ws_connection(std::move(ws), opts.server, false);
    conn = c;
    const bool was_welcomed = co_await converse(c, std::move(hello));
    welcomed = false;
    conn.reset();
    if (was_welcomed) handler.on_disconnected();
    co_return was_welcomed;
  }

  asio::awaitable<bool> converse(const std::shared_ptr<net::WsConnection>& c,
                                 protocol::Hello hello) {
    c->send(protocol::encode(protocol::AgentMessage{std::move(hello)}));
    auto first = co_await c->read();
    if (!first) {
      problem("the server closed the connection: {}", first.error().message);
      co_return false;
    }
    auto w = protocol::decode_server_message(*first);
    if (w && std::holds_alternative<protocol::Disconnect>(*w)) {
      spdlog::error("the server refused this agent: {}", std::get<protocol::Disconnect>(*w).reason);
      co_return false;
    }
    if (!w || !std::holds_alternative<protocol::Welcome>(*w)) {
      spdlog::error("the server did not welcome this agent: {}",
                    w ? "unexpected message" : w.error().message);
      c->close("protocol error");
      co_return false;
    }
    const auto& welcome = std::get<protocol::Welcome>(*w);
    heartbeat_ms = welcome.heartbeat_ms;
    credential_refused = false;  // the node has a credential the server knows now
    welcomed = true;
    ++sessions;
    handler.on_welcome(welcome);
    asio::co_spawn(ioc, heartbeat_loop(c), asio::detached);
    for (;;) {
      auto text = co_await c->read();
      if (!text) {
        if (!stopping) problem("connection to the server lost: {}", text.error().message);
        break;
      }
      auto m = protocol::decode_server_message(*text);
      if (!m) {
        spdlog::warn("malformed message from the server refused: {}", m.error().message);
        continue;
      }
      if (const auto* bye = std::get_if<protocol::Disconnect>(&*m)) {
        spdlog::error("the server disconnects this agent: {}", bye->reason);
        continue;  // the close follows
      }
      handler.on_command(*m);
    }
    co_return true;
  }

  asio::awaitable<void> heartbeat_loop(std::shared_ptr<net::WsConnection> c) {
    auto self = shared_from_this();
    asio::steady_timer t(ioc);
    std::string last_apps;
    while (c->is_open() && !stopping) {
      t.expires_after(std::chrono::milliseconds(heartbeat_ms));
      auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec || !c->is_open() || stopping) break;
      protocol::Heartbeat hb;
      auto apps = handler.heartbeat_apps();
      std::string encoded;
      for (const auto& s : apps)
        encoded += to_json(protocol::app_state_to_json(s));
      if (encoded != last_apps) {
        hb.apps = std::move(apps);
        last_apps = std::move(encoded);
      }
      c->send(protocol::encode(protocol::AgentMessage{hb}));
    }
  }
};

AgentLink::AgentLink(asio::io_context& ioc, LinkOptions opts, LinkHandler& handler)
    : impl_(std::make_shared<Impl>(ioc, std::move(opts), handler)) {}

AgentLink::~AgentLink() {
  stop();
}

Status AgentLink::start() {
  auto url = net::parse_url(impl_->opts.server);
  if (!url) return url.error();
  impl_->url = *url;
  auto token = net::parse_join_token(impl_->opts.token);
  if (!token) return token.error();
  impl_->secret = token->secret;
  if (url->scheme == "https") {
    net::TlsClientConfig cfg = impl_->opts.tls;
    if (cfg.ca_file.empty() && cfg.ca_pin.empty()) cfg.ca_pin = token->ca_pin;
    auto tls = net::make_client_tls(cfg);
    if (!tls) return tls.error();
    impl_->tls = *tls;
  } else if (!token->ca_pin.empty()) {
    return err(Errc::invalid_argument,
               fmt::format("the join token carries a CA fingerprint, so its server speaks HTTPS: "
                           "use an https:// --server, not {}",
                           impl_->opts.server));
  }
  auto impl = impl_;
  asio::co_spawn(
      impl->ioc, [impl] { return impl->connect_loop(); }, asio::detached);
  return {};
}

void AgentLink::stop() {
  impl_->stopping = true;
  impl_->timer.cancel();
  if (auto c = impl_->conn) c->close("agent stopping");
}

void AgentLink::send(std::string msg) {
  asio::post(impl_->ioc, [impl = impl_, msg = std::move(msg)]() mutable {
    if (auto c = impl->conn; c && c->is_open() && impl->welcomed) c->send(std::move(msg));
  });
}

uint64_t AgentLink::session() const {
  return impl_->sessions;
}

bool AgentLink::welcomed() const {
  return impl_->welcomed;
}

}  // namespace slipway::agent
