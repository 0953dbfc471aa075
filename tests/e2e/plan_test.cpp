// Deploy plans (slipway deploy -f) on a real lab: a three-stage plan whose second stage fails (the
// first is rolled back, the third never runs); a plan held for approval, promoted from another CLI
// call, then by a timed wait; an abort while a plan waits; hostile plan requests.
#include <csignal>
#include <fstream>
#include <future>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

class PlanE2eTest : public E2eTest {
 protected:
  // Adds an agent with `role` (env staging, no zone) and waits until it is alive.
  void add_node(const std::string& name, const std::string& role) {
    lab::NodeSpec n;
    n.name = name;
    n.env = "staging";
    n.roles = {role};
    n.address = unique_first_address(1);
    if (!lab_.add_node(n)) throw std::runtime_error("cannot add node " + name);
    const bool alive = wait_until(
        [&] {
          auto nodes = status_by_node();
          auto it = nodes.find(name);
          return it != nodes.end() && str(it->second, "state") == "alive";
        },
        Millis(30'000));
    if (!alive) throw std::runtime_error(name + " did not come up");
  }

  void push_ok(const std::string& app, const std::string& version, ReleaseOptions o = {}) {
    o.app = app;
    auto r = push(release(version, o), app, version);
    if (r.exit_code != 0) throw std::runtime_error(r.describe());
  }

  void deploy_ok(const std::vector<std::string>& args) {
    std::vector<std::string> a = {"deploy"};
    a.insert(a.end(), args.begin(), args.end());
    auto r = cli(a);
    if (r.exit_code != 0) throw std::runtime_error(r.describe());
  }

  fs::path write_plan(const std::string& yaml) {
    const fs::path p = dir() / "deploy.yaml";
    std::ofstream(p) << yaml;
    return p;
  }

  // The version of `app` on each node (nodes without it left out).
  std::map<std::string, std::string> versions(const std::string& app) {
    std::map<std::string, std::string> out;
    for (const auto& [name, n] : status_by_node()) {
      const auto* apps = obj(n).if_contains("apps");
      const auto* a = apps && apps->is_object() ? apps->as_object().if_contains(app) : nullptr;
      if (a) out[name] = str(*a, "version");
    }
    return out;
  }

  json::value plan(const std::string& ref) { return get_json("/api/v1/plans/" + ref); }

  static std::vector<std::string> stage_states(const json::value& p) {
    std::vector<std::string> out;
    for (const auto& s : arr(p, "stages"))
      out.push_back(str(s, "state"));
    return out;
  }
};

TEST_F(PlanE2eTest, AThreeStagePlanWithAFailingSecondStageRollsBackTheFirst) {
  ASSERT_NO_THROW(start_lab(2));  // node-1, node-2: role api
  ASSERT_NO_THROW(add_node("mig-1", "migrator"));
  ASSERT_NO_THROW(add_node("work-1", "worker"));
  ASSERT_NO_THROW(push_ok("migrate", "1.0.0"));
  ASSERT_NO_THROW(push_ok("migrate", "1.1.0"));
  ASSERT_NO_THROW(push_ok("web", "1.0.0"));
  ReleaseOptions bad;
  bad.healthy = false;
  bad.health_timeout = Millis(2'000);
  ASSERT_NO_THROW(push_ok("web", "2.0.0", bad));
  ASSERT_NO_THROW(deploy_ok({"migrate", "1.0.0", "--env", "staging", "--role", "migrator"}));
  ASSERT_NO_THROW(deploy_ok({"web", "1.0.0", "--env", "staging", "--role", "api"}));
  ASSERT_NO_THROW(deploy_ok({"web", "1.0.0", "--env", "staging", "--role", "worker"}));

  const auto file = write_plan(R"(env: staging
stages:
  - name: migrate
    app: migrate
    version: 1.1.0
    role: migrator
    strategy: all
  - name: api
    app: web
    version: 2.0.0
    role: api
    strategy: canary
    canary: 1
    batch: 1
  - name: worker
    app: web
    version: 2.0.0
    role: worker
    strategy: all
)");
  auto r = cli({"deploy", "-f", file.string()});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.out.find("plan p1: 3 stage(s) to staging"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("==> stage 1/3 migrate"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("==> stage 2/3 api"), std::string::npos) << r.describe();
  EXPECT_EQ(r.out.find("==> stage 3/3"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("==> rolling back stage migrate"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("plan p1 FAILED and was rolled back"), std::string::npos) << r.describe();

  // The first stage's node is back on what it ran before; the second stage's canary went back
  // by itself; the third stage never started.
  EXPECT_EQ(versions("migrate"), (std::map<std::string, std::string>{{"mig-1", "1.0.0"}}));
  for (const auto& [node, v] : versions("web"))
    EXPECT_EQ(v, "1.0.0") << node;
  const auto p = plan("p1");
  EXPECT_EQ(str(p, "state"), "rolled_back") << to_json(p);
  EXPECT_EQ(stage_states(p), (std::vector<std::string>{"rolled_back", "failed", "skipped"}));
  EXPECT_TRUE(arr(p, "stages")[2].as_object().at("deploy").is_null()) << to_json(p);
  EXPECT_NE(str(p, "reason").find("stage api failed"), std::string::npos) << to_json(p);
  ASSERT_EQ(arr(p, "rollbacks").size(), 1u) << to_json(p);
  const auto rollback = deploy(arr(p, "rollbacks")[0].as_int64());
  EXPECT_EQ(str(rollback, "kind"), "rollback");
  EXPECT_EQ(str(rollback, "app"), "migrate");
  EXPECT_EQ(str(rollback, "version"), "1.0.0");
  EXPECT_EQ(str(rollback, "state"), "succeeded");
  ASSERT_EQ(arr(rollback, "nodes").size(), 1u);
  EXPECT_EQ(str(arr(rollback, "nodes")[0], "node"), "mig-1");
  // Each stage is a deploy like any other, in the history.
  const auto api = deploy(arr(p, "stages")[1].as_object().at("deploy").as_int64());
  EXPECT_EQ(str(api, "state"), "rolled_back") << to_json(api);
  EXPECT_EQ(str(api, "strategy"), "canary");

  // The history lists the plan and its rollback, and shows the plan stage by stage.
  r = cli({"history"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("p1"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("rolled_back"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("rollback"), std::string::npos) << r.describe();
  r = cli({"history", "show", "p1"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("rolled_back"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("skipped"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find(fmt::format("#{}", i64(rollback, "id"))), std::string::npos) << r.describe();
  // Over: nothing to promote or abort.
  r = cli({"promote", "p1"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("plan p1 is over"), std::string::npos) << r.describe();
  r = cli({"abort", "p1"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

TEST_F(PlanE2eTest, APlanWaitsForApprovalFromAnotherCallThenForAWhile) {
  ASSERT_NO_THROW(start_lab(2));
  ASSERT_NO_THROW(add_node("work-1", "worker"));
  ASSERT_NO_THROW(push_ok("web", "1.0.0"));
  ASSERT_NO_THROW(push_ok("web", "1.1.0"));
  ASSERT_NO_THROW(deploy_ok({"web", "1.0.0", "--env", "staging", "--strategy", "all"}));

  const auto file = write_plan(R"(app: web
version: 1.1.0
stages:
  - name: api-a
    role: api
    zone: a
    approve: true
  - name: api-b
    role: api
    zone: b
    wait: 1s
  - name: worker
    role: worker
)");
  // The CLI follows the plan while another call approves it.
  auto follow = std::async(std::launch::async, [&] {
    return cli({"deploy", "-f", file.string(), "--env", "staging"}, Millis(120'000));
  });
  const bool waiting = wait_until(
      [&] {
        auto r = http("GET", "/api/v1/plans/p1");
        return r.status == 200 && str(parse(r.body, "plan"), "state") == "waiting";
      },
      Millis(60'000));
  ASSERT_TRUE(waiting);
  // Only the first stage's node changed so far.
  auto v = versions("web");
  EXPECT_EQ(v["node-1"], "1.1.0");
  EXPECT_EQ(v["node-2"], "1.0.0");
  EXPECT_EQ(v["work-1"], "1.0.0");
  EXPECT_EQ(i64(get_json("/api/v1/stats"), "plans_running"), 1);
  auto p = plan("p1");
  EXPECT_EQ(str(p, "gate"), "approve");
  EXPECT_NE(str(p, "waiting").find("slipway promote p1"), std::string::npos) << to_json(p);
  auto r = cli({"history", "show", "p1"});
  EXPECT_NE(r.out.find("waiting for approval: slipway promote p1"), std::string::npos)
      << r.describe();

  r = cli({"promote", "p1"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("plan p1 goes on: stage api-b"), std::string::npos) << r.describe();
  const auto followed = follow.get();
  EXPECT_EQ(followed.exit_code, 0) << followed.describe();
  // Who let it go on, each time (what it waited for is printed when the follower sees it wait).
  EXPECT_NE(followed.out.find("approved by "), std::string::npos) << followed.describe();
  EXPECT_NE(followed.out.find("promoted by slipway: the wait is over"), std::string::npos)
      << followed.describe();
  EXPECT_NE(followed.out.find("==> stage 3/3 worker"), std::string::npos) << followed.describe();
  EXPECT_NE(followed.out.find("plan p1 succeeded: 3 stage(s)"), std::string::npos)
      << followed.describe();

  for (const auto& [node, version] : versions("web"))
    EXPECT_EQ(version, "1.1.0") << node;
  p = plan("p1");
  EXPECT_EQ(str(p, "state"), "succeeded");
  EXPECT_EQ(stage_states(p), (std::vector<std::string>{"succeeded", "succeeded", "succeeded"}));
  std::vector<std::string> actions;
  for (const auto& t : arr(p, "log"))
    actions.push_back(str(t, "action"));
  EXPECT_EQ(actions, (std::vector<std::string>{"started", "approved", "promoted", "succeeded"}))
      << to_json(p);
  EXPECT_EQ(str(arr(p, "log")[1], "actor"), str(arr(p, "log")[0], "actor"));  // the CLI's user
  EXPECT_EQ(str(arr(p, "log")[2], "actor"), "slipway");                       // the wait's end
  // Each stage deployed only its own nodes.
  for (size_t i = 0; i < 3; ++i) {
    const auto d = deploy(arr(p, "stages")[i].as_object().at("deploy").as_int64());
    EXPECT_EQ(arr(d, "nodes").size(), 1u) << to_json(d);
  }
}

TEST_F(PlanE2eTest, AbortWhileWaitingRollsBackTheStagesDone) {
  ASSERT_NO_THROW(start_lab(2));
  ASSERT_NO_THROW(push_ok("web", "1.0.0"));
  ASSERT_NO_THROW(push_ok("web", "1.1.0"));
  ASSERT_NO_THROW(deploy_ok({"web", "1.0.0", "--env", "staging", "--strategy", "all"}));
  const auto file = write_plan(R"(app: web
env: staging
stages:
  - name: a
    zone: a
    approve: true
  - name: b
    zone: b
)");
  auto started = cli_json({"deploy", "-f", file.string(), "--detach"});
  EXPECT_EQ(str(started, "ref"), "p1");
  EXPECT_EQ(str(arr(started, "stages")[0], "version"), "1.1.0");  // the newest, fixed at start
  ASSERT_TRUE(wait_until([&] { return str(plan("p1"), "state") == "waiting"; }, Millis(60'000)));
  // pause and resume act on a running stage's deploy: there is none while the plan waits.
  auto r = cli({"pause", "p1"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("no stage deploy running"), std::string::npos) << r.describe();

  r = cli({"abort", "p1"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"watch", "p1"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.out.find("rolling back stage a"), std::string::npos) << r.describe();
  const auto p = plan("p1");
  EXPECT_EQ(str(p, "state"), "rolled_back") << to_json(p);
  EXPECT_EQ(stage_states(p), (std::vector<std::string>{"rolled_back", "skipped"}));
  EXPECT_NE(str(p, "aborted_by"), "");
  EXPECT_NE(str(p, "reason").find("aborted by"), std::string::npos) << to_json(p);
  for (const auto& [node, version] : versions("web"))
    EXPECT_EQ(version, "1.0.0") << node;
}

TEST_F(PlanE2eTest, ARestartedServerFailsAPlanItWasRunningAndPlansGoOnAfter) {
  ASSERT_NO_THROW(start_lab(2));
  ASSERT_NO_THROW(push_ok("web", "1.0.0"));
  ASSERT_NO_THROW(push_ok("web", "1.1.0"));
  ASSERT_NO_THROW(deploy_ok({"web", "1.0.0", "--env", "staging", "--strategy", "all"}));
  auto file = write_plan(
      "app: web\nenv: staging\nstages:\n  - name: a\n    zone: a\n"
      "    approve: true\n  - name: b\n    zone: b\n");
  cli_json({"deploy", "-f", file.string(), "--detach"});
  ASSERT_TRUE(wait_until([&] { return str(plan("p1"), "state") == "waiting"; }, Millis(60'000)));

  ASSERT_TRUE(lab_.stop_server(SIGKILL));
  ASSERT_TRUE(lab_.start_server());
  auto alive = lab_.wait_for_nodes();
  ASSERT_TRUE(alive) << alive.error().message;
  auto p = plan("p1");
  EXPECT_EQ(str(p, "state"), "failed") << to_json(p);
  EXPECT_NE(str(p, "reason").find("the server stopped"), std::string::npos) << to_json(p);
  EXPECT_EQ(stage_states(p), (std::vector<std::string>{"succeeded", "skipped"}));
  auto r = cli({"promote", "p1"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();

  // The next plan is p2; promote on a plan whose stage waits after its canaries promotes them.
  file = write_plan(
      "app: web\nenv: staging\nstages:\n  - name: api\n    role: api\n"
      "    strategy: canary\n    pause: true\n    batch: 1\n");
  auto started = cli_json({"deploy", "-f", file.string(), "--detach"});
  EXPECT_EQ(str(started, "ref"), "p2");
  ASSERT_TRUE(wait_until(
      [&] {
        const json::value p2 = plan("p2");  // named: arr() returns a reference into it
        const auto& d = arr(p2, "stages")[0].as_object().at("deploy");
        return d.is_int64() && str(deploy(d.as_int64()), "state") == "paused";
      },
      Millis(60'000)));
  r = cli({"promote", "p2"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"watch", "p2"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(str(plan("p2"), "state"), "succeeded");
  for (const auto& [node, version] : versions("web"))
    EXPECT_EQ(version, "1.1.0") << node;
}

TEST_F(PlanE2eTest, HostilePlanRequestsAreRefusedWithTheReason) {
  ASSERT_NO_THROW(start_lab(1));
  ASSERT_NO_THROW(push_ok("web", "1.0.0"));
  struct Case {
    std::string body;
    int status;
    std::string message;
  };
  const std::string stage = R"({"name":"a","role":"api"})";
  const Case cases[] = {
      {"", 400, "not valid JSON"},
      {"[]", 400, "must be a JSON object"},
      {R"({"env":"staging"})", 400, "give its stages"},
      {R"({"env":"staging","stages":[]})", 400, "give its stages"},
      {R"({"env":"staging","stages":{}})", 400, "field 'stages' must be"},
      {R"({"app":"web","stages":[)" + stage + "]}", 400, "field 'env' is required"},
      {R"({"app":"web","env":"staging","color":1,"stages":[)" + stage + "]}", 400,
       "unknown field 'color'"},
      {R"({"app":"web","env":"../x","stages":[)" + stage + "]}", 400, "environment"},
      {R"({"app":"web","env":"staging","stages":[1]})", 400, "stage 1: must be an object"},
      {R"({"app":"web","env":"staging","stages":[{"role":"api"}]})", 400,
       "stage 1: field 'name' is required"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a b"}]})", 400,
       "stage 1: stage name 'a b'"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","bogus":true}]})", 400,
       "stage 1 (a): unknown field 'bogus'"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","env":"prod"}]})", 400,
       "env is given once"},
      {R"({"env":"staging","stages":[{"name":"a"}]})", 400, "names no app"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","wait":"1m"},{"name":"a"}]})", 400,
       "stage 2: the name a is taken"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","wait":"soon"},{"name":"b"}]})", 400,
       "stage 1 (a): wait:"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","wait":"1m","approve":true},)"
       R"({"name":"b"}]})",
       400, "not both"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","approve":"yes"},{"name":"b"}]})", 400,
       "field 'approve' must be true or false"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","approve":true}]})", 400,
       "is the last one"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","strategy":"none"}]})", 400,
       "unknown strategy"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","pause":true}]})", 400,
       "go with the canary strategy"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","selector":"env=prod"}]})", 400,
       "give the environment with env"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","batch":"0"}]})", 400, "batch"},
      {R"({"app":"web","env":"staging","stages":[{"name":"a","version":"9.9.9"}]})", 404,
       "web 9.9.9 is not in the repository"},
      {R"({"app":"ghost","env":"staging","stages":[{"name":"a"}]})", 404,
       "no versions of ghost have been pushed"},
  };
  for (const auto& c : cases) {
    auto r = http("POST", "/api/v1/plans", c.body, {{"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    EXPECT_NE(r.body.find(c.message), std::string::npos) << c.body << " -> " << r.body;
  }
  // Too many stages.
  std::string many = R"({"app":"web","env":"staging","stages":[)";
  for (int i = 0; i < 21; ++i)
    many += fmt::format(R"({}{{"name":"s{}"}})", i ? "," : "", i);
  many += "]}";
  auto r = http("POST", "/api/v1/plans", many);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("at most 20 stages (21 given)"), std::string::npos) << r.body;
  // No token, the agent's token: refused.
  r = http("POST", "/api/v1/plans", "{}", {}, std::string());
  EXPECT_EQ(r.status, 401);
  r = http("GET", "/api/v1/plans", "", {}, info().join_token);
  EXPECT_EQ(r.status, 403);
  // Ids.
  EXPECT_EQ(http("GET", "/api/v1/plans/p9").status, 404);
  EXPECT_EQ(http("GET", "/api/v1/plans/x9").status, 400);
  EXPECT_EQ(http("POST", "/api/v1/plans/p9/promote").status, 404);
  EXPECT_EQ(http("POST", "/api/v1/plans/p9/abort", R"({"now":true})").status, 400);
  EXPECT_EQ(get_json("/api/v1/plans").as_object().at("plans").as_array().size(), 0u);

  // The CLI refuses a bad file before asking the server, with the line.
  const fs::path bad = dir() / "bad.yaml";
  std::ofstream(bad) << "app: web\nenv: staging\nstages:\n  - name: a\n    wiat: 5m\n";
  auto cr = cli({"deploy", "-f", bad.string()});
  EXPECT_EQ(cr.exit_code, 2) << cr.describe();
  EXPECT_NE(cr.err.find("bad.yaml line 5: stage 1: unknown key 'wiat'"), std::string::npos)
      << cr.describe();
  cr = cli({"deploy", "-f", bad.string(), "web"});
  EXPECT_EQ(cr.exit_code, 2) << cr.describe();
  EXPECT_NE(cr.err.find("with -f the plan file says"), std::string::npos) << cr.describe();
}

}  // namespace
}  // namespace slipway::e2e
