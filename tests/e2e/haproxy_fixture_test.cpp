// The pieces of the load-balancer tests on their own: HAProxy (tests/support/haproxy.h) in front of
// sample services started by hand, and the load generator (tests/support/loadgen.h) through it.
// Drained servers can be stopped and started again without a failed request; the load generator
// does see failures when there are some; the socat commands that agents will run reach HAProxy.
#include <csignal>
#include <iostream>
#include <memory>
#include <regex>

#include <fmt/format.h>

#include "e2e/harness.h"
#include "support/child_process.h"
#include "support/haproxy.h"
#include "support/loadgen.h"

namespace slipway::e2e {
namespace {

using slipway::testing::ChildOptions;
using slipway::testing::ChildProcess;
using slipway::testing::HaproxyFixture;
using slipway::testing::HaproxyOptions;
using slipway::testing::HaproxyServer;
using slipway::testing::LoadGenerator;
using slipway::testing::LoadOptions;
using slipway::testing::LoadSummary;

// ADDRESS with its last byte raised by `n` (the addresses of unique_first_address(count)).
std::string nth_address(const std::string& first, int n) {
  const auto dot = first.rfind('.');
  return first.substr(0, dot + 1) + std::to_string(std::stoi(first.substr(dot + 1)) + n);
}

// The sample service as one "node" behind HAProxy, on its own loopback address.
struct Backend {
  std::string name;
  std::string address;
  int port = 0;  // 0 until the first start: the kernel picks one, later starts reuse it
  fs::path dir;
  ChildProcess process;

  void start() {
    fs::create_directories(dir);
    const fs::path out = dir / fmt::format("{}.out", name);
    ChildOptions c;
    c.argv = {SLIPWAY_SAMPLE_SERVICE,
              "--address",
              address,
              "--port",
              std::to_string(port),
              "--app",
              "web",
              "--version",
              "1.0.0"};
    c.env = {{"SLIPWAY_NODE", name}};
    c.stdout_path = out;
    c.stderr_path = dir / fmt::format("{}.err", name);
    process.start(c);
    const std::regex listening(R"(listening on [0-9.]+:([0-9]+))");
    std::smatch m;
    std::string text;
    const bool up = wait_until(
        [&] {
          text = slipway::testing::read_text(out);
          return std::regex_search(text, m, listening) || !process.running();
        },
        Millis(10'000), Millis(20));
    if (!up || !process.running()) {
      throw std::runtime_error(fmt::format("{} did not start ({}): {}{}", name, process.describe(),
                                           text, slipway::testing::read_text(c.stderr_path)));
    }
    port = std::stoi(m[1].str());
  }
  HaproxyServer server() const { return {name, address, port}; }
};

class HaproxyFixtureTest : public E2eTest {
 protected:
  // `count` sample services (node-1...) and HAProxy in front of them (with the settings of `o`
  // but its directory, addresses and servers), every server UP (or "no check" without checks).
  void start_all(int count, HaproxyOptions o = {}) {
    const std::string first = unique_first_address(count + 1);
    o.dir = dir() / "haproxy";
    o.listen_address = first;
    for (int i = 1; i <= count; ++i) {
      auto b = std::make_unique<Backend>();
      b->name = fmt::format("node-{}", i);
      b->address = nth_address(first, i);
      b->dir = dir() / "backends";
      b->start();
      o.servers.push_back(b->server());
      backends_.push_back(std::move(b));
    }
    haproxy_.start(o);
    const std::string up = o.health_checks ? "UP" : "no check";
    for (const auto& b : backends_) {
      if (!haproxy_.wait_status(b->name, up)) {
        throw std::runtime_error(fmt::format("HAProxy does not see {} UP: {}", b->name,
                                             haproxy_.server_state(b->name).status));
      }
    }
  }

  void start_load(int concurrency = 4) {
    LoadOptions l;
    l.url = haproxy_.frontend_url() + "/";
    l.concurrency = concurrency;
    l.dir = dir() / "load";
    load_.start(l);
    if (!load_.wait_for_requests(100)) {
      throw std::runtime_error("no load through HAProxy: " + load_.progress().describe());
    }
  }

  // The command an agent runs on a node to drain or enable it: socat to the admin socket, with the
  // node's name from SLIPWAY_NODE.
  ProcResult socat_state(const std::string& node, const std::string& state) {
    return run_process({"/bin/sh", "-c",
                        fmt::format("echo \"set server web/$SLIPWAY_NODE state {}\" | "
                                    "socat stdio unix-connect:$SOCK",
                                    state)},
                       {{"SLIPWAY_NODE", node}, {"SOCK", haproxy_.socket_path().string()}},
                       Millis(10'000));
  }

  Backend& backend(const std::string& name) {
    for (auto& b : backends_) {
      if (b->name == name) return *b;
    }
    throw std::runtime_error("no backend " + name);
  }

  // A rolling restart behind HAProxy, as a deploy will do it: drain a node (with the socat command
  // agents run), wait until it serves nothing, stop it, start it again, enable it, wait until
  // HAProxy sees it UP; the next node; twice. Returns what the continuous load saw.
  LoadSummary rolling_restart() {
    start_load(4);
    for (int round = 1; round <= 2; ++round) {
      for (auto& b : backends_) {
        SCOPED_TRACE(fmt::format("round {}, {}", round, b->name));
        auto r = socat_state(b->name, "drain");
        EXPECT_EQ(r.exit_code, 0) << r.describe();
        EXPECT_EQ(haproxy_.server_state(b->name).status, "DRAIN");
        EXPECT_TRUE(haproxy_.wait_no_sessions(b->name));
        b->process.stop(SIGTERM);
        EXPECT_TRUE(load_.wait_for_more_requests(50)) << load_.progress().describe();
        b->start();
        EXPECT_TRUE(haproxy_.wait_status(b->name, "DRAIN"))
            << haproxy_.server_state(b->name).status;
        r = socat_state(b->name, "ready");
        EXPECT_EQ(r.exit_code, 0) << r.describe();
        EXPECT_TRUE(haproxy_.wait_status(b->name, "UP"));
        EXPECT_TRUE(load_.wait_for_more_requests(50)) << load_.progress().describe();
      }
    }
    return load_.stop();
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const fs::path& log :
           {dir() / "haproxy" / "haproxy.log", dir() / "load" / "loadgen.err"}) {
        std::cerr << "---- " << log.string() << " (last lines) ----\n"
                  << slipway::testing::tail_of(log, 40) << "\n";
      }
    }
    // Everything stopped here, before E2eTest removes the directory they work in.
    load_.kill();
    haproxy_.stop();
    for (auto& b : backends_)
      b->process.stop();
    E2eTest::TearDown();
  }

  static void report(const std::string& what, const LoadSummary& s) {
    std::cout << "[haproxy] " << what << ": " << s.describe() << "\n";
    ::testing::Test::RecordProperty(what + "_requests", std::to_string(s.requests));
    ::testing::Test::RecordProperty(what + "_failed", std::to_string(s.failed));
  }

  std::vector<std::unique_ptr<Backend>> backends_;
  HaproxyFixture haproxy_;
  LoadGenerator load_;
};

TEST_F(HaproxyFixtureTest, RuntimeApiReportsAndChangesServerStates) {
  ASSERT_NO_THROW(start_all(2));
  const std::string cfg = slipway::testing::read_text(haproxy_.config_path());
  EXPECT_NE(cfg.find("option httpchk GET /health"), std::string::npos) << cfg;
  EXPECT_NE(cfg.find("retry-on all-retryable-errors"), std::string::npos) << cfg;
  EXPECT_NE(cfg.find("bind fd@3"), std::string::npos) << cfg;

  auto states = haproxy_.server_states();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states["node-1"].address,
            fmt::format("{}:{}", backend("node-1").address, backend("node-1").port));
  EXPECT_EQ(states["node-1"].check_status, "L7OK");

  // Round robin: both nodes answer through the frontend.
  auto greeting = [&] {
    auto r =
        net::http_request("GET", haproxy_.frontend_url() + "/", {}, "", {.timeout = Millis(5'000)});
    if (!r) return "error: " + r.error().message;
    return r->status == 200 ? r->body : fmt::format("status {}", r->status);
  };
  std::set<std::string> answered;
  for (int i = 0; i < 6; ++i)
    answered.insert(greeting());
  ASSERT_EQ(answered.size(), 2u) << fmt::format("{}", fmt::join(answered, " | "));
  for (const auto& a : answered)
    EXPECT_NE(a.find("hello from web 1.0.0"), std::string::npos) << a;

  // Drained: no new request goes to node-1.
  ASSERT_NO_THROW(haproxy_.set_state("node-1", "drain"));
  EXPECT_EQ(haproxy_.server_state("node-1").status, "DRAIN");
  EXPECT_TRUE(haproxy_.server_state("node-1").draining());
  for (int i = 0; i < 6; ++i) {
    const std::string g = greeting();
    EXPECT_NE(g.find("(node node-2)"), std::string::npos) << g;
  }
  ASSERT_NO_THROW(haproxy_.set_state("node-1", "ready"));
  EXPECT_TRUE(haproxy_.wait_status("node-1", "UP"));

  // Errors of the runtime API are answers, and set_state turns them into exceptions.
  EXPECT_NE(haproxy_.runtime("set server web/nobody state drain").find("No such server"),
            std::string::npos);
  EXPECT_THROW(haproxy_.set_state("nobody", "drain"), std::runtime_error);
  EXPECT_THROW(haproxy_.server_state("nobody"), std::runtime_error);

  // A server can be pointed elsewhere (a node whose app moved to another port).
  ASSERT_NO_THROW(haproxy_.set_address("node-2", backend("node-2").address, 1));
  EXPECT_EQ(haproxy_.server_state("node-2").address,
            fmt::format("{}:1", backend("node-2").address));
  EXPECT_TRUE(haproxy_.wait_status("node-2", "DOWN"));
  ASSERT_NO_THROW(
      haproxy_.set_address("node-2", backend("node-2").address, backend("node-2").port));
  EXPECT_TRUE(haproxy_.wait_status("node-2", "UP"));

  haproxy_.stop();
  EXPECT_FALSE(haproxy_.running());
  EXPECT_THROW(haproxy_.runtime("show info"), std::runtime_error);
}

TEST_F(HaproxyFixtureTest, SocatCommandsDrainAndEnableANode) {
  ASSERT_NO_THROW(start_all(2));
  auto r = socat_state("node-2", "drain");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "\n") << r.describe();  // HAProxy's answer to a command that worked
  EXPECT_EQ(haproxy_.server_state("node-2").status, "DRAIN");
  r = socat_state("node-2", "ready");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(haproxy_.wait_status("node-2", "UP"));
  // A mistyped node shows in the answer (socat itself still exits 0).
  r = socat_state("node-9", "drain");
  EXPECT_NE(r.out.find("No such server"), std::string::npos) << r.describe();
}

// Production settings: not one request of the continuous load may fail.
TEST_F(HaproxyFixtureTest, DrainStopRestartEnableLosesNoRequest) {
  ASSERT_NO_THROW(start_all(3));
  LoadSummary s;
  ASSERT_NO_THROW(s = rolling_restart());
  report("drained_rolling_restart", s);
  EXPECT_GT(s.requests, 0);
  EXPECT_EQ(s.requests, s.ok + s.failed);
  EXPECT_EQ(s.failed, 0) << s.describe();
}

// Without retries: draining alone keeps every request whole (HAProxy's retries hide nothing).
TEST_F(HaproxyFixtureTest, DrainStopRestartEnableLosesNoRequestEvenWithoutRetries) {
  HaproxyOptions o;
  o.retries = 0;
  ASSERT_NO_THROW(start_all(3, o));
  LoadSummary s;
  ASSERT_NO_THROW(s = rolling_restart());
  report("drained_rolling_restart_no_retries", s);
  EXPECT_GT(s.requests, 0);
  EXPECT_EQ(s.failed, 0) << s.describe();
}

// The negative controls. A node killed without draining: HAProxy's retries may hide it or not;
// what the load generator saw is printed, not judged. Every node down: every request fails, and
// the load generator must count that.
TEST_F(HaproxyFixtureTest, LoadGeneratorCountsFailures) {
  ASSERT_NO_THROW(start_all(3));
  ASSERT_NO_THROW(start_load(4));

  const LoadSummary before = load_.progress();
  backend("node-2").process.stop(SIGKILL);
  ASSERT_TRUE(haproxy_.wait_status("node-2", "DOWN"));
  ASSERT_TRUE(load_.wait_for_more_requests(100)) << load_.progress().describe();
  const LoadSummary after_kill = load_.progress();
  std::cout << fmt::format(
      "[haproxy] node-2 killed (SIGKILL) without draining: {} failed of {} requests meanwhile\n",
      after_kill.failed - before.failed, after_kill.requests - before.requests);
  ::testing::Test::RecordProperty("kill_without_drain_failed",
                                  std::to_string(after_kill.failed - before.failed));
  ASSERT_NO_THROW(backend("node-2").start());
  ASSERT_TRUE(haproxy_.wait_status("node-2", "UP"));

  for (auto& b : backends_)
    b->process.stop(SIGTERM);
  for (auto& b : backends_)
    ASSERT_TRUE(haproxy_.wait_status(b->name, "DOWN")) << b->name;
  ASSERT_TRUE(load_.wait_for_more_requests(50)) << load_.progress().describe();
  const LoadSummary s = load_.stop();
  report("all_servers_down", s);
  EXPECT_EQ(s.requests, s.ok + s.failed);
  EXPECT_GE(s.failed, 50) << s.describe();
  EXPECT_TRUE(s.errors.contains("HTTP 503")) << s.describe();

  // Straight at an address where nothing listens, with a duration instead of a signal.
  const std::string nowhere = unique_first_address(1);
  auto r = run_process(
      {slipway::testing::default_loadgen_binary().string(), "--url",
       fmt::format("http://{}:9/", nowhere), "--concurrency", "2", "--duration-ms", "300"},
      {}, Millis(30'000));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto direct = slipway::testing::parse_load_summary(r.out);
  ASSERT_TRUE(direct.has_value()) << r.describe();
  report("nothing_listening", *direct);
  EXPECT_GT(direct->failed, 0);
  EXPECT_EQ(direct->ok, 0);
  EXPECT_EQ(direct->requests, direct->failed);
  EXPECT_TRUE(direct->errors.contains("curl: Couldn't connect to server")) << direct->line;
}

// The sharpest negative control: no retries and no health checks, so that a node killed without
// draining stays in the rotation and every request sent to it fails.
TEST_F(HaproxyFixtureTest, KilledNodeWithoutRetriesOrChecksFailsRequests) {
  HaproxyOptions o;
  o.retries = 0;
  o.health_checks = false;
  ASSERT_NO_THROW(start_all(3, o));
  EXPECT_EQ(haproxy_.server_state("node-2").status, "no check");
  ASSERT_NO_THROW(start_load(4));
  backend("node-2").process.stop(SIGKILL);
  EXPECT_TRUE(slipway::testing::poll_until([&] { return load_.progress().failed > 0; },
                                           std::chrono::seconds(30)))
      << load_.progress().describe();
  const LoadSummary s = load_.stop();
  report("killed_no_retries_no_checks", s);
  EXPECT_GT(s.failed, 0) << s.describe();
  EXPECT_GT(s.ok, 0) << s.describe();
  EXPECT_EQ(s.requests, s.ok + s.failed);
}

}  // namespace
}  // namespace slipway::e2e
