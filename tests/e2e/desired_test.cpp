// Desired state with real agents: a node that was down during a deploy and a machine that joins
// later converge by themselves (a `converge` deploy in the history); a node whose convergence
// fails, or whose app stops answering its health check while serving, is quarantined (shown in
// `nodes` and `status`, left out of deploys and runs) until `slipway nodes release NAME`; `status`
// flags drift; the release route refuses bad input.
#include <csignal>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

constexpr Millis kConverge{90'000};

// The node's app as the status shows it (an empty object when it does not run it).
json::value app_of(const json::value& node, const std::string& app) {
  const auto* apps = obj(node).if_contains("apps");
  if (!apps || !apps->is_object()) return json::object{};
  const auto* a = apps->as_object().if_contains(app);
  return a ? *a : json::value(json::object{});
}

bool runs_healthy(const json::value& node, const std::string& app, const std::string& version) {
  const auto a = app_of(node, app);
  return str(a, "version") == version && boolean(a, "healthy");
}

class Desired : public E2eTest {
 protected:
  json::value node(const std::string& name) { return get_json("/api/v1/nodes/" + name); }

  // Waits until the node runs APP VERSION healthy (and is not quarantined).
  void wait_converged(const std::string& name, const std::string& version) {
    json::value n;
    const bool ok = wait_until(
        [&] {
          n = node(name);
          return runs_healthy(n, "web", version) && !boolean(n, "quarantined");
        },
        kConverge, Millis(250));
    ASSERT_TRUE(ok) << name << " did not converge to web " << version << ": " << to_json(n);
  }

  void wait_quarantined(const std::string& name) {
    json::value n;
    const bool ok = wait_until(
        [&] {
          n = node(name);
          return boolean(n, "quarantined");
        },
        kConverge, Millis(250));
    ASSERT_TRUE(ok) << name << " was not quarantined: " << to_json(n);
  }

  void wait_state(const std::string& name, const std::string& state) {
    json::value n;
    const bool ok = wait_until(
        [&] {
          n = node(name);
          return str(n, "state") == state;
        },
        Millis(30'000), Millis(100));
    ASSERT_TRUE(ok) << name << " is not " << state << ": " << to_json(n);
  }

  // The convergence deploys of web in the history, oldest first.
  std::vector<json::value> converge_deploys() {
    std::vector<json::value> out;
    const auto h = get_json("/api/v1/deploys?app=web&limit=100");
    const auto& list = arr(h, "deploys");
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
      if (str(*it, "kind") == "converge") out.push_back(*it);
    }
    return out;
  }

  void push_ok(const std::string& version, const ReleaseOptions& o = {}) {
    auto r = push(release(version, o), "web", version);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }

  void deploy_ok(const std::string& version, ProcResult* out = nullptr) {
    auto r = cli({"deploy", "web", version, "--env", "staging"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    if (out) *out = r;
  }
};

TEST_F(Desired, ANodeThatWasDownAndANewMachineConvergeByThemselves) {
  ASSERT_NO_THROW(start_lab(3));
  push_ok("1.0.0");
  push_ok("1.1.0");
  deploy_ok("1.0.0");

  // node-3 is down while 1.1.0 goes out.
  ASSERT_TRUE(lab_.stop_node("node-3"));
  wait_state("node-3", "lost");
  ProcResult out;
  deploy_ok("1.1.0", &out);
  EXPECT_NE(out.err.find("lost and left out of this deploy: node-3"), std::string::npos)
      << out.describe();

  // status flags the drift: node-3 should run 1.1.0 and (last said it) runs 1.0.0.
  auto n3 = node("node-3");
  EXPECT_TRUE(boolean(n3, "drift")) << to_json(n3);
  EXPECT_EQ(str(obj(n3).at("desired"), "web"), "1.1.0") << to_json(n3);
  EXPECT_EQ(str(app_of(n3, "web"), "desired"), "1.1.0") << to_json(n3);
  EXPECT_TRUE(boolean(app_of(n3, "web"), "drift")) << to_json(n3);
  EXPECT_FALSE(boolean(node("node-1"), "drift")) << to_json(node("node-1"));
  auto table = cli({"status", "--env", "staging"});
  ASSERT_EQ(table.exit_code, 0) << table.describe();
  EXPECT_NE(table.out.find("DRIFT (wants 1.1.0)"), std::string::npos) << table.describe();

  // It comes back and converges; a new machine joins and converges too.
  ASSERT_TRUE(lab_.start_node("node-3"));
  wait_converged("node-3", "1.1.0");
  ASSERT_NO_THROW(add_agent("node-4"));
  wait_converged("node-4", "1.1.0");

  // Both are in the history as convergences, by the server, one node each.
  const auto conv = converge_deploys();
  ASSERT_EQ(conv.size(), 2u) << to_json(get_json("/api/v1/deploys?app=web"));
  std::set<std::string> selectors;
  for (const auto& d : conv) {
    EXPECT_EQ(str(d, "state"), "succeeded") << to_json(d);
    EXPECT_EQ(str(d, "version"), "1.1.0") << to_json(d);
    EXPECT_EQ(str(d, "actor"), "slipway (convergence)") << to_json(d);
    EXPECT_EQ(i64(d, "node_count"), 1) << to_json(d);
    selectors.insert(str(d, "selector"));
  }
  EXPECT_EQ(selectors, (std::set<std::string>{"name=node-3", "name=node-4"}));
  auto hist = cli({"history", "web"});
  ASSERT_EQ(hist.exit_code, 0) << hist.describe();
  EXPECT_NE(hist.out.find("converge"), std::string::npos) << hist.describe();
  auto show = cli_json({"history", "show", std::to_string(i64(conv.front(), "id"))});
  ASSERT_EQ(arr(show, "nodes").size(), 1u) << to_json(show);
  EXPECT_EQ(str(arr(show, "nodes")[0], "from_version"), "1.0.0") << to_json(show);

  // Everything runs what it should: no drift, and the apps answer with their version.
  for (const auto& [name, n] : status_by_node()) {
    EXPECT_FALSE(boolean(n, "drift")) << to_json(n);
    EXPECT_EQ(app_version_over_http(n, "web"), "1.1.0") << name;
  }
}

TEST_F(Desired, ANodeThatCannotConvergeIsQuarantinedUntilReleased) {
  ASSERT_NO_THROW(start_lab(3));
  push_ok("1.0.0");
  // 1.1.0 fails its after_install hook on a node whose root holds a file named `broken`.
  push_ok("1.1.0", {.after_install = "test -x ./bin/server && test ! -e ../../../../broken"});
  push_ok("1.2.0");
  deploy_ok("1.0.0");
  ASSERT_TRUE(lab_.stop_node("node-3"));
  wait_state("node-3", "lost");
  deploy_ok("1.1.0");

  const fs::path broken = node_root("node-3") / "broken";
  std::ofstream(broken) << "a bad disk\n";
  ASSERT_TRUE(lab_.start_node("node-3"));
  wait_quarantined("node-3");

  auto n3 = node("node-3");
  EXPECT_NE(str(n3, "quarantine_reason").find("convergence to web 1.1.0 failed"), std::string::npos)
      << to_json(n3);
  EXPECT_FALSE(str(n3, "quarantined_at").empty()) << to_json(n3);
  EXPECT_EQ(str(n3, "state"), "alive");
  // The hook failed before the switch: it still runs 1.0.0 (healthy once probed), which is drift.
  EXPECT_EQ(str(app_of(n3, "web"), "version"), "1.0.0") << to_json(n3);
  EXPECT_TRUE(boolean(n3, "drift")) << to_json(n3);
  EXPECT_TRUE(wait_until([&] { return runs_healthy(node("node-3"), "web", "1.0.0"); }, kConverge,
                         Millis(250)))
      << to_json(node("node-3"));
  auto conv = converge_deploys();
  ASSERT_EQ(conv.size(), 1u);
  EXPECT_NE(str(conv[0], "state"), "succeeded") << to_json(conv[0]);

  // Shown in nodes and status, as JSON and as tables.
  for (const char* cmd : {"nodes", "status"}) {
    auto js = cli_json({cmd, "--env", "staging"});
    for (const auto& n : arr(js, "nodes")) {
      EXPECT_EQ(boolean(n, "quarantined"), str(n, "name") == "node-3") << cmd << to_json(n);
    }
    auto t = cli({cmd, "--env", "staging"});
    ASSERT_EQ(t.exit_code, 0) << t.describe();
    EXPECT_NE(t.out.find("QUARANTINED"), std::string::npos) << t.describe();
    EXPECT_NE(t.out.find("slipway nodes release node-3"), std::string::npos) << t.describe();
  }

  // Left out of the next deploy (with a warning naming it) and of runs.
  ProcResult out;
  deploy_ok("1.2.0", &out);
  EXPECT_NE(out.err.find("quarantined"), std::string::npos) << out.describe();
  EXPECT_NE(out.err.find("node-3"), std::string::npos) << out.describe();
  auto d = deploy(i64(latest_deploy(), "id"));
  ASSERT_EQ(arr(d, "nodes").size(), 2u) << to_json(d);
  for (const auto& n : arr(d, "nodes"))
    EXPECT_NE(str(n, "node"), "node-3") << to_json(d);
  auto run = http("POST", "/api/v1/runs", R"({"env":"staging","argv":["true"]})");
  ASSERT_EQ(run.status, 201) << run.body;
  auto rj = parse(run.body, "run");
  EXPECT_EQ(arr(rj, "nodes").size(), 2u) << run.body;
  EXPECT_EQ(to_json(obj(rj).at("quarantined_nodes_left_out")), R"(["node-3"])") << run.body;
  EXPECT_TRUE(boolean(node("node-3"), "quarantined"));
  EXPECT_EQ(converge_deploys().size(), 1u) << "a quarantined node is not converged again";

  // Fixed and released: it converges to what is desired now, and is a target again.
  fs::remove(broken);
  auto rel = cli({"nodes", "release", "node-3"});
  ASSERT_EQ(rel.exit_code, 0) << rel.describe();
  EXPECT_NE(rel.out.find("released"), std::string::npos) << rel.describe();
  wait_converged("node-3", "1.2.0");
  conv = converge_deploys();
  ASSERT_EQ(conv.size(), 2u);
  EXPECT_EQ(str(conv[1], "state"), "succeeded") << to_json(conv[1]);
  EXPECT_EQ(str(conv[1], "version"), "1.2.0") << to_json(conv[1]);
  EXPECT_FALSE(boolean(node("node-3"), "drift"));
  auto again = cli({"nodes", "release", "node-3"});
  EXPECT_EQ(again.exit_code, 2) << again.describe();
  EXPECT_NE(again.err.find("not quarantined"), std::string::npos) << again.describe();
  auto next = cli({"rollback", "web", "--env", "staging"});
  ASSERT_EQ(next.exit_code, 0) << next.describe();
  EXPECT_EQ(arr(deploy(i64(latest_deploy(), "id")), "nodes").size(), 3u);
}

TEST_F(Desired, AnAppThatStopsAnsweringWhileServingQuarantinesItsNode) {
  ASSERT_NO_THROW(start_lab(2));
  push_ok("1.0.0");
  deploy_ok("1.0.0");
  // The app of node-2 stops (SIGSTOP): it runs, but its health check gets no answer.
  std::ifstream pid_file(node_root("node-2") / "apps" / "web" / "app.pid");
  pid_t pid = 0;
  ASSERT_TRUE(pid_file >> pid) << "no pid file";
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  wait_quarantined("node-2");
  ::kill(pid, SIGCONT);
  auto n2 = node("node-2");
  EXPECT_NE(str(n2, "quarantine_reason").find("web 1.0.0 failed its health check while serving"),
            std::string::npos)
      << to_json(n2);
  EXPECT_FALSE(boolean(node("node-1"), "quarantined"));
  // It answers again, but stays out until someone releases it.
  ASSERT_TRUE(wait_until([&] { return runs_healthy(node("node-2"), "web", "1.0.0"); }, kConverge,
                         Millis(250)));
  EXPECT_TRUE(boolean(node("node-2"), "quarantined"));
  auto rel = cli({"nodes", "release", "node-2", "-o", "json"});
  ASSERT_EQ(rel.exit_code, 0) << rel.describe();
  auto rj = parse(rel.out, "release");
  EXPECT_FALSE(boolean(rj, "quarantined")) << rel.out;
  EXPECT_EQ(str(rj, "quarantine_reason"), "") << rel.out;
  EXPECT_TRUE(converge_deploys().empty()) << "it runs its desired release: nothing to converge";
}

TEST_F(Desired, TheReleaseRouteRefusesBadInput) {
  ASSERT_NO_THROW(start_lab(1));
  struct Case {
    const char* method;
    std::string target;
    std::string body;
    int status;
    const char* says;  // in the answer's body ("" = anything)
  };
  const std::string route = "/api/v1/nodes/node-1/release";
  const Case cases[] = {
      {"POST", "/api/v1/nodes/nobody/release", "", 404, "no node named nobody"},
      {"POST", "/api/v1/nodes/bad%20name/release", "", 400, ""},
      {"POST", "/api/v1/nodes/-x/release", "", 400, ""},
      {"GET", route, "", 405, ""},
      {"DELETE", route, "", 405, ""},
      {"POST", route, "", 412, "not quarantined"},
      {"POST", route, R"({"force":true})", 400, "force"},
      {"POST", route, "{not json", 400, ""},
      {"POST", route, "[]", 400, ""},
  };
  for (const auto& c : cases) {
    auto r = http(c.method, c.target, c.body);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target << " " << c.body << ": " << r.body;
    EXPECT_NE(r.body.find(c.says), std::string::npos) << r.body;
  }
  auto r = http("POST", "/api/v1/nodes/..%2F..%2Fetc/release");
  EXPECT_TRUE(r.status == 400 || r.status == 404) << r.status << " " << r.body;
  // Tokens: none, and the agents' one.
  EXPECT_EQ(http("POST", route, "", {}, std::string()).status, 401);
  EXPECT_EQ(http("POST", route, "", {}, info().join_token).status, 403);
  auto cli_bad = cli({"nodes", "release", "../etc"});
  EXPECT_EQ(cli_bad.exit_code, 2) << cli_bad.describe();
  // The node JSON carries the new fields, empty.
  auto n = get_json("/api/v1/nodes/node-1");
  EXPECT_FALSE(boolean(n, "quarantined"));
  EXPECT_TRUE(obj(n).at("quarantined_at").is_null()) << to_json(n);
  EXPECT_FALSE(boolean(n, "drift"));
  EXPECT_TRUE(obj(n).at("desired").as_object().empty()) << to_json(n);
}

}  // namespace
}  // namespace slipway::e2e
