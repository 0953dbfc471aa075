// The sample web service, run as the real binary on 127.0.0.1.
#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "unit/lab/test_util.h"

namespace slipway::lab::testing {
namespace {

const std::string kBinary = SLIPWAY_SAMPLE_SERVICE;

// Starts the service on 127.0.0.1 (port 0 unless args say otherwise) and waits for its line.
struct Service {
  std::unique_ptr<Child> child;
  int port = 0;
  std::string line;
};

Service start(std::vector<std::string> extra, std::map<std::string, std::string> env = {},
              bool with_port = true) {
  std::vector<std::string> args = {kBinary, "--address", "127.0.0.1"};
  if (with_port) args.insert(args.end(), {"--port", "0"});
  args.insert(args.end(), extra.begin(), extra.end());
  Service s;
  s.child = std::make_unique<Child>(args, env);
  auto line = s.child->read_line();
  if (!line) {
    ADD_FAILURE() << "the service printed no line";
    return s;
  }
  s.line = *line;
  const size_t colon = line->rfind(':');
  if (colon != std::string::npos) s.port = std::stoi(line->substr(colon + 1));
  return s;
}

// Whether the main thread of `pid` blocks SIGTERM (the SigBlk mask in /proc/PID/status).
bool sigterm_blocked(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("SigBlk:", 0) == 0) {
      const unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
      return (mask >> (SIGTERM - 1)) & 1;
    }
  }
  return false;
}

TEST(SampleService, PrintsWhereItListens) {
  auto s = start({"--app", "web", "--version", "1.2.3"});
  EXPECT_EQ(s.line,
            "slipway-sample-service: web 1.2.3 listening on 127.0.0.1:" + std::to_string(s.port));
  EXPECT_GT(s.port, 0);
}

TEST(SampleService, HealthIsOk) {
  auto s = start({});
  const auto r = get(s.port, "/health");
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "ok\n");
}

TEST(SampleService, UnhealthyAnswers500) {
  auto s = start({"--unhealthy"});
  const auto r = get(s.port, "/health");
  EXPECT_EQ(status_of(r), 500) << r;
  EXPECT_EQ(body_of(r), "unhealthy\n");
  // Only the health check is broken: the app still answers.
  EXPECT_EQ(status_of(get(s.port, "/")), 200);
}

TEST(SampleService, GreetsWithAppVersionAndAddress) {
  auto s = start({"--app", "web", "--version", "1.1.0"});
  const auto r = get(s.port, "/");
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "hello from web 1.1.0 on 127.0.0.1:" + std::to_string(s.port) + "\n");
}

TEST(SampleService, GreetingNamesTheNodeFromTheEnvironment) {
  auto s = start({"--app", "web", "--version", "1.0.0"}, {{"SLIPWAY_NODE", "node-3"}});
  EXPECT_EQ(body_of(get(s.port, "/")),
            "hello from web 1.0.0 on 127.0.0.1:" + std::to_string(s.port) + " (node node-3)\n");
}

TEST(SampleService, ExplicitPort) {
  const int port = free_port();
  auto s = start({"--port", std::to_string(port)}, {}, false);
  EXPECT_EQ(s.port, port) << s.line;
  EXPECT_EQ(status_of(get(port, "/health")), 200);
}

TEST(SampleService, VersionAndNotFound) {
  auto s = start({"--version", "2.0.0-rc.1"});
  const auto v = get(s.port, "/version");
  EXPECT_EQ(status_of(v), 200);
  EXPECT_EQ(body_of(v), "2.0.0-rc.1\n");
  const auto nf = get(s.port, "/nope");
  EXPECT_EQ(status_of(nf), 404) << nf;
  // A query string does not change the route.
  EXPECT_EQ(status_of(get(s.port, "/health?probe=1")), 200);
}

TEST(SampleService, HeadHasNoBodyAndOtherMethodsAre405) {
  auto s = start({});
  const auto head = http_exchange(s.port, "HEAD /health HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(head), 200);
  EXPECT_NE(head.find("Content-Length: 3\r\n"), std::string::npos) << head;
  EXPECT_EQ(body_of(head), "");
  const auto post = http_exchange(
      s.port, "POST / HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
  EXPECT_EQ(status_of(post), 405) << post;
}

TEST(SampleService, MalformedRequestsGet400AndTheConnectionCloses) {
  auto s = start({});
  for (const char* bad :
       {"BAD\r\n\r\n", "GET /\r\n\r\n", "GET / HTTP/9\r\n\r\n", "GET / HTTP/1.1 extra\r\n\r\n",
        "GET  HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "G(T / HTTP/1.1\r\n\r\n"}) {
    // No Connection: close: the server must close by itself after a 400.
    const auto r = http_exchange(s.port, bad);
    EXPECT_EQ(status_of(r), 400) << "request: " << bad << "\nresponse: " << r;
  }
  // Still serving afterwards.
  EXPECT_EQ(status_of(get(s.port, "/health")), 200);
}

TEST(SampleService, OversizedHeadIsRefused) {
  auto s = start({});
  const std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  const auto r = http_exchange(s.port, big);
  EXPECT_EQ(status_of(r), 431) << r.substr(0, 200);
}

TEST(SampleService, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto s = start({"--version", "3.0.0"});
  Conn c(s.port);
  c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto first = c.read_response();
  EXPECT_EQ(status_of(first), 200) << first;
  EXPECT_NE(first.find("Connection: keep-alive"), std::string::npos);
  // Two pipelined requests, the second one closing.
  c.send(
      "GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const auto second = c.read_response();
  EXPECT_EQ(body_of(second), "3.0.0\n");
  const auto third = c.read_response();
  EXPECT_EQ(status_of(third), 404) << third;
  EXPECT_NE(third.find("Connection: close"), std::string::npos);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(SampleService, Http10ClosesByDefault) {
  auto s = start({});
  Conn c(s.port);
  c.send("GET /health HTTP/1.0\r\n\r\n");
  EXPECT_EQ(status_of(c.read_response()), 200);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(SampleService, ServesManyClientsAtOnce) {
  auto s = start({});
  // Idle connections held open must not keep others from being served.
  std::vector<std::unique_ptr<Conn>> idle;
  for (int i = 0; i < 50; ++i)
    idle.push_back(std::make_unique<Conn>(s.port));
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  constexpr int kThreads = 16, kRequests = 25;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      Conn c(s.port);
      for (int i = 0; i < kRequests; ++i) {
        c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        if (status_of(c.read_response()) == 200) ++ok;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(ok.load(), kThreads * kRequests);
  // The idle ones are served too.
  for (auto& c : idle) {
    c->send("GET /health HTTP/1.1\r\n\r\n");
    EXPECT_EQ(status_of(c->read_response()), 200);
  }
}

TEST(SampleService, SigtermExitsZeroEvenWithOpenConnections) {
  auto s = start({});
  Conn c(s.port);
  c.send("GET /health HTTP/1.1\r\n\r\n");
  ASSERT_EQ(status_of(c.read_response()), 200);
  ::kill(s.child->pid(), SIGTERM);
  EXPECT_EQ(s.child->exit_code(), 0);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(SampleService, SigintExitsZero) {
  auto s = start({});
  ::kill(s.child->pid(), SIGINT);
  EXPECT_EQ(s.child->exit_code(), 0);
}

TEST(SampleService, ExitAfterMsExitsWithThree) {
  auto s = start({"--exit-after-ms", "100"});
  EXPECT_EQ(s.child->exit_code(), 3);
}

TEST(SampleService, StartDelayListensLaterAndSigtermDuringItExitsZero) {
  {
    auto s = start({"--start-delay-ms", "200"});
    EXPECT_EQ(status_of(get(s.port, "/health")), 200);
  }
  Child c({kBinary, "--address", "127.0.0.1", "--port", "0", "--start-delay-ms", "600000"});
  // SIGTERM before the service has blocked it would kill it by the default action: wait until
  // it is blocked, which the service does first thing.
  ASSERT_TRUE(eventually([&] { return sigterm_blocked(c.pid()); }));
  ::kill(c.pid(), SIGTERM);
  EXPECT_EQ(c.exit_code(), 0);
  EXPECT_FALSE(c.read_line().has_value());  // it never listened
}

TEST(SampleService, BadUsageExitsTwo) {
  EXPECT_EQ(Child({kBinary, "--address", "127.0.0.1"}).exit_code(), 2);       // no port
  EXPECT_EQ(Child({kBinary, "--port", "70000"}).exit_code(), 2);              // bad port
  EXPECT_EQ(Child({kBinary, "--port", "0", "--frobnicate"}).exit_code(), 2);  // unknown
  EXPECT_EQ(Child({kBinary, "--port", "0", "--exit-after-ms", "-1"}).exit_code(), 2);
}

TEST(SampleService, PortInUseExitsOne) {
  auto s = start({});
  Child second({kBinary, "--address", "127.0.0.1", "--port", std::to_string(s.port)});
  EXPECT_EQ(second.exit_code(), 1);
}

}  // namespace
}  // namespace slipway::lab::testing
