// A hostile agent: a hand-written WebSocket client (Beast, in this test only) enrolls with the
// join token as a node of its own, then forges and replays reports while real deploys run on real
// agents. The deploys' outcomes are those of the real agents, and the server's log names every
// refusal (the node, the action and why). And it floods the server while its database is slow:
// the server's memory stays bounded and no record is lost.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "common/fs.h"
#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

// An agent that says whatever the test wants: connects to /api/v1/agent/ws with a token and
// exchanges text messages. Reads give up after 10 seconds.
class HandWrittenAgent {
 public:
  HandWrittenAgent(const std::string& server_url, const std::string& token) {
    auto url = boost::urls::parse_uri(server_url);
    if (!url) throw std::runtime_error("bad server URL " + server_url);
    const std::string host(url->host());
    const std::string port(url->port());
    tcp::resolver resolver(ioc_);
    asio::connect(ws_.next_layer(), resolver.resolve(host, port));
    timeval tv{10, 0};
    ::setsockopt(ws_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ws_.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
      req.set(beast::http::field::authorization, "Bearer " + token);
    }));
    ws_.handshake(host + ":" + port, "/api/v1/agent/ws");
  }

  void send(const std::string& text) {
    ws_.text(true);
    ws_.write(asio::buffer(text));
  }
  void send(const json::value& v) { send(to_json(v)); }

  // The next message, or nullopt when the connection ended or nothing came in time.
  std::optional<json::value> read() {
    beast::flat_buffer buf;
    beast::error_code ec;
    ws_.read(buf, ec);
    if (ec) return std::nullopt;
    return parse(beast::buffers_to_string(buf.data()), "server message");
  }
  // Reads until a message of this type comes (skipping pings and others).
  std::optional<json::value> read_until(const std::string& type) {
    for (int i = 0; i < 50; ++i) {
      auto m = read();
      if (!m) return std::nullopt;
      if (str(*m, "type") == type) return m;
    }
    return std::nullopt;
  }

 private:
  asio::io_context ioc_;
  websocket::stream<tcp::socket> ws_{ioc_};
};

// A result; `apps` is what the node claims to run (the inventory takes it from accepted results).
json::value result_message(const std::string& action, const std::string& app,
                           const std::string& version, bool ok, json::array apps = {}) {
  return json::object{{"type", "result"},
                      {"action", action},
                      {"ok", ok},
                      {"app", app},
                      {"version", version},
                      {"healthy", ok},
                      {"reason", ok ? "" : "forged failure"},
                      {"reverted_to", ""},
                      {"downloaded", false},
                      {"apps", std::move(apps)}};
}

json::value app_state(const std::string& app, const std::string& version) {
  return json::object{{"app", app},
                      {"version", version},
                      {"healthy", true},
                      {"running", true},
                      {"port", 0},
                      {"releases", json::array{version}},
                      {"last_healthy", version}};
}

json::value step_message(const std::string& action, const std::string& status) {
  return json::object{{"type", "step"},   {"action", action},   {"step", "health"},
                      {"status", status}, {"output", "forged"}, {"started_at", 1},
                      {"duration_ms", 1}};
}

class HostileAgentTest : public E2eTest {
 protected:
  std::string server_log() {
    auto text = read_file(dir() / "lab" / "server" / "server.log");
    return text ? *text : std::string();
  }
  bool log_has(const std::string& needle) {
    return wait_until([&] { return server_log().find(needle) != std::string::npos; },
                      Millis(10'000));
  }
};

TEST_F(HostileAgentTest, ForgedAndReplayedReportsAreRefusedAndLoggedAndChangeNothing) {
  ASSERT_NO_THROW(start_lab(2));
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--batch", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const int64_t first = i64(latest_deploy(), "id");
  // A release whose health check takes a moment, so that forged reports arrive mid-deploy.
  r = push(release("2.0.0", {.healthy_for = Millis(1'500)}), "web", "2.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = push(release("1.0.0", {.app = "spy", .out_subdir = "spy"}), "spy", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  // The intruder enrolls with the join token, as a node of its own in another environment.
  std::optional<HandWrittenAgent> evil;
  ASSERT_NO_THROW(evil.emplace(info().server_url, info().join_token));
  evil->send(json::object{{"type", "hello"},
                          {"name", "intruder"},
                          {"env", "qa"},
                          {"roles", json::array{"spy"}},
                          {"zone", "a"},
                          {"tags", json::object{}},
                          {"address", "127.0.0.1"},
                          {"agent_version", "0.0.0"},
                          {"apps", json::array{}}});
  auto welcome = evil->read_until("welcome");
  ASSERT_TRUE(welcome.has_value());
  EXPECT_EQ(str(*welcome, "node"), "intruder");

  // Reports about the finished deploy's actions (sent to node-1 and node-2).
  const std::string first_action = fmt::format("d{}.a1", first);
  evil->send(result_message(first_action, "web", "1.0.0", false));
  evil->send(step_message(fmt::format("d{}.a2", first), "failed"));

  // A second deploy, with forged failures for every action it may have, while it runs.
  auto started =
      cli_json({"deploy", "web", "2.0.0", "--env", "staging", "--batch", "1", "--detach"});
  const int64_t second = i64(started, "id");
  ASSERT_GT(second, 0) << to_json(started);
  for (int round = 0; round < 3; ++round) {
    for (int a = 1; a <= 12; ++a) {
      const std::string action = fmt::format("d{}.a{}", second, a);
      evil->send(step_message(action, "failed"));
      evil->send(result_message(action, "web", "2.0.0", false));
      evil->send(result_message(action, "web", "0.0.1", true));
    }
    evil->send(result_message("d999.a1", "web", "2.0.0", false));  // an action never sent
    evil->send(json::object{{"type", "exec_result"},
                            {"action", fmt::format("hd{}.1", second)},
                            {"exit_code", 1},
                            {"signal", 0},
                            {"timed_out", false},
                            {"output", "forged"},
                            {"started_at", 1},
                            {"duration_ms", 1}});
    evil->send(json::object{{"type", "heartbeat"}});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  const auto d2 = wait_deploy_finished(second);
  EXPECT_EQ(str(d2, "state"), "succeeded") << to_json(d2);
  for (const auto& n : arr(d2, "nodes")) {
    EXPECT_EQ(str(n, "status"), "healthy") << to_json(n);
    EXPECT_EQ(str(n, "version_now"), "2.0.0") << to_json(n);
    EXPECT_EQ(str(n, "reason"), "") << to_json(n);
  }
  for (const auto& [name, n] : status_by_node()) {
    EXPECT_EQ(app_version_over_http(n, "web"), "2.0.0") << name;
  }

  // A deploy to the intruder itself: it gets an install command of its own. A result for that
  // action naming another app is refused; the honest one counts; a replay of it, turned into a
  // failure, is refused.
  auto spy = cli_json({"deploy", "spy", "1.0.0", "--env", "qa", "--detach"});
  const int64_t third = i64(spy, "id");
  ASSERT_GT(third, 0) << to_json(spy);
  auto install = evil->read_until("install");
  ASSERT_TRUE(install.has_value());
  const std::string own = str(*install, "action");
  evil->send(result_message(own, "web", "6.6.6", false, {app_state("web", "6.6.6")}));
  evil->send(result_message(own, "spy", "1.0.0", true, {app_state("spy", "1.0.0")}));
  const auto d3 = wait_deploy_finished(third);
  EXPECT_EQ(str(d3, "state"), "succeeded") << to_json(d3);
  evil->send(result_message(own, "spy", "1.0.0", false));
  evil->send(step_message(own, "failed"));

  EXPECT_TRUE(
      log_has(fmt::format("node intruder: result for action \"{}\" refused: the action "
                          "was sent to node node-",
                          first_action)))
      << server_log();
  EXPECT_TRUE(
      log_has("node intruder: result for action \"d999.a1\" refused: no command with "
              "this action was sent"));
  EXPECT_TRUE(
      log_has(fmt::format("node intruder: result for action \"{}\" refused: the result "
                          "names app 'web' but the action is for spy",
                          own)));
  EXPECT_TRUE(
      log_has(fmt::format("node intruder: result for action \"{}\" refused: the action "
                          "has already finished (a replayed report)",
                          own)));
  EXPECT_TRUE(log_has(fmt::format("node intruder: step for action \"{}\" refused", own)));
  EXPECT_TRUE(log_has("node intruder: exec result for action"));

  // Nothing changed: the deploys are as the real agents left them, the intruder's forged result
  // did not touch its apps in the inventory, and every refusal was counted.
  EXPECT_EQ(str(deploy(second), "state"), "succeeded");
  EXPECT_EQ(str(deploy(first), "state"), "succeeded");
  const auto d3_after = deploy(third);
  EXPECT_EQ(str(d3_after, "state"), "succeeded") << to_json(d3_after);
  for (const auto& n : arr(d3_after, "nodes")) {
    EXPECT_EQ(str(n, "status"), "healthy") << to_json(n);
  }
  const auto intruder = get_json("/api/v1/nodes/intruder");
  const auto* apps = obj(intruder).if_contains("apps");
  ASSERT_TRUE(apps && apps->is_object()) << to_json(intruder);
  EXPECT_FALSE(apps->as_object().contains("web")) << to_json(intruder);
  EXPECT_TRUE(apps->as_object().contains("spy")) << to_json(intruder);
  const auto stats = get_json("/api/v1/stats");
  EXPECT_GE(i64(stats, "ignored_agent_reports"), 3 * 12 * 2 + 8) << to_json(stats);
  EXPECT_GE(i64(stats, "ignored_exec_results"), 3) << to_json(stats);
}

// The hello names the node and describes it: every name in it goes through the one grammar, and a
// hello with a hostile one is refused (the connection is closed, no node is registered) and
// logged.
TEST_F(HostileAgentTest, HelloWithHostileNamesIsRefused) {
  ASSERT_NO_THROW(start_lab(1));
  const json::value good = json::object{{"type", "hello"},
                                        {"name", "probe"},
                                        {"env", "qa"},
                                        {"roles", json::array{"spy"}},
                                        {"zone", "a"},
                                        {"tags", json::object{{"team", "x"}}},
                                        {"address", "127.0.0.1"},
                                        {"agent_version", "0.0.0"},
                                        {"apps", json::array{app_state("web", "1.0.0")}}};
  const std::vector<std::pair<std::string, std::string>> hostile = {
      {"a path separator", "a/b"},
      {"dot-dot", ".."},
      {"a control character", "a\x01z"},
      {"a newline", "a\nb"},
      {"over-long", std::string(200, 'a')}};
  int tried = 0;
  for (const auto& [what, name] : hostile) {
    for (const std::string field :
         {"name", "env", "role", "zone", "tag key", "tag value", "app", "version"}) {
      json::value hello = good;
      auto& o = hello.as_object();
      if (field == "name" || field == "env" || field == "zone") {
        o[field] = name;
      } else if (field == "role") {
        o["roles"] = json::array{json::value(name)};
      } else if (field == "tag key") {
        o["tags"] = json::object{{name, "x"}};
      } else if (field == "tag value") {
        o["tags"] = json::object{{"team", name}};
      } else if (field == "app") {
        o["apps"] = json::array{app_state(name, "1.0.0")};
      } else {
        o["apps"] = json::array{app_state("web", name)};
      }
      SCOPED_TRACE(what + " in " + field);
      std::optional<HandWrittenAgent> agent;
      ASSERT_NO_THROW(agent.emplace(info().server_url, info().join_token));
      agent->send(hello);
      EXPECT_FALSE(agent->read_until("welcome").has_value()) << "welcomed: " << to_json(hello);
      ++tried;
    }
  }
  EXPECT_EQ(tried, 5 * 8);
  // None of them became a node; the server logged each refusal.
  const auto nodes = get_json("/api/v1/nodes");
  EXPECT_EQ(arr(nodes, "nodes").size(), 1u) << to_json(nodes);
  const auto count_refusals = [&] {
    const std::string log = server_log();
    int n = 0;
    for (size_t pos = log.find("agent from "); pos != std::string::npos;
         pos = log.find("agent from ", pos + 1)) {
      const size_t eol = log.find('\n', pos);
      if (log.substr(pos, eol - pos).find(" refused: ") != std::string::npos) ++n;
    }
    return n;
  };
  EXPECT_TRUE(wait_until([&] { return count_refusals() >= tried; }, Millis(10'000)))
      << count_refusals() << " refusals logged for " << tried << " hellos\n"
      << server_log();
}

// A flood with a slow disk: the database thread sleeps before each job (--TEST-db-delay) and its
// queue's mark is low (--db-queue-limit), while an agent sends heartbeats with app state as fast
// as its socket takes them, clients send requests that each append to the audit log, and a
// deploy runs. The queue stays near its mark (the producers wait: the agent's socket is not read,
// the requests are not taken), the deploy finishes, and nothing is lost: every request's audit
// entry, the deploy and the agent's newest state are in the database, as a restart shows.
TEST_F(HostileAgentTest, AFloodWithASlowDatabaseStaysBoundedAndLosesNothing) {
  constexpr int64_t kLimit = 16;
  constexpr int kHeartbeats = 2000;
  constexpr int kClients = 4;
  constexpr int kRequestsEach = 100;
  server_args_ = {"--db-queue-limit", std::to_string(kLimit), "--TEST-db-delay", "20ms"};
  ASSERT_NO_THROW(start_lab(2));
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  std::optional<HandWrittenAgent> flooder;
  ASSERT_NO_THROW(flooder.emplace(info().server_url, info().join_token));
  flooder->send(json::object{{"type", "hello"},
                             {"name", "flooder"},
                             {"env", "qa"},
                             {"roles", json::array{"batch"}},
                             {"zone", "a"},
                             {"tags", json::object{}},
                             {"address", "127.0.0.1"},
                             {"agent_version", "0.0.0"},
                             {"apps", json::array{}}});
  ASSERT_TRUE(flooder->read_until("welcome").has_value());

  auto started =
      cli_json({"deploy", "web", "1.0.0", "--env", "staging", "--batch", "1", "--detach"});
  const int64_t id = i64(started, "id");
  ASSERT_GT(id, 0) << to_json(started);

  std::atomic<int> finished{0};
  std::atomic<int> refused{0};
  std::atomic<int> other{0};
  std::thread agent_flood([&] {
    try {
      for (int i = 0; i < kHeartbeats; ++i) {
        flooder->send(
            json::object{{"type", "heartbeat"},
                         {"apps", json::array{app_state("batch", fmt::format("1.0.{}", i))}}});
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "the flood of heartbeats stopped: " << e.what();
    }
    ++finished;
  });
  // Requests the server refuses (no token), each of which it audits.
  const std::string target = "/api/v1/deploys/999999/pause";
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      for (int j = 0; j < kRequestsEach; ++j) {
        auto res = net::http_request("POST", info().server_url + target, {}, "",
                                     {.timeout = Millis(120'000)});
        ++(res && res->status == 401 ? refused : other);
      }
      ++finished;
    });
  }
  int64_t deepest = 0;  // the queue as seen from outside, while the flood lasts
  while (finished.load() < kClients + 1) {
    deepest = std::max(deepest, i64(get_json("/api/v1/stats"), "db_queue"));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  agent_flood.join();
  for (auto& t : clients)
    t.join();
  EXPECT_EQ(refused.load(), kClients * kRequestsEach);
  EXPECT_EQ(other.load(), 0);

  // The last heartbeat is read, and the deploy finishes on the real agents.
  const std::string last = fmt::format("1.0.{}", kHeartbeats - 1);
  auto flooder_version = [&] {
    const auto n = get_json("/api/v1/nodes/flooder");
    const auto* apps = obj(n).if_contains("apps");
    if (!apps || !apps->is_object() || !apps->as_object().contains("batch")) return std::string();
    return str(apps->as_object().at("batch"), "version");
  };
  EXPECT_TRUE(wait_until([&] { return flooder_version() == last; }, Millis(120'000)))
      << flooder_version();
  const auto d = wait_deploy_finished(id, Millis(120'000));
  EXPECT_EQ(str(d, "state"), "succeeded") << to_json(d);

  // Bounded: producers waited, and the queue stayed within a few jobs per producer of its mark
  // (a handful of connections here; the flood was thousands of messages).
  const auto stats = get_json("/api/v1/stats");
  EXPECT_GT(i64(stats, "db_waits"), 0) << to_json(stats);
  EXPECT_LE(i64(stats, "db_queue_peak"), 3 * kLimit) << to_json(stats);
  EXPECT_LE(deepest, 3 * kLimit);
  EXPECT_EQ(i64(stats, "db_queue_limit"), kLimit);
  // A node's record waits at most once: heartbeats read while it waited replaced it.
  EXPECT_GT(i64(stats, "node_writes_coalesced"), 0) << to_json(stats);

  // Nothing lost: an audit entry for every request...
  int audited = 0;
  const auto audit = get_json("/api/v1/audit?limit=10000");
  for (const auto& e : arr(audit, "entries")) {
    if (str(e, "path") == target && i64(e, "status") == 401) ++audited;
  }
  EXPECT_EQ(audited, kClients * kRequestsEach);
  // ...and, read back from the database by a restarted server, the deploy and the agent's
  // newest state.
  ASSERT_TRUE(lab_.stop_server());
  ASSERT_TRUE(lab_.start_server());
  EXPECT_EQ(flooder_version(), last);
  const auto again = deploy(id);
  EXPECT_EQ(str(again, "state"), "succeeded") << to_json(again);
  ASSERT_EQ(arr(again, "nodes").size(), 2u) << to_json(again);
  for (const auto& n : arr(again, "nodes"))
    EXPECT_EQ(str(n, "status"), "healthy") << to_json(n);
}

}  // namespace
}  // namespace slipway::e2e
