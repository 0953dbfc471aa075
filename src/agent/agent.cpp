#include "agent/agent.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "agent/agent_link.h"
#include "agent/node_runtime.h"
#include "common/fs.h"
#include "common/names.h"
#include "common/strings.h"
#include "net/http_client.h"
#include "net/io_context.h"
#include "protocol/agent_protocol.h"

namespace slipway::agent {

namespace asio = boost::asio;

namespace {

// The node's credential from ROOT/agent.credential, "" before its enrollment.
std::string read_credential(const fs::path& file) {
  auto c = read_file(file, 256);
  if (!c) return {};
  std::string cred(trim(*c));
  return protocol::is_node_credential(cred) ? cred : std::string();
}

// Downloads artifacts from the server, resuming a partial file, retrying a few times. It
// authenticates with the node's credential (a join token only enrolls; the server refuses it
// here): installs come only after the welcome that gave the node its credential.
class HttpFetcher final : public Fetcher {
 public:
  HttpFetcher(std::string server, fs::path credential_file, net::TlsClientConfig tls)
      : server_(std::move(server)),
        credential_file_(std::move(credential_file)),
        tls_(std::move(tls)) {}

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
      o.tls = tls_;
      const std::string credential = read_credential(credential_file_);
      if (credential.empty()) return err(Errc::unauthenticated, "this node is not enrolled yet");
      auto r = net::http_download(url, {{"Authorization", "Bearer " + credential}}, dest, true, o);
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
  fs::path credential_file_;
  net::TlsClientConfig tls_;
};

// What the agent trusts of an https:// server: the CA it kept from its first connection (checked
// against the join token's fingerprint), else the fingerprint, else --ca-cert, else the system.
Result<net::TlsClientConfig> agent_tls(const AgentOptions& o, const net::JoinToken& token) {
  net::TlsClientConfig tls;
  const fs::path kept = o.root / "server-ca.pem";
  std::error_code ec;
  if (!token.ca_pin.empty() && fs::exists(kept, ec)) {
    auto fp = net::pem_file_fingerprint(kept);
    if (!fp) return fp.error();
    if (*fp != token.ca_pin) {
      return err(Errc::failed_precondition,
                 fmt::format("the server CA kept in {} ({}) is not the one of the join token ({}): "
                             "if the server's CA was replaced on purpose, remove {}",
                             kept.string(), *fp, token.ca_pin, kept.string()));
    }
    tls.ca_file = kept.string();
  } else if (!token.ca_pin.empty()) {
    tls.ca_pin = token.ca_pin;
  } else {
    tls.ca_file = o.ca_cert;
  }
  return tls;
}

class Agent final : public LinkHandler {
 public:
  Agent(const AgentOptions& opts, const net::TlsClientConfig& tls)
      : opts_(opts),
        fetcher_(opts.server, opts.root / "agent.credential", tls),
        runtime_(NodeIdentity{opts.name, opts.env, opts.address, opts.root}, fetcher_),
        jobs_(static_cast<size_t>(std::max(1, opts.job_threads))),
        exec_jobs_(static_cast<size_t>(std::max(1, opts.exec_threads))),
        link_(ioc_,
              LinkOptions{.server = opts.server,
                          .token = opts.token,
                          .tls = tls,
                          .save_ca = (opts.root / "server-ca.pem").string(),
                          .max_backoff = opts.max_backoff},
              *this) {}

  int run() {
    if (auto st = runtime_.open(); !st) {
      spdlog::error("{}", st.error().message);
      return kExitFailed;
    }
    for (const auto& line : runtime_.resume_all())
      spdlog::info("{}", line);
    if (auto st = link_.start(); !st) {
      spdlog::error("{}", st.error().message);
      return kExitUsage;
    }
    asio::signal_set signals(ioc_, SIGINT, SIGTERM);
    signals.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      spdlog::info("signal {}: stopping", sig);
      stopping_ = true;
      link_.stop();
      ioc_.stop();
    });
    ioc_.run();
    stopping_ = true;
    runtime_.cancel();  // an install waiting for its health check must not hold up the exit
    jobs_.stop();
    exec_jobs_.stop();
    jobs_.join();
    exec_jobs_.join();
    runtime_.shutdown();
    // The link's coroutines refer to the link, which dies before the io_context: destroy them
    // now (net/io_context.h), once no pool thread can post to the io_context any more.
    ioc_.destroy_handlers();
    spdlog::info("stopped");
    return kExitOk;
  }

 private:
  // LinkHandler
  protocol::Hello hello() override {
    protocol::Hello hello;
    hello.name = opts_.name;
    hello.env = opts_.env;
    hello.roles = opts_.roles;
    hello.zone = opts_.zone;
    hello.tags = opts_.tags;
    hello.address = opts_.address;
    hello.agent_version = SLIPWAY_VERSION;
    hello.apps = runtime_.app_states();
    // The node's own credential, from its enrollment (none before the first welcome).
    hello.credential = read_credential(credential_file());
    return hello;
  }

  void on_welcome(const protocol::Welcome& w) override {
    if (w.pending) {
      spdlog::warn(
          "node {} waits for an admin's approval (slipway nodes approve {}): the server sends it "
          "nothing until then",
          opts_.name, opts_.name);
    }
    if (!w.credential.empty()) {
      // Enrolled: the server keeps only the credential's hash; losing this file means the name
      // cannot connect again.
      if (auto st = write_file_atomic(credential_file(), w.credential + "\n", 0600); !st) {
        spdlog::error("cannot keep this node's credential: {}", st.error().message);
      } else {
        spdlog::info("enrolled as node {}; its credential is in {}", opts_.name,
                     credential_file().string());
      }
    }
    spdlog::info("registered with {} as {} (env {})", opts_.server, opts_.name, opts_.env);
  }

  fs::path credential_file() const { return opts_.root / "agent.credential"; }

  void on_command(const protocol::ServerMessage& m) override {
    if (const auto* cmd = std::get_if<protocol::InstallCommand>(&m)) {
      start_install(*cmd);
    } else if (const auto* deact = std::get_if<protocol::DeactivateCommand>(&m)) {
      start_deactivate(*deact);
    } else if (const auto* exec = std::get_if<protocol::ExecCommand>(&m)) {
      start_exec(*exec);
    }
  }

  std::vector<protocol::AppState> heartbeat_apps() override {
    // Probing runs health checks (blocking I/O): on a job thread, never on this one. The
    // heartbeat carries what the previous probe found.
    if (!probing_.exchange(true)) {
      asio::post(jobs_, [this] {
        runtime_.probe_all();
        auto states = runtime_.app_states();
        probing_ = false;
        asio::post(ioc_, [this, states = std::move(states)] { latest_states_ = states; });
      });
    }
    return latest_states_;
  }

  void send(std::string msg) { link_.send(std::move(msg)); }

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
    pending_[app].push_back(Pending{link_.session(), std::move(job)});
    if (!busy_apps_.contains(app)) run_next(app);
  }

  void run_next(const std::string& app) {
    auto& q = pending_[app];
    while (!q.empty() && q.front().session != link_.session())
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

  // Ad-hoc commands run on their own pool, never queued behind an app's install (nor holding one
  // up), and in parallel with each other up to its size.
  void start_exec(const protocol::ExecCommand& cmd) {
    spdlog::info("{}: running {} (timeout {})", cmd.action, fmt::join(cmd.argv, " "),
                 format_duration(Millis(cmd.timeout_ms)));
    asio::post(exec_jobs_, [this, cmd] {
      auto result = runtime_.exec(cmd);
      spdlog::info("{}: {} after {}", cmd.action,
                   result.timed_out ? std::string("timed out")
                   : result.signal  ? fmt::format("killed by signal {}", result.signal)
                                    : fmt::format("exit code {}", result.exit_code),
                   format_duration(Millis(result.duration_ms)));
      send(protocol::encode(protocol::AgentMessage{result}));
    });
  }

  struct Pending {
    uint64_t session = 0;
    std::function<void()> job;
  };
  std::map<std::string, std::deque<Pending>> pending_;
  std::set<std::string> busy_apps_;

  AgentOptions opts_;
  HttpFetcher fetcher_;
  NodeRuntime runtime_;
  net::IoContext ioc_{1};
  asio::thread_pool jobs_;
  asio::thread_pool exec_jobs_;
  AgentLink link_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> probing_{false};
  std::vector<protocol::AppState> latest_states_;
};

Status validate(const AgentOptions& o) {
  if (o.server.empty()) return err(Errc::invalid_argument, "--server is required");
  if (o.token.empty()) {
    return err(Errc::invalid_argument,
               "the join token is required (--token-file FILE, $SLIPWAY_JOIN_TOKEN or --token)");
  }
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
  auto u = net::parse_url(o.server);
  if (!u) return u.error();
  auto t = net::parse_join_token(o.token);
  if (!t) return t.error();
  if (!t->ca_pin.empty() && u->scheme != "https") {
    return err(Errc::invalid_argument,
               fmt::format("the join token carries a CA fingerprint, so its server speaks HTTPS: "
                           "use an https:// --server, not {}",
                           o.server));
  }
  return {};
}

// The root holds the node's credential, every release and the config each was installed with
// (secrets in clear): 0700. One that exists open to others is tightened, with a warning.
Status prepare_root(const fs::path& root) {
  struct stat before {};
  const bool existed = ::stat(root.c_str(), &before) == 0;
  if (auto st = ensure_dir(root, 0700); !st) return st;
  struct stat now {};
  if (::stat(root.c_str(), &now) != 0) {
    return err(Errc::io, fmt::format("cannot stat {}: {}", root.string(), std::strerror(errno)));
  }
  if ((now.st_mode & 077) != 0) {
    spdlog::warn(
        "the agent root {} has mode {:04o} and could not be made 0700: other users may "
        "read the node's credential and the apps' config; chmod 700 {}",
        root.string(), now.st_mode & 0777, root.string());
  } else if (existed && (before.st_mode & 077) != 0) {
    spdlog::warn(
        "the agent root {} had mode {:04o}: made it 0700 (it holds the node's credential "
        "and the apps' config and secrets)",
        root.string(), before.st_mode & 0777);
  }
  return {};
}

}  // namespace

int run_agent(const AgentOptions& opts) {
  if (auto st = validate(opts); !st) {
    spdlog::error("{}", st.error().message);
    return kExitUsage;
  }
  auto token = net::parse_join_token(opts.token);
  if (!token) {
    spdlog::error("{}", token.error().message);
    return kExitUsage;
  }
  if (auto st = prepare_root(opts.root); !st) {
    spdlog::error("{}", st.error().message);
    return kExitFailed;
  }
  auto tls = agent_tls(opts, *token);
  if (!tls) {
    spdlog::error("{}", tls.error().message);
    return kExitUsage;
  }
  Agent agent(opts, *tls);
  return agent.run();
}

}  // namespace slipway::agent
