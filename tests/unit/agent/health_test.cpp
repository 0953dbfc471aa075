#include "agent/health.h"

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/supervisor.h"
#include "agent_test_util.h"

namespace slipway::agent {
namespace {

using namespace std::chrono_literals;
using artifacts::HealthCheck;
using artifacts::HealthKind;
using testing::TempDir;
using testing::wait_until;

HealthCheck check(HealthKind kind, std::string target) {
  HealthCheck c;
  c.kind = kind;
  c.target = std::move(target);
  c.timeout = 10s;
  c.healthy_for = 100ms;
  c.interval = 20ms;
  return c;
}

// A listening socket on 127.0.0.1 with a kernel-chosen port.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0) {
      std::abort();
    }
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(Probe, NoneIsHealthy) {
  const auto r = probe_once(HealthCheck{}, {}, 1s);
  EXPECT_TRUE(r.healthy);
}

TEST(Probe, TcpConnectsOrSaysWhyNot) {
  Listener l;
  const std::string target = "127.0.0.1:" + std::to_string(l.port());
  auto r = probe_once(check(HealthKind::tcp, target), {}, 1s);
  EXPECT_TRUE(r.healthy) << r.detail;
  EXPECT_EQ(r.detail, "connected to " + target);
  l.close();
  r = probe_once(check(HealthKind::tcp, target), {}, 1s);
  EXPECT_FALSE(r.healthy);
  EXPECT_NE(r.detail.find("Connection refused"), std::string::npos) << r.detail;
  r = probe_once(check(HealthKind::tcp, "no-port-here"), {}, 1s);
  EXPECT_FALSE(r.healthy);
  EXPECT_NE(r.detail.find("not host:port"), std::string::npos) << r.detail;
}

TEST(Probe, CommandRunsInTheContextAndReportsItsOutput) {
  TempDir d;
  ProcessSpec ctx;
  ctx.cwd = d.path();
  ctx.env = {{"EXPECTED", "yes"}};
  std::ofstream(d / "marker") << "x";
  auto r =
      probe_once(check(HealthKind::command, "test -f marker && test \"$EXPECTED\" = yes"), ctx, 5s);
  EXPECT_TRUE(r.healthy) << r.detail;
  r = probe_once(check(HealthKind::command, "echo database unreachable; exit 2"), ctx, 5s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "exit code 2: database unreachable");
  r = probe_once(check(HealthKind::command, "sleep 30"), ctx, 200ms);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "timed out after 200ms");
}

class HttpProbe : public ::testing::Test {
 protected:
  // Runs the sample service on 127.0.0.1 under a supervisor; returns its base URL.
  std::string serve(const std::string& extra) {
    Listener free_port;  // a port that is free now; the service binds it after we let go
    const int port = free_port.port();
    free_port.close();
    ProcessSpec spec;
    spec.command = std::string(SLIPWAY_SAMPLE_SERVICE) + " --address 127.0.0.1 --port " +
                   std::to_string(port) + " --version 9.9.9 " + extra;
    EXPECT_TRUE(sup_.start("sample", spec, dir_ / "app.log", dir_ / "app.pid"));
    const std::string target = "127.0.0.1:" + std::to_string(port);
    EXPECT_TRUE(
        wait_until([&] { return probe_once(check(HealthKind::tcp, target), {}, 1s).healthy; }));
    return "http://" + target;
  }
  void TearDown() override { (void)sup_.stop("sample", 5s); }

  TempDir dir_;
  Supervisor sup_;
};

TEST_F(HttpProbe, TwoHundredIsHealthy) {
  const std::string base = serve("");
  const auto r = probe_once(check(HealthKind::http, base + "/health"), {}, 2s);
  EXPECT_TRUE(r.healthy) << r.detail;
  EXPECT_EQ(r.detail, "HTTP 200");
}

TEST_F(HttpProbe, FiveHundredIsUnhealthyWithTheStartOfTheBody) {
  const std::string base = serve("--unhealthy");
  const auto r = probe_once(check(HealthKind::http, base + "/health"), {}, 2s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "HTTP 500: unhealthy");
  const auto missing = probe_once(check(HealthKind::http, base + "/nothing-here"), {}, 2s);
  EXPECT_FALSE(missing.healthy);
  EXPECT_EQ(missing.detail.rfind("HTTP 404", 0), 0u) << missing.detail;
}

TEST(Probe, HttpConnectionErrorIsTheDetail) {
  Listener l;
  const int port = l.port();
  l.close();
  const auto r = probe_once(
      check(HealthKind::http, "http://127.0.0.1:" + std::to_string(port) + "/health"), {}, 1s);
  EXPECT_FALSE(r.healthy);
  EXPECT_FALSE(r.detail.empty());
  EXPECT_EQ(r.detail.find("HTTP"), std::string::npos) << r.detail;
}

TEST(WaitHealthy, HealthyOnceHealthyForTheWholeWindow) {
  TempDir d;
  ProcessSpec ctx;
  ctx.cwd = d.path();
  // Healthy from the third probe on.
  auto c = check(HealthKind::command,
                 "n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; test $n -ge 2");
  c.healthy_for = 100ms;
  const auto h = wait_healthy(c, ctx, [] { return true; });
  EXPECT_TRUE(h.healthy) << h.detail;
  EXPECT_GE(h.probes, 4) << "two failures, then healthy probes across healthy_for";
  EXPECT_EQ(h.detail, "exit code 0");
}

TEST(WaitHealthy, ABreakRestartsTheWindow) {
  TempDir d;
  ProcessSpec ctx;
  ctx.cwd = d.path();
  // Healthy every other probe: never healthy twice in a row, so never healthy for a window.
  auto c =
      check(HealthKind::command,
            "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; test $((n % 2)) -eq 1");
  c.healthy_for = 30ms;
  c.interval = 20ms;
  c.timeout = 600ms;
  const auto h = wait_healthy(c, ctx, [] { return true; });
  EXPECT_FALSE(h.healthy);
  EXPECT_GE(h.probes, 2);
  EXPECT_EQ(h.detail.rfind("not healthy after 600ms", 0), 0u) << h.detail;
}

TEST(WaitHealthy, GivesUpAtTheTimeoutWithTheLastProbe) {
  auto c = check(HealthKind::command, "echo not ready; exit 1");
  c.timeout = 300ms;
  const auto h = wait_healthy(c, {}, [] { return true; });
  EXPECT_FALSE(h.healthy);
  EXPECT_GE(h.probes, 1);
  EXPECT_EQ(h.detail, "not healthy after 300ms: exit code 1: not ready");
}

TEST(WaitHealthy, StopsWhenTheProcessExits) {
  auto c = check(HealthKind::command, "exit 1");
  std::atomic<int> calls{0};
  const auto h = wait_healthy(c, {}, [&] { return ++calls < 3; });
  EXPECT_FALSE(h.healthy);
  EXPECT_EQ(h.detail, "process exited: last probe: exit code 1");
}

TEST(WaitHealthy, StopsWhenCancelled) {
  auto c = check(HealthKind::command, "exit 1");
  c.timeout = 60s;
  std::atomic<bool> cancelled{false};
  std::thread t([&] {
    std::this_thread::sleep_for(100ms);
    cancelled = true;
  });
  const auto h = wait_healthy(
      c, {}, [] { return true; }, &cancelled);
  t.join();
  EXPECT_FALSE(h.healthy);
  EXPECT_EQ(h.detail.rfind("cancelled", 0), 0u) << h.detail;
}

TEST(WaitHealthy, NoCheckIsHealthyAtOnceWhileAlive) {
  const auto h = wait_healthy(HealthCheck{}, {}, [] { return true; });
  EXPECT_TRUE(h.healthy);
  const auto dead = wait_healthy(HealthCheck{}, {}, [] { return false; });
  EXPECT_FALSE(dead.healthy);
}

}  // namespace
}  // namespace slipway::agent
