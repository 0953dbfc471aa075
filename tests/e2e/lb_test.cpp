// Drain and undrain: Debian's HAProxy in front of the lab's nodes; each node leaves HAProxy
// (drained through its runtime API, by a command run on the `lb` node) before it restarts and
// comes back only once healthy. A rolling deploy, another one and a rollback run while a load
// generator sends requests through HAProxy without pause: not one may fail.
//
// HAProxy runs here with neither retries nor health checks, so nothing but the drain protects a
// request from a node that is restarting (the fixture's own tests show that such a setup does
// lose requests when a node stops without being drained).
#include <cstdio>
#include <iostream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "e2e/harness.h"
#include "support/haproxy.h"
#include "support/loadgen.h"

namespace slipway::e2e {
namespace {

using slipway::testing::HaproxyFixture;
using slipway::testing::HaproxyOptions;
using slipway::testing::LoadGenerator;
using slipway::testing::LoadOptions;
using slipway::testing::LoadSummary;

// The drain/undrain script the lb node runs: `lb.sh drain` takes $SLIPWAY_TARGET_NODE out of
// backend `web` and waits until no request is in flight to it; `lb.sh ready` puts it back.
constexpr const char* kLbScript = R"SH(#!/bin/sh
set -u
sock="$1"; what="$2"; node="${SLIPWAY_TARGET_NODE:?no target node}"
out=$(echo "set server web/$node state $what" | socat stdio "unix-connect:$sock") || exit 1
if [ -n "$(printf %s "$out" | tr -d '[:space:]')" ]; then echo "haproxy: $out"; exit 1; fi
[ "$what" = drain ] || exit 0
i=0
while [ $i -lt 200 ]; do
  cur=$(echo "show stat" | socat stdio "unix-connect:$sock" |
        awk -F, -v s="$node" '$1 == "web" && $2 == s { print $5 }')
  [ "$cur" = 0 ] && exit 0
  i=$((i + 1)); sleep 0.02
done
echo "$node still has $cur request(s) in flight"; exit 1
)SH";

class LbTest : public E2eTest {
 protected:
  void TearDown() override {
    load_.kill();
    haproxy_.stop();
    E2eTest::TearDown();
  }

  std::string manifest_hooks() const {
    const std::string run =
        fmt::format("sh {} {}", (dir() / "lb.sh").string(), haproxy_.socket_path().string());
    return fmt::format(
        "drain:\n  command: {} drain\n  on: role=lb\n  timeout: 20s\n"
        "undrain:\n  command: {} ready\n  on: role=lb\n",
        run, run);
  }

  HaproxyFixture haproxy_;
  LoadGenerator load_;
};

TEST_F(LbTest, RollingDeploysAndARollbackBehindHaproxyFailNoRequest) {
  ASSERT_NO_THROW(start_lab(3));
  // The load balancer's node: another agent, role lb.
  lab::NodeSpec lb;
  lb.name = "lb-1";
  lb.env = "staging";
  lb.roles = {"lb"};
  lb.address = unique_first_address(1);
  ASSERT_TRUE(lab_.add_node(lb));

  // 1.0.0 everywhere first: the app's ports are known from then on (the agent keeps them).
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--role", "api", "--strategy", "all"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  HaproxyOptions o;
  o.dir = dir() / "haproxy";
  o.listen_address = unique_first_address(1);
  o.retries = 0;
  o.health_checks = false;
  for (const auto& [name, n] : status_by_node()) {
    if (name == "lb-1") continue;
    const auto& app = obj(n).at("apps").as_object().at("web");
    o.servers.push_back({name, str(n, "address"), static_cast<int>(i64(app, "port"))});
  }
  ASSERT_EQ(o.servers.size(), 3u);
  ASSERT_NO_THROW(haproxy_.start(o));
  {
    std::FILE* f = std::fopen((dir() / "lb.sh").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(kLbScript, f);
    std::fclose(f);
  }

  ReleaseOptions with_lb;
  with_lb.extra_manifest = manifest_hooks();
  r = push(release("1.1.0", with_lb), "web", "1.1.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = push(release("1.2.0", with_lb), "web", "1.2.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  LoadOptions l;
  l.url = haproxy_.frontend_url() + "/";
  l.concurrency = 4;
  l.dir = dir() / "load";
  ASSERT_NO_THROW(load_.start(l));
  ASSERT_TRUE(load_.wait_for_requests(200)) << load_.progress().describe();

  r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--role", "api", "--batch", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(load_.wait_for_more_requests(200));
  r = cli({"deploy", "web", "1.2.0", "--env", "staging", "--role", "api", "--batch", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(load_.wait_for_more_requests(200));
  r = cli({"rollback", "web", "--env", "staging", "--role", "api"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(load_.wait_for_more_requests(200));
  const LoadSummary s = load_.stop();

  std::cout << fmt::format(
      "[lb] {} requests through HAProxy during two rolling deploys and a "
      "rollback: {} ok, {} failed\n",
      s.requests, s.ok, s.failed);
  RecordProperty("requests", std::to_string(s.requests));
  EXPECT_EQ(s.failed, 0) << s.describe();
  EXPECT_GT(s.requests, 600);

  // Every node is back in HAProxy, on 1.1.0, and each was drained and undrained on lb-1.
  for (const auto& srv : o.servers) {
    const auto st = haproxy_.server_state(srv.name);
    EXPECT_FALSE(st.draining()) << srv.name << ": " << st.status;
  }
  for (const auto& [name, n] : status_by_node()) {
    if (name == "lb-1") continue;
    EXPECT_EQ(app_version_over_http(n, "web"), "1.1.0") << name;
  }
  const auto last = deploy(i64(latest_deploy(), "id"));
  std::map<std::string, std::set<std::string>> steps;
  const auto with_steps = get_json(fmt::format("/api/v1/deploys/{}?steps=1", i64(last, "id")));
  for (const auto& st : arr(with_steps, "steps")) {
    EXPECT_NE(str(st, "status"), "failed") << to_json(st);
    steps[str(st, "node")].insert(str(st, "step"));
  }
  for (const auto& srv : o.servers) {
    EXPECT_TRUE(steps[srv.name].contains("drain")) << srv.name;
    EXPECT_TRUE(steps[srv.name].contains("undrain")) << srv.name;
  }
}

TEST_F(LbTest, AFailingDrainFailsTheNodeBeforeItIsTouched) {
  ASSERT_NO_THROW(start_lab(2));
  ReleaseOptions o;
  o.extra_manifest = "drain: exit 3\n";  // on the node itself
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.0.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = push(release("1.1.0", o), "web", "1.1.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--batch", "1", "-o", "json"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  const auto d = parse(r.out, "deploy");
  EXPECT_EQ(str(d, "state"), "rolled_back") << to_json(d);
  const auto& nodes = arr(d, "nodes");
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_NE(str(nodes[0], "reason").find("draining it failed"), std::string::npos)
      << to_json(nodes[0]);
  EXPECT_NE(str(nodes[0], "reason").find("exit code 3"), std::string::npos) << to_json(nodes[0]);
  for (const auto& [name, n] : status_by_node())
    EXPECT_EQ(app_version_over_http(n, "web"), "1.0.0") << name;

  // `on:` that matches no node is refused before anything starts.
  ReleaseOptions nowhere;
  nowhere.extra_manifest = "undrain:\n  command: 'true'\n  on: role=nobody\n";
  r = push(release("1.2.0", nowhere), "web", "1.2.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.2.0", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("role=nobody"), std::string::npos) << r.describe();
}

TEST_F(LbTest, AnEnvironmentsLoadBalancerServesAppsWithoutTheirOwn) {
  ASSERT_NO_THROW(start_lab(2));
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"lb", "set", "--env", "staging", "--drain", "echo out $SLIPWAY_TARGET_NODE; exit 4",
           "--undrain", "true", "--timeout", "10s"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("exit 4"), std::string::npos) << r.describe();
  auto shown = cli_json({"lb", "show", "--env", "staging"});
  EXPECT_EQ(str(obj(shown).at("drain"), "command"), "echo out $SLIPWAY_TARGET_NODE; exit 4");
  EXPECT_EQ(i64(obj(shown).at("drain"), "timeout_ms"), 10'000);
  EXPECT_FALSE(str(shown, "updated_by").empty()) << to_json(shown);

  // web's manifest names no drain: the environment's applies, and fails the first node untouched.
  r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--batch", "1", "-o", "json"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  auto d = parse(r.out, "deploy");
  EXPECT_NE(to_json(d).find("draining it failed"), std::string::npos) << to_json(d);
  const auto steps = get_json(fmt::format("/api/v1/deploys/{}?steps=1", i64(d, "id")));
  EXPECT_NE(to_json(steps).find("out node-1"), std::string::npos) << to_json(steps);

  // A manifest's own drain wins over the environment's.
  ReleaseOptions own;
  own.extra_manifest = "drain: 'true'\n";
  r = push(release("1.1.0", own), "web", "1.1.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.1.0", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();

  // Cleared: web 1.0.0 goes through.
  r = cli({"lb", "clear", "--env", "staging", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(obj(parse(r.out, "lb")).at("drain").is_null()) << r.out;
  r = cli({"deploy", "web", "1.0.0", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();

  // Hostile input.
  const std::vector<std::string> bodies = {
      "{nope",
      R"({})",
      R"({"drain":null})",
      R"({"drain":{"command":""}})",
      R"({"drain":{"command":"x","on":"role="}})",
      R"({"drain":{"command":"x","timeout":"forever"}})",
      R"({"drain":{"command":"x","timeout":"-1s"}})",
      R"({"drain":{"command":"x","extra":1}})",
      R"({"drain":"x"})",
      R"({"drain":{"command":"x"},"other":1})",
  };
  for (const auto& b : bodies) {
    auto res = http("PUT", "/api/v1/envs/staging/lb", b);
    EXPECT_EQ(res.status, 400) << b << " -> " << res.body;
  }
  EXPECT_EQ(http("PUT", "/api/v1/envs/staging/lb",
                 R"({"drain":{"command":")" + std::string(5000, 'x') + R"("}})")
                .status,
            400);
  EXPECT_EQ(http("GET", "/api/v1/envs/bad%2Fname/lb").status, 400);
  EXPECT_EQ(http("GET", "/api/v1/envs/staging/lb", "", {}, "").status, 401);
  EXPECT_EQ(http("POST", "/api/v1/envs/staging/lb", "{}").status, 405);
  r = cli({"lb", "set", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

}  // namespace
}  // namespace slipway::e2e
