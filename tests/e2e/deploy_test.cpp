// Deploys, failing health checks, rollbacks and deploys that have nobody to go to, with real
// agents running the sample web service.
#include <set>

#include <fmt/format.h>

#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

using DeployTest = E2eTest;

// Asserts every node of the map runs APP VERSION, healthy, and answers HTTP with that version.
void expect_all_on(const std::map<std::string, json::value>& nodes, const std::string& app,
                   const std::string& version) {
  for (const auto& [name, n] : nodes) {
    const auto* apps = obj(n).if_contains("apps");
    ASSERT_TRUE(apps && apps->is_object()) << to_json(n);
    const auto* a = apps->as_object().if_contains(app);
    ASSERT_TRUE(a != nullptr) << name << " does not run " << app << ": " << to_json(n);
    EXPECT_EQ(str(*a, "version"), version) << name << ": " << to_json(n);
    EXPECT_TRUE(boolean(*a, "healthy")) << name << ": " << to_json(n);
    EXPECT_EQ(app_version_over_http(n, app), version) << name;
  }
}

TEST_F(DeployTest, RollingDeployInBatchesEveryNodeHealthy) {
  ASSERT_NO_THROW(start_lab(4));
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--batch", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("succeeded: 4/4 node(s) healthy on web 1.0.0"), std::string::npos)
      << r.describe();

  // The JSON contract of status.
  auto status = cli_json({"status", "--env", "staging"});
  const auto& nodes = arr(status, "nodes");
  ASSERT_EQ(nodes.size(), 4u) << to_json(status);
  std::map<std::string, json::value> by_name;
  std::set<std::string> zones;
  for (const auto& n : nodes) {
    EXPECT_FALSE(str(n, "name").empty()) << to_json(n);
    EXPECT_EQ(str(n, "env"), "staging") << to_json(n);
    const auto* roles = obj(n).if_contains("roles");
    ASSERT_TRUE(roles && roles->is_array()) << to_json(n);
    EXPECT_EQ(to_json(*roles), R"(["api"])");
    ASSERT_TRUE(obj(n).contains("zone") && obj(n).at("zone").is_string()) << to_json(n);
    zones.insert(str(n, "zone"));
    EXPECT_EQ(str(n, "state"), "alive") << to_json(n);
    by_name[str(n, "name")] = n;
  }
  EXPECT_EQ(zones, (std::set<std::string>{"a", "b"}));
  ASSERT_EQ(by_name.size(), 4u);
  expect_all_on(by_name, "web", "1.0.0");
  // The addresses the lab gave the nodes.
  for (const auto& n : info().nodes) {
    ASSERT_TRUE(by_name.contains(n.spec.name)) << n.spec.name;
    EXPECT_EQ(str(by_name[n.spec.name], "address"), n.spec.address);
  }

  // The JSON contract of history.
  auto history = cli_json({"history"});
  const auto& deploys = arr(history, "deploys");
  ASSERT_EQ(deploys.size(), 1u) << to_json(history);
  const auto& d = deploys.front();
  const int64_t id = i64(d, "id");
  EXPECT_GT(id, 0);
  EXPECT_EQ(str(d, "app"), "web");
  EXPECT_EQ(str(d, "version"), "1.0.0");
  EXPECT_EQ(str(d, "env"), "staging");
  EXPECT_EQ(str(d, "state"), "succeeded");
  EXPECT_FALSE(str(d, "started_at").empty()) << to_json(d);
  EXPECT_FALSE(str(d, "finished_at").empty()) << to_json(d);
  EXPECT_LE(str(d, "started_at"), str(d, "finished_at"));

  // Rolling: the second batch started only after the first one finished.
  auto show = cli_json({"history", "show", std::to_string(id)});
  EXPECT_EQ(str(show, "batch"), "2");
  const auto& dn = arr(show, "nodes");
  ASSERT_EQ(dn.size(), 4u) << to_json(show);
  std::string first_done, second_start = "9999";
  int in_first = 0, in_second = 0;
  for (const auto& n : dn) {
    EXPECT_EQ(str(n, "status"), "healthy") << to_json(n);
    EXPECT_TRUE(boolean(n, "downloaded")) << to_json(n);
    ASSERT_FALSE(str(n, "started_at").empty()) << to_json(n);
    ASSERT_FALSE(str(n, "finished_at").empty()) << to_json(n);
    if (i64(n, "batch") == 0) {
      ++in_first;
      first_done = std::max(first_done, str(n, "finished_at"));
    } else {
      EXPECT_EQ(i64(n, "batch"), 1) << to_json(n);
      ++in_second;
      second_start = std::min(second_start, str(n, "started_at"));
    }
  }
  EXPECT_EQ(in_first, 2);
  EXPECT_EQ(in_second, 2);
  EXPECT_GE(second_start, first_done) << to_json(show);
  // Steps were recorded, per node.
  const auto& steps = arr(show, "steps");
  std::set<std::string> step_names;
  for (const auto& s : steps)
    step_names.insert(str(s, "step"));
  for (const char* s : {"download", "unpack", "switch", "start", "health"}) {
    EXPECT_TRUE(step_names.contains(s)) << s << " missing in " << to_json(steps);
  }

  // The table forms work too.
  for (std::vector<std::string> args : {std::vector<std::string>{"status"},
                                        {"nodes"},
                                        {"history"},
                                        {"history", "show", std::to_string(id)}}) {
    auto t = cli(args);
    EXPECT_EQ(t.exit_code, 0) << t.describe();
    const bool list = args == std::vector<std::string>{"history"};
    EXPECT_NE(t.out.find(list ? "web" : "node-1"), std::string::npos) << t.describe();
  }
}

TEST_F(DeployTest, FailingHealthCheckRollsBackTheFirstNodeOnly) {
  ASSERT_NO_THROW(start_lab(3));
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = push(release("1.1.0", {.healthy = false, .health_timeout = Millis(3'000)}), "web", "1.1.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.0.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--batch", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.out.find("FAILED and was rolled back"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("went back to 1.0.0 by itself"), std::string::npos) << r.describe();

  auto d = latest_deploy();
  EXPECT_EQ(str(d, "version"), "1.1.0");
  EXPECT_EQ(str(d, "state"), "rolled_back") << to_json(d);
  auto show = cli_json({"history", "show", std::to_string(i64(d, "id"))});
  std::string failed_node;
  for (const auto& n : arr(show, "nodes")) {
    if (i64(n, "batch") == 0) {
      failed_node = str(n, "node");
      EXPECT_EQ(str(n, "status"), "failed") << to_json(n);
      EXPECT_EQ(str(n, "reverted_to"), "1.0.0") << to_json(n);
      EXPECT_FALSE(str(n, "reason").empty()) << to_json(n);
    } else {
      EXPECT_EQ(str(n, "status"), "skipped") << to_json(n);
    }
  }
  ASSERT_FALSE(failed_node.empty()) << to_json(show);

  // Every node runs 1.0.0 again; only the first one ever unpacked 1.1.0.
  auto nodes = status_by_node();
  ASSERT_EQ(nodes.size(), 3u);
  expect_all_on(nodes, "web", "1.0.0");
  for (const auto& [name, n] : nodes) {
    const auto& rel = obj(n).at("apps").as_object().at("web").as_object().at("releases");
    const bool has_bad = to_json(rel).find("\"1.1.0\"") != std::string::npos;
    if (name == failed_node) {
      EXPECT_TRUE(has_bad) << "a failed release is kept for inspection: " << to_json(n);
    } else {
      EXPECT_FALSE(has_bad) << name << " never saw 1.1.0: " << to_json(n);
    }
  }

  auto h = cli_json({"history", "web"});
  ASSERT_EQ(arr(h, "deploys").size(), 2u);
  EXPECT_EQ(str(arr(h, "deploys")[0], "state"), "rolled_back");
  EXPECT_EQ(str(arr(h, "deploys")[1], "state"), "succeeded");
}

TEST_F(DeployTest, RollbackByHandNeedsNoDownload) {
  ASSERT_NO_THROW(start_lab(3));
  for (const char* v : {"1.0.0", "1.1.0"}) {
    auto r = push(release(v), "web", v);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    r = cli({"deploy", "web", v, "--env", "staging"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
  expect_all_on(status_by_node(), "web", "1.1.0");

  const int64_t before = artifact_downloads();
  auto r = cli({"rollback", "web", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("rollback #"), std::string::npos) << r.describe();
  EXPECT_EQ(artifact_downloads(), before);
  expect_all_on(status_by_node(), "web", "1.0.0");

  auto d = latest_deploy();
  EXPECT_EQ(str(d, "kind"), "rollback");
  EXPECT_EQ(str(d, "version"), "1.0.0");
  EXPECT_EQ(str(d, "state"), "succeeded");
  auto show = cli_json({"history", "show", std::to_string(i64(d, "id"))});
  ASSERT_EQ(arr(show, "nodes").size(), 3u);
  for (const auto& n : arr(show, "nodes")) {
    EXPECT_FALSE(boolean(n, "downloaded")) << to_json(n);
    EXPECT_EQ(str(n, "from_version"), "1.1.0") << to_json(n);
    EXPECT_EQ(str(n, "status"), "healthy") << to_json(n);
  }

  // To a pinned version.
  r = cli({"rollback", "web", "--env", "staging", "--to", "1.1.0"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(artifact_downloads(), before);
  expect_all_on(status_by_node(), "web", "1.1.0");

  // To a version that is not in the repository.
  r = cli({"rollback", "web", "--env", "staging", "--to", "0.0.1"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();

  // An app with one release only: there is nothing to go back to.
  r = push(release("2.0.0", {.app = "solo"}), "solo", "2.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "solo", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"rollback", "solo", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("no earlier successful release of solo"), std::string::npos) << r.describe();
  // Both apps run side by side, each on its own port.
  auto nodes = status_by_node();
  expect_all_on(nodes, "solo", "2.0.0");
  expect_all_on(nodes, "web", "1.1.0");
}

TEST_F(DeployTest, DeployingToNobodyOrTwiceIsRefused) {
  ASSERT_NO_THROW(start_lab(2));
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--role", "nosuchrole"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("no alive node matches"), std::string::npos) << r.describe();

  r = cli({"deploy", "web", "1.0.0", "--env", "production"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("no alive node matches"), std::string::npos) << r.describe();

  r = cli({"deploy", "web", "9.9.9", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("9.9.9 is not in the repository"), std::string::npos) << r.describe();

  r = cli({"deploy", "nosuchapp", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("no versions of nosuchapp"), std::string::npos) << r.describe();

  r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--batch", "zero"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();

  // None of these left a deploy behind.
  EXPECT_TRUE(arr(get_json("/api/v1/deploys"), "deploys").empty());

  // A second deploy of the same app and env while the first runs: refused, naming the first.
  r = cli({"deploy", "web", "1.0.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = push(release("1.1.0", {.health_timeout = Millis(20'000), .healthy_for = Millis(2'000)}),
           "web", "1.1.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto started =
      cli_json({"deploy", "web", "1.1.0", "--env", "staging", "--batch", "1", "--detach"});
  const int64_t id = i64(started, "id");
  ASSERT_GT(id, 0) << to_json(started);
  r = cli({"deploy", "web", "1.0.0", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find(fmt::format("deploy #{} of web 1.1.0", id)), std::string::npos)
      << r.describe();
  r = cli({"rollback", "web", "--env", "staging", "--to", "1.0.0"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find(fmt::format("deploy #{}", id)), std::string::npos) << r.describe();

  // The first one goes on undisturbed.
  r = cli({"watch", std::to_string(id)});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  expect_all_on(status_by_node(), "web", "1.1.0");
}

}  // namespace
}  // namespace slipway::e2e
