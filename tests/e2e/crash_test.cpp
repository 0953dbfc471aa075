// Processes that die: an agent killed in the middle of a deploy, a server killed and restarted.
#include <csignal>

#include <fmt/format.h>

#include "common/crypto.h"
#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

class CrashTest : public E2eTest {
 protected:
  // Waits until some node of the deploy runs its health check (so the new release is unpacked
  // and started there); returns that node's name, or "" when it did not happen in time (`last`
  // is then the deploy as last seen).
  std::string wait_for_node_in_health(int64_t id, json::value& last) {
    std::string node;
    wait_until(
        [&] {
          last = deploy(id);
          if (str(last, "state") != "running") return true;
          for (const auto& n : arr(last, "nodes")) {
            if (str(n, "status") == "running" && str(n, "step") == "health") {
              node = str(n, "node");
              return true;
            }
          }
          return false;
        },
        Millis(30'000), Millis(50));
    return node;
  }
};

TEST_F(CrashTest, AgentKilledMidDeployFailsTheDeployAndComesBack) {
  ASSERT_NO_THROW(start_lab(2));
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--batch", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  // A release whose health check takes a while.
  r = push(release("1.1.0", {.health_timeout = Millis(20'000), .healthy_for = Millis(3'000)}),
           "web", "1.1.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  auto started =
      cli_json({"deploy", "web", "1.1.0", "--env", "staging", "--batch", "1", "--detach"});
  const int64_t id = i64(started, "id");
  ASSERT_GT(id, 0) << to_json(started);
  json::value last;
  const std::string victim = wait_for_node_in_health(id, last);
  ASSERT_FALSE(victim.empty()) << "no node reached its health check: " << to_json(last);

  ASSERT_TRUE(lab_.stop_node(victim, SIGKILL));
  auto w = cli({"watch", std::to_string(id)});
  EXPECT_EQ(w.exit_code, 1) << w.describe();
  EXPECT_NE(w.out.find("disconnected"), std::string::npos) << w.describe();

  auto d = wait_deploy_finished(id);
  EXPECT_NE(str(d, "state"), "succeeded") << to_json(d);
  bool found = false;
  for (const auto& n : arr(d, "nodes")) {
    if (str(n, "node") == victim) {
      found = true;
      EXPECT_EQ(str(n, "status"), "failed") << to_json(n);
      EXPECT_NE(str(n, "reason").find("disconnected"), std::string::npos) << to_json(n);
    } else {
      EXPECT_EQ(str(n, "status"), "skipped") << to_json(n);
    }
  }
  EXPECT_TRUE(found) << to_json(d);

  // The server sees it as lost; started again, it is alive, and back on the release it ran
  // before the deploy it did not live to finish.
  EXPECT_TRUE(wait_until(
      [&] {
        const auto nodes = get_json("/api/v1/nodes");
        for (const auto& n : arr(nodes, "nodes")) {
          if (str(n, "name") == victim) return str(n, "state") == "lost";
        }
        return false;
      },
      Millis(30'000)));
  ASSERT_TRUE(lab_.start_node(victim));
  ASSERT_TRUE(lab_.wait_for_nodes());
  auto nodes = cli_json({"nodes"});
  ASSERT_EQ(arr(nodes, "nodes").size(), 2u) << to_json(nodes);
  for (const auto& n : arr(nodes, "nodes"))
    EXPECT_EQ(str(n, "state"), "alive") << to_json(n);
  EXPECT_TRUE(wait_until(
      [&] {
        const auto n = status_by_node()[victim];
        const auto* a = obj(n).at("apps").as_object().if_contains("web");
        return a && str(*a, "version") == "1.0.0" && boolean(*a, "healthy") &&
               app_version_over_http(n, "web") == "1.0.0";
      },
      Millis(30'000)))
      << to_json(status_by_node()[victim]) << " answers "
      << app_version_over_http(status_by_node()[victim], "web");

  // And a new deploy reaches every node.
  r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--batch", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  for (const auto& [name, n] : status_by_node()) {
    EXPECT_EQ(app_version_over_http(n, "web"), "1.1.0") << name;
  }
}

TEST_F(CrashTest, ServerKilledAndRestartedLosesNothing) {
  ASSERT_NO_THROW(start_lab(3));
  const fs::path first = release("1.0.0");
  auto r = push(first, "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--batch", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const int64_t done_id = i64(latest_deploy(), "id");
  r = push(release("1.1.0", {.health_timeout = Millis(20'000), .healthy_for = Millis(3'000)}),
           "web", "1.1.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  // A deploy in flight when the server dies.
  auto started =
      cli_json({"deploy", "web", "1.1.0", "--env", "staging", "--batch", "1", "--detach"});
  const int64_t running_id = i64(started, "id");
  ASSERT_GT(running_id, 0);
  json::value last;
  const std::string node = wait_for_node_in_health(running_id, last);
  ASSERT_FALSE(node.empty()) << to_json(last);

  ASSERT_TRUE(lab_.stop_server(SIGKILL));
  ASSERT_TRUE(lab_.start_server());
  // The agents find the server again by themselves.
  auto alive = lab_.wait_for_nodes();
  ASSERT_TRUE(alive) << alive.error().message;

  // The finished deploy, the artifacts and the nodes are all there.
  auto d = deploy(done_id);
  EXPECT_EQ(str(d, "state"), "succeeded") << to_json(d);
  EXPECT_EQ(arr(d, "nodes").size(), 3u);
  auto versions = cli_json({"versions", "web"});
  ASSERT_EQ(arr(versions, "versions").size(), 2u) << to_json(versions);
  auto dl = http("GET", "/api/v1/artifacts/web/1.0.0/download");
  ASSERT_EQ(dl.status, 200);
  EXPECT_EQ(sha256_hex(dl.body), *sha256_file(first));
  auto nodes = cli_json({"nodes"});
  EXPECT_EQ(arr(nodes, "nodes").size(), 3u) << to_json(nodes);

  // The interrupted deploy is failed, and says why.
  auto interrupted = deploy(running_id);
  EXPECT_EQ(str(interrupted, "state"), "failed") << to_json(interrupted);
  const std::string reason = str(interrupted, "reason");
  EXPECT_TRUE(reason.find("server stopped") != std::string::npos ||
              reason.find("restarted") != std::string::npos)
      << reason;
  auto w = cli({"watch", std::to_string(running_id)});
  EXPECT_EQ(w.exit_code, 1) << w.describe();

  // The agent finished on its own what it had started, and says so.
  EXPECT_TRUE(wait_until(
      [&] {
        const auto n = status_by_node()[node];
        const auto* a = obj(n).at("apps").as_object().if_contains("web");
        return a && str(*a, "version") == "1.1.0" && boolean(*a, "healthy");
      },
      Millis(30'000)))
      << to_json(status_by_node()[node]);

  // The interrupted node now runs 1.1.0, not its desired 1.0.0 (the deploy that would have made
  // 1.1.0 desired failed): convergence takes it back. Let that happen first (a deploy of the app
  // there while it runs is refused as a conflict): no node drifting, no deploy running.
  EXPECT_TRUE(wait_until(
      [&] {
        for (const auto& [name, n] : status_by_node()) {
          if (boolean(n, "drift")) return false;
        }
        return arr(get_json("/api/v1/deploys?app=web&env=staging&state=running"), "deploys")
            .empty();
      },
      Millis(60'000), Millis(250)))
      << to_json(get_json("/api/v1/status?env=staging"));

  // A new deploy works, on every node (the one that was interrupted included).
  r = push(release("1.2.0"), "web", "1.2.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.2.0", "--env", "staging", "--batch", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  for (const auto& [name, n] : status_by_node()) {
    const auto& a = obj(n).at("apps").as_object().at("web");
    EXPECT_EQ(str(a, "version"), "1.2.0") << name << ": " << to_json(n);
    EXPECT_TRUE(boolean(a, "healthy")) << name << ": " << to_json(n);
  }
}

TEST_F(CrashTest, AgentStoppedMidHealthCheckExitsAndComesBackOnTheOldRelease) {
  ASSERT_NO_THROW(start_lab(2));
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--batch", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  // A release that needs a long time to be called healthy.
  r = push(release("1.1.0", {.health_timeout = Millis(60'000), .healthy_for = Millis(45'000)}),
           "web", "1.1.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto started =
      cli_json({"deploy", "web", "1.1.0", "--env", "staging", "--batch", "1", "--detach"});
  const int64_t id = i64(started, "id");
  json::value last;
  const std::string victim = wait_for_node_in_health(id, last);
  ASSERT_FALSE(victim.empty()) << to_json(last);

  // SIGTERM (systemd stopping the agent): it stops by itself, without waiting out the health
  // check, rather than being killed after the lab's grace period.
  lab_events_.clear();
  ASSERT_TRUE(lab_.stop_node(victim, SIGTERM));
  ASSERT_EQ(lab_events_.size(), 1u);
  EXPECT_EQ(lab_events_[0], fmt::format("stopped agent {} (exited with code 0)", victim));

  auto d = wait_deploy_finished(id);
  EXPECT_NE(str(d, "state"), "succeeded") << to_json(d);

  // Started again, it runs the release it had before, whole.
  ASSERT_TRUE(lab_.start_node(victim));
  ASSERT_TRUE(lab_.wait_for_nodes());
  EXPECT_TRUE(wait_until(
      [&] {
        const auto n = status_by_node()[victim];
        const auto* a = obj(n).at("apps").as_object().if_contains("web");
        return a && str(*a, "version") == "1.0.0" && boolean(*a, "healthy");
      },
      Millis(30'000)))
      << to_json(status_by_node()[victim]);
}

}  // namespace
}  // namespace slipway::e2e
