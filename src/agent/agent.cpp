#include "agent/agent.h"

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/node_runtime.h"
#include "common/names.h"
#include "net/http_client.h"
#include "net/ws_connection.h"
#include "protocol/agent_protocol.h"

namespace slipway::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// Downloads artifacts from the server, resuming a partial file, retrying a few times.
class HttpFetcher final : public Fetcher {
 public:
  HttpFetcher(std::string server, std::string token)
      : server_(std::move(server)), token_(std::move(token)) {}

  Status fetch(const protocol::InstallCommand& cmd, const fs::path& dest) override {
    const std::string url = cmd.url.rfind("http", 0) == 0 ? cmd.url : server_ + cmd.url;
    Error last = err(Errc::unavailable, "download did not start");
    for (int attempt = 1; attempt <= 4; ++attempt) {
      std::error_code ec;
      const uint64_t have = fs::exists(dest, ec) ? fs::file_size(dest, ec) : 0;
      if (cmd.size > 0 && have == cmd.size) return {};  // complete from an earlier attempt
      if (cmd.size > 0 && have > cmd.size) fs::remove(dest, ec);
      net::HttpOptions o;
      o.timeout = Millis(60'000);
      auto r = net::http_download(url, {{"Authorization", "Bearer " + token_}}, dest, true, o);
      if (r && (r->status == 200 || r->status == 206)) return {};
      if (r && r->status == 416) {
        fs::remove(dest, ec);  // our partial file is not a prefix of this artifact
        last = err(Errc::io, "the server refused the resume range; starting over");
        continue;
      }
      if (r) {
        last = err(r->status == 404 ? Errc::not_found : Errc::unavailable,
                   fmt::format("the server answered {} to {}: {}", r->status, url,
                               r->error_body.substr(0, 300)));
        if (r->status == 404 || r->status == 401 || r->status == 403) return last;
      } else {
        last = r.error();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250 * attempt));
    }
    return last;
  }

 private:
  std::string server_;
  std::string token_;
};

class Agent {
 public:
  explicit Agent(const AgentOptions& opts)
      : opts_(opts),
        fetcher_(opts.server, opts.token),
        runtime_(NodeIdentity{opts.name, opts.env, opts.address, opts.root}, fetcher_),
        jobs_(static_cast<size_t>(std::max(1, opts.job_threads))),
        rng_(std::random_device{}()) {}

  int run() {
    if (auto st = runtime_.open(); !st) {
      spdlog::error("{}", st.error().message);
      return kExitFailed;
    }
    for (const auto& line : runtime_.resume_all())
      spdlog::info("{}", line);
    auto url = net::parse_url(opts_.server);
    if (!url) {
      spdlog::error("{}", url.error().message);
      return kExitUsage;
    }
    url_ = *url;
    asio::co_spawn(ioc_, connect_loop(), asio::detached);
    asio::signal_set signals(ioc_, SIGINT, SIGTERM);
    signals.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      spdlog::info("signal {}: stopping", sig);
      stopping_ = true;
      if (auto c = conn_) c->close("agent stopping");
      ioc_.stop();
    });
    ioc_.run();
    stopping_ = true;
    runtime_.cancel();  // an install waiting for its health check must not hold up the exit
    jobs_.stop();
    jobs_.join();
    runtime_.shutdown();
    spdlog::info("stopped");
    return kExitOk;
  }

 private:
  // Sends a message if connected; safe from any thread.
  void send(std::string msg) {
    asio::post(ioc_, [this, msg = std::move(msg)]() mutable {
      if (auto c = conn_; c && c->is_open() && welcomed_) c->send(std::move(msg));
    });
  }

  asio::awaitable<void> connect_loop() {
    Millis backoff{500};
    while (!stopping_) {
      const bool welcomed = co_await session();
      if (stopping_) break;
      if (welcomed) backoff = Millis(500);
      // Exponential backoff with jitter (50-100% of the step), so a fleet does not reconnect in
      // lockstep after a server restart.
      std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2, backoff.count());
      const Millis wait(jitter(rng_));
      spdlog::info("reconnecting in {}", format_duration(wait));
      asio::steady_timer t(ioc_, wait);
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      backoff = std::min(backoff * 2, opts_.max_backoff);
    }
  }

  // One connection; returns whether the server welcomed us.
  asio::awaitable<bool> session() {
    welcomed_ = false;
    tcp::resolver resolver(ioc_);
    auto [rec, endpoints] =
        co_await resolver.async_resolve(url_.host, url_.port, asio::as_tuple(asio::use_awaitable));
    if (rec) {
      spdlog::warn("cannot resolve {}: {}", url_.host, rec.message());
      co_return false;
    }
    net::WsStream ws(ioc_);
    beast::get_lowest_layer(ws).expires_after(10s);
    auto [cec, ep] = co_await beast::get_lowest_layer(ws).async_connect(
        endpoints, asio::as_tuple(asio::use_awaitable));
    if (cec) {
      spdlog::warn("cannot connect to {}: {}", opts_.server, cec.message());
      co_return false;
    }
    beast::get_lowest_layer(ws).expires_never();
    ws.set_option(
        websocket::stream_base::decorator([token = opts_.token](websocket::request_type& req) {
          req.set(beast::http::field::authorization, "Bearer " + token);
          req.set(beast::http::field::user_agent, "slipway-agent/" SLIPWAY_VERSION);
        }));
    ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
    websocket::response_type res;
    auto [hec] = co_await ws.async_handshake(res, url_.host + ":" + url_.port, "/api/v1/agent/ws",
                                             asio::as_tuple(asio::use_awaitable));
    if (hec) {
      if (res.result_int() == 401 || res.result_int() == 403) {
        spdlog::error("the server refused the join token ({}): {}", res.result_int(), res.body());
      } else {
        spdlog::warn("WebSocket handshake with {} failed: {}", opts_.server, hec.message());
      }
      co_return false;
    }
    auto conn = std::make_shared<net::WsConnection>(std::move(ws), opts_.server, false);
    conn_ = conn;

    protocol::Hello hello;
    hello.name = opts_.name;
    hello.env = opts_.env;
    hello.roles = opts_.roles;
    hello.zone = opts_.zone;
    hello.tags = opts_.tags;
    hello.address = opts_.address;
    hello.agent_version = SLIPWAY_VERSION;
    hello.apps = runtime_.app_states();
    conn->send(protocol::encode(protocol::AgentMessage{hello}));

    auto first = co_await conn->read();
    if (!first) {
      spdlog::warn("the server closed the connection: {}", first.error().message);
      conn_.reset();
      co_return false;
    }
    auto w = protocol::decode_server_message(*first);
    if (!w || !std::holds_alternative<protocol::Welcome>(*w)) {
      spdlog::error("the server did not welcome this agent: {}",
                    w ? "unexpected message" : w.error().message);
      conn->close("protocol error");
      conn_.reset();
      co_return false;
    }
    heartbeat_ms_ = std::get<protocol::Welcome>(*w).heartbeat_ms;
    welcomed_ = true;
    ++session_;
    spdlog::info("registered with {} as {} (env {})", opts_.server, opts_.name, opts_.env);
    asio::co_spawn(ioc_, heartbeat_loop(conn), asio::detached);

    for (;;) {
      auto text = co_await conn->read();
      if (!text) {
        if (!stopping_) spdlog::warn("connection to the server lost: {}", text.error().message);
        break;
      }
      auto m = protocol::decode_server_message(*text);
      if (!m) {
        spdlog::warn("malformed message from the server refused: {}", m.error().message);
        continue;
      }
      if (auto* cmd = std::get_if<protocol::InstallCommand>(&*m)) {
        start_install(*cmd);
      } else if (auto* deact = std::get_if<protocol::DeactivateCommand>(&*m)) {
        start_deactivate(*deact);
      }
    }
    welcomed_ = false;
    conn_.reset();
    co_return true;
  }

  asio::awaitable<void> heartbeat_loop(std::shared_ptr<net::WsConnection> conn) {
    asio::steady_timer t(ioc_);
    std::string last_apps;
    while (conn->is_open() && !stopping_) {
      t.expires_after(std::chrono::milliseconds(heartbeat_ms_));
      auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec || !conn->is_open()) break;
      // Probing runs health checks (blocking I/O): on a job thread, never on this one.
      if (!probing_.exchange(true)) {
        asio::post(jobs_, [this] {
          runtime_.probe_all();
          auto states = runtime_.app_states();
          probing_ = false;
          asio::post(ioc_, [this, states = std::move(states)] { latest_states_ = states; });
        });
      }
      protocol::Heartbeat hb;
      std::string encoded_apps;
      for (const auto& s : latest_states_)
        encoded_apps += to_json(protocol::app_state_to_json(s));
      if (encoded_apps != last_apps) {
        hb.apps = latest_states_;
        last_apps = encoded_apps;
      }
      conn->send(protocol::encode(protocol::AgentMessage{hb}));
    }
  }

  class Sink final : public StepSink {
   public:
    explicit Sink(Agent& a) : a_(a) {}
    void step(const protocol::StepEvent& e) override {
      a_.send(protocol::encode(protocol::AgentMessage{e}));
    }

   private:
    Agent& a_;
  };

  // Commands for one app run one at a time, in the order they came: a command for an app that is
  // busy waits for it (rather than failing "busy") — e.g. a server restarted mid-deploy sends a new
  // install while the old one is still finishing. Queued commands from an earlier connection are
  // dropped: that server session no longer waits for them. Runs on the I/O thread.
  void enqueue(const std::string& app, std::function<void()> job) {
    pending_[app].push_back(Pending{session_, std::move(job)});
    if (!busy_apps_.contains(app)) run_next(app);
  }

  void run_next(const std::string& app) {
    auto& q = pending_[app];
    while (!q.empty() && q.front().session != session_)
      q.pop_front();
    if (q.empty()) {
      busy_apps_.erase(app);
      pending_.erase(app);
      return;
    }
    busy_apps_.insert(app);
    auto job = std::move(q.front().job);
    q.pop_front();
    asio::post(jobs_, [this, app, job = std::move(job)] {
      job();
      asio::post(ioc_, [this, app] { run_next(app); });
    });
  }

  void start_install(const protocol::InstallCommand& cmd) {
    spdlog::info("deploy #{}: installing {} {}", cmd.deploy, cmd.app, cmd.version);
    enqueue(cmd.app, [this, cmd] {
      Sink sink(*this);
      auto result = runtime_.install(cmd, sink);
      result.apps = runtime_.app_states();
      if (result.ok) {
        spdlog::info("deploy #{}: {} {} healthy", cmd.deploy, cmd.app, cmd.version);
      } else {
        spdlog::warn("deploy #{}: {} {} failed: {}{}", cmd.deploy, cmd.app, cmd.version,
                     result.reason,
                     result.reverted_to.empty() ? "" : "; back on " + result.reverted_to);
      }
      asio::post(ioc_, [this, apps = result.apps] { latest_states_ = apps; });
      send(protocol::encode(protocol::AgentMessage{result}));
    });
  }

  void start_deactivate(const protocol::DeactivateCommand& cmd) {
    spdlog::info("deploy #{}: deactivating {}", cmd.deploy, cmd.app);
    enqueue(cmd.app, [this, cmd] {
      Sink sink(*this);
      auto result = runtime_.deactivate(cmd, sink);
      result.apps = runtime_.app_states();
      asio::post(ioc_, [this, apps = result.apps] { latest_states_ = apps; });
      send(protocol::encode(protocol::AgentMessage{result}));
    });
  }

  struct Pending {
    uint64_t session = 0;
    std::function<void()> job;
  };
  std::map<std::string, std::deque<Pending>> pending_;
  std::set<std::string> busy_apps_;
  uint64_t session_ = 0;

  AgentOptions opts_;
  HttpFetcher fetcher_;
  NodeRuntime runtime_;
  asio::io_context ioc_{1};
  asio::thread_pool jobs_;
  std::mt19937_64 rng_;
  net::Url url_;
  std::shared_ptr<net::WsConnection> conn_;
  bool welcomed_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> probing_{false};
  int64_t heartbeat_ms_ = 5000;
  std::vector<protocol::AppState> latest_states_;
};

Status validate(const AgentOptions& o) {
  if (o.server.empty()) return err(Errc::invalid_argument, "--server is required");
  if (o.token.empty()) return err(Errc::invalid_argument, "--token (the join token) is required");
  if (o.root.empty()) return err(Errc::invalid_argument, "--root is required");
  if (auto st = validate_name(NameKind::node, o.name); !st) return st;
  if (auto st = validate_name(NameKind::env, o.env); !st) return st;
  for (const auto& r : o.roles) {
    if (auto st = validate_name(NameKind::role, r); !st) return st;
  }
  if (!o.zone.empty()) {
    if (auto st = validate_name(NameKind::zone, o.zone); !st) return st;
  }
  for (const auto& [k, v] : o.tags) {
    if (auto st = validate_name(NameKind::tag_key, k); !st) return st;
    if (auto st = validate_name(NameKind::tag_value, v); !st) return st;
  }
  boost::system::error_code ec;
  asio::ip::make_address(o.address, ec);
  if (ec)
    return err(Errc::invalid_argument,
               fmt::format("--address '{}' is not an IP address", o.address));
  if (auto u = net::parse_url(o.server); !u) return u.error();
  return {};
}

}  // namespace

int run_agent(const AgentOptions& opts) {
  if (auto st = validate(opts); !st) {
    spdlog::error("{}", st.error().message);
    return kExitUsage;
  }
  Agent agent(opts);
  return agent.run();
}

}  // namespace slipway::agent
