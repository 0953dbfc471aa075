// slipway-fleet-sim: a fleet of simulated agents in one process, for the scale benchmark
// (bench/fleet/run). Each simulated node opens its own WebSocket to the server through the
// agent's real connection code (agent::AgentLink: hello, welcome, heartbeats, reconnects) and
// answers an install or deactivate as an agent would — the same steps (download, verify,
// unpack, stop, switch, start, health, prune; each `started` then `ok`) and a result carrying
// its apps — instantly or after --step-delay per step, without touching the disk. It measures
// how long the fleet takes to register and prints one JSON line per event of interest:
//   {"event":"registered","agents":N,"seconds":S}   once every agent was welcomed
//   {"event":"stats",...}                              on SIGUSR1 and at exit
// It is a benchmark program, not a test double inside the product.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include "agent/agent_link.h"
#include "protocol/agent_protocol.h"

namespace {

namespace asio = boost::asio;
using slipway::agent::AgentLink;
using slipway::agent::LinkHandler;
using slipway::agent::LinkOptions;
namespace protocol = slipway::protocol;

struct Options {
  std::string server;
  std::string token;
  int agents = 100;
  std::string env = "bench";
  std::string role = "api";
  int zones = 0;
  std::string prefix = "sim";
  int step_delay_ms = 0;
  int connect_window = 500;  // connections being set up at once
  std::string log_level = "warn";
};

struct Counters {
  uint64_t installs = 0;
  uint64_t deactivates = 0;
  uint64_t messages_sent = 0;
  uint64_t welcomes = 0;
  uint64_t disconnects = 0;
};

const std::vector<std::string>& install_steps() {
  static const std::vector<std::string> steps = {"download", "verify", "unpack", "stop",
                                                 "switch",   "start",  "health", "prune"};
  return steps;
}

class Fleet;

class SimNode final : public LinkHandler {
 public:
  SimNode(Fleet& fleet, asio::io_context& ioc, const Options& o, int index);

  void start() { (void)link_.start(); }
  void stop() { link_.stop(); }

  protocol::Hello hello() override {
    protocol::Hello h;
    h.name = name_;
    h.env = opts_.env;
    h.roles = {opts_.role};
    if (opts_.zones > 0) h.zone = fmt::format("z{}", index_ % opts_.zones);
    h.address = "127.0.0.1";
    h.agent_version = SLIPWAY_VERSION;
    h.apps = apps_;
    h.credential = credential_;
    return h;
  }
  void on_welcome(const protocol::Welcome& w) override;
  void on_disconnected() override;
  void on_command(const protocol::ServerMessage& m) override;
  std::vector<protocol::AppState> heartbeat_apps() override { return apps_; }

 private:
  std::string credential_;  // from the enrollment
  struct Job {
    std::string action;
    std::string app;
    std::string version;  // empty: deactivate
  };
  void run_job(Job job, size_t step);
  void send(const protocol::AgentMessage& m);
  void set_current(const std::string& app, const std::string& version);

  Fleet& fleet_;
  asio::io_context& ioc_;
  const Options& opts_;
  int index_;
  std::string name_;
  std::vector<protocol::AppState> apps_;
  AgentLink link_;
  bool ever_welcomed_ = false;
};

class Fleet {
 public:
  Fleet(asio::io_context& ioc, Options o) : ioc_(ioc), opts_(std::move(o)) {}

  void start() {
    t0_ = std::chrono::steady_clock::now();
    nodes_.reserve(static_cast<size_t>(opts_.agents));
    for (int i = 0; i < opts_.agents; ++i)
      nodes_.push_back(std::make_unique<SimNode>(*this, ioc_, opts_, i + 1));
    // Connect in a window: a real fleet does not open ten thousand handshakes in the same
    // microsecond either, and the kernel's accept backlog is finite.
    while (next_ < nodes_.size() && next_ < static_cast<size_t>(opts_.connect_window))
      nodes_[next_++]->start();
  }

  void stop() {
    for (auto& n : nodes_)
      n->stop();
  }

  void welcomed(bool first_time) {
    ++counters.welcomes;
    if (first_time) {
      ++registered_;
      if (next_ < nodes_.size()) nodes_[next_++]->start();
      if (registered_ == nodes_.size()) {
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
        print(fmt::format(R"({{"event":"registered","agents":{},"seconds":{:.3f}}})", registered_,
                          s));
      }
    }
  }

  void print_stats() {
    print(fmt::format(
        R"({{"event":"stats","agents":{},"registered":{},"installs":{},"deactivates":{},"messages_sent":{},"welcomes":{},"disconnects":{}}})",
        nodes_.size(), registered_, counters.installs, counters.deactivates, counters.messages_sent,
        counters.welcomes, counters.disconnects));
  }

  static void print(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
  }

  Counters counters;

 private:
  asio::io_context& ioc_;
  Options opts_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  size_t next_ = 0;
  size_t registered_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

SimNode::SimNode(Fleet& fleet, asio::io_context& ioc, const Options& o, int index)
    : fleet_(fleet),
      ioc_(ioc),
      opts_(o),
      index_(index),
      name_(fmt::format("{}-{}", o.prefix, index)),
      link_(ioc, LinkOptions{.server = o.server, .token = o.token, .quiet = true}, *this) {}

void SimNode::on_welcome(const protocol::Welcome& w) {
  if (!w.credential.empty()) credential_ = w.credential;  // presented on every reconnect
  fleet_.welcomed(!ever_welcomed_);
  ever_welcomed_ = true;
}

void SimNode::on_disconnected() {
  ++fleet_.counters.disconnects;
}

void SimNode::on_command(const protocol::ServerMessage& m) {
  if (const auto* cmd = std::get_if<protocol::InstallCommand>(&m)) {
    ++fleet_.counters.installs;
    run_job(Job{cmd->action, cmd->app, cmd->version}, 0);
  } else if (const auto* d = std::get_if<protocol::DeactivateCommand>(&m)) {
    ++fleet_.counters.deactivates;
    run_job(Job{d->action, d->app, ""}, 0);
  }
}

void SimNode::send(const protocol::AgentMessage& m) {
  ++fleet_.counters.messages_sent;
  link_.send(protocol::encode(m));
}

void SimNode::set_current(const std::string& app, const std::string& version) {
  for (auto& a : apps_) {
    if (a.app == app) {
      a.version = version;
      a.healthy = a.running = !version.empty();
      a.last_healthy = version.empty() ? a.last_healthy : version;
      if (!version.empty() &&
          std::find(a.releases.begin(), a.releases.end(), version) == a.releases.end())
        a.releases.push_back(version);
      return;
    }
  }
  if (version.empty()) return;
  protocol::AppState s;
  s.app = app;
  s.version = version;
  s.healthy = s.running = true;
  s.port = 8080;
  s.releases = {version};
  s.last_healthy = version;
  apps_.push_back(std::move(s));
}

// One step of the job: `started`, then `ok` (after the delay, if any), then the next step; the
// result after the last one.
void SimNode::run_job(Job job, size_t step) {
  const auto& steps = install_steps();
  const bool install = !job.version.empty();
  const size_t count = install ? steps.size() : 2;
  if (step == count) {
    set_current(job.app, job.version);
    protocol::InstallResult r;
    r.action = job.action;
    r.ok = true;
    r.app = job.app;
    r.version = job.version;
    r.healthy = install;
    r.downloaded = install;
    r.apps = apps_;
    send(r);
    return;
  }
  const std::string name = install ? steps[step] : (step == 0 ? "stop" : "deactivate");
  const auto now = slipway::now_ms();
  send(protocol::StepEvent{job.action, name, protocol::StepStatus::started, "", now, 0});
  auto finish = [this, job = std::move(job), step, name, now]() mutable {
    send(protocol::StepEvent{job.action, name, protocol::StepStatus::ok, "", now,
                             slipway::now_ms() - now});
    run_job(std::move(job), step + 1);
  };
  if (opts_.step_delay_ms <= 0) {
    finish();
    return;
  }
  auto timer =
      std::make_shared<asio::steady_timer>(ioc_, std::chrono::milliseconds(opts_.step_delay_ms));
  timer->async_wait(
      [timer, finish = std::move(finish)](const boost::system::error_code& ec) mutable {
        if (!ec) finish();
      });
}

void raise_fd_limit(int agents) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < static_cast<rlim_t>(agents) + 64) {
    spdlog::warn("the open-files limit is {}: too low for {} agents", rl.rlim_cur, agents);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"slipway-fleet-sim: many simulated agents in one process, for benchmarks"};
  app.add_option("--server", o.server, "The server's URL")->required();
  app.add_option("--token", o.token, "The join token")->required();
  app.add_option("--agents", o.agents, "How many agents")->check(CLI::Range(1, 100'000));
  app.add_option("--env", o.env, "Their environment")->capture_default_str();
  app.add_option("--role", o.role, "Their role")->capture_default_str();
  app.add_option("--zones", o.zones, "Spread them over this many zones (z0, z1, ...)");
  app.add_option("--prefix", o.prefix, "Names are PREFIX-1, PREFIX-2, ...")->capture_default_str();
  app.add_option("--step-delay", o.step_delay_ms, "Milliseconds each step takes")
      ->capture_default_str();
  app.add_option("--connect-window", o.connect_window, "Connections set up at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000));
  app.add_option("--log-level", o.log_level, "debug, info, warn, error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  raise_fd_limit(o.agents);

  asio::io_context ioc(1);
  Fleet fleet(ioc, o);
  asio::signal_set stop_signals(ioc, SIGINT, SIGTERM);
  stop_signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    fleet.print_stats();
    fleet.stop();
    ioc.stop();
  });
  asio::signal_set usr1(ioc, SIGUSR1);
  std::function<void()> wait_usr1 = [&] {
    usr1.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      fleet.print_stats();
      wait_usr1();
    });
  };
  wait_usr1();
  fleet.start();
  ioc.run();
  return 0;
}
