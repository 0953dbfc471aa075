// Rollout strategies on a real lab: canary promoted by hand and by time, zones stopping at the
// first zone that fails, all at once, max-unavailable checked by sampling the nodes themselves,
// and pause/resume by hand.
#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

class StrategyE2eTest : public E2eTest {
 protected:
  // A lab of `nodes` on web 1.0.0, with 1.1.0 (healthy_for `slow`) pushed.
  void lab_on_1_0_0(int nodes, Millis slow = Millis(300)) {
    start_lab(nodes);
    auto r = push(release("1.0.0"), "web", "1.0.0");
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--strategy", "all"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    ReleaseOptions o;
    o.healthy_for = slow;
    r = push(release("1.1.0", o), "web", "1.1.0");
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }

  // Starts a deploy with --detach -o json; returns its id.
  int64_t start_detached(std::vector<std::string> args) {
    args.insert(args.begin(), "deploy");
    args.push_back("--detach");
    auto d = cli_json(args);
    const int64_t id = i64(d, "id");
    if (id <= 0) throw std::runtime_error("no deploy id in " + to_json(d));
    return id;
  }

  bool wait_state(int64_t id, const std::string& state, Millis timeout = Millis(60'000)) {
    return wait_until([&] { return str(deploy(id), "state") == state; }, timeout);
  }

  // node -> version of web, from the status.
  std::map<std::string, std::string> versions() {
    std::map<std::string, std::string> out;
    for (const auto& [name, n] : status_by_node()) {
      const auto* apps = obj(n).if_contains("apps");
      const auto* a = apps && apps->is_object() ? apps->as_object().if_contains("web") : nullptr;
      out[name] = a ? str(*a, "version") : "";
    }
    return out;
  }

  static std::vector<std::string> log_actions(const json::value& d) {
    std::vector<std::string> out;
    for (const auto& t : arr(d, "log"))
      out.push_back(str(t, "action"));
    return out;
  }
};

TEST_F(StrategyE2eTest, PausedCanaryIsPromotedByHand) {
  ASSERT_NO_THROW(lab_on_1_0_0(4));
  const int64_t id = start_detached(
      {"web", "1.1.0", "--env", "staging", "--canary", "1", "--pause", "--batch", "2"});
  ASSERT_TRUE(wait_state(id, "paused")) << to_json(deploy(id));
  auto d = deploy(id);
  EXPECT_EQ(str(d, "strategy"), "canary");
  EXPECT_NE(str(d, "waiting").find("slipway promote"), std::string::npos) << to_json(d);
  // Exactly the canary runs the new version; it is node-1 (the first by name).
  auto v = versions();
  EXPECT_EQ(v["node-1"], "1.1.0");
  for (const char* n : {"node-2", "node-3", "node-4"})
    EXPECT_EQ(v[n], "1.0.0") << n;
  for (const auto& n : arr(d, "nodes"))
    EXPECT_EQ(boolean(n, "canary"), str(n, "node") == "node-1") << to_json(n);

  // resume is not promote.
  auto r = cli({"resume", std::to_string(id)});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.err.find("slipway promote"), std::string::npos) << r.describe();

  r = cli({"promote", std::to_string(id)});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"watch", std::to_string(id)});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  d = deploy(id);
  EXPECT_EQ(str(d, "state"), "succeeded") << to_json(d);
  for (const auto& [node, version] : versions())
    EXPECT_EQ(version, "1.1.0") << node;
  // Who promoted it is on record, and shown.
  const auto actions = log_actions(d);
  EXPECT_EQ(actions, (std::vector<std::string>{"started", "promoted", "succeeded"})) << to_json(d);
  EXPECT_EQ(str(arr(d, "log")[1], "actor"), str(arr(d, "log")[0], "actor"));
  r = cli({"history", "show", std::to_string(id)});
  EXPECT_NE(r.out.find("promoted"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("node-1 (canary)"), std::string::npos) << r.describe();
  // Promoting a finished deploy says so.
  r = cli({"promote", std::to_string(id)});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not running"), std::string::npos) << r.describe();
}

TEST_F(StrategyE2eTest, CanaryIsPromotedByTimeWhenItStaysHealthy) {
  ASSERT_NO_THROW(lab_on_1_0_0(3));
  // The CLI follows the deploy through the wait to the end.
  auto r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--canary", "tag:none=none"});
  EXPECT_NE(r.exit_code, 0) << r.describe();  // no node has that tag: no canary, nothing done
  EXPECT_NE(r.err.find("no targeted node has the tag"), std::string::npos) << r.describe();

  r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--canary", "34%", "--canary-wait", "2s"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("promoted by slipway"), std::string::npos) << r.describe();
  auto d = latest_deploy();
  d = deploy(i64(d, "id"));
  EXPECT_EQ(str(d, "canary_gate"), "wait");
  EXPECT_EQ(log_actions(d), (std::vector<std::string>{"started", "promoted", "succeeded"}));
  EXPECT_EQ(str(arr(d, "log")[1], "actor"), "slipway");
  for (const auto& [node, version] : versions())
    EXPECT_EQ(version, "1.1.0") << node;
}

TEST_F(StrategyE2eTest, ZonesGoInOrderAndStopAtTheFirstZoneThatFails) {
  ASSERT_NO_THROW(lab_on_1_0_0(4));  // zones a (node-1, node-3) and b (node-2, node-4)
  auto r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--zones", "b,a", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto d = parse(r.out, "deploy");
  EXPECT_EQ(str(d, "strategy"), "zones");
  EXPECT_EQ(str(d, "zones"), "b,a");
  std::string b_done, a_start = "9999";
  for (const auto& n : arr(d, "nodes")) {
    if (str(n, "zone") == "b") b_done = std::max(b_done, str(n, "finished_at"));
    if (str(n, "zone") == "a") a_start = std::min(a_start, str(n, "started_at"));
  }
  EXPECT_LE(b_done, a_start) << to_json(d);

  // A release that fails its health check: zone a goes first, fails, and zone b is never touched.
  ReleaseOptions bad;
  bad.healthy = false;
  bad.health_timeout = Millis(2'000);
  r = push(release("1.2.0", bad), "web", "1.2.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.2.0", "--env", "staging", "--strategy", "zones", "--zones", "a,b",
           "--batch", "100%", "-o", "json"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  d = parse(r.out, "deploy");
  EXPECT_EQ(str(d, "state"), "rolled_back") << to_json(d);
  EXPECT_NE(str(d, "reason").find("zone a"), std::string::npos) << to_json(d);
  for (const auto& n : arr(d, "nodes")) {
    if (str(n, "zone") == "b") {
      EXPECT_EQ(str(n, "status"), "skipped") << to_json(n);
    } else {
      EXPECT_NE(str(n, "status"), "skipped") << to_json(n);
    }
  }
  for (const auto& [node, version] : versions())
    EXPECT_EQ(version, "1.1.0") << node;

  // An order that leaves a targeted zone out is refused before anything starts.
  r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--zones", "a"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("zone(s) b"), std::string::npos) << r.describe();
}

TEST_F(StrategyE2eTest, AllUpdatesEveryNodeInOneBatch) {
  ASSERT_NO_THROW(lab_on_1_0_0(3));
  auto d = cli_json({"deploy", "web", "1.1.0", "--env", "staging", "--strategy", "all"});
  EXPECT_EQ(str(d, "state"), "succeeded") << to_json(d);
  EXPECT_EQ(i64(d, "batches"), 1);
  for (const auto& n : arr(d, "nodes"))
    EXPECT_EQ(i64(n, "batch"), 0) << to_json(n);
}

TEST_F(StrategyE2eTest, MaxUnavailableIsNeverExceeded) {
  // Each node takes a while to become healthy, so several are in flight at once if allowed.
  ASSERT_NO_THROW(lab_on_1_0_0(5, Millis(1'000)));
  // Where each node serves web now: the sample service keeps its port across releases.
  std::map<std::string, json::value> nodes = status_by_node();
  const int64_t id = start_detached({"web", "1.1.0", "--env", "staging", "--max-unavailable", "2"});
  // Sample the nodes themselves (their own HTTP endpoint) and the deploy's view until it ends.
  int worst_http = 0;
  int worst_engine = 0;
  int samples = 0;
  std::string state = "running";
  while (state == "running" && samples < 2'000) {
    int down = 0;
    for (const auto& [name, n] : nodes) {
      const std::string v = app_version_over_http(n, "web");
      if (v != "1.0.0" && v != "1.1.0") ++down;
    }
    auto d = deploy(id);
    int in_flight = 0;
    for (const auto& n : arr(d, "nodes")) {
      const auto s = str(n, "status");
      if (s == "running" || s == "failed") ++in_flight;
    }
    worst_http = std::max(worst_http, down);
    worst_engine = std::max(worst_engine, in_flight);
    state = str(d, "state");
    ++samples;
  }
  auto d = wait_deploy_finished(id);
  EXPECT_EQ(str(d, "state"), "succeeded") << to_json(d);
  EXPECT_EQ(str(d, "max_unavailable"), "2");
  EXPECT_LE(worst_http, 2) << samples << " samples";
  EXPECT_LE(worst_engine, 2) << samples << " samples";
  EXPECT_GE(worst_engine, 1) << "the sampling never saw the deploy at work";
  std::cout << fmt::format(
      "[max-unavailable] {} samples; at most {} node(s) not serving, {} in "
      "flight\n",
      samples, worst_http, worst_engine);
  for (const auto& [node, version] : versions())
    EXPECT_EQ(version, "1.1.0") << node;
}

TEST_F(StrategyE2eTest, PauseHoldsTheRolloutUntilResumed) {
  ASSERT_NO_THROW(lab_on_1_0_0(4, Millis(1'000)));
  const int64_t id = start_detached({"web", "1.1.0", "--env", "staging", "--batch", "1"});
  auto r = cli({"pause", std::to_string(id)});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("slipway resume"), std::string::npos) << r.describe();
  r = cli({"pause", std::to_string(id)});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  // The node in flight finishes; then nothing moves while paused.
  ASSERT_TRUE(wait_until(
      [&] {
        const auto d = deploy(id);
        for (const auto& n : arr(d, "nodes"))
          if (str(n, "status") == "running") return false;
        return true;
      },
      Millis(60'000)));
  auto before = deploy(id);
  EXPECT_EQ(str(before, "state"), "paused") << to_json(before);
  std::this_thread::sleep_for(std::chrono::milliseconds(1'500));
  auto after = deploy(id);
  EXPECT_EQ(i64(before, "healthy_count"), i64(after, "healthy_count"));
  int pending = 0;
  for (const auto& n : arr(after, "nodes"))
    pending += str(n, "status") == "pending" ? 1 : 0;
  EXPECT_GE(pending, 1) << to_json(after);

  r = cli({"resume", std::to_string(id)});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto d = wait_deploy_finished(id);
  EXPECT_EQ(str(d, "state"), "succeeded") << to_json(d);
  EXPECT_EQ(log_actions(d),
            (std::vector<std::string>{"started", "paused", "resumed", "succeeded"}));

  // Hostile and wrong input to the control routes.
  for (const char* verb : {"pause", "resume", "promote"}) {
    EXPECT_EQ(http("POST", fmt::format("/api/v1/deploys/{}/{}", id, verb)).status, 412);
    EXPECT_EQ(http("POST", fmt::format("/api/v1/deploys/999999/{}", verb)).status, 404);
    EXPECT_EQ(http("POST", fmt::format("/api/v1/deploys/x/{}", verb)).status, 400);
    EXPECT_EQ(http("POST", fmt::format("/api/v1/deploys/{}/{}", id, verb), "{nope").status, 400);
    EXPECT_EQ(http("POST", fmt::format("/api/v1/deploys/{}/{}", id, verb), R"({"x":1})").status,
              400);
    EXPECT_EQ(http("POST", fmt::format("/api/v1/deploys/{}/{}", id, verb), "", {}, "").status, 401);
  }
}

TEST_F(StrategyE2eTest, StrategyRequestsAreCheckedBeforeAnythingStarts) {
  ASSERT_NO_THROW(lab_on_1_0_0(2));
  const std::vector<std::string> bodies = {
      R"({"app":"web","env":"staging","strategy":"blue-green"})",
      R"({"app":"web","env":"staging","strategy":7})",
      R"({"app":"web","env":"staging","canary":"1"})",
      R"({"app":"web","env":"staging","strategy":"canary","canary":"0"})",
      R"({"app":"web","env":"staging","strategy":"canary","canary":"tag:x"})",
      R"({"app":"web","env":"staging","strategy":"canary","pause":true,"canary_wait":"1m"})",
      R"({"app":"web","env":"staging","strategy":"canary","canary_wait":"soon"})",
      R"({"app":"web","env":"staging","strategy":"canary","canary_wait":"-5s"})",
      R"({"app":"web","env":"staging","zones":["a"]})",
      R"({"app":"web","env":"staging","strategy":"zones","zones":["a","a"]})",
      R"({"app":"web","env":"staging","strategy":"zones","zones":["../x"]})",
      R"({"app":"web","env":"staging","strategy":"zones","zones":"a,b"})",
      R"({"app":"web","env":"staging","max_unavailable":"0"})",
      R"({"app":"web","env":"staging","max_unavailable":"150%"})",
      R"({"app":"web","env":"staging","healthy_deadline":"0s"})",
      R"({"app":"web","env":"staging","healthy_deadline":"10m","progress_deadline":"1m"})",
      R"({"app":"web","env":"staging","progress_deadline":"999d"})",
  };
  for (const auto& b : bodies) {
    auto res = http("POST", "/api/v1/deploys", b);
    EXPECT_EQ(res.status, 400) << b << " -> " << res.body;
  }
  EXPECT_EQ(arr(get_json("/api/v1/deploys"), "deploys").size(), 1u);  // only the 1.0.0 one
  auto r = cli({"deploy", "web", "--env", "staging", "--max-unavailable", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = cli({"deploy", "web", "--env", "staging", "--strategy", "sideways"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

}  // namespace
}  // namespace slipway::e2e
