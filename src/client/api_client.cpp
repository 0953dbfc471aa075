#include "client/api_client.h"

#include <cstdlib>
#include <optional>
#include <set>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include "net/http_client.h"
#include "net/tls_context.h"

namespace slipway::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using asio::ip::tcp;

std::string default_user() {
  std::string user;
  if (const char* u = std::getenv("USER"); u && *u) {
    user = u;
  } else if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_name) {
    user = pw->pw_name;
  } else {
    user = fmt::format("uid{}", ::geteuid());
  }
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  return fmt::format("{}@{}", user, host);
}

ApiClient::ApiClient(ClientConfig cfg) : cfg_(std::move(cfg)) {
  while (!cfg_.server.empty() && cfg_.server.back() == '/')
    cfg_.server.pop_back();
}

Result<json::value> ApiClient::decode(int status, const std::string& body) {
  auto v = parse_json(body.empty() ? "{}" : body, "the server's answer");
  if (status / 100 == 2) {
    if (!v) return err(Errc::internal, v.error().message);
    return *v;
  }
  if (v && v->is_object()) {
    if (const auto* e = v->as_object().if_contains("error"); e && e->is_object()) {
      const auto& eo = e->as_object();
      const auto* code = eo.if_contains("code");
      const auto* msg = eo.if_contains("message");
      return err(code && code->is_string() ? errc_from_name(code->get_string())
                                           : errc_from_http_status(status),
                 msg && msg->is_string() ? std::string(msg->get_string()) : body);
    }
  }
  return err(errc_from_http_status(status),
             fmt::format("the server answered {}: {}", status, body.substr(0, 300)));
}

namespace {
net::Headers headers_for(const ClientConfig& c) {
  net::Headers h;
  if (!c.token.empty()) h["Authorization"] = "Bearer " + c.token;
  if (!c.user.empty()) h["X-Slipway-User"] = c.user;
  return h;
}

Error unreachable(const ClientConfig& c, const Error& e) {
  if (e.code == Errc::unavailable || e.code == Errc::timeout) {
    return err(Errc::unavailable,
               fmt::format("cannot reach the Slipway server at {}: {}", c.server, e.message));
  }
  return e;
}
}  // namespace

Result<json::value> ApiClient::get(const std::string& path) {
  net::HttpOptions o;
  o.tls.ca_file = cfg_.ca_cert;
  o.timeout = cfg_.timeout;
  auto r = net::http_request("GET", cfg_.server + path, headers_for(cfg_), "", o);
  if (!r) return unreachable(cfg_, r.error());
  return decode(r->status, r->body);
}

Result<json::value> ApiClient::post(const std::string& path, const json::value& body) {
  return send("POST", path, body);
}

Result<json::value> ApiClient::send(const std::string& method, const std::string& path,
                                    const json::value& body) {
  net::HttpOptions o;
  o.tls.ca_file = cfg_.ca_cert;
  o.timeout = cfg_.timeout;
  auto r = net::http_request(method, cfg_.server + path, headers_for(cfg_),
                             body.is_null() ? std::string() : to_json(body), o);
  if (!r) return unreachable(cfg_, r.error());
  return decode(r->status, r->body);
}

Result<json::value> ApiClient::upload(const std::string& path, const std::filesystem::path& file,
                                      const std::string& sha256) {
  net::HttpOptions o;
  o.tls.ca_file = cfg_.ca_cert;
  o.timeout = Millis(std::max<int64_t>(cfg_.timeout.count(), 600'000));
  auto h = headers_for(cfg_);
  if (!sha256.empty()) h["X-Slipway-Sha256"] = sha256;
  auto r = net::http_upload_file("POST", cfg_.server + path, h, file, o);
  if (!r) return unreachable(cfg_, r.error());
  auto out = decode(r->status, r->body);
  if (out && r->headers.count("x-slipway-status") && out->is_object()) {
    out->as_object()["status"] = r->headers["x-slipway-status"];
  }
  return out;
}

Result<engine::Deploy> ApiClient::watch(
    engine::DeployId id,
    const std::function<void(const engine::DeployEvent&, const json::value&)>& on_event,
    Millis reconnect_for) {
  auto url = net::parse_url(cfg_.server);
  if (!url) return url.error();
  int64_t last_seq = 0;
  std::optional<engine::Deploy> final_deploy;
  Error last_error = err(Errc::unavailable, "not connected");
  auto deadline = std::chrono::steady_clock::now() + reconnect_for;
  std::shared_ptr<net::ClientTls> tls;

  while (!final_deploy) {
    asio::io_context ioc;
    bool got_any = false;
    std::optional<Error> fatal;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          tcp::resolver resolver(ioc);
          auto [rec, eps] = co_await resolver.async_resolve(url->host, url->port,
                                                            asio::as_tuple(asio::use_awaitable));
          if (rec) {
            last_error = err(Errc::unavailable, rec.message());
            co_return;
          }
          // The conversation, over ws:// or wss://.
          auto talk = [&](auto& ws) -> asio::awaitable<void> {
            websocket::stream_base::timeout t{};
            t.handshake_timeout = std::chrono::seconds(10);
            t.idle_timeout = std::chrono::seconds(30);
            t.keep_alive_pings = true;
            ws.set_option(t);
            ws.read_message_max(64 << 20);
            const auto h = headers_for(cfg_);
            ws.set_option(websocket::stream_base::decorator([h](websocket::request_type& req) {
              for (const auto& [k, v] : h)
                req.set(k, v);
            }));
            websocket::response_type res;
            auto [hec] = co_await ws.async_handshake(res, url->host + ":" + url->port,
                                                     fmt::format("/api/v1/deploys/{}/watch", id),
                                                     asio::as_tuple(asio::use_awaitable));
            if (hec) {
              const int status = static_cast<int>(res.result_int());
              if (status == 401 || status == 403 || status == 404) {
                auto d = decode(status, res.body());
                fatal = d ? err(Errc::internal, "unexpected answer") : d.error();
              } else {
                last_error = err(Errc::unavailable, hec.message());
              }
              co_return;
            }
            for (;;) {
              beast::flat_buffer buf;
              auto [ec, n] = co_await ws.async_read(buf, asio::as_tuple(asio::use_awaitable));
              if (ec) {
                last_error = err(Errc::unavailable,
                                 ec == websocket::error::closed ? "stream closed" : ec.message());
                co_return;
              }
              got_any = true;
              auto v = parse_json(beast::buffers_to_string(buf.data()), "watch message");
              if (!v) continue;
              if (const auto* o = v->if_object(); o && o->contains("error")) {
                auto d = decode(404, to_json(*v));
                fatal = d ? err(Errc::internal, "unexpected") : d.error();
                co_return;
              }
              // One event, or a burst of them as an array.
              bool finished = false;
              auto take = [&](const json::value& item) {
                const auto* o = item.if_object();
                if (!o || finished) return;
                const auto* ev = o->if_contains("event");
                const auto* dv = o->if_contains("deploy");
                if (!ev || !dv) return;
                auto e = engine::event_from_json(*ev);
                if (!e) return;
                // After a reconnect the server replays the log: skip what was already shown.
                if (e->seq != 0 && e->seq <= last_seq) return;
                if (e->seq) last_seq = e->seq;
                if (on_event) on_event(*e, *dv);
                if (e->kind == "deploy.finished") {
                  auto d = engine::deploy_from_json(*dv);
                  if (d) final_deploy = std::move(*d);
                  finished = true;
                }
              };
              if (const auto* a = v->if_array()) {
                for (const auto& item : *a)
                  take(item);
              } else {
                take(*v);
              }
              if (finished) {
                co_await ws.async_close(websocket::close_code::normal,
                                        asio::as_tuple(asio::use_awaitable));
                co_return;
              }
            }
          };
          if (url->scheme != "https") {
            websocket::stream<beast::tcp_stream> ws(ioc);
            beast::get_lowest_layer(ws).expires_after(std::chrono::seconds(10));
            auto [cec, ep] = co_await beast::get_lowest_layer(ws).async_connect(
                eps, asio::as_tuple(asio::use_awaitable));
            if (cec) {
              last_error = err(Errc::unavailable, cec.message());
              co_return;
            }
            beast::get_lowest_layer(ws).expires_never();
            co_await talk(ws);
            co_return;
          }
          if (!tls) {
            net::TlsClientConfig tc;
            tc.ca_file = cfg_.ca_cert;
            auto t = net::make_client_tls(tc);
            if (!t) {
              fatal = t.error();
              co_return;
            }
            tls = *t;
          }
          websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(ioc, tls->ctx);
          beast::get_lowest_layer(ws).expires_after(std::chrono::seconds(10));
          auto [cec, ep] = co_await beast::get_lowest_layer(ws).async_connect(
              eps, asio::as_tuple(asio::use_awaitable));
          if (cec) {
            last_error = err(Errc::unavailable, cec.message());
            co_return;
          }
          net::prepare_client_stream(ws.next_layer(), url->host);
          auto [tec] = co_await ws.next_layer().async_handshake(
              asio::ssl::stream_base::client, asio::as_tuple(asio::use_awaitable));
          if (tec) {
            fatal = err(Errc::unavailable,
                        fmt::format("cannot reach the Slipway server at {}: {}", cfg_.server,
                                    net::describe_tls_failure(*tls, tec.message())));
            co_return;
          }
          beast::get_lowest_layer(ws).expires_never();
          co_await talk(ws);
        },
        [](const std::exception_ptr&) {});
    ioc.run();
    if (fatal) return *fatal;
    if (final_deploy) break;
    if (got_any) deadline = std::chrono::steady_clock::now() + reconnect_for;
    if (std::chrono::steady_clock::now() > deadline) {
      return err(Errc::unavailable,
                 fmt::format("lost the connection to {} while following deploy #{}: {}",
                             cfg_.server, id, last_error.message));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return std::move(*final_deploy);
}

}  // namespace slipway::client
